//! Opt-in instance reuse (`x-porto.max_instance_reuse`): one instance
//! serves requests in turn, its globals persist, and nothing of porto's
//! per-request state does; any failure, the request cap, memory growth,
//! idleness and reloads retire it. The `counter` fixture answers how many
//! requests its instance has served.

use std::time::Duration;

use serde_json::json;

use crate::harness::{Client, Porto, fixtures_compose, stack, value};

fn counter(extra: &str) -> Porto {
    Porto::start(&fixtures_compose(&[("counter", "counter", extra)]))
}

/// What the counter fixture at `client` answers for `path`: how many
/// requests its instance has served.
pub fn count(client: &Client, path: &str) -> u64 {
    let reply = client.get(path);
    assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    reply.json()["count"].as_u64().expect("count")
}

fn counts(client: &Client, n: usize) -> Vec<u64> {
    (0..n).map(|_| count(client, "/")).collect()
}

fn retired(porto: &Porto, reason: &str) -> f64 {
    porto
        .metrics()
        .get(&format!(
            "porto_instances_retired_total{{service=\"counter\",reason=\"{reason}\"}}"
        ))
        .copied()
        .unwrap_or(0.0)
}

#[test]
fn without_reuse_every_request_gets_a_fresh_instance() {
    let porto = counter("");
    let client = Client::new(porto.url("counter"));
    assert_eq!(counts(&client, 4), [1, 1, 1, 1]);
}

/// Requests one after another share the instance, up to the cap, after
/// which a fresh one starts; a trap retires the instance at once.
#[test]
fn a_reused_instance_serves_requests_in_turn_up_to_the_cap() {
    let porto = counter(", max_instance_reuse: 4");
    let client = Client::new(porto.url("counter"));
    assert_eq!(counts(&client, 6), [1, 2, 3, 4, 1, 2]);
    assert_eq!(retired(&porto, "used"), 1.0);

    assert_eq!(client.get("/?trap").status, 500);
    assert_eq!(
        counts(&client, 2),
        [1, 2],
        "the trapped instance was dropped"
    );
    assert_eq!(retired(&porto, "failed"), 1.0);
    let metrics = porto.metrics();
    // 8 served, 3 of them by new instances (the first, after the cap, after the trap).
    assert_eq!(
        value(&metrics, "porto_instance_reuses_total{service=\"counter\"}"),
        6.0
    );
    assert_eq!(
        value(
            &metrics,
            "porto_requests_total{service=\"counter\",route=\"GET /\",status=\"200\"}"
        ),
        8.0,
        "every request is counted on its own"
    );
}

/// Memory a guest keeps in its globals stays with the instance; once it
/// has grown past `reuse_max_memory_mib` the instance is not kept.
#[test]
fn an_instance_grown_past_the_memory_threshold_is_not_kept() {
    let porto = counter(", max_instance_reuse: 100, reuse_max_memory_mib: 9");
    let client = Client::new(porto.url("counter"));
    assert_eq!(count(&client, "/?grow=5"), 1);
    assert_eq!(count(&client, "/?grow=5"), 2, "about 7 MiB: kept");
    assert_eq!(count(&client, "/"), 1, "about 12 MiB: dropped");
    assert_eq!(retired(&porto, "memory"), 1.0);
}

/// What a reused instance prints is logged under the request it is
/// serving, not the one it was made for.
#[test]
fn output_is_attributed_to_each_request() {
    let porto = Porto::start_logging(
        &fixtures_compose(&[("counter", "counter", ", max_instance_reuse: 100")]),
        &[],
    );
    let client = Client::new(porto.url("counter"));
    for id in ["reuse-a", "reuse-b", "reuse-c"] {
        let reply = client.send("GET", "/?print", &[("x-request-id", id)], None);
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("x-request-id"), Some(id));
    }
    let log = porto.log();
    for (n, id) in [(1, "reuse-a"), (2, "reuse-b"), (3, "reuse-c")] {
        let line = log
            .lines()
            .find(|l| l.contains(&format!("counter request {n}")))
            .unwrap_or_else(|| panic!("no output of request {n} in\n{log}"));
        assert!(line.contains(id), "request {n} logged as another: {line}");
    }
}

/// The outbound hooks are the request's own too: a reused gateway's
/// refused calls are logged under each request's id in turn.
#[test]
fn outbound_calls_are_attributed_to_each_request() {
    let mut compose = crate::harness::gateway_alone("http://127.0.0.1:9", &[]);
    compose["services"]["api-gateway"]["environment"]["PORTO_MAX_INSTANCE_REUSE"] = "100".into();
    let porto = Porto::start_logging(&compose, &[]);
    let api = porto.gateway();
    for id in ["outbound-a", "outbound-b"] {
        let reply = api.send("GET", "/api/users/1", &[("x-request-id", id)], None);
        assert_eq!(reply.status, 502, "{}", reply.body);
    }
    assert_eq!(
        value(
            &porto.metrics(),
            "porto_instance_reuses_total{service=\"api-gateway\"}"
        ),
        1.0,
        "the second request ran on the first one's instance"
    );
    let log = porto.log();
    let denials: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("outbound request denied"))
        .collect();
    assert_eq!(denials.len(), 2, "{log}");
    assert!(denials[0].contains("outbound-a"), "{}", denials[0]);
    assert!(denials[1].contains("outbound-b"), "{}", denials[1]);
}

/// The three services keep nothing between requests, so they run the
/// same with reuse on: a walk through users, orders and their
/// idempotency keys, every answer naming its own request.
#[test]
fn the_stack_serves_the_same_api_with_reuse_on() {
    let mut compose = stack();
    for service in ["api-gateway", "user-service", "order-service"] {
        compose["services"][service]["environment"]["PORTO_MAX_INSTANCE_REUSE"] = "64".into();
    }
    let porto = Porto::start(&compose);
    let api = porto.gateway();
    for round in 0..5 {
        let email = format!("reuse{round}@example.com");
        let created = api.post_json("/api/users", &json!({"name": "Re Use", "email": email}));
        assert_eq!(created.status, 201, "{}", created.body);
        let id = created.json()["id"].as_u64().expect("id");
        let again = api.post_json("/api/users", &json!({"name": "Re Use", "email": email}));
        assert_eq!(again.status, 409, "{}", again.body);
        let key = format!("reuse-order-{round}");
        let order =
            json!({"user_id": id, "items": [{"sku": "A-1", "quantity": 1, "unit_price_cents": 5}]});
        let headers = [
            ("content-type", "application/json"),
            ("idempotency-key", key.as_str()),
        ];
        let first = api.send("POST", "/api/orders", &headers, Some(&order.to_string()));
        assert_eq!(first.status, 201, "{}", first.body);
        let replay = api.send("POST", "/api/orders", &headers, Some(&order.to_string()));
        assert_eq!(replay.header("idempotent-replayed"), Some("true"));
        assert_eq!(replay.json(), first.json());
        let request_id = format!("walk-{round}");
        let listed = api.send(
            "GET",
            &format!("/api/users/{id}/orders"),
            &[("x-request-id", &request_id)],
            None,
        );
        assert_eq!(listed.status, 200, "{}", listed.body);
        assert_eq!(listed.header("x-request-id"), Some(request_id.as_str()));
        assert_eq!(listed.json()["orders"].as_array().map(Vec::len), Some(1));
    }
    let metrics = porto.metrics();
    for service in ["api-gateway", "user-service", "order-service"] {
        let reused = value(
            &metrics,
            &format!("porto_instance_reuses_total{{service=\"{service}\"}}"),
        );
        assert!(reused > 0.0, "{service} reused no instance");
    }
}

/// Bounded by wall-clock time or machine load, or compiling: run one at a
/// time with nothing beside them (tests/e2e/main.rs).
mod alone {
    use super::*;

    /// Each request gets the whole timeout again, waiting or computing: four
    /// requests of 60 % of it in a row on one instance all answer, where one
    /// deadline carried over would cut the second off. A request that runs out
    /// of time is 504 and its instance is not kept.
    #[test]
    fn deadlines_are_per_request() {
        let porto = counter(", max_instance_reuse: 100, request_timeout_ms: 1000");
        let client = Client::new(porto.url("counter"));
        let served: Vec<u64> = (0..4).map(|_| count(&client, "/?busy=600")).collect();
        assert_eq!(served, [1, 2, 3, 4]);
        let served: Vec<u64> = (0..4).map(|_| count(&client, "/?ms=600")).collect();
        assert_eq!(served, [5, 6, 7, 8]);
        assert_eq!(client.get("/?spin").status, 504);
        assert_eq!(
            count(&client, "/"),
            1,
            "the interrupted instance was dropped"
        );
        assert_eq!(retired(&porto, "failed"), 1.0);
    }

    #[test]
    fn an_idle_instance_is_dropped_after_the_idle_timeout() {
        let porto = counter(", max_instance_reuse: 100, reuse_idle_timeout_ms: 300");
        let client = Client::new(porto.url("counter"));
        assert_eq!(counts(&client, 2), [1, 2]);
        std::thread::sleep(Duration::from_millis(1200));
        assert_eq!(retired(&porto, "idle"), 1.0, "dropped while nothing came");
        assert_eq!(count(&client, "/"), 1);
    }
}
