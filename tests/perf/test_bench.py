"""bench/run.py's smoke test: every workload runs against runc at its quick sizes, the figures
are measurements (positive, paired, ratios that are ocish/runc of the pairs), and nothing is
left behind. The figures themselves are not judged here: CI machines vary; the README's table
comes from a by-hand run.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import statistics
import subprocess
import sys

import pytest

from tests.conftest import REPO, needs_root

pytestmark = [needs_root, pytest.mark.skipif(not shutil.which("runc"), reason="runc not installed")]


@pytest.fixture
def tree_ocish(tmp_path):
    """A launcher for this tree's ocish, with the Python beside it as an installed one has."""
    launcher = tmp_path / "bin" / "ocish"
    launcher.parent.mkdir()
    launcher.write_text(f"#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} -m ocish \"$@\"\n")
    launcher.chmod(0o755)
    (tmp_path / "bin" / "python3").symlink_to(sys.executable)
    return str(launcher)


def _ours() -> set[str]:
    return set(glob.glob("/sys/fs/cgroup/*/bench-*") + glob.glob("/sys/fs/cgroup/*/ocish/bench-*")
               + glob.glob("/tmp/ocish-bench-*"))


def test_every_workload_runs_paired_and_leaves_nothing(tree_ocish):
    before = _ours()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.run([sys.executable, str(REPO / "bench" / "run.py"), "--quick", "--rounds",
                        "2", "--json", "--ocish", tree_ocish], capture_output=True, text=True,
                       env=env, timeout=300, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert report["against"] == "runc" and report["machine"]["cpus"] == os.cpu_count()
    names = [r["name"] for r in report["results"]]
    for part in ("`run`", "create, start, state, kill", "sequential", "2 concurrent",
                 "5 concurrent", "`list`, no containers", "`state`, 1 container",
                 "`list`, 5 containers", "`state`, 5 containers", "PSS", "`exec`",
                 "load a bundle", "overhead", "`inspect all`"):
        assert any(part in n for n in names), (part, names)
    for r in report["results"]:
        assert r["ocish"]["median"] > 0 or "overhead" in r["name"], r
        assert r["ocish"]["min"] <= r["ocish"]["median"] <= r["ocish"]["max"]
        if r["other"] is not None:  # a paired workload: its ratio is ocish/runc of the pairs
            assert len(r["pairs"]) == r["rounds"] >= 2, r
            ratios = [mine / other for other, mine in r["pairs"]]
            assert r["ratio"]["median"] == pytest.approx(statistics.median(ratios))
            assert (r["ratio"]["min"], r["ratio"]["max"]) == (min(ratios), max(ratios))
            assert r["other"]["median"] == statistics.median(o for o, _ in r["pairs"]) > 0
        else:
            assert r["name"].startswith("debugger"), r
    assert _ours() == before


def test_a_missing_runtime_is_one_line_and_exit_2(tree_ocish):
    p = subprocess.run([sys.executable, str(REPO / "bench" / "run.py"), "--ocish",
                        "/nonexistent/ocish", "--only", "run"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == ["bench/run.py: --ocish /nonexistent/ocish: no such "
                                             "program"]
