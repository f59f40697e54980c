"""The seed's SMTP route, measured the same way as `mailroom-bench smtp`: N messages of the
same size through fastapi-mail (`pip install fastapi-mail`, a new connection per message, as it
does) and, for reference, one `smtplib` connection, to Postfix's smtp-sink on loopback.

    smtp-sink -c -u nobody 127.0.0.1:2525 256 &
    python3 bench/compare/fastapi_mail_smtp.py --port 2525 --messages 5000
"""

import argparse
import asyncio
import smtplib
import time
from email.message import EmailMessage

HTML = "<html><body><h1>Your receipt</h1>%s</body></html>" % (
    "<p>Thank you for your order. Here is what you bought and when it ships.</p>" * 26
)


def smtplib_rate(port, messages):
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for i in range(messages):
            message = EmailMessage()
            message["From"] = "noreply@example.com"
            message["To"] = "customer%d@example.com" % i
            message["Subject"] = "Your receipt"
            message.set_content("Thank you for your order.")
            message.add_alternative(HTML, subtype="html")
            smtp.send_message(message)
    return messages / (time.perf_counter() - started)


async def fastapi_mail_rate(port, messages, concurrency):
    from fastapi_mail import ConnectionConfig, FastMail, MessageSchema, MessageType

    config = ConnectionConfig(
        MAIL_USERNAME="",
        MAIL_PASSWORD="",
        MAIL_FROM="noreply@example.com",
        MAIL_PORT=port,
        MAIL_SERVER="127.0.0.1",
        MAIL_STARTTLS=False,
        MAIL_SSL_TLS=False,
        USE_CREDENTIALS=False,
        VALIDATE_CERTS=False,
    )
    mail = FastMail(config)
    semaphore = asyncio.Semaphore(concurrency)

    async def one(i):
        async with semaphore:
            await mail.send_message(
                MessageSchema(
                    subject="Your receipt",
                    recipients=["customer%d@example.com" % i],
                    body=HTML,
                    subtype=MessageType.html,
                )
            )

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(messages)))
    return messages / (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    print("smtplib, one connection: %.0f messages/s" % smtplib_rate(args.port, args.messages))
    rate = asyncio.run(fastapi_mail_rate(args.port, args.messages, args.concurrency))
    print("fastapi-mail, %d at once: %.0f messages/s" % (args.concurrency, rate))


if __name__ == "__main__":
    main()
