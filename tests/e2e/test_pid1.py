"""The function as PID 1 of its own PID namespace, as in a container whose
entrypoint execs it (the CNB launcher does): the kernel drops signals with
the default disposition for PID 1, so SIGTERM must still drain and exit 0."""
import os
import shutil
import signal
import subprocess
import time
import unittest

from harness import E2ETestCase, T, binary, free_port, poll, request


def child_pid(pid):
    """The first child of pid (host PID namespace view), or None."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            kids = f.read().split()
        return int(kids[0]) if kids else None
    except OSError:
        return None


def ready(port):
    try:
        return request(port, "GET", "/health/readiness",
                       timeout=0.5).status == 200
    except OSError:
        return False


def ns_pid(pid):
    """pid's PID inside its innermost namespace (NSpid's last field)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    return None


@unittest.skipUnless(shutil.which("unshare") and os.geteuid() == 0,
                     "needs unshare(1) and root for a PID namespace")
class Pid1Test(E2ETestCase):

    def test_sigterm_as_pid1_drains_and_exits_zero(self):
        port = free_port()
        env = dict(os.environ, PORT=str(port), ZC_LISTEN_ADDRESS="127.0.0.1")
        err = open(os.path.join(self.logdir, "pid1.err"), "wb")
        outer = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--kill-child",
             binary("audit-logger")],
            env=env, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
            start_new_session=True)
        try:
            inner = poll(lambda: child_pid(outer.pid), T(3))
            self.assertIsNotNone(inner, "no child of unshare")
            self.assertEqual(ns_pid(inner), 1, "function is not PID 1")
            self.assertTrue(poll(lambda: ready(port), T(5)), "never ready")
            r = request(port, "POST", "/log",
                        {"action": "pid1", "details": {}})
            self.assertEqual(r.status, 200)
            t0 = time.monotonic()
            os.kill(inner, signal.SIGTERM)
            rc = outer.wait(T(5))
            self.assertEqual(rc, 0, "exit code of PID 1 after SIGTERM")
            self.assertLess(time.monotonic() - t0, T(2))
        finally:
            if outer.poll() is None:
                os.killpg(outer.pid, signal.SIGKILL)
                outer.wait()
            err.close()
        with open(os.path.join(self.logdir, "pid1.err")) as f:
            self.assertIn("stopped", f.read())
