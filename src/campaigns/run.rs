//! Running a campaign: the start job fixes the audience and cuts it into batch jobs; each batch
//! job ([`super::send`]) sends to the recipients of its batch not sent yet.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use lettre::message::Mailbox;
use mailroom_jobs::{CampaignJob, EnqueueOptions, Producer};

use super::{
    copy::Letter,
    model::{BATCH_SIZE, MAX_AUDIENCE, State},
    outcome::{Report, RunError},
    prepare::{ListInfo, Prepared, Sources, language},
    store::{CampaignStore, Transition},
    throttle::Throttles,
};
use crate::{
    config::MailKind,
    domain::{CampaignId, SubscriberId},
    lists::{ListStore, SubscriptionStatus, links::LinkKeys, segment::RecordView},
    providers::{Route, Routes},
    render::Renderer,
    store::{Suppressions, activity::Activity},
};

/// What a campaign worker needs, built once per process.
#[derive(Debug)]
pub struct Campaigner {
    pub store: CampaignStore,
    pub lists: ListStore,
    pub suppressions: Suppressions,
    pub producer: Producer,
    pub renderer: Arc<Renderer>,
    /// The providers; campaigns go through the bulk route, unless a category routes them
    /// otherwise.
    pub routes: Routes,
    /// Hand-overs per minute, for the console.
    pub activity: Activity,
    pub default_from: Mailbox,
    /// Signs unsubscribe links; without keys a campaign cannot send.
    pub links: Option<LinkKeys>,
    pub public_url: String,
    pub unsubscribe_mailto: Option<String>,
    pub throttles: Throttles,
    /// SMTP and outbox messages sent at once by one batch.
    pub parallel_sends: usize,
    /// Campaigns already read, with their copies per language.
    pub prepared: Mutex<HashMap<CampaignId, Arc<Prepared>>>,
    /// Where SMTP bounces at send time are recorded (suppressions, the campaign's bounces).
    pub events: crate::events::EventStore,
    /// Own open and click tracking of mail a provider sends one by one (`None`: off, or the
    /// provider tracks).
    pub tracker: Option<crate::tracking::Tracker>,
    /// Which mail is tracked (the global switch).
    pub tracking: crate::tracking::Policy,
    /// List id → the provider's unsubscribe group (`MAILROOM_SENDGRID_GROUPS`).
    pub unsubscribe_groups: std::collections::BTreeMap<u64, u32>,
}

impl Campaigner {
    /// The route of a campaign with `categories`.
    pub(super) fn route(&self, categories: &[String]) -> &Route {
        self.routes.route(MailKind::Bulk, categories)
    }

    /// What reading a campaign needs.
    fn sources(&self) -> Sources<'_> {
        Sources {
            store: &self.store,
            lists: &self.lists,
            renderer: &self.renderer,
            public_url: &self.public_url,
            unsubscribe_mailto: self.unsubscribe_mailto.as_deref(),
            default_from: &self.default_from,
        }
    }

    /// Campaign `campaign` read and checked, from the cache after the first time.
    pub(super) async fn prepared(&self, campaign: CampaignId) -> Result<Arc<Prepared>, RunError> {
        if let Some(found) = (self.prepared.lock().ok()).and_then(|m| m.get(&campaign).cloned()) {
            return Ok(found);
        }
        let prepared = Arc::new(self.sources().read(campaign).await?);
        if let Ok(mut cache) = self.prepared.lock() {
            // Bounded: a worker runs a few campaigns at a time; an old one is read again.
            if cache.len() >= 64 {
                cache.clear();
            }
            cache.insert(campaign, prepared.clone());
        }
        Ok(prepared)
    }

    /// The copy of `prepared` in `locale`, rendered once.
    pub(super) fn copy(&self, prepared: &Prepared, locale: &str) -> Result<Arc<Letter>, RunError> {
        self.sources().letter(prepared, locale)
    }

    /// The language a recipient reads: theirs, else their list's, else the default.
    pub(super) fn locale_of(&self, view: &RecordView<'_>, list: &ListInfo) -> String {
        self.sources().locale_of(view, list)
    }

    /// Runs one campaign job.
    ///
    /// # Errors
    /// See [`RunError`].
    pub async fn run(&self, job: &CampaignJob) -> Result<Report, RunError> {
        match *job {
            CampaignJob::Start { campaign, run } => self.start(campaign, run).await,
            CampaignJob::Batch {
                campaign,
                run,
                batch,
            } => self.batch(campaign, run, batch).await,
        }
    }

    /// The start job: fixes the audience (once) and pushes a batch job for every batch with
    /// someone left to send to.
    async fn start(&self, campaign: CampaignId, run: u32) -> Result<Report, RunError> {
        let id = campaign;
        match self.store.transition(id, "start", &run.to_string()).await? {
            Transition::Done(State::Running, _) => {}
            _ => {
                return Ok(Report {
                    stale: true,
                    ..Report::default()
                });
            }
        }
        let prepared = self.prepared(campaign).await?;
        let standing = self
            .store
            .standing(id)
            .await?
            .ok_or_else(|| RunError::Fatal("the campaign is gone".to_owned()))?;
        let audience = match standing.audience {
            Some(size) => size,
            None => {
                let ids = self.audience(&prepared).await?;
                for (n, chunk) in ids.chunks(262_144).enumerate() {
                    self.store.append_snapshot(id, chunk, n == 0).await?;
                }
                if ids.is_empty() {
                    self.store.append_snapshot(id, &[], true).await?;
                }
                let size = ids.len() as u64;
                if !self.store.seal(id, run, size).await? {
                    return Ok(Report {
                        stale: true,
                        ..Report::default()
                    });
                }
                tracing::info!(campaign = %id, audience = size, "audience fixed");
                size
            }
        };
        let batches = u32::try_from(audience.div_ceil(u64::from(BATCH_SIZE)))
            .map_err(|_| RunError::Fatal("the audience is too large".to_owned()))?;
        let done = self.store.done_per_batch(id, BATCH_SIZE, batches).await?;
        let wanted: Vec<(CampaignJob, EnqueueOptions)> = (0..batches)
            .filter(|&b| {
                let size =
                    (audience - u64::from(b) * u64::from(BATCH_SIZE)).min(u64::from(BATCH_SIZE));
                done.get(b as usize).copied().unwrap_or(0) < size
            })
            .map(|batch| {
                let job = CampaignJob::Batch {
                    campaign,
                    run,
                    batch,
                };
                let options = mailroom_jobs::Job::enqueue_options(&job);
                (job, options)
            })
            .collect();
        for chunk in wanted.chunks(1000) {
            for pushed in self.producer.push_each(chunk).await? {
                pushed.map_err(|e| RunError::Retry {
                    message: format!("could not queue a batch: {e}"),
                    after: None,
                })?;
            }
        }
        Ok(Report {
            batches: wanted.len() as u64,
            ..Report::default()
        })
    }

    /// The campaign's audience: confirmed, not blocklisted subscribers of its lists who match
    /// its segment, each once, grouped by language so that batches are mostly of one.
    async fn audience(&self, prepared: &Prepared) -> Result<Vec<SubscriberId>, RunError> {
        /// The languages seen (a handful), and each member as (language number, id): 16 bytes
        /// a person rather than a string each, so a million-person audience is 16 MB here.
        #[derive(Default)]
        struct Found {
            locales: Vec<String>,
            members: Vec<(u8, SubscriberId)>,
        }
        let found: Arc<Mutex<Found>> = Arc::default();
        for list in &prepared.lists {
            let (found, renderer) = (found.clone(), self.renderer.clone());
            let (key, list_locale) = (list.key.clone(), list.locale.clone());
            let filter = prepared.filter.clone();
            let visit = move |rows: &[(SubscriberId, String)]| {
                // Negotiating builds a string: once per distinct tag of this read.
                let mut negotiated: HashMap<&str, String> = HashMap::new();
                let mut mine = Vec::with_capacity(rows.len());
                for (id, record) in rows {
                    let Some(view) = RecordView::of(record) else {
                        continue;
                    };
                    // Whole buckets hold other lists' subscribers too.
                    if view.membership(&key) != Some(SubscriptionStatus::Confirmed)
                        || view.is_blocklisted()
                        || filter.as_ref().is_some_and(|f| !f.matches(&view))
                    {
                        continue;
                    }
                    let locale = negotiated.entry(view.locale()).or_insert_with(|| {
                        language(&renderer, view.locale(), list_locale.as_deref())
                    });
                    mine.push((locale.clone(), *id));
                }
                if let Ok(mut found) = found.lock() {
                    for (locale, id) in mine {
                        let n = match found.locales.iter().position(|l| *l == locale) {
                            Some(n) => n,
                            None => {
                                found.locales.push(locale);
                                found.locales.len() - 1
                            }
                        };
                        // Locales are negotiated to the few mailroom has: far below 256.
                        found.members.push((u8::try_from(n).unwrap_or(u8::MAX), id));
                    }
                }
            };
            self.lists.scan_records_with_ids(list.id, 8, visit).await?;
        }
        let found = Arc::try_unwrap(found)
            .map_err(|_| RunError::Fatal("the audience is still being read".to_owned()))?;
        let Found {
            locales,
            mut members,
        } = found.into_inner().unwrap_or_default();
        if members.len() as u64 > MAX_AUDIENCE {
            return Err(RunError::Fatal(format!(
                "the audience holds {} people; a campaign goes to at most {MAX_AUDIENCE}",
                members.len()
            )));
        }
        // Each person once (the first list that has them), then by language.
        members.sort_by_key(|(_, id)| *id);
        members.dedup_by_key(|(_, id)| *id);
        let mut order: Vec<u8> = (0..u8::try_from(locales.len()).unwrap_or(u8::MAX)).collect();
        order.sort_by_key(|&n| locales.get(usize::from(n)).cloned());
        let rank = |n: u8| order.iter().position(|&o| o == n).unwrap_or(usize::MAX);
        members.sort_by_key(|&(n, id)| (rank(n), id));
        Ok(members.into_iter().map(|(_, id)| id).collect())
    }
}
