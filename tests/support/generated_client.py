"""Drives mailroom through a client that openapi-python-client generated from /openapi.json.

Usage: generated_client.py BASE_URL API_KEY PACKAGE_PARENT

PACKAGE_PARENT holds the generated package `mailroom_api`. Every request and answer goes
through the generated models (no hand-written JSON): an email, a batch of two (one raw, one
templated), each one's status, a list and a subscriber on it. Prints `ok` when every answer
parsed into the model the document promised.
"""

import sys

base, key, parent = sys.argv[1:4]
sys.path.insert(0, parent)

from mailroom_api import AuthenticatedClient  # noqa: E402
from mailroom_api.api.emails import send, send_batch, status  # noqa: E402
from mailroom_api.api.lists import create_list, upsert_subscriber  # noqa: E402
from mailroom_api.models import (  # noqa: E402
    Accepted,
    BatchAccepted,
    EmailBatch,
    EmailMessage,
    ListView,
    MailboxObject,
    NewList,
    NewSubscriber,
    Optin,
    StatusRecord,
    SubscriberView,
    TemplateRef,
    Visibility,
)


def expect(answer, model):
    if not isinstance(answer, model):
        sys.exit(f"expected a {model.__name__}, got {answer!r}")
    return answer


client = AuthenticatedClient(base_url=base, token=key, raise_on_unexpected_status=True)

one = expect(
    send.sync(
        client=client,
        body=EmailMessage(
            to=[MailboxObject(email="ada@example.com", name="Ada")],
            subject="Hello from a generated client",
            text="Sent through models the OpenAPI document described.",
        ),
    ),
    Accepted,
)

batch = expect(
    send_batch.sync(
        client=client,
        body=EmailBatch(
            messages=[
                EmailMessage(to="bob@example.com", subject="One of two", html="<p>Hi</p>"),
                EmailMessage(
                    to=[MailboxObject(email="cy@example.com")],
                    template=TemplateRef(
                        name="welcome",
                        data={"name": "Cy", "link": "https://example.com/start"},
                        locale="fr",
                    ),
                ),
            ]
        ),
    ),
    BatchAccepted,
)
if (batch.accepted, batch.rejected) != (2, 0):
    sys.exit(f"the batch was not accepted whole: {batch!r}")

ids = [one.id] + [item.id for item in batch.results]
for n, item in enumerate(batch.results):
    if item.index != n or item.status != "queued":
        sys.exit(f"batch item {n}: {item!r}")
for message in ids:
    record = expect(status.sync(message, client=client), StatusRecord)
    if record.id != message or record.status.value != "queued":
        sys.exit(f"status of {message}: {record!r}")

made = expect(
    create_list.sync(
        client=client,
        body=NewList(
            name="Generated",
            optin=Optin.SINGLE,
            visibility=Visibility.PRIVATE,
            default_locale="fr-CA",
        ),
    ),
    ListView,
)
person = expect(
    upsert_subscriber.sync(
        client=client,
        body=NewSubscriber(email="dee@example.com", name="Dee", lists=[made.id]),
    ),
    SubscriberView,
)
states = [(s.list_, s.status.value) for s in person.subscriptions]
if states != [(made.id, "confirmed")]:
    sys.exit(f"the subscriber's subscriptions: {states!r}")

print("ok")
