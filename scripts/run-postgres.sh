#!/usr/bin/env bash
# run-postgres.sh - the chain on PostgreSQL, as Knative runs it with many
# replicas (what `make run-postgres` does after building): a private
# PostgreSQL 15 (tests/pg/pg.sh, a database per function), audit-logger,
# two balance-manager replicas on one database behind a round-robin proxy
# (tests/e2e/rrproxy.py), transaction-processor in front.  Sends sample
# transactions (each replica serves some), prints where to look, and stops
# everything it started, by PID, on Ctrl-C; the database goes with it.
#
# Env: AUDIT_PORT [8081] BALANCE_PORT [8082: the proxy] TX_PORT [8083]
#      REPLICA_PORTS ["8084 8085"] BIN [build/bin] PG_DIR [build/pg]
#      RUN_SECONDS [unset: run until Ctrl-C]
set -uo pipefail

ME=run-postgres
# shellcheck source=scripts/chain-lib.sh
. "$(dirname "$0")/chain-lib.sh"
read -r -a REPLICAS <<<"${REPLICA_PORTS:-8084 8085}"
PG_DIR="${PG_DIR:-build/pg}"

on_stop() { tests/pg/pg.sh stop "$PG_DIR" >/dev/null 2>&1; }

tests/pg/pg.sh stop "$PG_DIR" >/dev/null 2>&1 # a run left behind
url="$(tests/pg/pg.sh start "$PG_DIR")" || { echo "$ME: PostgreSQL did not start" >&2; exit 1; }
base="${url%%\?*}"
base="${base%/*}"
for db in audit balances; do
	psql -q "$url" -c "CREATE DATABASE $db" || exit 1
done
echo "$ME: PostgreSQL at $url (databases audit, balances)"

start audit-logger "$AUDIT_PORT" ZC_STORE_URL="$base/audit?connect_timeout=5"
for port in "${REPLICAS[@]}"; do
	start balance-manager "$port" AUDIT_LOGGER_URL="http://$HOST:$AUDIT_PORT" \
		ZC_STORE_URL="$base/balances?connect_timeout=5"
done
ups=()
for port in "${REPLICAS[@]}"; do ups+=(--upstream "$HOST:$port"); done
python3 tests/e2e/rrproxy.py --port "$BALANCE_PORT" "${ups[@]}" \
	> >(sed -u "s/^/[rrproxy] /" >&2) 2>&1 &
track $!
start transaction-processor "$TX_PORT" BALANCE_MANAGER_URL="http://$HOST:$BALANCE_PORT"
wait_ready audit-logger "$AUDIT_PORT" || stop
for port in "${REPLICAS[@]}"; do wait_ready balance-manager "$port" || stop; done
wait_ready rrproxy "$BALANCE_PORT" && wait_ready transaction-processor "$TX_PORT" || stop

try="curl -s -X POST http://$HOST:$TX_PORT/transaction -H 'Content-Type: application/json' -d '{\"account\":\"ACC-001\",\"amount\":100.50}'"
echo
echo "four sample transactions (the proxy alternates the two replicas):"
for i in 1 2 3 4; do echo "  $(eval "$try")"; done
for port in "${REPLICAS[@]}"; do
	echo "  replica :$port says $(curl -s "http://$HOST:$port/accounts/ACC-001")"
done
echo
echo "The chain is running on PostgreSQL (PIDs ${pids[*]}). Try it yourself:"
echo "  $try"
echo "  psql '$base/balances' -c 'SELECT * FROM accounts'"
echo "Press Ctrl-C to stop (the database is removed with it)."
run_until_stopped
