# Shell the benchmark scripts share: sourced by load.sh, sessions.sh and
# instructions.sh (not run on its own), so that the three install, build,
# wait and configure minigate the same way.

# Installs from Debian's packages the commands that are missing: COMMAND,
# or COMMAND=PACKAGE where the package has another name.
#   need_commands nginx wrk h2load=nghttp2-client
need_commands() {
  local missing=() c
  for c in "$@"; do
    command -v "${c%%=*}" >/dev/null || [[ -x /usr/sbin/${c%%=*} ]] || missing+=("${c#*=}")
  done
  if ((${#missing[@]})); then
    echo "installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  export PATH=$PATH:/usr/sbin
}

# Installs the given Debian packages that are not installed (libraries,
# which need_commands cannot see: the Go sources of benches/seed-go).
#   need_packages golang-github-gin-gonic-gin-dev ...
need_packages() {
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if ((${#missing[@]})); then
    echo "installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# Builds the given packages in release mode; sets BIN to their binaries.
#   build_release minigate minigate-benches
build_release() {
  echo "building minigate (release)" >&2
  cargo build --release --quiet "${@/#/-p}"
  BIN=${CARGO_TARGET_DIR:-target}/release
}

# Waits for something to listen on 127.0.0.1:PORT (10 s at most); on
# failure shows the end of the given logs and exits.
#   wait_port PORT [LOG...]
wait_port() {
  local port=$1
  shift
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on $port" >&2
  (($#)) && tail -n 5 "$@" >&2 2>/dev/null
  exit 1
}

# Prints the configuration the proxy benchmarks run minigate with: the keys
# in KEYS, a required route `/` and a public route `/public/` to
# UPSTREAM_PORT, and no per-address cap on requests in flight (every wrk
# connection comes from 127.0.0.1: the default 256 would answer the 1k and
# 10k runs with 429s). TOKENS_EXTRA, SERVER_EXTRA and TABLES_EXTRA add
# lines to `[tokens]`, to `[server]`, and whole tables before the routes.
# TRACE_RATIO=r adds `[tracing]` sampling r of the requests, exporting to
# the upstream's port (nginx answers the OTLP posts 200): the cost of
# tracing on (docs/tracing.md).
#   minigate_config PORT UPSTREAM_PORT KEYS > minigate.toml
minigate_config() {
  cat <<EOF
listen = "127.0.0.1:$1"
[tokens]
issuer = "https://bench.minigate"
audience = "api"
access_ttl = "2h"
${TOKENS_EXTRA:-}
[keys]
dir = "$3"
[server]
max_requests_per_ip = 0
${SERVER_EXTRA:-}
${TABLES_EXTRA:-}
${TRACE_RATIO:+[tracing]
otlp_endpoint = \"http://127.0.0.1:$2\"
sample_ratio = $TRACE_RATIO}
[[routes]]
prefix = "/"
upstream = "http://127.0.0.1:$2"
auth = "required"
[[routes]]
prefix = "/public/"
upstream = "http://127.0.0.1:$2"
auth = "public"
EOF
}

# Makes DIR/ca.pem, a CA made here, and DIR/leaf.pem and DIR/leaf.key
# (PKCS#8), an ECDSA P-256 certificate it signed for localhost and
# 127.0.0.1: the TLS edge's certificate.
#   make_cert DIR
make_cert() {
  (
    mkdir -p "$1" && cd "$1"
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key
    openssl req -x509 -new -key ca.key -subj /CN=bench-ca -days 2 -out ca.pem
    openssl ecparam -name prime256v1 -genkey -noout -out sec1.key
    openssl pkcs8 -topk8 -nocrypt -in sec1.key -out leaf.key
    openssl req -new -key leaf.key -subj /CN=localhost -out leaf.csr
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >ext
    openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
      -extfile ext -out leaf.pem
  ) 2>/dev/null
}

# Prints a `[[providers]]` table for WeChat whose code exchange is the
# stand-in on 127.0.0.1:PORT, its secret in $LOAD_WECHAT_SECRET.
#   TABLES_EXTRA=$(wechat_provider PORT) minigate_config ...
wechat_provider() {
  cat <<EOF
[[providers]]
platform = "wechat"
appid = "wx0123456789abcdef"
secret_env = "LOAD_WECHAT_SECRET"
base_url = "http://127.0.0.1:$1"
EOF
}

# Starts the upstream of the proxy benchmarks: nginx (2 workers) answering
# `200 ok` on UP, and beside it a stand-in `jscode2session` on WECHAT that
# answers as WeChat does (JSON as text/plain) with the openid OPENID (an
# nginx expression: `o-$arg_js_code` makes one user per code). The upstream
# answers `/whoami` with the X-Auth-Openid header it was sent. Its pid is
# in DIR/pid.
#   start_upstream DIR UP WECHAT [OPENID]
start_upstream() {
  mkdir -p "$1"
  cat >"$1/nginx.conf" <<EOF
worker_processes 2;
pid $1/pid;
error_log $1/error.log crit;
events { worker_connections 30000; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$2 backlog=8192;
    location / { return 200 "ok"; }
    # The identity a gateway sent: what load.sh checks reaches the upstream.
    location = /whoami { return 200 "\$http_x_auth_openid"; }
  }
  server {
    listen 127.0.0.1:$3 backlog=8192;
    location /sns/jscode2session {
      default_type text/plain;
      return 200 '{"openid":"${4:-openid-load}","session_key":"not-a-real-key"}';
    }
  }
}
EOF
  nginx -c "$1/nginx.conf"
}

# Writes wrk's scripts into DIR: pool.lua (each request a token from the
# file given after `--`, in turn from a random start), login.lua (a login
# with a new code each time; after `--`, a device type, `-` for none: with
# `pc`, logins of one user's PC, each ending the one before; then,
# optionally, a file the answers' refresh tokens are written to, one a line)
# and refresh.lua (refresh tokens from the file
# given after `--`, each answer's refresh token queued for a later request:
# sessions refreshed in chains).
wrk_scripts() {
  cat >"$1/pool.lua" <<'EOF'
local tokens, i = {}, 0
function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  i = math.random(#tokens)
end
function request()
  i = i % #tokens + 1
  return wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. tokens[i] })
end
EOF
  cat >"$1/refresh.lua" <<'EOF'
local queue = {}
function init(args) for line in io.lines(args[1]) do queue[#queue + 1] = line end end
function request()
  local t = table.remove(queue, 1) or "none"
  return wrk.format("POST", "/auth/refresh", { ["Content-Type"] = "application/json" },
    '{"refresh_token":"' .. t .. '"}')
end
function response(status, headers, body)
  local t = body:match('"refresh_token":"([^"]+)"')
  if t then queue[#queue + 1] = t end
end
EOF
  cat >"$1/login.lua" <<'EOF'
local n, device, seeds = 0, nil, nil
function init(args)
  if args[1] ~= "-" then device = args[1] end
  if args[2] then seeds = io.open(args[2], "w") end
end
function request()
  n = n + 1
  local body = '{"code":"load-' .. n .. '"}'
  if device == "pc" then
    body = '{"code":"one-pc-user","device_type":"pc"}'
  elseif device then
    body = '{"code":"load-' .. n .. '","device_type":"' .. device .. '"}'
  end
  return wrk.format("POST", "/auth/login", { ["Content-Type"] = "application/json" }, body)
end
function response(status, headers, body)
  if seeds then
    local t = body:match('"refresh_token":"([^"]+)"')
    if t then seeds:write(t, "\n"); seeds:flush() end
  end
end
EOF
}
