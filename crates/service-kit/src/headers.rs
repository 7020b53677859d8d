//! Which headers cross a hop.
//!
//! Hop-by-hop headers (RFC 9110 §7.6.1) describe one connection and must
//! not be forwarded; wasi:http also refuses some of them outright, so a
//! guest that copied them would fail the request instead of proxying it.

/// Headers never copied from one hop to the next.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "http2-settings",
    // Bodies are re-framed on every hop.
    "content-length",
];

pub fn is_end_to_end(name: &str) -> bool {
    !HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// Copies the end-to-end headers of `from`, also dropping any header the
/// `Connection` header names.
pub fn end_to_end(from: &http::HeaderMap) -> http::HeaderMap {
    let named_by_connection: Vec<String> = from
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    let mut out = http::HeaderMap::new();
    for (name, value) in from {
        let n = name.as_str();
        if is_end_to_end(n) && !named_by_connection.iter().any(|c| c == n) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_hop_by_hop_and_connection_named() {
        let mut h = http::HeaderMap::new();
        h.insert("connection", "close, x-secret".parse().expect("v"));
        h.insert("x-secret", "1".parse().expect("v"));
        h.insert("host", "example".parse().expect("v"));
        h.insert("transfer-encoding", "chunked".parse().expect("v"));
        h.insert("x-request-id", "abc".parse().expect("v"));
        h.insert("content-type", "application/json".parse().expect("v"));
        let out = end_to_end(&h);
        assert_eq!(out.len(), 2);
        assert!(out.contains_key("x-request-id"));
        assert!(out.contains_key("content-type"));
    }
}
