#!/usr/bin/env python3
"""Write an OCI image layout holding a base image for linux/amd64 and linux/arm64 behind
one index: the busybox layer of each architecture (from Debian's busybox-static .deb,
as make-busybox.py makes it) and then LAYERS gzip layers of FILES files each, 64 KiB of
half-compressible bytes per file (distinct per layer and platform). A stand-in for a
distribution base of a few hundred MB, made offline.

Usage: make-base.py DEBS DIR NAME LAYERS FILES"""
import gzip, hashlib, io, json, os, random, subprocess, sys, tarfile

HERE = os.path.dirname(os.path.abspath(__file__))


def put(root, data, media):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(root, "blobs/sha256", digest), "wb") as f:
        f.write(data)
    return {"mediaType": media, "digest": "sha256:" + digest, "size": len(data)}


def data_layer(seed, files):
    rng = random.Random(seed)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        d = tarfile.TarInfo(f"usr/share/base{seed % 1000}")
        d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o755, 0
        t.addfile(d)
        for i in range(files):
            # Half random, half zeros: compresses about 2:1, as binaries and text do.
            body = rng.randbytes(32 << 10) + bytes(32 << 10)
            info = tarfile.TarInfo(f"usr/share/base{seed % 1000}/f{i:05}")
            info.size, info.mode, info.mtime = len(body), 0o644, 0
            t.addfile(info, io.BytesIO(body))
    tar = raw.getvalue()
    return gzip.compress(tar, compresslevel=6, mtime=0), hashlib.sha256(tar).hexdigest()


def main():
    debs, root, name, layers, files = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    # The busybox index first (its layers and configs), then rewrite each manifest.
    subprocess.run([sys.executable, os.path.join(HERE, "make-busybox.py"), debs, root, name,
                    "amd64", "arm64"], check=True, stdout=subprocess.DEVNULL)
    blobs = os.path.join(root, "blobs/sha256")
    read = lambda d: json.load(open(os.path.join(blobs, d.split(":")[1])))
    index_path = os.path.join(root, "index.json")
    top = json.load(open(index_path))
    idx = read(top["manifests"][0]["digest"])
    for n, m in enumerate(idx["manifests"]):
        man = read(m["digest"])
        cfg = read(man["config"]["digest"])
        for l in range(layers):
            blob, diff = data_layer(n * 100 + l, files)
            man["layers"].append(put(root, blob, "application/vnd.oci.image.layer.v1.tar+gzip"))
            cfg["rootfs"]["diff_ids"].append("sha256:" + diff)
        man["config"] = put(root, json.dumps(cfg, sort_keys=True).encode(), man["config"]["mediaType"])
        new = put(root, json.dumps(man, sort_keys=True).encode(), m["mediaType"])
        new["platform"] = m["platform"]
        idx["manifests"][n] = new
    newidx = put(root, json.dumps(idx, sort_keys=True).encode(), top["manifests"][0]["mediaType"])
    newidx["annotations"] = top["manifests"][0].get("annotations", {})
    top["manifests"] = [newidx]
    json.dump(top, open(index_path, "w"))


if __name__ == "__main__":
    main()
