//! The three services as containers under a real containerd, run by
//! porto's shim (`containerd-shim-porto-v1`, runtime `io.containerd.porto.v1`)
//! from the images `porto image build` makes.
//!
//! Everything is the test's own: a private containerd (root, state and
//! socket in a temp dir), one network namespace per container joined by a
//! bridge in a namespace of its own, an `/etc/hosts` that names the
//! services as Docker's DNS would, and a Redis in a namespace of its own.
//! The root namespace reaches the containers through one veth; all of it
//! is removed when the test ends, however it ends.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{
    Client, Porto, built_components, cargo_artifacts, fixtures, porto_image, repo_root,
};
use crate::reuse::count;
use crate::wasip3::staggered;

const SERVICES: [&str; 3] = ["user-service", "order-service", "api-gateway"];
const RUNTIME: &str = "io.containerd.porto.v1";
/// user-service keeps its data in the bucket `users` (compose.yaml).
const USERS: &[(&str, &str)] = &[
    ("PORTO_BUCKETS", "users"),
    ("PORTO_MAX_INSTANCE_REUSE", "128"),
];

/// The shim binary, built once per test process (the e2e tests belong to
/// the porto package; the shim is its own).
fn shim() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        cargo_artifacts(&["-p", "containerd-shim-porto"])
            .iter()
            .filter_map(|m| m["executable"].as_str().map(PathBuf::from))
            .find(|p| p.ends_with("containerd-shim-porto-v1"))
            .expect("cargo built containerd-shim-porto-v1")
    })
}

/// Why containerd cannot run here at all, if it cannot.
fn unavailable() -> Option<String> {
    if euid() != 0 {
        return Some("not root: a private containerd needs root".into());
    }
    for tool in ["containerd", "ctr", "runc", "ip"] {
        if !on_path(tool) {
            return Some(format!(
                "{tool} is not installed (`make test-tools` installs it)"
            ));
        }
    }
    None
}

fn euid() -> u32 {
    let output = Command::new("id").arg("-u").output().expect("id -u");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or(u32::MAX)
}

fn on_path(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs a command that must succeed; its stdout.
fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).to_string()
}

/// A test subnet no other run on this machine uses at the same time.
fn subnet() -> String {
    format!("10.213.{}", std::process::id() % 250)
}

/// The test's own network: a hub namespace holding a bridge, a veth from
/// the root namespace into it (`.1`), and one namespace per host.
struct Network {
    prefix: String,
    subnet: String,
    hub: String,
    namespaces: Vec<String>,
    root_link: String,
}

impl Network {
    fn create() -> Self {
        let prefix = format!("pt{}", std::process::id());
        let network = Self {
            hub: format!("{prefix}-hub"),
            root_link: format!("{prefix}r"),
            subnet: subnet(),
            prefix,
            namespaces: Vec::new(),
        };
        run("ip", &["netns", "add", &network.hub]);
        network.in_hub(&["ip", "link", "add", "br0", "type", "bridge"]);
        network.in_hub(&["ip", "link", "set", "br0", "up"]);
        network.in_hub(&["ip", "link", "set", "lo", "up"]);
        let peer = format!("{}p", network.root_link);
        run(
            "ip",
            &[
                "link",
                "add",
                &network.root_link,
                "type",
                "veth",
                "peer",
                "name",
                &peer,
            ],
        );
        run("ip", &["link", "set", &peer, "netns", &network.hub]);
        network.in_hub(&["ip", "link", "set", &peer, "master", "br0"]);
        network.in_hub(&["ip", "link", "set", &peer, "up"]);
        run(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}.1/24", network.subnet),
                "dev",
                &network.root_link,
            ],
        );
        run("ip", &["link", "set", &network.root_link, "up"]);
        network
    }

    fn in_hub(&self, command: &[&str]) {
        let mut args = vec!["netns", "exec", &self.hub];
        args.extend_from_slice(command);
        run("ip", &args);
    }

    /// The namespace of one host, at `{subnet}.{octet}` (made the first
    /// time); its path.
    fn host(&mut self, name: &str, octet: u8) -> String {
        let namespace = format!("{}-{name}", self.prefix);
        let path = format!("/var/run/netns/{namespace}");
        if self.namespaces.contains(&namespace) {
            return path;
        }
        let link = format!("{}h{octet}", self.prefix);
        run("ip", &["netns", "add", &namespace]);
        self.namespaces.push(namespace.clone());
        run(
            "ip",
            &[
                "link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns", &namespace,
            ],
        );
        run("ip", &["link", "set", &link, "netns", &self.hub]);
        self.in_hub(&["ip", "link", "set", &link, "master", "br0"]);
        self.in_hub(&["ip", "link", "set", &link, "up"]);
        let inside = |command: &[&str]| {
            let mut args = vec!["netns", "exec", &namespace];
            args.extend_from_slice(command);
            run("ip", &args);
        };
        inside(&[
            "ip",
            "addr",
            "add",
            &format!("{}.{octet}/24", self.subnet),
            "dev",
            "eth0",
        ]);
        inside(&["ip", "link", "set", "eth0", "up"]);
        inside(&["ip", "link", "set", "lo", "up"]);
        path
    }

    fn address(&self, octet: u8) -> String {
        format!("{}.{octet}", self.subnet)
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.root_link])
            .status();
        for namespace in self.namespaces.iter().chain(std::iter::once(&self.hub)) {
            let _ = Command::new("ip")
                .args(["netns", "del", namespace])
                .status();
        }
    }
}

/// A private containerd with the shim on its PATH.
struct Containerd {
    child: Child,
    dir: tempfile::TempDir,
    socket: PathBuf,
}

impl Containerd {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("containerd.sock");
        let config = dir.path().join("config.toml");
        std::fs::write(&config, "version = 2\n").expect("write config");
        let shim_dir = shim().parent().expect("shim directory").to_path_buf();
        let path = format!(
            "{}:{}",
            shim_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let log = std::fs::File::create(dir.path().join("containerd.log")).expect("log");
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .arg("--root")
            .arg(dir.path().join("root"))
            .arg("--state")
            .arg(dir.path().join("state"))
            .arg("--address")
            .arg(&socket)
            .env("PATH", path)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let containerd = Self { child, dir, socket };
        let deadline = Instant::now() + Duration::from_secs(30);
        while containerd
            .ctr_output(&["version"])
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            assert!(
                Instant::now() < deadline,
                "containerd did not start: {}",
                containerd.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        containerd
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    fn ctr_output(&self, args: &[&str]) -> std::io::Result<std::process::Output> {
        Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(["--namespace", "porto-test"])
            .args(args)
            .output()
    }

    /// `ctr ARGS…`, which must succeed; its stdout.
    fn ctr(&self, args: &[&str]) -> String {
        let output = self.ctr_output(args).expect("run ctr");
        assert!(
            output.status.success(),
            "ctr {}: {}\ncontainerd log:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
        String::from_utf8_lossy(&output.stdout).to_string()
    }

    /// Imports the image `porto image build` makes of `wasm` as `name`.
    fn import(&self, name: &str, wasm: &Path) -> String {
        let tar = self.dir.path().join(format!("{name}.tar"));
        let reference = format!("{name}:test");
        let store = self.dir.path().join("images");
        porto_image(&[
            "build",
            wasm.to_str().expect("utf-8 path"),
            "-t",
            &reference,
            "--store",
            store.to_str().expect("utf-8 path"),
            "-o",
            tar.to_str().expect("utf-8 path"),
        ]);
        self.ctr(&[
            "image",
            "import",
            "--all-platforms",
            tar.to_str().expect("utf-8 path"),
        ]);
        format!("docker.io/library/{reference}")
    }

    fn log_path(&self, id: &str) -> PathBuf {
        self.dir.path().join(format!("{id}.log"))
    }

    /// The container's log so far: what the shim and the guest wrote to
    /// the container's stdout and stderr.
    fn container_log(&self, id: &str) -> String {
        std::fs::read_to_string(self.log_path(id)).unwrap_or_default()
    }

    /// The container's log once it holds `text`: lines reach it through
    /// containerd's FIFOs and `ctr`, after the response they belong to.
    fn container_log_with(&self, id: &str, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.container_log(id);
            if log.contains(text) || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts container `id` of `image` in the network namespace `netns`,
    /// attached as Docker runs one: `ctr run` copies the container's
    /// output (through containerd's FIFOs) to the log and exits with the
    /// container's status, removing it.
    fn run_container(&self, id: &str, image: &str, netns: &str, spec: &ContainerSpec) -> Child {
        let mut args: Vec<String> = [
            "run",
            "--rm",
            "--runtime",
            RUNTIME,
            "--platform",
            "wasi/wasm",
            "--with-ns",
            &format!("network:{netns}"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for (source, target, mode) in &spec.mounts {
            args.push("--mount".into());
            args.push(format!(
                "type=bind,src={},dst={target},options=rbind:{mode}",
                source.display()
            ));
        }
        for (key, value) in &spec.env {
            args.push("--env".into());
            args.push(format!("{key}={value}"));
        }
        args.push(image.to_string());
        args.push(id.to_string());
        let log = std::fs::File::create(self.log_path(id)).expect("container log");
        Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(["--namespace", "porto-test"])
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("ctr run")
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if let Ok(output) = self.ctr_output(&["task", "ls", "-q"]) {
            for id in String::from_utf8_lossy(&output.stdout).lines() {
                let _ = self.ctr_output(&["task", "kill", "--signal", "SIGKILL", id]);
            }
            std::thread::sleep(Duration::from_millis(500));
            for id in String::from_utf8_lossy(&output.stdout).lines() {
                let _ = self.ctr_output(&["task", "delete", "--force", id]);
            }
        }
        if let Ok(output) = self.ctr_output(&["container", "ls", "-q"]) {
            for id in String::from_utf8_lossy(&output.stdout).lines() {
                let _ = self.ctr_output(&["container", "delete", id]);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A shim outlives its containerd; these are this test's alone.
        let _ = Command::new("pkill")
            .arg("-KILL")
            .arg("-f")
            .arg(self.socket.as_os_str())
            .status();
        // Mounts containerd left under its root would keep the temp dir.
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "grep -o ' {}[^ ]*' /proc/self/mounts | sort -r | xargs -r -n1 umount -l",
                self.dir.path().display()
            ))
            .status();
    }
}

#[derive(Default)]
struct ContainerSpec {
    env: Vec<(String, String)>,
    mounts: Vec<(PathBuf, String, &'static str)>,
}

/// The whole test world; dropped (and so removed) last to first.
struct World {
    /// The attached `ctr run` of each running container.
    running: BTreeMap<String, Child>,
    containerd: Containerd,
    network: Network,
    dir: tempfile::TempDir,
    images: BTreeMap<String, String>,
    redis: Option<Child>,
}

impl World {
    fn new() -> Self {
        let containerd = Containerd::start();
        let network = Network::create();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut images = BTreeMap::new();
        for service in SERVICES {
            let image = containerd.import(service, &built_components()[service]);
            images.insert(service.to_string(), image);
        }
        for fixture in ["slow", "counter", "probe_p3"] {
            images.insert(
                fixture.to_string(),
                containerd.import(fixture, &fixtures()[fixture]),
            );
        }
        Self {
            running: BTreeMap::new(),
            containerd,
            network,
            dir,
            images,
            redis: None,
        }
    }

    /// `/etc/hosts` naming the three services at their usual addresses.
    fn hosts_file(&self) -> PathBuf {
        let path = self.dir.path().join("hosts");
        if !path.exists() {
            let mut text = String::from("127.0.0.1 localhost\n");
            for (octet, service) in [
                (10, "api-gateway"),
                (11, "user-service"),
                (12, "order-service"),
            ] {
                text.push_str(&format!("{} {service}\n", self.network.address(octet)));
            }
            std::fs::write(&path, text).expect("write hosts");
            std::fs::write(self.dir.path().join("nsswitch.conf"), "hosts: files dns\n")
                .expect("write nsswitch.conf");
        }
        path
    }

    /// Starts `service`'s image as container `id` at `{subnet}.{octet}`,
    /// with `env` besides the service's own; waits until it answers
    /// `/healthz` (any status: a container denied its bucket answers 5xx).
    fn start(
        &mut self,
        id: &str,
        image: &str,
        octet: u8,
        env: &[(&str, &str)],
        data: Option<&Path>,
    ) -> Client {
        let netns = self.network.host(id, octet);
        let mut spec = ContainerSpec::default();
        spec.mounts
            .push((self.hosts_file(), "/etc/hosts".into(), "ro"));
        spec.mounts.push((
            self.dir.path().join("nsswitch.conf"),
            "/etc/nsswitch.conf".into(),
            "ro",
        ));
        if let Some(data) = data {
            std::fs::create_dir_all(data).expect("data dir");
            spec.mounts.push((data.to_path_buf(), "/data".into(), "rw"));
        }
        spec.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let attached = self
            .containerd
            .run_container(id, &self.images[image], &netns, &spec);
        self.running.insert(id.to_string(), attached);
        let client = Client::new(&format!("http://{}:80", self.network.address(octet)));
        let deadline = Instant::now() + Duration::from_secs(60);
        while client.try_send("GET", "/healthz", &[], None).is_err() {
            if let Some(Ok(Some(status))) = self.running.get_mut(id).map(Child::try_wait) {
                panic!(
                    "{id} exited ({status}); its log:\n{}",
                    self.containerd.container_log(id)
                );
            }
            assert!(
                Instant::now() < deadline,
                "{id} never answered; its log:\n{}\ncontainerd:\n{}",
                self.containerd.container_log(id),
                self.containerd.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        client
    }

    /// The application as Docker runs compose.yaml with porto's shim: each
    /// service's container from its image with the file's runtime, its
    /// `environment` exactly as written (porto's settings included, as
    /// `PORTO_*`), a directory for each named volume at its target, and
    /// the services named on one network, dependencies first.
    fn start_application(&mut self) -> Client {
        let text = std::fs::read_to_string(crate::harness::repo_root().join("compose.yaml"))
            .expect("read compose.yaml");
        let compose: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("yaml");
        let mut gateway = None;
        for (service, octet) in [
            ("user-service", 11),
            ("order-service", 12),
            ("api-gateway", 10),
        ] {
            let entry = &compose["services"][service];
            assert_eq!(
                entry["runtime"], RUNTIME,
                "{service}: the runtime Docker would use"
            );
            let env: Vec<(String, String)> = entry["environment"]
                .as_mapping()
                .into_iter()
                .flatten()
                .map(|(k, v)| {
                    let text = match v {
                        serde_yaml_ng::Value::String(s) => s.clone(),
                        other => serde_yaml_ng::to_string(other)
                            .expect("scalar")
                            .trim()
                            .to_string(),
                    };
                    (k.as_str().expect("name").to_string(), text)
                })
                .collect();
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let volume = entry["volumes"][0].as_str().map(|v| {
                let (name, target) = v.split_once(':').expect("name:target");
                assert_eq!(target, "/data", "{service}");
                self.dir.path().join(name)
            });
            let client = self.start(service, service, octet, &env, volume.as_deref());
            if service == "api-gateway" {
                gateway = Some(client);
            }
        }
        gateway.expect("the gateway")
    }

    /// Sends `signal` to container `id` and waits for it to end; its exit
    /// status.
    fn stop(&mut self, id: &str, signal: &str) -> Option<i32> {
        let mut attached = self.running.remove(id).expect("a running container");
        self.containerd
            .ctr(&["task", "kill", "--signal", signal, id]);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = attached.try_wait().expect("wait for ctr run") {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "{id} did not stop after {signal}: {}",
                self.containerd.container_log(id)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A Redis of the test's own, in a namespace of its own at `.30`.
    fn redis(&mut self) -> String {
        let netns = self.network.host("redis", 30);
        let namespace = netns.rsplit('/').next().expect("namespace").to_string();
        let address = self.network.address(30);
        let child = Command::new("ip")
            .args(["netns", "exec", &namespace, "redis-server"])
            // Reached from other namespaces, so not loopback-only.
            .args([
                "--bind",
                &address,
                "--port",
                "6379",
                "--protected-mode",
                "no",
            ])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.redis = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect((address.as_str(), 6379)).is_err() {
            assert!(Instant::now() < deadline, "redis did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        format!("redis://{address}:6379/?namespace=t{}", std::process::id())
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for (id, attached) in &mut self.running {
            let _ = self
                .containerd
                .ctr_output(&["task", "kill", "--signal", "SIGKILL", id]);
            let _ = attached.kill();
            let _ = attached.wait();
        }
        if let Some(mut redis) = self.redis.take() {
            let _ = redis.kill();
            let _ = redis.wait();
        }
    }
}

/// `scripts/api-walk` against `base`; the transcript.
fn api_walk(base: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let transcript = dir.path().join("transcript.jsonl");
    let output = Command::new("python3")
        .arg(repo_root().join("scripts/api-walk"))
        .arg(base)
        .arg(&transcript)
        .output()
        .expect("run scripts/api-walk");
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{base}: {report}");
    std::fs::read_to_string(&transcript).expect("transcript")
}

/// Bounded by wall-clock time or machine load, or compiling: run one at a
/// time with nothing beside them (tests/e2e/main.rs).
mod alone {
    use super::*;

    /// One test, so that containerd, the network and the images are set up
    /// once and torn down whatever happens; each step says what it proves.
    #[test]
    fn the_services_run_on_containerd_with_porto_s_shim() {
        if let Some(why) = unavailable() {
            // Only where containerd cannot run at all; CI here has it.
            eprintln!("skipping the containerd tests: {why}");
            return;
        }
        let mut world = World::new();

        // The API walk through the gateway container gives porto's transcript.
        let gateway = world.start_application();
        let on_containerd = api_walk(&format!("http://{}:80", world.network.address(10)));
        let porto = Porto::start_default();
        assert_eq!(on_containerd, api_walk(porto.url("api-gateway")));
        drop(porto);
        // grpcio through the gateway container: relayed to user-service's
        // container over the network, statuses in HTTP/1.1 trailers.
        let address = world.network.address(10);
        crate::grpc::check(&crate::grpc::walk(&format!("{address}:80"), &[]), false);
        let log = world.containerd.container_log("user-service");
        assert!(
            log.contains("porto: user-service on http://0.0.0.0:80"),
            "{log}"
        );

        // Every acknowledged write survives a SIGKILL of its container.
        let created = gateway.post_json(
            "/api/users",
            &json!({"name": "Kept Across Kill", "email": "kept@example.com"}),
        );
        assert_eq!(created.status, 201, "{}", created.body);
        let id = created.json()["id"].clone();
        world.stop("user-service", "SIGKILL");
        let users = world.dir.path().join("user-data");
        world.start("user-service", "user-service", 11, USERS, Some(&users));
        let again = gateway.get(&format!("/api/users/{id}"));
        assert_eq!(again.status, 200, "{}", again.body);
        assert_eq!(again.json(), created.json());

        // Outbound calls may go anywhere on the container network unless
        // PORTO_ALLOW_HOSTS narrows them: this gateway may call order-service only.
        let narrow = world.start(
            "gateway-narrow",
            "api-gateway",
            14,
            &[
                ("USER_SERVICE_URL", "http://user-service:80"),
                ("ORDER_SERVICE_URL", "http://order-service:80"),
                ("PORTO_ALLOW_HOSTS", "order-service:80"),
            ],
            None,
        );
        assert_eq!(narrow.get("/api/orders?limit=1").status, 200);
        let refused = narrow.get("/api/users/1");
        assert_eq!(refused.status, 502, "{}", refused.body);
        assert_eq!(refused.error_code(), "upstream_unavailable");
        let log = world
            .containerd
            .container_log_with("gateway-narrow", "outbound request denied");
        assert!(log.contains("outbound request denied"), "{log}");

        // A container may open only the buckets PORTO_BUCKETS names.
        let denied = world.start(
            "orders-denied",
            "order-service",
            13,
            &[
                ("PORTO_BUCKETS", "users"),
                ("USER_SERVICE_URL", "http://user-service:80"),
            ],
            Some(&world.dir.path().join("denied-data")),
        );
        let health = denied.get("/healthz");
        assert!(health.status >= 500, "{}", health.body);
        let log = world
            .containerd
            .container_log_with("orders-denied", "access");
        assert!(log.contains("access"), "{log}");

        // Two user-service containers over one Redis share one truth.
        let redis = world.redis();
        let over_redis = [("PORTO_BUCKETS", "users"), ("PORTO_KV", redis.as_str())];
        let first = world.start("users-a", "user-service", 21, &over_redis, None);
        let second = world.start("users-b", "user-service", 22, &over_redis, None);
        let made = first.post_json(
            "/users",
            &json!({"name": "Shared Truth", "email": "shared@example.com"}),
        );
        assert_eq!(made.status, 201, "{}", made.body);
        let seen = second.get(&format!("/users/{}", made.json()["id"]));
        assert_eq!(seen.json(), made.json());
        let taken = second.post_json(
            "/users",
            &json!({"name": "Other", "email": "shared@example.com"}),
        );
        assert_eq!(taken.status, 409, "{}", taken.body);

        // Instance reuse is the container's to opt into, as in porto:
        // PORTO_MAX_INSTANCE_REUSE=3 gives one instance three requests in turn
        // (the counter fixture answers how many its instance served; the
        // readiness probe is one of them), and without it every count is 1.
        let reusing = world.start(
            "counter-reuse",
            "counter",
            41,
            &[("PORTO_MAX_INSTANCE_REUSE", "3")],
            None,
        );
        let seen: Vec<u64> = (0..6).map(|_| count(&reusing, "/")).collect();
        assert!(seen.contains(&3), "{seen:?}");
        for pair in seen.windows(2) {
            let expected = if pair[0] == 3 { 1 } else { pair[0] + 1 };
            assert_eq!(pair[1], expected, "{seen:?}");
        }
        let fresh = world.start("counter-fresh", "counter", 42, &[], None);
        assert_eq!(
            (0..3).map(|_| count(&fresh, "/")).collect::<Vec<_>>(),
            [1, 1, 1]
        );

        // A WASI 0.3 component runs from its image too, several requests
        // at once in one instance, as many as PORTO_MAX_INSTANCE_CONCURRENCY
        // lets it (the probe fixture reports what its instance served).
        let probe = world.start(
            "probe-p3",
            "probe_p3",
            43,
            &[("PORTO_MAX_INSTANCE_CONCURRENCY", "3")],
            None,
        );
        let replies = staggered(&probe, 5, Duration::from_millis(100), |_| {
            "/wait?ms=800".into()
        });
        let most: Vec<u64> = replies
            .iter()
            .map(|reply| {
                assert_eq!(reply.status, 200, "{}", reply.body);
                reply.json()["most_at_once"].as_u64().expect("most_at_once")
            })
            .collect();
        assert!(most.iter().any(|&n| n >= 2), "{most:?}");
        assert!(most.iter().all(|&n| n <= 3), "{most:?}");

        // SIGTERM drains: a request in flight finishes, then the task exits 0.
        let slow = world.start("slow", "slow", 40, &[], None);
        let in_flight = std::thread::spawn(move || slow.get("/?ms=1500"));
        std::thread::sleep(Duration::from_millis(300));
        let status = world.stop("slow", "SIGTERM");
        let answered = in_flight.join().expect("request thread");
        assert_eq!(answered.status, 200, "{}", answered.body);
        assert_eq!(
            status,
            Some(0),
            "{}",
            world.containerd.container_log("slow")
        );
    }
}
