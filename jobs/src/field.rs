//! The error of a request's field: what is wrong, and where.

/// What is wrong with a message, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// A path into the request, e.g. `to[2].email` or `headers.X-Custom`.
    pub field: String,
    /// What is wrong, for a person to read.
    pub message: String,
}
