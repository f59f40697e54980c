//! Schemathesis (PyPI; `scripts/test` installs it) fuzzes every operation of `/openapi.json`
//! against a real `mailroom serve`, bounded in time with a fixed seed: no 5xx, every status and
//! content type documented, responses matching their schemas, invalid input refused and valid
//! input accepted (`tests/support/schemathesis.toml` names the exceptions, and why). And a
//! client generated from the same document by openapi-python-client (PyPI, the most used Python
//! generator) drives the main operations through its own models.

mod common;

use common::{ServeProcess, TestRedis};
use tokio::process::Command;

const KEY: &str = "fuzz-key-5b1e";
const LINK_KEYS: &str = "k1:fuzz-link-key-0123456789abcdef0123456789";

#[tokio::test]
async fn the_api_conforms_to_its_openapi_document_under_schemathesis() {
    let redis = TestRedis::new().await;
    let server = ServeProcess::start(
        &redis,
        KEY,
        &[
            ("MAILROOM_INSECURE_UNSIGNED_WEBHOOKS", "1"),
            ("MAILROOM_INBOUND_SECRET", "fuzz-inbound-secret-9"),
            // Validation would otherwise ask the machine's resolver about generated domains.
            ("MAILROOM_DNS_RESOLVER", "127.0.0.1:9"),
            ("MAILROOM_DNS_TIMEOUT_MS", "50"),
            // Campaigns and list mail need link keys; without them the API refuses them all.
            ("MAILROOM_LINK_KEYS", LINK_KEYS),
        ],
        false,
    )
    .await;
    let base = server.base.clone();
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/schemathesis.toml"
    );
    // Hypothesis writes `.hypothesis/` into the working directory whatever the options: a
    // directory of the test's own keeps it out of the source tree.
    let workdir = tempfile::tempdir().unwrap();
    let output = Command::new("st")
        .current_dir(workdir.path())
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
    server.stop().await;
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        report.contains("Tested: 66"),
        "every operation was tested:\n{report}"
    );
}

#[tokio::test]
async fn a_client_generated_from_the_document_sends_an_email_a_batch_and_reads_their_status() {
    let redis = TestRedis::new().await;
    let server =
        ServeProcess::start(&redis, KEY, &[("MAILROOM_LINK_KEYS", LINK_KEYS)], false).await;
    let document = reqwest::get(format!("{}/openapi.json", server.base))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("openapi.json");
    std::fs::write(&path, &document).unwrap();
    let generated = Command::new("openapi-python-client")
        .arg("generate")
        .arg("--path")
        .arg(&path)
        .args(["--meta", "none", "--output-path"])
        .arg(dir.path().join("mailroom_api"))
        .output()
        .await
        .expect("openapi-python-client is installed: scripts/test installs it");
    let log = String::from_utf8_lossy(&generated.stdout).into_owned()
        + &String::from_utf8_lossy(&generated.stderr);
    assert!(generated.status.success(), "{log}");
    // The generator leaves out only what it cannot express: a `text/csv` body (the import) and
    // the `text/plain` label SNS puts on its JSON (the SES webhook is generated with its JSON).
    let skipped: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("WARNING") || l.starts_with("Unable"))
        .collect();
    assert_eq!(
        skipped,
        [
            "WARNING parsing POST /v1/imports within lists. Endpoint will not be generated.",
            "WARNING parsing POST /webhooks/ses within webhooks."
        ],
        "{log}"
    );
    let driven = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/generated_client.py"
        ))
        .arg(&server.base)
        .arg(KEY)
        .arg(dir.path())
        .output()
        .await
        .unwrap();
    server.stop().await;
    assert!(
        driven.status.success() && driven.stdout.starts_with(b"ok"),
        "{}\n{}",
        String::from_utf8_lossy(&driven.stdout),
        String::from_utf8_lossy(&driven.stderr)
    );
}
