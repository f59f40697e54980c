//! A campaign read once per process: its spec, its lists (with their headers) and its letters
//! per language, rendered once.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use lettre::message::Mailbox;

use super::{
    copy::{Letter, render_copy},
    model::Spec,
    outcome::RunError,
    store::CampaignStore,
};
use crate::{
    domain::{CampaignId, ListId},
    lists::{
        ListStore,
        links::ListHeaders,
        segment::{Filter, RecordView},
    },
    render::Renderer,
};

/// A campaign read once per process: its spec, lists and copies.
#[derive(Debug)]
pub struct Prepared {
    pub(super) id: CampaignId,
    pub(super) spec: Spec,
    pub(super) lists: Vec<ListInfo>,
    pub(super) filter: Option<Filter>,
    copies: Mutex<HashMap<String, Arc<Letter>>>,
    pub(super) from: Mailbox,
    pub(super) reply_to: Option<Mailbox>,
}

/// One list of a campaign.
#[derive(Debug)]
pub(super) struct ListInfo {
    pub(super) id: ListId,
    /// The id in decimal, as records name their subscriptions.
    pub(super) key: String,
    pub(super) locale: Option<String>,
    /// Its mail's list headers, but for the token.
    pub(super) headers: ListHeaders,
    /// `Feedback-ID`.
    pub(super) feedback_id: String,
}

fn mailbox(field: &str, value: &mailroom_jobs::Mailbox) -> Result<Mailbox, RunError> {
    let address = value
        .email
        .parse()
        .map_err(|e| RunError::Fatal(format!("{field}: {e}")))?;
    Ok(Mailbox::new(value.name.clone(), address))
}

/// What reading a campaign needs, borrowed from the worker's parts.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sources<'a> {
    pub store: &'a CampaignStore,
    pub lists: &'a ListStore,
    pub renderer: &'a Renderer,
    pub public_url: &'a str,
    pub unsubscribe_mailto: Option<&'a str>,
    pub default_from: &'a Mailbox,
}

impl Sources<'_> {
    /// The language a recipient reads: theirs, else their list's, else the default.
    pub(super) fn locale_of(&self, view: &RecordView<'_>, list: &ListInfo) -> String {
        language(self.renderer, view.locale(), list.locale.as_deref())
    }

    /// Campaign `campaign`, read and checked.
    pub(super) async fn read(&self, id: CampaignId) -> Result<Prepared, RunError> {
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
                        self.public_url,
                        found.id,
                        &found.name,
                        self.unsubscribe_mailto,
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
            None => (*self.default_from).clone(),
        };
        let reply_to = spec
            .reply_to
            .as_ref()
            .map(|r| mailbox("reply_to", r))
            .transpose()?;
        Ok(Prepared {
            id,
            spec,
            lists,
            filter,
            copies: Mutex::default(),
            from,
            reply_to,
        })
    }

    /// The copy of `prepared` in `locale`, rendered once.
    pub(super) fn letter(
        &self,
        prepared: &Prepared,
        locale: &str,
    ) -> Result<Arc<Letter>, RunError> {
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
                self.renderer,
                self.public_url,
                &prepared.spec.content,
                locale,
            )
            .map_err(|e| RunError::Fatal(e.to_string()))?,
        );
        if let Ok(mut copies) = prepared.copies.lock() {
            copies.insert(locale.to_owned(), copy.clone());
        }
        Ok(copy)
    }
}

/// The language of a subscriber whose record says `theirs` (empty: none), on a list that
/// says `list`: theirs, else the list's, else the renderer's default, negotiated.
pub(super) fn language(renderer: &Renderer, theirs: &str, list: Option<&str>) -> String {
    renderer.negotiate(Some(theirs).filter(|l| !l.is_empty()).or(list))
}

/// A `Feedback-ID` (Gmail's feedback loop groups complaints by it): campaign, list, kind, sender.
fn feedback_id(campaign: CampaignId, list: ListId) -> String {
    format!("{campaign}:{list}:campaign:mailroom")
}
