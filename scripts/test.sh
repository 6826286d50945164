#!/usr/bin/env bash
# The test suite, both front ends:
#   1. the Rust tests without Python (the pure HTTP layer, the state machine);
#   2. the Rust unit and end-to-end tests against the standalone binary;
#   3. the Python package built into a fresh venv for each interpreter in
#      $PYTHONS (default: python3): its pytest suite, and for the first
#      interpreter the end-to-end suites again against its console script.
#
# Environment:
#   PYO3_PYTHON   the interpreter the binary embeds (default: python3)
#   PYTHONS       interpreters to build and test the package with
#   PACKAGE_PROFILE  cargo profile maturin builds with (default: ci, which
#                 skips fat LTO; `release` is what `pip install .` uses)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYO3_PYTHON:-python3}"
section() { printf '\n==> %s\n' "$*"; }

section "test dependencies"
# tests/apps/flask_app.py needs Flask in the interpreter the binary embeds.
if ! "$PYTHON" -c 'import flask' >/dev/null 2>&1; then
    "$PYTHON" -m pip install --quiet flask
fi
"$PYTHON" -c 'import importlib.metadata as m; print("flask", m.version("flask"))'
# Debian packages, installed when missing (as root, or through sudo -n).
apt_install() {
    local sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo -n"; fi
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
        && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
export PATH="$PATH:/usr/sbin:/sbin"
# tests/e2e_nginx.rs and e2e_hosts.rs start their own nginx.
if ! command -v nginx >/dev/null 2>&1; then
    apt_install nginx-light || apt_install nginx \
        || { echo "test.sh: nginx is needed (apt-get install nginx-light)" >&2; exit 1; }
    # The package starts a system nginx on port 80; the tests need none.
    systemctl disable --now nginx >/dev/null 2>&1 || service nginx stop >/dev/null 2>&1 || true
fi
nginx -v
# tests/e2e_hosts.rs makes its hosts from network namespaces with iproute2's
# `ip` (as root; elsewhere it says SKIPPED and passes).
if ! command -v ip >/dev/null 2>&1; then
    apt_install iproute2 || echo "test.sh: no iproute2; tests/e2e_hosts.rs will be skipped" >&2
fi

section "cargo test --no-default-features (pure part, no Python)"
cargo test --no-default-features

section "cargo test (the standalone binary)"
cargo test

# The end-to-end suites that run against the console script too. Left out:
# e2e_python (the binary's own interpreter start and --virtualenv) and
# e2e_hosts (network namespaces; it tests deployment, not the front end).
E2E_BOTH=(e2e_cli e2e_file_wrapper e2e_http e2e_limits e2e_logs e2e_nginx
          e2e_reuse e2e_signals e2e_strict e2e_workers e2e_wsgi)

first=1
for py in ${PYTHONS:-python3}; do
    version="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    venv="target/venv-$version"
    section "Python package on CPython $version ($py) in $venv"
    rm -rf "$venv"
    "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    MATURIN_PEP517_ARGS="--profile ${PACKAGE_PROFILE:-ci}" \
        "$venv/bin/python" -m pip install --quiet ".[test]"
    "$venv/bin/python" -m pytest -q tests/python
    if [ "$first" = 1 ]; then
        section "end-to-end suites against $venv/bin/rwsgi-lite"
        args=()
        for t in "${E2E_BOTH[@]}"; do args+=(--test "$t"); done
        RWSGI_LITE_BIN="$PWD/$venv/bin/rwsgi-lite" cargo test "${args[@]}"
        first=0
    fi
done
