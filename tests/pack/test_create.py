"""
test_create.py - each template as `func create` writes it (every file but
manifest.yaml, and a func.yaml with the manifest's values: funcpack.create,
after knative/func pkg/functions/template.go), then built, tested and run
the two ways this repository builds a function: its Makefile against the
installed runtime (make, make test) and the buildpack run as a CNB
lifecycle runs it (bin/detect, bin/build, as tests/buildpack does; the
binary named after the function from func.yaml).  Each binary then gets
the exact requests `func invoke` sends (helpers.py cites them) and the
health probes `func deploy` would set from func.yaml.
"""
import os
import subprocess
import sys
import tomllib
import unittest

import funcpack
import helpers
from funcpack import ROOT

sys.path.insert(0, os.path.join(ROOT, "tests", "buildpack"))
import test_buildpack as bpt  # noqa: E402  (Workdir, BASE_ENV)

PACK = None
BP_SNAPSHOT = None


def setUpModule():
    global PACK, BP_SNAPSHOT
    PACK = funcpack.Pack()
    helpers.prefix()
    BP_SNAPSHOT = subprocess.run(
        [os.path.join(ROOT, "buildpack", "package.sh"),
         helpers.tmpdir("buildpack")],
        check=True, capture_output=True, text=True).stdout.strip()


class Created:
    """The checks every template gets (a mixin: not a test itself)."""

    TEMPLATE = None
    NAME = None

    @classmethod
    def setUpClass(cls):
        cls.dir = helpers.tmpdir(cls.NAME)
        cls.func_yaml = funcpack.create(PACK, "c", cls.TEMPLATE, cls.dir)

    def make(self, *args):
        return subprocess.run(["make", "-C", self.dir, "--no-print-directory"]
                              + list(args), env=helpers.pkg_env(),
                              capture_output=True, text=True, timeout=300)

    def assertHealth(self, fn):
        # func deploy's httpGet probes: deploy.healthEndpoints in func.yaml.
        for path in self.func_yaml["deploy"]["healthEndpoints"].values():
            self.assertEqual(fn.request("GET", path)[0], 200, path)

    def test_created_like_func(self):
        names = sorted(os.listdir(self.dir))
        self.assertNotIn("manifest.yaml", names)
        self.assertIn("func.yaml", names)
        f = funcpack.load_yaml(os.path.join(self.dir, "func.yaml"))
        self.assertRegex(f["name"], funcpack.FUNCTION_NAME)
        self.assertEqual(f["runtime"], "c")
        self.assertEqual(f["build"]["builderImages"]["pack"],
                         PACK.runtimes["c"][self.TEMPLATE]
                         ["builderImages"]["pack"])

    def test_makefile_build_test_and_invoke(self):
        r = self.make("test")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("100%: Checks:", r.stdout)
        r = self.make()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # the Makefile names the binary after func.yaml's name
        binary = os.path.join(self.dir, self.NAME)
        self.assertTrue(os.access(binary, os.X_OK), binary)
        fn = helpers.Running([binary])
        try:
            self.assertHealth(fn)
            self.check_invoke(fn)
        finally:
            self.assertEqual(fn.stop(), 0, fn.stderr())
        # K_SERVICE unset (func run sets none): the log names the function
        self.assertIn("INFO  %s: " % self.NAME, fn.stderr())

    def test_buildpack_build_and_invoke(self):
        w = bpt.Workdir(self.dir)
        self.addCleanup(w.remove)
        self.assertTrue(os.path.exists(os.path.join(w.app, "func.yaml")))
        subprocess.run(["make", "-C", w.app, "-s", "clean"],
                       capture_output=True)
        r = w.detect()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = w.build(bp=BP_SNAPSHOT)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        launch = tomllib.load(open(os.path.join(w.layers, "launch.toml"),
                                   "rb"))
        proc = launch["processes"][0]
        # named after the function: func.yaml's name, no build variable
        self.assertEqual(proc["command"][0],
                         os.path.join(w.layers, "fn", "bin", self.NAME))
        self.assertEqual(proc["type"], "web")
        self.assertTrue(proc.get("default"))
        binary = os.path.join(w.layers, "fn", "bin", self.NAME)
        fn = helpers.Running([binary], env=dict(bpt.BASE_ENV))
        try:
            self.assertHealth(fn)
            self.check_invoke(fn)
        finally:
            self.assertEqual(fn.stop(), 0, fn.stderr())


class HttpTemplate(Created, unittest.TestCase):
    TEMPLATE = "http"
    NAME = "myfn"

    def check_invoke(self, fn):
        self.assertNotIn("invoke", self.func_yaml)  # http: the default
        for method in ("POST", "GET"):
            status, headers, body = fn.request(
                method, "/", helpers.INVOKE_DATA,
                helpers.HTTP_INVOKE_HEADERS)
            self.assertEqual(status, 200, method)
            self.assertEqual(body, helpers.INVOKE_DATA + "\n", method)
            self.assertEqual(headers["content-type"], "application/json")
        self.assertEqual(fn.request("GET", "/")[2], '{"message":"OK"}\n')


class CloudEventsTemplate(Created, unittest.TestCase):
    TEMPLATE = "cloudevents"
    NAME = "myevents"

    def check_invoke(self, fn):
        self.assertEqual(self.func_yaml["invoke"], "cloudevent")
        sent = helpers.event_invoke_headers()
        status, headers, body = fn.request("POST", "/", helpers.INVOKE_DATA,
                                           sent)
        # the SDK's Request returns this reply event to func invoke
        self.assertEqual(status, 200, body)
        self.assertEqual(headers["ce-specversion"], "1.0")
        self.assertEqual(headers["ce-type"], "function.response")
        self.assertTrue(headers["ce-id"])
        self.assertNotEqual(headers["ce-id"], sent["Ce-Id"])
        # the reply's source is the function's name (K_SERVICE unset)
        self.assertEqual(headers["ce-source"], self.NAME)
        self.assertEqual(headers["content-type"], "application/json")
        self.assertEqual(body, helpers.INVOKE_DATA)
