//! The `mailroom` command: parses the command line, loads settings, sets up logging, and
//! calls into the library. No logic lives here.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use mailroom::{
    app, cli,
    config::{Misconfigured, Settings},
    dev,
    http::Auth,
    shutdown, telemetry,
    worker::WorkerOptions,
};

// Workers allocate and free many small buffers per job (payloads, requests, Redis replies);
// mimalloc does this with far less contention and time than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "mailroom",
    version,
    about = "An email microservice: queues, workers, providers."
)]
struct Cli {
    /// A TOML file of settings; the environment overrides it.
    #[arg(long, global = true, env = "MAILROOM_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API.
    Serve,
    /// The API and the workers in one process, without API keys: for development.
    Dev,
    /// Queue one email through the jobs crate's Producer.
    Enqueue(cli::EnqueueArgs),
    /// Render a template without sending it.
    Render(cli::RenderArgs),
    /// Run a worker process.
    Work {
        /// Jobs in flight at once (default: MAILROOM_CONCURRENCY, else 32).
        #[arg(long)]
        concurrency: Option<usize>,
    },
    /// Import subscribers into a list.
    Import {
        #[command(subcommand)]
        command: mailroom::lists::import_command::ImportCommand,
    },
    /// List, follow, pause, resume and cancel campaigns.
    Campaign {
        #[command(subcommand)]
        command: mailroom::campaigns::command::CampaignCommand,
    },
    /// Check that this deployment will work: settings, Redis, the API's public URL, the
    /// provider, webhooks and the sending domains' SPF, DKIM and DMARC; exit code 1 when a
    /// check fails.
    Doctor,
    /// DKIM keys: `mailroom dkim keygen --domain D --selector S`.
    Dkim {
        #[command(subcommand)]
        command: mailroom::providers::dkim::DkimCommand,
    },
    /// Stored API keys: `mailroom keys create --name N --scope emails:send`, `list`,
    /// `revoke ID`, `rotate ID`.
    Keys {
        #[command(subcommand)]
        command: mailroom::keys::command::KeysCommand,
    },
    /// Inspect and repair queues.
    Queue {
        #[command(subcommand)]
        command: cli::QueueCommand,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        // Making a key needs no settings: it works before any are written.
        Command::Dkim { command } => said(mailroom::providers::dkim::run(command)),
        // The doctor reports settings that do not load as one of its checks.
        Command::Doctor => said(mailroom::doctor::run(load(cli.config.as_deref())).await),
        command => {
            let settings = match load(cli.config.as_deref()) {
                Ok(settings) => settings,
                Err(error) => {
                    eprintln!("mailroom: {error:#}");
                    return ExitCode::from(2);
                }
            };
            telemetry::init(settings.log_format);
            warn_of_unknown_settings();
            logged(run(settings, command).await)
        }
    }
}

/// The settings, loaded and checked.
fn load(config: Option<&std::path::Path>) -> anyhow::Result<Settings> {
    let settings = Settings::load(config)?;
    app::check(&settings)?;
    Ok(settings)
}

/// A warning for each `MAILROOM_` variable that is no setting, with the one it may mean.
fn warn_of_unknown_settings() {
    for (name, closest) in Settings::unknown_environment() {
        match closest {
            Some(meant) => tracing::warn!(
                "{name} is not a mailroom setting and is ignored; did you mean {meant}?"
            ),
            None => tracing::warn!("{name} is not a mailroom setting and is ignored"),
        }
    }
}

/// Runs a command that needs settings.
async fn run(settings: Settings, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve => app::serve(&settings, Auth::Required, shutdown::on_signal()).await,
        Command::Dev => dev::run(settings, shutdown::on_signal()).await,
        Command::Enqueue(args) => cli::enqueue(&settings, args).await,
        Command::Render(args) => cli::render(&settings, args).await,
        Command::Work { concurrency } => {
            let options = WorkerOptions::from_settings(&settings, concurrency);
            app::work(&settings, options, shutdown::on_signal()).await
        }
        Command::Queue { command } => cli::queue(&settings, command).await,
        Command::Keys { command } => mailroom::keys::command::run(&settings, command).await,
        Command::Campaign { command } => {
            mailroom::campaigns::command::run(&settings, command).await
        }
        Command::Import { command } => {
            mailroom::lists::import_command::run(&settings, command).await
        }
        Command::Dkim { .. } | Command::Doctor => {
            anyhow::bail!("dkim and doctor run before the settings load")
        }
    }
}

/// The exit code of a command that answers on standard error (before logging starts).
fn said(outcome: anyhow::Result<()>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("mailroom: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The exit code of a command that logs: 2 for settings that cannot work.
fn logged(outcome: anyhow::Result<()>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.chain().any(|e| e.is::<Misconfigured>()) => {
            tracing::error!("{error:#}");
            ExitCode::from(2)
        }
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}
