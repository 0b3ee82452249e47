#!/usr/bin/env bash
# run-chain.sh - run the three-function chain on 127.0.0.1 (what `make run`
# does after building): audit-logger, balance-manager, transaction-processor,
# wired by their URL env vars, logs prefixed by function name.  Sends one
# sample transaction, prints the curl line to try, and stops all three
# cleanly (SIGTERM, by PID) on Ctrl-C.
#
# State: each function's SQLite file in STATE_DIR (build/state), so the
# balances survive a restart of `make run`; ZC_STORE_URL overrides it.
#
# Env: AUDIT_PORT [8081] BALANCE_PORT [8082] TX_PORT [8083] BIN [build/bin]
#      STATE_DIR [build/state] ZC_STORE_URL [unset: a SQLite file each]
#      RUN_SECONDS [unset: run until Ctrl-C; set: stop after that many s]
set -uo pipefail

ME=run
# shellcheck source=scripts/chain-lib.sh
. "$(dirname "$0")/chain-lib.sh"

start audit-logger "$AUDIT_PORT"
start balance-manager "$BALANCE_PORT" AUDIT_LOGGER_URL="http://$HOST:$AUDIT_PORT"
start transaction-processor "$TX_PORT" BALANCE_MANAGER_URL="http://$HOST:$BALANCE_PORT"
wait_ready audit-logger "$AUDIT_PORT" && wait_ready balance-manager "$BALANCE_PORT" &&
	wait_ready transaction-processor "$TX_PORT" || stop

try="curl -s -X POST http://$HOST:$TX_PORT/transaction -H 'Content-Type: application/json' -d '{\"account\":\"ACC-001\",\"amount\":100.50}'"
echo
echo "sample transaction:"
echo "  \$ $try"
echo "  $(eval "$try")"
get="curl -s http://$HOST:$BALANCE_PORT/accounts/ACC-001"
echo "  \$ $get"
echo "  $(eval "$get")"
echo
echo "The chain is running (PIDs ${pids[*]}). Try it yourself:"
echo "  $try"
echo "State is kept in ${ZC_STORE_URL:-$STATE_DIR/}: stop and run again, and"
echo "ACC-001 still has its balance (rm -rf $STATE_DIR starts afresh)."
echo "Press Ctrl-C to stop."
run_until_stopped
