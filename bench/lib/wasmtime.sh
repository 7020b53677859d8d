# `wasmtime serve`, the reference runtime: the CLI of the very wasmtime
# version porto embeds (read from Cargo.toml), found or installed once.
# shellcheck shell=bash

WASMTIME_VERSION=$(sed -n 's/^wasmtime = .*"=\([0-9.]*\)".*/\1/p' Cargo.toml)
WASMTIME_TOOLS="${PORTO_CACHE_DIR:-$HOME/.cache/porto}/tools"

# Prints a wasmtime binary of $WASMTIME_VERSION: $WASMTIME, PATH or porto's
# tool cache; installs it there with cargo unless INSTALL_WASMTIME=0.
# Prints nothing if there is none.
find_wasmtime() {
  local candidate
  for candidate in "${WASMTIME:-}" "$(command -v wasmtime || true)" "$WASMTIME_TOOLS/bin/wasmtime"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" --version | grep -q "$WASMTIME_VERSION"; then
      echo "$candidate"
      return
    fi
  done
  if [ "${INSTALL_WASMTIME:-1}" = 1 ]; then
    echo "installing wasmtime-cli $WASMTIME_VERSION with cargo into $WASMTIME_TOOLS (once; ~20 min on 2 cores)" >&2
    if CARGO_TARGET_DIR="$WASMTIME_TOOLS/target" cargo install --quiet --locked wasmtime-cli \
      --version "$WASMTIME_VERSION" --root "$WASMTIME_TOOLS" >&2; then
      rm -rf "$WASMTIME_TOOLS/target"
      echo "$WASMTIME_TOOLS/bin/wasmtime"
    fi
  fi
}
