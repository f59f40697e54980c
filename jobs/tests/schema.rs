//! The JSON Schemas in `jobs/schema/` are generated from the payload types; this test fails
//! when they drift. Regenerate with `MAILROOM_WRITE_SCHEMA=1 cargo test -p mailroom-jobs --test schema`.

use std::path::PathBuf;

use mailroom_jobs::{
    CampaignJob, DeliverEvent, DeliverWebhook, Job, Noop, ProviderEvents, SendEmail,
    SendVerification, TrackingHits,
};
use schemars::{JsonSchema, schema_for};

fn check<J: Job + JsonSchema>() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("schema")
        .join(format!("{}.json", J::QUEUE));
    let generated = serde_json::to_string_pretty(&schema_for!(J)).unwrap() + "\n";
    if std::env::var_os("MAILROOM_WRITE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        committed,
        generated,
        "{} is stale; regenerate it (see this file's header)",
        path.display()
    );
}

#[test]
fn committed_schemas_match_the_payload_types() {
    check::<Noop>();
    check::<SendEmail>();
    check::<SendVerification>();
    check::<DeliverEvent>();
    check::<ProviderEvents>();
    check::<CampaignJob>();
    check::<TrackingHits>();
    check::<DeliverWebhook>();
}

#[test]
fn the_noop_schema_refuses_unknown_fields_like_the_worker_does() {
    let schema = serde_json::to_value(schema_for!(Noop)).unwrap();
    assert_eq!(schema["additionalProperties"], serde_json::json!(false));
    assert!(serde_json::from_str::<Noop>(r#"{"sleep_ms": 1, "colour": "red"}"#).is_err());
}
