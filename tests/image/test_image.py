"""
test_image.py - the function images as containers: built with `make image`
(buildpack + lifecycle.py, no Docker engine), run with podman and runc on
127.0.0.1 only (host network with ZC_LISTEN_ADDRESS=127.0.0.1, or a
slirp4netns port mapping; never a bridge), as Knative would run them: a
read-only root filesystem with a writable /tmp, no capabilities, non-root.

Every container is removed by ID and every image this suite loads is
removed by ID when the suite ends, also on Ctrl-C or SIGTERM (run.py).
"""
import gzip
import http.client
import io
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "buildpack", "lifecycle"))
import ocilayout  # noqa: E402

IMAGES = os.path.join(ROOT, "build", "images")
IMAGE_SH = os.path.join(ROOT, "buildpack", "lifecycle", "image.sh")
EXAMPLES = ["audit-logger", "balance-manager", "transaction-processor"]
RUN_IMAGE_GOAL = 12 * 1048576  # compressed, from the issue
DRAIN_MS = 3000  # ZC_DRAIN_TIMEOUT_MS given to every container
ESC = "zenith_c-function"

# What every function container gets: what Knative and func deploy give a
# pod (read-only root, writable /tmp, no capabilities, no privilege gain).
HARDENED = ["--read-only", "--tmpfs", "/tmp:rw,mode=1777,size=16m",
            "--cap-drop", "all", "--security-opt", "no-new-privileges"]

CONTAINERS = []  # IDs, removed at the end whatever happens
BUILDS = []      # image.sh processes running now (each its own group)
LOADED = []      # image IDs loaded by this suite
STATE = {}       # shared between the classes: builds, probe, tmp dir


def podman(*args, check=True, timeout=120):
    p = subprocess.run(["podman"] + list(args), capture_output=True,
                       text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("podman %s failed (%d): %s" % (
            " ".join(args[:3]), p.returncode, p.stderr.strip()))
    return p.stdout.strip()


def logs(cid):
    """The container's output: the runtime logs on stderr."""
    return subprocess.run(["podman", "logs", cid], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True,
                          timeout=60).stdout


def cleanup():
    """Stop a build in progress; remove every container and image this
    suite made, by ID."""
    for p in BUILDS:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)  # its lifecycle kills its container
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    BUILDS.clear()
    for cid in reversed(CONTAINERS):
        subprocess.run(["podman", "rm", "-f", "-t", "0", cid],
                       capture_output=True)
    CONTAINERS.clear()
    for iid in LOADED:
        subprocess.run(["podman", "rmi", "-f", iid], capture_output=True)
    LOADED.clear()
    if STATE.get("tmp"):
        shutil.rmtree(STATE["tmp"], ignore_errors=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def request(port, method, path, body=None, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body else {}
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


def wait_ready(port, cid, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if request(port, "GET", "/health/readiness", timeout=1)[0] == 200:
                return
        except OSError:
            pass
        if podman("inspect", "-f", "{{.State.Running}}", cid) != "true":
            break
        time.sleep(0.05)
    raise AssertionError("container %s not ready on port %d:\n%s" % (
        cid[:12], port, logs(cid)))


def run_container(image, env, network=None, extra=()):
    args = ["run", "-d"] + HARDENED + list(extra)
    args += ["--network", network or "host"]
    for k, v in env.items():
        args += ["-e", "%s=%s" % (k, v)]
    cid = podman(*(args + [image]))
    CONTAINERS.append(cid)
    return cid


def build_image(folder, name, env=None, output=None):
    """make image FN=folder; the log and the time it took."""
    t0 = time.monotonic()
    e = dict(os.environ, ZC_BUILDPACK=STATE["buildpack"])
    e.update(env or {})
    out = output or os.path.join(IMAGES, name + ".oci.tar")
    p = subprocess.Popen([IMAGE_SH, folder, out], env=e, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True)
    BUILDS.append(p)
    log = p.communicate(timeout=1200)[0]
    BUILDS.remove(p)
    return {"rc": p.returncode, "log": log, "archive": out,
            "seconds": time.monotonic() - t0, "name": name}


def load(archive):
    out = podman("load", "-q", "-i", archive, timeout=300)
    m = re.search(r"Loaded image(?:\(s\))?: (\S+)", out)
    ref = m.group(1) if m else out.split()[-1]
    LOADED.append(podman("image", "inspect", "-f", "{{.Id}}", ref))
    return ref


def setUpModule():
    STATE["tmp"] = tempfile.mkdtemp(prefix="zc-image-test-")
    # The static probe that checks the filesystem from inside a container.
    probe = os.path.join(STATE["tmp"], "zc-probe")
    subprocess.run(["gcc", "-static", "-O2", "-o", probe,
                    os.path.join(HERE, "probe.c")], check=True)
    STATE["probe"] = probe
    # One snapshot of the buildpack (and the runtime sources in it) for
    # every build here: the runtime cache key stays put while the tree is
    # being edited.
    STATE["buildpack"] = subprocess.run(
        [os.path.join(ROOT, "buildpack", "package.sh"),
         os.path.join(STATE["tmp"], "buildpack")], check=True,
        capture_output=True, text=True).stdout.strip()
    # A user's first function: the starter, copied as its README says.
    hello = os.path.join(STATE["tmp"], "hello")
    shutil.copytree(os.path.join(ROOT, "templates", "c", "http"), hello)
    STATE["builds"] = {}
    for name in EXAMPLES:
        STATE["builds"][name] = build_image(
            os.path.join(ROOT, "examples", name), name)
    STATE["builds"]["hello"] = build_image(hello, "hello")
    for b in STATE["builds"].values():
        print("\n    built %-22s in %5.1f s (exit %d)" % (
            b["name"], b["seconds"], b["rc"]), end="")


def tearDownModule():
    cleanup()


def built(testcase, name):
    b = STATE["builds"][name]
    if b["rc"] != 0:
        testcase.fail("make image FN=%s failed (exit %d):\n%s" % (
            name, b["rc"], b["log"][-3000:]))
    return b


def layer_files(archive):
    """{path: (mode, size, type)} of every layer of the image, in order,
    later layers overriding earlier ones."""
    img = ocilayout.Image(archive)
    files = {}
    try:
        for layer in img.layers:
            data = img.blob(layer["digest"])
            if layer["mediaType"].endswith("gzip"):
                data = gzip.decompress(data)
            with tarfile.open(fileobj=io.BytesIO(data)) as t:
                for m in t.getmembers():
                    files["/" + m.name.lstrip("./")] = (m.mode, m.size,
                                                        m.type, m.uid)
        return files, img.config
    finally:
        img.close()


class BuildTest(unittest.TestCase):
    """make image for the three examples and the starter."""

    def test_examples_and_starter_build(self):
        for name in EXAMPLES + ["hello"]:
            with self.subTest(image=name):
                b = built(self, name)
                self.assertTrue(os.path.isfile(b["archive"]))
                self.assertIn("pass: zenith/c-function@", b["log"])
                self.assertIn('Adding layer "zenith/c-function:fn"', b["log"])

    def test_image_config(self):
        for name in EXAMPLES + ["hello"]:
            with self.subTest(image=name):
                b = built(self, name)
                img = ocilayout.Image(b["archive"])
                cfg = img.config["config"]
                img.close()
                self.assertEqual(cfg["User"], "1000:1000")
                self.assertEqual(cfg["Entrypoint"],
                                 ["/layers/%s/fn/bin/%s" % (ESC, name)])
                self.assertNotIn("Cmd", cfg)
                self.assertEqual(cfg["WorkingDir"], "/workspace")
                env = dict(e.split("=", 1) for e in cfg["Env"])
                self.assertEqual(env["PORT"], "8080")
                self.assertTrue(env["PATH"].startswith(
                    "/layers/%s/fn/bin:" % ESC))
                self.assertEqual(env["CNB_LAYERS_DIR"], "/layers")
                labels = cfg["Labels"]
                self.assertEqual(labels["io.buildpacks.base.distro.name"],
                                 "debian")
                self.assertEqual(labels["io.buildpacks.base.distro.version"],
                                 "12")
                md = json.loads(labels["io.buildpacks.build.metadata"])
                self.assertEqual(md["processes"][0]["type"], "web")
                self.assertTrue(md["processes"][0]["default"])
                lc = json.loads(labels["io.buildpacks.lifecycle.metadata"])
                layers = lc["buildpacks"][0]["layers"]
                self.assertEqual(sorted(layers), ["fn"])  # runtime: cache only
                self.assertTrue(layers["fn"]["launch"])

    def test_nothing_but_what_the_function_needs(self):
        for name in EXAMPLES + ["hello"]:
            with self.subTest(image=name):
                b = built(self, name)
                files, _ = layer_files(b["archive"])
                for shell in ("/bin/sh", "/bin/bash", "/bin/dash",
                              "/usr/bin/sh", "/bin/busybox"):
                    self.assertNotIn(shell, files)
                self.assertEqual([f for f in files if f.endswith(".c")], [])
                self.assertEqual([f for f in files
                                  if f.startswith("/workspace/")], [])
                self.assertFalse(any(f.startswith("/layers/%s/runtime" % ESC)
                                     for f in files))
                binary = "/layers/%s/fn/bin/%s" % (ESC, name)
                self.assertIn(binary, files)
                self.assertEqual(files[binary][0] & 0o755, 0o755)

    def test_run_image_size(self):
        img = ocilayout.Image(os.path.join(IMAGES, "run") + ":run")
        size = img.compressed_size()
        img.close()
        print("\n    run image: %s compressed" % ocilayout.human(size),
              end=" ")
        for name in EXAMPLES + ["hello"]:
            b = STATE["builds"][name]
            if b["rc"] == 0:
                i = ocilayout.Image(b["archive"])
                print("\n    %-22s %s compressed" % (
                    name, ocilayout.human(i.compressed_size())), end=" ")
                i.close()
        self.assertLessEqual(size, RUN_IMAGE_GOAL)

    def test_rebuild_reuses_images_and_runtime_cache(self):
        built(self, "audit-logger")
        b = build_image(os.path.join(ROOT, "examples", "audit-logger"),
                        "audit-logger")
        self.assertEqual(b["rc"], 0, b["log"][-3000:])
        log = b["log"]
        self.assertIn("run image: up to date", log)
        self.assertIn("build image: up to date", log)
        self.assertIn('Restoring data for "zenith/c-function:runtime" '
                      'from cache', log)
        self.assertIn("Reusing the cached Zenith C runtime", log)
        self.assertNotIn("Compiling the Zenith C runtime", log)
        print("\n    rebuild with unchanged inputs: %.1f s" % b["seconds"],
              end=" ")


class ChainTest(unittest.TestCase):
    """The seed's chain as three containers on host networking, bound to
    127.0.0.1: transaction-processor -> balance-manager -> audit-logger."""

    @classmethod
    def setUpClass(cls):
        for name in EXAMPLES:
            if STATE["builds"][name]["rc"] != 0:
                raise unittest.SkipTest("the %s image did not build" % name)
        cls.ports = {n: free_port() for n in EXAMPLES}
        cls.refs = {n: load(STATE["builds"][n]["archive"]) for n in EXAMPLES}
        common = {"ZC_LISTEN_ADDRESS": "127.0.0.1",
                  "ZC_DRAIN_TIMEOUT_MS": str(DRAIN_MS)}
        probe = ["-v", "%s:/zc-probe:ro" % STATE["probe"]]
        cls.cids = {}
        url = "http://127.0.0.1:%d"
        wiring = {
            "audit-logger": {},
            "balance-manager": {"AUDIT_LOGGER_URL":
                                url % cls.ports["audit-logger"]},
            "transaction-processor": {"BALANCE_MANAGER_URL":
                                      url % cls.ports["balance-manager"]},
        }
        for name in EXAMPLES:
            env = dict(common, PORT=str(cls.ports[name]), **wiring[name])
            cls.cids[name] = run_container(cls.refs[name], env, extra=probe)
        for name in EXAMPLES:
            wait_ready(cls.ports[name], cls.cids[name])

    def test_transaction_through_the_chain(self):
        tp = self.ports["transaction-processor"]
        status, body = request(tp, "POST", "/transaction",
                               '{"account":"ACC-001","amount":100.50}')
        self.assertEqual(status, 200, body)
        doc = json.loads(body)
        # the seed's answer: status, transaction_id, balance, timestamp
        self.assertEqual(list(doc), ["status", "transaction_id", "balance",
                                     "timestamp"])
        self.assertEqual(doc["status"], "success")
        self.assertRegex(doc["transaction_id"], r"^TXN-\S+$")
        self.assertIn('"balance":100.5,', body)
        self.assertRegex(doc["timestamp"],
                         r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
        status, body = request(tp, "POST", "/transaction",
                               '{"account":"ACC-001","amount":0.25}')
        self.assertEqual(status, 200, body)
        self.assertIn('"balance":100.75,', body)
        # and the audit-logger, two containers away, saw both updates
        deadline = time.monotonic() + 10
        while True:
            text = logs(self.cids["audit-logger"])
            lines = [l for l in text.splitlines() if "[AUDIT]" in l and
                     "balance_update" in l and "ACC-001" in l]
            if len(lines) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(len(lines), 2, text)

    def test_bad_request_is_400_json(self):
        status, body = request(self.ports["transaction-processor"], "POST",
                               "/transaction", '{"account":"ACC-001"}')
        self.assertEqual(status, 400, body)
        self.assertIn('"error"', body)

    def test_health_endpoints(self):
        for name in EXAMPLES:
            with self.subTest(function=name):
                port = self.ports[name]
                self.assertEqual(request(port, "GET", "/health/liveness"),
                                 (200, '{"status":"alive"}\n'))
                self.assertEqual(request(port, "GET", "/health/readiness"),
                                 (200, '{"status":"ready"}\n'))

    def test_non_root_pid_1(self):
        for name in EXAMPLES:
            with self.subTest(function=name):
                pid = podman("inspect", "-f", "{{.State.Pid}}",
                             self.cids[name])
                with open("/proc/%s/status" % pid) as f:
                    status = dict(l.split(":", 1) for l in f if ":" in l)
                self.assertEqual(status["Uid"].split(), ["1000"] * 4)
                self.assertEqual(status["Gid"].split(), ["1000"] * 4)
                # the function itself is PID 1: it gets SIGTERM directly
                self.assertEqual(status["NSpid"].split()[-1], "1")
                self.assertEqual(status["CapEff"].strip(), "0" * 16)

    def test_read_only_root_writable_tmp(self):
        for name in EXAMPLES:
            with self.subTest(function=name):
                cid = self.cids[name]
                self.assertEqual(podman("inspect", "-f",
                                        "{{.HostConfig.ReadonlyRootfs}}", cid),
                                 "true")
                p = subprocess.run(["podman", "exec", cid, "/zc-probe"],
                                   capture_output=True, text=True, timeout=30)
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
                self.assertIn("uid=1000", p.stdout)

    def test_zz_sigterm_exits_0_within_the_drain_deadline(self):
        # audit-logger last, so the others never lose their downstream
        for name in reversed(EXAMPLES):
            with self.subTest(function=name):
                cid = self.cids[name]
                t0 = time.monotonic()
                podman("kill", "--signal", "TERM", cid)
                code = podman("wait", cid, timeout=DRAIN_MS / 1000 + 10)
                elapsed = time.monotonic() - t0
                self.assertEqual(code, "0")
                self.assertLess(elapsed, DRAIN_MS / 1000 + 2)
                text = logs(cid)
                self.assertIn("Terminated: draining", text)
                self.assertIn("stopped", text)


class SlowBalanceManager(http.server.BaseHTTPRequestHandler):
    """A balance-manager stand-in that answers after DELAY seconds, so a
    transaction is in flight when SIGTERM arrives."""
    DELAY = 1.5

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        time.sleep(self.DELAY)
        body = b'{"status":"updated","new_balance":42.5,"account":"ACC-9"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class DrainTest(unittest.TestCase):
    """SIGTERM while a request is in flight: it is answered, then the
    container exits 0, well within the drain deadline."""

    def test_in_flight_request_finishes_after_sigterm(self):
        b = built(self, "transaction-processor")
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                              SlowBalanceManager)
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        self.addCleanup(srv.server_close)
        self.addCleanup(srv.shutdown)
        port = free_port()
        cid = run_container(load(b["archive"]), {
            "PORT": str(port), "ZC_LISTEN_ADDRESS": "127.0.0.1",
            "ZC_DRAIN_TIMEOUT_MS": str(DRAIN_MS),
            "BALANCE_MANAGER_URL": "http://127.0.0.1:%d" %
            srv.server_address[1]})
        wait_ready(port, cid)
        answer = {}

        def call():
            answer["r"] = request(port, "POST", "/transaction",
                                  '{"account":"ACC-9","amount":1}')

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.5)  # the handler now waits on the slow downstream
        t0 = time.monotonic()
        podman("kill", "--signal", "TERM", cid)
        code = podman("wait", cid, timeout=DRAIN_MS / 1000 + 10)
        elapsed = time.monotonic() - t0
        caller.join(10)
        self.assertEqual(code, "0")
        self.assertEqual(answer["r"][0], 200, answer)
        self.assertIn('"balance":42.5', answer["r"][1])
        self.assertLess(elapsed, DRAIN_MS / 1000 + 2)
        self.assertGreater(elapsed, 0.5)  # it did wait for the request
        self.assertIn("draining (1 in flight", logs(cid))


class StarterTest(unittest.TestCase):
    """The starter as a user runs it: the image's own PORT default (8080)
    and listen address, published on 127.0.0.1 through slirp4netns."""

    def test_starter_on_slirp4netns(self):
        b = built(self, "hello")
        host_port = free_port()
        cid = run_container(load(b["archive"]), {
            "ZC_DRAIN_TIMEOUT_MS": str(DRAIN_MS)}, network="slirp4netns",
            extra=["-p", "127.0.0.1:%d:8080" % host_port])
        wait_ready(host_port, cid)
        self.assertEqual(request(host_port, "GET", "/hello?name=Ada"),
                         (200, '{"message":"Hello, Ada!"}\n'))
        self.assertEqual(request(host_port, "POST", "/echo",
                                 '{"message":"hi"}'),
                         (200, '{"echo":"hi","bytes":2}\n'))
        self.assertIn("listening on port 8080", logs(cid))
        podman("kill", "--signal", "TERM", cid)
        self.assertEqual(podman("wait", cid, timeout=DRAIN_MS / 1000 + 10),
                         "0")


class BundleLibsTest(unittest.TestCase):
    """BP_ZC_BUNDLE_LIBS=true over a run image that has glibc and nothing
    else: the runtime's libraries travel in the libs layer and the
    function runs."""

    def test_bundled_libraries_on_a_glibc_only_run_image(self):
        layout = os.path.join(STATE["tmp"], "run-libc")
        env = dict(os.environ, ZC_RUN_ROOTS="libc6")
        p = subprocess.run([os.path.join(ROOT, "buildpack", "images",
                                         "build-run-image.sh"), layout],
                           env=env, capture_output=True, text=True,
                           timeout=600)
        self.assertEqual(p.returncode, 0, p.stderr)
        hello = os.path.join(STATE["tmp"], "hello-bundled")
        shutil.copytree(os.path.join(ROOT, "templates", "c", "http"), hello)
        b = build_image(hello, "hello-bundled", env={
            "ZC_RUN_IMAGE": layout + ":run", "BP_ZC_BUNDLE_LIBS": "true",
            "ZC_IMAGE_CACHE": os.path.join(IMAGES, "cache", "hello")},
            output=os.path.join(STATE["tmp"], "hello-bundled.oci.tar"))
        self.assertEqual(b["rc"], 0, b["log"][-3000:])
        self.assertIn('Adding layer "zenith/c-function:libs"', b["log"])
        files, cfg = layer_files(b["archive"])
        self.assertIn("/layers/%s/libs/lib/libcurl.so.4" % ESC, files)
        env = dict(e.split("=", 1) for e in cfg["config"]["Env"])
        self.assertEqual(env["LD_LIBRARY_PATH"], "/layers/%s/libs/lib" % ESC)
        self.assertFalse(any("libcurl" in f for f in files
                             if f.startswith("/usr/")))
        port = free_port()
        cid = run_container(load(b["archive"]), {
            "PORT": str(port), "ZC_LISTEN_ADDRESS": "127.0.0.1"})
        wait_ready(port, cid)
        self.assertEqual(request(port, "GET", "/hello"),
                         (200, '{"message":"Hello, world!"}\n'))
