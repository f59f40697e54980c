//! `/v1/imports`: a CSV body streamed into a list (not held in memory, not under the API's body
//! limit but under `MAILROOM_IMPORT_MAX_BYTES`), and the import's progress and reported rows.

use axum::{
    Json,
    body::Body,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::IntoResponse,
};
use futures::TryStreamExt;
use serde::Deserialize;
use tracing::Instrument;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{
    AppState,
    error::{ApiError, ErrorBody},
    extract::{ApiPath, ApiQuery},
    request_id::RequestId,
};
use crate::{
    domain::StartingStatus,
    lists::{
        SubscriptionStatus,
        import::{self, ImportSettings, ImportTargets, OverLimit, ReadFailure},
        imports::ImportStatus,
    },
};

/// The largest page of reported rows.
const MAX_ERRORS_PAGE: usize = 1000;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ImportQuery {
    /// The list to import into.
    list: u64,
    /// What new subscriptions start as; `confirmed` only when consent was recorded elsewhere.
    status: Option<StartingStatus>,
    /// Change existing subscribers' fields to the file's.
    #[serde(default)]
    update: bool,
    /// `,` `;` `|` or `tab`; detected from the header line when absent.
    delimiter: Option<Delimiter>,
    /// Email each new unconfirmed subscriber the double opt-in link.
    #[serde(default)]
    send_optin: bool,
}

/// A CSV delimiter.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
pub(super) enum Delimiter {
    #[serde(rename = ",")]
    Comma,
    #[serde(rename = ";")]
    Semicolon,
    #[serde(rename = "|")]
    Pipe,
    #[serde(rename = "tab")]
    Tab,
}

impl Delimiter {
    fn byte(self) -> u8 {
        match self {
            Self::Comma => b',',
            Self::Semicolon => b';',
            Self::Pipe => b'|',
            Self::Tab => b'\t',
        }
    }
}

/// Whether the body is CSV (`text/csv`, or `application/csv` as some clients send it).
fn is_csv(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            let v = v.trim();
            v.eq_ignore_ascii_case("text/csv") || v.eq_ignore_ascii_case("application/csv")
        })
}

/// The body as a blocking reader that fails with [`OverLimit`] past `limit` bytes.
fn limited(body: Body, limit: u64) -> impl std::io::Read + Send + 'static {
    let mut read = 0u64;
    let stream = body
        .into_data_stream()
        .map_err(std::io::Error::other)
        .map_ok(move |chunk| {
            read += chunk.len() as u64;
            (read > limit, chunk)
        })
        .and_then(move |(over, chunk)| {
            futures::future::ready(if over {
                Err(std::io::Error::other(OverLimit(limit)))
            } else {
                Ok(chunk)
            })
        });
    tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream))
}

/// Import subscribers from a CSV body (columns `email`, `name`, `locale`, `attributes`, and any
/// other column as an attribute). Answers once the body is read; the last rows may still be
/// going in (`state: running`).
#[utoipa::path(
    operation_id = "create_import",
    post,
    path = "/v1/imports",
    tag = "lists",
    params(ImportQuery),
    request_body(content = String, content_type = "text/csv", description = "The CSV file, with a header line"),
    responses(
        (status = 202, description = "Read; see its progress at /v1/imports/{id}", body = ImportStatus),
        (status = 400, description = "A bad query parameter (named), or a body that broke off", body = ErrorBody),
        (status = 413, description = "Body over MAILROOM_IMPORT_MAX_BYTES", body = ErrorBody),
        (status = 415, description = "Not text/csv", body = ErrorBody),
        (status = 404, description = "No such list", body = ErrorBody),
        (status = 422, description = "No email column", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn create(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ImportQuery>,
    request_id: RequestId,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<ImportStatus>), ApiError> {
    if !is_csv(&headers) {
        return Err(ApiError::unsupported_media_type_of("text/csv"));
    }
    let delimiter = query.delimiter.map(Delimiter::byte);
    let list = match crate::domain::ListId::new(query.list) {
        Some(id) => state.lists.list(id).await?,
        None => None,
    }
    .ok_or_else(|| ApiError::not_found(format!("no list {}", query.list)).field("list"))?;
    let status = SubscriptionStatus::from(query.status.unwrap_or(StartingStatus::Unconfirmed));
    if query.send_optin && status == SubscriptionStatus::Confirmed {
        return Err(ApiError::bad_request(
            "send_optin asks unconfirmed people to confirm: it goes with status=unconfirmed",
        )
        .field("send_optin"));
    }
    let id = Uuid::now_v7();
    state.imports.start(id, list.id, status).await?;
    let limit = state.import_max_bytes;
    let source = limited(body, limit);
    let targets = ImportTargets {
        lists: state.lists.clone(),
        suppressions: state.suppressions.clone(),
        imports: state.imports.clone(),
        optin: query
            .send_optin
            .then(|| (state.producer.clone(), state.optin_ttl, list.clone())),
        request_id: request_id.for_job(),
    };
    let settings = ImportSettings {
        list: list.id,
        status,
        update: query.update,
        delimiter,
        send_optin: query.send_optin,
    };
    let (read_done, body_read) = tokio::sync::oneshot::channel();
    // Tracked, so that a stopping `serve` lets the import finish its last batches; in the
    // request's span, so that its lines name the request.
    state.background.spawn(
        async move {
            if let Err(error) =
                import::run(source, &targets, id, &settings, |_| {}, Some(read_done)).await
            {
                tracing::warn!(import = %id, %error, "import failed");
            }
        }
        .instrument(tracing::Span::current()),
    );
    match body_read.await {
        Ok(Ok(())) => {}
        Ok(Err(ReadFailure::TooLarge(limit))) => {
            return Err(ApiError::too_large(
                usize::try_from(limit).unwrap_or(usize::MAX),
            ));
        }
        Ok(Err(ReadFailure::Unreadable(reason))) => return Err(ApiError::bad_request(reason)),
        Ok(Err(ReadFailure::Unusable(reason))) => return Err(ApiError::validation(reason)),
        Err(_) => {
            return Err(ApiError::internal(
                &"the import stopped before reading the body",
            ));
        }
    }
    let status = state
        .imports
        .get(id, 0, 100)
        .await?
        .ok_or_else(|| ApiError::internal(&"the import record is gone"))?;
    Ok((StatusCode::ACCEPTED, Json(status)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ImportStatusQuery {
    /// The first reported row to show (0-based; at most 100,000, the rows kept).
    #[param(maximum = 100000)]
    errors_from: Option<usize>,
    /// Reported rows per page (default 100, at most 1,000).
    #[param(maximum = 1000)]
    errors_limit: Option<usize>,
}

fn import_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| ApiError::not_found(format!("no import {text}")).field("id"))
}

/// An import's progress, counts and a page of its reported rows.
#[utoipa::path(
    operation_id = "get_import",
    get,
    path = "/v1/imports/{id}",
    tag = "lists",
    params(("id" = String, Path, description = "The import's id"), ImportStatusQuery),
    responses(
        (status = 200, description = "The import", body = ImportStatus),
        (status = 400, description = "A bad query parameter (named)", body = ErrorBody),
        (status = 404, description = "No such import (or older than 30 days)", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ImportStatusQuery>,
) -> Result<Json<ImportStatus>, ApiError> {
    let limit = query.errors_limit.unwrap_or(100);
    if limit > MAX_ERRORS_PAGE {
        return Err(
            ApiError::bad_request(format!("errors_limit is at most {MAX_ERRORS_PAGE}"))
                .field("errors_limit"),
        );
    }
    let uuid = import_id(&id)?;
    let from = query
        .errors_from
        .unwrap_or(0)
        .min(crate::lists::imports::MAX_REPORTED);
    state
        .imports
        .get(uuid, from, limit)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no import {id}")).field("id"))
}

/// Every reported row of an import as CSV (`line,reason`), to download.
#[utoipa::path(
    operation_id = "get_import_errors",
    get,
    path = "/v1/imports/{id}/errors",
    tag = "lists",
    params(("id" = String, Path, description = "The import's id")),
    responses(
        (status = 200, description = "The reported rows", content_type = "text/csv", body = String),
        (status = 404, description = "No such import", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn errors(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let uuid = import_id(&id)?;
    if state.imports.get(uuid, 0, 0).await?.is_none() {
        return Err(ApiError::not_found(format!("no import {id}")).field("id"));
    }
    let mut writer = csv::Writer::from_writer(Vec::new());
    let _ = writer.write_record(["line", "reason"]);
    for report in state.imports.all_reports(uuid).await? {
        let _ = writer.write_record([report.line.to_string(), report.reason]);
    }
    let body = writer.into_inner().unwrap_or_default();
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"import-{uuid}-errors.csv\""),
            ),
        ],
        body,
    ))
}
