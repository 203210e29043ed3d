"""Rootless: ocish run by a real unprivileged user, with a config from `ocish spec --rootless`.

Each test makes its own system user (useradd --system: no /etc/subuid range is given to it
automatically) and removes it afterwards, with any /etc/subuid and /etc/subgid line the test added
for it; no other line of those files is touched. The project's Python lives under /root, which the
user cannot read: ocish runs with Debian's /usr/bin/python3 and PYTHONPATH pointing at a
world-readable copy of runtime/ and ocish/. The user's XDG_RUNTIME_DIR is a 0700 temp dir of its
own, and each bundle sits in a world-traversable dir owned by the user.
"""
from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO, cid, needs_root, reap_orphans

SYSTEM_PYTHON = "/usr/bin/python3"
SETPRIV = shutil.which("setpriv")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CGROUP_ROOT = "/sys/fs/cgroup"


def _system_python_ok() -> bool:
    try:
        out = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info >= (3, 10))"],
                             capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return False
    return out.strip() == "True"


pytestmark = [
    needs_root,
    pytest.mark.skipif(not SETPRIV or not shutil.which("useradd"), reason="needs setpriv and useradd"),
    pytest.mark.skipif(not _system_python_ok(), reason=f"needs a world-readable {SYSTEM_PYTHON} >= 3.10"),
]


class User:
    """A throwaway unprivileged user that runs ocish; call it like the `ocish` fixture."""

    def __init__(self, base: Path, pkg: Path) -> None:
        self.name = f"ocish-rl-{uuid.uuid4().hex[:8]}"
        self.base, self.pkg = base, pkg
        self.home = base / "home"
        subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", str(self.home),
                        "--shell", "/usr/sbin/nologin", self.name], check=True,
                       capture_output=True)
        pw = pwd.getpwnam(self.name)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        self.xdg = base / "xdg"
        for d in (self.home, self.xdg):
            d.mkdir()
            os.chown(d, self.uid, self.gid)
            d.chmod(0o700)
        self.subid_lines: list[tuple[str, str]] = []

    @property
    def state_root(self) -> Path:
        return self.xdg / "ocish"

    def __call__(self, *args: str, cwd: Path | None = None, timeout: float = 60,
                 env: dict | None = None) -> subprocess.CompletedProcess:
        environ = {"PATH": PATH, "HOME": str(self.home), "XDG_RUNTIME_DIR": str(self.xdg),
                   "PYTHONPATH": str(self.pkg), "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}
        environ.update(env or {})
        cmd = [SETPRIV, f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups",
               "env", "-i", *(f"{k}={v}" for k, v in environ.items()),
               SYSTEM_PYTHON, "-m", "ocish", *args]
        # files, not pipes: a detached container keeps stdout/stderr open after ocish exits
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            rc = subprocess.run(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                cwd=str(cwd or self.base), timeout=timeout).returncode
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(cmd, rc, out.read(), err.read())

    def grant_subids(self, start: int, count: int) -> None:
        """Give the user a subordinate uid and gid range (removed again by cleanup)."""
        line = f"{self.name}:{start}:{count}"
        for path in ("/etc/subuid", "/etc/subgid"):
            with open(path, "a") as f:
                f.write(line + "\n")
            self.subid_lines.append((path, line))

    def cleanup(self) -> None:
        if self.state_root.is_dir():
            for c in os.listdir(self.state_root):
                self("delete", "-f", c)
        reap_orphans()
        for path, line in self.subid_lines:
            with open(path) as f:
                lines = f.read().splitlines()
            kept = [ln for ln in lines if ln != line]
            with open(path, "w") as f:
                f.write("".join(ln + "\n" for ln in kept))
        subprocess.run(["userdel", self.name], capture_output=True)


@pytest.fixture(scope="module")
def pkg(tmp_path_factory):
    """runtime/ and ocish/ where any user can read them."""
    d = Path(tempfile.mkdtemp(prefix="ocish-pkg-", dir="/tmp"))
    d.chmod(0o755)
    for name in ("runtime", "ocish"):
        shutil.copytree(REPO / name, d / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(["chmod", "-R", "a+rX", str(d)], check=True)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def user(request, pkg):
    base = Path(tempfile.mkdtemp(prefix="ocish-rl-", dir="/tmp"))
    base.chmod(0o755)
    u = User(base, pkg)

    def fin():
        u.cleanup()
        shutil.rmtree(base, ignore_errors=True)
    request.addfinalizer(fin)
    return u


@pytest.fixture
def rootless_bundle(user, rootfs_template):
    """rootless_bundle(args, mutate=None): a bundle owned by the user, config from its own
    `ocish spec --rootless`."""
    count = [0]

    def make(args: list[str], mutate=None) -> Path:
        count[0] += 1
        b = user.base / f"bundle{count[0]}"
        b.mkdir()
        subprocess.run(["cp", "-a", str(rootfs_template / "rootfs"), str(b / "rootfs")], check=True)
        subprocess.run(["chown", "-R", f"{user.uid}:{user.gid}", str(b)], check=True)
        p = user("spec", "--rootless", cwd=b)
        assert p.returncode == 0, p.stderr
        spec = json.loads((b / "config.json").read_text())
        spec["process"]["args"] = args
        spec["process"]["terminal"] = False
        if mutate:
            mutate(spec)
        (b / "config.json").write_text(json.dumps(spec))
        return b

    return make


def _ns(path: str) -> str:
    return os.readlink(path)


def _ocish_cgroups(c: str) -> list[str]:
    return [d for h in os.listdir(CGROUP_ROOT)
            if os.path.isdir(d := os.path.join(CGROUP_ROOT, h, "ocish", c))]


# --- tests --------------------------------------------------------------------------------------

def test_spec_rootless_maps_the_caller(user, rootless_bundle):
    b = rootless_bundle(["true"])
    spec = json.loads((b / "config.json").read_text())
    linux = spec["linux"]
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": user.uid, "size": 1}]
    assert linux["gidMappings"] == [{"containerID": 0, "hostID": user.gid, "size": 1}]
    kinds = [n["type"] for n in linux["namespaces"]]
    assert "user" in kinds and "network" not in kinds and "resources" not in linux
    sysfs = [m for m in spec["mounts"] if m["destination"] == "/sys"][0]
    assert sysfs["source"] == "/sys" and "rbind" in sysfs["options"]


def test_rootless_run_from_inside(user, rootless_bundle):
    script = ("id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups; "
              "for ns in user net mnt; do readlink /proc/self/ns/$ns; done; "
              "echo x > /dev/null && head -c 4 /dev/zero | wc -c; hostname")
    b = rootless_bundle(["sh", "-c", script])
    c = cid()
    p = user("run", c, cwd=b)
    assert p.returncode == 0, p.stderr
    out = p.stdout.split("\n")
    assert out[0] == "0" and out[1] == "0"  # root inside
    assert out[2].split() == ["0", str(user.uid), "1"]
    assert out[3].split() == ["0", str(user.gid), "1"]
    assert out[4] == "deny"  # written by the unprivileged host side before gid_map
    userns, netns, mntns = out[5:8]
    assert userns != _ns("/proc/self/ns/user") and mntns != _ns("/proc/self/ns/mnt")
    assert netns == _ns("/proc/self/ns/net")  # no network namespace: the spec asks for none
    assert out[8] == "4"  # /dev/null and /dev/zero work: bind-mounted from the host
    assert out[9] == "ocish"
    assert _ocish_cgroups(c) == []  # nothing delegated here: no cgroup at all
    assert not (user.state_root / c).exists()  # run deletes it


def test_rootless_state_under_xdg_runtime_dir(user, rootless_bundle):
    b = rootless_bundle(["sleep", "300"])
    c = cid()
    p = user("create", c, cwd=b)
    assert p.returncode == 0, p.stderr
    sdir = user.state_root / c
    assert (sdir / "state.json").is_file() and (sdir / "exec.fifo").exists()
    assert sdir.stat().st_uid == user.uid
    assert not os.path.exists(f"/run/ocish/{c}")
    st = json.loads(user("state", c).stdout)
    assert st["status"] == "created" and st["id"] == c and st["bundle"] == str(b)
    with open(f"/proc/{st['pid']}/uid_map") as f:
        assert f.read().split() == ["0", str(user.uid), "1"]
    assert os.stat(f"/proc/{st['pid']}").st_uid == user.uid  # runs as the user on the host
    assert [x["id"] for x in json.loads(user("list", "-f", "json").stdout)] == [c]
    assert user("start", c).returncode == 0
    assert json.loads(user("state", c).stdout)["status"] == "running"
    assert user("kill", c, "KILL").returncode == 0
    p = user("delete", "-f", c)
    assert p.returncode == 0, p.stderr
    reap_orphans()
    assert not sdir.exists() and os.listdir(user.state_root) == []
    assert _ocish_cgroups(c) == []


def test_rootless_several_ids_through_newuidmap(user, rootless_bundle):
    if not (shutil.which("newuidmap") and shutil.which("newgidmap")):
        pytest.skip("uidmap (newuidmap/newgidmap) is not installed")
    start = 400000 + (uuid.uuid4().int % 1000) * 65536
    user.grant_subids(start, 65536)

    def mutate(spec):
        spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": user.uid, "size": 1},
                                        {"containerID": 1, "hostID": start, "size": 65536}]
        spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": user.gid, "size": 1},
                                        {"containerID": 1, "hostID": start, "size": 65536}]
        spec["process"]["user"] = {"uid": 1000, "gid": 1000}
    b = rootless_bundle(["sh", "-c", "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map"],
                        mutate)
    p = user("run", cid(), cwd=b)
    assert p.returncode == 0, p.stderr
    lines = [ln.split() for ln in p.stdout.strip().split("\n")]
    assert lines[0] == ["1000"] and lines[1] == ["1000"]
    assert lines[2:4] == [["0", str(user.uid), "1"], ["1", str(start), "65536"]]
    assert lines[4:6] == [["0", str(user.gid), "1"], ["1", str(start), "65536"]]


def test_rootless_several_ids_without_subuid_range(user, rootless_bundle):
    if not shutil.which("newuidmap"):
        pytest.skip("uidmap is not installed")

    def mutate(spec):
        spec["linux"]["uidMappings"].append({"containerID": 1, "hostID": 700000, "size": 10})
    b = rootless_bundle(["true"], mutate)
    c = cid()
    p = user("create", c, cwd=b)
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr
    assert lines[0].startswith("ocish: create failed: stage idmap: newuidmap ")
    assert "(config /linux/uidMappings): newuidmap: " in lines[0]
    assert lines[0].endswith("(the ranges must be granted to your user in /etc/subuid)")
    assert not (user.state_root / c).exists()


def test_rootless_limits_need_a_delegated_cgroup(user, rootless_bundle):
    def mutate(spec):
        spec["linux"]["resources"] = {"pids": {"limit": 100}}
    b = rootless_bundle(["true"], mutate)
    c = cid()
    p = user("create", c, cwd=b)
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ocish: create failed: stage cgroup: mkdir ")
    assert lines[0].endswith(
        f"(config /linux/resources/pids): cannot set pids limits: the cgroup is not delegated to "
        f"uid {user.uid} (not writable), so the rootless container gets none")
    if os.path.isdir(f"{CGROUP_ROOT}/pids"):  # v1 or hybrid: the pids hierarchy is named
        assert f"mkdir {CGROUP_ROOT}/pids/ocish/{c} " in lines[0]
    assert not (user.state_root / c).exists() and _ocish_cgroups(c) == []


def test_default_root_rule():
    """runc's rule: $XDG_RUNTIME_DIR/ocish for a caller that is not root, /run/ocish for root."""
    from runtime import cli
    assert cli.default_root() == "/run/ocish"  # we are root here, XDG_RUNTIME_DIR or not
