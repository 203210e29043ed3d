"""`ocish lint` as a user runs it: findings, formats, exit codes (0, 1, 2), --strict."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO


def lint(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ocish", "lint", *args], capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(REPO)),
                          stdin=subprocess.DEVNULL)


@pytest.fixture
def bundle(rootfs_template, tmp_path):
    b = tmp_path / "b"
    shutil.copytree(rootfs_template, b, symlinks=True)
    return b


def edit(bundle, change) -> None:
    spec = json.loads((bundle / "config.json").read_text())
    change(spec)
    (bundle / "config.json").write_text(json.dumps(spec, indent=2))


def test_clean_bundle(bundle):
    p = lint(str(bundle))
    assert (p.returncode, p.stderr) == (0, "")
    assert p.stdout == f"{bundle}/config.json: 0 errors, 0 warnings (create takes it)\n"


def test_every_error_with_pointer_and_fix(bundle):
    edit(bundle, lambda s: (s["process"].update(cwd="work", oomScoreAdj=5000),
                            s["mounts"].append({"destination": "data", "type": "tmpfs"})))
    p = lint(str(bundle))
    assert p.returncode == 1 and p.stderr == ""
    lines = p.stdout.splitlines()
    assert lines[0] == f"{bundle}/config.json: 3 errors, 0 warnings (create refuses it)"
    assert [ln.split()[:2] for ln in lines if not ln.startswith(" ")][1:] == [
        ["error", "/process/cwd"], ["error", "/process/oomScoreAdj"],
        ["error", "/mounts/7/destination"]]
    assert 'config.json: replace /process/cwd = "/work"' in p.stdout


def test_json_format(bundle):
    edit(bundle, lambda s: (s["process"].update(cwd="work"), s.update(hostnme="x")))
    p = lint(str(bundle), "--format", "json")
    assert p.returncode == 1
    out = json.loads(p.stdout)
    assert (out["errors"], out["warnings"], out["config"]) == (1, 1, f"{bundle}/config.json")
    first, second = out["findings"]
    assert (first["severity"], first["pointer"], first["value"]) == ("error", "/process/cwd",
                                                                     "work")
    assert first["fix"]["patch"] == [{"op": "replace", "path": "/process/cwd", "value": "/work"}]
    assert (second["severity"], second["code"], second["pointer"]) == ("warning",
                                                                       "unknown-member",
                                                                       "/hostnme")
    assert second["fix"]["patch"] == [{"op": "move", "from": "/hostnme", "path": "/hostname"}]


def test_warnings_pass_unless_strict(bundle):
    edit(bundle, lambda s: s["linux"].update(rootfsPropagation="rslave"))
    p = lint(str(bundle))
    assert p.returncode == 0
    assert "0 errors, 1 warning (create takes it)" in p.stdout
    assert "runc also accepts the recursive forms" in p.stdout
    assert lint(str(bundle), "--strict").returncode == 1


def test_a_config_file_by_its_path(bundle):
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["cwd"] = "rel"
    (bundle / "other.json").write_text(json.dumps(spec))
    p = lint(str(bundle / "other.json"))
    assert p.returncode == 1
    assert p.stdout.startswith(f"{bundle}/other.json: 1 error, 0 warnings")


def test_not_json_is_a_finding(bundle):
    (bundle / "config.json").write_text('{"ociVersion": "1.2.0",\n}\n')
    p = lint(str(bundle))
    assert p.returncode == 1
    assert "config.json cannot be parsed\n        invalid json at line 2 column 1" in p.stdout
    assert "config.json line 2: }" in p.stdout


@pytest.mark.parametrize("args,message", [
    (["/no/such/bundle"], "ocish: lint: /no/such/bundle: no such file or directory\n"),
    (["--format", "xml", "."], "ocish lint: argument --format: invalid choice: 'xml' "
                               "(choose from 'text', 'json')\n"),
])
def test_cannot_run_is_exit_2(args, message):
    p = lint(*args)
    assert (p.returncode, p.stdout, p.stderr) == (2, "", message)


def test_cannot_run_with_json_prints_a_json_error():
    p = lint("--format", "json", "/no/such/bundle")
    assert p.returncode == 2
    assert json.loads(p.stdout) == {"error": "/no/such/bundle: no such file or directory",
                                    "exit_status": 2}
    assert p.stderr == "ocish: lint: /no/such/bundle: no such file or directory\n"


def test_bad_arguments_with_json_print_a_json_error():
    p = lint("--format", "json", "--bogus", "/no/such/bundle")
    assert p.returncode == 2
    assert json.loads(p.stdout) == {"error": "unrecognized arguments: --bogus",
                                    "exit_status": 2}
    assert p.stderr == "ocish lint: unrecognized arguments: --bogus\n"


@pytest.mark.parametrize("text,value", [("[]", []), ('{"ociVersion": "1.2.0",\n}', None)])
def test_root_findings_have_a_value_too(bundle, text, value):
    """Every finding of --format json has `value`: the whole document for the root pointer,
    null when the file is not JSON."""
    (bundle / "config.json").write_text(text)
    p = lint("--format", "json", str(bundle))
    assert p.returncode == 1
    findings = json.loads(p.stdout)["findings"]
    assert findings and all("value" in f for f in findings), findings
    assert [f["value"] for f in findings if f["pointer"] == ""] == [value]


def test_unreadable_config_is_exit_2(tmp_path):
    (tmp_path / "config.json").mkdir()
    p = lint(str(tmp_path))
    assert p.returncode == 2
    assert p.stderr == f"ocish: lint: {tmp_path}/config.json: not a regular file (a directory)\n"
