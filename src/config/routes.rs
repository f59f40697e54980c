//! `MAILROOM_ROUTES` and `MAILROOM_ROUTE_CATEGORIES`: which providers each kind of mail goes
//! through, in the order they are tried.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{NotAChoice, ProviderKind, one_of};

/// The kind of mail, which picks its route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MailKind {
    /// Single and batch API mail, verification and opt-in mail.
    Transactional,
    /// Campaigns and list mail.
    Bulk,
}

impl MailKind {
    /// Its name in settings, metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::Transactional => "transactional",
            MailKind::Bulk => "bulk",
        }
    }

    fn parse(value: &str) -> Result<Self, NotAChoice> {
        one_of(
            "a kind of mail",
            value,
            &[("transactional", Self::Transactional), ("bulk", Self::Bulk)],
        )
    }
}

/// `MAILROOM_ROUTES`: `transactional=sendgrid>ses, bulk=ses>smtp`. A kind it does not name goes
/// through `MAILROOM_PROVIDER` alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct RouteTable(BTreeMap<MailKind, Vec<ProviderKind>>);

/// Why `MAILROOM_ROUTES` or `MAILROOM_ROUTE_CATEGORIES` does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("`{0}` is not `kind=provider>provider`")]
    NotAPair(String),
    #[error(transparent)]
    NotAChoice(#[from] NotAChoice),
    #[error("{0} is named twice")]
    Twice(String),
}

impl RouteTable {
    /// The providers of `kind`'s route, in order; `None` when the table does not name it.
    pub fn route(&self, kind: MailKind) -> Option<&[ProviderKind]> {
        self.0.get(&kind).map(Vec::as_slice)
    }
}

impl TryFrom<String> for RouteTable {
    type Error = RouteError;

    fn try_from(value: String) -> Result<Self, RouteError> {
        let mut table = BTreeMap::new();
        for (kind, providers) in pairs(&value)? {
            let kind = MailKind::parse(kind)?;
            let mut route = Vec::new();
            for name in providers.split('>') {
                let provider = ProviderKind::try_from(name.trim().to_owned())?;
                if route.contains(&provider) {
                    return Err(RouteError::Twice(format!("{} in one route", name.trim())));
                }
                route.push(provider);
            }
            if table.insert(kind, route).is_some() {
                return Err(RouteError::Twice(kind.as_str().to_owned()));
            }
        }
        Ok(Self(table))
    }
}

/// `MAILROOM_ROUTE_CATEGORIES`: `digest=bulk, receipt=transactional`, categories whose mail
/// goes as another kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct RouteCategories(BTreeMap<String, MailKind>);

impl RouteCategories {
    /// The kind the first of `categories` that has one routes as.
    pub fn kind_of<'a>(
        &self,
        categories: impl IntoIterator<Item = &'a String>,
    ) -> Option<MailKind> {
        categories.into_iter().find_map(|c| self.0.get(c).copied())
    }
}

impl TryFrom<String> for RouteCategories {
    type Error = RouteError;

    fn try_from(value: String) -> Result<Self, RouteError> {
        let mut categories = BTreeMap::new();
        for (category, kind) in pairs(&value)? {
            if categories
                .insert(category.to_owned(), MailKind::parse(kind)?)
                .is_some()
            {
                return Err(RouteError::Twice(category.to_owned()));
            }
        }
        Ok(Self(categories))
    }
}

/// The `name=value` pairs of a comma-separated list, trimmed; nothing when it is blank.
fn pairs(value: &str) -> Result<Vec<(&str, &str)>, RouteError> {
    (value.split(','))
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) if !name.trim().is_empty() && !value.trim().is_empty() => {
                Ok((name.trim(), value.trim()))
            }
            _ => Err(RouteError::NotAPair(pair.to_owned())),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_name_providers_in_order_per_kind_and_refuse_what_is_not_one() {
        let table = RouteTable::try_from("transactional=sendgrid>smtp, bulk = Postmark".to_owned())
            .unwrap();
        assert_eq!(
            table.route(MailKind::Transactional),
            Some(&[ProviderKind::Sendgrid, ProviderKind::Smtp][..])
        );
        assert_eq!(
            table.route(MailKind::Bulk),
            Some(&[ProviderKind::Postmark][..])
        );
        assert_eq!(
            RouteTable::try_from(String::new()).unwrap(),
            RouteTable::default()
        );
        let error = |text: &str| {
            RouteTable::try_from(text.to_owned())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            error("bulk=smtp>sendgird"),
            "`sendgird` is not a provider: use one of sendgrid, postmark, mailgun, ses, smtp, outbox"
        );
        assert_eq!(error("bulk=smtp>smtp"), "smtp in one route is named twice");
        assert_eq!(error("bulk=smtp, bulk=outbox"), "bulk is named twice");
        assert_eq!(
            error("sendgrid"),
            "`sendgrid` is not `kind=provider>provider`"
        );
        assert!(error("newsletters=smtp").contains("not a kind of mail"));
    }

    #[test]
    fn a_category_routes_as_its_kind() {
        let categories =
            RouteCategories::try_from("digest=bulk, receipt=transactional".to_owned()).unwrap();
        let of = |names: &[&str]| {
            let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
            categories.kind_of(&names)
        };
        assert_eq!(of(&["weekly", "digest"]), Some(MailKind::Bulk));
        assert_eq!(of(&["receipt"]), Some(MailKind::Transactional));
        assert_eq!(of(&["other"]), None);
        assert!(RouteCategories::try_from("digest=daily".to_owned()).is_err());
    }
}
