"""Parses each .eml file given with Python's `email` package under the strict policy and fails
(exit 1) on any defect in any part. Prints one JSON summary per file for the Rust tests."""

import email
import email.policy
import json
import sys


def summary(path):
    with open(path, "rb") as f:
        message = email.message_from_bytes(f.read(), policy=email.policy.strict)
    defects = []
    parts = []
    for part in message.walk():
        defects.extend(f"{part.get_content_type()}: {d!r}" for d in part.defects)
        entry = {"type": part.get_content_type()}
        if not part.is_multipart():
            entry["disposition"] = part.get_content_disposition()
            entry["filename"] = part.get_filename()
            entry["content_id"] = part["Content-ID"]
            content = part.get_content()
            entry["text"] = content if isinstance(content, str) else None
            entry["bytes"] = len(content if isinstance(content, bytes) else content.encode())
        parts.append(entry)
    headers = {k: str(v) for k, v in message.items()}
    return defects, {
        "subject": str(message["Subject"]),
        "from": str(message["From"]),
        "to": str(message["To"]),
        "cc": str(message["Cc"]) if message["Cc"] else None,
        "bcc": str(message["Bcc"]) if message["Bcc"] else None,
        "message_id": str(message["Message-ID"]),
        "date": str(message["Date"]),
        "headers": headers,
        "parts": parts,
    }


def main():
    failed = False
    for path in sys.argv[1:]:
        try:
            defects, result = summary(path)
        except Exception as error:  # a header the strict policy cannot parse at all
            defects, result = [repr(error)], {}
        if defects:
            failed = True
            print(f"{path}: {defects}", file=sys.stderr)
        print(json.dumps(result))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
