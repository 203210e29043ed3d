"""A hook that a session waits for never outlives it: `ocish replay` and a piped `ocish debug`
stopped by SIGINT, SIGTERM or SIGHUP while a createRuntime (run by the shell) or createContainer
(run by the container side) hook sleeps leave no process of it behind; and Ctrl-C (SIGINT to a
piped session, the key on a terminal) kills the hook at once and stops the step as interrupted,
not as a failure of the config."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest

from tests.conftest import REPO, children, cid, needs_root, ocish_cmd, reap_orphans
from tests.integration.test_hooks import _all_gone, _hanging, _pids
from tests.shell.conftest import _sweep_cgroups, cgroup_dirs

pytestmark = needs_root


def _hooked(make_bundle, d, kind: str):
    hook = _hanging(d)

    def mutate(spec):
        spec["hooks"] = {kind: [{"path": hook}]}
        spec["mounts"].append({"destination": str(d), "type": "bind", "source": str(d),
                               "options": ["rbind"]})
    return make_bundle(["sleep", "100"], mutate=mutate), hook


def _session_cmd(kind: str, ocish, bundle, c: str, script) -> list[str]:
    if kind == "replay":
        return ocish_cmd() + ["replay", str(script), "--bundle", str(bundle), "--id", c,
                              "--root", ocish.root]
    return ocish_cmd() + ["debug", str(bundle), "--id", c, "--root", ocish.root]


@pytest.mark.parametrize("how", ["replay", "debug"])
@pytest.mark.parametrize("kind", ["createRuntime", "createContainer"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stopped_session_leaves_no_hook_running(ocish, make_bundle, open_dir, tmp_path, how,
                                                  kind, signum):
    bundle, hook = _hooked(make_bundle, open_dir, kind)
    script = tmp_path / "s.ocish"
    script.write_text("load $bundle\ncontinue\nexpect status == created\n")
    c = cid()
    before = children()
    p = subprocess.Popen(_session_cmd(how, ocish, bundle, c, script), stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        if how == "debug":
            p.stdin.write(b"continue\n")
            p.stdin.flush()
        pids = _pids(hook)
        p.send_signal(signum)
        if how == "debug" and signum == signal.SIGINT:  # Ctrl-C: the step stops, the session goes on
            assert _all_gone(pids)
            p.stdin.write(b"quit\n")
            p.stdin.close()
            assert p.wait(30) == 0
            assert b"interrupted: stage " in p.stderr.read()
        else:
            assert p.wait(30) == 128 + signum
        assert _all_gone(pids), f"hook processes left: {pids}"
        assert not cgroup_dirs(c) and not os.path.exists(os.path.join(ocish.root, c))
        reap_orphans()
        assert children() <= before
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stderr.close()
        _sweep_cgroups(c)


@pytest.mark.parametrize("kind", ["createRuntime", "createContainer"])
def test_ctrl_c_during_a_hook_is_an_interrupted_stop(ocish, session, make_bundle, open_dir,
                                                     kind):
    bundle, hook = _hooked(make_bundle, open_dir, kind)
    s = session(bundle)
    s.proc.stdin.write(b"continue\n")
    s.proc.stdin.flush()
    pids = _pids(hook)
    s.proc.send_signal(signal.SIGINT)
    out = s._until_prompt(30)
    stage = "hooks createRuntime" if kind == "createRuntime" else "container-hooks createContainer"
    assert (f"interrupted: stage {stage}: Ctrl-C killed its hook {hook} (config /hooks/{kind}/0) "
            "before it finished; `restart` sets the container up again, `quit` cleans up") in out
    assert "FAILED" not in out and "killed by signal" not in out and "error" not in out
    assert _all_gone(pids)
    assert s.cmd("expect status == interrupted") == "ok: status == interrupted\n"
    assert s.cmd("step").startswith(f"error: interrupted at stage {stage}: ")
    assert s.cmd("inspect proc --json")  # the container process is still there to inspect
    # retried with restart: the hook runs again (and is let finish, quickly, this time)
    (open_dir / "hang.sh").write_text("#!/bin/sh\nexit 0\n")
    assert "stopped before the first stage" in s.cmd("restart")
    assert "setup complete" in s.cmd("continue")
    s.quit()
    assert s.proc.returncode == 1  # `step` failed


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_ctrl_c_key_during_a_hook(ocish, make_bundle, open_dir, tmp_path):
    from tests.shell.test_terminal import _cleanup, _session
    bundle, hook = _hooked(make_bundle, open_dir, "createRuntime")
    c = cid()
    t = _session(ocish, bundle, c, tmp_path / "home")
    try:
        t.wait_for("stage cgroup")
        t.keys("continue", "Enter")
        pids = _pids(hook)
        time.sleep(0.2)
        t.keys("C-c")
        t.wait_for("status interrupted")
        assert "interrupted: stage hooks createRuntime: Ctrl-C killed its hook" in t.history()
        assert "FAILED" not in t.history()
        assert _all_gone(pids)
        t.keys("quit", "Enter")
        t.wait_for("OCISH-EXITED 0")
    finally:
        _cleanup(ocish, t, c)
    assert not cgroup_dirs(c)
