//! Delivery status notifications (RFC 3464) and complaint reports (ARF, RFC 5965) mailed back
//! to mailroom: received through SendGrid's Inbound Parse (raw mode) on the bounce domain,
//! recognised by their `multipart/report` type, read, and tied back to the message they are
//! about, then recorded as `bounce` / `spam_report` events like SendGrid's.
//!
//! Tie-back, first that applies:
//! - the VERP address the report was mailed to: `bounces+m-{message id}@MAILROOM_BOUNCE_DOMAIN`
//!   (transactional mail) or `bounces+c-{campaign id}-{subscriber id}@…` (campaign mail), the
//!   envelope sender mailroom gives SMTP and outbox mail when the setting is set;
//! - the original message's `Message-ID` (`<{message id}@{sender's domain}>`) in the report's
//!   returned headers.
//!
//! A DSN's recipients with `Action: failed` bounce, classified as SMTP refusals are
//! ([`super::classify`]); `delayed`, `delivered`, `relayed` and `expanded` change nothing. An
//! ARF report of any feedback type but `not-spam` is a complaint about the original recipient.

use mail_parser::{MessageParser, MimeHeaders, PartType};

use super::Bounce;
pub use crate::providers::bounce::{Owner, verp_local};

use super::BounceEvent as _;
use crate::domain::{CampaignId, MessageId};
use crate::events::{Event, EventKind, Source};

/// A report, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// A DSN: the recipients that failed for good.
    Delivery(Vec<Bounce>),
    /// An ARF complaint: its feedback type and the recipient who complained, when said.
    Complaint {
        feedback_type: String,
        recipient: Option<String>,
    },
}

/// A report and what it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub report: Report,
    /// `None`: the report names nothing mailroom sent.
    pub owner: Option<Owner>,
}

/// What a VERP `address` names, if it is one of mailroom's.
fn owner_of_verp(address: &str) -> Option<Owner> {
    let local = address.rsplit_once('@')?.0.trim_start_matches('<');
    let tag = local.strip_prefix("bounces+")?;
    if let Some(id) = tag.strip_prefix("m-") {
        return MessageId::parse(id).map(Owner::Message);
    }
    let (campaign, subscriber) = tag.strip_prefix("c-")?.split_once('-')?;
    Some(Owner::Campaign {
        campaign: CampaignId::parse(campaign)?,
        subscriber: subscriber.parse().ok()?,
    })
}

/// What a `Message-ID` names, if mailroom gave it (`<{uuid}@domain>`).
fn owner_of_message_id(id: &str) -> Option<Owner> {
    let local = id.trim().trim_start_matches('<').split('@').next()?;
    MessageId::parse(local).map(Owner::Message)
}

/// The fields of a header block (`Name: value`, folded lines joined), names lower-cased.
fn fields(block: &str) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in block.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            fields.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    fields
}

/// The address of a `type; address` field (`rfc822; ada@example.org`).
fn typed_address(value: &str) -> String {
    let address = value.split_once(';').map_or(value, |(_, a)| a);
    address
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_ascii_lowercase()
}

/// The recipients a `message/delivery-status` body says failed for good.
fn failed_recipients(body: &str) -> Vec<Bounce> {
    let body = body.replace("\r\n", "\n");
    // The first block is about the message, each next one about a recipient.
    body.split("\n\n")
        .skip(1)
        .filter_map(|block| {
            let fields = fields(block);
            let get = |name: &str| {
                fields
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.as_str())
            };
            if !get("action")?.eq_ignore_ascii_case("failed") {
                return None;
            }
            let recipient = typed_address(get("final-recipient").or(get("original-recipient"))?);
            let status = get("status").unwrap_or_default();
            let diagnostic = get("diagnostic-code").map(|d| {
                d.split_once(';')
                    .map_or(d, |(_, text)| text)
                    .trim()
                    .to_owned()
            });
            let reply = diagnostic.unwrap_or_else(|| status.to_owned());
            let code = reply
                .get(..3)
                .and_then(|c| c.parse::<u16>().ok())
                .filter(|c| (500..600).contains(c))
                .unwrap_or(0);
            // The Status field is the report's own verdict: it goes first, so the class is the
            // one it gives even when the diagnostic quotes another code.
            let mut bounce = Bounce::new(&recipient, code, &format!("{status} {reply}"));
            bounce.reply = reply;
            Some(bounce)
        })
        .collect()
}

/// Reads `raw` (a whole message) as a delivery or complaint report, tied back through the
/// `envelope_to` addresses it was mailed to. `None` when it is not a report.
pub fn read(raw: &[u8], envelope_to: &[String]) -> Option<Read> {
    let message = MessageParser::default().parse(raw)?;
    let content_type = message.content_type()?;
    if !content_type.ctype().eq_ignore_ascii_case("multipart")
        || !content_type
            .subtype()
            .is_some_and(|s| s.eq_ignore_ascii_case("report"))
    {
        return None;
    }
    let report_type = content_type.attribute("report-type")?.to_ascii_lowercase();
    let mut original_id = None;
    let mut status = None;
    let mut feedback = None;
    for part in &message.parts {
        let Some(kind) = part.content_type() else {
            continue;
        };
        let kind = format!(
            "{}/{}",
            kind.ctype().to_ascii_lowercase(),
            kind.subtype().unwrap_or_default().to_ascii_lowercase()
        );
        match (kind.as_str(), &part.body) {
            ("message/delivery-status" | "message/global-delivery-status", _) => {
                status = Some(String::from_utf8_lossy(part.contents()).into_owned());
            }
            ("message/feedback-report", _) => {
                feedback = Some(String::from_utf8_lossy(part.contents()).into_owned());
            }
            (_, PartType::Message(original)) => {
                original_id = original_id.or(original.message_id().map(str::to_owned));
            }
            ("text/rfc822-headers" | "message/rfc822-headers", _) => {
                let headers = String::from_utf8_lossy(part.contents()).into_owned();
                original_id = original_id.or(fields(&headers)
                    .into_iter()
                    .find(|(n, _)| n == "message-id")
                    .map(|(_, v)| v));
            }
            _ => {}
        }
    }
    let report = match report_type.as_str() {
        "delivery-status" => Report::Delivery(failed_recipients(&status?)),
        "feedback-report" => {
            let fields = fields(&feedback?);
            let get = |name: &str| {
                fields
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
            };
            Report::Complaint {
                feedback_type: get("feedback-type")?.to_ascii_lowercase(),
                recipient: get("original-rcpt-to").map(|r| typed_address(&r)),
            }
        }
        _ => return None,
    };
    let owner = envelope_to
        .iter()
        .find_map(|to| owner_of_verp(to))
        .or_else(|| original_id.as_deref().and_then(owner_of_message_id));
    Some(Read { report, owner })
}

impl Read {
    /// The events this report is, with `campaign_recipient` the address of a campaign's
    /// subscriber (looked up by the caller) for a complaint that names nobody.
    pub fn events(&self, campaign_recipient: Option<&str>) -> Vec<Event> {
        let Some(owner) = &self.owner else {
            return Vec::new();
        };
        let (scope, message, campaign) = match owner {
            Owner::Message(id) => (id.to_string(), Some(id.to_string()), None),
            Owner::Campaign {
                campaign,
                subscriber,
            } => (
                format!("{campaign}-{subscriber}"),
                None,
                Some(campaign.to_string()),
            ),
        };
        let tie = |mut event: Event| {
            event.mailroom_id = message.clone();
            event.mailroom_campaign = campaign.clone();
            event
        };
        match &self.report {
            Report::Delivery(bounces) => bounces
                .iter()
                .map(|bounce| tie(bounce.event(Source::Report, &scope)))
                .collect(),
            Report::Complaint {
                feedback_type,
                recipient,
            } if feedback_type != "not-spam" => {
                let Some(email) = recipient.as_deref().or(campaign_recipient) else {
                    return Vec::new();
                };
                let mut event = Event::own(
                    Source::Report,
                    EventKind::SpamReport,
                    email,
                    chrono::Utc::now().timestamp(),
                );
                event.reason = Some(format!("ARF {feedback_type} report"));
                event.sg_event_id = Some(format!("mailroom-report-complaint-{scope}"));
                vec![tie(event)]
            }
            Report::Complaint { .. } => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POSTFIX: &str = include_str!("../../tests/data/reports/postfix-dsn.eml");
    const GMAIL: &str = include_str!("../../tests/data/reports/gmail-dsn.eml");
    const OUTLOOK: &str = include_str!("../../tests/data/reports/outlook-dsn.eml");
    const ARF: &str = include_str!("../../tests/data/reports/arf-abuse.eml");

    fn sample(text: &str, id: MessageId, verp: &str) -> Vec<u8> {
        text.replace("{{MESSAGE_ID}}", &id.to_string())
            .replace("{{VERP}}", verp)
            .replace("{{RECIPIENT}}", "Gone@Example.org")
            .replace('\n', "\r\n")
            .into_bytes()
    }

    #[test]
    fn postfix_gmail_and_outlook_dsns_are_hard_bounces_of_the_message_their_verp_names() {
        let id = MessageId::fresh();
        let verp = format!("{}@bounces.example.com", verp_local(&Owner::Message(id)));
        for (text, status) in [(POSTFIX, "5.1.1"), (GMAIL, "5.1.1"), (OUTLOOK, "5.1.10")] {
            let read = read(&sample(text, id, &verp), std::slice::from_ref(&verp)).unwrap();
            assert_eq!(read.owner, Some(Owner::Message(id)));
            let Report::Delivery(bounces) = &read.report else {
                panic!("not a delivery report: {read:?}");
            };
            assert_eq!(bounces.len(), 1, "{bounces:?}");
            assert_eq!(bounces[0].recipient, "gone@example.org");
            assert_eq!(bounces[0].status.as_deref(), Some(status));
            assert_eq!(bounces[0].class, super::super::Class::Hard);
            assert!(bounces[0].reply.starts_with("550"), "{}", bounces[0].reply);
            let events = read.events(None);
            assert_eq!(events.len(), 1);
            assert_eq!(events[0].mailroom_id, Some(id.to_string()));
            assert_eq!(events[0].source, Source::Report);
        }
    }

    #[test]
    fn without_verp_the_returned_message_id_ties_the_report_back() {
        let id = MessageId::fresh();
        for text in [POSTFIX, GMAIL, OUTLOOK, ARF] {
            let read = read(&sample(text, id, "news@news.example.com"), &[]).unwrap();
            assert_eq!(read.owner, Some(Owner::Message(id)), "{text:.60}");
        }
    }

    #[test]
    fn an_arf_report_is_a_complaint_by_the_original_recipient() {
        let campaign = CampaignId::fresh();
        let owner = Owner::Campaign {
            campaign,
            subscriber: 6401,
        };
        let verp = format!("{}@bounces.example.com", verp_local(&owner));
        let read = read(
            &sample(ARF, MessageId::fresh(), &verp),
            std::slice::from_ref(&verp),
        )
        .unwrap();
        assert_eq!(read.owner, Some(owner));
        assert_eq!(
            read.report,
            Report::Complaint {
                feedback_type: "abuse".to_owned(),
                recipient: Some("gone@example.org".to_owned())
            }
        );
        let events = read.events(None);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event, EventKind::SpamReport);
        assert_eq!(events[0].mailroom_campaign, Some(campaign.to_string()));
    }

    #[test]
    fn delays_and_other_mail_are_not_bounces() {
        let id = MessageId::fresh();
        let delayed = POSTFIX
            .replace("Action: failed", "Action: delayed")
            .replace("Status: 5.1.1", "Status: 4.4.1");
        let read = read(&sample(&delayed, id, "x@example.com"), &[]).unwrap();
        assert_eq!(read.report, Report::Delivery(Vec::new()));
        assert!(read.events(None).is_empty());
        let plain = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nhello\r\n";
        assert_eq!(super::read(plain, &[]), None);
        assert_eq!(super::read(b"\x00\x01 not mail", &[]), None);
    }
}
