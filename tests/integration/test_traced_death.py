"""The debugger's wait for a container process that a tracer holds (diagnose's re-run under
strace -f): the kernel shows the dead process as a zombie at once, but its parent can wait for it
only once the tracer has seen its end (ptrace(2), "the tracer is notified first"). Reading "Z"
in /proc as "reaped elsewhere" lost how it died: diagnose's traced re-run then differed from the
first run at random and its last system call was dropped."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from ocish.debugger import Debugger
from tests.conftest import needs_root

# seizes PID (PTRACE_SEIZE) and holds it 0.6 s without a waitpid, then exits (which detaches)
TRACER = """
import ctypes, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
assert libc.ptrace(0x4206, int(sys.argv[1]), None, None) == 0, ctypes.get_errno()
print("seized", flush=True)
time.sleep(0.6)
"""


@needs_root
def test_wait_status_outlasts_a_tracer_holding_the_zombie(tmp_path):
    dbg = Debugger(str(tmp_path))
    pid = os.posix_spawn("/bin/sleep", ["sleep", "30"], os.environ)
    tracer = subprocess.Popen([sys.executable, "-c", TRACER, str(pid)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert tracer.stdout.readline() == "seized\n"
        dbg.container_pid = lambda: pid
        os.kill(pid, signal.SIGKILL)
        t0 = time.monotonic()
        status = dbg.wait_status(pid, 3.0)
        assert status is not None, "the zombie was taken for one reaped elsewhere"
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        assert time.monotonic() - t0 < 3.0
    finally:
        tracer.wait(timeout=5)
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
