"""The pure parts of diagnose: ELF reading, the rootfs view, credentials, the seccomp check,
lint fixes and strace parsing. Real bundles are diagnosed in tests/diagnose."""
from __future__ import annotations

import os
import stat
import struct

import pytest

from ocish import elf
from ocish.diagnose import explain, seccomp_check
from ocish.diagnose.creds import R, X, Creds, process_creds, to_host
from ocish.diagnose.dryrun import last_syscall, syscall_name
from ocish.diagnose.model import Finding, Outcome, Report, resolve_pointer
from ocish.diagnose.report import render_text
from ocish.diagnose.rootview import RootView


def _dynamic_elf(interp: bytes, needed: list[bytes], runpath: bytes, machine: int = 62) -> bytes:
    """An ELF64 with PT_LOAD (the whole file at address 0x1000), PT_INTERP and PT_DYNAMIC."""
    strtab = b"\0" + b"".join(n + b"\0" for n in needed) + runpath + b"\0"
    ehsize, phsize, nph = 64, 56, 3
    interp_off = ehsize + phsize * nph
    str_off = interp_off + len(interp) + 1
    dyn_off = str_off + len(strtab)
    base = 0x1000
    dyn = b""
    pos = 1
    for n in needed:
        dyn += struct.pack("<qQ", elf.DT_NEEDED, pos)
        pos += len(n) + 1
    dyn += struct.pack("<qQ", elf.DT_RUNPATH, pos)
    dyn += struct.pack("<qQ", elf.DT_STRTAB, base + str_off) + struct.pack("<qQ", elf.DT_NULL, 0)
    size = dyn_off + len(dyn)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    hdr = ident + struct.pack("<HHIQQQIHHHHHH", 3, machine, 1, 0, ehsize, 0, 0, ehsize, phsize,
                              nph, 64, 0, 0)
    ph = struct.pack("<IIQQQQQQ", elf.PT_LOAD, 5, 0, base, base, size, size, 0x1000)
    ph += struct.pack("<IIQQQQQQ", elf.PT_INTERP, 4, interp_off, base + interp_off, 0,
                      len(interp) + 1, len(interp) + 1, 1)
    ph += struct.pack("<IIQQQQQQ", elf.PT_DYNAMIC, 6, dyn_off, base + dyn_off, 0, len(dyn),
                      len(dyn), 8)
    return hdr + ph + interp + b"\0" + strtab + dyn


def test_elf_reads_loader_libraries_and_runpath(tmp_path):
    p = tmp_path / "prog"
    p.write_bytes(_dynamic_elf(b"/lib64/ld-linux-x86-64.so.2", [b"libfoo.so.1", b"libc.so.6"],
                               b"$ORIGIN/../lib"))
    info = elf.read(str(p))
    assert (info.bits, info.machine_name, info.interpreter) == (64, "x86_64",
                                                                 "/lib64/ld-linux-x86-64.so.2")
    assert info.needed == ["libfoo.so.1", "libc.so.6"] and info.runpath == ["$ORIGIN/../lib"]
    assert "dynamically linked" in info.describe()


def test_elf_rejects_what_is_not_elf(tmp_path):
    p = tmp_path / "script"
    p.write_text("#!/bin/sh\n")
    with pytest.raises(ValueError, match="not an ELF file"):
        elf.read(str(p))


@pytest.fixture
def rootfs(tmp_path):
    r = tmp_path / "rootfs"
    (r / "bin").mkdir(parents=True)
    (r / "bin" / "busybox").write_bytes(b"\x7fELF")
    (r / "bin" / "sh").symlink_to("busybox")
    (r / "usr").mkdir()
    (r / "usr" / "bin").symlink_to("/bin")          # absolute: stays in the rootfs
    (r / "escape").symlink_to("../../../../etc")    # ".." stops at the rootfs
    (r / "loop1").symlink_to("loop2")
    (r / "loop2").symlink_to("loop1")
    (r / "etc").mkdir()
    (r / "etc" / "passwd").write_text("root:x:0:0::/:/bin/sh\n")
    return r


def test_rootview_follows_links_inside_the_rootfs(rootfs):
    view = RootView(str(rootfs), str(rootfs.parent), [])
    loc = view.resolve("/usr/bin/sh")
    assert loc.exists and loc.path == "/bin/busybox"
    assert loc.links == [("/usr/bin", "/bin"), ("/bin/sh", "busybox")]
    assert view.resolve("/escape/passwd").host == f"{rootfs}/etc/passwd"
    assert view.resolve("/loop1/x").error == 40  # ELOOP
    missing = view.resolve("/opt/app/run")
    assert not missing.exists and missing.missing == "/opt"
    assert view.resolve("/etc/passwd/x").error == 20  # ENOTDIR


def test_rootview_sees_mounts(rootfs, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "tool").write_text("x")
    view = RootView(str(rootfs), str(tmp_path), [
        {"destination": "/opt", "type": "bind", "source": str(src), "options": ["rbind"]},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}])
    assert view.resolve("/opt/tool").host == f"{src}/tool"
    hidden = view.resolve("/tmp/app")
    assert hidden.host is None and hidden.mount == 1


def test_creds_mode_bits_and_user_namespace():
    st = os.stat_result((stat.S_IFREG | 0o700, 0, 0, 1, 0, 0, 0, 0, 0, 0))
    assert not Creds(1000, {1000}).may(st, X)
    assert Creds(0, {0}).may(st, X)
    assert Creds(1000, {1000}, {"CAP_DAC_OVERRIDE"}).may(st, X)
    # in a user namespace the capability does not reach files of unmapped owners
    userns = Creds(100000, {100000}, {"CAP_DAC_OVERRIDE"}, [(0, 100000, 65536)],
                   [(0, 100000, 65536)])
    assert not userns.may(st, R)
    assert to_host(5, [(0, 100000, 10)]) == 100005 and to_host(50, [(0, 100000, 10)]) is None
    spec = {"process": {"user": {"uid": 1, "gid": 2}},
            "linux": {"namespaces": [{"type": "user"}],
                      "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 10}],
                      "gidMappings": [{"containerID": 0, "hostID": 2000, "size": 10}]}}
    c = process_creds(spec)
    assert (c.uid, c.gids) == (1001, {2002}) and "host uid 1001" in c.label


def test_seccomp_check_finds_what_stops_the_runtime():
    kill_all = {"defaultAction": "SCMP_ACT_KILL",
                "syscalls": [{"names": ["write"], "action": "SCMP_ACT_ALLOW"}]}
    [f] = seccomp_check.findings(kill_all, {"noNewPrivileges": True})
    assert f.code == "seccomp-before-exec" and f.op == "openat" and f.stage == "exec"
    assert f.fix.patch[0]["value"]["names"] == ["openat", "execve"]
    [g] = seccomp_check.findings(kill_all, {"noNewPrivileges": False})
    assert g.stage == "bounding" and g.op == "prctl"
    no_exec = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["execve"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}
    [h] = seccomp_check.findings(no_exec, {"noNewPrivileges": True})
    assert h.code == "seccomp-execve" and h.errno == 13
    conditional = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{
        "names": ["execve"], "action": "SCMP_ACT_ERRNO",
        "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]}]}
    assert seccomp_check.findings(conditional, {"noNewPrivileges": True}) == []


def test_seccomp_before_exec_points_at_what_decides():
    """A rule that refuses the runtime's openat is the culprit, not the default action that
    lets everything else through; a default action that refuses it is."""
    by_rule = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["openat"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
        {"names": ["openat"], "action": "SCMP_ACT_ERRNO"}]}
    [f] = seccomp_check.findings(by_rule, {"noNewPrivileges": True})
    assert (f.code, f.op, f.pointer) == ("seccomp-before-exec", "openat", "/linux/seccomp/syscalls/2")
    by_default = {"defaultAction": "SCMP_ACT_ERRNO",
                  "syscalls": [{"names": ["write", "execve"], "action": "SCMP_ACT_ALLOW"}]}
    [g] = seccomp_check.findings(by_default, {"noNewPrivileges": True})
    assert (g.op, g.pointer) == ("openat", "/linux/seccomp/defaultAction")
    # a rule with the default's own action is dropped when compiled (runc): the default decides
    same = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["openat"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["write", "execve"], "action": "SCMP_ACT_ALLOW"}]}
    [h] = seccomp_check.findings(same, {"noNewPrivileges": True})
    assert (h.op, h.pointer) == ("openat", "/linux/seccomp/defaultAction")


def test_seccomp_check_warns_of_the_programs_first_calls():
    """The runtime gets through to execve(2); the program's start-up calls (ld.so's mmap,
    mprotect ...) do not: a warning, with the patch that lets them through."""
    prof = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mprotect", "reboot"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["rseq"], "action": "SCMP_ACT_KILL_PROCESS"}]}
    [f] = seccomp_check.findings(prof, {"noNewPrivileges": True})
    assert (f.code, f.severity, f.op, f.errno) == ("seccomp-loader", "warning", "mprotect", 1)
    assert f.evidence == ["mprotect: SCMP_ACT_ERRNO(1)", "rseq: SCMP_ACT_KILL_PROCESS"]
    assert f.fix.patch == [
        {"op": "remove", "path": "/linux/seccomp/syscalls/1"},
        {"op": "replace", "path": "/linux/seccomp/syscalls/0/names", "value": ["reboot"]}]


@pytest.mark.parametrize("pointer,message,spec,fix", [
    ("/linux/sysctl/kernel.pid_max", 'sysctl "kernel.pid_max" is not namespaced and would '
     "change the host", {"linux": {"sysctl": {"kernel.pid_max": "1"}}},
     {"op": "remove", "path": "/linux/sysctl/kernel.pid_max"}),
    ("/process/capabilities/bounding/0", 'unknown capability "CAP_KIL"',
     {"process": {"capabilities": {"bounding": ["CAP_KIL"]}}},
     {"op": "replace", "path": "/process/capabilities/bounding/0", "value": "CAP_KILL"}),
    ("/hostname", 'unable to set hostname without a private uts namespace: add {"type": "uts"} '
     "to /linux/namespaces", {"hostname": "x", "linux": {"namespaces": []}},
     {"op": "add", "path": "/linux/namespaces/-", "value": {"type": "uts"}}),
    ("/process/cwd", 'must be an absolute path, got "srv"', {"process": {"cwd": "srv"}},
     {"op": "replace", "path": "/process/cwd", "value": "/srv"}),
])
def test_lint_findings_carry_a_config_fix(pointer, message, spec, fix):
    f = explain.spec_finding(pointer, message, spec)
    assert f.fix.patch == [fix] and f.pointer == pointer and f.severity == "error"
    assert resolve_pointer(spec, pointer)[0] and "config.json " + pointer in f.evidence[0]


def test_appended_items_make_the_lists_they_need():
    """RFC 6902: "add" into a missing parent is refused; "/-" needs the list."""
    f = explain.spec_finding("/hostname", 'unable to set hostname without a private uts '
                             'namespace: add {"type": "uts"} to /linux/namespaces',
                             {"hostname": "x"})
    assert f.fix.patch == [{"op": "add", "path": "/linux", "value": {}},
                           {"op": "add", "path": "/linux/namespaces", "value": [{"type": "uts"}]}]


STRACE_EXEC = ["12 openat(AT_FDCWD, \"/proc/self/fd/7\", O_WRONLY|O_CLOEXEC) = 11",
               "12 write(11, \"0\", 1) = 1",
               "12 execve(\"/s.sh\", [\"/s.sh\"], 0x7f /* 2 vars */) = -1 ENOENT (No such file)",
               "12 write(2, \"ocish: exec /s.sh: no such file \"..., 45) = 45",
               "12 exit_group(127) = ?", "12 +++ exited with 127 +++"]
STRACE_KILLED = ["9 recvfrom(12, \"{}\", 65536, 0, NULL, NULL) = 49",
                 "7 wait4(-1 <unfinished ...>",
                 "9 seccomp(SECCOMP_SET_MODE_FILTER, 0, {len=10, filter=0x55}) = 0",
                 "9 prctl(PR_CAPBSET_READ, CAP_CHOWN) = 157", "9 +++ killed by SIGSYS +++"]


def test_last_syscall_from_strace():
    assert last_syscall(STRACE_EXEC).startswith("execve(\"/s.sh\"")
    assert last_syscall(STRACE_KILLED) == "prctl(PR_CAPBSET_READ, CAP_CHOWN) (killed by seccomp)"
    assert syscall_name(last_syscall(STRACE_KILLED)) == "prctl"


def test_last_syscall_is_not_a_libc_start_up_call():
    """A program that fails after glibc's start-up: its own failed call, not rseq's EPERM."""
    lines = ['5 execve("/bin/app", ["/bin/app"], 0x7ffd /* 2 vars */) = 0',
             '5 access("/etc/ld.so.preload", R_OK) = -1 ENOENT (No such file or directory)',
             '5 openat(AT_FDCWD, "/etc/app.conf", O_RDONLY) = -1 ENOENT (No such file or '
             'directory)',
             "5 set_robust_list(0x7f, 24) = 0",
             "5 rseq(0x7f, 0x20, 0, 0x53053053) = -1 EPERM (Operation not permitted)",
             "5 exit_group(1) = ?", "5 +++ exited with 1 +++"]
    assert last_syscall(lines).startswith('openat(AT_FDCWD, "/etc/app.conf"')
    only = ["5 rseq(0x7f, 0x20, 0, 0x53053053) = -1 EPERM (Operation not permitted)",
            "5 +++ exited with 1 +++"]
    assert last_syscall(only).startswith("rseq(")  # nothing else to name


def test_a_healthy_run_demotes_preflight_errors():
    pre = explain.spec_finding("/process/cwd", 'must be an absolute path, got "x"', {})
    pre.source = "preflight"
    out = Outcome(phase="running", window=1.0)
    assert explain.outcome_findings(out, {}, "", [pre]) == []
    assert pre.severity == "warning" and "started anyway" in pre.evidence[-1]


def test_a_death_nothing_explains_names_the_bundle_to_debug():
    """The fix's command is one to paste: the bundle's real path, not a placeholder."""
    out = Outcome(phase="exited", exit_status=3, seconds=0.1, window=1.0)
    [found] = explain.outcome_findings(out, {}, "", [], "/srv/my bundle")
    assert found.code == "process-died"
    assert "ocish debug '/srv/my bundle', then continue" in found.fix.text
    assert "BUNDLE" not in found.fix.text


def test_summary_counts_what_the_report_lists():
    """The lint row counts lint's warnings as `ocish lint` does, and the verdict counts every
    finding it lists below: errors as problems, then warnings and notes."""
    died = Outcome(phase="exited", signal="SIGSYS", seconds=0.01, window=1.0)
    report = Report("/b", outcome=died, findings=[
        Finding("seccomp-kill", "error", "dry run", "the seccomp filter killed the process"),
        Finding("seccomp-start", "warning", "lint", "the profile stops start-up calls")])
    text = render_text(report, styled=False).splitlines()
    assert "  lint      ok, 1 warning (`create` takes it)" in text
    assert "  verdict   1 problem found, 1 warning" in text
    assert [ln[:3] for ln in text if ln[:1].isdigit()] == ["1. ", "2. "]
    alive = Report("/b", outcome=Outcome(phase="running", window=1.5), findings=[
        Finding("x", "warning", "preflight", "a"), Finding("y", "info", "dry run", "b"),
        Finding("z", "warning", "preflight", "c")])
    text = render_text(alive, styled=False).splitlines()
    assert "  lint      ok" in text
    assert "  verdict   healthy: started; still running after 1.5s, 2 warnings, 1 note" in text
    assert "  verdict   2 problems found" in render_text(Report("/b", outcome=died, findings=[
        Finding("a", "error", "lint", "a"), Finding("b", "error", "dry run", "b")]),
        styled=False).splitlines()


def test_a_seccomp_kill_is_not_called_a_signal_sent():
    """seccomp(2): KILL_PROCESS/KILL_THREAD end the process "as though killed by SIGSYS";
    only SECCOMP_RET_TRAP sends SIGSYS."""
    out = Outcome(phase="exited", signal="SIGSYS", seconds=0.0, window=1.0,
                  last_syscall="arch_prctl(ARCH_SET_FS, 0x1) = ?")
    [found] = explain.outcome_findings(out, {}, "", [], "/b")
    assert found.code == "seccomp-kill" and found.op == "arch_prctl"
    assert "as though killed by SIGSYS, a TRAP action sends it" in found.cause
    assert "KILL and TRAP actions send" not in found.cause


def test_memory_fix_raises_the_swap_limit_with_it():
    """A memory limit raised above the swap limit (memory+swap) is one create refuses: the
    swap limit goes up with it, keeping what it gave beyond the old limit."""
    def spec(**mem):
        return {"linux": {"resources": {"memory": mem}}}
    mp = "/linux/resources/memory"
    assert explain.raise_memory(spec(limit=8 << 20, swap=8 << 20), 64 << 20) == [
        {"op": "replace", "path": mp + "/limit", "value": 64 << 20},
        {"op": "replace", "path": mp + "/swap", "value": 64 << 20}]
    assert explain.raise_memory(spec(limit=8 << 20, swap=10 << 20), 64 << 20)[1] == \
        {"op": "replace", "path": mp + "/swap", "value": 66 << 20}
    for swap in (-1, 0, 128 << 20):  # unlimited, not set, already above
        assert len(explain.raise_memory(spec(limit=8 << 20, swap=swap), 64 << 20)) == 1


def _fix_of(spec: dict) -> list[tuple[str, list[dict]]]:
    """(pointer, patch) of each SpecError lint finds in `spec`, the patch its fix proposes."""
    from runtime import spec as specmod
    return [(e.pointer, explain.spec_finding(e.pointer, e.message, spec).fix.patch)
            for e in specmod.collect(spec, "/nonexistent-bundle")]


@pytest.mark.parametrize("edit,pointer,patch", [
    (lambda s: s["linux"]["namespaces"].append({"type": "pid"}), "/linux/namespaces/6/type",
     [{"op": "remove", "path": "/linux/namespaces/6"}]),
    (lambda s: s["process"].__setitem__("rlimits", [{"type": "RLIMIT_CORE", "soft": 5,
                                                     "hard": 1}]),
     "/process/rlimits/0/soft", [{"op": "replace", "path": "/process/rlimits/0/soft",
                                  "value": 1}]),
    (lambda s: s["process"].__setitem__("rlimits", [{"type": "RLIMIT_NOFLIE", "soft": 1,
                                                     "hard": 1}]),
     "/process/rlimits/0/type", [{"op": "replace", "path": "/process/rlimits/0/type",
                                  "value": "RLIMIT_NOFILE"}]),
    (lambda s: s["process"].__setitem__("rlimits", [{"type": "RLIMIT_BANANA", "soft": 1,
                                                     "hard": 1}]),
     "/process/rlimits/0/type", [{"op": "remove", "path": "/process/rlimits/0"}]),
    (lambda s: s["linux"].__setitem__("resources", {"memory": {"limit": 8 << 20,
                                                               "swap": 5 << 20}}),
     "/linux/resources/memory/swap", [{"op": "replace", "path": "/linux/resources/memory/swap",
                                       "value": 8 << 20}]),
    (lambda s: s["process"]["env"].append("NOEQ"), "/process/env/2",
     [{"op": "replace", "path": "/process/env/2", "value": "NOEQ="}]),
    (lambda s: s["process"]["env"].append("=x"), "/process/env/2",
     [{"op": "remove", "path": "/process/env/2"}]),
    (lambda s: s["process"].__setitem__("oomScoreAdj", 5000), "/process/oomScoreAdj",
     [{"op": "replace", "path": "/process/oomScoreAdj", "value": 1000}]),
    (lambda s: s["linux"].__setitem__("resources", {"blockIO": {"weight": 5000}}),
     "/linux/resources/blockIO/weight", [{"op": "replace", "value": 1000,
                                          "path": "/linux/resources/blockIO/weight"}]),
    (lambda s: s["linux"].__setitem__("resources", {"blockIO": {"leafWeight": 1}}),
     "/linux/resources/blockIO/leafWeight", [{"op": "replace", "value": 10,
                                              "path": "/linux/resources/blockIO/leafWeight"}]),
    (lambda s: s.__setitem__("ociVersion", "2.0"), "/ociVersion",
     [{"op": "replace", "path": "/ociVersion", "value": "1.2.0"}]),
    (lambda s: s["linux"].__setitem__("resources", {"cpu": {"period": 100}}),
     "/linux/resources/cpu/period", [{"op": "replace", "value": 1000,
                                      "path": "/linux/resources/cpu/period"}]),
])
def test_lint_fixes_with_a_clear_value_are_patches(edit, pointer, patch):
    """A SpecError whose right value the config itself gives is answered with that patch, not
    with its own message again."""
    from runtime.defaults import default_spec
    spec = default_spec()
    edit(spec)
    found = dict(_fix_of(spec))
    assert found.get(pointer) == patch, found
