"""`--against runc`: the same bundle under runc, with the same rules as the dry run.

runc runs the bundle in the foreground (`runc --root TMP run --bundle B ID`) with a stdin pipe we
hold, its stdout and its stderr each to a temp file (the container's streams are runc's own: the
stderr file also holds runc's log lines, `time="..." level=error msg="..."`, which are taken out
as its error); we watch `runc state` until the process runs, give it the same window, then
`runc kill` and `runc delete -f`. Its --root is a temp dir, removed afterwards with every
process we started. A bundle whose cgroupsPath exists already is not run: runc would join that
cgroup, and its teardown would kill what lives there.

Whether the process ran is read from runc's own words, not from `runc state` alone: a process
that exits in a few milliseconds is gone before a poll sees it "running", and `runc run` then
exits with its status and logs no error; when runc fails (setup, or its execve in runc init) it
logs `level=error` and exits 1.
"""
from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import tempfile
import time
import uuid

from ocish.diagnose.dryrun import children, held_signals, kill_strays, tail
from runtime.errors import OcishError

SETUP_LIMIT = 10.0


def run(bundle: str, spec: dict, window: float, runtime: str = "runc") -> dict:
    """runc's outcome: {"runtime", "version", "outcome", "ran", "exit_status", "error",
    "stdout", "stderr"}: `error` is runc's own last error message, `stdout` and `stderr` the
    last lines of the container's streams (with process.terminal, one pty: all in `stdout`)."""
    exe = shutil.which(runtime)
    result: dict = {"runtime": runtime, "version": "", "outcome": "", "ran": False,
                    "exit_status": None, "error": "", "stdout": [], "stderr": []}
    if exe is None:
        result["outcome"] = f"not run: {runtime} is not installed"
        return result
    result["version"] = _version(exe)
    taken = _cgroup_taken(spec)
    if taken:
        result["outcome"] = f"not run: cgroupsPath {taken} exists (a running container?)"
        return result
    root = tempfile.mkdtemp(prefix=f"ocish-diagnose-{runtime}-")
    cid = f"diagnose-{runtime}-{uuid.uuid4().hex[:8]}"
    out_log, err_log = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    terminal = isinstance(spec.get("process"), dict) and spec["process"].get("terminal") is True
    # runc's foreground `run` of a process.terminal bundle copies its own terminal to the
    # container's pty: it gets a pty of ours (its controlling terminal), which we drain
    master, stdin = os.openpty() if terminal else os.pipe()
    before = children()
    proc = None
    try:
        # with a terminal the container's output comes through the pty; runc's own log
        # lines still go to its stderr
        proc = subprocess.Popen([exe, "--root", root, "run", "--bundle", bundle, cid],
                                stdin=stdin, stdout=stdin if terminal else out_log,
                                stderr=err_log, start_new_session=True,
                                preexec_fn=_controlling_terminal if terminal else None)
        os.close(stdin)
        stdin = -1
        drain = (lambda: _drain(master, out_log)) if terminal else (lambda: None)
        seen = _watch(exe, root, cid, proc, window, result, drain)
    finally:
        with held_signals():
            if stdin >= 0:
                os.close(stdin)
            _cleanup(exe, root, cid, proc, before)
            if terminal:
                _drain(master, out_log)
            os.close(master)
            result["stdout"] = tail(out_log)
            stderr = tail(err_log)
            out_log.close()
            err_log.close()
    result["stderr"] = [ln for ln in stderr if not _runc_log(ln)]
    errors = [ln for ln in stderr if _runc_log(ln) and " level=error " in ln and "msg=" in ln]
    if errors:
        result["error"] = errors[-1].split("msg=", 1)[1].strip().strip('"').replace('\\"', '"')
    _label(result, seen)
    return result


def _runc_log(line: str) -> bool:
    """A line of runc's own logrus text log (`time="..." level=... msg="..."`)."""
    return line.startswith('time="') and " level=" in line


def _label(result: dict, seen: float | None) -> None:
    """The outcome of a run that ended by itself, told from runc's error and the status it saw:
    runc logs an error whenever its process did not run; else the status is the process's.
    `seen`: how long `runc state` saw it running, when it did."""
    rc = result["exit_status"]
    if rc is None:
        return
    if result["error"]:
        result["outcome"] = f"failed before its process ran: exit status {rc}"
        return
    result["ran"] = True
    result["outcome"] = (f"started; exit status {rc} after {seen:.2f}s" if seen is not None
                         else f"started; exit status {rc} (ended before `runc state` saw it "
                              "running)")


def _watch(exe: str, root: str, cid: str, proc: subprocess.Popen, window: float,
           result: dict, drain) -> float | None:
    """Poll until runc's run ends, the window closes or setup takes too long; sets the outcome
    of the last two. Returns how long the process was seen running when runc's run ended."""
    t0 = time.monotonic()
    running_since = None
    while True:
        drain()
        rc = proc.poll()
        if rc is not None:  # labelled by _label, once runc's stderr is read
            result["exit_status"] = rc
            return None if running_since is None else time.monotonic() - running_since
        now = time.monotonic()
        if running_since is None and _status(exe, root, cid) == "running":
            running_since = now
        if running_since is not None and now - running_since >= window:
            result["outcome"] = f"started; still running after {window:g}s"
            result["ran"] = True
            return None
        if running_since is None and now - t0 > SETUP_LIMIT:
            result["outcome"] = f"setup did not finish within {SETUP_LIMIT:g}s"
            return None
        time.sleep(0.02)


def _controlling_terminal() -> None:
    """In the child, after setsid: stdin (the pty) becomes its controlling terminal."""
    import fcntl
    import termios
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _drain(master: int, log) -> None:
    """Copy what is waiting on the pty master to the log, without blocking."""
    while select.select([master], [], [], 0)[0]:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: nobody holds the pty any more
            return
        if not chunk:
            return
        log.write(chunk.replace(b"\r\n", b"\n"))


def _status(exe: str, root: str, cid: str) -> str:
    p = subprocess.run([exe, "--root", root, "state", cid], capture_output=True, text=True,
                       timeout=10)
    try:
        return json.loads(p.stdout).get("status", "") if p.returncode == 0 else ""
    except ValueError:
        return ""


def _cleanup(exe: str, root: str, cid: str, proc: subprocess.Popen | None,
             before: set[int]) -> None:
    subprocess.run([exe, "--root", root, "delete", "--force", cid], capture_output=True,
                   timeout=30)
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()
    kill_strays(before)
    shutil.rmtree(root, ignore_errors=True)


def _cgroup_taken(spec: dict) -> str:
    path = (spec.get("linux") or {}).get("cgroupsPath")
    if not isinstance(path, str) or not path or ":" in path:
        return ""
    from runtime import cgroups
    try:
        dirs = cgroups.open_manager(path, "x").paths().values()
    except OcishError:  # an odd path: runc will say what it thinks of it
        return ""
    return path if any(os.path.isdir(d) for d in dirs) else ""


def _version(exe: str) -> str:
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return ""
    return out.splitlines()[0] if out else ""
