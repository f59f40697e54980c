//! Lists, subscribers and subscriptions through the API, against a real Redis (and the
//! cluster in the test command's second pass).

mod common;

use common::app::TestApp;
use serde_json::{Value, json};

async fn new_list(app: &TestApp, name: &str, optin: &str) -> u64 {
    let (status, list) = app
        .call(
            "POST",
            "/v1/lists",
            &json!({"name": name, "optin": optin, "visibility": "public"}),
        )
        .await;
    assert_eq!(status, 201, "{list}");
    list["id"].as_u64().unwrap()
}

#[tokio::test]
async fn lists_are_created_read_changed_and_deleted() {
    let app = TestApp::spawn(|_| {}).await;
    let (status, list) = app
        .call(
            "POST",
            "/v1/lists",
            &json!({"name": " News ", "description": "Weekly", "optin": "double", "visibility": "private", "default_locale": "pt-br"}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(list["name"], "News");
    assert_eq!(list["default_locale"], "pt-BR");
    assert_eq!(
        list["counts"],
        json!({"unconfirmed": 0, "confirmed": 0, "unsubscribed": 0})
    );
    let id = list["id"].as_u64().unwrap();

    let (status, changed) = app
        .call(
            "PATCH",
            &format!("/v1/lists/{id}"),
            &json!({"visibility": "public", "name": "Newsletter"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(changed["visibility"], "public");
    assert_eq!(changed["optin"], "double", "what is absent stays");

    let (status, all) = app.get_json("/v1/lists").await;
    assert_eq!(status, 200);
    assert_eq!(all["lists"].as_array().unwrap().len(), 1);
    assert_eq!(all["lists"][0]["name"], "Newsletter");

    for (body, field) in [
        (
            json!({"name": "", "optin": "single", "visibility": "public"}),
            "name",
        ),
        (
            json!({"name": "x", "optin": "single", "visibility": "public", "default_locale": "not a tag"}),
            "default_locale",
        ),
        (
            json!({"name": "x", "optin": "triple", "visibility": "public"}),
            "optin",
        ),
    ] {
        let (status, error) = app.call("POST", "/v1/lists", &body).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(error["error"]["field"], field, "{error}");
    }
    assert_eq!(app.call("GET", "/v1/lists/999", &Value::Null).await.0, 404);
    assert_eq!(app.call("GET", "/v1/lists/abc", &Value::Null).await.0, 404);

    assert_eq!(
        app.call("DELETE", &format!("/v1/lists/{id}"), &Value::Null)
            .await
            .0,
        204
    );
    assert_eq!(
        app.call("GET", &format!("/v1/lists/{id}"), &Value::Null)
            .await
            .0,
        404
    );
    assert_eq!(
        app.call("DELETE", &format!("/v1/lists/{id}"), &Value::Null)
            .await
            .0,
        404
    );
    app.stop().await;
}

#[tokio::test]
async fn a_subscriber_is_one_per_address_and_subscribes_to_lists_in_one_call() {
    let app = TestApp::spawn(|_| {}).await;
    let single = new_list(&app, "Product news", "single").await;
    let double = new_list(&app, "Digest", "double").await;

    let (status, created) = app
        .call(
            "POST",
            "/v1/subscribers",
            &json!({"email": "Ada@Example.COM", "name": "Ada", "locale": "fr-ca",
                    "attributes": {"plan": "pro", "seats": 3}, "lists": [single, double]}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["email"], "Ada@example.com",
        "domain lower-cased, local part kept"
    );
    assert_eq!(created["locale"], "fr-CA");
    assert_eq!(created["attributes"], json!({"plan": "pro", "seats": 3}));
    assert_eq!(created["status"], "enabled");
    let id = created["id"].as_u64().unwrap();
    let subs = created["subscriptions"].as_array().unwrap();
    let state_of = |subs: &[Value], list: u64| {
        subs.iter()
            .find(|s| s["list"] == list)
            .map(|s| s["status"].as_str().unwrap().to_owned())
    };
    assert_eq!(state_of(subs, single).as_deref(), Some("confirmed"));
    assert_eq!(
        state_of(subs, double).as_deref(),
        Some("unconfirmed"),
        "double opt-in waits"
    );
    assert!(subs.iter().all(|s| s["source"] == "api"));

    // The same address in another case is the same subscriber: an update.
    let (status, updated) = app
        .call(
            "POST",
            "/v1/subscribers",
            &json!({"email": "ada@example.com", "name": "Ada L."}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(updated["id"], id);
    assert_eq!(updated["name"], "Ada L.");
    assert_eq!(updated["attributes"]["plan"], "pro", "absent fields stay");

    // Found by id and by address.
    let (status, by_id) = app.get_json(&format!("/v1/subscribers/{id}")).await;
    assert_eq!(status, 200);
    let (_, by_email) = app.get_json("/v1/subscribers/ADA@example.com").await;
    assert_eq!(by_id, by_email);

    let (status, list) = app.get_json(&format!("/v1/lists/{single}")).await;
    assert_eq!(status, 200);
    assert_eq!(list["counts"]["confirmed"], 1);

    // PATCH changes fields; blocklisting keeps subscriptions but marks the person.
    let (status, patched) = app
        .call(
            "PATCH",
            &format!("/v1/subscribers/{id}"),
            &json!({"status": "blocklisted", "attributes": {"plan": "free"}}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(patched["status"], "blocklisted");
    assert_eq!(
        patched["attributes"],
        json!({"plan": "free"}),
        "attributes are replaced"
    );

    // Unsubscribing is kept, with its history; the API cannot silently subscribe them again.
    let (status, after) = app
        .call(
            "PUT",
            &format!("/v1/subscribers/{id}/lists/{single}"),
            &json!({"status": "unsubscribed"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        state_of(after["subscriptions"].as_array().unwrap(), single).as_deref(),
        Some("unsubscribed")
    );
    let (status, again) = app
        .call(
            "POST",
            "/v1/subscribers",
            &json!({"email": "ada@example.com", "lists": [single]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        state_of(again["subscriptions"].as_array().unwrap(), single).as_deref(),
        Some("unsubscribed")
    );
    assert_eq!(again["notices"][0]["code"], "unsubscribed");
    let (_, list) = app.get_json(&format!("/v1/lists/{single}")).await;
    assert_eq!(
        list["counts"],
        json!({"unconfirmed": 0, "confirmed": 0, "unsubscribed": 1})
    );

    // Bad input names its field.
    for (body, field) in [
        (json!({"email": "not an address"}), "email"),
        (json!({"email": "b@example.com", "locale": "??"}), "locale"),
        (json!({"email": "b@example.com", "name": "a\u{7}b"}), "name"),
        (
            json!({"email": "b@example.com", "attributes": {"x": "y".repeat(5000)}}),
            "attributes",
        ),
        (
            json!({"email": "b@example.com", "attributes": [1]}),
            "attributes",
        ),
    ] {
        let (status, error) = app.call("POST", "/v1/subscribers", &body).await;
        assert_eq!(status, 422, "{body}: {error}");
        assert_eq!(error["error"]["field"], field, "{error}");
    }
    // A list that does not exist is not found, and the field says which.
    let unknown = json!({"email": "b@example.com", "lists": [9999]});
    let (status, error) = app.call("POST", "/v1/subscribers", &unknown).await;
    assert_eq!(
        (status, &error["error"]["field"]),
        (404, &json!("lists[0]"))
    );
    assert_eq!(
        app.get_json("/v1/subscribers/b@example.com").await.0,
        404,
        "nothing stored"
    );

    // Deleting the subscriber removes their subscriptions from the counts.
    assert_eq!(
        app.call("DELETE", &format!("/v1/subscribers/{id}"), &Value::Null)
            .await
            .0,
        204
    );
    assert_eq!(app.get_json(&format!("/v1/subscribers/{id}")).await.0, 404);
    let (_, list) = app.get_json(&format!("/v1/lists/{single}")).await;
    assert_eq!(
        list["counts"],
        json!({"unconfirmed": 0, "confirmed": 0, "unsubscribed": 0})
    );
    app.stop().await;
}

#[tokio::test]
async fn a_suppressed_address_is_not_subscribed_and_the_answer_says_so() {
    let app = TestApp::spawn(|_| {}).await;
    let list = new_list(&app, "News", "single").await;
    let (status, _) = app
        .call(
            "PUT",
            "/v1/suppressions/bounced@example.com",
            &json!({"reason": "bounce"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, answer) = app
        .call(
            "POST",
            "/v1/subscribers",
            &json!({"email": "Bounced@example.com", "lists": [list], "subscription_status": "confirmed"}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(answer["subscriptions"], json!([]));
    assert_eq!(answer["notices"][0]["code"], "suppressed");
    assert!(
        answer["notices"][0]["message"]
            .as_str()
            .unwrap()
            .contains("bounce")
    );
    let (_, list) = app.get_json(&format!("/v1/lists/{list}")).await;
    assert_eq!(list["counts"]["confirmed"], 0);
    app.stop().await;
}

#[tokio::test]
async fn a_list_pages_through_its_members_once_each() {
    let app = TestApp::spawn(|_| {}).await;
    let list = new_list(&app, "Big", "single").await;
    for i in 0..57 {
        let (status, _) = app
            .call(
                "POST",
                "/v1/subscribers",
                &json!({"email": format!("p{i}@example.com"), "lists": [list]}),
            )
            .await;
        assert_eq!(status, 201);
    }
    let unsubscribed = app.get_json("/v1/subscribers/p3@example.com").await.1["id"]
        .as_u64()
        .unwrap();
    app.call(
        "PUT",
        &format!("/v1/subscribers/{unsubscribed}/lists/{list}"),
        &json!({"status": "unsubscribed"}),
    )
    .await;

    let mut seen = std::collections::BTreeSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("/v1/lists/{list}/subscribers?limit=10&status=confirmed");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = app.get_json(&path).await;
        assert_eq!(status, 200, "{page}");
        let members = page["subscribers"].as_array().unwrap();
        assert!(members.len() <= 10);
        for m in members {
            assert_eq!(m["status"], "confirmed");
            assert!(
                seen.insert(m["subscriber"].as_u64().unwrap()),
                "each member once"
            );
        }
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 56);
    assert!(!seen.contains(&unsubscribed));
    assert!(pages >= 6);
    for bad in ["limit=0", "cursor=zz", "status=gone"] {
        let (status, _) = app
            .get_json(&format!("/v1/lists/{list}/subscribers?{bad}"))
            .await;
        assert_eq!(status, 400, "{bad}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_segment_counts_the_members_its_filter_matches() {
    let app = TestApp::spawn(|_| {}).await;
    let list = new_list(&app, "Segmented", "single").await;
    let plans = ["free", "pro", "team"];
    for i in 0..30 {
        let (status, _) = app
            .call(
                "POST",
                "/v1/subscribers",
                &json!({"email": format!("s{i}@example{}.com", i % 2), "locale": if i < 10 { "fr" } else { "en" },
                        "attributes": {"plan": plans[i % 3], "seats": i}, "lists": [list]}),
            )
            .await;
        assert_eq!(status, 201);
    }
    let s0 = app.get_json("/v1/subscribers/s0@example0.com").await.1["id"]
        .as_u64()
        .unwrap();
    app.call(
        "PUT",
        &format!("/v1/subscribers/{s0}/lists/{list}"),
        &json!({"status": "unsubscribed"}),
    )
    .await;
    let count = |body: Value| {
        let app = &app;
        async move {
            let (status, answer) = app
                .call("POST", &format!("/v1/lists/{list}/count"), &body)
                .await;
            (status, answer)
        }
    };
    let (status, all) = count(json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(
        all,
        json!({"matched": 30, "scanned": 0}),
        "the counts answer"
    );
    let everyone = json!({"filter": {"field": "status", "op": "eq", "value": "enabled"}});
    assert_eq!(
        count(everyone).await.1,
        json!({"matched": 30, "scanned": 30})
    );
    assert_eq!(count(json!({"status": "confirmed"})).await.1["matched"], 29);
    // pro: i = 1, 4, …, 28 (10 of them); seats ≥ 10 leaves 10, 13, 16, 19, 22, 25, 28.
    let pro_big = json!({"and": [
        {"field": "attributes.plan", "op": "eq", "value": "pro"},
        {"field": "attributes.seats", "op": "gte", "value": 10}
    ]});
    assert_eq!(count(json!({"filter": pro_big})).await.1["matched"], 7);
    let french_or_odd_domain = json!({"or": [
        {"field": "locale", "op": "eq", "value": "fr"},
        {"field": "domain", "op": "eq", "value": "example1.com"}
    ]});
    // fr: 0..10 (10); example1.com: odd i (15), of which 5 are under 10.
    assert_eq!(
        count(json!({"filter": french_or_odd_domain, "status": "confirmed"}))
            .await
            .1["matched"],
        19
    );
    let (status, error) =
        count(json!({"filter": {"and": [{"field": "plan", "op": "eq", "value": 1}]}})).await;
    assert_eq!(status, 422);
    assert_eq!(error["error"]["field"], "filter.and[0].field");
    assert_eq!(count(json!({"filter": "pro"})).await.0, 422);
    assert_eq!(
        app.call("POST", "/v1/lists/999/count", &json!({})).await.0,
        404
    );
    app.stop().await;
}

/// The subscriptions each stored record carries (its last field), by record.
async fn record_memberships(app: &TestApp) -> Vec<String> {
    use redis::AsyncCommands;
    let mut out = Vec::new();
    for key in app.redis.all_keys().await {
        if key.contains("}:r:") {
            let records: Vec<String> = app.redis.conn().hvals(&key).await.unwrap();
            out.extend(
                records
                    .iter()
                    .map(|r| r.rsplit('\u{1f}').next().unwrap().to_owned()),
            );
        }
    }
    out
}

#[tokio::test]
async fn a_segment_counts_alike_in_shards_read_whole_and_through_their_members() {
    let app = TestApp::spawn(|_| {}).await;
    // `big` holds most subscribers of every shard (its shards are read bucket by bucket);
    // `small` a few (read through its members).
    let big = new_list(&app, "Big", "single").await;
    let small = new_list(&app, "Small", "single").await;
    for i in 0..300 {
        let mut lists = vec![big];
        if i % 20 == 0 {
            lists.push(small);
        }
        let (status, _) = app
            .call(
                "POST",
                "/v1/subscribers",
                &json!({"email": format!("m{i}@example.com"), "attributes": {"n": i}, "lists": lists}),
            )
            .await;
        assert_eq!(status, 201);
    }
    for i in 0..4 {
        let (status, _) = app
            .call(
                "POST",
                "/v1/subscribers",
                &json!({"email": format!("only{i}@example.com"), "attributes": {"n": 1000 + i}, "lists": [small]}),
            )
            .await;
        assert_eq!(status, 201);
    }
    // One member of both leaves `small` only.
    let m40 = app.get_json("/v1/subscribers/m40@example.com").await.1["id"]
        .as_u64()
        .unwrap();
    app.call(
        "PUT",
        &format!("/v1/subscribers/{m40}/lists/{small}"),
        &json!({"status": "unsubscribed"}),
    )
    .await;
    let count = |list: u64, body: Value| {
        let app = &app;
        async move {
            let (status, answer) = app
                .call("POST", &format!("/v1/lists/{list}/count"), &body)
                .await;
            assert_eq!(status, 200, "{answer}");
            (
                answer["matched"].as_u64().unwrap(),
                answer["scanned"].as_u64().unwrap(),
            )
        }
    };
    let under_100 = json!({"field": "attributes.n", "op": "lt", "value": 100});
    // small: m0, m20, …, m280 (15) and only0…3; m40 unsubscribed. n < 100: m0, m20, m60, m80.
    assert_eq!(
        count(small, json!({"filter": under_100, "status": "confirmed"})).await,
        (4, 19)
    );
    assert_eq!(count(small, json!({"filter": under_100})).await, (5, 19));
    assert_eq!(
        count(big, json!({"filter": under_100, "status": "confirmed"})).await,
        (100, 300)
    );
    assert_eq!(
        count(big, json!({"filter": {"not": under_100}})).await,
        (200, 300)
    );

    // Deleting `big` takes it out of every record; `small` counts as before.
    assert_eq!(
        app.call("DELETE", &format!("/v1/lists/{big}"), &Value::Null)
            .await
            .0,
        204
    );
    let memberships = record_memberships(&app).await;
    assert_eq!(memberships.len(), 304);
    let big_code = big.to_string();
    for m in &memberships {
        assert!(
            m.split(',')
                .all(|e| e.is_empty() || e[..e.len() - 1] != big_code),
            "{m}"
        );
    }
    assert_eq!(
        memberships.iter().filter(|m| !m.is_empty()).count(),
        19,
        "the members of `small` keep theirs"
    );
    assert_eq!(count(small, json!({"filter": under_100})).await, (5, 19));
    app.stop().await;
}
