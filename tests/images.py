"""Container images built offline from the busybox rootfs, for `bundle init --image` tests.

The image's own entrypoint (/usr/local/bin/entry) reports, from inside the container, what the
kernel holds for it: its arguments, $GREETING from the image's Env, its cwd (/proc/$$/cwd), its
ids (/proc/$$/status), $HOME and the mount at /data (the image's volume). Its user "app" (uid
1234, gid 1234) is in the image's /etc/passwd only, and in group "extra" (2345) of its
/etc/group: the bundle gets numbers only when the user is resolved in the image's rootfs.

    oci_layout(template, dest)      an OCI image layout made with umoci (init, new, insert,
                                    config), tagged TAG
    PodmanStore(base)               podman with its own storage (vfs: no mounts) and
                                    containers.conf under `base`; `import_image`, `save`, and
                                    `close` (removes every image, then the storage)
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

TAG = "web"
UID, GID, EXTRA_GID = 1234, 1234, 2345
GREETING = "hello-from-image"
WORKDIR = "/srv/app"
ENTRY = """#!/bin/sh
echo "entrypoint ran: $*"
echo "greeting=$GREETING"
echo "cwd=$(readlink /proc/$$/cwd)"
grep -E '^(Uid|Gid|Groups):' /proc/$$/status
echo "home=$HOME"
awk '$5 == "/data" {print "volume", $5, $(NF-2)}' /proc/$$/mountinfo
"""
# the mount's fstype is the third field from the end of a mountinfo line (after " - ")


def image_rootfs(template: Path, dest: Path) -> Path:
    """The busybox rootfs of `template` plus the probe entrypoint, user app and its dirs."""
    root = dest / "rootfs"
    subprocess.run(["cp", "-a", str(template / "rootfs"), str(root)], check=True)
    with open(root / "etc/passwd", "a") as f:
        f.write(f"app:x:{UID}:{GID}:app:/home/app:/bin/sh\n")
    with open(root / "etc/group", "a") as f:
        f.write(f"app:x:{GID}:\nextra:x:{EXTRA_GID}:app\n")
    for d in ("srv/app", "home/app", "usr/local/bin", "data"):
        (root / d).mkdir(parents=True, exist_ok=True)
    os.chown(root / "home/app", UID, GID)
    entry = root / "usr/local/bin/entry"
    entry.write_text(ENTRY)
    entry.chmod(0o755)
    return root


def run(argv: list[str], env: dict | None = None, timeout: float = 120) -> str:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                         stdin=subprocess.DEVNULL)
    if res.returncode != 0:
        raise AssertionError(f"{argv} -> {res.returncode}\n{res.stdout}\n{res.stderr}")
    return res.stdout


def oci_layout(rootfs: Path, dest: Path) -> Path:
    """An OCI image layout at `dest` with one image, tagged TAG, built by umoci."""
    image = f"{dest}:{TAG}"
    run(["umoci", "init", "--layout", str(dest)])
    run(["umoci", "new", "--image", image])
    run(["umoci", "insert", "--image", image, str(rootfs), "/"])
    run(["umoci", "config", "--image", image, "--config.entrypoint", "/usr/local/bin/entry",
         "--config.cmd", "from-cmd", "--config.env", f"GREETING={GREETING}",
         "--config.workingdir", WORKDIR, "--config.user", "app",
         "--config.exposedports", "8080/tcp", "--config.volume", "/data",
         "--config.stopsignal", "SIGQUIT", "--config.label", "org.example.role=probe"])
    return dest


def rootfs_tar(rootfs: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w") as tar:
        tar.add(rootfs, arcname=".")
    return dest


class PodmanStore:
    """podman with storage and state under `base` only (the host's podman is never touched)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        conf, storage = base / "containers.conf", base / "storage.conf"
        (base / "tmp").mkdir(parents=True)
        conf.write_text(f'[engine]\nevents_logger = "file"\n'
                        f'events_logfile_path = "{base}/events.log"\ntmp_dir = "{base}/tmp"\n')
        storage.write_text(f'[storage]\ndriver = "vfs"\ngraphroot = "{base}/graph"\n'
                           f'runroot = "{base}/run"\n')
        self.env = {"CONTAINERS_CONF": str(conf), "CONTAINERS_STORAGE_CONF": str(storage),
                    "TMPDIR": str(base / "tmp")}

    def __call__(self, *args: str) -> str:
        return run(["podman", *args], env=dict(os.environ, **self.env))

    def import_image(self, tar: Path, name: str, greeting: str) -> None:
        """`podman import` of the rootfs tar, with the probe as ENTRYPOINT and the image's
        Env, WorkingDir and User set by --change (Dockerfile instructions)."""
        self("import", "--change", 'ENTRYPOINT ["/usr/local/bin/entry"]',
             "--change", 'CMD ["from-podman"]', "--change", f"ENV GREETING={greeting}",
             "--change", f"WORKDIR {WORKDIR}", "--change", "USER app", str(tar), name)

    def save(self, name: str, dest: Path, fmt: str) -> Path:
        self("save", "--format", fmt, "-o", str(dest), name)
        return dest

    def close(self) -> None:
        """Every image of this store removed, then the store itself (vfs: nothing mounted).
        Not `podman system reset`: that also removes the host's podman networks (CNI configs
        are not in the store)."""
        subprocess.run(["podman", "rmi", "--all", "--force"], env=dict(os.environ, **self.env),
                       capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
        shutil.rmtree(self.base, ignore_errors=True)


def probe_lines(out: str) -> dict[str, str]:
    """The probe's report as {key: value}: args, greeting, cwd, home, Uid, Gid, Groups (as
    /proc/PID/status has them, tab-separated), volume ("/data tmpfs")."""
    got = {}
    for line in out.splitlines():
        if line.startswith("entrypoint ran: "):
            got["args"] = line.removeprefix("entrypoint ran: ")
        elif line.startswith("volume "):
            got["volume"] = line.removeprefix("volume ")
        elif line.split("=", 1)[0] in ("greeting", "cwd", "home"):
            key, _, value = line.partition("=")
            got[key] = value
        elif line.split(":", 1)[0] in ("Uid", "Gid", "Groups"):
            key, _, value = line.partition(":")
            got[key] = " ".join(value.split())
    return got


# the image tests' skip: the field's tools, which .ci/run installs
NEEDS_TOOLS = pytest.mark.skipif(
    not (shutil.which("umoci") and shutil.which("skopeo")),
    reason="umoci and skopeo are not installed (apt-get install umoci skopeo; .ci/run does)")
