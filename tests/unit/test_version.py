"""`ocish --version`: the version matches pyproject.toml; the commit is read from git metadata
as a main work tree, a linked one (a "gitdir:" file), packed refs and a detached HEAD hold it."""
from __future__ import annotations

import tomllib

from runtime import version
from tests.conftest import REPO

SHA = "0123456789abcdef0123456789abcdef01234567"


def test_version_is_pyprojects():
    with open(REPO / "pyproject.toml", "rb") as f:
        assert tomllib.load(f)["project"]["version"] == version.VERSION


def test_commit_from_git_metadata(tmp_path):
    main = tmp_path / "main"
    (main / ".git" / "refs" / "heads").mkdir(parents=True)
    (main / ".git" / "HEAD").write_text("ref: refs/heads/trunk\n")
    (main / ".git" / "refs" / "heads" / "trunk").write_text(SHA + "\n")
    assert version.commit(str(main)) == SHA
    # a linked work tree: .git names its gitdir, whose refs live in the main repository
    linked = tmp_path / "linked"
    linked.mkdir()
    wt = main / ".git" / "worktrees" / "linked"
    wt.mkdir(parents=True)
    (linked / ".git").write_text(f"gitdir: {wt}\n")
    (wt / "HEAD").write_text("ref: refs/heads/side\n")
    (wt / "commondir").write_text("../..\n")
    (main / ".git" / "packed-refs").write_text(f"# pack-refs with: peeled\n{SHA[::-1]} "
                                               "refs/heads/side\n")
    assert version.commit(str(linked)) == SHA[::-1]
    (wt / "HEAD").write_text(SHA + "\n")  # detached
    assert version.commit(str(linked)) == SHA
    assert version.commit(str(tmp_path / "nowhere")) == "unknown"


def test_text_has_runcs_five_lines():
    lines = version.text().split("\n")
    assert [ln.split(":")[0].split(" version")[0] for ln in lines] == [
        "ocish", "commit", "spec", "python", "libseccomp"]
