//! The `x-request-id` convention, shared by porto's host and its guests.
//!
//! The id is echoed in a response header and written to logs, so only a
//! short run of unreserved characters is accepted from a caller: anything
//! else (CR/LF, spaces, quotes, overlong values) is replaced with a fresh
//! id rather than rejected, because a bad correlation id is no reason to
//! fail a request. The host and the guests must agree on the rule, or one
//! would keep an id the other replaces; so it is written once, here.
//!
//! ```
//! assert!(request_id::is_acceptable("checkout-7f3a:retry.2"));
//! assert!(!request_id::is_acceptable("two words"));
//! assert!(!request_id::is_acceptable(&"a".repeat(request_id::MAX_LEN + 1)));
//! ```

/// The header carrying the id, on requests and responses.
pub const HEADER: &str = "x-request-id";

/// The longest id kept from a caller.
pub const MAX_LEN: usize = 128;

/// Whether a caller's id is kept: 1..=128 characters of `[A-Za-z0-9._:-]`.
pub fn is_acceptable(candidate: &str) -> bool {
    !candidate.is_empty()
        && candidate.len() <= MAX_LEN
        && candidate
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}
