#!/usr/bin/env python3
"""Write an OCI image layout holding one multi-platform busybox index, made offline from
Debian's busybox-static .debs (as scripts/setup.sh downloads them): per architecture one
gzip layer with the static busybox, its applets as symlinks, /etc/passwd and /etc/group.
The applet list is asked from the amd64 busybox, so no emulator is needed.

Usage: make-busybox.py DEBDIR LAYOUT NAME ARCH...   (Debian arch names: amd64 arm64 …)"""
import glob, gzip, hashlib, io, json, os, subprocess, sys, tarfile, tempfile

PLATFORMS = {
    "amd64": ("amd64", None), "arm64": ("arm64", None), "armhf": ("arm", "v7"),
    "i386": ("386", None), "ppc64el": ("ppc64le", None), "s390x": ("s390x", None),
}
PASSWD = b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n" \
         b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = b"root:x:0:\napp:x:1000:\nusers:x:100:app\nnogroup:x:65534:\n"


def blob(root, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(root, "blobs/sha256", digest), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + digest, "size": len(data)}


def deb(debdir, arch):
    found = glob.glob(os.path.join(debdir, f"busybox-static_*_{arch}.deb"))
    if not found:
        sys.exit(f"no busybox-static_*_{arch}.deb in {debdir}; run scripts/setup.sh")
    return found[0]


def extract_busybox(debdir, arch, tmp):
    out = os.path.join(tmp, arch)
    subprocess.run(["dpkg-deb", "-x", deb(debdir, arch), out], check=True)
    with open(os.path.join(out, "bin/busybox"), "rb") as f:
        return f.read()


def layer(busybox, applets):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        def add(name, kind=tarfile.DIRTYPE, mode=0o755, data=b"", link="", uid=0):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime, info.uid, info.gid = kind, mode, 0, uid, uid
            info.linkname = link
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            t.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
        dirs = {"bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "root", "home", "home/app",
                "proc", "sys", "dev", "var", "run", "tmp"}
        for a in applets:
            d = os.path.dirname(a)
            while d:
                dirs.add(d); d = os.path.dirname(d)
        for d in sorted(dirs):
            add(d, mode={"tmp": 0o1777, "root": 0o700}.get(d, 0o755),
                uid=1000 if d == "home/app" else 0)
        add("bin/busybox", tarfile.REGTYPE, 0o755, busybox)
        for a in sorted(applets):
            add(a, tarfile.SYMTYPE, 0o777, link="/bin/busybox")
        add("etc/passwd", tarfile.REGTYPE, 0o644, PASSWD)
        add("etc/group", tarfile.REGTYPE, 0o644, GROUP)
    return buf.getvalue()


def main():
    debdir, root, name, arches = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    os.makedirs(os.path.join(root, "blobs/sha256"), exist_ok=True)
    with open(os.path.join(root, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    with tempfile.TemporaryDirectory() as tmp:
        native = os.path.join(tmp, "amd64", "bin/busybox")
        extract_busybox(debdir, "amd64", tmp)
        applets = [a for a in subprocess.run([native, "--list-full"], check=True,
                                             capture_output=True, text=True).stdout.split()
                   if a and a != "bin/busybox"]
        manifests = []
        for arch in arches:
            tar = layer(extract_busybox(debdir, arch, tmp), applets)
            gz = gzip.compress(tar, compresslevel=6, mtime=0)
            os_arch, variant = PLATFORMS[arch]
            platform = {"architecture": os_arch, "os": "linux"}
            if variant:
                platform["variant"] = variant
            config = json.dumps({
                **platform, "created": "1970-01-01T00:00:00Z",
                "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                           "Cmd": ["sh"]},
                "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]},
                "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "busybox-static " + arch}],
            }, separators=(",", ":")).encode()
            manifest = json.dumps({
                "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **blob(root, config)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **blob(root, gz)}],
            }, separators=(",", ":")).encode()
            manifests.append({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                              **blob(root, manifest), "platform": platform})
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": manifests}, separators=(",", ":")).encode()
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json", **blob(root, index),
            "annotations": {"org.opencontainers.image.ref.name": name}}]}, f)


main()
