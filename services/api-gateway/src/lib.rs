//! api-gateway: the only public entry (openapi.yaml, README "Gateway").
//!
//! It authenticates writes, forwards `/api/users…` and `/api/orders…` to
//! their services unchanged (method, query, body, end-to-end headers, the
//! request id), composes `GET /api/users/{id}/orders`, and turns every
//! upstream failure into a JSON error: 504 on timeout, 502/503 when a
//! service cannot be reached or answers with something that is not ours.

pub mod auth;
pub mod routes;

#[cfg(test)]
mod proptests;

use serde_json::{Value, json};
use service_kit::headers::end_to_end;
use service_kit::request_id::HEADER as REQUEST_ID;
use service_kit::routing::{allow, parse_id};
use service_kit::upstream::{Upstream, UpstreamResponse, gateway_error};
use service_kit::{ApiError, ApiRequest, ApiResponse, Method};

use auth::ApiKeys;
use routes::Route;

service_kit::export_service!(crate::handle);

/// The public API's description, served at `GET /openapi.yaml`.
const OPENAPI: &str = include_str!("../../../openapi.yaml");

/// The composed route follows order pages up to this many orders.
const MAX_COMPOSED_ORDERS: usize = 1_000;

pub async fn handle(req: ApiRequest) -> Result<ApiResponse, ApiError> {
    match routes::route(&req.path, req.query.as_deref()) {
        Route::Health => {
            allow(&req.method, &[Method::GET])?;
            health(&req).await
        }
        Route::OpenApi => {
            allow(&req.method, &[Method::GET])?;
            Ok(ApiResponse {
                status: 200,
                headers: vec![("content-type".into(), "application/yaml".into())],
                body: OPENAPI.as_bytes().to_vec().into(),
            })
        }
        Route::UserOrders(id) => {
            allow(&req.method, &[Method::GET])?;
            let id = parse_id(id, "user")?;
            user_with_orders(&req, id).await
        }
        Route::Forward { upstream, target } => {
            ApiKeys::from_env().check(&req)?;
            let upstream = match upstream {
                routes::Upstream::Users => users()?,
                routes::Upstream::Orders => orders()?,
            };
            forward(&req, &upstream, &target).await
        }
        Route::NotFound => Err(ApiError::route_not_found()),
    }
}

fn users() -> Result<Upstream, ApiError> {
    Upstream::from_env("USER_SERVICE_URL", "user-service")
        .map_err(|e| gateway_error("user-service", &e))
}

fn orders() -> Result<Upstream, ApiError> {
    Upstream::from_env("ORDER_SERVICE_URL", "order-service")
        .map_err(|e| gateway_error("order-service", &e))
}

async fn forward(
    req: &ApiRequest,
    upstream: &Upstream,
    target: &str,
) -> Result<ApiResponse, ApiError> {
    let mut headers = end_to_end(&req.headers);
    if let Ok(id) = req.request_id.as_str().parse() {
        headers.insert(REQUEST_ID, id);
    }
    let response = upstream
        .send(req.method.clone(), target, &headers, req.body.clone())
        .await
        .map_err(|e| {
            eprintln!(
                "request {}: {} {target}: {e}",
                req.request_id, upstream.name
            );
            gateway_error(upstream.name, &e)
        })?;
    passthrough(upstream.name, response)
}

/// Relays an upstream answer; a 5xx that is not our JSON envelope (a trap,
/// a host error page) becomes 502 so clients only ever see one error shape.
fn passthrough(upstream: &str, response: UpstreamResponse) -> Result<ApiResponse, ApiError> {
    if response.status >= 500 && !response.is_api_error() {
        return Err(upstream_error(upstream, response.status));
    }
    let headers = end_to_end(&response.headers)
        .iter()
        .filter(|(name, _)| name.as_str() != REQUEST_ID)
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_string())))
        .collect();
    Ok(ApiResponse {
        status: response.status,
        headers,
        body: response.body,
    })
}

fn upstream_error(upstream: &str, status: u16) -> ApiError {
    ApiError::new(
        502,
        "upstream_error",
        format!("{upstream} failed to answer ({status})."),
    )
    .with_detail("upstream", upstream.to_string())
}

/// `GET /api/users/{id}/orders`: the user, then all their orders.
async fn user_with_orders(req: &ApiRequest, id: u64) -> Result<ApiResponse, ApiError> {
    let users = users()?;
    let user = users
        .get(&format!("/users/{id}"), &req.request_id)
        .await
        .map_err(|e| gateway_error(users.name, &e))?;
    if user.status != 200 {
        return passthrough(users.name, user);
    }
    let user: Value = user.json().ok_or_else(|| upstream_error(users.name, 200))?;

    let orders_upstream = orders()?;
    let mut orders: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut target = format!("/orders?user_id={id}&limit=100");
        if let Some(c) = &cursor {
            target.push_str("&cursor=");
            target.push_str(c);
        }
        let page = orders_upstream
            .get(&target, &req.request_id)
            .await
            .map_err(|e| gateway_error(orders_upstream.name, &e))?;
        if page.status != 200 {
            return passthrough(orders_upstream.name, page);
        }
        let page: Value = page
            .json()
            .ok_or_else(|| upstream_error(orders_upstream.name, 200))?;
        if let Some(items) = page.get("items").and_then(Value::as_array) {
            orders.extend(items.iter().cloned());
        }
        cursor = page
            .get("next_cursor")
            .and_then(Value::as_str)
            .map(str::to_string);
        if cursor.is_none() || orders.len() >= MAX_COMPOSED_ORDERS {
            break;
        }
    }
    Ok(ApiResponse::ok(&json!({ "user": user, "orders": orders })))
}

/// Each upstream's `/healthz`; 503 naming the failing ones.
async fn health(req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let mut statuses = serde_json::Map::new();
    let mut failing = Vec::new();
    for (name, upstream) in [("user-service", users()), ("order-service", orders())] {
        let ok = match upstream {
            Ok(u) => matches!(u.get("/healthz", &req.request_id).await, Ok(r) if r.status == 200),
            Err(_) => false,
        };
        statuses.insert(
            name.into(),
            Value::from(if ok { "ok" } else { "unavailable" }),
        );
        if !ok {
            failing.push(name);
        }
    }
    if failing.is_empty() {
        return Ok(ApiResponse::ok(
            &json!({ "status": "ok", "upstreams": statuses }),
        ));
    }
    Err(ApiError::new(
        503,
        "upstream_unavailable",
        format!("Unavailable: {}.", failing.join(", ")),
    )
    .with_detail("upstreams", Value::Object(statuses)))
}
