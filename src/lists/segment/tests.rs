use super::*;
use serde_json::json;

fn record(attributes: &str) -> String {
    [
        "ada@example.com",
        "Ada",
        "fr",
        attributes,
        "e",
        "1767225600", // 2026-01-01
        "1767225600",
    ]
    .join(&SEPARATOR.to_string())
}

#[test]
fn attribute_names_with_escapes_are_found() {
    let plan = json!({"field": "attributes.plan", "op": "eq", "value": "pro"});
    assert!(check(plan.clone(), r#"{"pl\u0061n":"pro"}"#));
    assert!(!check(plan, r#"{"plan ":"pro"}"#));
    let city = json!({"field": "attributes.a.city", "op": "eq", "value": "Oslo"});
    assert!(check(city.clone(), r#"{"a":{"ci\u0074y":"Oslo","x":1}}"#));
    assert!(!check(city, r#"{"a":"Oslo"}"#));
}

#[test]
fn a_record_names_its_subscriptions_by_whole_list_id() {
    use crate::lists::SubscriptionStatus::{Confirmed, Unconfirmed, Unsubscribed};
    let raw = format!("{}{SEPARATOR}1c,17x,7u", record(""));
    let view = RecordView::of(&raw).unwrap();
    assert_eq!(view.membership("1"), Some(Confirmed));
    assert_eq!(view.membership("17"), Some(Unsubscribed));
    assert_eq!(view.membership("7"), Some(Unconfirmed));
    assert_eq!(view.membership("71"), None);
    assert_eq!(view.membership(""), None);
    let without = record("");
    assert_eq!(RecordView::of(&without).unwrap().membership("1"), None);
}

fn check(filter: Value, attributes: &str) -> bool {
    let raw = record(attributes);
    Filter::parse(&filter)
        .unwrap()
        .matches(&RecordView::of(&raw).unwrap())
}

#[test]
fn conditions_match_fields_and_attributes() {
    let attrs = r#"{"plan":"pro","seats":"12","trial":false,"address":{"city":"Paris"},"since":"2025-06-01"}"#;
    assert!(check(
        json!({"field": "email", "op": "eq", "value": "ada@example.com"}),
        attrs
    ));
    assert!(check(
        json!({"field": "domain", "op": "in", "value": ["example.com", "x.org"]}),
        attrs
    ));
    assert!(check(
        json!({"field": "attributes.plan", "op": "in", "value": ["pro", "team"]}),
        attrs
    ));
    assert!(
        check(
            json!({"field": "attributes.seats", "op": "gte", "value": 10}),
            attrs
        ),
        "a numeric string compares as a number"
    );
    assert!(check(
        json!({"field": "attributes.seats", "op": "eq", "value": 12}),
        attrs
    ));
    assert!(!check(
        json!({"field": "attributes.seats", "op": "lt", "value": 12}),
        attrs
    ));
    assert!(check(
        json!({"field": "attributes.address.city", "op": "eq", "value": "Paris"}),
        attrs
    ));
    assert!(check(
        json!({"field": "attributes.trial", "op": "eq", "value": false}),
        attrs
    ));
    assert!(check(
        json!({"field": "attributes.since", "op": "lt", "value": "2025-07-01"}),
        attrs
    ));
    assert!(check(
        json!({"field": "created_at", "op": "gte", "value": "2026-01-01T00:00:00Z"}),
        attrs
    ));
    assert!(!check(
        json!({"field": "created_at", "op": "gt", "value": "2026-01-01"}),
        attrs
    ));
    assert!(check(
        json!({"field": "attributes.missing", "op": "exists", "value": false}),
        attrs
    ));
    assert!(check(
        json!({"field": "attributes.missing", "op": "ne", "value": "x"}),
        attrs
    ));
    assert!(!check(
        json!({"field": "attributes.missing", "op": "gt", "value": 1}),
        attrs
    ));
    assert!(check(
        json!({"field": "status", "op": "eq", "value": "enabled"}),
        attrs
    ));
    assert!(
        !check(
            json!({"field": "attributes.plan", "op": "eq", "value": "pro"}),
            ""
        ),
        "no attributes"
    );
}

#[test]
fn and_or_not_combine() {
    let attrs = r#"{"plan":"pro"}"#;
    let pro = json!({"field": "attributes.plan", "op": "eq", "value": "pro"});
    let german = json!({"field": "locale", "op": "eq", "value": "de"});
    assert!(check(json!({"or": [pro, german]}), attrs));
    assert!(!check(json!({"and": [pro, german]}), attrs));
    assert!(check(json!({"and": [pro, {"not": german}]}), attrs));
}

#[test]
fn invalid_filters_name_the_part_at_fault() {
    let cases = [
        (json!([]), ""),
        (json!({"and": []}), "and"),
        (
            json!({"and": [{"field": "email", "op": "eq", "value": "a"}, {"field": "email", "op": "like", "value": "a"}]}),
            "and[1].op",
        ),
        (
            json!({"or": [{"not": {"field": "nope", "op": "eq", "value": 1}}]}),
            "or[0].not.field",
        ),
        (json!({"field": "email", "op": "in", "value": "a"}), "value"),
        (
            json!({"field": "attributes.n", "op": "gt", "value": "soon"}),
            "value",
        ),
        (
            json!({"field": "created_at", "op": "gt", "value": 3}),
            "value",
        ),
        (json!({"field": "email", "op": "eq"}), "value"),
        (
            json!({"field": "email", "op": "eq", "value": {"a": 1}}),
            "value",
        ),
        (
            json!({"field": "email", "op": "eq", "value": "a", "extra": 1}),
            "extra",
        ),
        (json!({"and": [], "or": []}), ""),
    ];
    for (filter, path) in cases {
        let error = Filter::parse(&filter).unwrap_err();
        assert_eq!(error.path, path, "{filter}: {error}");
    }
    let mut deep = json!({"field": "email", "op": "exists"});
    for _ in 0..20 {
        deep = json!({"not": deep});
    }
    assert!(Filter::parse(&deep).is_err());
}
