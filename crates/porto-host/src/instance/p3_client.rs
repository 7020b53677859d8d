//! `wasi:http/client@0.3` for WASI 0.3 guests: wasmtime-wasi-http's own
//! client, once the guest task making the call is named to the instance's
//! hooks (`hooks.rs`), so the call carries its request's id, trace and
//! rules even while other requests share the instance.

use wasmtime::AsContextMut as _;
use wasmtime::component::{Accessor, HasData, Linker, Resource};
use wasmtime_wasi::TrappableError;
use wasmtime_wasi_http::p3::bindings::http::{client, types};
use wasmtime_wasi_http::{WasiHttp, WasiHttpCtxView, WasiHttpView};

use crate::instance::host::Host;

struct AttributedClient;

impl HasData for AttributedClient {
    type Data<'a> = WasiHttpCtxView<'a>;
}

impl client::HostWithStore<Host> for AttributedClient {
    async fn send(
        store: &Accessor<Host, Self>,
        request: Resource<types::Request>,
    ) -> Result<Resource<types::Response>, TrappableError<types::ErrorCode>> {
        // The call stack is the calling task's only now, before the first
        // await; its last entry is the `handle` call porto started.
        store.with(|mut access| {
            let task = access
                .as_context_mut()
                .async_call_stack()
                .ok()
                .and_then(|stack| stack.last());
            access.data_mut().set_current_task(task);
        });
        let plain = store.with_getter::<WasiHttp>(<Host as WasiHttpView>::http);
        <WasiHttp as client::HostWithStore<Host>>::send(&plain, request).await
    }
}

/// Links `wasi:http@0.3` (its types as wasmtime-wasi-http has them, its
/// client attributed).
pub(crate) fn add_to_linker(linker: &mut Linker<Host>) -> wasmtime::Result<()> {
    client::add_to_linker::<Host, AttributedClient>(linker, <Host as WasiHttpView>::http)?;
    types::add_to_linker::<Host, WasiHttp>(linker, <Host as WasiHttpView>::http)?;
    Ok(())
}
