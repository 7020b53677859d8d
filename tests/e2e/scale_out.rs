//! Several porto hosts over one Redis or PostgreSQL store, and outages of
//! that store. Uses the servers this machine runs (Redis on 6379,
//! PostgreSQL on 5432 with database `test`); each test works in a
//! namespace of its own.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Client, Porto, fixture_service, stack};

/// What README promises each key-value operation at most (stated here, not
/// read from porto, so a change to porto's deadline fails the tests).
const KV_DEADLINE: Duration = Duration::from_secs(2);

fn namespace() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("e2e_{}_{}", std::process::id(), nanos % 1_000_000_000)
}

fn redis_url() -> String {
    format!("redis://127.0.0.1:6379/?namespace={}", namespace())
}

fn postgres_url() -> String {
    postgres_url_at(5432)
}

/// The test database, reached on `port`, in a namespace of its own.
fn postgres_url_at(port: u16) -> String {
    format!(
        "postgres://postgres@127.0.0.1:{port}/test?namespace={}",
        namespace()
    )
}

/// Users and orders written through one host are read through the other;
/// concurrent creates through both never share an id or an email.
fn two_hosts_share_one_truth(kv: &str) {
    let a = Porto::start_with_kv(kv);
    let b = Porto::start_with_kv(kv);
    let (api_a, api_b) = (a.gateway(), b.gateway());

    let user = api_a.post_json(
        "/api/users",
        &json!({"name": "Shared Sam", "email": "sam@example.com"}),
    );
    assert_eq!(user.status, 201, "{}", user.body);
    let user = user.json();
    assert_eq!(
        api_b.get(&format!("/api/users/{}", user["id"])).json(),
        user
    );
    let order = api_b.post_json("/api/orders", &json!({"user_id": user["id"], "items": [{"sku": "S", "quantity": 1, "unit_price_cents": 5}]}));
    assert_eq!(order.status, 201, "{}", order.body);
    assert_eq!(
        api_a
            .get(&format!("/api/orders/{}", order.json()["id"]))
            .json(),
        order.json()
    );
    assert_eq!(
        api_a.get("/api/users").json()["items"]
            .as_array()
            .map(Vec::len),
        Some(3),
        "seeded once"
    );

    let hosts = [api_a.clone(), api_b.clone()];
    let ids: Vec<u64> = thread::scope(|scope| {
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let api = hosts[i % 2].clone();
                scope.spawn(move || {
                    let r = api.post_json(
                        "/api/users",
                        &json!({"name": format!("P{i}"), "email": format!("p{i}@example.com")}),
                    );
                    assert_eq!(r.status, 201, "{}", r.body);
                    r.json()["id"].as_u64().expect("id")
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        ids.len(),
        "duplicate ids: {ids:?}"
    );

    let statuses: Vec<u16> = thread::scope(|scope| {
        let handles: Vec<_> = (0..12)
            .map(|i| {
                let api = hosts[i % 2].clone();
                scope.spawn(move || {
                    api.post_json(
                        "/api/users",
                        &json!({"name": "Twin", "email": "twin@example.com"}),
                    )
                    .status
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert_eq!(
        statuses.iter().filter(|&&s| s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 409).count(),
        11,
        "{statuses:?}"
    );
}

/// `PORTO_KV` names the store as `--kv` does, and a namespace is a store
/// of its own: a host on the same server under another namespace sees
/// none of the first one's data.
fn namespaces_keep_stores_apart(kv: &str, other: &str) {
    let a = Porto::start_with_env(&stack(), &[("PORTO_KV", kv)]);
    let same = Porto::start_with_kv(kv);
    let apart = Porto::start_with_kv(other);
    let user = a.gateway().post_json(
        "/api/users",
        &json!({"name": "Namespaced Nia", "email": "nia@example.com"}),
    );
    assert_eq!(user.status, 201, "{}", user.body);
    let path = format!("/api/users/{}", user.json()["id"]);
    assert_eq!(
        same.gateway().get(&path).json(),
        user.json(),
        "PORTO_KV ignored"
    );
    assert_eq!(
        apart.gateway().get(&path).status,
        404,
        "namespaces share data"
    );
    // The other namespace can take the same address: it is another store.
    let twin = apart.gateway().post_json(
        "/api/users",
        &json!({"name": "Other Nia", "email": "nia@example.com"}),
    );
    assert_eq!(twin.status, 201, "{}", twin.body);
}

#[test]
fn redis_namespaces_keep_stores_apart() {
    namespaces_keep_stores_apart(&redis_url(), &redis_url());
}

#[test]
fn postgres_namespaces_keep_stores_apart() {
    namespaces_keep_stores_apart(&postgres_url(), &postgres_url());
}

#[test]
fn two_hosts_over_redis_share_one_truth() {
    two_hosts_share_one_truth(&redis_url());
}

#[test]
fn two_hosts_over_postgres_share_one_truth() {
    two_hosts_share_one_truth(&postgres_url());
}

/// A Redis server of this test's own, on a spare port.
struct OwnRedis {
    port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    fn start() -> Self {
        let port = crate::harness::free_port();
        let mut redis = Self { port, child: None };
        redis.restart();
        redis
    }

    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server) must be installed");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`): a server that keeps its
    /// connections and accepts new ones, but answers nothing.
    fn freeze(&self, frozen: bool) {
        let child = self.child.as_ref().expect("running");
        let signal = if frozen { "-STOP" } else { "-CONT" };
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Takes the store down (`set_up(false)`) and up again (`set_up(true)`).
fn outage_is_a_fast_503_and_service_resumes(porto: &Porto, mut set_up: impl FnMut(bool)) {
    let api = porto.gateway();
    let users = Client::new(porto.url("user-service"));
    assert_eq!(api.get("/api/users/1").status, 200);

    set_up(false);
    let started = Instant::now();
    let down = api.get("/api/users/1");
    assert_eq!(
        (down.status, down.error_code().as_str()),
        (503, "store_unavailable"),
        "{}",
        down.body
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(users.get("/healthz").status, 503);
    let health = api.get("/healthz");
    assert_eq!(health.status, 503);
    assert_eq!(
        health.json()["error"]["details"]["upstreams"]["user-service"],
        "unavailable"
    );

    set_up(true);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = api.get("/api/users/1");
        if r.status == 200 {
            assert_eq!(r.json()["name"], "Alice Johnson");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "service did not resume: {}",
            r.body
        );
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(users.get("/healthz").status, 200);
}

/// A TCP relay to a store, standing in for the store's server: it can
/// stop answering while keeping every connection open (frozen: for a
/// client library with no timeouts of its own, tokio-postgres, what ends
/// the wait is porto's deadline), go down (every connection cut as it is
/// next used, new ones closed at once, as a crashed server), and it counts
/// the connections open through it.
struct Relay {
    port: u16,
    state: Arc<RelayState>,
}

#[derive(Default)]
struct RelayState {
    /// `PASSING`, `FROZEN` or `DOWN`.
    mode: AtomicU8,
    open: AtomicUsize,
    peak_open: AtomicUsize,
}

const PASSING: u8 = 0;
const FROZEN: u8 = 1;
const DOWN: u8 = 2;

/// One relayed connection, shared by its two directions: counted open
/// until both have ended.
struct RelayedConnection(Arc<RelayState>);

impl Drop for RelayedConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Relay {
    fn to(upstream: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let state = Arc::new(RelayState::default());
        let relay_state = state.clone();
        thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                if relay_state.mode.load(Ordering::SeqCst) == DOWN {
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let open = relay_state.open.fetch_add(1, Ordering::SeqCst) + 1;
                relay_state.peak_open.fetch_max(open, Ordering::SeqCst);
                let connection = Arc::new(RelayedConnection(relay_state.clone()));
                for (from, to) in [
                    (client.try_clone(), server.try_clone()),
                    (server.try_clone(), client.try_clone()),
                ] {
                    let (Ok(from), Ok(to)) = (from, to) else {
                        continue;
                    };
                    let connection = connection.clone();
                    thread::spawn(move || pass_on(from, to, &connection));
                }
            }
        });
        Self { port, state }
    }

    fn set(&self, mode: u8) {
        self.state.mode.store(mode, Ordering::SeqCst);
    }

    fn freeze(&self, frozen: bool) {
        self.set(if frozen { FROZEN } else { PASSING });
    }

    /// The most connections that were open through the relay at once.
    fn peak_open(&self) -> usize {
        self.state.peak_open.load(Ordering::SeqCst)
    }

    fn postgres_url(&self) -> String {
        postgres_url_at(self.port)
    }
}

fn pass_on(mut from: TcpStream, mut to: TcpStream, connection: &RelayedConnection) {
    let mode = &connection.0.mode;
    let mut buffer = [0u8; 16 * 1024];
    while let Ok(n @ 1..) = from.read(&mut buffer) {
        while mode.load(Ordering::SeqCst) == FROZEN {
            thread::sleep(Duration::from_millis(5));
        }
        if mode.load(Ordering::SeqCst) == DOWN || to.write_all(&buffer[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
    let _ = from.shutdown(std::net::Shutdown::Both);
}

/// The store's credentials stay with porto: a guest's environment is empty
/// (it reaches the store only through `wasi:keyvalue`), and the password
/// shows nowhere porto reports: start-up lines, log, `/status`, `/metrics`.
#[test]
fn guests_never_see_backend_credentials() {
    const PASSWORD: &str = "s3cret-pw-e2e";
    let kv = format!(
        "postgres://postgres:{PASSWORD}@127.0.0.1:5432/test?namespace={}",
        namespace()
    );
    let mut compose = stack();
    compose["services"]["escape"] = fixture_service("escape", "");
    let porto = Porto::start_logging(&compose, &["--kv", &kv]);
    assert_eq!(
        porto.gateway().get("/api/users/1").status,
        200,
        "the store works"
    );
    let seen = Client::new(porto.url("escape")).get("/");
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert_eq!(
        seen.json()["environment"],
        "",
        "a guest sees host variables"
    );
    let admin = Client::new(porto.url("admin"));
    for (place, text) in [
        ("the guest", seen.body),
        ("the start-up lines", porto.startup.join("\n")),
        ("the log", porto.log()),
        ("/status", admin.get("/status").body),
        ("/metrics", admin.get("/metrics").body),
    ] {
        assert!(
            !text.contains(PASSWORD),
            "the password shows in {place}:\n{text}"
        );
    }
}

/// With the store frozen (`freeze(true)`) one read of a user is 503
/// `store_unavailable`; thawed, service resumes within 15 s. Returns how
/// long the frozen read took.
fn frozen_store_is_a_503_then_resumes(porto: &Porto, freeze: impl Fn(bool)) -> Duration {
    let users = Client::new(porto.url("user-service"));
    assert_eq!(users.get("/users/1").status, 200);
    freeze(true);
    let started = Instant::now();
    let stuck = users.get("/users/1");
    let waited = started.elapsed();
    freeze(false);
    assert_eq!(
        (stuck.status, stuck.error_code().as_str()),
        (503, "store_unavailable"),
        "{}",
        stuck.body
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while users.get("/users/1").status != 200 {
        assert!(Instant::now() < deadline, "service did not resume");
        thread::sleep(Duration::from_millis(100));
    }
    waited
}

/// Bounded by wall-clock time or machine load, or compiling: run one at a
/// time with nothing beside them (tests/e2e/main.rs).
mod alone {
    use super::*;

    /// `x-porto.kv_pool_size` bounds porto's connections to the store: 32
    /// clients reading at once never have more than that many open through
    /// the relay that stands in for PostgreSQL.
    #[test]
    fn kv_pool_size_bounds_the_connections_to_the_store() {
        const POOL: usize = 3;
        let relay = Relay::to("127.0.0.1:5432");
        let mut compose = stack();
        compose["x-porto"] = serde_yaml_ng::from_str(&format!(
            "{{kv: '{}', kv_pool_size: {POOL}}}",
            relay.postgres_url()
        ))
        .expect("yaml");
        let porto = Porto::start(&compose);
        let users = Client::new(porto.url("user-service"));
        thread::scope(|scope| {
            for _ in 0..32 {
                let users = users.clone();
                scope.spawn(move || {
                    for _ in 0..40 {
                        assert_eq!(users.get("/users?limit=100").status, 200);
                    }
                });
            }
        });
        let peak = relay.peak_open();
        assert!(
            (1..=POOL).contains(&peak),
            "{peak} connections open at once with kv_pool_size {POOL}"
        );
    }

    /// porto's own deadline on a key-value operation (2 s, README): against a
    /// PostgreSQL that stops answering mid-connection, a request is 503
    /// `store_unavailable` at the deadline, not held until its 30 s timeout,
    /// and service resumes once the server answers again.
    #[test]
    fn porto_gives_a_silent_store_2_s_per_operation() {
        let relay = Relay::to("127.0.0.1:5432");
        let porto = Porto::start_with_kv(&relay.postgres_url());
        let waited = frozen_store_is_a_503_then_resumes(&porto, |frozen| relay.freeze(frozen));
        assert!(
            waited >= KV_DEADLINE - Duration::from_millis(50) && waited < KV_DEADLINE * 2,
            "answered after {waited:?}, not at the {KV_DEADLINE:?} deadline"
        );
    }

    /// A store that accepts and never answers, which a refused connection does
    /// not exercise: the request is 503 within the 2 s every key-value
    /// operation is allowed (README), not hung until the request timeout, and
    /// service resumes when the store does. (With Redis, the client library's
    /// own timeouts end the wait first, at about 1.5 s.)
    #[test]
    fn a_store_that_never_answers_is_a_503_by_the_deadline() {
        let redis = OwnRedis::start();
        let porto = Porto::start_with_kv(&format!("redis://127.0.0.1:{}", redis.port));
        let waited = frozen_store_is_a_503_then_resumes(&porto, |frozen| redis.freeze(frozen));
        // Only a timeout ends a wait on a frozen server (slack for a loaded
        // machine; the request timeout is 30 s).
        assert!(
            waited < KV_DEADLINE * 2,
            "answered after {waited:?}, long past the {KV_DEADLINE:?} deadline"
        );
    }

    /// Redis stopped and started again: requests are 503 `store_unavailable`
    /// at once, health says so, and service resumes (on a fresh, reseeded
    /// store: this Redis keeps nothing).
    #[test]
    fn redis_outage_is_a_fast_503_and_service_resumes() {
        let mut redis = OwnRedis::start();
        let porto = Porto::start_with_kv(&format!("redis://127.0.0.1:{}", redis.port));
        outage_is_a_fast_503_and_service_resumes(&porto, |up| {
            if up {
                redis.restart();
            } else {
                redis.stop();
            }
        });
    }

    /// PostgreSQL going down (every connection cut, new ones closed) and
    /// coming back: the same fast 503s, and afterwards what was written before
    /// the outage is still there and writes work again.
    #[test]
    fn postgres_outage_is_a_fast_503_and_service_resumes() {
        let relay = Relay::to("127.0.0.1:5432");
        let porto = Porto::start_with_kv(&relay.postgres_url());
        let api = porto.gateway();
        let before = api.post_json(
            "/api/users",
            &json!({"name": "Before Outage", "email": "before@example.com"}),
        );
        assert_eq!(before.status, 201, "{}", before.body);
        outage_is_a_fast_503_and_service_resumes(&porto, |up| {
            relay.set(if up { PASSING } else { DOWN })
        });
        let id = before.json()["id"].as_u64().expect("id");
        assert_eq!(api.get(&format!("/api/users/{id}")).json(), before.json());
        let after = api.post_json(
            "/api/users",
            &json!({"name": "After Outage", "email": "after@example.com"}),
        );
        assert_eq!(after.status, 201, "{}", after.body);
    }
}
