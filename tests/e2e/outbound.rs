//! A guest's calls to hosts on the network, by protocol: HTTP/1.1 to a
//! plain `allow_hosts` entry, HTTP/2 with prior knowledge to an `h2c://`
//! one, and h2 by ALPN over TLS to an `https://` URL, the certificate
//! checked against the CAs `SSL_CERT_FILE` names. The upstream is another
//! porto, whose metrics say which protocol reached it.

use crate::harness::{Porto, certificate, gateway_alone, port_of, stack, tls_setting, value};

/// Connections user-service's listener took, by protocol and TLS (none
/// before the first: the series starts then).
fn connections(upstream: &Porto, protocol: &str, tls: bool) -> f64 {
    let series = format!(
        "porto_connections_total{{service=\"user-service\",protocol=\"{protocol}\",tls=\"{tls}\"}}"
    );
    upstream.metrics().get(&series).copied().unwrap_or(0.0)
}

#[test]
fn an_h2c_entry_makes_plain_text_calls_speak_http2() {
    let upstream = Porto::start(&stack());
    let user_service = upstream.url("user-service").to_string();
    let host = user_service.trim_start_matches("http://").to_string();

    let plain = Porto::start(&gateway_alone(&user_service, &[host.as_str()]));
    let user = plain.gateway().get("/api/users/1");
    assert_eq!(user.status, 200, "{}", user.body);
    assert!(connections(&upstream, "http/1.1", false) >= 1.0);
    assert_eq!(connections(&upstream, "h2", false), 0.0);

    let entry = format!("h2c://{host}");
    let h2c = Porto::start(&gateway_alone(&user_service, &[entry.as_str()]));
    let user = h2c.gateway().get("/api/users/1");
    assert_eq!(user.status, 200, "{}", user.body);
    assert_eq!(user.json()["name"], "Alice Johnson");
    assert!(connections(&upstream, "h2", false) >= 1.0);
    // A write, with a body, and an error answer, over the same protocol.
    let created = h2c.gateway().post_json(
        "/api/users",
        &serde_json::json!({"name": "Ada", "email": "ada-h2c@example.com"}),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let missing = h2c.gateway().get("/api/users/987654");
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert_eq!(missing.error_code(), "user_not_found");
    // Counted under the entry that let the calls out.
    assert!(
        value(
            &h2c.metrics(),
            &format!(
                "porto_outbound_requests_total{{service=\"api-gateway\",target=\"{entry}\",outcome=\"network\"}}"
            )
        ) >= 3.0
    );
}

#[test]
fn https_calls_negotiate_h2_and_trust_the_cas_ssl_cert_file_names() {
    let certs = tempfile::tempdir().expect("tempdir");
    certificate(certs.path(), "users");
    let mut compose = stack();
    compose["services"]["user-service"]["x-porto"]["tls"] =
        serde_yaml_ng::from_str(&tls_setting(certs.path(), "users")).expect("tls");
    let upstream = Porto::start(&compose);
    let port = port_of(upstream.url("user-service")).to_string();
    let url = format!("https://localhost:{port}");
    let entry = format!("localhost:{port}");
    let ca = certs.path().join("ca.pem");

    let trusting = Porto::start_with_env(
        &gateway_alone(&url, &[entry.as_str()]),
        &[("SSL_CERT_FILE", ca.to_str().expect("utf-8"))],
    );
    let user = trusting.gateway().get("/api/users/1");
    assert_eq!(user.status, 200, "{}", user.body);
    assert_eq!(user.json()["name"], "Alice Johnson");
    assert!(connections(&upstream, "h2", true) >= 1.0);

    // Without the CA the certificate is unknown: the call fails, nothing
    // is sent.
    let before = connections(&upstream, "h2", true);
    let doubting = Porto::start(&gateway_alone(&url, &[entry.as_str()]));
    let refused = doubting.gateway().get("/api/users/1");
    assert_eq!(refused.status, 502, "{}", refused.body);
    assert_eq!(connections(&upstream, "h2", true), before);
    assert!(
        value(
            &upstream.metrics(),
            "porto_tls_handshake_failures_total{service=\"user-service\"}"
        ) >= 1.0
    );
}
