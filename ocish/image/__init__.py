"""Bundles from container images: `ocish bundle init DIR --image REF`, `ocish debug --image REF`.

    ref.py      REF -> the image's source: an OCI layout, a docker/oci archive, podman's or
                Docker's store (names resolved to image ids by podman/docker themselves)
    tools.py    running skopeo, umoci, podman and docker: one line per failure
    convert.py  the image's config -> config.json (image-spec conversion.md, umoci's converter)
    build.py    skopeo copy to a private OCI layout, umoci raw unpack, config.json: the bundle

Nothing here is imported by the runtime's commands: only `bundle init --image` and `debug
--image` load it.
"""
