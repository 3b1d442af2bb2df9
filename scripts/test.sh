#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine: installs the system packages and
# independent checkers the tests call (SoftHSM2, OpenSC, OpenSSL, oathtool, pkilint),
# makes sure PostgreSQL is up on 127.0.0.1:5432, then lints and tests.
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

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
