#!/usr/bin/env bash
# tracing_cost.sh - what tracing costs (issue 14): two copies of the chain
# in the same run, one with tracing off and one with every request traced
# (OTEL_TRACES_SAMPLER=traceidratio, ratio 1.0) exporting OTLP/protobuf to
# a collector that answers at once (tests/otlp/receiver.js --discard), each
# loaded with wrk in alternating rounds so drift hits both alike: POST /log
# on audit-logger and POST /transaction on the whole chain.  Prints req/s
# per round, the medians and on/off; the target is on/off >= 0.90.
#
#   bench/tracing_cost.sh            BUILD=build, 3 rounds x 5 s, 16 conns
#   REPEAT=5 DURATION=10 CONNS=32 BUILD=build-x bench/tracing_cost.sh
#   RECORD_ONLY=1 bench/tracing_cost.sh   spans recorded but not exported
#                 (a refused collector, a one-span queue): what recording
#                 costs without the exporter's encoding and sending
#
# Every process started is recorded and stopped by its PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD="${BUILD:-build}"
REPEAT="${REPEAT:-3}"
DURATION="${DURATION:-5}"
CONNS="${CONNS:-16}"
STORE="${STORE:-memory:}"
OUT="${OUT:-$BUILD/bench/tracing}"
HOST=127.0.0.1

command -v wrk >/dev/null || { echo "tracing_cost: wrk is not installed (apt-get install wrk)" >&2; exit 1; }
command -v node >/dev/null || { echo "tracing_cost: node is not installed (make deps)" >&2; exit 1; }
for f in audit-logger balance-manager transaction-processor; do
	[[ -x "$BUILD/bin/$f" ]] || { echo "tracing_cost: no $BUILD/bin/$f (make all)" >&2; exit 1; }
done
mkdir -p "$OUT"
rm -f "$OUT"/*.log "$OUT"/*.txt

pids=()
cleanup() { # last started first: a caller stops before what it calls
	local i p
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		p="${pids[i]}"
		kill -TERM "$p" 2>/dev/null || continue
		for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
	done
}
trap cleanup EXIT INT TERM

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_up() { # port
	for _ in $(seq 100); do
		curl -fsS -o /dev/null "http://$HOST:$1/health/readiness" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "tracing_cost: nothing ready on port $1" >&2
	exit 1
}

# the collector: answers every export 200, decodes nothing
coproc RECV { exec node tests/otlp/receiver.js --discard 2>"$OUT/receiver.log"; }
pids+=("$RECV_PID")
read -r line <&"${RECV[0]}"
rport="${line//[^0-9]/}"

# start_chain tag env...: three functions; their ports in A_<tag>, T_<tag>
start_chain() {
	local tag="$1" a b t
	shift
	a="$(free_port)" b="$(free_port)" t="$(free_port)"
	env -i PATH="$PATH" HOME="${HOME:-/tmp}" ZC_STORE_URL="$STORE" ZC_LISTEN_ADDRESS=$HOST ZC_DRAIN_TIMEOUT_MS=3000 "$@" \
		PORT="$a" "$BUILD/bin/audit-logger" 2>>"$OUT/$tag.log" &
	pids+=($!)
	env -i PATH="$PATH" HOME="${HOME:-/tmp}" ZC_STORE_URL="$STORE" ZC_LISTEN_ADDRESS=$HOST ZC_DRAIN_TIMEOUT_MS=3000 "$@" \
		PORT="$b" AUDIT_LOGGER_URL="http://$HOST:$a" "$BUILD/bin/balance-manager" 2>>"$OUT/$tag.log" &
	pids+=($!)
	env -i PATH="$PATH" HOME="${HOME:-/tmp}" ZC_STORE_URL="$STORE" ZC_LISTEN_ADDRESS=$HOST ZC_DRAIN_TIMEOUT_MS=3000 "$@" \
		PORT="$t" BALANCE_MANAGER_URL="http://$HOST:$b" AUDIT_LOGGER_URL="http://$HOST:$a" \
		"$BUILD/bin/transaction-processor" 2>>"$OUT/$tag.log" &
	pids+=($!)
	wait_up "$a"
	wait_up "$b"
	wait_up "$t"
	printf -v "A_$tag" %s "$a"
	printf -v "T_$tag" %s "$t"
}

endpoint="http://$HOST:$rport" queue=2048 what="to a discarding OTLP receiver"
if [[ "${RECORD_ONLY:-0}" == 1 ]]; then
	endpoint="http://$HOST:$(free_port)" queue=1 what="recorded, not exported"
fi
start_chain off LOG_LEVEL=warn
start_chain on LOG_LEVEL=warn OTEL_TRACES_EXPORTER=otlp \
	OTEL_EXPORTER_OTLP_ENDPOINT="$endpoint" OTEL_BSP_MAX_QUEUE_SIZE="$queue" \
	OTEL_TRACES_SAMPLER=traceidratio OTEL_TRACES_SAMPLER_ARG=1.0

cat >"$OUT/log.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"action":"test","details":{"k":"v"}}'
wrk.headers["Content-Type"] = "application/json"
LUA
cat >"$OUT/transaction.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"account":"ACC-001","amount":100.5}'
wrk.headers["Content-Type"] = "application/json"
LUA

# one wrk run: its req/s (and its errors are reported)
run() { # lua port path label
	local f="$OUT/$4.$rep.txt"
	timeout $((DURATION + 15)) wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 2s \
		-s "$OUT/$1.lua" "http://$HOST:$2$3" >"$f" 2>&1 || true
	if grep -q 'Non-2xx\|Socket errors' "$f"; then
		echo "  $4: $(grep 'Non-2xx\|Socket errors' "$f" | tr -s ' ')" >&2
	fi
	sed -n 's/^Requests\/sec: *//p' "$f"
}

median() { sort -n | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }

echo "tracing_cost: $BUILD, store $STORE, wrk -t1 -c$CONNS -d${DURATION}s, $REPEAT rounds, on = traceidratio 1.0 $what"
for target in log transaction; do
	[[ $target == log ]] && path=/log || path=/transaction
	# warm-up, not recorded
	rep=warm
	for mode in off on; do
		port_var="A_$mode"
		[[ $target == transaction ]] && port_var="T_$mode"
		DURATION=2 run "$target" "${!port_var}" "$path" "$target-$mode" >/dev/null
	done
	offs=() ons=()
	for rep in $(seq "$REPEAT"); do
		for mode in off on; do
			port_var="A_$mode"
			[[ $target == transaction ]] && port_var="T_$mode"
			r="$(run "$target" "${!port_var}" "$path" "$target-$mode")"
			[[ $mode == off ]] && offs+=("${r:-0}") || ons+=("${r:-0}")
		done
		echo "  POST $path round $rep: off ${offs[-1]} req/s, on ${ons[-1]} req/s"
	done
	off="$(printf '%s\n' "${offs[@]}" | median)"
	on="$(printf '%s\n' "${ons[@]}" | median)"
	ratio="$(awk -v a="$on" -v b="$off" 'BEGIN {printf "%.3f", (b > 0 ? a / b : 0)}')"
	verdict="$(awk -v r="$ratio" 'BEGIN {print (r >= 0.90 ? "met" : "NOT MET")}')"
	echo "POST $path: off $off req/s, on $on req/s (median of $REPEAT): on/off $ratio ($verdict, target >= 0.90)"
done
exported="$(curl -fsS "http://$HOST:$rport/stats" 2>/dev/null || echo '?')"
echo "receiver: $exported"
