//! CSV imports through `POST /v1/imports` and `mailroom import subscribers`, against a real
//! Redis: every kind of bad row reported with its line, good rows in, repeats counted once,
//! suppressed and unsubscribed people not subscribed, a second run changing nothing.

mod common;

use std::time::Duration;

use common::{
    app::{API_KEY, TestApp},
    eventually,
};
use serde_json::{Value, json};

async fn new_list(app: &TestApp) -> u64 {
    let (status, list) = app
        .call(
            "POST",
            "/v1/lists",
            &json!({"name": "Imported", "optin": "double", "visibility": "private"}),
        )
        .await;
    assert_eq!(status, 201);
    list["id"].as_u64().unwrap()
}

async fn post_csv(app: &TestApp, query: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let response = app
        .client
        .post(app.url(&format!("/v1/imports?{query}")))
        .bearer_auth(API_KEY)
        .header("content-type", "text/csv")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn finished(app: &TestApp, id: &str) -> Value {
    eventually(Duration::from_secs(30), "the import to finish", || async {
        let (status, body) = app
            .get_json(&format!("/v1/imports/{id}?errors_limit=1000"))
            .await;
        (status == 200 && body["state"] != "running").then_some(body)
    })
    .await
}

const FILE: &str = "\u{feff}email;name;locale;plan\r\n\
ada@example.com;\"Lovelace; Ada\";fr;pro\r\n\
not-an-address;X;;free\r\n\
bob@example.com;Bob;??;free\r\n\
\"carol@example.com\";Carol;;\r\n\
ADA@example.com;Ada again;;pro\r\n\
bounced@example.com;B;;\r\n\
left@example.com;L;;\r\n\
short@example.com\r\n\
dan@example.com;Dan;de;team\r\n";

#[tokio::test]
async fn an_import_takes_the_good_rows_and_reports_each_bad_one_by_line() {
    let app = TestApp::spawn(|_| {}).await;
    let list = new_list(&app).await;
    app.call(
        "PUT",
        "/v1/suppressions/bounced@example.com",
        &json!({"reason": "bounce"}),
    )
    .await;
    let (status, left) = app
        .call(
            "POST",
            "/v1/subscribers",
            &json!({"email": "left@example.com", "lists": [list]}),
        )
        .await;
    assert_eq!(status, 201);
    let left_id = left["id"].as_u64().unwrap();
    app.call(
        "PUT",
        &format!("/v1/subscribers/{left_id}/lists/{list}"),
        &json!({"status": "unsubscribed"}),
    )
    .await;

    let (status, accepted) = post_csv(&app, &format!("list={list}&status=confirmed"), FILE).await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["id"].as_str().unwrap().to_owned();
    let done = finished(&app, &id).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["rows"], 9);
    assert_eq!(done["imported"], 3, "ada, carol, dan");
    assert_eq!(done["invalid"], 3, "{done}");
    assert_eq!(
        done["skipped"], 3,
        "the repeat of ada, the suppressed and the unsubscribed"
    );
    let reports: Vec<(u64, String)> = done["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap(),
                e["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let lines: Vec<u64> = reports.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, vec![3, 4, 7, 8, 9], "{reports:?}");
    assert!(reports[0].1.starts_with("invalid address"));
    assert!(reports[1].1.starts_with("bad locale"));
    assert!(reports[2].1.contains("suppressed (bounce)"));
    assert!(reports[3].1.contains("unsubscribed"));
    assert!(reports[4].1.starts_with("malformed line"));

    let (_, ada) = app.get_json("/v1/subscribers/ada@example.com").await;
    assert_eq!(ada["name"], "Lovelace; Ada");
    assert_eq!(ada["locale"], "fr");
    assert_eq!(ada["attributes"], json!({"plan": "pro"}));
    assert_eq!(ada["subscriptions"][0]["status"], "confirmed");
    assert_eq!(ada["subscriptions"][0]["source"], "import");
    let (_, counts) = app.get_json(&format!("/v1/lists/{list}")).await;
    assert_eq!(
        counts["counts"],
        json!({"unconfirmed": 0, "confirmed": 3, "unsubscribed": 1})
    );

    // The reported rows download as CSV.
    let response = app
        .client
        .get(app.url(&format!("/v1/imports/{id}/errors")))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let text = response.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let downloaded: Vec<u64> = reader
        .records()
        .map(|r| r.unwrap()[0].parse().unwrap())
        .collect();
    assert_eq!(downloaded, lines);

    // Running it again changes nothing.
    let (_, again) = post_csv(&app, &format!("list={list}&status=confirmed"), FILE).await;
    let again = finished(&app, again["id"].as_str().unwrap()).await;
    assert_eq!(again["imported"], 0);
    assert_eq!(again["updated"], 0);
    assert_eq!(again["skipped"], 6);
    let (_, after) = app.get_json(&format!("/v1/lists/{list}")).await;
    assert_eq!(after["counts"], counts["counts"]);

    // With update, changed fields are written.
    let (_, updated) = post_csv(
        &app,
        &format!("list={list}&update=true"),
        "email,name\nada@example.com,Countess\ncarol@example.com,Carol\n",
    )
    .await;
    let updated = finished(&app, updated["id"].as_str().unwrap()).await;
    assert_eq!(updated["updated"], 1, "{updated}");
    assert_eq!(updated["skipped"], 1);
    assert_eq!(
        app.get_json("/v1/subscribers/ada@example.com").await.1["name"],
        "Countess"
    );
    app.stop().await;
}

#[tokio::test]
async fn imports_refuse_what_they_cannot_read_with_a_clear_error() {
    let app = TestApp::spawn(|s| s.import_max_bytes = 2048).await;
    let list = new_list(&app).await;
    let (status, error) = post_csv(&app, &format!("list={list}"), "name\nx\n").await;
    assert_eq!(status, 422);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no email column")
    );
    let (status, error) = post_csv(&app, "list=9999", "email\na@example.com\n").await;
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (404, Some("list"))
    );
    let (status, _) = post_csv(&app, &format!("list={list}&delimiter=x"), "email\n").await;
    assert_eq!(status, 400);
    let (status, _) = post_csv(&app, &format!("list={list}&status=unsubscribed"), "email\n").await;
    assert_eq!(status, 400);
    let big = format!("email\n{}", "someone@example.com\n".repeat(500));
    let (status, error) = post_csv(&app, &format!("list={list}"), big).await;
    assert_eq!(status, 413, "{error}");
    let response = app
        .client
        .post(app.url(&format!("/v1/imports?list={list}")))
        .bearer_auth(API_KEY)
        .json(&json!({"email": "a@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);
    assert_eq!(app.get_json("/v1/imports/not-an-id").await.0, 404);
    app.stop().await;
}

#[tokio::test]
async fn the_import_command_reads_a_file_into_a_list() {
    let app = TestApp::spawn(|_| {}).await;
    let list = new_list(&app).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("people.csv");
    let mut csv = String::from("email\tname\tattributes\n");
    for i in 0..2500 {
        csv.push_str(&format!("p{i}@example.com\tP {i}\t{{\"n\": {i}}}\n"));
    }
    csv.push_str("broken\tB\t\n");
    std::fs::write(&file, csv).unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .args(["import", "subscribers"])
        .arg(&file)
        .args(["--list", &list.to_string()])
        .env("REDIS_URL", common::redis_url())
        .env("MAILROOM_REDIS_PREFIX", &app.redis.prefix)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("2501 rows"), "{stdout}");
    assert!(stdout.contains("2500 imported"), "{stdout}");
    assert!(stdout.contains("line 2502: invalid address"), "{stdout}");
    let (_, counts) = app.get_json(&format!("/v1/lists/{list}")).await;
    assert_eq!(
        counts["counts"]["unconfirmed"], 2500,
        "unconfirmed unless said otherwise"
    );
    let (_, p7) = app.get_json("/v1/subscribers/p7@example.com").await;
    assert_eq!(p7["attributes"], json!({"n": 7}));

    let missing = tokio::process::Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .args(["import", "subscribers"])
        .arg(&file)
        .args(["--list", "424242"])
        .env("REDIS_URL", common::redis_url())
        .env("MAILROOM_REDIS_PREFIX", &app.redis.prefix)
        .output()
        .await
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no list 424242"));
    app.stop().await;
}

#[tokio::test]
async fn a_batch_recorded_again_after_a_lost_answer_counts_once() {
    use mailroom::domain::ListId;
    use mailroom::lists::SubscriptionStatus;
    use mailroom::lists::imports::{ImportStore, RowReport, Totals};
    let app = TestApp::spawn(|_| {}).await;
    let store = ImportStore::new(app.redis.conn(), &app.redis.prefix);
    let id = uuid::Uuid::now_v7();
    store
        .start(id, ListId::new(1).unwrap(), SubscriptionStatus::Confirmed)
        .await
        .unwrap();
    let totals = Totals {
        rows: 10,
        imported: 8,
        updated: 0,
        skipped: 1,
        invalid: 1,
    };
    let reports = [RowReport {
        line: 4,
        reason: "not an address".to_owned(),
    }];
    // Batch 1, then batch 1 again (its first answer lost), then batch 2.
    for batch in [1, 1, 2] {
        store.record(id, batch, &totals, &reports).await.unwrap();
    }
    let status = store.get(id, 0, 10).await.unwrap().unwrap();
    assert_eq!(
        status.totals,
        Totals {
            rows: 20,
            imported: 16,
            updated: 0,
            skipped: 2,
            invalid: 2,
        }
    );
    assert_eq!(status.error_count, 2);
    assert_eq!(status.errors.len(), 2);
    assert!(status.errors.iter().all(|r| r.line == 4));
    app.stop().await;
}
