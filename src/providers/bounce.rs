//! One recipient's permanent refusal as a provider reports it, classified by its reply code
//! and RFC 3463 enhanced status code (the classes are described in `bounces`, which
//! turns a refusal into a `bounce` event), and the VERP envelope sender that ties later
//! reports back to the mail they are about.

use crate::domain::{CampaignId, MessageId};

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
pub const MAX_REPLY: usize = 500;

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

/// What a report is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// A message sent with `POST /v1/emails`.
    Message(MessageId),
    /// A campaign's mail to one subscriber.
    Campaign {
        campaign: CampaignId,
        subscriber: u64,
    },
}

/// The VERP local part for `owner`: `bounces+m-ID` or `bounces+c-CAMPAIGN-SUBSCRIBER`.
pub fn verp_local(owner: &Owner) -> String {
    match owner {
        Owner::Message(id) => format!("bounces+m-{}", id.get().simple()),
        Owner::Campaign {
            campaign,
            subscriber,
        } => format!("bounces+c-{}-{subscriber}", campaign.get().simple()),
    }
}
