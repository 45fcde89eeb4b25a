#!/usr/bin/env bash
# User-space instructions per proxied request, counted by valgrind's
# callgrind: a figure that does not move with the machine's noise (the
# load comparison's CPU per request moves by 10-20 % between runs here), so
# two builds can be told apart by a few per cent. The kernel's share (the
# socket calls, most of a request's CPU) is not in it; load.sh measures the
# whole.
#
#   benches/instructions.sh                          # this tree's build
#   benches/instructions.sh before=/path/to/minigate # and others, in turn
#   SCENARIO=public benches/instructions.sh          # the public route
#   SCENARIO=miss benches/instructions.sh            # 20,000 distinct tokens:
#                                                    # every request a cache miss
#   SCENARIO=login benches/instructions.sh           # logins of a new user each,
#                                                    # the code exchanged at an
#                                                    # nginx stand-in
#   SCENARIO=refresh benches/instructions.sh         # refreshes of the sessions
#                                                    # a login warm-up made
#   SCENARIO=h2 benches/instructions.sh              # the hot token over TLS
#                                                    # and HTTP/2 (h2load, 8
#                                                    # connections x 10 streams)
#   KEEP=/tmp/cg benches/instructions.sh             # keep callgrind's files
#                                                    # (callgrind_annotate)
#   benches/instructions.sh nginx                    # and nginx as a plain
#                                                    # proxy (one worker, the
#                                                    # same requests passed on;
#                                                    # with h2, over TLS and h2)
#
# Each build runs under callgrind behind one nginx upstream; after a 3 s
# warm-up, instrumentation is switched on for a DURATION-second (default 10)
# `wrk -t1 -c8` run of the hot token (or the public route) and the total is
# divided by the requests done. Under valgrind ring's SHA-256 takes its AVX
# path (valgrind hides the SHA extensions), which counts about 17,000
# instructions a request that the real CPU spends far less on: compare
# builds with each other, not with other servers.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
SCENARIO=${SCENARIO:-hot}
. benches/common.sh
need_commands nginx wrk valgrind h2load=nghttp2-client openssl
build_release minigate minigate-benches

WORK=$(mktemp -d /tmp/minigate-instructions.XXXXXX)
VG_PID=
cleanup() {
  [[ -n $VG_PID ]] && kill "$VG_PID" 2>/dev/null
  [[ -f $WORK/up.pid ]] && kill "$(cat "$WORK/up.pid")" 2>/dev/null
  if [[ -n ${KEEP:-} ]]; then
    mkdir -p "$KEEP" && cp "$WORK"/cg.* "$KEEP"/ 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
UP=18281 GW=18290 WECHAT=18282
"$BIN/mint" "$WORK/keys" "$([[ $SCENARIO == miss ]] && echo 20000 || echo 10)" >/dev/null
HOT=$(head -n1 "$WORK/keys/tokens.txt")
cat >"$WORK/up.conf" <<CONF
worker_processes 1;
pid $WORK/up.pid;
error_log $WORK/up.err crit;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP; location / { return 200 "ok"; } }
  server {
    listen 127.0.0.1:$WECHAT;
    location /sns/jscode2session {
      default_type text/plain;
      return 200 '{"openid":"o-\$arg_js_code","session_key":"not-a-real-key"}';
    }
  }
}
CONF
nginx -c "$WORK/up.conf"
SERVER_EXTRA='login_per_minute = 0' TABLES_EXTRA=$(wechat_provider $WECHAT) \
  minigate_config $GW $UP "$WORK/keys" >"$WORK/minigate.toml"
SCHEME=http LISTEN="127.0.0.1:$GW" NGINX_TLS=
if [[ $SCENARIO == h2 ]]; then
  make_cert "$WORK/tls"
  printf '[tls]\ncert = "%s"\nkey = "%s"\n' "$WORK/tls/leaf.pem" "$WORK/tls/leaf.key" >>"$WORK/minigate.toml"
  SCHEME=https LISTEN="127.0.0.1:$GW ssl http2"
  NGINX_TLS="ssl_certificate $WORK/tls/leaf.pem; ssl_certificate_key $WORK/tls/leaf.key; ssl_protocols TLSv1.3;"
fi
wrk_scripts "$WORK"
case $SCENARIO in
  hot) ARGS=(-H "Authorization: Bearer $HOT" "http://127.0.0.1:$GW/x") ;;
  public) ARGS=("http://127.0.0.1:$GW/public/x") ;;
  login) ARGS=(-s "$WORK/login.lua" "http://127.0.0.1:$GW") ;;
  # The warm-up's logins write the sessions' refresh tokens for the run.
  refresh) ARGS=(-s "$WORK/refresh.lua" "http://127.0.0.1:$GW" -- "$WORK/seeds") ;;
  h2) ARGS=(-c8 -m10 -H "authorization: Bearer $HOT" "https://127.0.0.1:$GW/x") ;;
  miss)
    ARGS=(-s "$WORK/pool.lua" "http://127.0.0.1:$GW/x" -- "$WORK/keys/tokens.txt")
    ;;
  *) echo "SCENARIO is hot, public, miss, login, refresh or h2" >&2; exit 2 ;;
esac

echo "| build | requests | instructions | per request |"
echo "|---|---|---|---|"
# nginx in the gateway's place: one process (no master), the upstream kept
# alive as load.sh's nginx proxy does; it passes the token on unread.
cat >"$WORK/proxy.conf" <<CONF
worker_processes 1;
master_process off;
daemon off;
pid $WORK/proxy.pid;
error_log $WORK/proxy.err crit;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream up { server 127.0.0.1:$UP; keepalive 256; }
  server {
    listen $LISTEN;
    $NGINX_TLS
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF

for build in "minigate=$BIN/minigate" "$@"; do
  name=${build%%=*} binary=${build#*=}
  if [[ $build == nginx ]]; then
    command=(nginx -c "$WORK/proxy.conf")
  else
    command=("$binary" serve --config "$WORK/minigate.toml")
  fi
  LOAD_WECHAT_SECRET=load-secret RUST_LOG=warn valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$WORK/cg.$name.%p" "${command[@]}" 2>"$WORK/vg.$name.log" &
  VG_PID=$!
  # Ready when it answers at all.
  for _ in $(seq 150); do
    curl -sk -o /dev/null "$SCHEME://127.0.0.1:$GW/public/x" && break
    sleep 0.2
  done
  case $SCENARIO in
    h2) h2load -D3 "${ARGS[@]}" >/dev/null ;;
    refresh) wrk -t1 -c8 -d3s -s "$WORK/login.lua" "http://127.0.0.1:$GW" -- - "$WORK/seeds" >/dev/null ;;
    *) wrk -t1 -c8 -d3s "${ARGS[@]}" >/dev/null ;;
  esac
  callgrind_control -i on "$VG_PID" >/dev/null 2>&1
  if [[ $SCENARIO == h2 ]]; then
    out=$(h2load -D"$DURATION" "${ARGS[@]}")
    requests=$(awk '/^requests:/ { print $8 }' <<<"$out")
  else
    out=$(wrk -t1 -c8 -d"${DURATION}s" "${ARGS[@]}")
    requests=$(awk '/requests in/ { print $1 }' <<<"$out")
  fi
  # Counted requests must be the scenario's own, not refusals.
  if grep -q Non-2xx <<<"$out" || ! grep -qE '^status codes: [0-9]+ 2xx, 0 3xx, 0 4xx, 0 5xx|requests in' <<<"$out"; then
    echo "$name: not every answer was 2xx:" >&2
    grep -E 'Non-2xx|^status codes' <<<"$out" >&2
  fi
  callgrind_control -i off "$VG_PID" >/dev/null 2>&1
  callgrind_control -d "$VG_PID" >/dev/null 2>&1
  kill "$VG_PID"
  wait "$VG_PID" 2>/dev/null || true
  VG_PID=
  total=$(cat "$WORK"/cg."$name".* | awk '/^totals:/ { s += $2 } END { printf "%.0f", s }')
  echo "| $name | $requests | $total | $(awk -v t="$total" -v n="$requests" 'BEGIN { printf "%.0f", t / n }') |"
done
