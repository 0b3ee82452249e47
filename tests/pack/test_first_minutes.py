"""
test_first_minutes.py - the README's first five minutes, commands 1 to 3
(install the runtime, copy the starter, run its Check test) run as
written, with HOME a temporary directory.  Commands 4 and 5 (the image
and the container) need podman and root: test_image_steps.py, run by
.ci/run-image.  BUILD is the build directory run.py is given, so the
install copies an existing build rather than racing another build in
build/.
"""
import os
import unittest

import helpers
import readme_steps


class FirstMinutesTest(unittest.TestCase):

    def test_five_commands_in_the_readme(self):
        s = readme_steps.steps()
        self.assertTrue(s[0].startswith("make install PREFIX=$HOME/.local"))
        self.assertTrue(s[3].startswith("make image FN="))
        self.assertIn("podman.sh run", s[4])

    def test_install_copy_and_test(self):
        home = helpers.tmpdir("first-minutes")
        os.makedirs(home)
        for i, cmd in enumerate(readme_steps.steps()[:3], 1):
            r = readme_steps.run(cmd, home, BUILD=helpers.BUILD)
            self.assertEqual(r.returncode, 0, "step %d: %s\n%s%s" % (
                i, cmd, r.stdout, r.stderr[-3000:]))
        self.assertIn("100%: Checks:", r.stdout)
        self.assertTrue(os.path.exists(os.path.join(
            home, ".local", "lib", "pkgconfig", "zenith-c.pc")))
        self.assertTrue(os.path.exists(os.path.join(home, "myfn",
                                                    "function.c")))
