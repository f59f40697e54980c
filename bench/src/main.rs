//! `mailroom-bench`: how fast mailroom runs on this machine, measured from outside the product.
//! The load generators, the stand-in SendGrid and the bench-only no-op worker live here, so the
//! `mailroom` binary carries none of them.
//!
//! ```sh
//! cargo build --release                                  # the mailroom binary under test
//! cargo run --release -p mailroom-bench -- queue         # or email | smtp | verify | validate | events | batch | import | segment | unsubscribe | campaign | webhooks | restart
//! ```
//!
//! The scenarios start `mailroom serve` and `mailroom work` as child processes: the `mailroom`
//! binary next to this one (`target/release/`), or `MAILROOM_BIN`. `queue` drains no-op jobs
//! with this binary's own worker (`mailroom-bench work`), since mailroom itself runs no no-op
//! queue.

mod campaign;
mod common;
mod hooks;
mod lists;
mod restart;
mod scenarios;
mod served;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context;
use apalis::layers::WorkerBuilderExt;
use apalis_core::worker::builder::WorkerBuilder;
use clap::{Args, Parser, Subcommand};
use futures::FutureExt;
use mailroom::{
    config::Settings,
    queue::RedisQueue,
    shutdown, telemetry,
    worker::{run_noop, supervise, worker_name},
};
use mailroom_jobs::Noop;

// The same allocator as the mailroom binary: the stand-in servers in this process share the
// machine with the processes measured, and should cost what they did inside `mailroom bench`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "mailroom-bench", about = "mailroom's benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Push no-op jobs and drain them with one worker process.
    Queue(Size),
    /// Push send jobs (about 2 KB of HTML) and send them with one `mailroom work` through the
    /// SendGrid provider to a local server answering 202.
    Email {
        #[command(flatten)]
        size: Size,
        /// Send templated jobs (`verification`, five locales) rendered by the worker.
        #[arg(long)]
        templated: bool,
    },
    /// Push send jobs (about 2 KB of HTML) and send them with one `mailroom work` through the
    /// SMTP provider to Postfix's `smtp-sink` on loopback.
    Smtp {
        #[command(flatten)]
        size: Size,
        /// SMTP connections the worker keeps open.
        #[arg(long, default_value_t = 16)]
        pool: usize,
    },
    /// Confirm verification tokens through `POST /verify` on a `mailroom serve`, measuring the
    /// rate and the latency.
    Verify {
        /// Tokens to issue and confirm.
        #[arg(long, default_value_t = 20_000)]
        confirmations: usize,
        /// Connections at once.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// POST signed Event Webhook batches to a `mailroom serve` and apply them with one
    /// `mailroom work`, end to end.
    Events {
        /// Batches to send.
        #[arg(long, default_value_t = 200)]
        batches: usize,
        /// Events per batch.
        #[arg(long, default_value_t = 1000)]
        size: usize,
        /// Connections at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
    /// Validate batches of 1,000 addresses through `POST /v1/validations/batch` on a
    /// `mailroom serve`, with every domain's DNS answer in the Redis cache.
    Validate {
        /// Batches to send.
        #[arg(long, default_value_t = 200)]
        batches: usize,
        /// Connections at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
    /// Queue messages in batches of 1,000 through `POST /v1/emails/batch` on a `mailroom
    /// serve`: messages accepted per second.
    Batch {
        /// Batches to send.
        #[arg(long, default_value_t = 200)]
        batches: usize,
        /// Connections at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
    /// Send emails while Redis (AOF, `appendfsync always`) is killed and started again twice
    /// under a running `mailroom work` and `mailroom serve`: lost, duplicated, recovery times.
    Restart {
        /// Emails to send.
        #[arg(long, default_value_t = 20_000)]
        emails: usize,
    },
    /// Import a generated CSV file of subscribers with `mailroom import subscribers`: rows/s
    /// and Redis memory per subscriber.
    Import {
        /// Rows to generate and import.
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
    },
    /// Import a generated list, then count segments of it through `POST /v1/lists/{id}/count`.
    Segment {
        /// Subscribers in the list.
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
    },
    /// Import subscribers, then unsubscribe each with the RFC 8058 one-click POST to `/u/TOKEN`
    /// on a `mailroom serve`: the rate and the latency.
    Unsubscribe {
        /// Subscribers to unsubscribe.
        #[arg(long, default_value_t = 50_000)]
        count: usize,
        /// Connections at once.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
    /// A newsletter in 7 languages to a generated list through one `mailroom work`: the
    /// SendGrid provider to a local stand-in, or `--smtp` to Postfix's smtp-sink.
    Campaign {
        /// Subscribers in the list (default: 1,000,000 through SendGrid; 100,000 otherwise).
        #[arg(long)]
        rows: Option<usize>,
        /// The provider: SendGrid's, Postmark's or Mailgun's stand-in, or SMTP to smtp-sink.
        #[arg(long, value_enum, default_value_t = campaign::Via::Sendgrid)]
        via: campaign::Via,
        /// Campaign jobs the worker runs at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Put SendGrid first on the campaign's route, with its port refusing connections:
        /// every batch fails over to `--via` (smtp or postmark).
        #[arg(long)]
        primary_down: bool,
    },
    /// Deliver events to webhook endpoints (all at one local receiver answering 200) with one
    /// `mailroom work`: deliveries a second.
    Webhooks(hooks::HooksRun),
    /// Print the path of a signed tracking link (an open image, or with --click a link), made
    /// with MAILROOM_LINK_KEYS, for `wrk` against a `mailroom serve` with the same keys:
    /// `wrk -t2 -c64 -d10s --latency http://127.0.0.1:8080$(mailroom-bench tracking-link)`.
    TrackingLink {
        /// A click link (302 to https://example.com/) instead of the open image.
        #[arg(long)]
        click: bool,
    },
    /// The no-op worker `queue` starts (not for use by hand).
    #[command(hide = true)]
    Work {
        /// Jobs in flight at once.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
}

/// How big a run is.
#[derive(Debug, Args)]
struct Size {
    /// Jobs to push and drain (default: 100,000 no-op jobs, 20,000 emails).
    #[arg(long)]
    jobs: Option<usize>,
    /// The worker's concurrency.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
}

/// The `mailroom` binary the scenarios run: `MAILROOM_BIN`, else the one beside this binary.
///
/// # Errors
/// When neither exists (build it first: `cargo build --release`).
pub(crate) fn mailroom_exe() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("MAILROOM_BIN") {
        return Ok(PathBuf::from(path));
    }
    let here = std::env::current_exe().context("cannot find this executable")?;
    let beside = here.with_file_name("mailroom");
    anyhow::ensure!(
        beside.is_file(),
        "no mailroom binary at {}: run `cargo build --release` first (or set MAILROOM_BIN)",
        beside.display()
    );
    Ok(beside)
}

/// A signed `/t/o/…` (or `/t/c/…`) path for a new message id.
fn tracking_link(settings: &Settings, click: bool) -> anyhow::Result<String> {
    use mailroom::tracking::token::{Scope, Target};
    let keys = mailroom::lists::links::LinkKeys::from_settings(settings)?
        .context("set MAILROOM_LINK_KEYS (the same as the serve's)")?;
    let target = Target {
        scope: Scope::Message(mailroom_jobs::MessageId::fresh()),
        sent_at: 0,
        url: click.then(|| "https://example.com/".to_owned()),
    };
    let kind = if click { "c" } else { "o" };
    Ok(format!("/t/{kind}/{}", target.sign(&keys)))
}

/// Drains the no-op queue until stopped.
async fn work(settings: &Settings, concurrency: usize) -> anyhow::Result<()> {
    let name = worker_name();
    let queue = RedisQueue::<Noop>::connect(
        settings.redis_client()?,
        mailroom::queue::QueueConfig::from_settings(settings),
        name.clone(),
    )
    .await
    .context("could not connect to Redis")?;
    let shutdown = shutdown::on_signal();
    let stop = shutdown
        .clone()
        .cancelled_owned()
        .map(Ok::<(), std::io::Error>);
    let worker = WorkerBuilder::new(format!("{name}/noop"))
        .backend(queue.backend())
        .concurrency(concurrency)
        .catch_panic()
        .build(run_noop)
        .run_until(stop);
    supervise(worker, &queue, &shutdown, Duration::from_secs(5)).await
}

async fn run(settings: &Settings, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Queue(size) => {
            let jobs = size.jobs.unwrap_or(100_000);
            println!(
                "{}",
                scenarios::queue(settings, jobs, size.concurrency).await?
            );
        }
        Command::Email { size, templated } => {
            let jobs = size.jobs.unwrap_or(20_000);
            let report = scenarios::email(settings, jobs, size.concurrency, templated).await?;
            println!("{report}");
        }
        Command::Smtp { size, pool } => {
            let jobs = size.jobs.unwrap_or(20_000);
            let report = scenarios::smtp(settings, jobs, size.concurrency, pool).await?;
            println!("{report}");
        }
        Command::Verify {
            confirmations,
            concurrency,
        } => println!(
            "{}",
            served::verify(settings, confirmations, concurrency).await?
        ),
        Command::Events {
            batches,
            size,
            concurrency,
        } => println!(
            "{}",
            served::events(settings, batches, size, concurrency).await?
        ),
        Command::Validate {
            batches,
            concurrency,
        } => println!(
            "{}",
            served::validate(settings, batches, concurrency).await?
        ),
        Command::Batch {
            batches,
            concurrency,
        } => println!("{}", served::batch(settings, batches, concurrency).await?),
        Command::Import { rows } => println!("{}", lists::import(settings, rows).await?),
        Command::Segment { rows } => println!("{}", lists::segment(settings, rows).await?),
        Command::Unsubscribe { count, concurrency } => println!(
            "{}",
            lists::unsubscribe(settings, count, concurrency).await?
        ),
        Command::Campaign {
            rows,
            via,
            concurrency,
            primary_down,
        } => {
            let default = if via == campaign::Via::Sendgrid {
                1_000_000
            } else {
                100_000
            };
            let rows = rows.unwrap_or(default);
            println!(
                "{}",
                campaign::campaign(settings, rows, via, concurrency, primary_down).await?
            );
        }
        Command::Webhooks(size) => println!("{}", hooks::webhooks(settings, size).await?),
        Command::Restart { emails } => println!("{}", restart::restart(emails).await?),
        Command::Work { concurrency } => work(settings, concurrency).await?,
        Command::TrackingLink { click } => println!("{}", tracking_link(settings, click)?),
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(None) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("mailroom-bench: {error:#}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(settings.log_format);
    match run(&settings, cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("mailroom-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}
