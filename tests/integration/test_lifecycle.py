"""Lifecycle transitions, state JSON, exit codes and messages, checked side by side with runc."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, cid, needs_root, ocish_cmd

pytestmark = needs_root
RUNC = shutil.which("runc")


def test_create_start_state_delete(ocish, make_bundle):
    b = make_bundle(["sleep", "30"])
    c = cid()
    ocish("create", "-b", str(b), c, check=True)
    st = ocish.state(c)
    assert st["status"] == "created" and st["pid"] > 0
    assert st["bundle"] == str(b) and st["rootfs"] == str(b / "rootfs")
    assert st["id"] == c and st["ociVersion"].startswith("1.")
    assert set(st) >= {"ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"}
    # the init is parked on exec.fifo: not the user process yet
    assert open(f"/proc/{st['pid']}/cmdline", "rb").read().split(b"\0")[0] != b"sleep"
    ocish("start", c, check=True)
    st2 = ocish.state(c)
    assert st2["status"] == "running" and st2["pid"] == st["pid"]
    assert open(f"/proc/{st['pid']}/cmdline", "rb").read().split(b"\0")[:2] == [b"sleep", b"30"]
    p = ocish("start", c)
    assert p.returncode == 1 and "cannot start an already running container" in p.stderr
    p = ocish("delete", c)
    assert p.returncode == 1 and "not stopped: running" in p.stderr
    ocish("kill", c, "KILL", check=True)
    _wait_status(ocish, c, "stopped")
    assert ocish.state(c)["pid"] == 0
    p = ocish("kill", c)
    assert p.returncode == 1 and "container not running" in p.stderr
    assert ocish("kill", "--all", c, "9").returncode == 0
    p = ocish("start", c)
    assert p.returncode == 1 and "cannot start a container that has stopped" in p.stderr
    ocish("delete", c, check=True)
    assert not os.path.exists(os.path.join(ocish.root, c))
    p = ocish("state", c)
    assert p.returncode == 1 and p.stderr.strip() == "ocish: container does not exist"


def _wait_status(ocish, c: str, want: str) -> None:
    _wait_for(lambda: ocish.state(c)["status"] == want)


def test_run_exit_codes(ocish, make_bundle):
    assert ocish("run", "-b", str(make_bundle(["true"])), cid()).returncode == 0
    assert ocish("run", "-b", str(make_bundle(["sh", "-c", "exit 42"])), cid()).returncode == 42
    assert os.listdir(ocish.root) == []  # run deletes what it created


def test_run_killed_by_signal_exits_128_plus_n(ocish, make_bundle, tmp_path):
    c = cid()
    b = make_bundle(["sleep", "30"])
    env = dict(os.environ, PYTHONPATH=str(REPO))
    with open(tmp_path / "out", "w") as out:
        runner = subprocess.Popen(ocish_cmd() + ["--root", ocish.root, "run", "-b", str(b), c],
                                  stdout=out, stderr=out, stdin=subprocess.DEVNULL, env=env)
        try:
            _wait_for(lambda: ocish("state", c).returncode == 0 and ocish.state(c)["status"] == "running")
            ocish("kill", c, "SIGKILL", check=True)
            assert runner.wait(timeout=20) == 137
        finally:
            runner.kill()
            runner.wait()
    assert not os.path.exists(os.path.join(ocish.root, c))


def _wait_for(cond, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.05)


def test_run_detach_and_keep(ocish, make_bundle):
    c = cid()
    ocish("run", "-d", "-b", str(make_bundle(["sleep", "30"])), c, check=True)
    assert ocish.state(c)["status"] == "running"
    ocish("delete", "-f", c, check=True)
    assert not os.path.exists(os.path.join(ocish.root, c))
    c2 = cid()
    assert ocish("run", "--keep", "-b", str(make_bundle(["true"])), c2).returncode == 0
    assert ocish.state(c2)["status"] == "stopped"


def test_list_formats(ocish, make_bundle):
    c = cid()
    ocish("create", "-b", str(make_bundle(["true"])), c, check=True)
    assert ocish("list", "-q").stdout.split() == [c]
    rows = json.loads(ocish("list", "-f", "json").stdout)
    assert [r["id"] for r in rows] == [c] and rows[0]["status"] == "created"
    table = ocish("list").stdout.splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert table[1].split()[:3] == [c, str(rows[0]["pid"]), "created"]


@pytest.mark.parametrize("args,message", [
    (["state", "nope"], "container does not exist"),
    (["start", "nope"], "container does not exist"),
    (["kill", "nope"], "container does not exist"),
    (["delete", "nope"], "container does not exist"),
])
def test_missing_container_messages(ocish, args, message, tmp_path):
    p = ocish(*args)
    assert p.returncode == 1 and p.stderr.strip() == f"ocish: {message}"
    if RUNC:
        r = subprocess.run(["runc", "--root", str(tmp_path / "runc")] + args, capture_output=True,
                           text=True)
        assert r.returncode == p.returncode and message in r.stderr


def test_delete_force_missing_is_ok(ocish):
    assert ocish("delete", "-f", "nope").returncode == 0


def test_duplicate_and_invalid_ids(ocish, make_bundle):
    b = make_bundle(["true"])
    c = cid()
    ocish("create", "-b", str(b), c, check=True)
    p = ocish("create", "-b", str(b), c)
    assert p.returncode == 1 and p.stderr.strip() == f"ocish: container with id exists: {c}"
    assert ocish.state(c)["status"] == "created"  # the first one is untouched
    for bad in ["a/b", "..", "", "x/../y"]:
        p = ocish("create", "-b", str(b), bad)
        assert p.returncode == 1 and "invalid container id" in p.stderr and "Traceback" not in p.stderr
    assert sorted(os.listdir(ocish.root)) == [c]


def test_json_log(ocish, tmp_path):
    log = tmp_path / "log.json"
    p = ocish("--log", str(log), "--log-format", "json", "state", "nope")
    assert p.returncode == 1
    line = json.loads(log.read_text().splitlines()[-1])
    assert line["level"] == "error" and line["msg"] == "container does not exist" and "time" in line


def test_systemd_cgroup_refused(ocish):
    p = ocish("--systemd-cgroup", "list")
    assert p.returncode == 1 and "systemd" in p.stderr


@pytest.mark.skipif(not RUNC, reason="runc not installed")
def test_same_exit_status_as_runc(ocish, make_bundle, tmp_path):
    b = make_bundle(["sh", "-c", "exit 7"])
    mine = ocish("run", "-b", str(b), cid()).returncode
    theirs = subprocess.run(["runc", "--root", str(tmp_path / "runc"), "run", "-b", str(b), cid()],
                            capture_output=True, stdin=subprocess.DEVNULL).returncode
    assert mine == theirs == 7


def _entrypoint(body: str):
    """A bundle change: /bin/entry, executable, with `body`; create's lookup accepts it."""
    def mutate(spec):
        spec["process"]["args"] = ["entry"]  # found in PATH: the message names the resolved path
    def write(bundle):
        path = bundle / "rootfs/bin/entry"
        path.write_text(body)
        path.chmod(0o755)
    return mutate, write


@pytest.mark.skipif(not RUNC, reason="runc not installed")
@pytest.mark.parametrize("body,why", [
    ("#!/no/such/interpreter\necho hi\n", "no such file or directory"),  # missing interpreter
    ("echo hi without a #! line\n", "exec format error"),                  # ENOEXEC
])
def test_execve_failing_after_start_exits_1_as_runc(ocish, make_bundle, tmp_path, body, why):
    mutate, write = _entrypoint(body)
    b = make_bundle(mutate=mutate)
    write(b)
    mine = ocish("run", "-b", str(b), cid())
    theirs = subprocess.run(["runc", "--root", str(tmp_path / "runc"), "run", "-b", str(b), cid()],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert theirs.returncode == 1 and theirs.stderr == f"exec /bin/entry: {why}\n", theirs
    assert (mine.returncode, mine.stderr) == (theirs.returncode, theirs.stderr), mine
    assert os.listdir(ocish.root) == []
    # `exec` in a running container ends the same way as `runc exec`
    c = cid()
    ocish("run", "-d", "-b", str(make_bundle(["sleep", "30"])), c, check=True)
    bundle = ocish.state(c)["bundle"]
    write(Path(bundle))
    p = ocish("exec", c, "/bin/entry")
    assert (p.returncode, p.stderr) == (1, f"exec /bin/entry: {why}\n"), p


def test_debug_logs_every_setup_step(ocish, make_bundle, tmp_path):
    log = tmp_path / "debug.json"
    p = ocish("--debug", "--log", str(log), "--log-format", "json", "run", "-b",
              str(make_bundle(["true"])), cid())
    assert p.returncode == 0, p.stderr
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    steps = [x["msg"].split()[1] for x in lines if x["level"] == "debug"]
    assert steps[:2] == ["cgroup", "unshare"] and steps[-1] == "exec"
    assert "mounts" in steps and "pivot" in steps
