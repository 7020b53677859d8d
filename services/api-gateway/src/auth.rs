//! Bearer-key authentication for writes (`API_KEYS`).
//!
//! When `API_KEYS` (comma-separated) is set, every request that is not a
//! read (`GET`, `HEAD`) must carry `Authorization: Bearer <key>` for one of
//! them. Keys are compared in constant time so response timing does not
//! reveal how much of a guess was right.

use service_kit::{ApiError, ApiRequest, Method};
use subtle::ConstantTimeEq;

pub struct ApiKeys(Vec<String>);

impl ApiKeys {
    pub fn from_env() -> Self {
        Self::parse(&std::env::var("API_KEYS").unwrap_or_default())
    }

    pub fn parse(raw: &str) -> Self {
        Self(
            raw.split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_string)
                .collect(),
        )
    }

    pub fn check(&self, req: &ApiRequest) -> Result<(), ApiError> {
        if matches!(req.method, Method::GET | Method::HEAD) {
            return Ok(());
        }
        self.check_write(&req.headers)
    }

    /// Whether `headers` present a key for a write (any key, when none
    /// are configured): REST's non-reads and gRPC's writing methods.
    pub fn check_write(&self, headers: &http::HeaderMap) -> Result<(), ApiError> {
        if self.0.is_empty() {
            return Ok(());
        }
        // A header that is not text presents no key: 401 like a wrong one.
        let presented = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .unwrap_or_default();
        // Every key is compared, match or not, to keep timing uniform.
        let matched = self.0.iter().fold(0u8, |acc, key| {
            acc | key.as_bytes().ct_eq(presented.as_bytes()).unwrap_u8()
        });
        if matched == 1 && !presented.is_empty() {
            Ok(())
        } else {
            Err(ApiError::new(
                401,
                "unauthorized",
                "This request needs a valid API key: Authorization: Bearer <key>.",
            )
            .with_header("www-authenticate", "Bearer"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, auth: Option<&str>) -> ApiRequest {
        let mut r = ApiRequest::new(method, "/api/users");
        if let Some(a) = auth {
            r.headers
                .insert("authorization", a.parse().expect("header"));
        }
        r
    }

    #[test]
    fn no_keys_means_open() {
        assert!(
            ApiKeys::parse("")
                .check(&request(Method::POST, None))
                .is_ok()
        );
        assert!(
            ApiKeys::parse(" , ")
                .check(&request(Method::POST, None))
                .is_ok()
        );
    }

    #[test]
    fn reads_never_need_a_key() {
        assert!(
            ApiKeys::parse("k1")
                .check(&request(Method::GET, None))
                .is_ok()
        );
    }

    #[test]
    fn writes_need_a_listed_key() {
        let keys = ApiKeys::parse("k1, k2");
        assert!(
            keys.check(&request(Method::POST, Some("Bearer k2")))
                .is_ok()
        );
        assert!(
            keys.check(&request(Method::DELETE, Some("Bearer k1")))
                .is_ok()
        );
        for bad in [
            None,
            Some("Bearer k3"),
            Some("Bearer "),
            Some("k1"),
            Some("Basic k1"),
            Some("Bearer k1k2"),
        ] {
            let e = keys.check(&request(Method::PATCH, bad)).expect_err("401");
            assert_eq!((e.status, e.code), (401, "unauthorized"), "{bad:?}");
        }
    }
}
