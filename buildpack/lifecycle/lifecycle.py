#!/usr/bin/env python3
"""
lifecycle.py - a small stand-in for the Cloud Native Buildpacks lifecycle,
for machines with no Docker engine and no pack.  For one buildpack it does
what the lifecycle's creator does:

  restore  cache layers (cache = true) of the previous build come back,
           metadata without [types], as the spec's restore table says
  detect   bin/detect in the build image (exit 0 pass, 100 fail, else error)
  build    bin/build in the build image, with the Buildpack Plan
  cache    the cache = true layers are kept for the next build
  export   each launch = true layer at /layers/<escaped id>/<layer>, the app
           directory at /workspace and /layers/config/metadata.toml, over
           the run image; ENTRYPOINT the default process; an OCI archive

detect and build run as the build image's CNB user (CNB_USER_ID), with no
network, a read-only root filesystem, no capabilities, the Buildpack API
0.10 variables and the deprecated positional arguments.  Not emulated: the
launcher (the entrypoint is the process's command itself, exec'd directly,
so the function is PID 1), exec.d and profile.d, multi-buildpack order
groups, rebase, SBOMs, layer reuse from a previous image.

usage: lifecycle.py --buildpack DIR --app DIR --build-image REF
                    --run-image LAYOUT:TAG --output FILE.tar --tag NAME
                    [--cache DIR] [--env NAME=VALUE]...

Exit codes are the lifecycle's: 20 no buildpack passed detection, 21
detection errored, 51 the build failed, 62 the export failed, 1 anything
else (bad arguments, podman missing).
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ocilayout  # noqa: E402

RESERVED = {"launch", "build", "store"}


class Failure(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def phase(name):
    print("===> %s" % name, flush=True)


def run(cmd, **kw):
    """Run a helper tool (podman); its stderr on failure."""
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise Failure(1, "%s failed (exit %d): %s" % (
            " ".join(cmd[:3]), p.returncode, (p.stderr or p.stdout).strip()))
    return p.stdout


# ---- TOML output: just what layer metadata and plans need -----------------

def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a valid TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join("%s = %s" % (toml_key(k), toml_value(x))
                               for k, x in v.items()) + "}"
    if hasattr(v, "isoformat"):
        return v.isoformat()
    raise TypeError("cannot write %r as TOML" % (v,))


def toml_key(k):
    bare = k and all(c.isalnum() or c in "-_" for c in k)
    return k if bare else json.dumps(k)


def toml_table(name, table):
    """[name] with its scalar keys, then its sub-tables."""
    out = ["[%s]" % name]
    subs = []
    for k, v in table.items():
        if isinstance(v, dict):
            subs.append((k, v))
        else:
            out.append("%s = %s" % (toml_key(k), toml_value(v)))
    text = "\n".join(out) + "\n"
    for k, v in subs:
        text += "\n" + toml_table("%s.%s" % (name, toml_key(k)), v)
    return text


def load_toml(path):
    with open(path, "rb") as f:
        return tomllib.load(f)


# ---- the platform ------------------------------------------------------------

class Lifecycle:

    def __init__(self, args):
        self.args = args
        self.bp_dir = os.path.abspath(args.buildpack)
        desc = load_toml(os.path.join(self.bp_dir, "buildpack.toml"))
        self.bp_api = desc["api"]
        self.bp_id = desc["buildpack"]["id"]
        self.bp_version = desc["buildpack"]["version"]
        self.bp_targets = desc.get("targets", [])
        self.esc = self.bp_id.replace("/", "_")
        self.bp_mount = "/cnb/buildpacks/%s/%s" % (self.esc, self.bp_version)
        self.env = dict(e.split("=", 1) for e in args.env)
        self.containers = []
        self.work = None

    # podman -------------------------------------------------------------

    def build_user(self):
        out = run(["podman", "image", "inspect", "--format",
                   "{{json .Config.Env}}", self.args.build_image])
        env = dict(e.split("=", 1) for e in json.loads(out) or [])
        return env.get("CNB_USER_ID", "1001"), env.get("CNB_GROUP_ID", "1001")

    def container(self, what, argv):
        """Run a buildpack executable in the build image; its exit code."""
        w = self.work
        name = "zc-lifecycle-%d-%s" % (os.getpid(), what)
        cmd = ["podman", "run", "--rm", "--name", name, "--pull", "never",
               "--network", "none", "--user", "%s:%s" % self.user,
               "--read-only", "--cap-drop", "all",
               "--security-opt", "no-new-privileges",
               "-v", "%s:%s:ro" % (self.bp_dir, self.bp_mount),
               "-v", "%s/workspace:/workspace" % w,
               "-v", "%s/platform:/platform:ro" % w,
               "-v", "%s/plan:/plan" % w,
               "-v", "%s/layers:/layers" % w,
               "-w", "/workspace"]
        env = {"CNB_BUILDPACK_DIR": self.bp_mount,
               "CNB_PLATFORM_DIR": "/platform"}
        env.update(self.target_env)
        env.update(self.env)  # BP_* are set unless clear-env = true
        if what == "detect":
            env["CNB_BUILD_PLAN_PATH"] = "/plan/plan.toml"
        else:
            env["CNB_LAYERS_DIR"] = "/layers/" + self.esc
            env["CNB_BP_PLAN_PATH"] = "/plan/bp-plan.toml"
        for k, v in env.items():
            cmd += ["-e", "%s=%s" % (k, v)]
        cmd += [self.args.build_image] + argv
        # Kept in the list until it has exited by itself: an interrupted
        # run leaves it for kill_containers().
        self.containers.append(name)
        code = subprocess.run(cmd).returncode
        self.containers.remove(name)
        return code

    def kill_containers(self):
        for name in list(self.containers):
            subprocess.run(["podman", "rm", "-f", "-t", "0", name],
                           capture_output=True)

    # phases ---------------------------------------------------------------

    def prepare(self):
        self.user = self.build_user()
        run_img = ocilayout.Image(self.args.run_image)
        cfg = run_img.config
        labels = (cfg.get("config") or {}).get("Labels") or {}
        self.run_config = cfg
        self.run_layers = len(run_img.layers)
        self.target_env = {
            "CNB_TARGET_OS": cfg.get("os", "linux"),
            "CNB_TARGET_ARCH": cfg.get("architecture", "amd64"),
        }
        if cfg.get("variant"):
            self.target_env["CNB_TARGET_ARCH_VARIANT"] = cfg["variant"]
        for key, var in (("io.buildpacks.base.distro.name",
                          "CNB_TARGET_DISTRO_NAME"),
                         ("io.buildpacks.base.distro.version",
                          "CNB_TARGET_DISTRO_VERSION")):
            if labels.get(key):
                self.target_env[var] = labels[key]
        run_img.close()
        self.check_targets()

        self.work = tempfile.mkdtemp(prefix="zc-lifecycle-")
        w = self.work
        shutil.copytree(self.args.app, w + "/workspace", symlinks=True)
        for d in ("platform/env", "plan", "layers/" + self.esc, "config"):
            os.makedirs(os.path.join(w, d))
        for k, v in self.env.items():
            with open(os.path.join(w, "platform/env", k), "w") as f:
                f.write(v)
        os.chmod(w, 0o755)
        os.chmod(w + "/platform", 0o755)
        os.chmod(w + "/platform/env", 0o755)

    def check_targets(self):
        """A buildpack whose [[targets]] do not match the run image fails
        detection, as with the real lifecycle."""
        if not self.bp_targets:
            return
        t = self.target_env
        for target in self.bp_targets:
            if target.get("os", t["CNB_TARGET_OS"]) != t["CNB_TARGET_OS"]:
                continue
            if target.get("arch", t["CNB_TARGET_ARCH"]) != t["CNB_TARGET_ARCH"]:
                continue
            distros = target.get("distros") or []
            if not distros or "CNB_TARGET_DISTRO_NAME" not in t or any(
                    d.get("name") == t["CNB_TARGET_DISTRO_NAME"] and
                    d.get("version", t.get("CNB_TARGET_DISTRO_VERSION")) ==
                    t.get("CNB_TARGET_DISTRO_VERSION") for d in distros):
                return
        raise Failure(20, "buildpack %s@%s has no target matching the run "
                      "image (%s)" % (self.bp_id, self.bp_version, ", ".join(
                          "%s=%s" % kv for kv in sorted(t.items()))))

    def chown_for_build(self):
        uid, gid = int(self.user[0]), int(self.user[1])
        for top in ("workspace", "plan", "layers"):
            root = os.path.join(self.work, top)
            os.chown(root, uid, gid)
            for dirpath, dirnames, filenames in os.walk(root):
                for n in dirnames + filenames:
                    os.lchown(os.path.join(dirpath, n), uid, gid)

    def layer_tomls(self):
        d = os.path.join(self.work, "layers", self.esc)
        for n in sorted(os.listdir(d)):
            if n.endswith(".toml") and n[:-5] not in RESERVED:
                yield n[:-5], os.path.join(d, n)

    def restore(self):
        phase("RESTORING")
        src = os.path.join(self.args.cache, self.esc) if self.args.cache \
            else None
        if not src or not os.path.isdir(src):
            print("No cached layers")
            return
        dst = os.path.join(self.work, "layers", self.esc)
        for n in sorted(os.listdir(src)):
            if not n.endswith(".toml"):
                continue
            layer = n[:-5]
            if not os.path.isdir(os.path.join(src, layer)):
                continue
            meta = load_toml(os.path.join(src, n))
            meta.pop("types", None)
            with open(os.path.join(dst, n), "w") as f:
                if meta.get("metadata"):
                    f.write(toml_table("metadata", meta["metadata"]))
            shutil.copytree(os.path.join(src, layer),
                            os.path.join(dst, layer), symlinks=True)
            print('Restoring data for "%s:%s" from cache' % (self.bp_id,
                                                              layer))

    def detect(self):
        phase("DETECTING")
        self.chown_for_build()
        code = self.container("detect", [self.bp_mount + "/bin/detect",
                                         "/platform", "/plan/plan.toml"])
        if code == 100:
            raise Failure(20, "No buildpack groups passed detection.\n"
                          "Please check that you are running against the "
                          "correct path.")
        if code != 0:
            raise Failure(21, "%s@%s: bin/detect errored (exit %d)" % (
                self.bp_id, self.bp_version, code))
        path = os.path.join(self.work, "plan/plan.toml")
        plan = load_toml(path) if os.path.exists(path) else {}
        trials = [plan] + list(plan.get("or", []))
        for trial in trials:
            provides = {p["name"] for p in trial.get("provides", [])}
            requires = trial.get("requires", [])
            if all(r["name"] in provides for r in requires) and \
                    provides <= {r["name"] for r in requires}:
                self.entries = requires
                break
        else:
            raise Failure(20, "%s@%s: no build plan where everything "
                          "required is provided and everything provided "
                          "is required" % (self.bp_id, self.bp_version))
        print("pass: %s@%s" % (self.bp_id, self.bp_version))

    def build(self):
        phase("BUILDING")
        with open(os.path.join(self.work, "plan/bp-plan.toml"), "w") as f:
            for e in self.entries:
                f.write("[[entries]]\nname = %s\n" % toml_value(e["name"]))
                if e.get("metadata"):
                    f.write("\n" + toml_table("entries.metadata",
                                              e["metadata"]))
                f.write("\n")
        self.chown_for_build()
        layers = "/layers/" + self.esc
        code = self.container("build", [self.bp_mount + "/bin/build", layers,
                                        "/platform", "/plan/bp-plan.toml"])
        if code != 0:
            raise Failure(51, "failed to build: exit status %d" % code)
        self.layers = {}
        for name, path in self.layer_tomls():
            meta = load_toml(path)
            types = meta.get("types", {})
            ldir = os.path.join(os.path.dirname(path), name)
            if not any(types.get(k) for k in ("launch", "build", "cache")):
                if os.path.isdir(ldir):
                    os.rename(ldir, ldir + ".ignore")
                continue
            self.layers[name] = meta

    def save_cache(self):
        if not self.args.cache:
            return
        cache = os.path.abspath(self.args.cache)
        new = cache + ".new"
        shutil.rmtree(new, ignore_errors=True)
        os.makedirs(os.path.join(new, self.esc))
        src = os.path.join(self.work, "layers", self.esc)
        for name, meta in self.layers.items():
            if not meta.get("types", {}).get("cache"):
                continue
            if os.path.isdir(os.path.join(src, name)):
                shutil.copytree(os.path.join(src, name),
                                os.path.join(new, self.esc, name),
                                symlinks=True)
            shutil.copy(os.path.join(src, name + ".toml"),
                        os.path.join(new, self.esc, name + ".toml"))
            print('Adding cache layer "%s:%s"' % (self.bp_id, name))
        old = cache + ".old"
        shutil.rmtree(old, ignore_errors=True)
        if os.path.exists(cache):
            os.rename(cache, old)
        os.rename(new, cache)
        shutil.rmtree(old, ignore_errors=True)

    def launch_env(self, process_type):
        """The image's Env: the run image's, plus each launch layer's bin/
        and lib/ and its env/, env.launch/ and env.launch/<process>/ files,
        in the spec's order and with its suffix rules."""
        base = (self.run_config.get("config") or {}).get("Env") or []
        env = dict(e.split("=", 1) for e in base)
        lroot = "/layers/" + self.esc
        bins, libs = [], []
        for name in sorted(self.launch):
            host = os.path.join(self.work, "layers", self.esc, name)
            if os.path.isdir(host + "/bin"):
                bins.append("%s/%s/bin" % (lroot, name))
            if os.path.isdir(host + "/lib"):
                libs.append("%s/%s/lib" % (lroot, name))
        if bins:
            env["PATH"] = ":".join(bins + [env.get("PATH", "/usr/bin:/bin")])
        if libs:
            env["LD_LIBRARY_PATH"] = ":".join(
                libs + ([env["LD_LIBRARY_PATH"]] if env.get("LD_LIBRARY_PATH")
                        else []))
        for name in sorted(self.launch):
            host = os.path.join(self.work, "layers", self.esc, name)
            for sub in ("env", "env.launch", "env.launch/" + process_type):
                d = os.path.join(host, sub)
                if os.path.isdir(d):
                    apply_env_dir(env, d)
        env["CNB_LAYERS_DIR"] = "/layers"
        env["CNB_APP_DIR"] = "/workspace"
        return env

    def export(self):
        phase("EXPORTING")
        self.launch = sorted(n for n, m in self.layers.items()
                             if m.get("types", {}).get("launch"))
        lpath = os.path.join(self.work, "layers", self.esc, "launch.toml")
        processes = load_toml(lpath).get("processes", []) \
            if os.path.exists(lpath) else []
        default = next((p for p in processes if p.get("default")), None) or \
            next((p for p in processes if p.get("type") == "web"), None)
        if default is None:
            raise Failure(62, "launch.toml declares no default process")

        # A private copy of the run image layout: the shared one stays
        # untouched while other builds read it.
        layout, run_tag = ocilayout.split_ref(self.args.run_image)
        out = os.path.join(self.work, "image")
        shutil.copytree(layout, out)
        img = ocilayout.Image("%s:%s" % (out, run_tag))
        src = os.path.join(self.work, "layers", self.esc)
        diff_ids = {}
        for name in self.launch:
            if not os.path.isdir(os.path.join(src, name)):
                raise Failure(62, 'launch layer "%s" has no directory' % name)
            diff_ids[name] = img.add_layer(
                os.path.join(src, name), "/layers/%s/%s" % (self.esc, name),
                "buildpack %s@%s: layer %s" % (self.bp_id, self.bp_version,
                                               name), normalize=True)
            print('Adding layer "%s:%s"' % (self.bp_id, name))
        app_sha = img.add_layer(self.work + "/workspace", "/workspace",
                                "application (/workspace)", normalize=True)
        print("Adding 1/1 app layer(s)")

        with open(self.work + "/config/metadata.toml", "w") as f:
            f.write("[[buildpacks]]\nid = %s\nversion = %s\napi = %s\n" % (
                toml_value(self.bp_id), toml_value(self.bp_version),
                toml_value(self.bp_api)))
            for p in processes:
                f.write("\n[[processes]]\n")
                for k in ("type", "command", "args", "default",
                          "working-dir"):
                    if k in p:
                        f.write("%s = %s\n" % (k, toml_value(p[k])))
                f.write("buildpack-id = %s\n" % toml_value(self.bp_id))
        config_sha = img.add_layer(self.work + "/config", "/layers/config",
                                   "config (/layers/config)", normalize=True)
        print("Adding layer 'config'")

        run_ids = img.config["rootfs"]["diff_ids"][:self.run_layers]
        lifecycle_md = {
            "app": [{"sha": app_sha}],
            "config": {"sha": config_sha},
            "buildpacks": [{
                "key": self.bp_id, "version": self.bp_version,
                "layers": {n: {"sha": diff_ids[n], "launch": True,
                               "build": bool(self.layers[n]["types"].get(
                                   "build")),
                               "cache": bool(self.layers[n]["types"].get(
                                   "cache")),
                               "data": self.layers[n].get("metadata", {})}
                           for n in self.launch}}],
            "runImage": {"topLayer": run_ids[-1] if run_ids else "",
                         "reference": self.args.run_image},
        }
        build_md = {
            "processes": [dict(p, buildpackID=self.bp_id) for p in processes],
            "buildpacks": [{"id": self.bp_id, "version": self.bp_version,
                            "api": self.bp_api}],
            "launcher": {"version": "none: the entrypoint is the process "
                         "command (zenith-c lifecycle.py)"},
        }
        env = self.launch_env(default["type"])
        img.update_config({
            "Entrypoint": list(default["command"]),
            "Cmd": list(default.get("args", [])) or None,
            "Env": ["%s=%s" % kv for kv in sorted(env.items())],
            "WorkingDir": default.get("working-dir", "/workspace"),
            "Labels": {
                "io.buildpacks.lifecycle.metadata": json.dumps(
                    lifecycle_md, separators=(",", ":")),
                "io.buildpacks.build.metadata": json.dumps(
                    build_md, separators=(",", ":")),
                "io.buildpacks.project.metadata": "{}",
            }}, created_by="zenith-c lifecycle.py: config")
        img.save("app")

        output = os.path.abspath(self.args.output)
        os.makedirs(os.path.dirname(output), exist_ok=True)
        ocilayout.write_archive(out + ":app", output, self.args.tag)
        img = ocilayout.Image(output)
        print("Saving %s..." % self.args.tag)
        print("*** Images (%s): %s" % (
            img.manifest_descriptor["digest"][7:19], output))
        print("    %d layers, %s compressed; default process: %s (%s)" % (
            len(img.layers), ocilayout.human(img.compressed_size()),
            default["type"], " ".join(default["command"])))
        img.close()

    def cleanup(self):
        self.kill_containers()
        if self.work:
            shutil.rmtree(self.work, ignore_errors=True)


def apply_env_dir(env, d):
    """One env directory: NAME (override), NAME.override, NAME.default,
    NAME.append / NAME.prepend joined with NAME.delim when present."""
    files = sorted(os.listdir(d))
    for f in files:
        path = os.path.join(d, f)
        if not os.path.isfile(path):
            continue
        name, _, suffix = f.partition(".")
        if suffix == "delim":
            continue
        with open(path) as fh:
            value = fh.read()
        delim = ""
        if os.path.isfile(os.path.join(d, name + ".delim")):
            with open(os.path.join(d, name + ".delim")) as fh:
                delim = fh.read()
        if suffix in ("", "override"):
            env[name] = value
        elif suffix == "default":
            env.setdefault(name, value)
        elif suffix == "append":
            env[name] = env[name] + delim + value if env.get(name) else value
        elif suffix == "prepend":
            env[name] = value + delim + env[name] if env.get(name) else value


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--buildpack", required=True)
    ap.add_argument("--app", required=True)
    ap.add_argument("--build-image", required=True)
    ap.add_argument("--run-image", required=True, help="LAYOUT:TAG")
    ap.add_argument("--output", required=True, help="OCI archive to write")
    ap.add_argument("--tag", required=True,
                    help="image name stored in the archive")
    ap.add_argument("--cache", help="cache directory (kept between builds)")
    ap.add_argument("--env", action="append", default=[],
                    help="NAME=VALUE, a user build-time variable (BP_*)")
    args = ap.parse_args()
    for e in args.env:
        if "=" not in e or not e.split("=", 1)[0]:
            ap.error("--env wants NAME=VALUE, not %r" % e)
    if not os.path.isdir(args.app):
        ap.error("no app directory %s" % args.app)

    lc = Lifecycle(args)

    def on_signal(signum, frame):
        raise Failure(128 + signum, "interrupted by signal %d" % signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    t0 = time.monotonic()
    try:
        lc.prepare()
        lc.restore()
        lc.detect()
        lc.build()
        lc.save_cache()
        lc.export()
    except Failure as f:
        print("ERROR: %s" % f, file=sys.stderr, flush=True)
        return f.code
    finally:
        lc.cleanup()
    print("Built in %.1f s" % (time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
