"""Does a seccomp profile let the container process reach execve(2), and execve itself?

A filter applies from the moment it is loaded, to the runtime's own code as much as to the user's
program. ocish loads it as late as the kernel allows (runtime/stages/security.py): with
noNewPrivileges in exec's handoff, right before exec.fifo is opened; without, in stage bounding,
while CAP_SYS_ADMIN is still held, so the rest of setup runs under it. The system calls made
between the load and execve(2) are listed below, as strace shows them on this tree (`strace -f`
of `ocish run` with a profile whose default action is SCMP_ACT_ALLOW); a profile that kills or
fails one of them stops the process before its program ever runs, with an error that names no
profile ("container process exited during setup", "cannot start a container that has stopped").

The profile is evaluated by name only: a rule with argument conditions may or may not match,
and such a call is left to the dry run.
"""
from __future__ import annotations

import errno as errnomod

from ocish.diagnose.model import ERROR, PREFLIGHT, WARNING, Finding, Fix
from runtime.linux import seccomp as S

# after the load, with noNewPrivileges: open exec.fifo, write the start byte, execve
AFTER_LOAD_NNP = ("openat", "write", "execve")
# after the load in stage bounding: the rest of setup (bounding, user, caps, exec), the sync
# channel to the host, then the same handoff
AFTER_LOAD = ("prctl", "sendto", "recvfrom", "setgroups", "setresgid", "setresuid", "umask",
              "chdir", "capget", "capset", "newfstatat", "openat", "getdents64", "close",
              "ioctl", "fcntl", "rt_sigaction", "rt_sigprocmask", "write", "execve")
# right after execve: the first calls of a dynamically linked program (ld.so, then libc's start)
# and of a static one (busybox), as `strace /bin/true` and `strace busybox true` show them on
# this host; a profile that fails or kills one may stop the program before main()
LOADER = ("brk", "arch_prctl", "mmap", "access", "openat", "newfstatat", "read", "pread64",
          "close", "mprotect", "munmap", "set_tid_address", "set_robust_list", "rseq",
          "prlimit64", "readlink", "getrandom", "exit_group")
PTR = "/linux/seccomp"


def action_for(prof: S.Profile, name: str) -> int | None:
    """The action the profile takes for `name` called with any arguments; None when only rules
    with argument conditions name it (it depends on the arguments)."""
    rules = [r for r in prof.rules if r.name == name]
    if not rules:
        return prof.default_action
    plain = [r for r in rules if not r.conditions]
    return plain[0].action if plain else None


def blocks(action: int) -> str:
    """"" when `action` lets the call through, else what happens to the caller."""
    base = action & 0xFFFF0000
    if action in (S.ACT_ALLOW, S.ACT_LOG) or action == S.ACT_NOTIFY:
        return ""
    if base == S.ACT_ERRNO:
        n = action & 0xFFFF
        return f"fails with {errnomod.errorcode.get(n, n)}"
    if base == S.ACT_TRACE:
        return "fails with ENOSYS (SCMP_ACT_TRACE, and no tracer)"
    return f"is killed by SIGSYS ({S.action_name(action)})"


def findings(sc: dict, proc: dict) -> list[Finding]:
    """Findings for a /linux/seccomp object that stops the process before or at execve(2)."""
    from runtime.errors import SpecError
    from runtime.spec_seccomp import compile_profile
    try:
        prof = compile_profile(sc)
    except SpecError:
        return []  # lint's finding
    nnp = proc.get("noNewPrivileges") is True
    stopped = []
    for name in AFTER_LOAD_NNP if nnp else AFTER_LOAD:
        action = action_for(prof, name)
        if action is not None and blocks(action):
            stopped.append((name, action))
    if not stopped:
        return loader_findings(prof, sc)
    names = [n for n, _ in stopped]
    where = ("in exec's handoff, just before exec.fifo is opened (noNewPrivileges is true)"
             if nnp else "in stage bounding, before the user switch (noNewPrivileges is false)")
    by_rule = [n for n, _ in stopped if any(r.name == n for r in prof.rules)]
    by_default = [n for n in names if n not in by_rule]
    evidence = [f"{n}: {S.action_name(a)} (a rule)" for n, a in stopped if n in by_rule]
    if by_default:
        evidence.append(f"default action {S.action_name(prof.default_action)} for: "
                        + ", ".join(by_default))
    fix = Fix("let the calls the runtime needs to reach execve(2) through: take them out of the "
              "rules that deny them, allow those the default action denies"
              + ("" if nnp else "; or set /process/noNewPrivileges to true: the filter is then "
                 "loaded right before execve(2), and only " + ", ".join(AFTER_LOAD_NNP)
                 + " need to be allowed"), unblock(sc, names))
    first, action = stopped[0]
    errno_ = (action & 0xFFFF) if action & 0xFFFF0000 == S.ACT_ERRNO else 0
    if names == ["execve"]:
        return [Finding("seccomp-execve", ERROR, PREFLIGHT, "the seccomp profile forbids "
                        "execve(2)", f"execve(2) {blocks(action)}: the process gets through setup "
                        "and `start`, then cannot run its program", "exec", "execve", errno_,
                        PTR, evidence, fix)]
    return [Finding("seccomp-before-exec", ERROR, PREFLIGHT, "the seccomp profile stops the "
                    "runtime before execve(2)", f"the filter is loaded {where}; after that the "
                    f"runtime still calls {', '.join(names)}, and {first} {blocks(action)}: the "
                    "process dies (or fails) before its program runs", "bounding" if not nnp
                    else "exec", first, errno_, decided_by(prof, first), evidence, fix)]


def decided_by(prof: S.Profile, name: str) -> str:
    """The pointer of what decides `name` called with any arguments in the compiled profile, as
    action_for reads it: its first rule without argument conditions, else the default action
    (rules with the default's action were dropped by the compiler, as runc drops them)."""
    plain = [r for r in prof.rules if r.name == name and not r.conditions]
    return plain[0].pointer if plain else f"{prof.pointer}/defaultAction"


def loader_findings(prof: S.Profile, sc: dict) -> list[Finding]:
    """A warning for a profile that lets the runtime reach execve(2) but stops one of the first
    calls of the program after it (LOADER): a kill is certain death, an errno may or may not be
    survived (glibc shrugs off a refused rseq, not a refused mmap)."""
    stopped = [(n, a) for n in LOADER if (a := action_for(prof, n)) is not None and blocks(a)]
    if not stopped:
        return []
    names = [n for n, _ in stopped]
    evidence = [f"{n}: {S.action_name(a)}" for n, a in stopped]
    first, action = stopped[0]
    errno_ = (action & 0xFFFF) if action & 0xFFFF0000 == S.ACT_ERRNO else 0
    return [Finding("seccomp-loader", WARNING, PREFLIGHT, "the seccomp profile stops calls a "
                    "program makes as it starts", f"right after execve(2) the dynamic loader "
                    f"(or a static program's start-up) calls {', '.join(names)}; {first} "
                    f"{blocks(action)}: the program may die or fail before main()", "exec",
                    first, errno_, PTR, evidence,
                    Fix("allow the program's start-up calls in /linux/seccomp",
                        unblock(sc, names)))]


def unblock(sc: dict, names: list[str]) -> list[dict]:
    """JSON patch operations that let the calls `names` through /linux/seccomp `sc`: each is
    taken out of the plain rules (no argument conditions) whose action stops it (execveat
    with execve: a profile that denies one means both; a rule left with no name goes), and an
    SCMP_ACT_ALLOW rule is added for what the default action still stops. An allow rule
    alone would not do: the first rule naming a call decides (action_for), as libseccomp
    refuses a second action for it. Operations in an order that keeps indexes valid."""
    import copy
    want = set(names) | ({"execveat"} if "execve" in names else set())
    after = copy.deepcopy(sc)
    calls = after.get("syscalls") if isinstance(after.get("syscalls"), list) else []
    ops = []
    for i in range(len(calls) - 1, -1, -1):
        call = calls[i]
        if not isinstance(call, dict) or call.get("args") or \
                not isinstance(call.get("names"), list):
            continue
        try:
            action = S.action_value(call.get("action"), call.get("errnoRet"))
        except (KeyError, TypeError):
            continue
        left = [n for n in call["names"] if n not in want]
        if not blocks(action) or len(left) == len(call["names"]):
            continue
        where = f"{PTR}/syscalls/{i}"
        if left:
            ops.append({"op": "replace", "path": where + "/names", "value": left})
            call["names"] = left
        else:
            ops.append({"op": "remove", "path": where})
            del calls[i]
    from runtime.errors import SpecError
    from runtime.spec_seccomp import compile_profile
    try:
        prof = compile_profile(after)
    except SpecError:
        return ops
    still = [n for n in names if (a := action_for(prof, n)) is not None and blocks(a)]
    if still:
        ops.append(allow_rule(after, still))
    return ops


def allow_rule(sc: dict, names: list[str]) -> dict:
    """The JSON patch operation adding an SCMP_ACT_ALLOW rule for `names` to /linux/seccomp."""
    rule = {"names": names, "action": "SCMP_ACT_ALLOW"}
    if isinstance(sc.get("syscalls"), list):
        return {"op": "add", "path": PTR + "/syscalls/-", "value": rule}
    return {"op": "add", "path": PTR + "/syscalls", "value": [rule]}
