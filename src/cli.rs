//! The operator commands behind `mailroom queue …`, `enqueue` and `render`: argument types and
//! the plain-text output they print. The work itself lives in [`crate::queue`].

use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use mailroom_jobs::{EmailMessage, Job, Mailbox, Producer, SendEmail};

use crate::{
    config::Settings,
    queue::{QueueAdmin, QueueStats},
};

/// `mailroom queue …`
#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Ready, delayed, in-flight and dead jobs per queue, and the live workers.
    Stats,
    /// List dead letters, newest first, with their reason, attempts and last error.
    Dead {
        /// The queue to look at.
        #[arg(long, default_value = SendEmail::QUEUE)]
        queue: String,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Requeue one dead letter by id, or all of them with --all (attempts start again at zero).
    Retry {
        /// The dead letter's id.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Requeue every dead letter of the queue.
        #[arg(long)]
        all: bool,
        /// The queue.
        #[arg(long, default_value = SendEmail::QUEUE)]
        queue: String,
    },
}

/// `mailroom enqueue …`
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("body").required(true).multiple(true).args(["text", "html"])))]
pub struct EnqueueArgs {
    /// A recipient (repeat for more).
    #[arg(long, required = true)]
    pub to: Vec<String>,
    /// The subject.
    #[arg(long)]
    pub subject: String,
    /// The plain-text body.
    #[arg(long)]
    pub text: Option<String>,
    /// The HTML body.
    #[arg(long)]
    pub html: Option<String>,
    /// The sender's address (default: MAILROOM_FROM).
    #[arg(long)]
    pub from: Option<String>,
}

/// Queues one email, printing its id.
///
/// # Errors
/// When the message is invalid or Redis does not answer.
pub async fn enqueue(settings: &Settings, args: EnqueueArgs) -> anyhow::Result<()> {
    let message = EmailMessage {
        to: args.to.into_iter().map(Mailbox::new).collect(),
        from: args.from.map(Mailbox::new),
        subject: Some(args.subject),
        text: args.text,
        html: args.html,
        ..EmailMessage::default()
    };
    message
        .check()
        .map_err(|e| anyhow::anyhow!("invalid message: {e}"))?;
    let conn = settings.redis_connection().await?;
    let producer = Producer::new(conn, settings.redis_prefix.clone());
    let pushed = producer.push(&SendEmail::new(message)).await?;
    println!("{}", pushed.id);
    Ok(())
}

/// `mailroom render …`
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The template: verification, welcome, password_reset, notification, newsletter.
    pub template: String,
    /// The recipient's language (BCP 47).
    #[arg(long)]
    pub locale: Option<String>,
    /// The template's data as JSON (default: the template's sample data).
    #[arg(long)]
    pub data: Option<String>,
    /// Write the HTML here and print the subject and text; without it, print JSON.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

/// Renders a template without sending it.
///
/// # Errors
/// When the data is not JSON, the template is unknown or the data does not fit it.
pub async fn render(settings: &Settings, args: RenderArgs) -> anyhow::Result<()> {
    let data = match &args.data {
        Some(json) => serde_json::from_str(json).context("--data is not JSON")?,
        None => crate::render::samples::of_in(
            &args.template,
            args.locale.as_deref().unwrap_or(&settings.default_locale),
        )
        .unwrap_or_default(),
    };
    let template = mailroom_jobs::TemplateRef {
        name: args.template,
        locale: args.locale,
        data,
    };
    let rendered = crate::render::Renderer::from_settings(settings)?.render(&template)?;
    match args.out {
        Some(path) => {
            std::fs::write(&path, &rendered.html)
                .with_context(|| format!("could not write {}", path.display()))?;
            println!("Subject: {}\n\n{}", rendered.subject, rendered.text);
        }
        None => println!("{}", serde_json::to_string_pretty(&rendered)?),
    }
    Ok(())
}

/// Runs a `mailroom queue` command, printing to stdout.
///
/// # Errors
/// When Redis does not answer, or a dead letter to retry does not exist.
pub async fn queue(settings: &Settings, command: QueueCommand) -> anyhow::Result<()> {
    let conn = settings.redis_connection().await?;
    let admin = QueueAdmin::new(conn, settings.redis_prefix.clone());
    match command {
        QueueCommand::Stats => {
            for queue in mailroom_jobs::QUEUES {
                print_stats(&admin.stats(queue).await?);
            }
        }
        QueueCommand::Dead { queue, limit } => {
            known(&queue)?;
            let letters = admin.dead(&queue, limit).await?;
            if letters.is_empty() {
                println!("no dead letters in queue {queue}");
            }
            for letter in letters {
                let died = UNIX_EPOCH + Duration::from_millis(letter.died_at_ms);
                println!(
                    "{}  reason: {}  attempts: {}  died: {}  last error: {}",
                    letter.id,
                    letter.reason,
                    letter.attempts,
                    chrono::DateTime::<chrono::Utc>::from(died)
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    letter.last_error
                );
            }
        }
        QueueCommand::Retry { id, all, queue } => {
            known(&queue)?;
            if all {
                let requeued = admin.retry_all(&queue).await?;
                println!("requeued {requeued} dead letters of queue {queue}");
            } else if let Some(id) = id {
                if !admin.retry(&queue, &id).await? {
                    bail!("no dead letter {id} in queue {queue}");
                }
                println!("requeued {id}");
            }
        }
    }
    Ok(())
}

fn known(queue: &str) -> anyhow::Result<()> {
    if !mailroom_jobs::QUEUES.contains(&queue) {
        bail!(
            "unknown queue {queue:?}; known queues: {}",
            mailroom_jobs::QUEUES.join(", ")
        );
    }
    Ok(())
}

fn print_stats(stats: &QueueStats) {
    println!(
        "queue {}: ready {}  delayed {}  in flight {}  dead {}  (done {}, retried {}, dead-lettered {} in all)",
        stats.queue,
        stats.ready,
        stats.delayed,
        stats.in_flight,
        stats.dead,
        stats.done_total,
        stats.retried_total,
        stats.dead_total
    );
    if stats.workers.is_empty() {
        println!("  no live workers");
    }
    for worker in &stats.workers {
        println!("  worker {worker}");
    }
}
