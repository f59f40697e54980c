//! Property tests of the parsers that read what the internet sends: SendGrid's event batches,
//! their signatures, and Inbound Parse forms. Whatever the input, they answer (Ok or Err) and
//! never panic; an event with the required fields in any shape is read, not dropped.

use bytes::Bytes;
use mailroom::{
    events::{WebhookKey, parse_batch, signature},
    inbound::parse::parse,
};
use proptest::prelude::*;
use serde_json::{Value, json};

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An event whose fields SendGrid documents, each with a value of any type.
fn event_like() -> impl Strategy<Value = Value> {
    let keys = [
        "email",
        "event",
        "timestamp",
        "sg_event_id",
        "sg_message_id",
        "mailroom_id",
        "category",
        "reason",
        "status",
        "response",
        "type",
        "url",
        "attempt",
        "asm_group_id",
        "tls",
        "pool",
    ];
    prop::collection::vec((prop::sample::select(keys.to_vec()), json_value()), 0..12).prop_map(
        |fields| Value::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn event_batches_never_panic_on_any_text(body in ".{0,400}") {
        let _ = parse_batch(&body);
        let _ = mailroom::events::parse::is_event_array(body.as_bytes());
    }

    #[test]
    fn event_batches_of_any_shape_are_read_or_skipped(events in prop::collection::vec(event_like(), 0..20)) {
        let body = serde_json::to_string(&events).unwrap();
        let batch = parse_batch(&body).unwrap();
        prop_assert_eq!(batch.events.len() + batch.skipped, events.len());
    }

    #[test]
    fn well_formed_events_are_never_skipped(
        email in "[a-z]{1,8}@[a-z]{1,8}\\.com",
        kind in "[a-z_]{1,16}",
        timestamp in 0i64..4_000_000_000_000,
        category in json_value(),
        extra in json_value(),
    ) {
        let body = json!([{
            "email": email, "event": kind, "timestamp": timestamp,
            "category": category, "unknown_field": extra,
        }])
        .to_string();
        let batch = parse_batch(&body).unwrap();
        prop_assert_eq!(batch.events.len(), 1);
        prop_assert!(batch.events[0].timestamp < 100_000_000_000, "milliseconds become seconds");
    }

    #[test]
    fn signature_checks_never_panic(
        signature_header in proptest::option::of(".{0,120}"),
        timestamp in proptest::option::of(".{0,20}"),
        body in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let key = WebhookKey::from_base64(
            "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==",
        )
        .unwrap();
        let result = signature::verify(
            &key,
            signature_header.as_deref(),
            timestamp.as_deref(),
            &body,
            1_600_112_502,
            600,
        );
        prop_assert!(result.is_err());
    }

    #[test]
    fn inbound_forms_never_panic_on_any_bytes(
        body in prop::collection::vec(any::<u8>(), 0..600),
        boundary in "[A-Za-z0-9]{1,12}",
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let content_type = format!("multipart/form-data; boundary={boundary}");
        let _ = runtime.block_on(parse(&content_type, Bytes::from(body), chrono::Utc::now(), 1024));
    }

    #[test]
    fn inbound_forms_never_panic_when_a_real_sample_is_damaged(
        cuts in prop::collection::vec((0usize..1400, any::<u8>()), 1..8),
        truncate in 0usize..1400,
    ) {
        let path = format!(
            "{}/tests/data/sendgrid/inbound/sendgrid-ruby__lib_sendgrid_helpers_inbound_sample_data_raw_data.txt",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut body = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{path}: {e} (every replayed file is in tests/data, see its README)"));
        for (at, byte) in cuts {
            if let Some(slot) = body.get_mut(at) {
                *slot = byte;
            }
        }
        body.truncate(truncate.max(1));
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let _ = runtime.block_on(parse(
            "multipart/form-data; boundary=xYzZY",
            Bytes::from(body),
            chrono::Utc::now(),
            1024,
        ));
    }
}
