#!/usr/bin/env python3
"""
run.py - the container tests of the function images (what `make
test-image` runs after installing its packages, through run.sh, which sets
up podman's configuration): build the example and starter images with
`make image`, then run them with podman on 127.0.0.1 only, with their state
in SQLite under /tmp and in a private PostgreSQL (tests/pg/pg.sh).

    tests/image/run.sh [-k PATTERN] [-v]

The last line printed is "image: N passed, N failed"; the exit status is
non-zero when anything failed.  Every container and image the tests make is
removed by ID at the end, and the PostgreSQL server stopped by PID, also on
Ctrl-C or SIGTERM.
"""
import argparse
import os
import signal
import sys
import time
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import test_image  # noqa: E402

ORDER = [test_image.BuildTest, test_image.ChainTest,
         test_image.SqliteStateTest, test_image.PostgresTest,
         test_image.DrainTest, test_image.StarterTest,
         test_image.BundleLibsTest]


class Result(unittest.TextTestResult):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.n_pass = 0
        self.n_fail = 0
        self._bad = False
        self.durations = []  # (seconds, test id)
        self._t0 = 0.0

    def startTest(self, test):
        self._bad = False
        self._t0 = time.monotonic()
        super().startTest(test)

    def addFailure(self, test, err):
        self._bad = True
        super().addFailure(test, err)

    def addError(self, test, err):
        self._bad = True
        super().addError(test, err)

    def addSubTest(self, test, subtest, err):
        if err is not None:
            self._bad = True
        super().addSubTest(test, subtest, err)

    def stopTest(self, test):
        self.durations.append((time.monotonic() - self._t0,
                               test.id().split(".", 1)[-1]))
        super().stopTest(test)
        if self._bad:
            self.n_fail += 1
        elif not any(t is test for t, _ in self.skipped):
            self.n_pass += 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", dest="pattern", action="append", default=None)
    ap.add_argument("-v", action="store_true")
    args = ap.parse_args()

    def on_signal(signum, frame):
        test_image.cleanup()
        print("\nimage: interrupted by signal %d" % signum)
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    loader = unittest.TestLoader()
    if args.pattern:
        loader.testNamePatterns = ["*%s*" % p for p in args.pattern]
    suite = unittest.TestSuite()
    for cls in ORDER:
        suite.addTests(loader.loadTestsFromTestCase(cls))
    t0 = time.monotonic()
    result = None
    try:
        # unittest runs setUpModule (the image builds) and tearDownModule
        # around the suite; a failing setUpModule counts as one failure.
        runner = unittest.TextTestRunner(verbosity=2 if args.v else 1,
                                         resultclass=Result,
                                         stream=sys.stdout)
        result = runner.run(suite)
    finally:
        test_image.cleanup()
    n_pass = result.n_pass if result else 0
    n_fail = result.n_fail if result else 1
    print("image tests took %.0f s, the image builds included" %
          (time.monotonic() - t0))
    if result:
        slow = sorted(result.durations, reverse=True)[:6]
        print("slowest tests: " + ", ".join("%s %.1f s" % (n, d) for d, n in slow))
    print("image: %d passed, %d failed" % (n_pass, n_fail))
    return 0 if n_fail == 0 and n_pass > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
