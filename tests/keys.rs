//! Stored API keys: made, listed, changed, rotated and revoked through `/v1/keys`; each route
//! refused to a key without its scope and open to one with it (table-driven from the rules the
//! API enforces); another key's message not found; sender domains; a revocation reaching a
//! second `mailroom serve` process within a second; a rotated key's grace; and no secret
//! stored in Redis.

mod common;

use std::time::{Duration, Instant};

use common::{
    app::{API_KEY, TestApp, simple_email},
    eventually, free_port,
};
use mailroom::keys::{RULES, Scope};
use redis::AsyncCommands as _;
use serde_json::{Value, json};

/// A route of the rules with its parameters filled.
fn concrete(route: &str) -> String {
    route
        .replace("{email}", "someone@example.com")
        .replace("{id}", "0000000000000000")
        .replace("{list}", "1")
        .replace("{n}", "0")
}

#[tokio::test]
async fn each_route_refuses_a_key_without_its_scope_and_lets_one_with_it_through() {
    let app = TestApp::spawn(|_| {}).await;
    for scope in Scope::ALL {
        // Every other scope (but `emails:read_all`, which includes `emails:read`, when the
        // scope is that one).
        let includes =
            |s: Scope| s == scope || (scope == Scope::EmailsRead && s == Scope::EmailsReadAll);
        let all_but: Vec<Scope> = Scope::ALL.into_iter().filter(|s| !includes(*s)).collect();
        let (_, without) = app.stored_key(&all_but, Value::Null).await;
        let (_, with) = app.stored_key(&[scope], Value::Null).await;
        for (method, route, needed) in RULES.iter().filter(|(_, _, s)| *s == scope) {
            let path = concrete(route);
            let body = if matches!(*method, "GET" | "DELETE") {
                Value::Null
            } else {
                json!({})
            };
            let (status, refused) = app.call_as(&without, method, &path, &body).await;
            assert_eq!(status, 403, "{method} {route} without {needed}: {refused}");
            assert_eq!(refused["error"]["code"], "insufficient_scope");
            let message = refused["error"]["message"].as_str().unwrap();
            assert!(message.ends_with(needed.as_str()), "{message}");
            let (status, answer) = app.call_as(&with, method, &path, &body).await;
            assert!(
                ![401, 403].contains(&status),
                "{method} {route} with {needed}: {status} {answer}"
            );
        }
    }
    // A HEAD needs what the GET of its route needs.
    let (_, lister) = app.stored_key(&[Scope::ListsRead], Value::Null).await;
    let (status, _) = app
        .call_as(&lister, "HEAD", "/v1/lists", &Value::Null)
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .call_as(&lister, "HEAD", "/v1/campaigns", &Value::Null)
        .await;
    assert_eq!(status, 403);
    let (status, _) = app
        .call_as("mr_0000000000000000_nope", "GET", "/v1/lists", &Value::Null)
        .await;
    assert_eq!(status, 401);
    app.stop().await;
}

#[tokio::test]
async fn a_key_reads_its_own_messages_and_another_keys_are_not_found() {
    let mut app = TestApp::spawn(|_| {}).await;
    app.start_worker();
    let (_, sender) = app
        .stored_key(&[Scope::EmailsSend, Scope::EmailsRead], Value::Null)
        .await;
    let (_, other) = app.stored_key(&[Scope::EmailsRead], Value::Null).await;
    let (_, auditor) = app.stored_key(&[Scope::EmailsReadAll], Value::Null).await;
    let (status, queued) = app
        .call_as(&sender, "POST", "/v1/emails", &simple_email())
        .await;
    assert_eq!(status, 202, "{queued}");
    let path = format!("/v1/emails/{}", queued["id"].as_str().unwrap());
    let (status, own) = app.call_as(&sender, "GET", &path, &Value::Null).await;
    assert_eq!((status, own["id"].clone()), (200, queued["id"].clone()));
    let (status, hidden) = app.call_as(&other, "GET", &path, &Value::Null).await;
    assert_eq!(status, 404, "{hidden}");
    for reader in [auditor.as_str(), API_KEY] {
        assert_eq!(app.call_as(reader, "GET", &path, &Value::Null).await.0, 200);
    }
    // A verification records its key as well.
    let (key_id, verifier) = app.stored_key(&[Scope::Verifications], Value::Null).await;
    let body = json!({"email": "new.user@example.com"});
    let (status, issued) = app
        .call_as(&verifier, "POST", "/v1/verifications", &body)
        .await;
    assert_eq!(status, 202, "{issued}");
    let job = mailroom_jobs::QueueKeys::new(&app.redis.prefix, "verification")
        .job(issued["id"].as_str().unwrap());
    let owner: Option<String> = app.redis.conn().hget(&job, "owner").await.unwrap();
    assert_eq!(owner.as_deref(), Some(key_id.as_str()));
    // The operator's own message is not a stored key's either.
    let (_, operator) = app
        .call_as(API_KEY, "POST", "/v1/emails", &simple_email())
        .await;
    let path = format!("/v1/emails/{}", operator["id"].as_str().unwrap());
    assert_eq!(
        app.call_as(&sender, "GET", &path, &Value::Null).await.0,
        404
    );
    app.stop().await;
}

#[tokio::test]
async fn a_key_with_sender_domains_sends_only_from_them() {
    let app = TestApp::spawn(|s| s.from = "Mailroom <noreply@mailroom.test>".to_owned()).await;
    let (_, billing) = app
        .stored_key(
            &[Scope::EmailsSend],
            json!({"from_domains": ["Billing.Example.com"]}),
        )
        .await;
    let mut message = simple_email();
    message["from"] = json!({"email": "invoices@billing.example.com"});
    assert_eq!(
        app.call_as(&billing, "POST", "/v1/emails", &message)
            .await
            .0,
        202
    );
    message["from"] = json!({"email": "ceo@example.com"});
    let (status, refused) = app.call_as(&billing, "POST", "/v1/emails", &message).await;
    assert_eq!(
        (status, refused["error"]["field"].as_str()),
        (422, Some("from")),
        "{refused}"
    );
    // Without a `from`, the default sender's domain is not the key's.
    let (status, refused) = app
        .call_as(&billing, "POST", "/v1/emails", &simple_email())
        .await;
    assert_eq!(status, 422, "{refused}");
    let batch = json!({"messages": [message]});
    let (status, answers) = app
        .call_as(&billing, "POST", "/v1/emails/batch", &batch)
        .await;
    assert_eq!(status, 200, "{answers}");
    assert_eq!(answers["results"][0]["error"]["field"], "from", "{answers}");
    app.stop().await;
}

#[tokio::test]
async fn keys_are_listed_without_secrets_changed_and_none_gives_more_than_it_has() {
    let app = TestApp::spawn(|_| {}).await;
    let (id, secret) = app
        .stored_key(
            &[Scope::Keys, Scope::EmailsSend],
            json!({"rate_per_second": 50}),
        )
        .await;
    let (status, listed) = app.call_as(API_KEY, "GET", "/v1/keys", &Value::Null).await;
    assert_eq!(status, 200);
    assert_eq!(listed["keys"][0]["id"], id.as_str());
    assert_eq!(listed["keys"][0]["scopes"], json!(["emails:send", "keys"]));
    assert!(!listed.to_string().contains(&secret[20..]), "{listed}");
    // The key may make keys, but none with a scope of its own it lacks.
    let escalate = json!({"name": "more", "scopes": ["subscribers:erase"]});
    let (status, refused) = app.call_as(&secret, "POST", "/v1/keys", &escalate).await;
    assert_eq!(
        (status, refused["error"]["field"].as_str()),
        (403, Some("scopes"))
    );
    let (status, changed) = app
        .call_as(
            API_KEY,
            "PATCH",
            &format!("/v1/keys/{id}"),
            &json!({"scopes": ["emails:read"]}),
        )
        .await;
    assert_eq!(
        (status, changed["scopes"].clone()),
        (200, json!(["emails:read"]))
    );
    // The change holds at once in the process that made it.
    assert_eq!(
        app.call_as(&secret, "GET", "/v1/keys", &Value::Null)
            .await
            .0,
        403
    );
    for bad in [
        json!({"name": "x", "scopes": []}),
        json!({"name": "", "scopes": ["keys"]}),
        json!({"name": "x", "scopes": ["root"]}),
        json!({"name": "x", "scopes": ["keys"], "from_domains": ["not a domain"]}),
    ] {
        let (status, body) = app.call_as(API_KEY, "POST", "/v1/keys", &bad).await;
        assert!([400, 422].contains(&status), "{bad}: {status} {body}");
    }
    // The secret is nowhere in Redis.
    let mut conn = app.redis.conn();
    let keys: Vec<String> = conn.keys(format!("{}:*", app.redis.prefix)).await.unwrap();
    for name in keys {
        let dump: Vec<u8> = redis::cmd("DUMP")
            .arg(&name)
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        let secret_part = &secret[20..];
        assert!(
            !String::from_utf8_lossy(&dump).contains(secret_part),
            "{name} holds the secret"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_rotated_key_keeps_its_old_secret_for_the_grace_only() {
    let app = TestApp::spawn(|_| {}).await;
    let (id, old) = app.stored_key(&[Scope::ListsRead], Value::Null).await;
    let rotate = format!("/v1/keys/{id}/rotate");
    let (status, rotated) = app
        .call_as(API_KEY, "POST", &rotate, &json!({"grace_secs": 1}))
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["key"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(rotated["previous_secret_until"].is_string(), "{rotated}");
    for secret in [&old, &new] {
        assert_eq!(
            app.call_as(secret, "GET", "/v1/lists", &Value::Null)
                .await
                .0,
            200
        );
    }
    eventually(
        Duration::from_secs(5),
        "the old secret to stop working",
        || async {
            (app.call_as(&old, "GET", "/v1/lists", &Value::Null).await.0 == 401).then_some(())
        },
    )
    .await;
    assert_eq!(
        app.call_as(&new, "GET", "/v1/lists", &Value::Null).await.0,
        200
    );
    let (status, _) = app
        .call_as(API_KEY, "POST", &rotate, &json!({"grace_secs": 99_999_999}))
        .await;
    assert_eq!(status, 422);
    app.stop().await;
}

#[tokio::test]
async fn a_revoked_key_is_refused_by_a_second_serve_process_within_a_second() {
    let app = TestApp::spawn(|_| {}).await;
    let (id, secret) = app.stored_key(&[Scope::ListsRead], Value::Null).await;
    let (_second, base) = second_serve(&app, None).await;
    let second = format!("{base}/v1/lists");
    let client = reqwest::Client::new();
    let status = |url: String| {
        let client = client.clone();
        let secret = secret.clone();
        async move {
            let answer = client.get(url).bearer_auth(secret).send().await.ok()?;
            Some(answer.status().as_u16())
        }
    };
    eventually(
        Duration::from_secs(20),
        "the second serve to take the key",
        || async { (status(second.clone()).await == Some(200)).then_some(()) },
    )
    .await;
    let (code, _) = app
        .call_as(API_KEY, "DELETE", &format!("/v1/keys/{id}"), &Value::Null)
        .await;
    assert_eq!(code, 204);
    let revoked = Instant::now();
    assert_eq!(
        app.call_as(&secret, "GET", "/v1/lists", &Value::Null)
            .await
            .0,
        401
    );
    loop {
        if status(second.clone()).await == Some(401) {
            break;
        }
        assert!(
            revoked.elapsed() < Duration::from_secs(1),
            "still taken after a second"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.stop().await;
}

/// `mailroom keys …` with the test's Redis and prefix: its exit success and standard output.
async fn cli(app: &TestApp, args: &[&str]) -> (bool, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .arg("keys")
        .args(args)
        .env("REDIS_URL", common::redis_url())
        .env("MAILROOM_REDIS_PREFIX", &app.redis.prefix)
        .env("MAILROOM_API_KEYS", API_KEY)
        .output()
        .await
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    (
        output.status.success(),
        out + &String::from_utf8_lossy(&output.stderr),
    )
}

#[tokio::test]
async fn the_cli_makes_lists_rotates_and_revokes_keys_the_api_takes() {
    let app = TestApp::spawn(|_| {}).await;
    let (ok, out) = cli(
        &app,
        &["create", "--name", "reports", "--scope", "lists:read"],
    )
    .await;
    assert!(ok, "{out}");
    let secret = (out.lines())
        .find_map(|l| l.strip_prefix("key: "))
        .unwrap_or_else(|| panic!("no key in {out}"))
        .to_owned();
    let id = secret[3..19].to_owned();
    assert_eq!(
        app.call_as(&secret, "GET", "/v1/lists", &Value::Null)
            .await
            .0,
        200
    );
    assert_eq!(
        app.call_as(&secret, "GET", "/v1/campaigns", &Value::Null)
            .await
            .0,
        403
    );
    let (ok, listed) = cli(&app, &["list"]).await;
    assert!(
        ok && listed.contains(&id) && listed.contains("lists:read"),
        "{listed}"
    );
    assert!(!listed.contains(&secret[20..]), "the list shows no secret");
    let (ok, out) = cli(&app, &["rotate", &id, "--grace-secs", "0"]).await;
    assert!(ok, "{out}");
    let new = out
        .lines()
        .find_map(|l| l.strip_prefix("key: "))
        .unwrap()
        .to_owned();
    eventually(Duration::from_secs(5), "the old secret refused", || async {
        (app.call_as(&secret, "GET", "/v1/lists", &Value::Null)
            .await
            .0
            == 401)
            .then_some(())
    })
    .await;
    assert_eq!(
        app.call_as(&new, "GET", "/v1/lists", &Value::Null).await.0,
        200
    );
    let (ok, out) = cli(&app, &["revoke", &id]).await;
    assert!(ok, "{out}");
    eventually(Duration::from_secs(5), "the key refused", || async {
        (app.call_as(&new, "GET", "/v1/lists", &Value::Null).await.0 == 401).then_some(())
    })
    .await;
    let (ok, out) = cli(&app, &["create", "--name", "x", "--scope", "root"]).await;
    assert!(!ok && out.contains("not a scope"), "{out}");
    app.stop().await;
}

/// A `mailroom serve` process on `app`'s Redis and prefix, logging at debug level into `log`
/// when given: its base URL (once it answers).
async fn second_serve(
    app: &TestApp,
    log: Option<&tempfile::NamedTempFile>,
) -> (tokio::process::Child, String) {
    let port = free_port();
    let output = || log.map_or_else(std::process::Stdio::null, |f| f.reopen().unwrap().into());
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .arg("serve")
        .env("REDIS_URL", common::redis_url())
        .env("MAILROOM_REDIS_PREFIX", &app.redis.prefix)
        .env("MAILROOM_API_KEYS", API_KEY)
        .env("MAILROOM_LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", if log.is_some() { "debug" } else { "info" })
        .stdout(output())
        .stderr(output())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let health = format!("{base}/healthz");
    eventually(Duration::from_secs(20), "the second serve", || async {
        let answer = reqwest::get(&health).await.ok()?;
        answer.status().is_success().then_some(())
    })
    .await;
    (child, base)
}

/// 16 clients, 8 on each `serve`, sending with `key` until `until` says stop: the statuses.
async fn hammer(
    bases: [&str; 2],
    key: &str,
    until: impl Fn(usize, Instant) -> bool + Sync,
) -> Vec<(u16, reqwest::header::HeaderMap)> {
    let started = Instant::now();
    let client = reqwest::Client::new();
    let clients = (0..16).map(|n| {
        let (client, url, until) = (&client, format!("{}/v1/emails", bases[n % 2]), &until);
        async move {
            let mut answers = Vec::new();
            while !until(answers.len(), started) {
                let answer = client
                    .post(&url)
                    .bearer_auth(key)
                    .json(&simple_email())
                    .send()
                    .await
                    .unwrap();
                answers.push((answer.status().as_u16(), answer.headers().clone()));
            }
            answers
        }
    });
    futures::future::join_all(clients)
        .await
        .into_iter()
        .flatten()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_quota_and_a_rate_hold_across_two_serves_under_sixteen_clients() {
    let app = TestApp::spawn(|_| {}).await;
    let (_child, second) = second_serve(&app, None).await;
    let (_, quota_key) = app
        .stored_key(&[Scope::EmailsSend], json!({"daily_quota": 40}))
        .await;
    let answers = hammer([&app.address, &second], &quota_key, |sent, _| sent >= 10).await;
    let accepted = answers.iter().filter(|(s, _)| *s == 202).count();
    assert_eq!(accepted, 40, "the quota is exact");
    let (status, headers) = answers.iter().find(|(s, _)| *s != 202).unwrap();
    assert_eq!(*status, 429);
    assert!(headers.contains_key("retry-after"));
    assert_eq!(headers["ratelimit-policy"], "\"daily\";q=40;w=86400");
    assert!(
        headers["ratelimit"]
            .to_str()
            .unwrap()
            .starts_with("\"daily\";r=0;t=")
    );

    let (_, rate_key) = app
        .stored_key(&[Scope::EmailsSend], json!({"rate_per_second": 25}))
        .await;
    let window = Duration::from_secs(2);
    let started = Instant::now();
    let answers = hammer([&app.address, &second], &rate_key, |_, at| {
        at.elapsed() >= window
    })
    .await;
    let took = started.elapsed().as_secs_f64();
    let accepted = answers.iter().filter(|(s, _)| *s == 202).count() as f64;
    assert!(answers.iter().all(|(s, _)| [202, 429].contains(s)));
    // A second's worth of burst, then 25 a second.
    let most = 25.0 * (took + 1.0);
    let least = 25.0 * (took - 0.2);
    assert!(
        accepted <= most * 1.1 && accepted >= least * 0.9,
        "{accepted} accepted in {took:.2} s"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_audit_log_names_who_did_what_newest_first_in_pages() {
    let app = TestApp::spawn(|_| {}).await;
    let (id, admin) = app
        .stored_key(&[Scope::Keys, Scope::Suppressions], Value::Null)
        .await;
    let (other, _) = app.stored_key(&[Scope::ListsRead], Value::Null).await;
    let rotate = format!("/v1/keys/{other}/rotate");
    assert_eq!(
        app.call_as(&admin, "POST", &rotate, &Value::Null).await.0,
        200
    );
    let suppression = "/v1/suppressions/leaver@example.com";
    assert_eq!(
        app.call_as(&admin, "PUT", suppression, &json!({})).await.0,
        200
    );
    assert_eq!(
        app.call_as(&admin, "DELETE", suppression, &Value::Null)
            .await
            .0,
        204
    );
    let revoke = format!("/v1/keys/{other}");
    assert_eq!(
        app.call_as(&admin, "DELETE", &revoke, &Value::Null).await.0,
        204
    );

    let (status, page) = app
        .call_as(&admin, "GET", "/v1/audit?limit=3", &Value::Null)
        .await;
    assert_eq!(status, 200, "{page}");
    let entries = |page: &Value| -> Vec<(String, String, String)> {
        (page["entries"].as_array().unwrap().iter())
            .map(|e| {
                let text = |f: &str| e[f].as_str().unwrap().to_owned();
                (text("who"), text("action"), text("target"))
            })
            .collect()
    };
    let me = format!("mr_{id}");
    // An address by its digest: an erasure leaves none behind in the log.
    let leaver = mailroom::store::audit::address("Leaver@example.com");
    assert!(leaver.starts_with("address:") && !leaver.contains("leaver"));
    let first = entries(&page);
    assert_eq!(
        first,
        [
            (me.clone(), "key_revoked".to_owned(), other.clone()),
            (me.clone(), "suppression_lifted".to_owned(), leaver.clone()),
            (me.clone(), "suppression_added".to_owned(), leaver.clone()),
        ]
    );
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = app
        .call_as(
            &admin,
            "GET",
            &format!("/v1/audit?cursor={cursor}"),
            &Value::Null,
        )
        .await;
    let rest = entries(&rest);
    assert_eq!(rest[0], (me, "key_rotated".to_owned(), other.clone()));
    // The operator key made both keys.
    let made: Vec<&(String, String, String)> =
        rest.iter().filter(|e| e.1 == "key_created").collect();
    assert_eq!(made.len(), 2, "{rest:?}");
    assert!(
        made.iter().all(|e| e.0.len() == 16),
        "an operator key is its digest prefix: {made:?}"
    );
    for bad in [
        "/v1/audit?cursor=nope",
        "/v1/audit?limit=0",
        "/v1/audit?cursor=99999999999999999999-0",
    ] {
        assert_eq!(
            app.call_as(&admin, "GET", bad, &Value::Null).await.0,
            400,
            "{bad}"
        );
    }
    let (status, empty) = app
        .call_as(&admin, "GET", "/v1/audit?cursor=0-0", &Value::Null)
        .await;
    assert_eq!(
        (status, empty["entries"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    app.stop().await;
}

#[tokio::test]
async fn a_keys_secret_never_reaches_the_logs_or_the_metrics() {
    let app = TestApp::spawn(|_| {}).await;
    let log = tempfile::NamedTempFile::new().unwrap();
    let (_serve, base) = second_serve(&app, Some(&log)).await;
    let client = reqwest::Client::new();
    let send = |key: String, method: reqwest::Method, path: &str, body: Value| {
        let request = client
            .request(method, format!("{base}{path}"))
            .bearer_auth(key);
        async move {
            request
                .json(&body)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap_or(Value::Null)
        }
    };
    let spec = json!({"name": "logged", "scopes": ["emails:send", "keys"]});
    let made = send(API_KEY.to_owned(), reqwest::Method::POST, "/v1/keys", spec).await;
    let (id, first) = (
        made["id"].as_str().unwrap().to_owned(),
        made["key"].as_str().unwrap().to_owned(),
    );
    send(
        first.clone(),
        reqwest::Method::POST,
        "/v1/emails",
        simple_email(),
    )
    .await;
    let wrong = format!("{}{}", &first[..20], "A".repeat(43));
    send(wrong.clone(), reqwest::Method::GET, "/v1/keys", Value::Null).await;
    let rotated = send(
        first.clone(),
        reqwest::Method::POST,
        &format!("/v1/keys/{id}/rotate"),
        json!({}),
    )
    .await;
    let second = rotated["key"].as_str().unwrap().to_owned();
    send(
        second.clone(),
        reqwest::Method::DELETE,
        &format!("/v1/keys/{id}"),
        Value::Null,
    )
    .await;
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let logged = std::fs::read_to_string(log.path()).unwrap();
    assert!(logged.contains(&id), "the log names the key by its id");
    for secret in [&first, &second, &wrong] {
        let part = &secret[20..];
        assert!(!logged.contains(part), "a secret in the log");
        assert!(!metrics.contains(part), "a secret in the metrics");
    }
    assert!(!logged.contains(API_KEY) && !metrics.contains(API_KEY));
    app.stop().await;
}
