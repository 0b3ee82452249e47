# chain-lib.sh - sourced by run-chain.sh and run-events.sh: start functions
# on 127.0.0.1 with their logs prefixed by name, wait for readiness, and
# stop exactly the PIDs started (SIGTERM) on Ctrl-C or exit.
# The caller sets ME (its name for messages) before sourcing.

AUDIT_PORT="${AUDIT_PORT:-8081}"
BALANCE_PORT="${BALANCE_PORT:-8082}"
TX_PORT="${TX_PORT:-8083}"
BIN="${BIN:-build/bin}"
HOST=127.0.0.1
pids=()

stop() {
	trap - INT TERM EXIT
	if ((${#pids[@]})); then
		echo "$ME: stopping ${pids[*]}" >&2
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
	echo "$ME: $1 did not become ready on port $2" >&2
	return 1
}

# Run until Ctrl-C, or RUN_SECONDS when set; then stop.
run_until_stopped() {
	if [[ -n "${RUN_SECONDS:-}" ]]; then
		sleep "$RUN_SECONDS"
	else
		wait
	fi
	stop
}
