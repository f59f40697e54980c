//! A dead letter's payload in one line, for the Dead letters page: what the job was for, never
//! its whole body (a message's text, an event batch) and never a secret (a verification job
//! carries no token; a callback's signing secret is not in its payload).

use mailroom_jobs::{
    CampaignJob, DeliverEvent, DeliverWebhook, Job, ProviderEvents, SendEmail, SendVerification,
    TrackingHits,
};

/// The longest summary shown.
const MAX_CHARS: usize = 160;

/// `payload` of a job on `queue`, summarized.
pub(super) fn of(queue: &str, payload: Option<&str>) -> String {
    let Some(payload) = payload else {
        return "(the record holds no payload)".to_owned();
    };
    let summary =
        match queue {
            q if q == SendEmail::QUEUE => serde_json::from_str::<SendEmail>(payload)
                .ok()
                .map(|job| email(&job)),
            q if q == SendVerification::QUEUE => serde_json::from_str::<SendVerification>(payload)
                .ok()
                .map(|job| match job.optin_list {
                    Some(list) => format!("opt-in confirmation to {} for {list}", job.email),
                    None => format!("verification link to {}", job.email),
                }),
            q if q == DeliverEvent::QUEUE => serde_json::from_str::<DeliverEvent>(payload)
                .ok()
                .map(|job| {
                    let kind = job
                        .event
                        .get("type")
                        .and_then(|t| t.as_str())
                        .unwrap_or("event");
                    format!("callback: {kind}")
                }),
            q if q == ProviderEvents::QUEUE => serde_json::from_str::<ProviderEvents>(payload)
                .ok()
                .map(|job| {
                    let count = serde_json::from_str::<Vec<serde::de::IgnoredAny>>(&job.body)
                        .map_or_else(|_| "unreadable".to_owned(), |e| e.len().to_string());
                    format!(
                        "{count} SendGrid events received {}",
                        job.received_at.format("%Y-%m-%d %H:%M")
                    )
                }),
            q if q == CampaignJob::QUEUE => {
                serde_json::from_str::<CampaignJob>(payload)
                    .ok()
                    .map(|job| match job {
                        CampaignJob::Start { campaign, run } => {
                            format!("campaign {campaign}: start of run {run}")
                        }
                        CampaignJob::Batch {
                            campaign,
                            run,
                            batch,
                        } => {
                            format!("campaign {campaign}: batch {batch} of run {run}")
                        }
                    })
            }
            q if q == TrackingHits::QUEUE => serde_json::from_str::<TrackingHits>(payload)
                .ok()
                .map(|job| format!("{} tracking hits", job.hits.len())),
            q if q == DeliverWebhook::QUEUE => serde_json::from_str::<DeliverWebhook>(payload)
                .ok()
                .map(|job| format!("{} events for webhook {}", job.events.len(), job.endpoint)),
            _ => None,
        };
    let summary =
        summary.unwrap_or_else(|| format!("unreadable payload ({} bytes)", payload.len()));
    if summary.chars().count() > MAX_CHARS {
        summary.chars().take(MAX_CHARS).chain(['…']).collect()
    } else {
        summary
    }
}

fn email(job: &SendEmail) -> String {
    let message = &job.message;
    let to = match message.to.as_slice() {
        [] => "nobody".to_owned(),
        [one] => one.email.clone(),
        [first, rest @ ..] => format!("{} and {} more", first.email, rest.len()),
    };
    let what = match (&message.template, &message.subject) {
        (Some(template), _) => format!("template {}", template.name),
        (None, Some(subject)) => format!("\u{201c}{subject}\u{201d}"),
        (None, None) => "no subject".to_owned(),
    };
    format!("to {to}: {what}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_email_is_its_recipients_and_subject_and_never_its_body() {
        let payload = serde_json::json!({
            "id": "0190d7a3-0000-7000-8000-000000000000",
            "message": {
                "to": [{"email": "ada@example.com"}, {"email": "bob@example.com"}],
                "subject": "Your receipt",
                "text": "the secret body"
            }
        })
        .to_string();
        let summary = of("email", Some(&payload));
        assert_eq!(
            summary,
            "to ada@example.com and 1 more: \u{201c}Your receipt\u{201d}"
        );
        assert!(!summary.contains("secret body"));
        assert_eq!(of("email", Some("{")), "unreadable payload (1 bytes)");
        assert_eq!(of("events", None), "(the record holds no payload)");
    }
}
