"""The /linux/seccomp part of runtime/spec.py: validate a profile and compile it into the
numbers runtime/linux/seccomp.py hands to libseccomp (its `Profile` of `Rule`s).

Translated the way runc does: actions and errnoRet into SCMP_ACT_* values (ERRNO and TRACE
default to EPERM), operators into `enum scmp_compare`, one rule per syscall name, a rule whose
action is the default action dropped, and a rule with two conditions on the same argument split
into one rule per condition (libseccomp refuses to AND them). Unknown actions, operators, arches
and flags raise SpecError naming the JSON pointer, e.g. /linux/seccomp/syscalls/3/action. Pure
Python: no libseccomp needed (arches this libseccomp lacks are found when the filter is built).
"""
from __future__ import annotations

from runtime import jsonfast
from runtime.errors import STRICT, SpecError
from runtime.linux import seccomp as S


def _q(v) -> str:
    """A value as the messages show it: JSON for scalars, "an array"/"an object" otherwise."""
    t = type(v)
    if t is list:
        return "an array"
    if t is dict:
        return "an object"
    if t is str:
        return jsonfast.quote(v)
    return jsonfast.dumps(v)


def _str(v, p: str, what: str = "a string") -> str:
    if type(v) is not str:
        raise SpecError(p, f"must be {what}, got {_q(v)}")
    return v


def _uint(v, p: str, hi: int) -> int:
    if type(v) is not int or not 0 <= v <= hi:
        raise SpecError(p, f"must be an integer from 0 to {hi}, got {_q(v)}")
    return v


def _list(v, p: str) -> list:
    if type(v) is not list:
        raise SpecError(p, f"must be an array, got {_q(v)}")
    return v


def _action(d: dict, key: str, p: str, errno_key: str) -> int:
    if key not in d:
        raise SpecError(f"{p}/{key}", "missing, expected an action like \"SCMP_ACT_ERRNO\"")
    name = d[key]
    if type(name) is not str or name not in S.ACTIONS:
        raise SpecError(f"{p}/{key}", f"unknown action {_q(name)}, expected one of "
                                          + ", ".join(S.ACTIONS))
    errno_ret = None
    if errno_key in d:
        errno_ret = _uint(d[errno_key], f"{p}/{errno_key}", 0xFFFF)
    return S.action_value(name, errno_ret)


def compile_profile(sc: dict, base: str = "/linux/seccomp", each=STRICT) -> S.Profile:
    """Validate and translate one /linux/seccomp object; raises SpecError(pointer, ...).
    Each architecture, flag, syscall entry and listener field is checked inside the guard `each`
    (runtime.spec's lint mode records a problem there and goes on)."""
    if type(sc) is not dict:
        raise SpecError(base, "must be an object")
    prof = S.Profile(base, base + "/listenerPath")
    with each:
        prof.default_action = _action(sc, "defaultAction", base, "defaultErrnoRet")
        if prof.default_action == S.ACT_NOTIFY:
            raise SpecError(base + "/defaultAction",
                               "SCMP_ACT_NOTIFY cannot be the default action")

    for key, table, what in (("architectures", S.ARCHES, "architecture"), ("flags", S.FLAGS, "flag")):
        with each:
            for i, name in enumerate(_list(sc.get(key, []), f"{base}/{key}")):
                with each:
                    p = f"{base}/{key}/{i}"
                    if type(name) is not str or name not in table:
                        raise SpecError(p, f"unknown {what} {_q(name)}, expected one of "
                                              + ", ".join(table))
                    (prof.arches if key == "architectures" else prof.flags).append(
                        (name, table[name], p))

    with each:
        for i, call in enumerate(_list(sc.get("syscalls", []), base + "/syscalls")):
            with each:
                _syscall(prof, call, f"{base}/syscalls/{i}")

    with each:
        if "listenerPath" in sc:
            prof.listener_path = _str(sc["listenerPath"], base + "/listenerPath",
                                      "an absolute path")
            if not prof.listener_path.startswith("/"):
                raise SpecError(base + "/listenerPath",
                                   f"must be an absolute path, got {_q(prof.listener_path)}")
    with each:
        if "listenerMetadata" in sc:
            prof.listener_metadata = _str(sc["listenerMetadata"], base + "/listenerMetadata")
    if prof.notify and not prof.listener_path:
        raise SpecError(base + "/listenerPath",
                           "missing: SCMP_ACT_NOTIFY rules need a listener to answer them")
    return prof


def _syscall(prof: S.Profile, call, p: str) -> None:
    """One /linux/seccomp/syscalls entry into prof's rules."""
    if type(call) is not dict:
        raise SpecError(p, "must be an object")
    if "names" not in call:
        raise SpecError(p + "/names", "missing, expected an array of syscall names")
    names = _list(call["names"], p + "/names")
    if not names:
        raise SpecError(p + "/names", "must not be empty")
    for j, n in enumerate(names):
        _str(n, f"{p}/names/{j}", "a syscall name")
    action = _action(call, "action", p, "errnoRet")
    groups = _conditions(call, p)
    if action == S.ACT_NOTIFY:
        prof.notify = True
        if "sendmsg" in names:  # we send the listener its fd with sendmsg(2) after loading
            raise SpecError(f"{p}/names/{names.index('sendmsg')}",
                               "SCMP_ACT_NOTIFY cannot be used for sendmsg: the runtime "
                               "needs it to hand the notify fd to the listener")
    if action == prof.default_action:
        return  # runc skips these; libseccomp would refuse them (EACCES)
    for n in names:
        for conds in groups:
            prof.rules.append(S.Rule(action, n, conds, p))


def _conditions(call: dict, p: str) -> list[tuple]:
    """The condition groups of one syscall entry: one group with every condition, or, when an
    argument is compared twice, one group per condition (runc: "revert to old behavior")."""
    conds, seen, repeated = [], set(), False
    for j, a in enumerate(_list(call.get("args", []), p + "/args")):
        ap = f"{p}/args/{j}"
        if type(a) is not dict:
            raise SpecError(ap, "must be an object")
        for key in ("index", "value", "op"):
            if key not in a:
                raise SpecError(f"{ap}/{key}", "missing")
        index = _uint(a["index"], ap + "/index", S.MAX_ARGS - 1)
        op = a["op"]
        if type(op) is not str or op not in S.OPERATORS:
            raise SpecError(ap + "/op", f"unknown operator {_q(op)}, expected one of "
                                           + ", ".join(S.OPERATORS))
        value = _uint(a["value"], ap + "/value", S.U64)
        value2 = _uint(a.get("valueTwo", 0), ap + "/valueTwo", S.U64)
        opn = S.OPERATORS[op]
        conds.append((index, opn, value, value2 if opn == S.CMP_MASKED_EQ else 0))
        repeated |= index in seen
        seen.add(index)
    if repeated:
        return [(c,) for c in conds]
    return [tuple(conds)]


def validate_seccomp(spec: dict, each=STRICT) -> None:
    """For spec validation: raise SpecError at a problem in /linux/seccomp,
    inside `each`. Needs no libseccomp (arches this libseccomp lacks are found at prepare)."""
    linux = spec.get("linux")
    if type(linux) is dict and "seccomp" in linux:
        compile_profile(linux["seccomp"], each=each)
