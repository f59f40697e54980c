"""Checks the DKIM signature of an .eml file with dkimpy, an implementation independent of
mailroom's, fetching the public key from the tests' loopback DNS server.

usage: dkim_verify.py FILE.eml DNS_PORT
prints {"verified": true|false, "reason": why not, "algorithm": "...", "domain": "...", "signed_headers": [...]}"""

import json
import sys

import dkim
import dns.resolver


def main(path, port):
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = int(port)

    def txt(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        try:
            answer = resolver.resolve(name, "TXT", lifetime=timeout)
        except dns.resolver.NXDOMAIN:
            return None
        return b"".join(next(iter(answer)).strings)

    with open(path, "rb") as f:
        message = f.read()
    checker = dkim.DKIM(message)
    try:
        verified, reason = checker.verify(dnsfunc=txt), None
    except dkim.DKIMException as refused:
        # An altered message: dkimpy says why (a body hash or signature mismatch).
        verified, reason = False, str(refused)
    signature = dkim.parse_tag_value(
        next(
            value
            for name, value in checker.headers
            if name.lower() == b"dkim-signature"
        )
    )
    print(
        json.dumps(
            {
                "verified": bool(verified),
                "reason": reason,
                "algorithm": signature[b"a"].decode(),
                "domain": signature[b"d"].decode(),
                "canonicalization": signature[b"c"].decode(),
                "signed_headers": [
                    h.strip().decode().lower() for h in signature[b"h"].split(b":")
                ],
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
