#!/usr/bin/env python3
"""Write an OCI image layout holding one linux/amd64 image of N uncompressed layers,
each a tar with one file of random bytes. Usage: make-layout.py DIR NAME LAYERS MIB"""
import hashlib, io, json, os, sys, tarfile

def blob(root, data_or_path):
    h = hashlib.sha256()
    if isinstance(data_or_path, bytes):
        h.update(data_or_path); size = len(data_or_path)
        digest = h.hexdigest()
        with open(os.path.join(root, "blobs/sha256", digest), "wb") as f:
            f.write(data_or_path)
    else:
        with open(data_or_path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        size = os.path.getsize(data_or_path); digest = h.hexdigest()
        os.rename(data_or_path, os.path.join(root, "blobs/sha256", digest))
    return {"digest": "sha256:" + digest, "size": size}

def main():
    root, name, layers, mib = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    os.makedirs(os.path.join(root, "blobs/sha256"), exist_ok=True)
    with open(os.path.join(root, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    descs, diffs = [], []
    for i in range(layers):
        tmp = os.path.join(root, f"layer{i}.tmp")
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as t:
            info = tarfile.TarInfo(f"data/{i}.bin"); info.size = mib << 20; info.mtime = 0
            t.addfile(info, io.BufferedReader(io.BytesIO(os.urandom(mib << 20))))
        d = blob(root, tmp)
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", **d})
        diffs.append(d["digest"])
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": diffs}}).encode()
    cfg = {"mediaType": "application/vnd.oci.image.config.v1+json", **blob(root, config)}
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": cfg, "layers": descs}).encode()
    m = {"mediaType": "application/vnd.oci.image.manifest.v1+json", **blob(root, manifest),
         "annotations": {"org.opencontainers.image.ref.name": name}}
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [m]}, f)

main()
