#!/usr/bin/env bash
# The load comparison: minigate against nginx (a plain reverse proxy that
# checks nothing) and HAProxy (jwt_verify ES256 on every request), all in
# front of one nginx upstream, measured in turn in ONE run on this machine;
# and minigate's forward-auth decision (GET /auth/verify, the hot token,
# Traefik's X-Forwarded-Method/-Uri naming a required route) beside its
# proxied hot token.
#
#   benches/load.sh              # every scenario, 8 s each
#   DURATION=4 benches/load.sh   # shorter
#   MINIGATE_VARIANTS="base=/path/to/minigate glibc=/path/to/other" benches/load.sh
#                                # also other minigate builds, side by side
#   PGO=1 benches/load.sh        # also the profile-guided build (benches/pgo.sh)
#
# Every row has the server's CPU time per request: utime + stime of the
# server's own processes (read from /proc/<pid>/stat, children included, so
# nginx's workers count) before and after the wrk run, divided by the
# requests done. The upstream is its own nginx, so no figure includes it.
# The run writes its rows to $OUT/load.csv (OUT defaults to
# benches/results) and draws $OUT/load.svg from it (benches/plot.py).
#
# Installs what it lacks from Debian's packages (nginx, haproxy, wrk), builds
# minigate in release mode, and prints a markdown table: req/s, p50, p99,
# non-2xx, peak RSS of the server under test, the ratios of minigate to nginx
# and to HAProxy, and of forward-auth to proxying. Everything listens on
# 127.0.0.1; every server gets 2 workers/threads (the machine's cores); wrk
# runs one thread, as in the anchors of the performance issue.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-8}
OUT=${OUT:-benches/results}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/minigate-load.XXXXXX)
PIDS=()
cleanup() {
  for f in "$WORK"/nginx-up/pid "$WORK"/nginx-proxy/pid "$WORK"/haproxy.pid; do
    [[ -f $f ]] && PIDS+=("$(cat "$f")")
  done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [[ -n ${HOLD_PID:-} ]] && kill "$HOLD_PID" 2>/dev/null
  sleep 0.3
  rm -rf "$WORK"
}
trap cleanup EXIT

. benches/common.sh
need_commands nginx haproxy wrk
ulimit -n "$(ulimit -Hn)"
# HAProxy needs two descriptors per connection it may hold.
HAPROXY_MAXCONN=$(( $(ulimit -n) / 2 - 100 ))
((HAPROXY_MAXCONN > 10000)) && HAPROXY_MAXCONN=10000
build_release minigate minigate-benches
if [[ ${PGO:-0} == 1 ]]; then
  PGO_BIN=$(benches/pgo.sh | tail -n1)
  MINIGATE_VARIANTS="pgo=$PGO_BIN ${MINIGATE_VARIANTS:-}"
fi

UP=18081 NGINX=18082 HAPROXY=18083 MINIGATE=18084 WECHAT=18085

# Keys and 100,000 distinct tokens (plus the PEM HAProxy verifies with).
"$BIN/mint" "$WORK/keys" 100000
HOT=$(head -n1 "$WORK/keys/tokens.txt")

mkdir -p "$WORK/nginx-proxy"
cat >"$WORK/nginx-proxy/nginx.conf" <<EOF
worker_processes 2;
worker_rlimit_nofile 100000;
pid $WORK/nginx-proxy/pid;
error_log $WORK/nginx-proxy/error.log crit;
events { worker_connections 30000; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream up { server 127.0.0.1:$UP; keepalive 256; }
  server {
    listen 127.0.0.1:$NGINX backlog=8192;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
cat >"$WORK/haproxy.cfg" <<EOF
global
  nbthread 2
  maxconn $HAPROXY_MAXCONN
  log stderr format raw local0 emerg
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
frontend fe
  bind 127.0.0.1:$HAPROXY
  maxconn $HAPROXY_MAXCONN
  acl public path_beg /public/
  http-request set-var(txn.bearer) http_auth_bearer
  http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('\$.alg')
  http-request deny status 401 if !public !{ var(txn.alg) -m str ES256 }
  http-request deny status 401 if !public !{ var(txn.bearer),jwt_verify(txn.alg,"$WORK/keys/es256.pem") -m int 1 }
  default_backend up
backend up
  http-reuse always
  server up 127.0.0.1:$UP maxconn 256
EOF
TOKENS_EXTRA='refresh_ttl = "30d"
cache_capacity = 200000' \
SERVER_EXTRA='max_connections = 30000
login_per_minute = 0' \
TABLES_EXTRA="[sessions]
max_sessions = 1000000
[[providers]]
platform = \"wechat\"
appid = \"wx0123456789abcdef\"
secret_env = \"LOAD_WECHAT_SECRET\"
base_url = \"http://127.0.0.1:$WECHAT\"" \
  minigate_config $MINIGATE $UP "$WORK/keys" >"$WORK/minigate.toml"
wrk_scripts "$WORK"

# The upstream (nginx `return 200`) and the stand-in code exchange.
start_upstream "$WORK/nginx-up" $UP $WECHAT
nginx -c "$WORK/nginx-proxy/nginx.conf"
haproxy -D -p "$WORK/haproxy.pid" -f "$WORK/haproxy.cfg"
# minigate, then each variant on its own port with the same configuration.
declare -A PORT PID
declare -a BINARY
MINIGATES=(minigate)
BINARY[0]=$BIN/minigate
i=0
for v in ${MINIGATE_VARIANTS:-}; do
  i=$((i + 1))
  MINIGATES+=("minigate-${v%%=*}")
  BINARY[i]=${v#*=}
done
for i in "${!MINIGATES[@]}"; do
  name=${MINIGATES[i]}
  PORT[$name]=$((MINIGATE + 10 * i))
  sed "s/^listen = .*/listen = \"127.0.0.1:${PORT[$name]}\"/" "$WORK/minigate.toml" >"$WORK/run-$name.toml"
  LOAD_WECHAT_SECRET=load-secret RUST_LOG=warn "${BINARY[i]}" serve --config "$WORK/run-$name.toml" \
    2>"$WORK/$name.log" &
  PID[$name]=$!
  PIDS+=("${PID[$name]}")
done
MINIGATE_PID=${PID[minigate]}
for p in $UP $NGINX $HAPROXY $WECHAT "${PORT[@]}"; do wait_port "$p" "$WORK"/*.log; done
NGINX_UP_PID=$(cat "$WORK/nginx-up/pid")
NGINX_PID=$(cat "$WORK/nginx-proxy/pid")
HAPROXY_PID=$(cat "$WORK/haproxy.pid")
PIDS+=("$NGINX_UP_PID" "$NGINX_PID" "$HAPROXY_PID")
sleep 0.5

# The RSS of a server: its process and its children (nginx's workers), KiB.
rss() { # $1 pid, $2 VmRSS|VmHWM
  local total=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    total=$((total + $(awk -v k="$2:" '$1 == k { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
declare -A IDLE_RSS BEFORE_RSS HELD_RSS HELD_N BURST_RSS BURST_AT LATER_RSS
for m in "${MINIGATES[@]}"; do IDLE_RSS[$m]=$(rss "${PID[$m]}" VmRSS); done
# CPU time of a server's processes (and their children), in clock ticks.
CLK_TCK=$(getconf CLK_TCK)
ticks() {
  local total=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    # Fields 14 and 15 (utime, stime), counted after the parenthesised name.
    total=$((total + $(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

# Sanity: every target answers 200 with the hot token, 401 without.
for port in $NGINX $HAPROXY "${PORT[@]}"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $HOT" "http://127.0.0.1:$port/x")
  [[ $code == 200 ]] || { echo "port $port answered $code to the hot token" >&2; exit 1; }
done
for port in $HAPROXY "${PORT[@]}"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/x")
  [[ $code == 401 ]] || { echo "port $port answered $code without a token" >&2; exit 1; }
done
# Forward-auth: 200 for the hot token on the required route, 401 without.
VERIFY_URL="http://127.0.0.1:$MINIGATE/auth/verify"
VERIFY_HDR=(-H "X-Forwarded-Method: GET" -H "X-Forwarded-Uri: /x")
code=$(curl -s -o /dev/null -w '%{http_code}' "${VERIFY_HDR[@]}" -H "Authorization: Bearer $HOT" "$VERIFY_URL")
[[ $code == 200 ]] || { echo "/auth/verify answered $code to the hot token" >&2; exit 1; }
code=$(curl -s -o /dev/null -w '%{http_code}' "${VERIFY_HDR[@]}" "$VERIFY_URL")
[[ $code == 401 ]] || { echo "/auth/verify answered $code without a token" >&2; exit 1; }

to_ms() { # wrk latency like 812.00us, 1.20ms, 1.01s
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
    if (u == "us") n /= 1000; else if (u == "s") n *= 1000;
    printf "%.2f", n }'
}
ROWS=()
CSV=$OUT/load.csv
echo "scenario,server,conns,requests,rps,p50_ms,p99_ms,non2xx,socket_errors,cpu_us_per_req,peak_rss_mib" >"$CSV"
declare -A RPS P99 CPU
# run NAME TARGET PID CONNS [wrk args...]
run() {
  local name=$1 target=$2 pid=$3 conns=$4
  shift 4
  local out t0 t1
  t0=$(ticks "$pid")
  out=$(wrk -t1 -c"$conns" -d"${DURATION}s" --timeout 10s --latency "$@" 2>&1)
  t1=$(ticks "$pid")
  local rps p50 p99 bad peak reqs cpu
  rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' <<<"$out")
  p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' <<<"$out")")
  p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
  bad=$(awk '/Non-2xx/ { print $NF }' <<<"$out")
  local errs
  errs=$(awk '/Socket errors/ { print $0 }' <<<"$out" | sed 's/.*errors: //')
  peak=$(($(rss "$pid" VmHWM) / 1024))
  reqs=$(awk '/requests in/ { print $1 }' <<<"$out")
  cpu=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v n="${reqs:-0}" \
    'BEGIN { if (n > 0) printf "%.1f", t * 1e6 / hz / n; else print "n/a" }')
  RPS["$name/$target"]=$rps
  P99["$name/$target"]=$p99
  CPU["$name/$target"]=$cpu
  ROWS+=("| $name | $target | $conns | $rps | $p50 | $p99 | $cpu | ${bad:-0}${errs:+ ($errs)} | $peak |")
  echo "$name,$target,$conns,${reqs:-0},$rps,$p50,$p99,${bad:-0},\"${errs:-}\",$cpu,$peak" >>"$CSV"
  echo "  $name $target: $rps req/s, p99 $p99 ms, $cpu µs CPU/request" >&2
}

HOT_HDR=(-H "Authorization: Bearer $HOT")
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "measuring, ${DURATION}s per run (load average $LOAD_START)" >&2
run "upstream alone" nginx "$NGINX_UP_PID" 64 "http://127.0.0.1:$UP/x"
for target in nginx haproxy "${MINIGATES[@]}"; do
  case $target in
    nginx) port=$NGINX pid=$NGINX_PID ;;
    haproxy) port=$HAPROXY pid=$HAPROXY_PID ;;
    *) port=${PORT[$target]} pid=${PID[$target]} ;;
  esac
  run "hot token" $target "$pid" 64 "${HOT_HDR[@]}" "http://127.0.0.1:$port/x"
  # The decision alone, right after the proxied hot token it compares with.
  if [[ $target == minigate* ]]; then
    run "forward-auth" "$target" "$pid" 64 "${HOT_HDR[@]}" "${VERIFY_HDR[@]}" "http://127.0.0.1:$port/auth/verify"
  fi
  run "100k tokens" $target "$pid" 64 -s "$WORK/pool.lua" "http://127.0.0.1:$port/x" -- "$WORK/keys/tokens.txt"
  run "public route" $target "$pid" 64 "http://127.0.0.1:$port/public/x"
  run "1k conns" $target "$pid" 1000 "${HOT_HDR[@]}" "http://127.0.0.1:$port/x"
  # Memory per idle keep-alive connection: 10,000 connections that each
  # made one request and now wait, against the RSS just before they opened
  # (so the token cache the earlier runs filled is not counted).
  if [[ $target == minigate* ]]; then
    sleep 1
    BEFORE_RSS[$target]=$(rss "$pid" VmRSS)
    coproc HOLD { "$BIN/hold" "127.0.0.1:$port" 10000 /x "Authorization: Bearer $HOT"; }
    read -r _ held <&"${HOLD[0]}" || held=0
    HELD_N[$target]=$held
    sleep 1
    HELD_RSS[$target]=$(rss "$pid" VmRSS)
    exec {HOLD[1]}>&-
    wait "$HOLD_PID" || true
    HOLD_PID=
  fi
  run "10k conns" $target "$pid" 10000 "${HOT_HDR[@]}" "http://127.0.0.1:$port/x"
  # Memory after the burst: now, and (read at the end) a minute later.
  if [[ $target == minigate* ]]; then
    sleep 1
    BURST_RSS[$target]=$(rss "$pid" VmRSS)
    BURST_AT[$target]=$SECONDS
  fi
done
# Sessions: logins of distinct users, and refreshes of 256 sessions in chains
# (each answer's refresh token is the next request's), on every minigate.
for target in "${MINIGATES[@]}"; do
  port=${PORT[$target]} pid=${PID[$target]}
  run "login burst" "$target" "$pid" 64 -s "$WORK/login.lua" "http://127.0.0.1:$port"
  refresh_seeds "$port" 256 "seed-$target" "$WORK/seeds-$target"
  run "refresh" "$target" "$pid" 64 -s "$WORK/refresh.lua" "http://127.0.0.1:$port" -- "$WORK/seeds-$target"
done
for target in "${MINIGATES[@]}"; do
  wait_for=$((BURST_AT[$target] + 60 - SECONDS))
  ((wait_for > 0)) && sleep "$wait_for"
  LATER_RSS[$target]=$(rss "${PID[$target]}" VmRSS)
done

ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
echo
echo "minigate load comparison, $(date -u +%Y-%m-%d), $(nproc) cores, $(uname -r), ${DURATION}s per run, wrk -t1, HAProxy maxconn $HAPROXY_MAXCONN (descriptor limit $(ulimit -n)); load average at the start: $LOAD_START, at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| scenario | server | conns | req/s | p50 ms | p99 ms | CPU µs/request | non-2xx (socket errors) | peak RSS MiB |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
for m in "${MINIGATES[@]}"; do
  echo
  echo "| scenario | $m/nginx req/s | $m/HAProxy req/s | $m/nginx p99 | $m/nginx CPU per request | $m/HAProxy CPU per request |"
  echo "|---|---|---|---|---|---|"
  for s in "hot token" "100k tokens" "public route" "1k conns" "10k conns"; do
    echo "| $s | $(ratio "${RPS[$s/$m]}" "${RPS[$s/nginx]}") | $(ratio "${RPS[$s/$m]}" "${RPS[$s/haproxy]}") | $(ratio "${P99[$s/$m]}" "${P99[$s/nginx]}") | $(ratio "${CPU[$s/$m]}" "${CPU[$s/nginx]}") | $(ratio "${CPU[$s/$m]}" "${CPU[$s/haproxy]}") |"
  done
done
echo
echo "| forward-auth, hot token | req/s | p99 ms | CPU µs/request | ÷ its proxied hot token req/s | ÷ nginx proxied hot token req/s |"
echo "|---|---|---|---|---|---|"
for m in "${MINIGATES[@]}"; do
  echo "| $m GET /auth/verify | ${RPS[forward-auth/$m]} | ${P99[forward-auth/$m]} | ${CPU[forward-auth/$m]} | $(ratio "${RPS[forward-auth/$m]}" "${RPS[hot token/$m]}") | $(ratio "${RPS[forward-auth/$m]}" "${RPS[hot token/nginx]}") |"
done
echo
echo "| memory, MiB | idle | before 10,000 idle conns | holding them | bytes per idle conn | right after the 10k-conns run | a minute later |"
echo "|---|---|---|---|---|---|---|"
for m in "${MINIGATES[@]}"; do
  held=${HELD_N[$m]:-0}
  echo "| $m | $((IDLE_RSS[$m] / 1024)) | $((BEFORE_RSS[$m] / 1024)) | $((HELD_RSS[$m] / 1024)) | $(((HELD_RSS[$m] - BEFORE_RSS[$m]) * 1024 / (held > 0 ? held : 1))) | $((BURST_RSS[$m] / 1024)) | $((LATER_RSS[$m] / 1024)) |"
done
echo
echo "rows: $CSV"
if command -v python3 >/dev/null; then
  python3 benches/plot.py "$CSV" "$OUT/load.svg" && echo "plot: $OUT/load.svg"
fi
