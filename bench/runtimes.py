"""The runtimes a benchmark drives: ocish and the one it is measured against (runc or crun),
each with a state root of its own, called as containerd's shim calls them (one process a
command, stdin from /dev/null, output thrown away).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass


class BenchError(Exception):
    """A benchmark cannot run: a runtime missing, a command that failed (message: one line)."""


@dataclass
class Runtime:
    name: str            # "ocish", "runc", "crun"
    argv: list[str]      # the command and its global flags, e.g. ["runc"] or ["crun", "--cgroup-manager=disabled"]
    root: str            # its --root (a fresh directory per benchmark run)

    def cmd(self, *args: str) -> list[str]:
        return [*self.argv, "--root", self.root, *args]

    def call(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run one command; BenchError with its stderr's first line when `check` and it fails."""
        return self._run(args, check)[0]

    def timed(self, *args: str) -> float:
        """Seconds of wall time one command took, as a whole process (started and reaped)."""
        return self._run(args, True)[1]

    def _run(self, args: tuple[str, ...], check: bool) -> tuple[subprocess.CompletedProcess,
                                                                  float]:
        # Output goes to files, not pipes: a created container's init keeps the caller's stdio
        # open (runc's and ocish's alike), so reading a pipe to its end would wait for it.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            t = time.perf_counter()
            code = subprocess.call(self.cmd(*args), stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=err)
            took = time.perf_counter() - t
            out.seek(0)
            err.seek(0)
            p = subprocess.CompletedProcess(args, code, out.read().decode(errors="replace"),
                                            err.read().decode(errors="replace"))
        if check and code:
            line = (p.stderr.strip().splitlines() or [f"exit {code}"])[0]
            raise BenchError(f"{self.name} {' '.join(args)}: {line}")
        return p, took

    def pid(self, cid: str) -> int:
        """The container's init pid from `state` (the waiting init of a created container)."""
        import json
        return int(json.loads(self.call("state", cid).stdout)["pid"])

    def clean(self) -> None:
        """Delete every container under this root (the end of a workload, whatever happened)."""
        p = self.call("list", "-q", check=False)
        for cid in p.stdout.split():
            self.call("delete", "-f", cid, check=False)


def other_runtime(name: str, root: str) -> Runtime:
    """runc or crun, found on PATH. crun cannot manage cgroups on this hybrid hierarchy without
    systemd: it runs with --cgroup-manager=disabled (its documented way to skip cgroups).
    Raises BenchError when it is not installed."""
    path = shutil.which(name)
    if not path:
        raise BenchError(f"--against {name}: {name} is not installed (not on PATH)")
    argv = [path] + (["--cgroup-manager=disabled"] if name == "crun" else [])
    return Runtime(name, argv, root)


def ocish_runtime(path: str, root: str) -> Runtime:
    """ocish as installed at `path` (a `pip install .`, not an editable one: an editable
    install's import hooks add tens of milliseconds to every start). Raises BenchError."""
    found = shutil.which(path) if os.sep not in path else path
    if not found or not os.access(found, os.X_OK):
        raise BenchError(f"--ocish {path}: no such program")
    return Runtime("ocish", [found], root)


def interpreter_of(script: str) -> str:
    """The Python an installed ocish runs with: the one beside its launcher (its bin/), as the
    launcher itself finds it."""
    here = os.path.dirname(os.path.realpath(script))
    for name in ("python3", "python"):
        if os.access(os.path.join(here, name), os.X_OK):
            return os.path.join(here, name)
    raise BenchError(f"{script}: no python beside it (an installed ocish has one in its bin/)")
