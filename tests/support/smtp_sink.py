"""A real SMTP server for mailroom's tests (aiosmtpd, on loopback).

Each accepted message is written to DIR as NAME.eml (the bytes as received) with its envelope
(and the client's address and port) in NAME.json, both renamed into place so a reader never sees half a file. Recipients whose
local part is `perm-fail` are refused with 550 5.1.1 (no such mailbox), `policy-block` with
554 5.7.1 (a policy refusal, as Gmail and Outlook word theirs), `auth-needed` with 530 5.7.0
(what a relay that wants AUTH says); `temp-fail` gets 451 the first
time it is seen and is accepted after that. With `--auth USER:PASSWORD` the server requires
AUTH (PLAIN or LOGIN, without TLS: loopback only) with those credentials. Prints "ready PORT"
once it listens.
"""

import argparse
import json
import logging
import os
import time
import uuid
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


class Sink:
    def __init__(self, out):
        self.out = out
        self.deferred = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local == "perm-fail":
            return "550 5.1.1 mailbox unavailable"
        if local == "policy-block":
            return "554 5.7.1 Message rejected under local policy"
        if local == "auth-needed":
            return "530 5.7.0 Authentication required"
        if local == "temp-fail" and address not in self.deferred:
            self.deferred.add(address)
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        name = uuid.uuid4().hex
        final = os.path.join(self.out, name)
        temporary = os.path.join(self.out, "." + name)
        with open(temporary + ".json", "w") as f:
            json.dump(
                {
                    "mail_from": envelope.mail_from,
                    "rcpt_tos": envelope.rcpt_tos,
                    # The client's address and port: which connection carried the message.
                    "peer": "%s:%s" % tuple(session.peer[:2]),
                },
                f,
            )
        with open(temporary + ".eml", "wb") as f:
            f.write(envelope.original_content)
        os.rename(temporary + ".json", final + ".json")
        os.rename(temporary + ".eml", final + ".eml")
        return "250 2.0.0 Ok: queued as " + name


def authenticator_for(credentials):
    user, password = credentials.split(":", 1)

    def check(server, session, envelope, mechanism, auth_data):
        ok = (
            getattr(auth_data, "login", b"") == user.encode()
            and getattr(auth_data, "password", b"") == password.encode()
        )
        # handled=False: aiosmtpd answers the failure (535) itself.
        return AuthResult(success=ok, handled=False)

    return check


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--auth")
    args = parser.parse_args()
    options = {}
    if args.auth:
        # AUTH without TLS is what this loopback-only test server is for.
        warnings.simplefilter("ignore")
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        options = dict(
            authenticator=authenticator_for(args.auth),
            auth_required=True,
            auth_require_tls=False,
        )
    controller = Controller(Sink(args.dir), hostname="127.0.0.1", port=args.port, **options)
    controller.start()
    print("ready", args.port, flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
