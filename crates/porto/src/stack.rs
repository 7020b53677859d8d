//! Turning a validated [`App`] and its components into a running
//! [`Runtime`]: one engine, one linker, every service pre-instantiated.
//! `porto up` and the benchmarks build their stacks here.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use wasmtime::component::Linker;

use crate::app::App;
use crate::components::ComponentBytes;
use crate::engine::{self, Allocator, CacheOutcome, EngineInfo};
use crate::host::Host;
use crate::kv::KvBackend;
use crate::metrics::Metrics;
use crate::runtime::{self, Runtime, ServiceRuntime};

pub struct Stack {
    pub runtime: Arc<Runtime>,
    pub engine: EngineInfo,
    pub linker: Linker<Host>,
    /// Per service, in `app.services` order: was the compile cache hit?
    pub cache_report: Vec<CacheOutcome>,
}

impl Stack {
    /// `sources[i]` is the component of `app.services[i]`.
    pub fn assemble(
        app: &App,
        sources: &[ComponentBytes],
        kv: Arc<dyn KvBackend>,
        metrics: Arc<Metrics>,
        cache_dir: &Path,
        allocator: Allocator,
    ) -> anyhow::Result<Self> {
        let max_memory = app
            .services
            .iter()
            .map(|s| s.max_memory_bytes)
            .max()
            .unwrap_or(0);
        let engine = engine::new_engine(max_memory, allocator)?;
        engine::start_epoch_ticker(&engine.engine);
        let linker = runtime::linker(&engine.engine)?;
        let mut services = Vec::new();
        let mut cache_report = Vec::new();
        for (spec, source) in app.services.iter().zip(sources) {
            let (component, outcome) =
                engine::load_component(&engine.engine, &source.wasm, cache_dir)
                    .with_context(|| format!("{}: loading {}", spec.name, source.path.display()))?;
            cache_report.push(outcome);
            services.push(ServiceRuntime::new(
                spec.clone(),
                &component,
                source.digest.clone(),
                &linker,
            )?);
        }
        let runtime = Arc::new(Runtime::new(engine.engine.clone(), kv, metrics, services));
        Ok(Self {
            runtime,
            engine,
            linker,
            cache_report,
        })
    }
}
