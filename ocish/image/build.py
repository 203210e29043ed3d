"""`ocish bundle init DIR --image REF`: an OCI bundle from an image, with the field's tools.

    1. ref.resolve(REF): the `skopeo copy` source (a store's NAME resolved to its image id)
    2. skopeo copy SOURCE oci:DIR/.image.XXXX/layout:ocish   one image (this machine's platform
       from a multi-platform index), in a private OCI layout, whatever the source format
    3. umoci raw unpack --image .../layout:ocish STAGING     the layers, applied in order with
       whiteouts, owners and modes kept (--rootless when not root)
    4. config.json: the image's configuration on the default spec (convert.py)
    5. STAGING becomes DIR/rootfs (bundle.assemble); the private layout is removed

A failure at any step leaves no rootfs, layout or DIR (when this call made it) behind.
"""
from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile

from ocish.bundle import HOSTNAME, assemble
from ocish.image import convert, ref as imageref, tools
from runtime.defaults import default_spec
from runtime.errors import OcishError

TAG = "ocish"
# platform.machine() -> the GOARCH names image configs use (image-spec config.md)
GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
          "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def build(directory: str, ref: str, command: list[str] | None = None, terminal: bool = False,
          force: bool = False, rootless: bool = False) -> str:
    """Build the bundle `directory` from the image `ref` (see ocish.image.ref) and return its
    absolute path. `command` replaces the image's Cmd; `rootless` starts from the spec `runc
    spec --rootless` writes. OcishError (one line) when REF names no image, a tool is missing
    or fails, or the image cannot be converted."""
    why = "bundle init --image"
    skopeo, umoci = tools.need("skopeo", why), tools.need("umoci", why)
    source = imageref.resolve(ref)

    def fill(staging: str) -> dict:
        work = tempfile.mkdtemp(prefix=".image.", dir=os.path.dirname(staging))
        try:
            layout = os.path.join(work, "layout")
            # --quiet: skopeo's progress lines are for people; we report one line at the end
            tools.run([skopeo, "copy", "--quiet", *source.flags, source.skopeo,
                       f"oci:{layout}:{TAG}"],
                      f"image {ref}: skopeo copy")
            image = convert.image_config(layout, TAG)
            unpack = [umoci, "raw", "unpack"] + (["--rootless"] if os.geteuid() != 0 else [])
            tools.run(unpack + ["--image", f"{layout}:{TAG}", staging],
                      f"image {ref}: umoci raw unpack")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        _warn_architecture(ref, image)
        spec = default_spec(rootless=rootless)
        spec["hostname"] = HOSTNAME
        return convert.to_spec(image, staging, spec, command, terminal)
    return assemble(directory, force, fill)


def _warn_architecture(ref: str, image: dict) -> None:
    """A foreign-architecture image unpacks, but its programs fail at execve (ENOEXEC): said
    now, on stderr, so that the later "exec format error" is no surprise."""
    arch, here = image.get("architecture"), GOARCH.get(platform.machine(), platform.machine())
    if isinstance(arch, str) and arch and arch != here:
        print(f"ocish: warning: image {ref} is for {arch}, this machine is {here}: its "
              "programs will not run here", file=sys.stderr)
