//! Headless Chromium driven through ChromeDriver's W3C WebDriver HTTP API (Debian's `chromium`
//! and `chromium-driver`; `scripts/test` installs both): open a page, find an element, click it,
//! read the page, take a screenshot, as a person would. A few JSON calls, so no client crate.

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// One browser session; [`Browser::quit`] ends it (the driver is killed when dropped).
pub struct Browser {
    base: String,
    client: reqwest::Client,
    _driver: Child,
    _profile: tempfile::TempDir,
}

fn on_path(names: &[&str]) -> std::path::PathBuf {
    names
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|p| p.join(name))
                    .find(|p| p.is_file())
            })
        })
        .unwrap_or_else(|| panic!("{names:?} is installed (scripts/test installs it)"))
}

/// The flags every headless Chromium here runs with: no sandbox (root), and nothing that
/// reaches for the network on its own (this machine has none).
pub const HEADLESS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
];

/// Debian's Chromium.
pub fn chromium() -> std::path::PathBuf {
    on_path(&["chromium", "chromium-browser"])
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium session at `width`×`height`.
    pub async fn start(width: u32, height: u32) -> Self {
        let port = super::free_port();
        let driver = Command::new(on_path(&["chromedriver"]))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let started = Instant::now();
        while client.get(format!("{base}/status")).send().await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = HEADLESS.iter().map(|f| (*f).to_owned()).collect();
        args.push(format!("--window-size={width},{height}"));
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let mut options = json!({"binary": chromium(), "args": args});
        if width < 500 {
            // A window is at least 500 px wide: a phone's viewport is emulated.
            options["mobileEmulation"] =
                json!({"deviceMetrics": {"width": width, "height": height, "pixelRatio": 1.0}});
        }
        let session: Value = client
            .post(format!("{base}/session"))
            .json(&json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": options,
            }}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = session["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {session}"))
            .to_owned();
        Self {
            base: format!("{base}/session/{id}"),
            client,
            _driver: driver,
            _profile: profile,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        assert!(
            answer["value"].get("error").is_none(),
            "webdriver {path}: {answer}"
        );
        answer["value"].clone()
    }

    /// Opens `url` and waits for it to load.
    pub async fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    /// Clicks the first element matching the CSS `selector`.
    pub async fn click(&self, selector: &str) {
        let id = self.element(selector).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Types `text` into the first element matching the CSS `selector`.
    pub async fn type_into(&self, selector: &str, text: &str) {
        let id = self.element(selector).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    async fn element(&self, selector: &str) -> String {
        let element = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": selector})),
            )
            .await;
        element
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap()
            .to_owned()
    }

    /// The page's current HTML; empty while the browser cannot tell (mid-navigation).
    pub async fn source(&self) -> String {
        let answer: Value = match self
            .client
            .get(format!("{}/source", self.base))
            .send()
            .await
        {
            Ok(response) => response.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        answer["value"].as_str().unwrap_or_default().to_owned()
    }

    /// Ends the session: Chromium exits, then the driver is stopped.
    pub async fn quit(self) {
        let _ = self.client.delete(&self.base).send().await;
    }

    /// Runs `script` (a function body) in the page and returns what it returns.
    pub async fn execute(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Saves a PNG of the viewport as `target/screenshots/{name}.png`.
    pub async fn save_screenshot(&self, name: &str) {
        let png = self.screenshot().await;
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join("screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), &png).unwrap();
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        let encoded = self.call(reqwest::Method::GET, "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap())
            .unwrap()
    }
}
