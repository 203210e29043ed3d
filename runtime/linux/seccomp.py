"""Seccomp through libseccomp (ctypes): build a filter from a compiled profile, load it late.

Three layers (the debugger shows the first two without loading anything):

1. `Profile` of `Rule`s: a profile in numbers (SCMP_ACT_* values, `enum scmp_compare`
   operators), compiled from config.json's /linux/seccomp by runtime/spec_seccomp.py, which
   validates it: this module knows no config. Each item carries the tag (config pointer) the
   compiler gave it, for errors.
2. `Filter(profile)`: a libseccomp context with every rule added; syscall names this libseccomp
   does not know are skipped, as runc does (`skipped`). `export_pfc`/`export_bpf` show it.
3. `prepare(profile, payload)` keeps one Filter as *the* filter of this process and, for
   SCMP_ACT_NOTIFY, connects to listenerPath while the host's paths are still reachable (before
   pivot_root). `load_prepared()` then only calls seccomp_load(3), and with a listener sends it
   the notify fd and the payload with sendmsg(2) (SCM_RIGHTS): no import, no path lookup, and
   no allocation beyond the fd array happens after the filter is on.

What libseccomp or the listener refuses raises `SeccompError`, an OSError.

libseccomp is dlopen'ed at import time: the container side imports this module before pivot_root,
after which the host's libraries are out of reach. When libseccomp is missing, only a config that
asks for seccomp fails. This module imports nothing heavy (no re, json, dataclasses, nor `socket`:
`_socket` is enough, as in runtime.sync), and nothing above runtime/linux.

libseccomp sets no_new_privs itself on load unless told not to: we clear SCMP_FLTATR_CTL_NNP, so
no_new_privs stays what /process/noNewPrivileges says (runc does the same).
"""
from __future__ import annotations

import _socket
import ctypes
import os
import sys

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


class SeccompError(OSError):
    """libseccomp (or the listener's socket) refused a compiled Profile: `op` and `target` name
    the call, `errno` its error (0 when it is no errno), `pointer` the Profile's tag for the item
    involved (whoever compiled the Profile set them: runtime/spec_seccomp.py, config pointers)."""

    def __init__(self, pointer: str, message: str, op: str = "", target: str = "",
                 errno: int = 0) -> None:
        super().__init__(errno, message)
        self.pointer, self.message, self.op, self.target = pointer, message, op, target


# ---------------------------------------------------------------------------------------------
# 1. a profile in numbers

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
                 "listener_metadata", "notify", "pointer", "listener_pointer")

    def __init__(self, pointer: str = "", listener_pointer: str = "") -> None:
        # tags for errors: the profile's, and its listener's (config pointers, from the compiler)
        self.pointer, self.listener_pointer = pointer, listener_pointer
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
    _proto("seccomp_syscall_resolve_num_arch", ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int)
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


_free = ctypes.CDLL(None).free


def syscall_number(name: str) -> int:
    """The native number of a syscall (negative for libseccomp's pseudo syscalls), or -1."""
    return _lib.seccomp_syscall_resolve_name(name.encode())


def syscall_name(nr: int) -> str:
    """The native name of syscall number `nr` as libseccomp knows it, or "" (the debugger's
    seccomp answers name what a filter compares)."""
    ptr = _lib.seccomp_syscall_resolve_num_arch(0, nr) if _lib is not None else None
    if not ptr:  # 0: SCMP_ARCH_NATIVE, above
        return ""
    try:
        return ctypes.string_at(ptr).decode()
    finally:
        _free(ctypes.c_void_p(ptr))  # libseccomp's strdup'ed copy


def _err(rc: int) -> str:
    return os.strerror(-rc).lower()


class Filter:
    """A libseccomp filter context holding a compiled Profile; not loaded until `load()`."""

    def __init__(self, profile: Profile) -> None:
        if _lib is None:
            raise SeccompError(profile.pointer, "libseccomp.so.2 is not installed on this host",
                               "dlopen", "libseccomp.so.2")
        self.profile = profile
        self.skipped: list[str] = []
        self.notify = False      # a NOTIFY rule made it in: loading creates a listener fd
        self.loaded = False
        self.ctx = _lib.seccomp_init(profile.default_action)
        if not self.ctx:
            raise SeccompError(profile.pointer, "seccomp_init failed",
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
            raise SeccompError(prof.pointer, _err(rc), "seccomp_attr_set", "CTL_NNP", -rc)
        _lib.seccomp_attr_set(self.ctx, ATTR_API_SYSRAWRC, 1)  # older libseccomp: ignored
        if prof.notify and api_level() < 5:
            raise SeccompError(prof.pointer, f"SCMP_ACT_NOTIFY needs libseccomp API level 5 "
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
    """The filter this (container) process will load, its listener connection if any, and what
    the listener is sent with the notify fd (`payload`: the caller's containerProcessState)."""
    __slots__ = ("filter", "listener", "payload")

    def __init__(self, flt: Filter, listener: _socket.socket | None, payload: bytes) -> None:
        self.filter, self.listener, self.payload = flt, listener, payload


_prepared: Prepared | None = None


def prepare(profile: Profile, payload: bytes = b"") -> Prepared:
    """Build the filter and, for NOTIFY, connect to the listener now (its path may be gone from
    view after pivot_root); `payload` is what the listener gets with the notify fd (the
    runtime-spec containerProcessState, built by the caller). Replaces (and releases) any
    filter prepared before. Raises SeccompError."""
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
            raise SeccompError(profile.listener_pointer, os.strerror(e.errno or 0).lower(),
                               "connect", f'"{profile.listener_path}"', e.errno or 0) from None
    _prepared = Prepared(flt, listener, payload)
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
