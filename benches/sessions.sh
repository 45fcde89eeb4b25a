#!/usr/bin/env bash
# Login and refresh rates on each session store: in process, one Redis, and
# a three-node Redis Cluster, one after the other in ONE run on this machine.
#
#   benches/sessions.sh              # every store, 8 s per scenario
#   DURATION=3 benches/sessions.sh   # shorter
#
# Installs what it lacks from Debian's packages (nginx, wrk, redis-server),
# builds minigate in release mode, and prints a markdown table. The code
# exchange is a stand-in (nginx answering jscode2session with an openid made
# from the code), so what is measured is the gateway and its store. Scenarios:
#   login, many users   phone logins of distinct users (one new session each)
#   login, one PC       PC logins of one user with pc = 1: every login ends the
#                       previous session (the limit, the eviction, its publication)
#   refresh             the first logins' sessions refreshed in chains (each answer's refresh
#                       token is the next request's)
# Everything listens on 127.0.0.1; minigate gets the machine's 2 cores, wrk
# one thread, Redis one core per node.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-8}
WORK=$(mktemp -d /tmp/minigate-sessions.XXXXXX)
PIDS=()
cleanup() {
  [[ -f $WORK/nginx/pid ]] && PIDS+=("$(cat "$WORK/nginx/pid")")
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.3
  rm -rf "$WORK"
}
trap cleanup EXIT

. benches/common.sh
need_commands nginx wrk redis-server
ulimit -n "$(ulimit -Hn)"
build_release minigate

WECHAT=18185 UNUSED=18186 GATE=18184 REDIS=18190 C1=18191 C2=18192 C3=18193
mkdir -p "$WORK/keys" "$WORK/r" "$WORK/c1" "$WORK/c2" "$WORK/c3"
"$BIN/minigate" keys init --dir "$WORK/keys" >/dev/null

# The stand-in code exchange: one user per code. (Its `return 200` upstream
# on $UNUSED is not used here.)
start_upstream "$WORK/nginx" $UNUSED $WECHAT 'o-$arg_js_code'

redis() { # PORT DIR [args...]
  local port=$1 dir=$2
  shift 2
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" "$@" \
    >/dev/null 2>&1 &
  PIDS+=("$!")
  wait_port "$port"
}
redis $REDIS "$WORK/r"
for p in $C1 $C2 $C3; do
  redis $p "$WORK/c${p: -1}" --cluster-enabled yes --cluster-config-file nodes.conf
done
redis-cli --cluster create 127.0.0.1:$C1 127.0.0.1:$C2 127.0.0.1:$C3 \
  --cluster-replicas 0 --cluster-yes >/dev/null
until redis-cli -p $C1 cluster info | grep -q cluster_state:ok; do sleep 0.1; done

wrk_scripts "$WORK"

ROWS=()
run() { # STORE SCENARIO CONNS [wrk args...]
  local store=$1 name=$2 conns=$3
  shift 3
  local out rps p99 bad
  out=$(wrk -t1 -c"$conns" -d"${DURATION}s" --timeout 10s --latency "$@" 2>&1)
  rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' <<<"$out")
  p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
  bad=$(awk '/Non-2xx/ { print $NF }' <<<"$out")
  ROWS+=("| $store | $name | $conns | $rps | $p99 | ${bad:-0} |")
  echo "  $store, $name: $rps req/s, p99 $p99" >&2
}

for store in memory redis redis-cluster; do
  case $store in
    memory) sessions="max_sessions = 2000000" ;;
    redis) sessions="redis_url = \"redis://127.0.0.1:$REDIS/0\"" ;;
    redis-cluster) sessions="redis_cluster = [\"redis://127.0.0.1:$C1\", \"redis://127.0.0.1:$C2\", \"redis://127.0.0.1:$C3\"]" ;;
  esac
  cat >"$WORK/minigate.toml" <<EOF
listen = "127.0.0.1:$GATE"
[tokens]
issuer = "https://bench.minigate"
audience = "api"
[keys]
dir = "$WORK/keys"
[sessions]
$sessions
[server]
login_per_minute = 0
[[providers]]
platform = "wechat"
appid = "wx0123456789abcdef"
secret_env = "LOAD_WECHAT_SECRET"
base_url = "http://127.0.0.1:$WECHAT"
EOF
  LOAD_WECHAT_SECRET=load-secret RUST_LOG=error "$BIN/minigate" serve --config "$WORK/minigate.toml" \
    2>"$WORK/minigate-$store.log" &
  pid=$!
  PIDS+=("$pid")
  wait_port $GATE
  # The refreshes are of the sessions the first logins make (a session may
  # refresh 10 times a minute: a few hundred chains would hit that).
  run $store "login, many users" 64 -s "$WORK/login.lua" "http://127.0.0.1:$GATE" -- phone "$WORK/seeds"
  run $store "login, one PC" 64 -s "$WORK/login.lua" "http://127.0.0.1:$GATE" -- pc
  run $store "refresh" 64 -s "$WORK/refresh.lua" "http://127.0.0.1:$GATE" -- "$WORK/seeds"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
done

echo
echo "minigate session store rates, $(date -u +%Y-%m-%d), $(nproc) cores, $(uname -r), ${DURATION}s per run, wrk -t1"
echo
echo "| store | scenario | conns | req/s | p99 | non-2xx |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
