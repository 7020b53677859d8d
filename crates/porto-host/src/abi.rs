//! Which `wasi:http` world a component serves, read from its bytes before
//! it is compiled: the two worlds need differently configured engines
//! (WASI 0.3's async machinery costs the 0.2 path when it is on), so the
//! choice comes first.
//!
//! A component's top-level exports say it: `wasi:http/incoming-handler@0.2.x`
//! is WASI 0.2, `wasi:http/handler@0.3.x` WASI 0.3. Versions are matched as
//! wasmtime links them: any 0.2.z or 0.3.z release, no pre-release (the
//! 0.3 release candidates have another shape).

use wasmparser::{Parser, Payload};

use crate::error::HostError;

/// How porto calls a component's `wasi:http` export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GuestAbi {
    /// `wasi:http/incoming-handler@0.2.x`.
    Wasip2,
    /// `wasi:http/handler@0.3.x`.
    Wasip3,
}

const P2_EXPORT: &str = "wasi:http/incoming-handler@0.2.";
const P3_EXPORT: &str = "wasi:http/handler@0.3.";

/// Why a component is not one porto can serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NotServable {
    #[error("not a WebAssembly component ({0})")]
    Unreadable(String),
    #[error(
        "a core WebAssembly module, not a component: build it for wasm32-wasip2 \
         (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule,
    #[error(
        "exports no wasi:http handler porto serves (it exports: {}); porto serves \
         components exporting wasi:http/incoming-handler@0.2.x (WASI 0.2) or \
         wasi:http/handler@0.3.x (WASI 0.3)",
        list(.0)
    )]
    NoHandler(Vec<String>),
}

fn list(exports: &[String]) -> String {
    if exports.is_empty() {
        "nothing".into()
    } else {
        exports.join(", ")
    }
}

/// The world `wasm` serves. A component exporting both handlers is served
/// as WASI 0.3, as `wasmtime serve` does.
pub(crate) fn guest_abi(wasm: &[u8]) -> Result<GuestAbi, NotServable> {
    let exports = top_level_exports(wasm)?;
    let released = |name: &str, prefix: &str| {
        name.strip_prefix(prefix)
            .is_some_and(|patch| !patch.is_empty() && patch.bytes().all(|b| b.is_ascii_digit()))
    };
    if exports.iter().any(|name| released(name, P3_EXPORT)) {
        Ok(GuestAbi::Wasip3)
    } else if exports.iter().any(|name| released(name, P2_EXPORT)) {
        Ok(GuestAbi::Wasip2)
    } else {
        Err(NotServable::NoHandler(exports))
    }
}

/// The world of `service`'s component `wasm`, or the error that refuses it.
pub(crate) fn world_of(service: &str, wasm: &[u8]) -> Result<GuestAbi, HostError> {
    guest_abi(wasm).map_err(|why| HostError::NotServable {
        service: service.to_string(),
        why: why.to_string(),
    })
}

/// The names a component exports at its top level (nested components'
/// and modules' own exports are theirs, not the component's).
fn top_level_exports(wasm: &[u8]) -> Result<Vec<String>, NotServable> {
    let mut exports = Vec::new();
    // Every module and component inside begins with its own `Version`
    // and closes with its own `End`.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(|e| NotServable::Unreadable(e.message().to_string()))? {
            Payload::Version { encoding, .. } => {
                if depth == 0 && encoding == wasmparser::Encoding::Module {
                    return Err(NotServable::CoreModule);
                }
                depth += 1;
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentExportSection(section) if depth == 1 => {
                for export in section {
                    let export =
                        export.map_err(|e| NotServable::Unreadable(e.message().to_string()))?;
                    exports.push(export.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok(exports)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A component exporting an (empty) instance under each name.
    fn exporting(names: &[&str]) -> Vec<u8> {
        let exports: String = names
            .iter()
            .map(|name| format!("(export \"{name}\" (instance $i))"))
            .collect();
        wat::parse_str(format!("(component (instance $i) {exports})")).expect("component text")
    }

    #[test]
    fn each_release_of_each_world_is_told_apart() {
        for version in ["0.2.0", "0.2.6", "0.2.12"] {
            let wasm = exporting(&[&format!("wasi:http/incoming-handler@{version}")]);
            assert_eq!(guest_abi(&wasm), Ok(GuestAbi::Wasip2), "{version}");
        }
        for version in ["0.3.0", "0.3.1", "0.3.2"] {
            let wasm = exporting(&[&format!("wasi:http/handler@{version}")]);
            assert_eq!(guest_abi(&wasm), Ok(GuestAbi::Wasip3), "{version}");
        }
    }

    #[test]
    fn a_component_exporting_both_is_served_as_wasip3() {
        let wasm = exporting(&[
            "wasi:http/incoming-handler@0.2.6",
            "wasi:http/handler@0.3.0",
        ]);
        assert_eq!(guest_abi(&wasm), Ok(GuestAbi::Wasip3));
    }

    #[test]
    fn anything_else_is_refused_naming_what_it_exports() {
        let rc = exporting(&[
            "wasi:http/handler@0.3.0-rc-2025-09-16",
            "wasi:cli/run@0.2.0",
        ]);
        let refusal = guest_abi(&rc).expect_err("a release candidate").to_string();
        assert!(
            refusal.contains("wasi:http/handler@0.3.0-rc-2025-09-16, wasi:cli/run@0.2.0"),
            "{refusal}"
        );
        assert_eq!(
            guest_abi(&exporting(&[])),
            Err(NotServable::NoHandler(Vec::new()))
        );
        assert!(
            guest_abi(&exporting(&["wasi:http/incoming-handler@0.2"])).is_err(),
            "no patch version"
        );
    }

    #[test]
    fn a_nested_components_exports_are_not_the_components() {
        let wasm = wat::parse_str(
            "(component
               (component $inner (instance $i) (export \"wasi:http/handler@0.3.0\" (instance $i)))
               (instance $i)
               (export \"wasi:cli/run@0.2.0\" (instance $i)))",
        )
        .expect("component text");
        assert_eq!(
            guest_abi(&wasm),
            Err(NotServable::NoHandler(vec!["wasi:cli/run@0.2.0".into()]))
        );
    }

    #[test]
    fn core_modules_and_garbage_are_refused_clearly() {
        let module = wat::parse_str("(module)").expect("module text");
        assert_eq!(guest_abi(&module), Err(NotServable::CoreModule));
        assert!(matches!(
            guest_abi(b"not wasm at all"),
            Err(NotServable::Unreadable(_))
        ));
    }
}
