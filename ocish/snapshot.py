"""Snapshot expectations: what `record --expect` writes for the facts the user looked at.

A snapshot must replay green on this machine and on another run, yet catch a regression, so
every fact is written as one of:
- a literal, for what the config decides and a run does not change: id maps, mount types and
  flags, capability sets, rlimits, seccomp mode, the container status, limits;
- `== host` / `!= host`, for what is inherited from, or separated from, the host: namespace
  inodes, and ids, caps, rlimits, the process's exe and command line when they are the host's;
- a relation, for what every run draws anew: pids (> 0), cgroup usage (>= 0), counters (== 0,
  or > 0 once they count), peer groups and pipe inodes (matches), creation times (matches);
- nothing, for what only describes this host: the block device under the rootfs, mount ids,
  filesystem options, a veth's random MAC, the cgroup hierarchies a cgroup mount shows, the
  keys of a process's cgroup membership (v1 controllers, the v2 tree: `matches "${id}"` when
  the cgroups are the container's own) and the caller's own cgroup.
Paths of this machine (the bundle, the rootfs, the --root, the container id) become $bundle,
$rootfs, $root and $id, so the script is portable. Model: the redactions and matchers of
snapshot-testing tools (insta's redactions, syrupy's matchers, Jest's expect.any).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from runtime.engine import INIT_ARGV
from ocish import facts

MISSING = object()
# inherited from the host until a stage changes them: `== host` when they still are the host's
HOST_RELATED = ("ids", "caps", "rlimits", "net", "fds")
# the stage after which a fact is the config's, not the host's (caps.bounding: "bounding")
SET_BY = {"rlimits": "process", "caps": "caps"}
COUNTERS = ("failcnt", "oom_kill", "forks_refused", "max", "oom", "under_oom", "oom_kills")
_MAC = "^([0-9a-f]{2}:){5}[0-9a-f]{2}$"

Subst = Callable[[str], str]


def _literal(path: str, value: Any, subst: Subst) -> str:
    return f"{path} == {subst(facts.format_value(value))}"


def _positive(path: str, value: Any) -> str | None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None if value is None else f"{path} == {facts.format_value(value)}"
    return f"{path} > 0" if value > 0 else f"{path} >= 0"


def _pid(path: str, value: Any) -> str:
    """A pid is drawn anew by every run (`> 0`), but 0 (a stopped container's state) and
    null (no process) are what every run shows then: relations true of the value seen."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return f"{path} > 0"
    return f"{path} == {facts.format_value(value)}"


def _membership(membership: dict[str, str], subst: Subst) -> list[str]:
    """The process's cgroups as one relation to $id: which hierarchies (v1 controllers, the
    v2 tree) a host mounts decides the keys, so none is written; a cgroup that is not the
    container's own (the caller's, while setup has not joined one) is the host's: nothing."""
    if not membership:
        return ["cgroup.membership.count == 0"]  # the process is gone
    marked = {subst(p) for p in membership.values()}
    if all("${id}" in p for p in marked):
        return ['cgroup.membership matches "${id}"']
    return []


def _counter(path: str, value: Any) -> str | None:
    if isinstance(value, int) and value > 0:
        return f"{path} > 0"
    return f"{path} == {facts.format_value(value)}"


def _pattern(text: str) -> str:
    """A pattern that matches `text` with its numbers redrawn: shared:12 -> ^shared:[0-9]+$."""
    return "^" + re.sub(r"\\?[0-9]+", "[0-9]+", re.escape(text)) + "$"


def _matches(path: str, pattern: str) -> str:
    return f"{path} matches {facts.quote(pattern)}"


def _field(path: str) -> str:
    return re.split(r"[.\[\]]", path.rstrip("]"))[-1]


def _mount_key(path: str) -> str:
    return path[len("mounts["):path.index("]")] if path.startswith("mounts[") else ""


def _cgroup_destinations(config: dict) -> set[str]:
    """Where the config mounts a cgroup filesystem: what the runtime puts there (v1
    hierarchies on a tmpfs, or cgroup2) depends on the host's cgroups."""
    mounts = config.get("mounts") if isinstance(config, dict) else None
    return {m["destination"].rstrip("/") or "/" for m in mounts or []
            if isinstance(m, dict) and m.get("type") == "cgroup"
            and isinstance(m.get("destination"), str)}


@dataclass
class Context:
    """What the session knew when the user looked: the container's config, and whether a
    stage had run (a value equal to the host's is the host's before, the config's after)."""
    config: dict = field(default_factory=dict)
    done: Callable[[str], bool] = lambda stage: True


INIT_NAME = INIT_ARGV[0]  # the container side's argv[0] until its execve


def _configured_rlimit(path: str, config: dict) -> bool:
    name = "RLIMIT_" + path.split(".")[1].upper()
    return any(r.get("type") == name for r in (config.get("process") or {}).get("rlimits") or [])


def clause(topic: str, path: str, value: Any, hosts: dict[str, Any], view: Any, subst: Subst,
           ctx: Context | None = None) -> list[str]:
    """The clauses (0, 1 or 2) that check fact `path` of `topic` (hosts: the host's facts by
    path; view: the topic's whole view)."""
    ctx = ctx or Context()
    field = _field(path)
    host = hosts.get(path, MISSING)
    if topic == "fds":
        fd = path[:path.index("]") + 1]
        if fd not in ("fds[0]", "fds[1]", "fds[2]"):
            return []  # which others are open depends on how the runtime was started
        # an fd is the host's when it is the same open file, not a look-alike
        if hosts.get(f"{fd}.target", MISSING) != facts.lookup(view, (fd[4:-1], "target"), ""):
            host = MISSING
    if topic == "ns":
        return [f"{path} {'==' if host is not MISSING and value == host else '!='} host"]
    if topic == "mounts":
        key = _mount_key(path)
        cgroupfs = _cgroup_destinations(ctx.config)
        if any(key.startswith(d.rstrip("/") + "/") for d in cgroupfs):
            return []  # a hierarchy of this host's, under the config's cgroup mount
        if key in cgroupfs and field in ("fstype", "source", "options"):
            # tmpfs holding v1 hierarchies, or cgroup2: the host's layout decides
            return [_matches(path, f"^{value.split(',')[0]}(,|$)")] if field == "options" else []
        mount = view.get(key, {}) if isinstance(view, dict) else {}
        on_host_fs = _mount_key(path) == "/" or str(mount.get("source", "")).startswith("/")
        if field in ("mount_id", "super_options") or (field in ("fstype", "source") and on_host_fs):
            return []
        if field == "propagation" and value != "private":
            return [_matches(path, _pattern(value))]
        if field == "options" and _mount_key(path) == "/":
            return [_matches(path, f"^{value.split(',')[0]}(,|$)")]
        return [_literal(path, value, subst)]
    if topic == "cgroup":
        if field in ("usage", "peak"):
            return [r for r in [_positive(path, value)] if r]
        if field == "at_limit":
            return []
        if field in COUNTERS:
            return [_counter(path, value)]
        return [_literal(path, value, subst)]
    if topic == "proc":
        if field in ("pid", "ppid"):
            return [_pid(path, value)]
        if field == "nspid" and isinstance(value, list) and value:
            return [f"{path}.count == {len(value)}", f"{path}[-1] " + (
                f"== {value[-1]}" if len(value) > 1 else "> 0")]
        if field == "state":
            return ([_matches(path, "^[RSD]")] if value[:1] in ("R", "S", "D")
                    else [_literal(path, value, subst)])
        if field in ("exe", "cwd", "cmdline", "name") and host is not MISSING and value == host:
            return [f"{path} == host"]
        if field == "cmdline" and value[:1] == [INIT_NAME]:
            # the container side before its execve: its last argument is the sync channel's
            # fd number, which depends on what the session had open
            return [f'{path}[0] == "{INIT_NAME}"']
        return [_literal(path, value, subst)]
    if topic in ("auxv", "exe"):
        return _program(topic, path, field, value, host, view, subst)
    if topic == "rlimits" and ctx.done("process") and _configured_rlimit(path, ctx.config):
        return [_literal(path, value, subst)]  # the config's, whatever the host's is
    if topic == "caps" and ctx.done("bounding" if field == "bounding" else "caps"):
        return [_literal(path, value, subst)]
    if topic in HOST_RELATED and host is not MISSING and value == host:
        return [f"{path} == host"]
    if topic == "fds" and field == "target" and re.search(r"\[[0-9]+\]$", str(value)):
        return [_matches(path, _pattern(value))]
    if topic == "exit":
        if field == "pid":
            return [_pid(path, value)]
        if field == "how" and isinstance(value, str) and value.startswith("running"):
            return [_matches(path, "^running")]
        if field == "when" and isinstance(value, str) and value.endswith("after start"):
            # "at once, right after start" or "after start": whether a short-lived process
            # had ended when `start` returned is a race
            return [_matches(path, "after start$")]
        if field in COUNTERS or field == "forks_refused":
            return [_counter(path, value)]
    if topic == "net" and field == "mac" and value and value != "00:00:00:00:00:00":
        return [_matches(path, _MAC)]
    if topic == "state":
        if field == "pid":
            return [_pid(path, value)]
        if field == "created":
            return [_matches(path, r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T")]
    return [_literal(path, value, subst)]


# auxv entries and exe fields that are addresses: every run draws them anew (ASLR), 0 aside
_ADDRESSES = ("AT_SYSINFO_EHDR", "AT_SYSINFO", "AT_RANDOM", "AT_BASE", "AT_PHDR", "AT_ENTRY",
              "entry", "load_base", "interpreter_base")
# auxv entries that describe only this host's CPU and kernel
_HOST_ONLY = ("AT_HWCAP", "AT_HWCAP2", "AT_HWCAP3", "AT_HWCAP4", "AT_PLATFORM",
              "AT_BASE_PLATFORM", "AT_MINSIGSTKSZ", "AT_RSEQ_FEATURE_SIZE", "AT_RSEQ_ALIGN",
              "AT_CLKTCK", "AT_PAGESZ")


def _program(topic: str, path: str, field: str, value: Any, host: Any, view: Any,
             subst: Subst) -> list[str]:
    """auxv and exe: addresses as relations, the host's hardware as nothing, what the
    program is (its path, ELF header, interpreter) as a literal or `== host` (the container
    side before its execve runs the host's interpreter); of the mapped files, only that the
    program is one of them (the others, and their order, are the loader's and ASLR's)."""
    if field in _HOST_ONLY:
        return []
    if field in _ADDRESSES:
        return [r for r in [_positive(path, value)] if r]
    if topic == "exe" and path.startswith("exe.mapped"):
        exe = view.get("path") if isinstance(view, dict) else None
        return [f"exe.mapped contains {subst(facts.format_value(value))}"] if value == exe else []
    if host is not MISSING and value == host:
        return [f"{path} == host"]
    if isinstance(value, str) and re.search(r"[0-9]", value) and value.startswith("/proc/"):
        return [_matches(path, _pattern(value))]  # /proc/self/fd/N: an fd number of this run
    return [_literal(path, value, subst)]


def expectations(topic: str, view: Any, host_view: Any, subst: Subst,
                 ctx: Context | None = None) -> list[str]:
    """`expect` lines for every fact of `view` (a topic's, or state's, ps's, stages')."""
    if topic == "env" and view == host_view:
        return ["expect env == host"]  # still the runtime's own: the process has not exec'd
    if topic == "env" and isinstance(view, dict) and "PYTHONHOME" in view:
        # the container side before its execve runs with the environment the runtime gives
        # its interpreter (runtime/engine.py), paths of this machine: say only that
        return ["expect env has PYTHONHOME"]
    if topic == "ps":
        return [f"expect ps.count == {len(view)}"]
    if topic == "stages":
        return [f"expect stages.{name}.status == {row['status']}" for name, row in view.items()]
    host = dict(facts.flatten(host_view, topic)) if host_view is not None else {}
    out = []
    if topic == "cgroup" and isinstance(view, dict) and "membership" in view:
        out += [f"expect {c}" for c in _membership(view["membership"], subst)]
        view = {k: v for k, v in view.items() if k != "membership"}
    for path, value in facts.flatten(view, topic):
        if isinstance(value, dict):  # an empty object: nothing to compare inside
            out.append(f"expect {path}.count == 0")
            continue
        for c in clause(topic, path, value, host, view, subst, ctx):
            out.append(f"expect {c}")
    return out
