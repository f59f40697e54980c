//! The OpenAPI document's `webhooks` section: what mailroom POSTs to a service's endpoint for
//! each event type, with the Standard Webhooks headers and a schema of the body per type.

use serde_json::{Value, json};
use utoipa::{Modify, openapi::path::Paths};

use crate::hooks::EventType;

/// The fields of `data` for each kind of event: name, JSON type(s), description.
type Fields = &'static [(&'static str, &'static str, &'static str)];

const EMAIL: Fields = &[
    ("message_id", "string", "mailroom's id of the message"),
    ("email", "string", "the recipient"),
    (
        "key",
        "string|null",
        "the stored key that queued the message",
    ),
    ("categories", "array", "the message's categories"),
    ("campaign_id", "string|null", "the campaign it belongs to"),
    (
        "source",
        "string",
        "who reported it: sendgrid, postmark, mailgun, ses, smtp, report, tracking",
    ),
    ("reason", "string|null", "why (a bounce's, a deferral's)"),
    ("status", "string|null", "the SMTP status, when given"),
    ("bounce_type", "string|null", "bounce or blocked"),
    ("url", "string|null", "the clicked link, without its query"),
];
const FAILED: Fields = &[
    ("message_id", "string", "mailroom's id of the message"),
    ("to", "array", "its recipients"),
    ("reason", "string", "why it was given up on"),
    ("error", "string", "the last error"),
    ("categories", "array|null", "the message's categories"),
    ("metadata", "object|null", "the message's own metadata"),
    ("key", "string|null", "the stored key that queued it"),
];
const VERIFIED: Fields = &[
    ("email", "string", "the address"),
    ("verified_at", "string", "when (RFC 3339)"),
    ("metadata", "object", "the request's metadata"),
    ("key", "string|null", "the stored key that asked"),
];
const INBOUND: Fields = &[
    (
        "inbound_id",
        "string",
        "read it whole at GET /v1/inbound/{id}",
    ),
    ("from", "string", "the sender"),
    ("to", "string", "the recipients"),
    ("subject", "string", "the subject"),
    ("attachments", "integer", "how many"),
    (
        "kept_whole",
        "boolean",
        "false when over the storage budget: described only",
    ),
];
const SUBSCRIBER: Fields = &[
    ("subscriber_id", "integer", "the subscriber"),
    ("email", "string", "their address"),
    ("list_id", "integer", "the list"),
    ("status", "string", "unconfirmed, confirmed or unsubscribed"),
    ("previous_status", "string|null", "before the change"),
    (
        "source",
        "string",
        "api, form, link, import, sendgrid, postmark, mailgun, ses",
    ),
];
const CAMPAIGN: Fields = &[
    ("campaign_id", "string", "the campaign"),
    ("run", "integer|null", "its run"),
    ("reason", "string|null", "why it was paused"),
];
const IMPORT: Fields = &[
    ("import_id", "string", "the import"),
    ("list_id", "integer", "its list"),
    ("state", "string", "done or failed"),
    ("rows", "integer", "rows read"),
    ("imported", "integer", "subscribers made"),
    ("updated", "integer", "subscribers updated"),
    ("skipped", "integer", "rows skipped"),
    ("invalid", "integer", "rows refused"),
    ("error_count", "integer", "rows reported"),
    ("failure", "string|null", "why it failed"),
];

fn fields_of(kind: EventType) -> Fields {
    match kind {
        EventType::EmailFailed => FAILED,
        EventType::AddressVerified => VERIFIED,
        EventType::InboundReceived => INBOUND,
        EventType::SubscriberSubscribed
        | EventType::SubscriberConfirmed
        | EventType::SubscriberUnsubscribed => SUBSCRIBER,
        EventType::CampaignStarted | EventType::CampaignPaused | EventType::CampaignFinished => {
            CAMPAIGN
        }
        EventType::ImportFinished => IMPORT,
        _ => EMAIL,
    }
}

fn header(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "header", "required": true, "description": description,
           "schema": {"type": "string"}})
}

/// The operation mailroom performs on an endpoint for `kind`.
fn operation(kind: EventType) -> Value {
    let properties: serde_json::Map<String, Value> = (fields_of(kind).iter())
        .map(|(name, types, description)| {
            let types: Vec<&str> = types.split('|').collect();
            (
                name.to_string(),
                json!({"type": types, "description": description}),
            )
        })
        .collect();
    let schema = json!({
        "type": "object",
        "required": ["type", "timestamp", "data"],
        "properties": {
            "type": {"type": "string", "enum": [kind.as_str()]},
            "timestamp": {"type": "string", "format": "date-time"},
            "data": {"type": "object", "properties": properties},
        },
    });
    json!({"post": {
        "operationId": format!("webhook_{}", kind.as_str().replace('.', "_")),
        "summary": format!("{kind}, POSTed to the endpoints that asked for it"),
        "tags": ["webhooks"],
        "parameters": [
            header("webhook-id", "The event's id: the same on every attempt"),
            header("webhook-timestamp", "Unix seconds of this attempt"),
            header("webhook-signature", "v1,<base64 HMAC-SHA256 of id.timestamp.body>, space-separated when two secrets sign"),
        ],
        "requestBody": {"required": true, "content": {"application/json": {"schema": schema}}},
        "responses": {"2XX": {"description": "Received; anything else, or no answer within 15 s, is retried"}},
    }})
}

/// Adds the `webhooks` section.
pub(super) struct Webhooks;

/// The section: one operation per event type.
fn section() -> Result<Paths, serde_json::Error> {
    let section: serde_json::Map<String, Value> = (EventType::ALL.into_iter())
        .map(|kind| (kind.as_str().to_owned(), operation(kind)))
        .collect();
    serde_json::from_value::<Paths>(Value::Object(section))
}

impl Modify for Webhooks {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        match section() {
            Ok(paths) => openapi.webhooks = Some(paths),
            Err(error) => tracing::error!(%error, "the webhooks section did not build"),
        }
    }
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi as _;

    use super::*;

    #[test]
    fn the_document_describes_each_event_type_as_a_webhook_with_its_body() {
        section().expect("the section builds");
        let document = serde_json::to_value(crate::http::openapi::ApiDoc::openapi()).unwrap();
        let webhooks = document["webhooks"]
            .as_object()
            .expect("a webhooks section");
        assert_eq!(webhooks.len(), EventType::ALL.len());
        for kind in EventType::ALL {
            let post = &webhooks[kind.as_str()]["post"];
            let schema = &post["requestBody"]["content"]["application/json"]["schema"];
            assert_eq!(
                schema["properties"]["type"]["enum"],
                json!([kind.as_str()]),
                "{post}"
            );
            let data = schema["properties"]["data"]["properties"]
                .as_object()
                .unwrap();
            assert_eq!(data.len(), fields_of(kind).len(), "{kind}");
            let headers: Vec<&str> = (post["parameters"].as_array().unwrap().iter())
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            assert_eq!(
                headers,
                ["webhook-id", "webhook-timestamp", "webhook-signature"]
            );
        }
        let bounced = &webhooks["email.bounced"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"]["properties"]["data"]["properties"];
        assert_eq!(bounced["key"]["type"], json!(["string", "null"]));
    }
}
