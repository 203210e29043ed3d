"""`ocish seccomp check|explain` against real loaded filters: each answer is confirmed by the
kernel, the same call made inside the container (busybox), and /proc/PID/status; `--bundle`
gives the same answers without running anything; runc's containers answer the same."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid

import pytest

from tests.conftest import cid, needs_root

pytestmark = needs_root
RUNC = shutil.which("runc")

PROFILE = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
    {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
    {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
     "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
    {"names": ["sethostname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
     "args": [{"index": 1, "value": 5, "op": "SCMP_CMP_GT"}]},
]}
DEFAULT, RULE = "/linux/seccomp/defaultAction", "/linux/seccomp/syscalls/"
# (check words, action, errno name, deciding rule, busybox command, what the kernel says to it)
CASES = [
    (["mkdir"], "SCMP_ACT_ERRNO(1)", "EPERM", RULE + "0", ["mkdir", "/dev/shm/d"],
     "Operation not permitted"),
    (["openat"], "SCMP_ACT_ALLOW", "", DEFAULT, ["touch", "/dev/shm/f"], ""),
    (["personality", "PER_LINUX32"], "SCMP_ACT_ERRNO(22)", "EINVAL", RULE + "1",
     ["linux32", "true"], "Invalid argument"),
    (["personality", "0"], "SCMP_ACT_ALLOW", "", DEFAULT, ["linux64", "true"], ""),
    # hostname(1) calls sethostname(name, strlen(name)): 8 > 5
    (["sethostname", "0", "8"], "SCMP_ACT_ERRNO(13)", "EACCES", RULE + "2",
     ["hostname", "abcdefgh"], "Permission denied"),
]


def _status(pid: int) -> dict:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def _check(ocish, *words) -> dict:
    p = ocish("seccomp", "check", *words, "--json")
    assert p.returncode == 0 and p.stderr == "", p.stderr
    return json.loads(p.stdout)


def _answer(d: dict) -> tuple:
    """What must not depend on where the filter was read from."""
    return (d["action"], d["ret"], d["errno"], d["errno_name"], d["value"],
            [[(s["pc"], s["text"], s["note"]) for s in r["path"]] for r in d["runs"]])


@pytest.fixture
def running(ocish, make_bundle):
    def mutate(spec):
        spec["linux"]["seccomp"] = PROFILE
    b = make_bundle(["sleep", "300"], mutate=mutate)
    c = cid()
    p = ocish("run", "-d", "-b", str(b), c)
    assert p.returncode == 0, p.stderr
    return b, c, ocish.state(c)["pid"]


def test_check_answers_as_the_kernel_does(ocish, running):
    b, c, pid = running
    st = _status(pid)
    assert (st["Seccomp"], st["Seccomp_filters"]) == ("2", "1")
    for words, action, errno_name, rule, cmd, kernel_says in CASES:
        loaded = _check(ocish, c, *words)
        assert (loaded["action"], loaded["errno_name"]) == (action, errno_name), words
        assert loaded["mode"] == "filter" and loaded["filters"] == int(st["Seccomp_filters"])
        assert loaded["matches_config"] is True   # PTRACE_SECCOMP_GET_FILTER == exported BPF
        assert loaded["rule"] == rule, words
        # the same answer, path included, without running anything, and by pid
        assert _answer(_check(ocish, "--bundle", str(b), *words)) == _answer(loaded)
        assert _answer(_check(ocish, "--pid", str(pid), *words)) == _answer(loaded)
        # the kernel's answer to the real call inside the container
        p = ocish("exec", c, *cmd)
        if kernel_says:
            assert p.returncode != 0 and kernel_says in p.stderr, (cmd, p.stderr)
        else:
            assert p.returncode == 0, (cmd, p.stderr)
    assert os.path.isfile(f"/proc/{pid}/root/dev/shm/f")
    assert not os.path.exists(f"/proc/{pid}/root/dev/shm/d")


def test_explain_groups_by_action(ocish, running):
    b, c, pid = running
    p = ocish("seccomp", "explain", c, "--json")
    assert p.returncode == 0, p.stderr
    (e,) = json.loads(p.stdout)
    assert e["matches_config"] is True and e["default"] == "SCMP_ACT_ALLOW"
    groups = {g["action"]: [(r["names"], r["conditions"], r["pointer"]) for r in g["rules"]]
              for g in e["groups"]}
    assert groups == {
        "SCMP_ACT_ERRNO(1)": [(["mkdir", "mkdirat"], [], "/linux/seccomp/syscalls/0")],
        "SCMP_ACT_ERRNO(22)": [(["personality"], ["args[0] == 8"],
                                "/linux/seccomp/syscalls/1")],
        "SCMP_ACT_ERRNO(13)": [(["sethostname"], ["args[1] > 5"],
                                "/linux/seccomp/syscalls/2")]}
    # by pid, nothing says what config.json was: rebuilt from the kernel's copy of the BPF
    p = ocish("seccomp", "explain", "--pid", str(pid), "--json")
    (r,) = json.loads(p.stdout)
    assert r["how"].startswith("reconstructed from the loaded BPF of filter 0")
    rebuilt = {g["action"]: [(x["names"], x["conditions"]) for x in g["rules"]]
               for g in r["groups"]}
    assert rebuilt == {"SCMP_ACT_ERRNO(1)": [(["mkdir", "mkdirat"], [])],
                       "SCMP_ACT_ERRNO(13)": [(["sethostname"], ["args[1] >= 6"])],
                       "SCMP_ACT_ERRNO(22)": [(["personality"], ["args[0] == 8"])]}
    text = ocish("seccomp", "explain", c).stdout
    assert "SCMP_ACT_ERRNO(22)  (SECCOMP_RET_ERRNO): the call fails with EINVAL (22)" in text
    assert "  personality if args[0] == 8  [/linux/seccomp/syscalls/1]" in text


def test_profile_that_blocks_execve_is_flagged(ocish, make_bundle):
    def mutate(spec):
        spec["process"]["noNewPrivileges"] = True
        spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["execve"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}
    b = make_bundle(["true"], mutate=mutate)
    p = ocish("seccomp", "explain", "--bundle", str(b))
    assert p.returncode == 0, p.stderr
    assert ("flagged: calls a process makes to start, which this filter stops\n  ! execve: SCMP_ACT_ERRNO(13): "
            "the program cannot be started") in p.stdout
    d = _check(ocish, "--bundle", str(b), "execve")
    assert (d["errno_name"], [f["syscall"] for f in d["flags"]]) == ("EACCES", ["execve"])
    # the kernel agrees: the runtime gets through, the program does not start
    p = ocish("run", "-b", str(b), cid())
    assert p.returncode != 0 and "permission denied" in p.stderr, p.stderr


@pytest.mark.skipif(not RUNC, reason="runc is not installed")
def test_runc_container(make_bundle):
    """A runc container's filter: found by id under runc's root, answered, and found to be
    byte for byte what ocish compiles from the same config.json."""
    def mutate(spec):
        spec["linux"]["seccomp"] = PROFILE
    b = make_bundle(["sleep", "300"], mutate=mutate)
    root, c = f"/run/ocish-test-runc-{uuid.uuid4().hex[:8]}", cid()
    from tests.conftest import run_ocish
    try:
        subprocess.run([RUNC, "--root", root, "run", "-d", "-b", str(b), c], check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, timeout=30)
        p = run_ocish("seccomp", "check", c, "mkdir", "--json", root=root)
        d = json.loads(p.stdout)
        assert (d["action"], d["matches_config"]) == ("SCMP_ACT_ERRNO(1)", True), p.stderr
        p = subprocess.run([RUNC, "--root", root, "exec", c, "mkdir", "/dev/shm/d"],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode != 0 and "Operation not permitted" in p.stderr
    finally:
        subprocess.run([RUNC, "--root", root, "delete", "-f", c], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("args,message", [
    (["check", "--bundle", "BUNDLE", "read"], "ocish: seccomp check: config "
     "/linux/seccomp/syscalls/0/action: unknown action \"SCMP_ACT_BOGUS\", expected one of "),
    (["check", "no-such-container", "read"], "ocish: seccomp check: container "
     "no-such-container (root ROOT): container does not exist"),
    (["check", "--bundle", "BUNDLE"], "ocish: seccomp check: which syscall?"),
    (["check", "--bundle", "BUNDLE", "mkdir", "O_BOGUS"], "ocish: seccomp check: args[0] "
     "('O_BOGUS'): 'O_BOGUS' is neither a number"),
])
def test_bad_input_is_one_line(ocish, make_bundle, args, message):
    def mutate(spec):
        spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_BOGUS"}]}
    b = make_bundle(["true"], mutate=mutate)
    p = ocish("seccomp", *[str(b) if a == "BUNDLE" else a for a in args])
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.count("\n") == 1
    assert p.stderr.startswith(message.replace("ROOT", ocish.root)), p.stderr


def test_created_then_stopped(ocish, make_bundle):
    """Created with noNewPrivileges, the init loaded the filter in exec's handoff before it
    blocked on exec.fifo: the kernel's copy answers already; stopped, a clear error."""
    def mutate(spec):
        spec["process"]["noNewPrivileges"] = True
        spec["linux"]["seccomp"] = PROFILE
    b = make_bundle(["true"], mutate=mutate)
    c = cid()
    assert ocish("create", "-b", str(b), c).returncode == 0
    pid = ocish.state(c)["pid"]
    created = _check(ocish, c, "mkdir")
    assert (_status(pid)["Seccomp"], created["mode"], created["matches_config"]) == \
        ("2", "filter", True)
    assert created["action"] == "SCMP_ACT_ERRNO(1)"
    assert ocish("start", c).returncode == 0
    for _ in range(100):
        if ocish.state(c)["status"] == "stopped":
            break
        time.sleep(0.05)
    p = ocish("seccomp", "check", c, "mkdir")
    assert (p.returncode, p.stderr) == (1, f"ocish: seccomp check: container {c} is stopped: "
                                           "it has no process to read\n")


def test_a_paused_container_is_refused_not_waited_for(ocish, running):
    """A frozen task never stops for ptrace: the filters of a paused container cannot be read,
    and the answer says so at once instead of waiting for ever (and leaving it seized)."""
    _, c, pid = running
    assert ocish("pause", c).returncode == 0
    t = time.monotonic()
    p = ocish("seccomp", "check", c, "mkdir")
    assert time.monotonic() - t < 10
    assert p.returncode == 1 and p.stdout == ""
    assert len(p.stderr.splitlines()) == 1 and "frozen" in p.stderr and "resume" in p.stderr
    assert ocish("resume", c).returncode == 0
    assert _status(pid)["TracerPid"] == "0" and not _status(pid)["State"].startswith("t")
    assert _check(ocish, c, "mkdir")["errno_name"] == "EPERM"
