"""`load`, `attach` and `restart` replace the held container only once the new one is sure to
work, and not without asking: a bundle that is missing or refused, or a container that does not
exist, leaves the held one as it is (even running); on a terminal a created or running one is
deleted only after a yes (gdb's "Start it from the beginning? (y or n)"); piped, the session goes
on and says what it removed."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.conftest import cid, needs_root
from tests.shell.conftest import alive, cgroup_dirs

pytestmark = needs_root


def _running(s) -> int:
    s.cmd("continue")
    assert "started container" in s.cmd("start")
    return s.json("state --json")["pid"]


def test_a_failed_load_or_attach_keeps_the_running_container(ocish, session, make_bundle):
    good = make_bundle(["sleep", "100"])
    refused = make_bundle(["sleep", "100"], mutate=lambda spec: spec["process"].update(cwd="srv"))
    s = session(good)
    pid = _running(s)
    kept = f"container {s.cid} is kept (running, pid {pid})"
    out = s.cmd(f"load {good}/nope")
    assert out == f'error: bundle "{good}/nope": no such file or directory: {kept}\n'
    out = s.cmd(f"load {refused}")
    assert out.startswith(f'error: config /process/cwd: must be an absolute path, got "srv": '
                          f"{kept}\n")
    assert f"{refused}/config.json: 1 error, 0 warnings (create refuses it)" in out  # lint's list
    assert f"{kept}: fix config.json, then `load` (or `restart`) again" in out
    out = s.cmd("attach nope")  # ours looked at first, then the other runtimes' (foreign.py)
    assert out.startswith(f"error: attach nope: no container nope in {ocish.root} (ocish), "
                          "/run/runc (runc), ") and out.endswith(f": {kept}\n"), out
    assert s.cmd(f"attach {s.cid}") == f"error: container {s.cid} is this session's already\n"
    assert alive(pid) and s.json("state --json")["status"] == "running"
    assert ocish.state(s.cid)["pid"] == pid
    # restart with a config.json broken in the meantime: the same
    spec = json.loads((good / "config.json").read_text())
    (good / "config.json").write_text(json.dumps(dict(spec, process=dict(spec["process"],
                                                                         cwd="srv"))))
    out = s.cmd("restart")
    assert out.startswith(f'error: config /process/cwd: must be an absolute path, got "srv": '
                          f"{kept}; fix config.json, then `restart` again\n")
    assert alive(pid)
    # piped: a load that works replaces it, and says so
    (good / "config.json").write_text(json.dumps(spec))
    out = s.cmd(f"restart")
    assert out.startswith(f"container {s.cid} (running, pid {pid}) deleted: `restart` replaces "
                          f"it\nbundle {good}, container {s.cid}"), out
    assert not alive(pid)
    other = cid()
    out = s.cmd(f"load {good} --id {other}")
    assert out.startswith(f"container {s.cid} (setting up, pid ")
    assert f"deleted: `load` replaces it\nbundle {good}, container {other}" in out
    assert not os.path.exists(os.path.join(ocish.root, s.cid)) and not cgroup_dirs(s.cid)
    s.quit()
    assert not cgroup_dirs(other)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_on_a_terminal_load_and_restart_ask_first(ocish, make_bundle, tmp_path):
    from tests.shell.test_terminal import _cleanup, _session
    b = make_bundle(["sleep", "100"])
    c = cid()
    t = _session(ocish, b, c, tmp_path / "home")
    try:
        t.wait_for("stage cgroup")
        t.keys("continue", "Enter")
        t.wait_for("status created")
        t.keys("start", "Enter")
        t.wait_for("status running")
        pid = ocish.state(c)["pid"]
        t.keys("restart", "Enter")
        screen = t.wait_for("Start it from the beginning? (y or n)")
        assert ("The container being debugged has been started already: container "
                f"{c} (running, pid {pid}) will be deleted.") in t.history()
        t.keys("n", "Enter")
        t.wait_for(f"not confirmed: container {c} (running, pid {pid}) is kept")
        assert alive(pid) and ocish.state(c)["status"] == "running"
        t.keys(f"load {b} --id other", "Enter")
        t.wait_for(f"Load {b} anyway? (y or n)")
        t.keys("n", "Enter")
        t.wait_prompts(5)
        assert alive(pid)
        t.keys("restart", "Enter")
        t.wait_for("Start it from the beginning? (y or n)")
        t.keys("y", "Enter")
        t.wait_for(f"id {c} | status setting up | stage cgroup")
        assert not alive(pid)
        t.keys("quit", "Enter")
        t.wait_for("OCISH-EXITED 0")
    finally:
        _cleanup(ocish, t, c)
    assert not os.path.exists(os.path.join(ocish.root, c)) and not cgroup_dirs(c)
