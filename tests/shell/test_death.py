"""Death is news: a container process that dies (OOM-killed during setup, an execve that fails
after `start`, an exit while the shell waits at its prompt) is reported at once, with how and
why, never as a raw errno; the cgroup and exit topics still answer afterwards."""
from __future__ import annotations

import json
import os
import time

from tests.conftest import needs_root
from tests.shell.conftest import alive, cgroup_dirs, shrink_memory

pytestmark = needs_root

MEMORY = "/sys/fs/cgroup/memory/ocish"


def _oom_kills(container_id: str) -> int:
    with open(f"{MEMORY}/{container_id}/memory.oom_control") as f:
        return int(dict(line.split() for line in f.read().splitlines())["oom_kill"])


def test_oom_kill_during_setup_is_news_not_a_raw_error(ocish, session, make_bundle):
    b = make_bundle(["sleep", "100"])
    s = session(b)
    s.cmd("step")  # stage cgroup
    shrink_memory(s.cid, 64 * 1024)
    out = s.cmd("continue")
    assert "invalid argument" not in out
    head = [ln for ln in out.splitlines() if ln.startswith("FAILED: ")]
    assert len(head) == 1 and "the container process" in head[0], out
    assert head[0].endswith("died: killed by SIGKILL"), out
    pid = int(head[0].split("the container process ")[1].split()[0])
    assert not alive(pid)
    rows = dict(ln.split(None, 1) for ln in out.splitlines() if ln.startswith("  "))
    kills = _oom_kills(s.cid)
    assert kills >= 1
    assert rows["cause"] == ("the OOM killer: the cgroup's memory reached its limit (64.0 KiB); "
                             f"oom_kill counter {kills}")
    assert rows["config"] == "/linux/resources/memory/limit"
    assert f"`ocish diagnose {b}` looks for the cause" in out
    # the topics that can still answer do; the others say why not, and point to diagnose
    ex = s.json("inspect exit --json")
    assert (ex["pid"], ex["alive"], ex["signal"], ex["oom_kills"]) == (pid, False, "SIGKILL", kills)
    assert ex["when"].startswith("during setup, in stage ")
    cg = s.json("inspect cgroup --json")
    mem = [r for r in cg["resources"] if r["name"] == "memory"][0]
    assert mem["limit"] == 64 * 1024 and mem["counters"]["oom_kill"] == kills
    assert cg["process_gone"] and cg["membership"] == []
    assert "KILLED BY THE OOM KILLER" in s.cmd("inspect cgroup")
    out = s.cmd("inspect ns")
    assert out.startswith(f"error: the container process {pid} is dead (killed by SIGKILL): "
                          "only `inspect cgroup` and `inspect exit` still answer; "
                          f"`ocish diagnose {b}` looks for the cause")
    assert "died during setup (killed by SIGKILL): `restart` or `quit`" in s.cmd("step")
    stage = ex["when"].split()[-1]
    assert [ln.split()[:2] for ln in s.cmd("stages").splitlines() if stage in ln.split()[1:2]] \
        == [["[!]", stage]]
    s.quit()
    assert not os.path.exists(os.path.join(ocish.root, s.cid)) and not cgroup_dirs(s.cid)


def _entry_without_interpreter(spec):
    spec["process"]["args"] = ["entry"]


def test_execve_failing_at_start_is_reported_before_anything_else(ocish, session, make_bundle):
    b = make_bundle(mutate=_entry_without_interpreter)
    entry = b / "rootfs/bin/entry"
    entry.write_text("#!/no/such/interpreter\n")
    entry.chmod(0o755)
    s = session(b)
    s.cmd("continue")  # create's lookup finds /bin/entry: an executable file
    pid = s.json("state")["pid"]
    out = s.cmd("start")
    # the process's own message (runc's), then the shell's: no "started" as if all was well
    mine = (f"started container {s.cid}, but its process {pid} died at once: exit status 1 "
            f"(its stderr, above, may say why); `ocish diagnose {b}` looks for the cause")
    assert out == "exec /bin/entry: no such file or directory\n" + mine + "\n"
    assert s.json("state")["status"] == "stopped"
    ex = s.json("inspect exit --json")
    assert (ex["exit_code"], ex["when"]) == (1, "at once, right after start")
    assert "is dead (exit status 1)" in s.cmd("inspect fds")


def test_a_death_while_idle_comes_first(ocish, session, make_bundle):
    s = session(make_bundle(["sh", "-c", "sleep 0.3; exit 3"]))
    s.cmd("continue")
    s.cmd("start")
    pid = s.json("state")["pid"]
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    out = s.cmd("ps")
    first = out.splitlines()[0]
    assert first.startswith(f"the container process {pid} died after start: exit status 3; ")
    assert out.splitlines()[1:] == ["(no process)"]
    assert "died" not in s.cmd("ps")  # told once
    assert s.json("inspect exit --json")["exit_code"] == 3
    pids = [r for r in s.json("inspect cgroup --json")["resources"] if r["name"] == "pids"][0]
    assert pids["usage"] == 0  # the cgroup still answers: empty now
    state = json.loads(s.cmd("state"))
    assert state["status"] == "stopped"


def test_a_death_the_user_caused_is_not_news_for_diagnose(ocish, session, make_bundle):
    """`delete` and `kill` end the process on purpose: no "died", no diagnose hint."""
    b = make_bundle(["sleep", "100"])
    s = session(b)
    s.cmd("continue")
    pid = s.json("state --json")["pid"]
    assert s.cmd("delete") == f"deleted container {s.cid}\n"
    assert not alive(pid)
    out = s.cmd("inspect exit")
    assert "diagnose" not in out and "died" not in out
    assert "killed by SIGKILL" in out and "when `delete` removed the container" in out
    s.cmd("restart")
    s.cmd("continue")  # created, never started: a `kill` before start is the user's too
    pid = s.json("state --json")["pid"]
    killed = s.cmd("kill KILL")  # it waits for the death (no race with a `delete` after it)
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    out = killed + s.cmd("state")
    assert f"the container process {pid} ended before start: killed by SIGKILL (sent by `kill`)" \
        in out and "diagnose" not in out
    s.quit()


def test_wait_and_exec_after_a_failed_setup_give_advice_that_works(ocish, session, make_bundle):
    b = make_bundle(["sleep", "100"], mutate=lambda spec: spec["mounts"].insert(
        1, {"destination": "/mnt", "type": "bogusfs", "source": "x"}))
    s = session(b)
    assert "FAILED: stage mounts" in s.cmd("continue")
    why = ('the container was never created: its setup failed (stage mounts: mount "x" on "/mnt" '
           f"(config /mounts/1): no such device); `restart` sets it up again, `ocish diagnose {b}` "
           "looks for the cause")
    assert s.cmd("wait") == f"error: {why}\n"
    assert s.cmd("start") == f"error: {why}\n"
    assert s.cmd("exec true") == f"error: exec: {why}\n"
    assert "continue" not in s.cmd("state")
    s.quit()
