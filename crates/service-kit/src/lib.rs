//! service-kit: the plumbing every porto guest service shares.
//!
//! A service is a `wasm32-wasip2` component exporting
//! `wasi:http/incoming-handler`. It writes one `async fn handle(ApiRequest)
//! -> Result<ApiResponse, ApiError>` and exports it with
//! [`export_service!`], and optionally a gRPC handler beside it
//! ([`grpc`]); this crate does the rest: body limits, request ids,
//! JSON parsing with field-level errors, the error envelope, gRPC framing
//! and status, typed access to `wasi:keyvalue`, and deadline-bound calls
//! to other services.
//!
//! Everything except the wasi glue is plain Rust and unit-tested natively.

pub mod clock;
pub mod error;
pub mod grpc;
pub mod headers;
pub mod kv;
pub mod pagination;
pub mod request;
pub mod request_id;
pub mod response;
pub mod routing;
pub mod server;
mod strict_json;
pub mod upstream;

#[cfg(test)]
mod proptests;

pub use error::ApiError;
pub use http::Method;
pub use request::ApiRequest;
pub use response::ApiResponse;

#[doc(hidden)]
pub mod __private {
    pub use wasip2;
}

/// Exports `handler` (an `async fn(ApiRequest) -> Result<ApiResponse,
/// ApiError>`) as the component's `wasi:http/incoming-handler`; with
/// `grpc: rpc` (an `async fn(grpc::Call) -> Result<grpc::Reply,
/// grpc::Failure>`), gRPC calls go to `rpc`, and without it they are all
/// `UNIMPLEMENTED`.
#[macro_export]
macro_rules! export_service {
    ($handler:path) => {
        $crate::export_service!($handler, grpc: $crate::grpc::no_methods);
    };
    ($handler:path, grpc: $rpc:path) => {
        #[cfg(target_arch = "wasm32")]
        mod __service_export {
            struct Service;

            impl $crate::__private::wasip2::exports::http::incoming_handler::Guest for Service {
                fn handle(
                    request: $crate::__private::wasip2::http::types::IncomingRequest,
                    response_out: $crate::__private::wasip2::http::types::ResponseOutparam,
                ) {
                    $crate::server::run(request, response_out, $handler, $rpc)
                }
            }

            $crate::__private::wasip2::http::proxy::export!(
                Service with_types_in $crate::__private::wasip2
            );
        }
    };
}
