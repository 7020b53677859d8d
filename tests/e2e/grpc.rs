//! The gRPC API (proto/users/v1/users.proto) through porto, with clients
//! no one here wrote: Python's grpcio over h2c and over TLS, directly and
//! through the gateway's relay, and hyper's HTTP/2 client for the bad
//! input grpcio will not send.

use std::process::Command;

use bytes::Bytes;
use serde_json::Value;

use crate::harness::{
    Porto, certificate, h2_exchange, port_of, repo_root, stack, succeeded, tls_setting,
};

/// tests/grpc/walk against `target` (host:port): each call's answer or
/// status, by name.
pub fn walk(target: &str, extra: &[&str]) -> Value {
    let printed = succeeded(
        Command::new(repo_root().join("tests/grpc/walk"))
            .arg(target)
            .args(extra),
    );
    serde_json::from_str(&printed)
        .unwrap_or_else(|e| panic!("walk printed no JSON ({e}): {printed}"))
}

fn code(walked: &Value, call: &str) -> String {
    walked[call]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("{call} succeeded: {}", walked[call]))
        .to_string()
}

/// What every walk must show, wherever it went: the REST rules and store
/// behind every method, each bad input with its gRPC status.
pub fn check(walked: &Value, writes_need_a_key: bool) {
    assert_eq!(walked["get"]["ok"]["name"], "Alice Johnson", "{walked}");
    assert_eq!(code(walked, "missing"), "NOT_FOUND");
    assert_eq!(code(walked, "zero_id"), "INVALID_ARGUMENT");

    let created = &walked["create"]["ok"];
    assert_eq!(created["name"], "Grace Hopper", "{walked}");
    let email = created["email"].as_str().expect("email");
    assert_eq!(email, email.to_lowercase(), "stored lower-case");
    assert!(created["id"].as_u64().is_some_and(|id| id > 2), "{created}");
    assert_eq!(code(walked, "taken"), "ALREADY_EXISTS");
    assert_eq!(code(walked, "invalid"), "INVALID_ARGUMENT");
    let message = walked["invalid"]["message"].as_str().expect("message");
    assert!(
        message.contains("name:") && message.contains("email:"),
        "{message}"
    );
    if writes_need_a_key {
        assert_eq!(code(walked, "no_key"), "UNAUTHENTICATED");
    } else {
        assert!(walked["no_key"]["ok"].is_object(), "{walked}");
    }

    let listed: Vec<u64> = walked["list"]["ok"]
        .as_array()
        .expect("a stream")
        .iter()
        .map(|user| user["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(&listed[..2], &[1, 2], "{listed:?}");
    assert!(listed.windows(2).all(|w| w[0] < w[1]), "{listed:?}");
    assert!(listed.contains(&created["id"].as_u64().expect("id")));
    let two: Vec<&Value> = walked["list_two_after_one"]["ok"]
        .as_array()
        .expect("a stream")
        .iter()
        .collect();
    assert_eq!(two.len(), 2, "{two:?}");
    assert_eq!(two[0]["id"], 2);

    assert_eq!(walked["health"]["ok"], "SERVING");
    assert_eq!(walked["health_users"]["ok"], "SERVING");
    assert_eq!(code(walked, "health_unknown"), "NOT_FOUND");

    assert_eq!(code(walked, "not_protobuf"), "INTERNAL");
    assert_eq!(code(walked, "oversized"), "RESOURCE_EXHAUSTED");
    assert_eq!(code(walked, "unknown_method"), "UNIMPLEMENTED");
    // A method the gateway does not know to be a read is a write.
    assert_eq!(
        code(walked, "unknown_method_no_key"),
        if writes_need_a_key {
            "UNAUTHENTICATED"
        } else {
            "UNIMPLEMENTED"
        }
    );
    assert_eq!(code(walked, "unknown_service"), "UNIMPLEMENTED");
}

fn target(url: &str) -> String {
    format!("127.0.0.1:{}", port_of(url))
}

/// grpcio calls every method of user-service over h2c, directly and
/// through the gateway (which relays in process and asks for an API key
/// on writes); then over TLS, h2 by ALPN, to a gateway with a certificate
/// from a CA the test makes.
#[test]
fn grpcio_calls_every_method_directly_through_the_gateway_and_over_tls() {
    let mut compose = stack();
    compose["services"]["api-gateway"]["environment"]["API_KEYS"] = "k-123".into();
    let porto = Porto::start(&compose);
    check(&walk(&target(porto.url("user-service")), &[]), false);
    check(
        &walk(&target(porto.url("api-gateway")), &["--key", "k-123"]),
        true,
    );
    let metrics = porto.metrics();
    let h2c = |service: &str| {
        crate::harness::value(
            &metrics,
            &format!(
                "porto_connections_total{{service=\"{service}\",protocol=\"h2\",tls=\"false\"}}"
            ),
        )
    };
    assert!(h2c("user-service") >= 1.0 && h2c("api-gateway") >= 1.0);

    let certs = tempfile::tempdir().expect("tempdir");
    certificate(certs.path(), "gateway");
    let mut compose = stack();
    compose["services"]["api-gateway"]["x-porto"]["tls"] =
        serde_yaml_ng::from_str(&tls_setting(certs.path(), "gateway")).expect("tls");
    let secure = Porto::start(&compose);
    let gateway = secure.url("api-gateway");
    let ca = certs.path().join("ca.pem");
    let walked = walk(
        &format!("localhost:{}", port_of(gateway)),
        &["--ca", ca.to_str().expect("utf-8")],
    );
    check(&walked, false);
}

/// One HTTP/2 request: status, headers, body, trailers.
fn h2(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> (u16, http::HeaderMap, Bytes, http::HeaderMap) {
    let mut request = http::Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    h2_exchange(
        url,
        request
            .body(http_body_util::Full::new(body))
            .expect("request"),
    )
}

/// What grpcio will not send gets the right answer, and the service keeps
/// serving: a wrong content type is HTTP 415, a truncated frame or a
/// compressed message `INTERNAL`, a compression it does not take or a
/// GET `UNIMPLEMENTED`, two messages to a unary method `UNIMPLEMENTED`;
/// every one a full gRPC answer with the status in its trailers; and a
/// call porto itself refuses gets a gRPC status, not an HTTP one.
#[test]
fn malformed_grpc_requests_get_grpc_statuses_and_nothing_breaks() {
    let porto = Porto::start_default();
    let url = porto.url("user-service");
    let grpc = [("content-type", "application/grpc"), ("te", "trailers")];
    let get_user_1 = Bytes::from_static(&[0, 0, 0, 0, 2, 0x08, 0x01]);

    let (status, _, body, _) = h2(
        url,
        "POST",
        "/users.v1.Users/GetUser",
        &[("content-type", "application/json")],
        Bytes::from_static(b"{\"id\":1}"),
    );
    assert_eq!(status, 415);
    assert!(String::from_utf8_lossy(&body).contains("unsupported_media_type"));

    let mut two = get_user_1.to_vec();
    two.extend_from_slice(&get_user_1);
    let mut compressed = get_user_1.to_vec();
    compressed[0] = 1;
    // Method, headers, body, and the grpc-status each must end in.
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Bytes, &'a str);
    let cases: [Case; 5] = [
        (
            "POST",
            grpc.to_vec(),
            Bytes::from_static(&[0, 0, 0, 0, 9, 8]),
            "13",
        ),
        ("POST", grpc.to_vec(), Bytes::from(compressed), "13"),
        (
            "POST",
            [grpc.as_slice(), &[("grpc-encoding", "gzip")]].concat(),
            get_user_1.clone(),
            "12",
        ),
        ("GET", grpc.to_vec(), Bytes::new(), "12"),
        ("POST", grpc.to_vec(), Bytes::from(two), "12"),
    ];
    for (method, headers, body, expected) in cases {
        let (status, head, _, trailers) =
            h2(url, method, "/users.v1.Users/GetUser", &headers, body);
        assert_eq!(status, 200, "{method} {headers:?}");
        assert_eq!(head["content-type"], "application/grpc");
        assert_eq!(
            trailers
                .get("grpc-status")
                .map(|v| v.to_str().unwrap_or_default()),
            Some(expected),
            "{method} {headers:?}: {trailers:?}"
        );
        assert!(trailers.contains_key("grpc-message"), "{trailers:?}");
    }

    // porto's own refusal of a call (a body over max_body_bytes, before
    // any guest runs) is a gRPC status too, in a trailers-only answer.
    let (status, head, _, _) = h2(
        url,
        "POST",
        "/users.v1.Users/CreateUser",
        &grpc,
        Bytes::from(vec![0u8; 2 * 1024 * 1024]),
    );
    assert_eq!(status, 200);
    assert_eq!(head["content-type"], "application/grpc");
    assert_eq!(
        head.get("grpc-status").map(|v| v.as_bytes()),
        Some(&b"8"[..]),
        "{head:?}"
    );

    let (status, head, body, trailers) =
        h2(url, "POST", "/users.v1.Users/GetUser", &grpc, get_user_1);
    assert_eq!(status, 200, "{head:?}");
    assert_eq!(trailers["grpc-status"], "0", "{trailers:?}");
    assert!(head.contains_key("x-request-id"));
    assert_eq!(body[0], 0, "one uncompressed message");
    assert!(
        String::from_utf8_lossy(&body).contains("alice@example.com"),
        "{body:?}"
    );
}
