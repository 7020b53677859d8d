# Shared by the benchmark scripts: build porto, start and stop it.
# shellcheck shell=bash

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/porto/target}

ensure_wrk() {
  if ! command -v wrk >/dev/null; then
    echo "bench: installing wrk (Debian package)"
    (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null
  fi
}

# The Cargo profile the bench scripts build porto (and native-hello) in:
# dev by default, the build tests use; bench/suite uses host-release.
PORTO_PROFILE=${PORTO_PROFILE:-dev}

# profile_dir PROFILE: the directory under the target dir cargo writes it to.
profile_dir() { if [ "$1" = dev ]; then echo debug; else echo "$1"; fi; }

build_porto() {
  # The cache is shared by every clone (Makefile): build this clone's crates.
  scripts/claim-build-cache
  if [ "$PORTO_PROFILE" != dev ] && [ ! -x "$CARGO_TARGET_DIR/$(profile_dir "$PORTO_PROFILE")/porto" ]; then
    echo "bench: building porto in the $PORTO_PROFILE profile for the first time (wasmtime included: ~20 minutes on 2 cores)"
  fi
  cargo build --quiet --profile "$PORTO_PROFILE" -p porto
  PORTO="$CARGO_TARGET_DIR/$(profile_dir "$PORTO_PROFILE")/porto"
}

# start_porto WORKDIR [porto up flags…]: starts porto on free ports and
# waits for `ready`; sets PORTO_PID and PORTO_OUT.
start_porto() {
  local work=$1
  shift
  PORTO_OUT="$work/porto.out"
  "$PORTO" up --ephemeral-ports --log warn --data "$work/data" --cache-dir .porto/cache "$@" >"$PORTO_OUT" 2>"$work/porto.err" &
  PORTO_PID=$!
  for _ in $(seq 1 600); do
    grep -q '^porto: ready' "$PORTO_OUT" 2>/dev/null && return 0
    kill -0 "$PORTO_PID" 2>/dev/null || break
    sleep 0.2
  done
  echo "bench: porto did not start" >&2
  cat "$work/porto.err" >&2
  return 1
}

stop_porto() {
  kill "$PORTO_PID" 2>/dev/null || true
  wait "$PORTO_PID" 2>/dev/null || true
}

# url_of SERVICE [PORTO_OUTPUT]: the URL a porto printed for SERVICE.
url_of() {
  awk -v s="$1" '$1 == s && $2 ~ /^http/ {print $2}' "${2:-$PORTO_OUT}"
}

# wrk_run NAME URL [wrk flags…] → "NAME rps p50 p99 non2xx"
wrk_run() {
  local name=$1 url=$2
  shift 2
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@" "$url" >"$WORK/wrk-$name"
  awk -v name="$name" '
    /Requests\/sec/ {rps=$2}
    /^ +50%/ {p50=$2}
    /^ +99%/ {p99=$2}
    /Non-2xx/ {errors=$NF}
    END {printf "%s %s %s %s %s\n", name, rps, p50, p99, (errors==""?0:errors)}' "$WORK/wrk-$name"
}

# wait_http URL: until it answers (10 s).
wait_http() {
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench: $1 never answered" >&2
  return 1
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
