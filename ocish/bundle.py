"""`ocish bundle init`: build a small, runnable OCI bundle to experiment with.

    <directory>/
        config.json     default_spec() with process.args, process.terminal and hostname "ocish"
        rootfs/
            bin/        busybox + one relative symlink per applet, or copied host binaries
            lib*/ ...   (host-binary rootfs only) the shared libraries and the dynamic loader,
                        each at the same absolute path it has on the host
            dev proc sys tmp(1777) etc root run var
            etc/passwd etc/group etc/hostname etc/hosts

Where the rootfs comes from:

1. Debian's busybox-static (`/bin/busybox`, a statically linked ELF: no PT_INTERP program header,
   read by ocish/elf.py, never by running `file`) is copied to `bin/busybox` and every applet from
   `busybox --list` becomes a symlink `bin/<applet> -> busybox`.
2. Otherwise a handful of host binaries are copied into `bin/` together with every shared library
   `ldd` reports and the ELF's own interpreter, at the paths the host uses, so that the loader finds
   them inside the container exactly where it looks for them on the host.

The rootfs is assembled in a temporary directory beside its final place and renamed into place only
when complete, so a failure leaves no half-built bundle behind.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from typing import Callable

from ocish import elf
from runtime.defaults import default_spec
from runtime.errors import OcishError

HOSTNAME = "ocish"
BUSYBOX = "/bin/busybox"
AUTO = "auto"

# Copied (from HOST_PATH) when building a rootfs from host binaries; `sh` is the only one required.
HOST_BINARIES = ("sh", "ls", "cat", "echo", "true", "false", "sleep", "id", "hostname", "mount",
                 "ps", "env", "mkdir")
REQUIRED_BINARIES = ("sh",)
# A fixed search path, so that a virtualenv or ~/bin on the caller's PATH never leaks into a rootfs.
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

DIRS = {"dev": 0o755, "proc": 0o555, "sys": 0o555, "tmp": 0o1777, "etc": 0o755, "root": 0o700,
        "run": 0o755, "var": 0o755, "bin": 0o755}

PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
GROUP = "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n"
HOSTS = ("127.0.0.1\tlocalhost\n"
         "::1\tlocalhost ip6-localhost ip6-loopback\n"
         f"127.0.1.1\t{HOSTNAME}\n")


# --- ELF ------------------------------------------------------------------------------------------

def elf_interpreter(path: str) -> str | None:
    """The PT_INTERP path of the ELF file at `path`, or None when it has none (statically linked).

    Raises ValueError when the file is not a well-formed ELF executable.
    """
    return elf.read(path).interpreter


def is_static_elf(path: str) -> bool:
    """True when `path` is a readable ELF executable without a PT_INTERP program header."""
    try:
        return elf_interpreter(path) is None
    except (OSError, ValueError):
        return False


def find_busybox(path: str = BUSYBOX) -> str | None:
    """`path` when it is a statically linked busybox (Debian's busybox-static), else None."""
    if os.path.isfile(path) and os.access(path, os.X_OK) and is_static_elf(path):
        return path
    return None


# --- rootfs sources -------------------------------------------------------------------------------

def busybox_applets(busybox: str) -> list[str]:
    """The applet names `busybox --list` prints (without busybox itself or unsafe names)."""
    try:
        out = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True,
                             timeout=30).stdout
    except subprocess.CalledProcessError as e:
        why = (e.stderr or "").strip().splitlines()
        raise OcishError(f"{busybox} --list failed: {why[-1] if why else f'exit status {e.returncode}'}")
    except (OSError, subprocess.TimeoutExpired) as e:
        raise OcishError(f"{busybox} --list failed: {e}")
    names = []
    for line in out.splitlines():
        name = line.strip()
        if name and name not in (".", "..", "busybox") and "/" not in name and "\0" not in name:
            names.append(name)
    return names


def shared_libraries(binary: str) -> list[str]:
    """Absolute paths of the shared libraries `binary` needs, per `ldd`, the loader included.

    An empty list for a static binary; OcishError when a library is missing.
    """
    ldd = shutil.which("ldd", path=HOST_PATH) or shutil.which("ldd")
    if ldd is None:
        raise OcishError(f"cannot copy {binary}: ldd not found")
    try:
        res = subprocess.run([ldd, binary], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise OcishError(f"ldd {binary}: {e}")
    text = res.stdout + res.stderr
    if res.returncode != 0:
        if "not a dynamic executable" in text or "statically linked" in text:
            return []
        last = text.strip().splitlines()
        raise OcishError(f"ldd {binary}: {last[-1].strip() if last else f'exit status {res.returncode}'}")
    libs: list[str] = []
    for line in res.stdout.splitlines():
        line = line.strip()
        if not line or "statically linked" in line:
            continue
        if "=>" in line:
            name, _, rest = line.partition("=>")
            rest = rest.strip()
            if rest.startswith("not found"):
                raise OcishError(f"cannot copy {binary}: library {name.strip()} not found")
            path = rest.split(" (", 1)[0].strip()
        else:   # "/lib64/ld-linux-x86-64.so.2 (0x...)" or "linux-vdso.so.1 (0x...)"
            path = line.split(" (", 1)[0].strip()
        if path.startswith("/") and path not in libs:
            libs.append(path)
    return libs


def _copy_file(src: str, dst: str, mode: int) -> None:
    """Copy the contents of `src` (following symlinks) to `dst`, with `mode` (no set-id bits)."""
    os.makedirs(os.path.dirname(dst), mode=0o755, exist_ok=True)
    shutil.copyfile(src, dst)
    os.chmod(dst, mode)


def _inside(rootfs: str, host_path: str) -> str:
    rel = os.path.normpath("/" + host_path).lstrip("/")
    if not rel:
        raise OcishError(f"cannot copy {host_path!r} into the rootfs: not a file path")
    return os.path.join(rootfs, rel)


def _install_busybox(rootfs: str, busybox: str) -> None:
    bindir = os.path.join(rootfs, "bin")
    _copy_file(busybox, os.path.join(bindir, "busybox"), 0o755)
    for applet in busybox_applets(busybox):
        link = os.path.join(bindir, applet)
        if not os.path.lexists(link):
            os.symlink("busybox", link)


def _install_host_binaries(rootfs: str) -> None:
    bindir = os.path.join(rootfs, "bin")
    needed: list[str] = []
    for name in HOST_BINARIES:
        src = shutil.which(name, path=HOST_PATH)
        if src is None:
            if name in REQUIRED_BINARIES:
                raise OcishError(f"cannot build a rootfs from host binaries: {name} not found in "
                                 f"{HOST_PATH}")
            continue
        src = os.path.realpath(src)
        _copy_file(src, os.path.join(bindir, name), 0o755)
        try:
            interp = elf_interpreter(src)
        except ValueError:
            interp = None   # a script: whatever it needs must be in the list itself
        for lib in ([interp] if interp else []) + shared_libraries(src):
            if lib not in needed:
                needed.append(lib)
    for lib in needed:
        dst = _inside(rootfs, lib)
        if not os.path.lexists(dst):
            _copy_file(lib, dst, 0o755)


def _populate_skeleton(rootfs: str) -> None:
    for name, mode in DIRS.items():
        path = os.path.join(rootfs, name)
        os.makedirs(path, exist_ok=True)
        os.chmod(path, mode)   # explicit: mkdir's mode is filtered by the umask, 1777 needs chmod
    etc = os.path.join(rootfs, "etc")
    for name, content in (("passwd", PASSWD), ("group", GROUP), ("hostname", HOSTNAME + "\n"),
                          ("hosts", HOSTS)):
        path = os.path.join(etc, name)
        with open(path, "w") as f:
            f.write(content)
        os.chmod(path, 0o644)


# --- bundle ---------------------------------------------------------------------------------------

def _mount_points_under(path: str) -> list[str]:
    """Mount points at or below `path` (so that replacing it never descends into a mount)."""
    real = os.path.realpath(path)
    found = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                if len(fields) < 5:
                    continue
                mp = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
                if mp == real or mp.startswith(real.rstrip("/") + "/"):
                    found.append(mp)
    except OSError:
        pass
    return found


def _remove_old(path: str) -> None:
    if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
        os.unlink(path)
    elif os.path.isdir(path):
        mounts = _mount_points_under(path)
        if mounts:
            raise OcishError(f"cannot replace {path}: {mounts[0]} is a mount point "
                             "(is a container still using this bundle?)")
        shutil.rmtree(path)


def _write_config(directory: str, spec: dict) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".config.json.", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(spec, f, indent="\t")
            f.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, os.path.join(directory, "config.json"))
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def init_bundle(directory: str, args: list[str] | None = None, terminal: bool = False,
                force: bool = False, *, busybox: str | None = AUTO, rootless: bool = False) -> str:
    """Create an OCI bundle in `directory` and return its absolute path.

    `busybox`: "auto" uses /bin/busybox when it is statically linked, otherwise host binaries;
    None always uses host binaries; a path uses that busybox (which must be statically linked).
    `rootless` writes the spec `runc spec --rootless` would.
    """
    if args is not None and (not isinstance(args, (list, tuple))
                             or not all(isinstance(a, str) for a in args)):
        raise OcishError("bundle init: args must be a list of strings")
    if busybox == AUTO:
        busybox = find_busybox()
    elif busybox is not None and not is_static_elf(busybox):
        raise OcishError(f"bundle init: {busybox} is not a statically linked executable")

    spec = default_spec(rootless=rootless)
    spec["process"]["args"] = list(args) if args else ["sh"]
    spec["process"]["terminal"] = bool(terminal)
    spec["hostname"] = HOSTNAME

    def fill(staging: str) -> dict:
        _populate_skeleton(staging)
        if busybox is not None:
            _install_busybox(staging, busybox)
        else:
            _install_host_binaries(staging)
        return spec
    return assemble(directory, force, fill)


def assemble(directory: str, force: bool, fill: Callable[[str], dict]) -> str:
    """Make the bundle `directory` (created when missing; when it has files, only with `force`):
    `fill(staging)` populates a fresh 0755 directory beside the rootfs and returns the spec;
    the staging directory then replaces DIR/<root.path> and the spec is written as
    DIR/config.json. Nothing is left behind when `fill` raises (a DIR this call created is
    removed). Returns the absolute path of the bundle."""
    directory = os.path.abspath(directory)
    created = False
    if os.path.lexists(directory) and not os.path.isdir(directory):
        raise OcishError(f"bundle directory {directory} exists and is not a directory")
    if os.path.isdir(directory):
        if os.listdir(directory) and not force:
            raise OcishError(f"bundle directory {directory} is not empty (use --force to replace "
                             "its rootfs and config.json)")
    else:
        os.makedirs(directory, mode=0o755)
        created = True
    staging = tempfile.mkdtemp(prefix=".rootfs.", dir=directory)
    try:
        os.chmod(staging, 0o755)
        spec = fill(staging)
        rootfs = os.path.join(directory, spec["root"]["path"])
        _remove_old(rootfs)
        os.rename(staging, rootfs)
        _write_config(directory, spec)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            shutil.rmtree(directory, ignore_errors=True)
        raise
    return directory


# --- editing config.json by JSON pointer ---------------------------------------------------------

def _pointer_keys(pointer: str) -> list[str]:
    """RFC 6901: "/mounts/0/destination" -> ["mounts", "0", "destination"] (~1 is /, ~0 is ~)."""
    if not pointer.startswith("/"):
        raise OcishError(f"{pointer!r} is not a JSON pointer (it starts with /)")
    return [k.replace("~1", "/").replace("~0", "~") for k in pointer[1:].split("/")]


def _index(container: list, key: str, pointer: str, append: bool) -> int:
    if key == "-" and append:
        return len(container)
    if not key.isdigit() or int(key) > len(container) - (0 if append else 1):
        raise OcishError(f"config {pointer}: {key!r} is not an index of a list of "
                         f"{len(container)}")
    return int(key)


def unknown_members_at(bundle: str, pointer: str) -> list[str]:
    """Lint's unknown-member findings (a member runtime-spec does not define: the runtime
    ignores it, usually a typo) on the way to or under `pointer` in `bundle`/config.json, one
    line each: "/linux/namespace: unknown member 'namespace': ignored; did you mean
    'namespaces'?". Empty when config.json cannot be read (edit_config said why)."""
    from ocish.lint.checks import unknown_members
    try:
        with open(os.path.join(bundle, "config.json")) as f:
            spec = json.load(f)
    except (OSError, ValueError):
        return []
    out = []
    for f in unknown_members(spec) if isinstance(spec, dict) else []:
        if (pointer + "/").startswith(f.pointer + "/") or f.pointer.startswith(pointer + "/"):
            guess = f.cause.partition("; ")[2]
            out.append(f"{f.pointer}: {f.title}" + (f"; {guess}" if guess else ""))
    return out


def edit_config(bundle: str, pointer: str, value: str | None, remove: bool = False):
    """Set (or with `remove`, delete) the item at `pointer` in `bundle`/config.json. `value`
    is JSON, or else taken as a string (unless it starts as JSON does, with [, { or ", and
    is broken: OcishError); missing objects on the way are created, `-` appends
    to a list (creating a one-item list when there is none yet; on an object it is refused:
    an object has no end to append at, RFC 6901). Returns the value written. Raises OcishError naming the pointer."""
    path = os.path.join(bundle, "config.json")
    try:
        with open(path) as f:
            spec = json.load(f)
    except (OSError, ValueError) as e:
        raise OcishError(f"{path}: {getattr(e, 'strerror', None) or e}") from None
    keys = _pointer_keys(pointer)
    if keys == [""]:
        raise OcishError("bundle: name an item of config.json, not the whole document")
    parsed = None
    if not remove:
        try:
            parsed = json.loads(value)
        except ValueError as e:
            if value.lstrip()[:1] in ("[", "{", '"'):  # meant as JSON: say where it breaks
                raise OcishError(
                    f"bundle set {pointer}: {value} is not JSON ({e.msg[:1].lower()}{e.msg[1:]}, "
                    f"column {e.colno}): "
                    "give the value in single quotes so its double quotes are kept, e.g. "
                    """'["sh", "-c", "echo hi"]'""") from None
            parsed = value
    node = spec
    for i, key in enumerate(keys[:-1]):
        here = "/" + "/".join(keys[:i + 1])
        if isinstance(node, list):
            node = node[_index(node, key, here, False)]
        elif isinstance(node, dict):
            if key not in node:
                if remove:
                    raise OcishError(f"config {here}: no such item")
                # `-` (RFC 6901: past the end of an array) appends: the list it appends to
                node[key] = [] if keys[i + 1:] == ["-"] else {}
            node = node[key]
        else:
            raise OcishError(f"config {here}: not an object or a list")
        if not isinstance(node, (dict, list)):
            raise OcishError(f"config {here}: not an object or a list")
    last = keys[-1]
    if isinstance(node, list):
        at = _index(node, last, pointer, not remove)
        if remove:
            del node[at]
        elif at == len(node):
            node.append(parsed)
        else:
            node[at] = parsed
    elif last == "-":
        parent = pointer[:-2] or "/"
        raise OcishError(f"config {parent}: `-` appends to a list, and this is an object: "
                         f"name a key (e.g. {parent}/NAME), or remove it first "
                         f"(`bundle unset {parent}`)")
    elif remove:
        if last not in node:
            raise OcishError(f"config {pointer}: no such item")
        del node[last]
    else:
        node[last] = parsed
    _write_config(bundle, spec)
    return parsed


# --- CLI ------------------------------------------------------------------------------------------

class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):   # one line, no usage dump, no SystemExit
        raise _UsageError(f"{self.prog}: {message}")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ocish bundle", description="Build OCI bundles to experiment with.")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    init = sub.add_parser(
        "init", usage="ocish bundle init DIR [--image REF] [--args 'CMD ...' | -- CMD...] [--force]"
                      " [--terminal] [--rootless]",
        epilog="CMD may also follow a literal --: ocish bundle init DIR -- sh -c 'echo hi'. "
               "REF: oci:PATH[:TAG] (an OCI image layout), oci-archive:PATH, "
               "docker-archive:PATH or a PATH (a `docker save`/`podman save` tar, an OCI "
               "layout directory), podman:NAME, docker:NAME, or a NAME (podman's store, then "
               "Docker's). With --image, CMD replaces the image's Cmd (as `docker run IMAGE "
               "CMD`); skopeo and umoci unpack it.",
        help="create a bundle: a small rootfs and a default config.json",
        description="Create DIR/rootfs (busybox-static, or host binaries and their libraries; "
                    "with --image, the image's layers) and DIR/config.json running CMD (default: "
                    "sh; with --image, the image's entrypoint and cmd).")
    init.add_argument("dir", metavar="DIR")
    init.add_argument("--image", metavar="REF",
                      help="the rootfs and process of this image, not busybox")
    init.add_argument("--args", metavar="'CMD ...'",
                      help="the container command, as one shell-quoted string")
    init.add_argument("--force", action="store_true",
                      help="replace the rootfs and config.json of a non-empty DIR")
    init.add_argument("--terminal", action="store_true", help="set process.terminal")
    init.add_argument("--rootless", action="store_true",
                      help="write a rootless spec (as runc spec --rootless)")
    return p


class _Stopped(BaseException):
    """SIGTERM or SIGHUP while an image unpacks: unwinds like Ctrl-C's KeyboardInterrupt (the
    running tool is killed by subprocess.run, the staging directory removed by assemble)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextmanager
def _stops_raise():
    def stop(signum: int, _frame) -> None:
        raise _Stopped(signum)
    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def main(argv: list[str]) -> int:
    """`ocish bundle init DIR [--image REF] [--args 'CMD ...' | -- CMD...] [--force]
    [--terminal] [--rootless]`."""
    try:
        # argparse cannot put a '*' positional after DIR and options, so split at "--" here.
        argv = list(argv)
        command: list[str] = []
        if "--" in argv:
            i = argv.index("--")
            argv, command = argv[:i], argv[i + 1:]
        try:
            ns, extra = _parser().parse_known_args(argv)
        except SystemExit as e:   # --help
            return e.code if isinstance(e.code, int) else 0
        if extra:  # named with the subcommand and what it takes, not argparse's "bundle: ..."
            raise _UsageError(f"ocish bundle {ns.cmd}: unknown argument {extra[0]} (it takes "
                              "DIR, --image, --args, --force, --terminal, --rootless; a command after --)")
        if ns.args is not None and command:
            raise _UsageError("ocish bundle init: give the command with --args or after --, "
                              "not both")
        if ns.args is not None:
            try:
                args = shlex.split(ns.args)
            except ValueError as e:
                raise _UsageError(f"ocish bundle init: --args: {str(e).lower()}")
        else:
            args = command or None
        if ns.image is not None:
            from ocish.image.build import build
            with _stops_raise():  # skopeo and umoci killed, DIR's work removed, one line
                path = build(ns.dir, ns.image, args, terminal=ns.terminal, force=ns.force,
                             rootless=ns.rootless)
        else:
            path = init_bundle(ns.dir, args, terminal=ns.terminal, force=ns.force,
                               rootless=ns.rootless)
    except _UsageError as e:
        print(f"ocish: {str(e).removeprefix('ocish ')}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, _Stopped) as e:
        signum = e.signum if isinstance(e, _Stopped) else signal.SIGINT
        print(f"ocish: bundle init: interrupted by {signal.Signals(signum).name}: nothing "
              f"was left behind", file=sys.stderr)
        return 128 + signum
    except OcishError as e:
        print(f"ocish: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:
        what = f"{e.strerror or e}".lower()
        where = f"{e.filename}: " if e.filename else ""
        print(f"ocish: bundle init: {where}{what}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
