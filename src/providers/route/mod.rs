//! Routes: each kind of mail goes through an ordered list of providers, and fails over to the
//! next when one fails as a provider (docs/sending.md, "Routes and failover").
//!
//! A provider's failure (unreachable, a 5xx, its account refused) sends the message on to the
//! next provider at once, and counts toward the provider's circuit ([`health`]). A refusal of
//! the message or its recipient stays: the next provider would refuse the same person. A rate
//! limit is waited for, as with one provider, until it has lasted `MAILROOM_FAILOVER_AFTER`.
//! A request that got no answer is never handed to another provider in the same attempt: the
//! queue retries it, on the same provider while its circuit is closed.

pub mod health;

use std::time::Duration;

use futures::future::BoxFuture;
use mailroom_jobs::RedisConnection;

use self::health::{Admit, Health, Report, Verdict};
use super::{Answer, Batch, Cause, Delivery, OutgoingEmail, PerMessage, Provider, ProviderError};
use crate::{
    config::{MailKind, ProviderKind, RouteCategories, Settings},
    store::activity::{Activity, Outcome},
};

/// One provider tried for a message, and what it answered.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Try {
    /// The provider's name.
    pub provider: String,
    /// `accepted`, or its words.
    pub answer: String,
    /// No answer came: it may have taken the message.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unanswered: bool,
}

impl Try {
    fn of(provider: &'static str, result: &Result<Delivery, ProviderError>) -> Self {
        Self {
            provider: provider.to_owned(),
            answer: match result {
                Ok(_) => "accepted".to_owned(),
                Err(error) => error.to_string(),
            },
            unanswered: matches!(
                result,
                Err(ProviderError::Transient {
                    cause: Cause::Unanswered,
                    ..
                })
            ),
        }
    }
}

/// What a route did with one message.
#[derive(Debug)]
pub struct Sending {
    /// The last provider's answer.
    pub result: Result<Delivery, ProviderError>,
    /// The provider that answered last (`none` when every circuit was open).
    pub provider: &'static str,
    /// Every provider tried, in order, with its answer.
    pub tried: Vec<Try>,
}

/// The providers of one kind of mail, in the order they are tried.
#[derive(Debug, Clone)]
pub struct Route {
    kind: MailKind,
    providers: Vec<Provider>,
    /// Circuits, when there is a provider to fail over to.
    health: Option<Health>,
    activity: Option<Activity>,
}

/// A provider's verdict on a batch: which of its recipients go on to the next provider.
struct Leg {
    answers: Vec<Answer>,
    onward: Vec<bool>,
}

impl Route {
    /// A route through `providers` (at least one) for `kind` of mail; circuits are kept in
    /// `health` when there are several.
    pub fn new(kind: MailKind, providers: Vec<Provider>, health: Option<Health>) -> Self {
        let health = health.filter(|_| providers.len() > 1);
        Self {
            kind,
            providers,
            health,
            activity: None,
        }
    }

    /// Counts each provider's answers in `activity`, for the console.
    #[must_use]
    pub fn with_activity(mut self, activity: Activity) -> Self {
        self.activity = Some(activity);
        self
    }

    /// Its first provider, which its mail goes to while that one is healthy.
    pub fn first(&self) -> Option<&Provider> {
        self.providers.first()
    }

    /// Its first provider's name: the one its rate throttle is named after.
    pub fn name(&self) -> &'static str {
        self.providers.first().map_or("none", Provider::name)
    }

    /// The most recipients one batch should carry: the smallest of its providers' limits, so a
    /// failed-over batch is never too large for the next.
    pub fn batch_limit(&self) -> usize {
        (self.providers.iter())
            .map(Provider::batch_limit)
            .min()
            .unwrap_or(1)
    }

    /// Hands `email` to the first provider that takes it, failing over on a provider's failure.
    pub async fn send(&self, email: &OutgoingEmail) -> Sending {
        let mut tried = Vec::new();
        let mut last: Option<(&'static str, Result<Delivery, ProviderError>)> = None;
        let mut next_probe: Option<Duration> = None;
        for provider in &self.providers {
            let name = provider.name();
            if let Admit::Skip(after) = self.admit(name).await {
                next_probe = Some(next_probe.map_or(after, |n| n.min(after)));
                continue;
            }
            let result = provider.send(email).await;
            self.count(name, [ProviderError::outcome(&result)]);
            tried.push(Try::of(name, &result));
            let onward = self.verdict(name, &result).await == Verdict::Next;
            last = Some((name, result));
            if !onward {
                break;
            }
        }
        let (provider, mut result) =
            last.unwrap_or_else(|| ("none", Err(every_circuit_open(next_probe))));
        // With somewhere to fail over to, an account refused is no reason to give the message
        // up: it is retried, by then through whichever provider is up.
        if self.health.is_some()
            && let Err(ProviderError::Permanent {
                message,
                account: true,
                ..
            }) = &result
        {
            result = Err(ProviderError::outage(message.clone()));
        }
        if tried.len() > 1
            && let Err(error) = &result
        {
            tracing::warn!(%error, kind = self.kind.as_str(), "every provider of the route failed");
        }
        Sending {
            result,
            provider,
            tried,
        }
    }

    /// Sends `batch` through the route: the recipients a provider failed for go on to the next.
    /// Answers in the recipients' order.
    pub async fn send_batch(&self, batch: &Batch<'_>, each: &dyn PerMessage) -> Vec<Answer> {
        let count = batch.recipients.len();
        let mut answers: Vec<Option<Answer>> = vec![None; count];
        // The recipients still to send, as indexes into `batch`.
        let mut pending: Vec<usize> = (0..count).collect();
        let mut next_probe: Option<Duration> = None;
        for provider in &self.providers {
            if pending.is_empty() {
                break;
            }
            if let Admit::Skip(after) = self.admit(provider.name()).await {
                next_probe = Some(next_probe.map_or(after, |n| n.min(after)));
                continue;
            }
            let leg = self.leg(provider, batch, each, &pending).await;
            let mut onward = Vec::new();
            for ((n, answer), go_on) in pending.iter().zip(leg.answers).zip(leg.onward) {
                if go_on {
                    onward.push(*n);
                }
                answers[*n] = Some(answer);
            }
            if !onward.is_empty() && provider.name() != self.last_name() {
                crate::metrics::provider_failover(provider.name(), onward.len() as u64);
            }
            pending = onward;
        }
        let unsent = || Answer::from(Err(every_circuit_open(next_probe)));
        answers
            .into_iter()
            .map(|answer| answer.unwrap_or_else(unsent))
            .collect()
    }

    /// One provider's answers for the `pending` recipients of `batch`, and which go on.
    async fn leg(
        &self,
        provider: &Provider,
        batch: &Batch<'_>,
        each: &dyn PerMessage,
        pending: &[usize],
    ) -> Leg {
        let name = provider.name();
        let answers = if pending.len() == batch.recipients.len() {
            provider.send_batch(batch, each).await
        } else {
            let part = Batch {
                recipients: pending
                    .iter()
                    .map(|n| batch.recipients[*n].clone())
                    .collect(),
                metadata: batch.metadata.clone(),
                ..*batch
            };
            let each = Renumbered {
                each,
                index: pending,
            };
            provider.send_batch(&part, &each).await
        };
        self.count(name, answers.iter().map(Answer::outcome));
        let report = if answers.iter().any(Answer::provider_failed) {
            Report::Failed
        } else if answers.iter().any(Answer::throttled) {
            Report::Throttled
        } else {
            Report::Ok
        };
        let verdict = match &self.health {
            Some(health) => health.report(name, report).await,
            None => Verdict::Stay,
        };
        let onward = (answers.iter())
            .map(|a| {
                self.health.is_some()
                    && (a.provider_failed() || (a.throttled() && verdict == Verdict::Next))
            })
            .collect();
        Leg { answers, onward }
    }

    fn last_name(&self) -> &'static str {
        self.providers.last().map_or("none", Provider::name)
    }

    async fn admit(&self, name: &'static str) -> Admit {
        match &self.health {
            Some(health) => health.admit(name).await,
            None => Admit::Go,
        }
    }

    /// Reports `name`'s answer to its circuit: whether the message goes on to the next provider.
    async fn verdict(
        &self,
        name: &'static str,
        result: &Result<Delivery, ProviderError>,
    ) -> Verdict {
        let Some(health) = &self.health else {
            return Verdict::Stay;
        };
        let Err(error) = result else {
            return health.report(name, Report::Ok).await;
        };
        let report = match error {
            ProviderError::Permanent { account: true, .. } => Report::Failed,
            ProviderError::Permanent { .. } => Report::Ok,
            ProviderError::Transient { cause, .. } => match cause {
                Cause::Outage => Report::Failed,
                Cause::Throttled => Report::Throttled,
                // Counts toward the circuit, but the message waits for the same provider.
                Cause::Unanswered => {
                    health.report(name, Report::Failed).await;
                    return Verdict::Stay;
                }
                Cause::Recipient { .. } => Report::Ok,
            },
        };
        let verdict = health.report(name, report).await;
        if verdict == Verdict::Next && name != self.last_name() {
            crate::metrics::provider_failover(name, 1);
        }
        verdict
    }

    /// Counts the `outcomes` of provider `name`'s answers for the console's chart.
    fn count(&self, name: &'static str, outcomes: impl IntoIterator<Item = Outcome>) {
        let Some(activity) = &self.activity else {
            return;
        };
        let mut counts = [
            (Outcome::Sent, 0u64),
            (Outcome::Refused, 0),
            (Outcome::Deferred, 0),
        ];
        for outcome in outcomes {
            if let Some((_, n)) = counts.iter_mut().find(|(o, _)| *o == outcome) {
                *n += 1;
            }
        }
        for (outcome, n) in counts {
            if n > 0 {
                activity.record(name, outcome, n);
            }
        }
    }
}

/// The answer when every provider's circuit is open: nothing was sent; try again when the
/// first probe is due.
fn every_circuit_open(next_probe: Option<Duration>) -> ProviderError {
    ProviderError::Transient {
        message: "every provider of the route is failing; none was tried".to_owned(),
        retry_after: Some(
            next_probe
                .unwrap_or(Duration::from_secs(1))
                .max(Duration::from_secs(1)),
        ),
        cause: Cause::Outage,
    }
}

/// A caller's [`PerMessage`] for a part of its batch: recipient `n` of the part is
/// `index[n]` of the whole.
struct Renumbered<'a> {
    each: &'a dyn PerMessage,
    index: &'a [usize],
}

impl PerMessage for Renumbered<'_> {
    fn parallel(&self) -> usize {
        self.each.parallel()
    }

    fn finish_html(&self, n: usize, html: String) -> String {
        self.each.finish_html(self.index[n], html)
    }

    fn connect<'a>(
        &'a self,
        domain: &'a str,
        send: BoxFuture<'a, Result<Delivery, ProviderError>>,
    ) -> BoxFuture<'a, Result<Delivery, ProviderError>> {
        self.each.connect(domain, send)
    }
}

/// The routes of every kind of mail, with the providers built once.
#[derive(Debug, Clone)]
pub struct Routes {
    transactional: Route,
    bulk: Route,
    categories: RouteCategories,
}

impl Routes {
    /// Builds each provider `MAILROOM_ROUTES` (or `MAILROOM_PROVIDER`) names, once, and the
    /// routes through them; circuits in Redis through `conn`, when given.
    ///
    /// # Errors
    /// When a provider's settings are missing or malformed.
    pub fn from_settings(
        settings: &Settings,
        conn: Option<&RedisConnection>,
    ) -> anyhow::Result<Self> {
        let health = conn.map(|conn| {
            Health::new(
                conn.clone(),
                &settings.redis_prefix,
                Duration::from_secs(settings.failover_after),
            )
        });
        let mut built: Vec<(ProviderKind, Provider)> = Vec::new();
        let mut route = |kind: MailKind| -> anyhow::Result<Route> {
            let kinds = route_kinds(settings, kind);
            let mut providers = Vec::with_capacity(kinds.len());
            for wanted in kinds {
                let provider = match built.iter().find(|(k, _)| *k == wanted) {
                    Some((_, provider)) => provider.clone(),
                    None => {
                        let provider = Provider::of_kind(wanted, settings)?;
                        built.push((wanted, provider.clone()));
                        provider
                    }
                };
                providers.push(provider);
            }
            Ok(Route::new(kind, providers, health.clone()))
        };
        Ok(Self {
            transactional: route(MailKind::Transactional)?,
            bulk: route(MailKind::Bulk)?,
            categories: settings.route_categories.clone(),
        })
    }

    /// Counts each provider's answers in `activity`, for the console.
    #[must_use]
    pub fn with_activity(self, activity: &Activity) -> Self {
        Self {
            transactional: self.transactional.with_activity(activity.clone()),
            bulk: self.bulk.with_activity(activity.clone()),
            categories: self.categories,
        }
    }

    /// The route of mail of `kind` with `categories` (a category may route it as another kind).
    pub fn route<'a>(
        &self,
        kind: MailKind,
        categories: impl IntoIterator<Item = &'a String>,
    ) -> &Route {
        match self.categories.kind_of(categories).unwrap_or(kind) {
            MailKind::Transactional => &self.transactional,
            MailKind::Bulk => &self.bulk,
        }
    }

    /// Every provider, once each, in the order the routes name them.
    pub fn providers(&self) -> Vec<&Provider> {
        let mut all: Vec<&Provider> = Vec::new();
        for provider in self
            .transactional
            .providers
            .iter()
            .chain(&self.bulk.providers)
        {
            if !all.iter().any(|p| p.name() == provider.name()) {
                all.push(provider);
            }
        }
        all
    }
}

/// The providers of `kind`'s route, in order: `MAILROOM_ROUTES`, else `MAILROOM_PROVIDER`.
pub fn route_kinds(settings: &Settings, kind: MailKind) -> Vec<ProviderKind> {
    (settings.routes.route(kind)).map_or_else(|| vec![settings.provider], <[ProviderKind]>::to_vec)
}

/// Every provider the routes name, in order, once each.
pub fn configured_providers(settings: &Settings) -> Vec<ProviderKind> {
    let mut kinds = Vec::new();
    for mail in [MailKind::Transactional, MailKind::Bulk] {
        for kind in route_kinds(settings, mail) {
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
    }
    kinds
}

/// The names of [`configured_providers`].
pub fn provider_names(settings: &Settings) -> Vec<&'static str> {
    (configured_providers(settings).into_iter())
        .map(Provider::name_of)
        .collect()
}

/// Whether every provider of every route tracks opens and clicks itself (SendGrid): then
/// mailroom leaves its mail for the provider to track.
pub fn providers_track(settings: &Settings) -> bool {
    (configured_providers(settings).into_iter()).all(|kind| kind == ProviderKind::Sendgrid)
}

/// Each message's tries (`P:tries:{ID}`), kept when one failed: the status and the timeline
/// name them, and a retry reads whether an earlier try went unanswered.
#[derive(Debug, Clone)]
pub struct TryLog {
    conn: RedisConnection,
    keys: mailroom_jobs::Keys,
    keep_secs: u64,
}

/// The most tries kept per message.
pub const MAX_TRIES_KEPT: isize = 20;

impl TryLog {
    /// Tries under `prefix`, kept `keep_secs` (as long as the message's timeline).
    pub fn new(conn: RedisConnection, prefix: &str, keep_secs: u64) -> Self {
        Self {
            conn,
            keys: mailroom_jobs::Keys::new(prefix),
            keep_secs,
        }
    }

    /// Appends `tries` of message `id`.
    ///
    /// # Errors
    /// When Redis does not answer.
    pub async fn record(&self, id: &str, tries: &[Try]) -> redis::RedisResult<()> {
        if tries.is_empty() {
            return Ok(());
        }
        let key = self.keys.tries(id);
        let lines: Vec<String> = (tries.iter())
            .filter_map(|t| serde_json::to_string(&TryLine::now(t)).ok())
            .collect();
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .rpush(&key, lines)
            .ltrim(&key, -MAX_TRIES_KEPT, -1)
            .expire(&key, i64::try_from(self.keep_secs).unwrap_or(i64::MAX))
            .query_async(&mut conn)
            .await
    }

    /// The tries of message `id` recorded so far, oldest first.
    ///
    /// # Errors
    /// When Redis does not answer.
    pub async fn read(&self, id: &str) -> redis::RedisResult<Vec<Try>> {
        let mut conn = self.conn.clone();
        let lines: Vec<String> = redis::cmd("LRANGE")
            .arg(self.keys.tries(id))
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await?;
        Ok(lines
            .iter()
            .filter_map(|line| serde_json::from_str::<TryLine>(line).ok())
            .map(|line| line.tried)
            .collect())
    }
}

/// A try as it is stored: with the time it was recorded.
#[derive(serde::Serialize, serde::Deserialize)]
struct TryLine {
    at: String,
    #[serde(flatten)]
    tried: Try,
}

impl TryLine {
    fn now(tried: &Try) -> Self {
        Self {
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            tried: tried.clone(),
        }
    }
}
