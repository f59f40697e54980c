//! `POST /v1/validations/email` and `POST /v1/validations/batch`: is an address worth sending
//! to? The answer's shape follows SendGrid's Email Address Validation API, with the reasons
//! spelled out ([`crate::validation`]).

use axum::{Json, extract::State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    AppState,
    error::{ApiError, ErrorBody},
    extract::ApiJson,
};
use crate::validation::{MAX_BATCH, Validation};

fn yes() -> bool {
    true
}

/// One address to validate.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ValidationRequest {
    /// The address, as the person typed it (anything: a malformed one gets the verdict `invalid`).
    email: String,
    /// Look the domain up in DNS (answers are cached); `false` checks only what needs no network.
    #[serde(default = "yes")]
    dns: bool,
}

/// Up to 1,000 addresses to validate; each domain is looked up once.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ValidationBatch {
    /// The addresses (1 to 1,000).
    #[schema(min_items = 1, max_items = 1000)]
    emails: Vec<String>,
    /// As in the single request.
    #[serde(default = "yes")]
    dns: bool,
}

/// The batch's answers, in the order asked.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct BatchResults {
    results: Vec<Validation>,
}

/// Validate one address.
#[utoipa::path(
    post,
    path = "/v1/validations/email",
    tag = "validation",
    request_body = ValidationRequest,
    responses(
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "Well-formed JSON that is not a valid request (the field is named)", body = ErrorBody),
        (status = 200, description = "The verdict, score, checks and reasons", body = Validation),
        (status = 400, description = "The body is not JSON of this shape", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 503, description = "Redis (the DNS cache) is unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn one(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<ValidationRequest>,
) -> Result<Json<Validation>, ApiError> {
    let dns = request.dns.then_some(&state.domains);
    let mut results = state
        .validator
        .validate_all(
            std::slice::from_ref(&request.email),
            dns,
            Some(&state.suppressions),
        )
        .await?;
    Ok(Json(results.remove(0)))
}

/// Validate up to 1,000 addresses.
#[utoipa::path(
    post,
    path = "/v1/validations/batch",
    tag = "validation",
    request_body = ValidationBatch,
    responses(
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 200, description = "One answer per address, in order", body = BatchResults),
        (status = 400, description = "The body is not JSON of this shape", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 422, description = "No addresses, or more than 1,000", body = ErrorBody),
        (status = 503, description = "Redis (the DNS cache) is unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn batch(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<ValidationBatch>,
) -> Result<Json<BatchResults>, ApiError> {
    let count = request.emails.len();
    if count == 0 || count > MAX_BATCH {
        return Err(ApiError::validation(format!(
            "{count} addresses; a batch holds 1 to {MAX_BATCH}"
        ))
        .field("emails"));
    }
    let dns = request.dns.then_some(&state.domains);
    let results = state
        .validator
        .validate_all(&request.emails, dns, Some(&state.suppressions))
        .await?;
    Ok(Json(BatchResults { results }))
}
