//! Replays the public address-syntax suites in `tests/data/validation` against
//! `mailroom_jobs::address::parse` and fails on any disagreement that is not listed, with its
//! reason, in `tests/data/validation_exceptions.json`. A listed exception that no longer
//! disagrees fails too, so the file cannot go stale.

use std::collections::BTreeSet;

use mailroom::validation::{Suggester, Validator};
use mailroom_jobs::address::{self, SyntaxCode};
use serde::Deserialize;
use serde_json::Value;

fn shared(path: &str) -> Vec<Value> {
    let full = format!(
        "{}/tests/data/validation/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"));
    serde_json::from_str(&text).unwrap()
}

#[derive(Deserialize)]
struct Exception {
    suite: String,
    case: String,
    reason: String,
}

fn exceptions(suite: &str) -> BTreeSet<String> {
    let text = include_str!("data/validation_exceptions.json");
    let all: Vec<Exception> = serde_json::from_str(text).unwrap();
    all.into_iter()
        .filter(|e| e.suite == suite)
        .inspect(|e| assert!(!e.reason.trim().is_empty(), "{} needs a reason", e.case))
        .map(|e| e.case)
        .collect()
}

/// Compares the disagreements found with the listed ones, both ways.
fn settle(suite: &str, total: usize, disagreements: &BTreeSet<String>) {
    let listed = exceptions(suite);
    let unlisted: Vec<_> = disagreements.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(disagreements).collect();
    println!(
        "{suite}: {} of {total} cases agree; {} listed exceptions",
        total - disagreements.len(),
        listed.len()
    );
    assert!(
        unlisted.is_empty(),
        "{suite}: disagreements not in the exceptions file:\n{unlisted:#?}"
    );
    assert!(
        stale.is_empty(),
        "{suite}: listed exceptions that now agree (remove them):\n{stale:#?}"
    );
}

#[test]
fn isemail_valid_and_dnswarn_are_accepted_and_every_other_category_refused() {
    let cases = shared("isemail.json");
    let mut disagreements = BTreeSet::new();
    for case in &cases {
        let input = case["address"].as_str().unwrap();
        let category = case["category"].as_str().unwrap();
        let expected = matches!(category, "ISEMAIL_VALID_CATEGORY" | "ISEMAIL_DNSWARN");
        let ours = address::parse(input);
        if ours.is_ok() != expected {
            disagreements.insert(format!("#{} {input:?}", case["id"]));
        }
    }
    assert_eq!(cases.len(), 164);
    settle("isemail", cases.len(), &disagreements);
}

/// The constructs an upstream flag allows and mailroom refuses by policy (for sending).
fn relaxed_by_flags(flags: &Value, code: SyntaxCode) -> bool {
    let on = |name: &str| flags[name].as_bool() == Some(true);
    match code {
        SyntaxCode::QuotedLocalPart | SyntaxCode::ObsoleteSyntax => on("allow_quoted_local"),
        SyntaxCode::DomainLiteral => on("allow_domain_literal"),
        SyntaxCode::DisplayName => on("allow_display_name"),
        SyntaxCode::EmptyLocalPart => on("allow_empty_local"),
        _ => false,
    }
}

/// The library refuses special-use domains (`.test`, `.invalid`, …) unless `test_environment`
/// lets `.test` through; mailroom reports them as undeliverable rather than malformed.
fn undeliverable(parsed: &address::Address, test_environment: bool) -> bool {
    parsed.is_special_use() && !(test_environment && parsed.ascii_domain.ends_with(".test"))
}

#[test]
fn email_validator_cases_agree_in_verdict_and_normalized_form() {
    let cases = shared("email_validator_py.json");
    let mut disagreements = BTreeSet::new();
    let mut compared_forms = 0;
    let mut runnable = 0;
    for case in &cases {
        let Some(input) = case["address"].as_str() else {
            // A lone surrogate: no UTF-8 JSON body can carry it.
            continue;
        };
        runnable += 1;
        let flags = &case["flags"];
        let name = format!("{} {input:?}", case["test"].as_str().unwrap());
        let test_environment = flags["test_environment"].as_bool() == Some(true);
        let ours = address::parse(input);
        let expected_valid = case["valid"].as_bool().unwrap();
        match (expected_valid, ours) {
            (true, Ok(parsed)) => {
                let fields = [
                    ("normalized", Some(parsed.normalized())),
                    ("ascii_email", parsed.ascii()),
                    ("local_part", Some(parsed.local.clone())),
                    ("domain", Some(parsed.domain.clone())),
                    ("ascii_domain", Some(parsed.ascii_domain.clone())),
                    ("smtputf8", None),
                ];
                for (field, ours) in fields {
                    let Some(expected) = case.get(field) else {
                        continue;
                    };
                    compared_forms += 1;
                    let agrees = if field == "smtputf8" {
                        expected.as_bool() == Some(parsed.needs_smtputf8())
                    } else {
                        expected.as_str().map(str::to_owned) == ours
                    };
                    if !agrees {
                        disagreements.insert(format!("{name} {field}"));
                    }
                }
                if undeliverable(&parsed, test_environment) {
                    disagreements.insert(name);
                }
            }
            (true, Err(e)) if relaxed_by_flags(flags, e.code) => {}
            (true, Err(_)) => {
                disagreements.insert(name);
            }
            (false, Err(_)) => {}
            (false, Ok(parsed)) => {
                let smtputf8_off = flags["allow_smtputf8"].as_bool() == Some(false);
                let smtputf8_refused = smtputf8_off && parsed.needs_smtputf8();
                if !(undeliverable(&parsed, test_environment) || smtputf8_refused) {
                    disagreements.insert(name);
                }
            }
        }
    }
    assert_eq!(runnable, 368);
    assert!(compared_forms > 100, "only {compared_forms} forms compared");
    settle("email_validator_py", runnable, &disagreements);
}

fn mailcheck_list(lists: &Value, set: &Value, name: &str) -> Vec<String> {
    match set[name].as_str() {
        Some(which) => serde_json::from_value(lists[which][name].clone()).unwrap(),
        None => Vec::new(),
    }
}

#[test]
fn suggestions_replay_mailcheck_and_email_inquire() {
    let cases = shared("suggestions.json");
    let lists: Value = {
        let full = format!(
            "{}/tests/data/validation/mailcheck_lists.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{full}: {e}"))
    };
    let validator = Validator::default();
    let mut disagreements = BTreeSet::new();
    for case in &cases {
        let input = case["input"].as_str().unwrap();
        let expected = case["expected_suggestion"].as_str();
        let suite = case["suite"].as_str().unwrap();
        let ours = if suite == "mailcheck" {
            let set = &case["lists"];
            let suggester = Suggester::mailcheck(
                mailcheck_list(&lists, set, "domains"),
                mailcheck_list(&lists, set, "secondLevelDomains"),
                mailcheck_list(&lists, set, "topLevelDomains"),
            );
            match case["call"].as_str().unwrap() {
                "findClosestDomain" => {
                    let candidates = match case["kind"].as_str().unwrap() {
                        "domain" => suggester.domains(),
                        "second_level_domain" => suggester.second_level(),
                        _ => suggester.top_level(),
                    };
                    suggester.closest(input, candidates).map(str::to_owned)
                }
                _ => suggester.suggest_address(input),
            }
        } else {
            // Through the validator, as the API answers: no suggestion for a disposable domain.
            validator.offline(input).finish_offline().suggestion
        };
        if ours.as_deref() != expected {
            disagreements.insert(format!("{suite} {input:?} -> {ours:?}"));
        }
    }
    settle("suggestions", cases.len(), &disagreements);
}

#[test]
fn the_compiled_disposable_list_is_the_pinned_shared_copy() {
    let ours = include_str!("../src/validation/disposable_domains.txt");
    let full = format!(
        "{}/tests/data/validation/disposable_domains.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    let shared = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"));
    assert!(
        ours == shared,
        "refresh src/validation/disposable_domains.txt (docs/validation.md: Lists)"
    );
    let policy = mailroom::validation::DisposablePolicy::default();
    for domain in ours.lines() {
        assert!(policy.is_disposable(domain), "{domain}");
    }
    for domain in ["gmail.com", "example.com", "outlook.com"] {
        assert!(!policy.is_disposable(domain), "{domain}");
    }
    assert_eq!(mailroom::validation::lists::disposable_count(), 8335);
}
