"""`record FILE [--expect]`: the session so far as a script that `ocish replay` runs to the
same stops.

Every command the session ran is kept (Commands.history, with its data). Recording writes:
- what changes the container or the session, as typed: bundle, load, break and its kin, step,
  next, until, continue, start, exec, shell, kill, pause, resume, delete, restart, trace, watch, catch,
  set, and the user's own expectations;
- a step that failed as `expect LINE -> fails, stage == ..., errno == ..., pointer == ...`,
  since a replay treats an unexpected failure as a failed test;
- nothing of what only looks (inspect, state, ps, stages, explain, diff, help), unless
  --expect: then each look becomes expectations (ocish/snapshot.py), each stop `expect
  continue -> reason == breakpoint, next == "..."`, and each exec its status and output
  (its output only when it was captured: piped, not on a terminal), each `wait` the exit
  status; `start` stays a plain command: whether a short-lived process still runs when
  `start` returns is a race, not a fact (a `wait` after it records how it ended);
- a commented line for what failed and changed nothing (a typo, a bad breakpoint).
Paths of this machine become $bundle, $rootfs, $root and $id; the first bundle loaded from
outside the session is `load ${bundle:-/its/path}`, so `ocish replay FILE` runs it here and
`--bundle` points it elsewhere; a bundle the session built is built again by `bundle init`.
A replay cannot take over a container of this machine: an `attach ID` (typed, or the
`ocish attach ID` that opened the session) becomes a new container set up from the attached
one's bundle to the status it had then (`load`, `continue`; `start`, `pause` or `wait` after
them for a running, paused or stopped one), with its id and paths as variables.
"""
from __future__ import annotations

import os
import re
import shlex
import time
from typing import TYPE_CHECKING, Any

from ocish import facts, snapshot
from ocish.variables import split_words
from ocish.debugger import Exec, Run
from runtime.errors import OcishError

if TYPE_CHECKING:
    from ocish.commands import Commands, Outcome, Recorded

LOOKS = ("inspect", "state", "ps", "stages", "info", "explain", "diff", "help", "containers",
         "record")
STEPPING = ("step", "next", "until", "continue")
NOT_REPLAYED = ("quit",)
# an attached container's status -> the commands that bring a new one there after `continue`
AFTER_ATTACH = {"created": [], "running": ["start"], "paused": ["start", "pause"],
                "stopped": ["start", "wait"]}


class _Substitutions:
    """Values of this machine and run -> the variables that name them."""

    def __init__(self) -> None:
        self.pairs: list[tuple[str, str]] = []

    def add(self, value: str, name: str) -> None:
        if value and len(value) > 1 and all(v != value for v, _ in self.pairs):
            self.pairs.append((value, name))
            self.pairs.sort(key=lambda p: -len(p[0]))

    def __call__(self, text: str) -> str:
        for value, name in self.pairs:
            text = re.sub(r"(?<![\w.-])" + re.escape(value) + r"(?![\w-])",
                          lambda m: "${" + name + "}", text)
        return text


def _clauses(view: dict, keys: tuple[str, ...], subst) -> str:
    return ", ".join(f"{k} == {subst(facts.format_value(view[k]))}" for k in keys
                     if view.get(k) not in ("", None))


def _failure(out: "Outcome", subst) -> str:
    view = facts.failure_view(out.error, out.exception, out.data)
    extra = _clauses(view, ("stage", "errno", "pointer", "how"), subst)
    return f"expect {subst(out.line.strip())} -> fails" + (f", {extra}" if extra else "")


def _bundle_init(out: "Outcome") -> str:
    """`bundle init` without its DIR: built again in the replay's scratch directory."""
    words = split_words(out.line)
    rest, cmd = (words[2:], []) if "--" not in words else (
        words[2:words.index("--")], words[words.index("--"):])
    flags, it = [], iter(rest)
    for w in it:
        if w == "--image":  # its REF is kept: it is no DIR
            flags += [w, next(it, "")]
        elif w.startswith("-"):
            flags.append(w)
    return shlex.join(["bundle", "init"] + flags + cmd)


def lines_of(cmds: "Commands", expect: bool) -> tuple[list[str], int, int, list[str]]:
    """The script's lines; the number of commands, of expectations; the lines left out."""
    subst = _Substitutions()
    d = cmds.dbg
    out_lines: list[str] = []
    left_out: list[str] = []
    n_cmd = n_exp = 0
    external = ""                                # the first bundle loaded from outside
    for out in cmds.history:
        name, line = out.command, out.line.strip()
        if name in NOT_REPLAYED or name == "record":
            continue
        if not out.ok:
            if isinstance(out.data, Run):
                out_lines.append(_failure(out, subst))
                n_cmd, n_exp = n_cmd + 1, n_exp + 1
            else:
                left_out.append(line)
                out_lines.append(f"# not replayed, it failed ({out.error}): {line}")
            continue
        if name == "bundle" and out.data.action == "init":
            subst.add(out.data.bundle, "bundle")
            out_lines.append(_bundle_init(out))
            n_cmd += 1
            continue
        if name in ("load", "attach"):
            bundle = out.data.bundle
            if name == "attach":
                status = out.data.status
                if not bundle:  # a bare pid (ocish/foreign.py): nothing to set up again
                    raise OcishError(f"record: the session attached to {out.data.foreign}, "
                                     "whose config.json is unknown: a replay cannot set it up")
                if status not in AFTER_ATTACH:
                    raise OcishError(f"record: the session attached to container {out.data.id} "
                                     f"while it was {status}: a replay cannot set a new "
                                     "container up to that point")
                out_lines.append(f"# attached to container {out.data.id} ({status}): replayed "
                                 "as a new container from its bundle, set up to the same status")
            if bundle in cmds.made_bundles:
                out_lines.append("load $bundle")
            elif not external or external == bundle:
                external = bundle
                out_lines.append(f"load ${{bundle:-{bundle}}}")
            else:
                out_lines.append(f"load {shlex.quote(bundle)}")
            if name == "attach":
                out_lines += ["continue"] + AFTER_ATTACH[out.data.status]
                n_cmd += 1 + len(AFTER_ATTACH[out.data.status])
            subst.add(bundle, "bundle")
            subst.add(out.data.id, "id")
            rootfs = _rootfs(cmds)
            if rootfs:
                subst.add(rootfs, "rootfs")
            subst.add(d.root, "root")
            n_cmd += 1
            continue
        if name in LOOKS:
            if expect:
                new = _looked(out, subst, _context(cmds, out.where))
                out_lines += new
                n_exp += len(new)
            continue
        n_cmd += 1
        typed = subst(line)
        if expect and name in STEPPING and isinstance(out.data, Run):
            view = facts.run_view(out.data)
            clauses = _clauses(view, ("reason", "next"), subst)
            out_lines.append(f"expect {typed} -> {clauses}")
            n_exp += 1
        elif expect and name in ("exec", "shell") and isinstance(out.data, Exec) and out.data.status is not None:
            view = facts.command_view("exec", out.args, out.data)
            if out.data.stdout is None:  # on a terminal: the output went to it, not to us
                out_lines.append("# its output went to the terminal, not kept: add "
                                 "`, stdout == ...` to check it (piped, it is kept)")
            out_lines.append(f"expect {typed} -> status == {view['status']}"
                             + "".join(f", {k} == {subst(facts.format_value(view[k]))}"
                                       for k in ("stdout", "stderr") if view[k]))
            n_exp += 1
        elif expect and name == "wait":
            out_lines.append(f"expect {typed} -> how == {facts.quote(out.data.how)}")
            n_exp += 1
        else:
            out_lines.append(typed)
    return out_lines, n_cmd, n_exp, left_out


def _rootfs(cmds: "Commands") -> str:
    try:
        return cmds.variable("rootfs")
    except OcishError:
        return ""


def _context(cmds: "Commands", where: str) -> snapshot.Context:
    """The config, and which stages had run when the user looked (`where`: the position)."""
    d = cmds.dbg
    config = d.config()
    names = cmds.stage_order
    nxt = where.split()[0] if where else ""
    if where == "setup done" or nxt not in names:
        return snapshot.Context(config)
    return snapshot.Context(config, lambda stage: stage in names
                            and names.index(stage) < names.index(nxt))


def _looked(out: "Outcome", subst, ctx: snapshot.Context) -> list[str]:
    """The expectations that check again what one look showed."""
    from ocish.commands import pick
    name, data = out.command, out.data
    if out.args is not None and out.args.opts.get("paths"):
        return []  # a list of paths is a guide to writing expectations, not a fact to keep
    if name == "inspect":
        topic = pick(out.args.pos[0], facts.TOPICS + ("all",), "topic")
        lines = []
        for t, d in (data.items() if topic == "all" else [(topic, data)]):
            view = facts.topic_view(t, d)
            lines += snapshot.expectations(t, view, _host(t), subst, ctx)
        return lines
    if name == "state":
        return snapshot.expectations("state", facts.command_view(name, out.args, data), None,
                                     subst)
    if name == "ps" and not out.args.pos:
        return snapshot.expectations("ps", data, None, subst)
    if name in ("stages", "info") and isinstance(data, list) and data and hasattr(data[0], "items"):
        return snapshot.expectations("stages", facts.stages_view(data), None, subst)
    return []


def _host(topic: str) -> Any:
    try:
        return facts.host_view(topic)
    except (OSError, OcishError):
        return None


def write(cmds: "Commands", file: str, expect: bool) -> "Recorded":
    """Write the script to `file` (replacing it); raises OcishError when it cannot."""
    from ocish.commands import Recorded
    lines, n_cmd, n_exp, left_out = lines_of(cmds, expect)
    if not n_cmd:
        raise OcishError("nothing to record yet: load a bundle (`load BUNDLE`) first")
    head = [f"# recorded by ocish ({'record --expect' if expect else 'record'}) on "
            f"{time.strftime('%Y-%m-%d %H:%M:%S')}",
            f"# run it with: ocish replay {shlex.quote(file)}"]
    text = "\n".join(head + lines) + "\n"
    path = os.path.abspath(file)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise OcishError(f"record: {file}: {os.strerror(e.errno or 0).lower()}") from None
    return Recorded(path, n_cmd, n_exp, left_out)
