//! Crash safety: `kill -9` at random moments under concurrent writes loses
//! no acknowledged write, never hands out an id or an address twice, and
//! keeps every acknowledged idempotency key replaying its first answer.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Client, Porto, stack};

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

/// The order behind "an acknowledged write survives kill -9": each 201 is
/// written to its socket only after an fsync of the store that follows the
/// request's writes. Killing porto leaves the page cache intact, so the
/// kill rounds above would pass without any fsync; the system calls show
/// the order itself. porto runs under `strace -f`, a client creates users
/// one after another, and in the trace every `HTTP/1.1 201` written to a
/// socket finds no write to `kv.redb` since the last fdatasync of it, and
/// at least one fdatasync since the previous 201.
#[test]
fn every_201_is_written_after_the_fsync_of_its_writes() {
    const CREATES: usize = 10;
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = dir.path().join("strace.log");
    let porto = Porto::start(&stack());
    let users = Client::new(porto.url("user-service"));
    assert_eq!(users.get("/users/1").status, 200, "seeded");
    let mut strace = Command::new("strace")
        .args(["-f", "-qq", "-y", "-s", "32", "-o"])
        .arg(&trace)
        .args([
            "-e",
            "trace=pwrite64,pwritev,write,writev,sendto,sendmsg,fdatasync,fsync",
            "-p",
            &porto.pid().to_string(),
        ])
        .stderr(Stdio::null())
        .spawn()
        .expect("strace (Debian package strace) must be installed");
    // Attached once a create's commit shows in the trace.
    let create = |n: usize| {
        let body = json!({"name": "Synced", "email": format!("synced{n}@example.com")}).to_string();
        let reply = users.send(
            "POST",
            "/users",
            &[("content-type", "application/json")],
            Some(&body),
        );
        assert_eq!(reply.status, 201, "{}", reply.body);
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut warm_up = 0;
    while !std::fs::read_to_string(&trace)
        .unwrap_or_default()
        .contains("kv.redb>")
    {
        assert!(Instant::now() < deadline, "strace never attached to porto");
        create(1000 + warm_up);
        warm_up += 1;
    }
    for n in 0..CREATES {
        create(n);
    }
    let interrupted = Command::new("kill")
        .args(["-INT", &strace.id().to_string()])
        .status()
        .expect("kill");
    assert!(interrupted.success());
    strace.wait().expect("strace");

    let responses = responses_and_syncs(&std::fs::read_to_string(&trace).expect("trace"));
    assert!(
        responses.len() > CREATES,
        "{} responses with 201 in the trace",
        responses.len()
    );
    for (n, response) in responses.iter().enumerate() {
        assert!(
            !response.unsynced_store_writes,
            "201 number {n} was sent with writes to the store not yet fsynced"
        );
        assert!(
            n == 0 || response.syncs_since_previous > 0,
            "201 number {n} was sent with no fsync of the store since the previous one"
        );
    }
}

/// A `201` response as the trace shows it being written.
struct TracedResponse {
    unsynced_store_writes: bool,
    syncs_since_previous: usize,
}

/// Walks an `strace -f -y` log in completion order (a call split by
/// another thread's is whole at its `resumed` line).
fn responses_and_syncs(trace: &str) -> Vec<TracedResponse> {
    let mut unfinished: HashMap<&str, &str> = HashMap::new();
    let (mut dirty, mut syncs) = (false, 0);
    let mut responses = Vec::new();
    for line in trace.lines() {
        let Some((pid, call)) = line.trim_start().split_once(char::is_whitespace) else {
            continue;
        };
        let call = call.trim_start();
        if call.ends_with("<unfinished ...>") {
            unfinished.insert(pid, call);
            continue;
        }
        let (start, result) = if call.starts_with("<...") {
            (unfinished.remove(pid).unwrap_or_default(), call)
        } else {
            (call, call)
        };
        let name = start.split('(').next().unwrap_or_default();
        let on_store = start.contains("kv.redb>");
        let succeeded = !result.contains("= -1");
        match name {
            "fdatasync" | "fsync" if on_store && succeeded => {
                dirty = false;
                syncs += 1;
            }
            "pwrite64" | "pwritev" | "write" | "writev" if on_store => dirty = true,
            "write" | "writev" | "sendto" | "sendmsg"
                if start.contains("socket:") && start.contains("HTTP/1.1 201") =>
            {
                responses.push(TracedResponse {
                    unsynced_store_writes: dirty,
                    syncs_since_previous: syncs,
                });
                syncs = 0;
            }
            _ => {}
        }
    }
    responses
}
