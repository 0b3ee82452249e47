#!/usr/bin/env python3
"""
run.py - the Zenith C end-to-end suite: starts the real function binaries
(audit-logger, balance-manager, transaction-processor) on loopback ports and
checks their HTTP contracts, the runtime's behaviour and its lifecycle.

    python3 tests/e2e/run.py --build build [--slow 3] [-k PATTERN] [-v]

The last line printed is always "e2e: N passed, N failed[, N skipped]"; the
exit status is non-zero when anything failed.
"""
import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import harness  # noqa: E402


class Result(unittest.TextTestResult):
    """Counts outcomes and prints the failing test's process logs."""

    current = None  # the run's result, kept for the summary on Ctrl-C

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        Result.current = self
        self.n_pass = 0
        self.n_fail = 0
        self.n_skip = 0
        self._failed_now = False
        self._t0 = 0.0
        self.durations = []

    def startTest(self, test):
        self._failed_now = False
        self._t0 = time.monotonic()
        super().startTest(test)

    def addSuccess(self, test):
        super().addSuccess(test)

    def addFailure(self, test, err):
        self._failed_now = True
        super().addFailure(test, err)

    def addError(self, test, err):
        self._failed_now = True
        super().addError(test, err)

    def addSubTest(self, test, subtest, err):
        if err is not None:
            self._failed_now = True
        super().addSubTest(test, subtest, err)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)

    def addUnexpectedSuccess(self, test):
        self._failed_now = True
        super().addUnexpectedSuccess(test)

    def stopTest(self, test):
        super().stopTest(test)
        skipped = any(t is test for t, _ in self.skipped)
        if self._failed_now:
            self.n_fail += 1
            procs = getattr(test, "procs", None) or []
            if procs:
                self.stream.write("\n==== process logs for %s\n" % test.id())
                for p in procs:
                    self.stream.write(p.tail() + "\n")
                self.stream.flush()
        elif skipped:
            self.n_skip += 1
        else:
            self.n_pass += 1
        self.durations.append((time.monotonic() - self._t0, test.id()))


def find_build(path):
    for cand in (path, os.path.join(ROOT, path)):
        if os.path.isdir(os.path.join(cand, "bin")):
            return os.path.abspath(cand)
    return os.path.abspath(path)


def summary(n_pass, n_fail, n_skip):
    line = "e2e: %d passed, %d failed" % (n_pass, n_fail)
    if n_skip:
        line += ", %d skipped" % n_skip
    return line


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--build", default="build",
                    help="build directory holding bin/<function> (default build)")
    ap.add_argument("--slow", type=float, default=None,
                    help="timeout factor (default 1; 3 for *asan*, 4 for *tsan*)")
    ap.add_argument("-k", dest="patterns", action="append", default=None,
                    help="only run tests matching this substring/glob (repeatable)")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="one line per test")
    ap.add_argument("--keep", action="store_true",
                    help="keep the log directory even when everything passed")
    args = ap.parse_args(argv)

    build = find_build(args.build)
    slow = args.slow
    if slow is None:
        base = os.path.basename(build.rstrip("/")).lower()
        slow = 4.0 if "tsan" in base else 3.0 if "asan" in base else 1.0
    missing = [f for f in harness.FUNCTIONS
               if not os.access(harness.binary_in(build, f), os.X_OK)]
    if missing:
        sys.stderr.write("e2e: missing binaries in %s/bin: %s\n" %
                         (build, ", ".join(missing)))
        print(summary(0, 1, 0))
        return 2

    tmpdir = tempfile.mkdtemp(prefix="zc-e2e-")
    harness.CONFIG.update(build=build, slow=slow, tmpdir=tmpdir)

    # SIGINT explicitly too: a shell may start us with it ignored.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_interrupt)

    loader = unittest.TestLoader()
    if args.patterns:
        loader.testNamePatterns = [p if any(c in p for c in "*?[") else
                                   "*%s*" % p for p in args.patterns]
    suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
    runner = unittest.TextTestRunner(stream=sys.stdout,
                                     verbosity=2 if args.verbose else 1,
                                     resultclass=Result)
    print("e2e: build=%s slow=%g logs=%s" % (build, slow, tmpdir))
    sys.stdout.flush()
    interrupted = False
    t0 = time.monotonic()
    try:
        runner.run(suite)
    except KeyboardInterrupt:
        interrupted = True
        sys.stdout.write("\ne2e: interrupted\n")
    finally:
        harness.kill_all()
    elapsed = time.monotonic() - t0
    result = Result.current
    if result and args.verbose:
        print("slowest tests:")
        for d, name in sorted(result.durations, reverse=True)[:5]:
            print("  %6.2fs  %s" % (d, name))

    n_pass = result.n_pass if result else 0
    n_fail = result.n_fail if result else 0
    n_skip = result.n_skip if result else 0
    # Errors in class/module fixtures are not tied to one test.
    if result:
        n_fail += sum(1 for t, _ in result.errors
                      if isinstance(t, unittest.suite._ErrorHolder))
    if interrupted:
        n_fail += 1
    ok = n_fail == 0 and not interrupted
    if ok and not args.keep:
        shutil.rmtree(tmpdir, ignore_errors=True)
    else:
        print("e2e: logs kept in %s" % tmpdir)
    print("e2e: ran in %.1fs" % elapsed)
    print(summary(n_pass, n_fail, n_skip))
    sys.stdout.flush()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
