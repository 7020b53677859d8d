//! api-gateway: the only public entry (openapi.yaml, README "Gateway").
//!
//! It authenticates writes, forwards `/api/users…` and `/api/orders…` to
//! their services unchanged (method, query, body, end-to-end headers, the
//! request id), composes `GET /api/users/{id}/orders`, and turns every
//! upstream failure into a JSON error: 504 on timeout, 502/503 when a
//! service cannot be reached or answers with something that is not ours.
//! gRPC calls to `users.v1.Users` are relayed to user-service ([`rpc`]).

pub mod auth;
pub mod routes;
pub mod rpc;

#[cfg(test)]
mod proptests;

use serde_json::value::RawValue;
use serde_json::{Value, json};
use service_kit::headers::end_to_end;
use service_kit::request_id::HEADER as REQUEST_ID;
use service_kit::routing::{allow, parse_id};
use service_kit::upstream::{Upstream, UpstreamResponse, gateway_error};
use service_kit::{ApiError, ApiRequest, ApiResponse, Method};

use auth::ApiKeys;
use routes::Route;

service_kit::export_service!(crate::handle, grpc: crate::rpc::serve);

/// The public API's description, served at `GET /openapi.yaml`.
const OPENAPI: &str = include_str!("../../../openapi.yaml");

/// The composed route follows order pages up to this many orders.
const MAX_COMPOSED_ORDERS: usize = 1_000;

/// Orders asked for per page: the order service's largest page.
const ORDERS_PAGE: usize = 100;

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

pub(crate) fn users() -> Result<Upstream, ApiError> {
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

/// One page of `GET /orders`, its orders left as the upstream wrote them.
#[derive(serde::Deserialize)]
struct OrderPage<'a> {
    #[serde(borrow)]
    items: Vec<&'a RawValue>,
    next_cursor: Option<String>,
}

/// `GET /api/users/{id}/orders`: the user, then their orders (up to
/// [`MAX_COMPOSED_ORDERS`]). The answer is spliced together from the
/// upstreams' JSON as it arrives, one page of orders at a time, never
/// parsed into a tree: the memory it takes is the answer plus one page,
/// which for the largest orders the API allows (100 items, 64-byte SKUs)
/// stays far inside an instance's memory limit.
async fn user_with_orders(req: &ApiRequest, id: u64) -> Result<ApiResponse, ApiError> {
    let users = users()?;
    let user = users
        .get(&format!("/users/{id}"), &req.request_id)
        .await
        .map_err(|e| gateway_error(users.name, &e))?;
    if user.status != 200 {
        return passthrough(users.name, user);
    }
    let user_json = serde_json::from_slice::<&RawValue>(&user.body)
        .ok()
        .filter(|raw| raw.get().starts_with('{'))
        .ok_or_else(|| upstream_error(users.name, 200))?;

    let mut body = Vec::with_capacity(64 * 1024);
    body.extend_from_slice(b"{\"user\":");
    body.extend_from_slice(user_json.get().as_bytes());
    body.extend_from_slice(b",\"orders\":[");
    let orders_upstream = orders()?;
    let mut composed = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut target = format!("/orders?user_id={id}&limit={ORDERS_PAGE}");
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
        let parsed: OrderPage = serde_json::from_slice(&page.body)
            .map_err(|_| upstream_error(orders_upstream.name, 200))?;
        for order in parsed.items.iter().take(MAX_COMPOSED_ORDERS - composed) {
            if composed > 0 {
                body.push(b',');
            }
            body.extend_from_slice(order.get().as_bytes());
            composed += 1;
        }
        cursor = parsed.next_cursor;
        if cursor.is_none() || composed >= MAX_COMPOSED_ORDERS {
            break;
        }
    }
    body.extend_from_slice(b"]}");
    Ok(ApiResponse {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.into(),
    })
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
