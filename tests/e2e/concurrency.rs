//! Concurrent requests never share an id, an email, or seed twice.

use std::collections::HashSet;
use std::thread;

use serde_json::json;

use crate::harness::{Client, Porto, Reply};

/// Runs `request(api, i)` for i in 0..n on n threads at once.
fn concurrently(
    porto: &Porto,
    n: usize,
    request: impl Fn(&Client, usize) -> Reply + Sync,
) -> Vec<Reply> {
    let api = &porto.gateway();
    let request = &request;
    thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|i| scope.spawn(move || request(api, i)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    })
}

#[test]
fn concurrent_first_requests_seed_exactly_once() {
    let porto = Porto::start_default();
    for page in concurrently(&porto, 12, |api, _| api.get("/api/users")) {
        assert_eq!(page.status, 200, "{}", page.body);
        let names: Vec<String> = page.json()["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|u| u["name"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(names, vec!["Alice Johnson", "Bob Smith"]);
    }
}

#[test]
fn concurrent_creates_get_distinct_ids() {
    let porto = Porto::start_default();
    let replies = concurrently(&porto, 24, |api, i| {
        api.post_json(
            "/api/users",
            &json!({"name": format!("C{i}"), "email": format!("c{i}@example.com")}),
        )
    });
    let ids: Vec<u64> = replies
        .iter()
        .map(|r| {
            assert_eq!(r.status, 201, "{}", r.body);
            r.json()["id"].as_u64().expect("id")
        })
        .collect();
    let unique: HashSet<u64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "duplicate ids: {ids:?}");
}

#[test]
fn concurrent_creates_with_one_email_admit_one() {
    let porto = Porto::start_default();
    let replies = concurrently(&porto, 16, |api, i| {
        api.post_json(
            "/api/users",
            &json!({"name": format!("Twin {i}"), "email": "twin@example.com"}),
        )
    });
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 409).count(),
        15,
        "{statuses:?}"
    );
}

#[test]
fn concurrent_idempotent_posts_create_one_order() {
    let porto = Porto::start_default();
    let body =
        json!({"user_id": 1, "items": [{"sku": "ONCE", "quantity": 1, "unit_price_cents": 100}]})
            .to_string();
    let replies = concurrently(&porto, 10, |api, _| {
        api.send(
            "POST",
            "/api/orders",
            &[
                ("content-type", "application/json"),
                ("idempotency-key", "same-key"),
            ],
            Some(&body),
        )
    });
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );
    assert!(statuses.contains(&201));
    let orders = porto.gateway().get("/api/orders").json();
    assert_eq!(
        orders["items"].as_array().map(Vec::len),
        Some(1),
        "exactly one order: {orders}"
    );
}
