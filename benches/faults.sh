#!/usr/bin/env bash
# Faults survived, measured: each scenario a run of the mixed load
# (benches/src/bin/mixload.rs: proxied requests, logins with new codes,
# refreshes) with a fault made in the middle of it, every answer counted by
# status each second.
#
#   benches/faults.sh                      # every scenario (soak: SOAK seconds)
#   benches/faults.sh failover killed      # some of them
#   SOAK=1800 benches/faults.sh soak       # the 30-minute soak
#   PARTITION=60 benches/faults.sh network # a longer partition (default 10 s)
#   ACCESS_TTL=2m benches/faults.sh soak   # access tokens (and so the verified-token
#                                          # cache's entries) living 2 min instead of 2 h
#
# Scenarios:
#   failover  a Redis Cluster of 3 masters and 3 replicas, two gateways; the
#             master both gateways' revocation subscriptions are on is
#             SIGKILLed and its replica promoted. Then reuse detection and
#             revocation across the two (mixload check).
#   network   one Redis in its own network namespace, joined to the
#             gateway's by a veth pair: 50 ms, then 200 ms delay, 5 % loss
#             each way, a 10 s partition; gateway RSS sampled each second.
#             Loss and the partition are iptables drops on the veth; delay is
#             `tc netem` where the kernel has it, else mixload's delay relay
#             in the namespace (said in the table).
#   killed    two gateways behind nginx (an upstream with both), one Redis;
#             one gateway SIGKILLed, a session begun on it refreshed on the
#             other, a logout made while it is down, then it is restarted
#             and must refuse that session's token (resync).
#   drain     SIGTERM under load, an upstream answering after 200 ms: in
#             flight completes, new connections refused, exit time.
#   disk      the key directory on a full 256 KiB tmpfs during
#             `keys rotate`: the CLI's exit and message, the directory, the
#             served JWKS.
#   soak      two gateways and one Redis under a moderate load for SOAK
#             seconds (default 300): RSS, open descriptors and Redis memory
#             sampled every SAMPLE seconds (default 30).
#
# Needs root (namespaces, iptables, a tmpfs mount). Installs what it lacks
# from Debian's packages (nginx, redis-server, iproute2, iptables), builds
# minigate in release mode, writes each run's CSV and JSON into
# $OUT/faults/ (OUT defaults to benches/results) and benches/faults.py turns
# them into $OUT/faults.md (the table) and an SVG timeline per scenario.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benches/results}
RATE=${RATE:-200}
SOAK=${SOAK:-300}
SAMPLE=${SAMPLE:-30}
SCENARIOS=("$@")
((${#SCENARIOS[@]})) || SCENARIOS=(failover network killed drain disk soak)
RUN=$OUT/faults
mkdir -p "$RUN"
WORK=$(mktemp -d /tmp/minigate-faults.XXXXXX)
NS=mgfaults$$
PIDS=()
cleanup() {
  for f in "$WORK"/nginx*/pid; do [[ -f $f ]] && PIDS+=("$(cat "$f")"); done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  ip netns pids $NS 2>/dev/null | xargs -r kill 2>/dev/null || true
  sleep 0.3
  ip link del mgf0 2>/dev/null || true
  ip netns del $NS 2>/dev/null || true
  mountpoint -q "$WORK/keydisk" && umount "$WORK/keydisk"
  rm -rf "$WORK"
}
trap cleanup EXIT

. benches/common.sh
need_commands nginx redis-server ip=iproute2 iptables
ulimit -n "$(ulimit -Hn)"
build_release minigate minigate-benches
ML=$BIN/mixload

# PORT_BASE moves every port, so that two runs (say the soak and another)
# can run side by side; each needs its own OUT too.
B=${PORT_BASE:-23100}
UP=$((B + 81)) WECHAT=$((B + 85)) SLOW=$((B + 82)) LB=$B G1=$((B + 1)) G2=$((B + 2)) REDIS=$((B + 90))
CLUSTER=($((B + 91)) $((B + 92)) $((B + 93)) $((B + 94)) $((B + 95)) $((B + 96)))

mkdir -p "$WORK/keys"
"$BIN/minigate" keys init --dir "$WORK/keys" >/dev/null
# The upstream (`200 ok`) and the stand-in code exchange, one user per code.
start_upstream "$WORK/nginx" $UP $WECHAT 'o-$arg_js_code'

now_ms() { date +%s%3N; }
# Notes an event of the scenario's timeline: SCENARIO LABEL.
event() { echo "$(now_ms) $2" >>"$RUN/$1.events"; echo "  $(date +%T) $1: $2" >&2; }
# Notes a figure for the table: SCENARIO KEY VALUE.
fact() { echo "$2=$3" >>"$RUN/$1.facts"; echo "  $1: $2=$3" >&2; }
fresh() { rm -f "$RUN/$1".{events,facts,csv,json,rss}; }

redis_node() { # PORT DIR [args...]: a Redis on 127.0.0.1:PORT; its pid in NODE_PID
  mkdir -p "$2"
  redis-server --port "$1" --bind 127.0.0.1 --save '' --appendonly no --dir "$2" "${@:3}" \
    >"$2/log" 2>&1 &
  NODE_PID=$!
  PIDS+=("$NODE_PID")
  wait_port "$1"
}

# Starts a gateway on PORT with the [sessions] lines SESSIONS; routes `/` to
# UPSTREAM (default the nginx upstream); its pid in GW_PID.
#   gateway NAME PORT SESSIONS [UPSTREAM] [KEYS]
gateway() {
  local name=$1 port=$2 sessions=$3 up=${4:-$UP} keys=${5:-$WORK/keys}
  cat >"$WORK/$name.toml" <<EOF
listen = "127.0.0.1:$port"
[tokens]
issuer = "https://bench.minigate"
audience = "api"
access_ttl = "${ACCESS_TTL:-2h}"
[keys]
dir = "$keys"
reload_interval = "1s"
[sessions]
$sessions
[server]
login_per_minute = 0
max_requests_per_ip = 0
shutdown_timeout = "10s"
[[providers]]
platform = "wechat"
appid = "wx0123456789abcdef"
secret_env = "LOAD_WECHAT_SECRET"
base_url = "http://127.0.0.1:$WECHAT"
[[routes]]
prefix = "/"
upstream = "http://127.0.0.1:$up"
auth = "required"
EOF
  LOAD_WECHAT_SECRET=load-secret RUST_LOG=warn,minigate::listener=info,minigate::ops=info "$BIN/minigate" serve --config "$WORK/$name.toml" \
    2>>"$WORK/$name.log" &
  GW_PID=$!
  PIDS+=("$GW_PID")
  wait_port "$port" "$WORK/$name.log"
}

rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
stop() { kill "$@" 2>/dev/null || true; for p in "$@"; do wait "$p" 2>/dev/null || true; done; }

# Runs the load in the background: SCENARIO SECONDS [mixload args...]; its pid in LOAD_PID.
load() {
  local name=$1 secs=$2
  shift 2
  "$ML" run --rate "$RATE" --seconds "$secs" --out "$RUN/$name" "$@" >/dev/null 2>"$WORK/$name.load.log" &
  LOAD_PID=$!
  sleep 1
  kill -0 $LOAD_PID 2>/dev/null || { cat "$WORK/$name.load.log" >&2; exit 1; }
  # Wait for its first sessions (logged in before the steady load starts).
  until grep -q "req/s for" "$WORK/$name.load.log"; do sleep 0.2; done
  event "$name" "load"
}

scenario_failover() {
  fresh failover
  local seeds=() p dir=$WORK/cluster
  for p in "${CLUSTER[@]}"; do
    redis_node "$p" "$dir/$p" --cluster-enabled yes --cluster-config-file nodes.conf \
      --cluster-node-timeout 2000
    eval "NODE_$p=$NODE_PID"
    seeds+=("\"redis://127.0.0.1:$p\"")
  done
  redis-cli --cluster create $(printf '127.0.0.1:%s ' "${CLUSTER[@]}") \
    --cluster-replicas 1 --cluster-yes >/dev/null
  for p in "${CLUSTER[@]}"; do
    until redis-cli -p "$p" cluster info | grep -q cluster_state:ok; do sleep 0.1; done
  done
  # Every replica attached and in sync before the load.
  until [[ $(redis-cli -p "${CLUSTER[0]}" cluster nodes | grep -c 'slave.*connected') == 3 ]]; do sleep 0.1; done
  local list
  list=$(IFS=,; echo "${seeds[*]}")
  gateway g1 $G1 "redis_cluster = [$list]"
  local g1=$GW_PID
  gateway g2 $G2 "redis_cluster = [$list]"
  local g2=$GW_PID
  # The victim: the first seed, where both gateways' revocation
  # subscriptions are; a master after `--cluster create`.
  local victim=${CLUSTER[0]} pid
  redis-cli -p "$victim" role | head -1 | grep -q master || { echo "node $victim is no master" >&2; exit 1; }
  local id
  id=$(redis-cli -p "$victim" cluster myid)
  fact failover revoked_set_slot "$(redis-cli -p "$victim" cluster keyslot minigate:revoked)"
  local replica
  replica=$(redis-cli -p "${CLUSTER[1]}" cluster nodes | awk -v id="$id" '$4 == id { print $1 }')
  load failover 45 --gw "http://127.0.0.1:$G1" --gw "http://127.0.0.1:$G2"
  local loadpid=$LOAD_PID
  sleep 12
  pid=NODE_$victim
  kill -9 "${!pid}"
  local t0
  t0=$(now_ms)
  event failover "master SIGKILLed"
  # The cluster's own failover: until another node sees the victim's
  # replica as a master and the cluster's state is ok.
  local other=${CLUSTER[1]}
  until redis-cli -p "$other" cluster nodes | awk -v r="$replica" '$1 == r { print $3 }' | grep -q master &&
    redis-cli -p "$other" cluster info | grep -q cluster_state:ok; do
    sleep 0.05
  done
  fact failover cluster_failover_ms $(($(now_ms) - t0))
  event failover "replica promoted"
  wait $loadpid || true
  "$ML" check --gw "http://127.0.0.1:$G1" --gw "http://127.0.0.1:$G2" >"$RUN/failover.check.json" || true
  fact failover check "$(tr -d ' \n' <"$RUN/failover.check.json")"
  fact failover subscriptions_lost_and_renewed "$(cat "$WORK"/g[12].log | grep -c 'subscription lost')"
  stop "$g1" "$g2"
  for p in "${CLUSTER[@]}"; do pid=NODE_$p; stop "${!pid}"; done
}

# The network namespace with Redis, behind a veth pair; REDIS_AT is where
# the gateway finds it.
netns_up() {
  ip netns del $NS 2>/dev/null || true
  ip link del mgf0 2>/dev/null || true
  ip netns add $NS
  ip link add mgf0 type veth peer name mgf1
  ip link set mgf1 netns $NS
  ip addr add 10.233.0.1/24 dev mgf0
  ip link set mgf0 up
  ip netns exec $NS ip addr add 10.233.0.2/24 dev mgf1
  ip netns exec $NS ip link set mgf1 up
  ip netns exec $NS ip link set lo up
  mkdir -p "$WORK/nsredis"
  ip netns exec $NS redis-server --port 6379 --bind 127.0.0.1 10.233.0.2 --protected-mode no \
    --save '' --appendonly no --dir "$WORK/nsredis" >"$WORK/nsredis/log" 2>&1 &
  PIDS+=("$!")
  until ip netns exec $NS redis-cli -p 6379 ping 2>/dev/null | grep -q PONG; do sleep 0.1; done
  echo 0 >"$WORK/delay"
  if tc qdisc add dev mgf0 root netem delay 0ms 2>/dev/null; then
    DELAY_BY=netem
    REDIS_AT=10.233.0.2:6379
  else
    # No netem in this kernel: the relay in the namespace holds each chunk.
    DELAY_BY=relay
    ip netns exec $NS "$ML" delay 10.233.0.2:6380 127.0.0.1:6379 "$WORK/delay" &
    PIDS+=("$!")
    REDIS_AT=10.233.0.2:6380
    until (exec 3<>/dev/tcp/10.233.0.2/6380) 2>/dev/null; do sleep 0.1; done
  fi
}

set_delay() { # MS
  if [[ $DELAY_BY == netem ]]; then
    tc qdisc change dev mgf0 root netem delay "$1ms"
  else
    echo "$1" >"$WORK/delay"
  fi
}

# Drops PERCENT of the packets each way on the veth (0: none).
set_loss() {
  ip netns exec $NS iptables -F
  if (($1)); then
    local p
    p=$(awk -v p="$1" 'BEGIN { printf "%.2f", p / 100 }')
    ip netns exec $NS iptables -A INPUT -i mgf1 -m statistic --mode random --probability "$p" -j DROP
    ip netns exec $NS iptables -A OUTPUT -o mgf1 -m statistic --mode random --probability "$p" -j DROP
  fi
}

partition() { # on|off
  ip netns exec $NS iptables -F
  if [[ $1 == on ]]; then
    ip netns exec $NS iptables -A INPUT -i mgf1 -j DROP
    ip netns exec $NS iptables -A OUTPUT -o mgf1 -j DROP
  fi
}

scenario_network() {
  fresh network
  netns_up
  fact network delay_by "$DELAY_BY"
  gateway g1 $G1 "redis_url = \"redis://$REDIS_AT/0\""
  local g1=$GW_PID
  (while kill -0 "$g1" 2>/dev/null; do echo "$(now_ms) $(rss_kb "$g1") $(fds "$g1")"; sleep 1; done) \
    >"$RUN/network.rss" &
  local sampler=$!
  load network $((70 + ${PARTITION:-10} + 20)) --gw "http://127.0.0.1:$G1"
  local loadpid=$LOAD_PID
  sleep 8
  set_delay 50; event network "delay 50 ms"
  sleep 15
  set_delay 200; event network "delay 200 ms"
  sleep 15
  set_delay 0; event network "clean"
  sleep 8
  set_loss 5; event network "loss 5 %"
  sleep 15
  set_loss 0; event network "clean"
  sleep 8
  partition on; event network "partition"
  sleep "${PARTITION:-10}"
  partition off; event network "healed"
  wait $loadpid || true
  "$ML" check --gw "http://127.0.0.1:$G1" >"$RUN/network.check.json" || true
  fact network check "$(tr -d ' \n' <"$RUN/network.check.json")"
  stop "$g1" "$sampler"
  ip netns pids $NS | xargs -r kill 2>/dev/null || true
  sleep 0.3
  ip link del mgf0 2>/dev/null || true
  ip netns del $NS
}

# One Redis (its data in DIR) and two gateways on it: their pids in
# REDIS_PID, G1_PID and G2_PID, their [sessions] line in SESSIONS.
#   pair_on_redis DIR
pair_on_redis() {
  redis_node $REDIS "$1"
  REDIS_PID=$NODE_PID SESSIONS="redis_url = \"redis://127.0.0.1:$REDIS/0\""
  gateway g1 $G1 "$SESSIONS"
  G1_PID=$GW_PID
  gateway g2 $G2 "$SESSIONS"
  G2_PID=$GW_PID
}

scenario_killed() {
  fresh killed
  pair_on_redis "$WORK/redis"
  local redis=$REDIS_PID sessions=$SESSIONS g1=$G1_PID g2=$G2_PID
  mkdir -p "$WORK/nginx-lb"
  cat >"$WORK/nginx-lb/nginx.conf" <<EOF
worker_processes 2;
pid $WORK/nginx-lb/pid;
error_log $WORK/nginx-lb/error.log crit;
events { worker_connections 10000; }
http {
  access_log off;
  upstream gateways { server 127.0.0.1:$G1; server 127.0.0.1:$G2; keepalive 64; }
  server {
    listen 127.0.0.1:$LB;
    location / {
      proxy_pass http://gateways;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
  nginx -c "$WORK/nginx-lb/nginx.conf"
  wait_port $LB
  # A session begun on the replica that will be killed.
  local begun
  mapfile -t begun < <("$ML" login "http://127.0.0.1:$G2")
  load killed 40 --gw "http://127.0.0.1:$LB"
  local loadpid=$LOAD_PID
  sleep 10
  kill -9 "$g2"
  event killed "replica SIGKILLed"
  fact killed begun_on_killed_refresh_on_survivor "$("$ML" refresh "http://127.0.0.1:$G1" "${begun[1]}")"
  # A logout on the survivor while the other is down.
  local gone
  mapfile -t gone < <("$ML" login "http://127.0.0.1:$G1")
  fact killed logout_on_survivor "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$G1/auth/logout" \
    -H 'content-type: application/json' -d "{\"refresh_token\":\"${gone[1]}\"}")"
  sleep 10
  gateway g2 $G2 "$sessions"
  g2=$GW_PID
  event killed "replica restarted"
  local ms
  ms=$("$ML" await "http://127.0.0.1:$G2" "${gone[0]}" 401 10000) || ms=never
  fact killed revoked_while_down_refused_after_restart_ms "$ms"
  wait $loadpid || true
  stop "$g1" "$g2" "$redis"
  stop "$(cat "$WORK/nginx-lb/pid")"
}

scenario_drain() {
  fresh drain
  "$ML" upstream 127.0.0.1:$SLOW 200 &
  local slow=$!
  PIDS+=("$slow")
  wait_port $SLOW
  gateway g1 $G1 "max_sessions = 100000" $SLOW
  local g1=$GW_PID
  load drain 20 --gw "http://127.0.0.1:$G1"
  local loadpid=$LOAD_PID
  sleep 8
  local t0
  t0=$(now_ms)
  kill -TERM "$g1"
  event drain "SIGTERM"
  sleep 0.2
  if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$G1/healthz"; then
    fact drain new_connection_after_sigterm accepted
  else
    fact drain new_connection_after_sigterm refused
  fi
  wait "$g1" && fact drain exit_code 0 || fact drain exit_code $?
  fact drain exit_ms $(($(now_ms) - t0))
  event drain "exited"
  # The gateway's own count: connections busy when it stopped accepting,
  # requests cut at the deadline.
  fact drain busy_connections_at_sigterm "$(grep -o 'connections=[0-9]*' "$WORK/g1.log" | tail -1 | cut -d= -f2)"
  fact drain cut_off "$(grep -o 'cut_off=[0-9]*' "$WORK/g1.log" | tail -1 | cut -d= -f2)"
  wait $loadpid || true
  stop "$slow"
}

scenario_disk() {
  fresh disk
  local disk=$WORK/keydisk
  mkdir -p "$disk"
  mount -t tmpfs -o size=256k tmpfs "$disk"
  "$BIN/minigate" keys init --dir "$disk/keys" >/dev/null
  gateway g1 $G1 "max_sessions = 100000" $UP "$disk/keys"
  local g1=$GW_PID
  local before
  before=$(curl -s "http://127.0.0.1:$G1/.well-known/jwks.json" | sha256sum)
  load disk 20 --gw "http://127.0.0.1:$G1"
  local loadpid=$LOAD_PID
  sleep 5
  dd if=/dev/zero of="$disk/fill" bs=4k 2>/dev/null || true
  event disk "disk full"
  local code=0 sum
  sum=$(sha256sum <"$disk/keys/keyset.json")
  "$BIN/minigate" keys rotate --dir "$disk/keys" >/dev/null 2>"$WORK/rotate.err" || code=$?
  event disk "keys rotate failed"
  fact disk rotate_exit "$code"
  fact disk rotate_message "$(head -c 200 "$WORK/rotate.err" | tr ',\n' '; ')"
  [[ $(sha256sum <"$disk/keys/keyset.json") == "$sum" ]] && fact disk keyset_unchanged yes || fact disk keyset_unchanged NO
  fact disk leftover_files "$(find "$disk/keys" -name '*.tmp*' | wc -l)"
  kill -HUP "$g1"
  sleep 2
  [[ $(curl -s "http://127.0.0.1:$G1/.well-known/jwks.json" | sha256sum) == "$before" ]] &&
    fact disk jwks_unchanged yes || fact disk jwks_unchanged NO
  rm -f "$disk/fill"
  event disk "space freed"
  code=0
  "$BIN/minigate" keys rotate --dir "$disk/keys" >/dev/null 2>&1 || code=$?
  fact disk rotate_after_freeing_exit "$code"
  local t0
  t0=$(now_ms)
  until [[ $(curl -s "http://127.0.0.1:$G1/.well-known/jwks.json" | sha256sum) != "$before" ]]; do
    (($(now_ms) - t0 > 10000)) && break
    sleep 0.1
  done
  fact disk new_key_served_after_ms $(($(now_ms) - t0))
  wait $loadpid || true
  stop "$g1"
  umount "$disk"
}

scenario_soak() {
  fresh soak
  pair_on_redis "$WORK/redis-soak"
  local redis=$REDIS_PID g1=$G1_PID g2=$G2_PID
  echo "t,second,g1_rss_kb,g2_rss_kb,g1_fds,g2_fds,redis_used_memory,redis_keys" >"$RUN/soak.samples.csv"
  local t0
  t0=$(date +%s)
  (while kill -0 "$g1" 2>/dev/null; do
    t=$(date +%s)
    echo "$t,$((t - t0)),$(rss_kb "$g1"),$(rss_kb "$g2"),$(fds "$g1"),$(fds "$g2"),$(redis-cli -p $REDIS info memory | awk -F: '/^used_memory:/ { printf "%d", $2 }'),$(redis-cli -p $REDIS dbsize)"
    sleep "$SAMPLE"
  done) >>"$RUN/soak.samples.csv" &
  local sampler=$!
  RATE=${SOAK_RATE:-100} load soak "$SOAK" --gw "http://127.0.0.1:$G1" --gw "http://127.0.0.1:$G2"
  wait $LOAD_PID || true
  fact soak seconds "$SOAK"
  stop "$sampler" "$g1" "$g2" "$redis"
}

for s in "${SCENARIOS[@]}"; do
  echo "scenario $s" >&2
  "scenario_$s"
done
python3 benches/faults.py "$RUN" "$OUT/faults.md"
cat "$OUT/faults.md"
