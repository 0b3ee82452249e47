#!/usr/bin/env bash
# run-chain.sh - run the three-function chain on 127.0.0.1 (what `make run`
# does after building): audit-logger, balance-manager, transaction-processor,
# wired by their URL env vars, logs prefixed by function name.  Sends one
# sample transaction, prints the curl line to try, and stops all three
# cleanly (SIGTERM, by PID) on Ctrl-C.
#
# Env: AUDIT_PORT [8081] BALANCE_PORT [8082] TX_PORT [8083] BIN [build/bin]
#      RUN_SECONDS [unset: run until Ctrl-C; set: stop after that many s]
set -uo pipefail

AUDIT_PORT="${AUDIT_PORT:-8081}"
BALANCE_PORT="${BALANCE_PORT:-8082}"
TX_PORT="${TX_PORT:-8083}"
BIN="${BIN:-build/bin}"
HOST=127.0.0.1
pids=()

stop() {
	trap - INT TERM EXIT
	if ((${#pids[@]})); then
		echo "run: stopping ${pids[*]}" >&2
		kill -TERM "${pids[@]}" 2>/dev/null
		wait "${pids[@]}" 2>/dev/null
	fi
	exit 0
}
trap stop INT TERM EXIT

start() { # name port env...
	local name="$1" port="$2"
	shift 2
	env PORT="$port" ZC_LISTEN_ADDRESS="$HOST" "$@" "$BIN/$name" \
		2> >(sed -u "s/^/[$name] /" >&2) &
	pids+=($!)
}

wait_ready() { # name port
	local i
	for ((i = 0; i < 100; i++)); do
		curl -fs -o /dev/null "http://$HOST:$2/health/readiness" && return 0
		sleep 0.05
	done
	echo "run: $1 did not become ready on port $2" >&2
	return 1
}

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
echo
echo "The chain is running (PIDs ${pids[*]}). Try it yourself:"
echo "  $try"
echo "Press Ctrl-C to stop."
if [[ -n "${RUN_SECONDS:-}" ]]; then
	sleep "$RUN_SECONDS"
else
	wait
fi
stop
