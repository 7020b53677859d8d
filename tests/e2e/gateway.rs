//! The gateway's own behaviour: composition, health, auth, missing upstreams.

use serde_json::json;

use crate::harness::{Porto, stack};

#[test]
fn user_with_orders_is_composed() {
    let porto = Porto::start_default();
    let api = porto.gateway();
    for _ in 0..3 {
        let r = api.post_json(
            "/api/orders",
            &json!({"user_id": 2, "items": [{"sku": "X", "quantity": 1, "unit_price_cents": 10}]}),
        );
        assert_eq!(r.status, 201);
    }
    api.post_json(
        "/api/orders",
        &json!({"user_id": 1, "items": [{"sku": "Y", "quantity": 1, "unit_price_cents": 10}]}),
    );
    let composed = api.get("/api/users/2/orders");
    assert_eq!(composed.status, 200, "{}", composed.body);
    let body = composed.json();
    assert_eq!(body["user"]["name"], "Bob Smith");
    let orders = body["orders"].as_array().expect("orders");
    assert_eq!(orders.len(), 3);
    assert!(orders.iter().all(|o| o["user_id"] == 2));

    let nobody = api.get("/api/users/77/orders");
    assert_eq!(
        (nobody.status, nobody.error_code().as_str()),
        (404, "user_not_found")
    );
    assert_eq!(api.get("/api/users/x/orders").status, 400);
}

#[test]
fn health_reports_each_upstream() {
    let porto = Porto::start_default();
    let health = porto.gateway().get("/healthz");
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["upstreams"]["user-service"], "ok");
    assert_eq!(health.json()["upstreams"]["order-service"], "ok");
}

#[test]
fn missing_upstreams_are_json_errors_not_hangs() {
    // The gateway alone: its upstreams are not part of the application.
    let mut compose = stack();
    let services = compose["services"].as_mapping_mut().expect("services");
    services.remove("user-service");
    services.remove("order-service");
    compose["services"]["api-gateway"]["depends_on"] = serde_yaml_ng::Value::Sequence(vec![]);
    let porto = Porto::start(&compose);
    let api = porto.gateway();

    let r = api.get("/api/users/1");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (502, "upstream_unavailable"),
        "{}",
        r.body
    );
    assert_eq!(r.json()["error"]["details"]["upstream"], "user-service");
    let r = api.post_json("/api/orders", &json!({"user_id": 1, "items": []}));
    assert_eq!(r.status, 502);
    let health = api.get("/healthz");
    assert_eq!(health.status, 503);
    assert_eq!(
        health.json()["error"]["details"]["upstreams"]["user-service"],
        "unavailable"
    );
}

/// The gateway's upstream errors, from a real upstream that misbehaves:
/// `slow` stands in for the user-service, answering after 300 ms with a
/// body that is no user.
#[test]
fn a_slow_or_wrong_upstream_is_504_or_502() {
    let with_timeout = |ms: &str| {
        let mut compose = stack();
        compose["services"]["user-service"]["x-porto"]["component"] =
            crate::harness::fixtures()["slow"]
                .display()
                .to_string()
                .into();
        compose["services"]["api-gateway"]["environment"]["UPSTREAM_TIMEOUT_MS"] = ms.into();
        Porto::start(&compose)
    };
    for (timeout_ms, path, expected) in [
        ("100", "/api/users/1", (504, "upstream_timeout")),
        ("5000", "/api/users/1/orders", (502, "upstream_error")),
    ] {
        let reply = with_timeout(timeout_ms).gateway().get(path);
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            expected,
            "{path}: {}",
            reply.body
        );
        assert_eq!(reply.json()["error"]["details"]["upstream"], "user-service");
    }
}

/// Calls to hosts on the network, end to end: the gateway alone, its
/// user-service on another porto. Without `allow_hosts` the call is
/// refused and counted `denied`; allowed, it goes out (`network`); an
/// allowed host that refuses the connection is a `network_error`.
#[test]
fn network_calls_go_out_only_to_allowed_hosts() {
    let upstream = Porto::start(&stack());
    let user_service = upstream.url("user-service").to_string();
    let users_host = user_service.trim_start_matches("http://").to_string();
    let gateway_alone = |allow_hosts: &[&str]| {
        Porto::start(&crate::harness::gateway_alone(&user_service, allow_hosts))
    };
    // The gateway's outbound counts by outcome (the target label is the
    // allow_hosts entry that let the call out).
    let outbound = |porto: &Porto| {
        let mut by_outcome = std::collections::BTreeMap::new();
        for (series, count) in porto.metrics() {
            if let Some(labels) =
                series.strip_prefix("porto_outbound_requests_total{service=\"api-gateway\",")
                && let Some((_, outcome)) = labels.split_once("outcome=\"")
            {
                *by_outcome
                    .entry(outcome.trim_end_matches("\"}").to_string())
                    .or_insert(0.0) += count;
            }
        }
        by_outcome
    };

    let closed = gateway_alone(&[]);
    let refused = closed.gateway().get("/api/users/1");
    assert_eq!(refused.status, 502, "{}", refused.body);
    let counted = outbound(&closed);
    assert_eq!(counted.get("denied"), Some(&1.0), "{counted:?}");

    let open = gateway_alone(&[users_host.as_str(), "127.0.0.1:9"]);
    let user = open.gateway().get("/api/users/1");
    assert_eq!(user.status, 200, "{}", user.body);
    assert_eq!(user.json()["name"], "Alice Johnson");
    let unreachable = open.gateway().get("/api/orders/1");
    assert_eq!(unreachable.status, 502, "{}", unreachable.body);
    let counted = outbound(&open);
    for outcome in ["network", "network_error"] {
        assert!(
            counted.get(outcome).is_some_and(|n| *n > 0.0),
            "no {outcome} in {counted:?}"
        );
    }
    assert!(
        counted.get("denied").is_none_or(|n| *n == 0.0),
        "{counted:?}"
    );
    // Labelled by the entries that let them out, not by the hosts asked for.
    let targets: std::collections::BTreeSet<String> = open
        .metrics()
        .into_keys()
        .filter_map(|series| {
            let labels = series.strip_prefix("porto_outbound_requests_total{")?;
            let (_, rest) = labels.split_once("target=\"")?;
            Some(rest.split_once('"')?.0.to_string())
        })
        .collect();
    let entries: std::collections::BTreeSet<String> =
        [users_host.clone(), "127.0.0.1:9".to_string()].into();
    assert_eq!(targets, entries);
}

/// `allow_services` lets a service call another it does not depend on.
#[test]
fn allow_services_admits_a_call_outside_depends_on() {
    let mut compose = stack();
    let orders = &mut compose["services"]["order-service"];
    orders["depends_on"] = serde_yaml_ng::Value::Sequence(vec![]);
    orders["x-porto"]["allow_services"] =
        serde_yaml_ng::Value::Sequence(vec!["user-service".into()]);
    let porto = Porto::start(&compose);
    let r = porto.gateway().post_json(
        "/api/orders",
        &json!({"user_id": 1, "items": [{"sku": "A", "quantity": 1, "unit_price_cents": 1}]}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
}

#[test]
fn calls_outside_depends_on_are_refused() {
    // order-service may not call user-service without depending on it.
    let mut compose = stack();
    compose["services"]["order-service"]["depends_on"] = serde_yaml_ng::Value::Sequence(vec![]);
    let porto = Porto::start(&compose);
    let r = porto.gateway().post_json(
        "/api/orders",
        &json!({"user_id": 1, "items": [{"sku": "A", "quantity": 1, "unit_price_cents": 1}]}),
    );
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (503, "dependency_unavailable"),
        "{}",
        r.body
    );
    // Refused by porto, not failed on the way: counted as denied.
    assert_eq!(
        crate::harness::value(
            &porto.metrics(),
            "porto_outbound_requests_total{service=\"order-service\",target=\"user-service\",outcome=\"denied\"}"
        ),
        1.0
    );
}

#[test]
fn api_keys_guard_writes() {
    let mut compose = stack();
    compose["services"]["api-gateway"]["environment"]["API_KEYS"] = "alpha, beta".into();
    let porto = Porto::start(&compose);
    let api = porto.gateway();
    let body = json!({"name": "Kay", "email": "kay@example.com"}).to_string();
    let json_type = ("content-type", "application/json");

    assert_eq!(api.get("/api/users").status, 200, "reads stay open");
    let denied = api.send("POST", "/api/users", &[json_type], Some(&body));
    assert_eq!(
        (denied.status, denied.error_code().as_str()),
        (401, "unauthorized")
    );
    assert_eq!(denied.header("www-authenticate"), Some("Bearer"));
    let wrong = api.send(
        "POST",
        "/api/users",
        &[json_type, ("authorization", "Bearer gamma")],
        Some(&body),
    );
    assert_eq!(wrong.status, 401);
    let ok = api.send(
        "POST",
        "/api/users",
        &[json_type, ("authorization", "Bearer beta")],
        Some(&body),
    );
    assert_eq!(ok.status, 201, "{}", ok.body);
    let path = format!("/api/users/{}", ok.json()["id"]);

    // Every other write is guarded too, and a refused one changes nothing.
    let rename = json!({"name": "Renamed"}).to_string();
    let refused = [
        api.send("PATCH", &path, &[json_type], Some(&rename)),
        api.send("DELETE", &path, &[("authorization", "Bearer gamma")], None),
        api.send(
            "POST",
            "/api/orders",
            &[json_type],
            Some(&json!({"user_id": 1, "items": [{"sku": "KEY-1", "quantity": 1, "unit_price_cents": 1}]}).to_string()),
        ),
        api.send("PATCH", "/api/orders/1", &[json_type], Some(&json!({"status": "paid"}).to_string())),
    ];
    for reply in refused {
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (401, "unauthorized"),
            "{}",
            reply.body
        );
    }
    assert_eq!(
        api.get(&path).json()["name"],
        "Kay",
        "a refused PATCH changed the user"
    );
    assert_eq!(
        api.get("/api/orders?limit=1").json()["items"],
        json!([]),
        "a refused POST made an order"
    );
    let auth = ("authorization", "Bearer alpha");
    assert_eq!(
        api.send("PATCH", &path, &[json_type, auth], Some(&rename))
            .status,
        200
    );
    assert_eq!(api.send("DELETE", &path, &[auth], None).status, 204);
    assert_eq!(api.get(&path).status, 404);
}

/// Beside the real stack, a service allowed only `users` asks for the
/// order-service's bucket: porto refuses that open with `access-denied`
/// (logged by name), and still lets it use its own.
#[test]
fn a_service_cannot_open_another_services_bucket() {
    let mut compose = stack();
    compose["services"]["probe"] = crate::harness::fixture_service("buckets", ", buckets: [users]");
    let porto = Porto::start_logging(&compose, &[]);
    let probe = crate::harness::Client::new(porto.url("probe"));
    let own = probe.get("/?bucket=users");
    assert_eq!(own.status, 200, "{}", own.body);

    let other = probe.get("/?bucket=orders");
    assert_eq!(
        (other.status, other.error_code().as_str()),
        (500, "internal_error"),
        "{}",
        other.body
    );
    // Denied as such (not any failure): porto says so, and the guest was
    // told `access-denied`, which service-kit names in its own output.
    let log = porto.log();
    assert!(
        log.lines().any(|l| l.contains("bucket access denied")
            && l.contains("service=probe")
            && l.contains("bucket=orders")),
        "{log}"
    );
    assert!(
        log.contains("bucket orders: access denied by the host"),
        "{log}"
    );
    // The orders bucket is as the order-service left it: it still works.
    assert_eq!(porto.gateway().get("/api/orders?limit=1").status, 200);
}

#[test]
fn buckets_outside_the_allow_list_are_denied() {
    // user-service configured with another service's bucket only.
    let mut compose = stack();
    compose["services"]["user-service"]["environment"]["PORTO_BUCKETS"] = "orders".into();
    let porto = Porto::start_logging(&compose, &[]);
    let users = crate::harness::Client::new(porto.url("user-service"));
    let r = users.get("/users/1");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (500, "internal_error"),
        "{}",
        r.body
    );
    assert_eq!(users.get("/healthz").status, 500);
    let log = porto.log();
    assert!(
        log.contains("bucket users: access denied by the host"),
        "{log}"
    );
}
