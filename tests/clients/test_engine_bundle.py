"""`ocish diagnose|debug --podman NAME` and `--containerd ID`: a container that failed to start,
its config read from the engine, its rootfs mounted with the engine's own tools for the
diagnosis (or the session) and unmounted after, on success, on error and on a stop signal.

The failing containers are made by the engines with ocish as their runtime (`podman run
--runtime`, `ctr run --runc-binary`): a command that is not in the image. What is checked comes
from the kernel and the engines: /proc/self/mountinfo (nothing mounted after; the rootfs mounted
while the session runs), the engine's config file unchanged (sha256), the engine's own records
(podman inspect, ctr containers info), the session's cgroup gone.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from tests.clients import helpers as H
from tests.conftest import REPO

MISSING = "/no/such/cmd"


def mount_points() -> set[str]:
    """Every mount point of our mount namespace (podman and ctr run in it too)."""
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f}


def ocish(env: dict, *args: str, **kw) -> H.Result:
    return H.run([sys.executable, "-m", "ocish", *args],
                 env=dict(env, PYTHONPATH=str(REPO)), **kw)


def mounted_by_podman(podman, name: str) -> bool:
    """Whether `podman mount` (no arguments: every mounted container) lists this one."""
    return podman.inspect(name, "{{.Id}}")[:12] in podman.check("mount").stdout


def root_path(config: str) -> str:
    """root.path of podman's config.json: where `podman mount` mounts the rootfs (podman
    inspect's GraphDriver.Data.MergedDir is empty while it is not mounted)."""
    with open(config) as f:
        return json.load(f)["root"]["path"]


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def assert_one_line(r: H.Result, code: int, text: str) -> None:
    assert r.returncode == code, r
    assert r.stderr.count("\n") == 1 and text in r.stderr and "Traceback" not in r.stderr, r


# --- podman ---------------------------------------------------------------------------------------

@pytest.fixture
def failed_podman(podman, runtimes, image_files):
    """A podman container whose command does not exist, from an image of its own (imported from
    the busybox rootfs tar): (name, its OCIConfigPath). Container and image are removed after
    the test, and checked gone."""
    image = f"localhost/ocish-failed:{uuid.uuid4().hex[:8]}"
    name = f"oc-failed-{uuid.uuid4().hex[:8]}"
    with open(image_files["tar"], "rb") as f:
        podman.check("import", "--change", 'CMD ["sh"]', "-", image, input=f.read(), timeout=120)
    try:
        r = podman("run", "--name", name, "--runtime", runtimes["ocish"].path, image, MISSING)
        assert r.returncode == 127, r  # podman: the runtime said "no such file or directory"
        assert podman.inspect(name, "{{.State.Status}}") in ("created", "exited"), r
        yield name, podman.inspect(name, "{{.OCIConfigPath}}")
    finally:
        podman("rm", "--force", "--time", "0", name)
        podman("rmi", "--force", image)
        assert podman("container", "exists", name).returncode == 1
        assert podman("image", "exists", image).returncode == 1


def test_diagnose_podman_by_name(podman, failed_podman):
    name, config = failed_podman
    digest, before = sha256(config), mount_points()
    merged = root_path(config)
    assert merged not in before  # podman unmounted the failed container's rootfs
    r = ocish(podman.env, "diagnose", "--podman", name, "--format", "json")
    assert r.returncode == 1, r
    report = json.loads(r.stdout)
    cid = podman.inspect(name, "{{.Id}}")
    assert report["container"] == {"engine": "podman", "name": name, "id": cid,
                                    "config": config, "rootfs": merged}, report
    assert report["dry_run"]["stage"] == "exec", report
    first = report["findings"][0]
    assert (first["code"], first["stage"], first["pointer"], first["errno_name"],
            first["confirmed"]) == ("entrypoint-missing", "exec", "/process/args/0", "ENOENT",
                                    True), first
    assert first["value"] == MISSING  # read back from the container's config
    # afterwards: not mounted, podman's config as it was, podman's own mount count back at 0
    assert mount_points() == before
    assert sha256(config) == digest
    assert not mounted_by_podman(podman, name)
    assert not os.path.isdir(f"/sys/fs/cgroup/memory/libpod_parent/libpod-{cid}")

    text = ocish(podman.env, "diagnose", "--podman", name)  # by name, text
    assert text.returncode == 1, text
    assert f"ocish diagnose podman container {name} ({cid[:12]})" in text.stdout, text
    assert "/process/args/0" in text.stdout and f"'{MISSING}' does not exist" in text.stdout
    assert mount_points() == before


def test_debug_podman_session(podman, failed_podman, tmp_path):
    name, config = failed_podman
    before = mount_points()
    r = ocish(podman.env, "debug", "--podman", name, "--plain", "--root", str(tmp_path / "r"),
              input="continue\nquit\n", timeout=60)
    assert r.returncode == 1, r  # `continue` failed: the session's exit status says so
    assert f'FAILED: stage exec: exec "{MISSING}" (config /process/args/0)' in r.stderr, r
    assert f"podman container {name}" in r.stderr, r
    assert "1 command(s) failed (input line 1)" in r.stderr, r
    assert mount_points() == before and not mounted_by_podman(podman, name)
    assert os.listdir(tmp_path / "r") == []  # the session's container deleted


def test_debug_podman_stopped_by_sigterm(podman, failed_podman, tmp_path):
    """The rootfs is mounted while the session runs, and unmounted when a signal ends it."""
    name, config = failed_podman
    merged = root_path(config)
    before = mount_points()
    p = subprocess.Popen([sys.executable, "-m", "ocish", "debug", "--podman", name, "--plain",
                          "--root", str(tmp_path / "r")], stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         env=dict(podman.env, PYTHONPATH=str(REPO)))
    try:
        banner = ""
        while "container side started" not in banner:
            line = p.stderr.readline()
            assert line, f"the session ended early: {banner}"
            banner += line
        assert merged in mount_points() - before  # podman mount, for the session
        bundle = banner.split("bundle ", 1)[1].split(",", 1)[0]
        assert os.path.isfile(os.path.join(bundle, "config.json"))
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        H.reap()
    assert mount_points() == before and not mounted_by_podman(podman, name)
    assert not os.path.exists(bundle)
    assert os.listdir(tmp_path / "r") == []


def test_podman_errors(podman):
    r = ocish(podman.env, "diagnose", "--podman", "no-such-container-here")
    assert_one_line(r, 2, "ocish: diagnose: podman container no-such-container-here: "
                          "no such container")
    r = ocish(podman.env, "debug", "--podman", "no-such-container-here", "--plain")
    assert_one_line(r, 1, "ocish: podman container no-such-container-here: no such container")
    r = ocish(dict(podman.env, PATH="/nonexistent"), "diagnose", "--podman", "x")
    assert_one_line(r, 2, "ocish: diagnose: podman is not installed")


# --- containerd -----------------------------------------------------------------------------------

@pytest.fixture
def failed_ctr(containerd, runtimes, ctr_id):
    """A containerd container (ctr run, ocish as the runc shim's binary) whose command does not
    exist; task and container are removed after the test (ctr_id)."""
    cid = ctr_id()
    rt = runtimes["ocish"]
    r = containerd.ctr("run", "--runc-binary", rt.path, "--runc-root",
                       containerd.roots["ocish"], H.IMAGE, cid, MISSING)
    assert r.returncode != 0 and "no such file or directory" in r.stderr, r
    assert cid in containerd.ctr("containers", "list", "--quiet").stdout.split()
    return cid


def test_diagnose_containerd(containerd, failed_ctr):
    cid = failed_ctr
    env = dict(os.environ, CONTAINERD_ADDRESS=containerd.sock)
    info = containerd.ctr("containers", "info", cid).stdout
    before = mount_points()
    r = ocish(env, "diagnose", "--containerd", cid, "--namespace", H.NS, "--format", "json")
    assert r.returncode == 1, r
    report = json.loads(r.stdout)
    assert report["container"]["engine"] == "containerd" and \
        report["container"]["namespace"] == H.NS, report
    first = report["findings"][0]
    assert (first["code"], first["stage"], first["pointer"], first["value"]) == \
        ("entrypoint-missing", "exec", "/process/args/0", MISSING), first
    assert mount_points() == before  # the snapshot unmounted, its mount point removed
    assert not os.path.exists(report["container"]["rootfs"])
    assert containerd.ctr("containers", "info", cid).stdout == info  # its record untouched

    r = ocish(env, "diagnose", "--containerd", "no-such-ctr", "--namespace", H.NS)
    assert_one_line(r, 2, "no-such-ctr")
    r = ocish(dict(env, CONTAINERD_ADDRESS="/nonexistent.sock"), "diagnose",
              "--containerd", cid)
    assert_one_line(r, 2, "ocish: diagnose: containerd is not running: no socket at "
                          "/nonexistent.sock")
    assert mount_points() == before
