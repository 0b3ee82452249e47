#!/usr/bin/env bash
# latency_ab.sh - two builds of the chain side by side (issue 16): BASE_BIN
# (say, a build of the commit before the fiber execution model) against
# NEW_BIN, on memory:, POST /transaction at each of CONNS connections, then
# at 256 connections with DELAY_MS injected between transaction-processor
# and balance-manager by bench/delayproxy.c.  Systems alternate within each
# round so drift hits both alike; prints one TSV line per run (req/s, p50,
# p99, non-2xx and socket errors), then each function's RSS and threads.
#
#   BASE_BIN=/tmp/base/build/bin bench/latency_ab.sh
#   REPS=3 DUR=5 CONNS="16 64 256" LATDUR=8 DELAY_MS=50 NEW_BIN=build/bin ...
#
# To build the base: git worktree add /tmp/base <commit> && make -C /tmp/base all
# Every process started is stopped by its PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${BASE_BIN:?set BASE_BIN to the bin/ of the build to compare against}"
NEW_BIN="${NEW_BIN:-build/bin}"
REPS="${REPS:-3}"; DUR="${DUR:-5}"; CONNS="${CONNS:-16 64 256}"
LATDUR="${LATDUR:-8}"; DELAY_MS="${DELAY_MS:-50}"
OUT="${OUT:-build/bench/latency}"
mkdir -p "$OUT"
command -v wrk >/dev/null || { echo "latency_ab: wrk is not installed (apt-get install wrk)" >&2; exit 1; }
cc -O2 -pthread -o "$OUT/delayproxy" bench/delayproxy.c
cat > "$OUT/tx.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"account":"ACC-001","amount":100.5}'
wrk.headers["Content-Type"] = "application/json"
LUA
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
declare -A BIN=([base]="$BASE_BIN" [new]="$NEW_BIN")
PIDS=()
cleanup() { local p; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
declare -A PID
start() { # name bin port env...
	local name=$1 bin=$2 port=$3; shift 3
	env -i PATH="$PATH" ZC_STORE_URL=memory: ZC_LISTEN_ADDRESS=127.0.0.1 PORT="$port" "$@" "$bin" >"$OUT/$name.log" 2>&1 &
	PIDS+=($!); PID[$name]=$!
}
declare -A TXP LATP
for s in base new; do
	a=$(free_port); b=$(free_port); t=$(free_port); px=$(free_port); tl=$(free_port)
	start "${s}_audit" "${BIN[$s]}/audit-logger" "$a"
	start "${s}_bm" "${BIN[$s]}/balance-manager" "$b" AUDIT_LOGGER_URL="http://127.0.0.1:$a"
	start "${s}_tx" "${BIN[$s]}/transaction-processor" "$t" BALANCE_MANAGER_URL="http://127.0.0.1:$b"
	"$OUT/delayproxy" "$px" "$b" "$DELAY_MS" & PIDS+=($!)
	start "${s}_txlat" "${BIN[$s]}/transaction-processor" "$tl" BALANCE_MANAGER_URL="http://127.0.0.1:$px"
	TXP[$s]=$t; LATP[$s]=$tl
done
sleep 1
for s in base new; do
	curl -sf -X POST -H 'Content-Type: application/json' -d '{"account":"ACC-001","amount":1}' \
		"http://127.0.0.1:${TXP[$s]}/transaction" >/dev/null || echo "latency_ab: $s not answering" >&2
	wrk -t1 -c16 -d2s -s "$OUT/tx.lua" "http://127.0.0.1:${TXP[$s]}/transaction" >/dev/null
done
run() { # label sys port conns dur rep
	local out rps p50 p99 non sock
	out=$(timeout $(($5 + 20)) wrk -t1 -c"$4" -d"$5s" --timeout 2s --latency -s "$OUT/tx.lua" "http://127.0.0.1:$3/transaction" 2>&1 || true)
	rps=$(sed -n 's/^Requests\/sec: *//p' <<<"$out"); p50=$(awk '/^ +50%/{print $2}' <<<"$out"); p99=$(awk '/^ +99%/{print $2}' <<<"$out")
	non=$(sed -n 's/.*Non-2xx or 3xx responses: *//p' <<<"$out"); sock=$(sed -n 's/.*Socket errors: *//p' <<<"$out")
	printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n" "$1" "$2" "$4" "$6" "$rps" "$p50" "$p99" "${non:-0} ${sock}"
}
printf "test\tsys\tconns\trep\treq/s\tp50\tp99\tnon2xx/sockerr\n"
for c in $CONNS; do for r in $(seq "$REPS"); do for s in base new; do run chain "$s" "${TXP[$s]}" "$c" "$DUR" "$r"; done; done; done
for r in $(seq "$REPS"); do for s in base new; do run "lat${DELAY_MS}ms" "$s" "${LATP[$s]}" 256 "$LATDUR" "$r"; done; done
for s in base new; do
	for f in tx bm audit; do
		p=${PID[${s}_$f]}
		printf "%s %s: RSS %s kB, private dirty %s kB, %s threads\n" "$s" "$f" \
			"$(awk '/VmRSS/{print $2}' /proc/$p/status)" \
			"$(awk '/^Private_Dirty/{s+=$2} END{print s}' /proc/$p/smaps)" \
			"$(ls /proc/$p/task | wc -l)"
	done
done
