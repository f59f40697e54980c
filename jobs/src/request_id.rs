//! The id of the HTTP request that caused a job, carried in its payload so that a worker's log
//! lines for the job share it with the API's (`X-Request-Id`).

/// The longest request id kept: a caller's own ids (a trace id, a UUID) fit; anything longer
/// is replaced at the API rather than carried.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Whether `id` is a request id mailroom carries: 1 – 128 characters of letters, digits and
/// `-_.:/+=` (what tracing systems put in such headers), nothing a log line could be forged with.
pub fn is_valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(&b))
}

/// A job's `request_id`, checked: absent, or a valid id.
///
/// # Errors
/// When it is present and not a valid request id.
pub fn check_request_id(id: Option<&str>) -> Result<(), crate::Invalid> {
    match id {
        Some(id) if !is_valid_request_id(id) => Err(crate::Invalid(format!(
            "request_id: 1 to {MAX_REQUEST_ID_LEN} letters, digits or -_.:/+= (got {} bytes)",
            id.len()
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_could_forge_a_log_line_are_refused() {
        assert!(is_valid_request_id("0193a5c4-7e1f-7c3a-9d2e-5b6a7c8d9e0f"));
        assert!(is_valid_request_id(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        assert!(!is_valid_request_id(""));
        assert!(!is_valid_request_id("a\nlevel=error msg=forged"));
        assert!(!is_valid_request_id("a b"));
        assert!(!is_valid_request_id(&"a".repeat(MAX_REQUEST_ID_LEN + 1)));
        assert!(check_request_id(None).is_ok());
        assert!(check_request_id(Some("x\"y")).is_err());
    }
}
