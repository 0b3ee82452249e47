"""
test_pack.py - this repository as a Knative func language pack, held to
func's rules as its source states them (knative/func @c18d604; each rule
is restated, with its file, in funcpack.py): the root manifest.yaml and
its templates folder, the runtime and template folders, every manifest's
keys and their types, the invoke formats, the health endpoints (the
runtime's own defaults), the builder image, and the buildpack settings a
manifest may pass.  func itself cannot run here (no Go toolchain, no
Docker engine): this is how it is checked instead.
"""
import os
import re
import tomllib
import unittest

import funcpack
from funcpack import FUNC, ROOT, Pack

BP = os.path.join(ROOT, "buildpack")


def bp_settings():
    """Every BP_* setting the buildpack reads (setting NAME DEFAULT)."""
    names = set()
    for p in ("bin/build", "bin/detect", "lib/settings.sh"):
        with open(os.path.join(BP, p)) as f:
            names |= set(re.findall(r"\bsetting (BP_[A-Z0-9_]+)", f.read()))
    return names


class RepositoryTest(unittest.TestCase):

    def setUp(self):
        self.pack = Pack()

    def test_root_manifest_names_the_templates_folder(self):
        # repository.go, loadRepoConfig: manifest.yaml at the root; its
        # "templates" is the folder holding the runtimes.
        m = self.pack.manifest
        self.assertEqual(m.get("templates"), "templates")
        self.assertTrue(os.path.isdir(os.path.join(ROOT, "templates")))
        self.assertIsInstance(m.get("name"), str)
        self.assertIsInstance(m.get("version"), str)
        # repositories.go, Add: the manifest's name is the repository's
        # name (it overrides the name given to `func repository add`), so
        # templates are "zenith/http", as the README says.
        self.assertEqual(m["name"], "zenith")

    def test_no_manifest_where_func_would_misread_it(self):
        # A manifest.yaml inside templates/ but above the runtimes is not
        # read by func (only root, runtime and template levels are).
        self.assertFalse(os.path.exists(
            os.path.join(ROOT, "templates", funcpack.MANIFEST)))

    def test_runtimes_and_templates(self):
        # repository.go, runtimes(): folders under templates/, minus hidden
        # and "certs"; templates(): their folders, minus "scaffolding".
        self.assertEqual(list(self.pack.runtimes), ["c"])
        self.assertEqual(sorted(self.pack.runtimes["c"]),
                         ["cloudevents", "http"])

    def test_every_manifest_key_is_one_func_reads(self):
        # repository.go, repoConfig / templateConfig (yaml.v2 ignores any
        # other key silently: a "runtimes:" list would be read by no one).
        for level, path in self.pack.manifests():
            m = funcpack.load_yaml(path)
            self.assertIsInstance(m, dict, "%s is empty or not a map" % path)
            keys = funcpack.REPO_KEYS if level == "repository" \
                else funcpack.TEMPLATE_KEYS
            for k, v in m.items():
                self.assertIn(k, keys, "%s: %s is not read by func (%s, "
                              "pkg/functions/repository.go)" % (path, k, FUNC))
                self.assertIsInstance(v, keys[k], "%s: %s" % (path, k))

    def test_value_shapes(self):
        for level, path in self.pack.manifests():
            m = funcpack.load_yaml(path)
            for b, image in (m.get("builderImages") or {}).items():
                self.assertIn(b, funcpack.BUILDERS, path)
                self.assertIsInstance(image, str, path)
            for bp in m.get("buildpacks") or []:
                self.assertIsInstance(bp, str, path)
            for k, v in (m.get("healthEndpoints") or {}).items():
                self.assertIn(k, ("liveness", "readiness"), path)
                self.assertRegex(v, r"^/", path)
            for key in ("buildEnvs", "runEnvs"):
                for e in m.get(key) or []:
                    # function_envs.go, ValidateBuildEnvs / ValidateEnvs
                    self.assertEqual(set(e) - {"name", "value"}, set(), path)
                    self.assertRegex(e.get("name", ""), funcpack.ENV_NAME)
                    self.assertIsInstance(e.get("value"), str, path)
                    if e["value"].startswith("{{"):
                        self.assertRegex(e["value"], funcpack.ENV_REF)
            if "invoke" in m:
                self.assertIn(m["invoke"], funcpack.INVOKE_FORMATS, path)


class TemplateTest(unittest.TestCase):

    def setUp(self):
        self.pack = Pack()
        self.c = self.pack.runtimes["c"]

    def test_invoke_formats(self):
        # invoke.go: "http" POSTs JSON to /, "cloudevent" sends an event.
        self.assertEqual(self.c["http"].get("invoke", "http"), "http")
        self.assertEqual(self.c["cloudevents"].get("invoke"), "cloudevent")

    def test_health_endpoints_are_the_runtimes(self):
        # func deploy puts httpGet probes on these (pkg/k8s/deployer.go);
        # they must be the paths the runtime answers by itself:
        # docs/operations.md's defaults, and the runtime's config.
        with open(os.path.join(ROOT, "docs", "operations.md")) as f:
            ops = f.read()
        want = {}
        for k, var in (("readiness", "ZC_READINESS_PATH"),
                       ("liveness", "ZC_LIVENESS_PATH")):
            m = re.search(r"\| `%s` \| `([^`]+)` \|" % var, ops)
            self.assertIsNotNone(m, var)
            want[k] = m.group(1)
        self.assertEqual(want, funcpack.DEFAULT_HEALTH)
        cfg = open(os.path.join(ROOT, "runtime", "src", "core",
                                "config.c")).read()
        for path in want.values():
            self.assertIn('"%s"' % path, cfg)
        for t, c in self.c.items():
            self.assertEqual(c.get("healthEndpoints"), want, t)

    def test_builder_image_is_set_and_published(self):
        # builders.go, Image: build.builderImages[builder], else a default
        # for the runtime; pack's defaults (buildpacks/builder.go,
        # DefaultBuilderImages) have none for "c", so without it `func
        # build` fails with ErrNoDefaultImage.
        b = tomllib.load(open(os.path.join(BP, "images", "builder.toml"),
                              "rb"))
        namespace = b["run"]["images"][0]["image"].rsplit("/", 1)[0]
        self.assertEqual(namespace, b["build"]["image"].rsplit("/", 1)[0])
        self.assertNotIn("example.com", namespace)
        with open(os.path.join(ROOT, "docs", "buildpack.md")) as f:
            doc = f.read()
        for t, c in self.c.items():
            image = c.get("builderImages", {}).get("pack")
            self.assertTrue(image, "%s: no builderImages.pack" % t)
            self.assertEqual(image, namespace + "/builder:bookworm", t)
            self.assertTrue(image in doc, "docs/buildpack.md names " + image)

    def test_buildpacks_only_adds_to_the_builder(self):
        # language-pack-contract.md: "buildpacks" is an ordered list of
        # additional buildpacks; the builder already holds ours.
        b = tomllib.load(open(os.path.join(BP, "images", "builder.toml"),
                              "rb"))
        own = {bp["id"] for bp in b["buildpacks"]}
        self.assertEqual(own, {"zenith/c-function"})
        for t, c in self.c.items():
            for bp in c.get("buildpacks") or []:
                self.assertNotIn("c-function", bp, t)

    def test_build_envs_are_buildpack_settings(self):
        # A build env reaches the buildpack (builder.go: opts.Env from
        # Interpolate(f.Build.BuildEnvs)); a BP_ name the buildpack does
        # not read would do nothing.  A template's buildEnvs are copied to
        # every function as they are (template.go, Write), so none may fix
        # the binary's name: the buildpack takes it from func.yaml.
        known = bp_settings()
        self.assertIn("BP_ZC_FUNCTION_NAME", known)
        for t, c in self.c.items():
            for e in c.get("buildEnvs") or []:
                if e["name"].startswith("BP_"):
                    self.assertIn(e["name"], known, t)
                self.assertNotEqual(e["name"], "BP_ZC_FUNCTION_NAME", t)
        with open(os.path.join(BP, "lib", "settings.sh")) as f:
            self.assertIn("func_yaml_name()", f.read())

    def test_template_files(self):
        # template.go, Write copies every file but manifest.yaml: nothing
        # built, no func.yaml (func writes its own), sources func's builder
        # will hand to our buildpack (a zc_function_setup definition).
        for t in self.c:
            d = self.pack.template_dir("c", t)
            names = sorted(os.listdir(d))
            self.assertNotIn("func.yaml", names)
            for n in names:
                with open(os.path.join(d, n), "rb") as f:
                    self.assertNotEqual(f.read(4), b"\x7fELF", n)
            src = open(os.path.join(d, "function.c")).read()
            self.assertRegex(src, r"(?m)^zc_function_setup\(zc_app \*app\)")
            self.assertIn("Makefile", names)
            self.assertIn("test_function.c", names)
            self.assertIn("README.md", names)

    def test_readme_says_how_to_add_the_pack(self):
        with open(os.path.join(ROOT, "README.md")) as f:
            readme = f.read()
        for want in ("func repository add zenith ",
                     "func create -l c -t zenith/http",
                     "func create -l c -t zenith/cloudevents"):
            self.assertTrue(want in readme, "README.md: " + want)
