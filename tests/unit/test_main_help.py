"""`ocish --help`, `ocish help` and `ocish help COMMAND`: the runtime's commands (runc's help)
and the debugger's, and where the debugger's own commands are listed."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


def ocish(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ocish", *args], capture_output=True, text=True,
                          timeout=30, env=dict(os.environ, PYTHONPATH=str(REPO)),
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["help"], []])
def test_help_lists_the_runtime_and_the_debugger(args):
    p = ocish(*args)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    out = p.stdout
    assert out.startswith("usage: ocish [global options] command")
    assert "   create       create a container" in out
    debugger = out[out.index("DEBUGGER COMMANDS"):]
    for name in ("debug", "shell", "attach", "bundle", "lint", "diagnose", "bisect", "replay"):
        assert f"\n   {name:<12} " in debugger, name
    assert "Inside the debugger, `help` lists its own commands" in debugger


def test_help_command_is_that_commands_help():
    assert ocish("help", "create").stdout.startswith("usage: ocish create [command options]")
    assert ocish("help", "diagnose").stdout.startswith("usage: ocish diagnose")
    p = ocish("help", "nope")
    assert p.returncode == 1 and p.stderr == "ocish: no such command: nope\n"


def test_a_closed_pipe_is_no_traceback():
    """`ocish --help | head -1`: the reader leaves early."""
    p = subprocess.run(f"{sys.executable} -m ocish --help | head -1", shell=True,
                       capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert p.stdout.startswith("usage: ocish") and "Traceback" not in p.stderr, p.stderr
