//! Fuzzing of the gateway's input handling: any path maps to a route
//! inside the upstream's own tree, and only a configured key admits a write.

use proptest::prelude::*;
use service_kit::{ApiRequest, Method};

use crate::auth::ApiKeys;
use crate::routes::{Route, route};

proptest! {
    #[test]
    fn forwarded_paths_stay_under_their_upstream(
        path in "(/api/(users|orders))?(/[A-Za-z0-9._~%:@!$&'()*+,;=-]{0,12}){0,5}/?|/\\PC{0,40}",
        query in proptest::option::of("[A-Za-z0-9=&%+._-]{0,24}"),
    ) {
        if let Route::Forward { target, .. } = route(&path, query.as_deref()) {
            let tree = if target.starts_with("/users") { "/users" } else { "/orders" };
            prop_assert!(target.starts_with(tree), "{}", target);
            let rest = &target[tree.len()..];
            prop_assert!(rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'), "{}", target);
            // Empty segments are dropped, so no `//host` can be smuggled in.
            prop_assert!(!target.split('?').next().unwrap_or_default().contains("//"), "{}", target);
        }
    }

    #[test]
    fn only_a_configured_key_admits_a_write(key in "[A-Za-z0-9]{1,32}", presented in "\\PC{0,40}") {
        let keys = ApiKeys::parse(&key);
        let mut request = ApiRequest::new(Method::POST, "/api/users");
        // A value that is not a valid header never reaches the gateway.
        let sent = http::HeaderValue::from_str(&format!("Bearer {presented}")).ok();
        let valid = sent.is_some();
        if let Some(value) = sent {
            request.headers.insert(http::header::AUTHORIZATION, value);
        }
        let admitted = keys.check(&request).is_ok();
        prop_assert_eq!(admitted, valid && presented.trim() == key);
        if !admitted {
            prop_assert_eq!(keys.check(&request).map_err(|e| e.status), Err(401));
        }
    }
}
