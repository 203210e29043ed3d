"""The runtime started with fd 0, 1 or 2 closed (a daemon's child, `<&-`): /dev/null takes
their place before anything is opened, as Go's runtime does for runc. Otherwise exec.fifo's
O_PATH fd would take fd 0 and be handed to the container as its stdin: with a terminal, stage
exec's open of the fifo would open the pty instead and run the process before `start`.
"""
from __future__ import annotations

import os
import subprocess
import tempfile

from tests.conftest import REPO, cid, needs_root, ocish_cmd

pytestmark = needs_root


def _sh(ocish, script: str, *args: str) -> subprocess.CompletedProcess:
    """`sh -c script` with $OCISH the runtime's command line (its --root included); output to
    files, not pipes (a created container keeps its stdio open)."""
    cmd = " ".join(ocish_cmd() + ["--root", ocish.root])
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        rc = subprocess.run(["sh", "-c", script, "sh", *args], stdout=out, stderr=err,
                            env=dict(os.environ, PYTHONPATH=str(REPO), OCISH=cmd), timeout=60,
                            stdin=subprocess.DEVNULL).returncode
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(args, rc, out.read(), err.read())


def test_terminal_run_with_stdin_closed_waits_for_its_start(ocish, make_bundle):
    b = make_bundle(["sh", "-c", "tty; echo out; exit 4"], terminal=True)
    p = _sh(ocish, '$OCISH run -b "$1" "$2" <&-', str(b), cid())
    assert p.returncode == 4, p.stderr
    assert p.stdout.replace("\r", "").splitlines()[-1] == "out" and p.stderr == ""


def test_create_with_stdin_closed_gives_the_process_dev_null(ocish, make_bundle):
    b = make_bundle(["sleep", "30"])
    c = cid()
    p = _sh(ocish, '$OCISH create -b "$1" "$2" <&-', str(b), c)
    assert p.returncode == 0, p.stderr
    assert ocish.state(c)["status"] == "created"
    stdin = os.readlink(f"/proc/{ocish.state(c)['pid']}/fd/0")
    assert stdin == "/dev/null"


def test_closed_stdout_or_stderr_is_no_traceback(ocish, make_bundle):
    for redirect in (">&-", "2>&-"):
        p = _sh(ocish, f"$OCISH list {redirect}; echo rc=$? >&2")
        assert "Traceback" not in p.stderr and "rc=0" in p.stderr, p.stderr
    b = make_bundle(["true"])
    c = cid()
    p = _sh(ocish, '$OCISH create -b "$1" "$2" <&- >&-; echo rc=$? >&2', str(b), c)
    assert p.stderr.strip() == "rc=0" and ocish.state(c)["status"] == "created"
