#!/usr/bin/env bash
# The whole test suite, on a fresh machine: formatting and lints are in .ci/run; this runs every
# test against SQLite and against a throwaway PostgreSQL server on loopback, which it installs
# (Debian's packages) and starts when CHATPAY_TEST_POSTGRES does not already name one, and the
# web chat view in headless Chromium, whose Debian packages (chromium, chromium-driver) it
# installs when missing unless CHATPAY_TEST_BROWSER=skip.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif need sudo; then sudo "$@"; else
        echo "test.sh: need root (or sudo) to run: $*" >&2; return 1; fi
}

pg_bin() {
    # pg_ctl on PATH, else the newest Debian cluster binaries.
    if need pg_ctl && need initdb; then dirname "$(command -v pg_ctl)"; return; fi
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

start_postgres() {
    local bin
    bin=$(pg_bin)
    if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
        echo "test.sh: installing PostgreSQL (Debian packages)" >&2
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        bin=$(pg_bin)
    fi
    PG_DIR=$(mktemp -d /tmp/chatpay-pg.XXXXXX)
    PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 55432)
    # PostgreSQL refuses to run as root: use the postgres user when we are root.
    local run=()
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
        chown postgres "$PG_DIR"
        run=(runuser -u postgres --)
    fi
    "${run[@]}" "$bin/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 >/dev/null
    "${run[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c fsync=on -c max_connections=300" start >/dev/null
    PG_STOP=("${run[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -m fast stop)
    trap 'stop_postgres' EXIT
    export CHATPAY_TEST_POSTGRES="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
    echo "test.sh: PostgreSQL on 127.0.0.1:$PG_PORT" >&2
}

stop_postgres() {
    "${PG_STOP[@]}" >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
}

if [ -z "${CHATPAY_TEST_POSTGRES:-}" ]; then
    start_postgres
fi

install_browser() {
    if need chromium && need chromedriver; then return; fi
    echo "test.sh: installing Chromium and chromedriver (Debian packages)" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
}

if [ "${CHATPAY_TEST_BROWSER:-}" != skip ]; then
    install_browser
fi

cargo test --locked --workspace "$@"

# The held-out score: a measurement, printed, not a threshold (`chatpay intents check` is the test).
echo "test.sh: held-out score (chatpay intents eval intents/heldout.tsv):" >&2
cargo run --locked -q -p chatpay -- intents eval intents/heldout.tsv
