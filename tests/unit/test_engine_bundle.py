"""ocish.engine_bundle without an engine: reading `ctr snapshots mounts`, the engines' error
lines, the temp bundle's config.json, the flags. (tests/clients/test_engine_bundle.py runs the
real podman and containerd.)"""
from __future__ import annotations

import argparse
import json
import os

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
    # the engines' clients' errors go through the image tools' one reader of a tool's stderr
    assert E.failure("time=... level=warning\nError: no such container x\n", 125) == \
        "no such container x"
    assert E.failure('ctr: container "a" in namespace "b": not found\n', 1) == \
        'container "a" in namespace "b": not found'
    assert E.failure("", 1, "ctr") == "ctr exit status 1"


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


# --- the cleanup, with a podman that logs its calls -------------------------------------------------

FAKE_PODMAN = """#!/bin/sh
echo "$*" >> {log}
case "$1 $2" in
  "container inspect") [ "$3" = web ] || {{ echo "Error: inspecting object: no such container $3" >&2; exit 125; }}
      echo '[{{"Id": "{cid}", "Name": "web", "OCIConfigPath": "{config}"}}]';;
  "mount web") echo {merged};;
  "unmount web") echo {cid};;
  *) exit 99;;
esac
"""


@pytest.fixture
def fake_podman(tmp_path, monkeypatch):
    """A podman on PATH that answers inspect, mount and unmount for container "web" and logs
    every call: the order of mount and unmount is what is checked, on every way out."""
    cid = "c" * 64
    config, merged, log = tmp_path / "config.json", tmp_path / "merged", tmp_path / "calls"
    config.write_text(json.dumps({"ociVersion": "1.0.2", "root": {"path": "/x/merged"},
                                  "process": {"args": ["/no/such/cmd"]}}))
    merged.mkdir()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "podman").write_text(FAKE_PODMAN.format(log=log, cid=cid, config=config,
                                                      merged=merged))
    (bindir / "podman").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(E.tempfile, "tempdir", None)  # TMPDIR read again

    def calls() -> list[str]:
        return log.read_text().splitlines() if log.exists() else []
    return cid, str(merged), str(config), calls


def test_borrow_podman_mounts_then_unmounts(fake_podman):
    cid, merged, config, calls = fake_podman
    before = open(config).read()
    with E.borrow("podman", "web") as b:
        with open(os.path.join(b.bundle, "config.json")) as f:
            assert json.load(f)["root"]["path"] == merged
        assert calls() == ["container inspect web", "mount web"]
        bundle = b.bundle
    assert calls()[-1] == "unmount web" and len(calls()) == 3
    assert not os.path.exists(bundle) and open(config).read() == before


def test_borrow_podman_undone_when_the_body_fails(fake_podman):
    cid, _, _, calls = fake_podman
    with pytest.raises(KeyboardInterrupt):
        with E.borrow("podman", "web") as b:
            bundle = b.bundle
            raise KeyboardInterrupt
    assert calls()[-1] == "unmount web" and not os.path.exists(bundle)


def test_borrow_podman_no_such_container(fake_podman):
    *_, calls = fake_podman
    with pytest.raises(E.EngineError, match=r"^podman container db: no such container$"):
        with E.borrow("podman", "db"):
            pass
    assert calls() == ["container inspect db"]  # nothing mounted, nothing to undo


@pytest.mark.parametrize("flags", [dict(podman="", containerd=None, namespace=None),
                                   dict(podman=None, containerd="", namespace=None),
                                   dict(podman=None, containerd="c", namespace="")])
def test_an_empty_name_is_refused_not_ignored(flags):
    import argparse
    with pytest.raises(E.EngineError, match="an empty name"):
        E.engine_of(argparse.Namespace(**flags), False)
