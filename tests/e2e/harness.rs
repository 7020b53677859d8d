//! Starting real porto processes on free ports and talking HTTP to them.
//!
//! Components are built once per test run (`porto build` on the real
//! compose.yaml); each test then runs `porto up` on a copy of that
//! Compose file — optionally edited — with the built `.wasm` files
//! pinned through `x-porto.component`, a temporary `--data`, and
//! `--ephemeral-ports`, reading the chosen URLs from porto's start-up lines.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const PORTO: &str = env!("CARGO_BIN_EXE_porto");

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Compiled components are cached here across tests and runs.
pub fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("porto-compile-cache")
}

/// A command for a program that may run cargo (cargo itself, porto), with
/// the variables cargo sets for a running test removed: it runs as if
/// started from the shell that ran `make test-build`. Build scripts that
/// declare `rerun-if-env-changed` on such a variable (ring's does, on
/// `CARGO_PKG_NAME` and `CARGO_MANIFEST_DIR`) would otherwise see it
/// changed, and cargo would rebuild them and all that depends on them
/// while other tests run.
pub fn command_as_from_the_shell(program: impl AsRef<std::ffi::OsStr>) -> Command {
    const SET_FOR_TESTS: &[&str] = &[
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_BIN_",
        "CARGO_CRATE_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
        "OUT_DIR",
    ];
    let mut command = Command::new(program);
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        if SET_FOR_TESTS.iter().any(|prefix| text.starts_with(prefix)) {
            command.env_remove(&name);
        }
    }
    command
}

/// service name → built `.wasm` path, built once per test process.
pub fn built_components() -> &'static HashMap<String, PathBuf> {
    static BUILT: OnceLock<HashMap<String, PathBuf>> = OnceLock::new();
    BUILT.get_or_init(|| {
        let output = command_as_from_the_shell(PORTO)
            .args(["build", "-f"])
            .arg(repo_root().join("compose.yaml"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run porto build");
        assert!(output.status.success(), "porto build failed");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let name = fields.next()?.to_string();
                let path = fields.last()?.to_string();
                Some((name, PathBuf::from(path)))
            })
            .collect()
    })
}

/// One HTTP/1.1 exchange on a fresh connection to `address` (`host:port`,
/// an `http://` prefix allowed), with bytes a client library might refuse
/// to send; the whole raw response, read until the server closes.
pub fn raw_exchange(address: &str, request: &[u8]) -> String {
    use std::io::{Read as _, Write as _};
    let address = address.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(request).expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read");
    String::from_utf8_lossy(&response).to_string()
}

/// A loopback port no one listens on now (for a process the test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Runs `porto image ARGS…`, which must succeed; its stdout.
pub fn porto_image(args: &[&str]) -> String {
    succeeded(Command::new(PORTO).arg("image").args(args))
}

/// Runs `command`, which must exit 0 (else the test fails with what it
/// wrote on stderr); its stdout.
pub fn succeeded(command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("run {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Runs `cargo build ARGS… --message-format=json` in the repository,
/// which must succeed; cargo's `compiler-artifact` messages.
pub fn cargo_artifacts(args: &[&str]) -> Vec<Value> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = command_as_from_the_shell(cargo)
        .arg("build")
        .args(args)
        .arg("--message-format=json")
        .current_dir(repo_root())
        .stderr(Stdio::inherit())
        .output()
        .expect("run cargo");
    assert!(output.status.success(), "cargo build {args:?} failed");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .collect()
}

/// fixture name → `.wasm` of the misbehaving guests in crates/test-programs,
/// built once per test process.
pub fn fixtures() -> &'static HashMap<String, PathBuf> {
    static BUILT: OnceLock<HashMap<String, PathBuf>> = OnceLock::new();
    BUILT.get_or_init(|| {
        cargo_artifacts(&[
            "--release",
            "--target",
            "wasm32-wasip2",
            "-p",
            "test-programs",
        ])
        .iter()
        .flat_map(|m| m["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .filter_map(|p| Some((p.file_stem()?.to_str()?.to_string(), p)))
        .collect()
    })
}

/// A Compose service serving the test fixture `fixture` on an ephemeral
/// port, with `extra` x-porto keys (`", key: value"…`).
pub fn fixture_service(fixture: &str, extra: &str) -> serde_yaml_ng::Value {
    let path = fixtures()
        .get(fixture)
        .unwrap_or_else(|| panic!("fixture {fixture} not built"));
    serde_yaml_ng::from_str(&format!(
        "{{platform: wasi/wasm, ports: ['1:80'], x-porto: {{component: '{}'{extra}}}}}",
        path.display()
    ))
    .expect("yaml")
}

/// A Compose file of fixture services: `(service, fixture, extra)` each,
/// as [`fixture_service`] makes them.
pub fn fixtures_compose(services: &[(&str, &str, &str)]) -> serde_yaml_ng::Value {
    let mut mapping = serde_yaml_ng::Mapping::new();
    for (service, fixture, extra) in services {
        mapping.insert((*service).into(), fixture_service(fixture, extra));
    }
    let mut compose = serde_yaml_ng::Mapping::new();
    compose.insert("services".into(), mapping.into());
    compose.into()
}

/// The stack with the api-gateway alone: its user-service at
/// `user_service` (a URL on the network), its order-service unreachable,
/// `allow_hosts` as given.
pub fn gateway_alone(user_service: &str, allow_hosts: &[&str]) -> serde_yaml_ng::Value {
    let mut compose = stack();
    if let Some(services) = compose["services"].as_mapping_mut() {
        services.remove("user-service");
        services.remove("order-service");
    }
    let gateway = &mut compose["services"]["api-gateway"];
    gateway["depends_on"] = serde_yaml_ng::Value::Sequence(vec![]);
    gateway["environment"]["USER_SERVICE_URL"] = user_service.into();
    gateway["environment"]["ORDER_SERVICE_URL"] = "http://127.0.0.1:9".into();
    gateway["x-porto"]["allow_hosts"] =
        serde_yaml_ng::Value::Sequence(allow_hosts.iter().map(|h| (*h).into()).collect());
    compose
}

/// Reads an HTTP request head (up to the blank line) from `reader`.
pub fn read_head(reader: &mut impl std::io::BufRead) -> String {
    let mut head = String::new();
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap_or(0) > 2 {
        head.push_str(&line);
        line.clear();
    }
    head
}

/// The repository's compose.yaml as a YAML value, components pinned.
pub fn stack() -> serde_yaml_ng::Value {
    let text =
        std::fs::read_to_string(repo_root().join("compose.yaml")).expect("read compose.yaml");
    let mut doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("parse compose.yaml");
    for (name, path) in built_components() {
        let service = &mut doc["services"][name.as_str()];
        if service.is_mapping() {
            service["x-porto"]["component"] = path.display().to_string().into();
        }
    }
    doc
}

pub struct Porto {
    child: Child,
    pub urls: HashMap<String, String>,
    pub data: PathBuf,
    _dir: tempfile::TempDir,
    /// Everything porto printed up to and including its `ready` line.
    pub startup: Vec<String>,
    /// Where its log (stderr) goes, when a test reads it.
    log: Option<PathBuf>,
    /// What it printed after that, as it arrives.
    later: Arc<Mutex<Vec<String>>>,
}

impl Porto {
    /// The full stack on a fresh store.
    pub fn start_default() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        Self::start_with(&stack(), dir, data, &[])
    }

    /// The full stack over a shared key-value backend (`--kv URL`).
    pub fn start_with_kv(kv: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        Self::start_with(&stack(), dir, data, &["--kv", kv])
    }

    /// `compose` on a fresh store.
    pub fn start(compose: &serde_yaml_ng::Value) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        Self::start_with(compose, dir, data, &[])
    }

    /// `compose` on a fresh store, with more `porto up` flags.
    pub fn start_with_flags(compose: &serde_yaml_ng::Value, flags: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        Self::start_with(compose, dir, data, flags)
    }

    /// `compose` on a fresh store, with porto's log (stderr) kept for
    /// [`Porto::log`] instead of shown.
    pub fn start_logging(compose: &serde_yaml_ng::Value, flags: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let file = dir.path().join("compose.yaml");
        std::fs::write(&file, serde_yaml_ng::to_string(compose).expect("yaml"))
            .expect("write compose");
        let log = dir.path().join("porto.log");
        Self::launch(&file, dir, data, flags, &[], Some(log))
    }

    /// What porto has logged so far (after [`Porto::start_logging`]).
    pub fn log(&self) -> String {
        let path = self.log.as_ref().expect("started with start_logging");
        std::fs::read_to_string(path).expect("read porto's log")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The full stack on an existing store (to test persistence).
    pub fn restart_on(data: &Path) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_with(&stack(), dir, data.to_path_buf(), &[])
    }

    /// `compose` on a fresh store, with environment for porto itself.
    pub fn start_with_env(compose: &serde_yaml_ng::Value, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let file = dir.path().join("compose.yaml");
        std::fs::write(&file, serde_yaml_ng::to_string(compose).expect("yaml"))
            .expect("write compose");
        Self::launch(&file, dir, data, &[], env, None)
    }

    fn start_with(
        compose: &serde_yaml_ng::Value,
        dir: tempfile::TempDir,
        data: PathBuf,
        extra: &[&str],
    ) -> Self {
        let file = dir.path().join("compose.yaml");
        std::fs::write(&file, serde_yaml_ng::to_string(compose).expect("yaml"))
            .expect("write compose");
        Self::launch(&file, dir, data, extra, &[], None)
    }

    /// A Compose file as it is, built by porto itself.
    pub fn start_unmodified(file: &Path) -> Self {
        Self::start_unmodified_with_flags(file, &[])
    }

    /// A Compose file as it is, with more `porto up` flags.
    pub fn start_unmodified_with_flags(file: &Path, flags: &[&str]) -> Self {
        Self::start_unmodified_with_env(file, flags, &[])
    }

    /// A Compose file as it is, with `porto up` flags and environment.
    pub fn start_unmodified_with_env(file: &Path, flags: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        Self::launch(file, dir, data, flags, env, None)
    }

    /// Waits until porto prints a line containing `text`. Start-up lines
    /// count too: a task started before `ready` (the `--watch` watcher)
    /// may print on either side of it.
    pub fn wait_for_output(&self, text: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let printed = self.startup.iter().find(|l| l.contains(text)).cloned();
            if let Some(line) = printed.or_else(|| {
                self.later
                    .lock()
                    .ok()
                    .and_then(|lines| lines.iter().find(|l| l.contains(text)).cloned())
            }) {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "porto never printed {text:?}; it printed {:?}",
                self.later.lock().map(|l| l.clone()).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn launch(
        file: &Path,
        dir: tempfile::TempDir,
        data: PathBuf,
        extra: &[&str],
        env: &[(&str, &str)],
        log: Option<PathBuf>,
    ) -> Self {
        let stderr = match &log {
            Some(path) => Stdio::from(std::fs::File::create(path).expect("create log")),
            None => Stdio::inherit(),
        };
        let mut child = command_as_from_the_shell(PORTO)
            .args(["up", "--ephemeral-ports", "--log", "warn", "-f"])
            .arg(file)
            .args(extra)
            .arg("--data")
            .arg(&data)
            .arg("--cache-dir")
            .arg(cache_dir())
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start porto");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut urls = HashMap::new();
        let mut startup = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            assert!(Instant::now() < deadline, "porto did not become ready");
            let line = match lines.next() {
                Some(Ok(line)) => line,
                _ => panic!("porto exited before it was ready: {:?}", child.wait()),
            };
            startup.push(line.clone());
            if line.starts_with("porto: ready") {
                break;
            }
            let mut fields = line.split_whitespace();
            if let (Some(name), Some(url)) = (fields.next(), fields.next())
                && (url.starts_with("http://") || url.starts_with("https://"))
            {
                urls.insert(name.to_string(), url.to_string());
            }
        }
        // Keep draining stdout so porto never blocks on a full pipe.
        let later = Arc::new(Mutex::new(Vec::new()));
        let sink = later.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Ok(mut sink) = sink.lock() {
                    sink.push(line);
                }
            }
        });
        Self {
            child,
            urls,
            data,
            _dir: dir,
            startup,
            log,
            later,
        }
    }

    pub fn url(&self, service: &str) -> &str {
        self.urls
            .get(service)
            .unwrap_or_else(|| panic!("{service} has no published URL"))
    }

    /// Requests of `service` inside guests now, as `/status` reports them.
    pub fn in_flight(&self, service: &str) -> u64 {
        self.service_status(service)["in_flight"]
            .as_u64()
            .unwrap_or(0)
    }

    /// Waits (up to 10 s) until `service` has `count` requests inside
    /// guests, as `/status` reports them.
    pub fn wait_for_in_flight(&self, service: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let in_flight = self.in_flight(service);
            if in_flight >= count as u64 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{service}: {in_flight} of {count} requests in flight after 10 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// `service`'s entry in the admin listener's `/status` (null if none).
    pub fn service_status(&self, service: &str) -> Value {
        let status = Client::new(self.url("admin")).get("/status").json();
        status["services"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["name"] == service)
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// `/metrics` on the admin listener, by `name{labels}` (OpenMetrics).
    pub fn metrics(&self) -> HashMap<String, f64> {
        let reply = Client::new(self.url("admin")).get("/metrics");
        assert_eq!(reply.status, 200);
        assert!(
            reply
                .header("content-type")
                .is_some_and(|t| t.starts_with("application/openmetrics-text")),
            "{:?}",
            reply.headers
        );
        reply
            .body
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                Some((series.to_string(), value.parse().ok()?))
            })
            .collect()
    }

    pub fn gateway(&self) -> Client {
        Client::new(self.url("api-gateway"))
    }

    /// SIGKILL: no chance to flush or drain anything.
    pub fn kill_hard(&mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("wait");
    }

    /// SIGTERM, then wait for exit. The data directory stays until drop.
    pub fn stop(&mut self) -> ExitStatus {
        self.terminate();
        self.wait_exit(Duration::from_secs(30))
            .expect("porto did not exit after SIGTERM")
    }

    /// Sends SIGTERM and returns at once (porto drains meanwhile).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// How porto exited, if it did within `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Porto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response, whatever its status.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The `error.code` of an error envelope.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code: {}", self.body))
            .to_string()
    }
}

#[derive(Clone)]
pub struct Client {
    base: String,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(base: &str) -> Self {
        Self::with_timeout(base, Duration::from_secs(30))
    }

    /// A client that waits up to `timeout` for each exchange.
    pub fn with_timeout(base: &str, timeout: Duration) -> Self {
        Self {
            base: base.to_string(),
            agent: ureq::AgentBuilder::new().timeout(timeout).build(),
        }
    }

    pub fn get(&self, path: &str) -> Reply {
        self.send("GET", path, &[], None)
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.send(
            "POST",
            path,
            &[("content-type", "application/json")],
            Some(&body.to_string()),
        )
    }

    pub fn patch_json(&self, path: &str, body: &Value) -> Reply {
        self.send(
            "PATCH",
            path,
            &[("content-type", "application/json")],
            Some(&body.to_string()),
        )
    }

    pub fn delete(&self, path: &str) -> Reply {
        self.send("DELETE", path, &[], None)
    }

    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Reply {
        self.try_send(method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// [`Client::send`], with transport failures (a killed server) as `Err`.
    pub fn try_send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Result<Reply, String> {
        let mut request = self
            .agent
            .request(method, &format!("{}{}", self.base, path));
        for (name, value) in headers {
            request = request.set(name, value);
        }
        let result = match body {
            Some(body) => request.send_string(body),
            None => request.call(),
        };
        let response = match result {
            Ok(response) | Err(ureq::Error::Status(_, response)) => response,
            Err(e) => return Err(e.to_string()),
        };
        let status = response.status();
        let headers = response
            .headers_names()
            .into_iter()
            .filter_map(|name| {
                Some((
                    name.to_ascii_lowercase(),
                    response.header(&name)?.to_string(),
                ))
            })
            .collect();
        let body = response.into_string().map_err(|e| e.to_string())?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}

/// One series of [`Porto::metrics`], which must be there.
pub fn value(samples: &HashMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no sample {series}; have {:#?}", samples.keys()))
}

/// A CA, and a certificate it signed for `localhost` and 127.0.0.1, as
/// PEM files in `dir`: `ca.pem`, `<name>.pem`, `<name>.key`.
pub fn certificate(dir: &Path, name: &str) {
    let run = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    if !dir.join("ca.pem").exists() {
        run(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=porto test CA",
        ]);
    }
    let (key, csr, pem) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
    );
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &key,
        "-out",
        &csr,
        "-subj",
        &format!("/CN={name}"),
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .expect("ext");
    run(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        &pem,
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}

/// `x-porto.tls` (YAML flow text) for the certificate [`certificate`]
/// made as `name` in `dir`.
pub fn tls_setting(dir: &Path, name: &str) -> String {
    format!(
        "{{cert: '{}', key: '{}'}}",
        dir.join(format!("{name}.pem")).display(),
        dir.join(format!("{name}.key")).display()
    )
}

/// The port of a listener's URL.
pub fn port_of(url: &str) -> &str {
    url.rsplit(':').next().expect("port")
}

/// One HTTP/2 exchange with prior knowledge (hyper's client) with the
/// listener at `url`: `request`'s path is sent to it, and the answer comes
/// back whole: status, headers, body and trailers.
pub fn h2_exchange<B>(
    url: &str,
    request: http::Request<B>,
) -> (u16, http::HeaderMap, bytes::Bytes, http::HeaderMap)
where
    B: hyper::body::Body<Data = bytes::Bytes> + Send + Unpin + 'static,
    B::Error: std::error::Error + Send + Sync,
{
    use http_body_util::BodyExt as _;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let address = url.trim_start_matches("http://").to_string();
        let tcp = tokio::net::TcpStream::connect(&address)
            .await
            .expect("connect");
        let (mut sender, connection) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tcp),
        )
        .await
        .expect("HTTP/2 handshake");
        tokio::spawn(connection);
        let (mut parts, body) = request.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        parts.uri = format!("http://{address}{path}").parse().expect("uri");
        let response = sender
            .send_request(http::Request::from_parts(parts, body))
            .await
            .expect("response");
        let status = response.status().as_u16();
        let head = response.headers().clone();
        let collected = response.into_body().collect().await.expect("body");
        let trailers = collected.trailers().cloned().unwrap_or_default();
        (status, head, collected.to_bytes(), trailers)
    })
}
