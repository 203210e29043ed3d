"""The tutorials (tutorials/*.md) and the replay scripts they are built on (tutorials/*.ocish).

Every script is replayed as a reader runs it, `ocish replay tutorials/NN-name.ocish` from the
repository's root, with this tree's ocish first on PATH (the pages' `shell ocish ...` lines run
it too): every expectation must pass, none may be skipped, and nothing may be left behind (state
dir, cgroup, scratch files, mounts). The pages are checked for what a reader follows: each
tutorial has its page and script, every relative link and script a page names exists, the
index lists every page, and the README links the index.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import REPO, cid, needs_root, ocish_cmd
from tests.shell.conftest import cgroup_dirs

TUTORIALS = REPO / "tutorials"
SCRIPTS = sorted(TUTORIALS.glob("*.ocish"))
PAGES = sorted(TUTORIALS.glob("[0-9][0-9]-*.md"))
# the tutorials the project promises (issue 13), in the order a learner takes them
NUMBERS = [f"{n:02d}" for n in range(9)]
LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.fixture
def bin_dir():
    """A directory whose `ocish` runs this tree's code: first on PATH for the replay."""
    d = tempfile.mkdtemp(prefix="tutorial-bin-")
    wrapper = Path(d, "ocish")
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={REPO} exec {ocish_cmd()[0]} -m ocish "$@"\n')
    wrapper.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@needs_root
@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_a_tutorial_replays_green(script: Path, bin_dir: str) -> None:
    tmp = tempfile.mkdtemp(prefix="tutorial-tmp-")
    os.chmod(tmp, 0o755)
    root = tempfile.mkdtemp(prefix="tutorial-root-")
    container = cid()
    env = dict(os.environ, PYTHONPATH=str(REPO), TMPDIR=tmp,
               PATH=f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    try:
        res = subprocess.run(
            ocish_cmd() + ["replay", str(script.relative_to(REPO)), "--format", "json",
                           "--root", root, "--id", container],
            capture_output=True, text=True, timeout=600, env=env, cwd=REPO,
            stdin=subprocess.DEVNULL)
        report = json.loads(res.stdout) if res.stdout.strip() else {}
        failures = [f"{r['line']}: {r['text']}: {r.get('message', '')}"
                    for s in report.get("scripts", []) for r in s.get("results", [])
                    if r["status"] != "pass"]
        assert res.returncode == 0, (f"exit status {res.returncode}\n" + "\n".join(failures)
                                     + f"\n{res.stderr[-3000:]}")
        summary = report["summary"]
        assert summary["failed"] == summary["skipped"] == 0, failures
        # a tutorial checks what its page shows: a handful of facts at least
        assert summary["passed"] >= 5, summary
        assert not os.listdir(tmp), f"left in TMPDIR: {os.listdir(tmp)}"
        assert not os.listdir(root), f"left under --root: {os.listdir(root)}"
        assert not cgroup_dirs(container), cgroup_dirs(container)
        with open("/proc/self/mountinfo") as f:
            assert tmp not in f.read()
    finally:
        subprocess.run(ocish_cmd() + ["--root", root, "delete", "-f", container],
                       capture_output=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


def test_every_tutorial_has_its_page_and_script() -> None:
    for n in NUMBERS:
        pages = [p for p in PAGES if p.name.startswith(f"{n}-")]
        assert len(pages) == 1, f"tutorial {n}: pages {pages}"
        assert any(s.name.startswith(f"{n}-") for s in SCRIPTS), f"tutorial {n}: no script"


def _links(page: Path) -> list[str]:
    return [m.group(1) for m in LINK.finditer(page.read_text())]


def test_links_between_pages_resolve() -> None:
    for page in [*PAGES, TUTORIALS / "README.md"]:
        for link in _links(page):
            if re.match(r"^[a-z]+:", link) or link.startswith("#"):
                continue
            target = (page.parent / link.split("#")[0]).resolve()
            assert target.exists(), f"{page.name}: link {link} leads nowhere"


def test_each_page_names_its_scripts_and_the_kernel_section() -> None:
    for page in PAGES:
        text = page.read_text()
        own = [s for s in SCRIPTS if s.name.startswith(page.name[:3])]
        for s in own:
            assert f"tutorials/{s.name}" in text, f"{page.name} never names {s.name}"
        assert re.search(r"^#+ What the kernel did", text, re.M), \
            f"{page.name}: no 'What the kernel did' section"


def test_the_index_lists_every_page_and_the_readme_links_it() -> None:
    index = _links(TUTORIALS / "README.md")
    for page in PAGES:
        assert page.name in index, f"tutorials/README.md does not link {page.name}"
    assert "tutorials/README.md" in _links(REPO / "README.md")
