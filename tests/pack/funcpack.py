"""
funcpack.py - how Knative func reads a language pack and what `func
create` writes, restated from func's source so the tests can hold this
repository to it.  Every rule names its file at knative/func @c18d604
(c18d6045a1b0cb6c2b411f03082ab9ed20ba90b3).
"""
import datetime
import os
import re
import shutil

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FUNC = "knative/func @c18d604"

# pkg/functions/repository.go: const manifestFile = "manifest.yaml".
MANIFEST = "manifest.yaml"

# repository.go, templateConfig: the keys a manifest may set at any level
# (BuildConfig inline: buildpacks, builderImages; HealthEndpoints;
# buildEnvs; runEnvs; invoke) and their YAML shapes.
TEMPLATE_KEYS = {
    "buildpacks": list,        # BuildConfig.Buildpacks []string
    "builderImages": dict,     # BuildConfig.BuilderImages map[string]string
    "healthEndpoints": dict,   # HealthEndpoints{liveness, readiness}
    "buildEnvs": list,         # []Env{name, value}
    "runEnvs": list,           # []Env{name, value}
    "invoke": str,             # "http" (default) or "cloudevent"
}
# repository.go, repoConfig: the root manifest also has name, version and
# templates (the folder holding the runtimes; default the root).
REPO_KEYS = dict(TEMPLATE_KEYS, name=str, version=str, templates=str)
# function.go, BuildSpec.Builder: jsonschema enum=pack,enum=s2i; the
# builderImages map is keyed by builder name.
BUILDERS = ("pack", "s2i")
# function.go, Function.Invoke: jsonschema enum=http,enum=cloudevent.
INVOKE_FORMATS = ("http", "cloudevent")
# repository.go: DefaultLivenessEndpoint, DefaultReadinessEndpoint.
DEFAULT_HEALTH = {"liveness": "/health/liveness",
                  "readiness": "/health/readiness"}
# pkg/utils/names.go, ValidateEnvVarName (Kubernetes IsEnvVarName).
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
# function.go, Interpolate / function_envs.go, ValidateBuildEnvs: a value
# starting "{{" must be "{{ env:NAME }}".
ENV_REF = re.compile(r"^{{\s*env:(\w+)\s*}}$")
# function.go, Function.Name: jsonschema pattern.
FUNCTION_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# function_migrations.go: the last migration, written as specVersion.
SPEC_VERSION = "0.36.0"


def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


def runtime_names(templates_dir):
    """repository.go, runtimes(): every directory under the templates
    path, except hidden ones and the reserved word "certs"."""
    return sorted(n for n in os.listdir(templates_dir)
                  if os.path.isdir(os.path.join(templates_dir, n))
                  and not n.startswith(".") and n != "certs")


def template_names(runtime_dir):
    """repository.go, templates(): every directory of a runtime, except
    hidden ones and the reserved word "scaffolding"."""
    return sorted(n for n in os.listdir(runtime_dir)
                  if os.path.isdir(os.path.join(runtime_dir, n))
                  and not n.startswith(".") and n != "scaffolding")


def merge(base, manifest):
    """loadRuntimeConfig / loadTemplateConfig: the level's manifest is
    decoded (yaml.v2) over a copy of the parent's values, so a key it sets
    replaces the parent's (maps are merged key by key, as yaml.v2 decodes
    into an existing map); keys it does not set are inherited."""
    out = dict(base)
    for k, v in (manifest or {}).items():
        if k not in TEMPLATE_KEYS:
            continue
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = dict(out[k], **v)
        else:
            out[k] = v
    return out


class Pack:
    """The repository as func loads it (repository.go, NewRepository)."""

    def __init__(self, root=ROOT):
        self.root = root
        self.manifest = load_yaml(os.path.join(root, MANIFEST)) or {}
        # loadRepoConfig: TemplatesPath defaults to "." when a manifest
        # exists without it.
        self.templates_path = self.manifest.get("templates") or "."
        self.templates_dir = os.path.join(root, self.templates_path)
        repo_cfg = merge({}, self.manifest)
        self.runtimes = {}
        for rt in runtime_names(self.templates_dir):
            rdir = os.path.join(self.templates_dir, rt)
            rman = os.path.join(rdir, MANIFEST)
            rt_cfg = merge(repo_cfg, load_yaml(rman)
                           if os.path.exists(rman) else None)
            tpls = {}
            for t in template_names(rdir):
                tman = os.path.join(rdir, t, MANIFEST)
                tpls[t] = merge(rt_cfg, load_yaml(tman)
                                if os.path.exists(tman) else None)
            self.runtimes[rt] = tpls

    def template_dir(self, runtime, template):
        return os.path.join(self.templates_dir, runtime, template)

    def manifests(self):
        """Every manifest func reads: (level, path)."""
        out = [("repository", os.path.join(self.root, MANIFEST))]
        for rt, tpls in self.runtimes.items():
            p = os.path.join(self.templates_dir, rt, MANIFEST)
            if os.path.exists(p):
                out.append(("runtime", p))
            for t in tpls:
                p = os.path.join(self.template_dir(rt, t), MANIFEST)
                if os.path.exists(p):
                    out.append(("template", p))
        return out


def create(pack, runtime, template, dest):
    """What `func create -l <runtime> -t <repo>/<template> <dest>` writes
    (pkg/functions/template.go, Write): every file of the template folder
    but any named manifest.yaml (NewMaskingFS on the base name), and a
    func.yaml whose build.builderImages, build.buildpacks,
    build.buildEnvs, run.envs and deploy.healthEndpoints come from the
    template's denormalised manifest, invoke only when it is not "http".
    The name is the folder's (function.go, nameFromPath).  Returns the
    func.yaml written, as a dict."""
    src = pack.template_dir(runtime, template)
    shutil.copytree(src, dest, ignore=lambda d, names: [
        n for n in names if n == MANIFEST])
    cfg = pack.runtimes[runtime][template]
    name = os.path.basename(os.path.normpath(dest))
    f = {
        "specVersion": SPEC_VERSION,
        "name": name,
        "runtime": runtime,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    }
    if cfg.get("invoke") and cfg["invoke"] != "http":
        f["invoke"] = cfg["invoke"]
    build = {}
    if cfg.get("builderImages"):
        build["builderImages"] = cfg["builderImages"]
    if cfg.get("buildpacks"):
        build["buildpacks"] = cfg["buildpacks"]
    if cfg.get("buildEnvs"):
        build["buildEnvs"] = cfg["buildEnvs"]
    if build:
        f["build"] = build
    if cfg.get("runEnvs"):
        f["run"] = {"envs": cfg["runEnvs"]}
    health = cfg.get("healthEndpoints") or {}
    if health:
        f["deploy"] = {"healthEndpoints": health}
    with open(os.path.join(dest, "func.yaml"), "w") as out:
        yaml.safe_dump(f, out, sort_keys=False)
    return f
