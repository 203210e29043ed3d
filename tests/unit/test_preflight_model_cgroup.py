"""preflight's model cgroup: the files a new cgroup will have come from the nearest existing
cgroup below the hierarchy's root, never from the root (which lacks pids.max and the like)."""
from __future__ import annotations

from ocish.diagnose.preflight import _model_cgroup


def _cgroup(d):
    d.mkdir(parents=True, exist_ok=True)
    (d / "cgroup.procs").write_text("")
    return d


def test_the_nearest_existing_cgroup_below_the_root(tmp_path):
    root = _cgroup(tmp_path / "pids")
    parent = _cgroup(root / "ocish")
    assert _model_cgroup(str(parent / "c1")) == str(parent)


def test_a_child_of_the_root_rather_than_the_root(tmp_path):
    root = _cgroup(tmp_path / "pids")
    other = _cgroup(root / "libpod_parent")
    assert _model_cgroup(str(root / "ocish" / "c1")) == str(other)


def test_nothing_to_compare_with_under_a_bare_root(tmp_path):
    root = _cgroup(tmp_path / "pids")
    assert _model_cgroup(str(root / "ocish" / "c1")) is None
