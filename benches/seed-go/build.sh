#!/usr/bin/env bash
# Builds the seed's design (main.go) offline from Debian's Go packages:
# GOPATH mode over /usr/share/gocode, where golang-github-gin-gonic-gin-dev,
# golang-github-golang-jwt-jwt-dev, golang-gopkg-redis.v5-dev and
# golang-github-google-uuid-dev put their sources. No module proxy is asked.
#   benches/seed-go/build.sh OUT_BINARY
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(realpath -m "${1:?usage: build.sh OUT_BINARY}")
mkdir -p "$(dirname "$out")"
export GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off GOFLAGS=
export GOCACHE=${GOCACHE:-$(dirname "$out")/go-cache}
cd "$here"
go build -o "$out" .
