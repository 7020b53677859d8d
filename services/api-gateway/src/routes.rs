//! Which upstream a public path belongs to.
//!
//! `/api/users[/…]` → user-service `/users[/…]`, `/api/orders[/…]` →
//! order-service `/orders[/…]`, by whole segments (`/api/usersX` is not a
//! users path). `GET /api/users/{id}/orders` is the one composed route.

#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    Health,
    OpenApi,
    UserOrders(&'a str),
    Forward {
        upstream: Upstream,
        /// The upstream path and query, e.g. `/users/7?x=1`.
        target: String,
    },
    NotFound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    Users,
    Orders,
}

pub fn route<'a>(path: &'a str, query: Option<&str>) -> Route<'a> {
    let segments: Vec<&'a str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (upstream, rest) = match segments.as_slice() {
        ["healthz"] => return Route::Health,
        ["openapi.yaml"] => return Route::OpenApi,
        ["api", "users", id, "orders"] => return Route::UserOrders(id),
        ["api", "users", rest @ ..] => (Upstream::Users, rest),
        ["api", "orders", rest @ ..] => (Upstream::Orders, rest),
        _ => return Route::NotFound,
    };
    let base = match upstream {
        Upstream::Users => "/users",
        Upstream::Orders => "/orders",
    };
    let mut target = base.to_string();
    for segment in rest {
        target.push('/');
        target.push_str(segment);
    }
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        target.push('?');
        target.push_str(q);
    }
    Route::Forward { upstream, target }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forward(upstream: Upstream, target: &str) -> Route<'static> {
        Route::Forward {
            upstream,
            target: target.into(),
        }
    }

    #[test]
    fn maps_collections_and_items() {
        assert_eq!(
            route("/api/users", None),
            forward(Upstream::Users, "/users")
        );
        assert_eq!(
            route("/api/users/", None),
            forward(Upstream::Users, "/users")
        );
        assert_eq!(
            route("/api/users/7", None),
            forward(Upstream::Users, "/users/7")
        );
        assert_eq!(
            route("/api/orders/3", None),
            forward(Upstream::Orders, "/orders/3")
        );
    }

    #[test]
    fn keeps_query() {
        assert_eq!(
            route("/api/orders", Some("user_id=1&status=paid")),
            forward(Upstream::Orders, "/orders?user_id=1&status=paid")
        );
    }

    #[test]
    fn composed_route() {
        assert_eq!(route("/api/users/5/orders", None), Route::UserOrders("5"));
        assert_eq!(
            route("/api/users/abc/orders", None),
            Route::UserOrders("abc")
        );
    }

    #[test]
    fn prefixes_match_whole_segments() {
        assert_eq!(route("/api/usersX", None), Route::NotFound);
        assert_eq!(route("/api", None), Route::NotFound);
        assert_eq!(route("/users", None), Route::NotFound);
        assert_eq!(route("/", None), Route::NotFound);
    }

    #[test]
    fn deeper_paths_are_forwarded_for_the_upstream_to_judge() {
        assert_eq!(
            route("/api/users/1/x/y", None),
            forward(Upstream::Users, "/users/1/x/y")
        );
    }

    #[test]
    fn health() {
        assert_eq!(route("/healthz", None), Route::Health);
        assert_eq!(route("/openapi.yaml", None), Route::OpenApi);
    }
}
