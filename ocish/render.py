"""Rendering of the debugger's data: plain text, or rich renderables on a terminal.

Every function takes the data a reader or the debugger returned and `fancy`: False gives plain
text that never depends on the terminal's width (scripted sessions and tests read it), True gives
a rich object (tables, trees, coloured diffs) for the interactive shell. Nothing here reads the
kernel or prints.
"""
from __future__ import annotations

import errno as errnomod
import json
import os
from dataclasses import asdict, is_dataclass
from typing import Any

from ocish.debugger import Breakpoint, StageRow, StepReport
from ocish.inspect.mounts import Mount, MountTree
from ocish.trace import Call, TraceResult
from runtime.errors import StageError

_MARK = {"done": "[x]", "next": "-->", "failed": "[!]", "pending": "[ ]"}
_STYLE = {"done": "green", "next": "bold yellow", "failed": "bold red", "pending": "dim"}


def to_json(data: Any) -> str:
    return json.dumps(asdict(data) if is_dataclass(data) else
                      [asdict(d) if is_dataclass(d) else d for d in data]
                      if isinstance(data, list) else data, indent=2)


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
    if not bps:
        return "no breakpoints"
    rows = [[str(b.number), b.stage, ", ".join(b.items) or "(first step)", b.label, str(b.hits)]
            for b in bps]
    headers = ["num", "stage", "items", "as typed", "hits"]
    return _table(headers, rows) if fancy else "\n".join(columns([headers] + rows, ""))


def stage_error(err: StageError, pid: int, fancy: bool):
    name = errnomod.errorcode.get(err.errno, "") if err.errno else ""
    why = f"{name} ({os.strerror(err.errno).lower()})" if err.errno else "-"
    rows = [["stage", err.stage], ["operation", err.op or "-"], ["target", err.target or "-"],
            ["errno", why], ["config", err.pointer or "-"]]
    if err.detail:
        rows.append(["detail", err.detail])
    tail = (f"the container process (pid {pid}) is still there, blocked: inspect it; "
            "`restart` or `quit` cleans up" if pid > 0 else "")
    if fancy:
        from rich.console import Group
        from rich.text import Text
        return Group(Text(f"✗ {err}", style="bold red"), _table(["", ""], rows),
                     Text(tail, style="dim"))
    return "\n".join([f"FAILED: {err}"] + columns(rows) + ([tail] if tail else []))


def trace(result: TraceResult, fancy: bool):
    if not fancy:
        lines = ["  trace: " + r.text() for r in result.records]
        if result.error:
            lines.append(f"  trace error: {result.error}")
        return "\n".join(lines or ["  trace: (no state-changing syscalls)"])
    from rich.text import Text
    out = Text()
    for r in result.records:
        if isinstance(r, Call):
            out.append("  ")
            out.append(r.name, "bold cyan")
            out.append(f"({', '.join(r.args)}) = ")
            out.append(r.result, "red" if r.errno else "green")
        else:
            out.append("  " + r.text(), "dim")
        out.append("\n")
    if result.error:
        out.append(f"  trace error: {result.error}\n", "red")
    return out if result.records or result.error else Text("  (no state-changing syscalls)", "dim")


def step_report(r: StepReport, pid: int, fancy: bool) -> list:
    """What one step did: its line, its trace, its diff (watch), or its failure."""
    where = f"{r.stage} {r.item}".strip()
    out: list = []
    if r.error is not None:
        out.append(stage_error(r.error, pid, fancy))
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


def cgroup(data, fancy: bool):
    member = [[m.controllers or "(v2)", m.path] for m in data.membership]
    limits = [[lim.label, lim.value, lim.file] for lim in data.limits]
    if fancy:
        from rich.console import Group
        return Group(_table(["hierarchy", "cgroup"], member, "membership"),
                     _table(["", "value", "file"], limits, "limits and usage"))
    return "\n".join(["membership (/proc/PID/cgroup):"] + columns(member)
                     + ["limits and usage:"] + (columns(limits) or ["  (no cgroup files)"]))


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


TOPIC_RENDERERS = {"ns": ns, "ids": ids, "mounts": mounts, "cgroup": cgroup, "caps": caps,
                   "seccomp": seccomp, "rlimits": rlimits, "fds": fds, "env": env, "proc": proc,
                   "net": net}


def containers(states: list[dict], fancy: bool):
    rows = [[s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"]] for s in states]
    headers = ["id", "pid", "status", "bundle", "created"]
    if not rows:
        return "no containers"
    return _table(headers, rows) if fancy else "\n".join(columns([headers] + rows, ""))
