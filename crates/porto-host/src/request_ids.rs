//! Every request gets an id before it reaches a guest, so the guest's log
//! lines and porto's agree on it; a caller's id is kept when the shared
//! rule (the `request-id` crate) accepts it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A request's id, as text (logs, the instance's host state) and as the
/// header value its request and response carry, each made once.
pub(crate) struct RequestId {
    pub text: Arc<str>,
    pub header: http::HeaderValue,
}

/// The request's id, written into its `x-request-id` header.
pub(crate) fn ensure<B>(request: &mut hyper::Request<B>) -> RequestId {
    let kept = request
        .headers()
        .get(request_id::HEADER)
        .and_then(|value| Some((value.to_str().ok()?, value)))
        .filter(|(text, _)| request_id::is_acceptable(text))
        .map(|(text, value)| RequestId {
            text: Arc::from(text),
            header: value.clone(),
        });
    if let Some(kept) = kept {
        return kept;
    }
    let text = generate();
    // 32 hex digits are always a valid header value.
    let header =
        http::HeaderValue::from_str(&text).unwrap_or_else(|_| http::HeaderValue::from_static("-"));
    request
        .headers_mut()
        .insert(request_id::HEADER, header.clone());
    RequestId {
        text: Arc::from(text),
        header,
    }
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
        let id = ensure(&mut request);
        assert_eq!(&*id.text, "abc-123_x.y:z");
        assert_eq!(id.header, "abc-123_x.y:z");
    }

    #[test]
    fn anything_else_gets_a_new_id_in_the_header() {
        let mut request = with_id("two words");
        let id = ensure(&mut request);
        assert_eq!(id.text.len(), 32);
        assert_eq!(request.headers()[request_id::HEADER], &*id.text);
        assert_eq!(id.header, &*id.text);
        let mut none = hyper::Request::new(());
        assert_ne!(ensure(&mut none).text, id.text);
    }
}
