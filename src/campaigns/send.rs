//! The batch job: sends to the recipients of one batch not sent yet, through the provider's
//! batch interface, and records each recipient's answer.
//!
//! Exactly once, step by step. A batch reads its ordinals' `done` bits and skips those set.
//! Right before a hand-over it claims the recipients (`try` bits, in one script that also
//! checks the campaign is still running this run), then sends, then records the outcome
//! (`done` bits and counters, one script). A recipient the provider did not take (429, 5xx, a
//! refused connection) gets its claim released; one it may have taken (a timeout after the
//! request was written) keeps it, and the retry counts that recipient as `possibly_duplicated`
//! when it sends again. A paused or cancelled campaign fails the next claim, so a batch stops
//! between two hand-overs, and a job of an earlier run (before a pause and resume) does nothing.

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use futures::future::BoxFuture;
use mailroom_jobs::ThrottleScope;

use super::{
    copy::{Field, Letter},
    model::{BATCH_SIZE, Content, State},
    outcome::{Report, RunError},
    prepare::Prepared,
    run::Campaigner,
    store::Outcome,
    throttle::Limit,
};
use crate::{
    domain::{CampaignId, SubscriberId},
    lists::{SubscriptionStatus, links::ListLink, segment::RecordView},
    providers::{
        Addressee, Answer, Batch, BatchRecipient, Delivery, PerMessage, ProviderError, SlowDown,
        bounce::Owner,
    },
    store::suppressions::key_of,
};

/// The longest a batch waits for a throttle inside its job; past it the job is retried later,
/// so a slow domain does not hold a worker slot.
pub(super) const MAX_INLINE_WAIT: Duration = Duration::from_secs(2);
/// How often a send waiting for a domain's connection slot asks again.
const SLOT_POLL: Duration = Duration::from_millis(5);

/// One recipient about to be sent to, read from their record once.
#[derive(Debug)]
struct Recipient {
    ordinal: u64,
    id: SubscriberId,
    /// Index into the prepared campaign's lists: the list they are mailed as a subscriber of.
    list: usize,
    locale: String,
    /// Their address, as their record holds it (checked when it was stored).
    email: String,
    /// Their name; empty when they gave none.
    name: String,
    /// The values of their letter's fields, in the letter's order.
    values: Vec<String>,
    /// Their signed unsubscribe token.
    token: String,
}

/// The answers of one hand-over, by what they mean for the recipients.
#[derive(Debug, Default)]
struct Tally {
    sent: Vec<u64>,
    /// Refused, by reason.
    failed: BTreeMap<String, Vec<u64>>,
    /// Not taken: their claims are released.
    again: Vec<u64>,
    /// The last reason not taken, its wait, and whoever asked to slow down.
    retry: Option<(String, Option<Duration>, Option<SlowDown>)>,
    /// The last reason a hand-over may or may not have been taken.
    unknown: Option<String>,
    /// Bounce events of refusals at hand-over.
    bounces: Vec<crate::events::Event>,
}

impl Tally {
    /// Counts `answer` for the recipient at `ordinal` of campaign `id`.
    fn add(&mut self, id: CampaignId, ordinal: u64, answer: Answer) {
        match answer {
            Answer::Sent(_) => {
                self.sent.push(ordinal);
            }
            Answer::Refused { bounce, reason, .. } => {
                let reason = match bounce {
                    Some(bounce) => {
                        let id = id.to_string();
                        let mut event = crate::bounces::BounceEvent::at_hand_over(&*bounce, &id);
                        event.mailroom_campaign = Some(id);
                        self.bounces.push(event);
                        bounce.summary()
                    }
                    None => reason,
                };
                self.failed.entry(reason).or_default().push(ordinal);
            }
            Answer::NotSent {
                reason,
                retry_after,
                cause,
            } => {
                let slow_down = cause.slow_down();
                self.again.push(ordinal);
                let slow_down = slow_down.or(self.retry.as_ref().and_then(|(_, _, s)| *s));
                self.retry = Some((reason, retry_after, slow_down));
            }
            Answer::Unknown { reason } => {
                self.unknown = Some(reason);
            }
        }
    }
}

/// What a batch does with one recipient.
#[derive(Debug)]
enum Read {
    Skip(&'static str),
    Send(Box<Recipient>),
}

/// A batch's recipients, read and sorted: who is sent to, and who is skipped why.
#[derive(Debug, Default)]
struct Sorted {
    sendable: Vec<Recipient>,
    skipped: BTreeMap<&'static str, Vec<u64>>,
}

impl Campaigner {
    /// A batch job.
    pub(super) async fn batch(
        &self,
        campaign: CampaignId,
        run: u32,
        batch: u32,
    ) -> Result<Report, RunError> {
        let id = campaign;
        let stale = Report {
            stale: true,
            ..Report::default()
        };
        let Some(standing) = self.store.standing(id).await? else {
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
        let prepared = self.prepared(campaign).await?;
        let pending: Vec<(u64, SubscriberId)> = (self.store.slice(id, from, to).await?)
            .into_iter()
            .filter(|(_, _, done)| !done)
            .map(|(ordinal, subscriber, _)| (ordinal, subscriber))
            .collect();
        if pending.is_empty() {
            return Ok(Report::default());
        }
        let sorted = self.sort(&prepared, pending).await?;
        let mut report = Report::default();
        for (reason, ordinals) in &sorted.skipped {
            report.skipped += self
                .store
                .mark(id, Outcome::Skipped, reason, ordinals)
                .await?
                .0;
        }
        self.send_groups(&prepared, run, sorted.sendable, report)
            .await
    }

    /// Sends `sendable` in groups of one language and throttled domain, each throttled alone,
    /// a claim and a hand-over at a time; adds to `report`.
    async fn send_groups(
        &self,
        prepared: &Prepared,
        run: u32,
        sendable: Vec<Recipient>,
        mut report: Report,
    ) -> Result<Report, RunError> {
        let id = prepared.id;
        let mut groups: BTreeMap<(String, Option<String>), Vec<Recipient>> = BTreeMap::new();
        for recipient in sendable {
            let domain = recipient.email.rsplit_once('@').map_or("", |(_, d)| d);
            let throttled = self.throttles.throttled_domain(domain).map(str::to_owned);
            let key = (recipient.locale.clone(), throttled);
            groups.entry(key).or_default().push(recipient);
        }
        for ((locale, domain), group) in groups {
            let letter = self.copy(prepared, &locale)?;
            let rate = prepared.spec.rate_limit;
            let route = self.route(&prepared.spec.categories);
            let limits = (self.throttles).limits(route.name(), id, rate, domain.as_deref());
            for chunk in group.chunks(route.batch_limit()) {
                self.throttle(&limits, chunk.len()).await?;
                let ordinals: Vec<u64> = chunk.iter().map(|r| r.ordinal).collect();
                let (state, mut claimed) = self.store.claim(id, run, &ordinals).await?;
                claimed.sort_unstable();
                if state != Some(State::Running) {
                    report.stale = true;
                    return Ok(report);
                }
                let claimed: Vec<&Recipient> = (chunk.iter())
                    .filter(|r| claimed.binary_search(&r.ordinal).is_ok())
                    .collect();
                if claimed.is_empty() {
                    continue;
                }
                let step = (self.hand_over(prepared, &letter, &claimed, domain.as_deref())).await?;
                report.sent += step.sent;
                report.failed += step.failed;
            }
        }
        Ok(report)
    }

    /// Reads the records of `pending` once each and sorts them: gone, blocklisted, no longer
    /// subscribed or suppressed people are skipped; the rest get their letter's values.
    async fn sort(
        &self,
        prepared: &Prepared,
        pending: Vec<(u64, SubscriberId)>,
    ) -> Result<Sorted, RunError> {
        let ids: Vec<SubscriberId> = pending.iter().map(|(_, s)| *s).collect();
        let records = self.lists.raw_records(&ids).await?;
        let mut sorted = Sorted::default();
        let mut recipients = Vec::with_capacity(pending.len());
        // Negotiating a locale builds a string: once per distinct (locale, list) of the batch.
        let mut locales: HashMap<(String, usize), String> = HashMap::new();
        for ((ordinal, subscriber), record) in pending.into_iter().zip(records) {
            let view = record.as_deref().and_then(RecordView::of);
            match self.read(prepared, (ordinal, subscriber), view, &mut locales)? {
                Read::Skip(reason) => sorted.skipped.entry(reason).or_default().push(ordinal),
                Read::Send(recipient) => recipients.push(*recipient),
            }
        }
        let keys: Vec<String> = (recipients.iter()).map(|r| key_of(&r.email)).collect();
        let suppressed = self.suppressions.check(&keys).await?;
        for (recipient, suppressed) in recipients.into_iter().zip(suppressed) {
            if suppressed {
                let skipped = sorted.skipped.entry("suppressed").or_default();
                skipped.push(recipient.ordinal);
            } else {
                sorted.sendable.push(recipient);
            }
        }
        Ok(sorted)
    }

    /// What to do with one recipient, read from their record's `view` (`None`: erased).
    fn read(
        &self,
        prepared: &Prepared,
        (ordinal, subscriber): (u64, SubscriberId),
        view: Option<RecordView<'_>>,
        locales: &mut HashMap<(String, usize), String>,
    ) -> Result<Read, RunError> {
        let Some(view) = view else {
            return Ok(Read::Skip("erased"));
        };
        if view.is_blocklisted() {
            return Ok(Read::Skip("blocklisted"));
        }
        let Some(list) = (prepared.lists.iter())
            .position(|l| view.membership(&l.key) == Some(SubscriptionStatus::Confirmed))
        else {
            return Ok(Read::Skip("unsubscribed"));
        };
        let locale = match prepared.spec.content {
            Content::Raw(_) => String::new(),
            Content::Template(_) => locales
                .entry((view.locale().to_owned(), list))
                .or_insert_with(|| self.locale_of(&view, &prepared.lists[list]))
                .clone(),
        };
        let letter = self.copy(prepared, &locale)?;
        let (values, token) = self.values(prepared, &letter, list, subscriber, &view)?;
        Ok(Read::Send(Box::new(Recipient {
            ordinal,
            id: subscriber,
            list,
            locale,
            email: view.email().to_owned(),
            name: view.name().to_owned(),
            values,
            token,
        })))
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

    /// The values of `letter`'s fields for a subscriber of list number `list` whose record
    /// `view` shows, and their signed unsubscribe token.
    fn values(
        &self,
        prepared: &Prepared,
        letter: &Letter,
        list: usize,
        subscriber: SubscriberId,
        view: &RecordView<'_>,
    ) -> Result<(Vec<String>, String), RunError> {
        let keys = self.links.as_ref().ok_or_else(|| {
            RunError::Fatal("campaigns need MAILROOM_LINK_KEYS on the worker".to_owned())
        })?;
        let list = &prepared.lists[list];
        let token = keys.sign(&ListLink {
            subscriber,
            list: list.id,
            campaign: Some(prepared.id),
        });
        let values = (letter.fields.iter())
            .map(|field| match field {
                Field::Name => view.name().to_owned(),
                Field::Email => view.email().to_owned(),
                Field::UnsubscribeToken => token.clone(),
                Field::UnsubscribeUrl => list.headers.page(&token),
                Field::Attribute(name) => view.attribute_text(name),
            })
            .collect();
        Ok((values, token))
    }

    /// The provider's unsubscribe group of a campaign's mail: one hand-over goes under one
    /// group, so only when every list of the campaign maps to the same one.
    fn unsubscribe_group(&self, prepared: &Prepared) -> Option<u32> {
        let mut groups = (prepared.lists.iter())
            .map(|list| self.unsubscribe_groups.get(&u64::from(list.id)).copied());
        let first = groups.next()??;
        groups.all(|g| g == Some(first)).then_some(first)
    }

    /// The batch of `letter` for `recipients`.
    fn batch_of<'a>(
        &self,
        prepared: &'a Prepared,
        letter: &'a Letter,
        recipients: &[&'a Recipient],
    ) -> Batch<'a> {
        let recipients = (recipients.iter())
            .map(|recipient| {
                let list = &prepared.lists[recipient.list];
                let [unsubscribe, post, list_id] = list.headers.for_token(&recipient.token);
                BatchRecipient {
                    to: Addressee {
                        email: &recipient.email,
                        name: Some(recipient.name.as_str()).filter(|n| !n.is_empty()),
                    },
                    values: &recipient.values,
                    headers: vec![
                        unsubscribe,
                        post,
                        list_id,
                        ("Feedback-ID", list.feedback_id.clone()),
                    ],
                    metadata: vec![
                        ("mailroom_subscriber", recipient.id.to_string()),
                        ("mailroom_list", list.id.to_string()),
                    ],
                    bounce_owner: Owner::Campaign {
                        campaign: prepared.id,
                        subscriber: recipient.id.get(),
                    },
                }
            })
            .collect();
        Batch {
            from: &prepared.from,
            reply_to: prepared.reply_to.as_ref(),
            body: &letter.body,
            categories: &prepared.spec.categories,
            metadata: vec![("mailroom_campaign", prepared.id.to_string())],
            tracking: self.tracking.for_campaign(prepared.spec.tracking),
            unsubscribe_group: self.unsubscribe_group(prepared),
            recipients,
        }
    }

    /// Hands `recipients` to the provider as one batch and records each answer.
    async fn hand_over(
        &self,
        prepared: &Prepared,
        letter: &Letter,
        recipients: &[&Recipient],
        domain: Option<&str>,
    ) -> Result<Report, RunError> {
        let batch = self.batch_of(prepared, letter, recipients);
        let each = Each {
            campaigner: self,
            prepared,
            recipients,
        };
        let route = self.route(&prepared.spec.categories);
        let answers = route.send_batch(&batch, &each).await;
        self.record(prepared, recipients, answers, domain).await
    }

    /// Records the provider's `answers` for `recipients`: sent, failed (with the bounces of
    /// refused ones), or released for a retry that waits as long as someone asked.
    async fn record(
        &self,
        prepared: &Prepared,
        recipients: &[&Recipient],
        answers: Vec<Answer>,
        domain: Option<&str>,
    ) -> Result<Report, RunError> {
        let id = prepared.id;
        let mut tally = Tally::default();
        for (recipient, answer) in recipients.iter().zip(answers) {
            tally.add(id, recipient.ordinal, answer);
        }
        // Recorded before the recipients are marked: a failure here retries the batch, whose
        // refused recipients are refused again (event dedupe keeps one bounce each).
        if !tally.bounces.is_empty() {
            self.events
                .apply(&tally.bounces, chrono::Utc::now())
                .await?;
        }
        let mut report = Report::default();
        let (count, finished) = self.store.mark(id, Outcome::Sent, "", &tally.sent).await?;
        report.sent += count;
        if finished {
            tracing::info!(campaign = %id, "campaign finished");
        }
        for (reason, ordinals) in &tally.failed {
            report.failed += self
                .store
                .mark(id, Outcome::Failed, reason, ordinals)
                .await?
                .0;
        }
        self.store.release(id, &tally.again).await?;
        if let Some((message, retry_after, slow_down)) = tally.retry {
            let provider = self.route(&prepared.spec.categories).name();
            let after = (self.slow_down(slow_down, retry_after, domain, provider)).await?;
            return Err(RunError::Retry { message, after });
        }
        if let Some(message) = tally.unknown {
            return Err(RunError::Retry {
                message,
                after: None,
            });
        }
        Ok(report)
    }

    /// Holds back whoever asked to slow down, and says how long the retry waits: a domain a
    /// minute, the provider as long as it asked (a second when it did not say).
    async fn slow_down(
        &self,
        slow_down: Option<SlowDown>,
        retry_after: Option<Duration>,
        domain: Option<&str>,
        provider: &str,
    ) -> Result<Option<Duration>, RunError> {
        Ok(match (slow_down, domain) {
            (Some(SlowDown::Domain), Some(domain)) => {
                let after = Duration::from_secs(60);
                self.throttles
                    .hold(&ThrottleScope::Domain(domain.to_owned()), after)
                    .await?;
                Some(after)
            }
            (Some(SlowDown::Domain), None) => Some(Duration::from_secs(60)),
            (Some(SlowDown::Provider), _) => {
                let after = retry_after.unwrap_or(Duration::from_secs(1));
                let scope = ThrottleScope::Provider(provider.to_owned());
                self.throttles.hold(&scope, after).await?;
                Some(after)
            }
            (None, _) => retry_after.or(Some(Duration::from_secs(5))),
        })
    }
}

/// What a campaign adds when its provider sends one message per recipient: parallel sends,
/// its own tracking, and each domain's connection limit.
struct Each<'a> {
    campaigner: &'a Campaigner,
    prepared: &'a Prepared,
    recipients: &'a [&'a Recipient],
}

impl PerMessage for Each<'_> {
    fn parallel(&self) -> usize {
        self.campaigner.parallel_sends
    }

    fn finish_html(&self, n: usize, html: String) -> String {
        let wants = (self.campaigner.tracking).for_campaign(self.prepared.spec.tracking);
        match (&self.campaigner.tracker, self.recipients.get(n)) {
            (Some(tracker), Some(recipient)) if wants.any() => tracker.apply(
                &html,
                crate::tracking::token::Scope::Campaign {
                    campaign: self.prepared.id,
                    subscriber: recipient.id.get(),
                },
                wants,
            ),
            _ => html,
        }
    }

    fn connect<'a>(
        &'a self,
        domain: &'a str,
        send: BoxFuture<'a, Result<Delivery, ProviderError>>,
    ) -> BoxFuture<'a, Result<Delivery, ProviderError>> {
        Box::pin(self.campaigner.within_slots(domain, send))
    }
}

impl Campaigner {
    /// Runs `send` within `domain`'s connection limit when it has one: the slot is taken across
    /// every worker, waited for briefly, and given back after the hand-over. A domain whose
    /// slots stay busy fails the send as not sent, and the batch retries it later.
    async fn within_slots(
        &self,
        domain: &str,
        send: BoxFuture<'_, Result<Delivery, ProviderError>>,
    ) -> Result<Delivery, ProviderError> {
        let Some(limit) = self.throttles.connection_limit(domain) else {
            return send.await;
        };
        let token = uuid::Uuid::now_v7().to_string();
        let started = tokio::time::Instant::now();
        loop {
            match self.throttles.take_slot(domain, limit, &token).await {
                Ok(true) => break,
                Ok(false) if started.elapsed() < MAX_INLINE_WAIT => {
                    tokio::time::sleep(SLOT_POLL).await;
                }
                Ok(false) => {
                    return Err(ProviderError::deferred(format!(
                        "{domain}: all {limit} connections in use"
                    )));
                }
                Err(error) => return Err(ProviderError::deferred(format!("redis: {error}"))),
            }
        }
        let sent = send.await;
        if let Err(error) = self.throttles.give_slot(domain, &token).await {
            tracing::debug!(%error, %domain, "a connection slot is left to its lease");
        }
        sent
    }
}
