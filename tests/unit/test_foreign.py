"""ocish/foreign.py's readers of other runtimes' state, on state roots laid out as runc 1.1.5 and
crun 1.8 write them, around a real process (a `sleep` child: its pid and start time). crun's
layout is tested here only: crun 1.8.1 (Debian's) refuses to run any container on this hybrid
cgroup host ("cgroups in hybrid mode not supported, drop all controllers from cgroupv2")."""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from ocish import foreign
from runtime.errors import OcishError
from runtime.linux import procfs


@pytest.fixture
def init():
    p = subprocess.Popen(["sleep", "60"], env={"PATH": os.environ["PATH"], "PROBE": "1"})
    try:
        # Popen may return before the child's execve has laid out its new environment
        deadline = time.monotonic() + 10
        while b"PROBE=1" not in Path(f"/proc/{p.pid}/environ").read_bytes():
            assert time.monotonic() < deadline, "sleep did not start"
            time.sleep(0.005)
        yield p.pid, procfs.start_time(p.pid)
    finally:
        p.kill()
        p.wait()


def bundle(tmp_path, hostname: str) -> str:
    b = tmp_path / "bundle"
    b.mkdir(exist_ok=True)
    (b / "config.json").write_text(json.dumps({"ociVersion": "1.0.2", "hostname": hostname,
                                               "root": {"path": "rootfs"},
                                               "process": {"args": ["sh"], "cwd": "/"}}))
    return str(b)


def test_runc_state_json(tmp_path, init):
    pid, start = init
    b = bundle(tmp_path, "from-bundle")
    d = tmp_path / "root" / "web"
    d.mkdir(parents=True)
    (d / "state.json").write_text(json.dumps({
        "id": "web", "init_process_pid": pid, "init_process_start": start,
        "created": "2026-01-02T03:04:05.000000006Z",
        "config": {"rootfs": f"{b}/rootfs", "labels": [f"bundle={b}"]}}))
    f = foreign.find("web", "runc", str(tmp_path / "root"))
    assert (f.label, f.pid, f.bundle, f.rootfs, f.config["hostname"], f.config_path) == (
        "runc container web", pid, b, f"{b}/rootfs", "from-bundle", f"{b}/config.json")
    assert f.status() == "running" and f.oci_state()["pid"] == pid
    (d / "exec.fifo").touch()  # runc's `create` done, `start` not yet
    assert f.status() == "created"
    # by pid: the container whose init it is (same start time)
    assert foreign.find(str(pid), None, str(tmp_path / "root")).id == "web"


def test_crun_status_and_its_config_copy(tmp_path, init):
    pid, start = init
    b = bundle(tmp_path, "from-bundle")
    d = tmp_path / "root" / "db"
    d.mkdir(parents=True)
    (d / "status").write_text(json.dumps({
        "pid": pid, "process-start-time": start, "cgroup-path": "/db", "rootfs": "rootfs",
        "bundle": b, "created": "2026-01-02T03:04:05Z", "owner": "root", "detached": True}))
    (d / "config.json").write_text(json.dumps({"ociVersion": "1.0.2", "hostname": "crun-copy"}))
    f = foreign.find("db", "crun", str(tmp_path / "root"))
    assert (f.label, f.pid, f.start_time, f.rootfs, f.owner) == (
        "crun container db", pid, start, f"{b}/rootfs", "root")
    assert f.config["hostname"] == "crun-copy"  # crun's copy, as it was created
    # without --runtime the layout says whose it is
    assert foreign.find("db", None, str(tmp_path / "root")).runtime == "crun"


def test_a_reused_pid_is_not_the_container(tmp_path, init):
    pid, start = init
    d = tmp_path / "root" / "old"
    d.mkdir(parents=True)
    (d / "state.json").write_text(json.dumps({"id": "old", "init_process_pid": pid,
                                              "init_process_start": start - 1, "config": {}}))
    f = foreign.find("old", "runc", str(tmp_path / "root"))
    assert f.status() == "stopped" and f.oci_state()["pid"] == 0
    assert foreign.find(str(pid), "runc", str(tmp_path / "root")).label == f"process {pid}"


def test_what_is_not_theirs_or_not_there(tmp_path):
    root = tmp_path / "root"
    (root / "ours").mkdir(parents=True)
    (root / "ours" / "state.json").write_text(json.dumps({"ocish": 1, "id": "ours"}))
    with pytest.raises(OcishError, match=f"is an ocish container: `ocish --root {root} attach"):
        foreign.find("ours", "runc", str(root))
    (root / "junk").mkdir()
    (root / "junk" / "state.json").write_text("[1]")
    with pytest.raises(OcishError, match="state.json: not a JSON object"):
        foreign.find("junk", "runc", str(root))
    with pytest.raises(foreign.NotFound, match=f"no container gone in {root} \\(crun\\)"):
        foreign.find("gone", "crun", str(root))


def test_kernel_process_is_the_init_as_it_runs(init):
    pid, _ = init
    p = foreign.kernel_process(pid)
    assert p["user"] == {"uid": os.geteuid(), "gid": os.getegid()}
    with open(f"/proc/{pid}/status") as f:
        eff = next(ln.split()[1] for ln in f if ln.startswith("CapEff:"))
    from runtime.linux import capabilities
    assert p["capabilities"]["effective"] == capabilities.names(int(eff, 16))
    assert p["env"] == ["PATH=" + os.environ["PATH"], "PROBE=1"]
