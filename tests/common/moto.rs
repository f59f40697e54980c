//! moto in server mode (PyPI `moto[server]`, which the test command installs): a third-party
//! emulation of Amazon SES's API v2 that checks requests, refuses senders not verified and
//! records what it was sent. One server per test, on a free loopback port.

use std::{process::Stdio, time::Duration};

use serde_json::{Value, json};
use tokio::process::{Child, Command};

use super::{eventually, free_port};

pub const REGION: &str = "eu-west-1";
pub const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
pub const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// An `Authorization` header naming the region and the service, from which moto (which checks
/// no signature) picks the account's region.
fn scope() -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential={KEY_ID}/20261207/{REGION}/ses/aws4_request, \
         SignedHeaders=host, Signature=00"
    )
}

pub struct Moto {
    pub port: u16,
    client: reqwest::Client,
    _child: Child,
}

impl Moto {
    pub async fn start() -> Self {
        let port = free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 with moto[server] (pip install 'moto[server]'; .ci/run installs it)");
        let client = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{port}/moto-api/");
        eventually(Duration::from_secs(30), "moto to answer", || async {
            let answer = client.get(&url).send().await.ok()?;
            answer.status().is_success().then_some(())
        })
        .await;
        Self {
            port,
            client,
            _child: child,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Verifies `identity` (a domain or an address) as SES's `CreateEmailIdentity` does.
    pub async fn verify(&self, identity: &str) {
        let answer = self
            .client
            .post(format!("{}/v2/email/identities", self.url()))
            .header("authorization", scope())
            .json(&json!({"EmailIdentity": identity}))
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success(), "{answer:?}");
    }

    /// The raw messages moto took: `raw_data`, `destinations`, `source`, `id`.
    pub async fn raw_messages(&self) -> Vec<Value> {
        let data: Value = (self
            .client
            .get(format!("{}/moto-api/data.json", self.url())))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        data["ses"]["RawMessage"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// `GetSendQuota`'s `SentLast24Hours` (SES's v1 query API, which moto counts sends in).
    pub async fn sent_last_24_hours(&self) -> f64 {
        let xml = (self.client.post(self.url()))
            .header("authorization", scope())
            .form(&[("Action", "GetSendQuota"), ("Version", "2010-12-01")])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let value = xml
            .split("<SentLast24Hours>")
            .nth(1)
            .and_then(|rest| rest.split('<').next())
            .unwrap_or_else(|| panic!("no SentLast24Hours in {xml}"));
        value.parse().unwrap()
    }
}
