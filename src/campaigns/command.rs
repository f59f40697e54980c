//! `mailroom campaign list|show|watch|pause|resume|cancel`: campaigns from the command line,
//! straight from Redis. `watch` draws a live progress bar (sent of the audience, rate, ETA,
//! failures) and ends with a summary; where stderr is not a terminal it logs a line every few
//! seconds instead.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use mailroom_jobs::Producer;

use super::{
    Campaign, CampaignStore, State, Transition,
    lifecycle::{self, Change},
};
use crate::config::Settings;
use crate::domain::CampaignId;

/// `mailroom campaign …`
#[derive(Debug, Subcommand)]
pub enum CampaignCommand {
    /// The newest campaigns with their state and progress.
    List {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// One campaign in full, as JSON.
    Show { id: CampaignId },
    /// Follow a campaign's progress until it ends (or pauses).
    Watch { id: CampaignId },
    /// Pause a running campaign.
    Pause { id: CampaignId },
    /// Resume a paused campaign.
    Resume { id: CampaignId },
    /// Cancel a campaign.
    Cancel { id: CampaignId },
}

/// How often `watch` reads the campaign.
const WATCH_EVERY: Duration = Duration::from_millis(500);

/// Runs a `mailroom campaign` command.
///
/// # Errors
/// When Redis does not answer, the campaign does not exist, or its state refuses the change.
pub async fn run(settings: &Settings, command: CampaignCommand) -> anyhow::Result<()> {
    let conn = settings.redis_connection().await?;
    let store = CampaignStore::new(
        conn.clone(),
        &settings.redis_prefix,
        settings.campaign_retention_secs,
    );
    let producer = Producer::new(conn, settings.redis_prefix.clone());
    match command {
        CampaignCommand::List { limit } => {
            let campaigns = store.list(0, limit.clamp(1, 1000)).await?;
            if campaigns.is_empty() {
                println!("no campaigns");
            }
            for c in campaigns {
                println!("{}", line(&c));
            }
        }
        CampaignCommand::Show { id } => {
            let campaign = existing(&store, id).await?;
            println!("{}", serde_json::to_string_pretty(&campaign)?);
        }
        CampaignCommand::Watch { id } => watch(&store, id).await?,
        CampaignCommand::Pause { id } => act(&store, &producer, id, Change::Pause).await?,
        CampaignCommand::Resume { id } => act(&store, &producer, id, Change::Resume).await?,
        CampaignCommand::Cancel { id } => act(&store, &producer, id, Change::Cancel).await?,
    }
    Ok(())
}

async fn existing(store: &CampaignStore, id: CampaignId) -> anyhow::Result<Campaign> {
    store
        .get(id)
        .await?
        .with_context(|| format!("no campaign {id}"))
}

/// One line about a campaign: id, state, progress, name.
fn line(c: &Campaign) -> String {
    let audience = c.audience.map_or_else(|| "?".to_owned(), |a| a.to_string());
    format!(
        "{}  {:<9}  sent {}/{}  failed {}  skipped {}  {}",
        c.id,
        c.state.as_str(),
        c.sent,
        audience,
        c.failed,
        c.skipped,
        c.spec.name
    )
}

async fn act(
    store: &CampaignStore,
    producer: &Producer,
    id: CampaignId,
    change: Change,
) -> anyhow::Result<()> {
    match lifecycle::change(store, producer, id, change).await? {
        Transition::Done(state, _) => println!("campaign {id} is {}", state.as_str()),
        Transition::Refused(state) => bail!(
            "campaign {id} is {} and cannot {}",
            state.as_str(),
            change.action()
        ),
        Transition::Missing => bail!("no campaign {id}"),
    }
    Ok(())
}

async fn watch(store: &CampaignStore, id: CampaignId) -> anyhow::Result<()> {
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} sent  {msg}  ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut last_line = std::time::Instant::now();
    let campaign = loop {
        let c = existing(store, id).await?;
        bar.set_length(c.audience.unwrap_or(0));
        bar.set_position(c.sent + c.failed + c.skipped);
        let message = format!(
            "{}  {:.0}/s  failed {}  skipped {}",
            c.state.as_str(),
            c.rate,
            c.failed,
            c.skipped
        );
        if bar.is_hidden() && last_line.elapsed() >= Duration::from_secs(5) {
            tracing::info!("{}", line(&c));
            last_line = std::time::Instant::now();
        }
        bar.set_message(message);
        if c.state.is_over() || c.state == State::Paused || c.state == State::Draft {
            break c;
        }
        tokio::time::sleep(WATCH_EVERY).await;
    };
    bar.finish_and_clear();
    println!("{}", line(&campaign));
    if let Some(reason) = &campaign.paused_reason {
        println!("paused: {reason}");
    }
    for (reason, count) in &campaign.reasons {
        println!("  {reason}: {count}");
    }
    if campaign.possibly_duplicated > 0 {
        println!(
            "  possibly duplicated (hand-overs under way when a worker died): {}",
            campaign.possibly_duplicated
        );
    }
    Ok(())
}
