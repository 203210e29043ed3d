"""Capabilities and seccomp: the name table, masks, profile translation, libseccomp filters.

Pure logic runs in the test process. Anything that changes this process's privileges for good
(capset, bounding drop, seccomp_load) runs in a forked child that reports back over a pipe, so the
test process keeps its capabilities and stays unfiltered.
"""
from __future__ import annotations

import errno
import json
import os
import socket
import struct

import pytest

from runtime.defaults import CAPS, default_spec
from runtime.engine import Context
from runtime.errors import SpecError, StageError
from runtime.linux import capabilities as C
from runtime.linux import seccomp as S
from runtime.spec import _validate_caps, cap_masks
from runtime.spec_seccomp import compile_profile, validate_seccomp
from runtime.stages.security import Bounding, Caps, Seccomp, container_process_state

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="changes privileges: needs root")
needs_libseccomp = pytest.mark.skipif(not S.available(), reason="libseccomp.so.2 is missing")


def in_child(fn) -> object:
    """Run fn() in a forked child; return what it returned (JSON), or re-raise its error text."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(r)
        try:
            out = {"ok": fn()}
        except BaseException as e:
            out = {"error": f"{type(e).__name__}: {e}"}
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    out = json.loads(data)
    if "error" in out:
        raise AssertionError(out["error"])
    return out["ok"]


def ctx_for(spec: dict, tmp_path) -> Context:
    return Context("t1", str(tmp_path), spec, str(tmp_path / "rootfs"), str(tmp_path / "state"))


# --- capability names and masks ----------------------------------------------------------------

def test_cap_table_matches_linux_capability_h():
    assert len(C.NAMES) == 41 and len(C.NUMBERS) == 41
    known = {"CAP_CHOWN": 0, "CAP_KILL": 5, "CAP_SETPCAP": 8, "CAP_NET_BIND_SERVICE": 10,
             "CAP_NET_RAW": 13, "CAP_SYS_CHROOT": 18, "CAP_SYS_ADMIN": 21,
             "CAP_SYS_RESOURCE": 24, "CAP_MKNOD": 27, "CAP_AUDIT_WRITE": 29, "CAP_SETFCAP": 31,
             "CAP_SYSLOG": 34, "CAP_AUDIT_READ": 37, "CAP_PERFMON": 38, "CAP_BPF": 39,
             "CAP_CHECKPOINT_RESTORE": 40}
    for name, n in known.items():
        assert C.number(name) == n and C.name(n) == name
    assert all(C.NUMBERS[C.name(i)] == i for i in range(41))
    assert C.name(41) == "cap_41"


def test_last_cap_from_kernel():
    with open("/proc/sys/kernel/cap_last_cap") as f:
        assert C.LAST_CAP == int(f.read())
    assert C.ALL == (1 << (C.LAST_CAP + 1)) - 1


def test_default_caps_mask():
    assert C.to_mask(CAPS) == 0x20000420
    assert C.names(0x20000420) == ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"]
    assert C.to_hex(0x20000420) == "0000000020000420" and C.from_hex("0000000020000420") == 0x20000420
    assert C.to_mask([]) == 0 and C.names(0) == []
    assert C.to_mask(["CAP_KILL", "CAP_KILL"]) == 1 << 5


def test_parse_sets():
    m = cap_masks({"bounding": ["CAP_CHOWN", "CAP_KILL"], "ambient": ["CAP_KILL"]})
    assert m == {"bounding": 0b100001, "effective": 0, "inheritable": 0, "permitted": 0,
                 "ambient": 0b100000}
    assert cap_masks({}) == dict.fromkeys(C.SETS, 0)
    with pytest.raises(KeyError):  # runtime/linux: a lookup, no config pointer
        C.to_mask(["CAP_NOPE"])


@pytest.mark.parametrize("bad", ["CAP_FOO", "cap_kill", "KILL", "", 5, None])
def test_unknown_capability_names_its_pointer(bad):
    caps = {"effective": ["CAP_KILL"], "bounding": ["CAP_KILL", "CAP_CHOWN", bad]}
    with pytest.raises(SpecError) as ei:
        cap_masks(caps)
    assert ei.value.pointer == "/process/capabilities/bounding/2"
    assert "unknown capability" in ei.value.message
    assert str(ei.value).startswith("config /process/capabilities/bounding/2: unknown capability")


def test_validate_caps_is_a_spec_error():
    spec = default_spec()
    _validate_caps(spec)
    spec["process"]["capabilities"]["ambient"].append("CAP_NOPE")
    with pytest.raises(SpecError) as ei:
        _validate_caps(spec)
    assert ei.value.pointer == "/process/capabilities/ambient/3"
    _validate_caps({})  # nothing to check
    _validate_caps({"process": {}})


def test_caps_the_kernel_lacks_are_skipped(monkeypatch):
    monkeypatch.setattr(C, "LAST_CAP", 37)
    assert C.to_mask(["CAP_KILL", "CAP_BPF"]) == 1 << 5
    assert C.unsupported({"bounding": ["CAP_BPF", "CAP_KILL"], "effective": ["CAP_BPF"],
                          "permitted": ["CAP_PERFMON"]}) == ["CAP_BPF", "CAP_PERFMON"]


def test_capget_matches_proc_status():
    eff, prm, inh = C.capget()
    st = C.proc_status()
    assert (st["CapEff"], st["CapPrm"], st["CapInh"]) == (eff, prm, inh)
    assert C.bounding() == st["CapBnd"]
    assert C.no_new_privs() == bool(st["NoNewPrivs"])


@needs_root
def test_caps_applied_in_runc_order_in_a_child():
    """bounding drop -> keepcaps -> setresuid(1000) -> capset -> ambient, as the stages do it."""
    def child():
        want = C.to_mask(["CAP_CHOWN", "CAP_NET_BIND_SERVICE"])
        C.drop_bounding(want | 1 << C.number("CAP_KILL"))
        C.set_keepcaps(True)
        os.setresgid(1000, 1000, 1000)
        os.setresuid(1000, 1000, 1000)
        after_switch = C.capget()
        C.set_keepcaps(False)
        C.capset(want, want, want)
        C.ambient_clear()
        for n in (0, 10):
            C.ambient_raise(n)
        try:
            C.ambient_raise(C.number("CAP_KILL"))  # not permitted: the kernel refuses
            refused = False
        except OSError as e:
            refused = e.errno == errno.EPERM
        C.set_no_new_privs()
        return {"after_switch": after_switch, "status": C.proc_status(), "refused": refused}
    out = in_child(child)
    want = (1 << 0) | (1 << 10)
    assert out["after_switch"][0] == 0 and out["after_switch"][1] & want == want  # KEEPCAPS
    st = out["status"]
    assert st["CapEff"] == st["CapPrm"] == st["CapInh"] == st["CapAmb"] == want
    assert st["CapBnd"] == want | 1 << 5
    assert st["NoNewPrivs"] == 1 and out["refused"]


# --- stages: errors before any syscall, descriptions -------------------------------------------

def test_bounding_stage_rejects_unknown_cap_before_touching_anything(tmp_path):
    spec = default_spec()
    spec["process"]["capabilities"]["permitted"] = ["CAP_KILL", "CAP_NOPE"]
    with pytest.raises(StageError) as ei:
        Bounding().run(ctx_for(spec, tmp_path))
    err = ei.value
    assert (err.stage, err.pointer) == ("bounding", "/process/capabilities/permitted/1")
    assert str(err) == ('stage bounding: parse capabilities (config '
                        '/process/capabilities/permitted/1): unknown capability "CAP_NOPE"')
    assert C.proc_status()["CapBnd"] == C.bounding()  # untouched
    with pytest.raises(StageError):
        Caps().run(ctx_for(spec, tmp_path))


def test_describe(tmp_path):
    spec = default_spec()
    spec["process"]["noNewPrivileges"] = False
    spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]}
    ctx = ctx_for(spec, tmp_path)
    b = Bounding().describe(ctx)
    assert "keep in the bounding set: CAP_KILL, CAP_NET_BIND_SERVICE, CAP_AUDIT_WRITE" in b
    assert "CAP_SYS_ADMIN" in b and "load the seccomp filter now" in b
    c = Caps().describe(ctx)
    assert "capset effective: CAP_KILL, CAP_NET_BIND_SERVICE, CAP_AUDIT_WRITE" in c
    assert "will be skipped" in c  # ambient but not inheritable
    assert "NO_NEW_PRIVS" not in c
    s = Seccomp().describe(ctx)
    assert "SCMP_ACT_ERRNO(1)" in s and "2 rules on 2 syscalls" in s and "stage bounding" in s
    spec["process"]["noNewPrivileges"] = True
    assert "exec's handoff" in Seccomp().describe(ctx)
    assert "PR_SET_NO_NEW_PRIVS" in Caps().describe(ctx)
    spec["linux"]["seccomp"]["syscalls"][0]["action"] = "SCMP_ACT_NOPE"
    assert "/linux/seccomp/syscalls/0/action" in Seccomp().describe(ctx)
    del spec["linux"]["seccomp"]
    assert Seccomp().describe(ctx) == "no /linux/seccomp: no filter."


# --- seccomp translation (pure) ----------------------------------------------------------------

def test_action_values():
    assert S.action_value("SCMP_ACT_ALLOW") == 0x7FFF0000
    assert S.action_value("SCMP_ACT_ERRNO") == 0x00050000 | errno.EPERM
    assert S.action_value("SCMP_ACT_ERRNO", 38) == 0x00050026
    assert S.action_value("SCMP_ACT_ERRNO", 0) == 0x00050000
    assert S.action_value("SCMP_ACT_TRACE") == 0x7FF00000 | errno.EPERM
    assert S.action_value("SCMP_ACT_TRACE", 7) == 0x7FF00007
    assert S.action_value("SCMP_ACT_KILL") == S.action_value("SCMP_ACT_KILL_THREAD") == 0
    assert S.action_value("SCMP_ACT_KILL_PROCESS") == 0x80000000
    assert S.action_value("SCMP_ACT_TRAP") == 0x00030000
    assert S.action_value("SCMP_ACT_LOG") == 0x7FFC0000
    assert S.action_value("SCMP_ACT_NOTIFY") == 0x7FC00000
    assert S.action_value("SCMP_ACT_ALLOW", 5) == 0x7FFF0000  # errnoRet ignored, as runc does
    assert S.action_name(0x00050026) == "SCMP_ACT_ERRNO(38)"
    assert S.action_name(0) == "SCMP_ACT_KILL_THREAD"


def test_compile_translates_like_runc():
    prof = compile_profile({
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                  "SECCOMP_FILTER_FLAG_TSYNC"],
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},   # == default
            {"names": ["kill"], "action": "SCMP_ACT_TRAP",
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_GT"},
                      {"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                      {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            {"names": ["clone"], "action": "SCMP_ACT_LOG",
             "args": [{"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
        ]})
    assert prof.default_action == 0x00050026
    assert [(a, lib) for a, lib, _ in prof.arches] == [("SCMP_ARCH_X86_64", "x86_64"),
                                                       ("SCMP_ARCH_X86", "x86")]
    assert [a for _, a, _ in prof.flags] == [S.ATTR_CTL_LOG, S.ATTR_CTL_SSB, S.ATTR_CTL_TSYNC]
    R = S.Rule
    allow, trap, log = S.ACT_ALLOW, S.ACT_TRAP, S.ACT_LOG
    assert prof.rules == [
        R(allow, "read", (), ""), R(allow, "write", (), ""),
        # two arguments: one rule with both conditions (ANDed)
        R(trap, "kill", ((0, 6, 1, 0), (1, 4, 9, 0)), ""),
        # the same argument twice: one rule per condition (ORed), runc's fallback
        R(allow, "personality", ((0, 4, 0, 0),), ""), R(allow, "personality", ((0, 4, 8, 0),), ""),
        R(log, "clone", ((0, 7, 0x7E020000, 0),), ""),
    ]
    assert prof.rules[2].pointer == "/linux/seccomp/syscalls/2"
    assert not prof.notify


@pytest.mark.parametrize("op,n", sorted(S.OPERATORS.items()))
def test_every_operator(op, n):
    prof = compile_profile({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 5, "value": 2**64 - 1, "valueTwo": 3, "op": op}]}]})
    (rule,) = prof.rules
    # valueTwo only matters to MASKED_EQ, where value is the mask
    assert rule.conditions == ((5, n, 2**64 - 1, 3 if op == "SCMP_CMP_MASKED_EQ" else 0),)


BAD_PROFILES = [
    ({}, "/linux/seccomp/defaultAction", "missing"),
    ({"defaultAction": "SCMP_ACT_NOPE"}, "/linux/seccomp/defaultAction", "unknown action"),
    ({"defaultAction": "SCMP_ACT_NOTIFY"}, "/linux/seccomp/defaultAction", "cannot be the default"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": -1},
     "/linux/seccomp/defaultErrnoRet", "integer"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_Z80"]},
     "/linux/seccomp/architectures/1", "unknown architecture"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_NOPE"]},
     "/linux/seccomp/flags/0", "unknown flag"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": {}}, "/linux/seccomp/syscalls", "array"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ERRNO"}]},
     "/linux/seccomp/syscalls/0/names", "missing"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]},
     "/linux/seccomp/syscalls/0/names", "empty"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read", 3],
                                                       "action": "SCMP_ACT_ERRNO"}]},
     "/linux/seccomp/syscalls/0/names/1", "syscall name"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ERRNO"}, {"names": ["read"]},
        {"names": ["write"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["mkdir"], "action": "SCMP_ACT_BOGUS"}]},
     "/linux/seccomp/syscalls/1/action", "missing"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ERRNO"}, {"names": ["read"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["write"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["mkdir"], "action": "SCMP_ACT_BOGUS"}]},
     "/linux/seccomp/syscalls/3/action", "unknown action"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}]},
     "/linux/seccomp/syscalls/0/errnoRet", "integer from 0 to 65535"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                  {"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
     "/linux/seccomp/syscalls/0/args/1/index", "from 0 to 5"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_APPROX"}]}]},
     "/linux/seccomp/syscalls/0/args/0/op", "unknown operator"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]}]},
     "/linux/seccomp/syscalls/0/args/0/value", "integer"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1}]}]},
     "/linux/seccomp/syscalls/0/args/0/op", "missing"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]},
     "/linux/seccomp/listenerPath", "listener"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "relative.sock", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]},
     "/linux/seccomp/listenerPath", "absolute"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/l.sock", "syscalls": [
        {"names": ["mkdir", "sendmsg"], "action": "SCMP_ACT_NOTIFY"}]},
     "/linux/seccomp/syscalls/0/names/1", "sendmsg"),
]


BAD_PROFILES += [
    ({"defaultAction": ["SCMP_ACT_ALLOW"]}, "/linux/seccomp/defaultAction", "unknown action an array"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": [{}]},
     "/linux/seccomp/architectures/0", "unknown architecture an object"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": True,
                                                                   "op": "SCMP_CMP_EQ"}]}]},
     "/linux/seccomp/syscalls/0/args/0/value", "got true"),
]


@pytest.mark.parametrize("profile,pointer,words", BAD_PROFILES)
def test_bad_profiles_name_their_pointer(profile, pointer, words):
    with pytest.raises(SpecError) as ei:
        compile_profile(profile)
    assert ei.value.pointer == pointer
    assert words in ei.value.message
    with pytest.raises(SpecError):  # the same through spec validation
        validate_seccomp({"linux": {"seccomp": profile}})


def test_seccomp_stage_reports_bad_profile_with_pointer(tmp_path):
    spec = default_spec()
    spec["linux"]["seccomp"] = BAD_PROFILES[11][0]
    with pytest.raises(StageError) as ei:
        Seccomp().run(ctx_for(spec, tmp_path))
    assert ei.value.pointer == "/linux/seccomp/syscalls/3/action"
    assert str(ei.value).startswith("stage seccomp: parse profile (config "
                                    '/linux/seccomp/syscalls/3/action): unknown action "SCMP_ACT_BOGUS"')
    assert S.prepared() is None


# --- libseccomp filters (built, exported, never loaded in this process) ------------------------

def pfc(flt: S.Filter, tmp_path) -> str:
    path = tmp_path / "filter.pfc"
    with open(path, "w") as f:
        flt.export_pfc(f.fileno())
    return path.read_text()


@needs_libseccomp
def test_filter_export_pfc(tmp_path):
    prof = compile_profile({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat", "no_such_syscall"], "action": "SCMP_ACT_ERRNO",
             "errnoRet": 122},
            {"names": ["personality"], "action": "SCMP_ACT_KILL_PROCESS",
             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_NE"}]},
            {"names": ["read"], "action": "SCMP_ACT_ALLOW"},   # the default action: dropped
        ]})
    flt = S.Filter(prof)
    try:
        assert flt.skipped == ["no_such_syscall"]
        text = pfc(flt, tmp_path)
    finally:
        flt.release()
    assert "filter for arch x86_64" in text and "filter for arch x86 " in text
    assert "filter for arch aarch64" in text
    assert 'syscall "mkdir"' in text and 'syscall "mkdirat"' in text
    assert "action ERRNO(122);" in text
    assert 'syscall "personality"' in text and "== 8" in text  # NE: KILL unless == 8
    assert "action KILL_PROCESS;" in text
    assert 'syscall "read"' not in text
    assert text.count("action ALLOW;") == 3  # one default per arch
    bpf = tmp_path / "filter.bpf"
    flt = S.Filter(prof)
    with open(bpf, "wb") as f:
        flt.export_bpf(f.fileno())
    flt.release()
    assert bpf.stat().st_size % 8 == 0 and bpf.stat().st_size > 0  # struct sock_filter[]


@needs_libseccomp
def test_filter_flags_and_unsupported_arch(tmp_path, monkeypatch):
    prof = compile_profile({"defaultAction": "SCMP_ACT_ALLOW",
                              "flags": ["SECCOMP_FILTER_FLAG_LOG",
                                        "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]})
    S.Filter(prof).release()
    prof = compile_profile({"defaultAction": "SCMP_ACT_ALLOW",
                              "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_SHEB"]})
    if S._lib.seccomp_arch_resolve_name(b"sheb") == 0:
        with pytest.raises(S.SeccompError) as ei:
            S.Filter(prof)
        assert ei.value.pointer == "/linux/seccomp/architectures/1"
        assert "not supported by libseccomp" in ei.value.message


@needs_libseccomp
def test_docker_default_profile_builds(tmp_path):
    from tests.integration.test_security import docker_default_profile
    prof = compile_profile(docker_default_profile())
    flt = S.Filter(prof)
    try:
        text = pfc(flt, tmp_path)
    finally:
        flt.release()
    assert "action ERRNO(1);" in text and "action ERRNO(38);" in text  # default, clone3
    assert "0x7e020000" in text  # clone's MASKED_EQ
    assert "filter for arch x32" in text


@needs_root
@needs_libseccomp
def test_load_in_a_child(tmp_path):
    """The prepared filter is loaded only by load_prepared(); then mkdir fails with errnoRet."""
    def child():
        prof = compile_profile({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 122},
            # chmod(path, mode) / fchmodat(AT_FDCWD, path, mode): refuse mode 0o700 only
            {"names": ["chmod"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 1, "value": 0o700, "op": "SCMP_CMP_EQ"}]},
            {"names": ["fchmodat"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 2, "value": 0o700, "op": "SCMP_CMP_EQ"}]}]})
        S.prepare(prof)
        os.mkdir(str(tmp_path / "before"))
        assert S.pending() and C.proc_status()["Seccomp"] == 0
        C.set_no_new_privs()
        S.load_prepared()
        S.load_prepared()  # a second call does nothing
        try:
            os.mkdir(str(tmp_path / "after"))
            err = 0
        except OSError as e:
            err = e.errno
        os.chmod(str(tmp_path / "before"), 0o750)
        try:
            os.chmod(str(tmp_path / "before"), 0o700)
            chmod_err = 0
        except OSError as e:
            chmod_err = e.errno
        return {"err": err, "pending": S.pending(), "status": C.proc_status(),
                "chmod_err": chmod_err}
    out = in_child(child)
    assert out["err"] == errno.EDQUOT and not out["pending"]
    assert out["status"]["Seccomp"] == 2 and out["status"]["NoNewPrivs"] == 1
    assert out["chmod_err"] == errno.EPERM  # the arg condition matched 0o700, not 0o750
    assert (tmp_path / "before").stat().st_mode & 0o777 == 0o750
    assert (tmp_path / "before").is_dir() and not (tmp_path / "after").exists()


@needs_root
@needs_libseccomp
def test_notify_fd_and_state_reach_the_listener(tmp_path):
    """prepare() connects to listenerPath; load_prepared() sends the notify fd with the
    containerProcessState; the listener's answer is what the filtered process sees."""
    path = str(tmp_path / "listener.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child: filtered, then blocks in mkdir until answered
        code = 1
        try:
            srv.close()
            os.close(r)
            prof = compile_profile({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": path,
                                      "listenerMetadata": "m", "syscalls": [
                                          {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]})
            S.prepare(prof, container_process_state(
                {"ociVersion": "1.2.0", "id": "c1", "status": "creating"}, 4242,
                prof.listener_metadata))
            C.set_no_new_privs()
            S.load_prepared()
            try:
                os.mkdir(str(tmp_path / "x"))
                res = 0
            except OSError as e:
                res = e.errno
            os.write(w, str(res).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    try:
        conn, _ = srv.accept()
        msg, fds, _, _ = socket.recv_fds(conn, 65536, 1)
        conn.close()
        state = json.loads(msg)
        assert state == {"ociVersion": "1.2.0", "fds": ["seccompFd"], "pid": 4242, "metadata": "m",
                         "state": {"ociVersion": "1.2.0", "id": "c1", "status": "creating"}}
        import fcntl
        buf = bytearray(80)
        fcntl.ioctl(fds[0], 0xC0502100, buf)         # SECCOMP_IOCTL_NOTIF_RECV
        notif_id, npid, _, nr = struct.unpack_from("=QIIi", buf)
        assert npid == pid and nr in (S.syscall_number("mkdir"), S.syscall_number("mkdirat"))
        resp = bytearray(struct.pack("=QqiI", notif_id, 0, -errno.ENOSPC, 0))
        fcntl.ioctl(fds[0], 0xC0182101, resp)        # SECCOMP_IOCTL_NOTIF_SEND
        assert os.read(r, 16) == str(errno.ENOSPC).encode()
        os.close(fds[0])
    finally:
        os.close(r)
        srv.close()
        _, st = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(st) == 0
    assert not (tmp_path / "x").exists()


def test_container_process_state_payload():
    """What the seccomp listener gets with the notify fd (runtime-spec containerProcessState),
    built by the stage: runtime/linux/seccomp sends it as it is."""
    payload = json.loads(container_process_state({"ociVersion": "1.2.0", "id": "c", "pid": 10},
                                                 10, "m"))
    assert payload == {"ociVersion": "1.2.0", "fds": ["seccompFd"], "pid": 10, "metadata": "m",
                       "state": {"ociVersion": "1.2.0", "id": "c", "pid": 10}}


@needs_root
@needs_libseccomp
def test_load_without_no_new_privs_needs_cap_sys_admin():
    """Why stage bounding loads the filter early when noNewPrivileges is false."""
    def child():
        S.prepare(compile_profile({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}))
        C.capset(0, 0, 0)
        try:
            S.load_prepared()
        except OSError as e:
            return [e.errno, e.filename]
        return None
    assert in_child(child) == [errno.EACCES, "seccomp_load"]


@needs_root
@needs_libseccomp
@pytest.mark.parametrize("nnp", [True, False])
def test_stages_in_a_child(tmp_path, nnp):
    """seccomp, bounding, (user's setresuid), caps, then exec's load: the real stages in order."""
    spec = default_spec()
    spec["process"]["noNewPrivileges"] = nnp
    amb = ["CAP_CHOWN", "CAP_KILL"]
    spec["process"]["capabilities"] = {"bounding": amb + ["CAP_NET_RAW"], "effective": amb,
                                       "permitted": amb, "inheritable": amb, "ambient": amb}
    spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat", "bogus_call"], "action": "SCMP_ACT_ERRNO", "errnoRet": 122}]}

    def child():
        ctx = ctx_for(spec, tmp_path)
        Seccomp().run(ctx)
        seen = {"skipped": ctx.notes["seccomp_skipped"], "pending0": S.pending()}
        Bounding().run(ctx)
        seen["pending1"] = S.pending()            # loaded here without no_new_privs
        seen["bnd"] = C.bounding()
        os.setresgid(1000, 1000, 1000)            # what stage user does
        os.setresuid(1000, 1000, 1000)
        Caps().run(ctx)
        S.load_prepared()                         # what exec's handoff does
        seen["status"] = C.proc_status()
        seen["ambient_skipped"] = ctx.notes["ambient_skipped"]
        try:
            os.mkdir(str(tmp_path / "x"))
        except OSError as e:
            seen["mkdir"] = e.errno
        return seen
    seen = in_child(child)
    want = C.to_mask(amb)
    assert seen["skipped"] == ["bogus_call"] and seen["pending0"]
    assert seen["pending1"] == nnp
    assert seen["bnd"] == want | 1 << C.number("CAP_NET_RAW")
    st = seen["status"]
    assert st["CapEff"] == st["CapPrm"] == st["CapInh"] == st["CapAmb"] == want
    assert st["NoNewPrivs"] == int(nnp) and st["Seccomp"] == 2
    assert seen["ambient_skipped"] == [] and seen["mkdir"] == errno.EDQUOT


@needs_libseccomp
def test_prepare_without_listener_fails_cleanly(tmp_path):
    prof = compile_profile({"defaultAction": "SCMP_ACT_ALLOW",
                              "listenerPath": str(tmp_path / "none.sock"),
                              "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]})
    with pytest.raises(S.SeccompError) as ei:
        S.prepare(prof)
    assert ei.value.pointer == "/linux/seccomp/listenerPath" and ei.value.errno == errno.ENOENT
    assert S.prepared() is None and not S.pending()


@needs_libseccomp
def test_prepare_and_discard_do_not_load(tmp_path):
    prof = compile_profile({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]})
    try:
        p = S.prepare(prof)
        assert S.pending() and S.prepared() is p and p.listener is None
    finally:
        S.discard()
    assert not S.pending()
    assert C.proc_status()["Seccomp"] == 0
    os.mkdir(str(tmp_path / "still-works"))
