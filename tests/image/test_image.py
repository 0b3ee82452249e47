"""
test_image.py - the function images as containers: built with `make image`
(buildpack + lifecycle.py, no Docker engine), run with podman and runc on
127.0.0.1 only (host network with ZC_LISTEN_ADDRESS=127.0.0.1, or a
slirp4netns port mapping; never a bridge), as Knative would run them: a
read-only root filesystem with a writable /tmp, no capabilities, non-root.

State (ZC_STORE_URL): balance-manager and audit-logger keep theirs in the
default SQLite file under /tmp, in a host directory mounted as /tmp (so a
restarted container finds it), with no writable /tmp at all (a 503 and a
log line, not a crash), and in a private PostgreSQL 15 on 127.0.0.1
(tests/pg/pg.sh, one database per function, stopped by PID at the end);
transaction-processor keeps none and never loads libsqlite3 or libpq.

Every container is removed by ID and every image this suite loads is
removed by ID when the suite ends, also on Ctrl-C or SIGTERM (run.py); so
is the PostgreSQL server.
"""
import gzip
import http.client
import io
import http.server
import json
import os
import re
import sqlite3
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
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "buildpack", "lifecycle"))
import ocilayout  # noqa: E402

IMAGES = os.path.join(ROOT, "build", "images")
IMAGE_SH = os.path.join(ROOT, "buildpack", "lifecycle", "image.sh")
PG_SH = os.path.join(ROOT, "tests", "pg", "pg.sh")
PG_BIN = "/usr/lib/postgresql/15/bin"
LIBDIR = "/usr/lib/x86_64-linux-gnu"
EXAMPLES = ["audit-logger", "balance-manager", "transaction-processor"]
RUN_IMAGE_GOAL = 12 * 1048576  # compressed, from the issue
DRAIN_MS = 3000  # ZC_DRAIN_TIMEOUT_MS given to every container
ESC = "zenith_c-function"

# What every function container gets: what Knative and func deploy give a
# pod (read-only root, writable /tmp, no capabilities, no privilege gain).
HARDENED = ["--read-only", "--cap-drop", "all",
            "--security-opt", "no-new-privileges"]
TMPFS = ["--tmpfs", "/tmp:rw,mode=1777,size=16m"]

CONTAINERS = []  # IDs, removed at the end whatever happens
BUILDS = []      # image.sh processes running now (each its own group)
LOADED = []      # image IDs loaded by this suite
SERVERS = []     # PostgreSQL servers running now
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
    suite made, by ID; stop the PostgreSQL server, by PID."""
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
    STATE.pop("loaded", None)
    for pg in list(SERVERS):
        pg.stop()
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


def wait_ready(port, cid, timeout=20, path="/health/readiness"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if request(port, "GET", path, timeout=1)[0] == 200:
                return
        except OSError:
            pass
        if podman("inspect", "-f", "{{.State.Running}}", cid) != "true":
            break
        time.sleep(0.05)
    raise AssertionError("container %s not ready on port %d:\n%s" % (
        cid[:12], port, logs(cid)))


def wait_for(what, fn, timeout=20):
    """fn() until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if not v:
        raise AssertionError("%s: not within %d s" % (what, timeout))
    return v


def run_container(image, env, network=None, extra=(), tmp="tmpfs"):
    """A function container, hardened.  tmp: "tmpfs" (a writable /tmp, as
    Knative gives), a host directory mounted as /tmp (kept between
    containers), or None (no writable /tmp at all)."""
    args = ["run", "-d"] + HARDENED + list(extra)
    if tmp == "tmpfs":
        args += TMPFS
    elif tmp is None:
        args += ["--read-only-tmpfs=false"]
    else:
        args += ["-v", "%s:/tmp:rw" % tmp]
    args += ["--network", network or "host"]
    for k, v in env.items():
        args += ["-e", "%s=%s" % (k, v)]
    cid = podman(*(args + [image]))
    CONTAINERS.append(cid)
    return cid


def build_image(folder, name, env=None, output=None):
    """make image FN=folder; the log and the time it took.  Every build here
    shares one layer cache, so the runtime (the same for all) is compiled
    once per run, not once per function."""
    t0 = time.monotonic()
    e = dict(os.environ, ZC_BUILDPACK=STATE["buildpack"])
    e.setdefault("ZC_IMAGE_CACHE", os.path.join(IMAGES, "cache",
                                                 "image-tests"))
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
    """podman load, once per archive (as long as it is unchanged); the
    image's ID (several archives here carry the same name: containers are
    started by ID)."""
    key = (archive, os.stat(archive).st_mtime_ns)
    if key in STATE.setdefault("loaded", {}):
        return STATE["loaded"][key]
    out = podman("load", "-q", "-i", archive, timeout=300)
    m = re.search(r"Loaded image(?:\(s\))?: (\S+)", out)
    ref = m.group(1) if m else out.split()[-1]
    iid = podman("image", "inspect", "-f", "{{.Id}}", ref)
    LOADED.append(iid)
    STATE["loaded"][key] = iid
    return iid


def stop_container(testcase, cid):
    """SIGTERM; it must drain and exit 0."""
    podman("kill", "--signal", "TERM", cid)
    testcase.assertEqual(podman("wait", cid, timeout=DRAIN_MS / 1000 + 10),
                         "0", logs(cid))


def host_pid(cid):
    return int(podman("inspect", "-f", "{{.State.Pid}}", cid))


def mapped(cid):
    """The files the container's PID 1 has mapped (from the host)."""
    with open("/proc/%d/maps" % host_pid(cid)) as f:
        return {l.split()[-1] for l in f if len(l.split()) >= 6}


def maps_lib(cid, name):
    """The mapped file whose name starts with name (libpq.so), or None."""
    return next((m for m in mapped(cid)
                 if os.path.basename(m).startswith(name)), None)


def postgres_alive(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip() == "postgres"
    except OSError:
        return False


class Postgres:
    """A private PostgreSQL 15 on 127.0.0.1 (tests/pg/pg.sh): its own data
    directory, port and socket directory.  stop() stops it by PID, also
    from cleanup() on Ctrl-C or SIGTERM."""

    def __init__(self):
        self.base = self.dir = self.url = self.pid = None

    def start(self):
        if not os.access(os.path.join(PG_BIN, "initdb"), os.X_OK):
            raise AssertionError("%s/initdb missing: make deps-image installs "
                                 "postgresql-15" % PG_BIN)
        # As root the server runs as postgres, which must reach DIR: not
        # under the suite's 0700 temporary directory.
        self.base = tempfile.mkdtemp(prefix="zc-image-pg-", dir="/tmp")
        os.chmod(self.base, 0o755)
        self.dir = os.path.join(self.base, "pg")
        SERVERS.append(self)
        p = subprocess.run(["bash", PG_SH, "start", self.dir], text=True,
                           capture_output=True, timeout=180,
                           stdin=subprocess.DEVNULL)
        urls = re.findall(r"^postgres(?:ql)?://\S+$", p.stdout, re.M)
        try:
            with open(os.path.join(self.dir, "pid")) as f:
                self.pid = int(f.read().strip())
        except (OSError, ValueError):
            pass
        if p.returncode != 0 or not urls:
            self.stop()
            raise AssertionError("pg.sh start failed (exit %d):\n%s%s" % (
                p.returncode, p.stdout, p.stderr))
        self.url = urls[-1]
        return self

    def url_for(self, db):
        u = urllib.parse.urlsplit(self.url)
        return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + db,
                                        u.query, u.fragment))

    def psql(self, url, sql):
        """The rows of sql's result, as lists of str."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        p = subprocess.run(["psql", url, "-X", "-q", "-A", "-t", "-F", "\x1f",
                            "-v", "ON_ERROR_STOP=1", "-c", sql], env=env,
                           capture_output=True, text=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            raise AssertionError("psql %s: %s\n%s" % (url, sql, p.stderr))
        return [l.split("\x1f") for l in p.stdout.splitlines() if l]

    def stop(self):
        if self in SERVERS:
            SERVERS.remove(self)
        if self.dir and os.path.isdir(self.dir):
            subprocess.run(["bash", PG_SH, "stop", self.dir],
                           capture_output=True, timeout=90,
                           stdin=subprocess.DEVNULL)
        if self.pid and postgres_alive(self.pid):
            # pg.sh stops it by PID (TERM, then KILL); make sure of it
            os.kill(self.pid, signal.SIGKILL)
        self.pid = None
        if self.base:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = self.dir = None


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

    def test_run_image_carries_the_store_libraries(self):
        # the runtime dlopens libsqlite3 (the default store) or libpq
        # (ZC_STORE_URL=postgresql://...): both are in the run image
        files, cfg = layer_files(os.path.join(IMAGES, "run") + ":run")
        for so in ("libsqlite3.so.0", "libpq.so.5", "libcurl.so.4",
                   "libjansson.so.4", "libmicrohttpd.so.12"):
            self.assertIn("%s/%s" % (LIBDIR, so), files)
        self.assertIn("SQLite and libpq",
                      cfg["config"]["Labels"]["io.buildpacks.base.description"])
        img = ocilayout.Image(os.path.join(IMAGES, "run") + ":run")
        try:
            data = gzip.decompress(img.blob(img.layers[0]["digest"]))
        finally:
            img.close()
        with tarfile.open(fileobj=io.BytesIO(data)) as t:
            pkgs = t.extractfile("etc/zenith-c-run-packages.txt").read()
        pkgs = pkgs.decode().split()
        for p in ("libsqlite3-0", "libpq5", "libcurl4", "ca-certificates"):
            self.assertIn(p, pkgs)
        print("\n    run image: %d packages" % len(pkgs), end=" ")

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
    127.0.0.1: transaction-processor -> balance-manager -> audit-logger,
    the two that keep state with the default store (SQLite under the
    container's tmpfs /tmp)."""

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
        # balance-manager's store has it
        bm = self.ports["balance-manager"]
        self.assertEqual(request(bm, "GET", "/accounts/ACC-001"),
                         (200, '{"account":"ACC-001","balance":100.75}\n'))
        status, body = request(bm, "GET", "/accounts/ACC-404")
        self.assertEqual(status, 404, body)
        self.assertIn('"error"', body)
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

    def test_store_log_says_where_state_lives(self):
        for name in ("balance-manager", "audit-logger"):
            with self.subTest(function=name):
                text = logs(self.cids[name])
                db = "sqlite:/tmp/%s.db" % name
                self.assertIn("store: state in %s" % db, text)
                # ephemeral, and the log says so and what to do instead
                self.assertIn("store %s is in a temporary directory" % db,
                              text)
                self.assertIn("ZC_STORE_URL=postgresql://", text)
        self.assertNotIn("store:", logs(self.cids["transaction-processor"]))

    def test_store_libraries_only_where_state_is_kept(self):
        # ready means the store answered: libsqlite3 is loaded by then
        for name in ("balance-manager", "audit-logger"):
            with self.subTest(function=name):
                self.assertTrue(str(maps_lib(self.cids[name],
                                             "libsqlite3.so")).startswith(
                    LIBDIR + "/libsqlite3.so.0"), mapped(self.cids[name]))
                self.assertIsNone(maps_lib(self.cids[name], "libpq.so"))
        tp = self.cids["transaction-processor"]
        self.assertIsNone(maps_lib(tp, "libsqlite3.so"))
        self.assertIsNone(maps_lib(tp, "libpq.so"))

    def test_transaction_processor_cold_start(self):
        # exec to the first 200 on /health/readiness, inside its own image
        # (the probe forks it RUNS times on another port); it keeps no
        # state, so it loads neither of the store's libraries
        binary = "/layers/%s/fn/bin/transaction-processor" % ESC
        p = subprocess.run(["podman", "exec", self.cids[
            "transaction-processor"], "/zc-probe", "coldstart",
            str(free_port()), "11", binary], capture_output=True, text=True,
            timeout=120)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("maps libsqlite3=no libpq=no", p.stdout)
        median = float(re.search(r"median=([\d.]+)", p.stdout).group(1))
        print("\n    transaction-processor %s" % p.stdout.splitlines()[0],
              end=" ")
        # a few ms on an idle machine; the bound is for a loaded CI box
        self.assertLess(median, 250, p.stdout)

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


class AuditSink(http.server.BaseHTTPRequestHandler):
    """An audit-logger stand-in: 200 to every POST /log."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        out = b'{"status":"logged","timestamp":"2026-01-01T00:00:00Z"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


def audit_sink(cls):
    """An AuditSink on 127.0.0.1 for the test class cls, closed with it;
    its URL."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), AuditSink)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    cls.addClassCleanup(srv.server_close)
    cls.addClassCleanup(srv.shutdown)
    return "http://127.0.0.1:%d" % srv.server_address[1]


def update(port, account, amount, key):
    """POST /update to balance-manager; (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/update", body=json.dumps(
            {"account": account, "amount": amount}), headers={
            "Content-Type": "application/json", "Idempotency-Key": key})
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


class SqliteStateTest(unittest.TestCase):
    """balance-manager with the default store, a SQLite file named for the
    function under /tmp, on a read-only root filesystem: the file is where
    the startup log says, a container started again on the same /tmp (a
    host directory mounted there) finds the balances, and with no writable
    /tmp at all it stays up, says why in its log and answers 503."""

    @classmethod
    def setUpClass(cls):
        if STATE["builds"]["balance-manager"]["rc"] != 0:
            raise unittest.SkipTest("the balance-manager image did not build")
        cls.ref = load(STATE["builds"]["balance-manager"]["archive"])
        cls.sink = audit_sink(cls)

    def start(self, tmp, ready=True):
        port = free_port()
        cid = run_container(self.ref, {
            "PORT": str(port), "ZC_LISTEN_ADDRESS": "127.0.0.1",
            "ZC_DRAIN_TIMEOUT_MS": str(DRAIN_MS),
            "AUDIT_LOGGER_URL": self.sink}, tmp=tmp)
        wait_ready(port, cid, path="/health/readiness" if ready
                   else "/health/liveness")
        return port, cid

    def test_state_under_tmp_survives_a_restart_on_the_same_tmp(self):
        tmp = os.path.join(STATE["tmp"], "balance-manager-tmp")
        os.mkdir(tmp)
        os.chmod(tmp, 0o1777)
        port, cid = self.start(tmp)
        text = logs(cid)
        self.assertIn("store: state in sqlite:/tmp/balance-manager.db", text)
        self.assertIn("store sqlite:/tmp/balance-manager.db is in a "
                      "temporary directory", text)
        status, body = update(port, "ACC-001", 100.50, "sq-1")
        self.assertEqual(status, 200, body)
        self.assertIn('"new_balance":100.5,', body)
        # the same update again is answered, not applied again
        self.assertEqual(update(port, "ACC-001", 100.50, "sq-1"),
                         (status, body))
        status, body = update(port, "ACC-001", 0.25, "sq-2")
        self.assertEqual(status, 200, body)
        self.assertEqual(request(port, "GET", "/accounts/ACC-001"),
                         (200, '{"account":"ACC-001","balance":100.75}\n'))
        # where the log said: /tmp in the container is this directory
        db = os.path.join(tmp, "balance-manager.db")
        self.assertTrue(os.path.isfile(db), os.listdir(tmp))
        self.assertEqual(os.stat(db).st_uid, 1000)
        stop_container(self, cid)
        # read on the host, from a copy (the container's files stay its own)
        copy = os.path.join(STATE["tmp"], "balance-manager-copy")
        shutil.copytree(tmp, copy)
        con = sqlite3.connect(os.path.join(copy, "balance-manager.db"))
        try:
            self.assertEqual(con.execute(
                "SELECT cents FROM accounts WHERE account = 'ACC-001'"
            ).fetchall(), [(10075,)])
        finally:
            con.close()
        # a new container on the same /tmp: the balance is still there
        port, cid = self.start(tmp)
        self.assertEqual(request(port, "GET", "/accounts/ACC-001"),
                         (200, '{"account":"ACC-001","balance":100.75}\n'))
        status, body = update(port, "ACC-001", 1, "sq-3")
        self.assertEqual(status, 200, body)
        self.assertIn('"new_balance":101.75,', body)
        stop_container(self, cid)

    def test_no_writable_tmp_is_a_503_not_a_crash(self):
        # a read-only root and nothing writable: the port opens, liveness
        # holds (no restart loop), readiness and the routes say 503
        port, cid = self.start(None, ready=False)
        self.assertEqual(request(port, "GET", "/health/readiness"),
                         (503, '{"status":"store unavailable"}\n'))
        status, body = update(port, "ACC-001", 1, "ro-1")
        self.assertEqual(status, 503, body)
        self.assertIn('"error"', body)
        text = wait_for("the store's error in the log",
                        lambda: "store not reachable" in logs(cid) and
                        logs(cid))
        # it says which file and why
        m = re.search(r"(?i)^.*/tmp/balance-manager\.db.*"
                      r"(read-only|unable to open|cannot open).*$", text, re.M)
        self.assertTrue(m, text)
        print("\n    no writable /tmp: %s" % m.group(0).split(
            "balance-manager: ", 1)[-1][:150], end=" ")
        time.sleep(1)
        self.assertEqual(podman("inspect", "-f", "{{.State.Running}}", cid),
                         "true")
        self.assertEqual(request(port, "GET", "/health/liveness")[0], 200)
        stop_container(self, cid)


class PostgresTest(unittest.TestCase):
    """The chain with its state in a private PostgreSQL 15 on 127.0.0.1
    (tests/pg/pg.sh), a database per function: balances through the chain,
    GET /accounts/{account}, balance-manager restarted with its balance
    intact, every audit record in audit-logger's audit_log table."""

    @classmethod
    def setUpClass(cls):
        for name in EXAMPLES:
            if STATE["builds"][name]["rc"] != 0:
                raise unittest.SkipTest("the %s image did not build" % name)
        cls.pg = Postgres()
        cls.addClassCleanup(cls.pg.stop)
        cls.pg.start()
        cls.db = {}
        for name, db in (("balance-manager", "balances"),
                         ("audit-logger", "audit")):
            cls.pg.psql(cls.pg.url, "CREATE DATABASE %s" % db)
            cls.db[name] = cls.pg.url_for(db)
        cls.ports = {n: free_port() for n in EXAMPLES}
        cls.refs = {n: load(STATE["builds"][n]["archive"]) for n in EXAMPLES}
        url = "http://127.0.0.1:%d"
        cls.env = {
            "audit-logger": {"ZC_STORE_URL": cls.db["audit-logger"]},
            "balance-manager": {"ZC_STORE_URL": cls.db["balance-manager"],
                                "AUDIT_LOGGER_URL":
                                url % cls.ports["audit-logger"]},
            "transaction-processor": {"BALANCE_MANAGER_URL":
                                      url % cls.ports["balance-manager"]},
        }
        for name in EXAMPLES:
            cls.env[name].update(ZC_LISTEN_ADDRESS="127.0.0.1",
                                 ZC_DRAIN_TIMEOUT_MS=str(DRAIN_MS),
                                 PORT=str(cls.ports[name]))
        cls.cids = {n: run_container(cls.refs[n], cls.env[n])
                    for n in EXAMPLES}
        for name in EXAMPLES:
            wait_ready(cls.ports[name], cls.cids[name])

    def test_balances_survive_a_restart_and_audits_arrive(self):
        pg, bm = self.pg, self.ports["balance-manager"]
        for name in ("balance-manager", "audit-logger"):
            text = logs(self.cids[name])
            self.assertIn("store: state in postgresql://postgres@127.0.0.1:",
                          text)
            self.assertNotIn("temporary directory", text)
            self.assertTrue(maps_lib(self.cids[name], "libpq.so.5"),
                            mapped(self.cids[name]))
        tp = self.ports["transaction-processor"]
        status, body = request(tp, "POST", "/transaction",
                               '{"account":"ACC-001","amount":100.50}')
        self.assertEqual(status, 200, body)
        self.assertIn('"balance":100.5,', body)
        self.assertEqual(request(bm, "GET", "/accounts/ACC-001"),
                         (200, '{"account":"ACC-001","balance":100.5}\n'))
        self.assertEqual(request(bm, "GET", "/accounts/ACC-002")[0], 404)
        status, body = request(tp, "POST", "/transaction",
                               '{"account":"ACC-001","amount":0.25}')
        self.assertEqual(status, 200, body)
        self.assertIn('"balance":100.75,', body)
        self.assertEqual(pg.psql(self.db["balance-manager"],
                                 "SELECT cents FROM accounts WHERE "
                                 "account = 'ACC-001'"), [["10075"]])

        # a new balance-manager container: the balance is in PostgreSQL
        stop_container(self, self.cids["balance-manager"])
        cid = run_container(self.refs["balance-manager"],
                            self.env["balance-manager"])
        self.cids["balance-manager"] = cid
        wait_ready(bm, cid)
        self.assertEqual(request(bm, "GET", "/accounts/ACC-001"),
                         (200, '{"account":"ACC-001","balance":100.75}\n'))
        status, body = request(tp, "POST", "/transaction",
                               '{"account":"ACC-001","amount":1}')
        self.assertEqual(status, 200, body)
        self.assertIn('"balance":101.75,', body)

        # every update's audit record, in audit-logger's database
        def three():
            rows = pg.psql(self.db["audit-logger"],
                           "SELECT key, action, details FROM audit_log "
                           "ORDER BY details")
            return rows if len(rows) >= 3 else None
        rows = wait_for("three audit rows", three)
        self.assertEqual(len(rows), 3, rows)
        self.assertEqual(len({r[0] for r in rows}), 3, rows)  # one per key
        self.assertEqual({r[1] for r in rows}, {"balance_update"})
        balances = sorted(json.loads(r[2])["new_balance"] for r in rows)
        self.assertEqual(balances, [100.5, 100.75, 101.75])
        for r in rows:
            self.assertEqual(json.loads(r[2])["account"], "ACC-001")

    def test_zz_postgres_stops_by_pid(self):
        pid = self.pg.pid
        self.assertTrue(postgres_alive(pid))
        for name in reversed(EXAMPLES):
            cid = self.cids[name]
            if podman("inspect", "-f", "{{.State.Running}}", cid) == "true":
                stop_container(self, cid)
        self.pg.stop()
        self.assertFalse(postgres_alive(pid))


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
    else: the runtime's libraries, the store's included (dlopened, so ldd
    does not list them), travel in the libs layer, and balance-manager
    keeps its balances in the default SQLite file under /tmp."""

    def test_bundled_libraries_on_a_glibc_only_run_image(self):
        layout = os.path.join(STATE["tmp"], "run-libc")
        env = dict(os.environ, ZC_RUN_ROOTS="libc6")
        p = subprocess.run([os.path.join(ROOT, "buildpack", "images",
                                         "build-run-image.sh"), layout],
                           env=env, capture_output=True, text=True,
                           timeout=600)
        self.assertEqual(p.returncode, 0, p.stderr)
        b = build_image(os.path.join(ROOT, "examples", "balance-manager"),
                        "balance-manager", env={
                            "ZC_RUN_IMAGE": layout + ":run",
                            "BP_ZC_BUNDLE_LIBS": "true"},
                        output=os.path.join(STATE["tmp"],
                                            "balance-manager-bundled.oci.tar"))
        self.assertEqual(b["rc"], 0, b["log"][-3000:])
        self.assertIn('Adding layer "zenith/c-function:libs"', b["log"])
        files, cfg = layer_files(b["archive"])
        libs = "/layers/%s/libs/lib" % ESC
        for so in ("libjansson.so.4", "libcurl.so.4", "libsqlite3.so.0",
                   "libpq.so.5", "libssl.so.3", "libgssapi_krb5.so.2"):
            self.assertIn("%s/%s" % (libs, so), files)
        env = dict(e.split("=", 1) for e in cfg["config"]["Env"])
        self.assertEqual(env["LD_LIBRARY_PATH"], libs)
        for lib in ("libcurl", "libsqlite3", "libpq", "libjansson"):
            self.assertFalse(any(lib in f for f in files
                                 if f.startswith("/usr/")), lib)
        port = free_port()
        cid = run_container(load(b["archive"]), {
            "PORT": str(port), "ZC_LISTEN_ADDRESS": "127.0.0.1",
            "ZC_DRAIN_TIMEOUT_MS": str(DRAIN_MS),
            "AUDIT_LOGGER_URL": audit_sink(type(self))})
        wait_ready(port, cid)
        status, body = update(port, "ACC-001", 100.50, "bundled-1")
        self.assertEqual(status, 200, body)
        self.assertEqual(request(port, "GET", "/accounts/ACC-001"),
                         (200, '{"account":"ACC-001","balance":100.5}\n'))
        self.assertEqual(maps_lib(cid, "libsqlite3.so"),
                         libs + "/libsqlite3.so.0")
        stop_container(self, cid)
