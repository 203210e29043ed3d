"""After setup: the same lifecycle code as the CLI, seen from the CLI too."""
from __future__ import annotations

import json
import os
import subprocess
import time

from tests.conftest import REPO, needs_root, ocish_cmd
from tests.shell.conftest import alive, cgroup_dirs

pytestmark = needs_root


def _cli_status(ocish, c: str) -> str:
    return json.loads(ocish("state", c, check=True).stdout)["status"]


def _wait(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_created_container_is_the_runtimes(ocish, session, make_bundle):
    s = session(make_bundle(["sleep", "100"]))
    assert "not created yet" in s.cmd("start")
    out = s.cmd("continue")
    assert f"setup complete: container {s.cid} created" in out
    assert [ln.split()[:3] for ln in ocish("list", check=True).stdout.splitlines()[1:]] == \
        [[s.cid, str(s.json("state")["pid"]), "created"]]
    pid = s.json("state")["pid"]
    assert s.cid in s.cmd("containers") and s.cmd(f"ps {s.cid}").split() == [str(pid)]
    assert "started container" in s.cmd("start")
    assert _cli_status(ocish, s.cid) == "running"
    assert s.cmd("ps").split() == [str(pid)]
    s.cmd("pause")
    assert _cli_status(ocish, s.cid) == "paused" and s.json("state")["status"] == "paused"
    assert "not running: paused" in s.cmd("pause")
    s.cmd("resume")
    assert _cli_status(ocish, s.cid) == "running"
    out = s.cmd("kill")  # SIGTERM: the init has no handler for it
    assert out == (f"sent SIGTERM to the init of {s.cid}\nits init still runs: as PID 1 of its "
                   "pid namespace it gets only the signals it handles (`kill KILL` ends it)\n")
    assert alive(pid)
    killed = s.cmd("kill KILL")
    # the death's news may come first when the shell reaps the init before it prints
    assert f"sent SIGKILL to the init of {s.cid}\n" in killed
    assert _wait(lambda: not alive(pid))
    out = s.cmd("state")
    # the shell is the init's subreaper: it reaped it and said so before anything else
    news = f"the container process {pid} ended after start: killed by SIGKILL (sent by `kill`)"
    assert out.startswith(news + "\n") or news in killed, killed + out
    assert json.loads(out[out.index("{"):])["status"] == "stopped"
    assert f"deleted container {s.cid}" in s.cmd("delete")
    assert ocish("list", "-q", check=True).stdout.strip() == ""
    assert not cgroup_dirs(s.cid)
    s.quit()
    assert s.proc.returncode == 1  # `start` before setup and `pause` of a paused one failed


def test_quit_keep_leaves_a_created_or_started_container(ocish, session, make_bundle):
    for start in (False, True):
        s = session(make_bundle(["sleep", "100"]))
        s.cmd("continue")
        if start:
            s.cmd("start")
        pid = s.json("state")["pid"]
        out = s.quit("quit --keep")
        status = "running" if start else "created"
        assert f"container {s.cid} kept ({status}, pid {pid}): " in out
        assert f"`ocish --root {ocish.root} attach {s.cid}` opens this shell on it again" in out
        assert f"`ocish --root {ocish.root} delete -f {s.cid}` removes it" in out
        assert ("start " + s.cid in out) != start  # how to start a created one
        assert s.proc.returncode == 0
        assert _cli_status(ocish, s.cid) == status and alive(pid)
        ocish("delete", "-f", s.cid, check=True)
        assert not cgroup_dirs(s.cid)


def test_quit_keep_refuses_a_container_still_being_set_up(ocish, session, make_bundle):
    """Not yet created: nothing an OCI runtime could keep. `quit --keep` says so and how to
    get there, the session goes on (the container and its cgroup are still there); piped, the
    session's exit status says a command failed."""
    s = session(make_bundle(["sleep", "100"]))
    s.cmd("step")
    out = s.cmd("quit --keep")
    assert out == (f"error: quit --keep: container {s.cid} is still being set up (next: "
                   "unshare), not yet created: `continue` finishes the setup, then "
                   "`quit --keep` keeps it; `quit` removes it\n"), out
    assert cgroup_dirs(s.cid)  # stage cgroup's work is still there: nothing was torn down
    assert "setup complete" in s.cmd("continue")
    pid = s.json("state")["pid"]
    assert f"container {s.cid} kept (created, pid {pid})" in s.quit("quit --keep")
    assert s.proc.returncode == 1  # the refused `quit --keep`
    assert _cli_status(ocish, s.cid) == "created"
    ocish("delete", "-f", s.cid, check=True)
    # piped to its end: refused, then EOF quits as `quit` does, removing it; exit 1
    p = subprocess.run(ocish_cmd() + ["debug", str(make_bundle(["true"])), "--root",
                                      ocish.root, "--plain"], input="step\nquit --keep\n",
                       capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert p.returncode == 1 and "quit --keep: container" in p.stderr, p.stderr
    assert ocish("list", "-q", check=True).stdout.strip() == ""


def test_attach_takes_over_a_kept_container_and_leaves_it(ocish, session, make_bundle):
    s = session(make_bundle(["sleep", "100"]))
    s.cmd("continue")
    pid = s.json("state")["pid"]
    s.quit("quit --keep")
    # `ocish attach ID`, as the message said: start it, look inside, leave it running
    a = session(None, s.cid, command="attach")
    assert a.banner.startswith(f"attached to container {s.cid} (created, pid {pid})")
    assert "started container" in a.cmd("start")
    assert _cli_status(ocish, s.cid) == "running"
    assert a.json("inspect proc --json")["cmdline"] == ["sleep", "100"]
    assert "not set up by this session" in a.cmd("stages")
    out = a.quit()
    assert f"container {s.cid} kept (running, pid {pid})" in out  # gdb detaches
    assert a.proc.returncode == 1 and alive(pid)  # `stages` failed
    ocish("delete", "-f", s.cid, check=True)
    assert not cgroup_dirs(s.cid)


def test_a_refused_config_is_read_again_by_restart(ocish, session, make_bundle, tmp_path):
    b = make_bundle(["sleep", "100"])
    good = (b / "config.json").read_text()
    spec = json.loads(good)
    spec["mounts"][1]["destination"] = "dev"
    (b / "config.json").write_text(json.dumps(spec))
    s = session(None, command="shell")
    out = s.cmd(f"load {b} --id {s.cid}")
    assert out.startswith('error: config /mounts/1/destination: must be an absolute path, got '
                          '"dev": fix config.json, then `restart` reads it again\n')
    # and every problem lint finds (here, that one)
    assert f"{b}/config.json: 1 error, 0 warnings (create refuses it)\n" \
           'error   /mounts/1/destination = "dev"\n' in out
    assert "fix config.json, then `restart`" in s.cmd("stages")
    assert not os.path.exists(os.path.join(ocish.root, s.cid))  # nothing left behind
    (b / "config.json").write_text(good)
    out = s.cmd("restart")
    assert f"bundle {b}, container {s.cid}" in out and "next: cgroup" in out
