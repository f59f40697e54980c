//! The send job's handler: compose, send through the provider, report what happened.
//!
//! The provider classifies each failure; this handler only translates it for the queue: a
//! transient failure is an ordinary error (retried with backoff, or after the provider's
//! Retry-After), a permanent one an `AbortError` (dead-lettered at once). Nothing here retries,
//! and nothing here writes to Redis: the queue records the outcome, with the [`Sent`] output,
//! in the same call that settles the job, and that record is the message's status.

use std::sync::Arc;

use apalis_core::{
    error::{AbortError, BoxDynError, RetryAfterError},
    task::data::Data,
};
use lettre::message::Mailbox;
use mailroom_jobs::SendEmail;

use crate::{
    config::MailKind,
    events::MessageIndex,
    providers::{
        OutgoingEmail, ProviderError, Routes,
        route::{Sending, TryLog},
    },
    queue::{JobOutput, JobRun},
    render::Renderer,
    store::{Suppressions, activity::Activity, suppressions::drop_recipients},
    verification::Verifications,
};

/// What the send handler needs, built once per process.
#[derive(Debug)]
pub struct Mailer {
    /// The providers, by kind of mail, with their connection pools.
    pub routes: Routes,
    /// The providers each message was tried with, when one failed.
    pub tries: TryLog,
    /// Hand-overs per minute, for the console.
    pub activity: Activity,
    /// `MAILROOM_FROM`.
    pub default_from: Mailbox,
    /// Renders templated messages.
    pub renderer: Renderer,
    /// Verification tokens.
    pub verifications: Verifications,
    /// `MAILROOM_PUBLIC_URL`: the base of confirmation links.
    pub public_url: String,
    /// The suppression list, checked right before each send.
    pub suppressions: Suppressions,
    /// Categories sent even to suppressed addresses.
    pub transactional: Vec<String>,
    /// SendGrid's message ids → mailroom's, for events that come back without `mailroom_id`.
    pub message_index: MessageIndex,
    /// Log every email handed over or failed at info ([`super::WorkerOptions::announce`]).
    pub announce: bool,
    /// Lists and subscribers, for list mail.
    pub lists: crate::lists::ListStore,
    /// The keys that sign unsubscribe links (`None`: list mail is refused).
    pub links: Option<crate::lists::links::LinkKeys>,
    /// `MAILROOM_UNSUBSCRIBE_MAILTO`.
    pub unsubscribe_mailto: Option<String>,
    /// The messages sent to each address (for export and erasure).
    pub addresses: crate::lists::privacy::AddressIndex,
    /// Where bounces at send time are recorded, as SendGrid's events are.
    pub events: crate::events::EventStore,
    /// Own open and click tracking (SMTP and outbox; `None`: off, or SendGrid).
    pub tracker: Option<crate::tracking::Tracker>,
    /// Which mail is tracked.
    pub tracking: crate::tracking::Policy,
    /// List id → SendGrid unsubscribe group (`MAILROOM_SENDGRID_GROUPS`).
    pub unsubscribe_groups: std::collections::BTreeMap<u64, u32>,
}

/// What a successful send leaves on the message's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The provider that accepted it.
    pub provider: &'static str,
    /// The provider's id for it.
    pub provider_message_id: Option<String>,
    /// Recipients skipped because they are suppressed.
    pub suppressed: Vec<String>,
    /// An earlier try got no answer, so that provider may have taken it too.
    pub possibly_duplicated: bool,
}

impl Sent {
    /// Nothing handed over: every recipient is suppressed or gone.
    fn nobody(suppressed: Vec<String>) -> Self {
        Self {
            provider: "none",
            provider_message_id: None,
            suppressed,
            possibly_duplicated: false,
        }
    }
}

impl JobOutput for Sent {
    fn to_output(&self) -> Option<serde_json::Value> {
        let mut output = serde_json::json!({
            "provider": self.provider,
            "provider_message_id": self.provider_message_id,
            "suppressed": self.suppressed,
        });
        if self.possibly_duplicated {
            output["possibly_duplicated"] = serde_json::Value::Bool(true);
        }
        Some(output)
    }
}

/// Replaces a template reference with its rendering. A rendering failure is permanent: the
/// data was checked at enqueue, so only a bug (or a payload pushed around the checks) fails.
/// The template reference stays on the job: composing reads whether it carries a secret link.
fn render(mut job: SendEmail, renderer: &Renderer) -> Result<SendEmail, BoxDynError> {
    if let Some(template) = &job.message.template {
        let rendered = renderer
            .render(template)
            .map_err(|e| AbortError::new(format!("template {}: {e}", template.name)))?;
        job.message.subject = Some(rendered.subject);
        job.message.html = Some(rendered.html);
        job.message.text = Some(rendered.text);
    }
    Ok(job)
}

/// Adds the list headers (RFC 8058 one-click unsubscribe, `List-Id`) to list mail and fills a
/// newsletter's unsubscribe link, signed for this recipient at the moment of sending (the token
/// never sits in the queue). `false` when the recipient is not a confirmed subscriber any more
/// (they unsubscribed after the message was queued): it is not sent.
async fn list_mail(job: &mut SendEmail, mailer: &Mailer) -> Result<bool, BoxDynError> {
    use crate::domain::ListId;
    use crate::lists::{SubscriptionStatus, links};
    let Some(list) = job.message.list_id.and_then(ListId::new) else {
        return Err(AbortError::new("list_id is not a list id").into());
    };
    let Some(keys) = &mailer.links else {
        return Err(AbortError::new("list mail needs MAILROOM_LINK_KEYS on the worker").into());
    };
    let Some(list) = mailer.lists.list(list).await? else {
        return Ok(false);
    };
    let email = job
        .message
        .to
        .first()
        .map(|m| m.email.clone())
        .unwrap_or_default();
    let Some(subscriber) = mailer
        .lists
        .find(&mailroom_jobs::address::case_key(&email))
        .await?
    else {
        return Ok(false);
    };
    let confirmed = mailer
        .lists
        .subscriptions(subscriber, &[list.id])
        .await?
        .first()
        .is_some_and(|s| s.status == SubscriptionStatus::Confirmed);
    if !confirmed {
        return Ok(false);
    }
    let link = links::ListLink {
        subscriber,
        list: list.id,
        campaign: None,
    };
    // SendGrid hands custom args back on its events: an unsubscribe event then names the list.
    job.message
        .metadata
        .insert("mailroom_list".to_owned(), list.id.to_string());
    for (name, value) in links::list_headers(
        keys,
        &mailer.public_url,
        &link,
        &list.name,
        mailer.unsubscribe_mailto.as_deref(),
    ) {
        job.message.headers.insert(name.to_owned(), value);
    }
    if let Some(template) = job.message.template.as_mut()
        && let Some(field) = mailroom_jobs::templates::unsubscribe_link_field(&template.name)
        && let Some(data) = template.data.as_object_mut()
    {
        let page = format!(
            "{}/u/{}",
            mailer.public_url.trim_end_matches('/'),
            keys.sign(&link)
        );
        data.insert(field.to_owned(), serde_json::Value::String(page));
    }
    Ok(true)
}

/// Sends one email.
///
/// # Errors
/// A transient provider failure (retried by the queue) or a permanent one (`AbortError`).
#[tracing::instrument(skip_all, fields(message_id = %job.id, attempt = run.attempt, request_id = job.request_id.as_deref()))]
pub async fn send_email(
    job: SendEmail,
    run: Data<JobRun>,
    mailer: Data<Arc<Mailer>>,
) -> Result<Sent, BoxDynError> {
    deliver(job, &mailer, run.attempt).await
}

/// Renders (when templated), composes and sends `job` (run `attempt` of its job): the part
/// every sending job shares.
///
/// # Errors
/// As [`send_email`].
pub(super) async fn deliver(
    mut job: SendEmail,
    mailer: &Mailer,
    attempt: u32,
) -> Result<Sent, BoxDynError> {
    // Checked here, at the last moment, so a bounce or complaint that arrived after the message
    // was queued still counts. A Redis failure is transient: the job is retried.
    let suppressed = mailer
        .suppressions
        .suppressed_recipients(&job.message, &mailer.transactional)
        .await?;
    if !suppressed.is_empty() && !drop_recipients(&mut job.message, &suppressed) {
        tracing::info!(
            count = suppressed.len(),
            "every recipient is suppressed: not sent"
        );
        return Ok(Sent::nobody(suppressed));
    }
    if job.message.list_id.is_some() && !list_mail(&mut job, mailer).await? {
        tracing::info!("the recipient is no longer a confirmed subscriber of the list: not sent");
        return Ok(Sent::nobody(
            job.message.to.iter().map(|m| m.email.clone()).collect(),
        ));
    }
    let job = render(job, &mailer.renderer)?;
    let job = track(job, mailer).await?;
    send(job, mailer, attempt, suppressed).await
}

/// Hands the rendered `job` to its route and says what became of it.
///
/// # Errors
/// As [`send_email`].
async fn send(
    job: SendEmail,
    mailer: &Mailer,
    attempt: u32,
    suppressed: Vec<String>,
) -> Result<Sent, BoxDynError> {
    // Read before the hand-over: a Redis failure here retries a message nobody has yet.
    let earlier = if attempt > 1 {
        mailer.tries.read(&job.id.to_string()).await?
    } else {
        Vec::new()
    };
    let Sending {
        result: outcome,
        provider,
        tried,
    } = hand_over(&job, mailer).await?;
    keep_tries(&job, mailer, &tried, !earlier.is_empty(), outcome.is_ok()).await?;
    let possibly_duplicated = outcome.is_ok() && earlier.iter().any(|t| t.unanswered);
    if mailer.announce {
        announce(&job, provider, &outcome);
    }
    match outcome {
        Ok(delivery) => {
            tracing::debug!(provider, provider_message_id = ?delivery.provider_message_id, "sent");
            index(
                &job,
                mailer,
                provider,
                delivery.provider_message_id.as_deref(),
            )
            .await;
            Ok(Sent {
                provider,
                provider_message_id: delivery.provider_message_id,
                suppressed,
                possibly_duplicated,
            })
        }
        Err(ProviderError::Permanent {
            bounce: Some(bounce),
            ..
        }) => {
            // The relay refused the one recipient for good: a bounce, recorded as SendGrid's
            // would be (timeline, status, stats, and a suppression when the address is bad).
            // A Redis failure here retries the job, and the relay refuses it again.
            let event =
                crate::bounces::BounceEvent::event_of(&*bounce, crate::events::Source::Smtp, &job);
            mailer.events.apply(&[event], chrono::Utc::now()).await?;
            Ok(Sent {
                provider,
                provider_message_id: None,
                suppressed,
                possibly_duplicated,
            })
        }
        Err(ProviderError::Permanent { message, .. }) => Err(AbortError::new(message).into()),
        Err(ProviderError::Transient {
            message,
            retry_after,
            ..
        }) => Err(match retry_after {
            Some(delay) => RetryAfterError::new(message, delay).into(),
            None => message.into(),
        }),
    }
}

/// Composes `job`'s message and hands it to its route: list mail goes as bulk, the rest as
/// transactional, unless a category routes it otherwise.
///
/// # Errors
/// A message that cannot be composed is refused for good.
async fn hand_over(job: &SendEmail, mailer: &Mailer) -> Result<Sending, AbortError> {
    let mut email = OutgoingEmail::compose(job, &mailer.default_from)
        .map_err(|error| AbortError::new(error.to_string()))?;
    // SendGrid's tracking_settings say the same as mailroom's own tracking would; when mailroom
    // tracks (another provider is on a route), SendGrid is not asked to track again.
    if mailer.tracker.is_none() {
        email.tracking = mailer.tracking.for_message(&job.message);
    }
    email.unsubscribe_group =
        (job.message.list_id).and_then(|list| mailer.unsubscribe_groups.get(&list).copied());
    let kind = match job.message.list_id {
        Some(_) => MailKind::Bulk,
        None => MailKind::Transactional,
    };
    let route = mailer.routes.route(kind, &job.message.categories);
    Ok(route.send(&email).await)
}

/// Keeps this attempt's `tried` providers when it failed over or got no answer, or an earlier
/// attempt left tries.
///
/// # Errors
/// When Redis does not answer and the message was not `sent` (it is retried). Once sent, a
/// failure is only logged: a retry would send it again.
async fn keep_tries(
    job: &SendEmail,
    mailer: &Mailer,
    tried: &[crate::providers::Try],
    earlier: bool,
    sent: bool,
) -> Result<(), BoxDynError> {
    // A refusal by the only provider tried is the status's last error already; what is kept
    // is what a reader could not tell otherwise: a failover, or an answer that never came.
    let telling = tried.len() > 1 || tried.iter().any(|t| t.unanswered);
    if !telling && !earlier {
        return Ok(());
    }
    match mailer.tries.record(&job.id.to_string(), tried).await {
        Err(error) if sent => {
            tracing::warn!(%error, "could not keep the providers tried for a sent message");
            Ok(())
        }
        other => Ok(other?),
    }
}

/// Indexes a sent message: by SendGrid's id (for events that come back without mailroom's)
/// and by recipient (for export and erasure).
async fn index(job: &SendEmail, mailer: &Mailer, provider: &str, provider_id: Option<&str>) {
    let id = job.id.to_string();
    if let Some(provider_id) = provider_id.filter(|_| provider == "sendgrid") {
        // The message is sent: failing to index it must not fail the job (a retry would send
        // it twice), so the write is retried here, through a Redis restart, for a bounded
        // time. Its events still carry mailroom_id; only Return-Path bounces would miss the
        // timeline if it is lost.
        record_with_retries(&mailer.message_index, provider_id, &id).await;
    }
    // The index only serves export and erasure: a failure is logged, never a resend.
    if let Err(error) = mailer.addresses.remember(&recipients(job), &id).await {
        tracing::warn!(%error, "could not index the message by recipient");
    }
}

/// `job` with open and click tracking when the policy gives it some
/// ([`crate::tracking::Policy::for_message`]) and it has one recipient (one body cannot tell
/// several apart). The recipient
/// is recorded first, so no hit arrives before it can be attributed; the text part is made
/// from the HTML before the links are rewritten, so it shows the real ones.
async fn track(mut job: SendEmail, mailer: &Mailer) -> Result<SendEmail, BoxDynError> {
    let Some(tracker) = &mailer.tracker else {
        return Ok(job);
    };
    let message = &job.message;
    let wants = mailer.tracking.for_message(message);
    let alone = message.to.len() == 1 && message.cc.is_empty() && message.bcc.is_empty();
    let Some(html) = message.html.as_deref().filter(|_| wants.any() && alone) else {
        return Ok(job);
    };
    let id = job.id.to_string();
    tracker.remember(&id, message).await?;
    let tracked = tracker.apply(html, crate::tracking::token::Scope::Message(job.id), wants);
    if job.message.text.is_none() {
        job.message.text = Some(crate::providers::text_from_html(html));
    }
    job.message.html = Some(tracked);
    Ok(job)
}

/// Every recipient of `job`: to, cc, bcc.
fn recipients(job: &SendEmail) -> Vec<&str> {
    job.message
        .to
        .iter()
        .chain(&job.message.cc)
        .chain(&job.message.bcc)
        .map(|m| m.email.as_str())
        .collect()
}

/// One line saying what became of `job`: for a person watching `mailroom dev`.
fn announce(
    job: &SendEmail,
    provider: &str,
    outcome: &Result<crate::providers::Delivery, ProviderError>,
) {
    let recipients = recipients(job).join(", ");
    let id = job.id;
    match outcome {
        Ok(delivery) => {
            let at = delivery.provider_message_id.as_deref().unwrap_or("-");
            tracing::info!("email {id} to {recipients} handed to {provider}: {at}");
        }
        Err(ProviderError::Permanent { message, .. }) => {
            tracing::warn!("email {id} to {recipients} failed for good ({provider}): {message}");
        }
        Err(ProviderError::Transient { message, .. }) => {
            tracing::warn!("email {id} to {recipients} failed, will retry ({provider}): {message}");
        }
    }
}

/// How long the X-Message-Id index write is retried while Redis is away.
const INDEX_RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(15);

/// Records SendGrid's id for message `id`, retrying with backoff for [`INDEX_RETRY_FOR`].
async fn record_with_retries(index: &MessageIndex, provider_id: &str, id: &str) {
    let recorded = crate::store::retry_for(
        "indexing SendGrid's message id",
        INDEX_RETRY_FOR,
        std::time::Duration::from_secs(2),
        || index.record(provider_id, id),
    )
    .await;
    if let Err(error) = recorded {
        tracing::warn!(%error, "gave up indexing SendGrid's message id");
    }
}
