//! CSV imports: rows of a file (or a request body) into a list, as fast as Redis takes them.
//!
//! A blocking thread reads the CSV (any delimiter of `,` `;` tab `|`, detected from the header
//! line unless given; quoted fields, a BOM and CRLF line ends are fine), parses each row into
//! typed fields, drops repeats of an address, and hands batches over a bounded channel; the
//! async side checks them against the suppression list and upserts them shard by shard
//! ([`ListStore::upsert`]), a few batches at a time. Columns: `email` (required), `name`,
//! `locale`, `attributes` (a JSON object); every other column becomes a string attribute.
//!
//! Each bad row is reported with its line and reason, and the good ones go in. Running the
//! same file again changes nothing (every row is then "skipped").

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::io::Read;

use futures::StreamExt;
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio_util::task::AbortOnDropHandle;
use uuid::Uuid;

use super::{
    ListStore, Source, SubscriptionStatus,
    imports::{ImportStore, RowReport, Totals},
    model::{encode_attributes, parse_name},
    store::{Outcome, RecordChange, Row, SubscriptionChange, Upsert, task_failed},
};
use crate::domain::{ListId, Locale};
use crate::store::Suppressions;

/// Rows per batch handed from the reader to Redis. A batch is split over the 64 subscriber
/// shards, about 256 rows a script call: Redis's cost per call (script set-up, arguments,
/// reply) is then small beside the rows' (a call of 64 rows took about 12 % more Redis time a
/// row), and one call still holds Redis only a few milliseconds.
const BATCH_ROWS: usize = 16384;
/// Batches in Redis at once (and read ahead of them): enough that Redis never waits for the
/// reader (three left Redis idle a fifth of the time), at about 250 bytes a row in memory.
const BATCHES_IN_FLIGHT: usize = 6;

/// What an import does.
#[derive(Debug, Clone)]
pub struct ImportSettings {
    pub list: ListId,
    /// What new subscriptions start as (`unconfirmed` unless consent is recorded elsewhere).
    pub status: SubscriptionStatus,
    /// Change existing subscribers' name, locale and attributes to the file's.
    pub update: bool,
    /// The delimiter; detected from the header line when `None`.
    pub delimiter: Option<u8>,
    /// Email the double opt-in link to each new unconfirmed subscription.
    pub send_optin: bool,
}

/// Why an import stopped as a whole.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The header line has no `email` column, or there is no header.
    #[error("{0}")]
    Header(String),
    /// The source could not be read (a body cut off, a file error).
    #[error("the file could not be read: {0}")]
    Read(String),
    /// The source passed its limit, in bytes ([`OverLimit`]).
    #[error("the file could not be read: {}", OverLimit(*.0))]
    TooLarge(u64),
    /// Redis failed; rows before it are stored, and running the import again is safe.
    #[error("the store failed: {0}")]
    Store(#[from] redis::RedisError),
}

/// The error a size-limited source reads as when it passes its limit of this many bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the body is over MAILROOM_IMPORT_MAX_BYTES ({0} bytes)")]
pub struct OverLimit(pub u64);

/// Why a source was not read to its end, for whoever waits on it (`run`'s `read_done`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadFailure {
    /// No usable header: the file is not what an import takes.
    Unusable(String),
    /// Cut off or unreadable.
    Unreadable(String),
    /// Over its limit of this many bytes.
    TooLarge(u64),
}

impl ReadFailure {
    fn of(error: &ImportError) -> Self {
        match error {
            ImportError::Header(reason) => Self::Unusable(reason.clone()),
            ImportError::TooLarge(limit) => Self::TooLarge(*limit),
            ImportError::Read(_) | ImportError::Store(_) => Self::Unreadable(error.to_string()),
        }
    }
}

/// An I/O error of the source, as an import's.
fn io_error(error: &std::io::Error) -> ImportError {
    match (error.get_ref()).and_then(|inner| inner.downcast_ref::<OverLimit>()) {
        Some(over) => ImportError::TooLarge(over.0),
        None => ImportError::Read(error.to_string()),
    }
}

/// One parsed batch from the reader.
#[derive(Debug, Default, Clone)]
struct Batch {
    rows: Vec<(u64, Row)>,
    reports: Vec<RowReport>,
    /// Rows read, and how many of them repeated an address seen before.
    read: u64,
    repeats: u64,
}

/// Where the columns are.
#[derive(Debug)]
struct Columns {
    email: usize,
    name: Option<usize>,
    locale: Option<usize>,
    attributes: Option<usize>,
    extra: Vec<(usize, String)>,
}

impl Columns {
    fn of(header: &csv::StringRecord) -> Result<Self, ImportError> {
        let names: Vec<String> = header.iter().map(|h| h.trim().to_lowercase()).collect();
        let find = |name: &str| names.iter().position(|n| n == name);
        let email = find("email").ok_or_else(|| {
            ImportError::Header(format!(
                "the header line has no email column (it has: {})",
                names.join(", ")
            ))
        })?;
        let (name, locale, attributes) = (find("name"), find("locale"), find("attributes"));
        let extra = header
            .iter()
            .enumerate()
            .filter(|(i, _)| ![Some(email), name, locale, attributes].contains(&Some(*i)))
            .map(|(i, h)| (i, h.trim().to_owned()))
            .filter(|(_, h)| !h.is_empty())
            .collect();
        Ok(Self {
            email,
            name,
            locale,
            attributes,
            extra,
        })
    }

    fn row(&self, record: &csv::StringRecord, width: usize) -> Result<Row, RowError> {
        if record.len() != width {
            return Err(RowError::Width {
                got: record.len(),
                want: width,
            });
        }
        let field = |i: usize| record.get(i).unwrap_or_default().trim();
        let email = field(self.email);
        let address = mailroom_jobs::address::parse(email).map_err(|e| RowError::Address {
            email: email.to_owned(),
            reason: e.message,
        })?;
        let mut row = Row::new(&address);
        if let Some(i) = self.name {
            row.name = Some(parse_name(field(i))?);
        }
        if let Some(i) = self.locale.filter(|&i| !field(i).is_empty()) {
            row.locale = Some(Locale::parse(field(i))?.as_str().to_owned());
        }
        let mut attributes = Map::new();
        if let Some(i) = self.attributes.filter(|&i| !field(i).is_empty()) {
            attributes = serde_json::from_str(field(i)).map_err(RowError::Attributes)?;
        }
        for (i, name) in &self.extra {
            attributes.insert(name.clone(), Value::String(field(*i).to_owned()));
        }
        if self.attributes.is_some() || !self.extra.is_empty() {
            row.attributes = Some(encode_attributes(&attributes)?);
        }
        Ok(row)
    }
}

/// Why a CSV row was not imported: the reason its report gives.
#[derive(Debug, thiserror::Error)]
enum RowError {
    #[error("malformed line: {got} fields where the header has {want}")]
    Width { got: usize, want: usize },
    #[error("invalid address {email:?}: {reason}")]
    Address { email: String, reason: String },
    #[error(transparent)]
    Field(#[from] super::model::FieldError),
    #[error("bad locale: {0}")]
    Locale(#[from] crate::domain::NotALocale),
    #[error("the attributes column is not a JSON object: {0}")]
    Attributes(serde_json::Error),
}

/// The delimiter of a header line: the most frequent of `,` `;` tab `|`, else `,`.
fn detect_delimiter(head: &[u8]) -> u8 {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    [b',', b';', b'\t', b'|']
        .into_iter()
        .map(|d| (line.iter().filter(|&&b| b == d).count(), d))
        .filter(|(n, _)| *n > 0)
        .max_by_key(|(n, d)| (*n, *d == b','))
        .map_or(b',', |(_, d)| d)
}

/// Reads `source` into batches on `sender` (a blocking thread's work).
fn read_batches(
    source: impl Read,
    delimiter: Option<u8>,
    sender: &mpsc::Sender<Batch>,
) -> Result<(), ImportError> {
    let mut source = std::io::BufReader::with_capacity(256 * 1024, source);
    let head = std::io::BufRead::fill_buf(&mut source).map_err(|e| io_error(&e))?;
    let delimiter = delimiter.unwrap_or_else(|| detect_delimiter(head));
    // The csv crate counts a record's line before it has read the `\n` of the previous CRLF,
    // so with CRLF line ends every line it reports is one low.
    let crlf_shift = u64::from(
        head.split(|&b| b == b'\n')
            .next()
            .is_some_and(|line| line.ends_with(b"\r") && head.len() > line.len()),
    );
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .has_headers(true)
        .from_reader(source);
    let header = reader.headers().map_err(|e| read_error(&e))?.clone();
    let columns = Columns::of(&header)?;
    let width = header.len();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut batch = Batch::default();
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line() + 1 + crlf_shift;
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                batch.read += 1;
                // Lines before this record that were blank are skipped by the reader.
                let line = record.position().map_or(line, |p| p.line() + crlf_shift);
                match columns.row(&record, width) {
                    Ok(row) => {
                        let mut hasher = std::hash::DefaultHasher::new();
                        row.key.hash(&mut hasher);
                        if seen.insert(hasher.finish()) {
                            batch.rows.push((line, row));
                        } else {
                            batch.repeats += 1;
                        }
                    }
                    Err(reason) => batch.reports.push(RowReport {
                        line,
                        reason: reason.to_string(),
                    }),
                }
            }
            Err(error) if error.is_io_error() => return Err(read_error(&error)),
            Err(error) => {
                batch.read += 1;
                let line = error.position().map_or(line, |p| p.line() + crlf_shift);
                batch.reports.push(RowReport {
                    line,
                    reason: format!("malformed line: {error}"),
                });
            }
        }
        // A closed channel means the writing side stopped (it reports why).
        if batch.read as usize >= BATCH_ROWS
            && sender.blocking_send(std::mem::take(&mut batch)).is_err()
        {
            return Ok(());
        }
    }
    if batch.read > 0 {
        let _ = sender.blocking_send(batch);
    }
    Ok(())
}

fn read_error(error: &csv::Error) -> ImportError {
    match error.kind() {
        csv::ErrorKind::Io(e) => io_error(e),
        _ => ImportError::Header(format!("the header line is not CSV: {error}")),
    }
}

/// Everything an import writes to.
#[derive(Debug, Clone)]
pub struct ImportTargets {
    pub lists: ListStore,
    pub suppressions: Suppressions,
    pub imports: ImportStore,
    /// Where opt-in emails are queued (with `send_optin`): the producer, the link's life in
    /// seconds, and the list.
    pub optin: Option<(mailroom_jobs::Producer, u64, super::List)>,
    /// The id of the request that started the import, carried by the opt-in emails it queues
    /// (`None` from the command line).
    pub request_id: Option<String>,
}

/// Imports `source` as `settings` say, recording progress under `id` (already started with
/// [`ImportStore::start`]) and calling `progress` with the totals after each batch. Marks the
/// import done or failed. `read_done` is told when the source has been read to its end (or
/// failed), before the last batches are written.
///
/// # Errors
/// When the header is unusable, the source cannot be read, or Redis fails.
pub async fn run<R: Read + Send + 'static>(
    source: R,
    targets: &ImportTargets,
    id: Uuid,
    settings: &ImportSettings,
    progress: impl Fn(&Totals),
    read_done: Option<tokio::sync::oneshot::Sender<Result<(), ReadFailure>>>,
) -> Result<Totals, ImportError> {
    let (sender, receiver) = mpsc::channel::<Batch>(BATCHES_IN_FLIGHT);
    let delimiter = settings.delimiter;
    let reader = tokio::task::spawn_blocking(move || {
        let result = read_batches(source, delimiter, &sender);
        if let Some(done) = read_done {
            let _ = done.send(result.as_ref().map_err(ReadFailure::of).copied());
        }
        result
    });
    let mut totals = Totals::default();
    // Each batch is written by a task of its own, not by a future of this loop: while the loop
    // waits for a batch's counts to be recorded it polls no batch, and a batch's command that
    // had been promised a place in the shared connection's queue would keep that place unused,
    // holding up the recording (and every later command on the connection) for good.
    let mut applied = tokio_stream_of(receiver)
        .map(|batch| {
            let (targets, settings) = (targets.clone(), settings.clone());
            AbortOnDropHandle::new(tokio::spawn(async move {
                with_retries("an import batch", || apply(&targets, &settings, &batch)).await
            }))
        })
        .buffered(BATCHES_IN_FLIGHT);
    let mut failure: Option<ImportError> = None;
    let mut batch = 0;
    while let Some(result) = applied.next().await {
        match result.map_err(task_failed).and_then(|r| r) {
            Ok((counts, reports)) => {
                batch += 1;
                with_retries("recording an import batch", || {
                    targets.imports.record(id, batch, &counts, &reports)
                })
                .await?;
                totals.add(&counts);
                progress(&totals);
            }
            Err(error) => {
                failure = Some(error.into());
                break;
            }
        }
    }
    drop(applied);
    let read = reader
        .await
        .map_err(|e| ImportError::Read(format!("the reader stopped: {e}")))?;
    let outcome = match (failure, read) {
        (Some(error), _) | (None, Err(error)) => Err(error),
        (None, Ok(())) => Ok(totals),
    };
    let message = outcome.as_ref().err().map(ToString::to_string);
    targets.imports.finish(id, message.as_deref()).await?;
    outcome
}

fn tokio_stream_of(mut receiver: mpsc::Receiver<Batch>) -> impl futures::Stream<Item = Batch> {
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

/// `attempt`, again after a timeout or a broken connection (four times, after 0.5, 2, 5 and 10 s):
/// what an import writes is safe to write twice, and an import of a million rows should not
/// fail on one slow answer (a Redis that is saving, failing over or briefly overloaded).
async fn with_retries<T, F, Fut>(what: &str, attempt: F) -> redis::RedisResult<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = redis::RedisResult<T>>,
{
    use crate::store::Failure;
    for pause in [500, 2000, 5000, 10_000] {
        match attempt().await {
            Err(error)
                if matches!(
                    Failure::of(&error),
                    Failure::TimedOut | Failure::Unreachable
                ) =>
            {
                tracing::warn!(%error, "{what} failed; trying it again");
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
            }
            other => return other,
        }
    }
    attempt().await
}

/// Writes one batch: drops suppressed addresses (reported), upserts the rest.
async fn apply(
    targets: &ImportTargets,
    settings: &ImportSettings,
    batch: &Batch,
) -> redis::RedisResult<(Totals, Vec<RowReport>)> {
    let mut totals = Totals {
        rows: batch.read,
        skipped: batch.repeats,
        invalid: batch.reports.len() as u64,
        ..Totals::default()
    };
    let mut reports = batch.reports.clone();
    let emails: Vec<String> = batch.rows.iter().map(|(_, r)| r.key.clone()).collect();
    let suppressed = targets.suppressions.get_many(&emails).await?;
    let mut rows = Vec::with_capacity(batch.rows.len());
    let mut lines = Vec::with_capacity(batch.rows.len());
    for ((line, row), suppression) in batch.rows.iter().zip(suppressed) {
        match suppression {
            Some(s) => {
                totals.skipped += 1;
                reports.push(RowReport {
                    line: *line,
                    reason: format!(
                        "not subscribed: the address is suppressed ({})",
                        s.reason.as_str()
                    ),
                });
            }
            None => {
                rows.push(row);
                lines.push(*line);
            }
        }
    }
    let how = Upsert {
        lists: vec![settings.list],
        status: settings.status,
        source: Source::Import,
        update: settings.update,
    };
    let outcomes = if rows.is_empty() {
        Vec::new()
    } else {
        targets.lists.upsert(&rows, &how).await?
    };
    for (outcome, line) in outcomes.iter().zip(lines) {
        let subscription = outcome.subscriptions.first().copied();
        match (outcome.record, subscription) {
            (_, Some(SubscriptionChange::RefusedUnsubscribed)) => {
                totals.skipped += 1;
                reports.push(RowReport {
                    line,
                    reason: "not subscribed again: the person unsubscribed from this list"
                        .to_owned(),
                });
            }
            (RecordChange::Created, _) | (_, Some(SubscriptionChange::Added)) => {
                totals.imported += 1
            }
            (RecordChange::Updated, _) | (_, Some(SubscriptionChange::Confirmed)) => {
                totals.updated += 1;
            }
            _ => totals.skipped += 1,
        }
    }
    queue_optins(targets, settings, &outcomes, &rows).await?;
    reports.sort_by_key(|r| r.line);
    Ok((totals, reports))
}

/// The opt-in emails of the rows whose subscription the import added, when it sends them.
async fn queue_optins(
    targets: &ImportTargets,
    settings: &ImportSettings,
    outcomes: &[Outcome],
    rows: &[&Row],
) -> redis::RedisResult<()> {
    if settings.send_optin
        && settings.status == SubscriptionStatus::Unconfirmed
        && let Some((producer, ttl, list)) = &targets.optin
    {
        let jobs: Vec<_> = outcomes
            .iter()
            .zip(rows)
            .filter(|(o, _)| o.subscriptions.first() == Some(&SubscriptionChange::Added))
            .map(|(o, row)| mailroom_jobs::SendVerification {
                request_id: targets.request_id.clone(),
                ..super::optin::job(*ttl, &row.email, row.locale.as_deref(), list, o.id)
            })
            .collect();
        if !jobs.is_empty() {
            producer.push_many(&jobs).await.map_err(|e| match e {
                mailroom_jobs::PushError::Redis(e) => e,
                other => redis::RedisError::from((
                    redis::ErrorKind::Client,
                    "an opt-in email could not be queued",
                    other.to_string(),
                )),
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(csv: &str) -> Result<Vec<Batch>, ImportError> {
        let (sender, mut receiver) = mpsc::channel(64);
        read_batches(csv.as_bytes(), None, &sender)?;
        drop(sender);
        let mut batches = Vec::new();
        while let Ok(b) = receiver.try_recv() {
            batches.push(b);
        }
        Ok(batches)
    }

    #[test]
    fn delimiters_are_detected_from_the_header() {
        assert_eq!(detect_delimiter(b"email;name;plan\na;b;c"), b';');
        assert_eq!(detect_delimiter(b"email\tname\n"), b'\t');
        assert_eq!(detect_delimiter(b"email\n"), b',');
        assert_eq!(detect_delimiter(b"email,name|x\n"), b',');
    }

    #[test]
    fn rows_parse_with_quotes_bom_crlf_and_extra_columns() {
        let csv = "\u{feff}Email,Name,plan,locale\r\n\"ada@example.com\",\"Lovelace, Ada\",pro,fr\r\nbob@example.com,Bob,,\r\n";
        let batches = parse(csv).unwrap();
        let rows = &batches[0].rows;
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].0, 2, "the first data row is line 2");
        assert_eq!(rows[1].0, 3);
        assert_eq!(rows[0].1.name.as_deref(), Some("Lovelace, Ada"));
        assert_eq!(rows[0].1.locale.as_deref(), Some("fr"));
        assert_eq!(rows[0].1.attributes.as_deref(), Some(r#"{"plan":"pro"}"#));
        assert_eq!(rows[1].1.locale, None);
    }

    #[test]
    fn bad_rows_are_reported_with_their_line_and_the_rest_go_on() {
        let csv = "email,name,locale,attributes\nok@example.com,Ok,,\nnot-an-address,X,,\nb@example.com,B,??,\nc@example.com,C,,[1]\n\"d@example.com,D\nstill quoted\",,\ne@example.com,E,,\nshort@example.com\nOK@example.com,Again,,\n";
        let batch = parse(csv).unwrap().remove(0);
        let lines: Vec<u64> = batch.rows.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![2, 8]);
        let reported: Vec<(u64, &str)> = batch
            .reports
            .iter()
            .map(|r| (r.line, r.reason.split(':').next().unwrap()))
            .collect();
        assert_eq!(
            reported,
            vec![
                (3, "invalid address \"not-an-address\""),
                (4, "bad locale"),
                (5, "the attributes column is not a JSON object"),
                (6, "malformed line"),
                (9, "malformed line"),
            ]
        );
        assert_eq!(batch.repeats, 1, "OK@example.com repeats ok@example.com");
        assert_eq!(batch.read, 8);
    }

    #[test]
    fn a_file_without_an_email_column_stops_at_once() {
        assert!(matches!(
            parse("name,plan\nx,y\n"),
            Err(ImportError::Header(_))
        ));
        assert!(matches!(parse(""), Err(ImportError::Header(_))));
    }
}
