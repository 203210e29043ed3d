"""`ocish attach` on a container runc 1.1.5 made: found by id in runc's state root and by host
pid, inspected (values checked against /proc), diffed over time, traced (left running, never
stopped), exec'd into, and never changed: kill and pause refused, the container still runs after
the session. runc runs with a private --root; the container is deleted after the test, pass or
fail."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

import pytest

from tests.conftest import REPO, needs_root, ocish_cmd, reap_orphans
from tests.shell.conftest import Session, status_field

pytestmark = [needs_root, pytest.mark.skipif(shutil.which("runc") is None,
                                             reason="runc is not installed (apt-get install runc)")]
LOOP = ["sh", "-c", "while :; do sleep 0.2; done"]  # calls to trace: fork, wait4, execve


def runc_state(root: str, cid: str) -> dict:
    p = subprocess.run(["runc", "--root", root, "state", cid], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.fixture
def runc_container(make_bundle):
    """(runc's --root, id, init pid, bundle) of a running `runc run -d` container; deleted
    with its root afterwards, pass or fail."""
    root = tempfile.mkdtemp(prefix="ocish-runc-", dir="/run")
    cid = f"t-runc-{uuid.uuid4().hex[:8]}"
    bundle = make_bundle(LOOP, mutate=lambda s: s.update(hostname="runc-made"))
    sessions: list[Session] = []
    try:
        # stderr to a file: the container inherits it, a pipe would not see EOF
        with tempfile.TemporaryFile("w+") as err:
            p = subprocess.run(["runc", "--root", root, "run", "-d", "--bundle", str(bundle),
                                cid], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=err, timeout=60)
            err.seek(0)
            assert p.returncode == 0, err.read()
        pid = runc_state(root, cid)["pid"]
        yield root, cid, pid, bundle, sessions
    finally:
        for s in sessions:
            s.close()
        subprocess.run(["runc", "--root", root, "delete", "-f", cid], capture_output=True,
                       timeout=60)
        shutil.rmtree(root, ignore_errors=True)
        reap_orphans()


def ns_inodes(pid: int) -> dict[str, int]:
    return {k: os.stat(f"/proc/{pid}/ns/{k}").st_ino for k in os.listdir(f"/proc/{pid}/ns")}


def test_attach_runc_by_id_inspects_diffs_traces_execs_and_changes_nothing(runc_container):
    root, cid, pid, bundle, sessions = runc_container
    s = Session(root, [cid, "--runtime", "runc"], cid, command="attach")
    sessions.append(s)
    assert s.banner.startswith(f"attached to runc container {cid} (running, pid {pid}), "
                               f"bundle {bundle}, state root {root}\nread-only"), s.banner
    # what is: the kernel's, as /proc has it
    ns = s.json("inspect ns --json")
    assert ns["pid"] == pid
    assert {i["kind"]: i["inode"] for i in ns["items"]} == ns_inodes(pid)
    caps = {c["name"]: c["mask"] for c in s.json("inspect caps --json")["sets"]}
    assert caps["effective"] == status_field(pid, "CapEff")
    assert caps["bounding"] == status_field(pid, "CapBnd")
    proc = s.json("inspect proc --json")
    assert proc["pid"] == pid and proc["cmdline"] == LOOP
    cg = s.json("inspect cgroup --json")
    with open(f"/proc/{pid}/cgroup") as f:
        assert {m["path"] for m in cg["membership"]} == {ln.split(":", 2)[2]
                                                         for ln in f.read().splitlines()}
    st = s.json("state --json")
    assert (st["id"], st["pid"], st["status"], st["bundle"]) == (cid, pid, "running", str(bundle))
    assert pid in s.json("ps --json")
    # diff over time: a tmpfs mounted in its mount namespace from outside shows up
    assert s.cmd("diff").startswith("no change between 'at attach to runc container")
    subprocess.run(["nsenter", "-t", str(pid), "-m", "mount", "-t", "tmpfs", "probe", "/tmp"],
                   check=True, timeout=30)
    assert "+mount /tmp tmpfs probe rw" in s.cmd("diff")
    # trace: the loop's calls, then detached and running (never left in a tracing stop)
    out = s.cmd("trace --for 1")
    assert "wait4(" in out and f"traced pid {pid} for 1 s; detached, state" in out, out
    assert status_field(pid, "State")[0] in "SR" and status_field(pid, "TracerPid") == "0"
    # exec: through the exec pipeline into its namespaces, with its config's process
    assert s.cmd("exec hostname") == "runc-made\nexit status 0\n"
    out = s.cmd("exec cat /proc/1/cmdline")
    assert out.split("\n")[0].split("\0")[:3] == LOOP, out
    out = s.cmd("exec cat /proc/self/status")
    assert f"CapEff:\t{status_field(pid, 'CapEff')}" in out  # the config's caps
    # read-only: refused with one line; runc still has it running, untouched
    for line in ("kill KILL", "pause", "delete -f"):
        out = s.cmd(line)
        assert out.startswith(f"error: {line.split()[0]} refused: runc container {cid} is "
                              "attached read-only (`ocish attach --allow-changes`"), out
        assert out.count("\n") == 1
    assert s.cmd("stages").startswith(f"error: runc container {cid} was not set up by this "
                                      "session")
    out = s.quit()
    assert f"detached from runc container {cid} (running, pid {pid}): left as it is" in out
    assert runc_state(root, cid)["status"] == "running"
    assert status_field(pid, "State")[0] in "SR"


def test_attach_runc_by_pid_and_load_of_a_running_container(runc_container, ocish):
    root, cid, pid, _, sessions = runc_container
    # by pid, looking in runc's root: the container whose init it is, config known
    s = Session(root, [str(pid), "--runtime", "runc"], cid, command="attach")
    sessions.append(s)
    assert s.banner.startswith(f"attached to runc container {cid} (running, pid {pid})")
    assert s.cmd("exec hostname") == "runc-made\nexit status 0\n"
    s.quit()
    # by pid alone (runc's default root does not hold it): the process, as the kernel has it;
    # `load PID` in the shell attaches it the same way
    s = Session(ocish.root, [], cid, command="shell")
    sessions.append(s)
    assert s.cmd(f"load {pid}").startswith(f"attached to process {pid} (running, pid {pid}), "
                                            "no config.json known")
    assert {i["kind"]: i["inode"] for i in s.json("inspect ns --json")["items"]} == ns_inodes(pid)
    out = s.cmd("exec cat /proc/self/status")  # the init's user and caps, read from the kernel
    assert f"CapBnd:\t{status_field(pid, 'CapBnd')}" in out and "Uid:\t0\t0\t0\t0" in out, out
    assert s.cmd("exec hostname") == "runc-made\nexit status 0\n"
    # a bare pid belongs to no runtime: nothing changes it, --allow-changes or not
    assert s.cmd("kill").startswith(f"error: kill refused: process {pid} belongs to no "
                                    "container runtime")
    s.quit()
    assert runc_state(root, cid)["status"] == "running"


def test_allow_changes_goes_through_runc(runc_container):
    root, cid, pid, _, sessions = runc_container
    s = Session(root, [cid, "--runtime", "runc", "--allow-changes"], cid, command="attach")
    sessions.append(s)
    assert "changes allowed" in s.banner
    s.cmd("pause")
    assert runc_state(root, cid)["status"] == "paused"
    assert s.json("state --json")["status"] == "paused"
    s.cmd("resume")
    assert runc_state(root, cid)["status"] == "running"
    s.quit()


def traced_by(pid: int, timeout: float = 10.0) -> int:
    """The pid of the process's tracer, once it has one (0 when none came in time)."""
    deadline = time.monotonic() + timeout
    while (tracer := int(status_field(pid, "TracerPid"))) == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    return tracer


def untraced_and_running(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if status_field(pid, "TracerPid") == "0" and status_field(pid, "State")[0] in "SR":
            return True
        time.sleep(0.02)
    return False


def test_trace_detaches_on_ctrl_c_and_when_the_shell_is_killed(runc_container):
    root, cid, pid, _, sessions = runc_container
    s = Session(root, [cid, "--runtime", "runc"], cid, command="attach")
    sessions.append(s)
    # Ctrl-C ends the trace early: detached, what it saw shown
    s.proc.stdin.write(b"trace --for 60\n")
    s.proc.stdin.flush()
    assert traced_by(pid) != 0
    s.proc.send_signal(signal.SIGINT)
    out = s._until_prompt(30)
    assert "traced pid" in out and "interrupted by Ctrl-C after" in out, out
    assert untraced_and_running(pid)
    # the shell dies (SIGKILL: no cleanup of its own): its tracer helper detaches anyway
    s.proc.stdin.write(b"trace --for 60\n")
    s.proc.stdin.flush()
    assert traced_by(pid) != 0
    s.proc.kill()
    s.proc.wait(30)
    assert untraced_and_running(pid)
    assert runc_state(root, cid)["status"] == "running"


def test_attach_errors_are_one_line(ocish):
    root = tempfile.mkdtemp(prefix="ocish-runc-", dir="/run")

    def attach(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*ocish_cmd(), "attach", *args, "--plain"], capture_output=True,
                              text=True, timeout=60, stdin=subprocess.DEVNULL,
                              env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        for args, err in (
                (("nope", "--runtime", "runc", "--root", root),
                 f"attach nope: no container nope in {root} (runc)"),
                (("4194304", "--runtime", "runc", "--root", root),  # above pid_max's ceiling
                 "attach 4194304: no process 4194304"),
                (("a/b", "--runtime", "runc", "--root", root),
                 'attach a/b: invalid container id "a/b": character "/" is not allowed; use '
                 'letters, digits and "_", "+", "-", "."')):
            p = attach(*args)
            assert (p.returncode, p.stderr, p.stdout) == (1, f"ocish: {err}\n", ""), args
        p = attach("x", "--runtime", "youki")
        assert p.returncode == 1 and p.stderr.count("\n") == 1 and "invalid choice" in p.stderr
        assert os.listdir(root) == []  # nothing made where it looked
    finally:
        shutil.rmtree(root, ignore_errors=True)
