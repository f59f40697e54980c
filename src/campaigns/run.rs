//! Running a campaign: the start job fixes the audience and cuts it into batch jobs; each batch
//! job sends to the recipients of its batch not sent yet.
//!
//! Exactly once, step by step. A batch reads its ordinals' `done` bits and skips those set.
//! Right before a hand-over it claims the recipients (`try` bits, in one script that also
//! checks the campaign is still running this run), then sends, then records the outcome
//! (`done` bits and counters, one script). A provider that says it did not take a message
//! (429, 5xx, a refused connection) gets the claims released; one that may have taken it (a
//! timeout after the request was written) leaves them, and the retry counts those recipients
//! as `possibly_duplicated` when it sends to them again. A paused or cancelled campaign fails
//! the next claim, so a batch stops between two requests, and a job of an earlier run (before
//! a pause and resume) does nothing.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::StreamExt;
use lettre::message::Mailbox;
use mailroom_jobs::{CampaignJob, EnqueueOptions, Producer, TemplateRef};
use uuid::Uuid;

use super::{
    copy::{Field, Letter, Part, UNSUBSCRIBE_MARK, escape_into, tag},
    model::{BATCH_SIZE, Content, MAX_AUDIENCE, Spec, State},
    store::{CampaignStore, Outcome, Transition},
    throttle::{Limit, Throttles},
};
use crate::{
    domain::{ListId, SubscriberId},
    lists::{
        ListStore, SubscriptionStatus,
        links::{LinkKeys, ListHeaders, ListLink},
        segment::{Filter, RecordView},
    },
    providers::{
        BulkAddress, BulkContent, BulkError, BulkMail, BulkRecipient, OutgoingEmail, Provider,
        ProviderError, text_from_html,
    },
    render::Renderer,
    store::{
        Suppressions,
        activity::{Activity, Outcome as ActivityOutcome},
        suppressions::key_of,
    },
};

/// The longest a batch waits for a throttle inside its job; past it the job is retried later,
/// so a slow domain does not hold a worker slot.
const MAX_INLINE_WAIT: Duration = Duration::from_secs(2);
/// SendGrid's limit on a personalization's substitutions, in bytes.
const MAX_SUBSTITUTION_BYTES: usize = 10_000;
/// How often a send waiting for a domain's connection slot asks again.
const SLOT_POLL: Duration = Duration::from_millis(5);
/// How many SMTP or outbox messages one claim covers (a pause takes effect between claims).
const SMTP_CLAIM: usize = 100;

/// What a campaign worker needs, built once per process.
#[derive(Debug)]
pub struct Campaigner {
    pub store: CampaignStore,
    pub lists: ListStore,
    pub suppressions: Suppressions,
    pub producer: Producer,
    pub renderer: Arc<Renderer>,
    pub provider: Provider,
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
    pub prepared: Mutex<HashMap<String, Arc<Prepared>>>,
    /// Where SMTP bounces at send time are recorded (suppressions, the campaign's bounces).
    pub events: crate::events::EventStore,
    /// Own open and click tracking of SMTP and outbox mail (`None`: off, or SendGrid).
    pub tracker: Option<crate::tracking::Tracker>,
    /// Which mail is tracked (the global switch).
    pub tracking: crate::tracking::Policy,
    /// List id → SendGrid unsubscribe group (`MAILROOM_SENDGRID_GROUPS`).
    pub unsubscribe_groups: std::collections::BTreeMap<u64, u32>,
}

/// Why a campaign job did not finish its work.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Try again later (after the delay, when given).
    #[error("{message}")]
    Retry {
        message: String,
        after: Option<Duration>,
    },
    /// Trying again will not help.
    #[error("{0}")]
    Fatal(String),
    /// Redis failed: try again.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// What a campaign job did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub sent: u64,
    pub skipped: u64,
    pub failed: u64,
    /// The campaign was not running this run (paused, cancelled, resumed since): nothing done.
    pub stale: bool,
    /// Batch jobs pushed (a start job).
    pub batches: u64,
}

/// A campaign read once per process: its spec, lists and copies.
#[derive(Debug)]
pub struct Prepared {
    id: String,
    spec: Spec,
    lists: Vec<ListInfo>,
    filter: Option<Filter>,
    copies: Mutex<HashMap<String, Arc<Letter>>>,
    from: Mailbox,
    reply_to: Option<Mailbox>,
}

#[derive(Debug)]
struct ListInfo {
    id: ListId,
    /// The id in decimal, as records name their subscriptions.
    key: String,
    locale: Option<String>,
    /// Its mail's list headers, but for the token.
    headers: ListHeaders,
    /// `Feedback-ID`.
    feedback_id: String,
}

/// One recipient about to be sent to.
#[derive(Debug)]
struct Recipient {
    ordinal: u64,
    id: SubscriberId,
    record: String,
    /// Index into [`Prepared::lists`]: the list they are mailed as a subscriber of.
    list: usize,
    locale: String,
}

fn mailbox(field: &str, value: &mailroom_jobs::Mailbox) -> Result<Mailbox, RunError> {
    let address = value
        .email
        .parse()
        .map_err(|e| RunError::Fatal(format!("{field}: {e}")))?;
    Ok(Mailbox::new(value.name.clone(), address))
}

impl Campaigner {
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
    async fn start(&self, campaign: Uuid, run: u32) -> Result<Report, RunError> {
        let id = campaign.to_string();
        match self
            .store
            .transition(&id, "start", &run.to_string())
            .await?
        {
            Transition::Done(State::Running, _) => {}
            _ => {
                return Ok(Report {
                    stale: true,
                    ..Report::default()
                });
            }
        }
        let prepared = self.prepared(&id).await?;
        let standing = self
            .store
            .standing(&id)
            .await?
            .ok_or_else(|| RunError::Fatal("the campaign is gone".to_owned()))?;
        let audience = match standing.audience {
            Some(size) => size,
            None => {
                let ids = self.audience(&prepared).await?;
                for (n, chunk) in ids.chunks(262_144).enumerate() {
                    self.store.append_snapshot(&id, chunk, n == 0).await?;
                }
                if ids.is_empty() {
                    self.store.append_snapshot(&id, &[], true).await?;
                }
                let size = ids.len() as u64;
                if !self.store.seal(&id, run, size).await? {
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
        let done = self.store.done_per_batch(&id, BATCH_SIZE, batches).await?;
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

    /// The language a recipient reads: theirs, else their list's, else the default.
    fn locale_of(&self, view: &RecordView<'_>, list: &ListInfo) -> String {
        language(&self.renderer, view.locale(), list.locale.as_deref())
    }

    /// Campaign `id` read and checked, from the cache after the first time.
    async fn prepared(&self, id: &str) -> Result<Arc<Prepared>, RunError> {
        if let Some(found) = self.prepared.lock().ok().and_then(|m| m.get(id).cloned()) {
            return Ok(found);
        }
        let spec = self
            .store
            .spec(id)
            .await?
            .ok_or_else(|| RunError::Fatal("the campaign is gone".to_owned()))?;
        let mut lists = Vec::with_capacity(spec.lists.len());
        for &list in &spec.lists {
            // A list deleted since is left out: its subscriptions went with it.
            if let Some(found) = self.lists.list(list).await? {
                lists.push(ListInfo {
                    id: found.id,
                    key: found.id.to_string(),
                    locale: found.default_locale,
                    headers: ListHeaders::new(
                        &self.public_url,
                        found.id,
                        &found.name,
                        self.unsubscribe_mailto.as_deref(),
                    ),
                    feedback_id: feedback_id(id, found.id),
                });
            }
        }
        let filter = spec
            .segment
            .as_ref()
            .map(Filter::parse)
            .transpose()
            .map_err(|e| RunError::Fatal(format!("segment: {e}")))?;
        let from = match &spec.from {
            Some(from) => mailbox("from", from)?,
            None => self.default_from.clone(),
        };
        let reply_to = spec
            .reply_to
            .as_ref()
            .map(|r| mailbox("reply_to", r))
            .transpose()?;
        let prepared = Arc::new(Prepared {
            id: id.to_owned(),
            spec,
            lists,
            filter,
            copies: Mutex::default(),
            from,
            reply_to,
        });
        if let Ok(mut cache) = self.prepared.lock() {
            // Bounded: a worker runs a few campaigns at a time; an old one is read again.
            if cache.len() >= 64 {
                cache.clear();
            }
            cache.insert(id.to_owned(), prepared.clone());
        }
        Ok(prepared)
    }

    /// The copy of `prepared` in `locale`, rendered once.
    fn copy(&self, prepared: &Prepared, locale: &str) -> Result<Arc<Letter>, RunError> {
        if let Some(copy) = prepared
            .copies
            .lock()
            .ok()
            .and_then(|c| c.get(locale).cloned())
        {
            return Ok(copy);
        }
        let copy = Arc::new(
            render_copy(
                &self.renderer,
                &self.public_url,
                &prepared.spec.content,
                locale,
            )
            .map_err(RunError::Fatal)?,
        );
        if let Ok(mut copies) = prepared.copies.lock() {
            copies.insert(locale.to_owned(), copy.clone());
        }
        Ok(copy)
    }

    /// A batch job.
    async fn batch(&self, campaign: Uuid, run: u32, batch: u32) -> Result<Report, RunError> {
        let id = campaign.to_string();
        let stale = Report {
            stale: true,
            ..Report::default()
        };
        let Some(standing) = self.store.standing(&id).await? else {
            return Ok(stale);
        };
        let Some(audience) = standing.audience else {
            return Ok(stale);
        };
        if standing.state != State::Running || standing.run != run {
            return Ok(stale);
        }
        let from = u64::from(batch) * u64::from(BATCH_SIZE);
        let to = (from + u64::from(BATCH_SIZE)).min(audience);
        if from >= to {
            return Ok(Report::default());
        }
        let prepared = self.prepared(&id).await?;
        let pending: Vec<(u64, SubscriberId)> = self
            .store
            .slice(&id, from, to)
            .await?
            .into_iter()
            .filter(|(_, _, done)| !done)
            .map(|(ordinal, subscriber, _)| (ordinal, subscriber))
            .collect();
        if pending.is_empty() {
            return Ok(Report::default());
        }
        let ids: Vec<SubscriberId> = pending.iter().map(|(_, s)| *s).collect();
        let records = self.lists.raw_records(&ids).await?;
        let mut report = Report::default();
        let mut skipped: BTreeMap<&'static str, Vec<u64>> = BTreeMap::new();
        let mut recipients = Vec::with_capacity(pending.len());
        // Negotiating a locale builds a string: once per distinct (locale, list) of the batch.
        let mut locales: HashMap<(String, usize), String> = HashMap::new();
        for ((ordinal, subscriber), record) in pending.into_iter().zip(records) {
            let Some(record) = record else {
                skipped.entry("erased").or_default().push(ordinal);
                continue;
            };
            let Some(view) = RecordView::of(&record) else {
                skipped.entry("erased").or_default().push(ordinal);
                continue;
            };
            if view.is_blocklisted() {
                skipped.entry("blocklisted").or_default().push(ordinal);
                continue;
            }
            let Some(list) = prepared
                .lists
                .iter()
                .position(|l| view.membership(&l.key) == Some(SubscriptionStatus::Confirmed))
            else {
                skipped.entry("unsubscribed").or_default().push(ordinal);
                continue;
            };
            let locale = match prepared.spec.content {
                Content::Raw { .. } => String::new(),
                Content::Template { .. } => locales
                    .entry((view.locale().to_owned(), list))
                    .or_insert_with(|| self.locale_of(&view, &prepared.lists[list]))
                    .clone(),
            };
            drop(view);
            recipients.push(Recipient {
                ordinal,
                id: subscriber,
                record,
                list,
                locale,
            });
        }
        let keys: Vec<String> = recipients
            .iter()
            .map(|r| key_of(RecordView::of(&r.record).map_or("", |v| v.email())))
            .collect();
        let suppressed = self.suppressions.check(&keys).await?;
        let mut sendable = Vec::with_capacity(recipients.len());
        for (recipient, suppressed) in recipients.into_iter().zip(suppressed) {
            if suppressed {
                skipped
                    .entry("suppressed")
                    .or_default()
                    .push(recipient.ordinal);
            } else {
                sendable.push(recipient);
            }
        }
        for (reason, ordinals) in &skipped {
            let (count, _) = self
                .store
                .mark(&id, Outcome::Skipped, reason, ordinals)
                .await?;
            report.skipped += count;
        }
        // One group per language and throttled domain: each is sent (and throttled) alone.
        let mut groups: BTreeMap<(String, Option<String>), Vec<Recipient>> = BTreeMap::new();
        for recipient in sendable {
            let domain = RecordView::of(&recipient.record)
                .and_then(|v| {
                    v.email()
                        .rsplit_once('@')
                        .map(|(_, d)| d.to_ascii_lowercase())
                })
                .filter(|d| self.throttles.domain_rate(d).is_some());
            groups
                .entry((recipient.locale.clone(), domain))
                .or_default()
                .push(recipient);
        }
        for ((locale, domain), group) in groups {
            let copy = self.copy(&prepared, &locale)?;
            let limits = self.throttles.limits(
                self.provider.name(),
                &id,
                prepared.spec.rate_limit,
                domain.as_deref(),
            );
            let size = match self.provider {
                Provider::SendGrid(_) => BATCH_SIZE as usize,
                _ => SMTP_CLAIM,
            };
            for chunk in group.chunks(size) {
                self.throttle(&limits, chunk.len()).await?;
                let ordinals: Vec<u64> = chunk.iter().map(|r| r.ordinal).collect();
                let (state, mut claimed) = self.store.claim(&id, run, &ordinals).await?;
                claimed.sort_unstable();
                if state != Some(State::Running) {
                    report.stale = true;
                    return Ok(report);
                }
                let claimed: Vec<&Recipient> = chunk
                    .iter()
                    .filter(|r| claimed.binary_search(&r.ordinal).is_ok())
                    .collect();
                if claimed.is_empty() {
                    continue;
                }
                let step = match &self.provider {
                    Provider::SendGrid(sendgrid) => {
                        self.send_bulk(sendgrid, &prepared, &copy, &claimed).await?
                    }
                    _ => {
                        self.send_each(&prepared, &copy, &claimed, domain.as_deref())
                            .await?
                    }
                };
                report.sent += step.sent;
                report.failed += step.failed;
            }
        }
        Ok(report)
    }

    /// Waits until `limits` let `n` sends go: briefly in place, else by retrying the job.
    async fn throttle(&self, limits: &[Limit], n: usize) -> Result<(), RunError> {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        for limit in limits {
            let started = tokio::time::Instant::now();
            loop {
                let wait = self.throttles.take(limit, n).await?;
                if wait.is_zero() {
                    break;
                }
                if started.elapsed() + wait > MAX_INLINE_WAIT {
                    return Err(RunError::Retry {
                        message: format!("throttled by {}", limit.scope),
                        after: Some(wait),
                    });
                }
                tokio::time::sleep(wait).await;
            }
        }
        Ok(())
    }

    /// The fields of `recipient` for `copy`, in the order of `fields`, and their signed token.
    fn values(
        &self,
        prepared: &Prepared,
        fields: &[Field],
        recipient: &Recipient,
    ) -> Result<(Vec<String>, String), RunError> {
        let keys = self.links.as_ref().ok_or_else(|| {
            RunError::Fatal("campaigns need MAILROOM_LINK_KEYS on the worker".to_owned())
        })?;
        let token = keys.sign(&ListLink {
            subscriber: recipient.id,
            list: prepared.lists[recipient.list].id,
            campaign: Some(prepared.id.clone()),
        });
        let view = RecordView::of(&recipient.record)
            .ok_or_else(|| RunError::Fatal("a record changed shape".to_owned()))?;
        let values = fields
            .iter()
            .map(|field| match field {
                Field::Name => view.name().to_owned(),
                Field::Email => view.email().to_owned(),
                Field::UnsubscribeToken => token.clone(),
                Field::UnsubscribeUrl => prepared.lists[recipient.list].headers.page(&token),
                Field::Attribute(name) => view.attribute_text(name),
            })
            .collect();
        Ok((values, token))
    }

    /// `html` for `recipient` with the campaign's tracking (SMTP and outbox; SendGrid tracks
    /// its own).
    fn tracked(&self, prepared: &Prepared, recipient: &Recipient, html: String) -> String {
        let wants = self.tracking.for_campaign(prepared.spec.tracking);
        let campaign = Uuid::parse_str(&prepared.id).ok();
        match (&self.tracker, campaign) {
            (Some(tracker), Some(campaign)) if wants.any() => tracker.apply(
                &html,
                crate::tracking::token::Scope::Campaign {
                    campaign,
                    subscriber: recipient.id.get(),
                },
                wants,
            ),
            _ => html,
        }
    }

    /// The SendGrid unsubscribe group of a campaign's mail: one request goes under one group,
    /// so only when every list of the campaign maps to the same one.
    fn unsubscribe_group(&self, prepared: &Prepared) -> Option<crate::providers::Asm> {
        let mut groups = prepared
            .lists
            .iter()
            .map(|list| self.unsubscribe_groups.get(&u64::from(list.id)).copied());
        let first = groups.next()??;
        groups
            .all(|g| g == Some(first))
            .then_some(crate::providers::Asm { group_id: first })
    }

    /// The headers of `recipient`'s copy: RFC 8058 unsubscribe, `List-Id`, `Feedback-ID`.
    fn headers(
        prepared: &Prepared,
        recipient: &Recipient,
        token: &str,
    ) -> [(&'static str, String); 4] {
        let list = &prepared.lists[recipient.list];
        let [unsubscribe, post, id] = list.headers.for_token(token);
        [
            unsubscribe,
            post,
            id,
            ("Feedback-ID", list.feedback_id.clone()),
        ]
    }

    /// Sends `recipients` in one SendGrid request and records the outcome.
    async fn send_bulk(
        &self,
        sendgrid: &crate::providers::SendGrid,
        prepared: &Prepared,
        copy: &Letter,
        recipients: &[&Recipient],
    ) -> Result<Report, RunError> {
        let id = &prepared.id;
        let fields = copy.fields();
        let index = |field: &Field| fields.iter().position(|f| f == field).unwrap_or(0);
        let tags: Vec<(Arc<str>, Arc<str>)> = (0..fields.len())
            .map(|n| (Arc::from(tag(n, true)), Arc::from(tag(n, false))))
            .collect();
        let mut personalizations = Vec::with_capacity(recipients.len());
        let mut too_large = Vec::new();
        let mut ordinals = Vec::with_capacity(recipients.len());
        for recipient in recipients {
            let (values, token) = self.values(prepared, &fields, recipient)?;
            let mut substitutions = Vec::with_capacity(fields.len() * 2);
            for ((html_tag, text_tag), value) in tags.iter().zip(values) {
                if copy.html.is_some() {
                    let mut escaped = String::with_capacity(value.len());
                    escape_into(&mut escaped, &value);
                    substitutions.push((html_tag.clone(), escaped));
                }
                substitutions.push((text_tag.clone(), value));
            }
            let bytes: usize = substitutions.iter().map(|(k, v)| k.len() + v.len()).sum();
            if bytes > MAX_SUBSTITUTION_BYTES {
                too_large.push(recipient.ordinal);
                continue;
            }
            let view = RecordView::of(&recipient.record)
                .ok_or_else(|| RunError::Fatal("a record changed shape".to_owned()))?;
            // The same for every recipient, List-Unsubscribe-Post and Feedback-ID go once, at the
            // top of the request.
            let [unsubscribe, _, list_id, _] = Self::headers(prepared, recipient, &token);
            let headers = vec![unsubscribe, list_id];
            personalizations.push(BulkRecipient {
                to: [BulkAddress {
                    email: view.email().to_owned(),
                    name: Some(view.name())
                        .filter(|n| !n.is_empty())
                        .map(str::to_owned),
                }],
                substitutions,
                headers,
                custom_args: vec![
                    ("mailroom_subscriber", recipient.id.to_string()),
                    (
                        "mailroom_list",
                        prepared.lists[recipient.list].id.to_string(),
                    ),
                ],
            });
            ordinals.push(recipient.ordinal);
        }
        let mut report = Report::default();
        if !too_large.is_empty() {
            let reason = "personal fields over SendGrid's 10,000 bytes per recipient";
            report.failed += self
                .store
                .mark(id, Outcome::Failed, reason, &too_large)
                .await?
                .0;
        }
        if personalizations.is_empty() {
            return Ok(report);
        }
        let mut content = vec![BulkContent {
            kind: "text/plain",
            value: copy.text.tagged(&|f| tag(index(f), false)),
        }];
        if let Some(html) = &copy.html {
            content.push(BulkContent {
                kind: "text/html",
                value: html.tagged(&|f| tag(index(f), true)),
            });
        }
        let mut headers = BTreeMap::new();
        headers.insert(
            "List-Unsubscribe-Post".to_owned(),
            "List-Unsubscribe=One-Click".to_owned(),
        );
        if let Some(list) = prepared.lists.first() {
            headers.insert("Feedback-ID".to_owned(), list.feedback_id.clone());
        }
        let mail = BulkMail {
            personalizations,
            from: BulkAddress::from(&prepared.from),
            reply_to: prepared.reply_to.as_ref().map(BulkAddress::from),
            subject: copy.subject.tagged(&|f| tag(index(f), false)),
            content,
            headers,
            categories: prepared.spec.categories.clone(),
            custom_args: BTreeMap::from([("mailroom_campaign".to_owned(), id.clone())]),
            tracking_settings: crate::providers::TrackingSettings::of(
                self.tracking.for_campaign(prepared.spec.tracking),
            ),
            asm: self.unsubscribe_group(prepared),
        };
        let handed = sendgrid.send_bulk(&mail).await;
        let outcome = match &handed {
            Ok(_) => ActivityOutcome::Sent,
            Err(BulkError::Refused { .. }) => ActivityOutcome::Refused,
            Err(_) => ActivityOutcome::Deferred,
        };
        self.activity
            .record("sendgrid", outcome, mail.personalizations.len() as u64);
        match handed {
            Ok(_) => {
                let (count, finished) = self.store.mark(id, Outcome::Sent, "", &ordinals).await?;
                report.sent += count;
                if finished {
                    tracing::info!(campaign = %id, "campaign finished");
                }
                Ok(report)
            }
            Err(BulkError::Refused { message }) => {
                report.failed += self
                    .store
                    .mark(id, Outcome::Failed, &message, &ordinals)
                    .await?
                    .0;
                Ok(report)
            }
            Err(BulkError::NotSent {
                message,
                retry_after,
                throttled,
            }) => {
                self.store.release(id, &ordinals).await?;
                let after = if throttled {
                    let delay = retry_after.unwrap_or(Duration::from_secs(1));
                    self.throttles.hold("provider:sendgrid", delay).await?;
                    Some(delay)
                } else {
                    retry_after
                };
                Err(RunError::Retry { message, after })
            }
            Err(BulkError::Unknown { message }) => Err(RunError::Retry {
                message,
                after: None,
            }),
        }
    }

    /// Sends one message per recipient (SMTP, outbox), a few at a time, and records each
    /// outcome.
    async fn send_each(
        &self,
        prepared: &Prepared,
        copy: &Letter,
        recipients: &[&Recipient],
        domain: Option<&str>,
    ) -> Result<Report, RunError> {
        let id = &prepared.id;
        let fields = copy.fields();
        let mut emails = Vec::with_capacity(recipients.len());
        for recipient in recipients {
            let (values, token) = self.values(prepared, &fields, recipient)?;
            let value = |field: &Field| {
                fields
                    .iter()
                    .position(|f| f == field)
                    .map(|n| values[n].clone())
                    .unwrap_or_default()
            };
            let view = RecordView::of(&recipient.record)
                .ok_or_else(|| RunError::Fatal("a record changed shape".to_owned()))?;
            let to = match view.email().parse() {
                Ok(address) => Mailbox::new(
                    Some(view.name())
                        .filter(|n| !n.is_empty())
                        .map(str::to_owned),
                    address,
                ),
                Err(e) => {
                    emails.push((recipient.ordinal, Err(format!("the address: {e}"))));
                    continue;
                }
            };
            let list = prepared.lists[recipient.list].id;
            let email = OutgoingEmail {
                id: Uuid::now_v7(),
                from: prepared.from.clone(),
                to: vec![to],
                cc: Vec::new(),
                bcc: Vec::new(),
                reply_to: prepared.reply_to.clone(),
                subject: copy.subject.fill(false, &value),
                text: copy.text.fill(false, &value),
                html: copy
                    .html
                    .as_ref()
                    .map(|h| self.tracked(prepared, recipient, h.fill(true, &value))),
                headers: Self::headers(prepared, recipient, &token)
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect(),
                categories: prepared.spec.categories.clone(),
                metadata: BTreeMap::from([
                    ("mailroom_campaign".to_owned(), id.clone()),
                    ("mailroom_subscriber".to_owned(), recipient.id.to_string()),
                    ("mailroom_list".to_owned(), list.to_string()),
                ]),
                attachments: Vec::new(),
                secret_links: false,
                // SMTP and outbox mail: SendGrid's groups do not apply.
                unsubscribe_group: None,
                bounce_owner: crate::bounces::reports::Owner::Campaign {
                    campaign: Uuid::parse_str(id).unwrap_or_default(),
                    subscriber: recipient.id.get(),
                },
                // Rewritten above by mailroom's own tracker; SendGrid never sees this message.
                tracking: mailroom_jobs::Tracking::default(),
            };
            emails.push((recipient.ordinal, Ok(email)));
        }
        let outcomes: Vec<(u64, Result<(), ProviderError>)> = futures::stream::iter(emails)
            .map(|(ordinal, email)| async move {
                match email {
                    Ok(email) => (ordinal, self.send_one(&email).await),
                    Err(reason) => (ordinal, Err(ProviderError::permanent(reason))),
                }
            })
            .buffer_unordered(self.parallel_sends.max(1))
            .collect()
            .await;
        let mut sent = Vec::new();
        let mut failed: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        let mut again = Vec::new();
        let mut retry: Option<(String, bool)> = None;
        let mut bounces = Vec::new();
        for (ordinal, outcome) in outcomes {
            match outcome {
                Ok(()) => sent.push(ordinal),
                Err(ProviderError::Permanent {
                    bounce: Some(bounce),
                    ..
                }) => {
                    let mut event = crate::bounces::BounceEvent::event(
                        &*bounce,
                        crate::events::Source::Smtp,
                        id,
                    );
                    event.mailroom_campaign = Some(id.to_string());
                    bounces.push(event);
                    failed.entry(bounce.summary()).or_default().push(ordinal);
                }
                Err(ProviderError::Permanent { message, .. }) => {
                    failed.entry(message).or_default().push(ordinal);
                }
                Err(ProviderError::Transient {
                    message, slow_down, ..
                }) => {
                    again.push(ordinal);
                    let slow = retry.as_ref().is_some_and(|(_, s)| *s) || slow_down;
                    retry = Some((message, slow));
                }
            }
        }
        // Recorded before the recipients are marked: a failure here retries the batch, whose
        // refused recipients are refused again (event dedupe keeps one bounce each).
        if !bounces.is_empty() {
            self.events.apply(&bounces, chrono::Utc::now()).await?;
        }
        let mut report = Report::default();
        report.sent += self.store.mark(id, Outcome::Sent, "", &sent).await?.0;
        for (reason, ordinals) in &failed {
            report.failed += self
                .store
                .mark(id, Outcome::Failed, reason, ordinals)
                .await?
                .0;
        }
        // An SMTP refusal (4xx) or a lost connection: the message was not taken.
        self.store.release(id, &again).await?;
        if let Some((message, slow_down)) = retry {
            let after = Duration::from_secs(if slow_down { 60 } else { 5 });
            if let (true, Some(domain)) = (slow_down, domain) {
                self.throttles
                    .hold(&format!("domain:{domain}"), after)
                    .await?;
            }
            return Err(RunError::Retry {
                message,
                after: Some(after),
            });
        }
        Ok(report)
    }
}

impl Campaigner {
    /// Sends one SMTP or outbox message, within its domain's connection limit when it has one
    /// (SMTP only): the slot is taken across every worker, waited for briefly, and given back
    /// after the hand-over. A domain whose slots stay busy fails the send as not sent, and the
    /// batch retries it later.
    async fn send_one(&self, email: &OutgoingEmail) -> Result<(), ProviderError> {
        let domain = email
            .to
            .first()
            .map(|m| m.email.domain().to_ascii_lowercase())
            .unwrap_or_default();
        let limit = match self.provider {
            Provider::Smtp(_) => self.throttles.connection_limit(&domain),
            _ => None,
        };
        let Some(limit) = limit else {
            return self.hand_over(email).await;
        };
        let token = Uuid::now_v7().to_string();
        let started = tokio::time::Instant::now();
        loop {
            match self.throttles.take_slot(&domain, limit, &token).await {
                Ok(true) => break,
                Ok(false) if started.elapsed() < MAX_INLINE_WAIT => {
                    tokio::time::sleep(SLOT_POLL).await;
                }
                Ok(false) => {
                    return Err(ProviderError::transient(format!(
                        "{domain}: all {limit} connections in use"
                    )));
                }
                Err(error) => return Err(ProviderError::transient(format!("redis: {error}"))),
            }
        }
        let sent = self.hand_over(email).await;
        if let Err(error) = self.throttles.give_slot(&domain, &token).await {
            tracing::debug!(%error, %domain, "a connection slot is left to its lease");
        }
        sent
    }

    /// One message to the provider, counted for the console.
    async fn hand_over(&self, email: &OutgoingEmail) -> Result<(), ProviderError> {
        let sent = self.provider.send(email).await.map(|_| ());
        self.activity.record(
            self.provider.name(),
            crate::providers::ProviderError::outcome(&sent),
            1,
        );
        sent
    }
}

/// The language of a subscriber whose record says `theirs` (empty: none), on a list that
/// says `list`: theirs, else the list's, else the renderer's default, negotiated.
fn language(renderer: &Renderer, theirs: &str, list: Option<&str>) -> String {
    renderer.negotiate(Some(theirs).filter(|l| !l.is_empty()).or(list))
}

/// A `Feedback-ID` (Gmail's feedback loop groups complaints by it): campaign, list, kind, sender.
fn feedback_id(campaign: &str, list: ListId) -> String {
    format!("{campaign}:{list}:campaign:mailroom")
}

/// Renders `content` in `locale` with each per-recipient field left as a field.
///
/// # Errors
/// A reason when the content does not render or names an unknown field.
pub fn render_copy(
    renderer: &Renderer,
    public_url: &str,
    content: &Content,
    locale: &str,
) -> Result<Letter, String> {
    match content {
        Content::Template { name, data } => {
            let mut data = data.clone();
            if name == "newsletter"
                && let Some(object) = data.as_object_mut()
            {
                object.insert(
                    "unsubscribe_link".to_owned(),
                    serde_json::Value::String(format!(
                        "{}/u/{UNSUBSCRIBE_MARK}",
                        public_url.trim_end_matches('/')
                    )),
                );
            }
            let rendered = renderer
                .render(&TemplateRef {
                    name: name.clone(),
                    locale: Some(locale.to_owned()).filter(|l| !l.is_empty()),
                    data,
                })
                .map_err(|e| format!("template {name}: {e}"))?;
            Ok(Letter {
                locale: rendered.locale,
                subject: Part::parse(&rendered.subject).map_err(|e| format!("subject: {e}"))?,
                html: Some(Part::parse(&rendered.html).map_err(|e| format!("html: {e}"))?),
                text: Part::parse(&rendered.text).map_err(|e| format!("text: {e}"))?,
            })
        }
        Content::Raw {
            subject,
            html,
            text,
        } => {
            let html = html.as_deref().filter(|h| !h.trim().is_empty());
            let text = match (text.as_deref().filter(|t| !t.trim().is_empty()), html) {
                (Some(text), _) => text.to_owned(),
                (None, Some(html)) => text_from_html(html),
                (None, None) => return Err("html or text: a campaign needs a body".to_owned()),
            };
            Ok(Letter {
                locale: String::new(),
                subject: Part::parse(subject).map_err(|e| format!("subject: {e}"))?,
                html: html
                    .map(Part::parse)
                    .transpose()
                    .map_err(|e| format!("html: {e}"))?,
                text: Part::parse(&text).map_err(|e| format!("text: {e}"))?,
            })
        }
    }
}
