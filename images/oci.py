#!/usr/bin/env python3
"""Packs a root filesystem folder into an OCI image archive (an OCI image layout as one tar).

    oci.py --root DIR --out FILE.tar --name REF --arch amd64 --epoch SECONDS
           [--user UID:GID] [--entrypoint JSON] [--cmd JSON] [--env K=V]... [--label K=V]...

One layer, the whole of DIR. Nothing but the Python standard library and no registry: the result
is what `skopeo copy oci-archive:FILE.tar docker://REGISTRY/...` or `ctr images import` takes.

Reproducible: the same DIR gives the same bytes. Entries are sorted by path, owned by 0:0 with no
user or group names, stamped with --epoch (SOURCE_DATE_EPOCH), and their modes reduced to 0755
(folders and executables) or 0644; gzip carries no name and no time; every JSON document is
written with sorted keys.
"""

import argparse
import datetime
import gzip
import hashlib
import io
import json
import os
import stat
import sys
import tarfile

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
INDEX = "application/vnd.oci.image.index.v1+json"


def entries(root):
    """Every path under root, relative, parents before children, sorted."""
    out = []
    for here, dirs, files in os.walk(root):
        dirs.sort()
        for name in dirs + files:
            out.append(os.path.relpath(os.path.join(here, name), root))
    return sorted(out)


def layer_tar(root, epoch):
    """The layer as an uncompressed tar, deterministic."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in entries(root):
            path = os.path.join(root, rel)
            st = os.lstat(path)
            info = tarfile.TarInfo(rel)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = epoch
            if stat.S_ISLNK(st.st_mode):
                info.type = tarfile.SYMTYPE
                info.linkname = os.readlink(path)
                info.mode = 0o777
                tar.addfile(info)
            elif stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            elif stat.S_ISREG(st.st_mode):
                info.mode = 0o755 if st.st_mode & 0o111 else 0o644
                info.size = st.st_size
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                sys.exit(f"oci.py: {path}: only files, folders and symbolic links go into a layer")
    return buf.getvalue()


def gzipped(data):
    buf = io.BytesIO()
    # No file name and time 0 in the header: the same tar always gives the same bytes.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    return buf.getvalue()


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def pairs(values, what):
    out = {}
    for v in values:
        key, sep, value = v.partition("=")
        if not sep or not key:
            sys.exit(f"oci.py: --{what} wants KEY=VALUE, not {v!r}")
        out[key] = value
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--name", required=True, help="image name, e.g. rangepool/controller:0.1.0")
    p.add_argument("--arch", required=True, help="OCI architecture, e.g. amd64")
    p.add_argument("--epoch", required=True, type=int, help="SOURCE_DATE_EPOCH")
    p.add_argument("--user", default="")
    p.add_argument("--entrypoint", type=json.loads)
    p.add_argument("--cmd", type=json.loads)
    p.add_argument("--env", action="append", default=[])
    p.add_argument("--label", action="append", default=[])
    a = p.parse_args()

    created = datetime.datetime.fromtimestamp(a.epoch, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    labels = pairs(a.label, "label")
    labels.setdefault("org.opencontainers.image.created", created)

    tar = layer_tar(a.root, a.epoch)
    layer = gzipped(tar)
    config = {"User": a.user, "Env": a.env, "Labels": labels}
    if a.entrypoint is not None:
        config["Entrypoint"] = a.entrypoint
    if a.cmd is not None:
        config["Cmd"] = a.cmd
    image_config = canonical(
        {
            "architecture": a.arch,
            "os": "linux",
            "created": created,
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [sha256(tar)]},
            "history": [{"created": created, "created_by": "images/build.sh"}],
        }
    )
    manifest = canonical(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {"mediaType": CONFIG, "digest": sha256(image_config), "size": len(image_config)},
            "layers": [{"mediaType": LAYER, "digest": sha256(layer), "size": len(layer)}],
            "annotations": labels,
        }
    )
    tag = a.name.rsplit(":", 1)[1] if ":" in a.name.rsplit("/", 1)[-1] else "latest"
    index = canonical(
        {
            "schemaVersion": 2,
            "mediaType": INDEX,
            "manifests": [
                {
                    "mediaType": MANIFEST,
                    "digest": sha256(manifest),
                    "size": len(manifest),
                    "platform": {"architecture": a.arch, "os": "linux"},
                    # ref.name is the tag (skopeo's oci-archive:FILE:TAG); containerd's import
                    # names the image by io.containerd.image.name.
                    "annotations": {
                        "org.opencontainers.image.ref.name": tag,
                        "io.containerd.image.name": a.name,
                    },
                }
            ],
        }
    )

    blobs = {sha256(b): b for b in (layer, image_config, manifest)}
    files = [("oci-layout", canonical({"imageLayoutVersion": "1.0.0"})), ("index.json", index)]
    files += [("blobs/sha256/" + d.split(":")[1], b) for d, b in sorted(blobs.items())]
    tmp = a.out + ".tmp"
    with open(tmp, "wb") as out, tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as t:
        for folder in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(folder)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, a.epoch
            t.addfile(info)
        for name, data in sorted(files):
            info = tarfile.TarInfo(name)
            info.mode, info.mtime, info.size = 0o644, a.epoch, len(data)
            t.addfile(info, io.BytesIO(data))
    os.replace(tmp, a.out)
    print(f"{a.out}: {a.name} manifest {sha256(manifest)} ({len(layer)} bytes compressed)")


if __name__ == "__main__":
    main()
