//! gRPC beside REST, in the same component: a service writes
//! `async fn(Call) -> Result<Reply, Failure>` and exports it with
//! `export_service!(handle, grpc: serve)`; service-kit tells gRPC requests
//! from REST ones, reads the request message, frames the answers and ends
//! every call with `grpc-status` and `grpc-message` trailers.
//!
//! Handlers use the same [`ApiError`]s as REST (`?` works on both), so a
//! validation failure is `INVALID_ARGUMENT` naming its field, an unknown
//! id `NOT_FOUND`, a taken email `ALREADY_EXISTS` ([`status`] has the
//! table). Framing errors get the codes gRPC's status-code table gives
//! ([`framing`]). Requests are read whole under [`MAX_MESSAGE_BYTES`];
//! compression is not offered (`grpc-accept-encoding: identity`).
//!
//! What a request must be to be served as gRPC: `POST`, `content-type:
//! application/grpc` (or `application/grpc+proto`), path
//! `/package.Service/Method`. A request with that path and another content
//! type gets 415, as the gRPC-over-HTTP/2 specification asks; other
//! requests are REST's.

pub mod client;
pub mod framing;
pub mod health;
#[cfg(target_arch = "wasm32")]
pub(crate) mod serve;
pub mod status;

use bytes::Bytes;
use http::HeaderMap;
use prost::Message;

pub use status::{Code, Status};

use crate::error::ApiError;
use crate::request_id::RequestId;

/// The largest request message a service reads: REST's body limit
/// (`server::MAX_BODY_BYTES`, which a test holds equal), so one bound
/// holds whichever API a client uses.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// One RPC as a handler sees it: which method, the request's metadata and
/// its body, read whole.
#[derive(Debug, Clone)]
pub struct Call {
    /// `users.v1.Users`.
    pub service: String,
    /// `GetUser`.
    pub method: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub request_id: RequestId,
}

impl Call {
    /// The request message of a unary or server-streaming method.
    pub fn message<M: Message + Default>(&self) -> Result<M, Status> {
        framing::decode_one(&self.body, MAX_MESSAGE_BYTES)
    }

    /// `UNIMPLEMENTED`, naming the method: what a handler answers for a
    /// method it does not know.
    pub fn unimplemented(&self) -> Failure {
        Status::unimplemented(format!(
            "This service has no method {}/{}.",
            self.service, self.method
        ))
        .into()
    }
}

/// Why a call failed: an [`ApiError`], as REST handlers return (turned
/// into a status by [`status`]'s table, a 500's text kept in the log), or
/// a [`Status`] chosen directly.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    Api(ApiError),
    Rpc(Status),
}

impl From<ApiError> for Failure {
    fn from(error: ApiError) -> Self {
        Self::Api(error)
    }
}

impl From<Status> for Failure {
    fn from(status: Status) -> Self {
        Self::Rpc(status)
    }
}

impl Failure {
    /// The status the client gets. A server error's own text goes to the
    /// log with the request id, and the client gets a fixed sentence
    /// quoting that id, as REST's 500 does.
    pub fn into_status(self, request_id: &RequestId, method: &str) -> Status {
        match self {
            Self::Rpc(status) => status,
            Self::Api(error) if error.status == 500 => {
                eprintln!("request {request_id}: {method} failed: {error}");
                Status::internal(format!(
                    "The service failed while handling this request (request id {request_id})."
                ))
            }
            Self::Api(error) => error.into(),
        }
    }
}

type Messages = Box<dyn Iterator<Item = Result<Bytes, Failure>> + Send>;

/// What a call answers: messages, framed as they are taken, then the
/// status (OK, or the failure a stream ends in).
pub struct Reply {
    messages: Messages,
}

impl Reply {
    /// A unary answer.
    pub fn unary(message: &impl Message) -> Self {
        Self {
            messages: Box::new(std::iter::once(Ok(framing::encode(message)))),
        }
    }

    /// A server stream: each message is encoded only when the body is
    /// written, so a long list is never held whole; an `Err` ends the
    /// stream with that status after the messages before it.
    pub fn stream<M, I>(messages: I) -> Self
    where
        M: Message,
        I: IntoIterator<Item = Result<M, Failure>>,
        I::IntoIter: Send + 'static,
    {
        Self {
            messages: Box::new(
                messages
                    .into_iter()
                    .map(|message| message.map(|m| framing::encode(&m))),
            ),
        }
    }

    /// Messages framed elsewhere (a relayed answer), then `status`.
    pub fn relayed(framed: Bytes, status: Status) -> Self {
        let body = (!framed.is_empty()).then_some(Ok(framed));
        let end = (!status.is_ok()).then_some(Err(Failure::Rpc(status)));
        Self {
            messages: Box::new(body.into_iter().chain(end)),
        }
    }

    // Only the wasi:http side (serve.rs) writes answers.
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    pub(crate) fn into_messages(self) -> Messages {
        self.messages
    }
}

/// What a request is, by its method, path and content type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A request for the REST handler.
    Rest,
    /// An RPC of `service`, method `method`.
    Rpc { service: String, method: String },
    /// A gRPC content type on a path that names no method (`UNIMPLEMENTED`).
    RpcWithoutMethod,
    /// A method path with a content type gRPC does not use (415), or a
    /// gRPC codec other than protobuf.
    UnsupportedMediaType,
}

/// Tells gRPC requests from REST ones.
pub fn classify(path: &str, headers: &HeaderMap) -> Kind {
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| {
            value
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    let grpc = content_type
        .as_deref()
        .and_then(|value| value.strip_prefix("application/grpc"));
    let method = method_of(path);
    match (grpc, method) {
        (Some("" | "+proto"), Some((service, method))) => Kind::Rpc {
            service: service.to_string(),
            method: method.to_string(),
        },
        (Some("" | "+proto"), None) => Kind::RpcWithoutMethod,
        (Some(_), _) => Kind::UnsupportedMediaType,
        (None, Some(_)) => Kind::UnsupportedMediaType,
        (None, None) => Kind::Rest,
    }
}

/// `("users.v1.Users", "GetUser")` from `/users.v1.Users/GetUser`: a
/// package-qualified service (a dot in it, which no REST path's first
/// segment has) and a method name.
fn method_of(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    let name = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    };
    (service.contains('.') && name(service) && name(method) && !method.contains('.'))
        .then_some((service, method))
}

/// A service that serves no gRPC: every call is `UNIMPLEMENTED`.
pub async fn no_methods(call: Call) -> Result<Reply, Failure> {
    Err(call.unimplemented())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(path: &str, content_type: Option<&str>) -> Kind {
        let mut headers = HeaderMap::new();
        if let Some(value) = content_type {
            headers.insert(
                http::header::CONTENT_TYPE,
                value.parse().expect("header value"),
            );
        }
        classify(path, &headers)
    }

    #[test]
    fn requests_are_told_apart_by_path_and_content_type() {
        let rpc = Kind::Rpc {
            service: "users.v1.Users".into(),
            method: "GetUser".into(),
        };
        assert_eq!(
            kind("/users.v1.Users/GetUser", Some("application/grpc")),
            rpc
        );
        assert_eq!(
            kind(
                "/users.v1.Users/GetUser",
                Some("Application/GRPC+proto; charset=x")
            ),
            rpc
        );
        assert_eq!(
            kind("/users.v1.Users/GetUser", Some("application/json")),
            Kind::UnsupportedMediaType
        );
        assert_eq!(
            kind("/users.v1.Users/GetUser", None),
            Kind::UnsupportedMediaType
        );
        assert_eq!(
            kind("/users.v1.Users/GetUser", Some("application/grpc+json")),
            Kind::UnsupportedMediaType
        );
        assert_eq!(
            kind("/users", Some("application/grpc")),
            Kind::RpcWithoutMethod
        );
        assert_eq!(kind("/users/1", Some("application/json")), Kind::Rest);
        assert_eq!(kind("/users/1", None), Kind::Rest);
        assert_eq!(kind("/users.v1.Users/Get/User", None), Kind::Rest);
    }

    #[test]
    fn a_relayed_answer_is_its_messages_then_any_failure() {
        let framed = Bytes::from_static(&[0, 0, 0, 0, 0]);
        let gone = Status::new(Code::NotFound, "gone");
        let relayed: Vec<_> = Reply::relayed(framed.clone(), gone.clone())
            .into_messages()
            .collect();
        assert_eq!(relayed, vec![Ok(framed), Err(Failure::Rpc(gone))]);
        let nothing: Vec<_> = Reply::relayed(Bytes::new(), Status::ok())
            .into_messages()
            .collect();
        assert!(nothing.is_empty());
    }

    #[test]
    fn server_errors_are_redacted_and_others_kept() {
        let id = RequestId::parse("rid-1").expect("id");
        let hidden = Failure::from(ApiError::internal("disk on fire at /var/x"))
            .into_status(&id, "users.v1.Users/GetUser");
        assert_eq!(hidden.code, Code::Internal);
        assert!(!hidden.message.contains("disk"), "{hidden}");
        assert!(hidden.message.contains("rid-1"), "{hidden}");
        let kept = Failure::from(ApiError::not_found("user_not_found", "No user has id 7."))
            .into_status(&id, "users.v1.Users/GetUser");
        assert_eq!(kept, Status::new(Code::NotFound, "No user has id 7."));
    }
}
