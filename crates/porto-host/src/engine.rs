//! The wasmtime [`Engine`]s, one per guest world a stack runs, and the
//! on-disk cache of compiled components.
//!
//! WASI 0.3 guests need wasmtime's concurrency support (tasks, streams,
//! futures); WASI 0.2 guests run faster without its bookkeeping, so each
//! world gets an engine configured for it.
//!
//! The engine uses the pooling allocator when the machine lets it reserve
//! the address space (probed, as `wasmtime serve` does; constrained
//! containers and some CPUs cannot) and epoch interruption for request
//! deadlines. Compiling a component takes seconds; loading a precompiled
//! one takes milliseconds, so every component is compiled once per
//! (wasm bytes, engine configuration) and kept under `cache_dir`.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::abi::GuestAbi;
use crate::error::HostError;
use crate::policy::limits::{
    CORE_INSTANCES_PER_COMPONENT, EPOCH_TICK, KEEP_RESIDENT_BYTES, KEEP_RESIDENT_TABLE_BYTES,
};

pub(crate) struct EngineInfo {
    pub engine: Engine,
    pub pooling: bool,
}

/// How instances get their memories, tables and stacks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Allocator {
    /// The pooling allocator where the machine can reserve its address
    /// space and is not an emulator; on demand otherwise, with a log line.
    #[default]
    Auto,
    /// The pooling allocator, or an error if it cannot be set up.
    Pooling,
    /// mmap per instance: slower, but reserves nothing up front.
    OnDemand,
}

/// Fiber stacks one WASI 0.3 instance may hold at once: a task that
/// blocks in a synchronous call keeps one while the others go on.
const P3_STACKS_PER_INSTANCE: u32 = 4;

/// Builds the engine for guests of world `abi`; `max_memory_bytes` is the
/// largest memory any service may grow to, `instance_pool` the component
/// instances a pooling allocator holds at once.
pub(crate) fn new_engine(
    max_memory_bytes: u64,
    allocator: Allocator,
    instance_pool: NonZeroU32,
    abi: GuestAbi,
) -> Result<EngineInfo, HostError> {
    if !host_has_vector_unit() {
        return Err(HostError::NoVectorUnit);
    }
    if allocator == Allocator::Auto
        && let Some(emulator) = user_mode_emulator()
    {
        // qemu-user keeps a record for every page the guest maps, even
        // PROT_NONE: the pool's terabytes of reservation become tens of
        // GiB of qemu's own memory and the OOM killer ends porto.
        tracing::warn!(
            emulator,
            "running under user-mode emulation; allocating instances on demand"
        );
        return on_demand(abi);
    }
    if allocator == Allocator::OnDemand {
        return on_demand(abi);
    }
    let mut config = base_config(abi);
    let mut pool = PoolingAllocationConfig::default();
    let component_instances = instance_pool.get();
    let core_instances = component_instances.saturating_mul(CORE_INSTANCES_PER_COMPONENT);
    pool.total_component_instances(component_instances)
        .total_core_instances(core_instances)
        .total_tables(core_instances)
        // One linear memory per component: the shims use their module's.
        .total_memories(component_instances)
        // One fiber stack per WASI 0.2 instance: each runs its request on
        // one.
        .total_stacks(match abi {
            GuestAbi::Wasip2 => component_instances,
            GuestAbi::Wasip3 => component_instances.saturating_mul(P3_STACKS_PER_INSTANCE),
        })
        .max_memory_size(usize::try_from(max_memory_bytes).unwrap_or(usize::MAX))
        .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(KEEP_RESIDENT_TABLE_BYTES)
        // Where the kernel has PAGEMAP_SCAN (Linux 6.7+), only the pages an
        // instance dirtied are reset, instead of memset over the whole
        // kept-resident prefix.
        .pagemap_scan(Enabled::Auto);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    match Engine::new(&config) {
        Ok(engine) => Ok(EngineInfo {
            engine,
            pooling: true,
        }),
        Err(err) if allocator == Allocator::Auto => {
            // E.g. riscv64 with Sv39 paging: 256 GiB of user address space
            // cannot hold a pool of 4 GiB reservations.
            tracing::warn!(error = %err, "pooling allocator unavailable here; allocating instances on demand");
            on_demand(abi)
        }
        Err(err) => Err(HostError::PoolingUnavailable(err.into())),
    }
}

fn on_demand(abi: GuestAbi) -> Result<EngineInfo, HostError> {
    let mut config = base_config(abi);
    config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
    Ok(EngineInfo {
        engine: Engine::new(&config).map_err(|e| HostError::Engine(e.into()))?,
        pooling: false,
    })
}

/// The emulator porto runs under, if it can tell: qemu-user passes the
/// host's /proc through, so the process is named after qemu (unless run
/// via binfmt_misc) and /proc/cpuinfo describes the host's CPU.
fn user_mode_emulator() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let name = status
        .lines()
        .find_map(|line| line.strip_prefix("Name:"))
        .map(str::trim)
        .unwrap_or_default();
    if name.starts_with("qemu-") {
        return Some(name.to_string());
    }
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    // Only x86 kernels write `vendor_id`; seen by a non-x86 build, the
    // CPU is being emulated.
    let x86_kernel = cpuinfo.lines().any(|line| line.starts_with("vendor_id"));
    let x86_build = matches!(std::env::consts::ARCH, "x86" | "x86_64");
    (x86_kernel && !x86_build).then(|| format!("{} on an x86 host", std::env::consts::ARCH))
}

fn base_config(abi: GuestAbi) -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.memory_init_cow(true);
    // WASI 0.2 components never run concurrently inside one store; with
    // the bookkeeping for it on, every host call and store teardown pays
    // for it (BENCHMARKS.md).
    config.concurrency_support(abi == GuestAbi::Wasip3);
    config
}

/// riscv64 CPUs may lack the V extension (RVA23 requires it, earlier
/// profiles do not); every other architecture porto builds for has SIMD.
/// Measured with wasmtime 48 under qemu-riscv64: without V, Cranelift
/// panics compiling any wasm32-wasip2 component, SIMD disabled or not.
#[cfg(target_arch = "riscv64")]
fn host_has_vector_unit() -> bool {
    const HWCAP_V: libc::c_ulong = 1 << (b'V' - b'A');
    // SAFETY: getauxval only reads the auxiliary vector the kernel (or
    // qemu-user) gave this process.
    unsafe { libc::getauxval(libc::AT_HWCAP) & HWCAP_V != 0 }
}

#[cfg(not(target_arch = "riscv64"))]
fn host_has_vector_unit() -> bool {
    true
}

/// Turns library backtraces off unless `RUST_LIB_BACKTRACE` asks for them.
/// wasmtime builds an error (and so a backtrace, when RUST_BACKTRACE is
/// set) while tearing down every instance; capturing it costs ~6 % of a
/// request. Panics still honour RUST_BACKTRACE.
///
/// # Safety
///
/// Sets an environment variable: call it before any other thread exists.
pub unsafe fn library_backtraces_off_unless_asked() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: the caller guarantees no other thread exists.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
}

/// Advances the engine's epoch forever on a background thread.
pub(crate) fn start_epoch_ticker(engine: &Engine) {
    let engine = engine.weak();
    std::thread::Builder::new()
        .name("porto-epoch".into())
        .spawn(move || {
            while let Some(engine) = engine.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .ok();
}

/// The sha256 of a component's bytes, in hex: how porto names a build.
pub fn wasm_digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Whether a component came from the cache or was compiled now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Miss,
}

/// Loads `wasm`, whose [`wasm_digest`] is `digest`, from the compile
/// cache, compiling and storing it on a miss.
pub(crate) fn load_component(
    engine: &Engine,
    wasm: &[u8],
    digest: &str,
    cache_dir: &Path,
) -> Result<(Component, CacheOutcome), wasmtime::Error> {
    let path = cache_path(engine, digest, cache_dir);
    if path.exists() {
        // SAFETY: the file was written by `Component::serialize` of this
        // porto build (the key includes the engine's compatibility hash)
        // into porto's own cache directory; wasmtime also checks its
        // header and refuses artifacts of another engine.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => return Ok((component, CacheOutcome::Hit)),
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "ignoring unusable cache entry")
            }
        }
    }
    let component = Component::new(engine, wasm)?;
    if let Err(err) = store_artifact(&path, &component.serialize()?) {
        tracing::warn!(path = %path.display(), error = %err, "could not write compile cache");
    }
    Ok((component, CacheOutcome::Miss))
}

fn cache_path(engine: &Engine, digest: &str, cache_dir: &Path) -> PathBuf {
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    cache_dir.join(format!("{}-{:016x}.cwasm", &digest[..32], hasher.finish()))
}

/// Writes via a temporary file and rename, so a crash never leaves a
/// truncated artifact under the final name.
fn store_artifact(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// What a component imports and exports: the interfaces any runtime that
/// hosts it must provide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interfaces {
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

/// Reads components' [`Interfaces`], with one engine configured as porto's
/// for all of them.
pub struct Inspector {
    engines: [std::sync::OnceLock<Engine>; 2],
    cache_dir: std::path::PathBuf,
}

impl Inspector {
    /// Compiled components are taken from, and kept in, `cache_dir`.
    pub fn new(cache_dir: &Path) -> Result<Self, HostError> {
        Ok(Self {
            engines: Default::default(),
            cache_dir: cache_dir.to_path_buf(),
        })
    }

    /// The engine porto would compile a component of world `abi` with.
    fn engine(&self, abi: GuestAbi) -> Result<&Engine, HostError> {
        let slot = &self.engines[abi as usize];
        if let Some(engine) = slot.get() {
            return Ok(engine);
        }
        let engine = new_engine(
            crate::policy::limits::Limits::default().max_memory_bytes,
            // As porto's, so the compile cache serves both.
            Allocator::Auto,
            crate::policy::limits::DEFAULT_INSTANCE_POOL,
            abi,
        )?
        .engine;
        Ok(slot.get_or_init(|| engine))
    }

    /// The interfaces of `wasm`, the component called `name`.
    pub fn interfaces(&self, name: &str, wasm: &[u8]) -> Result<Interfaces, HostError> {
        let engine = self.engine(crate::abi::world_of(name, wasm)?)?;
        let (component, _) = load_component(engine, wasm, &wasm_digest(wasm), &self.cache_dir)
            .map_err(|e| HostError::Compile {
                service: name.to_string(),
                source: e.into(),
            })?;
        let ty = component.component_type();
        Ok(Interfaces {
            imports: ty
                .imports(engine)
                .map(|(name, _)| name.to_string())
                .collect(),
            exports: ty
                .exports(engine)
                .map(|(name, _)| name.to_string())
                .collect(),
        })
    }
}
