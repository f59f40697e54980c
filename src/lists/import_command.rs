//! `mailroom import subscribers FILE.csv --list ID`: an import from a file, straight into
//! Redis, with a progress bar (bytes read, rows/s, ETA). Where stderr is not a terminal (CI,
//! pipes) the bar stays hidden and a progress line is logged every few seconds instead.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use uuid::Uuid;

use super::{
    ListStore, SubscriptionStatus,
    import::{self, ImportSettings, ImportTargets},
    imports::{ImportStore, RowReport, Totals},
};
use crate::{config::Settings, domain::ListId, store::Suppressions};

/// `mailroom import …`
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import subscribers from a CSV file (columns email, name, locale, attributes, and any
    /// other as an attribute) into a list.
    Subscribers(ImportArgs),
}

/// The arguments of `mailroom import subscribers`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The CSV file, with a header line.
    pub file: PathBuf,
    /// The list's id.
    #[arg(long)]
    pub list: u64,
    /// What new subscriptions start as. `confirmed` says the people consented elsewhere.
    #[arg(long, value_enum, default_value = "unconfirmed")]
    pub status: ImportStatusArg,
    /// Change existing subscribers' name, locale and attributes to the file's.
    #[arg(long)]
    pub update: bool,
    /// `,` `;` `|` or `tab`; detected from the header line when absent.
    #[arg(long)]
    pub delimiter: Option<String>,
    /// Email each new (unconfirmed) subscriber the double opt-in link; the workers send them.
    #[arg(long, conflicts_with = "status")]
    pub send_optin: bool,
}

/// What new subscriptions start as.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ImportStatusArg {
    Unconfirmed,
    Confirmed,
}

/// A reader that counts the bytes it hands out.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The delimiter `--delimiter` names: `,`, `;`, `|` or `tab` (detected when not given).
fn delimiter_of(arg: Option<&str>) -> anyhow::Result<Option<u8>> {
    Ok(match arg {
        None => None,
        Some("tab") => Some(b'\t'),
        Some(d @ ("," | ";" | "|")) => Some(d.as_bytes()[0]),
        Some(other) => bail!("--delimiter is one of , ; | or tab, not {other:?}"),
    })
}

/// What the import did, and its first 20 refused rows.
fn print_summary(id: Uuid, totals: &Totals, seconds: f64, reports: &[RowReport]) {
    println!(
        "import {id}: {} rows in {seconds:.1} s ({:.0} rows/s): {} imported, {} updated, {} skipped, {} invalid",
        totals.rows,
        totals.rows as f64 / seconds.max(1e-3),
        totals.imported,
        totals.updated,
        totals.skipped,
        totals.invalid
    );
    for report in reports.iter().take(20) {
        println!("  line {}: {}", report.line, report.reason);
    }
    if reports.len() > 20 {
        println!(
            "  … {} more: GET /v1/imports/{id}/errors has them all",
            reports.len() - 20
        );
    }
}

/// Runs `mailroom import …`.
///
/// # Errors
/// When the list does not exist, the file cannot be read, or Redis fails.
pub async fn run(settings: &Settings, command: ImportCommand) -> anyhow::Result<()> {
    let ImportCommand::Subscribers(args) = command;
    let delimiter = delimiter_of(args.delimiter.as_deref())?;
    let conn = settings.redis_connection().await?;
    let prefix = &settings.redis_prefix;
    let lists = ListStore::new(conn.clone(), prefix);
    let list = ListId::new(args.list).context("a list id is a positive number")?;
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("could not open {}", args.file.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let read = Arc::new(AtomicU64::new(0));
    let source = Counting {
        inner: file,
        read: read.clone(),
    };
    let status = match args.status {
        ImportStatusArg::Unconfirmed => SubscriptionStatus::Unconfirmed,
        ImportStatusArg::Confirmed => SubscriptionStatus::Confirmed,
    };
    let Some(found) = lists.list(list).await? else {
        bail!("there is no list {list}");
    };
    let optin = args.send_optin.then(|| {
        (
            mailroom_jobs::Producer::new(conn.clone(), prefix.clone()),
            settings.optin_ttl,
            found,
        )
    });
    let targets = ImportTargets {
        lists,
        suppressions: Suppressions::new(conn.clone(), prefix),
        imports: ImportStore::new(conn, prefix),
        optin,
        request_id: None,
    };
    let id = Uuid::now_v7();
    targets.imports.start(id, list, status).await?;
    let bar = ProgressBar::new(size).with_style(
        ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes}  {msg}  ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let last_line = std::sync::Mutex::new(Instant::now());
    let settings = ImportSettings {
        list,
        status,
        update: args.update,
        delimiter,
        send_optin: args.send_optin,
    };
    let totals = import::run(
        source,
        &targets,
        id,
        &settings,
        |totals| {
            let rate = totals.rows as f64 / started.elapsed().as_secs_f64().max(1e-3);
            bar.set_position(read.load(Ordering::Relaxed));
            bar.set_message(format!("{} rows, {rate:.0} rows/s", totals.rows));
            if bar.is_hidden()
                && let Ok(mut last) = last_line.lock()
                && last.elapsed() >= Duration::from_secs(2)
            {
                *last = Instant::now();
                tracing::info!(rows = totals.rows, rate = rate.round(), "importing");
            }
        },
        None,
    )
    .await?;
    bar.finish_and_clear();
    let reports = targets.imports.all_reports(id).await?;
    print_summary(id, &totals, started.elapsed().as_secs_f64(), &reports);
    Ok(())
}
