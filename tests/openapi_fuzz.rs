//! Schemathesis (PyPI; `scripts/test` installs it) fuzzes every operation of `/openapi.json`
//! against a real `mailroom serve`, bounded in time with a fixed seed: no 5xx, every status and
//! content type documented, responses matching their schemas, invalid input refused and valid
//! input accepted (`tests/support/schemathesis.toml` names the two exceptions, and why).

mod common;

use std::{process::Stdio, time::Duration};

use common::{TestRedis, eventually, redis_url};
use tokio::process::Command;

const KEY: &str = "fuzz-key-5b1e";

#[tokio::test]
async fn the_api_conforms_to_its_openapi_document_under_schemathesis() {
    let redis = TestRedis::new().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .arg("serve")
        .env("REDIS_URL", redis_url())
        .env("MAILROOM_REDIS_PREFIX", &redis.prefix)
        .env("MAILROOM_LISTEN", format!("127.0.0.1:{port}"))
        .env("MAILROOM_API_KEYS", KEY)
        .env("MAILROOM_INSECURE_UNSIGNED_WEBHOOKS", "1")
        .env("MAILROOM_INBOUND_SECRET", "fuzz-inbound-secret-9")
        // Validation would otherwise ask the machine's resolver about generated domains.
        .env("MAILROOM_DNS_RESOLVER", "127.0.0.1:9")
        .env("MAILROOM_DNS_TIMEOUT_MS", "50")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    eventually(Duration::from_secs(20), "serve to answer", || async {
        client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/schemathesis.toml"
    );
    let output = Command::new("st")
        .arg("--config-file")
        .arg(config)
        .arg("run")
        .arg(format!("{base}/openapi.json"))
        .args(["-H", &format!("Authorization: Bearer {KEY}")])
        // A fixed number of cases from a fixed seed: the same run every time.
        .args([
            "--max-examples",
            "60",
            "--seed",
            "20261129",
            "--generation-deterministic",
        ])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--suppress-health-check", "all", "--warnings", "off"])
        .output()
        .await
        .expect("schemathesis (`st`) is installed: scripts/test installs it");
    let _ = server.start_kill();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        report.contains("Tested: 22"),
        "every operation was tested:\n{report}"
    );
}
