"""
test_operator_crs.py - the Zenith operator's side, as far as it can be
checked without Kubernetes, Tekton or the operator: every Function
resource in this repository parsed with a YAML parser and held to the CRD
(every field known, of its type, every required field present, enums and
patterns), the three examples' resources wired to the store and tracing,
and the buildpacks-phases Tasks in deploy/operator/ held to what the
operator's PipelineRun passes and reads back.

Sources: LucasGois1/zenith-operator @45f2355
(45f2355a59ccc7a744e218230ff8fae00f447172):
api/v1alpha1/function_types.go (the spec below, with its kubebuilder
markers; config/crd/bases/functions.zenith.com_functions.yaml is generated
from it), internal/controller/function_controller.go (buildPipelineRun,
buildPipelineParams, the APP_IMAGE_DIGEST result),
internal/controller/tekton_tasks.go (ensureBuildpacksPhasesTask and the
managed-by label).
"""
import glob
import os
import re
import unittest

import yaml

from funcpack import ROOT

DEPLOY = os.path.join(ROOT, "deploy", "operator")
EXAMPLES = ["audit-logger", "balance-manager", "transaction-processor"]

# --- the CRD, as data ---------------------------------------------------
# A schema node: {"type": ..., "properties": {...}, "required": [...],
# "enum": [...], "pattern": ..., "minimum": ..., "items": node,
# "additionalProperties": node}.  From function_types.go @45f2355:
# FunctionSpec, BuildSpec, DeploySpec, ScaleSpec, DaprConfig, EventingSpec,
# ObservabilitySpec, TracingConfig, AutoInstrumentationConfig; env and
# envFrom are k8s.io/api/core/v1 EnvVar and EnvFromSource.
S = {"type": "string"}
B = {"type": "boolean"}


def obj(props, required=()):
    return {"type": "object", "properties": props, "required": list(required)}


KEY_REF = obj({"name": S, "key": S, "optional": B}, ["key"])
ENV_VAR = obj({
    "name": S,
    "value": S,
    "valueFrom": obj({
        "configMapKeyRef": KEY_REF,
        "secretKeyRef": KEY_REF,
        "fieldRef": obj({"apiVersion": S, "fieldPath": S}, ["fieldPath"]),
        "resourceFieldRef": obj({"containerName": S, "divisor": S,
                                 "resource": S}, ["resource"]),
    }),
}, ["name"])
ENV_FROM = obj({
    "prefix": S,
    "configMapRef": obj({"name": S, "optional": B}),
    "secretRef": obj({"name": S, "optional": B}),
})
INT32_MIN0 = {"type": "integer", "minimum": 0, "max": 2**31 - 1}

FUNCTION_SPEC = obj({
    "gitRepo": S,                                   # +Required
    "gitRevision": S,                               # default "main"
    "gitAuthSecretName": S,
    "build": obj({"registrySecretName": S,
                  "image": S}, ["image"]),          # +Required
    "deploy": obj({                                 # +Required
        "dapr": obj({"enabled": B, "appID": S,
                     "appPort": {"type": "integer"}},
                    ["enabled", "appID", "appPort"]),
        "env": {"type": "array", "items": ENV_VAR},
        "envFrom": {"type": "array", "items": ENV_FROM},
        "scale": obj({"minScale": INT32_MIN0, "maxScale": INT32_MIN0}),
        "visibility": {"type": "string",
                       "enum": ["cluster-local", "external"]},
    }),
    "eventing": obj({"broker": S,
                     "filters": {"type": "object",
                                 "additionalProperties": S}}),
    "observability": obj({"tracing": obj({
        "enabled": B,
        "samplingRate": {"type": "string",
                         "pattern": r"^(0(\.\d+)?|1(\.0+)?)$"},
        "autoInstrumentation": obj({"language": {
            "type": "string",
            "enum": ["go", "java", "nodejs", "python", "dotnet"]}},
            ["language"]),
    })}),
}, ["gitRepo", "build", "deploy"])

TYPES = {"string": str, "boolean": bool, "integer": int, "object": dict,
         "array": list}


def validate(node, value, path="spec"):
    """Every problem of value against the schema node, as strings."""
    errs = []
    t = TYPES[node["type"]]
    if not isinstance(value, t) or (t is int and isinstance(value, bool)):
        return ["%s: %r is not %s" % (path, value, node["type"])]
    if "enum" in node and value not in node["enum"]:
        errs.append("%s: %r not in %s" % (path, value, node["enum"]))
    if "pattern" in node and not re.search(node["pattern"], value):
        errs.append("%s: %r does not match %s" % (path, value,
                                                  node["pattern"]))
    if "minimum" in node and value < node["minimum"]:
        errs.append("%s: %r below %d" % (path, value, node["minimum"]))
    if "max" in node and value > node["max"]:
        errs.append("%s: %r over int32" % (path, value))
    if t is dict:
        props = node.get("properties")
        for k in node.get("required", []):
            if k not in value:
                errs.append("%s: required field %s missing" % (path, k))
        for k, v in value.items():
            if props is not None:
                if k not in props:
                    errs.append("%s: unknown field %s" % (path, k))
                    continue
                errs += validate(props[k], v, path + "." + k)
            elif "additionalProperties" in node:
                errs += validate(node["additionalProperties"], v,
                                 path + "." + k)
    if t is list:
        for i, v in enumerate(value):
            errs += validate(node["items"], v, "%s[%d]" % (path, i))
    return errs


DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def function_resources():
    """Every Function resource in the repository: path -> document."""
    out = {}
    paths = (glob.glob(os.path.join(DEPLOY, "*.yaml")) +
             glob.glob(os.path.join(ROOT, "examples", "*", "*.yaml")))
    for p in sorted(paths):
        with open(p) as f:
            for doc in yaml.safe_load_all(f):
                if isinstance(doc, dict) and doc.get("kind") == "Function":
                    out[p] = doc
    return out


def env_of(doc):
    return {e["name"]: e for e in doc["spec"]["deploy"].get("env", [])}


class FunctionResourceTest(unittest.TestCase):

    def test_every_resource_matches_the_crd(self):
        docs = function_resources()
        self.assertGreaterEqual(len(docs), 9)  # deploy/ + examples/
        for p, doc in docs.items():
            rel = os.path.relpath(p, ROOT)
            self.assertEqual(doc.get("apiVersion"),
                             "functions.zenith.com/v1alpha1", rel)
            self.assertEqual(set(doc) - {"apiVersion", "kind", "metadata",
                                         "spec"}, set(), rel)
            self.assertRegex(doc["metadata"]["name"], DNS1123, rel)
            self.assertEqual(validate(FUNCTION_SPEC, doc["spec"]), [], rel)

    def test_validator_catches_mistakes(self):
        good = {"gitRepo": "g", "build": {"image": "i"}, "deploy": {}}
        self.assertEqual(validate(FUNCTION_SPEC, good), [])
        bad = [
            ({"build": {"image": "i"}, "deploy": {}}, "gitRepo"),
            ({"gitRepo": "g", "build": {}, "deploy": {}}, "image"),
            (dict(good, deploy={"dapr": {"enabled": True}}), "appID"),
            (dict(good, deploy={"scale": {"minScale": -1}}), "below"),
            (dict(good, deploy={"scale": {"maxScale": "3"}}), "integer"),
            (dict(good, deploy={"visibility": "public"}), "not in"),
            (dict(good, deploy={"env": [{"value": "x"}]}), "name"),
            (dict(good, deploy={"env": [{"name": "A", "valueFrom": {
                "secretKeyRef": {"name": "s"}}}]}), "key"),
            (dict(good, observability={"tracing": {"samplingRate": 0.5}}),
             "string"),
            (dict(good, observability={"tracing": {"samplingRate": "1.5"}}),
             "match"),
            (dict(good, observability={"tracing": {
                "autoInstrumentation": {"language": "c"}}}), "not in"),
            (dict(good, replicas=2), "unknown"),
        ]
        for spec, word in bad:
            errs = validate(FUNCTION_SPEC, spec)
            self.assertTrue(any(word in e for e in errs), (spec, errs))

    def test_examples_wired_to_store_and_tracing(self):
        for fn in EXAMPLES:
            doc = yaml.safe_load(open(os.path.join(DEPLOY, fn + ".yaml")))
            self.assertEqual(doc["metadata"]["name"], fn)
            spec = doc["spec"]
            tracing = spec["observability"]["tracing"]
            self.assertIs(tracing["enabled"], True, fn)
            self.assertIn("samplingRate", tracing, fn)
            # no C auto-instrumentation agent exists
            self.assertNotIn("autoInstrumentation", tracing, fn)
            env = env_of(doc)
            self.assertEqual(env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]
                             ["fieldPath"], "metadata.namespace")
            if fn == "transaction-processor":
                self.assertNotIn("ZC_STORE_URL", env)
                self.assertEqual(env["BALANCE_MANAGER_URL"]["value"],
                                 "http://balance-manager.default.svc."
                                 "cluster.local")
                continue
            # replicas share state: the store is PostgreSQL, from a Secret
            ref = env["ZC_STORE_URL"]["valueFrom"]["secretKeyRef"]
            secret = yaml.safe_load(open(os.path.join(DEPLOY,
                                                      "store-secret.yaml")))
            self.assertEqual(secret["kind"], "Secret")
            self.assertEqual(ref["name"], secret["metadata"]["name"])
            self.assertRegex(secret["stringData"][ref["key"]],
                             r"^postgres(ql)?://")
            if fn == "balance-manager":
                self.assertEqual(env["AUDIT_LOGGER_URL"]["value"],
                                 "http://audit-logger.default.svc."
                                 "cluster.local")


# --- the Tekton Task ------------------------------------------------------
# function_controller.go, buildPipelineParams: the params the PipelineRun
# passes to "buildpacks-phases" (CNB_INSECURE_REGISTRIES only for a
# local-looking registry); buildPipelineRun: the workspace "source" and the
# result APP_IMAGE_DIGEST; tekton_tasks.go: the label that would make the
# operator treat the Task as its own.
PASSED_ALWAYS = ["APP_IMAGE", "CNB_BUILDER_IMAGE", "CNB_PROCESS_TYPE"]
PASSED_SOMETIMES = ["CNB_INSECURE_REGISTRIES"]
TASK_NAME = "buildpacks-phases"
MANAGED_BY = ("app.kubernetes.io/managed-by", "zenith-operator")


class TaskTest(unittest.TestCase):

    def tasks(self):
        out = {}
        for p in sorted(glob.glob(os.path.join(DEPLOY, "*.yaml"))):
            doc = yaml.safe_load(open(p))
            if doc.get("kind") == "Task":
                out[os.path.basename(p)] = doc
        self.assertEqual(sorted(out), ["buildpacks-phases-task-prebuilt.yaml",
                                       "buildpacks-phases-task.yaml"])
        return out

    def test_task_fits_the_operators_pipeline(self):
        for name, t in self.tasks().items():
            self.assertEqual(t["apiVersion"], "tekton.dev/v1", name)
            self.assertEqual(t["metadata"]["name"], TASK_NAME, name)
            labels = t["metadata"].get("labels", {})
            self.assertNotEqual(labels.get(MANAGED_BY[0]), MANAGED_BY[1])
            spec = t["spec"]
            params = {p["name"]: p for p in spec["params"]}
            for p in PASSED_ALWAYS + PASSED_SOMETIMES:
                self.assertIn(p, params, name)
            # a param the run may not pass needs a default
            for p, d in params.items():
                if p not in PASSED_ALWAYS:
                    self.assertIn("default", d, "%s: %s" % (name, p))
                self.assertEqual(d.get("type", "string"), "string")
            self.assertEqual([w["name"] for w in spec["workspaces"]
                              if not w.get("optional")], ["source"], name)
            self.assertIn("APP_IMAGE_DIGEST",
                          [r["name"] for r in spec["results"]], name)
            text = yaml.safe_dump(spec)
            # every $(params.X), $(results.X.path), $(workspaces.X.path)
            # names something declared
            for p in re.findall(r"\$\(params\.([A-Za-z0-9_]+)\)", text):
                self.assertIn(p, params, name)
            for r in re.findall(r"\$\(results\.([A-Za-z0-9_]+)\.path\)",
                                text):
                self.assertIn(r, [x["name"] for x in spec["results"]])
            for w in re.findall(r"\$\(workspaces\.([a-z0-9-]+)\.path\)",
                                text):
                self.assertIn(w, [x["name"] for x in spec["workspaces"]])
            self.assertIn("$(results.APP_IMAGE_DIGEST.path)", text, name)
            # the hard-coded Paketo builder is never run
            for step in spec["steps"]:
                self.assertNotIn("CNB_BUILDER_IMAGE", step["image"], name)
                self.assertTrue(step.get("script") or step.get("command"))

    def test_builder_task_runs_our_builder(self):
        t = self.tasks()["buildpacks-phases-task.yaml"]
        params = {p["name"]: p for p in t["spec"]["params"]}
        with open(os.path.join(ROOT, "templates", "c", "http",
                               "manifest.yaml")) as f:
            builder = yaml.safe_load(f)["builderImages"]["pack"]
        self.assertEqual(params["BUILDER_IMAGE"]["default"], builder)
        phases = [s.get("command", [""])[0] for s in t["spec"]["steps"]]
        for phase in ("analyzer", "detector", "restorer", "builder",
                      "exporter"):
            self.assertIn("/cnb/lifecycle/" + phase, phases)
        for s in t["spec"]["steps"]:
            self.assertEqual(s["image"], "$(params.BUILDER_IMAGE)")
        # the result is the bare digest (the operator appends it with @)
        results = [s for s in t["spec"]["steps"] if s["name"] == "results"]
        self.assertIn("sha256:", results[0]["script"])

    def test_docs_show_the_task_as_it_is(self):
        with open(os.path.join(ROOT, "docs", "buildpack.md")) as f:
            doc = f.read()
        blocks = [b for b in re.findall(r"```yaml\n(.*?)```", doc, re.S)
                  if "kind: Task" in b]
        self.assertEqual(len(blocks), 1)
        with open(os.path.join(DEPLOY, "buildpacks-phases-task.yaml")) as f:
            self.assertEqual(yaml.safe_load(blocks[0]), yaml.safe_load(f))
