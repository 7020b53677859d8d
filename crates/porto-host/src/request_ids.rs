//! Every request gets an id before it reaches a guest, so the guest's log
//! lines and porto's agree on it; a caller's id is kept when the shared
//! rule (the `request-id` crate) accepts it.

use std::sync::atomic::{AtomicU64, Ordering};

/// The request's id, written into its `x-request-id` header.
pub(crate) fn ensure<B>(request: &mut hyper::Request<B>) -> String {
    let kept = request
        .headers()
        .get(request_id::HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| request_id::is_acceptable(v))
        .map(str::to_string);
    let id = kept.unwrap_or_else(generate);
    if let Ok(value) = http::HeaderValue::from_str(&id) {
        request.headers_mut().insert(request_id::HEADER, value);
    }
    id
}

/// 128 bits as 32 hex digits, from a per-process counter hashed with
/// fresh random keys: unique, and cheap enough for every request.
pub(crate) fn generate() -> String {
    use std::hash::{BuildHasher, RandomState};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let state = RandomState::new();
    format!(
        "{:016x}{:016x}",
        state.hash_one(n),
        state.hash_one(n.wrapping_add(1))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_id(id: &str) -> hyper::Request<()> {
        hyper::Request::builder()
            .header(request_id::HEADER, id)
            .body(())
            .expect("request")
    }

    #[test]
    fn a_callers_acceptable_id_is_kept() {
        let mut request = with_id("abc-123_x.y:z");
        assert_eq!(ensure(&mut request), "abc-123_x.y:z");
    }

    #[test]
    fn anything_else_gets_a_new_id_in_the_header() {
        let mut request = with_id("two words");
        let id = ensure(&mut request);
        assert_eq!(id.len(), 32);
        assert_eq!(request.headers()[request_id::HEADER], id.as_str());
        let mut none = hyper::Request::new(());
        assert_ne!(ensure(&mut none), id);
    }
}
