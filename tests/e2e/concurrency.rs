//! Concurrent requests never share an id, an email, or seed twice.

use std::collections::HashSet;
use std::sync::Arc;
use std::thread;

use serde_json::json;

use crate::harness::Porto;

#[test]
fn concurrent_first_requests_seed_exactly_once() {
    let porto = Arc::new(Porto::start_default());
    let handles: Vec<_> = (0..12)
        .map(|_| {
            let api = porto.gateway();
            thread::spawn(move || api.get("/api/users"))
        })
        .collect();
    for handle in handles {
        let page = handle.join().expect("thread");
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
    let porto = Arc::new(Porto::start_default());
    let handles: Vec<_> = (0..24)
        .map(|i| {
            let api = porto.gateway();
            thread::spawn(move || {
                api.post_json(
                    "/api/users",
                    &json!({"name": format!("C{i}"), "email": format!("c{i}@example.com")}),
                )
            })
        })
        .collect();
    let ids: Vec<u64> = handles
        .into_iter()
        .map(|h| {
            let r = h.join().expect("thread");
            assert_eq!(r.status, 201, "{}", r.body);
            r.json()["id"].as_u64().expect("id")
        })
        .collect();
    let unique: HashSet<u64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "duplicate ids: {ids:?}");
}

#[test]
fn concurrent_creates_with_one_email_admit_one() {
    let porto = Arc::new(Porto::start_default());
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let api = porto.gateway();
            thread::spawn(move || {
                api.post_json(
                    "/api/users",
                    &json!({"name": format!("Twin {i}"), "email": "twin@example.com"}),
                )
                .status
            })
        })
        .collect();
    let statuses: Vec<u16> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
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
    let porto = Arc::new(Porto::start_default());
    let body =
        json!({"user_id": 1, "items": [{"sku": "ONCE", "quantity": 1, "unit_price_cents": 100}]})
            .to_string();
    let handles: Vec<_> = (0..10)
        .map(|_| {
            let api = porto.gateway();
            let body = body.clone();
            thread::spawn(move || {
                api.send(
                    "POST",
                    "/api/orders",
                    &[
                        ("content-type", "application/json"),
                        ("idempotency-key", "same-key"),
                    ],
                    Some(&body),
                )
                .status
            })
        })
        .collect();
    let statuses: Vec<u16> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
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
