"""Seccomp through libseccomp (ctypes): compile config.json's /linux/seccomp, prepare, load late.

Three layers, each usable alone (the debugger shows the first two without loading anything):

1. `compile_profile(seccomp)` -> `Profile`: pure Python, no libseccomp. Validates the profile and
   translates it into numbers the way runc does: actions and errnoRet into SCMP_ACT_* values
   (ERRNO and TRACE default to EPERM), operators into `enum scmp_compare`, one rule per syscall
   name, a rule whose action is the default action dropped, and a rule with two conditions on the
   same argument split into one rule per condition (libseccomp refuses to AND them). Unknown
   actions, operators, arches and flags raise `SeccompError` naming the JSON pointer, e.g.
   /linux/seccomp/syscalls/3/action. `validate_seccomp(spec)` runs it for spec validation.
2. `Filter(profile)`: a libseccomp context with every rule added; syscall names this libseccomp
   does not know are skipped, as runc does (`skipped`). `export_pfc`/`export_bpf` show it.
3. `prepare(profile, ...)` keeps one Filter as *the* filter of this process and, for
   SCMP_ACT_NOTIFY, connects to listenerPath while the host's paths are still reachable (before
   pivot_root) and builds the containerProcessState payload. `load_prepared()` then only calls
   seccomp_load(3), and with a listener sends it the notify fd with sendmsg(2) (SCM_RIGHTS): no
   import, no path lookup, and no allocation beyond the fd array happens after the filter is on.

libseccomp is dlopen'ed at import time: the container side imports this module before pivot_root,
after which the host's libraries are out of reach. When libseccomp is missing, only a config that
asks for seccomp fails. This module imports nothing heavy (no re, json, dataclasses, nor `socket`:
`_socket` is enough, as in runtime.sync).

libseccomp sets no_new_privs itself on load unless told not to: we clear SCMP_FLTATR_CTL_NNP, so
no_new_privs stays what /process/noNewPrivileges says (runc does the same).
"""
from __future__ import annotations

import _socket
import ctypes
import os
import sys

from runtime import jsonfast
from runtime.errors import STRICT, SpecError

try:
    _lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
except OSError:  # pragma: no cover - depends on the host
    _lib = None

# <seccomp.h> actions
ACT_KILL_PROCESS = 0x80000000
ACT_KILL_THREAD = 0x00000000
ACT_TRAP = 0x00030000
ACT_ERRNO = 0x00050000   # | errno
ACT_NOTIFY = 0x7FC00000
ACT_TRACE = 0x7FF00000   # | msg
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000
EPERM = 1

ACTIONS = ("SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
           "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY")
_ACTION_VALUE = {"SCMP_ACT_KILL": ACT_KILL_THREAD, "SCMP_ACT_KILL_THREAD": ACT_KILL_THREAD,
                 "SCMP_ACT_KILL_PROCESS": ACT_KILL_PROCESS, "SCMP_ACT_TRAP": ACT_TRAP,
                 "SCMP_ACT_ERRNO": ACT_ERRNO, "SCMP_ACT_TRACE": ACT_TRACE,
                 "SCMP_ACT_ALLOW": ACT_ALLOW, "SCMP_ACT_LOG": ACT_LOG,
                 "SCMP_ACT_NOTIFY": ACT_NOTIFY}

# enum scmp_compare
OPERATORS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
             "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
CMP_MASKED_EQ = 7

# runtime-spec arch names -> libseccomp's names (seccomp_arch_resolve_name)
ARCHES = {
    "SCMP_ARCH_X86": "x86", "SCMP_ARCH_X86_64": "x86_64", "SCMP_ARCH_X32": "x32",
    "SCMP_ARCH_ARM": "arm", "SCMP_ARCH_AARCH64": "aarch64",
    "SCMP_ARCH_MIPS": "mips", "SCMP_ARCH_MIPS64": "mips64", "SCMP_ARCH_MIPS64N32": "mips64n32",
    "SCMP_ARCH_MIPSEL": "mipsel", "SCMP_ARCH_MIPSEL64": "mipsel64",
    "SCMP_ARCH_MIPSEL64N32": "mipsel64n32",
    "SCMP_ARCH_PPC": "ppc", "SCMP_ARCH_PPC64": "ppc64", "SCMP_ARCH_PPC64LE": "ppc64le",
    "SCMP_ARCH_S390": "s390", "SCMP_ARCH_S390X": "s390x",
    "SCMP_ARCH_PARISC": "parisc", "SCMP_ARCH_PARISC64": "parisc64",
    "SCMP_ARCH_RISCV64": "riscv64", "SCMP_ARCH_LOONGARCH64": "loongarch64",
    "SCMP_ARCH_M68K": "m68k", "SCMP_ARCH_SH": "sh", "SCMP_ARCH_SHEB": "sheb",
}

# enum scmp_filter_attr
ATTR_CTL_NNP = 3
ATTR_CTL_TSYNC = 4
ATTR_CTL_LOG = 6
ATTR_CTL_SSB = 7
ATTR_API_SYSRAWRC = 9    # libseccomp >= 2.5: the kernel's errno, not ECANCELED
ATTR_CTL_WAITKILL = 11   # libseccomp >= 2.6
FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": ATTR_CTL_TSYNC,
         "SECCOMP_FILTER_FLAG_LOG": ATTR_CTL_LOG,
         "SECCOMP_FILTER_FLAG_SPEC_ALLOW": ATTR_CTL_SSB,
         "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": ATTR_CTL_WAITKILL}

NR_SCMP_ERROR = -1
MAX_ARGS = 6
U64 = 2**64 - 1
_EEXIST = 17
_ENOSYS = 38


class SeccompError(SpecError):
    """A profile we or libseccomp cannot take; `op`, `target`, `errno` say which call failed."""

    def __init__(self, pointer: str, message: str, op: str = "", target: str = "",
                 errno: int = 0) -> None:
        super().__init__(pointer, message)
        self.op, self.target, self.errno = op, target, errno


# ---------------------------------------------------------------------------------------------
# 1. translation (pure)

class Rule:
    """One libseccomp rule: (action value, syscall name, conditions) and where it came from.

    `conditions` is a tuple of (arg index, operator number, datum_a, datum_b), as in
    `struct scmp_arg_cmp`; for SCMP_CMP_MASKED_EQ datum_a is the mask (`value`) and datum_b the
    value compared (`valueTwo`)."""
    __slots__ = ("action", "name", "conditions", "pointer")

    def __init__(self, action: int, name: str, conditions: tuple, pointer: str) -> None:
        self.action, self.name, self.conditions, self.pointer = action, name, conditions, pointer

    def __repr__(self) -> str:
        return (f"Rule({action_name(self.action)}, {self.name!r}, {self.conditions!r}, "
                f"{self.pointer!r})")

    def __eq__(self, other) -> bool:
        return isinstance(other, Rule) and (self.action, self.name, self.conditions) == \
            (other.action, other.name, other.conditions)


class Profile:
    """A compiled /linux/seccomp: everything libseccomp needs, in numbers."""
    __slots__ = ("default_action", "arches", "flags", "rules", "listener_path",
                 "listener_metadata", "notify")

    def __init__(self) -> None:
        self.default_action = ACT_ALLOW
        self.arches: list[tuple[str, str, str]] = []   # (spec name, libseccomp name, pointer)
        self.flags: list[tuple[str, int, str]] = []    # (flag, attribute, pointer)
        self.rules: list[Rule] = []
        self.listener_path = ""
        self.listener_metadata = ""
        self.notify = False


def action_name(value: int) -> str:
    """ACT_ERRNO | 1 -> "SCMP_ACT_ERRNO(1)"; for messages and the debugger."""
    base = value & 0xFFFF0000
    for name in ("SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
                 "SCMP_ACT_NOTIFY", "SCMP_ACT_LOG", "SCMP_ACT_ALLOW"):
        if value == _ACTION_VALUE[name]:
            return name
    if base == ACT_ERRNO:
        return f"SCMP_ACT_ERRNO({value & 0xFFFF})"
    if base == ACT_TRACE:
        return f"SCMP_ACT_TRACE({value & 0xFFFF})"
    return hex(value)


def action_value(name: str, errno_ret: int | None = None) -> int:
    """"SCMP_ACT_ERRNO", 38 -> 0x50026. ERRNO and TRACE return EPERM unless told otherwise;
    errnoRet is ignored for the other actions (as runc does)."""
    value = _ACTION_VALUE[name]
    if value in (ACT_ERRNO, ACT_TRACE):
        value |= (EPERM if errno_ret is None else errno_ret) & 0xFFFF
    return value


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
        raise SeccompError(p, f"must be {what}, got {_q(v)}")
    return v


def _uint(v, p: str, hi: int) -> int:
    if type(v) is not int or not 0 <= v <= hi:
        raise SeccompError(p, f"must be an integer from 0 to {hi}, got {_q(v)}")
    return v


def _list(v, p: str) -> list:
    if type(v) is not list:
        raise SeccompError(p, f"must be an array, got {_q(v)}")
    return v


def _action(d: dict, key: str, p: str, errno_key: str) -> int:
    if key not in d:
        raise SeccompError(f"{p}/{key}", "missing, expected an action like \"SCMP_ACT_ERRNO\"")
    name = d[key]
    if type(name) is not str or name not in _ACTION_VALUE:
        raise SeccompError(f"{p}/{key}", f"unknown action {_q(name)}, expected one of "
                                          + ", ".join(ACTIONS))
    errno_ret = None
    if errno_key in d:
        errno_ret = _uint(d[errno_key], f"{p}/{errno_key}", 0xFFFF)
    return action_value(name, errno_ret)


def compile_profile(sc: dict, base: str = "/linux/seccomp", each=STRICT) -> Profile:
    """Validate and translate one /linux/seccomp object; raises SeccompError(pointer, ...).
    Each architecture, flag, syscall entry and listener field is checked inside the guard `each`
    (runtime.spec's lint mode records a problem there and goes on)."""
    if type(sc) is not dict:
        raise SeccompError(base, "must be an object")
    prof = Profile()
    with each:
        prof.default_action = _action(sc, "defaultAction", base, "defaultErrnoRet")
        if prof.default_action == ACT_NOTIFY:
            raise SeccompError(base + "/defaultAction",
                               "SCMP_ACT_NOTIFY cannot be the default action")

    for key, table, what in (("architectures", ARCHES, "architecture"), ("flags", FLAGS, "flag")):
        with each:
            for i, name in enumerate(_list(sc.get(key, []), f"{base}/{key}")):
                with each:
                    p = f"{base}/{key}/{i}"
                    if type(name) is not str or name not in table:
                        raise SeccompError(p, f"unknown {what} {_q(name)}, expected one of "
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
                raise SeccompError(base + "/listenerPath",
                                   f"must be an absolute path, got {_q(prof.listener_path)}")
    with each:
        if "listenerMetadata" in sc:
            prof.listener_metadata = _str(sc["listenerMetadata"], base + "/listenerMetadata")
    if prof.notify and not prof.listener_path:
        raise SeccompError(base + "/listenerPath",
                           "missing: SCMP_ACT_NOTIFY rules need a listener to answer them")
    return prof


def _syscall(prof: Profile, call, p: str) -> None:
    """One /linux/seccomp/syscalls entry into prof's rules."""
    if type(call) is not dict:
        raise SeccompError(p, "must be an object")
    if "names" not in call:
        raise SeccompError(p + "/names", "missing, expected an array of syscall names")
    names = _list(call["names"], p + "/names")
    if not names:
        raise SeccompError(p + "/names", "must not be empty")
    for j, n in enumerate(names):
        _str(n, f"{p}/names/{j}", "a syscall name")
    action = _action(call, "action", p, "errnoRet")
    groups = _conditions(call, p)
    if action == ACT_NOTIFY:
        prof.notify = True
        if "sendmsg" in names:  # we send the listener its fd with sendmsg(2) after loading
            raise SeccompError(f"{p}/names/{names.index('sendmsg')}",
                               "SCMP_ACT_NOTIFY cannot be used for sendmsg: the runtime "
                               "needs it to hand the notify fd to the listener")
    if action == prof.default_action:
        return  # runc skips these; libseccomp would refuse them (EACCES)
    for n in names:
        for conds in groups:
            prof.rules.append(Rule(action, n, conds, p))


def _conditions(call: dict, p: str) -> list[tuple]:
    """The condition groups of one syscall entry: one group with every condition, or, when an
    argument is compared twice, one group per condition (runc: "revert to old behavior")."""
    conds, seen, repeated = [], set(), False
    for j, a in enumerate(_list(call.get("args", []), p + "/args")):
        ap = f"{p}/args/{j}"
        if type(a) is not dict:
            raise SeccompError(ap, "must be an object")
        for key in ("index", "value", "op"):
            if key not in a:
                raise SeccompError(f"{ap}/{key}", "missing")
        index = _uint(a["index"], ap + "/index", MAX_ARGS - 1)
        op = a["op"]
        if type(op) is not str or op not in OPERATORS:
            raise SeccompError(ap + "/op", f"unknown operator {_q(op)}, expected one of "
                                           + ", ".join(OPERATORS))
        value = _uint(a["value"], ap + "/value", U64)
        value2 = _uint(a.get("valueTwo", 0), ap + "/valueTwo", U64)
        opn = OPERATORS[op]
        conds.append((index, opn, value, value2 if opn == CMP_MASKED_EQ else 0))
        repeated |= index in seen
        seen.add(index)
    if repeated:
        return [(c,) for c in conds]
    return [tuple(conds)]


def validate_seccomp(spec: dict, each=STRICT) -> None:
    """For spec validation: raise SpecError (a SeccompError) at a problem in /linux/seccomp,
    inside `each`. Needs no libseccomp (arches this libseccomp lacks are found at prepare)."""
    linux = spec.get("linux")
    if type(linux) is dict and "seccomp" in linux:
        compile_profile(linux["seccomp"], each=each)


# ---------------------------------------------------------------------------------------------
# 2. libseccomp

class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


def _proto(name: str, restype, *argtypes) -> None:
    fn = getattr(_lib, name)
    fn.restype, fn.argtypes = restype, argtypes


if _lib is not None:
    _ctx = ctypes.c_void_p
    _proto("seccomp_init", _ctx, ctypes.c_uint32)
    _proto("seccomp_release", None, _ctx)
    _proto("seccomp_attr_set", ctypes.c_int, _ctx, ctypes.c_int, ctypes.c_uint32)
    _proto("seccomp_arch_add", ctypes.c_int, _ctx, ctypes.c_uint32)
    _proto("seccomp_arch_resolve_name", ctypes.c_uint32, ctypes.c_char_p)
    _proto("seccomp_arch_native", ctypes.c_uint32)
    _proto("seccomp_syscall_resolve_name", ctypes.c_int, ctypes.c_char_p)
    _proto("seccomp_rule_add_array", ctypes.c_int, _ctx, ctypes.c_uint32, ctypes.c_int,
           ctypes.c_uint, ctypes.POINTER(_ArgCmp))
    _proto("seccomp_load", ctypes.c_int, _ctx)
    _proto("seccomp_notify_fd", ctypes.c_int, _ctx)
    _proto("seccomp_export_pfc", ctypes.c_int, _ctx, ctypes.c_int)
    _proto("seccomp_export_bpf", ctypes.c_int, _ctx, ctypes.c_int)
    _proto("seccomp_api_get", ctypes.c_uint)
    _proto("seccomp_version", ctypes.POINTER(_Version))


def available() -> bool:
    return _lib is not None


def version() -> str:
    if _lib is None:
        return "none"
    v = _lib.seccomp_version().contents
    return f"{v.major}.{v.minor}.{v.micro}"


def api_level() -> int:
    return _lib.seccomp_api_get() if _lib is not None else 0


def syscall_number(name: str) -> int:
    """The native number of a syscall (negative for libseccomp's pseudo syscalls), or -1."""
    return _lib.seccomp_syscall_resolve_name(name.encode())


def _err(rc: int) -> str:
    return os.strerror(-rc).lower()


class Filter:
    """A libseccomp filter context holding a compiled Profile; not loaded until `load()`."""

    def __init__(self, profile: Profile) -> None:
        if _lib is None:
            raise SeccompError("/linux/seccomp", "libseccomp.so.2 is not installed on this host",
                               "dlopen", "libseccomp.so.2")
        self.profile = profile
        self.skipped: list[str] = []
        self.notify = False      # a NOTIFY rule made it in: loading creates a listener fd
        self.loaded = False
        self.ctx = _lib.seccomp_init(profile.default_action)
        if not self.ctx:
            raise SeccompError("/linux/seccomp/defaultAction", "seccomp_init failed",
                               "seccomp_init", action_name(profile.default_action))
        try:
            self._build(profile)
        except BaseException:
            self.release()
            raise

    def _build(self, prof: Profile) -> None:
        # no_new_privs is /process/noNewPrivileges' business, not libseccomp's
        rc = _lib.seccomp_attr_set(self.ctx, ATTR_CTL_NNP, 0)
        if rc < 0:
            raise SeccompError("/linux/seccomp", _err(rc), "seccomp_attr_set", "CTL_NNP", -rc)
        _lib.seccomp_attr_set(self.ctx, ATTR_API_SYSRAWRC, 1)  # older libseccomp: ignored
        if prof.notify and api_level() < 5:
            raise SeccompError("/linux/seccomp", f"SCMP_ACT_NOTIFY needs libseccomp API level 5 "
                                                 f"(kernel 5.0 or later), have {api_level()}")
        for spec_name, lib_name, p in prof.arches:
            token = _lib.seccomp_arch_resolve_name(lib_name.encode())
            if token == 0:
                raise SeccompError(p, f"architecture {spec_name} is not supported by "
                                      f"libseccomp {version()}")
            rc = _lib.seccomp_arch_add(self.ctx, token)
            if rc < 0 and rc != -_EEXIST:
                raise SeccompError(p, _err(rc), "seccomp_arch_add", spec_name, -rc)
        for flag, attr, p in prof.flags:
            rc = _lib.seccomp_attr_set(self.ctx, attr, 1)
            if rc < 0:
                raise SeccompError(p, f"{flag} is not supported by libseccomp {version()} "
                                      f"with this kernel ({_err(rc)})",
                                   "seccomp_attr_set", flag, -rc)
        for rule in prof.rules:
            nr = _lib.seccomp_syscall_resolve_name(rule.name.encode())
            if nr == NR_SCMP_ERROR:
                if rule.name not in self.skipped:
                    self.skipped.append(rule.name)
                continue
            n = len(rule.conditions)
            arr = (_ArgCmp * n)(*(_ArgCmp(*c) for c in rule.conditions)) if n else None
            rc = _lib.seccomp_rule_add_array(self.ctx, rule.action, nr, n, arr)
            if rc < 0:
                raise SeccompError(rule.pointer, _err(rc), "seccomp_rule_add",
                                   f'"{rule.name}"', -rc)
            self.notify |= rule.action == ACT_NOTIFY

    def export_pfc(self, fd: int) -> None:
        """libseccomp's pseudo filter code, human-readable, to fd."""
        rc = _lib.seccomp_export_pfc(self.ctx, fd)
        if rc < 0:
            raise OSError(-rc, os.strerror(-rc), "seccomp_export_pfc")

    def export_bpf(self, fd: int) -> None:
        """The raw BPF program (struct sock_filter[]) the kernel would get, to fd."""
        rc = _lib.seccomp_export_bpf(self.ctx, fd)
        if rc < 0:
            raise OSError(-rc, os.strerror(-rc), "seccomp_export_bpf")

    def load(self) -> int:
        """seccomp_load(3); returns the notify fd (>= 0) when the filter has NOTIFY rules."""
        rc = _lib.seccomp_load(self.ctx)
        if rc < 0:
            raise OSError(-rc, os.strerror(-rc), "seccomp_load")
        self.loaded = True
        if self.notify:
            fd = _lib.seccomp_notify_fd(self.ctx)
            if fd < 0:
                raise OSError(-fd, os.strerror(-fd), "seccomp_notify_fd")
            return fd
        return -1

    def release(self) -> None:
        if self.ctx:
            _lib.seccomp_release(self.ctx)
            self.ctx = None


# ---------------------------------------------------------------------------------------------
# 3. this process's filter: prepared early, loaded late

class Prepared:
    """The filter this (container) process will load, and its listener connection if any."""
    __slots__ = ("filter", "listener", "payload", "state", "metadata")

    def __init__(self, flt: Filter, listener: _socket.socket | None, state: dict, pid: int,
                 metadata: str) -> None:
        self.filter, self.listener = flt, listener
        self.state, self.metadata = state, metadata
        self.payload = b""
        self.set_pid(pid)

    def set_pid(self, pid: int) -> None:
        """The pid the listener is told (as the runtime sees it), when the process that loads
        the filter is not the one that prepared it (a fork in between, as `exec`'s join does)."""
        if self.listener is not None:
            state = dict(self.state, pid=pid) if "pid" in self.state else self.state
            self.payload = container_process_state(state, pid, self.metadata)


_prepared: Prepared | None = None


def container_process_state(state: dict, pid: int, metadata: str) -> bytes:
    """runtime-spec's containerProcessState, sent with the notify fd to the listener."""
    return jsonfast.dumps({"ociVersion": state.get("ociVersion", ""), "fds": ["seccompFd"],
                           "pid": pid, "metadata": metadata, "state": state}).encode()


def prepare(profile: Profile, state: dict | None = None, pid: int = 0) -> Prepared:
    """Build the filter and, for NOTIFY, connect to the listener now (its path may be gone from
    view after pivot_root). `state` is the OCI state sent to the listener; `pid` the container's
    pid as the listener sees it. Replaces (and releases) any filter prepared before."""
    global _prepared
    discard()
    flt = Filter(profile)
    listener = None
    if flt.notify:
        try:
            listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)  # close-on-exec
            listener.connect(profile.listener_path)
        except OSError as e:
            if listener is not None:
                listener.close()
            flt.release()
            raise SeccompError("/linux/seccomp/listenerPath", os.strerror(e.errno or 0).lower(),
                               "connect", f'"{profile.listener_path}"', e.errno or 0) from None
    _prepared = Prepared(flt, listener, state or {}, pid, profile.listener_metadata)
    return _prepared


def prepared() -> Prepared | None:
    return _prepared


def pending() -> bool:
    """A filter is prepared and not loaded yet."""
    return _prepared is not None and not _prepared.filter.loaded


def load_prepared() -> None:
    """Load the prepared filter, if any and not loaded yet, and hand a listener its notify fd.

    Called as late as possible: from exec's handoff right before exec.fifo is opened, or earlier
    by stage `bounding` when no_new_privs is off (loading then needs CAP_SYS_ADMIN). Raises
    OSError."""
    p = _prepared
    if p is None or p.filter.loaded:
        return
    fd = p.filter.load()
    if p.listener is not None:
        try:
            p.listener.sendmsg([p.payload], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS,
                                              fd.to_bytes(4, sys.byteorder))])
        finally:
            p.listener.close()
            p.listener = None
            os.close(fd)


def refuses(err: int) -> bool:
    """Whether a filter loaded by this process may be what failed a call with errno `err`:
    its default action or one of its rules is SCMP_ACT_ERRNO(err), or SCMP_ACT_TRACE with
    no tracer (ENOSYS)."""
    p = _prepared
    if p is None or not p.filter.loaded:
        return False
    prof = p.filter.profile
    for action in [prof.default_action] + [r.action for r in prof.rules]:
        if action & 0xFFFF0000 == ACT_ERRNO and action & 0xFFFF == err:
            return True
        if action & 0xFFFF0000 == ACT_TRACE and err == _ENOSYS:
            return True
    return False


def load_or_exit() -> None:
    """load_prepared() for exec's handoff, where no stage can report back any more: on failure
    say so in one line on stderr and exit 1 (`start` then finds the container stopped)."""
    try:
        load_prepared()
    except OSError as e:
        os.write(2, f"ocish: seccomp: {e.filename or 'seccomp_load'}: "
                    f"{os.strerror(e.errno or 0).lower()}\n".encode())
        os._exit(1)


def discard() -> None:
    """Forget the prepared filter (not the loaded one: the kernel keeps that)."""
    global _prepared
    p = _prepared
    _prepared = None
    if p is not None:
        if p.listener is not None:
            p.listener.close()
        if not p.filter.loaded:
            p.filter.release()
