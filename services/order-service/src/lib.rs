//! order-service: orders of existing users (openapi.yaml, README "Orders").
//!
//! Creating an order asks user-service whether the user exists, by its
//! gRPC method `users.v1.Users/GetUser` over outbound wasi:http to
//! `USER_SERVICE_URL` (in process under porto, across the network between
//! containers); an `Idempotency-Key` makes the create safe to retry.

pub mod domain;
pub mod store;

#[cfg(test)]
mod proptests;

use service_kit::grpc::{self, Code};
use service_kit::pagination::{Page, PageRequest};
use service_kit::request_id::RequestId;
use service_kit::routing::{allow, parse_id};
use service_kit::upstream::{Upstream, UpstreamError};
use service_kit::{ApiError, ApiRequest, ApiResponse, Method};

use domain::{CreateOrder, Order, OrderStatus, PatchOrder};
use store::{Claim, Orders, validate_idempotency_key};

/// The name list cursors are issued for (a cursor of another collection is 400).
const COLLECTION: &str = "orders";

service_kit::export_service!(crate::handle);

pub async fn handle(req: ApiRequest) -> Result<ApiResponse, ApiError> {
    match req.segments().as_slice() {
        ["healthz"] => {
            allow(&req.method, &[Method::GET])?;
            Orders::open()?.healthy()?;
            Ok(ApiResponse::ok(&serde_json::json!({"status": "ok"})))
        }
        ["orders"] => {
            allow(&req.method, &[Method::GET, Method::POST])?;
            if req.method == Method::POST {
                create(&req).await
            } else {
                list(&req)
            }
        }
        ["orders", id] => {
            allow(&req.method, &[Method::GET, Method::PATCH])?;
            let id = parse_id(id, "order")?;
            if req.method == Method::GET {
                Ok(ApiResponse::ok(&Orders::open()?.get(id)?))
            } else {
                let next = req.json::<PatchOrder>()?.status()?;
                Ok(ApiResponse::ok(&Orders::open()?.set_status(id, next)?))
            }
        }
        _ => Err(ApiError::route_not_found()),
    }
}

fn created(order: &Order) -> ApiResponse {
    ApiResponse::created(format!("/orders/{}", order.id), order)
}

async fn create(req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let input = req.json::<CreateOrder>()?;
    let valid = input.clone().validate()?;
    let key = req
        .header_bytes("idempotency-key")
        .map(validate_idempotency_key)
        .transpose()?;
    let orders = Orders::open()?;
    if let Some(key) = key
        && let Claim::Replay(order) = orders.claim(key, &input)?
    {
        return Ok(created(&order).with_header("idempotent-replayed", "true"));
    }
    let outcome = async {
        ensure_user_exists(valid.user_id, &req.request_id).await?;
        orders.create(valid, key.map(|key| (key, &input)))
    }
    .await;
    match (outcome, key) {
        (Ok(order), _) => Ok(created(&order)),
        (Err(e), Some(key)) => {
            orders.abandon(key)?;
            Err(e)
        }
        (Err(e), None) => Err(e),
    }
}

fn list(req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let page = PageRequest::from_request(req, COLLECTION)?;
    let user_id = req
        .query_param("user_id")?
        .map(|raw| {
            parse_id(&raw, "user").map_err(|_| {
                ApiError::bad_request("invalid_query", "`user_id` must be a positive integer.")
                    .with_detail("user_id", "must be a positive integer")
            })
        })
        .transpose()?;
    let status = req
        .query_param("status")?
        .map(|raw| {
            OrderStatus::parse(&raw).ok_or_else(|| {
                ApiError::bad_request("invalid_query", "`status` is not an order status.")
                    .with_detail(
                        "status",
                        "must be one of pending, paid, shipped, delivered, cancelled",
                    )
            })
        })
        .transpose()?;
    let (items, last) = Orders::open()?.list(page, user_id, status)?;
    Ok(ApiResponse::ok(&Page::new(items, last, COLLECTION)))
}

#[allow(clippy::all, missing_docs, dead_code)]
mod users_v1 {
    include!(concat!(env!("OUT_DIR"), "/users.v1.rs"));
}

/// Asks user-service; only a definite `NOT_FOUND` means the user does not
/// exist.
async fn ensure_user_exists(user_id: u64, request_id: &RequestId) -> Result<(), ApiError> {
    let unavailable = |why: &dyn std::fmt::Display| {
        eprintln!("request {request_id}: user-service unavailable: {why}");
        ApiError::new(
            503,
            "dependency_unavailable",
            "user-service is unavailable; the order was not created.",
        )
        .with_header("retry-after", "1")
        .with_detail("dependency", "user-service")
    };
    let users =
        Upstream::from_env("USER_SERVICE_URL", "user-service").map_err(|e| unavailable(&e))?;
    let asked = users_v1::GetUserRequest { id: user_id };
    let answered = grpc::client::unary::<_, users_v1::User>(
        &users,
        "/users.v1.Users/GetUser",
        &asked,
        request_id,
    )
    .await
    .map_err(|e: UpstreamError| unavailable(&e))?;
    match answered {
        Ok(_) => Ok(()),
        Err(status) if status.code == Code::NotFound => {
            Err(
                ApiError::new(422, "unknown_user", format!("No user has id {user_id}."))
                    .with_detail("user_id", user_id),
            )
        }
        Err(status) => Err(unavailable(&status)),
    }
}
