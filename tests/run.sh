#!/usr/bin/env bash
# Set up and run Floorwalker's whole test suite on a fresh machine (the README's second command).
#   bash tests/run.sh [pytest args...]
# Installs what the tests need: Debian's mosquitto, chromium, openssl, npm and a Java runtime when
# missing (as root, or with sudo), a virtual environment .venv with the project, its test extras and the
# chain extra (PyFlink), axe-core from the npm registry for the browser tests
# (tests/browser/package-lock.json); then runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v mosquitto_sub >/dev/null 2>&1 || missing+=(mosquitto-clients)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)  # PyFlink (the chain extra) runs on it
if [ ${#missing[@]} -gt 0 ]; then
    echo "tests/run.sh: installing Debian packages: ${missing[*]}"
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "tests/run.sh: no apt-get here; install ${missing[*]} yourself" >&2
        exit 1
    fi
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "tests/run.sh: creating .venv"
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test,chain]'

# axe-core, injected by the browser tests into each page (tests/browser/package.json, locked).
if [ ! -f tests/browser/node_modules/axe-core/axe.min.js ]; then
    echo "tests/run.sh: installing axe-core for the browser tests"
    npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
fi

exec .venv/bin/python -m pytest "$@"
