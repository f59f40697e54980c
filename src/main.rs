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
    /// Inspect and repair queues.
    Queue {
        #[command(subcommand)]
        command: cli::QueueCommand,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Making a key needs no settings: it works before any are written.
    let command = match cli.command {
        Command::Dkim { command } => {
            return match mailroom::providers::dkim::run(command) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("mailroom: {error:#}");
                    ExitCode::FAILURE
                }
            };
        }
        // The doctor reports settings that do not load as one of its checks.
        Command::Doctor => {
            let settings = Settings::load(cli.config.as_deref()).and_then(|settings| {
                app::check(&settings)?;
                Ok(settings)
            });
            return match mailroom::doctor::run(settings).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("mailroom: {error:#}");
                    ExitCode::FAILURE
                }
            };
        }
        command => command,
    };
    let loaded = Settings::load(cli.config.as_deref()).and_then(|settings| {
        app::check(&settings)?;
        Ok(settings)
    });
    let settings = match loaded {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("mailroom: {error:#}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(settings.log_format);
    for (name, closest) in Settings::unknown_environment() {
        match closest {
            Some(meant) => tracing::warn!(
                "{name} is not a mailroom setting and is ignored; did you mean {meant}?"
            ),
            None => tracing::warn!("{name} is not a mailroom setting and is ignored"),
        }
    }
    let outcome = match command {
        Command::Serve => app::serve(&settings, Auth::Required, shutdown::on_signal()).await,
        Command::Dev => dev::run(settings, shutdown::on_signal()).await,
        Command::Enqueue(args) => cli::enqueue(&settings, args).await,
        Command::Render(args) => cli::render(&settings, args).await,
        Command::Work { concurrency } => {
            let options = WorkerOptions::from_settings(&settings, concurrency);
            app::work(&settings, options, shutdown::on_signal()).await
        }
        Command::Queue { command } => cli::queue(&settings, command).await,
        Command::Campaign { command } => {
            mailroom::campaigns::command::run(&settings, command).await
        }
        Command::Import { command } => {
            mailroom::lists::import_command::run(&settings, command).await
        }
        Command::Dkim { .. } | Command::Doctor => {
            unreachable!("handled before the settings load")
        }
    };
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
