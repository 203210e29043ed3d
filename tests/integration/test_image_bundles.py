"""`ocish bundle init DIR --image REF`: bundles from real images, run with ocish, checked from
inside the container: the image's own entrypoint runs, with the image's Env, WorkingDir and User
(resolved in the image's /etc/passwd and /etc/group), and its volume is a tmpfs.

Images are built offline from the busybox rootfs (tests/images.py): an OCI layout with umoci,
and a podman image (podman import into a private vfs store) saved as docker-archive and
oci-archive. Everything is removed at the end, pass or fail.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid

import pytest

from tests import images as I
from tests.conftest import cid, needs_root

pytestmark = [needs_root, I.NEEDS_TOOLS]


@pytest.fixture(scope="module")
def image_dir(rootfs_template, tmp_path_factory):
    d = tmp_path_factory.mktemp("images")
    rootfs = I.image_rootfs(rootfs_template, d)
    I.oci_layout(rootfs, d / "layout")
    I.rootfs_tar(rootfs, d / "rootfs.tar")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def podman_image(image_dir, tmp_path_factory):
    """(name, PodmanStore, {"docker-archive": tar, "oci-archive": tar}) of a podman image."""
    if not shutil.which("podman"):
        pytest.skip("podman is not installed (apt-get install podman)")
    store = I.PodmanStore(tmp_path_factory.mktemp("podman"))
    name = f"ocish-test-{uuid.uuid4().hex[:8]}"
    try:
        store.import_image(image_dir / "rootfs.tar", name, "hello-from-podman")
        saved = {fmt: store.save(name, image_dir / f"{fmt}.tar", fmt)
                 for fmt in ("docker-archive", "oci-archive")}
        yield name, store, saved
    finally:
        store.close()


def _run(ocish, bundle) -> dict[str, str]:
    r = ocish("run", "-b", str(bundle), cid(), check=True)
    return I.probe_lines(r.stdout)


def _expect_image_process(got: dict, args: str, greeting: str) -> None:
    assert got["args"] == args
    assert got["greeting"] == greeting
    assert got["cwd"] == I.WORKDIR
    assert got["Uid"] == " ".join([str(I.UID)] * 4)
    assert got["Gid"] == " ".join([str(I.GID)] * 4)
    assert got["Groups"] == str(I.EXTRA_GID)   # the user's groups in the image's /etc/group
    assert got["home"] == "/home/app"          # set by the runtime from the image's /etc/passwd


def test_oci_layout_runs_the_images_entrypoint(ocish, image_dir, tmp_path):
    bundle = tmp_path / "b"
    r = ocish("bundle", "init", str(bundle), "--image", f"oci:{image_dir / 'layout'}:{I.TAG}",
              check=True)
    assert r.stdout.strip() == str(bundle)
    assert sorted(os.listdir(bundle)) == ["config.json", "rootfs"]  # no layout left behind
    got = _run(ocish, bundle)
    _expect_image_process(got, "from-cmd", I.GREETING)
    assert got["volume"] == "/data tmpfs"  # Config.Volumes: a tmpfs, as umoci's converter
    spec = json.loads((bundle / "config.json").read_text())
    assert spec["process"]["user"] == {"uid": I.UID, "gid": I.GID, "additionalGids": [I.EXTRA_GID]}
    ann = spec["annotations"]
    assert ann["org.opencontainers.image.stopSignal"] == "SIGQUIT"
    assert ann["org.opencontainers.image.exposedPorts"] == "8080/tcp"
    assert ann["org.example.role"] == "probe"
    assert spec["root"] == {"path": "rootfs", "readonly": False}


def test_command_replaces_cmd_and_layout_without_tag(ocish, image_dir, tmp_path):
    """A command after -- replaces Cmd, not Entrypoint (docker run IMAGE CMD); the layout's
    only image needs no tag, and a layout directory is a reference by itself."""
    for n, ref in enumerate((f"oci:{image_dir / 'layout'}", str(image_dir / "layout"))):
        bundle = tmp_path / f"b{n}"
        ocish("bundle", "init", str(bundle), "--image", ref, "--", "given", "words", check=True)
        _expect_image_process(_run(ocish, bundle), "given words", I.GREETING)


@pytest.mark.parametrize("how", ["podman:NAME", "NAME", "docker-archive", "oci-archive",
                                 "docker-archive:PATH"])
def test_podman_image_and_saved_archives(ocish, podman_image, tmp_path, monkeypatch, how):
    name, store, saved = podman_image
    for key, value in store.env.items():  # ocish (and the skopeo it runs) see the private store
        monkeypatch.setenv(key, value)
    ref = {"podman:NAME": f"podman:{name}", "NAME": name,
           "docker-archive": str(saved["docker-archive"]),
           "oci-archive": str(saved["oci-archive"]),
           "docker-archive:PATH": f"docker-archive:{saved['docker-archive']}"}[how]
    bundle = tmp_path / "b"
    ocish("bundle", "init", str(bundle), "--image", ref, check=True)
    _expect_image_process(_run(ocish, bundle), "from-podman", "hello-from-podman")


def test_bad_references_one_line_nothing_left(ocish, image_dir, tmp_path, monkeypatch):
    layout = image_dir / "layout"
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = {
        f"oci:{layout}:nosuchtag": f'image oci:{layout}:nosuchtag: skopeo copy: no descriptor '
                                   'found for reference "nosuchtag"',
        f"oci:{tmp_path}/none": f"image oci:{tmp_path}/none: skopeo copy: open "
                                f"{tmp_path}/none/index.json: no such file or directory",
        str(tmp_path / "none.tar"): f"image {tmp_path}/none.tar: no such file or directory",
        str(empty): f"image {empty}: a directory without an oci-layout file is not an OCI "
                    "image layout",
        "/etc/hostname": "image /etc/hostname: not a tar file (docker save, podman save, an OCI "
                         "archive) nor an OCI layout directory",
        "docker://busybox": "image docker://busybox: registries are not read (ocish works "
                            "offline): pull it first (podman pull, or skopeo copy REF "
                            "oci:DIR:TAG), then give podman:NAME or oci:DIR:TAG",
        "oci:": "image oci:: no path after oci:",
        "a b": "bad image reference 'a b': no spaces, not empty",
    }
    for ref, error in cases.items():
        bundle = tmp_path / "b"
        r = ocish("bundle", "init", str(bundle), "--image", ref)
        assert (r.returncode, r.stdout, r.stderr) == (1, "", f"ocish: {error}\n"), ref
        assert not bundle.exists(), ref
    # a tool that is not installed: named, with its Debian package
    monkeypatch.setenv("PATH", "/nonexistent")
    r = ocish("bundle", "init", str(tmp_path / "b"), "--image", f"oci:{layout}")
    assert (r.returncode, r.stderr) == (1, "ocish: bundle init --image needs skopeo, which is "
                                           "not installed (apt-get install skopeo)\n")


def test_unknown_user_is_an_error(ocish, image_dir, tmp_path):
    """conversion.md: a Config.User the image's rootfs does not have is an error (runc's
    GetExecUser: "unable to find user"); the half-built bundle goes."""
    layout = tmp_path / "layout"
    shutil.copytree(image_dir / "layout", layout)
    I.run(["umoci", "config", "--image", f"{layout}:{I.TAG}", "--config.user", "ghost:extra"])
    bundle = tmp_path / "b"
    r = ocish("bundle", "init", str(bundle), "--image", f"oci:{layout}:{I.TAG}")
    assert (r.returncode, r.stderr) == (1, "ocish: image user 'ghost:extra': no user ghost in "
                                           "the image's /etc/passwd\n")
    assert not bundle.exists()
