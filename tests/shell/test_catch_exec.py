"""`catch exec`: the container's process held right after its execve, inspected as it starts,
then released; every value checked against /proc and the ELF file itself."""
from __future__ import annotations

import os
import signal
import struct
import time

from tests.conftest import needs_root
from tests.shell.conftest import alive, status_field

pytestmark = needs_root


def _elf_entry(path: str) -> int:
    """e_entry of a 64-bit little-endian ELF file, read here without ocish.elf."""
    with open(path, "rb") as f:
        head = f.read(32)
    assert head[:4] == b"\x7fELF" and head[4] == 2 and head[5] == 1
    return struct.unpack_from("<Q", head, 24)[0]


def _auxv(pid: int) -> dict[int, int]:
    with open(f"/proc/{pid}/auxv", "rb") as f:
        raw = f.read()
    pairs = struct.iter_unpack("<QQ", raw)
    return {k: v for k, v in pairs if k}


def test_catch_exec_holds_the_process_at_its_execve_then_lets_it_run(session, make_bundle):
    b = make_bundle(["sleep", "100"])
    s = session(b)
    assert "stop the process right after its execve" in s.cmd("catch exec")
    s.cmd("continue")
    pid = s.json("inspect proc --json")["pid"]
    out = s.cmd('expect start -> running == true, held == "stopped after execve of /bin/busybox"')
    assert out.startswith("ok: start -> "), out
    # held: a traced-stop, by a tracer that is not the shell, on the new program's first instruction
    assert status_field(pid, "State").startswith("t")
    tracer = int(status_field(pid, "TracerPid"))
    assert tracer not in (0, s.proc.pid)
    busybox = f"{b}/rootfs/bin/busybox"
    assert os.path.samefile(f"/proc/{pid}/exe", busybox)
    from ptrace.syscall import SYSCALL_NAMES
    with open(f"/proc/{pid}/syscall") as f:
        nr = int(f.read().split()[0])
    assert SYSCALL_NAMES[nr] == "execve"  # stopped inside execve(2), before it returns
    # what the shell shows is what /proc holds
    exe = s.json("inspect exe --json")
    assert exe["path"] == "/bin/busybox" == os.readlink(f"/proc/{pid}/exe")
    assert exe["e_entry"] == _elf_entry(busybox)
    vector = _auxv(pid)
    assert exe["entry"] == vector[9] == _elf_entry(busybox)  # AT_ENTRY: static, not PIE
    mapped = [m["path"] for m in exe["mapped"]]
    files = [m for m in mapped if m.startswith("/")]
    assert files == ["/bin/busybox"]  # nothing but the program is mapped yet
    shown = {e["name"]: e["value"] for e in s.json("inspect auxv --json")}
    assert shown["AT_ENTRY"] == vector[9] and shown["AT_PAGESZ"] == os.sysconf("SC_PAGE_SIZE")
    assert shown["AT_PHDR"] == vector[3] and shown["AT_UID"] == vector[11] == 0
    assert "AT_EXECFN             /bin/sleep" in s.cmd("inspect auxv")
    assert "ok:" in s.cmd("expect auxv.AT_EXECFN == /bin/sleep, exe.interpreter == \"\"")
    fds = s.json("inspect fds --json")["fds"]
    assert sorted(f["fd"] for f in fds) == sorted(int(n) for n in os.listdir(f"/proc/{pid}/fd"))
    assert status_field(pid, "State").startswith("t")  # inspecting did not let it go
    out = s.cmd("continue")
    assert f"process {pid} (/bin/busybox) continues, detached" in out
    deadline = time.monotonic() + 5
    while status_field(pid, "State")[0] != "S" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert status_field(pid, "State")[0] == "S" and status_field(pid, "TracerPid") == "0"
    assert alive(tracer) is False  # the helper is gone
    assert s.json("state")["status"] == "running"
    assert "no process is held" not in s.cmd("catch off")


def test_a_held_process_is_released_when_the_shell_dies(session, make_bundle):
    """quit detaches; a shell killed outright takes its tracer with it (PR_SET_PDEATHSIG), and
    the kernel resumes the held process: it is never left stopped."""
    s = session(make_bundle(["sleep", "100"]))
    s.cmd("catch exec")
    s.cmd("continue")
    pid = s.json("inspect proc --json")["pid"]
    s.cmd("start")
    tracer = int(status_field(pid, "TracerPid"))
    assert tracer and status_field(pid, "State").startswith("t")
    os.kill(s.proc.pid, signal.SIGKILL)
    s.proc.wait(10)
    deadline = time.monotonic() + 5
    while alive(tracer) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not alive(tracer)
    while status_field(pid, "State")[0] != "S" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert status_field(pid, "State")[0] == "S" and status_field(pid, "TracerPid") == "0"
    os.kill(pid, signal.SIGKILL)  # the shell is gone: the session's sweep removes the cgroups


def test_quit_keep_detaches_a_held_process(ocish, session, make_bundle):
    s = session(make_bundle(["sleep", "100"]))
    s.cmd("catch exec")
    s.cmd("continue")
    pid = s.json("inspect proc --json")["pid"]
    s.cmd("start")
    assert status_field(pid, "State").startswith("t")
    assert "kept (running" in s.quit("quit --keep")
    deadline = time.monotonic() + 5
    while status_field(pid, "State")[0] != "S" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert status_field(pid, "State")[0] == "S" and status_field(pid, "TracerPid") == "0"
    assert ocish("delete", "-f", s.cid).returncode == 0


def test_catch_exec_holds_a_stepped_exec_after_its_exec_stage(session, make_bundle):
    s = session(make_bundle(["sleep", "100"]))
    s.cmd("continue")
    s.cmd("start")
    init = s.json("state")["pid"]
    s.cmd("catch exec")
    s.cmd("exec --step sleep 50")
    s.cmd("until exec:exec")
    run = s.json("step --json")
    pid = run["steps"][-1]["exec_pid"]
    assert run["steps"][-1]["held"] == "stopped after execve of /bin/busybox"
    assert status_field(pid, "State").startswith("t") and int(status_field(pid, "TracerPid"))
    assert s.json("inspect proc --json")["cmdline"] == ["sleep", "50"]  # the target: it
    assert s.json("inspect exe --json")["entry"] == _auxv(pid)[9]
    assert os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(f"/proc/{init}/ns/pid")
    s.cmd("continue")
    deadline = time.monotonic() + 5
    while status_field(pid, "State")[0] != "S" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert status_field(pid, "TracerPid") == "0" and status_field(pid, "State")[0] == "S"
    assert s.json("inspect proc --json")["pid"] == init
