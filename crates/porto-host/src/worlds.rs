//! The engine and linker of each guest world a stack runs — WASI 0.2 and
//! WASI 0.3 need differently configured engines (`engine.rs`) — made when
//! a component of that world first needs them, and preparing a component
//! with the pair its bytes call for.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use wasmtime::component::Linker;

use crate::abi::{self, GuestAbi};
use crate::engine::{self, Allocator, CacheOutcome};
use crate::error::HostError;
use crate::instance::component::Prepared;
use crate::instance::host::Host;
use crate::instance::p3_client;
use crate::kv;

pub(crate) struct World {
    pub engine: wasmtime::Engine,
    linker: Linker<Host>,
    pub pooling: bool,
}

pub(crate) struct Worlds {
    max_memory_bytes: u64,
    allocator: Allocator,
    instance_pool: NonZeroU32,
    cache_dir: PathBuf,
    /// By [`GuestAbi`].
    worlds: [OnceLock<World>; 2],
    /// Held while a world is made: one engine (and pool) per world.
    making: Mutex<()>,
}

impl Worlds {
    pub(crate) fn new(
        max_memory_bytes: u64,
        allocator: Allocator,
        instance_pool: NonZeroU32,
        cache_dir: PathBuf,
    ) -> Self {
        Self {
            max_memory_bytes,
            allocator,
            instance_pool,
            cache_dir,
            worlds: Default::default(),
            making: Mutex::new(()),
        }
    }

    /// The engine and linker for guests of `abi`, made now if no
    /// component of it came before.
    pub(crate) fn world(&self, abi: GuestAbi) -> Result<&World, HostError> {
        let slot = &self.worlds[abi as usize];
        if let Some(world) = slot.get() {
            return Ok(world);
        }
        let _making = self.making.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(world) = slot.get() {
            return Ok(world);
        }
        let made = engine::new_engine(
            self.max_memory_bytes,
            self.allocator,
            self.instance_pool,
            abi,
        )?;
        engine::start_epoch_ticker(&made.engine);
        let linker = linker(&made.engine, abi).map_err(|e| HostError::Link(e.into()))?;
        Ok(slot.get_or_init(|| World {
            engine: made.engine,
            linker,
            pooling: made.pooling,
        }))
    }

    /// `service`'s component from `wasm` (of sha256 `digest`): its world
    /// read from its exports, compiled (or taken from the compile cache) by
    /// that world's engine and linked.
    pub(crate) fn prepare(
        &self,
        service: &str,
        wasm: &[u8],
        digest: &str,
    ) -> Result<(Prepared, CacheOutcome), HostError> {
        let abi = abi::world_of(service, wasm)?;
        let world = self.world(abi)?;
        let (component, cache) =
            engine::load_component(&world.engine, wasm, digest, &self.cache_dir).map_err(
                |source| HostError::Compile {
                    service: service.to_string(),
                    source: source.into(),
                },
            )?;
        let prepared = Prepared::new(service, abi, &component, digest.to_string(), &world.linker)?;
        Ok((prepared, cache))
    }
}

/// Links everything a guest of `abi` may import: WASI (no filesystem
/// preopens, no sockets allowed), wasi:http, and wasi:keyvalue. A WASI 0.3
/// guest gets WASI 0.2 too: Rust's standard library and most toolchains
/// still bring its imports along.
fn linker(engine: &wasmtime::Engine, abi: GuestAbi) -> wasmtime::Result<Linker<Host>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    match abi {
        GuestAbi::Wasip2 => {
            wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        }
        GuestAbi::Wasip3 => {
            wasmtime_wasi::p3::add_to_linker(&mut linker)?;
            p3_client::add_to_linker(&mut linker)?;
            kv::p3::add_to_linker(&mut linker, Host::kv)?;
        }
    }
    kv::add_to_linker(&mut linker, Host::kv)?;
    Ok(linker)
}
