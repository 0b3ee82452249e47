#!/usr/bin/env bash
# run-unit.sh BUILD_DIR - run every Check test binary in BUILD_DIR/tests.
set -uo pipefail
build="${1:-build}"
pass=0 fail=0
for t in "$build"/tests/test_*; do
	[[ -x "$t" ]] || continue
	if CK_DEFAULT_TIMEOUT=60 "$t"; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1))
		echo "unit: FAILED $t" >&2
	fi
done
echo "unit ($build): $pass passed, $fail failed"
((fail == 0 && pass > 0))
