//! user-service: the users of the application (openapi.yaml, README "Users").
//!
//! Routing is a `match` on path segments; each arm checks the method and
//! delegates to [`store::Users`]. Validation lives in [`domain`]. The
//! gRPC API ([`rpc`], proto/users/v1/users.proto) serves the same store
//! by the same rules.

pub mod domain;
pub mod rpc;
pub mod store;

#[cfg(test)]
mod proptests;

use service_kit::pagination::{Page, PageRequest};
use service_kit::routing::{allow, parse_id};
use service_kit::{ApiError, ApiRequest, ApiResponse, Method};

use domain::{CreateUser, PatchUser};
use store::Users;

/// The name list cursors are issued for (a cursor of another collection is 400).
const COLLECTION: &str = "users";

service_kit::export_service!(crate::handle, grpc: crate::rpc::serve);

pub async fn handle(req: ApiRequest) -> Result<ApiResponse, ApiError> {
    match req.segments().as_slice() {
        ["healthz"] => {
            allow(&req.method, &[Method::GET])?;
            healthz().await
        }
        ["users"] => {
            allow(&req.method, &[Method::GET, Method::POST])?;
            if req.method == Method::POST {
                let input = req.json::<CreateUser>()?.validate()?;
                let user = Users::open().await?.create(input)?;
                Ok(ApiResponse::created(format!("/users/{}", user.id), &user))
            } else {
                let page = PageRequest::from_request(&req, COLLECTION)?;
                let (items, last) = Users::open().await?.list(page)?;
                Ok(ApiResponse::ok(&Page::new(items, last, COLLECTION)))
            }
        }
        ["users", id] => {
            allow(&req.method, &[Method::GET, Method::PATCH, Method::DELETE])?;
            let id = parse_id(id, "user")?;
            match req.method {
                Method::GET => Ok(ApiResponse::ok(&Users::open().await?.get(id)?)),
                Method::PATCH => {
                    let patch = req.json::<PatchUser>()?.validate()?;
                    Ok(ApiResponse::ok(&Users::open().await?.update(id, patch)?))
                }
                _ => {
                    Users::open().await?.delete(id)?;
                    Ok(ApiResponse::no_content())
                }
            }
        }
        _ => Err(ApiError::route_not_found()),
    }
}

async fn healthz() -> Result<ApiResponse, ApiError> {
    Users::open().await?.healthy()?;
    Ok(ApiResponse::ok(&serde_json::json!({"status": "ok"})))
}
