//! Schemathesis (PyPI; `scripts/test` installs it) fuzzes every operation of `/openapi.json`
//! against a real `mailroom serve`, bounded in time with a fixed seed: no 5xx, every status and
//! content type documented, responses matching their schemas, invalid input refused and valid
//! input accepted (`tests/support/schemathesis.toml` names the two exceptions, and why).

mod common;

use common::{ServeProcess, TestRedis};
use tokio::process::Command;

const KEY: &str = "fuzz-key-5b1e";

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
        report.contains("Tested: 47"),
        "every operation was tested:\n{report}"
    );
}
