#!/usr/bin/env bash
# The load comparison: minigate against nginx (a plain reverse proxy that
# checks nothing) and HAProxy (jwt_verify ES256 on every request), all in
# front of one nginx upstream, measured in turn in ONE run on this machine;
# and minigate's forward-auth decision (GET /auth/verify, the hot token,
# Traefik's X-Forwarded-Method/-Uri naming a required route) beside its
# proxied hot token. Beside them the seed's own design (benches/seed-go: the
# article's Go + Gin service, a JWT verified on every request or a UUID
# token looked up in Redis), and the HTTPS edge: nginx with TLS 1.3 and an
# ECDSA P-256 certificate, minigate's own TLS listener and the Go service's,
# kept alive (wrk), a full handshake per request (benches' tls_conns, which
# offers no session and counts each connection's handshake kind), a resumed
# one per request (tls_conns again), and HTTP/2 (h2load, 10 streams per
# connection); and logins (a new user each, the code exchanged at nginx's
# stand-in) on minigate and both Go modes.
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
# benches/results) and draws $OUT/load.svg and $OUT/load-edge.svg (the
# seed's design, the HTTPS edge, logins) from it (benches/plot.py).
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
need_commands nginx haproxy wrk h2load=nghttp2-client redis-server go=golang-go openssl
need_packages golang-github-gin-gonic-gin-dev golang-github-golang-jwt-jwt-dev \
  golang-gopkg-redis.v5-dev golang-github-google-uuid-dev
ulimit -n "$(ulimit -Hn)"
# HAProxy needs two descriptors per connection it may hold.
HAPROXY_MAXCONN=$(( $(ulimit -n) / 2 - 100 ))
((HAPROXY_MAXCONN > 10000)) && HAPROXY_MAXCONN=10000
build_release minigate minigate-benches
GO_BIN=$BIN/seed-go/seed-go
benches/seed-go/build.sh "$GO_BIN"
if [[ ${PGO:-0} == 1 ]]; then
  PGO_BIN=$(benches/pgo.sh | tail -n1)
  MINIGATE_VARIANTS="pgo=$PGO_BIN ${MINIGATE_VARIANTS:-}"
fi

UP=18081 NGINX=18082 HAPROXY=18083 MINIGATE=18084 WECHAT=18085
GO_JWT=18086 GO_REDIS=18087 REDIS=18088 NGINX_TLS=18089 MINIGATE_TLS=18090 GO_TLS=18091

# Keys and 100,000 distinct tokens (plus the PEM HAProxy verifies with).
"$BIN/mint" "$WORK/keys" 100000
HOT=$(head -n1 "$WORK/keys/tokens.txt")
# The TLS edge's certificate (tls_conns verifies it, as a client would).
make_cert "$WORK/tls"
TLS=$WORK/tls

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
  server {
    listen 127.0.0.1:$NGINX_TLS ssl http2 backlog=8192;
    ssl_certificate $TLS/leaf.pem;
    ssl_certificate_key $TLS/leaf.key;
    ssl_protocols TLSv1.3;
    ssl_session_cache shared:SSL:10m;
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
$(wechat_provider $WECHAT)" \
  minigate_config $MINIGATE $UP "$WORK/keys" >"$WORK/minigate.toml"
wrk_scripts "$WORK"

# The upstream (nginx `return 200`) and the stand-in code exchange.
# One user per code (`o-CODE`): every login below is a new user.
start_upstream "$WORK/nginx-up" $UP $WECHAT 'o-$arg_js_code'
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
# minigate's own TLS listener: the same configuration with [tls].
{
  sed "s/^listen = .*/listen = \"127.0.0.1:$MINIGATE_TLS\"/" "$WORK/minigate.toml"
  printf '[tls]\ncert = "%s"\nkey = "%s"\n' "$TLS/leaf.pem" "$TLS/leaf.key"
} >"$WORK/run-minigate-tls.toml"
LOAD_WECHAT_SECRET=load-secret RUST_LOG=warn "$BIN/minigate" serve --config "$WORK/run-minigate-tls.toml" \
  2>"$WORK/minigate-tls.log" &
MINIGATE_TLS_PID=$!
PIDS+=("$MINIGATE_TLS_PID")
# The seed's design: Redis for its token store, then the Go service in its
# two modes (and the JWT mode again behind TLS), 2 workers each.
redis-server --port $REDIS --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
  >"$WORK/redis.log" 2>&1 &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
wait_port $REDIS "$WORK/redis.log"
go_serve() { # NAME PORT MODE [args]
  local name=$1 port=$2 mode=$3
  shift 3
  GOMAXPROCS=2 LOAD_WECHAT_SECRET=load-secret "$GO_BIN" -listen "127.0.0.1:$port" -mode "$mode" \
    -upstream "http://127.0.0.1:$UP" -wechat "http://127.0.0.1:$WECHAT" \
    -keyset "$WORK/keys/keyset.json" -redis "127.0.0.1:$REDIS" "$@" 2>"$WORK/$name.log" &
  PID[$name]=$!
  PIDS+=("$!")
}
go_serve seed-go-jwt $GO_JWT jwt
go_serve seed-go-redis $GO_REDIS redis
go_serve seed-go-jwt-tls $GO_TLS jwt -tls-cert "$TLS/leaf.pem" -tls-key "$TLS/leaf.key"
for p in $UP $NGINX $HAPROXY $WECHAT "${PORT[@]}" $NGINX_TLS $MINIGATE_TLS $GO_JWT $GO_REDIS $GO_TLS; do
  wait_port "$p" "$WORK"/*.log
done
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
# The seed's design: its Redis mode's token comes from a login (a new user,
# o-hot); its JWT mode verifies minigate's own tokens (the same key set).
GO_REDIS_HOT=$(curl -s -X POST "http://127.0.0.1:$GO_REDIS/auth/login" -H 'content-type: application/json' \
  -d '{"code":"hot"}' | sed -E 's/.*"token":"([^"]+)".*/\1/')
HOT_OPENID=openid-00000000 # mint's first token's user
# check NAME URL TOKEN WANT_OPENID [curl args]: 200 with the token, 401
# without, and the upstream was told WANT_OPENID.
check() {
  local name=$1 url=$2 token=$3 want=$4 code who
  shift 4
  code=$(curl -s "$@" -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "$url/x")
  [[ $code == 200 ]] || { echo "$name answered $code to its token" >&2; exit 1; }
  code=$(curl -s "$@" -o /dev/null -w '%{http_code}' "$url/x")
  [[ $code == 401 ]] || { echo "$name answered $code without a token" >&2; exit 1; }
  who=$(curl -s "$@" -H "Authorization: Bearer $token" -H "X-Auth-Openid: forged" "$url/whoami")
  [[ $who == "$want" ]] || { echo "$name told the upstream '$who', not '$want'" >&2; exit 1; }
}
for m in "${MINIGATES[@]}"; do check "$m" "http://127.0.0.1:${PORT[$m]}" "$HOT" "$HOT_OPENID"; done
check seed-go-jwt "http://127.0.0.1:$GO_JWT" "$HOT" "$HOT_OPENID"
check seed-go-redis "http://127.0.0.1:$GO_REDIS" "$GO_REDIS_HOT" o-hot
check minigate-tls "https://localhost:$MINIGATE_TLS" "$HOT" "$HOT_OPENID" --cacert "$TLS/ca.pem"
check seed-go-jwt-tls "https://localhost:$GO_TLS" "$HOT" "$HOT_OPENID" --cacert "$TLS/ca.pem"
code=$(curl -s --cacert "$TLS/ca.pem" -o /dev/null -w '%{http_code}' "https://localhost:$NGINX_TLS/x")
[[ $code == 200 ]] || { echo "nginx's TLS server answered $code" >&2; exit 1; }

to_ms() { # wrk latency like 812.00us, 1.20ms, 1.01s
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
    if (u == "us") n /= 1000; else if (u == "s") n *= 1000;
    printf "%.2f", n }'
}
ROWS=()
CSV=$OUT/load.csv
echo "scenario,server,conns,requests,rps,p50_ms,p99_ms,non2xx,socket_errors,cpu_us_per_req,peak_rss_mib,redis_cpu_us_per_req,full_handshakes,resumed_handshakes" >"$CSV"
declare -A RPS P99 CPU XCPU FULL RESUMED
# run NAME TARGET PID CONNS [client args...]: the client is wrk unless
# CLIENT says tls-full or tls-resume (tls_conns; args ADDR PATH [HEADER]) or
# h2 (h2load, 10 streams per connection; args as h2load's). With REDIS_TOO
# set, Redis's CPU per request is measured too (the seed's token store).
run() {
  local name=$1 target=$2 pid=$3 conns=$4
  shift 4
  local out t0 t1 r0 r1
  local rps p50 p99 bad errs peak reqs cpu xcpu="" full="" resumed=""
  t0=$(ticks "$pid")
  r0=$(ticks "$REDIS_PID")
  case ${CLIENT:-wrk} in
    wrk)
      out=$(wrk -t1 -c"$conns" -d"${DURATION}s" --timeout 10s --latency "$@" 2>&1)
      t1=$(ticks "$pid")
      r1=$(ticks "$REDIS_PID")
      rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' <<<"$out")
      p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' <<<"$out")")
      p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
      bad=$(awk '/Non-2xx/ { print $NF }' <<<"$out")
      errs=$(awk '/Socket errors/ { print $0 }' <<<"$out" | sed 's/.*errors: //')
      reqs=$(awk '/requests in/ { print $1 }' <<<"$out")
      ;;
    tls-full | tls-resume)
      out=$("$BIN/tls_conns" "$1" "$TLS/ca.pem" "$conns" "$DURATION" "${CLIENT#tls-}" "${@:2}")
      t1=$(ticks "$pid")
      r1=$(ticks "$REDIS_PID")
      get() { awk -v k="$1" '$1 == k { print $2 }' <<<"$out"; }
      rps=$(get rps) p50=$(get p50_ms) p99=$(get p99_ms) bad=$(get other) reqs=$(get requests)
      full=$(get full) resumed=$(get resumed)
      if (($(get errors) > 0)); then errs="$(get errors) failed"; fi
      ;;
    h2)
      out=$(h2load -c"$conns" -m10 -D"$DURATION" --log-file="$WORK/h2.log" "$@" 2>&1)
      t1=$(ticks "$pid")
      r1=$(ticks "$REDIS_PID")
      rps=$(awk '/^finished in/ { printf "%.0f", $4 }' <<<"$out")
      reqs=$(awk '/^requests:/ { print $6 }' <<<"$out")
      bad=$(awk '/^status codes:/ { print $5 + $7 + $9 }' <<<"$out")
      errs=$(awk '/^requests:/ && $10 + $12 + $14 > 0 { print $10 " failed, " $12 " errored, " $14 " timed out" }' <<<"$out")
      # Per-request times (the log's third column, µs) for p50 and p99.
      read -r p50 p99 < <(cut -f3 "$WORK/h2.log" | sort -n | awk '{ v[NR] = $1 }
        END { printf "%.2f %.2f\n", v[int(NR * 0.5) + 1] / 1000, v[int(NR * 0.99) + 1] / 1000 }')
      ;;
  esac
  peak=$(($(rss "$pid" VmHWM) / 1024))
  cpu=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v n="${reqs:-0}" \
    'BEGIN { if (n > 0) printf "%.1f", t * 1e6 / hz / n; else print "n/a" }')
  if [[ -n ${REDIS_TOO:-} ]]; then
    xcpu=$(awk -v t=$((r1 - r0)) -v hz="$CLK_TCK" -v n="${reqs:-0}" \
      'BEGIN { if (n > 0) printf "%.1f", t * 1e6 / hz / n; else print "n/a" }')
  fi
  RPS["$name/$target"]=$rps
  P99["$name/$target"]=$p99
  CPU["$name/$target"]=$cpu
  XCPU["$name/$target"]=$xcpu
  FULL["$name/$target"]=$full
  RESUMED["$name/$target"]=$resumed
  ROWS+=("| $name | $target | $conns | $rps | $p50 | $p99 | $cpu${xcpu:+ (+$xcpu Redis)} | ${bad:-0}${errs:+ ($errs)} | $peak |")
  echo "$name,$target,$conns,${reqs:-0},$rps,$p50,$p99,${bad:-0},\"${errs:-}\",$cpu,$peak,$xcpu,$full,$resumed" >>"$CSV"
  echo "  $name $target: $rps req/s, p99 $p99 ms, $cpu µs CPU/request${xcpu:+ (+$xcpu Redis)}${full:+, handshakes $full full, $resumed resumed}" >&2
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
# The seed's design on plain HTTP/1, the hot token: the JWT mode verifies
# the same token as minigate; the Redis mode looks its UUID up.
run "hot token" seed-go-jwt "${PID[seed-go-jwt]}" 64 "${HOT_HDR[@]}" "http://127.0.0.1:$GO_JWT/x"
REDIS_TOO=1 run "hot token" seed-go-redis "${PID[seed-go-redis]}" 64 \
  -H "Authorization: Bearer $GO_REDIS_HOT" "http://127.0.0.1:$GO_REDIS/x"
# The HTTPS edge, one scenario at a time across nginx, the Go service and
# minigate, so that each comparison is made within a few seconds.
EDGE=(nginx seed-go-jwt minigate)
declare -A EDGE_PORT=([nginx]=$NGINX_TLS [seed-go-jwt]=$GO_TLS [minigate]=$MINIGATE_TLS)
declare -A EDGE_PID=([nginx]=$NGINX_PID [seed-go-jwt]=${PID[seed-go-jwt-tls]} [minigate]=$MINIGATE_TLS_PID)
for target in "${EDGE[@]}"; do
  run "TLS keep-alive" "$target" "${EDGE_PID[$target]}" 64 "${HOT_HDR[@]}" "https://127.0.0.1:${EDGE_PORT[$target]}/x"
done
for target in "${EDGE[@]}"; do
  CLIENT=tls-full run "TLS full handshake" "$target" "${EDGE_PID[$target]}" 64 \
    "127.0.0.1:${EDGE_PORT[$target]}" /x "Authorization: Bearer $HOT"
done
for target in "${EDGE[@]}"; do
  CLIENT=tls-resume run "TLS resumed" "$target" "${EDGE_PID[$target]}" 64 \
    "127.0.0.1:${EDGE_PORT[$target]}" /x "Authorization: Bearer $HOT"
done
for target in "${EDGE[@]}"; do
  CLIENT=h2 run "h2 over TLS" "$target" "${EDGE_PID[$target]}" 64 \
    -H "authorization: Bearer $HOT" "https://127.0.0.1:${EDGE_PORT[$target]}/x"
done
# Sessions: logins of distinct users (the code exchanged at nginx's stand-in,
# one user per code) on both Go modes and every minigate, and on every
# minigate refreshes of the sessions its login burst made, in chains (each
# answer's refresh token is the next request's; a session may refresh 10
# times a minute, so a few hundred chains would meet 429s). The article has
# no refresh: its client logs in again on a 401.
run "login burst" seed-go-jwt "${PID[seed-go-jwt]}" 64 -s "$WORK/login.lua" "http://127.0.0.1:$GO_JWT"
REDIS_TOO=1 run "login burst" seed-go-redis "${PID[seed-go-redis]}" 64 -s "$WORK/login.lua" "http://127.0.0.1:$GO_REDIS"
for target in "${MINIGATES[@]}"; do
  port=${PORT[$target]} pid=${PID[$target]}
  run "login burst" "$target" "$pid" 64 -s "$WORK/login.lua" "http://127.0.0.1:$port" -- - "$WORK/seeds-$target"
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
echo "Where users pay, CPU µs per request (req/s): the seed's design in Go beside nginx and minigate; the HTTPS rows on each server's own TLS listener; Redis's CPU for the Redis mode in brackets."
echo
echo "| row | nginx (no auth) | seed-go-jwt | seed-go-redis | minigate | minigate ÷ nginx CPU | minigate ÷ seed-go-jwt CPU | minigate ÷ seed-go-jwt req/s | minigate ÷ seed-go-redis req/s |"
echo "|---|---|---|---|---|---|---|---|---|"
cell() { [[ -n ${CPU[$1]:-} ]] && echo "${CPU[$1]}${XCPU[$1]:+ (+${XCPU[$1]})} (${RPS[$1]}/s)" || echo "–"; }
for s in "hot token" "TLS keep-alive" "TLS full handshake" "TLS resumed" "h2 over TLS" "login burst" "refresh"; do
  echo "| $s | $(cell "$s/nginx") | $(cell "$s/seed-go-jwt") | $(cell "$s/seed-go-redis") | $(cell "$s/minigate") | $(ratio "${CPU[$s/minigate]:-}" "${CPU[$s/nginx]:-}") | $(ratio "${CPU[$s/minigate]:-}" "${CPU[$s/seed-go-jwt]:-}") | $(ratio "${RPS[$s/minigate]:-}" "${RPS[$s/seed-go-jwt]:-}") | $(ratio "${RPS[$s/minigate]:-}" "${RPS[$s/seed-go-redis]:-}") |"
done
echo
echo "| handshakes, as the client counted them | nginx full / resumed | seed-go-jwt full / resumed | minigate full / resumed |"
echo "|---|---|---|---|"
for s in "TLS full handshake" "TLS resumed"; do
  echo "| $s | ${FULL[$s/nginx]} / ${RESUMED[$s/nginx]} | ${FULL[$s/seed-go-jwt]} / ${RESUMED[$s/seed-go-jwt]} | ${FULL[$s/minigate]} / ${RESUMED[$s/minigate]} |"
done
echo
echo "rows: $CSV"
if command -v python3 >/dev/null; then
  python3 benches/plot.py "$CSV" "$OUT/load.svg" && echo "plots: $OUT/load.svg, $OUT/load-edge.svg"
fi
