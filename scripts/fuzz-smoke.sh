#!/usr/bin/env bash
# Fuzz smoke run: builds the cargo-fuzz targets in fuzz/ and runs each one for a
# bounded time, starting from its seed corpus in fuzz/corpus/<target>/. Fails on any crash,
# sanitizer report, slow input or memory blow-up; libFuzzer then saves the input under
# fuzz/artifacts/<target>/ and prints the command that replays it.
#
# The toolchain is stable; RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass the nightly-only flags it
# needs (-Zsanitizer=address and the coverage passes). AddressSanitizer stays on: it works here
# and catches memory errors in the dependencies' unsafe code.
#
# FUZZ_SECONDS sets the time per target (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-20}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz@0.13.2 --locked
export RUSTC_BOOTSTRAP=1

start=$SECONDS
cargo fmt --manifest-path fuzz/Cargo.toml --check
# Not --locked: fuzz/Cargo.lock pins what it can, but a dependency added to signet-pki or
# signet-ra must not break this run before someone refreshes the fuzz lock.
cargo fuzz build
echo "fuzz: targets built in $((SECONDS - start)) s"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
summary=()
for target in $(cargo fuzz list); do
    mkdir "$scratch/$target"
    # libFuzzer adds the inputs it finds to the first directory: a scratch one, so the
    # committed seeds stay as they are.
    log="$scratch/$target.log"
    if ! cargo fuzz run "$target" "$scratch/$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "fuzz: $target FAILED (artifacts in fuzz/artifacts/$target/)" >&2
        exit 1
    fi
    summary+=("fuzz: $target: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$log"), no crash")
done
printf '%s\n' "${summary[@]}"
echo "fuzz: smoke run took $((SECONDS - start)) s"
