#!/usr/bin/env bash
# The container image, built and run as a user would (.ci/run runs this):
#   deploy/image/test.sh        # as root; installs podman and debootstrap
# 1. the release binary, as `cargo build --release --locked -p minigate`;
# 2. the runtime base under the name the Dockerfile's runtime stage uses
#    (base.sh: Debian's packages, since no image registry is reachable in
#    CI), unless podman has it;
# 3. the image: the Dockerfile's runtime stage, built with --pull=never, its
#    build stage supplied by that binary (--build-context build=DIR): the
#    lines a user's `docker build` runs after its build stage;
# 4. gateway/tests/it/image.rs with MINIGATE_IMAGE set: --version, keys init
#    into a volume, serve as deploy/base's Deployment runs it, a login and a
#    proxied request, the probes, SIGTERM drain.
# Prints how long each step took.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TERM_COLOR=never

missing=()
command -v podman >/dev/null || missing+=(podman)
command -v runc >/dev/null || missing+=(runc)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if ((${#missing[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
source deploy/image/podman.sh

times=()
step() { times+=("$1 ${SECONDS}s"); SECONDS=0; }
SECONDS=0

cargo build --release --locked -p minigate
step "release build"

base=$(sed -n 's/^FROM \([^ ]*\) AS runtime$/\1/p' Dockerfile)
podman image exists "$base" || deploy/image/base.sh "$base"
step "base ($base)"

image=localhost/minigate:test
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
cp "${CARGO_TARGET_DIR:-target}/release/minigate" "$bin/"
strip "$bin/minigate"
podman build --pull=never --build-context build="$bin" -t "$image" -f Dockerfile "$bin" >/dev/null
echo "image: $image, $(podman image inspect --format "{{.Size}}" "$image" | numfmt --to=iec)B"
step "podman build"

MINIGATE_IMAGE=$image cargo test -p minigate --features system-tests --test it \
  image:: -- --ignored
step "image test"

echo "deploy/image/test.sh: ${times[*]}"
