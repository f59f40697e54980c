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

/// What a permanent refusal says about the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The address does not work: suppress it.
    Hard,
    /// This message was refused: record it, keep the address.
    Block,
}

/// One recipient's permanent refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounce {
    /// The refused address.
    pub recipient: String,
    /// The basic reply code (550), or 0 when unknown.
    pub code: u16,
    /// The enhanced status code ("5.1.1"), when the reply had one.
    pub status: Option<String>,
    /// What the refusal means for the address.
    pub class: Class,
    /// The server's own words (bounded).
    pub reply: String,
}

/// The most of a reply kept on a timeline.
const MAX_REPLY: usize = 500;

impl Bounce {
    /// `recipient`'s refusal with reply `code` and text `reply`.
    pub fn new(recipient: &str, code: u16, reply: &str) -> Self {
        let status = enhanced_status(reply);
        let class = classify(code, status.as_deref());
        let mut reply = reply.trim().to_owned();
        if reply.len() > MAX_REPLY {
            let mut end = MAX_REPLY;
            while !reply.is_char_boundary(end) {
                end -= 1;
            }
            reply.truncate(end);
        }
        Self {
            recipient: recipient.to_owned(),
            code,
            status,
            class,
            reply,
        }
    }

    /// The `bounce` event this refusal is, for message `job` (its id, categories and list),
    /// reported by `source`.
    pub fn event_of(&self, source: Source, job: &SendEmail) -> Event {
        let mut event = self.event(source, &job.id.to_string());
        event.mailroom_id = Some(job.id.to_string());
        event.category = job.message.categories.clone();
        event.mailroom_list = job.message.list_id.map(|l| l.to_string());
        event
    }

    /// The `bounce` event this refusal is, reported by `source`, tied to no message yet.
    /// `scope` (the message's or campaign's id) makes its event id, so the same refusal
    /// recorded twice (a retried job) counts once.
    pub fn event(&self, source: Source, scope: &str) -> Event {
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

    /// A short reason for counts and campaign reports: "bounced 5.1.1", "blocked 554".
    pub fn summary(&self) -> String {
        let word = match self.class {
            Class::Hard => "bounced",
            Class::Block => "blocked",
        };
        match (&self.status, self.code) {
            (Some(status), _) => format!("{word} {status}"),
            (None, 0) => word.to_owned(),
            (None, code) => format!("{word} {code}"),
        }
    }
}

/// What a permanent refusal with basic `code` and enhanced `status` means for the address.
pub fn classify(code: u16, status: Option<&str>) -> Class {
    match status.map(|s| s.split('.').take(2).collect::<Vec<_>>()) {
        Some(parts) if parts.len() == 2 => match (parts[0], parts[1]) {
            ("5", "1") => Class::Hard,
            ("5", "2") if status.is_some_and(|s| s == "5.2.1") => Class::Hard,
            _ => Class::Block,
        },
        _ => match code {
            550 | 551 | 553 => Class::Hard,
            _ => Class::Block,
        },
    }
}

/// The first enhanced status code in `text` (class 2, 4 or 5, then two numbers of up to three
/// digits: "5.1.1", "4.7.28").
pub fn enhanced_status(text: &str) -> Option<String> {
    text.split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | ',' | ';' | ':' | '[' | ']'))
        // A multi-line reply's lines start "550-5.1.1": the code, a hyphen, the status.
        .map(|word| match word.split_once('-') {
            Some((code, rest)) if code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()) => {
                rest
            }
            _ => word,
        })
        .find(|word| {
            let parts: Vec<&str> = word.split('.').collect();
            parts.len() == 3
                && matches!(parts[0], "2" | "4" | "5")
                && parts[1..]
                    .iter()
                    .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(str::to_owned)
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
