#!/usr/bin/env python3
"""
run.py - the Knative func language pack and the Zenith operator path
(issue 15): the pack against func's rules (test_pack.py), the templates
created, built, tested and invoked as func would (test_create.py), the
README's first five minutes (test_first_minutes.py), the Function
resources and the Tekton Task against the operator's CRD and controller
(test_operator_crs.py).  Needs the runtime built in --build (make
test-pack builds it) and python3-yaml.

    python3 tests/pack/run.py [--build DIR] [--image] [-k PATTERN] [-v]

--image runs only the container steps (test_image_steps.py: make image and
podman, as root; .ci/run-image runs them); without it they are skipped.
The last line printed is "pack: N passed, N failed"; the exit status is
non-zero when anything failed.
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
    ap.add_argument("--build", default="build")
    ap.add_argument("--image", action="store_true")
    args = ap.parse_args()
    os.environ["ZC_PACK_BUILD"] = os.path.abspath(args.build)
    loader = unittest.TestLoader()
    if args.pattern:
        loader.testNamePatterns = ["*%s*" % p for p in args.pattern]
    suite = loader.discover(
        HERE, pattern="test_image_steps.py" if args.image else "test_[!i]*.py",
        top_level_dir=HERE)
    runner = unittest.TextTestRunner(verbosity=2 if args.v else 1,
                                     resultclass=Result, stream=sys.stdout)
    try:
        result = runner.run(suite)
    finally:
        import helpers
        helpers.cleanup()
    print("pack: %d passed, %d failed" % (result.n_pass, result.n_fail))
    return 0 if result.n_fail == 0 and result.testsRun > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
