"""`ocish debug --image REF`: the debugger shell straight on a bundle built from an image (an OCI
layout made offline with umoci, tests/images.py), in a temporary directory removed at quit
unless --keep-bundle. The stepped container is checked against /proc: the image's user and
groups, its working directory; after `start`, the image's own entrypoint reports from inside."""
from __future__ import annotations

import os
import re
import shutil
import time

import pytest

from tests import images as I
from tests.conftest import needs_root
from tests.shell.conftest import alive, status_field

pytestmark = [needs_root, I.NEEDS_TOOLS]


@pytest.fixture(scope="module")
def layout(rootfs_template, tmp_path_factory):
    d = tmp_path_factory.mktemp("image")
    yield I.oci_layout(I.image_rootfs(rootfs_template, d), d / "layout")
    shutil.rmtree(d, ignore_errors=True)


def _bundle_of(banner: str) -> str:
    m = re.search(r"^bundle (/\S+/bundle), container ", banner, re.M)
    assert m, banner
    return m.group(1)


def test_debug_image_steps_the_images_process(session, layout, ocish):
    s = session(None, "--image", f"oci:{layout}:{I.TAG}")
    assert f"building a bundle from image oci:{layout}:{I.TAG}" in s.banner
    bundle = _bundle_of(s.banner)
    assert os.path.basename(os.path.dirname(bundle)).startswith("ocish-debug-")
    assert "setup complete" in s.cmd("continue")
    pid = s.json("state")["pid"]
    # stage user applied the image's User, resolved in the image's /etc/passwd and /etc/group
    assert status_field(pid, "Uid").split() == [str(I.UID)] * 4
    assert status_field(pid, "Gid").split() == [str(I.GID)] * 4
    assert status_field(pid, "Groups").split() == [str(I.EXTRA_GID)]
    # its cwd is the image's WorkingDir in the bundle's rootfs (the same inode)
    cwd, want = os.stat(f"/proc/{pid}/cwd"), os.stat(f"{bundle}/rootfs{I.WORKDIR}")
    assert (cwd.st_dev, cwd.st_ino) == (want.st_dev, want.st_ino)
    assert s.json("inspect proc --json")["cwd"] == I.WORKDIR
    script = os.path.join(os.path.dirname(str(layout)), f"{s.cid}.ocish")
    s.cmd(f"record {script}")  # the bundle is built again from the image, by `bundle init`
    with open(script) as f:
        assert [ln for ln in f.read().splitlines() if not ln.startswith("#")] == [
            f"bundle init --image oci:{layout}:{I.TAG}", "load $bundle", "continue"]
    r = ocish("replay", script, timeout=120)
    assert r.returncode == 0 and "not ok" not in r.stdout, r.stdout + r.stderr
    out = s.cmd("start")
    assert "started container" in out
    deadline = time.monotonic() + 10  # the entrypoint reports and exits: then quit
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    out += s.quit()
    got = I.probe_lines(out)
    assert got.get("args") == "from-cmd" and got.get("greeting") == I.GREETING, out
    assert got["Uid"].split() == [str(I.UID)] * 4 and got["cwd"] == I.WORKDIR, out
    assert not os.path.exists(os.path.dirname(bundle))  # the temporary bundle went at quit


def test_keep_bundle_and_bad_reference(session, layout, ocish):
    s = session(None, "--image", f"oci:{layout}", "--keep-bundle")
    bundle = _bundle_of(s.banner)
    try:
        assert f"bundle {bundle} is kept at quit (--keep-bundle)" in s.banner
        s.quit()
        assert sorted(os.listdir(bundle)) == ["config.json", "rootfs"]
    finally:
        shutil.rmtree(os.path.dirname(bundle), ignore_errors=True)
    before = set(os.listdir("/tmp"))
    r = ocish("debug", "--image", f"oci:{layout}:nosuchtag", "--plain")
    assert (r.returncode, r.stderr.splitlines()[-1]) == (
        1, f'ocish: image oci:{layout}:nosuchtag: skopeo copy: no descriptor found for '
           'reference "nosuchtag"')
    assert not {d for d in set(os.listdir("/tmp")) - before if d.startswith("ocish-debug-")}
    r = ocish("debug", "somebundle", "--image", f"oci:{layout}")
    assert (r.returncode, r.stderr) == (1, "ocish: ocish debug: give BUNDLE or --image REF, "
                                           "not both\n")
