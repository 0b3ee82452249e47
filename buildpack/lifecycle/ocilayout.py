#!/usr/bin/env python3
"""
ocilayout.py - read and write OCI image layouts and oci-archive files with
the standard library only: what build-run-image.sh and lifecycle.py need to
make images without a Docker engine.

Why not umoci: Debian 12's umoci 0.4.7 writes `umoci insert` layers without
the tar end-of-archive blocks (opencontainers/umoci#436, fixed upstream in
#534), which GNU tar, Python's tarfile and image scanners reject.  Layers
written here are complete tar files, with numeric owners and no host user
names, gzip-compressed with a fixed gzip timestamp.

    ocilayout.py init LAYOUT:TAG
    ocilayout.py add-layer LAYOUT:TAG DIR DEST [--created-by TEXT]
    ocilayout.py config LAYOUT:TAG JSON      merge JSON into config.config
    ocilayout.py size LAYOUT:TAG | ARCHIVE    the compressed size
    ocilayout.py archive LAYOUT:TAG FILE NAME an oci-archive, image NAME
"""
import datetime
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"
# The CNB lifecycle's timestamp for reproducible layers.
NORMALIZED_MTIME = 315532801  # 1980-01-01T00:00:01Z


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def split_ref(ref):
    root, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        return ref, None
    return root, tag


class Image:
    """One image (a manifest and its config) in a layout directory
    (LAYOUT:TAG) or an oci-archive tarball (a file)."""

    def __init__(self, ref):
        self._tar = None
        self.tag = None
        if os.path.isfile(ref):
            self._tar = tarfile.open(ref)
            self.root = None
        else:
            self.root, self.tag = split_ref(ref)
        index = json.loads(self._read("index.json"))
        manifests = index.get("manifests", [])
        if self.tag is not None:
            manifests = [m for m in manifests
                         if m.get("annotations", {}).get(REF_NAME) == self.tag]
        if not manifests:
            raise LookupError("no image %r in %s" % (self.tag, ref))
        self.manifest_descriptor = manifests[0]
        self.manifest = json.loads(self.blob(manifests[0]["digest"]))
        self.config = json.loads(self.blob(self.manifest["config"]["digest"]))

    def _read(self, name):
        if self._tar is not None:
            names = self._tar.getnames()
            return self._tar.extractfile(
                name if name in names else "./" + name).read()
        with open(os.path.join(self.root, name), "rb") as f:
            return f.read()

    def blob(self, digest):
        algo, _, hexdigest = digest.partition(":")
        return self._read("blobs/%s/%s" % (algo, hexdigest))

    @property
    def layers(self):
        return self.manifest["layers"]

    def compressed_size(self):
        """Bytes a registry stores and a pull transfers: the gzip layers
        plus the config."""
        return (sum(l["size"] for l in self.layers) +
                self.manifest["config"]["size"])

    def close(self):
        if self._tar is not None:
            self._tar.close()

    # writing (layout directories only) ------------------------------------

    def _put_blob(self, data):
        digest = hashlib.sha256(data).hexdigest()
        path = os.path.join(self.root, "blobs", "sha256", digest)
        if not os.path.exists(path):
            tmp = path + ".tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        return "sha256:" + digest, len(data)

    def add_layer(self, src, dest, created_by, normalize=False):
        """A layer holding the tree SRC at the absolute path DEST."""
        raw = layer_tar(src, dest, normalize)
        diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
        digest, size = self._put_blob(gzip.compress(raw, 6, mtime=0))
        self.manifest["layers"].append({"mediaType": MT_LAYER,
                                        "digest": digest, "size": size})
        self.config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        self.config["rootfs"]["diff_ids"].append(diff_id)
        self.config.setdefault("history", []).append(
            {"created": now(), "created_by": created_by})
        return diff_id

    def update_config(self, changes, created_by=None):
        """Merge CHANGES into config.config; a None value removes a key."""
        cfg = self.config.setdefault("config", {})
        for k, v in changes.items():
            if v is None:
                cfg.pop(k, None)
            elif k == "Labels":
                cfg.setdefault("Labels", {}).update(v)
            else:
                cfg[k] = v
        if created_by:
            self.config.setdefault("history", []).append(
                {"created": now(), "created_by": created_by,
                 "empty_layer": True})

    def save(self, tag=None):
        """Write the config and manifest, and point TAG (default: the tag
        this image was read as) at them in index.json."""
        tag = tag or self.tag
        self.config["created"] = now()
        cd, cs = self._put_blob(json.dumps(self.config).encode())
        self.manifest["config"] = {"mediaType": MT_CONFIG, "digest": cd,
                                   "size": cs}
        md, ms = self._put_blob(json.dumps(self.manifest).encode())
        path = os.path.join(self.root, "index.json")
        with open(path) as f:
            index = json.load(f)
        index["manifests"] = [m for m in index.get("manifests", [])
                              if m.get("annotations", {}).get(REF_NAME) != tag]
        self.manifest_descriptor = {"mediaType": MT_MANIFEST, "digest": md,
                                    "size": ms,
                                    "annotations": {REF_NAME: tag}}
        index["manifests"].append(self.manifest_descriptor)
        write_json(path, index)
        self.tag = tag


def write_json(path, doc):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, path)


def init(ref, os_name="linux", arch="amd64"):
    """An image with no layers as LAYOUT:TAG (the layout is created)."""
    root, tag = split_ref(ref)
    os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)
    if not os.path.exists(os.path.join(root, "oci-layout")):
        write_json(os.path.join(root, "oci-layout"),
                   {"imageLayoutVersion": "1.0.0"})
    if not os.path.exists(os.path.join(root, "index.json")):
        write_json(os.path.join(root, "index.json"),
                   {"schemaVersion": 2, "mediaType": MT_INDEX,
                    "manifests": []})
    img = Image.__new__(Image)
    img._tar, img.root, img.tag = None, root, tag
    img.manifest = {"schemaVersion": 2, "mediaType": MT_MANIFEST,
                    "config": {}, "layers": []}
    img.config = {"architecture": arch, "os": os_name, "config": {},
                  "rootfs": {"type": "layers", "diff_ids": []},
                  "history": []}
    img.save()
    return img


def layer_tar(src, dest, normalize):
    """The uncompressed tar of SRC placed at DEST: sorted entries, numeric
    owners, no user names; with NORMALIZE, fixed mtimes."""
    prefix = dest.strip("/")
    buf = io.BytesIO()

    def clean(ti):
        ti.uname = ti.gname = ""
        if normalize:
            ti.mtime = NORMALIZED_MTIME
        return ti

    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        if prefix:
            t.add(src, arcname=prefix, recursive=False, filter=clean)
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames.sort()
            rel = os.path.relpath(dirpath, src)
            for n in dirnames + sorted(filenames):
                path = os.path.join(dirpath, n)
                arc = os.path.normpath(os.path.join(prefix, rel, n))
                t.add(path, arcname=arc, recursive=False, filter=clean)
    return buf.getvalue()


def write_archive(ref, output, name):
    """An oci-archive (a tar of an image layout) holding only the image
    REF, under the image name NAME (what `podman load` calls it)."""
    img = Image(ref)
    desc = dict(img.manifest_descriptor, annotations={REF_NAME: name})
    blobs = [img.manifest_descriptor["digest"],
             img.manifest["config"]["digest"]] + [
        l["digest"] for l in img.layers]
    tmp = output + ".tmp"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as t:
        def put(arcname, data):
            ti = tarfile.TarInfo(arcname)
            ti.size = len(data)
            ti.mode = 0o644
            ti.mtime = NORMALIZED_MTIME
            t.addfile(ti, io.BytesIO(data))
        put("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        put("index.json", json.dumps({"schemaVersion": 2,
                                      "mediaType": MT_INDEX,
                                      "manifests": [desc]}).encode())
        for d in dict.fromkeys(blobs):
            algo, _, hexdigest = d.partition(":")
            path = os.path.join(img.root, "blobs", algo, hexdigest)
            ti = t.gettarinfo(path, "blobs/%s/%s" % (algo, hexdigest))
            ti.uname = ti.gname = ""
            ti.uid = ti.gid = 0
            ti.mtime = NORMALIZED_MTIME
            with open(path, "rb") as f:
                t.addfile(ti, f)
    os.replace(tmp, output)
    img.close()


def gc(root):
    """Remove the blobs no tagged image uses."""
    with open(os.path.join(root, "index.json")) as f:
        index = json.load(f)
    keep = set()
    for m in index.get("manifests", []):
        img = Image("%s:%s" % (root, m["annotations"][REF_NAME]))
        keep.add(m["digest"])
        keep.add(img.manifest["config"]["digest"])
        keep.update(l["digest"] for l in img.layers)
    d = os.path.join(root, "blobs", "sha256")
    for n in os.listdir(d):
        if "sha256:" + n not in keep:
            os.unlink(os.path.join(d, n))


def human(n):
    return "%d bytes (%.2f MiB)" % (n, n / 1048576.0)


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "init" and len(argv) == 3:
        init(argv[2])
    elif cmd == "add-layer" and len(argv) in (5, 7):
        by = argv[6] if len(argv) == 7 and argv[5] == "--created-by" else \
            "add %s" % argv[4]
        img = Image(argv[2])
        img.add_layer(argv[3], argv[4], by)
        img.save()
    elif cmd == "config" and len(argv) == 4:
        img = Image(argv[2])
        img.update_config(json.loads(argv[3]))
        img.save()
    elif cmd == "size" and len(argv) == 3:
        img = Image(argv[2])
        print(human(img.compressed_size()))
        img.close()
    elif cmd == "archive" and len(argv) == 5:
        write_archive(argv[2], argv[3], argv[4])
    elif cmd == "gc" and len(argv) == 3:
        gc(argv[2])
    else:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
