"""
test_image_steps.py - the README's first five minutes to the end:
commands 1 and 2 again (a fresh HOME), then 4 (make image) and 5 (the
container under podman), then the call `func invoke` would make and the
stop, each run as written (HOME a temporary directory, a free port for
8080).  Needs root and the container packages (make deps-image): `make
test-pack-image`, which .ci/run-image runs.  The container is removed by
its ID, also on a failure.
"""
import os
import shutil
import subprocess
import time
import unittest

import helpers
import readme_steps
from funcpack import ROOT

PODMAN = os.path.join(ROOT, "buildpack", "images", "podman.sh")


class ImageStepsTest(unittest.TestCase):

    def test_image_container_call_stop(self):
        home = helpers.tmpdir("image-steps")
        os.makedirs(home)
        port = helpers.free_port()
        steps = readme_steps.steps()
        call, stop = readme_steps.after()
        self.addCleanup(lambda: os.path.exists(
            os.path.join(ROOT, "build", "images", "myfn.oci.tar")) and
            os.remove(os.path.join(ROOT, "build", "images", "myfn.oci.tar")))
        for i in (0, 1, 3, 4):
            r = readme_steps.run(steps[i], home, port=port,
                                 BUILD=helpers.BUILD)
            self.assertEqual(r.returncode, 0, "step %d: %s\n%s%s" % (
                i + 1, steps[i], r.stdout[-3000:], r.stderr[-3000:]))
        cid = r.stdout.strip().splitlines()[-1]
        self.addCleanup(subprocess.run, [PODMAN, "rm", "-f", cid],
                        capture_output=True)
        body = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            r = readme_steps.run(call, home, port=port, timeout=30)
            if r.returncode == 0 and r.stdout:
                body = r.stdout
                break
            time.sleep(0.2)
        self.assertEqual(body, '{"message":"Hello World"}\n')
        r = readme_steps.run(stop, home, port=port, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        shutil.rmtree(home, ignore_errors=True)
