//! `mailroom dev`: the API and the workers in one process, for a first run on a laptop.
//!
//! It accepts API requests without keys (and says so first thing), writes email to the outbox
//! folder unless another provider is configured, and, when nothing answers at `REDIS_URL` but
//! `redis-server` is installed, starts a throw-away Redis of its own on a free port.

use std::{process::Stdio, time::Duration};

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::{app, config::Settings, http::Auth, lists::links::LinkKeys, worker::WorkerOptions};

/// Runs the API and the workers until `shutdown`.
///
/// # Errors
/// When Redis is unreachable and cannot be started, or either half fails.
pub async fn run(mut settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    tracing::warn!("mailroom dev: the API accepts requests WITHOUT an API key; never expose it");
    let _redis = ensure_redis(&mut settings).await?;
    if LinkKeys::from_settings(&settings)?.is_none() {
        // API and workers share this process's key; its unsubscribe links die with it.
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret)?;
        let secret =
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, secret);
        settings.link_keys = Some(SecretString::from(format!("dev:{secret}")));
        tracing::info!(
            "mailroom dev: unsubscribe links are signed with a key made for this run (set MAILROOM_LINK_KEYS to keep them working)"
        );
    }
    // A local receiver is what dev is for; endpoints' secrets die with the run unless set.
    settings.webhooks_allow_http = true;
    settings.webhooks_allow_private = true;
    if settings.webhook_signing_key.is_none() {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret)?;
        settings.webhook_signing_key =
            Some(SecretString::from(base16ct::lower::encode_string(&secret)));
    }
    tracing::info!(
        provider = ?settings.provider,
        outbox = %settings.outbox_dir.display(),
        listen = %settings.listen,
        "mailroom dev: API and workers in one process"
    );
    let base = format!("http://{}", settings.listen);
    tracing::info!(
        "mailroom dev: the API and its docs at {base}/docs, the console at {base}/console (open \
         without sign-in here), every template in every language at {base}/console/templates, \
         sent mail in {}",
        settings.outbox_dir.display()
    );
    let options = WorkerOptions {
        announce: true,
        ..WorkerOptions::from_settings(&settings, None)
    };
    tokio::try_join!(app::work(&settings, options, shutdown.clone()), async {
        let served = app::serve(&settings, Auth::Off, shutdown.clone()).await;
        if served.is_err() {
            // Without the API there is no dev server: stop the workers too.
            shutdown.cancel();
        }
        served
    },)?;
    Ok(())
}

/// Whether a Redis (or a cluster) answers at `url` within a second.
async fn answers(url: &str) -> bool {
    let timeout = Duration::from_secs(1);
    let ping = async {
        let client = mailroom_jobs::RedisClient::open(url, timeout).ok()?;
        let mut conn = client.connect(timeout).await.ok()?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .ok()
    };
    // A connection manager retries a refused connection: bound the whole check.
    matches!(tokio::time::timeout(timeout * 2, ping).await, Ok(Some(_)))
}

/// Makes sure a Redis answers, starting one when needed. The child is killed when the returned
/// handle is dropped.
async fn ensure_redis(settings: &mut Settings) -> anyhow::Result<Option<Child>> {
    if answers(settings.redis_url.expose_secret()).await {
        return Ok(None);
    }
    // The free port may be taken between choosing it and redis-server binding it (another
    // process did the same): a child that exits is replaced on another port.
    for _ in 0..3 {
        let port = free_port()?;
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let Ok(mut child) = child else {
            bail!(
                "nothing answers at REDIS_URL and redis-server is not installed: install Redis \
                 (apt-get install redis-server) and start it with `redis-server --daemonize yes`, \
                 or point REDIS_URL at one"
            );
        };
        let url = format!("redis://127.0.0.1:{port}");
        for _ in 0..100 {
            if matches!(child.try_wait(), Ok(Some(_))) {
                break;
            }
            if answers(&url).await {
                tracing::warn!(%url, "nothing answered at REDIS_URL: started a redis-server child for this run (its data is not kept)");
                settings.redis_url = SecretString::from(url);
                return Ok(Some(child));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    bail!("started redis-server three times, but it never answered")
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("no free port")?;
    Ok(listener.local_addr()?.port())
}
