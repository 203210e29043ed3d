"""DESIGN.md's layers, enforced: runtime/linux/ (the door to the kernel) imports nothing above
it and raises no config errors; runtime/ never imports ocish/ (the debugger) nor the debugger's
heavy libraries. Read from the source with ast, imports inside functions included."""
from __future__ import annotations

import ast

import pytest

from tests.conftest import REPO

LINUX = sorted((REPO / "runtime" / "linux").glob("*.py"))
RUNTIME = sorted((REPO / "runtime").rglob("*.py"))
HEAVY = ("ocish", "rich", "prompt_toolkit", "ptrace", "pyroute2", "jsonschema")


def imports(path) -> list[str]:
    """Every module `path` imports, absolute (`from runtime import x` gives runtime.x)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out += [f"{node.module}.{a.name}" for a in node.names]
    return out


def test_the_layers_are_where_the_test_looks():
    assert {p.name for p in LINUX} >= {"syscalls.py", "capabilities.py", "seccomp.py",
                                       "netlink.py", "fake.py"}


@pytest.mark.parametrize("path", LINUX, ids=lambda p: p.name)
def test_runtime_linux_imports_nothing_above_it(path):
    above = [m for m in imports(path)
             if m.split(".")[0] in ("runtime", *HEAVY) and not m.startswith("runtime.linux.")]
    assert above == [], f"{path.name} imports {above} (runtime/linux knows no config)"


@pytest.mark.parametrize("path", LINUX, ids=lambda p: p.name)
def test_runtime_linux_raises_no_config_errors(path):
    names = {n.id for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Name)}
    assert not names & {"SpecError", "StageError", "OcishError"}, path.name


@pytest.mark.parametrize("path", RUNTIME, ids=lambda p: str(p.relative_to(REPO)))
def test_runtime_never_imports_the_debugger_or_its_libraries(path):
    assert [m for m in imports(path) if m.split(".")[0] in HEAVY] == []


def test_the_check_sees_what_it_must(tmp_path):
    """The checks above would catch a violation (they are not vacuous)."""
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom runtime import jsonfast\n\ndef f():\n"
                   "    from runtime.errors import SpecError\n    raise SpecError('/x', 'y')\n")
    assert imports(bad) == ["os", "runtime.jsonfast", "runtime.errors.SpecError"]
    with pytest.raises(AssertionError):
        test_runtime_linux_imports_nothing_above_it(bad)
    with pytest.raises(AssertionError):
        test_runtime_linux_raises_no_config_errors(bad)
