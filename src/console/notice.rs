//! What an action reports on the page it sends the browser back to, by code: a link cannot put
//! its own words on a console page.

/// The words for a success code.
pub(super) fn of(code: &str) -> Option<String> {
    Some(
        match code {
            "retried" => "The dead letter is back in its queue.",
            "retried-all" => "Every dead letter of the queue is back in it.",
            "deleted" => "The dead letter is deleted.",
            "revoked" => "The key is revoked: every process refuses it within a second.",
            "paused" => "The campaign is paused.",
            "resumed" => "The campaign goes on.",
            "cancelled" => "The campaign is cancelled.",
            "suppressed" => "The address is suppressed.",
            "lifted" => "The suppression is lifted.",
            "hook-disabled" => "The endpoint is disabled: nothing more is delivered to it.",
            "hook-enabled" => "The endpoint delivers again.",
            "hook-replayed" => "The endpoint's events of the last day are queued again.",
            _ => return None,
        }
        .to_owned(),
    )
}

/// The words for a failure code.
pub(super) fn failure(code: &str) -> Option<String> {
    Some(
        match code {
            "gone" => {
                "Nothing was changed: it is no longer there (someone else may have acted on it)."
            }
            "state" => "Nothing was changed: the campaign's state does not allow that now.",
            "address" => "That is not an address mailroom can send to.",
            "detail" => "Nothing was changed: a note is at most 200 characters.",
            "unavailable" => "Nothing was changed: Redis did not answer. Try again.",
            _ => return None,
        }
        .to_owned(),
    )
}
