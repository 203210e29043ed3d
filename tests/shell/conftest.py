"""A scripted `ocish debug --plain` session that a test drives one command at a time.

The shell runs as a real subprocess on pipes (so the plain, non-terminal path is what is tested);
`cmd()` sends one line and returns what the shell printed for it, which lets a test compare the
output with /proc between two commands. Every session is torn down when the test ends, pass or
fail: SIGTERM (the shell tears its container down), then SIGKILL and a sweep of the container's
cgroups as a last resort.
"""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time

import pytest

from tests.conftest import REPO, cid, ocish_cmd, reap_orphans

PROMPT = "(ocish) "
CGROUP_ROOT = "/sys/fs/cgroup"


def cgroup_dirs(container_id: str) -> list[str]:
    """The container's cgroup directories that exist, in every hierarchy."""
    out = []
    for h in os.listdir(CGROUP_ROOT):
        d = f"{CGROUP_ROOT}/{h}/ocish/{container_id}"
        if not os.path.islink(f"{CGROUP_ROOT}/{h}") and os.path.isdir(d):
            out.append(d)
    return out


def shrink_memory(container_id: str, limit: int = 64 * 1024) -> None:
    """Lower the container's memory limit under the runtime's feet, once stage cgroup made it:
    the container side (its interpreter charged to where it started) faults in more than this
    for the next stages, and the OOM killer
    ends it during setup. (A config cannot ask for so little: runtime/spec.py refuses limits
    below the 4 MiB the setup needs.)"""
    with open(f"{CGROUP_ROOT}/memory/ocish/{container_id}/memory.limit_in_bytes", "w") as f:
        f.write(str(limit))


def _sweep_cgroups(container_id: str) -> None:
    for d in cgroup_dirs(container_id):
        try:
            with open(f"{d}/cgroup.procs") as f:
                for pid in f.read().split():
                    os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.1)
    for d in cgroup_dirs(container_id):
        try:
            os.rmdir(d)
        except OSError:
            pass


class Session:
    def __init__(self, root: str, args: list[str], container_id: str, command: str = "debug",
                 pass_fds: tuple[int, ...] = (), env: dict | None = None) -> None:
        self.cid = container_id
        cmd = ocish_cmd() + [command] + args + ["--root", root, "--plain"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, pass_fds=pass_fds,
                                     env=dict(env or os.environ, PYTHONPATH=str(REPO)))
        self.buf = ""
        self.banner = self._until_prompt(30)

    def _until_prompt(self, timeout: float) -> str:
        """Output up to the next prompt (excluded); the prompt is consumed."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while True:
            at = self.buf.find(PROMPT)
            if at >= 0:
                out, self.buf = self.buf[:at], self.buf[at + len(PROMPT):]
                return out
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise AssertionError(f"no prompt within {timeout}s; output so far:\n{self.buf}")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"the shell exited; output:\n{self.buf}")
            self.buf += chunk.decode(errors="replace")

    def cmd(self, line: str, timeout: float = 30) -> str:
        """Send one command; its output (without the echoed command line)."""
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        out = self._until_prompt(timeout)
        echo, _, rest = out.partition("\n")
        assert echo == line, f"expected the echo of {line!r}, got {echo!r}"
        return rest

    def json(self, line: str):
        return json.loads(self.cmd(line))

    def quit(self, line: str = "quit", timeout: float = 30) -> str:
        """Send `quit` (or EOF with line=""), wait for the shell to exit; the rest of its output.

        Not read to EOF: a container kept running holds the shell's stdout open."""
        if line:
            self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.close()
        self.proc.wait(timeout)
        fd = self.proc.stdout.fileno()
        while select.select([fd], [], [], 0.2)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            self.buf += chunk.decode(errors="replace")
        return self.buf

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        _sweep_cgroups(self.cid)
        reap_orphans()


@pytest.fixture
def session(ocish, request):
    """session(bundle_or_None, *extra_args, command="debug") -> a started Session."""
    opened: list[Session] = []

    def start(bundle=None, *extra: str, command: str = "debug", **kw) -> Session:
        c = cid()
        args = ([str(bundle)] if bundle else []) + (["--id", c] if command == "debug" else [])
        s = Session(ocish.root, args + list(extra), c, command, **kw)
        opened.append(s)
        return s

    yield start
    for s in opened:
        s.close()


def status_field(pid: int, key: str) -> str:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split(":", 1)[1].strip()
    raise KeyError(key)


def alive(pid: int) -> bool:
    try:
        return status_field(pid, "State")[0] not in "ZX"
    except (FileNotFoundError, ProcessLookupError):
        return False


def blocked(pid: int, timeout: float = 5.0) -> bool:
    """Whether the process settles in an interruptible sleep (blocked in a syscall), as the
    container side does between two steps; it may still be returning to recv(2) just now."""
    deadline = time.monotonic() + timeout
    while not status_field(pid, "State").startswith("S"):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
