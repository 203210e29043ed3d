"""`exec --step` and `break exec:STAGE`: the runtime's exec pipeline stepped through the one
engine, the exec's process checked against /proc between its stages."""
from __future__ import annotations

import os

from tests.conftest import needs_root
from tests.shell.conftest import alive, status_field

pytestmark = needs_root

NS = ["ipc", "uts", "net", "pid", "cgroup", "mnt"]


def _ns(pid: int) -> dict[str, str]:
    return {n: os.readlink(f"/proc/{pid}/ns/{n}") for n in NS}


def _in_cgroup(pid: int, cid: str) -> bool:
    with open(f"/proc/{pid}/cgroup") as f:
        return f"/ocish/{cid}" in f.read()


def test_exec_step_joins_the_container_stage_by_stage(session, make_bundle):
    s = session(make_bundle(["sleep", "100"]))
    assert "its container side started" not in s.cmd("break exec:join")  # allowed before setup
    s.cmd("continue")
    s.cmd("start")
    init = s.json("state")["pid"]
    out = s.cmd("exec --step sleep 30")
    assert "stopped before the first stage" in out and "next: exec:cgroup-join" in out
    rows = s.json("stages --json")
    assert [r["name"] for r in rows] == ["exec:cgroup-join", "exec:lsm", "exec:seccomp",
                                         "exec:join", "exec:terminal", "exec:process",
                                         "exec:attributes", "exec:bounding", "exec:user",
                                         "exec:caps", "exec:exec"]
    assert rows[3]["breakpoints"] == [1]
    c1 = s.json("inspect proc --json")["pid"]
    assert c1 != init and alive(c1)
    host = _ns(os.getpid())
    assert _ns(c1) == host and not _in_cgroup(c1, s.cid)  # nothing joined yet
    assert "ran exec:cgroup-join (host side)" in s.cmd("step")
    assert _in_cgroup(c1, s.cid) and _ns(c1) == host  # the cgroups first, then namespaces
    run = s.json("continue --json")
    assert run["stop"]["reason"] == "breakpoint" and run["stop"]["next"] == "exec:join"
    assert _ns(c1) == host
    s.cmd("step")  # join: setns into the init's namespaces, fork C2, C1 exits
    c2 = s.json("inspect proc --json")["pid"]
    assert c2 != c1 and _ns(c2) == _ns(init) != host
    ns = s.json("inspect ns --json")
    shown = {i["kind"]: i["inode"] for i in ns["items"]}
    assert all(f"[{shown[n]}]" in _ns(init)[n] for n in NS)
    assert status_field(c2, "NSpid").split()[-1] != "1"  # in the container's pid namespace
    s.cmd("until exec:caps")
    assert s.json("stages --json")[9]["status"] == "next"
    caps = {c["name"]: c["mask"] for c in s.json("inspect caps --json")["sets"]}
    assert caps["effective"] == status_field(c2, "CapEff")
    run = s.json("continue --json")
    assert run["stop"]["reason"] == "exec"
    pid = run["steps"][-1]["exec_pid"]
    assert pid == c2 and alive(pid) and status_field(pid, "Name") == "sleep"
    assert os.readlink(f"/proc/{pid}/exe") == "/bin/busybox" and _ns(pid) == _ns(init)
    assert s.json("info breakpoints --json")[0]["hits"] == 1
    # a plain exec stops at the exec:STAGE breakpoint too, and runs to its end after it
    s.cmd("delete 1")
    s.cmd("tbreak exec:user")
    out = s.cmd("exec true")
    assert "temporary breakpoint 2, next: exec:user" in out
    assert s.json("info breakpoints --json") == []
    assert "exec process" in s.cmd("continue")


def test_exec_step_refuses_what_it_cannot_step(session, make_bundle):
    s = session(make_bundle(["sleep", "100"]))
    assert "not set up yet" in s.cmd("exec --step true")
    assert "did you mean exec:join" in s.cmd("break exec:jion")
    s.cmd("continue")
    assert "without -d" in s.cmd("exec --step -d true")
    s.cmd("exec --step true")
    assert "being stepped already" in s.cmd("exec --step true")
    c1 = s.json("inspect proc --json")["pid"]
    s.quit()
    assert not alive(c1)  # quit killed the exec being stepped
