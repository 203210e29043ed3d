"""`--against runc`: the same bundle under runc, with the same rules as the dry run.

runc runs the bundle in the foreground (`runc --root TMP run --bundle B ID`) with a stdin pipe we
hold, its stdout and stderr to a temp file; we watch `runc state` until the process runs, give
it the same window, then `runc kill` and `runc delete -f`. Its --root is a temp dir, removed
afterwards with every process we started. A bundle whose cgroupsPath exists already is not run:
runc would join that cgroup, and its teardown would kill what lives there.
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
    """runc's outcome: {"runtime", "version", "outcome", "exit_status", "error", "stderr"}."""
    exe = shutil.which(runtime)
    result: dict = {"runtime": runtime, "version": "", "outcome": "", "exit_status": None,
                    "error": "", "stderr": []}
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
    log = tempfile.TemporaryFile()
    terminal = isinstance(spec.get("process"), dict) and spec["process"].get("terminal") is True
    # runc's foreground `run` of a process.terminal bundle copies its own terminal to the
    # container's pty: it gets a pty of ours (its controlling terminal), which we drain
    master, stdin = os.openpty() if terminal else os.pipe()
    before = children()
    proc = None
    try:
        out = stdin if terminal else log
        proc = subprocess.Popen([exe, "--root", root, "run", "--bundle", bundle, cid],
                                stdin=stdin, stdout=out, stderr=out, start_new_session=True,
                                preexec_fn=_controlling_terminal if terminal else None)
        os.close(stdin)
        stdin = -1
        drain = (lambda: _drain(master, log)) if terminal else (lambda: None)
        _watch(exe, root, cid, proc, window, result, drain)
    finally:
        with held_signals():
            if stdin >= 0:
                os.close(stdin)
            _cleanup(exe, root, cid, proc, before)
            if terminal:
                _drain(master, log)
            os.close(master)
            result["stderr"] = tail(log)
            log.close()
    errors = [ln for ln in result["stderr"] if "level=error" in ln and "msg=" in ln]
    if errors:
        result["error"] = errors[-1].split("msg=", 1)[1].strip().strip('"').replace('\\"', '"')
    return result


def _watch(exe: str, root: str, cid: str, proc: subprocess.Popen, window: float,
           result: dict, drain) -> None:
    t0 = time.monotonic()
    running_since = None
    while True:
        drain()
        rc = proc.poll()
        if rc is not None:
            result["exit_status"] = rc
            if running_since is None:
                result["outcome"] = f"failed before its process ran: exit status {rc}"
            else:
                result["outcome"] = (f"started; exit status {rc} after "
                                     f"{time.monotonic() - running_since:.2f}s")
            return
        now = time.monotonic()
        if running_since is None and _status(exe, root, cid) == "running":
            running_since = now
        if running_since is not None and now - running_since >= window:
            result["outcome"] = f"started; still running after {window:g}s"
            return
        if running_since is None and now - t0 > SETUP_LIMIT:
            result["outcome"] = f"setup did not finish within {SETUP_LIMIT:g}s"
            return
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
