#!/usr/bin/env bash
# Several chatpay instances on one PostgreSQL, on loopback: one Stripe sandbox process and N
# `chatpay serve` processes, each on a free port, with the sandbox's webhooks delivered to the
# last instance. Used by crates/chatpay/tests/multi.rs, and by hand to try it:
#
#   scripts/multi.sh start DIR DATABASE_URL N [BIN]   # prints nothing; DIR gets the addresses
#   scripts/multi.sh stop DIR                         # stops what `start` started (by pid)
#
# DIR receives: sandbox.addr, sandbox.pid, sandbox.log, and per instance i (0-based)
# instance-i.addr ("127.0.0.1:PORT"), instance-i.pid, instance-i.log. BIN defaults to
# target/debug/chatpay. The instances share STRIPE_* settings that point them at the sandbox
# (its keys are fixed: see `chatpay stripe-sandbox`), and CHATPAY_INSTANCE=instance-i.
set -euo pipefail

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_ready() { # URL PIDFILE: until /readyz answers 200, or the process is gone (then fail)
    local url=$1 pid
    pid=$(cat "$2")
    for _ in $(seq 1 600); do
        if curl -fsS -o /dev/null "$url" 2>/dev/null; then return 0; fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "multi.sh: process $pid exited before $url answered" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "multi.sh: $url did not answer" >&2
    return 1
}

start() {
    local dir=$1 db=$2 n=$3 bin=${4:-target/debug/chatpay}
    mkdir -p "$dir"
    local sandbox_port secret=whsec_chatpay_sandbox
    sandbox_port=$(free_port)
    local ports=()
    for ((i = 0; i < n; i++)); do ports+=("$(free_port)"); done
    local hook="http://127.0.0.1:${ports[$((n - 1))]}/v1/webhooks/stripe"
    setsid "$bin" stripe-sandbox --listen "127.0.0.1:$sandbox_port" --webhook-url "$hook" \
        --webhook-secret "$secret" --state-file "$dir/sandbox.json" \
        >"$dir/sandbox.log" 2>&1 </dev/null &
    echo $! >"$dir/sandbox.pid"
    echo "127.0.0.1:$sandbox_port" >"$dir/sandbox.addr"
    local base="http://127.0.0.1:$sandbox_port/"
    for ((i = 0; i < n; i++)); do
        CHATPAY_INSTANCE="instance-$i" CHATPAY_LOG="${CHATPAY_LOG:-info}" \
            STRIPE_SECRET_KEY=sk_test_chatpay_sandbox STRIPE_LIVE_SECRET_KEY=sk_live_chatpay_sandbox \
            STRIPE_CONNECT_CLIENT_ID=ca_chatpay_sandbox STRIPE_WEBHOOK_SECRET=$secret \
            STRIPE_API_BASE=$base STRIPE_CONNECT_BASE=$base \
            setsid "$bin" serve --listen "127.0.0.1:${ports[$i]}" --database-url "$db" \
            >"$dir/instance-$i.log" 2>&1 </dev/null &
        echo $! >"$dir/instance-$i.pid"
        echo "127.0.0.1:${ports[$i]}" >"$dir/instance-$i.addr"
    done
    for ((i = 0; i < n; i++)); do
        wait_ready "http://127.0.0.1:${ports[$i]}/readyz" "$dir/instance-$i.pid"
    done
}

stop() {
    local dir=$1 f pid
    for f in "$dir"/instance-*.pid "$dir"/sandbox.pid; do
        [ -f "$f" ] || continue
        pid=$(cat "$f")
        kill -TERM "$pid" 2>/dev/null || true
    done
    for f in "$dir"/instance-*.pid "$dir"/sandbox.pid; do
        [ -f "$f" ] || continue
        pid=$(cat "$f")
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        rm -f "$f"
    done
}

case "${1:-}" in
    start) shift; start "$@" ;;
    stop) shift; stop "$@" ;;
    *) echo "usage: $0 start DIR DATABASE_URL N [BIN] | stop DIR" >&2; exit 2 ;;
esac
