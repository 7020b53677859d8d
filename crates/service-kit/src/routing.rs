//! Method checks for a matched path.
//!
//! Routing itself is a plain `match` on path segments in each service; this
//! module holds the part they share: answering 405 with `Allow` when the
//! path exists but the method does not. `HEAD` is served wherever `GET` is:
//! `server::respond` hands it to the routes as `GET`.

use http::Method;

use crate::error::ApiError;

/// `Ok(())` when `method` is one of `allowed`, else 405 listing them.
pub fn allow(method: &Method, allowed: &[Method]) -> Result<(), ApiError> {
    if allowed.contains(method) {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed(allowed))
    }
}

/// Parses a numeric path id (`/users/{id}`): 1..=u64::MAX in plain decimal.
pub fn parse_id(segment: &str, what: &str) -> Result<u64, ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "invalid_id",
            format!("The {what} id must be a positive integer."),
        )
        .with_detail("id", segment.chars().take(64).collect::<String>())
    };
    if segment.is_empty() || !segment.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    match segment.parse::<u64>() {
        Ok(0) | Err(_) => Err(invalid()),
        Ok(id) => Ok(id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_method_passes() {
        assert!(allow(&Method::GET, &[Method::GET, Method::POST]).is_ok());
    }

    #[test]
    fn other_method_is_405_with_allow() {
        let e = allow(&Method::PUT, &[Method::GET, Method::POST]).expect_err("405");
        assert_eq!(e.status, 405);
        assert_eq!(e.headers[0].1, "GET, POST");
    }

    #[test]
    fn ids_parse() {
        assert_eq!(parse_id("1", "user"), Ok(1));
        assert_eq!(parse_id("18446744073709551615", "user"), Ok(u64::MAX));
    }

    #[test]
    fn bad_ids_are_invalid_id() {
        for bad in [
            "",
            "0",
            "-1",
            "+1",
            "abc",
            "1.5",
            "1e3",
            " 1",
            "18446744073709551616",
            "١",
        ] {
            let e = parse_id(bad, "user").expect_err(bad);
            assert_eq!((e.status, e.code), (400, "invalid_id"), "{bad}");
        }
    }
}
