"""A bad config opens the shell anyway (issue 14, item 3): `ocish debug BUNDLE` lists every
problem lint finds, sets nothing up, and `restart` (or `reload`) reads config.json again."""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.conftest import REPO, cid, needs_root, ocish_cmd
from tests.shell.conftest import cgroup_dirs

pytestmark = needs_root


def _break(spec):
    spec["process"]["cwd"] = "srv"                                     # the runtime's first
    spec["process"]["capabilities"]["bounding"].append("CAP_NET_BIND_SERVIC")
    spec["mounts"].append({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                           "options": ["size=lots"]})                  # the kernel's parser
    spec["hostnmae"] = "web"                                           # a warning


def _write(bundle, spec) -> None:
    (bundle / "config.json").write_text(json.dumps(spec))


def test_every_problem_listed_then_fixed_and_restarted(ocish, session, make_bundle):
    b = make_bundle(["sleep", "100"])
    good = json.loads((b / "config.json").read_text())
    bad = json.loads(json.dumps(good))
    _break(bad)
    _write(b, bad)
    s = session(b)
    out = s.banner
    assert out.startswith('ocish: config /process/cwd: must be an absolute path, got "srv": '
                          "fix config.json, then `restart` reads it again\n"), out
    assert f"{b}/config.json: 3 errors, 1 warning (create refuses it)" in out
    heads = [ln.split()[:2] for ln in out.splitlines() if ln.startswith(("error ", "warning "))]
    assert heads == [["error", "/process/cwd"], ["error", "/process/capabilities/bounding/3"],
                     ["error", "/mounts/7/options/0"], ["warning", "/hostnmae"]]
    assert "did you mean CAP_NET_BIND_SERVICE?" in out
    assert "tmpfs: Bad value for 'size'" in out
    assert "nothing is set up: fix config.json, then `restart` (or `reload`) reads it again" in out
    assert not os.path.exists(os.path.join(ocish.root, s.cid)) and not cgroup_dirs(s.cid)
    # nothing to step through; the shell says why and how to go on
    assert s.cmd("step").startswith("error: nothing loaded: config /process/cwd")
    # still broken (one problem fixed): `reload` lists what is left
    bad["process"]["cwd"] = "/"
    _write(b, bad)
    out = s.cmd("reload")
    assert out.startswith("error: config /process/capabilities/bounding/3: unknown capability")
    assert f"{b}/config.json: 2 errors, 1 warning (create refuses it)" in out
    # fixed: restart sets the container up, stopped before the first stage
    _write(b, good)
    out = s.cmd("restart")
    assert f"container {s.cid}" in out and "stopped before the first stage" in out, out
    assert "error" not in out
    s.cmd("continue")
    assert ocish.state(s.cid)["status"] == "created"
    end = s.quit()
    # the refused load counts as a failed command: a script learns of it by the exit status
    assert "ocish: 3 command(s) failed (input line 0 (the bundle's load), 1, 2)" in end
    assert s.proc.returncode == 1
    assert not os.path.exists(os.path.join(ocish.root, s.cid)) and not cgroup_dirs(s.cid)


def test_a_partial_fix_that_loads_lists_what_lint_still_finds(ocish, session, make_bundle):
    """The runtime takes config.json again, but lint still finds an error (a mount option
    the kernel refuses): `reload` lists it, as the first open did, and `continue` fails
    where it says."""
    b = make_bundle(["sleep", "100"])
    good = json.loads((b / "config.json").read_text())
    bad = json.loads(json.dumps(good))
    _break(bad)
    _write(b, bad)
    s = session(b)
    bad["process"]["cwd"] = "/"
    bad["process"]["capabilities"]["bounding"].pop()
    _write(b, bad)
    out = s.cmd("reload")
    assert f"container {s.cid}" in out and "stopped before the first stage" in out
    assert f"{b}/config.json: 1 error, 1 warning (create refuses it)" in out
    assert "error   /mounts/7/options/0" in out and "warning /hostnmae" in out
    assert ("config.json loads now, but lint still finds the problems above: the setup fails "
            "where an error says" in out)
    assert "stage mounts, mount: EINVAL" in out
    assert "FAILED: stage mounts" in s.cmd("continue")
    bad["mounts"] = good["mounts"]  # the error fixed, the unknown member (a warning) kept
    _write(b, bad)
    out = s.cmd("restart")
    assert f"{b}/config.json: 0 errors, 1 warning" in out
    assert "lint still finds the problems above: warnings only: the setup may go through" in out
    _write(b, good)
    out = s.cmd("restart")
    assert "stopped before the first stage" in out and "lint" not in out
    assert "lint" not in s.cmd("restart")  # clean: nothing more is said
    s.quit()


def test_config_that_is_not_json_opens_the_shell(ocish, session, make_bundle):
    b = make_bundle(["true"])
    text = (b / "config.json").read_text()
    (b / "config.json").write_text(text[:-1] + ",}")
    s = session(b)
    assert f'ocish: bundle "{b}": config.json: invalid json at line 1' in s.banner
    assert "config.json: 1 error, 0 warnings (create refuses it)" in s.banner
    assert "config.json cannot be parsed" in s.banner
    (b / "config.json").write_text(text)
    assert "stopped before the first stage" in s.cmd("restart")
    s.quit()


def test_errexit_stops_after_the_list(ocish, make_bundle):
    b = make_bundle(["true"])
    spec = json.loads((b / "config.json").read_text())
    _break(spec)
    _write(b, spec)
    c = cid()
    p = subprocess.run(ocish_cmd() + ["debug", str(b), "--id", c, "--root", ocish.root,
                                      "--plain", "--errexit"], input="continue\n",
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert p.returncode == 1
    assert "3 errors, 1 warning" in p.stderr and "continue" not in p.stdout
    assert "Traceback" not in p.stderr
    assert not os.path.exists(os.path.join(ocish.root, c)) and not cgroup_dirs(c)


def test_missing_bundle_still_exits_at_once(ocish, tmp_path):
    p = subprocess.run(ocish_cmd() + ["debug", str(tmp_path / "nope"), "--root", ocish.root,
                                      "--plain"], input="quit\n", capture_output=True,
                       text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert p.returncode == 1
    assert p.stderr == f'ocish: bundle "{tmp_path / "nope"}": no such file or directory\n'


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_terminal_lists_the_problems_and_reloads(ocish, make_bundle, tmp_path):
    from tests.shell.test_terminal import Tmux, _cleanup
    b = make_bundle(["sleep", "100"])
    good = (b / "config.json").read_text()
    spec = json.loads(good)
    _break(spec)
    _write(b, spec)
    c = cid()
    env = {"PYTHONPATH": str(REPO), "HOME": str(tmp_path / "home"), "TERM": "xterm-256color"}
    t = Tmux(f"python3 -m ocish debug {b} --root {ocish.root} --id {c}", env)
    try:
        screen = t.wait_for("config.json refused: fix it, then restart")  # the toolbar
        history = t.history()
        assert "3 errors, 1 warning (create refuses it)" in history
        assert "error   /mounts/7/options/0" in history and "(ocish)" in screen
        (b / "config.json").write_text(good)
        t.keys("reload", "Enter")
        t.wait_for(f"id {c} | status setting up | stage cgroup")
        t.keys("quit", "Enter")
        t.wait_for("OCISH-EXITED 0")
    finally:
        _cleanup(ocish, t, c)
    assert not os.path.exists(os.path.join(ocish.root, c)) and not cgroup_dirs(c)
