#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60) with cargo-fuzz.
#   fuzz/run.sh            # a minute each
#   fuzz/run.sh 10         # CI's short run
#   fuzz/run.sh 600 token  # one target, longer
# cargo-fuzz needs nightly-only flags (sanitizers); on the stable toolchain
# RUSTC_BOOTSTRAP=1 enables them. Crashes land in fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(token auth_bodies keyset_file provider_answer douyin_answer baidu_answer alipay_answer kuaishou_answer feishu_answer component_push request_head canonical_path)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
export RUSTC_BOOTSTRAP=1

# Seeds: the committed ones, plus a real key-set file made by the CLI (not
# committed: it holds a private key, even if a throwaway one).
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo run --quiet --manifest-path ../Cargo.toml -p minigate -- keys init --dir "$work/keys" >/dev/null
mkdir -p seeds/keyset_file
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  cp -n seeds/"$t"/* "corpus/$t/" 2>/dev/null || true
  [[ $t == keyset_file ]] && cp "$work/keys/keyset.json" "corpus/$t/generated.json"
  echo "fuzz: $t for ${seconds}s"
  # Built first, so that a target that no longer compiles is told apart
  # from one that found a crash.
  if ! cargo fuzz build --release "$t" >"$work/$t.build.log" 2>&1; then
    tail -n 40 "$work/$t.build.log"
    echo "fuzz: $t does not build"
    exit 1
  fi
  if ! cargo fuzz run --release "$t" "corpus/$t" -- \
    -max_total_time="$seconds" -max_len=16384 -timeout=10 -print_final_stats=1 >"$work/$t.log" 2>&1; then
    tail -n 60 "$work/$t.log"
    echo "fuzz: $t failed (a crash is kept in fuzz/artifacts/$t)"
    exit 1
  fi
  grep -E '^(Done|stat::new_units_added)' "$work/$t.log" || true
done
