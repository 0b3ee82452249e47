#!/usr/bin/env bash
# test.sh - everything `make test` runs, in order: the layout rules
# (tests/layout/check_layers.py), the -Werror build, Check
# unit tests, end-to-end tests on real processes, the install/template test,
# the func language pack and the operator's resources (tests/pack),
# then the unit and end-to-end suites again under ASan+UBSan and under TSan.
# Prints one line per suite and a closing "test: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

JOBS="${JOBS:-2}"
pass=0 fail=0
failed=()

suite() { # name command...
	local name="$1"
	shift
	echo "=== $name"
	if "$@"; then
		pass=$((pass + 1))
		echo "--- $name: ok"
	else
		fail=$((fail + 1))
		failed+=("$name")
		echo "--- $name: FAILED"
	fi
}

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}"

suite "layout" python3 tests/layout/check_layers.py
suite "build (-Werror)" make --no-print-directory -s -j"$JOBS" all
suite "unit" scripts/run-unit.sh build
suite "otlp decoder (npm ci)" make --no-print-directory otlp-deps
suite "e2e" python3 tests/e2e/run.py --build build
suite "install + template" tests/install/test-install.sh
suite "func pack + operator" make --no-print-directory test-pack
suite "fuzz corpus replay" make --no-print-directory test-fuzz-regress
suite "bench smoke" make --no-print-directory bench-smoke
for san in asan tsan; do
	suite "build ($san)" make --no-print-directory -s -j"$JOBS" SAN=$san all
	suite "unit ($san)" scripts/run-unit.sh build-$san
	suite "e2e ($san)" python3 tests/e2e/run.py --build build-$san
done

((fail)) && printf 'failed suites: %s\n' "${failed[*]}"
echo "test: $pass passed, $fail failed"
((fail == 0))
