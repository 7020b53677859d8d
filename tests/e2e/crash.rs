//! Crash safety: `kill -9` at random moments under concurrent writes loses
//! no acknowledged write and never hands out an id twice.

use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Client, Porto};

const ROUNDS: u64 = 4;
const WRITERS: u64 = 4;

/// What a client saw acknowledged: user id → email, order id → user id.
#[derive(Default)]
struct Acknowledged {
    users: BTreeMap<u64, String>,
    orders: BTreeMap<u64, u64>,
}

#[test]
fn acknowledged_writes_survive_random_kill_9_rounds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut porto = Porto::restart_on(&data);
    let mut seen = Acknowledged::default();
    let random = RandomState::new();
    for round in 0..ROUNDS {
        let api = porto.gateway();
        let stop = AtomicBool::new(false);
        let acked = thread::scope(|scope| {
            let writers: Vec<_> = (0..WRITERS)
                .map(|writer| {
                    let (api, stop) = (api.clone(), &stop);
                    scope.spawn(move || write_until_killed(&api, stop, round, writer))
                })
                .collect();
            // Somewhere between 50 and 550 ms into the load.
            let delay = 50 + random.hash_one(round) % 500;
            thread::sleep(Duration::from_millis(delay));
            porto.kill_hard();
            stop.store(true, Ordering::Relaxed);
            writers
                .into_iter()
                .map(|w| w.join().expect("writer"))
                .collect::<Vec<_>>()
        });
        for batch in acked {
            for (id, email) in batch.users {
                assert!(
                    seen.users.insert(id, email).is_none(),
                    "user id {id} acknowledged twice"
                );
            }
            for (id, user) in batch.orders {
                assert!(
                    seen.orders.insert(id, user).is_none(),
                    "order id {id} acknowledged twice"
                );
            }
        }

        porto = Porto::restart_on(&data);
        check(&porto.gateway(), &seen);
    }
    let writes = seen.users.len() + seen.orders.len();
    eprintln!("crash safety: {ROUNDS} kill -9 rounds, {writes} acknowledged writes checked");
    assert!(writes > 0, "no write was acknowledged at all");
}

fn write_until_killed(api: &Client, stop: &AtomicBool, round: u64, writer: u64) -> Acknowledged {
    let mut acked = Acknowledged::default();
    for n in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let email = format!("r{round}w{writer}n{n}@crash.example");
        let body = json!({"name": format!("Writer {writer}"), "email": email}).to_string();
        let Ok(reply) = api.try_send(
            "POST",
            "/api/users",
            &[("content-type", "application/json")],
            Some(&body),
        ) else {
            break;
        };
        assert_eq!(reply.status, 201, "{}", reply.body);
        let id = id_of(&reply.json());
        acked.users.insert(id, email);

        let order = json!({"user_id": id, "items": [{"sku": "KILL-9", "quantity": 1, "unit_price_cents": 100}]});
        let Ok(reply) = api.try_send(
            "POST",
            "/api/orders",
            &[("content-type", "application/json")],
            Some(&order.to_string()),
        ) else {
            break;
        };
        assert_eq!(reply.status, 201, "{}", reply.body);
        acked.orders.insert(id_of(&reply.json()), id);
    }
    acked
}

fn id_of(record: &Value) -> u64 {
    record["id"].as_u64().expect("id")
}

/// Every acknowledged record is there as acknowledged, and no id or email
/// appears twice in the full listing.
fn check(api: &Client, seen: &Acknowledged) {
    for (id, email) in &seen.users {
        let reply = api.get(&format!("/api/users/{id}"));
        assert_eq!(reply.status, 200, "acknowledged user {id} lost");
        assert_eq!(reply.json()["email"].as_str(), Some(email.as_str()));
    }
    for (id, user) in &seen.orders {
        let reply = api.get(&format!("/api/orders/{id}"));
        assert_eq!(reply.status, 200, "acknowledged order {id} lost");
        assert_eq!(reply.json()["user_id"].as_u64(), Some(*user));
    }
    let users = list_all(api, "/api/users");
    let (mut ids, mut emails) = (HashSet::new(), HashSet::new());
    for user in &users {
        assert!(ids.insert(id_of(user)), "duplicate user id {user}");
        let email = user["email"].as_str().expect("email").to_ascii_lowercase();
        assert!(emails.insert(email), "duplicate email {user}");
    }
    let mut order_ids = HashSet::new();
    for order in list_all(api, "/api/orders") {
        assert!(
            order_ids.insert(id_of(&order)),
            "duplicate order id {order}"
        );
    }
}

fn list_all(api: &Client, path: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut next = format!("{path}?limit=100");
    loop {
        let page = api.get(&next).json();
        all.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(cursor) => next = format!("{path}?limit=100&cursor={cursor}"),
            None => return all,
        }
    }
}
