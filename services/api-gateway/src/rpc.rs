//! The gateway's gRPC side: calls to `users.v1.Users` are relayed to
//! user-service as they are (messages still encoded, the end-to-end
//! metadata, the request id), behind the same API keys as REST: the
//! writing method (`CreateUser`, and any method the gateway does not know
//! to be a read) needs one. The gateway answers `grpc.health.v1.Health`
//! for itself.

use service_kit::grpc::{Call, Failure, Reply, client, health};
use service_kit::upstream::gateway_error;

use crate::auth::ApiKeys;

const USERS: &str = "users.v1.Users";

/// `users.v1.Users` methods that only read.
const READS: &[&str] = &["GetUser", "ListUsers"];

pub async fn serve(call: Call) -> Result<Reply, Failure> {
    match call.service.as_str() {
        health::SERVICE => health::serve(&call, &[USERS], || Ok(())),
        USERS => {
            if !READS.contains(&call.method.as_str()) {
                ApiKeys::from_env().check_write(&call.headers)?;
            }
            let upstream = crate::users()?;
            let path = format!("/{}/{}", call.service, call.method);
            let (framed, status) = client::relay(
                &upstream,
                &path,
                &call.headers,
                call.body.clone(),
                &call.request_id,
            )
            .await
            .map_err(|e| {
                eprintln!("request {}: {} {path}: {e}", call.request_id, upstream.name);
                gateway_error(upstream.name, &e)
            })?;
            Ok(Reply::relayed(framed, status))
        }
        _ => Err(call.unimplemented()),
    }
}
