//! Routes and failover through real `mailroom work` processes: a SendGrid stand-in that can be
//! stopped (its port then refuses connections), started again on the same port, or made to
//! answer 401 or 429; the real SMTP server (aiosmtpd) and a Postmark stand-in as the next
//! providers. Every message is counted where it arrived: each must arrive exactly once.

mod common;

use std::{
    collections::BTreeMap,
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU8, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use common::{TestRedis, app::SmtpSink, eventually};
use mailroom_jobs::{EmailMessage, Job, Mailbox, SendEmail};
use redis::AsyncCommands;
use serde_json::Value;
use tokio::process::{Child, Command};

const KEY: &str = "SG.failover-test-key";

/// How the SendGrid stand-in answers.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    Accept = 0,
    Unauthorized = 1,
    Throttled = 2,
}

/// What the stand-in took: each message's mailroom id (single mail) or address (campaigns),
/// and when the last request came.
#[derive(Default)]
struct Taken {
    ids: Vec<String>,
    addresses: Vec<String>,
    requests: u64,
    refused: u64,
    last_request: Option<Instant>,
}

#[derive(Clone)]
struct Shared {
    mode: Arc<AtomicU8>,
    taken: Arc<Mutex<Taken>>,
}

/// A SendGrid stand-in on a port of its own, which can be stopped and started again there.
struct SendGrid {
    port: u16,
    shared: Shared,
    running: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
}

async fn mail_send(State(shared): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let authorized = headers
        .get("authorization")
        .is_some_and(|v| v.as_bytes() == format!("Bearer {KEY}").as_bytes());
    let mode = shared.mode.load(Ordering::SeqCst);
    let mut taken = shared.taken.lock().unwrap();
    taken.requests += 1;
    taken.last_request = Some(Instant::now());
    if !authorized || mode == Mode::Unauthorized as u8 {
        taken.refused += 1;
        let body = r#"{"errors":[{"message":"The provided authorization grant is invalid, expired, or revoked","field":null,"help":null}]}"#;
        return (StatusCode::UNAUTHORIZED, body).into_response();
    }
    if mode == Mode::Throttled as u8 {
        taken.refused += 1;
        let body = r#"{"errors":[{"message":"Too many requests","field":null,"help":null}]}"#;
        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], body).into_response();
    }
    let mail: Value = serde_json::from_str(&body).expect("Mail Send JSON");
    if let Some(id) = mail["custom_args"]["mailroom_id"].as_str() {
        taken.ids.push(id.to_owned());
    } else {
        for person in mail["personalizations"]
            .as_array()
            .expect("personalizations")
        {
            taken
                .addresses
                .push(person["to"][0]["email"].as_str().unwrap().to_owned());
        }
    }
    let id = format!("sg-{}", taken.requests);
    (StatusCode::ACCEPTED, [("x-message-id", id)]).into_response()
}

impl SendGrid {
    async fn start() -> Self {
        let mut standin = Self {
            port: common::free_port(),
            shared: Shared {
                mode: Arc::new(AtomicU8::new(Mode::Accept as u8)),
                taken: Arc::default(),
            },
            running: None,
        };
        standin.resume().await;
        standin
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn answer(&self, mode: Mode) {
        self.shared.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// Serves again on its port.
    async fn resume(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("the stand-in's port is free again");
        let app = Router::new()
            .route("/v3/mail/send", post(mail_send))
            .with_state(self.shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        self.running = Some((stop, task));
    }

    /// Stops serving: requests in flight are answered, then the port refuses connections.
    async fn halt(&mut self) {
        let (stop, task) = self.running.take().expect("running");
        stop.send(()).unwrap();
        task.await.unwrap();
    }

    fn ids(&self) -> Vec<String> {
        self.shared.taken.lock().unwrap().ids.clone()
    }

    fn taken(&self) -> usize {
        let taken = self.shared.taken.lock().unwrap();
        taken.ids.len() + taken.addresses.len()
    }
}

/// A `mailroom work` process on `redis`'s prefix, with `env`.
fn worker(redis: &TestRedis, env: &[(&str, String)]) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mailroom"));
    command
        .args(["work", "--concurrency", "16"])
        .env("REDIS_URL", common::redis_url())
        .env("MAILROOM_REDIS_PREFIX", &redis.prefix)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    command.spawn().expect("start mailroom work")
}

/// The settings of a route from SendGrid to the SMTP server.
fn sendgrid_then_smtp(sendgrid: &SendGrid, smtp: &SmtpSink) -> Vec<(&'static str, String)> {
    vec![
        ("MAILROOM_PROVIDER", "sendgrid".to_owned()),
        ("MAILROOM_ROUTES", "transactional=sendgrid>smtp".to_owned()),
        ("SENDGRID_API_URL", sendgrid.url()),
        ("SENDGRID_API_KEY", KEY.to_owned()),
        ("SMTP_URL", format!("smtp://127.0.0.1:{}", smtp.port)),
    ]
}

/// Queues `count` emails, each to its own address; their ids.
async fn queue_emails(redis: &TestRedis, count: usize) -> Vec<String> {
    let producer = redis.producer();
    let mut ids = Vec::with_capacity(count);
    let jobs: Vec<SendEmail> = (0..count)
        .map(|n| {
            SendEmail::new(EmailMessage {
                to: vec![Mailbox::new(format!("person{n}@example.com"))],
                subject: Some("Your receipt".to_owned()),
                text: Some("Thanks.".to_owned()),
                ..EmailMessage::default()
            })
        })
        .collect();
    for chunk in jobs.chunks(1000) {
        ids.extend(producer.push_many(chunk).await.unwrap());
    }
    ids
}

/// Queues ten emails every 100 ms until `stop`: their ids.
async fn trickle(
    producer: mailroom_jobs::Producer,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> Vec<String> {
    let mut ids = Vec::new();
    let mut every = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = &mut stop => return ids,
            _ = every.tick() => {
                let jobs: Vec<SendEmail> = (0..10)
                    .map(|n| {
                        SendEmail::new(EmailMessage {
                            to: vec![Mailbox::new(format!("later{}@example.com", ids.len() + n))],
                            subject: Some("Your receipt".to_owned()),
                            text: Some("Thanks.".to_owned()),
                            ..EmailMessage::default()
                        })
                    })
                    .collect();
                ids.extend(producer.push_many(&jobs).await.unwrap());
            }
        }
    }
}

/// The mailroom ids of the messages the SMTP server took (their `Message-ID`s).
fn smtp_ids(smtp: &SmtpSink) -> Vec<String> {
    (smtp.received().iter())
        .map(|(eml, _)| {
            let text = std::fs::read_to_string(eml).unwrap();
            let line = (text.lines())
                .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
                .expect("a Message-ID");
            let id = line.split_once('<').unwrap().1.split_once('@').unwrap().0;
            id.to_owned()
        })
        .collect()
}

/// How many messages the SMTP server has taken (a directory listing, no parsing).
fn smtp_count(smtp: &SmtpSink) -> usize {
    (std::fs::read_dir(smtp.dir.path()).unwrap())
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.ends_with(".eml") && !name.starts_with('.')
        })
        .count()
}

/// The send queue's done and dead counts.
async fn settled(redis: &TestRedis) -> (u64, u64) {
    let counts: BTreeMap<String, u64> = redis
        .conn()
        .hgetall(redis.keys(SendEmail::QUEUE).counts())
        .await
        .unwrap();
    (
        counts.get("done").copied().unwrap_or(0),
        counts.get("dead").copied().unwrap_or(0),
    )
}

/// Every id of `queued` arrived exactly once, here or there.
fn exactly_once(queued: &[String], arrived: impl IntoIterator<Item = String>) {
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for id in arrived {
        *seen.entry(id).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    let missing: Vec<_> = queued
        .iter()
        .filter(|id| !seen.contains_key(*id))
        .take(5)
        .collect();
    assert!(missing.is_empty(), "never sent: {missing:?}");
    assert_eq!(seen.len(), queued.len(), "nothing else was sent");
}

async fn status(redis: &TestRedis, id: &str) -> mailroom::store::StatusRecord {
    let store = mailroom::store::StatusStore::new(redis.conn(), &redis.prefix, 100);
    let id = id.parse().unwrap();
    store.get(id).await.unwrap().expect("a status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_that_refuses_connections_mid_run_fails_over_and_takes_mail_again_when_back() {
    const EMAILS: usize = 20_000;
    let redis = TestRedis::new().await;
    let mut sendgrid = SendGrid::start().await;
    let smtp = SmtpSink::start().await;
    let queued = queue_emails(&redis, EMAILS).await;
    let env = sendgrid_then_smtp(&sendgrid, &smtp);
    let workers = [worker(&redis, &env), worker(&redis, &env)];

    let long = Duration::from_secs(240);
    eventually(long, "a third through SendGrid", || async {
        (sendgrid.taken() >= EMAILS / 3).then_some(())
    })
    .await;
    sendgrid.halt().await;
    let halted = Instant::now();
    let before = smtp_count(&smtp);
    eventually(Duration::from_secs(30), "mail through SMTP", || async {
        (smtp_count(&smtp) > before).then_some(())
    })
    .await;
    let switched = halted.elapsed();
    eventually(long, "a third through SMTP", || async {
        (smtp_count(&smtp) >= EMAILS / 3).then_some(())
    })
    .await;
    let on_sendgrid = sendgrid.taken();
    sendgrid.resume().await;
    let resumed = Instant::now();
    // Mail keeps coming, as it would: some of it is the probe that finds SendGrid back.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let trickle = tokio::spawn(trickle(redis.producer(), stopped));
    eventually(
        Duration::from_secs(60),
        "mail on SendGrid again",
        || async { (sendgrid.taken() > on_sendgrid).then_some(()) },
    )
    .await;
    let returned = resumed.elapsed();
    stop.send(()).unwrap();
    let mut queued = queued;
    queued.extend(trickle.await.unwrap());
    let total = queued.len() as u64;
    eventually(long, "every email settled", || async {
        let (done, dead) = settled(&redis).await;
        (done + dead >= total).then_some(dead)
    })
    .await;

    assert_eq!(settled(&redis).await, (total, 0), "no dead letters");
    exactly_once(&queued, sendgrid.ids().into_iter().chain(smtp_ids(&smtp)));
    assert!(
        switched < Duration::from_secs(10),
        "switched after {switched:?}"
    );
    assert!(
        returned <= Duration::from_secs(60),
        "back after {returned:?}"
    );
    let circuit: BTreeMap<String, String> = redis
        .conn()
        .hgetall(format!("{}:{{provider:sendgrid}}:health", redis.prefix))
        .await
        .unwrap();
    assert_eq!(circuit.get("state").map(String::as_str), Some("closed"));
    drop(workers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_fails_over_without_a_dead_letter_and_the_status_names_both_providers() {
    const EMAILS: usize = 300;
    let redis = TestRedis::new().await;
    let sendgrid = SendGrid::start().await;
    sendgrid.answer(Mode::Unauthorized);
    let smtp = SmtpSink::start().await;
    let queued = queue_emails(&redis, EMAILS).await;
    let _worker = worker(&redis, &sendgrid_then_smtp(&sendgrid, &smtp));

    eventually(Duration::from_secs(120), "every email settled", || async {
        let (done, dead) = settled(&redis).await;
        (done + dead >= EMAILS as u64).then_some(())
    })
    .await;
    assert_eq!(settled(&redis).await, (EMAILS as u64, 0));
    exactly_once(&queued, smtp_ids(&smtp));
    // The circuit opened after a few refusals: SendGrid was not asked for every message.
    let asked = sendgrid.shared.taken.lock().unwrap().requests;
    assert!(asked < 50, "SendGrid asked {asked} times");
    let first = status(&redis, &queued[0]).await;
    assert_eq!(first.provider.as_deref(), Some("smtp"));
    let tried: Vec<(&str, bool)> = (first.providers.iter())
        .map(|t| (t.provider.as_str(), t.answer.contains("revoked")))
        .collect();
    assert_eq!(tried, [("sendgrid", true), ("smtp", false)], "{first:?}");
    assert_eq!(first.providers[1].answer, "accepted");
    assert!(!first.possibly_duplicated);
    assert!(
        first
            .timeline
            .iter()
            .any(|e| e["event"] == "tried" && e["provider"] == "sendgrid"),
        "{:?}",
        first.timeline
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_primary_is_waited_for_before_its_mail_fails_over() {
    const EMAILS: usize = 20;
    const WAIT: u64 = 4;
    let redis = TestRedis::new().await;
    let sendgrid = SendGrid::start().await;
    sendgrid.answer(Mode::Throttled);
    let smtp = SmtpSink::start().await;
    let queued = queue_emails(&redis, EMAILS).await;
    let mut env = sendgrid_then_smtp(&sendgrid, &smtp);
    env.push(("MAILROOM_FAILOVER_AFTER", WAIT.to_string()));
    let started = Instant::now();
    let _worker = worker(&redis, &env);

    eventually(Duration::from_secs(20), "the first 429", || async {
        (sendgrid.shared.taken.lock().unwrap().refused > 0).then_some(())
    })
    .await;
    eventually(
        Duration::from_secs(60),
        "every email through SMTP",
        || async { (smtp_count(&smtp) >= EMAILS).then_some(()) },
    )
    .await;
    let first_smtp = (smtp.received().iter())
        .filter_map(|(eml, _)| std::fs::metadata(eml).ok()?.modified().ok())
        .min()
        .unwrap();
    let waited = first_smtp
        .duration_since(std::time::SystemTime::now() - started.elapsed())
        .unwrap_or_default();
    assert!(
        waited >= Duration::from_secs(WAIT),
        "failed over after {waited:?}, before MAILROOM_FAILOVER_AFTER"
    );
    exactly_once(&queued, smtp_ids(&smtp));
    let asked = sendgrid.shared.taken.lock().unwrap().refused;
    assert!(
        asked >= 2,
        "SendGrid was asked again while it was waited for: {asked}"
    );
}

/// A Postmark stand-in: every message of a batch taken.
struct PostmarkTakes;

impl wiremock::Respond for PostmarkTakes {
    fn respond(&self, request: &wiremock::Request) -> wiremock::ResponseTemplate {
        let messages: Vec<Value> = serde_json::from_slice(&request.body).unwrap();
        let results: Vec<Value> = (messages.iter().enumerate())
            .map(|(n, m)| {
                serde_json::json!({"To": m["To"], "SubmittedAt": "2026-12-07T10:00:00Z",
                    "MessageID": format!("pm-{n}"), "ErrorCode": 0, "Message": "OK"})
            })
            .collect();
        wiremock::ResponseTemplate::new(200).set_body_json(results)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_whose_provider_fails_a_third_through_sends_everyone_once_with_exact_counts() {
    const PEOPLE: usize = 100_000;
    const KEYS: &str = "t1:0123456789abcdef0123456789abcdef";
    let mut sendgrid = SendGrid::start().await;
    let postmark = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path("/email/batch"))
        .and(wiremock::matchers::header(
            "x-postmark-server-token",
            "pm-token",
        ))
        .respond_with(PostmarkTakes)
        .mount(&postmark)
        .await;
    let app = common::app::TestApp::spawn(|s| {
        s.link_keys = Some(secrecy::SecretString::from(KEYS));
    })
    .await;
    let (status, list) = app
        .call(
            "POST",
            "/v1/lists",
            &serde_json::json!({"name": "News", "optin": "single", "visibility": "private"}),
        )
        .await;
    assert_eq!(status, 201, "{list}");
    let list = list["id"].as_u64().unwrap();
    let mut csv = String::from("email\n");
    for n in 0..PEOPLE {
        csv.push_str(&format!("reader{n}@example.com\n"));
    }
    app.import_confirmed(list, &csv).await;
    let (status, campaign) = app
        .call(
            "POST",
            "/v1/campaigns",
            &serde_json::json!({"name": "News", "lists": [list], "subject": "News",
                "text": "Read on. Leave: {{unsubscribe_url}}"}),
        )
        .await;
    assert_eq!(status, 201, "{campaign}");
    let id = campaign["id"].as_str().unwrap().to_owned();
    let env = vec![
        ("MAILROOM_PROVIDER", "sendgrid".to_owned()),
        ("MAILROOM_ROUTES", "bulk=sendgrid>postmark".to_owned()),
        ("SENDGRID_API_URL", sendgrid.url()),
        ("SENDGRID_API_KEY", KEY.to_owned()),
        ("POSTMARK_API_URL", postmark.uri()),
        ("POSTMARK_SERVER_TOKEN", "pm-token".to_owned()),
        ("MAILROOM_LINK_KEYS", KEYS.to_owned()),
    ];
    let workers = [worker(&app.redis, &env), worker(&app.redis, &env)];
    app.schedule_campaign(&id).await;

    let long = Duration::from_secs(300);
    eventually(long, "a third through SendGrid", || async {
        (sendgrid.taken() >= PEOPLE / 3).then_some(())
    })
    .await;
    sendgrid.halt().await;
    let done = eventually(long, "the campaign", || async {
        let (_, body) = app.get_json(&format!("/v1/campaigns/{id}")).await;
        (body["state"] == "finished").then_some(body)
    })
    .await;

    let mut arrived = sendgrid.shared.taken.lock().unwrap().addresses.clone();
    let through_sendgrid = arrived.len();
    for request in postmark.received_requests().await.unwrap() {
        let messages: Vec<Value> = serde_json::from_slice(&request.body).unwrap();
        arrived.extend(
            messages
                .iter()
                .map(|m| m["To"].as_str().unwrap().to_owned()),
        );
    }
    assert!(through_sendgrid < PEOPLE && arrived.len() > through_sendgrid);
    let everyone: Vec<String> = (0..PEOPLE)
        .map(|n| format!("reader{n}@example.com"))
        .collect();
    exactly_once(&everyone, arrived);
    assert_eq!(
        (&done["sent"], &done["failed"]),
        (&serde_json::json!(PEOPLE), &serde_json::json!(0)),
        "{done}"
    );
    drop(workers);
    app.stop().await;
}

#[tokio::test]
async fn the_console_shows_each_provider_with_its_circuit_and_last_hour() {
    use mailroom::store::activity::{Activity, Outcome};
    let app = common::app::TestApp::spawn(|s| {
        s.api_keys = None;
        s.insecure_no_auth = true;
        s.provider = mailroom::config::ProviderKind::Sendgrid;
        s.sendgrid_api_key = Some(secrecy::SecretString::from(KEY));
        s.smtp_url = Some(secrecy::SecretString::from("smtp://127.0.0.1:2525"));
        s.routes = "transactional=sendgrid>smtp".to_owned().try_into().unwrap();
    })
    .await;
    let activity = Activity::new(app.redis.conn(), &app.redis.prefix);
    activity.record("sendgrid", Outcome::Sent, 6);
    activity.record("sendgrid", Outcome::Deferred, 2);
    activity.record("smtp", Outcome::Sent, 5);
    activity.flush().await.unwrap();
    let probe_at = chrono::Utc::now().timestamp_millis() + 20_000;
    let _: () = app
        .redis
        .conn()
        .hset_multiple(
            format!("{}:{{provider:sendgrid}}:health", app.redis.prefix),
            &[
                ("state", "open".to_owned()),
                ("probe_at", probe_at.to_string()),
            ],
        )
        .await
        .unwrap();

    let page = reqwest::get(app.url("/console"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let table = page.split("<table id=\"providers\"").nth(1).unwrap();
    let table = table.split("</table>").next().unwrap();
    let rows: Vec<&str> = table.split("<tr>").skip(2).collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(
        rows[0].contains(">sendgrid<") && rows[0].contains("class=\"bad\">open"),
        "{table}"
    );
    let next: u64 = (rows[0].split("next probe in ").nth(1))
        .and_then(|rest| rest.split(' ').next()?.parse().ok())
        .expect("the next probe's time");
    assert!((10..=20).contains(&next), "{table}");
    let numbers = |row: &str| -> Vec<String> {
        (row.split("<td class=\"num\">").skip(1))
            .map(|cell| cell.split('<').next().unwrap().to_owned())
            .collect()
    };
    assert_eq!(numbers(rows[0]), ["6", "2", "25.0 %"], "{table}");
    assert!(
        rows[1].contains(">smtp<") && rows[1].contains(">closed "),
        "{table}"
    );
    assert_eq!(numbers(rows[1]), ["5", "0", "0.0 %"], "{table}");
    app.stop().await;
}

#[tokio::test]
async fn a_circuit_opens_on_failures_in_a_row_or_in_a_window_and_lets_one_probe_through() {
    use mailroom::providers::route::health::{Admit, Health, Report, Verdict};
    let redis = TestRedis::new().await;
    let health = Health::new(redis.conn(), &redis.prefix, Duration::from_secs(3600));
    let key = format!("{}:{{provider:sendgrid}}:health", redis.prefix);

    // Three in a row open it; a success between failures resets the row.
    assert_eq!(health.admit("sendgrid").await, Admit::Go);
    for _ in 0..2 {
        assert_eq!(
            health.report("sendgrid", Report::Failed).await,
            Verdict::Next
        );
    }
    health.report("sendgrid", Report::Ok).await;
    for _ in 0..2 {
        health.report("sendgrid", Report::Failed).await;
    }
    assert_eq!(health.admit("sendgrid").await, Admit::Go, "two in a row");
    health.report("sendgrid", Report::Failed).await;
    let Admit::Skip(next) = health.admit("sendgrid").await else {
        panic!("three in a row open it");
    };
    assert!(next > Duration::from_secs(25), "{next:?}");

    // Due: one message probes, the others still skip; its success closes the circuit.
    let _: () = redis.conn().hset(&key, "probe_at", 0).await.unwrap();
    assert_eq!(health.admit("sendgrid").await, Admit::Probe);
    assert!(matches!(health.admit("sendgrid").await, Admit::Skip(_)));
    health.report("sendgrid", Report::Ok).await;
    assert_eq!(health.admit("sendgrid").await, Admit::Go);

    // Ten failures within the window open it whatever came between.
    for n in 0..10 {
        assert_eq!(health.admit("postmark").await, Admit::Go, "failure {n}");
        health.report("postmark", Report::Failed).await;
        if n < 9 {
            health.report("postmark", Report::Ok).await;
        }
    }
    assert!(matches!(health.admit("postmark").await, Admit::Skip(_)));

    // A rate limit is waited for: it neither fails over nor opens, however often.
    for _ in 0..12 {
        assert_eq!(
            health.report("smtp", Report::Throttled).await,
            Verdict::Stay
        );
    }
    assert_eq!(health.admit("smtp").await, Admit::Go);
}

/// A SendGrid that reads each request and hangs up without an answer: the request went out,
/// whether it was taken is unknown.
async fn hanging_up() -> (String, Arc<AtomicU8>) {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicU8::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buffer = vec![0u8; 64 * 1024];
            let mut read = 0;
            // The whole request (headers and the small body) has arrived once it stops coming.
            while let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(200), socket.read(&mut buffer[read..]))
                    .await
            {
                if n == 0 {
                    break;
                }
                read += n;
            }
            if read > 0 {
                count.fetch_add(1, Ordering::SeqCst);
            }
            drop(socket);
        }
    });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_requests_stay_with_their_provider_until_it_fails_over_then_say_possibly_duplicated()
 {
    let redis = TestRedis::new().await;
    let (url, asked) = hanging_up().await;
    let smtp = SmtpSink::start().await;
    let queued = queue_emails(&redis, 1).await;
    let env = vec![
        ("MAILROOM_PROVIDER", "sendgrid".to_owned()),
        ("MAILROOM_ROUTES", "transactional=sendgrid>smtp".to_owned()),
        ("SENDGRID_API_URL", url),
        ("SENDGRID_API_KEY", KEY.to_owned()),
        ("SMTP_URL", format!("smtp://127.0.0.1:{}", smtp.port)),
        ("MAILROOM_BACKOFF_BASE_MS", "10".to_owned()),
        ("MAILROOM_BACKOFF_CAP_SECS", "1".to_owned()),
    ];
    let _worker = worker(&redis, &env);

    eventually(Duration::from_secs(60), "the email settled", || async {
        let (done, dead) = settled(&redis).await;
        (done + dead >= 1).then_some(())
    })
    .await;
    assert_eq!(settled(&redis).await, (1, 0));
    exactly_once(&queued, smtp_ids(&smtp));
    let record = status(&redis, &queued[0]).await;
    assert!(record.possibly_duplicated, "{record:?}");
    assert_eq!(record.provider.as_deref(), Some("smtp"));
    // Each unanswered try was retried on SendGrid, until its circuit opened after three.
    let tried: Vec<(&str, bool)> = (record.providers.iter())
        .map(|t| (t.provider.as_str(), t.unanswered))
        .collect();
    assert_eq!(
        tried,
        [
            ("sendgrid", true),
            ("sendgrid", true),
            ("sendgrid", true),
            ("smtp", false)
        ],
        "{record:?}"
    );
    assert_eq!(record.attempts, 4, "{record:?}");
    assert_eq!(asked.load(Ordering::SeqCst), 3);
}
