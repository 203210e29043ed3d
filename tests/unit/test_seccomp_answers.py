"""The seccomp answers' BPF interpreter against the kernel, and explain's reconstruction.

A forked child loads filters that libseccomp built from profiles (as stage seccomp builds them)
and makes real system calls with thousands of argument tuples; the errno the kernel returns must
be the one bpfrun predicts from the same BPF. The calls are read-only whatever their arguments
(getpriority, kcmp), and the filters' errnos (120..127) are ones those calls never return on
their own, so "the filter answered" is told from "the call ran".
"""
from __future__ import annotations

import ctypes
import errno
import os
import random

import pytest

from ocish.seccomp import answers, bpfrun, explain, source
from runtime.errors import OcishError
from runtime.linux import seccomp as S
from runtime.spec_seccomp import compile_profile
from tests.unit.test_security import in_child, needs_libseccomp

pytestmark = needs_libseccomp
ARCH = answers.native_arch()[1]
GETPRIORITY, KCMP = S.syscall_number("getpriority"), S.syscall_number("kcmp")
OURS = set(range(120, 128))


def _rule(name, errno_, *conds):
    return {"names": [name], "action": "SCMP_ACT_ERRNO", "errnoRet": errno_,
            "args": [dict(zip(("index", "op", "value", "valueTwo"), c)) for c in conds]}


PROFILE = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
    _rule("getpriority", 120, (0, "SCMP_CMP_EQ", 1)),
    _rule("getpriority", 121, (1, "SCMP_CMP_GT", 0x100000005)),
    _rule("kcmp", 122, (0, "SCMP_CMP_NE", 77), (2, "SCMP_CMP_LE", 3)),
    _rule("kcmp", 123, (3, "SCMP_CMP_MASKED_EQ", 0xFF000000FF, 0x1200000034)),
    _rule("kcmp", 124, (4, "SCMP_CMP_LT", 0x8000000000000000)),
    _rule("kcmp", 125, (1, "SCMP_CMP_GE", 0xFFFFFFFE)),
]}


def _pool(rng: random.Random) -> list[int]:
    """Argument values at and around every constant of PROFILE, across the 32-bit halves."""
    consts = [1, 0x100000005, 77, 3, 0xFF000000FF, 0x1200000034, 0x8000000000000000,
              0xFFFFFFFE, 0]
    out = set()
    for c in consts:
        for d in (-1, 0, 1, 1 << 32, -(1 << 32)):
            out.add((c + d) % 2**64)
        out.add(c & 0xFFFFFFFF)
        out.add(c | 1 << 63)
    out |= {2**64 - 1, 0x1200000034 | 0xAB00, 0xFF1200000034}
    return sorted(out) + [rng.getrandbits(64) for _ in range(20)]


def _kernel_errnos(profiles: list[dict], calls: list[tuple[int, list[int]]]) -> list[int]:
    """In a child with no_new_privs: load each profile's filter (in order), make each call;
    the errno of each (0: it succeeded)."""
    def child():
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
        for prof in profiles:
            S.Filter(compile_profile(prof)).load()
        out = []
        for nr, args in calls:
            rc = libc.syscall(ctypes.c_long(nr), *(ctypes.c_ulong(a) for a in args))
            out.append(ctypes.get_errno() if rc == -1 else 0)
        return out
    return in_child(child)


def _predicted(progs: list, nr: int, args: list[int]) -> int | None:
    results = [bpfrun.run(p, bpfrun.seccomp_data(nr, ARCH, args)) for p in progs]
    ret = results[bpfrun.combine(results)].ret
    if ret & 0xFFFF0000 == S.ACT_ERRNO:
        return ret & 0xFFFF
    if ret & 0xFFFF0000 == S.ACT_TRACE:
        return errno.ENOSYS  # no tracer
    assert ret == S.ACT_ALLOW, hex(ret)
    return None


def test_interpreter_agrees_with_the_kernel():
    rng = random.Random(12)
    pool = _pool(rng)
    calls = [(GETPRIORITY, [rng.choice(pool) for _ in range(2)]) for _ in range(800)]
    calls += [(KCMP, [rng.choice(pool) for _ in range(5)]) for _ in range(2400)]
    prog, _ = source.export(PROFILE)
    got = _kernel_errnos([PROFILE], calls)
    answered = {n: 0 for n in OURS}
    for (nr, args), kernel in zip(calls, got):
        want = _predicted([prog], nr, args)
        assert (kernel if kernel in OURS else None) == want, (nr, [hex(a) for a in args])
        if want:
            answered[want] += 1
    # every rule decided some calls, and some calls ran: the comparison covered each branch
    assert all(answered[n] for n in range(120, 126)), answered
    assert sum(k not in OURS for k in got) > 100


def test_several_filters_precedence_as_the_kernel():
    """ERRNO beats TRACE; two ERRNOs: the newest filter's errno (seccomp_run_filters)."""
    older = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        _rule("getpriority", 126, (0, "SCMP_CMP_EQ", 5)),
        {"names": ["getpriority"], "action": "SCMP_ACT_TRACE",
         "args": [{"index": 0, "op": "SCMP_CMP_NE", "value": 5}]}]}
    newer = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        _rule("getpriority", 127, (1, "SCMP_CMP_EQ", 9))]}
    progs = [source.export(newer)[0], source.export(older)[0]]  # newest first
    calls = [(GETPRIORITY, [a, b]) for a in (5, 6) for b in (9, 10)] + [(KCMP, [0] * 5)]
    got = _kernel_errnos([older, newer], calls)
    want = [_predicted(progs, nr, args) for nr, args in calls]
    assert want == [127, 126, 127, errno.ENOSYS, None]
    assert [k if k in OURS | {errno.ENOSYS} else None for k in got] == want


def test_check_names_the_rule_and_the_path():
    src = source.from_profile({"linux": {"seccomp": PROFILE}}, "t")
    c = answers.check(src, "getpriority", ["1", "0"])
    assert (c.action, c.ret, c.errno, c.errno_name) == \
        ("SCMP_ACT_ERRNO(120)", "SECCOMP_RET_ERRNO", 120, "EISNAM")
    assert c.rule == "/linux/seccomp/syscalls/0"
    assert c.runs[0].path[-1].text == "ret #0x50078"
    assert "nr: getpriority" in c.runs[0].path[2].note
    c = answers.check(src, "getpriority", ["2", "0x100000005"])
    assert (c.action, c.rule) == ("SCMP_ACT_ALLOW", "/linux/seccomp/defaultAction")
    c = answers.check(src, "kcmp", ["-1", "0", "3", "0", "0x8000000000000000"])
    assert (c.errno, c.rule) == (122, "/linux/seccomp/syscalls/2")


# one rule per syscall: what explain folds back is each rule itself (rules of one syscall
# overlap in the BPF: each path then also carries the negation of the rules tried before it)
RECON = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
    _rule("getpriority", 120, (0, "SCMP_CMP_EQ", 1)),
    _rule("setpriority", 121, (1, "SCMP_CMP_GT", 0x100000005)),
    _rule("kcmp", 122, (0, "SCMP_CMP_NE", 77), (2, "SCMP_CMP_LE", 3)),
    _rule("chmod", 123, (1, "SCMP_CMP_MASKED_EQ", 0xFF000000FF, 0x1200000034)),
    _rule("umask", 124, (0, "SCMP_CMP_LT", 0x8000000000000000)),
    _rule("personality", 125, (0, "SCMP_CMP_GE", 0xFFFFFFFE)),
    {"names": ["mkdir", "rmdir"], "action": "SCMP_ACT_KILL_PROCESS"},
]}


def test_explain_reconstructs_the_profile_from_its_bpf():
    """A loaded filter with no config to compare with: the rules folded back from the BPF."""
    src = source.from_profile({"linux": {"seccomp": RECON}}, "t")
    src.config, src.mode = None, "filter"
    (e,) = explain.explain(src)
    assert e.default == "SCMP_ACT_ALLOW" and not e.unresolved
    rules = {g.action: [(r.names, r.conditions) for r in g.rules] for g in e.groups}
    assert rules == {
        "SCMP_ACT_KILL_PROCESS": [(["mkdir", "rmdir"], [])],
        "SCMP_ACT_ERRNO(120)": [(["getpriority"], ["args[0] == 1"])],
        "SCMP_ACT_ERRNO(121)": [(["setpriority"], ["args[1] >= 0x100000006"])],
        "SCMP_ACT_ERRNO(122)": [(["kcmp"], ["args[0] != 77", "args[2] <= 3"])],
        "SCMP_ACT_ERRNO(123)": [(["chmod"], ["args[1] & 0xff000000ff == 0x1200000034"])],
        "SCMP_ACT_ERRNO(124)": [(["umask"], ["args[0] <= 0x7fffffffffffffff"])],
        "SCMP_ACT_ERRNO(125)": [(["personality"], ["args[0] >= 0xfffffffe"])],
    }
    # and in config.json's own terms when the profile is known
    (p,) = explain.explain(source.from_profile({"linux": {"seccomp": RECON}}, "t"))
    assert [(r.names, r.conditions, r.pointer) for g in p.groups for r in g.rules
            if g.action == "SCMP_ACT_ERRNO(121)"] == \
        [(["setpriority"], ["args[1] > 0x100000005"], "/linux/seccomp/syscalls/1")]


def test_explain_of_dockers_profile():
    from tests.integration.test_security import docker_default_profile
    src = source.from_profile({"linux": {"seccomp": docker_default_profile()}}, "docker")
    src.config, src.mode = None, "filter"
    (e,) = explain.explain(src)
    assert e.default == "SCMP_ACT_ERRNO(1)"
    rules = {g.action: g.rules for g in e.groups}
    allowed = rules["SCMP_ACT_ALLOW"]
    assert "read" in allowed[0].names and "reboot" not in allowed[0].names
    conds = {r.names[0]: r.conditions for r in allowed[1:]}
    assert conds["socket"] == ["args[0] != 40"]
    assert conds["personality"] == ["args[0] in 0, 8, 0x20000, 0x20008, 0xffffffff "
                                    "(one rule per value)"]
    assert [r.names for r in rules["SCMP_ACT_ERRNO(38)"]] == [["clone3"]]


def test_startup_flags():
    prof = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["execve"], "action": "SCMP_ACT_ERRNO"},
        _rule("mprotect", 1, (2, "SCMP_CMP_MASKED_EQ", 4, 4))]}
    src = source.from_profile({"process": {"noNewPrivileges": True},
                               "linux": {"seccomp": prof}}, "t")
    flags = {f.syscall: f for f in answers.startup(src)}
    assert set(flags) == {"execve", "mprotect"}
    assert flags["execve"].always and not flags["mprotect"].always
    assert "cannot be started" in flags["execve"].why


@pytest.mark.parametrize("word,value", [
    ("8", 8), ("0x10", 16), ("-100", 2**64 - 100), ("PER_LINUX32", 8),
    ("CLONE_NEWUSER|CLONE_NEWNS", 0x10020000), ("O_CREAT|O_WRONLY", os.O_CREAT | os.O_WRONLY),
    ("ADDR_NO_RANDOMIZE", 0x0040000)])
def test_arguments(word, value):
    assert answers.parse_arg(word, 0) == value


@pytest.mark.parametrize("call,args,words", [
    ("nosuch", [], "unknown syscall 'nosuch'"),
    ("socketcall", [], "not a syscall on x86_64"),
    ("mkdir", ["FOO"], "args[0] ('FOO'): 'FOO' is neither a number"),
    ("mkdir", ["1"] * 7, "at most 6 arguments"),
])
def test_bad_input(call, args, words):
    src = source.from_profile({"linux": {"seccomp": PROFILE}}, "t")
    with pytest.raises(OcishError) as ei:
        answers.check(src, call, args)
    assert words in str(ei.value)


def test_bad_profile_names_its_pointer():
    with pytest.raises(OcishError) as ei:
        source.from_profile({"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW",
                             "syscalls": [{"names": ["x"], "action": "BOGUS"}]}}}, "t")
    assert str(ei.value).startswith('config /linux/seccomp/syscalls/0/action: unknown action '
                                    '"BOGUS"')


def _blocked_child(setup) -> tuple[int, int]:
    """A child that runs setup() (ctypes calls only), then blocks in read(2) on a pipe: its
    pid, and the pipe's write end (closing it lets the child's read return; it then calls
    getpid(2) and exits)."""
    r, w = os.pipe()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(w)
        os.close(ready_r)
        libc = ctypes.CDLL(None, use_errno=True)
        setup(libc)
        libc.write(ready_w, b"x", 1)
        buf = ctypes.create_string_buffer(1)
        libc.read(r, buf, 1)
        libc.syscall(39)      # getpid
        libc.syscall(60, 0)   # exit: allowed even in strict mode
    os.close(r)
    os.close(ready_w)
    assert os.read(ready_r, 1) == b"x"
    os.close(ready_r)
    return pid, w


def _end(pid: int, w: int) -> int:
    """Let the child go on; its wait status."""
    os.close(w)
    return os.waitpid(pid, 0)[1]


@pytest.mark.skipif(os.geteuid() != 0, reason="PTRACE_SECCOMP_GET_FILTER needs CAP_SYS_ADMIN")
def test_a_process_with_two_filters():
    """Read back from the kernel: both filters, newest first, answers combined as the kernel
    combines them; the count is /proc/PID/status's."""
    older = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 120}]}
    newer = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_KILL_PROCESS"},
        {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 121}]}

    def setup(libc):
        libc.prctl(38, 1, 0, 0, 0)
        for prof in (older, newer):
            S.Filter(compile_profile(prof)).load()
    pid, w = _blocked_child(setup)
    try:
        src = source.from_pid(pid)
        with open(f"/proc/{pid}/status") as f:
            status = dict(ln.rstrip("\n").split(":\t", 1) for ln in f if ":\t" in ln)
        assert (src.mode, len(src.filters)) == ("filter", int(status["Seccomp_filters"])) == \
            ("filter", 2)
        assert src.filters == [source.export(newer)[0], source.export(older)[0]]
        c = answers.check(src, "mkdir", [])
        assert (c.action, c.decided_by, [r.action for r in c.runs]) == \
            ("SCMP_ACT_KILL_PROCESS", 0, ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_ERRNO(120)"])
        c = answers.check(src, "rmdir", [])
        assert (c.errno, c.decided_by) == (121, 0)
        assert [e.filter for e in explain.explain(src)] == [0, 1]
    finally:
        _end(pid, w)


def test_strict_mode():
    pid, w = _blocked_child(lambda libc: libc.prctl(22, 1, 0, 0, 0))  # PR_SET_SECCOMP strict
    try:
        src = source.from_pid(pid)
        assert src.mode == "strict"
        assert answers.check(src, "read", []).action == "SCMP_ACT_ALLOW"
        c = answers.check(src, "getpid", [])
        assert (c.action, c.ret) == ("SCMP_ACT_KILL_THREAD", "SECCOMP_RET_KILL_THREAD")
        assert "SIGKILL" in c.effect
    finally:
        status = _end(pid, w)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == 9  # the kernel's answer to getpid


@needs_libseccomp
def test_an_argument_compared_twice_is_either_condition_as_compiled():
    """runc (and runtime/spec_seccomp.py) compile an entry comparing one argument twice as one
    rule per condition: check names that entry for either value, explain lists both rules,
    neither says the two must hold at once."""
    prof = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        _rule("personality", 1, (0, "SCMP_CMP_EQ", 8), (0, "SCMP_CMP_EQ", 9))]}
    src = source.from_profile({"linux": {"seccomp": prof}}, "t")
    for value in ("8", "9"):
        c = answers.check(src, "personality", [value])
        assert (c.errno, c.rule) == (1, "/linux/seccomp/syscalls/0")
    c = answers.check(src, "personality", ["10"])
    assert (c.action, c.rule) == ("SCMP_ACT_ALLOW", "/linux/seccomp/defaultAction")
    (e,) = explain.explain(src)
    assert [(r.names, r.conditions, r.pointer) for g in e.groups for r in g.rules] == [
        (["personality"], ["args[0] == 8"], "/linux/seccomp/syscalls/0"),
        (["personality"], ["args[0] == 9"], "/linux/seccomp/syscalls/0")]
