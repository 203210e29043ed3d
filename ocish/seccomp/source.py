"""Where a seccomp answer comes from: the filters a process has loaded, or a config.json profile
compiled the way the runtime compiles it, without running anything.

- `from_pid(pid)`: /proc/PID/status's Seccomp mode and, in filter mode, every filter read with
  PTRACE_SECCOMP_GET_FILTER (ocish.inspect.seccomp.dump_filters: the program as it was loaded).
- `from_container(root, id)`: the container's init pid from its state.json (ocish's, or runc's
  `init_process_pid` when --root is runc's) and the config.json it was created with (ocish keeps
  it; runc's names its bundle), to say whether the loaded filter is the profile's.
- `from_profile(sc)`: /linux/seccomp compiled by runtime/spec_seccomp.py and built by
  runtime/linux/seccomp.Filter (libseccomp), the same two calls stage seccomp makes, then
  exported with seccomp_export_bpf(3): the very program the kernel would be given.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from ocish.inspect.bpf import Insn
from runtime.errors import OcishError

MODES = {0: "disabled", 1: "strict", 2: "filter"}


@dataclass
class Source:
    """One answerable thing: `filters` newest first (as the kernel runs them)."""
    label: str                       # "pid 4242", "bundle /b (config.json /linux/seccomp)"
    mode: str                        # disabled | strict | filter | profile | none
    filters: list[list[Insn]] = field(default_factory=list)
    config: dict | None = None       # /linux/seccomp, when known
    no_new_privs: bool | None = None # /process/noNewPrivileges (a profile) or NoNewPrivs (a pid)
    skipped: list[str] = field(default_factory=list)   # names libseccomp does not know
    matches_config: bool | None = None   # a loaded filter is what config.json compiles to
    pid: int = 0
    note: str = ""                   # why these filters answer (the filter not loaded yet ...)


def export(sc: dict) -> tuple[list[Insn], list[str]]:
    """Compile /linux/seccomp `sc` as stage seccomp does and export the BPF program; with the
    names libseccomp skipped. Raises OcishError naming the config pointer of a problem."""
    from runtime.errors import SpecError
    from runtime.linux import seccomp as S
    from runtime.spec_seccomp import compile_profile
    try:
        prof = compile_profile(sc)
    except SpecError as e:
        raise OcishError(f"config {e.pointer}: {e.message}") from None
    try:
        flt = S.Filter(prof)
    except S.SeccompError as e:
        raise OcishError(f"config {e.pointer}: {e.message}") from None
    fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
    try:
        flt.export_bpf(fd)
        size = os.lseek(fd, 0, os.SEEK_CUR)
        raw = os.pread(fd, size, 0)
    finally:
        os.close(fd)
        flt.release()
    return parse_bpf(raw), flt.skipped


def parse_bpf(raw: bytes) -> list[Insn]:
    """struct sock_filter[] (u16 code, u8 jt, u8 jf, u32 k; native order) into instructions."""
    import struct
    return [Insn(*struct.unpack_from("=HBBI", raw, i)) for i in range(0, len(raw) - 7, 8)]


def read_config(path: str) -> tuple[dict, str]:
    """config.json of a bundle directory (or the file itself): the document and its path."""
    cfg = os.path.join(path, "config.json") if os.path.isdir(path) else path
    try:
        with open(cfg) as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise OcishError(f"{cfg}: no such file (give a bundle directory or its "
                         "config.json)") from None
    except (OSError, ValueError) as e:
        raise OcishError(f"{cfg}: cannot read it: {str(e).lower()}") from None
    if not isinstance(doc, dict):
        raise OcishError(f"{cfg}: not a json object")
    return doc, cfg


def from_profile(doc: dict, label: str) -> Source:
    """The answers config.json `doc` would give: its /linux/seccomp compiled and exported."""
    linux = doc.get("linux") if isinstance(doc.get("linux"), dict) else {}
    proc = doc.get("process") if isinstance(doc.get("process"), dict) else {}
    sc = linux.get("seccomp")
    src = Source(label, "none", no_new_privs=proc.get("noNewPrivileges") is True)
    if sc is None:
        return src
    src.mode, src.config = "profile", sc
    prog, src.skipped = export(sc)
    src.filters = [prog]
    return src


def from_bundle(path: str) -> Source:
    """The profile of bundle `path` (a directory, or its config.json), compiled."""
    doc, cfg = read_config(path)
    return from_profile(doc, f"{cfg} (compiled, not loaded)")


def from_pid(pid: int, label: str = "") -> Source:
    """The filters process `pid` has loaded. Raises OcishError when it is gone or its filters
    cannot be read (ptrace refused)."""
    from ocish.inspect.status import read_status
    try:
        st = read_status(pid)
    except (FileNotFoundError, ProcessLookupError):
        raise OcishError(f"no process {pid}") from None
    mode = int(st.get("Seccomp", "0"))
    src = Source(label or f"pid {pid}", MODES.get(mode, str(mode)), pid=pid,
                 no_new_privs=st.get("NoNewPrivs") == "1")
    if mode == 2:
        from ptrace import PtraceError

        from ocish.inspect.seccomp import dump_filters
        try:
            src.filters = dump_filters(pid)
        except PtraceError as e:
            raise OcishError(f"cannot read the filters of pid {pid} "
                             f"(PTRACE_SECCOMP_GET_FILTER): {e}") from None
    return src


def container_pid(root: str, cid: str) -> tuple[int, dict | None]:
    """The init pid of container `cid` under `root`, and the config.json it was created with
    (ocish keeps it in its state dir; for runc's state, the bundle's config.json its
    `bundle=` label names, as it is now; None when there is none)."""
    from runtime import state
    try:
        st = state.load(root, cid)
    except state.NotOurs:
        return _foreign(root, cid)
    except OcishError as e:
        raise OcishError(f"container {cid} (root {root}): {e}") from None
    if state.status(root, st) == "stopped":  # its pid may be anyone's now
        raise OcishError(f"container {cid} is stopped: it has no process to read")
    pid = int(st.get("pid") or 0)
    return pid, _config(os.path.join(state.container_dir(root, cid), "config.json"))


def _config(path: str) -> dict | None:
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _foreign(root: str, cid: str) -> tuple[int, dict | None]:
    """Another runtime's container under `root` (runc's state.json, crun's status), read as
    `ocish attach` reads it (ocish/foreign.py): its init, alive with its start time (a pid
    reused since is refused), and its config.json when known."""
    from ocish import foreign
    try:
        f = foreign.in_root(cid, "", root)
    except OcishError as e:
        raise OcishError(f"container {cid} (root {root}): {e}") from None
    if f is None:
        raise OcishError(f"container {cid} (root {root}): no state this reads")
    if not f.alive():
        raise OcishError(f"container {cid} is stopped: it has no process to read")
    return f.pid, f.config or None


def from_container(root: str, cid: str) -> Source:
    """The filters container `cid`'s init has loaded, compared with its config.json."""
    pid, doc = container_pid(root, cid)
    if pid <= 0:
        raise OcishError(f"container {cid} has no process (status stopped)")
    return of_container(from_pid(pid, f"container {cid} (pid {pid})"), doc or {}, cid)


def of_container(src: Source, doc: dict, cid: str) -> Source:
    """A container's init as read (`src`) with its config.json `doc`: a loaded filter is
    compared with the profile; before one is loaded (during setup: stage bounding loads it, or
    exec's handoff with noNewPrivileges), the profile answers, compiled, and says so."""
    linux = doc.get("linux") if isinstance(doc.get("linux"), dict) else {}
    if src.mode == "filter":
        compare(src, doc)
    elif src.mode == "disabled" and linux.get("seccomp") is not None:
        pid = src.pid
        src = from_profile(doc, f"config.json of container {cid} (compiled)")
        src.note = (f"pid {pid} has no filter loaded yet (stage bounding, or exec's handoff "
                    "with noNewPrivileges, loads it): answers from config.json's profile, "
                    "compiled as stage seccomp compiles it")
    return src


def compare(src: Source, doc: dict) -> None:
    """Note whether `src`'s loaded filter is exactly what `doc`'s /linux/seccomp compiles to
    (then explain shows the profile's own rules)."""
    linux = doc.get("linux") if isinstance(doc.get("linux"), dict) else {}
    sc = linux.get("seccomp")
    if sc is None or src.mode != "filter" or len(src.filters) != 1:
        return
    try:
        prog, skipped = export(sc)
    except OcishError:
        return
    src.config, src.skipped = sc, skipped
    src.matches_config = prog == src.filters[0]
