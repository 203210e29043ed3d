"""Rendering of the debugger's data: plain text, or rich renderables on a terminal.

Every function takes the data a reader, the debugger or a command returned and `fancy`: False
gives plain text that never depends on the terminal's width (scripted sessions and tests read
it; `help` alone wraps, to the width it is given), True gives a rich object (tables, trees,
coloured diffs) for the interactive shell. `to_plain`/`to_json` give the same data as JSON
(`--json`). `command()` picks the renderer of a command's data. Nothing here reads the kernel or
prints.
"""
from __future__ import annotations

import errno as errnomod
import json
import os
import textwrap
from dataclasses import fields, is_dataclass
from typing import Any

from ocish.commands import (Banner, BundleResult, Deleted, DiffResult, Fact, HelpEntry, Outcome,
                            Recorded, Setting, pick)
from ocish.catch import Released
from ocish.debugger import (Breakpoint, Exec, LiveTrace, News, Run, StageRow, Started, StepReport,
                            Stop)
from ocish.exec_step import ExecLoaded
from ocish.inspect import TOPICS
from ocish.inspect.cgroup import CgroupInfo, human_size
from ocish.inspect.exit import ExitInfo
from ocish.inspect.mounts import Mount, MountTree
from ocish.trace import Call, Repeated, TraceResult, group
from runtime.errors import StageError

_MARK = {"done": "[x]", "next": "-->", "failed": "[!]", "pending": "[ ]"}
_STYLE = {"done": "green", "next": "bold yellow", "failed": "bold red", "pending": "dim"}


def to_plain(data: Any) -> Any:
    """The data as JSON values: dataclasses and dicts as objects (a StageError as its fields
    plus "message"), lists and tuples as arrays. What --json prints and scripts compare."""
    if is_dataclass(data) and not isinstance(data, type):
        return {f.name: to_plain(getattr(data, f.name)) for f in fields(data)}
    if isinstance(data, StageError):
        return {**data.to_dict(), "message": str(data)}
    if isinstance(data, dict):
        return {str(k): to_plain(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [to_plain(d) for d in data]
    return data


def to_json(data: Any) -> str:
    return json.dumps(to_plain(data), indent=2)


def _table(headers: list[str], rows: list[list[str]], title: str = ""):
    from rich.table import Table
    t = Table(*headers, title=title or None, title_justify="left", box=None, pad_edge=False,
              show_header=any(headers))
    for r in rows:
        t.add_row(*r)
    return t


def columns(rows: list[list[str]], indent: str = "  ") -> list[str]:
    """Plain columns: each as wide as its longest cell (no dependence on the terminal)."""
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [(indent + "  ".join(c.ljust(w) for c, w in zip(r, widths))).rstrip() for r in rows]


# -- the pipeline ----------------------------------------------------------------------------

def stages(rows: list[StageRow], fancy: bool):
    """One line per stage (and per item of stages made of several), marked done / next /
    failed, with breakpoint numbers."""
    def bp(nums: list[int]) -> str:
        return "b" + ",".join(map(str, nums)) if nums else ""

    if not fancy:
        w = max([len(r.name) for r in rows] + [5])
        iw = max([len(it.item) for r in rows for it in r.items] + [0])
        lines = [f"    {'stage':<{w}} side       what it will do (`explain STAGE` for all)"]
        for r in rows:
            tail = f"  [{bp(r.breakpoints)}]" if r.breakpoints else ""
            lines.append(f"{_MARK[r.status]} {r.name:<{w}} {r.side:<10} {r.summary}{tail}")
            for it in r.items:
                tail = f"  [{bp(it.breakpoints)}]" if it.breakpoints else ""
                lines.append(f"    {_MARK[it.status]} {it.item:<{iw}}  {it.text}{tail}")
        lines.append("([x] done, --> next, [!] failed, [bN] breakpoint N)")
        return "\n".join(lines)
    from rich.text import Text
    from rich.tree import Tree
    tree = Tree("[bold]setup pipeline[/]", guide_style="dim")
    for r in rows:
        label = Text.assemble((f"{_MARK[r.status]} ", _STYLE[r.status]), (r.name, "bold"),
                              (f" ({r.side}) ", "dim"), r.summary,
                              (f"  ● {bp(r.breakpoints)}", "red") if r.breakpoints else "")
        node = tree.add(label)
        for it in r.items:
            node.add(Text.assemble((f"{_MARK[it.status]} ", _STYLE[it.status]), (it.item, "cyan"),
                                   f" {it.text}",
                                   (f"  ● {bp(it.breakpoints)}", "red") if it.breakpoints else ""))
    return tree


def breakpoints(bps: list[Breakpoint], fancy: bool):
    """gdb's `info breakpoints`: Num Type Disp Enb What, then a line for the hits ("already
    hit N times") and one for an ignore count ("Will ignore next N crossings")."""
    if not bps:
        return "no breakpoints"
    headers = ["Num", "Type", "Disp", "Enb", "What"]
    rows, notes = [], {}
    for b in bps:
        typed = " ".join([b.stage] + b.items)
        label = f"  (as typed: {b.label})" if b.label != typed and not b.on_error else ""
        rows.append([str(b.number), "breakpoint", "del" if b.temporary else "keep",
                     "y" if b.enabled else "n", _breakpoint_where(b) + label])
        notes[b.number] = [f"stop only if {b.condition}"] if b.condition else []
        if b.hits:
            notes[b.number].append(f"breakpoint already hit {b.hits} time"
                                   f"{'s' if b.hits != 1 else ''}")
        if b.ignore:
            notes[b.number].append(f"Will ignore next {b.ignore} crossings of breakpoint.")
    if fancy:
        from rich.text import Text
        t = _table(headers, [])
        for b, r in zip(bps, rows):
            t.add_row(*r, style="dim" if not b.enabled else None)
            for n in notes[b.number]:
                t.add_row("", "", "", "", Text(n, style="dim"))
        return t
    lines = columns([headers] + rows, "")
    out = [lines[0]]
    for b, line in zip(bps, lines[1:]):
        out.append(line)
        out += [f"\t{n}" for n in notes[b.number]]
    return "\n".join(out)


def stage_error(err: StageError, pid: int, fancy: bool, cause: str = "", pointer: str = "",
                exec_step: bool = False):
    """The failure block: stage, operation, target, errno, config pointer; `cause` is what the
    cgroup's counters add (a fork refused at the pids limit), with its own config pointer.
    `exec_step`: a step of `exec --step` failed, not the container's setup."""
    name = errnomod.errorcode.get(err.errno, "") if err.errno else ""
    why = f"{name} ({os.strerror(err.errno).lower()})" if err.errno else "-"
    rows = [["stage", err.stage], ["operation", err.op or "-"], ["target", err.target or "-"],
            ["errno", why], ["config", err.pointer or "-"]]
    if err.detail:
        rows.append(["detail", err.detail])
    if cause:
        rows.append(["cause", cause + (f" (config {pointer})" if pointer else "")])
    if exec_step:
        tail = f"this exec failed; the container (pid {pid}) is as it was" if pid > 0 else ""
    else:
        tail = (f"the container process (pid {pid}) is still there, blocked: inspect it; "
                "`restart` or `quit` cleans up" if pid > 0 else "")
    if fancy:
        from rich.console import Group
        from rich.text import Text
        return Group(Text(f"✗ {err}", style="bold red"), _table(["", ""], rows),
                     Text(tail, style="dim"))
    return "\n".join([f"FAILED: {err}"] + columns(rows) + ([tail] if tail else []))


def trace(result: TraceResult, fancy: bool):
    """The calls, runs of alike calls folded into one line (trace.group)."""
    entries = group(result.records)
    if not fancy:
        lines = ["  trace: " + r.text() for r in entries]
        if result.error:
            lines.append(f"  trace error: {result.error}")
        return "\n".join(lines or ["  trace: (no state-changing syscalls)"])
    from rich.text import Text
    out = Text()
    for r in entries:
        call = r.first if isinstance(r, Repeated) else r
        if isinstance(call, Call):
            out.append("  ")
            text = r.text()
            name, rest = text[:len(call.name)], text[len(call.name):]
            out.append(name, "bold cyan")
            head, _, tail = rest.rpartition(" = ")
            out.append(f"{head} = ")
            out.append(tail, "red" if call.errno else "green")
        else:
            out.append("  " + r.text(), "dim")
        out.append("\n")
    if result.error:
        out.append(f"  trace error: {result.error}\n", "red")
    return out if entries or result.error else Text("  (no state-changing syscalls)", "dim")


def live_trace(t: LiveTrace, fancy: bool) -> list:
    """`trace --for`: the calls, then for how long and in what state the process was left."""
    how = "interrupted by Ctrl-C after" if t.interrupted else "for"
    state = {"": "gone", "Z": "a zombie", "X": "dead"}.get(t.state_after, f"state {t.state_after}")
    calls = trace(t.result, fancy)
    if not t.result.records and not t.result.error:
        calls = "  (no calls)"
    return [calls, f"traced pid {t.pid} {how} {t.seconds:g} s; detached, {state}"]


def step_report(r: StepReport, pid: int, fancy: bool, hint: str = "") -> list:
    """What one step did: its line, its trace, its diff (watch), or its failure (the death of
    the container process first, when that is what failed)."""
    where = f"{r.stage} {r.item}".strip()
    out: list = []
    if r.interrupted:
        out.append(_styled(f"interrupted: {r.interrupted}", "bold yellow", fancy))
    elif r.reoffered:
        out.append(_styled(f"tried {where}: it fails (break on error: the run stops before it)",
                           "yellow", fancy))
    elif r.death is not None:
        out.append(death(r.death, r.stage, fancy, hint))
    elif r.error is not None:
        out.append(stage_error(r.error, pid, fancy, r.cause, r.cause_pointer,
                               exec_step=r.stage.startswith("exec:")))
    else:
        line = f"ran {where} ({r.side} side)"
        out.append(_styled(line, "green", fancy))
    if r.trace is not None:
        out.append(trace(r.trace, fancy))
    elif r.trace_note:
        out.append(_styled("  trace: " + r.trace_note, "dim", fancy))
    if r.changes is not None:
        out.append(diff(r.changes, fancy) if r.changes
                   else _styled("  (watch: no change)", "dim", fancy))
    return out


def death(info: ExitInfo, stage: str, fancy: bool, hint: str = ""):
    """The failure block of a step whose container process died: how, the evidence, and
    `hint` (where to look for the cause: diagnose)."""
    rows = [["stage", stage], ["process", f"{info.pid}: {info.how}"]]
    if info.cause:
        rows.append(["cause", info.cause])
    if info.pointer:
        rows.append(["config", info.pointer])
    head = f"FAILED: stage {stage}: the container process {info.pid} died: {info.how}"
    tail = ((hint + "; " if hint else "") + "`inspect cgroup` and `inspect exit` still answer; "
            "`restart` sets it up again, `quit` cleans up")
    if fancy:
        from rich.console import Group
        from rich.text import Text
        return Group(Text(f"✗ {head[8:]}", style="bold red"), _table(["", ""], rows),
                     Text(tail, style="dim"))
    return "\n".join([head] + columns(rows) + [tail])


def _styled(text: str, style: str, fancy: bool):
    if not fancy:
        return text
    from rich.text import Text
    return Text(text, style=style)


def diff(lines: list[str], fancy: bool):
    text = "\n".join(lines)
    if not fancy:
        return text
    from rich.syntax import Syntax
    return Syntax(text, "diff", theme="ansi_dark", background_color="default")


# -- inspect topics --------------------------------------------------------------------------

def ns(data, fancy: bool):
    rows = [[n.kind, str(n.inode), "own" if n.differs else "host", str(n.host_inode)]
            for n in data.items]
    headers = ["namespace", "inode", "", "host's"]
    if fancy:
        return _table(headers, rows, f"namespaces of pid {data.pid}")
    return "\n".join([f"namespaces of pid {data.pid} (host: this shell's own)"]
                     + columns([headers] + rows))


def ids(data, fancy: bool):
    def ranges(rs) -> str:
        return "; ".join(f"{r.inside} -> {r.outside} ({r.count})" for r in rs) or "(unmapped)"
    rows = [["uid_map", ranges(data.uid_map)], ["gid_map", ranges(data.gid_map)],
            ["setgroups", data.setgroups],
            ["uid", " ".join(map(str, data.uids)) + "  (real effective saved fs)"],
            ["gid", " ".join(map(str, data.gids)) + "  (real effective saved fs)"],
            ["groups", " ".join(map(str, data.groups)) or "(none)"]]
    return _table(["", ""], rows) if fancy else "\n".join(columns(rows, ""))


def _mount_label(m: Mount) -> str:
    return f"{m.mountpoint}  {m.fstype} {m.source}  {m.options}  {m.propagation}"


def mounts(data: MountTree, fancy: bool):
    if data.based_at != "/":
        head = (f"mounts under the rootfs {data.based_at} (not pivoted yet: paths as they will be "
                f"after pivot_root; {data.hidden} other mounts of the namespace not shown)")
    else:
        head = ("mounts of the container's root" if data.pivoted else
                "mounts of the process's root (still the host's: the rootfs is not mounted yet)")
    if fancy:
        from rich.tree import Tree

        def add(node, m: Mount) -> None:
            for c in m.children:
                add(node.add(f"[bold]{c.mountpoint}[/]  [cyan]{c.fstype}[/] {c.source}  "
                             f"[dim]{c.options}  {c.propagation}[/]"), c)
        tree = Tree(f"{head}\n[bold]{data.root.mountpoint}[/]  [cyan]{data.root.fstype}[/] "
                    f"{data.root.source}  [dim]{data.root.options}  {data.root.propagation}[/]")
        add(tree, data.root)
        return tree
    lines = [head, _mount_label(data.root)]

    def walk(m: Mount, prefix: str) -> None:
        for i, c in enumerate(m.children):
            last = i == len(m.children) - 1
            lines.append(prefix + ("`-- " if last else "|-- ") + _mount_label(c))
            walk(c, prefix + ("    " if last else "|   "))
    walk(data.root, "")
    return "\n".join(lines)


def _amount(value: int | None, unit: str) -> str:
    if value is None:
        return "-"
    return human_size(value) if unit == "bytes" else str(value)


def _pointer(ptr: str, configured: bool) -> str:
    if not ptr:
        return ""
    return f"config {ptr}" if configured else f"config {ptr} (not set)"


def cgroup(data: CgroupInfo, fancy: bool):
    """Membership, then each resource: usage of limit in human units (AT LIMIT flagged), peak,
    the counters (failcnt, oom_kill, forks refused) and the config pointer; then settings."""
    member = [[m.controllers or "(v2)", m.path] for m in data.membership]
    rows = []
    for r in data.resources:
        use = _amount(r.usage, r.unit)
        if r.limit is None:
            use += " (no limit)"
        else:
            use += f" of {_amount(r.limit, r.unit)}"
            if r.usage is not None and r.limit:
                use += f" ({100 * r.usage // r.limit}%)"
        if r.at_limit:
            use += " AT LIMIT"
        extra = [f"peak {_amount(r.peak, r.unit)}"] if r.peak is not None else []
        extra += [f"{k} {v}" for k, v in r.counters.items()]
        if r.counters.get("oom_kill"):
            extra.append("KILLED BY THE OOM KILLER")
        rows.append([r.name, use, ", ".join(extra), _pointer(r.pointer, r.configured)])
    settings = [[st.name, st.value, "", _pointer(st.pointer, st.configured)] for st in data.settings]
    head = ("membership (/proc/PID/cgroup):" if not data.process_gone else
            "membership: the process is gone; its cgroup directories:")
    member_rows = member or [[k or "(v2)", v] for k, v in sorted(data.dirs.items())]
    if fancy:
        from rich.console import Group
        t = _table(["resource", "usage", "", "where from"], rows + settings, "limits and usage")
        for i, r in enumerate(data.resources):
            if r.at_limit or r.counters.get("oom_kill"):
                t.rows[i].style = "bold red"
        return Group(_table(["hierarchy", "cgroup"], member_rows, head.rstrip(":")), t)
    return "\n".join([head] + columns(member_rows) + ["limits and usage:"]
                     + (columns(rows + settings) or ["  (no cgroup files)"]))


def exit_info(data: ExitInfo, fancy: bool):
    rows = [["pid", str(data.pid)], ["state", "alive" if data.alive else "dead"],
            ["how", data.how]]
    if data.when:
        rows.append(["when", data.when])
    if data.cause:
        rows.append(["cause", data.cause + (f" (config {data.pointer})" if data.pointer else "")])
    if data.oom_kills is not None:
        rows.append(["oom_kill", str(data.oom_kills)])
    if data.forks_refused is not None:
        rows.append(["forks refused", str(data.forks_refused)])
    return _table(["", ""], rows) if fancy else "\n".join(columns(rows, ""))


def caps(data, fancy: bool):
    rows = [[s.name, s.mask, f"({len(s.caps)}) " + (" ".join(s.caps) or "-")] for s in data.sets]
    if fancy:
        return _table(["set", "mask", "capabilities"], rows)
    return "\n".join(columns(rows, ""))


def seccomp(data, fancy: bool):
    head = (f"seccomp mode: {data.mode}, NoNewPrivs: {'yes' if data.no_new_privs else 'no'}, "
            f"filters: {data.filter_count}")
    lines = [head]
    if data.error:
        lines.append(data.error)
    for f in data.filters:
        lines.append(f"filter {f.index}{' (newest)' if f.index == 0 else ''}, "
                     f"{len(f.instructions)} instructions:")
        lines += ["  " + ln for ln in f.listing]
    return "\n".join(lines)


def rlimits(data, fancy: bool):
    rows = [[r.name, r.soft, r.hard, r.units] for r in data]
    headers = ["limit", "soft", "hard", "units"]
    return _table(headers, rows) if fancy else "\n".join(columns([headers] + rows, ""))


def fds(data, fancy: bool):
    rows = [[str(f.fd), f.flags, f.target, ("HOST: " + f.why) if f.host else ""] for f in data.fds]
    head = (f"fds of pid {data.pid}" + ("" if data.separated else
            " (it still shares the host's mount namespace: nothing is flagged yet)"))
    n = sum(f.host for f in data.fds)
    tail = f"{n} fd(s) lead back to the host" if n else "no fd leads back to the host"
    if fancy:
        from rich.console import Group
        from rich.text import Text
        t = _table(["fd", "flags", "target", ""], rows, head)
        for i, f in enumerate(data.fds):
            if f.host:
                t.rows[i].style = "red"
        return Group(t, Text(tail, style="bold red" if n else "green"))
    return "\n".join([head] + columns([["fd", "flags", "target", ""]] + rows, "") + [tail])


def env(data, fancy: bool):
    return "\n".join(data) or "(empty environment)"


def proc(data, fancy: bool):
    rows = [["pid", f"{data.pid} (in its namespaces: {' '.join(map(str, data.nspid[1:])) or '-'})"],
            ["name", data.name], ["state", data.state], ["ppid", str(data.ppid)],
            ["threads", str(data.threads)], ["cmdline", " ".join(data.cmdline)],
            ["exe", data.exe], ["cwd", data.cwd]]
    return _table(["", ""], rows) if fancy else "\n".join(columns(rows, ""))


def net(data, fancy: bool):
    links = [[str(lk.index), lk.name, lk.state, str(lk.mtu), lk.mac, " ".join(lk.addresses)]
             for lk in data.links]
    routes = [[r.dst, r.gateway or "-", r.dev] for r in data.routes]
    if fancy:
        from rich.console import Group
        return Group(_table(["#", "link", "state", "mtu", "mac", "addresses"], links, "links"),
                     _table(["destination", "gateway", "dev"], routes, "routes"))
    return "\n".join(["links:"] + columns(links) + ["routes:"] + (columns(routes) or ["  (none)"]))


def exe(data, fancy: bool):
    rows = [["exe", data.path], ["elf", data.elf + (f" ({data.error})" if data.error else "")],
            ["entry", f"{data.entry:#x} (AT_ENTRY; ELF e_entry {data.e_entry:#x}, "
                      f"loaded at {data.load_base:#x})"],
            ["interpreter", f"{data.interpreter} at {data.interpreter_base:#x} (AT_BASE)"
             if data.interpreter else "none (static)"]]
    maps = [[f"{m.start:#x}-{m.end:#x}", m.perms, m.path] for m in data.mapped]
    if fancy:
        from rich.console import Group
        return Group(_table(["", ""], rows), _table(["addresses", "perms", "mapped"], maps))
    return "\n".join(columns(rows, "") + ["mapped:"] + columns(maps))


def auxv(data, fancy: bool):
    rows = [[e.name, e.text] for e in data]
    return _table(["type", "value"], rows) if fancy else "\n".join(columns(rows, "")) or "(empty)"


TOPIC_RENDERERS = {"ns": ns, "ids": ids, "mounts": mounts, "cgroup": cgroup, "caps": caps,
                   "seccomp": seccomp, "rlimits": rlimits, "fds": fds, "env": env, "proc": proc,
                   "net": net, "exit": exit_info, "exe": exe, "auxv": auxv}


def containers(states: list[dict], fancy: bool):
    rows = [[s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"]] for s in states]
    headers = ["id", "pid", "status", "bundle", "created"]
    if not rows:
        return "no containers"
    return _table(headers, rows) if fancy else "\n".join(columns([headers] + rows, ""))


# -- the data of each command ------------------------------------------------------------------

def help_list(entries: list[HelpEntry], width: int) -> str:
    """Usage and summary of every command, its aliases first in parentheses, wrapped to
    `width`; a usage too long for the column puts its summary on the next line."""
    col = min(max(len(e.usage) for e in entries), 30)
    lines = []
    for e in entries:
        text = (f"({', '.join(e.aliases)}) " if e.aliases else "") + e.summary
        wrapped = textwrap.wrap(text, max(width - col - 4, 20)) or [""]
        if len(e.usage) > col:
            lines += textwrap.wrap(e.usage, max(width, 20), initial_indent="  ",
                                   subsequent_indent="      ")
            lines += [" " * (col + 4) + w for w in wrapped]
        else:
            lines.append(f"  {e.usage.ljust(col)}  {wrapped[0]}")
            lines += [" " * (col + 4) + w for w in wrapped[1:]]
    tail = ("A command may be shortened to any unambiguous prefix (`cont`, `insp`); an empty "
            "line repeats the last step, next, continue or inspect. The container's stdin is a "
            "pipe held by this shell (never written); its stdout and stderr are the shell's, "
            "as are those of `exec`'s processes. `help COMMAND` shows examples.")
    return "\n".join(lines + [""] + textwrap.wrap(tail, max(width - 2, 20)))


def help_entry(e: HelpEntry, width: int) -> str:
    aliases = f"   (aliases: {', '.join(e.aliases)})" if e.aliases else ""
    out = [f"{e.usage}{aliases}"] + ["  " + w for w in textwrap.wrap(e.summary, max(width - 2, 20))]
    if e.detail:
        out += [""] + e.detail.splitlines()
    if e.examples:
        out += ["", "examples:"] + [f"  {x}" for x in e.examples]
    return "\n".join(out)


def stop(s: Stop) -> str:
    """The line after a run of steps: where it stopped and what comes next."""
    if not s.next:
        return ""
    prefix = ""
    if s.breakpoint:
        prefix = f"{'temporary ' if s.temporary else ''}breakpoint {s.breakpoint}, "
    elif s.reason == "interrupted":
        prefix = "interrupted, "
    if s.failing:
        return (f"{prefix}stopped before {s.next}, which fails: {s.failing}\n"
                "  (nothing of it is undone: inspect what it met; `continue` runs it again, "
                "a second failure stands)")
    return f"{prefix}next: {s.next} -- {s.text}"


def run(r: Run, fancy: bool, streamed: bool = True, pid: int = 0):
    """A run of steps: the reports (unless they were shown as they came), the end of setup,
    and the stop."""
    out = [] if streamed else [b for rep in r.steps for b in step_report(rep, pid, fancy)]
    created = next((rep.created for rep in r.steps if rep.created), None)
    if created:
        out.append(_styled(f"setup complete: container {created['id']} created (pid "
                           f"{created['pid']}); `start` runs its process", "bold green", fancy))
    execd = next((rep.exec_pid for rep in r.steps if rep.exec_pid), 0)
    if execd:
        out.append(_styled(f"exec process {execd} started (detached): the shell reaps it and "
                           "says how it ends", "bold green", fancy))
    held = next((rep.held for rep in r.steps if rep.held), "")
    if held:
        out.append(_styled(f"{held} (pid {execd}, traced-stop): `inspect` shows it as it starts; "
                           "`continue` lets it run", "bold yellow", fancy))
    line = stop(r.stop)
    if line:
        out.append(_styled(line, "bold yellow" if r.stop.breakpoint else "", fancy))
    return out


def banner(b: Banner) -> str:
    if b.foreign:
        where = f", bundle {b.bundle}" if b.bundle else ", no config.json known"
        where += f", state root {b.root}" if b.root else ""
        mode = ("read-only (start, kill, pause, resume, delete refused: `attach "
                "--allow-changes` lets them through its runtime)" if b.read_only
                else "changes allowed: start, kill, pause, resume, delete run its runtime's")
        return f"attached to {b.foreign} ({b.status}, pid {b.pid}){where}\n{mode}"
    if b.status not in ("setting up", "failed"):
        return (f"attached to container {b.id} ({b.status}, pid {b.pid}), bundle {b.bundle}, "
                f"root {b.root}")
    head = (f"bundle {b.bundle}, container {b.id}, root {b.root}\n"
            f"container side started: pid {b.pid}, stopped before the first stage")
    return head + (f"\nnext: {b.next} -- {b.text}" if b.next else "")


def started(s: Started, fancy: bool, hint: str = "") -> list:
    out = []
    if s.running:
        out.append(f"started container {s.id}")
    elif s.exit is not None and s.exit.exit_code == 0:
        out.append(f"started container {s.id}: its process {s.pid} exited at once: {s.exit.how}")
    elif s.exit is not None:
        out.append(_styled(f"started container {s.id}, but its process {s.pid} died at once: "
                           f"{s.exit.how}" + (f" -- {s.exit.cause}" if s.exit.cause else "")
                           + " (its stderr, above, may say why)" + (f"; {hint}" if hint else ""),
                           "bold red", fancy))
    if s.catch is not None:
        out += ["catch exec:", trace(s.catch, fancy)]
    if s.held:
        out.append(_styled(f"{s.held} (pid {s.pid}, traced-stop): `inspect exe`, `inspect auxv`, "
                           "`inspect fds` ... show it as it starts; `continue` lets it run",
                           "bold yellow", fancy))
    return out


def released(r: Released, fancy: bool) -> list:
    out = []
    if r.calls:
        out += [f"catch exec: the first {r.calls} calls of {r.exe}:", trace(r.trace, fancy)]
    elif r.trace.error:
        out.append(f"catch exec: {r.trace.error}")
    out.append(f"process {r.pid} ({r.exe}) continues, detached" if r.running
               else f"process {r.pid} ({r.exe}) is gone")
    return out


def _breakpoint_where(b: Breakpoint) -> str:
    if b.on_error:
        return "before any step that fails"
    if b.items:
        return f"before {b.stage} {', '.join(b.items)}"
    return f"before {b.stage} " + ("(every step)" if b.condition else "(first step)")


def breakpoint_set(b: Breakpoint) -> str:
    cond = f" if {b.condition}" if b.condition else ""
    return f"{'temporary ' if b.temporary else ''}breakpoint {b.number} {_breakpoint_where(b)}{cond}"


def exec_loaded(e: ExecLoaded) -> str:
    return (f"exec {' '.join(e.args)} in {e.id}: its container side started, pid {e.pid}, "
            f"stopped before the first stage\nnext: {e.next} -- {e.text}")


def setting(s: Setting | list[Setting]) -> str:
    if isinstance(s, list):
        return "\n".join(columns([[x.name, x.value] for x in s], ""))
    if s.name == "catch" and s.value.startswith("exec"):
        calls = s.value.split()[1:]
        return ("catch exec: `start` will stop the process right after its execve"
                + (f"; `continue` then shows its first {calls[0]} syscalls" if calls else ""))
    return f"{s.name} {s.value}"


def news(n: News) -> str:
    return n.text


def paths(rows: list[Fact]) -> str:
    """`--paths`: one fact a line, as `expect` names it and writes its value."""
    from ocish.facts import format_value
    return "\n".join(columns([[r.path, format_value(r.value)] for r in rows], "")) or "(no facts)"


def checked(c) -> str:
    """A checked expectation that held."""
    return f"ok: {c.expectation}"


def bundle_result(b: BundleResult) -> str:
    if b.action == "init":
        return f"bundle {b.bundle} built ($bundle): `load $bundle` sets it up"
    from ocish.facts import format_value
    what = "removed" if b.action == "unset" else f"= {format_value(b.value)}"
    return "\n".join([f"{b.bundle}/config.json {b.pointer} {what}"]
                     + [f"note: {n}" for n in b.notes])


def recorded(r: Recorded) -> str:
    out = (f"recorded {r.commands} command(s) and {r.expectations} expectation(s) to {r.file}: "
           f"`ocish replay {r.file}` runs it")
    if r.left_out:
        out += f"\n{len(r.left_out)} failed command(s) left out (commented in the file)"
    return out


def command(o: Outcome, fancy: bool, width: int = 80, hint: str = "", pid: int = 0) -> list:
    """The renderables of a successful command's data (empty when it has nothing to say)."""
    name, data = o.command, o.data
    if data is None:
        return []
    if isinstance(data, list) and data and isinstance(data[0], Fact):
        return [paths(data)]
    if name == "expect":
        return [checked(data)]
    if isinstance(data, BundleResult):
        return [bundle_result(data)]
    if isinstance(data, Recorded):
        return [recorded(data)]
    if name == "help":
        return [help_entry(data, width) if isinstance(data, HelpEntry) else help_list(data, width)]
    if name in ("stages", "info", "break") and isinstance(data, list):
        if data and isinstance(data[0], StageRow):
            return [stages(data, fancy)]
        return [breakpoints(data, fancy)]
    if name in ("break", "tbreak"):
        return [breakpoint_set(data)]
    if name in ("disable", "enable"):
        return [f"breakpoint {b.number} {name}d" for b in data] or ["no breakpoints"]
    if name == "ignore":
        return [f"will ignore next {data.ignore} crossings of breakpoint {data.number}"
                if data.ignore else f"will stop next time breakpoint {data.number} is reached"]
    if name == "explain":
        return [f"{data.stage} ({data.side} side)\n{data.text}"]
    if isinstance(data, Run):
        return run(data, fancy, pid=pid)
    if isinstance(data, Deleted):
        return [f"deleted {data.what} {i}" for i in data.ids]
    if isinstance(data, Banner):
        return [banner(data)]
    if isinstance(data, LiveTrace):
        return live_trace(data, fancy)
    if isinstance(data, Started):
        return started(data, fancy, hint)
    if isinstance(data, Released):
        return released(data, fancy)
    if isinstance(data, ExecLoaded):
        return [exec_loaded(data)]
    if name == "state":
        return [to_json(data)]
    if name == "ps":
        return ["\n".join(map(str, data)) or "(no process)"]
    if name == "wait":
        return [exit_info(data, fancy)]
    if name in ("pause", "resume"):
        return [f"{name}d {data['id']}: {data['status']}"]
    if name == "kill":
        out = [f"sent {data['signal']} to " + (f"every process of {data['id']}" if data["all"]
                                                else f"the init of {data['id']}")]
        if data["init_alive"]:
            out.append(f"its init still runs: as PID 1 of its pid namespace it gets only the "
                       f"signals it handles (`kill KILL` ends it)")
        return out
    if name == "containers":
        return [containers(data, fancy)]
    if isinstance(data, Exec):
        if data.waiting:
            return [f"the container is paused: exec {data.pid} waits, frozen, until `resume`; "
                    "then its process runs, detached"]
        if data.status is None:
            return [f"exec process {data.pid} running (detached)"]
        return ([data.stdout.rstrip("\n")] if data.stdout else []) + [f"exit status {data.status}"]
    if name == "inspect":
        topic = pick(o.args.pos[0], TOPICS + ("all",), "topic")
        if topic != "all":
            return [TOPIC_RENDERERS[topic](data, fancy)]
        return [x for t, d in data.items() for x in (f"== {t}", TOPIC_RENDERERS[t](d, fancy))]
    if name == "verify":
        from ocish.verify.render import report
        return [report(data, fancy)]
    if name == "seccomp":
        from ocish.seccomp.render import render
        return [render(data)]
    if isinstance(data, DiffResult):
        return [diff(data.lines, fancy) if data.lines else data.why]
    if isinstance(data, (Setting, list)):
        return [setting(data)]
    return [to_json(data)]
