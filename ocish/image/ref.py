"""Image references: what `--image REF` names, and the `skopeo copy` source that reads it.

    oci:PATH[:TAG]             an OCI image layout (as `skopeo copy ... oci:PATH:TAG` or umoci
                               write it); without TAG, the layout's only image
    oci-archive:PATH[:REF]     a tar of an OCI layout (`podman save --format oci-archive`)
    docker-archive:PATH[:REF]  a `docker save` / `podman save` tar
    PATH                       an existing directory holding an OCI layout (oci-layout file), or
                               a tar file: docker-archive when it has manifest.json (`docker
                               save`, whose Docker 25+ tars are OCI layouts too), else
                               oci-archive when it has oci-layout
    podman:NAME                an image in podman's store (containers-storage:NAME is the same)
    docker:NAME                an image in the Docker daemon's store (docker-daemon:NAME too;
                               the daemon at $DOCKER_HOST when set, Docker contexts aside)
    NAME                       podman's store first, then Docker's

A store's NAME is resolved to an image id by `podman image inspect` / `docker image inspect`
themselves, so that short names, tags and ids mean what they mean to `podman run` / `docker
run` (skopeo's containers-storage: would read a short name as docker.io/library/NAME). Registry
references (docker://, a host name with a port) are refused: ocish works offline; pull first.
"""
from __future__ import annotations

import os
import tarfile
from dataclasses import dataclass

from ocish.image import tools
from runtime.errors import OcishError

FILE_TRANSPORTS = ("oci", "oci-archive", "docker-archive")
STORES = {"podman": "podman", "containers-storage": "podman", "docker": "docker",
          "docker-daemon": "docker"}
INSPECT_TIMEOUT = 60.0


@dataclass(frozen=True)
class Source:
    """Where an image is: `ref` as the user wrote it, `kind` (oci, oci-archive, docker-archive,
    podman, docker), `skopeo`, the `skopeo copy` source transport:reference, and `flags`, what
    `skopeo copy` needs besides to read it."""
    ref: str
    kind: str
    skopeo: str
    flags: tuple[str, ...] = ()


def parse(ref: str) -> Source | tuple[str, str]:
    """A Source for file references; ("podman"|"docker"|"", NAME) for a name in a store ("": the
    bare NAME, podman's store first). OcishError for a reference that is no image."""
    if not ref or ref != ref.strip() or any(c in ref for c in "\0\n\t "):
        raise OcishError(f"bad image reference {ref!r}: no spaces, not empty")
    if "://" in ref:
        raise OcishError(f"image {ref}: registries are not read (ocish works offline): pull it "
                         "first (podman pull, or skopeo copy REF oci:DIR:TAG), then give "
                         "podman:NAME or oci:DIR:TAG")
    scheme, colon, rest = ref.partition(":")
    if colon and scheme in FILE_TRANSPORTS:
        if not rest or rest.startswith(":"):
            raise OcishError(f"image {ref}: no path after {scheme}:")
        return Source(ref, scheme, ref)
    if colon and scheme in STORES:
        if not rest:
            raise OcishError(f"image {ref}: no image name after {scheme}:")
        return STORES[scheme], rest
    if os.path.lexists(ref):
        return _path_source(ref)
    if ref.startswith(("/", "./", "../", "~")) or ref.endswith((".tar", ".tar.gz", ".tgz")):
        raise OcishError(f"image {ref}: no such file or directory")
    if ref.startswith("-"):
        raise OcishError(f"bad image reference {ref!r}")
    return "", ref


def _path_source(path: str) -> Source:
    """An existing PATH: an OCI layout directory, or a docker-archive / oci-archive tar."""
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "oci-layout")):
            raise OcishError(f"image {path}: a directory without an oci-layout file is not an "
                             "OCI image layout")
        return Source(path, "oci", f"oci:{os.path.abspath(path)}")
    names = set()
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if name in ("manifest.json", "oci-layout"):
                    names.add(name)
                if "manifest.json" in names:
                    break
    except OSError as e:
        raise OcishError(f"image {path}: {(e.strerror or str(e)).lower()}") from None
    except tarfile.TarError:
        raise OcishError(f"image {path}: not a tar file (docker save, podman save, an OCI "
                         "archive) nor an OCI layout directory") from None
    if "manifest.json" in names:
        return Source(path, "docker-archive", f"docker-archive:{os.path.abspath(path)}")
    if "oci-layout" in names:
        return Source(path, "oci-archive", f"oci-archive:{os.path.abspath(path)}")
    raise OcishError(f"image {path}: a tar without manifest.json (docker save) or oci-layout "
                     "(OCI archive)")


# how `podman image inspect` / `docker image inspect` say the store has no such image
NOT_FOUND = ("image not known", "no such image")


def _store_id(ref: str, store: str, name: str) -> str:
    """The image id podman or Docker gives NAME (their own short-name and tag rules)."""
    where = f"image {ref}: {'podman' if store == 'podman' else 'Docker'}'s store"
    tools.need(store, where)
    try:
        out = tools.run([store, "image", "inspect", "--format", "{{.Id}}", name], where,
                        timeout=INSPECT_TIMEOUT)
    except OcishError as e:
        if any(s in str(e).lower() for s in NOT_FOUND):
            raise OcishError(f"{where} has no image {name}") from None
        raise
    ids = out.split()
    if len(ids) != 1:
        raise OcishError(f"{where}: {store} image inspect printed {out.strip()!r}, not one id")
    return ids[0]


def _store_source(ref: str, store: str, name: str) -> Source:
    image_id = _store_id(ref, store, name)
    if store == "podman":  # containers-storage:ID, in the storage podman is configured with
        return Source(ref, "podman", f"containers-storage:{image_id.removeprefix('sha256:')}")
    # docker-daemon:algo:digest is an image id (skopeo(1), containers-transports(5))
    if ":" not in image_id:
        image_id = f"sha256:{image_id}"
    # skopeo does not read DOCKER_HOST (containers/image asks for the daemon's host
    # explicitly): the daemon `docker image inspect` answered from is named to it
    host = os.environ.get("DOCKER_HOST")
    return Source(ref, "docker", f"docker-daemon:{image_id}",
                  ("--src-daemon-host", host) if host else ())


def resolve(ref: str) -> Source:
    """The Source `--image REF` names (see the module's table); OcishError, one line, when REF
    is malformed, names no image, or the store's tool is missing."""
    got = parse(ref)
    if isinstance(got, Source):
        return got
    store, name = got
    if store:
        return _store_source(ref, store, name)
    errors = []
    for store in ("podman", "docker"):
        try:
            return _store_source(ref, store, name)
        except OcishError as e:  # "image REF: podman's store has no image NAME" -> the rest
            errors.append(str(e).removeprefix(f"image {ref}: "))
    raise OcishError(f"image {ref}: {'; '.join(errors)}")
