"""`ps`, `pause`, `resume` and `update`: the commands that work on a container's cgroup.

None of them is on the hot path (create/start/run/state/kill/delete never import this module), so
they may import what they need; they still do it lazily, inside the function that needs it.
Messages and exit codes are runc's: "container not running", "container not paused", status 1.
"""
from __future__ import annotations

import os

from runtime import jsonfast, state
from runtime.errors import OcishError, StageError


def _manager(st: dict):
    if not st.get("cgroup"):
        raise OcishError(f"container {st['id']} has no cgroup")
    from runtime import cgroups
    return cgroups.from_state(st["cgroup"])


# ---------------------------------------------------------------------------------------------
# ps

def pids(root: str, cid: str) -> list[int]:
    """Host pids of every process in the container's cgroup (init and exec'd ones)."""
    st = state.load(root, cid)
    if st.get("cgroup"):
        return _manager(st).pids()
    return [st["pid"]] if state.alive(st) else []


def ps_json(root: str, cid: str) -> str:
    """runc's `ps -f json`: a JSON array of host pids; `null` when there are none (Go's nil)."""
    from runtime.events import compact
    return compact(pids(root, cid) or None)


def ps_table(root: str, cid: str, ps_args: list[str]) -> str:
    """runc's `ps -f table`: the host's `ps` (default -ef), header plus the container's rows."""
    inside = set(pids(root, cid))
    import subprocess
    try:
        p = subprocess.run(["ps", *(ps_args or ["-ef"])], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    except OSError as e:
        raise OcishError(f"ps: {os.strerror(e.errno or 0).lower()}") from None
    output = p.stdout.decode(errors="replace")
    if p.returncode != 0:
        raise OcishError(f"exit status {p.returncode}: {output.strip()}")
    lines = output.split("\n")
    titles = lines[0].split()
    if "PID" not in titles:
        raise OcishError("couldn't find PID field in ps output")
    index = titles.index("PID")
    rows = [lines[0]]
    for line in lines[1:]:
        if not line:
            continue
        fields = line.split()
        try:
            pid = int(fields[index])
        except (IndexError, ValueError):
            raise OcishError(f"unable to parse pid: {line!r}") from None
        if pid in inside:
            rows.append(line)
    return "\n".join(rows)


# ---------------------------------------------------------------------------------------------
# pause, resume

def pause(root: str, cid: str) -> None:
    st = state.load(root, cid)
    if state.status(root, st) not in ("running", "created"):
        raise OcishError("container not running")
    _manager(st).freeze()


def resume(root: str, cid: str) -> None:
    st = state.load(root, cid)
    if state.status(root, st) != "paused":
        raise OcishError("container not paused")
    _manager(st).thaw()


# ---------------------------------------------------------------------------------------------
# update

# What runc's update takes from a LinuxResources object; anything else (devices, hugepages,
# network, rdma, ...) is ignored, as runc ignores it: those stay as `create` set them.
UPDATABLE = {
    "memory": ("limit", "reservation", "swap", "kernel", "kernelTCP"),
    "cpu": ("shares", "quota", "period", "realtimeRuntime", "realtimePeriod", "cpus", "mems",
            "idle", "burst"),
    "blockIO": ("weight",),
    "pids": ("limit",),
}
_IGNORED_WITH_WARNING = (("memory", "kernel"), ("memory", "kernelTCP"))

# flag -> (section, key, parser)
_RAM, _UINT, _INT, _STR = "ram", "uint", "int", "str"
FLAGS = {
    "memory": ("memory", "limit", _RAM),
    "memory-reservation": ("memory", "reservation", _RAM),
    "memory-swap": ("memory", "swap", _RAM),
    "kernel-memory": ("memory", "kernel", _RAM),
    "kernel-memory-tcp": ("memory", "kernelTCP", _RAM),
    "cpu-share": ("cpu", "shares", _UINT),
    "cpu-quota": ("cpu", "quota", _INT),
    "cpu-period": ("cpu", "period", _UINT),
    "cpu-rt-runtime": ("cpu", "realtimeRuntime", _INT),
    "cpu-rt-period": ("cpu", "realtimePeriod", _UINT),
    "cpuset-cpus": ("cpu", "cpus", _STR),
    "cpuset-mems": ("cpu", "mems", _STR),
    "blkio-weight": ("blockIO", "weight", _UINT),
    "pids-limit": ("pids", "limit", _INT),
}
I64_MAX = 2**63 - 1
_BINARY = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}


def ram_in_bytes(text: str) -> int:
    """docker/go-units RAMInBytes: "512", "100m", "1.5G", "2 GiB", "64kb" (binary units)."""
    s = text.strip()
    i = 0
    while i < len(s) and (s[i].isdigit() or s[i] == "."):
        i += 1
    number, unit = s[:i], s[i:].lstrip(" ").lower()
    if unit.endswith("b"):
        unit = unit[:-1]
    if unit.endswith("i") and len(unit) == 2:
        unit = unit[:-1]
    if not number or not number.isascii() or not number[0].isdigit() or unit not in _BINARY:
        raise ValueError(f"invalid size: '{text}'")
    try:
        value = float(number) * _BINARY[unit]
    except ValueError:
        raise ValueError(f"invalid size: '{text}'") from None
    if value > I64_MAX:  # docker/go-units' int64
        raise ValueError(f"invalid size: '{text}': more than {I64_MAX} bytes")
    return int(value)


def parse_flag(flag: str, text: str) -> int | str:
    kind = FLAGS[flag][2]
    try:
        if kind == _STR:
            return text
        if kind == _RAM:
            return -1 if text.strip() == "-1" else ram_in_bytes(text)
        digits = text[1:] if text[:1] == "-" else text
        if not (digits.isascii() and digits.isdigit()):  # no "٣", "1_0" or " 5", as strconv
            raise ValueError(text)
        value = int(text, 10)
        if kind == _UINT and value < 0:
            raise ValueError("must not be negative")
        return value
    except ValueError as e:
        why = str(e) if kind == _RAM else f"{jsonfast.quote(text)} is not " + (
            "a non-negative integer" if kind == _UINT else "an integer")
        raise OcishError(f"invalid value for {flag}: {why}") from None


def _set(value) -> bool:
    """runc's "unset": null, zero and empty leave the current value alone."""
    return value not in (None, 0, "")


def _filter(resources: dict) -> dict:
    """Only what update may change, only what is set."""
    out: dict = {}
    for sec, keys in UPDATABLE.items():
        part = resources.get(sec)
        if isinstance(part, dict):
            kept = {k: part[k] for k in keys if _set(part.get(k))}
            if kept:
                out[sec] = kept
    if isinstance(resources.get("unified"), dict) and resources["unified"]:
        out["unified"] = dict(resources["unified"])
    return out


def _base_resources(root: str, st: dict) -> dict:
    if "resources" in st:
        return st["resources"] or {}
    from runtime.execprocess import CONFIG_COPY
    for path in (os.path.join(state.container_dir(root, st["id"]), CONFIG_COPY),
                 os.path.join(st["bundle"], "config.json")):
        try:
            with open(path) as f:
                spec = jsonfast.loads(f.read())
        except (OSError, ValueError):
            continue
        return _filter((spec.get("linux") or {}).get("resources") or {})
    return {}


def read_resources(source: str) -> dict:
    """-r FILE, or "-" for stdin: a LinuxResources JSON object."""
    try:
        return jsonfast.read_object(source, "the resources (a LinuxResources)")
    except OSError as e:
        raise OcishError(f"open {source}: {os.strerror(e.errno or 0).lower()}") from None
    except ValueError as e:
        raise OcishError(str(e)) from None


def update(root: str, cid: str, resources: dict | None = None, flags: dict | None = None,
           warn=None) -> dict:
    """Merge `resources` (JSON) and then `flags` ({flag name: text}) over the container's
    current resources, write what changed into its cgroup, and remember the result in
    state.json, so that a later update merges over it. Returns the merged resources."""
    st = state.load(root, cid)
    if state.status(root, st) in ("stopped", "creating"):
        raise OcishError("container not running")
    new = _filter(resources or {})
    for flag, text in (flags or {}).items():
        if text is None:
            continue
        if flag in ("l3-cache-schema", "mem-bw-schema"):
            raise OcishError(f"--{flag}: Intel RDT is not supported by ocish")
        sec, key, _ = FLAGS[flag]
        value = parse_flag(flag, text)
        if _set(value):
            new.setdefault(sec, {})[key] = value
        elif sec in new:
            new[sec].pop(key, None)
    for sec, key in _IGNORED_WITH_WARNING:
        if key in new.get(sec, {}):
            new[sec].pop(key)
            if warn:
                warn("kernel memory settings are ignored and will be removed")
    new = {k: v for k, v in new.items() if v}
    _check(new)
    old = _base_resources(root, st)
    merged = {sec: dict(part) for sec, part in old.items()}
    for sec, part in new.items():
        merged.setdefault(sec, {}).update(part)
    if not new:
        return merged
    manager = _manager(st)
    # each section that changes is written whole, old values included: v2 needs both halves of
    # cpu.max, and memory.swap.max is derived from the memory limit
    try:
        manager.apply({sec: merged[sec] for sec in new})
    except StageError as err:
        restore = {sec: old[sec] for sec in new if old.get(sec)}
        try:
            if restore:
                manager.apply(restore)
        except StageError as again:
            if warn:
                warn(f"setting back the cgroup configuration failed: {_describe(again)}; "
                     "state.json and the cgroup may disagree")
        raise OcishError(_describe(err)) from None
    st = state.load(root, cid)  # re-read: keep whatever else changed meanwhile
    st["resources"] = merged
    state.save(root, st)
    return merged


def _check(resources: dict) -> None:
    """The types and ranges create checks (runtime/spec.py), before anything is written: a value
    out of range is refused as such (runc: its JSON decoder refuses what an int64 cannot hold),
    not written for the kernel to misread."""
    from runtime import spec as specmod
    from runtime.errors import SpecError
    try:
        specmod._resources(resources, update=True)
    except SpecError as e:
        ptr = e.pointer[len("/linux/resources"):] or "/"
        raise OcishError(f"resources {ptr}: {e.message}") from None


def _describe(err: StageError) -> str:
    """A cgroup error with its pointer into the resources object, not into a config.json."""
    what = f"{err.op} {err.target}".strip()
    if err.pointer:
        ptr = err.pointer[len("/linux/resources"):] if err.pointer.startswith("/linux/resources") \
            else err.pointer
        what += f" (resources {ptr or '/'})"
    why = err.detail or (os.strerror(err.errno).lower() if err.errno else "failed")
    return f"{what}: {why}"
