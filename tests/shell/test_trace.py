"""`trace`, `catch exec` and the seccomp dumper: ptrace from the shell, detached cleanly."""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import textwrap
import time

from ocish import syscall_args
from ocish.inspect import bpf
from tests.conftest import needs_root
from tests.shell.conftest import alive, blocked, status_field

pytestmark = needs_root


def test_trace_shows_the_proc_mount_with_its_flags(session, make_bundle):
    def proc_opts(spec):
        for m in spec["mounts"]:
            if m["destination"] == "/proc":
                m["options"] = ["nosuid", "noexec", "nodev"]
    b = make_bundle(["sleep", "100"], mutate=proc_opts)
    s = session(b)
    s.cmd("break mount /proc")
    s.cmd("trace on")
    out = s.cmd("continue")
    assert "trace: host-side stage: run by the shell itself" in out  # cgroup, idmap
    assert "trace: unshare(CLONE_NEWNS|" in out and "CLONE_NEWPID" in out
    assert "--- fork child " in out  # C1 forks the init
    out = s.cmd("step")
    assert (f'trace: mount("proc", "{b}/rootfs/proc", "proc", MS_NOSUID|MS_NODEV|MS_NOEXEC, NULL) = 0'
            in out)
    assert "sendto" not in out and "recvfrom" not in out  # interpreter noise is hidden
    pid = s.json("inspect proc --json")["pid"]
    # detached: no tracer, blocked on the sync socket again, and it still serves the next step
    assert status_field(pid, "TracerPid") == "0"
    assert blocked(pid)
    s.cmd("trace off")
    assert "ran mounts /mounts/1" in s.cmd("step") and "trace:" not in s.cmd("step")
    s.cmd("trace on")
    s.cmd("break pivot")
    s.cmd("c")
    out = s.cmd("step")
    assert 'trace: pivot_root(".", ".") = 0' in out and 'umount2(".", MNT_DETACH) = 0' in out
    assert status_field(pid, "TracerPid") == "0"


def test_catch_exec_traces_the_user_process_then_detaches(session, make_bundle):
    s = session(make_bundle(["sleep", "100"]))
    assert "its first 5 syscalls" in s.cmd("catch exec 5")
    s.cmd("continue")
    pid = s.json("inspect proc --json")["pid"]
    out = s.cmd("start")
    assert "started container" in out and "stopped after execve of /bin/busybox" in out
    assert status_field(pid, "State").startswith("t")  # held at the exec event
    lines = [ln.strip() for ln in out.splitlines() if ln.startswith("  trace: ")]
    assert any("O_WRONLY" in ln and "openat" in ln for ln in lines), out  # the fifo first
    assert "--- exec /bin/busybox ---" in out
    out = s.cmd("continue")  # released: the execve returns, then N calls of the new program
    lines = [ln.strip() for ln in out.splitlines() if ln.startswith("  trace: ")]
    call = 'trace: execve("/bin/sleep", ["sleep", "100"]'
    assert lines[0].startswith(call) and lines[0].endswith("= 0"), out
    assert len(lines) - 1 == 5  # exactly N calls of the new program
    assert alive(pid) and status_field(pid, "TracerPid") == "0"
    assert status_field(pid, "Name") == "sleep"
    assert s.json("state")["status"] == "running"


_FILTER_HELPER = textwrap.dedent("""
    import ctypes, sys
    libc = ctypes.CDLL(None, use_errno=True)
    class F(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                    ("k", ctypes.c_uint32)]
    class P(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(F))]
    prog = [(0x20, 0, 0, 4), (0x15, 1, 0, AUDIT_ARCH), (0x06, 0, 0, 0), (0x20, 0, 0, 0),
            (0x15, 0, 1, NR_GETPID), (0x06, 0, 0, 0x50001), (0x06, 0, 0, 0x7fff0000)]
    arr = (F * len(prog))(*[F(*i) for i in prog])
    assert libc.prctl(38, 1, 0, 0, 0) == 0                          # PR_SET_NO_NEW_PRIVS
    assert libc.prctl(22, 2, ctypes.byref(P(len(prog), arr)), 0, 0) == 0  # PR_SET_SECCOMP, filter
    print("ready", flush=True)
    sys.stdin.read()
""")


def _filter_helper() -> subprocess.Popen:
    from ptrace.syscall import SYSCALL_NAMES
    nr = {v: k for k, v in SYSCALL_NAMES.items()}["getpid"]
    arch = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}[__import__("platform").machine()]
    code = _FILTER_HELPER.replace("AUDIT_ARCH", hex(arch)).replace("NR_GETPID", str(nr))
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert p.stdout.readline() == b"ready\n"
    return p


def test_seccomp_filter_is_dumped_and_disassembled(session):
    helper = _filter_helper()
    try:
        s = session(None, command="shell")
        out = s.cmd(f"inspect seccomp --pid {helper.pid}")
        assert "seccomp mode: filter, NoNewPrivs: yes, filters: 1" in out
        listing = [ln.strip() for ln in out.splitlines()[2:]]
        assert listing[0].startswith("0000  ld [4]") and listing[0].endswith("; arch")
        assert listing[1].endswith("; AUDIT_ARCH_X86_64") or listing[1].endswith("AUDIT_ARCH_AARCH64")
        assert listing[3].endswith("; nr")
        assert listing[4].startswith("0004  jeq #") and listing[4].endswith("; getpid")
        assert listing[5].endswith("; ERRNO(1) EPERM") and listing[6].endswith("; ALLOW")
        # the dump detached: the helper runs on, untraced, its filter still in force
        assert status_field(helper.pid, "TracerPid") == "0"
        assert status_field(helper.pid, "Seccomp") == "2" and helper.poll() is None
        assert "no container process to inspect: load a bundle first" in s.cmd("inspect seccomp")
    finally:
        helper.stdin.close()
        helper.wait(10)


def test_bpf_disassembler_annotates_jumps_and_returns():
    prog = [bpf.Insn(0x20, 0, 0, 0), bpf.Insn(0x15, 0, 1, 59), bpf.Insn(0x06, 0, 0, 0x80000000),
            bpf.Insn(0x20, 0, 0, 16), bpf.Insn(0x54, 0, 0, 0xff), bpf.Insn(0x05, 0, 0, 0),
            bpf.Insn(0x06, 0, 0, 0x7FF00000 | 7), bpf.Insn(0x06, 0, 0, 0x7FFF0000)]
    out = bpf.disassemble(prog, {59: "execve"})
    assert out[0].split() == ["0000", "ld", "[0]", ";", "nr"]
    assert out[1].split() == ["0001", "jeq", "#59", "jt", "0002", "jf", "0003", ";", "execve"]
    assert out[2].endswith("; KILL_PROCESS") and out[3].endswith("; args[0]")
    assert out[4].split()[1:] == ["and", "#0xff"] and out[5].split()[1:] == ["ja", "0006"]
    assert out[6].endswith("; TRACE(7)") and out[7].endswith("; ALLOW")


def test_syscall_argument_decoding():
    from runtime.linux import syscalls as S
    assert syscall_args.flags(S.MS_BIND | S.MS_REC, syscall_args.MOUNT_FLAGS) == "MS_BIND|MS_REC"
    assert syscall_args.flags(0, syscall_args.MOUNT_FLAGS) == "0"
    assert syscall_args.flags(S.CLONE_NEWNS | 0x11, syscall_args.CLONE_FLAGS) == "CLONE_NEWNS|0x11"
    assert syscall_args.flags(0o2000001, syscall_args.OPEN_FLAGS, "access") == "O_WRONLY|O_CLOEXEC"
    assert syscall_args.result_text(-1, True) == ("-1 EPERM (operation not permitted)", "EPERM")
    # strings are read from the tracee's memory: here, our own
    buf = ctypes.create_string_buffer(b"/proc")
    mem = syscall_args.Memory(__import__("os").getpid())
    try:
        args = [ctypes.addressof(buf), 0o1, 0, 0, 0, 0]
        assert syscall_args.decode("chdir", args, mem) == ['"/proc"']
        assert syscall_args.interesting("open", args, mem)  # a write-mode open of /proc
        assert not syscall_args.interesting("getpid", args, mem)
    finally:
        mem.close()


def _caps_of(mask_hex: str) -> list[str]:
    from runtime.linux.capabilities import names
    return names(int(mask_hex, 16))


def test_trace_decodes_caps_and_folds_alike_calls(session, make_bundle):
    s = session(make_bundle(["sleep", "100"]))
    s.cmd("until bounding")
    s.cmd("trace on")
    out = s.cmd("until exec")  # bounding, user, caps
    pid = s.json("inspect proc --json")["pid"]
    lines = [ln.strip()[len("trace: "):] for ln in out.splitlines() if ln.startswith("  trace: ")]
    # one line for the whole bounding set drop, every capability named
    drop = [ln for ln in lines if ln.startswith("prctl(PR_CAPBSET_DROP, {")]
    assert len(drop) == 1 and drop[0].endswith(" = 0  (x%d)" % drop[0].count("CAP_"))
    dropped = drop[0].split("{")[1].split("}")[0].split(", ")
    kept = _caps_of(status_field(pid, "CapBnd"))
    assert not set(dropped) & set(kept) and "CAP_SYS_ADMIN" in dropped
    # capset's three sets, as the kernel then shows them
    capset = [ln for ln in lines if ln.startswith("capset(")]
    eff = "|".join(_caps_of(status_field(pid, "CapEff")))
    assert capset == [f"capset({{version=_LINUX_CAPABILITY_VERSION_3, pid=0}}, {{effective={eff}, "
                      f"permitted={'|'.join(_caps_of(status_field(pid, 'CapPrm')))}, "
                      f"inheritable={'|'.join(_caps_of(status_field(pid, 'CapInh'))) or '0'}}}) = 0"]
    assert "prctl(PR_SET_KEEPCAPS, 1) = 0" in lines and "prctl(PR_SET_NO_NEW_PRIVS, 1) = 0" in lines
    # the config's ambient set cannot be raised without the inheritable set: three refusals,
    # one line (runc ignores these too)
    ambient = [ln for ln in lines if ln.startswith("prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE")]
    assert ambient == ["prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, {CAP_KILL, "
                       "CAP_NET_BIND_SERVICE, CAP_AUDIT_WRITE}) = -1 EPERM (operation not "
                       "permitted)  (x3)"]


def test_trace_decodes_setns_and_seccomp_and_trace_all_shows_reads(session, make_bundle):
    holder = subprocess.Popen(["unshare", "--net", "sleep", "60"])
    try:
        path = f"/proc/{holder.pid}/ns/net"
        deadline = time.monotonic() + 5
        while os.readlink(path) == os.readlink("/proc/self/ns/net"):  # unshare not done yet
            assert time.monotonic() < deadline
            time.sleep(0.01)

        def join_and_filter(spec):
            spec["linux"]["namespaces"] = [
                {"type": "network", "path": path} if n["type"] == "network" else n
                for n in spec["linux"]["namespaces"]]
            spec["process"]["noNewPrivileges"] = False  # the filter loads in stage bounding
            spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
        s = session(make_bundle(["sleep", "100"], mutate=join_and_filter))
        s.cmd("step")  # cgroup
        s.cmd("trace on")
        out = s.cmd("step")  # unshare
        # the fd, as the namespace it refers to (strace -y)
        setns = [ln for ln in out.splitlines() if ln.startswith("  trace: setns(")]
        assert len(setns) == 1 and setns[0].endswith(f"<{os.readlink(path)}>, CLONE_NEWNET) = 0")
        assert f'"{path}", O_RDONLY' not in out  # a read: not a state change
        s.cmd("until bounding")
        out = s.cmd("step")
        load = [ln for ln in out.splitlines() if "seccomp(SECCOMP_SET_MODE_FILTER" in ln]
        n = len(s.json("inspect seccomp --json")["filters"][0]["instructions"])
        assert load == [f"  trace: seccomp(SECCOMP_SET_MODE_FILTER, 0, {{len={n}, filter=0x"
                        + load[0].split("filter=0x")[1]] and load[0].endswith("}) = 0")
        s.cmd("restart")
        s.cmd("step")
        assert s.cmd("trace all") == "trace all\n"
        out = s.cmd("step")
        opened = [ln for ln in out.splitlines()
                  if f'openat(AT_FDCWD, "{path}", O_RDONLY|O_CLOEXEC, 0000) = ' in ln]
        assert len(opened) == 1 and opened[0].rsplit("= ", 1)[1].isdigit(), out  # an fd
        # every call: the sync channel too (recvmsg(2) until stage mounts, whose items may
        # bring fds, is past; recvfrom after, see runtime/engine.py _serve)
        assert "  trace: recvmsg(" in out
    finally:
        holder.kill()
        holder.wait()
