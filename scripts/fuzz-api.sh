#!/usr/bin/env bash
# Fuzzes the HTTP API from outside, by hand (not CI): starts chatpay on loopback with the
# built-in Stripe sandbox and a fresh SQLite database, makes an API token and two projects
# (with and without the backend), and runs schemathesis (PyPI) against the server's own
# /openapi.json with the token. It fails on any 5xx, any answer whose status, content type or
# body is not the documented one, and any request outside the documented form that is accepted.
#
#   ./scripts/fuzz-api.sh                       # a few minutes
#   FUZZ_MAX_EXAMPLES=500 ./scripts/fuzz-api.sh # longer
#   ./scripts/fuzz-api.sh --include-path-regex orders   # extra arguments go to schemathesis
#
# schemathesis and openapi-spec-validator are installed into target/fuzz-venv on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/fuzz-venv
if [ ! -x "$venv/bin/schemathesis" ] || [ ! -x "$venv/bin/openapi-spec-validator" ]; then
    echo "installing schemathesis into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet 'schemathesis>=4,<5' 'openapi-spec-validator>=0.7'
fi

cargo build --quiet -p chatpay --bin chatpay
chatpay=target/debug/chatpay

work=$(mktemp -d)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

export CHATPAY_DATABASE_URL="sqlite://$work/chatpay.db"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
token=$("$chatpay" token create --name fuzz | grep -o 'cpk_[A-Za-z0-9_]*' | head -n1)

"$chatpay" serve --listen "127.0.0.1:$port" >"$work/server.log" 2>&1 &
server_pid=$!
deadline=$((SECONDS + 60))
until curl -sf "$url/readyz" >/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ] || ! kill -0 "$server_pid" 2>/dev/null; then
        echo "chatpay did not become ready; its log:" >&2
        cat "$work/server.log" >&2
        exit 1
    fi
    sleep 0.2
done

project() {
    curl -sf -X POST "$url/v1/projects" -H "authorization: Bearer $token" \
        -H 'content-type: application/json' -d "$1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])'
}
backend=$(project '{"name":"Fuzz shop","backend":true}')
plain=$(project '{"name":"Fuzz site","backend":false}')
echo "chatpay at $url; projects $backend (backend) and $plain (no backend)" >&2

curl -sf "$url/openapi.json" >"$work/openapi.json"
"$venv/bin/openapi-spec-validator" "$work/openapi.json"

# Path parameters: `id` is the real backend project, so the calls get past "no such project";
# the rest are generated.
#
# "Schema-valid data is accepted" (positive_data_acceptance) does not apply where the values
# are ones only chatpay or Stripe can make: the links chatpay makes (Stripe's return pages, buy
# links, asset URLs), Stripe's signed webhook, and the WebSocket upgrade; refusing made-up ones
# is their job. "A created resource exists" (ensure_resource_availability) guesses that
# POST /v1/projects creates the app webhook endpoint; it does not (PUT does), so GET and DELETE
# of a project's endpoint before any PUT are 404 by design.
cat >"$work/schemathesis.toml" <<EOF
[parameters]
"path.id" = "$backend"

# Every check (set here, not with --checks, so that the exceptions below apply).
[checks]
enabled = true

[[operations]]
include-tag = "pages"
checks.positive_data_acceptance.enabled = false

[[operations]]
include-path = ["/v1/webhooks/stripe", "/v1/chat"]
checks.positive_data_acceptance.enabled = false

[[operations]]
include-path = "/v1/projects/{id}/app_webhook"
checks.ensure_resource_availability.enabled = false
EOF

status=0
"$venv/bin/schemathesis" --config-file "$work/schemathesis.toml" run "$url/openapi.json" \
    --url "$url" \
    -H "Authorization: Bearer $token" \
    --max-examples "${FUZZ_MAX_EXAMPLES:-100}" \
    --workers 2 \
    --request-timeout 20 \
    "$@" || status=$?

if [ "$status" -ne 0 ]; then
    echo "schemathesis found problems; the server's log is in $work/server.log (kept)" >&2
    cp "$work/server.log" target/fuzz-server.log
    echo "copied to target/fuzz-server.log" >&2
fi
exit "$status"
