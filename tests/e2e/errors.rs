//! Bad input of every kind gets the right 4xx JSON error, never a 5xx.

use serde_json::json;

use crate::harness::{Client, Porto};

fn assert_json_error(reply: &crate::harness::Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.error_code(), code, "{}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert!(reply.header("x-request-id").is_some());
}

#[test]
fn method_not_allowed_lists_allow() {
    let porto = Porto::start_default();
    let api = porto.gateway();
    let r = api.send(
        "PUT",
        "/api/users/1",
        &[("content-type", "application/json")],
        Some("{}"),
    );
    assert_json_error(&r, 405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET, PATCH, DELETE"));
    let r = api.delete("/api/orders/1");
    assert_eq!(r.header("allow"), Some("GET, PATCH"));
    assert_eq!(api.delete("/api/users").header("allow"), Some("GET, POST"));
    assert_eq!(
        api.send("POST", "/api/users/1/orders", &[], None).status,
        405
    );
}

#[test]
fn wrong_content_type_is_415() {
    let porto = Porto::start_default();
    let api = porto.gateway();
    let body = json!({"name": "A", "email": "a@b.co"}).to_string();
    assert_json_error(
        &api.send("POST", "/api/users", &[], Some(&body)),
        415,
        "unsupported_media_type",
    );
    assert_json_error(
        &api.send(
            "POST",
            "/api/users",
            &[("content-type", "text/plain")],
            Some(&body),
        ),
        415,
        "unsupported_media_type",
    );
    assert_json_error(
        &api.send(
            "PATCH",
            "/api/orders/1",
            &[("content-type", "application/x-www-form-urlencoded")],
            Some("status=paid"),
        ),
        415,
        "unsupported_media_type",
    );
}

#[test]
fn oversized_bodies_are_413() {
    let porto = Porto::start_default();
    let api = porto.gateway();
    let huge = format!(
        "{{\"name\":\"{}\",\"email\":\"a@b.co\"}}",
        "x".repeat(70 * 1024)
    );
    assert_json_error(
        &api.send(
            "POST",
            "/api/users",
            &[("content-type", "application/json")],
            Some(&huge),
        ),
        413,
        "payload_too_large",
    );
    // Straight to the service too: the limit is the service's own.
    let users = Client::new(porto.url("user-service"));
    assert_json_error(
        &users.send(
            "POST",
            "/users",
            &[("content-type", "application/json")],
            Some(&huge),
        ),
        413,
        "payload_too_large",
    );
}

/// A misspelt field is named in the error, so the client sees its typo.
#[test]
fn unknown_fields_are_named_in_details() {
    let porto = Porto::start_default();
    let api = porto.gateway();
    for (method, path, body, field) in [
        (
            "POST",
            "/api/users",
            json!({"name": "A", "email": "a@b.co", "emial": "x"}),
            "emial",
        ),
        ("PATCH", "/api/users/1", json!({"nmae": "B"}), "nmae"),
        (
            "POST",
            "/api/orders",
            json!({"user_id": 1, "items": [{"sku": "A", "quantity": 1, "unit_price_cents": 1, "colour": "red"}]}),
            "colour",
        ),
    ] {
        let reply = api.send(
            method,
            path,
            &[("content-type", "application/json")],
            Some(&body.to_string()),
        );
        assert_json_error(&reply, 400, "validation_failed");
        let details = reply.json()["error"]["details"].to_string();
        assert!(details.contains(field), "{method} {path}: {details}");
    }
}

#[test]
fn malformed_and_hostile_json_is_400() {
    let porto = Porto::start_default();
    let api = porto.gateway();
    let nested = "[".repeat(10_000) + &"]".repeat(10_000);
    for body in [
        "{",
        "",
        "null",
        "[]",
        "\"text\"",
        "{\"name\":\"A\",\"email\":\"a@b.co\"} trailing",
        &nested,
        "{\"name\":\"\\ud800\",\"email\":\"a@b.co\"}",
    ] {
        let r = api.send(
            "POST",
            "/api/users",
            &[("content-type", "application/json")],
            Some(body),
        );
        assert_eq!(r.status, 400, "{body:.40}: {}", r.body);
    }
}

#[test]
fn odd_ids_and_routes() {
    let porto = Porto::start_default();
    let api = porto.gateway();
    for path in [
        "/api/users/abc",
        "/api/users/-1",
        "/api/users/0",
        "/api/users/1.5",
        "/api/users/99999999999999999999999",
        "/api/orders/%F0%9F%98%80",
    ] {
        assert_json_error(&api.get(path), 400, "invalid_id");
    }
    for path in [
        "/",
        "/api",
        "/api/usersx",
        "/users",
        "/api/users/1/orders/2",
        "/api/orders/1/x",
    ] {
        assert_json_error(&api.get(path), 404, "route_not_found");
    }
}

#[test]
fn request_ids_are_kept_or_made() {
    let porto = Porto::start_default();
    let api = porto.gateway();
    let r = api.send(
        "GET",
        "/api/users/1/orders",
        &[("x-request-id", "trace-abc.123")],
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-request-id"), Some("trace-abc.123"));
    let r = api.send(
        "GET",
        "/api/users/999",
        &[("x-request-id", "trace-404")],
        None,
    );
    assert_eq!(
        r.header("x-request-id"),
        Some("trace-404"),
        "kept on errors forwarded from upstream"
    );
    let made = api
        .get("/api/users")
        .header("x-request-id")
        .map(str::to_string)
        .expect("id");
    assert_eq!(made.len(), 32);
    let replaced = api.send(
        "GET",
        "/api/users",
        &[("x-request-id", "bad id with spaces")],
        None,
    );
    assert_ne!(replaced.header("x-request-id"), Some("bad id with spaces"));
}

/// openapi.yaml documents objects: an array of the fields in order is not
/// one, at the top or inside (serde would take either for a struct).
#[test]
fn arrays_are_not_objects_at_any_depth() {
    let porto = Porto::start_default();
    let api = porto.gateway();
    let json = [("content-type", "application/json")];
    for (path, body) in [
        ("/api/users", r#"["Arr User","arr.x@x.example"]"#),
        ("/api/orders", r#"[1,[["ARR-1",1,5]]]"#),
        ("/api/orders", r#"{"user_id":1,"items":[["ARR-1",1,5]]}"#),
        ("/api/users/1", r#"["Renamed"]"#),
    ] {
        let method = if path == "/api/users/1" {
            "PATCH"
        } else {
            "POST"
        };
        let reply = api.send(method, path, &json, Some(body));
        assert_json_error(&reply, 400, "validation_failed");
        assert!(!reply.body.contains("struct"), "{}", reply.body);
    }
    let users = api.get("/api/users").json();
    assert_eq!(users["items"].as_array().map(Vec::len), Some(2), "{users}");
    assert_eq!(api.get("/api/users/1").json()["name"], "Alice Johnson");
    let orders = api.get("/api/orders").json();
    assert_eq!(
        orders["items"].as_array().map(Vec::len),
        Some(0),
        "{orders}"
    );
}

/// RFC 9110: HEAD is supported wherever GET is, and answers without a body.
#[test]
fn head_is_served_wherever_get_is() {
    let porto = Porto::start_default();
    let api = porto.gateway();
    for path in [
        "/api/users/1",
        "/api/users?limit=1",
        "/api/orders",
        "/healthz",
    ] {
        let head = api.send("HEAD", path, &[], None);
        assert_eq!(head.status, 200, "HEAD {path}: {}", head.body);
        assert!(head.body.is_empty(), "HEAD {path}: {}", head.body);
        assert_eq!(
            head.header("content-type"),
            Some("application/json"),
            "{path}"
        );
    }
    assert_eq!(api.send("HEAD", "/api/users/999", &[], None).status, 404);
}
