//! Page size and opaque cursors for list endpoints.
//!
//! A cursor is the last id the client saw and the collection it was seen
//! in, versioned and base64url-encoded (`v2:<collection>:<id>`), so clients
//! treat it as opaque: a cursor we cannot read, or one issued for another
//! collection, is a 400, never a silently wrong page. Cursors of the first
//! scheme (`v1:<id>`, which named no collection) are still read, so links
//! saved before the change keep working.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use crate::error::ApiError;
use crate::request::ApiRequest;

pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;

/// A page of a list endpoint: `{"items": [...], "next_cursor": "..." | null}`.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// `last` is the id in `collection` to resume after, if more items
    /// may follow.
    pub fn new(items: Vec<T>, last: Option<u64>, collection: &str) -> Self {
        Self {
            items,
            next_cursor: last.map(|id| encode_cursor(collection, id)),
        }
    }
}

/// Where a page starts and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// Items with ids strictly greater than this are returned.
    pub after: u64,
    pub limit: usize,
}

impl PageRequest {
    /// Reads `limit` and `cursor` (one issued for `collection`) from the
    /// query string.
    pub fn from_request(req: &ApiRequest, collection: &str) -> Result<Self, ApiError> {
        let limit = match req.query_param("limit")? {
            None => DEFAULT_LIMIT,
            Some(raw) => parse_limit(&raw)?,
        };
        let after = match req.query_param("cursor")? {
            None => 0,
            Some(raw) => decode_cursor(collection, &raw)?,
        };
        Ok(Self { after, limit })
    }
}

pub fn parse_limit(raw: &str) -> Result<usize, ApiError> {
    raw.parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_LIMIT).contains(n))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                format!("`limit` must be an integer from 1 to {MAX_LIMIT}."),
            )
            .with_detail("limit", format!("must be 1..={MAX_LIMIT}"))
        })
}

pub fn encode_cursor(collection: &str, last_id: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("v2:{collection}:{last_id}"))
}

pub fn decode_cursor(collection: &str, raw: &str) -> Result<u64, ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "invalid_cursor",
            "The cursor is not one this service issued.",
        )
        .with_detail("cursor", "use the next_cursor value of a previous page")
    };
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
    let text = std::str::from_utf8(&bytes).map_err(|_| invalid())?;
    let id = text
        .strip_prefix("v2:")
        .and_then(|rest| rest.strip_prefix(collection))
        .and_then(|rest| rest.strip_prefix(':'))
        .or_else(|| text.strip_prefix("v1:"))
        .ok_or_else(invalid)?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    id.parse::<u64>().map_err(|_| invalid())
}

/// Fills one page from candidate ids in ascending order.
///
/// `fetch` loads a batch of ids (absent ones as `None`: deleted records
/// leave gaps), `keep` filters. Returns the page and, when more ids remain,
/// the id to resume after. Batching keeps a page with gaps to a few store
/// round trips instead of one per id.
pub fn collect_page<T, E>(
    ids: impl IntoIterator<Item = u64>,
    limit: usize,
    mut fetch: impl FnMut(&[u64]) -> Result<Vec<Option<T>>, E>,
    keep: impl Fn(&T) -> bool,
) -> Result<(Vec<T>, Option<u64>), E> {
    let mut ids = ids.into_iter().peekable();
    let batch_len = limit.max(32);
    let mut items = Vec::with_capacity(limit);
    loop {
        let batch: Vec<u64> = ids.by_ref().take(batch_len).collect();
        if batch.is_empty() {
            return Ok((items, None));
        }
        let values = fetch(&batch)?;
        for (i, (id, value)) in batch.iter().zip(values).enumerate() {
            let Some(value) = value.filter(|v| keep(v)) else {
                continue;
            };
            items.push(value);
            if items.len() >= limit {
                let more = i + 1 < batch.len() || ids.peek().is_some();
                return Ok((items, more.then_some(*id)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    #[test]
    fn cursor_round_trips() {
        for id in [0, 1, 42, u64::MAX] {
            assert_eq!(decode_cursor("users", &encode_cursor("users", id)), Ok(id));
        }
    }

    #[test]
    fn cursor_is_url_safe() {
        let c = encode_cursor("orders", u64::MAX);
        assert!(
            c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }

    #[test]
    fn garbage_cursors_are_rejected() {
        let overflow = URL_SAFE_NO_PAD.encode("v2:users:18446744073709551616");
        let unversioned = URL_SAFE_NO_PAD.encode("users:5");
        let v1_overflow = URL_SAFE_NO_PAD.encode("v1:18446744073709551616");
        let negative = URL_SAFE_NO_PAD.encode("v2:users:-5");
        let empty = URL_SAFE_NO_PAD.encode("v2:users:");
        let prefix_of_collection = URL_SAFE_NO_PAD.encode("v2:user:5");
        let other_collection = encode_cursor("orders", 5);
        for bad in [
            "",
            "!!!",
            "djE6NQ==",
            "5",
            &overflow,
            &unversioned,
            &v1_overflow,
            &negative,
            &empty,
            &prefix_of_collection,
            &other_collection,
        ] {
            assert_eq!(
                decode_cursor("users", bad).map_err(|e| e.code),
                Err("invalid_cursor"),
                "{bad}"
            );
        }
    }

    #[test]
    fn first_scheme_cursors_still_read() {
        let saved = URL_SAFE_NO_PAD.encode("v1:7");
        assert_eq!(decode_cursor("users", &saved), Ok(7));
        assert_eq!(decode_cursor("orders", "djE6MQ"), Ok(1));
    }

    #[test]
    fn limit_bounds() {
        assert_eq!(parse_limit("1"), Ok(1));
        assert_eq!(parse_limit("100"), Ok(100));
        for bad in [
            "0",
            "101",
            "-1",
            "abc",
            "",
            "1.0",
            "99999999999999999999999",
        ] {
            assert!(parse_limit(bad).is_err(), "{bad}");
        }
    }

    /// A store of ids 1..=n where every third id was deleted.
    fn gappy_fetch(ids: &[u64]) -> Result<Vec<Option<u64>>, ()> {
        Ok(ids.iter().map(|&id| (id % 3 != 0).then_some(id)).collect())
    }

    #[test]
    fn page_skips_gaps_and_returns_cursor() {
        let (items, cursor) = collect_page(1..=10, 3, gappy_fetch, |_| true).expect("page");
        assert_eq!(items, vec![1, 2, 4]);
        assert_eq!(cursor, Some(4));
        let (items, cursor) = collect_page(5..=10, 3, gappy_fetch, |_| true).expect("page");
        assert_eq!(items, vec![5, 7, 8]);
        assert_eq!(cursor, Some(8));
    }

    #[test]
    fn last_page_has_no_cursor() {
        let (items, cursor) = collect_page(9..=10, 3, gappy_fetch, |_| true).expect("page");
        assert_eq!(items, vec![10]);
        assert_eq!(cursor, None);
    }

    #[test]
    fn full_page_at_the_very_end_has_no_cursor() {
        let (items, cursor) = collect_page(1..=2, 2, gappy_fetch, |_| true).expect("page");
        assert_eq!(items, vec![1, 2]);
        assert_eq!(cursor, None);
    }

    #[test]
    fn filter_applies_across_batches() {
        let (items, cursor) = collect_page(1..=200, 5, gappy_fetch, |v| v % 10 == 1).expect("page");
        assert_eq!(items, vec![1, 11, 31, 41, 61]);
        assert_eq!(cursor, Some(61));
    }

    #[test]
    fn fetch_errors_propagate() {
        let r: Result<(Vec<u64>, _), &str> = collect_page(1..=5, 2, |_| Err("down"), |_| true);
        assert_eq!(r, Err("down"));
    }

    #[test]
    fn defaults_without_query() {
        let req = ApiRequest::new(Method::GET, "/users");
        assert_eq!(
            PageRequest::from_request(&req, "users"),
            Ok(PageRequest {
                after: 0,
                limit: DEFAULT_LIMIT
            })
        );
    }

    #[test]
    fn reads_limit_and_cursor() {
        let req = ApiRequest::new(
            Method::GET,
            &format!("/users?limit=5&cursor={}", encode_cursor("users", 9)),
        );
        assert_eq!(
            PageRequest::from_request(&req, "users"),
            Ok(PageRequest { after: 9, limit: 5 })
        );
    }
}
