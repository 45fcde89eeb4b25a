#!/usr/bin/env bash
# A profile-guided (PGO) build of minigate: the release build, laid out and
# inlined by the compiler from a profile of the gateway at work.
#
#   benches/pgo.sh                 # writes target/pgo/minigate
#   SECONDS_EACH=10 benches/pgo.sh # a longer training load (3 s a scenario)
#   MINIGATE_VARIANTS="pgo=target/pgo/minigate" benches/load.sh
#
# 1. builds minigate instrumented (`-Cprofile-generate`, in target/pgo-gen);
# 2. runs it through a training load: behind the benchmarks' nginx upstream
#    and stand-in code exchange, wrk sends the proxied hot token, the public
#    route, 20,000 distinct tokens (verified, then cached), requests without
#    a token and with a malformed one, forward-auth checks, logins and
#    chained refreshes over plain HTTP/1.1; and a second gateway with `[tls]`
#    takes the hot token over TLS, in HTTP/1.1 (wrk) and HTTP/2 (h2load);
# 3. merges the profiles with the llvm-profdata of rustc's own LLVM version
#    (the llvm-tools component if installed, else Debian's llvm-N);
# 4. builds minigate again with the profile (`-Cprofile-use`, in
#    target/pgo-use) and copies it, and the profile, to target/pgo/.
#
# What the training load never does (WebSocket tunnels, the web sign-in,
# other platforms' logins, Redis stores) is compiled as if rarely run:
# correct, but not tuned. Both builds are full release builds (fat LTO): about
# twice the time of `cargo build --release`. The profile belongs to the
# source it was made from: run this again after changing the code. The
# Dockerfile's build stage runs this script with --build-arg PGO=1, so that
# image ships the profile-guided build.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${SECONDS_EACH:-3}
. benches/common.sh
need_commands nginx wrk h2load=nghttp2-client openssl curl
T=${CARGO_TARGET_DIR:-target}
# Relative paths would be read from each crate's directory.
T=$(realpath -m "$T")

WORK=$(mktemp -d /tmp/minigate-pgo.XXXXXX)
PIDS=()
cleanup() {
  [[ -f $WORK/up/pid ]] && PIDS+=("$(cat "$WORK/up/pid")")
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# llvm-profdata must read the format of rustc's LLVM.
LLVM=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
PROFDATA=$(ls "$(rustc --print sysroot)"/lib/rustlib/*/bin/llvm-profdata 2>/dev/null | head -n1 || true)
if [[ -z $PROFDATA ]]; then
  need_commands "llvm-profdata-$LLVM=llvm-$LLVM"
  PROFDATA=llvm-profdata-$LLVM
fi

echo "building minigate instrumented (1 of 2)" >&2
# Build scripts are instrumented too and write where -Cprofile-generate
# says; the gateway's own runs write to $WORK/train (LLVM_PROFILE_FILE).
RUSTFLAGS="-Cprofile-generate=$WORK/build-scripts" CARGO_TARGET_DIR=$T/pgo-gen \
  cargo build --release --quiet -p minigate -p minigate-benches
GEN=$T/pgo-gen/release

UP=18281 WECHAT=18282 PLAIN=18283 TLS=18284
start_upstream "$WORK/up" $UP $WECHAT 'o-$arg_js_code'
LLVM_PROFILE_FILE="$WORK/discard/%p.profraw" "$GEN/mint" "$WORK/keys" 20000 >/dev/null
HOT=$(head -n1 "$WORK/keys/tokens.txt")
wrk_scripts "$WORK"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=localhost -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null

TOKENS_EXTRA='refresh_ttl = "30d"' \
  SERVER_EXTRA='login_per_minute = 0' \
  TABLES_EXTRA="[[providers]]
platform = \"wechat\"
appid = \"wx0123456789abcdef\"
secret_env = \"PGO_WECHAT_SECRET\"
base_url = \"http://127.0.0.1:$WECHAT\"" \
  minigate_config $PLAIN $UP "$WORK/keys" >"$WORK/plain.toml"
TABLES_EXTRA="[tls]
cert = \"$WORK/cert.pem\"
key = \"$WORK/key.pem\"" \
  minigate_config $TLS $UP "$WORK/keys" >"$WORK/tls.toml"
for name in plain tls; do
  LLVM_PROFILE_FILE="$WORK/train/$name-%p.profraw" PGO_WECHAT_SECRET=pgo-secret RUST_LOG=warn \
    "$GEN/minigate" serve --config "$WORK/$name.toml" 2>"$WORK/$name.log" &
  PIDS+=("$!")
done
for p in $UP $WECHAT $PLAIN $TLS; do wait_port "$p" "$WORK"/*.log; done

load() { # wrk arguments
  wrk -t1 -c32 -d"${SECONDS_EACH}s" "$@" >/dev/null
}
G=http://127.0.0.1:$PLAIN
echo "training: ${SECONDS_EACH}s per scenario" >&2
load -H "Authorization: Bearer $HOT" "$G/x"
load "$G/public/x"
load -s "$WORK/pool.lua" "$G/x" -- "$WORK/keys/tokens.txt"
load "$G/x"
load -H "Authorization: Bearer not.a-token" "$G/x"
load -H "Authorization: Bearer $HOT" -H "X-Forwarded-Method: GET" -H "X-Forwarded-Uri: /x" \
  "$G/auth/verify"
load -s "$WORK/login.lua" "$G" -- - "$WORK/seeds"
load -s "$WORK/refresh.lua" "$G" -- "$WORK/seeds"
load -H "Authorization: Bearer $HOT" "https://127.0.0.1:$TLS/x"
h2load -c16 -m10 -D "$SECONDS_EACH" -H "authorization: Bearer $HOT" \
  "https://127.0.0.1:$TLS/x" >/dev/null
# A clean stop, so that each process writes its profile.
for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
PIDS=()
ls "$WORK"/train/*.profraw >/dev/null
mkdir -p "$T/pgo"
"$PROFDATA" merge -o "$T/pgo/minigate.profdata" "$WORK"/train/*.profraw

echo "building minigate with the profile (2 of 2)" >&2
RUSTFLAGS="-Cprofile-use=$T/pgo/minigate.profdata" CARGO_TARGET_DIR=$T/pgo-use \
  cargo build --release --quiet -p minigate
cp "$T/pgo-use/release/minigate" "$T/pgo/minigate"
echo "$T/pgo/minigate"
