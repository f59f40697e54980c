//! Segments: a filter over subscriber fields and attributes, as JSON, evaluated while a list is
//! streamed ([`ListStore::scan`](super::store::ListStore::scan)).
//!
//! ```json
//! {"and": [
//!   {"field": "attributes.plan", "op": "in", "value": ["pro", "team"]},
//!   {"field": "attributes.seats", "op": "gte", "value": 10},
//!   {"not": {"field": "locale", "op": "eq", "value": "fr"}},
//!   {"field": "created_at", "op": "lt", "value": "2026-01-01"}
//! ]}
//! ```
//!
//! Fields: `email`, `domain` (of the address), `name`, `locale`, `status` (`enabled` or
//! `blocklisted`), `created_at`, `updated_at`, and `attributes.NAME` (nested with more dots).
//! Operators: `eq`, `ne`, `in` (an array), `exists` (`true` or `false`), and the comparisons
//! `gt`, `gte`, `lt`, `lte` against a number or a date (`YYYY-MM-DD` or RFC 3339). A comparison
//! takes an attribute that is a number, or a string that reads as one (CSV imports store
//! strings); a field that is absent or of another kind does not match. Combinators: `and` and
//! `or` (arrays of filters) and `not` (one filter). At most [`MAX_NODES`] parts, [`MAX_DEPTH`]
//! deep. An invalid filter is refused with the path of the part at fault (`and[1].op`).

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};

use super::model::SEPARATOR;

/// The most parts a filter has.
pub const MAX_NODES: usize = 200;
/// The deepest nesting.
pub const MAX_DEPTH: usize = 16;

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Test(Test),
}

/// One condition on one field.
#[derive(Debug, Clone, PartialEq)]
pub struct Test {
    field: Field,
    op: Op,
}

#[derive(Debug, Clone, PartialEq)]
enum Field {
    Email,
    Domain,
    Name,
    Locale,
    Status,
    CreatedAt,
    UpdatedAt,
    Attribute(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Eq(Value),
    Ne(Value),
    In(Vec<Value>),
    Exists(bool),
    Compare(Ordering, Bound),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Ordering {
    Gt,
    Gte,
    Lt,
    Lte,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Bound {
    Number(f64),
    /// Unix seconds.
    Date(i64),
}

/// A filter that is not one, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FilterError {
    /// The path of the part at fault, e.g. `and[1].op`.
    pub path: String,
    pub message: String,
}

fn fail<T>(path: &str, message: impl Into<String>) -> Result<T, FilterError> {
    Err(FilterError {
        path: path.to_owned(),
        message: message.into(),
    })
}

fn join(path: &str, part: &str) -> String {
    if path.is_empty() {
        part.to_owned()
    } else if part.starts_with('[') {
        format!("{path}{part}")
    } else {
        format!("{path}.{part}")
    }
}

impl Filter {
    /// Parses `value` as a filter.
    ///
    /// # Errors
    /// A [`FilterError`] naming the part at fault.
    pub fn parse(value: &Value) -> Result<Self, FilterError> {
        let mut nodes = 0;
        Self::parse_at(value, "", 0, &mut nodes)
    }

    fn parse_at(
        value: &Value,
        path: &str,
        depth: usize,
        nodes: &mut usize,
    ) -> Result<Self, FilterError> {
        *nodes += 1;
        if *nodes > MAX_NODES {
            return fail(path, format!("a filter has at most {MAX_NODES} parts"));
        }
        if depth > MAX_DEPTH {
            return fail(path, format!("a filter nests at most {MAX_DEPTH} deep"));
        }
        let Some(object) = value.as_object() else {
            return fail(path, "a filter is an object");
        };
        for combinator in ["and", "or"] {
            if let Some(parts) = object.get(combinator) {
                let here = join(path, combinator);
                if object.len() != 1 {
                    return fail(path, format!("`{combinator}` stands alone in its object"));
                }
                let Some(parts) = parts.as_array().filter(|p| !p.is_empty()) else {
                    return fail(
                        &here,
                        format!("`{combinator}` takes a non-empty array of filters"),
                    );
                };
                let parsed = parts
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        Self::parse_at(p, &join(&here, &format!("[{i}]")), depth + 1, nodes)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                return Ok(if combinator == "and" {
                    Self::And(parsed)
                } else {
                    Self::Or(parsed)
                });
            }
        }
        if let Some(inner) = object.get("not") {
            if object.len() != 1 {
                return fail(path, "`not` stands alone in its object");
            }
            let inner = Self::parse_at(inner, &join(path, "not"), depth + 1, nodes)?;
            return Ok(Self::Not(Box::new(inner)));
        }
        Test::parse(object, path).map(Self::Test)
    }

    /// Whether the filter reads attributes (so records need their JSON parsed).
    pub fn reads_attributes(&self) -> bool {
        match self {
            Self::And(parts) | Self::Or(parts) => parts.iter().any(Self::reads_attributes),
            Self::Not(inner) => inner.reads_attributes(),
            Self::Test(test) => matches!(test.field, Field::Attribute(_)),
        }
    }

    /// Whether the record `view` matches.
    pub fn matches(&self, view: &RecordView<'_>) -> bool {
        match self {
            Self::And(parts) => parts.iter().all(|p| p.matches(view)),
            Self::Or(parts) => parts.iter().any(|p| p.matches(view)),
            Self::Not(inner) => !inner.matches(view),
            Self::Test(test) => test.matches(view),
        }
    }
}

impl Field {
    /// The field `name` names (`attributes.a.b` for a path into the attributes).
    fn parse(name: &str, field_path: &str) -> Result<Self, FilterError> {
        Ok(match name {
            "email" => Field::Email,
            "domain" => Field::Domain,
            "name" => Field::Name,
            "locale" => Field::Locale,
            "status" => Field::Status,
            "created_at" => Field::CreatedAt,
            "updated_at" => Field::UpdatedAt,
            other => match other.strip_prefix("attributes.") {
                Some(rest) if !rest.is_empty() && rest.split('.').all(|p| !p.is_empty()) => {
                    Field::Attribute(rest.split('.').map(str::to_owned).collect())
                }
                _ => {
                    return fail(
                        field_path,
                        format!(
                            "unknown field {other:?}: email, domain, name, locale, status, created_at, updated_at or attributes.NAME"
                        ),
                    );
                }
            },
        })
    }
}

impl Bound {
    /// The bound of a comparison: a number, or a date (`YYYY-MM-DD` or RFC 3339).
    fn parse(value: &Value, value_path: &str) -> Result<Self, FilterError> {
        Ok(match value {
            Value::Number(n) => Bound::Number(n.as_f64().unwrap_or(f64::NAN)),
            Value::String(s) => match parse_date(s) {
                Some(t) => Bound::Date(t),
                None => {
                    return fail(
                        value_path,
                        format!("{s:?} is not a date (YYYY-MM-DD or RFC 3339)"),
                    );
                }
            },
            _ => return fail(value_path, "a comparison takes a number or a date"),
        })
    }
}

impl Test {
    fn parse(object: &Map<String, Value>, path: &str) -> Result<Self, FilterError> {
        for key in object.keys() {
            if !["field", "op", "value"].contains(&key.as_str()) {
                return fail(
                    &join(path, key),
                    format!(
                        "unknown key {key:?}: a condition has field, op and value; combine with and, or, not"
                    ),
                );
            }
        }
        let field_path = join(path, "field");
        let Some(name) = object.get("field").and_then(Value::as_str) else {
            return fail(&field_path, "a condition names its field (a string)");
        };
        let field = Field::parse(name, &field_path)?;
        let op_path = join(path, "op");
        let value_path = join(path, "value");
        let value = object.get("value");
        let need = |what: &str| -> Result<&Value, FilterError> {
            value.ok_or_else(|| FilterError {
                path: value_path.clone(),
                message: format!("this op takes {what}"),
            })
        };
        let op = match object.get("op").and_then(Value::as_str) {
            Some("eq") => Op::Eq(scalar(need("a value")?, &value_path)?),
            Some("ne") => Op::Ne(scalar(need("a value")?, &value_path)?),
            Some("in") => {
                let Some(items) = need("an array")?.as_array() else {
                    return fail(&value_path, "`in` takes an array of values");
                };
                if items.len() > 1000 {
                    return fail(&value_path, "`in` takes at most 1,000 values");
                }
                Op::In(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, v)| scalar(v, &format!("{value_path}[{i}]")))
                        .collect::<Result<_, _>>()?,
                )
            }
            Some("exists") => match value {
                None => Op::Exists(true),
                Some(Value::Bool(b)) => Op::Exists(*b),
                Some(_) => return fail(&value_path, "`exists` takes true or false"),
            },
            Some(op @ ("gt" | "gte" | "lt" | "lte")) => {
                let ordering = match op {
                    "gt" => Ordering::Gt,
                    "gte" => Ordering::Gte,
                    "lt" => Ordering::Lt,
                    _ => Ordering::Lte,
                };
                let bound = Bound::parse(need("a number or a date")?, &value_path)?;
                if matches!(field, Field::CreatedAt | Field::UpdatedAt)
                    && !matches!(bound, Bound::Date(_))
                {
                    return fail(&value_path, "created_at and updated_at compare with a date");
                }
                Op::Compare(ordering, bound)
            }
            Some(other) => {
                return fail(
                    &op_path,
                    format!("unknown op {other:?}: eq, ne, in, exists, gt, gte, lt or lte"),
                );
            }
            None => return fail(&op_path, "a condition has an op (a string)"),
        };
        Ok(Self { field, op })
    }

    fn matches(&self, view: &RecordView<'_>) -> bool {
        let owned: Option<Value>;
        let found: Option<Found<'_>> = match &self.field {
            Field::Attribute(path) => {
                owned = view.attribute(path);
                owned.as_ref().map(Found::Json)
            }
            Field::CreatedAt | Field::UpdatedAt => {
                let t = if self.field == Field::CreatedAt {
                    view.created
                } else {
                    view.updated
                };
                return match &self.op {
                    Op::Exists(e) => *e,
                    Op::Compare(o, Bound::Date(bound)) => compare(*o, t as f64, *bound as f64),
                    _ => false,
                };
            }
            other => {
                let text = match other {
                    Field::Email => view.email,
                    Field::Domain => view.email.rsplit_once('@').map_or("", |(_, d)| d),
                    Field::Name => view.name,
                    Field::Locale => view.locale,
                    _ => {
                        if view.status == "b" {
                            "blocklisted"
                        } else {
                            "enabled"
                        }
                    }
                };
                (!text.is_empty()).then_some(Found::Text(text))
            }
        };
        match &self.op {
            Op::Exists(wanted) => found.is_some_and(|v| !v.is_null()) == *wanted,
            Op::Eq(expected) => found.is_some_and(|v| v.equals(expected)),
            Op::Ne(expected) => !found.is_some_and(|v| v.equals(expected)),
            Op::In(options) => found.is_some_and(|v| options.iter().any(|o| v.equals(o))),
            Op::Compare(ordering, bound) => {
                let Some(found) = found else { return false };
                match bound {
                    Bound::Number(b) => found.number().is_some_and(|n| compare(*ordering, n, *b)),
                    Bound::Date(b) => found
                        .as_str()
                        .and_then(parse_date)
                        .is_some_and(|t| compare(*ordering, t as f64, *b as f64)),
                }
            }
        }
    }
}

/// A field's value as a record holds it: its own text (no copy) or an attribute's JSON.
#[derive(Debug, Clone, Copy)]
enum Found<'a> {
    Text(&'a str),
    Json(&'a Value),
}

impl<'a> Found<'a> {
    fn is_null(self) -> bool {
        matches!(self, Self::Json(Value::Null))
    }

    fn as_str(self) -> Option<&'a str> {
        match self {
            Self::Text(text) => Some(text),
            Self::Json(value) => value.as_str(),
        }
    }

    /// Equality that lets a number match the string an import stored for it (`"3"` = 3).
    fn equals(self, expected: &Value) -> bool {
        match (self, expected) {
            (Self::Json(stored), expected) if stored == expected => true,
            (Self::Text(text), Value::String(s)) => text == s,
            (Self::Json(Value::Number(n)), Value::String(s)) => {
                s.trim().parse::<f64>().ok() == n.as_f64()
            }
            (found, Value::Number(n)) => found
                .as_str()
                .is_some_and(|s| s.trim().parse::<f64>().ok() == n.as_f64()),
            _ => false,
        }
    }

    fn number(self) -> Option<f64> {
        match self {
            Self::Json(Value::Number(n)) => n.as_f64(),
            other => other
                .as_str()?
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite()),
        }
    }
}

/// A value `eq`, `ne` and `in` take: a string, number, boolean or null.
fn scalar(value: &Value, path: &str) -> Result<Value, FilterError> {
    match value {
        Value::Array(_) | Value::Object(_) => {
            fail(path, "compare with a string, number, boolean or null")
        }
        other => Ok(other.clone()),
    }
}

fn compare(ordering: Ordering, value: f64, bound: f64) -> bool {
    match ordering {
        Ordering::Gt => value > bound,
        Ordering::Gte => value >= bound,
        Ordering::Lt => value < bound,
        Ordering::Lte => value <= bound,
    }
}

/// A date as Unix seconds: RFC 3339, or `YYYY-MM-DD` (midnight UTC).
fn parse_date(text: &str) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc).timestamp());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp())
}

/// A stored record read without copying its fields; attributes parsed on first use.
#[derive(Debug)]
pub struct RecordView<'a> {
    email: &'a str,
    name: &'a str,
    locale: &'a str,
    attributes_json: &'a str,
    status: &'a str,
    created: i64,
    updated: i64,
    /// `{list}{code},…`: the subscriptions the record carries (see `lua/record.lua`).
    memberships: &'a str,
    attributes: std::cell::OnceCell<Option<RawObject<'a>>>,
}

/// A JSON object's members left unparsed (parsed when a filter asks for one): most filters read
/// one or two attributes of few, so a list beats a hash map here.
#[derive(Debug)]
struct RawObject<'a>(Vec<(std::borrow::Cow<'a, str>, &'a serde_json::value::RawValue)>);

impl<'a> RawObject<'a> {
    fn get(&self, name: &str) -> Option<&'a serde_json::value::RawValue> {
        self.0.iter().find(|(key, _)| key == name).map(|(_, v)| *v)
    }
}

impl<'de> serde::Deserialize<'de> for RawObject<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// A member name, borrowed from the JSON unless it holds escapes.
        #[derive(serde::Deserialize)]
        struct Name<'a>(#[serde(borrow)] std::borrow::Cow<'a, str>);

        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = RawObject<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some((Name(name), value)) = map.next_entry()? {
                    members.push((name, value));
                }
                Ok(RawObject(members))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

impl<'a> RecordView<'a> {
    /// The view of a raw record (see [`super::model`]), if it is one.
    pub fn of(raw: &'a str) -> Option<Self> {
        let mut fields = raw.split(SEPARATOR);
        Some(Self {
            email: fields.next()?,
            name: fields.next()?,
            locale: fields.next()?,
            attributes_json: fields.next()?,
            status: fields.next()?,
            created: fields.next()?.parse().ok()?,
            updated: fields.next()?.parse().ok()?,
            memberships: fields.next().unwrap_or_default(),
            attributes: std::cell::OnceCell::new(),
        })
    }

    /// The state of the subscriber's subscription to the list whose id is `list` (decimal).
    pub fn membership(&self, list: &str) -> Option<super::SubscriptionStatus> {
        self.memberships.split(',').find_map(|entry| {
            let (id, code) = entry.split_at_checked(entry.len().checked_sub(1)?)?;
            (id == list)
                .then(|| super::SubscriptionStatus::from_code(code))
                .flatten()
        })
    }

    /// The address.
    pub fn email(&self) -> &'a str {
        self.email
    }

    /// The name (empty when unknown).
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// The locale (empty when unknown).
    pub fn locale(&self) -> &'a str {
        self.locale
    }

    /// Whether the subscriber is blocklisted (receives nothing from any list).
    pub fn is_blocklisted(&self) -> bool {
        self.status == "b"
    }

    /// Top-level attribute `name` as text for an email: a string as it is, a number or a
    /// boolean as JSON, anything else (absent, null, objects, arrays) empty.
    pub fn attribute_text(&self, name: &str) -> String {
        match self.attribute(std::slice::from_ref(&name.to_owned())) {
            Some(Value::String(s)) => s,
            Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
            _ => String::new(),
        }
    }

    /// Attribute `path` (`["address", "city"]`), if the record has it.
    fn attribute(&self, path: &[String]) -> Option<Value> {
        let (last, parents) = path.split_last()?;
        let top = self
            .attributes
            .get_or_init(|| serde_json::from_str(self.attributes_json).ok())
            .as_ref()?;
        let raw = match parents.split_first() {
            None => top.get(last)?,
            Some((first, rest)) => {
                let mut at: &serde_json::value::RawValue = top.get(first)?;
                for part in rest.iter().chain(std::iter::once(last)) {
                    let object: RawObject<'_> = serde_json::from_str(at.get()).ok()?;
                    at = object.get(part)?;
                }
                at
            }
        };
        serde_json::from_str(raw.get()).ok()
    }
}

/// How many members of a list a segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct SegmentCount {
    /// Members that match (in the asked state).
    pub matched: u64,
    /// Members read (0 when the list's counts answered: no filter).
    pub scanned: u64,
}

/// Counts the members of `list` in `status` (any when `None`) that `filter` matches (all when
/// `None`), streaming the list shard by shard.
///
/// # Errors
/// When Redis fails.
pub async fn count(
    store: &super::ListStore,
    list: crate::domain::ListId,
    status: Option<super::SubscriptionStatus>,
    filter: Option<&Filter>,
) -> redis::RedisResult<SegmentCount> {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    if filter.is_none() {
        // The per-status counts answer without reading a member.
        let counts = store.counts(list).await?;
        let all = counts.unconfirmed + counts.confirmed + counts.unsubscribed;
        let matched = match status {
            None => all,
            Some(super::SubscriptionStatus::Unconfirmed) => counts.unconfirmed,
            Some(super::SubscriptionStatus::Confirmed) => counts.confirmed,
            Some(super::SubscriptionStatus::Unsubscribed) => counts.unsubscribed,
        };
        return Ok(SegmentCount {
            matched,
            scanned: 0,
        });
    }
    let tally = std::sync::Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let visit = {
        let (tally, filter, list_id) = (tally.clone(), filter.cloned(), list.to_string());
        move |records: &[String]| {
            let (mut hits, mut members) = (0, 0);
            for raw in records {
                let Some(view) = RecordView::of(raw) else {
                    continue;
                };
                let Some(state) = view.membership(&list_id) else {
                    continue;
                };
                members += 1;
                if status.is_none_or(|s| s == state)
                    && filter.as_ref().is_none_or(|f| f.matches(&view))
                {
                    hits += 1;
                }
            }
            tally[0].fetch_add(hits, Relaxed);
            tally[1].fetch_add(members, Relaxed);
        }
    };
    store.scan_records(list, 16, visit).await?;
    Ok(SegmentCount {
        matched: tally[0].load(Relaxed),
        scanned: tally[1].load(Relaxed),
    })
}

#[cfg(test)]
mod tests;
