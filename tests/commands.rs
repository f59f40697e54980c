//! `mailroom dev` and `mailroom enqueue` as a newcomer runs them.

mod common;

use std::{process::Stdio, time::Duration};

use common::{
    TestRedis,
    app::{eml_files, strict_mime},
    eventually, free_port, sigterm,
};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
};

/// Runs `mailroom dev`, sends one email through it and stops it: its first log line, every
/// line, and the email's id.
async fn dev_round_trip(redis_url: &str, redis: &TestRedis) -> (String, Vec<String>, String) {
    let outbox = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .arg("dev")
        .env("REDIS_URL", redis_url)
        .env("MAILROOM_REDIS_PREFIX", &redis.prefix)
        .env("MAILROOM_LISTEN", format!("127.0.0.1:{port}"))
        .env("MAILROOM_OUTBOX_DIR", outbox.path())
        .env("MAILROOM_LOG_FORMAT", "json")
        .env_remove("MAILROOM_API_KEYS")
        .env_remove("MAILROOM_PROVIDER")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    let log = tokio::spawn(async move {
        let mut rest = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            rest.push(line);
        }
        rest
    });

    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/v1/emails");
    let response = eventually(Duration::from_secs(30), "the dev API to answer", || async {
        client
            .post(&url)
            .json(&json!({"to": [{"email": "new@example.com"}], "subject": "First run", "text": "It works"}))
            .send()
            .await
            .ok()
    })
    .await;
    assert_eq!(response.status().as_u16(), 202, "no API key needed in dev");
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let file = eventually(Duration::from_secs(30), "the outbox file", || async {
        eml_files(outbox.path()).into_iter().next()
    })
    .await;
    assert!(file.ends_with(format!("{id}.eml")));
    assert_eq!(strict_mime(&file).await["subject"], "First run");

    // A verification, confirmed through its link: dev says so too.
    let base = format!("http://127.0.0.1:{port}");
    let asked = client
        .post(format!("{base}/v1/verifications"))
        .json(&json!({"email": "new@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status().as_u16(), 202);
    let second = eventually(
        Duration::from_secs(30),
        "the verification email",
        || async { eml_files(outbox.path()).into_iter().find(|f| *f != file) },
    )
    .await;
    let summary = strict_mime(&second).await;
    let text = summary["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|p| p["text"].as_str().filter(|t| t.contains("token=")))
        .unwrap()
        .to_owned();
    // No MAILROOM_PUBLIC_URL: the link goes to the port dev listens on.
    assert!(
        text.contains(&format!("http://127.0.0.1:{port}/verify?token=")),
        "{text}"
    );
    let token: String = text[text.find("token=").unwrap() + 6..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    let confirmed = client
        .post(format!("{base}/verify"))
        .header("accept", "application/json")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(confirmed.status().as_u16(), 200);

    sigterm(child.id().unwrap());
    let status = tokio::time::timeout(Duration::from_secs(40), child.wait())
        .await
        .unwrap()
        .unwrap();
    let mut log = log.await.unwrap();
    log.insert(0, first.clone());
    assert!(status.success(), "{status}: {log:#?}");
    (first, log, id)
}

#[tokio::test]
async fn dev_runs_api_and_workers_without_keys_and_says_so_first() {
    let redis = TestRedis::new().await;
    let (first, log, id) = dev_round_trip(common::redis_url(), &redis).await;
    assert!(
        first.contains("WITHOUT an API key"),
        "first log line: {first}"
    );
    // Then where to look, and a line for the email it handed over: id, recipient, provider,
    // and the outbox file.
    assert!(
        log[..4]
            .iter()
            .any(|l| l.contains("/docs") && l.contains("/console")),
        "{log:#?}"
    );
    assert!(
        log.iter().any(|l| l
            .contains(&format!("email {id} to new@example.com handed to outbox: "))
            && l.contains(&format!("{id}.eml"))),
        "{log:#?}"
    );
}

#[tokio::test]
async fn dev_starts_its_own_redis_when_none_answers() {
    if which("redis-server").is_none() {
        panic!("redis-server must be installed for this test (.ci/run installs it)");
    }
    let redis = TestRedis::new().await;
    let (_, log, _) = dev_round_trip("redis://127.0.0.1:1", &redis).await;
    assert!(
        log.iter()
            .any(|l| l.contains("started a redis-server child")),
        "{log:#?}"
    );
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    })
}

#[tokio::test]
async fn enqueue_pushes_through_the_producer_and_prints_the_id() {
    let redis = TestRedis::new().await;
    let output = Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .args([
            "enqueue",
            "--to",
            "ops@example.com",
            "--subject",
            "Disk space",
            "--text",
            "Low on /var",
        ])
        .env("MAILROOM_REDIS_PREFIX", &redis.prefix)
        .env("REDIS_URL", common::redis_url())
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let id = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 7);
    let payload = redis.job_field("email", &id, "payload").await.unwrap();
    let job: mailroom_jobs::SendEmail = serde_json::from_str(&payload).unwrap();
    assert_eq!(job.message.subject.as_deref(), Some("Disk space"));
    assert_eq!(job.message.to[0].email, "ops@example.com");

    let refused = Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .args([
            "enqueue",
            "--to",
            "not-an-address",
            "--subject",
            "x",
            "--text",
            "y",
        ])
        .env("MAILROOM_REDIS_PREFIX", &redis.prefix)
        .env("REDIS_URL", common::redis_url())
        .output()
        .await
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("to[0].email"));
}

#[tokio::test]
async fn render_prints_json_or_writes_the_html_to_a_file() {
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("welcome.html");
    let output = Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .args(["render", "welcome", "--locale", "ar", "--out"])
        .arg(&file)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(
        printed.starts_with("Subject: مرحبًا بك في mailroom يا ليلى!"),
        "{printed}"
    );
    let html = std::fs::read_to_string(&file).unwrap();
    assert!(html.contains("<html lang=\"ar\" dir=\"rtl\">"));

    let output = Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .args(["render", "notification", "--locale", "es", "--data"])
        .arg(json!({"title": "Hola", "body": "Texto"}).to_string())
        .output()
        .await
        .unwrap();
    let rendered: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(rendered["subject"], "Hola");
    assert_eq!(rendered["locale"], "es");

    let refused = Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .args(["render", "welcome", "--data", "{\"name\": 5}"])
        .output()
        .await
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("template.data"));
}

/// `mailroom queue stats` with `env`: its exit code and what it wrote to stderr.
async fn queue_stats_with(redis: &TestRedis, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .args(["queue", "stats"])
        .env("REDIS_URL", common::redis_url())
        .env("MAILROOM_REDIS_PREFIX", &redis.prefix)
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_misspelt_value_or_variable_is_named_as_the_user_typed_it() {
    let redis = TestRedis::new().await;
    let (code, stderr) = queue_stats_with(&redis, &[("MAILROOM_PROVIDER", "sendgird")]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "MAILROOM_PROVIDER: `sendgird` is not a provider: use one of sendgrid, postmark, mailgun, ses, smtp, outbox"
        ),
        "{stderr}"
    );
    let (code, stderr) = queue_stats_with(&redis, &[("MAILROOM_CONCURRENCY", "0")]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("MAILROOM_CONCURRENCY must be between 1 and 10000"),
        "{stderr}"
    );

    // Any case is a provider; a variable that sets nothing is pointed out, with its likely
    // meaning, and the command still runs.
    let (code, stderr) = queue_stats_with(
        &redis,
        &[
            ("MAILROOM_PROVIDER", "Outbox"),
            ("MAILROOM_PROVDER", "smtp"),
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("MAILROOM_PROVDER is not a mailroom setting and is ignored; did you mean MAILROOM_PROVIDER?"),
        "{stderr}"
    );
}
