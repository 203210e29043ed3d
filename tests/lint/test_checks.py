"""Pure pieces of ocish/lint/checks.py: severities, members the runtime ignores, ordering."""
from __future__ import annotations

import pytest

from ocish.diagnose.model import ERROR, INFO, PREFLIGHT, WARNING, Finding
from ocish.lint import checks
from runtime.defaults import default_spec


@pytest.mark.parametrize("stage,op,code,severity,expected", [
    ("mounts", "mount", "mount-bad-option", ERROR, ERROR),     # stages create runs
    ("cgroup", "write", "cgroup-unsupported", ERROR, ERROR),
    ("hooks", "prestart hook", "hook-missing", ERROR, ERROR),
    ("exec", "exec", "entrypoint-missing", ERROR, ERROR),      # stage exec's look-up: create
    ("exec", "execve", "entrypoint-architecture", ERROR, WARNING),  # execve(2): start
    ("exec", "openat", "seccomp-before-exec", ERROR, ERROR),  # the hand-off's calls: tried by create
    ("bounding", "prctl", "seccomp-before-exec", ERROR, ERROR),  # filter loaded during setup
    ("start", "startContainer hook", "hook-missing", ERROR, WARNING),
    ("delete", "poststop hook", "hook-missing", WARNING, WARNING),
    ("terminal", "", "terminal", INFO, INFO),
    ("", "", "no-proc", INFO, INFO),                           # it starts without /proc
])
def test_lint_severity_is_create_s_verdict(stage, op, code, severity, expected):
    f = Finding(code, severity, PREFLIGHT, "t", stage=stage, op=op)
    assert checks.lint_severity(f) == expected


def test_unknown_members_with_a_guess():
    spec = default_spec()
    spec["hostnmae"] = "x"
    spec["process"]["capabilites"] = {}
    spec["linux"]["netDevices"] = {}          # runtime-spec 1.3's: the runtime reads it
    spec["annotations"] = {"anything": "goes"}  # a map: any key
    found = {f.pointer: f for f in checks.unknown_members(spec)}
    assert sorted(found) == ["/hostnmae", "/process/capabilites"]
    assert found["/process/capabilites"].fix.patch == [
        {"op": "move", "from": "/process/capabilites", "path": "/process/capabilities"}]
    assert all(f.severity == WARNING for f in found.values())


def test_findings_follow_the_file_s_order():
    spec = {"process": {"cwd": "x", "args": ["a"]}, "mounts": [{}, {"destination": "d"}]}
    pointers = ["/mounts/1/destination", "/process/args/0", "/process/cwd", "/zzz", "/mounts/0"]
    ordered = sorted(pointers, key=lambda p: checks._position(spec, p))
    assert ordered == ["/process/cwd", "/process/args/0", "/mounts/0", "/mounts/1/destination",
                       "/zzz"]
