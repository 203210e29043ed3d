"""An image's configuration -> config.json, as the OCI image spec's conversion.md says and
umoci's converter (oci/config/convert/runtime.go) does, on top of ocish's default spec (runc
spec's) with a writable rootfs:

    Config.Entrypoint + Config.Cmd  process.args (a command given by the user replaces Cmd, as
                                    `docker run IMAGE CMD` does)
    Config.Env                      process.env; PATH from the default spec when the image sets
                                    none (podman's, runc spec's value), TERM=xterm with a terminal
    Config.WorkingDir               process.cwd ("/" when unset)
    Config.User                     process.user uid, gid, additionalGids, resolved in the
                                    rootfs's /etc/passwd and /etc/group the way runc's
                                    libcontainer/user.GetExecUser does (HOME is left to the
                                    runtime: runc and ocish set it from /etc/passwd at start)
    Config.Labels, os, architecture, variant, author, created, Config.StopSignal
                                    annotations (org.opencontainers.image.*; a label wins over
                                    the implicit value of the same key, conversion.md)
    Config.ExposedPorts             annotation org.opencontainers.image.exposedPorts ("80/tcp,
                                    53/udp"): a bundle publishes no ports; its network
                                    namespace is new and empty
    Config.Volumes                  a tmpfs mount at each (umoci's choice: rw, nosuid, nodev,
                                    noexec), so that writes there stay out of the rootfs;
                                    unlike podman's volumes they start empty
"""
from __future__ import annotations

import json
import os

from runtime.errors import OcishError
from runtime.linux.paths import secure_join

ANNOTATIONS = {"os": "org.opencontainers.image.os",
               "architecture": "org.opencontainers.image.architecture",
               "variant": "org.opencontainers.image.variant",
               "author": "org.opencontainers.image.author",
               "created": "org.opencontainers.image.created"}
STOP_SIGNAL = "org.opencontainers.image.stopSignal"
EXPOSED_PORTS = "org.opencontainers.image.exposedPorts"
REF_NAME = "org.opencontainers.image.ref.name"
VOLUME_OPTIONS = ["rw", "nosuid", "nodev", "noexec", "relatime"]  # umoci's
MAX_ID = 2 ** 31 - 1   # libcontainer/user's maxID
_BLOB_MAX = 64 << 20   # an index, manifest or config larger than this is not an image's


# --- reading the image's configuration from an OCI layout ---------------------------------------

def _blob(layout: str, descriptor: dict, what: str) -> dict:
    digest = descriptor.get("digest") if isinstance(descriptor, dict) else None
    if not isinstance(digest, str) or ":" not in digest or "/" in digest:
        raise OcishError(f"image layout {layout}: {what} has no valid digest")
    algo, _, hexdigest = digest.partition(":")
    return _json(os.path.join(layout, "blobs", algo, hexdigest), f"{what} {digest}")


def _json(path: str, what: str) -> dict:
    try:
        with open(path, "rb") as f:
            data = f.read(_BLOB_MAX + 1)
        doc = json.loads(data) if len(data) <= _BLOB_MAX else None
    except (OSError, ValueError) as e:
        raise OcishError(f"image {what}: {getattr(e, 'strerror', None) or e}".lower()) from None
    if not isinstance(doc, dict):
        raise OcishError(f"image {what}: not a JSON object")
    return doc


def image_config(layout: str, tag: str) -> dict:
    """The image configuration (application/vnd.oci.image.config.v1+json) of the manifest
    tagged `tag` in the OCI image layout directory `layout`."""
    index = _json(os.path.join(layout, "index.json"), f"layout {layout} index.json")
    for desc in index.get("manifests") or []:
        if isinstance(desc, dict) and (desc.get("annotations") or {}).get(REF_NAME) == tag:
            manifest = _blob(layout, desc, "manifest")
            config = manifest.get("config")
            if not isinstance(config, dict):
                raise OcishError(f"image layout {layout}: manifest {desc.get('digest')} has "
                                 "no config (an image index, not one image?)")
            return _blob(layout, config, "config")
    raise OcishError(f"image layout {layout}: no manifest tagged {tag}")


# --- Config.User ---------------------------------------------------------------------------------

def _entries(rootfs: str, path: str, fields: int) -> list[list[str]] | None:
    """The colon-separated lines of /etc/passwd or /etc/group inside `rootfs` (symlinks resolved
    inside it), each with at least `fields` fields; None when the file is missing, as runc's
    GetExecUserPath then parses ids numerically only."""
    try:
        with open(secure_join(rootfs, path), "rb") as f:
            data = f.read(_BLOB_MAX)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    except OSError as e:
        raise OcishError(f"image rootfs {path}: {(e.strerror or str(e)).lower()}") from None
    rows = []
    for line in data.decode(errors="surrogateescape").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            row = line.split(":")
            if len(row) >= fields:
                rows.append(row)
    return rows


def _number(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _in_range(value: int, what: str) -> int:
    if value > MAX_ID:
        raise OcishError(f"image user: {what} {value} is out of range (0 to {MAX_ID})")
    return value


def exec_user(spec: str, rootfs: str) -> tuple[int, int, list[int]]:
    """Config.User ("user", "uid", "user:group", "uid:gid", ...) -> (uid, gid, additionalGids),
    as runc's libcontainer/user.GetExecUser resolves it against the rootfs's files: a user
    found in /etc/passwd (by name, or by uid when numeric) gives its uid and primary gid and,
    unless a group is named, the groups of /etc/group listing it; a numeric user not found is
    taken as it is with gid 0; a name not found is an error, as is a group name."""
    user_arg, _, group_arg = spec.partition(":")
    uid, gid, sgids, matched = 0, 0, [], ""
    passwd = _entries(rootfs, "/etc/passwd", 7)
    uid_arg = _number(user_arg)
    if user_arg:
        found = [r for r in passwd or []
                 if (uid_arg is not None and _number(r[2]) == uid_arg)
                 or (uid_arg is None and r[0] == user_arg)]
        if found and _number(found[0][2]) is not None and _number(found[0][3]) is not None:
            matched, uid, gid = found[0][0], int(found[0][2]), int(found[0][3])
        elif uid_arg is None:
            raise OcishError(f"image user {spec!r}: no user {user_arg} in the image's "
                             "/etc/passwd" if passwd is not None else
                             f"image user {spec!r}: the image has no /etc/passwd to find "
                             f"{user_arg} in")
        else:
            uid = _in_range(uid_arg, "uid")
    if group_arg or matched:
        groups = _entries(rootfs, "/etc/group", 4) or []
        if group_arg:
            gid_arg = _number(group_arg)
            found = [g for g in groups if _number(g[2]) is not None
                     and (gid_arg == int(g[2]) if gid_arg is not None else g[0] == group_arg)]
            if found:
                gid = int(found[0][2])
            elif gid_arg is None:
                raise OcishError(f"image user {spec!r}: no group {group_arg} in the image's "
                                 "/etc/group")
            else:
                gid = _in_range(gid_arg, "gid")
        else:
            sgids = [int(g[2]) for g in groups
                     if _number(g[2]) is not None and matched in g[3].split(",")]
    return uid, gid, sgids


# --- the conversion ------------------------------------------------------------------------------

def _set_env(env: list[str], name: str, value: str) -> None:
    if not any(e.partition("=")[0] == name for e in env):
        env.append(f"{name}={value}")


def _strings(value, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise OcishError(f"image config {what}: not a list of strings")
    return list(value)


def to_spec(image: dict, rootfs: str, base: dict, command: list[str] | None = None,
            terminal: bool = False) -> dict:
    """`base` (a default spec, changed in place and returned) with the image configuration
    `image` applied, as the module's table says; `rootfs` is the unpacked rootfs, for the user.
    `command` replaces Config.Cmd. OcishError when the image has nothing to run, is not a
    Linux image, or names a user its rootfs does not have."""
    os_name = image.get("os") or "linux"
    if os_name != "linux":
        raise OcishError(f"image os is {os_name}: only linux images run here")
    cfg = image.get("config") or {}
    if not isinstance(cfg, dict):
        raise OcishError("image config: config is not an object")
    args = _strings(cfg.get("Entrypoint"), "Entrypoint") + (
        list(command) if command else _strings(cfg.get("Cmd"), "Cmd"))
    if not args:
        raise OcishError("image has no entrypoint and no cmd: give the command after --")
    process = base["process"]
    process["args"] = args
    process["terminal"] = bool(terminal)
    env = _strings(cfg.get("Env"), "Env")
    for entry in env:
        if not entry.partition("=")[0] or "=" not in entry:
            raise OcishError(f"image config Env: {entry!r} is not NAME=value")
    for entry in process.get("env") or []:  # the default spec's PATH (and TERM with -t)
        name, _, value = entry.partition("=")
        if name == "PATH" or (name == "TERM" and terminal):
            _set_env(env, name, value)
    process["env"] = env
    workdir = cfg.get("WorkingDir") or "/"
    if not isinstance(workdir, str):
        raise OcishError("image config WorkingDir: not a string")
    process["cwd"] = os.path.normpath(os.path.join("/", workdir))
    user_spec = cfg.get("User") or ""
    if not isinstance(user_spec, str):
        raise OcishError("image config User: not a string")
    uid, gid, sgids = exec_user(user_spec, rootfs)
    process["user"] = {"uid": uid, "gid": gid}
    if sgids:
        process["user"]["additionalGids"] = sgids
    base["root"]["readonly"] = False   # an image's programs write where they like (podman, umoci)
    base["annotations"] = _annotations(image, cfg)
    volumes = cfg.get("Volumes") or {}
    if not isinstance(volumes, dict):
        raise OcishError("image config Volumes: not an object")
    for dest in sorted(volumes):
        base["mounts"].append({"destination": os.path.normpath(os.path.join("/", dest)),
                               "type": "tmpfs", "source": "tmpfs",
                               "options": list(VOLUME_OPTIONS)})
    return base


def _annotations(image: dict, cfg: dict) -> dict[str, str]:
    out: dict[str, str] = {}
    for field, key in ANNOTATIONS.items():
        if isinstance(image.get(field), str) and image[field]:
            out[key] = image[field]
    if isinstance(cfg.get("StopSignal"), str) and cfg["StopSignal"]:
        out[STOP_SIGNAL] = cfg["StopSignal"]
    ports = cfg.get("ExposedPorts") or {}
    if isinstance(ports, dict) and ports:
        out[EXPOSED_PORTS] = ",".join(sorted(ports))
    labels = cfg.get("Labels") or {}
    if isinstance(labels, dict):  # labels win (conversion.md, Annotations)
        out.update({k: v for k, v in labels.items() if isinstance(k, str) and isinstance(v, str)})
    return out
