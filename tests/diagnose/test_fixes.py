"""Every fix that lint and diagnose suggest and that can be applied automatically works.

For each bundle of the diagnose corpus (and of lint's agreement corpus, tests/lint/
test_agreement.py), every finding whose fix carries a JSON patch is applied to a copy of the
bundle, with the fix's command too when it only touches that copy (mkdir in its rootfs, rm of a
symlink there; never the host's directories), and the bundle is checked again the way the
finding was found: lint for lint's and preflight's findings, diagnose for the dry run's. The
finding must be gone, and no error may be left at its pointer (a fix that trades one problem
for another there, as a cwd made absolute that the rootfs lacks, fails) nor appear anywhere the
bundle had none (a memory limit raised above the swap limit, which create refuses).
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ocish.lint.checks import lint
from tests.conftest import REPO, needs_root, reap_orphans
from tests.diagnose import jsonpatch
from tests.diagnose.corpus import CASES, HEALTHY, build

pytestmark = needs_root
FIGURES = {"fixes applied": 0, "with their command": 0, "not automatic": 0}
READ_ONLY_SOURCES = ("/usr/", "/lib/", "/lib64/", "/bin/", "/sbin/")


def _diagnose(bundle: Path, tmp: Path) -> dict:
    tmp.mkdir(exist_ok=True)
    p = subprocess.run([sys.executable, "-m", "ocish", "diagnose", str(bundle), "--format",
                        "json", "--timeout", "0.5", "--no-trace"], capture_output=True,
                       text=True, timeout=120, stdin=subprocess.DEVNULL,
                       env=dict(os.environ, PYTHONPATH=str(REPO), TMPDIR=str(tmp)))
    reap_orphans()
    assert "Traceback" not in p.stderr, p.stderr
    return json.loads(p.stdout)


def _safe(command: str, base: Path) -> bool:
    """Whether every path the command names is in the copy, or a system file it only reads."""
    paths = [w for w in shlex.split(command) if w.startswith("/")]
    return bool(paths) and all(w.startswith(str(base) + "/") or w.startswith(READ_ONLY_SOURCES)
                               for w in paths)


def _copy(base: Path, to: Path) -> Path:
    """A copy of the case's directory (bundle and host files), config.json pointed at it."""
    subprocess.run(["cp", "-a", str(base), str(to)], check=True)
    config = to / "bundle" / "config.json"
    config.write_text(config.read_text().replace(str(base), str(to)))
    return to / "bundle"


def _apply(finding: dict, base: Path, to: Path) -> Path:
    bundle = _copy(base, to)
    config = bundle / "config.json"
    fix = finding["fix"]
    config.write_text(json.dumps(jsonpatch.apply(json.loads(config.read_text()), fix["patch"]),
                                 indent=1))
    command = (fix.get("command") or "").replace(str(base), str(to))
    if command and _safe(command, to):
        subprocess.run(["sh", "-c", command], check=True, cwd=to)
        FIGURES["with their command"] += 1
    FIGURES["fixes applied"] += 1
    return bundle


def check_fixes(findings: list[dict], base: Path, recheck) -> int:
    """Apply each finding's patch to its own copy and check again; the number applied."""
    applied = 0
    for n, f in enumerate(findings):
        if f["severity"] not in ("error", "warning"):
            continue
        if not (f.get("fix") or {}).get("patch"):
            FIGURES["not automatic"] += 1
            continue
        to = base.parent / f"{base.name}-fix{n}"
        removals = [op["path"] for op in f["fix"]["patch"] if op["op"] in ("remove", "move")]
        after = recheck(_apply(f, base, to), f)
        # the same problem: its code, at its pointer, about the same value there (a fix that
        # removes an item of a list brings the next one to its index)
        same = [g for g in after if g["code"] == f["code"] and g["pointer"] == f["pointer"]
                and g.get("value") == f.get("value")]
        assert not same, (f"the fix of {f['code']} at {f['pointer']} did not remove it:\n"
                          f"{json.dumps(f['fix'], indent=1)}\nafter: {json.dumps(same, indent=1)}")
        removed = any(op["op"] == "remove" and (f["pointer"] + "/").startswith(op["path"] + "/")
                      for op in f["fix"]["patch"])  # the item is gone: another took its place
        left = [] if removed else [g for g in after if g["severity"] == "error"
                                   and g["pointer"] == f["pointer"]]
        assert not left, (f"the fix of {f['code']} at {f['pointer']} leaves an error there:\n"
                          f"{json.dumps(f['fix'], indent=1)}\nafter: {json.dumps(left, indent=1)}")
        # nor anywhere else: an error the bundle did not have (a memory limit raised above the
        # swap limit, which create then refuses)
        new = [g for g in after if g["severity"] == "error" and not _had(g, findings, removals)]
        assert not new, (f"the fix of {f['code']} at {f['pointer']} brings a new error:\n"
                         f"{json.dumps(f['fix'], indent=1)}\nafter: {json.dumps(new, indent=1)}")
        shutil.rmtree(to, ignore_errors=True)
        applied += 1
    return applied


def _had(g: dict, before: list[dict], removals: list[str]) -> bool:
    """Whether finding `g` (after a fix) was there before: the same code at the same pointer,
    or at the pointer it had before an item of the same list was removed (the items after it
    move up one index)."""
    if any(b["code"] == g["code"] and b["pointer"] == g["pointer"] for b in before):
        return True
    for path in removals:
        parent, _, index = path.rpartition("/")
        rest = g["pointer"][len(parent) + 1:].split("/", 1) \
            if g["pointer"].startswith(parent + "/") else [""]
        if index.isdigit() and rest[0].isdigit() and int(rest[0]) >= int(index):
            moved = f"{parent}/{int(rest[0]) + 1}" + ("/" + rest[1] if len(rest) > 1 else "")
            if any(b["code"] == g["code"] and b["pointer"] == moved for b in before):
                return True
    return False


def _lint_findings(bundle: Path) -> list[dict]:
    report = lint(str(bundle))
    return [f.to_dict(report.spec if isinstance(report.spec, dict) else None)
            for f in report.findings]


@pytest.mark.parametrize("case", CASES + HEALTHY, ids=[c.name for c in CASES + HEALTHY])
def test_diagnose_fixes_work(case, rootfs_template, bundle_dir, tmp_path):
    base = bundle_dir(case.open_dir)
    build(case, base, rootfs_template)
    report = _diagnose(base / "bundle", tmp_path / "tmp")

    def recheck(bundle: Path, finding: dict) -> list[dict]:
        if finding["source"] == "dry run":
            return _diagnose(bundle, tmp_path / "tmp")["findings"]
        return _lint_findings(bundle)
    applied = check_fixes(report["findings"], base, recheck)
    if case.fix.startswith("patch:"):  # the headline's fix is a patch: it was applied
        assert applied


def test_the_reviewers_seccomp_case(rootfs_template, bundle_dir, tmp_path):
    """`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["execve", "execveat"],
    "action": "SCMP_ACT_ERRNO"}]}`: the fix takes both names out of the rule (an added allow
    rule would lose to it), and the bundle is then healthy."""
    case = next(c for c in CASES if c.name == "seccomp forbids execve")
    base = bundle_dir(False)
    build(case, base, rootfs_template)
    report = _diagnose(base / "bundle", tmp_path / "tmp")
    first = report["findings"][0]
    assert first["code"] == "seccomp-execve"
    assert first["fix"]["patch"] == [{"op": "remove", "path": "/linux/seccomp/syscalls/0"}]
    fixed = _apply(first, base, base.parent / "fixed")
    after = _diagnose(fixed, tmp_path / "tmp")
    assert after["healthy"] is True, json.dumps(after["findings"], indent=1)


def test_unknown_type_fix_needs_no_device(rootfs_template, bundle_dir):
    """An unknown filesystem type gets a type to use only when that one needs no device (the
    reviewer's "nosuchfs" got squashfs, whose mount then fails on its source): tmpfss is tmpfs,
    nosuchfs has no such neighbour and the fix removes the mount."""
    fixes = {}
    for name in ("mount of an unknown filesystem type",
                 "mount of a filesystem type nothing is like"):
        case = next(c for c in CASES if c.name == name)
        base = bundle_dir(False) / name.replace(" ", "-")
        build(case, base, rootfs_template)
        f = next(f for f in _lint_findings(base / "bundle") if f["code"] == "mount-unknown-type")
        fixes[name] = f["fix"]["patch"]
    assert fixes["mount of an unknown filesystem type"] == [
        {"op": "replace", "path": "/mounts/7/type", "value": "tmpfs"}]
    assert fixes["mount of a filesystem type nothing is like"] == [
        {"op": "remove", "path": "/mounts/7"}]


def test_figures():
    print("\nfixes:", ", ".join(f"{k} {v}" for k, v in FIGURES.items()))
    assert FIGURES["fixes applied"] > 30
