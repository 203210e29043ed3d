"""ocish.engine_bundle without an engine: reading `ctr snapshots mounts`, the engines' error
lines, the temp bundle's config.json, the flags. (tests/clients/test_engine_bundle.py runs the
real podman and containerd.)"""
from __future__ import annotations

import argparse
import json

import pytest

from ocish import engine_bundle as E


def test_mount_commands_from_ctr():
    # containerd 1.6's cmd/ctr/commands/snapshots: one line per mount, target as given
    text = ("mount -t overlay overlay /tmp/x/rootfs -o index=off,workdir=/s/9/work,"
            "upperdir=/s/9/fs,lowerdir=/s/3/fs:/s/2/fs\n")
    assert E._mount_commands(text, "/tmp/x/rootfs", "c") == [
        ["mount", "-t", "overlay", "-o", "index=off,workdir=/s/9/work,upperdir=/s/9/fs,"
         "lowerdir=/s/3/fs:/s/2/fs", "overlay", "/tmp/x/rootfs"]]
    assert E._mount_commands("\n", "/t", "c") == []


@pytest.mark.parametrize("line", ["mount -t bind /src /elsewhere -o rbind,ro",  # another target
                                  "rm -rf / ; mount -t x y /t -o z",
                                  "mount -t overlay overlay /t"])
def test_mount_commands_refuse_anything_else(line):
    with pytest.raises(E.EngineError, match="unexpected snapshot mount"):
        E._mount_commands(line, "/t", "containerd container c")


def test_engine_error_line():
    assert E._said("time=... level=warning\nError: no such container x\n") == "no such container x"
    assert E._said('ctr: container "a" in namespace "b": not found\n') == \
        'container "a" in namespace "b": not found'
    assert E._said("") == ""


def test_temp_config_points_at_the_mount(tmp_path):
    spec = {"ociVersion": "1.0.2", "root": {"path": "/var/lib/x/merged", "readonly": True},
            "linux": {"cgroupsPath": "/ocish-unit-no-such-parent/c1"}}
    b = E.Borrowed("podman", "c1", "f" * 64, "c1", "/x/config.json", "/mnt/r", str(tmp_path))
    E._write_bundle(b, spec, "/mnt/r")
    with open(tmp_path / "config.json") as f:
        written = json.load(f)
    assert written["root"] == {"path": "/mnt/r", "readonly": True}
    assert written["linux"]["cgroupsPath"] == "/ocish-unit-no-such-parent/c1"  # not there: kept
    assert spec["root"]["path"] == "/var/lib/x/merged"  # the engine's copy untouched
    assert b.notes == [] and b.title() == "podman container c1 (ffffffffffff)"


def test_flags():
    p = argparse.ArgumentParser()
    p.add_argument("bundle", nargs="?")
    E.engine_args(p)
    assert E.engine_of(p.parse_args(["--podman", "web"]), False) == ("podman", "web")
    assert E.engine_of(p.parse_args(["--containerd", "c", "--namespace", "k8s.io"]), False) == \
        ("containerd", "c")
    assert E.engine_of(p.parse_args([]), False) == ("", "")
    with pytest.raises(E.EngineError, match="--namespace goes with --containerd"):
        E.engine_of(p.parse_args(["--podman", "web", "--namespace", "n"]), False)
    with pytest.raises(E.EngineError, match="a bundle or --podman, not both"):
        E.engine_of(p.parse_args(["b", "--podman", "web"]), True)
