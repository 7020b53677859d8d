//! order-service as README "Orders" and openapi.yaml describe it, through the gateway.

use serde_json::{Value, json};

use crate::harness::{Client, Porto, raw_exchange};

fn order_for(user_id: u64) -> Value {
    json!({"user_id": user_id, "items": [
        {"sku": "BOOK-1", "quantity": 2, "unit_price_cents": 1250},
        {"sku": "pen_blue", "quantity": 3, "unit_price_cents": 99}
    ]})
}

fn create(api: &Client, body: &Value) -> Value {
    let r = api.post_json("/api/orders", body);
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()
}

#[test]
fn orders_for_existing_and_unknown_users() {
    let porto = Porto::start_default();
    let api = porto.gateway();
    let created = api.post_json("/api/orders", &order_for(1));
    assert_eq!(created.status, 201, "{}", created.body);
    let order = created.json();
    assert_eq!(order["status"], "pending");
    assert_eq!(order["total_cents"], 2 * 1250 + 3 * 99);
    assert_eq!(order["user_id"], 1);
    assert_eq!(
        created.header("location"),
        Some(format!("/orders/{}", order["id"]).as_str())
    );
    assert_eq!(
        api.get(&format!("/api/orders/{}", order["id"])).json(),
        order
    );

    let unknown = api.post_json("/api/orders", &order_for(999));
    assert_eq!(
        (unknown.status, unknown.error_code().as_str()),
        (422, "unknown_user")
    );
    let missing = api.get("/api/orders/999");
    assert_eq!(
        (missing.status, missing.error_code().as_str()),
        (404, "order_not_found")
    );
}

#[test]
fn order_validation() {
    let porto = Porto::start_default();
    let api = porto.gateway();
    let cases = [
        json!({"user_id": 1, "items": []}),
        json!({"user_id": 1, "items": [{"sku": "bad sku", "quantity": 1, "unit_price_cents": 1}]}),
        json!({"user_id": 1, "items": [{"sku": "A", "quantity": 0, "unit_price_cents": 1}]}),
        json!({"user_id": 1, "items": [{"sku": "A", "quantity": 10001, "unit_price_cents": 1}]}),
        json!({"user_id": 1, "items": [{"sku": "A", "quantity": 1, "unit_price_cents": 1_000_000_001u64}]}),
        json!({"user_id": 1, "items": [{"sku": "A", "quantity": 1, "unit_price_cents": -1}]}),
        json!({"user_id": 1, "items": [{"sku": "A", "quantity": 1e30, "unit_price_cents": 1}]}),
        json!({"user_id": "1", "items": [{"sku": "A", "quantity": 1, "unit_price_cents": 1}]}),
        json!({"user_id": 0, "items": [{"sku": "A", "quantity": 1, "unit_price_cents": 1}]}),
    ];
    for body in cases {
        let r = api.post_json("/api/orders", &body);
        assert_eq!(r.status, 400, "{body}: {}", r.body);
    }
    let many: Vec<Value> = (0..101)
        .map(|i| json!({"sku": format!("S{i}"), "quantity": 1, "unit_price_cents": 1}))
        .collect();
    assert_eq!(
        api.post_json("/api/orders", &json!({"user_id": 1, "items": many}))
            .status,
        400
    );
}

#[test]
fn status_transitions() {
    let porto = Porto::start_default();
    let api = porto.gateway();
    let id = create(&api, &order_for(2))["id"].as_u64().expect("id");
    let path = format!("/api/orders/{id}");
    let set = |status: &str| api.patch_json(&path, &json!({"status": status}));

    let r = set("shipped");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (409, "invalid_transition")
    );
    assert_eq!(set("paid").json()["status"], "paid");
    assert_eq!(set("pending").status, 409);
    assert_eq!(set("shipped").json()["status"], "shipped");
    assert_eq!(set("cancelled").status, 409);
    let delivered = set("delivered");
    assert_eq!(delivered.json()["status"], "delivered");
    let order = delivered.json();
    assert!(order["updated_at"].as_str() >= order["created_at"].as_str());
    assert_eq!(set("refunded").status, 400);

    let other = create(&api, &order_for(2))["id"].as_u64().expect("id");
    let cancel = api.patch_json(
        &format!("/api/orders/{other}"),
        &json!({"status": "cancelled"}),
    );
    assert_eq!(cancel.json()["status"], "cancelled");
    assert_eq!(
        api.patch_json(&format!("/api/orders/{other}"), &json!({"status": "paid"}))
            .status,
        409
    );
}

#[test]
fn listing_filters_by_user_and_status() {
    let porto = Porto::start_default();
    let api = porto.gateway();
    let a = create(&api, &order_for(1))["id"].as_u64().expect("id");
    let b = create(&api, &order_for(2))["id"].as_u64().expect("id");
    let c = create(&api, &order_for(1))["id"].as_u64().expect("id");
    api.patch_json(&format!("/api/orders/{c}"), &json!({"status": "paid"}));

    let ids = |path: &str| -> Vec<u64> {
        let r = api.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        r.json()["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|o| o["id"].as_u64().expect("id"))
            .collect()
    };
    assert_eq!(ids("/api/orders"), vec![a, b, c]);
    assert_eq!(ids("/api/orders?user_id=1"), vec![a, c]);
    assert_eq!(ids("/api/orders?user_id=1&status=paid"), vec![c]);
    assert_eq!(ids("/api/orders?status=pending"), vec![a, b]);
    assert_eq!(ids("/api/orders?user_id=2&limit=1"), vec![b]);
    assert_eq!(api.get("/api/orders?status=lost").status, 400);
    assert_eq!(api.get("/api/orders?user_id=abc").status, 400);

    let first = api.get("/api/orders?limit=2").json();
    assert_eq!(first["items"].as_array().map(Vec::len), Some(2));
    let cursor = first["next_cursor"].as_str().expect("cursor");
    assert_eq!(
        ids(&format!("/api/orders?limit=2&cursor={cursor}")),
        vec![c]
    );
}

#[test]
fn idempotency_key_replays_the_first_response() {
    let porto = Porto::start_default();
    let api = porto.gateway();
    let body = order_for(1).to_string();
    let post = |key: &str, body: &str| {
        api.send(
            "POST",
            "/api/orders",
            &[
                ("content-type", "application/json"),
                ("idempotency-key", key),
            ],
            Some(body),
        )
    };
    let first = post("order-42", &body);
    assert_eq!(first.status, 201, "{}", first.body);
    let again = post("order-42", &body);
    assert_eq!(again.status, 201);
    assert_eq!(again.json(), first.json());
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(
        api.get("/api/orders").json()["items"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "nothing new was created"
    );

    let different = post("order-42", &order_for(2).to_string());
    assert_eq!(
        (different.status, different.error_code().as_str()),
        (422, "idempotency_key_reused")
    );
    let bad_key = post(&"k".repeat(256), &body);
    assert_eq!(bad_key.status, 400);
    // A key whose request failed can be used again.
    assert_eq!(post("retry-me", &order_for(999).to_string()).status, 422);
    assert_eq!(post("retry-me", &order_for(999).to_string()).status, 422);
}

#[test]
fn an_idempotency_key_that_is_not_ascii_is_refused_not_ignored() {
    let porto = Porto::start_default();
    let body = order_for(1).to_string();
    let mut request = format!(
        "POST /api/orders HTTP/1.1\r\nhost: porto\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\nidempotency-key: latin",
        body.len()
    )
    .into_bytes();
    request.push(0xe9);
    request.extend_from_slice(format!("key\r\n\r\n{body}").as_bytes());
    for _ in 0..2 {
        let answer = raw_exchange(porto.url("api-gateway"), &request);
        assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
        assert!(answer.contains("invalid_idempotency_key"), "{answer}");
    }
    assert_eq!(
        porto.gateway().get("/api/orders").json()["items"]
            .as_array()
            .map(Vec::len),
        Some(0),
        "no order was created"
    );
}

/// A store written before a user's order index was split in shards (one
/// `user-orders:{user}` record; services/order-service/src/store.rs) still
/// lists every order of that user, in id order, across pages, together
/// with the orders indexed in shards since.
#[test]
fn orders_indexed_before_the_split_are_still_listed() {
    let mut porto = Porto::start_default();
    let api = porto.gateway();
    let user = api.post_json(
        "/api/users",
        &json!({"name": "Early Adopter", "email": "early@x.example"}),
    );
    assert_eq!(user.status, 201, "{}", user.body);
    let user = user.json()["id"].as_u64().expect("id");
    let ids: Vec<u64> = (0..3)
        .map(|_| create(&api, &order_for(user))["id"].as_u64().expect("id"))
        .collect();
    assert!(porto.stop().success());

    // The first two as the order-service before the split left them.
    let shards = 16;
    tokio::runtime::Runtime::new()
        .expect("tokio")
        .block_on(async {
            let kv = porto_kv::connect(
                &porto_kv::KvSpec::Embedded,
                &porto.data,
                std::num::NonZeroUsize::MIN,
            )
            .await
            .expect("open the stopped stack's store");
            for id in &ids[..2] {
                let shard = format!("user-orders:{user}:{}", id % shards);
                assert!(
                    kv.exists("orders", &shard).await.expect("exists"),
                    "{shard}"
                );
                kv.delete("orders", &shard).await.expect("delete");
            }
            let legacy = serde_json::to_vec(&ids[..2]).expect("json");
            kv.set("orders", &format!("user-orders:{user}"), legacy)
                .await
                .expect("set");
        });

    let again = Porto::restart_on(&porto.data);
    let api = again.gateway();
    let first = api
        .get(&format!("/api/orders?user_id={user}&limit=2"))
        .json();
    let listed = |page: &Value| -> Vec<u64> {
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|o| o["id"].as_u64().expect("id"))
            .collect()
    };
    assert_eq!(listed(&first), ids[..2], "{first}");
    let cursor = first["next_cursor"].as_str().expect("a second page");
    let second = api
        .get(&format!(
            "/api/orders?user_id={user}&limit=2&cursor={cursor}"
        ))
        .json();
    assert_eq!(listed(&second), ids[2..], "{second}");
    assert!(second["next_cursor"].is_null(), "{second}");
    let composed = api.get(&format!("/api/users/{user}/orders")).json();
    assert_eq!(
        composed["orders"].as_array().map(Vec::len),
        Some(3),
        "{composed}"
    );
    // A create after the restart joins them.
    let fourth = create(&api, &order_for(user))["id"].as_u64().expect("id");
    let all = api.get(&format!("/api/orders?user_id={user}")).json();
    assert_eq!(listed(&all), [ids.as_slice(), &[fourth]].concat(), "{all}");
}

/// Bounded by wall-clock time or machine load, or compiling: run one at a
/// time with nothing beside them (tests/e2e/main.rs).
mod alone {
    use super::*;

    /// While the first request with a key is still running (held here by a
    /// user-service that takes 3 s to answer), a repeat of it is 409
    /// `idempotency_in_progress` with `Retry-After`, not a second order; the
    /// same key with another body is still `idempotency_key_reused`.
    #[test]
    fn a_repeat_while_the_first_is_running_is_409_in_progress() {
        let mut compose = crate::harness::stack();
        let users = &mut compose["services"]["user-service"];
        users["x-porto"]["component"] = crate::harness::fixtures()["slow"]
            .display()
            .to_string()
            .into();
        users["environment"] = serde_yaml_ng::from_str("{DELAY_MS: '3000'}").expect("yaml");
        let porto = Porto::start(&compose);
        let orders = Client::new(porto.url("order-service"));
        let post = |body: &Value| {
            orders.send(
                "POST",
                "/orders",
                &[
                    ("content-type", "application/json"),
                    ("idempotency-key", "held"),
                ],
                Some(&body.to_string()),
            )
        };
        std::thread::scope(|scope| {
            let first = scope.spawn(|| post(&order_for(1)));
            // The key is claimed before the user is looked up, so once the
            // user-service has the lookup the first request holds the key.
            porto.wait_for_in_flight("user-service", 1);
            let repeat = post(&order_for(1));
            assert_eq!(
                (repeat.status, repeat.error_code().as_str()),
                (409, "idempotency_in_progress"),
                "{}",
                repeat.body
            );
            assert_eq!(repeat.header("retry-after"), Some("1"));
            let other = post(&order_for(2));
            assert_eq!(
                (other.status, other.error_code().as_str()),
                (422, "idempotency_key_reused"),
                "{}",
                other.body
            );
            // The stand-in answers any lookup (an empty user), so the first
            // is made.
            let first = first.join().expect("thread");
            assert_eq!(first.status, 201, "{}", first.body);
        });
    }
}
