#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine: installs the system packages and
# independent checkers the tests call (SoftHSM2, OpenSC, OpenSSL, oathtool, pkilint, promtool,
# openapi-spec-validator, schemathesis, and aiosmtpd as the mail tests' SMTP server),
# makes sure PostgreSQL is up on 127.0.0.1:5432, then lints, audits the dependencies (cargo-deny),
# tests, builds the Debian package and lints it (cargo-deb, lintian), and runs the fuzz targets
# briefly.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v softhsm2-util >/dev/null || need_apt+=(softhsm2)
command -v pkcs11-tool >/dev/null || need_apt+=(opensc)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v oathtool >/dev/null || need_apt+=(oathtool)
command -v pg_isready >/dev/null || need_apt+=(postgresql-client)
command -v curl >/dev/null || need_apt+=(curl)
command -v sqlite3 >/dev/null || need_apt+=(sqlite3)
# The PDF forms and the timeline picture are read back by poppler, qpdf and librsvg.
command -v pdftotext >/dev/null || need_apt+=(poppler-utils)
command -v qpdf >/dev/null || need_apt+=(qpdf)
command -v rsvg-convert >/dev/null || need_apt+=(librsvg2-bin)
# The soft-token QR code is decoded by zbar (crates/signet-server/tests/it/cmc.rs).
command -v zbarimg >/dev/null || need_apt+=(zbar-tools)
# The Debian package is checked by lintian.
command -v lintian >/dev/null || need_apt+=(lintian)
# `/metrics` is checked by Prometheus's own linter (crates/signet/tests/it/cli.rs).
command -v promtool >/dev/null || need_apt+=(prometheus)
# The browser test (crates/signet/tests/it/e2e_browser.rs) drives Debian's Chromium with Node.
# The machine's Node 20 and npm come first; Debian's are the fallback.
command -v chromium >/dev/null || need_apt+=(chromium)
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "installing: ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if ! command -v lint_pkix_cert >/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check pkilint
    # pyenv only shims new console scripts after a rehash; the scripts folder works anyway.
    if command -v pyenv >/dev/null; then pyenv rehash; fi
    export PATH="$PATH:$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
    hash -r
fi
command -v lint_pkix_cert >/dev/null || { echo "pkilint did not install" >&2; exit 1; }
# The ACME tests run certbot (and the ACME library it ships) against the server, and a dnslib
# DNS server for dns-01.
if ! command -v certbot >/dev/null || ! python3 -c 'import dnslib' 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check certbot dnslib
    if command -v pyenv >/dev/null; then pyenv rehash; fi
    hash -r
fi
command -v certbot >/dev/null || { echo "certbot did not install" >&2; exit 1; }
# The OpenAPI document is validated and fuzzed against a live server (crates/signet/tests/it/cli.rs);
# schemathesis is pinned because its command line changes between major versions, and
# Hypothesis with it: newer Hypothesis releases break schemathesis 3.
if ! command -v openapi-spec-validator >/dev/null || ! command -v schemathesis >/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check 'openapi-spec-validator==0.9.0' 'schemathesis==3.39.16' 'hypothesis==6.120.0'
    if command -v pyenv >/dev/null; then pyenv rehash; fi
    hash -r
fi
command -v schemathesis >/dev/null || { echo "schemathesis did not install" >&2; exit 1; }
# The mail tests run a real SMTP server.
python3 -c 'import aiosmtpd' 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check aiosmtpd

# playwright-core only, at the locked version; it uses the system Chromium and downloads no browser.
npm ci --prefix e2e --no-audit --no-fund --loglevel=error

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi

# The browser test's screenshots are the CI artifacts; say where they are, pass or fail.
screenshots="${CARGO_TARGET_DIR:-target}/screenshots/e2e"
trap 'if [ -d "$screenshots" ]; then echo "browser screenshots: $(realpath "$screenshots")"; fi' EXIT

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

# Dependency audit (deny.toml): licenses, bans and sources. Advisories are left out: the RustSec
# database lives on a git host this machine cannot reach.
command -v cargo-deny >/dev/null || cargo install cargo-deny@0.20.2 --locked
command -v cargo-deb >/dev/null || cargo install cargo-deb@3.8.0 --locked
cargo deny --all-features check licenses bans sources
cargo test --workspace --locked

# The Debian package (crates/signet/Cargo.toml, packaging/debian) from the debug binary the tests
# just built, stripped: cargo-deb will not build the dev profile, and a release build only for
# this check would cost more than the tests. lintian fails the run on any error.
deb_stage="$(mktemp -d)"
mkdir -p "$deb_stage/release"
cp "${CARGO_TARGET_DIR:-target}/debug/signet" "$deb_stage/release/signet"
CARGO_TARGET_DIR="$deb_stage" cargo deb -p signet --locked --no-build --strip --fast -o "$deb_stage/"
lintian --fail-on error "$deb_stage"/signet_*.deb
rm -rf "$deb_stage"

# Fuzz smoke run (fuzz/README.md): every cargo-fuzz target for 20 s from its seed corpus.
bash scripts/fuzz-smoke.sh
