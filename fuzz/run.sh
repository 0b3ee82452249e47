#!/usr/bin/env bash
# fuzz/run.sh - run the libFuzzer harnesses built by `make fuzz-build`.
#
#   fuzz/run.sh fuzz    BUILD SECONDS harness...   fuzz each for SECONDS on a
#                       working copy of fuzz/corpus/<h> (BUILD/corpus/<h>);
#                       prints executions, cov and ft per harness; crashes
#                       are copied to fuzz/regressions/<h>/ and fail the run
#   fuzz/run.sh regress BUILD harness...           replay fuzz/corpus/<h> and
#                       fuzz/regressions/<h> once through each harness
#
# ZC_FUZZ_SKIP_KNOWN=name,... (or "all") skips the checks of bugs already
# reported while fuzzing, so the time goes to finding new ones (see
# fuzz/README.md); unset, every check runs.  Regress mode never skips, so a
# known bug stays a failing test until it is fixed.
set -uo pipefail
cd "$(dirname "$0")/.."

mode="${1:?usage: fuzz/run.sh fuzz|regress BUILD [SECONDS] harness...}"
build="${2:?build directory}"
shift 2
if [[ $mode == fuzz ]]; then
	seconds="${1:?seconds}"
	shift
fi
harnesses=("$@")

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

inputs() { # dir...: the input files in them (not README*, not dot files)
	local d f
	for d in "$@"; do
		[[ -d $d ]] || continue
		for f in "$d"/*; do
			[[ -f $f ]] || continue
			case "$(basename "$f")" in README* | .*) continue ;; esac
			printf '%s\n' "$f"
		done
	done
}

fail=0
case "$mode" in
regress)
	for h in "${harnesses[@]}"; do
		mapfile -t files < <(inputs "fuzz/corpus/$h" "fuzz/regressions/$h")
		if ((${#files[@]} == 0)); then
			echo "fuzz-regress: $h: no inputs"
			continue
		fi
		log="$build/regress-$h.log"
		if "$build/fuzz_$h" -timeout=20 -rss_limit_mb=2048 "${files[@]}" >"$log" 2>&1; then
			echo "fuzz-regress: $h: ${#files[@]} inputs ok"
			continue
		fi
		# libFuzzer stops at the first crash: name every failing input
		fail=$((fail + 1))
		bad=0
		for f in "${files[@]}"; do
			if ! "$build/fuzz_$h" -timeout=20 -rss_limit_mb=2048 "$f" >"$log.one" 2>&1; then
				bad=$((bad + 1))
				echo "fuzz-regress: $h: FAILED on $f"
				grep -E "FUZZ INVARIANT|ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY" "$log.one" |
					head -3 | sed 's/^/  | /'
				cat "$log.one" >>"$log"
			fi
		done
		rm -f "$log.one"
		echo "fuzz-regress: $h: $bad of ${#files[@]} inputs failed (log $log)"
	done
	echo "fuzz-regress: $((${#harnesses[@]} - fail)) passed, $fail failed"
	;;
fuzz)
	export ZC_FUZZ_SKIP_KNOWN="${ZC_FUZZ_SKIP_KNOWN-}"
	summary=()
	for h in "${harnesses[@]}"; do
		work="$build/corpus/$h"
		art="$build/artifacts/$h"
		mkdir -p "$work" "$art" "fuzz/regressions/$h"
		cp -n fuzz/corpus/"$h"/* "$work"/ 2>/dev/null
		dict=()
		[[ -f fuzz/$h.dict ]] && dict=("-dict=fuzz/$h.dict")
		log="$build/fuzz-$h.log"
		echo "=== fuzz $h for ${seconds}s (log $log)"
		before=$(ls "$art" | wc -l)
		"$build/fuzz_$h" -max_total_time="$seconds" -timeout=10 \
			-rss_limit_mb=2048 -print_final_stats=1 \
			-artifact_prefix="$art/" "${dict[@]}" \
			"$work" "fuzz/regressions/$h" >"$log" 2>&1
		rc=$?
		execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
		secs=$(sed -n 's/^stat::.*_time_in_seconds\?: *//p' "$log" | tail -1)
		last=$(grep -E '^#[0-9]+' "$log" | tail -1)
		cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
		ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
		corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
		new=()
		for f in "$art"/*; do
			[[ -f $f ]] || continue
			dest="fuzz/regressions/$h/$(basename "$f")"
			[[ -e $dest ]] || { cp "$f" "$dest" && new+=("$dest"); }
		done
		line="$h: ${execs:-?} execs, cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?}, exit $rc"
		if ((rc != 0)) || ((${#new[@]} > 0)); then
			fail=$((fail + 1))
			line+=", CRASH: ${new[*]:-see $log}"
			grep -E "FUZZ INVARIANT|ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY" "$log" | head -5 | sed 's/^/  | /'
		fi
		echo "fuzz: $line"
		summary+=("$line")
	done
	echo "fuzz: summary ($(date -u +%Y-%m-%dT%H:%MZ), ${seconds}s each, ZC_FUZZ_SKIP_KNOWN=${ZC_FUZZ_SKIP_KNOWN:-none})"
	printf '  %s\n' "${summary[@]}"
	;;
*)
	echo "usage: fuzz/run.sh fuzz|regress ..." >&2
	exit 2
	;;
esac
((fail == 0))
