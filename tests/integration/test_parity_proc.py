"""runc parity (issue 10): the same busybox bundle under runc 1.1.5 and ocish, side by side.

Each test runs runc with its own --root in tmp_path where runc is right, and says so where
ocish follows a later runc fix or does better than runc 1.1.5.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid

import pytest

from tests.conftest import cid, needs_root

pytestmark = needs_root

RUNC = shutil.which("runc")
needs_runc = pytest.mark.skipif(RUNC is None, reason="runc is not installed")


class Runc:
    """runc 1.1.5 with a --root of its own; `delete_all` cleans up whatever a test left."""

    def __init__(self, root: str) -> None:
        self.root = root

    def __call__(self, *args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("capture_output", True)
        return subprocess.run([RUNC, "--root", self.root, *args], text=True, timeout=timeout, **kw)

    def delete_all(self) -> None:
        if os.path.isdir(self.root):
            for name in os.listdir(self.root):
                self("delete", "-f", "--", name)


@pytest.fixture
def runc(tmp_path, request):
    rt = Runc(str(tmp_path / "runc-root"))
    request.addfinalizer(rt.delete_all)
    return rt


# --- item 9: container ids --------------------------------------------------------------------

ACCEPTED = ["_x", "+a", ".x", "..a", "a..b", "...", "A-b.c_d+e", "-x"]
REFUSED = ["..", ".", "a b", "a/b", "caf\u00e9", "a:b", "a\tb"]


@needs_runc
def test_ids_accepted_and_refused_as_runc_does(ocish, runc, make_bundle):
    """runc's validateID: letters, digits, "_", "+", "-", "." with any first character; not
    "." or "..". Both runtimes answer `state` alike: a valid id is only missing."""
    for name in ACCEPTED + REFUSED:
        theirs = runc("state", "--", name).stderr
        ours = ocish("state", "--", name).stderr
        valid = name in ACCEPTED
        assert ("container does not exist" in theirs) == valid, (name, theirs)
        assert ("invalid container ID format" in theirs) != valid, (name, theirs)
        if valid:
            assert ours == "ocish: container does not exist\n", name
        else:
            assert ours.startswith("ocish: invalid container id ") and ours.count("\n") == 1, ours
    # "," passes runc 1.1.5's regexp `[\w+-\.]` (a range "+" to "."), a bug runc 1.2 fixed
    assert "container does not exist" in runc("state", "a,b").stderr
    assert 'character "," is not allowed' in ocish("state", "a,b").stderr
    b = make_bundle(["true"])
    for name in ("_x", ".x", "-x", "+a"):  # each makes a container both runtimes can run
        c = name + uuid.uuid4().hex[:6]
        ocish("create", "-b", str(b), "--", c, check=True)
        assert ocish("list", "-q").stdout.split() == [c]
        assert json.loads(ocish("state", "--", c, check=True).stdout)["status"] == "created"
        ocish("delete", "-f", "--", c, check=True)
        assert os.listdir(ocish.root) == []
        assert runc("run", "-b", str(b), "--", c).returncode == 0
