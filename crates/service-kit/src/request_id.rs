//! Request ids: accepted from the caller when they are safe, made otherwise.
//!
//! Which ids are safe is the `request-id` crate's rule, the one porto's
//! host applies too; this module gives the guests a type for them.

use std::fmt;

pub use request_id::HEADER;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// Accepts `candidate` if it is 1..=128 characters of `[A-Za-z0-9._:-]`.
    pub fn parse(candidate: &str) -> Option<Self> {
        request_id::is_acceptable(candidate).then(|| Self(candidate.to_string()))
    }

    /// The caller's id if it is acceptable, else a new one.
    pub fn from_header(value: Option<&str>) -> Self {
        value.and_then(Self::parse).unwrap_or_else(Self::generate)
    }

    /// 128 random bits as 32 hex digits.
    pub fn generate() -> Self {
        let (hi, lo) = random_pair();
        Self(format!("{hi:016x}{lo:016x}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(target_arch = "wasm32")]
fn random_pair() -> (u64, u64) {
    use wasip2::random::random::get_random_u64;
    (get_random_u64(), get_random_u64())
}

#[cfg(not(target_arch = "wasm32"))]
fn random_pair() -> (u64, u64) {
    use std::hash::{BuildHasher, RandomState};
    let state = RandomState::new();
    (state.hash_one(1u8), state.hash_one(2u8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_safe_id() {
        assert_eq!(
            RequestId::from_header(Some("abc-123_x.y:z")).as_str(),
            "abc-123_x.y:z"
        );
    }

    #[test]
    fn replaces_header_injection() {
        let id = RequestId::from_header(Some("abc\r\nset-cookie: x=1"));
        assert_ne!(id.as_str(), "abc\r\nset-cookie: x=1");
        assert_eq!(id.as_str().len(), 32);
    }

    #[test]
    fn replaces_empty_overlong_and_unicode() {
        assert!(RequestId::parse("").is_none());
        assert!(RequestId::parse(&"a".repeat(129)).is_none());
        assert!(RequestId::parse(&"a".repeat(128)).is_some());
        assert!(RequestId::parse("ïd").is_none());
        assert!(RequestId::parse("a b").is_none());
    }

    #[test]
    fn generated_ids_differ() {
        assert_ne!(RequestId::generate(), RequestId::generate());
    }
}
