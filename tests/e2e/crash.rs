//! Crash safety: `kill -9` at random moments under concurrent writes loses
//! no acknowledged write, never hands out an id or an address twice, and
//! keeps every acknowledged idempotency key replaying its first answer.

use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Client, Porto};

const ROUNDS: u64 = 4;
/// Enough writers that commits carry several writes each (group commit).
const WRITERS: u64 = 12;
/// Acknowledged writes a round waits for before it picks its moment to kill.
const WARM_UP_WRITES: u64 = 24;

/// An order as acknowledged: the request that made it and what it said.
struct AckedOrder {
    user_id: u64,
    idempotency_key: String,
    body: String,
    response: Value,
}

/// What clients saw acknowledged: user id → email, order id → its order.
#[derive(Default)]
struct Acknowledged {
    users: BTreeMap<u64, String>,
    orders: BTreeMap<u64, AckedOrder>,
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
        let progress = AtomicU64::new(0);
        let acked = thread::scope(|scope| {
            let writers: Vec<_> = (0..WRITERS)
                .map(|writer| {
                    let (api, stop, progress) = (api.clone(), &stop, &progress);
                    scope.spawn(move || write_until_killed(&api, stop, progress, round, writer))
                })
                .collect();
            // Once the load is under way, somewhere in the next 300 ms.
            let deadline = Instant::now() + Duration::from_secs(60);
            while progress.load(Ordering::Relaxed) < WARM_UP_WRITES {
                assert!(
                    Instant::now() < deadline,
                    "round {round}: the load never got going"
                );
                thread::sleep(Duration::from_millis(5));
            }
            thread::sleep(Duration::from_millis(random.hash_one(round) % 300));
            porto.kill_hard();
            stop.store(true, Ordering::Relaxed);
            writers
                .into_iter()
                .map(|w| w.join().expect("writer"))
                .collect::<Vec<_>>()
        });
        let in_round: usize = acked.iter().map(|a| a.users.len() + a.orders.len()).sum();
        assert!(in_round > 0, "round {round}: no write was acknowledged");
        for batch in acked {
            for (id, email) in batch.users {
                assert!(
                    seen.users.insert(id, email).is_none(),
                    "user id {id} acknowledged twice"
                );
            }
            for (id, order) in batch.orders {
                assert!(
                    seen.orders.insert(id, order).is_none(),
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

fn write_until_killed(
    api: &Client,
    stop: &AtomicBool,
    progress: &AtomicU64,
    round: u64,
    writer: u64,
) -> Acknowledged {
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
        progress.fetch_add(1, Ordering::Relaxed);

        let idempotency_key = format!("crash-r{round}w{writer}n{n}");
        let body = json!({"user_id": id, "items": [{"sku": "KILL-9", "quantity": n % 7 + 1, "unit_price_cents": 100}]})
            .to_string();
        let Ok(reply) = api.try_send(
            "POST",
            "/api/orders",
            &[
                ("content-type", "application/json"),
                ("idempotency-key", &idempotency_key),
            ],
            Some(&body),
        ) else {
            break;
        };
        assert_eq!(reply.status, 201, "{}", reply.body);
        let response = reply.json();
        acked.orders.insert(
            id_of(&response),
            AckedOrder {
                user_id: id,
                idempotency_key,
                body,
                response,
            },
        );
        progress.fetch_add(1, Ordering::Relaxed);
    }
    acked
}

fn id_of(record: &Value) -> u64 {
    record["id"].as_u64().expect("id")
}

/// Every acknowledged record is there as acknowledged, every acknowledged
/// idempotency key replays its first answer, and no id or email appears
/// twice in the full listing.
fn check(api: &Client, seen: &Acknowledged) {
    for (id, email) in &seen.users {
        let reply = api.get(&format!("/api/users/{id}"));
        assert_eq!(reply.status, 200, "acknowledged user {id} lost");
        assert_eq!(reply.json()["email"].as_str(), Some(email.as_str()));
    }
    for (id, order) in &seen.orders {
        let reply = api.get(&format!("/api/orders/{id}"));
        assert_eq!(reply.status, 200, "acknowledged order {id} lost");
        assert_eq!(reply.json()["user_id"].as_u64(), Some(order.user_id));
        let replay = api.send(
            "POST",
            "/api/orders",
            &[
                ("content-type", "application/json"),
                ("idempotency-key", &order.idempotency_key),
            ],
            Some(&order.body),
        );
        assert_eq!(replay.status, 201, "replay of order {id}: {}", replay.body);
        assert_eq!(
            replay
                .headers
                .get("idempotent-replayed")
                .map(String::as_str),
            Some("true"),
            "order {id} was not replayed"
        );
        assert_eq!(
            replay.json(),
            order.response,
            "replay of order {id} differs"
        );
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
