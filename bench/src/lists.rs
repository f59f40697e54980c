//! List benchmarks: a CSV import of a generated file through `mailroom import subscribers` (rows
//! per second, and Redis memory per subscriber), and segment counts over the imported list.

use std::{
    fmt,
    io::Write,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use chrono::Utc;
use mailroom::{
    config::Settings,
    domain::ListId,
    lists::{List, ListStore, Optin, Visibility},
};
use mailroom_jobs::RedisConnection;
use redis::Value;

use crate::common::{bench_prefix, delete_prefix};

/// What `bench import` measured.
#[derive(Debug)]
pub(crate) struct ImportReport {
    rows: usize,
    bytes: u64,
    elapsed: Duration,
    memory_per_subscriber: Option<f64>,
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "import: {} rows ({:.1} MB) through `mailroom import subscribers`",
            self.rows,
            self.bytes as f64 / 1e6
        )?;
        write!(
            f,
            "rate:   {:.0} rows/s ({:.2} s)",
            self.rows as f64 / self.elapsed.as_secs_f64(),
            self.elapsed.as_secs_f64()
        )?;
        if let Some(bytes) = self.memory_per_subscriber {
            write!(
                f,
                "\nmemory: {bytes:.0} bytes of Redis per subscriber (one list, record, address index, subscription)"
            )?;
        }
        Ok(())
    }
}

/// Writes `rows` generated subscribers as CSV (email, name, locale, plan, seats, signed_up):
/// about 80 bytes a row.
fn generate(path: &Path, rows: usize) -> anyhow::Result<u64> {
    let file = std::fs::File::create(path).context("cannot write the CSV file")?;
    let mut out = std::io::BufWriter::new(file);
    writeln!(out, "email,name,locale,plan,seats,signed_up")?;
    let locales = ["en", "fr", "de", "es", "pt-BR", "ja", "ar"];
    let plans = ["free", "pro", "team"];
    for i in 0..rows {
        writeln!(
            out,
            "user{i}@example{}.com,User {i},{},{},{},2025-{:02}-{:02}",
            i % 97,
            locales[i % locales.len()],
            plans[i % plans.len()],
            i % 50,
            1 + i % 12,
            1 + i % 28
        )?;
    }
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// Redis's `used_memory`, summed over the masters.
pub(crate) async fn used_memory(conn: &mut RedisConnection) -> anyhow::Result<u64> {
    let answers = conn
        .on_every_master(&redis::cmd("INFO").arg("memory").clone())
        .await?;
    let mut total = 0;
    for (_, answer) in answers {
        let text = match answer {
            Value::BulkString(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Value::VerbatimString { text, .. } => text,
            Value::SimpleString(text) => text,
            other => bail!("INFO answered {other:?}"),
        };
        total += text
            .lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .context("INFO has no used_memory")?;
    }
    Ok(total)
}

/// A private single opt-in list under `prefix`.
async fn make_list(store: &ListStore) -> anyhow::Result<ListId> {
    let now = Utc::now();
    let list = List {
        id: store.next_list_id().await?,
        name: "bench".to_owned(),
        description: None,
        optin: Optin::Single,
        visibility: Visibility::Private,
        default_locale: None,
        created_at: now,
        updated_at: now,
    };
    store.save_list(&list).await?;
    Ok(list.id)
}

/// A generated file imported into a fresh list under `prefix`: the list, and the report.
pub(crate) async fn import_into(
    settings: &Settings,
    prefix: &str,
    rows: usize,
) -> anyhow::Result<(ListId, ImportReport)> {
    let mut conn = settings.redis_connection().await?;
    let store = ListStore::new(conn.clone(), prefix);
    let list = make_list(&store).await?;
    let path: PathBuf = std::env::temp_dir().join(format!("{prefix}.csv"));
    let bytes = generate(&path, rows)?;
    let before = used_memory(&mut conn).await?;
    let started = Instant::now();
    let output = tokio::process::Command::new(crate::mailroom_exe()?)
        .args(["import", "subscribers"])
        .arg(&path)
        .args(["--list", &list.to_string(), "--status", "confirmed"])
        .env("MAILROOM_REDIS_PREFIX", prefix)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .context("cannot run mailroom import")?;
    let elapsed = started.elapsed();
    let _ = std::fs::remove_file(&path);
    if !output.status.success() {
        bail!(
            "mailroom import failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let after = used_memory(&mut conn).await?;
    let counts = store.counts(list).await?;
    if counts.confirmed != rows as u64 {
        bail!("{} of {rows} subscribers were imported", counts.confirmed);
    }
    let memory_per_subscriber = (after > before).then(|| (after - before) as f64 / rows as f64);
    Ok((
        list,
        ImportReport {
            rows,
            bytes,
            elapsed,
            memory_per_subscriber,
        },
    ))
}

/// `bench import`: imports `rows` generated rows and deletes them again.
///
/// # Errors
/// When the import fails or imports another number of rows.
pub(crate) async fn import(settings: &Settings, rows: usize) -> anyhow::Result<ImportReport> {
    let prefix = bench_prefix(settings);
    let outcome = import_into(settings, &prefix, rows).await;
    delete_prefix(settings.redis_connection().await?, &prefix).await?;
    Ok(outcome?.1)
}

/// What `bench segment` measured.
#[derive(Debug)]
pub(crate) struct SegmentReport {
    subscribers: u64,
    runs: Vec<(&'static str, u64, Duration)>,
}

impl fmt::Display for SegmentReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "segment counts over {} subscribers through POST /v1/lists/{{id}}/count (one `mailroom serve`)",
            self.subscribers
        )?;
        for (what, matched, elapsed) in &self.runs {
            write!(
                f,
                "\n  {what}: {matched} matched in {:.0} ms, {:.0} subscribers/s evaluated",
                elapsed.as_secs_f64() * 1000.0,
                self.subscribers as f64 / elapsed.as_secs_f64()
            )?;
        }
        Ok(())
    }
}

/// `bench segment`: imports `rows` generated rows, then counts segments of them through the
/// API, and deletes them again.
///
/// # Errors
/// When the import or a count fails.
pub(crate) async fn segment(settings: &Settings, rows: usize) -> anyhow::Result<SegmentReport> {
    let prefix = bench_prefix(settings);
    let outcome = count_segments(settings, &prefix, rows).await;
    delete_prefix(settings.redis_connection().await?, &prefix).await?;
    outcome
}

async fn count_segments(
    settings: &Settings,
    prefix: &str,
    rows: usize,
) -> anyhow::Result<SegmentReport> {
    let (list, _) = import_into(settings, prefix, rows).await?;
    let (mut server, base, client) = crate::common::start_server(prefix, &[]).await?;
    let filters = [
        (
            "status = enabled (every subscriber)",
            serde_json::json!({"filter": {"field": "status", "op": "eq", "value": "enabled"}}),
        ),
        (
            "locale in (fr, de)",
            serde_json::json!({"filter": {"field": "locale", "op": "in", "value": ["fr", "de"]}}),
        ),
        (
            "plan = pro and seats >= 25 and not domain = example1.com",
            serde_json::json!({"filter": {"and": [
                {"field": "attributes.plan", "op": "eq", "value": "pro"},
                {"field": "attributes.seats", "op": "gte", "value": 25},
                {"not": {"field": "domain", "op": "eq", "value": "example1.com"}}
            ]}}),
        ),
    ];
    let mut runs = Vec::new();
    for (what, body) in filters {
        let started = Instant::now();
        let answer: serde_json::Value = client
            .post(format!("{base}/v1/lists/{list}/count"))
            .bearer_auth(crate::common::BENCH_KEY)
            .json(&body)
            .timeout(Duration::from_secs(600))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let elapsed = started.elapsed();
        if answer["scanned"].as_u64() != Some(rows as u64) {
            bail!("the count scanned {} of {rows}", answer["scanned"]);
        }
        runs.push((what, answer["matched"].as_u64().unwrap_or(0), elapsed));
    }
    let _ = server.start_kill();
    let _ = server.wait().await;
    Ok(SegmentReport {
        subscribers: rows as u64,
        runs,
    })
}

/// What `bench unsubscribe` measured.
#[derive(Debug)]
pub(crate) struct UnsubscribeReport {
    count: usize,
    per_sec: f64,
    p50: Duration,
    p99: Duration,
}

impl fmt::Display for UnsubscribeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "one-click unsubscribes: {} RFC 8058 POSTs to /u/TOKEN (one `mailroom serve`)",
            self.count
        )?;
        writeln!(f, "rate:    {:.0} unsubscribes/s", self.per_sec)?;
        write!(
            f,
            "latency: p50 {:.2} ms, p99 {:.2} ms",
            crate::common::ms_f(self.p50),
            crate::common::ms_f(self.p99)
        )
    }
}

/// Posts RFC 8058's one-click body to each of `urls`, `concurrency` at a time: each one's
/// latency.
async fn one_click_all(
    client: &reqwest::Client,
    urls: Vec<String>,
    concurrency: usize,
) -> anyhow::Result<Vec<Duration>> {
    use futures::StreamExt;
    futures::stream::iter(urls)
        .map(|url| {
            let client = client.clone();
            async move {
                let sent = Instant::now();
                let response = client
                    .post(url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("List-Unsubscribe=One-Click")
                    .send()
                    .await?;
                anyhow::ensure!(
                    response.status().as_u16() == 200,
                    "a one-click POST got {}",
                    response.status()
                );
                let _ = response.bytes().await?;
                Ok(sent.elapsed())
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<anyhow::Result<Duration>>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()
}

/// `bench unsubscribe`: imports `count` subscribers, then unsubscribes each with the one-click
/// POST a mailbox provider sends, `concurrency` at a time.
///
/// # Errors
/// When a POST fails or the list does not end fully unsubscribed.
pub(crate) async fn unsubscribe(
    settings: &Settings,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<UnsubscribeReport> {
    use mailroom::lists::links::{LinkKeys, ListLink};
    const KEYS: &str = "bench:bench-link-key-0123456789abcdef0123456789";
    let prefix = bench_prefix(settings);
    let outcome = async {
        let (list, _) = import_into(settings, &prefix, count).await?;
        let store = ListStore::new(settings.redis_connection().await?, &prefix);
        let ids = std::sync::Mutex::new(Vec::with_capacity(count));
        store
            .scan(list, 2000, 4, |members| {
                if let Ok(mut ids) = ids.lock() {
                    ids.extend(members.iter().map(|m| m.id));
                }
            })
            .await?;
        let keys = LinkKeys::parse(KEYS).map_err(anyhow::Error::msg)?;
        let ids = ids
            .into_inner()
            .map_err(|_| anyhow::anyhow!("a poisoned lock"))?;
        let (mut server, base, client) =
            crate::common::start_server(&prefix, &[("MAILROOM_LINK_KEYS", KEYS)]).await?;
        let urls: Vec<String> = ids
            .iter()
            .map(|&subscriber| {
                let token = keys.sign(&ListLink {
                    subscriber,
                    list,
                    campaign: None,
                });
                format!("{base}/u/{token}")
            })
            .collect();
        let started = Instant::now();
        let mut latencies = one_click_all(&client, urls, concurrency).await?;
        let elapsed = started.elapsed();
        let _ = server.start_kill();
        let _ = server.wait().await;
        let counts = store.counts(list).await?;
        if counts.unsubscribed != ids.len() as u64 {
            bail!("{} of {} are unsubscribed", counts.unsubscribed, ids.len());
        }
        latencies.sort();
        let at =
            |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        Ok(UnsubscribeReport {
            count: ids.len(),
            per_sec: ids.len() as f64 / elapsed.as_secs_f64(),
            p50: at(0.5),
            p99: at(0.99),
        })
    }
    .await;
    delete_prefix(settings.redis_connection().await?, &prefix).await?;
    outcome
}
