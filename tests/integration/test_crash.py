"""Crash safety: `create` and `delete -f` SIGKILLed anywhere leave nothing that `delete -f` cannot
remove, and the id stays usable.

Kills come from the test hook (runtime/crashpoint.py: OCISH_TEST_CRASH names the point, at every
stage boundary and every state.json step), from outside at random moments, and inside the
cgroup.procs write (strace holds the runtime in that write(2) while we kill it). After each:
`list` shows the container, `state` answers, `delete -f` removes processes, cgroups (every v1
hierarchy and the unified one) and the state dir, checked from the host, and the same id runs
again. OCISH_CRASH_KILLS sets the number of random kills (default 12).
"""
from __future__ import annotations

import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from tests.conftest import REPO, children, cid, needs_root, ocish_cmd, reap_orphans

pytestmark = needs_root

RANDOM_KILLS = int(os.environ.get("OCISH_CRASH_KILLS", "12"))


def _stage_names() -> list[str]:
    from runtime.stages import pipeline
    return [s.name for s in pipeline()]


# every boundary once: "after:X" is the same moment as "before:<the stage after X>"
CREATE_POINTS = (["create:dir", "create:recorded"] + [f"before:{n}" for n in _stage_names()]
                 + [f"after:{_stage_names()[-1]}", "create:config", "create:saved"])
DELETE_POINTS = ["delete:killed", "delete:cgroup", "delete:files", "delete:state"]


def _env(crash: str = "") -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("OCISH_TEST_CRASH", None)
    if crash:
        env["OCISH_TEST_CRASH"] = crash
    return env


def _spawn(ocish, *args: str, crash: str = "", stderr=subprocess.DEVNULL) -> subprocess.Popen:
    return subprocess.Popen(ocish_cmd() + ["--root", ocish.root, *args], env=_env(crash),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)


def _leaf_dirs(c: str) -> list[str]:
    """Every cgroup directory the container would use (the default path), in every hierarchy."""
    from runtime import cgroups
    return sorted(set(cgroups.open_manager(None, c).paths().values()))


def _members(c: str) -> set[int]:
    """Processes in the container's cgroups, and in its state as far as state.json tells."""
    pids: set[int] = set()
    for d in _leaf_dirs(c):
        for f in glob.glob(f"{d}/**/cgroup.procs", recursive=True):
            try:
                with open(f) as fh:
                    pids |= {int(p) for p in fh.read().split()}
            except FileNotFoundError:
                pass
    return pids


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return True
    return data[data.rindex(b")") + 2:][:1] in (b"Z", b"X")


def _wait_gone(pids: set[int], timeout: float = 3.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while True:
        reap_orphans()
        left = {p for p in pids if not _gone(p)}
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.02)


def check_recovers(ocish, c: str, bundle, kids: set[int], expect_status=("stopped",)) -> str:
    """After a kill: listed, `state` answers, `delete -f` removes all, the id runs again.
    Returns the status it had ("absent": killed before it made its state dir, when allowed)."""
    p = ocish("list", "-f", "json", check=True)
    listed = {s["id"]: s for s in json.loads(p.stdout) or []}
    if c not in listed and "absent" in expect_status:
        listed[c] = {"status": "absent", "pid": 0}
        assert not os.path.exists(os.path.join(ocish.root, c))
        assert ocish("state", c).returncode == 1
    assert c in listed, p.stdout
    status = listed[c]["status"]
    assert status in expect_status, listed[c]
    if status != "absent":
        st = ocish("state", c)
        assert st.returncode == 0 and json.loads(st.stdout)["status"] == status, st.stderr
    members = _members(c) | ({listed[c]["pid"]} if listed[c]["pid"] else set())
    d = ocish("delete", "-f", c)
    assert d.returncode == 0 and d.stderr == "", d.stderr
    assert not os.path.exists(os.path.join(ocish.root, c))
    assert [x for x in _leaf_dirs(c) if os.path.exists(x)] == []
    assert _wait_gone(members) == set(), "container processes survived delete -f"
    assert _wait_gone(children() - kids) == set(), "processes of the killed create survived"
    assert ocish("state", c).stderr.strip() == "ocish: container does not exist"
    # the id is usable again: run it to completion (run deletes it at the end)
    r = ocish("run", "-b", str(bundle), c)
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(os.path.join(ocish.root, c))
    return status


@pytest.fixture
def bundle(make_bundle):
    return make_bundle(["true"])


@pytest.mark.parametrize("point", CREATE_POINTS)
def test_create_killed_at_every_step(ocish, bundle, point):
    c, kids = cid(), children()
    p = _spawn(ocish, "create", "-b", str(bundle), c, crash=point)
    assert p.wait(30) == -signal.SIGKILL, f"the hook did not fire at {point}"
    check_recovers(ocish, c, bundle, kids,
                   ("created",) if point == "create:saved" else ("stopped",))


@pytest.mark.parametrize("point", DELETE_POINTS)
def test_delete_killed_half_way(ocish, bundle, point):
    c, kids = cid(), children()
    ocish("create", "-b", str(bundle), c, check=True)
    members = _members(c)
    assert members
    p = _spawn(ocish, "delete", "-f", c, crash=point)
    assert p.wait(30) == -signal.SIGKILL
    check_recovers(ocish, c, bundle, kids)
    assert _wait_gone(members) == set()


def _create_window(ocish, bundle) -> tuple[float, float]:
    """(seconds until a create makes its state dir, seconds until it exits): the window where
    a kill leaves something to undo; the median of three creates."""
    marks = []
    for _ in range(3):
        c = cid()
        start = time.perf_counter()
        p = _spawn(ocish, "create", "-b", str(bundle), c)
        while not os.path.exists(os.path.join(ocish.root, c)) and p.poll() is None:
            time.sleep(0.0005)
        made = time.perf_counter() - start
        assert p.wait(30) == 0
        marks.append((made, time.perf_counter() - start))
        ocish("delete", "-f", c, check=True)
    return sorted(marks)[1]


def test_create_killed_at_random_moments(ocish, bundle, capsys):
    """SIGKILL from outside after a random delay: it lands anywhere, in slow syscalls too
    (clone, mount, mkdir and writes in cgroupfs), not only at the hook's points."""
    made, done = _create_window(ocish, bundle)
    rng = random.Random(os.environ.get("OCISH_CRASH_SEED", "8"))
    kills, unusable, seen = 0, 0, {}
    for _ in range(RANDOM_KILLS):
        c, kids = cid(), children()
        with tempfile.TemporaryFile("w+") as err:
            p = _spawn(ocish, "create", "-b", str(bundle), c, stderr=err)
            time.sleep(rng.uniform(made * 0.8, done * 1.05))  # mostly while it has things to undo
            p.send_signal(signal.SIGKILL)
            rc = p.wait(30)
            kills += rc == -signal.SIGKILL
            try:
                status = check_recovers(ocish, c, bundle, kids, ("stopped", "created", "absent"))
            except AssertionError:
                unusable += 1
                raise
            err.seek(0)  # the container side, orphaned mid-stage, exits without a word
            assert err.read() == ""
        seen[status] = seen.get(status, 0) + 1
    with capsys.disabled():
        print(f"\nrandom kills: {RANDOM_KILLS} sent, {kills} landed during create, "
              f"statuses after {seen}, ids left unusable {unusable}")


def _descendant(pid: int, timeout: float = 10.0) -> int:
    """The child of `pid` that runs ocish, once it does (strace forks short-lived children of
    its own first, to probe the kernel's ptrace features: taking one was this test's flake)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for f in glob.glob(f"/proc/{pid}/task/*/children"):
            with open(f) as fh:
                kids = fh.read().split()
            for kid in kids:
                try:
                    if os.path.realpath(os.readlink(f"/proc/{kid}/exe")) == \
                            os.path.realpath(sys.executable):
                        return int(kid)
                except OSError:  # gone meanwhile
                    pass
        time.sleep(0.01)
    raise AssertionError(f"{pid} started no ocish child")


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
@pytest.mark.parametrize("when", ["delay_enter", "delay_exit"])
def test_create_killed_inside_the_cgroup_procs_write(ocish, bundle, when):
    """strace holds the runtime inside write(2) to cgroup.procs (before the kernel acts on it,
    or after, before the runtime sees the result); we SIGKILL it there."""
    c, kids = cid(), children()
    paths = [f"{d}/cgroup.procs" for d in _leaf_dirs(c)]
    trace = ["strace", "-qq", "-o", "/dev/null", "-e", "trace=write",
             "-e", f"inject=write:{when}=3000000"] + [a for f in paths for a in ("-P", f)]
    tracer = subprocess.Popen(trace + ocish_cmd() + ["--root", ocish.root, "create", "-b",
                                                     str(bundle), c],
                              env=_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        runtime = _descendant(tracer.pid)
        deadline = time.monotonic() + 20
        while True:  # wait until it sits in a write(2) to a cgroup.procs file, in the delay
            try:
                with open(f"/proc/{runtime}/syscall") as f:
                    nr, fd = f.read().split()[:2]
                target = os.readlink(f"/proc/{runtime}/fd/{int(fd, 16)}") if nr == "1" else ""
                with open(target) as f:  # the kernel acted on the write (exit) or not (enter)
                    done = bool(f.read().split())
            except (OSError, ValueError):
                target, done = "", False
            # at delay_exit, also wait for the write to be done: strace stops it at the
            # entry first, briefly, to decode it
            if target in paths and (done or when == "delay_enter"):
                break
            assert time.monotonic() < deadline, "the runtime never reached the cgroup.procs write"
            time.sleep(0.01)
        assert done == (when == "delay_exit")
        os.kill(runtime, signal.SIGKILL)
    finally:
        tracer.wait(30)
    check_recovers(ocish, c, bundle, kids)


def test_list_state_delete_while_create_runs(ocish, make_bundle, tmp_path):
    """A create blocked in a createRuntime hook is "creating"; delete without -f refuses it,
    delete -f kills the create and removes what it made."""
    go = tmp_path / "go"  # the hook waits for it, or for its runtime to die
    hook = {"path": "/bin/sh", "args": ["sh", "-c", f"while [ ! -e {go} ] && kill -0 $PPID; "
                                                    f"do sleep 0.05; done"]}
    b = make_bundle(["true"], mutate=lambda s: s.setdefault("hooks", {}).__setitem__(
        "createRuntime", [hook]))
    c, kids = cid(), children()
    p = _spawn(ocish, "create", "-b", str(b), c)
    deadline = time.monotonic() + 20
    while True:
        listed = {s["id"]: s for s in json.loads(ocish("list", "-f", "json").stdout) or []}
        if c in listed and os.path.isdir(_leaf_dirs(c)[0]):
            break
        assert time.monotonic() < deadline and p.poll() is None, "create never got to its hook"
        time.sleep(0.02)
    assert listed[c]["status"] == "creating"
    assert json.loads(ocish("state", c, check=True).stdout)["status"] == "creating"
    for args, message in ((["delete", c], f"cannot delete container {c} that is not stopped: "
                                          f"creating"),
                          (["start", c], "cannot start a container that is still being created")):
        r = ocish(*args)
        assert (r.returncode, r.stderr) == (1, f"ocish: {message}\n")
    members = _members(c)
    assert members
    d = ocish("delete", "-f", c)
    assert d.returncode == 0, d.stderr
    assert p.wait(10) == -signal.SIGKILL
    assert not os.path.exists(os.path.join(ocish.root, c))
    assert [x for x in _leaf_dirs(c) if os.path.exists(x)] == []
    assert _wait_gone(members | (children() - kids)) == set()
    go.write_text("")
    assert ocish("run", "-b", str(b), c).returncode == 0


def test_delete_kills_what_its_own_scheduler_throttles(ocish, make_bundle):
    """A SCHED_DEADLINE process given 1 us per 4 s (its config's choice: the kernel takes it)
    crawls: its create never ends, and once killed it would need minutes to exit. delete -f
    puts it back on the normal scheduler, so it dies at once (runc's delete fails here)."""
    b = make_bundle(["true"], mutate=lambda s: s["process"].__setitem__("scheduler", {
        "policy": "SCHED_DEADLINE", "runtime": 1024, "deadline": 1_000_000,
        "period": 4_000_000_000}))
    c, kids = cid(), children()
    p = _spawn(ocish, "create", "-b", str(b), c)
    deadline = time.monotonic() + 20
    def deadline_task() -> bool:
        for pid in _members(c):
            try:
                if os.sched_getscheduler(pid) == 6:  # SCHED_DEADLINE
                    return True
            except OSError:
                pass
        return False

    while not deadline_task():  # until the init runs under the deadline policy
        assert time.monotonic() < deadline and p.poll() is None, "no deadline task appeared"
        time.sleep(0.05)
    assert ocish.state(c)["status"] == "creating"
    p.kill()
    p.wait()
    start = time.monotonic()
    d = ocish("delete", "-f", c)
    assert d.returncode == 0, d.stderr
    assert time.monotonic() - start < 5
    assert [x for x in _leaf_dirs(c) if os.path.exists(x)] == []
    assert _wait_gone(children() - kids) == set()


def test_corrupt_state_json_spares_the_others(ocish, bundle):
    """A state.json that is not ours: list shows the others (and this one as stopped, with a
    warning), state says what is wrong on one line, delete -f removes it."""
    good, bad = cid(), cid()
    ocish("create", "-b", str(bundle), good, check=True)
    os.makedirs(os.path.join(ocish.root, bad))
    for text in ("{", "[1", '{"id": 5}'):
        with open(os.path.join(ocish.root, bad, "state.json"), "w") as f:
            f.write(text)
        p = ocish("list", "-f", "json")
        assert p.returncode == 0
        listed = {s["id"]: s["status"] for s in json.loads(p.stdout)}
        assert listed == {good: "created", bad: "stopped"}
        assert p.stderr == (f"ocish: warning: container {bad}: state.json: " +
                            ("not valid json" if text != '{"id": 5}' else
                             "not a state.json written by ocish") +
                            f" (`delete -f {bad}` removes it)\n")
        s = ocish("state", bad)
        assert s.returncode == 1 and len(s.stderr.splitlines()) == 1 and "Traceback" not in s.stderr
        assert ocish("delete", bad).returncode == 1
    assert ocish("delete", "-f", bad).returncode == 0
    assert not os.path.exists(os.path.join(ocish.root, bad))
    assert json.loads(ocish("state", good, check=True).stdout)["status"] == "created"
