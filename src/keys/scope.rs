//! What a key may do: one scope per kind of route, and the rule that names each route's scope.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A permission a key carries.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
pub enum Scope {
    /// Queue email (single, batch) and render templates.
    #[serde(rename = "emails:send")]
    EmailsSend,
    /// Read the status and timeline of the key's own messages.
    #[serde(rename = "emails:read")]
    EmailsRead,
    /// Read every message, the stats and the inbound mail.
    #[serde(rename = "emails:read_all")]
    EmailsReadAll,
    /// Send verification links and read or clear an address's verification.
    #[serde(rename = "verifications")]
    Verifications,
    /// Validate addresses.
    #[serde(rename = "validations")]
    Validations,
    /// Read lists, subscribers and imports.
    #[serde(rename = "lists:read")]
    ListsRead,
    /// Make and change lists, subscribers, subscriptions and imports.
    #[serde(rename = "lists:write")]
    ListsWrite,
    /// Erase a subscriber.
    #[serde(rename = "subscribers:erase")]
    SubscribersErase,
    /// Make, schedule, pause, resume, cancel and test campaigns.
    #[serde(rename = "campaigns")]
    Campaigns,
    /// Read and edit the suppression list.
    #[serde(rename = "suppressions")]
    Suppressions,
    /// Manage webhook endpoints.
    #[serde(rename = "webhooks")]
    Webhooks,
    /// Make, change, rotate and revoke keys.
    #[serde(rename = "keys")]
    Keys,
    /// Sign in to the operator console.
    #[serde(rename = "console")]
    Console,
}

impl Scope {
    /// Every scope, in the order the documentation lists them.
    pub const ALL: [Scope; 13] = [
        Scope::EmailsSend,
        Scope::EmailsRead,
        Scope::EmailsReadAll,
        Scope::Verifications,
        Scope::Validations,
        Scope::ListsRead,
        Scope::ListsWrite,
        Scope::SubscribersErase,
        Scope::Campaigns,
        Scope::Suppressions,
        Scope::Webhooks,
        Scope::Keys,
        Scope::Console,
    ];

    /// The scope's name, as keys and errors spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::EmailsSend => "emails:send",
            Scope::EmailsRead => "emails:read",
            Scope::EmailsReadAll => "emails:read_all",
            Scope::Verifications => "verifications",
            Scope::Validations => "validations",
            Scope::ListsRead => "lists:read",
            Scope::ListsWrite => "lists:write",
            Scope::SubscribersErase => "subscribers:erase",
            Scope::Campaigns => "campaigns",
            Scope::Suppressions => "suppressions",
            Scope::Webhooks => "webhooks",
            Scope::Keys => "keys",
            Scope::Console => "console",
        }
    }

    /// The scope named `name`.
    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The bit of this scope in a [`Scopes`] set.
    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes(u16);

impl Scopes {
    /// Every scope: the operator keys of `MAILROOM_API_KEYS`.
    pub fn all() -> Self {
        Scope::ALL.into_iter().collect()
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Whether these scopes allow what `scope` allows: `emails:read_all` includes
    /// `emails:read`.
    pub fn allows(self, scope: Scope) -> bool {
        self.contains(scope) || (scope == Scope::EmailsRead && self.contains(Scope::EmailsReadAll))
    }

    /// The first scope of `given` these scopes do not allow: a key gives no more than it has.
    pub fn first_beyond(self, given: &[Scope]) -> Option<Scope> {
        given.iter().copied().find(|s| !self.allows(*s))
    }

    /// The scopes, in [`Scope::ALL`]'s order.
    pub fn to_vec(self) -> Vec<Scope> {
        Scope::ALL
            .into_iter()
            .filter(|s| self.contains(*s))
            .collect()
    }

    /// As stored: names separated by spaces.
    pub fn to_text(self) -> String {
        let names: Vec<&str> = self.to_vec().into_iter().map(Scope::as_str).collect();
        names.join(" ")
    }

    /// From the stored form; a name this version does not know is left out (a key never
    /// gains a scope by being read).
    pub fn from_text(text: &str) -> Self {
        text.split_whitespace().filter_map(Scope::parse).collect()
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Scopes(iter.into_iter().fold(0, |bits, s| bits | s.bit()))
    }
}

/// The scope each `/v1` route needs: `(method, route as the router writes it, scope)`. Every
/// route has exactly one rule (a test holds this table to the OpenAPI document, and the API
/// refuses a route without one), and the OpenAPI document names each route's scope from it.
pub const RULES: &[(&str, &str, Scope)] = &[
    ("POST", "/v1/emails", Scope::EmailsSend),
    ("POST", "/v1/emails/batch", Scope::EmailsSend),
    ("GET", "/v1/emails/{id}", Scope::EmailsRead),
    ("POST", "/v1/render", Scope::EmailsSend),
    ("POST", "/v1/verifications", Scope::Verifications),
    ("GET", "/v1/addresses/{email}", Scope::Verifications),
    ("DELETE", "/v1/addresses/{email}", Scope::Verifications),
    ("POST", "/v1/validations/email", Scope::Validations),
    ("POST", "/v1/validations/batch", Scope::Validations),
    ("GET", "/v1/suppressions", Scope::Suppressions),
    ("GET", "/v1/suppressions/{email}", Scope::Suppressions),
    ("PUT", "/v1/suppressions/{email}", Scope::Suppressions),
    ("DELETE", "/v1/suppressions/{email}", Scope::Suppressions),
    ("GET", "/v1/stats", Scope::EmailsReadAll),
    ("GET", "/v1/inbound", Scope::EmailsReadAll),
    ("GET", "/v1/inbound/{id}", Scope::EmailsReadAll),
    (
        "GET",
        "/v1/inbound/{id}/attachments/{n}",
        Scope::EmailsReadAll,
    ),
    ("POST", "/v1/lists", Scope::ListsWrite),
    ("GET", "/v1/lists", Scope::ListsRead),
    ("GET", "/v1/lists/{id}", Scope::ListsRead),
    ("PATCH", "/v1/lists/{id}", Scope::ListsWrite),
    ("DELETE", "/v1/lists/{id}", Scope::ListsWrite),
    ("GET", "/v1/lists/{id}/subscribers", Scope::ListsRead),
    ("POST", "/v1/lists/{id}/count", Scope::ListsRead),
    ("POST", "/v1/subscribers", Scope::ListsWrite),
    ("GET", "/v1/subscribers/{id}", Scope::ListsRead),
    ("PATCH", "/v1/subscribers/{id}", Scope::ListsWrite),
    ("DELETE", "/v1/subscribers/{id}", Scope::SubscribersErase),
    ("GET", "/v1/subscribers/{id}/export", Scope::ListsRead),
    (
        "PUT",
        "/v1/subscribers/{id}/lists/{list}",
        Scope::ListsWrite,
    ),
    ("POST", "/v1/imports", Scope::ListsWrite),
    ("GET", "/v1/imports/{id}", Scope::ListsRead),
    ("GET", "/v1/imports/{id}/errors", Scope::ListsRead),
    ("POST", "/v1/campaigns", Scope::Campaigns),
    ("GET", "/v1/campaigns", Scope::Campaigns),
    ("GET", "/v1/campaigns/{id}", Scope::Campaigns),
    ("POST", "/v1/campaigns/{id}/schedule", Scope::Campaigns),
    ("POST", "/v1/campaigns/{id}/pause", Scope::Campaigns),
    ("POST", "/v1/campaigns/{id}/resume", Scope::Campaigns),
    ("POST", "/v1/campaigns/{id}/cancel", Scope::Campaigns),
    ("POST", "/v1/campaigns/{id}/test", Scope::Campaigns),
    ("POST", "/v1/keys", Scope::Keys),
    ("GET", "/v1/keys", Scope::Keys),
    ("GET", "/v1/keys/{id}", Scope::Keys),
    ("PATCH", "/v1/keys/{id}", Scope::Keys),
    ("DELETE", "/v1/keys/{id}", Scope::Keys),
    ("POST", "/v1/keys/{id}/rotate", Scope::Keys),
    ("GET", "/v1/audit", Scope::Keys),
    ("POST", "/v1/webhooks", Scope::Webhooks),
    ("GET", "/v1/webhooks", Scope::Webhooks),
    ("GET", "/v1/webhooks/{id}", Scope::Webhooks),
    ("PATCH", "/v1/webhooks/{id}", Scope::Webhooks),
    ("DELETE", "/v1/webhooks/{id}", Scope::Webhooks),
    ("POST", "/v1/webhooks/{id}/rotate", Scope::Webhooks),
    ("POST", "/v1/webhooks/{id}/test", Scope::Webhooks),
    ("POST", "/v1/webhooks/{id}/replay", Scope::Webhooks),
    ("GET", "/v1/webhooks/{id}/deliveries", Scope::Webhooks),
];

/// The scope `method` on `route` needs, if a rule names it.
pub fn required(method: &str, route: &str) -> Option<Scope> {
    (RULES.iter())
        .find(|(m, r, _)| *m == method && *r == route)
        .map(|(_, _, scope)| *scope)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_through_their_stored_text_and_unknown_names_grant_nothing() {
        let some: Scopes = [Scope::EmailsSend, Scope::Console].into_iter().collect();
        assert_eq!(some.to_text(), "emails:send console");
        assert_eq!(Scopes::from_text("console emails:send"), some);
        assert_eq!(
            Scopes::from_text("admin emails:send"),
            [Scope::EmailsSend].into_iter().collect()
        );
        assert_eq!(Scopes::all().to_vec().len(), Scope::ALL.len());
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
            let json = serde_json::to_string(&scope).unwrap();
            assert_eq!(json, format!("\"{scope}\""));
        }
    }

    #[test]
    fn no_route_has_two_rules() {
        let mut seen = std::collections::BTreeSet::new();
        for (method, route, _) in RULES {
            assert!(
                seen.insert((method, route)),
                "{method} {route} has two rules"
            );
        }
    }
}
