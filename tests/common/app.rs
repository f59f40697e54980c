//! The API and workers in-process on port 0, with their own key prefix, plus the real SMTP
//! server and the strict MIME check the provider tests use.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use mailroom::{
    app,
    config::{ProviderKind, Settings},
    http::{AppState, Auth},
    worker::WorkerOptions,
};
use secrecy::SecretString;
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;

use super::{TestRedis, eventually, redis_url};

pub const API_KEY: &str = "test-key-0f3c9a";

/// The key the tests' webhook secrets are derived from.
pub const WEBHOOK_SIGNING_KEY: &str = "tests-webhook-signing-key-0123456789abcdef";

/// Settings for a test: its own prefix, one API key, fast retries, the outbox in `outbox`.
pub fn settings(redis: &TestRedis, outbox: &Path) -> Settings {
    Settings {
        redis_url: SecretString::from(redis_url()),
        redis_prefix: redis.prefix.clone(),
        api_keys: Some(SecretString::from(format!("other-key,{API_KEY}"))),
        backoff_base_ms: 1,
        backoff_cap_secs: 1,
        lease_secs: 5,
        provider: ProviderKind::Outbox,
        outbox_dir: outbox.to_path_buf(),
        from: "Mailroom Tests <noreply@mailroom.test>".to_owned(),
        // The tests' receivers listen on 127.0.0.1, without TLS.
        webhook_signing_key: Some(SecretString::from(WEBHOOK_SIGNING_KEY)),
        webhooks_allow_http: true,
        webhooks_allow_private: true,
        ..Settings::default()
    }
}

/// A running API (and optionally workers).
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub redis: TestRedis,
    pub settings: Settings,
    pub outbox: tempfile::TempDir,
    pub state: AppState,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    /// Starts the API with the test settings, changed by `configure`.
    pub async fn spawn(configure: impl FnOnce(&mut Settings)) -> Self {
        Self::spawn_on(redis_url(), configure).await
    }

    /// Starts the API on the Redis at `url` (a test's own server).
    pub async fn spawn_on(url: &str, configure: impl FnOnce(&mut Settings)) -> Self {
        let redis = TestRedis::at(url).await;
        let outbox = tempfile::tempdir().unwrap();
        let mut settings = settings(&redis, outbox.path());
        settings.redis_url = SecretString::from(url);
        configure(&mut settings);
        // Whole-list reads on two connections of their own, as `mailroom serve` runs them.
        let mut bulk = Vec::new();
        for _ in 0..2 {
            bulk.push(
                settings
                    .redis_connection()
                    .await
                    .expect("a bulk connection"),
            );
        }
        let state = app::state(&settings, redis.conn(), bulk, Auth::Required).expect("state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(app::serve_on(listener, state.clone(), shutdown.clone()));
        Self {
            address,
            client: reqwest::Client::new(),
            redis,
            settings,
            outbox,
            state,
            shutdown,
            tasks: vec![server],
        }
    }

    /// Starts a worker process's workers in this process.
    pub fn start_worker(&mut self) {
        self.start_worker_with(8);
    }

    /// Starts a worker process's workers in this process, `concurrency` jobs of each queue at
    /// once.
    pub fn start_worker_with(&mut self, concurrency: usize) {
        let settings = self.settings.clone();
        let options = WorkerOptions::from_settings(&settings, Some(concurrency));
        let token = self.shutdown.clone();
        self.tasks.push(tokio::spawn(async move {
            app::work(&settings, options, token).await
        }));
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A confirmed subscriber `email` (locale `fr`) of a new public single opt-in list `name`:
    /// (list id, subscriber id).
    pub async fn subscribed(&self, name: &str, email: &str) -> (u64, u64) {
        let (_, list) = self
            .call(
                "POST",
                "/v1/lists",
                &serde_json::json!({"name": name, "optin": "single", "visibility": "public"}),
            )
            .await;
        let list = list["id"].as_u64().unwrap();
        let (status, subscriber) = self
            .call(
                "POST",
                "/v1/subscribers",
                &serde_json::json!({"email": email, "locale": "fr", "lists": [list]}),
            )
            .await;
        assert!(status == 201 || status == 200, "{subscriber}");
        (list, subscriber["id"].as_u64().unwrap())
    }

    /// Imports `csv` into `list` as confirmed subscribers and waits until the import is done.
    pub async fn import_confirmed(&self, list: u64, csv: &str) {
        let response = self
            .client
            .post(self.url(&format!("/v1/imports?list={list}&status=confirmed")))
            .bearer_auth(API_KEY)
            .header("content-type", "text/csv")
            .body(csv.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 202);
        let id = response.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let done = eventually(Duration::from_secs(60), "the import", || async {
            let (_, body) = self.get_json(&format!("/v1/imports/{id}")).await;
            (body["state"] != "running").then_some(body)
        })
        .await;
        assert_eq!(done["state"], "done", "{done}");
    }

    /// `POST /v1/campaigns/{id}/schedule` without a body: starts it now (200 asserted).
    pub async fn schedule_campaign(&self, id: &str) {
        let (status, answer) = self
            .call(
                "POST",
                &format!("/v1/campaigns/{id}/schedule"),
                &Value::Null,
            )
            .await;
        assert_eq!(status, 200, "{answer}");
    }

    /// A campaign of `spec` (its `lists` filled in) to the people of `csv` on a new private
    /// single opt-in list, scheduled now: its record once finished.
    pub async fn run_campaign(&self, csv: &str, mut spec: Value) -> Value {
        let list = serde_json::json!({"name": "News", "optin": "single", "visibility": "private"});
        let (status, list) = self.call("POST", "/v1/lists", &list).await;
        assert_eq!(status, 201, "{list}");
        let list = list["id"].as_u64().unwrap();
        self.import_confirmed(list, csv).await;
        spec["lists"] = serde_json::json!([list]);
        let (status, created) = self.call("POST", "/v1/campaigns", &spec).await;
        assert_eq!(status, 201, "{created}");
        let id = created["id"].as_str().unwrap().to_owned();
        self.schedule_campaign(&id).await;
        eventually(Duration::from_secs(60), "the campaign", || async {
            let (_, body) = self.get_json(&format!("/v1/campaigns/{id}")).await;
            (body["state"] == "finished").then_some(body)
        })
        .await
    }

    /// Queues `body` (202 asserted) and waits until a worker has sent it: its id.
    pub async fn send_and_wait(&self, body: &Value) -> String {
        let response = self.post_email(body).await;
        assert_eq!(response.status().as_u16(), 202);
        let id = response.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        self.wait_for_status(&id, "sent").await;
        id
    }

    /// `POST /v1/emails` with the API key.
    pub async fn post_email(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/v1/emails"))
            .bearer_auth(API_KEY)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `GET path` with the API key: the status and the body as JSON (`null` when not JSON).
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `method path` with the API key and a JSON body (none when `Null`): the status and the
    /// answer as JSON (`null` when not JSON).
    pub async fn call(&self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        self.call_as(API_KEY, method, path, body).await
    }

    /// [`TestApp::call`] with `key`.
    pub async fn call_as(&self, key: &str, method: &str, path: &str, body: &Value) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.client.request(method, self.url(path)).bearer_auth(key);
        if !body.is_null() {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A stored key with `scopes` (and anything else in `extra`), made with the operator key:
    /// its id and the key itself.
    pub async fn stored_key(
        &self,
        scopes: &[mailroom::keys::Scope],
        extra: Value,
    ) -> (String, String) {
        let mut spec = serde_json::json!({"name": "a service", "scopes": scopes});
        if let Value::Object(more) = extra {
            spec.as_object_mut().unwrap().extend(more);
        }
        let (status, made) = self.call("POST", "/v1/keys", &spec).await;
        assert_eq!(status, 201, "{made}");
        let secret = made["key"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("mr_"), "{secret}");
        (made["id"].as_str().unwrap().to_owned(), secret)
    }

    /// `GET /v1/emails/{id}` with the API key, as JSON.
    pub async fn status(&self, id: &str) -> (u16, Value) {
        self.get_json(&format!("/v1/emails/{id}")).await
    }

    /// Polls the status record until it reaches `wanted`.
    pub async fn wait_for_status(&self, id: &str, wanted: &str) -> Value {
        eventually(
            Duration::from_secs(30),
            &format!("message {id} to be {wanted}"),
            || async {
                let (code, body) = self.status(id).await;
                (code == 200 && body["status"] == wanted).then_some(body)
            },
        )
        .await
    }

    /// Stops everything gracefully and reports how each task ended.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            task.await.expect("task panicked").expect("task failed");
        }
    }
}

/// A message that passes every check.
pub fn simple_email() -> Value {
    serde_json::json!({
        "to": [{"email": "ada@example.com", "name": "Ada Lovelace"}],
        "subject": "Hello",
        "text": "Hi Ada",
    })
}

/// The real SMTP server (tests/support/smtp_sink.py, aiosmtpd) on a free loopback port.
pub struct SmtpSink {
    pub port: u16,
    pub dir: tempfile::TempDir,
    _child: Child,
}

impl SmtpSink {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// A sink that requires AUTH with `user` and `password`.
    pub async fn start_with_auth(user: &str, password: &str) -> Self {
        Self::start_with(&["--auth", &format!("{user}:{password}")]).await
    }

    async fn start_with(args: &[&str]) -> Self {
        let port = super::free_port();
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new("python3")
            .arg(support("smtp_sink.py"))
            .args(["--port", &port.to_string(), "--dir"])
            .arg(dir.path())
            .args(args)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 with aiosmtpd (pip install aiosmtpd; .ci/run installs it)");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the SMTP sink to start")
            .unwrap();
        assert_eq!(ready.as_deref(), Some(format!("ready {port}").as_str()));
        Self {
            port,
            dir,
            _child: child,
        }
    }

    /// The messages received so far, as (.eml path, envelope).
    pub fn received(&self) -> Vec<(PathBuf, Value)> {
        let mut found: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml") && !is_hidden(p))
            .map(|eml| {
                let envelope = std::fs::read_to_string(eml.with_extension("json")).unwrap();
                (eml, serde_json::from_str(&envelope).unwrap())
            })
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
    }
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

fn support(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(file)
}

/// Runs Python's strict MIME parser over `file`; panics on any defect. Returns its summary.
pub async fn strict_mime(file: &Path) -> Value {
    let output = Command::new("python3")
        .arg(support("check_mime.py"))
        .arg(file)
        .output()
        .await
        .expect("python3");
    assert!(
        output.status.success(),
        "MIME defects in {}: {}",
        file.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The text of the part of type `content_type` in a [`strict_mime`] summary.
pub fn part_text(summary: &Value, content_type: &str) -> String {
    summary["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["type"] == content_type)
        .unwrap_or_else(|| panic!("no {content_type} part in {summary}"))["text"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The .eml files in `dir`, skipping hidden temporaries.
pub fn eml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p: &PathBuf| !is_hidden(p));
    files.sort();
    files
}

/// One email of an outbox, as the tests read it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Received {
    /// When the file was written.
    pub at: std::time::SystemTime,
    /// The path (from `marker` on) of the first link in its text part that contains `marker`.
    pub link: String,
    pub subject: String,
}

/// The emails in `app`'s outbox once there are at least `count`, oldest first, each with the
/// first link containing `marker` (e.g. `/verify?token=`).
pub async fn received_links(app: &TestApp, count: usize, marker: &str) -> Vec<Received> {
    let files = eventually(Duration::from_secs(30), "the emails", || async {
        let files = eml_files(app.outbox.path());
        (files.len() >= count).then_some(files)
    })
    .await;
    let mut found = Vec::new();
    for file in files {
        let summary = strict_mime(&file).await;
        let text = part_text(&summary, "text/plain");
        let start = text.find(marker).expect("a link in the email");
        found.push(Received {
            at: std::fs::metadata(&file).unwrap().modified().unwrap(),
            link: text[start..]
                .chars()
                .take_while(|c| !c.is_whitespace())
                .collect(),
            subject: summary["subject"].as_str().unwrap_or_default().to_owned(),
        });
    }
    found.sort();
    found
}

/// A raw-mode Inbound Parse POST of `message`, mailed to `envelope_to`.
pub fn inbound_form(message: &str, envelope_to: &str) -> Vec<u8> {
    let envelope = serde_json::json!({"to": [envelope_to], "from": ""}).to_string();
    let mut body = String::new();
    for (name, value) in [("envelope", envelope.as_str()), ("email", message)] {
        body.push_str(&format!(
            "--xYzZY\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str("--xYzZY--\r\n");
    body.into_bytes()
}

/// A report from `tests/data/reports/` about message `id` to `recipient`, mailed to `verp`.
pub fn report(file: &str, id: &str, recipient: &str, verp: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/reports/{file}")),
    )
    .unwrap()
    .replace("{{MESSAGE_ID}}", id)
    .replace("{{RECIPIENT}}", recipient)
    .replace("{{VERP}}", verp)
    .replace('\n', "\r\n")
}
