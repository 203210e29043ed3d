"""Facts: the data of `inspect`, `state`, `ps`, `stages`, a command and a failure, as named
values that expectations (ocish/expect.py) and `--paths` address.

A view is the command's `--json` data with its lists of records keyed by their names, so that a
path reads as what it means:

    ns.pid                     the inode of the pid namespace    (inspect ns: items[kind=pid])
    caps.effective             a list of CAP_ names              (inspect caps: sets[name=...])
    mounts[/proc].fstype       proc                              (inspect mounts: the tree)
    rlimits.nofile.soft        1024                              (RLIMIT_NOFILE, prlimit's name)
    cgroup.memory.limit        67108864                          (inspect cgroup: resources)
    env.PATH, proc.nspid[-1], ids.uid_map[0], state.status, exec.stdout, ...

A path is a source then keys: `.key` or `[key]` (brackets for keys with dots, slashes or
spaces), `[N]` an index into a list (negative from the end), and `.count` the length of a list
(or of an object without a key "count"). `inspect TOPIC --paths` lists every path of a topic
with its value. The host's view of a topic is the same reader applied to this process: the
runtime's own namespaces, capabilities, limits (what a container inherits when its config does
not say otherwise). Nothing here prints.
"""
from __future__ import annotations

import errno as errnomod
import os
from dataclasses import dataclass
from typing import Any

from ocish.inspect import TOPICS

# sources an expectation may name without a command (`expect ns.pid != host`)
SOURCES = TOPICS + ("state", "ps", "stages", "status")

# /proc/PID/limits names -> the short names of prlimit(1) and config.json's RLIMIT_* (lower case)
RLIMIT_NAMES = {
    "Max cpu time": "cpu", "Max file size": "fsize", "Max data size": "data",
    "Max stack size": "stack", "Max core file size": "core", "Max resident set": "rss",
    "Max processes": "nproc", "Max open files": "nofile", "Max locked memory": "memlock",
    "Max address space": "as", "Max file locks": "locks", "Max pending signals": "sigpending",
    "Max msgqueue size": "msgqueue", "Max nice priority": "nice",
    "Max realtime priority": "rtprio", "Max realtime timeout": "rttime",
}


class PathError(Exception):
    """A path that names no fact (the message says what there is instead)."""


def _plain(data: Any) -> Any:
    from ocish.render import to_plain
    return to_plain(data)


def _key(text: str) -> str:
    return text.replace(" ", "_")


def _number(text: str) -> int | str:
    return int(text) if text.lstrip("-").isdigit() else text


# -- views of the inspect topics ------------------------------------------------------------------

def _ns(d) -> dict:
    return {n.kind: n.inode for n in d.items}


def _ids(d) -> dict:
    return {"uid": d.uids[1], "gid": d.gids[1], "uids": d.uids, "gids": d.gids,
            "groups": d.groups, "setgroups": d.setgroups,
            "uid_map": [f"{r.inside} {r.outside} {r.count}" for r in d.uid_map],
            "gid_map": [f"{r.inside} {r.outside} {r.count}" for r in d.gid_map]}


def _mounts(d) -> dict:
    out: dict[str, dict] = {}

    def walk(m) -> None:
        out[m.mountpoint] = {"fstype": m.fstype, "source": m.source, "options": m.options,
                             "super_options": m.super_options, "propagation": m.propagation,
                             "mount_id": m.mount_id}
        for c in m.children:
            walk(c)
    walk(d.root)
    return out


def _cgroup(d) -> dict:
    out: dict[str, Any] = {"membership": {m.controllers or "unified": m.path
                                          for m in d.membership}}
    for r in d.resources:
        out[r.name] = {"usage": r.usage, "limit": r.limit, "peak": r.peak, "unit": r.unit,
                       "pointer": r.pointer, "configured": r.configured, "at_limit": r.at_limit,
                       **{_key(k): v for k, v in r.counters.items()}}
    for s in d.settings:
        out[_key(s.name)] = s.value
    return out


def _caps(d) -> dict:
    return {s.name: s.caps for s in d.sets}


def _seccomp(d) -> dict:
    return {"mode": d.mode, "no_new_privs": d.no_new_privs, "filter_count": d.filter_count,
            "filters": [len(f.instructions) for f in d.filters]}


def _rlimits(d) -> dict:
    return {RLIMIT_NAMES.get(r.name, _key(r.name.lower())):
            {"soft": _number(r.soft), "hard": _number(r.hard), "units": r.units} for r in d}


def _fds(d) -> dict:
    return {str(f.fd): {"target": f.target, "flags": f.flags, "host": f.host} for f in d.fds}


def _env(d) -> dict:
    return dict(e.partition("=")[::2] for e in d)


def _net(d) -> dict:
    out: dict[str, Any] = {link.name: {"index": link.index, "state": link.state, "mtu": link.mtu,
                                       "mac": link.mac, "addresses": link.addresses}
                           for link in d.links}
    out["routes"] = [" ".join([r.dst] + (["via", r.gateway] if r.gateway else [])
                              + (["dev", r.dev] if r.dev else [])) for r in d.routes]
    return out


def _exe(d) -> dict:
    return {"path": d.path, "elf": d.elf, "e_entry": d.e_entry, "entry": d.entry,
            "load_base": d.load_base, "interpreter": d.interpreter,
            "interpreter_base": d.interpreter_base, "mapped": [m.path for m in d.mapped]}


def _auxv(d) -> dict:
    return {e.name: e.text if e.name in ("AT_EXECFN", "AT_PLATFORM", "AT_BASE_PLATFORM")
            else e.value for e in d}


TOPIC_VIEWS = {"ns": _ns, "ids": _ids, "mounts": _mounts, "cgroup": _cgroup, "caps": _caps,
               "seccomp": _seccomp, "rlimits": _rlimits, "fds": _fds, "env": _env,
               "proc": _plain, "net": _net, "exit": _plain, "exe": _exe, "auxv": _auxv}


def topic_view(topic: str, data: Any) -> Any:
    """The view of one inspect topic's data (`inspect all`: {topic: view})."""
    if topic == "all":
        return {t: TOPIC_VIEWS[t](d) for t, d in data.items()}
    return TOPIC_VIEWS[topic](data)


def host_view(topic: str) -> Any:
    """The view of `topic` read for this process: the host side of `!= host`."""
    from ocish import inspect
    return topic_view(topic, inspect.read(topic, inspect.Target(os.getpid())))


# -- views of the other commands' data ------------------------------------------------------------

def stages_view(rows) -> dict:
    return {r.name: {"status": r.status, "side": r.side,
                     "items": {i.item: i.status for i in r.items}} for r in rows}


def command_view(name: str, args, data: Any) -> Any:
    """The view of a successful command's data (`expect COMMAND -> ...`)."""
    from ocish.debugger import Exec, Run, Started
    if name == "inspect" and args is not None and args.pos:
        from ocish.commands import pick
        return topic_view(pick(args.pos[0], TOPICS + ("all",), "topic"), data)
    if name in ("stages", "info") and isinstance(data, list) and data and hasattr(data[0], "items"):
        return stages_view(data)
    if isinstance(data, Exec):
        return {"pid": data.pid, "status": data.status,
                "stdout": (data.stdout or "").rstrip("\n"),
                "stderr": (data.stderr or "").rstrip("\n")}
    if isinstance(data, Run):
        return run_view(data)
    if isinstance(data, Started):
        return {"id": data.id, "pid": data.pid, "running": data.running,
                "exit": _plain(data.exit), "held": data.held}
    return _plain(data)


def run_view(run) -> dict:
    """A run of steps: why it stopped, the next step, the steps it ran."""
    created = next((r.created for r in run.steps if r.created), None)
    return {"reason": run.stop.reason, "next": run.stop.next, "text": run.stop.text,
            "breakpoint": run.stop.breakpoint, "created": created is not None,
            "failing": run.stop.failing,
            "exec_pid": next((r.exec_pid for r in run.steps if r.exec_pid), 0),
            "steps": [f"{r.stage} {r.item}".strip() for r in run.steps]}


def failure_view(error: str, exc: BaseException | None, data: Any) -> dict:
    """What a failed command says: its message, and the failed stage's fields (errno by name:
    ENOENT), the config pointer, how the container process died when it did."""
    from ocish.debugger import Run
    from runtime.errors import SpecError, StageError
    out: dict[str, Any] = {"error": error, "stage": "", "op": "", "target": "", "errno": "",
                           "pointer": "", "detail": "", "died": False, "how": ""}
    err = exc if isinstance(exc, StageError) else None
    if isinstance(data, Run):
        failed = next((r for r in data.steps if r.error is not None), None)
        if failed is not None:
            err = failed.error
            if failed.death is not None:
                out.update(died=True, how=failed.death.how, cause=failed.death.cause)
    if err is not None:
        out.update(stage=err.stage, op=err.op, target=err.target, pointer=err.pointer,
                   detail=err.detail,
                   errno=errnomod.errorcode.get(err.errno, str(err.errno)) if err.errno else "")
    elif isinstance(exc, SpecError):
        out["pointer"] = exc.pointer
    return out


# -- paths ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Path:
    text: str
    keys: tuple[str, ...]


def parse_path(text: str) -> Path:
    """`mounts[/proc].fstype` -> ("mounts", "/proc", "fstype"); raises PathError."""
    keys: list[str] = []
    i, n = 0, len(text)
    if not text:
        raise PathError("an empty path")
    while i < n:
        c = text[i]
        if c == "[":
            end = text.find("]", i)
            if end < 0:
                raise PathError(f"{text}: a [ without its ]")
            keys.append(text[i + 1:end])
            i = end + 1
            if i < n and text[i] not in ".[":
                raise PathError(f"{text}: '.' or '[' expected after a ]")
        elif c == ".":
            if i == 0 or i + 1 >= n or text[i + 1] in ".[":
                raise PathError(f"{text}: a key is missing around '.'")
            i += 1
        else:
            j = i
            while j < n and text[j] not in ".[":
                j += 1
            keys.append(text[i:j])
            i = j
    return Path(text, tuple(keys))


def _names(value: Any) -> str:
    if isinstance(value, dict):
        keys = list(value)
        shown = ", ".join(format_key(k) for k in keys[:12]) + (", ..." if len(keys) > 12 else "")
        return f"its keys: {shown}" if keys else "it is empty"
    if isinstance(value, list):
        return f"a list of {len(value)}: use [N] or .count"
    return f"it is the value {format_value(value)}"


def lookup(value: Any, keys: tuple[str, ...], start: str) -> Any:
    """The value at `keys` under `value` (named `start`); raises PathError saying what there
    is instead."""
    where = start
    for k in keys:
        if isinstance(value, dict) and k in value:
            value = value[k]
        elif k == "count" and isinstance(value, (list, dict)):
            value = len(value)
        elif isinstance(value, list) and k.lstrip("-").isdigit() and -len(value) <= int(k) < len(value):
            value = value[int(k)]
        else:
            raise PathError(f"{where} has no {format_key(k)} ({_names(value)})")
        where += format_key(k)
    return value


def format_key(key: str) -> str:
    simple = key and (key[0].isalpha() or key[0] == "_") and all(
        c.isalnum() or c in "_+-" for c in key)
    return f".{key}" if simple else f"[{key}]"


def flatten(value: Any, prefix: str) -> list[tuple[str, Any]]:
    """Every (path, value) under `value`; lists of plain values stay one value."""
    if isinstance(value, dict) and value:
        return [row for k, v in value.items() for row in flatten(v, prefix + format_key(str(k)))]
    if isinstance(value, list) and value and any(isinstance(v, (dict, list)) for v in value):
        return [row for i, v in enumerate(value) for row in flatten(v, f"{prefix}[{i}]")]
    return [(prefix, value)]


_BARE_UNSAFE = set(" \t\n\"'\\,[]$#")


def format_value(value: Any) -> str:
    """A value as an expectation writes it: numbers, true/false/null, bare words, "quoted"
    strings, [lists]."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, dict):  # only {} is read back (flatten() opens the others)
        return "{" + ", ".join(f"{k}: {format_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    from ocish.expect import bare_meaning
    if (text and not (_BARE_UNSAFE & set(text)) and not text.startswith("->")
            and bare_meaning(text) == text):
        return text
    return quote(text)


def quote(text: str) -> str:
    """A double-quoted string, as the expectation parser reads it back."""
    out = text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return '"' + out.replace("\n", "\\n").replace("\t", "\\t") + '"'
