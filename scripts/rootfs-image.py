#!/usr/bin/env python3
"""Wrap root filesystem tars (e.g. from mmdebstrap) as a multi-platform image in a new OCI
image layout: one gzip layer per platform, a config with Debian's PATH, one index named
NAME.

Usage: rootfs-image.py LAYOUT NAME ARCH=ROOTFS.tar...   (ARCH: amd64 arm64 …)"""
import gzip, hashlib, json, os, sys

PLATFORMS = {"amd64": ("amd64", None), "arm64": ("arm64", None), "armhf": ("arm", "v7"),
             "i386": ("386", None), "ppc64el": ("ppc64le", None), "s390x": ("s390x", None)}


def blob(root, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(root, "blobs/sha256", digest), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + digest, "size": len(data)}


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    layout, name = sys.argv[1], sys.argv[2]
    os.makedirs(os.path.join(layout, "blobs/sha256"), exist_ok=True)
    manifests = []
    for spec in sys.argv[3:]:
        arch, tar = spec.split("=", 1)
        oci_arch, variant = PLATFORMS[arch]
        raw = open(tar, "rb").read()
        layer = blob(layout, gzip.compress(raw, mtime=0))
        platform = {"architecture": oci_arch, "os": "linux"}
        if variant:
            platform["variant"] = variant
        config = dict(platform, rootfs={"type": "layers",
                                        "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]},
                      config={"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                              "Cmd": ["/bin/sh"]})
        cdesc = blob(layout, json.dumps(config).encode())
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": dict(cdesc, mediaType="application/vnd.oci.image.config.v1+json"),
                    "layers": [dict(layer, mediaType="application/vnd.oci.image.layer.v1.tar+gzip")]}
        mdesc = blob(layout, json.dumps(manifest).encode())
        manifests.append(dict(mdesc, mediaType="application/vnd.oci.image.manifest.v1+json",
                              platform=platform))
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": manifests}
    idesc = blob(layout, json.dumps(index).encode())
    top = {"schemaVersion": 2, "manifests": [dict(idesc, mediaType="application/vnd.oci.image.index.v1+json",
                                                 annotations={"org.opencontainers.image.ref.name": name})]}
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(top, f)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)


if __name__ == "__main__":
    main()
