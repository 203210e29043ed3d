"""Shared fixtures: a private mount namespace for the whole run, bundles, and an ocish runner.

The test process enters its own mount namespace first, so a mount that a failing test leaks dies
with pytest instead of staying on the host. Every container a test creates lives under a
per-test --root that the fixture force-deletes afterwards, pass or fail.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
IS_ROOT = os.geteuid() == 0


def _private_mount_ns() -> None:
    from runtime.linux import syscalls as S
    S.unshare(S.CLONE_NEWNS)
    S.mount(None, "/", None, S.MS_REC | S.MS_PRIVATE)


def reap_orphans() -> None:
    """Containers' init processes are reparented to us (the subreaper): collect the dead ones."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


if IS_ROOT:
    _private_mount_ns()
    from runtime.linux import syscalls as _S
    # Without this, orphaned containers go to PID 1, which on these machines never reaps them.
    _S.prctl(_S.PR_SET_CHILD_SUBREAPER, 1)


def ocish_cmd() -> list[str]:
    return [sys.executable, "-m", "ocish"]


def run_ocish(*args: str, root: str | None = None, check: bool = False, timeout: float = 60,
              **kw) -> subprocess.CompletedProcess:
    cmd = ocish_cmd() + (["--root", root] if root else []) + list(args)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    kw.setdefault("stdin", subprocess.DEVNULL)
    # Files, not pipes: a created container inherits stdout/stderr and keeps them open after
    # `create` exits, so reading a pipe to EOF would wait for the container.
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        rc = subprocess.run(cmd, stdout=out, stderr=err, timeout=timeout, env=env, **kw).returncode
        out.seek(0)
        err.seek(0)
        p = subprocess.CompletedProcess(cmd, rc, out.read(), err.read())
    if check and p.returncode != 0:
        raise AssertionError(f"{cmd} -> {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}")
    return p


class Runtime:
    """An ocish with its own --root; `delete_all` is the safety net every test gets."""

    def __init__(self, root: str) -> None:
        self.root = root

    def __call__(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return run_ocish(*args, root=self.root, **kw)

    def state(self, cid: str) -> dict:
        return json.loads(self("state", cid, check=True).stdout)

    def delete_all(self) -> None:
        if not os.path.isdir(self.root):
            return
        for cid in os.listdir(self.root):
            self("delete", "-f", "--", cid)
        shutil.rmtree(self.root, ignore_errors=True)
        reap_orphans()


@pytest.fixture
def ocish(request) -> Runtime:
    rt = Runtime(f"/run/ocish-test-{uuid.uuid4().hex[:8]}")
    request.addfinalizer(rt.delete_all)
    return rt


@pytest.fixture(scope="session")
def rootfs_template(tmp_path_factory) -> Path:
    from ocish.bundle import init_bundle
    d = tmp_path_factory.mktemp("template")
    init_bundle(str(d / "b"))
    return d / "b"


@pytest.fixture
def make_bundle(tmp_path, rootfs_template):
    """make_bundle(args, **spec_changes) -> bundle dir; `mutate(spec)` may edit the config freely."""
    count = [0]

    def make(args: list[str] | None = None, mutate=None, terminal: bool = False,
             base: Path | None = None) -> Path:
        count[0] += 1
        b = (base or tmp_path) / f"bundle{count[0]}"
        b.mkdir()
        subprocess.run(["cp", "-a", str(rootfs_template / "rootfs"), str(b / "rootfs")], check=True)
        spec = json.loads((rootfs_template / "config.json").read_text())
        spec["process"]["args"] = args or ["true"]
        spec["process"]["terminal"] = terminal
        if mutate:
            mutate(spec)
        (b / "config.json").write_text(json.dumps(spec))
        return b

    return make


@pytest.fixture
def bundle_dir(tmp_path):
    """bundle_dir(open_dir) -> where a case's bundle goes: tmp_path (mode 0700), or with
    `open_dir` a world-searchable dir (for bundles whose mapped ids must reach them)."""
    made = []

    def where(open_dir: bool) -> Path:
        if not open_dir:
            return tmp_path / "case"
        d = Path(tempfile.mkdtemp(prefix="ocish-test-", dir="/tmp"))
        d.chmod(0o755)
        made.append(d)
        return d / "case"
    yield where
    for d in made:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def open_dir():
    """A world-traversable temp dir (pytest's own is 0700): for bundles used by mapped ids."""
    d = Path(tempfile.mkdtemp(prefix="ocish-test-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def proc_stat(pid: int) -> dict:
    """Fields of /proc/<pid>/stat (after the command name) a test looks at."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return {"state": rest[0], "pgrp": int(rest[2]), "session": int(rest[3]),
            "tty_nr": int(rest[4]), "tpgid": int(rest[5])}


def children() -> set[int]:
    """This process's live children (orphaned containers come back to it: it is a subreaper)."""
    kids: set[int] = set()
    for f in glob.glob(f"/proc/{os.getpid()}/task/*/children"):
        with open(f) as fh:
            kids |= {int(p) for p in fh.read().split()}
    return kids


def mount_count() -> int:
    """Mounts in our (private) mount namespace: a test that leaks one changes the count."""
    with open("/proc/self/mountinfo") as f:
        return len(f.readlines())


def cid() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root and the real kernel")
