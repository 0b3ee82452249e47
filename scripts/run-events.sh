#!/usr/bin/env bash
# run-events.sh - run the event-driven chain on 127.0.0.1 (what
# `make run-events` does after building): the seed's "Event-Driven via
# Broker" pattern with each function's K_SINK pointing straight at the
# next one, where a Knative Broker and Triggers would sit in a cluster:
#
#   POST /transaction -> transaction-processor
#       --com.example.transaction.created--> balance-manager   (K_SINK)
#       --com.example.balance.updated------> audit-logger      (K_SINK)
#
# Logs are prefixed by function name.  Sends one sample transaction,
# prints the curl line to try, and stops all three cleanly (SIGTERM, by
# PID) on Ctrl-C.
#
# Env: AUDIT_PORT [8081] BALANCE_PORT [8082] TX_PORT [8083] BIN [build/bin]
#      RUN_SECONDS [unset: run until Ctrl-C; set: stop after that many s]
set -uo pipefail

ME=run-events
# shellcheck source=scripts/chain-lib.sh
. "$(dirname "$0")/chain-lib.sh"

start audit-logger "$AUDIT_PORT" EVENT_MODE=1
start balance-manager "$BALANCE_PORT" EVENT_MODE=1 \
	K_SINK="http://$HOST:$AUDIT_PORT/"
start transaction-processor "$TX_PORT" EVENT_MODE=1 \
	K_SINK="http://$HOST:$BALANCE_PORT/"
wait_ready audit-logger "$AUDIT_PORT" && wait_ready balance-manager "$BALANCE_PORT" &&
	wait_ready transaction-processor "$TX_PORT" || stop

try="curl -s -X POST http://$HOST:$TX_PORT/transaction -H 'Content-Type: application/json' -d '{\"account\":\"ACC-001\",\"amount\":100.50}'"
echo
echo "sample transaction (accepted at once; the balance and audit follow as events):"
echo "  \$ $try"
echo "  $(eval "$try")"
echo
echo "The event chain is running (PIDs ${pids[*]}). Try it yourself:"
echo "  $try"
echo "or send balance-manager an event as a Broker would (binary mode):"
echo "  curl -s -X POST http://$HOST:$BALANCE_PORT/ -H 'Content-Type: application/json' \\"
echo "    -H 'ce-specversion: 1.0' -H 'ce-id: demo-1' -H 'ce-source: my/curl' \\"
echo "    -H 'ce-type: com.example.transaction.created' -d '{\"account\":\"ACC-002\",\"amount\":5}' -w '%{http_code}\\n'"
echo "Press Ctrl-C to stop."
run_until_stopped
