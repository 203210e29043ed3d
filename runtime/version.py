"""`ocish --version` (also `-v` and `ocish version`): runc's five lines, with ocish's versions.

    runc 1.1.5                      ocish
    runc version 1.1.5+ds1          ocish version 0.1.0
    commit: 1.1.5+ds1-1+deb12u1     commit: <the git commit the code runs from, or "unknown">
    spec: 1.0.2-dev                 spec: <the OCI runtime-spec version ocish implements>
    go: go1.19.8                    python: 3.11.7
    libseccomp: 2.5.4               libseccomp: 2.5.4 (the library it loads; "none" without)

podman and containerd print or log this output; tools that read it look for the "spec:" line.
runc's commit is stamped at build time; ocish, run from its source tree, reads the commit from
the tree's git metadata (no `git` process), else says "unknown".
"""
from __future__ import annotations

import os
import sys

VERSION = "0.1.0"  # pyproject.toml's [project] version (a unit test keeps them equal)
_HOME = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def text() -> str:
    """The five lines, without a trailing newline."""
    from runtime.defaults import OCI_VERSION
    from runtime.linux import seccomp
    return (f"ocish version {VERSION}\ncommit: {commit(_HOME)}\nspec: {OCI_VERSION}\n"
            f"python: {sys.version.split()[0]}\nlibseccomp: {seccomp.version()}")


def commit(home: str) -> str:
    """The commit checked out in the git work tree at `home` (a main tree, or a linked one
    whose .git is a "gitdir:" file), or "unknown"."""
    try:
        gitdir = os.path.join(home, ".git")
        if os.path.isfile(gitdir):
            gitdir = os.path.join(home, _read(gitdir).removeprefix("gitdir:").strip())
        head = _read(os.path.join(gitdir, "HEAD"))
        if not head.startswith("ref:"):
            return head  # a detached HEAD is the commit itself
        ref = head[4:].strip()
        common = gitdir  # a linked work tree keeps its refs in the main repository
        if os.path.isfile(os.path.join(gitdir, "commondir")):
            common = os.path.join(gitdir, _read(os.path.join(gitdir, "commondir")))
        for d in (gitdir, common):
            if os.path.isfile(os.path.join(d, ref)):
                return _read(os.path.join(d, ref))
        for line in _read(os.path.join(common, "packed-refs")).splitlines():
            sha, _, name = line.partition(" ")
            if name == ref:
                return sha
    except OSError:
        pass
    return "unknown"


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()
