//! Bounces of the mail mailroom hands over itself (SMTP and the outbox), where no SendGrid
//! event will ever tell: a refusal at send time, classified by its reply code and RFC 3463
//! enhanced status code, becomes the same `bounce` event (timeline, status, stats, suppression)
//! that SendGrid's webhook produces.
//!
//! Classes, the rule written once here:
//! - **hard**: the address does not work (5.1.x: no such mailbox, bad domain, bad syntax,
//!   moved; 5.2.1: mailbox disabled). The address is suppressed, as after SendGrid's `bounce`.
//! - **block**: the message was refused, not the address (5.7.x policy or reputation, 5.2.2
//!   mailbox full, 5.3.x/5.4.x/5.5.x/5.6.x system, network, protocol or content). Recorded as a
//!   `bounce` of type `blocked`; the address is not suppressed (another message may pass).
//! - Without an enhanced code, the basic reply decides: 550, 551 and 553 are hard (mailbox
//!   unavailable, not local, name not allowed), other 5xx blocks.

pub mod reports;

use chrono::Utc;
use mailroom_jobs::SendEmail;
use sha2::{Digest, Sha256};

use crate::events::{Event, EventKind, Source};
pub use crate::providers::bounce::{Bounce, Class, MAX_REPLY, classify, enhanced_status};

/// A refusal as the `bounce` event every other source of bounces produces too.
pub trait BounceEvent {
    /// The `bounce` event this refusal is, for message `job` (its id, categories, list and key),
    /// reported by `source`.
    fn event_of(&self, source: Source, job: &SendEmail) -> Event;

    /// The `bounce` event this refusal is, reported by `source`, tied to no message yet.
    /// `scope` (the message's or campaign's id) makes its event id, so the same refusal
    /// recorded twice (a retried job) counts once.
    fn event(&self, source: Source, scope: &str) -> Event;

    /// The `bounce` event of a refusal given while the provider took the message (an SMTP
    /// relay's 5xx), for [`BounceEvent::event`]'s `scope`.
    fn at_hand_over(&self, scope: &str) -> Event {
        self.event(Source::Smtp, scope)
    }
}

impl BounceEvent for Bounce {
    fn event_of(&self, source: Source, job: &SendEmail) -> Event {
        let mut event = self.event(source, &job.id.to_string());
        event.mailroom_id = Some(job.id.to_string());
        event.category = job.message.categories.clone();
        event.mailroom_list = job.message.list_id.map(|l| l.to_string());
        event.mailroom_key = job
            .message
            .metadata
            .get(mailroom_jobs::KEY_METADATA)
            .cloned();
        event
    }

    fn event(&self, source: Source, scope: &str) -> Event {
        let mut event = Event::own(
            source,
            EventKind::Bounce,
            &self.recipient,
            Utc::now().timestamp(),
        );
        event.bounce_type = Some(
            match self.class {
                Class::Hard => "bounce",
                Class::Block => "blocked",
            }
            .to_owned(),
        );
        event.status = self
            .status
            .clone()
            .or_else(|| (self.code > 0).then(|| self.code.to_string()));
        event.reason = Some(self.reply.clone());
        let digest = Sha256::digest(format!("{scope}\n{}", self.recipient).as_bytes());
        let short: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        event.sg_event_id = Some(format!("mailroom-{}-bounce-{short}", source.as_str()));
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_classified_by_their_enhanced_code_then_their_basic_one() {
        for (code, reply, status, class) in [
            // Gmail, Outlook and Postfix wordings of the common cases.
            (
                550,
                "550-5.1.1 The email account that you tried to reach does not exist.",
                Some("5.1.1"),
                Class::Hard,
            ),
            (
                550,
                "5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
                Some("5.1.10"),
                Class::Hard,
            ),
            (
                550,
                "5.2.1 The email account that you tried to reach is disabled.",
                Some("5.2.1"),
                Class::Hard,
            ),
            (
                552,
                "5.2.2 The recipient's inbox is out of storage space.",
                Some("5.2.2"),
                Class::Block,
            ),
            (
                550,
                "5.7.1 Our system has detected that this message is likely unsolicited mail.",
                Some("5.7.1"),
                Class::Block,
            ),
            (
                554,
                "5.7.26 Unauthenticated email from example.com is not accepted due to domain's DMARC policy.",
                Some("5.7.26"),
                Class::Block,
            ),
            (
                550,
                "permanent error (550): 5.1.1 mailbox unavailable",
                Some("5.1.1"),
                Class::Hard,
            ),
            (
                550,
                "Requested action not taken: mailbox unavailable",
                None,
                Class::Hard,
            ),
            (554, "Transaction failed", None, Class::Block),
        ] {
            let bounce = Bounce::new("ada@example.org", code, reply);
            assert_eq!(bounce.status.as_deref(), status, "{reply}");
            assert_eq!(bounce.class, class, "{reply}");
        }
    }

    #[test]
    fn version_numbers_and_addresses_are_not_status_codes() {
        assert_eq!(enhanced_status("Postfix 3.7.10 at 10.1.1.1"), None);
        assert_eq!(enhanced_status("host mx.example.org[5.1.1.2] said"), None);
        assert_eq!(
            enhanced_status("said: 550 5.1.1 <a@b>: no"),
            Some("5.1.1".into())
        );
    }

    #[test]
    fn a_long_reply_is_cut_on_a_character_boundary() {
        let reply = format!("550 5.7.1 {}", "é".repeat(400));
        let bounce = Bounce::new("ada@example.org", 550, &reply);
        assert!(bounce.reply.len() <= MAX_REPLY);
        assert!(bounce.reply.starts_with("550 5.7.1 é"));
    }
}
