#!/usr/bin/env python3
"""
run.py - the buildpack's contract tests, with no containers: bin/detect and
bin/build are run directly with the CNB_* variables and temporary layers,
platform and app directories, as a lifecycle runs them (packit and libcnb
unit tests do the same).  Needs gcc, pkg-config and the runtime's -dev
packages on this machine (`make deps`).

    python3 tests/buildpack/run.py [-k PATTERN] [-v]

The last line printed is "buildpack: N passed, N failed"; the exit status
is non-zero when anything failed.
"""
import argparse
import os
import sys
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


class Result(unittest.TextTestResult):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.n_pass = 0
        self.n_fail = 0

    def addSuccess(self, test):
        super().addSuccess(test)
        self.n_pass += 1

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.n_fail += 1

    def addError(self, test, err):
        super().addError(test, err)
        self.n_fail += 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", dest="pattern", action="append", default=None)
    ap.add_argument("-v", action="store_true")
    args = ap.parse_args()
    loader = unittest.TestLoader()
    if args.pattern:
        loader.testNamePatterns = ["*%s*" % p for p in args.pattern]
    suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
    runner = unittest.TextTestRunner(verbosity=2 if args.v else 1,
                                     resultclass=Result, stream=sys.stdout)
    result = runner.run(suite)
    print("buildpack: %d passed, %d failed" % (result.n_pass, result.n_fail))
    return 0 if result.n_fail == 0 and result.testsRun > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
