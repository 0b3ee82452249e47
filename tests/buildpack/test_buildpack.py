"""
test_buildpack.py - the buildpack contract, checked by running bin/detect
and bin/build as the lifecycle does (Buildpack API 0.10): working directory
= the app, CNB_* variables, a temporary layers/platform/plan, exit codes
0 / 100 / error, the layer TOML files, launch.toml, the cache layer's reuse,
the compiler's message when a source is broken, and which functions keep
state in the store: those (and only those) get libsqlite3 and libpq, which
the runtime dlopens, in the libs layer with BP_ZC_BUNDLE_LIBS=true.  The
builds use the buildpack as package.sh ships it, packaged once per run.
"""
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import tomllib
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BP = os.path.join(ROOT, "buildpack")
ESC = "zenith_c-function"
EXAMPLES = ["audit-logger", "balance-manager", "transaction-processor"]
TEMPLATE = os.path.join(ROOT, "templates", "c", "http")

sys.path.insert(0, os.path.join(BP, "lifecycle"))
from lifecycle import toml_table  # noqa: E402

BASE_ENV = {
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "HOME": os.environ.get("HOME", "/root"),
    "LANG": "C",
    "CNB_TARGET_OS": "linux",
    "CNB_TARGET_ARCH": "amd64",
    "CNB_TARGET_DISTRO_NAME": "debian",
    "CNB_TARGET_DISTRO_VERSION": "12",
}


def load(path):
    with open(path, "rb") as f:
        return tomllib.load(f)


class Workdir:
    """A lifecycle's directories for one app: app/, layers/<id>/,
    platform/env/, plan paths."""

    def __init__(self, src=None, files=None):
        self.root = tempfile.mkdtemp(prefix="zc-bp-test-")
        self.app = os.path.join(self.root, "app")
        if src:
            shutil.copytree(src, self.app)
        else:
            os.makedirs(self.app)
        for name, text in (files or {}).items():
            path = os.path.join(self.app, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
        self.layers = os.path.join(self.root, "layers", ESC)
        self.platform = os.path.join(self.root, "platform")
        os.makedirs(self.layers)
        os.makedirs(os.path.join(self.platform, "env"))
        self.plan = os.path.join(self.root, "plan.toml")
        self.bp_plan = os.path.join(self.root, "bp-plan.toml")
        with open(self.bp_plan, "w") as f:
            f.write('[[entries]]\nname = "zenith-c-function"\n')

    def platform_env(self, name, value):
        with open(os.path.join(self.platform, "env", name), "w") as f:
            f.write(value)

    def detect(self, env=None, positional=False, bp=BP):
        e = dict(BASE_ENV, CNB_BUILDPACK_DIR=bp)
        args = [os.path.join(bp, "bin", "detect")]
        if positional:
            args += [self.platform, self.plan]
        else:
            e.update(CNB_PLATFORM_DIR=self.platform,
                     CNB_BUILD_PLAN_PATH=self.plan)
        e.update(env or {})
        return subprocess.run(args, cwd=self.app, env=e, capture_output=True,
                              text=True, timeout=60)

    def build(self, env=None, positional=False, bp=None):
        bp = bp or SNAPSHOT
        e = dict(BASE_ENV, CNB_BUILDPACK_DIR=bp)
        args = [os.path.join(bp, "bin", "build")]
        if positional:
            args += [self.layers, self.platform, self.bp_plan]
        else:
            e.update(CNB_LAYERS_DIR=self.layers, CNB_PLATFORM_DIR=self.platform,
                     CNB_BP_PLAN_PATH=self.bp_plan)
        e.update(env or {})
        return subprocess.run(args, cwd=self.app, env=e, capture_output=True,
                              text=True, timeout=300)

    def restore_cache_from(self, other):
        """What the lifecycle does before a rebuild: every cache = true
        layer of the previous build comes back, its TOML without [types]."""
        for n in os.listdir(other.layers):
            if not n.endswith(".toml") or n == "launch.toml":
                continue
            meta = load(os.path.join(other.layers, n))
            if not meta.get("types", {}).get("cache"):
                continue
            layer = n[:-5]
            shutil.copytree(os.path.join(other.layers, layer),
                            os.path.join(self.layers, layer), symlinks=True)
            with open(os.path.join(self.layers, n), "w") as f:
                f.write(toml_table("metadata", meta.get("metadata", {})))

    def toml(self, name):
        return load(os.path.join(self.layers, name + ".toml"))

    def remove(self):
        shutil.rmtree(self.root, ignore_errors=True)


# One full build of the template compiles the runtime; later builds start
# from its cache layer, as a lifecycle's rebuild would.
SEED = None
# The buildpack as package.sh ships it, packaged once: every build here
# compiles the same runtime sources, so the cache key stays put while the
# tree is being edited (and the packaged layout is the one tested).
SNAPSHOT = None
SNAPSHOT_DIR = None


def setUpModule():
    global SEED, SNAPSHOT, SNAPSHOT_DIR
    SNAPSHOT_DIR = tempfile.mkdtemp(prefix="zc-bp-snapshot-")
    SNAPSHOT = subprocess.run(
        [os.path.join(BP, "package.sh"), os.path.join(SNAPSHOT_DIR, "bp")],
        check=True, capture_output=True, text=True).stdout.strip()
    SEED = Workdir(TEMPLATE)
    SEED.result = SEED.build()


def tearDownModule():
    if SEED:
        SEED.remove()
    if SNAPSHOT_DIR:
        shutil.rmtree(SNAPSHOT_DIR, ignore_errors=True)


class Case(unittest.TestCase):

    def work(self, src=None, files=None, cached=True):
        w = Workdir(src, files)
        self.addCleanup(w.remove)
        if cached and SEED.result.returncode == 0:
            w.restore_cache_from(SEED)
        return w

    def assertBuilt(self, r):
        self.assertEqual(r.returncode, 0, "build failed:\n%s\n%s" % (
            r.stdout, r.stderr))


PYTHON_APP = {
    "app.py": "from flask import Flask\napp = Flask(__name__)\n",
    "requirements.txt": "flask\n",
    "Procfile": "web: python app.py\n",
}
HELLO = """#include <zenith.h>

static int
hello(zc_req *req, zc_res *res, void *arg)
{
	(void)req;
	(void)arg;
	return zc_res_jsonf(res, 200, "{s:s}", "hello", "world");
}

int zc_function_setup(zc_app *app)
{
	return zc_route(app, "GET", "/hello", hello, NULL);
}
"""


class DetectTest(Case):

    def assertPass(self, r, w):
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        plan = load(w.plan)
        self.assertEqual([p["name"] for p in plan["provides"]],
                         ["zenith-c-function"])
        self.assertEqual([p["name"] for p in plan["requires"]],
                         ["zenith-c-function"])
        return plan

    def assertFail(self, r, w):
        self.assertEqual(r.returncode, 100, r.stdout + r.stderr)
        self.assertEqual(r.stderr, "")
        self.assertFalse(os.path.exists(w.plan) and os.path.getsize(w.plan),
                         "a failing detect wrote a plan")
        self.assertTrue(r.stdout.strip(), "a fail says why on stdout")

    def test_template_passes(self):
        w = self.work(TEMPLATE, cached=False)
        plan = self.assertPass(w.detect(), w)
        self.assertEqual(plan["requires"][0]["metadata"]["source-dir"], ".")

    def test_examples_pass(self):
        for ex in EXAMPLES:
            with self.subTest(example=ex):
                w = self.work(os.path.join(ROOT, "examples", ex), cached=False)
                r = w.detect()
                self.assertPass(r, w)
                self.assertIn("defines zc_function_setup()", r.stdout)

    def test_python_app_fails_with_100(self):
        w = self.work(files=PYTHON_APP, cached=False)
        self.assertFail(w.detect(), w)

    def test_empty_tree_fails_with_100(self):
        w = self.work(cached=False)
        self.assertFail(w.detect(), w)

    def test_c_without_entry_point_fails(self):
        w = self.work(files={
            "main.c": "int main(void) { return 0; }\n",
            "notes.txt": "zc_function_setup( in text\n"}, cached=False)
        self.assertFail(w.detect(), w)

    def test_calls_and_tests_are_not_definitions(self):
        w = self.work(files={
            # a call, indented, is not a definition
            "helper.c": "void f(void *app)\n{\n\tzc_function_setup(app);\n}\n",
            # test files are never the function, even with a definition
            "test_function.c": HELLO,
            "function_test.c": HELLO,
        }, cached=False)
        self.assertFail(w.detect(), w)

    def test_entry_point_on_one_line_passes(self):
        w = self.work(files={"hello.c": HELLO}, cached=False)
        self.assertPass(w.detect(), w)

    def test_only_the_source_folder_is_searched(self):
        w = self.work(files={"src/hello.c": HELLO}, cached=False)
        self.assertFail(w.detect(), w)
        w2 = self.work(files={"src/hello.c": HELLO}, cached=False)
        plan = self.assertPass(w2.detect(env={"BP_ZC_SOURCE_DIR": "src"}), w2)
        self.assertEqual(plan["requires"][0]["metadata"]["source-dir"], "src")

    def test_source_dir_from_platform_env_file(self):
        w = self.work(files={"fn/hello.c": HELLO}, cached=False)
        w.platform_env("BP_ZC_SOURCE_DIR", "fn")
        self.assertPass(w.detect(), w)

    def test_bad_source_dir_fails_not_errors(self):
        for value in ("/etc", "../app", "a/../../x", "missing"):
            with self.subTest(value=value):
                w = self.work(files={"hello.c": HELLO}, cached=False)
                r = w.detect(env={"BP_ZC_SOURCE_DIR": value})
                self.assertFail(r, w)
                self.assertIn("BP_ZC_SOURCE_DIR", r.stdout)

    def test_odd_trees_never_error(self):
        w = self.work(files={"x.c/inner.txt": "a directory named x.c\n",
                             "bin.c": "\x00\x01\x02 zc_function_setup\n"},
                      cached=False)
        os.symlink("/nonexistent", os.path.join(w.app, "dangling.c"))
        self.assertFail(w.detect(), w)

    def test_positional_arguments(self):
        w = self.work(TEMPLATE, cached=False)
        self.assertPass(w.detect(positional=True), w)


class BuildLayoutTest(Case):
    """The template, built once in setUpModule (a cold build)."""

    def test_seed_build_compiled_the_runtime(self):
        r = SEED.result
        self.assertBuilt(r)
        self.assertIn("Compiling the Zenith C runtime", r.stdout)
        self.assertIn("Compiling the function", r.stdout)

    def test_layer_types(self):
        self.assertBuilt(SEED.result)
        rt = SEED.toml("runtime")
        self.assertEqual(rt["types"], {"launch": False, "build": False,
                                       "cache": True})
        self.assertRegex(rt["metadata"]["runtime-sha256"], "^[0-9a-f]{64}$")
        fn = SEED.toml("fn")
        self.assertEqual(fn["types"], {"launch": True, "build": False,
                                       "cache": False})
        self.assertRegex(fn["metadata"]["sources-sha256"], "^[0-9a-f]{64}$")
        self.assertEqual(fn["metadata"]["runtime-sha256"],
                         rt["metadata"]["runtime-sha256"])
        # auto: nothing beyond the run image's libraries, so no libs layer
        self.assertFalse(os.path.exists(os.path.join(SEED.layers,
                                                     "libs.toml")))

    def test_layer_contents(self):
        self.assertBuilt(SEED.result)
        L = SEED.layers
        self.assertTrue(os.path.isfile(L + "/runtime/lib/libzenithc.a"))
        self.assertTrue(os.path.isfile(L + "/runtime/include/zenith.h"))
        fn = L + "/fn/bin/function"
        self.assertTrue(os.stat(fn).st_mode & stat.S_IXUSR)
        with open(L + "/fn/env.launch/PORT.default") as f:
            self.assertEqual(f.read(), "8080")
        self.assertEqual(sorted(os.listdir(L)), [
            "fn", "fn.toml", "launch.toml", "runtime", "runtime.toml"])

    def test_launch_toml_default_web_process(self):
        self.assertBuilt(SEED.result)
        launch = SEED.toml("launch")
        self.assertEqual(len(launch["processes"]), 1)
        p = launch["processes"][0]
        self.assertEqual(p["type"], "web")
        self.assertIs(p["default"], True)
        self.assertEqual(p["command"], [SEED.layers + "/fn/bin/function"])
        self.assertEqual(p["args"], [])
        self.assertNotIn("direct", p)  # gone since Buildpack API 0.9

    def test_app_directory_emptied(self):
        self.assertBuilt(SEED.result)
        self.assertEqual(os.listdir(SEED.app), [])

    def test_binary_is_hardened(self):
        self.assertBuilt(SEED.result)
        fn = SEED.layers + "/fn/bin/function"
        head = subprocess.run(["readelf", "-h", fn], capture_output=True,
                              text=True).stdout
        self.assertRegex(head, r"Type:\s+DYN")  # PIE
        dyn = subprocess.run(["readelf", "-d", fn], capture_output=True,
                             text=True).stdout
        self.assertIn("BIND_NOW", dyn)  # -z now
        self.assertRegex(dyn, r"FLAGS_1.*PIE")
        prog = subprocess.run(["readelf", "-lW", fn], capture_output=True,
                              text=True).stdout
        self.assertIn("GNU_RELRO", prog)  # -z relro
        syms = subprocess.run(["nm", "-D", fn], capture_output=True,
                              text=True).stdout
        self.assertIn("__stack_chk_fail", syms)  # -fstack-protector-strong
        self.assertRegex(syms, r"__\w+_chk@")  # _FORTIFY_SOURCE
        sections = subprocess.run(["readelf", "-SW", fn], capture_output=True,
                                  text=True).stdout
        self.assertNotIn(".debug_info", sections)  # BP_ZC_STRIP=true

    def test_flags_match_the_makefile(self):
        with open(os.path.join(ROOT, "Makefile")) as f:
            mk = f.read()
        with open(os.path.join(BP, "bin", "build")) as f:
            bb = f.read()

        def make_var(name):
            m = re.search(r"^%s\s*[:?]?=\s*(.*)$" % name, mk, re.M)
            self.assertIsNotNone(m, "Makefile has no %s" % name)
            return m.group(1).split()

        def build_var(name):
            m = re.search(r"^%s=\((.*)\)$" % name, bb, re.M)
            self.assertIsNotNone(m, "bin/build has no %s" % name)
            return m.group(1).split()

        self.assertEqual(build_var("WARN"), make_var("WARN"))
        self.assertEqual(build_var("HARDEN"), make_var("HARDEN"))
        self.assertEqual(build_var("OPT"), make_var("OPT"))
        literal = [w for w in make_var("CFLAGS_ALL") if not w.startswith("$")
                   and not w.startswith("-I") and w != "\\"]
        self.assertEqual(literal, build_var("STD") + ["-pthread"])
        ld = [w for w in make_var("LDFLAGS_ALL") if not w.startswith("$")]
        self.assertEqual(ld, build_var("LDHARDEN") + ["-pthread"])
        # and the compile line bin/build printed uses them, in order
        line = next(l for l in SEED.result.stdout.splitlines()
                    if l.strip().startswith("cc "))
        want = " ".join(build_var("STD") + build_var("OPT") +
                        build_var("WARN") + build_var("HARDEN"))
        self.assertIn(want, line)
        self.assertIn(" ".join(build_var("LDHARDEN")), line)

    def test_template_binary_serves(self):
        self.assertBuilt(SEED.result)
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        env = dict(BASE_ENV, PORT=str(port), ZC_LISTEN_ADDRESS="127.0.0.1")
        p = subprocess.Popen([SEED.layers + "/fn/bin/function"], env=env,
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        try:
            body = None
            for _ in range(100):
                try:
                    with urllib.request.urlopen(
                            "http://127.0.0.1:%d/hello?name=Ada" % port,
                            timeout=2) as resp:
                        body = resp.read().decode()
                    break
                except OSError:
                    time.sleep(0.05)
            self.assertEqual(body, '{"message":"Hello, Ada!"}\n')
        finally:
            p.terminate()
            self.assertEqual(p.wait(timeout=10), 0)


class BuildTest(Case):

    def test_examples_build(self):
        for ex in EXAMPLES:
            with self.subTest(example=ex):
                w = self.work(os.path.join(ROOT, "examples", ex))
                r = w.build(env={"BP_ZC_FUNCTION_NAME": ex})
                self.assertBuilt(r)
                self.assertIn("Reusing the cached Zenith C runtime", r.stdout)
                self.assertTrue(os.access(
                    "%s/fn/bin/%s" % (w.layers, ex), os.X_OK))
                self.assertEqual(w.toml("launch")["processes"][0]["command"],
                                 ["%s/fn/bin/%s" % (w.layers, ex)])
                # balance-manager and audit-logger keep state in the store;
                # transaction-processor keeps none
                self.assertIs(w.toml("fn")["metadata"]["uses-store"],
                              ex != "transaction-processor")
                self.assertEqual("keeps state in the store" in r.stdout,
                                 ex != "transaction-processor")

    def test_test_files_are_not_compiled(self):
        # the template's test_function.c has its own main(): linking it in
        # would fail with a duplicate main
        w = self.work(TEMPLATE)
        r = w.build()
        self.assertBuilt(r)
        self.assertIn("function.c -> function", r.stdout)
        self.assertNotIn("test_function.c ->", r.stdout)

    def test_positional_arguments(self):
        w = self.work(TEMPLATE)
        self.assertBuilt(w.build(positional=True))
        self.assertTrue(os.path.exists(w.layers + "/launch.toml"))

    def test_source_dir_and_settings_from_platform_files(self):
        w = self.work(files={"fn/hello.c": HELLO, "README.md": "x\n"})
        w.platform_env("BP_ZC_SOURCE_DIR", "fn")
        w.platform_env("BP_ZC_FUNCTION_NAME", "hello")
        r = w.build()
        self.assertBuilt(r)
        self.assertTrue(os.path.isfile(w.layers + "/fn/bin/hello"))

    def test_keep_files(self):
        w = self.work(files={"hello.c": HELLO, "static/a.txt": "a",
                             "static/b/c.txt": "c", "config.json": "{}"})
        r = w.build(env={"BP_ZC_KEEP_FILES": "static/**:config.json:../x"})
        self.assertBuilt(r)
        kept = sorted(os.path.relpath(os.path.join(d, f), w.app)
                      for d, _, fs in os.walk(w.app) for f in fs)
        self.assertEqual(kept, ["config.json", "static/a.txt",
                                "static/b/c.txt"])
        self.assertIn('pattern "../x" ignored', r.stderr)

    def test_strip_false_keeps_debug_info(self):
        w = self.work(TEMPLATE)
        self.assertBuilt(w.build(env={"BP_ZC_STRIP": "false"}))
        sections = subprocess.run(["readelf", "-SW",
                                   w.layers + "/fn/bin/function"],
                                  capture_output=True, text=True).stdout
        self.assertIn(".debug_info", sections)

    def test_bundle_libs_true(self):
        w = self.work(TEMPLATE)
        r = w.build(env={"BP_ZC_BUNDLE_LIBS": "true"})
        self.assertBuilt(r)
        libs = w.toml("libs")
        self.assertEqual(libs["types"], {"launch": True, "build": False,
                                         "cache": False})
        names = os.listdir(w.layers + "/libs/lib")
        for so in ("libjansson.so.4", "libcurl.so.4"):
            self.assertIn(so, names)
        # libmicrohttpd is linked in from its archive (runtime/notls stands
        # in for its GnuTLS; libcurl's tree still brings a GnuTLS of its own)
        self.assertNotIn("libmicrohttpd.so.12", names)
        for so in names:  # glibc is always the run image's
            self.assertNotRegex(so, r"^(libc|libm|ld-linux.*|libpthread)\.so")
        # the binary resolves them from the layer
        env = dict(BASE_ENV, LD_LIBRARY_PATH=w.layers + "/libs/lib")
        ldd = subprocess.run(["ldd", w.layers + "/fn/bin/function"], env=env,
                             capture_output=True, text=True).stdout
        self.assertIn(w.layers + "/libs/lib/libjansson.so.4", ldd)
        self.assertNotIn("libmicrohttpd", ldd)
        self.assertNotIn("libgnutls", ldd)
        # libcurl is dlopened by the runtime (ldd cannot see it): it and
        # what it loads travel in the layer all the same
        curl = subprocess.run(["ldd", w.layers + "/libs/lib/libcurl.so.4"],
                              env=env, capture_output=True, text=True).stdout
        self.assertIn(w.layers + "/libs/lib/libnghttp2.so.14", curl)
        # the starter keeps no state: the store's libraries stay out
        self.assertIs(w.toml("fn")["metadata"]["uses-store"], False)
        for so in ("libsqlite3.so.0", "libpq.so.5"):
            self.assertNotIn(so, names)

    def test_bundle_libs_true_brings_the_store_libraries(self):
        # balance-manager keeps state: the runtime dlopens libsqlite3 or
        # libpq by ZC_STORE_URL, so both travel with what they load
        w = self.work(os.path.join(ROOT, "examples", "balance-manager"))
        r = w.build(env={"BP_ZC_BUNDLE_LIBS": "true",
                         "BP_ZC_FUNCTION_NAME": "balance-manager"})
        self.assertBuilt(r)
        lib = w.layers + "/libs/lib"
        names = os.listdir(lib)
        for so in ("libjansson.so.4", "libcurl.so.4", "libsqlite3.so.0",
                   "libpq.so.5"):
            self.assertIn(so, names)
        self.assertEqual(len(names), len(set(names)))
        listed = [l.strip() for l in r.stdout.splitlines()
                  if l.startswith("     lib")]
        self.assertEqual(len(listed), len(set(listed)), r.stdout)
        self.assertIn("Bundling %d shared libraries" % len(names), r.stdout)
        # everything libpq and libsqlite3 load is in the layer, or glibc
        env = dict(BASE_ENV, LD_LIBRARY_PATH=lib)
        for so in ("libpq.so.5", "libsqlite3.so.0"):
            with self.subTest(library=so):
                ldd = subprocess.run(["ldd", os.path.join(lib, so)], env=env,
                                     capture_output=True, text=True).stdout
                self.assertNotIn("not found", ldd)
                for line in ldd.splitlines():
                    m = re.match(r"\s*(\S+) => (\S+)", line)
                    if not m:
                        continue
                    if re.match(r"^(libc|libm|libresolv|libpthread|libdl|"
                                r"librt)\.so", m.group(1)):
                        continue
                    self.assertTrue(m.group(2).startswith(lib + "/"), line)
        self.assertIn(lib + "/libssl.so.3", subprocess.run(
            ["ldd", os.path.join(lib, "libpq.so.5")], env=env,
            capture_output=True, text=True).stdout)

    def test_transactional_route_alone_keeps_state(self):
        # no store call in the objects, but a transactional route: the
        # runtime opens the store for it (its outbox), so it keeps state
        src = HELLO.replace(
            'return zc_route(app, "GET", "/hello", hello, NULL);',
            'return zc_route_with(app, "POST", "/hello", hello, NULL,\n'
            '\t    &(zc_route_opts){.flags = ZC_ROUTE_TRANSACTIONAL});')
        w = self.work(files={"hello.c": src})
        r = w.build(env={"BP_ZC_BUNDLE_LIBS": "true"})
        self.assertBuilt(r)
        self.assertIs(w.toml("fn")["metadata"]["uses-store"], True)
        names = os.listdir(w.layers + "/libs/lib")
        self.assertIn("libsqlite3.so.0", names)
        self.assertIn("libpq.so.5", names)

    def test_bundle_libs_auto_store_function_adds_nothing(self):
        # the Zenith run image carries libsqlite3 and libpq
        w = self.work(os.path.join(ROOT, "examples", "audit-logger"))
        r = w.build(env={"BP_ZC_FUNCTION_NAME": "audit-logger"})
        self.assertBuilt(r)
        self.assertIs(w.toml("fn")["metadata"]["uses-store"], True)
        self.assertFalse(os.path.exists(w.layers + "/libs"))
        self.assertNotIn("Bundling", r.stdout)

    def test_bundle_libs_auto_takes_only_what_the_function_adds(self):
        if not os.path.exists("/usr/lib/x86_64-linux-gnu/libexpat.so"):
            self.skipTest("libexpat-dev is not installed")
        w = self.work(TEMPLATE)
        r = w.build(env={"BP_ZC_LIBS": "-lexpat",
                         "BP_ZC_LDFLAGS": "-Wl,--no-as-needed"})
        self.assertBuilt(r)
        self.assertEqual(os.listdir(w.layers + "/libs/lib"), ["libexpat.so.1"])

    def test_bundle_libs_false(self):
        w = self.work(TEMPLATE)
        self.assertBuilt(w.build(env={"BP_ZC_BUNDLE_LIBS": "false"}))
        self.assertFalse(os.path.exists(w.layers + "/libs"))

    def test_bad_settings_fail_with_one_line(self):
        for env, word in (({"BP_ZC_BUNDLE_LIBS": "maybe"}, "BP_ZC_BUNDLE_LIBS"),
                          ({"BP_ZC_FUNCTION_NAME": "../x"},
                           "BP_ZC_FUNCTION_NAME"),
                          ({"BP_ZC_STRIP": "yes"}, "BP_ZC_STRIP"),
                          ({"BP_ZC_SOURCE_DIR": "nope"}, "BP_ZC_SOURCE_DIR"),
                          ({"BP_ZC_PKG_CONFIG": "no-such-module"},
                           "BP_ZC_PKG_CONFIG")):
            with self.subTest(env=env):
                w = self.work(TEMPLATE)
                r = w.build(env=env)
                self.assertEqual(r.returncode, 1)
                lines = r.stderr.strip().splitlines()
                self.assertTrue(lines[0].startswith("error: "), r.stderr)
                self.assertIn(word, lines[0])
                self.assertLessEqual(len(lines), 2, r.stderr)


class BrokenSourceTest(Case):
    BROKEN = HELLO.replace('return zc_route(app, "GET", "/hello", hello, NULL);',
                           'return zc_route(app, "GET", "/hello", hello, NULL)')

    def check_readable_failure(self, r, where):
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        err = r.stderr.splitlines()
        # the compiler's own message, file:line:col, comes first
        self.assertRegex(err[0], r"^hello\.c(:\d+)*: (error|In function)")
        self.assertTrue(any(re.match(r"^hello\.c:\d+:\d+: error: ", l)
                            for l in err), r.stderr)
        # then one error line and one hint line, and nothing else of ours
        self.assertEqual(err[-2], "error: the function does not compile")
        self.assertTrue(err[-1].startswith("hint: fix %s" % where), err[-1])
        self.assertEqual(sum(1 for l in err if l.startswith("hint:")), 1)
        for l in err:  # no shell noise: traces, bash's own errors
            self.assertNotRegex(l, r"^\+|line \d+:|command not found|"
                                   r"bin/build:|Traceback")
        self.assertFalse(os.path.exists(os.path.join(r.w.layers,
                                                     "launch.toml")))

    def test_syntax_error(self):
        w = self.work(files={"hello.c": self.BROKEN})
        r = w.build()
        r.w = w
        self.check_readable_failure(r, "hello.c:13:")
        self.assertIn("expected", r.stderr)
        self.assertRegex(r.stderr.splitlines()[-1],
                         r"^hint: fix hello\.c:13:\d+ first, then build again$")

    def test_warning_is_an_error_unless_relaxed(self):
        src = HELLO.replace("(void)req;", "int unused;\n\t(void)req;")
        w = self.work(files={"hello.c": src})
        r = w.build()
        r.w = w
        self.check_readable_failure(r, "hello.c:")
        self.assertIn("-Werror=unused-variable", r.stderr)
        self.assertIn("BP_ZC_CFLAGS=-Wno-error", r.stderr.splitlines()[-1])
        w2 = self.work(files={"hello.c": src})
        r2 = w2.build(env={"BP_ZC_CFLAGS": "-Wno-error"})
        self.assertBuilt(r2)
        self.assertIn("warning: unused variable", r2.stderr)


class RuntimeCacheTest(Case):
    """The runtime cache layer: a rebuild with the runtime unchanged does
    not compile it; a changed runtime, or no cache, does."""

    def packaged(self):
        """A copy of the packaged buildpack SEED was built with."""
        d = tempfile.mkdtemp(prefix="zc-bp-pkg-")
        self.addCleanup(shutil.rmtree, d, True)
        out = os.path.join(d, "bp")
        shutil.copytree(SNAPSHOT, out, symlinks=True)
        return out

    def test_rebuild_reuses_the_runtime(self):
        w = self.work(TEMPLATE)  # restored from SEED
        lib = w.layers + "/runtime/lib/libzenithc.a"
        before = os.stat(lib)
        t0 = time.monotonic()
        r = w.build()
        self.assertBuilt(r)
        self.assertIn("Reusing the cached Zenith C runtime", r.stdout)
        self.assertNotIn("Compiling the Zenith C runtime", r.stdout)
        after = os.stat(lib)
        self.assertEqual((before.st_ino, before.st_mtime_ns),
                         (after.st_ino, after.st_mtime_ns))
        # [types] is written again: the restored TOML had none
        self.assertEqual(w.toml("runtime")["types"]["cache"], True)
        self.assertEqual(w.toml("runtime")["metadata"],
                         SEED.toml("runtime")["metadata"])
        print("\n    rebuild with cached runtime: %.2f s" %
              (time.monotonic() - t0), end=" ")

    def test_no_cache_compiles(self):
        # SEED is the template built with no cache: not built a second
        # time here (a cold runtime build is most of this suite's time)
        r = SEED.result
        self.assertBuilt(r)
        self.assertIn("Compiling the Zenith C runtime", r.stdout)
        self.assertNotIn("Reusing the cached", r.stdout)

    def test_changed_runtime_compiles_again(self):
        bp = self.packaged()
        w = self.work(TEMPLATE)
        r = w.build(bp=bp)
        self.assertBuilt(r)
        self.assertIn("Reusing the cached Zenith C runtime", r.stdout)
        # the same key from the packaged copy: then change one source
        with open(os.path.join(bp, "runtime", "src", "core", "log.c"), "a") as f:
            f.write("\n/* changed */\n")
        w2 = self.work(TEMPLATE)
        r2 = w2.build(bp=bp)
        self.assertBuilt(r2)
        self.assertIn("Compiling the Zenith C runtime", r2.stdout)
        self.assertNotEqual(w2.toml("runtime")["metadata"]["runtime-sha256"],
                            SEED.toml("runtime")["metadata"]["runtime-sha256"])

    def test_stale_metadata_compiles_again(self):
        w = self.work(TEMPLATE)
        with open(w.layers + "/runtime.toml", "w") as f:
            f.write('[metadata]\nruntime-sha256 = "%s"\n' % ("0" * 64))
        r = w.build()
        self.assertBuilt(r)
        self.assertIn("Compiling the Zenith C runtime", r.stdout)


class DescriptorTest(unittest.TestCase):

    def test_buildpack_toml(self):
        d = load(os.path.join(BP, "buildpack.toml"))
        self.assertEqual(d["api"], "0.10")
        self.assertEqual(d["buildpack"]["id"], "zenith/c-function")
        with open(os.path.join(ROOT, "runtime", "include", "zenith.h")) as f:
            version = re.search(r'#define ZC_VERSION\s+"(.*)"', f.read()).group(1)
        self.assertEqual(d["buildpack"]["version"], version)
        self.assertEqual(d["targets"], [{"os": "linux", "arch": "amd64",
                                         "distros": [{"name": "debian",
                                                      "version": "12"}]}])
        self.assertNotIn("stacks", d)  # deprecated since API 0.10

    def test_executables(self):
        for exe in ("detect", "build"):
            self.assertTrue(os.access(os.path.join(BP, "bin", exe), os.X_OK))

    def test_builder_toml(self):
        b = load(os.path.join(BP, "images", "builder.toml"))
        d = load(os.path.join(BP, "buildpack.toml"))
        self.assertEqual(b["buildpacks"][0]["id"], d["buildpack"]["id"])
        self.assertEqual(b["buildpacks"][0]["version"],
                         d["buildpack"]["version"])
        self.assertTrue(os.path.isabs(b["buildpacks"][0]["uri"]) or
                        b["buildpacks"][0]["uri"].startswith("../"))
        self.assertEqual(b["order"][0]["group"][0]["id"], d["buildpack"]["id"])
        self.assertTrue(b["build"]["image"])
        self.assertTrue(b["run"]["images"][0]["image"])

    def test_package_is_self_contained(self):
        d = tempfile.mkdtemp(prefix="zc-bp-pkg-")
        self.addCleanup(shutil.rmtree, d, True)
        out = os.path.join(d, "bp")
        subprocess.run([os.path.join(BP, "package.sh"), out], check=True,
                       capture_output=True)
        for f in ("buildpack.toml", "bin/detect", "bin/build",
                  "lib/settings.sh", "runtime/include/zenith.h",
                  "runtime/src/app/main.c",
                  "runtime/src/store/sqlite.c", "runtime/src/internal.h"):
            self.assertTrue(os.path.isfile(os.path.join(out, f)), f)
        # every file readable by the build image's unprivileged user
        for dirpath, _, files in os.walk(out):
            for f in files:
                self.assertTrue(os.stat(os.path.join(dirpath, f)).st_mode &
                                stat.S_IROTH, f)

    def test_template_manifest(self):
        # The language pack as func reads it (tests/pack checks every rule):
        # manifest.yaml at the repository root names the templates folder,
        # the template's own names the builder that holds this buildpack.
        with open(os.path.join(ROOT, "manifest.yaml")) as f:
            top = f.read()
        self.assertRegex(top, r"(?m)^templates:\s*templates\s*$")
        self.assertFalse(os.path.exists(
            os.path.join(ROOT, "templates", "manifest.yaml")))
        with open(os.path.join(TEMPLATE, "manifest.yaml")) as f:
            m = f.read()
        self.assertRegex(m, r"liveness:\s*/health/liveness")
        self.assertRegex(m, r"readiness:\s*/health/readiness")
        self.assertIn("zenith/c-function", m)
        b = load(os.path.join(BP, "images", "builder.toml"))
        builder = re.search(r"(?m)^\s+pack:\s*(\S+)", m).group(1)
        self.assertEqual(builder.rsplit("/", 1)[0],
                         b["run"]["images"][0]["image"].rsplit("/", 1)[0])
