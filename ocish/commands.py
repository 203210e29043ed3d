"""The shell's commands: ONE registry that serves the prompt, scripts and completion.

A `Command` is registered once in COMMANDS: its name, aliases, usage, help and examples, the
flags it takes, whether it returns data (then `--json` prints that data), whether an empty line
at the terminal repeats it (gdb), how its arguments complete and how its data renders. The
handlers are the `do_*` methods of `Commands`: each takes its parsed arguments and returns plain
data (dataclasses, dicts, lists) and never prints. `Commands.run(line)` resolves and runs one
line and returns an `Outcome` (the data, or the one-line error that made the command fail, and
the news noticed around it: the container process died, an exec'd process exited). The shell
renders outcomes; a script (replay) compares their data with its expectations; the completer
asks the registry. Model: pdb's do_* methods, pgcli's registered special commands.
"""
from __future__ import annotations

import difflib
import os
import shlex
import signal
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

from ocish import facts
from ocish.debugger import Debugger, News
from ocish.inspect import TOPICS
from ocish.variables import expand_line, split_words
from runtime.errors import OcishError

SETTINGS = ("errexit", "trace", "watch", "catch")
_FATAL = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
          signal.SIGUSR2, signal.SIGALRM}


@dataclass
class Args:
    """A command line after the registry's parser: positional words, flag values, --json."""
    pos: list[str]
    opts: dict[str, Any] = field(default_factory=dict)
    json: bool = False


@dataclass(frozen=True)
class Command:
    name: str
    aliases: tuple[str, ...]
    usage: str
    summary: str
    detail: str = ""
    examples: tuple[str, ...] = ()
    flags: tuple[tuple[str, str, bool], ...] = ()  # (flag, dest, takes a value)
    data: bool = True                 # it returns data: --json prints it
    repeat: bool = False              # an empty line at the terminal runs it again (gdb)
    complete: Callable[[Debugger, list[str]], list[str]] | None = None
    parse: Callable[["Command", list[str]], Args] | None = None  # its own parser (exec)
    raw: bool = False                 # it reads the rest of the line itself (expect)


@dataclass
class Outcome:
    """What one line did: `data` (what --json prints), or `error` when the command failed
    (one line, no prefix); `news` noticed before and after it."""
    line: str
    command: str = ""                 # the command's name; "" for an empty or comment line
    args: Args | None = None
    data: Any = None
    error: str = ""
    news: list[News] = field(default_factory=list)
    exception: BaseException | None = None   # the error behind `error` (a StageError ...)
    where: str = ""                   # where setup stood after it (Debugger.position())

    @property
    def ok(self) -> bool:
        return not self.error


@dataclass
class Setting:
    name: str
    value: str


@dataclass
class HelpEntry:
    name: str
    aliases: list[str]
    usage: str
    summary: str
    detail: str = ""
    examples: list[str] = field(default_factory=list)


@dataclass
class Banner:
    """A loaded (or attached) container: where the session stands."""
    bundle: str
    id: str
    root: str
    pid: int
    status: str
    next: str = ""
    text: str = ""
    foreign: str = ""                 # another runtime's container: "runc container web"
    read_only: bool = False           # ... held read-only (no --allow-changes)


@dataclass
class Deleted:
    what: str                         # "breakpoint" or "container"
    ids: list[str]


@dataclass
class Fact:
    """One row of `--paths`: a path expectations can name, and its value now."""
    path: str
    value: Any


@dataclass
class BundleResult:
    """What `bundle init|set|unset` did to a bundle."""
    action: str
    bundle: str
    pointer: str = ""
    value: Any = None
    notes: list[str] = field(default_factory=list)  # a member runtime-spec does not know ...


@dataclass
class Recorded:
    """What `record FILE` wrote."""
    file: str
    commands: int
    expectations: int
    left_out: list[str] = field(default_factory=list)   # failed lines, not replayed


@dataclass
class DiffResult:
    before: str
    after: str
    lines: list[str]
    why: str = ""                     # why there is no diff


class Failed(OcishError):
    """A command that failed and still has data to show (a run of steps that ended on a
    failed one): the Outcome gets both."""

    def __init__(self, data: Any, message: str) -> None:
        super().__init__(message)
        self.data = data


# -- argument parsing and resolution -------------------------------------------------------------

def parse_args(cmd: Command, words: list[str]) -> Args:
    """Flags anywhere (`--flag value`, `--flag=value`; `--` ends them), --json when the command
    returns data; an unknown flag, or --json on a command without data, is an error."""
    a = Args([])
    table = {f: (dest, takes) for f, dest, takes in cmd.flags}
    i, only_pos = 0, False
    while i < len(words):
        w = words[i]
        i += 1
        if only_pos or not w.startswith("-") or w == "-" or w[1:].isdigit():
            a.pos.append(w)
            continue
        if w == "--":
            only_pos = True
            continue
        flag, eq, value = w.partition("=")
        if flag == "--json" and not eq:
            if not cmd.data:
                raise OcishError(f"{cmd.name} returns no data: --json does not apply to it")
            a.json = True
            continue
        if flag not in table:
            takes = ", ".join([f for f, _, _ in cmd.flags] + (["--json"] if cmd.data else []))
            raise OcishError(f"{cmd.name}: unknown flag {flag}" +
                             (f" (it takes {takes})" if takes else " (it takes none)") +
                             f"; usage: {cmd.usage}")
        dest, takes_value = table[flag]
        if takes_value:
            if not eq:
                if i >= len(words):
                    raise OcishError(f"{cmd.name}: {flag} needs a value; usage: {cmd.usage}")
                value, i = words[i], i + 1
            a.opts[dest] = value
        elif eq:
            raise OcishError(f"{cmd.name}: {flag} takes no value")
        else:
            a.opts[dest] = True
    return a


def bang(line: str) -> str:
    """The line stripped, gdb's `!COMMAND` (no space) read as `! COMMAND` (shell)."""
    line = line.strip()
    return "! " + line[1:] if line.startswith("!") and line[1:2] not in ("", " ") else line


def pick(word: str, choices: list[str] | tuple[str, ...], what: str) -> str:
    """`word`, or the one choice it is a prefix of; else an error that lists the choices and
    says which one was probably meant."""
    if word in choices:
        return word
    matches = [c for c in choices if c.startswith(word)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise OcishError(f"ambiguous {what} {word!r}: {', '.join(matches)}")
    close = difflib.get_close_matches(word, list(choices), n=2, cutoff=0.6)
    hint = f": did you mean {' or '.join(close)}?" if close else f": one of {', '.join(choices)}"
    raise OcishError(f"unknown {what} {word!r}{hint}")


def resolve(word: str) -> Command:
    """A command by name or alias, or by an unambiguous prefix of its name (gdb); an error
    names the candidates, or the closest names for a typo."""
    if word in ALIASES:
        return BY_NAME[ALIASES[word]]
    matches = sorted(c.name for c in COMMANDS if c.name.startswith(word))
    if len(matches) == 1:
        return BY_NAME[matches[0]]
    if matches:
        raise OcishError(f"ambiguous command {word!r}: {', '.join(matches)}")
    close = []
    for name in difflib.get_close_matches(word, list(ALIASES), n=3, cutoff=0.6):
        if ALIASES[name] not in close:
            close.append(ALIASES[name])
    hint = f": did you mean {' or '.join(close)}?" if close else ""
    raise OcishError(f"unknown command {word!r}{hint} (`help` lists the commands)")


def _number(text: str, what: str, least: int = 0) -> int:
    """A decimal integer (a sign allowed) of at least `least`; else an error naming `what`
    (gdb: "Argument must be a positive number" for `step 0` ...)."""
    digits = text[1:] if text[:1] in "+-" else text
    if not (digits.isascii() and digits.isdigit()):
        raise OcishError(f"{what} must be a number, not {text!r}")
    value = int(text)
    if value < least:
        floor = "a positive number" if least == 1 else f"{least} or more"
        raise OcishError(f"{what} must be {floor}, not {value}")
    return value


# -- the handlers --------------------------------------------------------------------------------

class Commands:
    """The handlers over one Debugger. `emit(kind, obj, as_json)` hands over what appears while
    a command runs (kind "step": a StepReport; "news": News) so the shell can show it at once;
    `confirm(question)` asks the user (scripts: always yes); `interrupted()` says whether
    Ctrl-C was pressed during a run of steps."""

    def __init__(self, dbg: Debugger, emit: Callable[[str, Any, bool], None] | None = None,
                 confirm: Callable[[str], bool] | None = None,
                 interrupted: Callable[[], bool] | None = None) -> None:
        self.dbg = dbg
        self.emit = emit or (lambda kind, obj, as_json: None)
        self.confirm = confirm or (lambda question: True)
        self.interrupted = interrupted or (lambda: False)
        self.errexit = False
        self.done = False              # quit ran
        self.width = 80                # help wraps to this (the shell sets the terminal's)
        self.capture_exec = False      # exec's output in its data (scripts), not on our stdout
        self._json = False
        self.vars: dict[str, str] = {}   # $bundle, $scriptdir ... (ocish/variables.py)
        self.default_id = ""           # the container id `load` uses when given none
        self.history: list[Outcome] = []  # every command run, for `record`
        self.made_bundles: set[str] = set()   # bundles `bundle init` made: `bundle set` edits them
        self.stage_order: list[str] = []  # the setup stages, in order (`record` outlives them)
        self._workdir = ""

    def workdir(self) -> str:
        """The session's scratch directory ($tmp), made on first use, removed by close()."""
        if not self._workdir:
            import tempfile
            self._workdir = tempfile.mkdtemp(prefix="ocish-session-")
            os.chmod(self._workdir, 0o755)  # a bundle in it may be used by mapped ids
        return self._workdir

    def close(self) -> None:
        """Remove what the session made besides its container: the scratch directory, once
        the mounts a `shell` command left in it (a script that failed before its own umount)
        are detached; with one that cannot be, the directory stays, since rmtree would
        descend into whatever that mount shows."""
        if self._workdir:
            import shutil
            if _detach_mounts_under(self._workdir):
                shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = ""

    def variable(self, name: str) -> str:
        """The value of $name: the session's variables, then the environment."""
        d = self.dbg
        if name in self.vars:
            return self.vars[name]
        if name == "id" and (d.cid or self.default_id):
            return d.cid or self.default_id
        if name == "root":
            return d.root
        if name == "pid" and d.container_pid() > 0:
            return str(d.container_pid())
        if name == "rootfs":
            return self._rootfs()
        if name == "tmp":
            return self.workdir()
        if name in ("bundle", "id", "pid"):
            raise OcishError(f"${name} is not set yet: " + (
                "load a bundle, build one with `bundle init`, or give replay --bundle"
                if name == "bundle" else "load a bundle first"))
        if name in os.environ:
            return os.environ[name]
        raise OcishError(f"unknown variable ${name} (session variables: $bundle $id $rootfs "
                         "$root $pid $tmp $scriptdir; or the environment's)")

    def _rootfs(self) -> str:
        d = self.dbg
        if d.setup is not None:
            return d.setup.ctx.rootfs
        if d.st is not None and d.st.get("rootfs"):
            return d.st["rootfs"]
        bundle = self.variable("bundle")
        import json
        try:
            with open(os.path.join(bundle, "config.json")) as f:
                path = (json.load(f).get("root") or {}).get("path") or "rootfs"
        except (OSError, ValueError, AttributeError):
            path = "rootfs"
        return os.path.normpath(os.path.join(bundle, path))

    def run(self, line: str, history: bool = True) -> Outcome:
        """Run one line (a `#` starts a comment, $variables expand); never raises: a failure
        is the Outcome's error (Ctrl-C during the command too). `history`: keep it for
        `record`."""
        out = Outcome(line)
        self._news(out)
        first, rest = (bang(line).split(None, 1) + ["", ""])[:2]
        if not first or first.startswith("#"):
            return out
        try:
            cmd = resolve(first)
            out.command = cmd.name
            if cmd.raw:
                out.args = Args([rest.strip()])
            else:
                try:
                    words = split_words(expand_line(line, self.variable))
                except ValueError as e:
                    raise OcishError(f"cannot parse the line: {str(e).lower()}") from None
                out.args = (cmd.parse or parse_args)(cmd, words[1:])
            self._json = out.args.json
            out.data = getattr(self, f"do_{cmd.name}")(out.args)
        except Failed as e:
            out.data, out.error, out.exception = e.data, str(e), e.__cause__ or e
        except OcishError as e:
            out.error, out.exception = str(e), e
        except OSError as e:
            out.error = (f"{e.filename + ': ' if e.filename else ''}"
                         f"{os.strerror(e.errno).lower() if e.errno else e}")
        except KeyboardInterrupt:
            out.error = "interrupted"
        except Exception as e:  # a bug of ours must not kill the shell and leak the container
            out.error = f"internal error: {type(e).__name__}: {e}"
        self._news(out)
        if history and out.command:
            out.where = self.dbg.position()
            if self.dbg.engine is not None:
                self.stage_order = [st.name for st in self.dbg.engine.stages]
            self.history.append(out)
        return out

    def _news(self, out: Outcome) -> None:
        for n in self.dbg.news():
            out.news.append(n)
            self.emit("news", n, False)

    # -- setup ---------------------------------------------------------------------------------
    def do_help(self, a: Args):
        if a.pos:
            c = resolve(a.pos[0])
            return HelpEntry(c.name, list(c.aliases), c.usage, c.summary, c.detail,
                             list(c.examples))
        return [HelpEntry(c.name, list(c.aliases), c.usage, c.summary) for c in COMMANDS]

    def do_stages(self, a: Args):
        if a.opts.get("paths"):
            return self._paths("stages", facts.stages_view(self.dbg.pipeline()))
        return self.dbg.pipeline()

    @staticmethod
    def _paths(source: str, view: Any) -> list[Fact]:
        return [Fact(p, v) for p, v in facts.flatten(view, source)]

    def do_info(self, a: Args):
        what = pick(a.pos[0], ("breakpoints", "stages"), "info topic") if a.pos else "breakpoints"
        return self.dbg.breakpoints if what == "breakpoints" else self.dbg.pipeline()

    def do_explain(self, a: Args):
        return self.dbg.explain(a.pos[0] if a.pos else None)

    def _advance(self, mode: str, **kw):
        run = self.dbg.advance(mode, on_step=lambda r: self.emit("step", r, self._json),
                               interrupted=self.interrupted, **kw)
        failed = next((r for r in run.steps if r.error is not None and not r.reoffered), None)
        if failed is not None:
            raise Failed(run, self.dbg.death_text(failed.death) if failed.death
                         else str(failed.error))
        return run

    def do_step(self, a: Args):
        count = _number(a.pos[0], "the step count", 1) if a.pos else 1
        return self._advance("step", count=count)

    def do_next(self, a: Args):
        return self._advance("next")

    def do_until(self, a: Args):
        if not a.pos:
            return self._advance("next")
        return self._advance("until", stage=a.pos[0], item=a.pos[1] if len(a.pos) > 1 else "")

    def do_continue(self, a: Args):
        if self.dbg.held is not None:  # at a `catch exec` stop: let the process run
            return self.dbg.release()
        return self._advance("continue")

    def do_break(self, a: Args, temporary: bool = False):
        if not a.pos:
            return self.dbg.breakpoints
        where, cond = a.pos, ""
        if "if" in a.pos:  # gdb's `break LOCATION if COND`
            at = a.pos.index("if")
            where, words = a.pos[:at], a.pos[at + 1:]
            if not where or not words:
                raise OcishError(f"usage: {BY_NAME['break'].usage}")
            from ocish import condition
            cond = condition.join(words)
        return self.dbg.add_breakpoint(where, temporary, cond)

    def do_tbreak(self, a: Args):
        if not a.pos:
            raise OcishError(f"usage: {BY_NAME['tbreak'].usage}")
        return self.do_break(a, temporary=True)

    def _numbers(self, a: Args) -> list[int]:
        return ([_number(w, "a breakpoint number", 1) for w in a.pos]
                or [b.number for b in self.dbg.breakpoints])

    def do_disable(self, a: Args):
        bps = [self.dbg.breakpoint(n) for n in self._numbers(a)]
        for b in bps:
            b.enabled = False
        return bps

    def do_enable(self, a: Args):
        bps = [self.dbg.breakpoint(n) for n in self._numbers(a)]
        for b in bps:
            b.enabled = True
        return bps

    def do_ignore(self, a: Args):
        if len(a.pos) != 2:
            raise OcishError(f"usage: {BY_NAME['ignore'].usage}")
        bp = self.dbg.breakpoint(_number(a.pos[0], "a breakpoint number", 1))
        bp.ignore = _number(a.pos[1], "the ignore count")
        return bp

    def do_delete(self, a: Args):
        if a.pos:
            nums = [_number(w, "a breakpoint number (delete without arguments deletes the "
                            "container)", 1)
                    for w in a.pos]
            for n in nums:
                self.dbg.breakpoint(n)  # all exist, or none is deleted
            return Deleted("breakpoint", [str(self.dbg.delete_breakpoint(n).number) for n in nums])
        self.dbg.delete(bool(a.opts.get("force")))
        return Deleted("container", [self.dbg.cid])

    def do_restart(self, a: Args):
        self.dbg.restart(self._replacing("restart", "Start it from the beginning? (y or n) "))
        return self.banner()

    def do_load(self, a: Args):
        if len(a.pos) != 1:
            raise OcishError(f"usage: {BY_NAME['load'].usage}")
        if not os.path.exists(a.pos[0]) and not a.opts.get("id"):
            attached = self._load_running(a.pos[0])
            if attached is not None:
                return attached
        self.dbg.load(a.pos[0], a.opts.get("id") or self.default_id or None,
                      replacing=self._replacing("load", f"Load {a.pos[0]} anyway? (y or n) "))
        self.vars["bundle"] = self.dbg.bundle
        return self.banner()

    def _load_running(self, ref: str) -> Banner | None:
        """`load ID|NAME|PID` of a running container (no such bundle path): `attach` it,
        read-only; None when nothing runs by that name (load then says the bundle is
        missing)."""
        try:
            self.dbg.find_container(ref, None, None)
        except OcishError:
            return None
        return self.do_attach(Args([ref]))

    def _replacing(self, action: str, ask: str) -> Callable[[], None]:
        """What runs once a load, attach or restart is sure to work, before the held container
        goes: a created, running or paused one is deleted only when the user says so on a
        terminal (gdb: "The program being debugged has been started already. Start it from
        the beginning? (y or n)"); piped, it goes and the session says what was removed. An
        attached container is left as it is (gdb detaches), but restart replaces it."""
        def ask_first() -> None:
            d = self.dbg
            status, pid = d.status(), d.container_pid()
            what = f"container {d.cid} ({status}" + (f", pid {pid})" if pid > 0 else ")")
            if d.attached and action != "restart":
                self.emit("news", News("removed", 0, f"{what} detached (left as it is)"), False)
                return
            if status in ("created", "running", "paused") and not self.confirm(
                    f"The container being debugged has been {'started' if d.started else 'created'}"
                    f" already: {what} will be deleted.\n{ask}"):
                raise OcishError(f"not confirmed: {what} is kept")
            self.emit("news", News("removed", 0, f"{what} deleted: `{action}` replaces it"),
                      False)
        return ask_first
    def note_load(self, made: bool, image: str = "") -> None:
        """The session began with a load by `ocish debug` (not a typed command): kept for
        `record` as the commands that do the same (`bundle init`, when the shell built the
        bundle, from `image` with --image, then `load`)."""
        d = self.dbg
        self.vars["bundle"] = d.bundle
        if made:
            self.made_bundles.add(d.bundle)
            line = f"bundle init --image {shlex.quote(image)}" if image else "bundle init -- sh"
            self.history.append(Outcome(line, "bundle", Args(["init"]),
                                        BundleResult("init", d.bundle)))
        self.history.append(Outcome(f"load {shlex.quote(d.bundle)}", "load", Args([d.bundle]),
                                    self.banner()))

    def note_attach(self) -> None:
        """The session began with `ocish attach ID` (not a typed command): kept for `record`
        as a typed `attach` is."""
        self.history.append(Outcome(f"attach {shlex.quote(self.dbg.cid)}", "attach",
                                    Args([self.dbg.cid]), self.banner()))

    def do_attach(self, a: Args):
        if len(a.pos) != 1:
            raise OcishError(f"usage: {BY_NAME['attach'].usage}")
        self.dbg.attach(a.pos[0], self._replacing(
            "attach", f"Attach to container {a.pos[0]} anyway? (y or n) "),
            runtime=a.opts.get("runtime"), root=a.opts.get("root"),
            allow_changes=bool(a.opts.get("allow_changes")))
        return self.banner()

    def banner(self) -> Banner:
        d = self.dbg
        stop = d.where()
        f = d.foreign
        return Banner(d.bundle, d.cid, f.root if f else d.root, d.container_pid(), d.status(),
                      stop.next, stop.text, f.label if f else "",
                      bool(f and not f.allow_changes))

    def do_quit(self, a: Args):
        keep = bool(a.opts.get("keep"))
        d, status = self.dbg, self.dbg.status()
        if keep and d.in_setup:
            raise OcishError(_cannot_keep(d))
        if not keep and status in ("created", "running", "paused"):
            fate = "detached (left as it is)" if d.attached else "deleted"
            if not self.confirm(f"A debugging session is active.\n\n\tcontainer {d.cid} "
                                f"({status}, pid {d.container_pid()}) will be {fate}.\n\n"
                                "Quit anyway? (y or n) "):
                raise OcishError("not confirmed: the session goes on (`quit --keep` keeps "
                                 "the container)")
        for note in d.teardown(keep=keep):
            self.emit("news", News("kept", 0, note), False)
        self.done = True

    # -- lifecycle -----------------------------------------------------------------------------
    def do_start(self, a: Args):
        return self.dbg.start()

    def do_state(self, a: Args):
        st = self.dbg.oci_state(a.pos[0] if a.pos else None)
        return self._paths("state", st) if a.opts.get("paths") else st

    def do_ps(self, a: Args):
        pids = self.dbg.ps(a.pos[0] if a.pos else None)
        return self._paths("ps", pids) + [Fact("ps.count", len(pids))] if a.opts.get("paths") else pids

    def do_pause(self, a: Args):
        self.dbg.pause()
        return self.dbg.oci_state()

    def do_resume(self, a: Args):
        self.dbg.resume()
        return self.dbg.oci_state()

    def do_kill(self, a: Args):
        from runtime.cli import parse_signal
        num = parse_signal(a.pos[0] if a.pos else "SIGTERM")
        self.dbg.kill(num, bool(a.opts.get("all")))
        try:
            name = signal.Signals(num).name
        except ValueError:  # a real-time signal
            name = str(num)
        # a fatal signal the init survives is worth a word: the PID 1 of a pid namespace only
        # gets the signals it has a handler for (SIGKILL and SIGSTOP aside), pid_namespaces(7)
        pid = self.dbg.container_pid()
        alive = num in _FATAL and not self.dbg.await_death(pid, 0.2)
        return {"id": self.dbg.cid, "signal": name, "all": bool(a.opts.get("all")),
                "init_alive": alive}

    def do_wait(self, a: Args):
        timeout = float(_number(a.pos[0], "the timeout")) if a.pos else 10.0
        self.dbg.oci_state()  # created, or it says why there is nothing to wait for
        pid = self.dbg.container_pid()
        if not self.dbg.await_death(pid, timeout):
            raise OcishError(f"the container process {pid} still runs after {timeout:g} s")
        for n in self.dbg.news():  # its death is told here, not before the next command
            self.emit("news", n, False)
        return self.dbg.exit_info(self.dbg.death.when if self.dbg.death else "")

    def do_containers(self, a: Args):
        from runtime import lifecycle
        return lifecycle.list_states(self.dbg.root)

    def do_exec(self, a: Args):
        o = a.opts
        if o["step"] or self.dbg.exec_breakpoints():
            if o["detach"] or o["id"] or o["ignore_paused"]:
                raise OcishError("exec --step (or an exec:STAGE breakpoint) steps an exec in "
                                 "the loaded container: without -d, --id, --ignore-paused")
            loaded = self.dbg.exec_load(a.pos, user=o["user"], cwd=o["cwd"], env=o["env"])
            if o["step"]:
                return loaded
            return self._advance("continue")  # to the exec:STAGE breakpoint
        devnull = -1
        if o["detach"] or not sys.stdin.isatty():  # never the shell's own input (a script)
            devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        sys.stdout.flush()  # its output comes after what we printed
        sys.stderr.flush()
        try:
            return self.dbg.exec(a.pos, o["id"], detach=o["detach"], user=o["user"],
                                 cwd=o["cwd"], env=o["env"], ignore_paused=o["ignore_paused"],
                                 stdin_fd=devnull if devnull >= 0 else None,
                                 capture=self.capture_exec)
        finally:
            if devnull >= 0:
                os.close(devnull)

    def do_shell(self, a: Args):
        """gdb's `shell COMMAND`: one host command line through /bin/sh -c, in the session's
        own namespaces (the host's, not the container's: `exec` runs in those), $variables
        expanded first. Its output is the terminal's, or kept in the result when the session
        captures exec's output (a script): what it wrote until sh exited; stdin is /dev/null
        without a terminal. A non-zero exit status is data, not a failure, as for `exec`."""
        from ocish.debugger import Exec
        from ocish.variables import expand_line
        line = expand_line(a.pos[0], self.variable).strip() if a.pos else ""
        if not line or line.startswith("#"):
            raise OcishError(f"usage: {BY_NAME['shell'].usage}")
        import subprocess
        import tempfile
        sys.stdout.flush()
        sys.stderr.flush()
        stdin = None if sys.stdin.isatty() else subprocess.DEVNULL  # never a script's input
        # captured to files, not pipes: what sh leaves running in the background (`runc run
        # -d`, `cmd &`) keeps its stdout, and reading a pipe to its end would wait for it
        files = [tempfile.TemporaryFile(), tempfile.TemporaryFile()] if self.capture_exec else []
        try:
            proc = subprocess.Popen(["/bin/sh", "-c", line], stdin=stdin,
                                    stdout=files[0] if files else None,
                                    stderr=files[1] if files else None)
            try:
                proc.wait()
            except BaseException:  # Ctrl-C reached it too (same process group): never leave it
                proc.kill()
                proc.wait()
                raise
            out, err = [(f.seek(0), f.read().decode(errors="replace"))[1] for f in files] or \
                [None, None]
        finally:
            for f in files:
                f.close()
        status = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
        return Exec(proc.pid, status, out, err)

    # -- inspection ----------------------------------------------------------------------------
    def do_inspect(self, a: Args):
        from ocish import inspect
        if not a.pos:
            raise OcishError(f"usage: {BY_NAME['inspect'].usage} (topics: {' '.join(TOPICS)})")
        topic = pick(a.pos[0], TOPICS + ("all",), "topic")
        other = inspect.Target(_number(a.opts["pid"], "--pid", 1)) if "pid" in a.opts else None
        t = self.dbg.target()
        dead = other is None and t is not None and self.dbg.is_dead(t.pid)
        if dead:  # a zombie not reaped yet: reap it, so that `exit` has its wait status
            self.dbg.await_death(t.pid, 0.0)
        out = {}
        for name in TOPICS if topic == "all" else (topic,):
            if topic == "all" and dead and name not in inspect.AFTER_DEATH:
                continue  # `all` of a dead process: what still answers
            target = other or self.dbg.readable(name)
            try:
                out[name] = inspect.read(name, target)
            except (FileNotFoundError, ProcessLookupError):
                raise OcishError(f"process {target.pid} is gone") from None
            death = self.dbg.death
            if name == "exit" and other is None and death is not None and death.pid == target.pid:
                out[name].when = death.when
        if a.opts.get("paths"):
            return [Fact(p, v) for t, d in out.items()
                    for p, v in facts.flatten(facts.topic_view(t, d), t)]
        return out if topic == "all" else out[topic]

    def do_verify(self, a: Args):
        from ocish.verify import verify
        from ocish.verify.session import subject_of
        if len(a.pos) > 1:
            raise OcishError(f"usage: {BY_NAME['verify'].usage}")
        report = verify(subject_of(self.dbg, a.pos[0] if a.pos else ""))
        if report.mismatches:
            raise Failed(report, f"verify: {report.mismatch_text()}")
        return report

    def do_seccomp(self, a: Args):
        from ocish import seccomp
        if not a.pos:
            raise OcishError(f"usage: {BY_NAME['seccomp'].usage}")
        action = pick(a.pos[0], ("check", "explain"), "seccomp command")
        seccomp.validate(action, a.pos[1:])
        return seccomp.answer(seccomp.session_source(self.dbg, a.opts), action, a.pos[1:])

    def do_diff(self, a: Args):
        lines, why = self.dbg.last_diff()
        stops = self.dbg.stops
        before = stops[-2].label if len(stops) > 1 else ""
        after = stops[-1].label if stops else ""
        return DiffResult(before, after, lines, why)

    def _switch(self, a: Args, name: str, values: tuple[str, ...]) -> str:
        if len(a.pos) != 1:
            raise OcishError(f"usage: {name} {'|'.join(values)}")
        return pick(a.pos[0], values, f"{name} setting")

    def do_watch(self, a: Args):
        self.dbg.watching = self._switch(a, "watch", ("on", "off")) == "on"
        return Setting("watch", "on" if self.dbg.watching else "off")

    def do_trace(self, a: Args):
        if "for" in a.opts or "pid" in a.opts:
            if a.pos:
                raise OcishError("trace --for takes no on|all|off; usage: "
                                 f"{BY_NAME['trace'].usage}")
            seconds = float(_number(a.opts.get("for", "5"), "--for", 1))
            pid = _number(a.opts["pid"], "--pid", 1) if "pid" in a.opts else 0
            return self.dbg.trace_live(seconds, pid, "state" if a.opts.get("state") else "all")
        value = self._switch(a, "trace", ("on", "off", "all"))
        self.dbg.trace_mode = {"on": "state", "all": "all", "off": ""}[value]
        return Setting("trace", value)

    def do_catch(self, a: Args):
        d = self.dbg
        if a.pos == ["off"]:
            d.catching, d.catch_exec = False, 0
            return Setting("catch", "off")
        if not a.pos or a.pos[0] != "exec" or len(a.pos) > 2:
            raise OcishError(f"usage: {BY_NAME['catch'].usage}")
        d.catching = True
        d.catch_exec = _number(a.pos[1], "the call count", 1) if len(a.pos) > 1 else 0
        return Setting("catch", f"exec {d.catch_exec}" if d.catch_exec else "exec")

    def do_set(self, a: Args):
        if not a.pos:
            return self.settings()
        name = pick(a.pos[0], SETTINGS, "setting")
        if name != "errexit":  # the same as the command of that name
            return getattr(self, f"do_{name}")(Args(a.pos[1:]))
        if len(a.pos) != 2:
            raise OcishError("usage: set errexit on|off")
        self.errexit = pick(a.pos[1], ("on", "off"), "errexit setting") == "on"
        return Setting("errexit", "on" if self.errexit else "off")

    # -- scripts: expectations, recording, bundles ------------------------------------------
    def source(self, name: str) -> Any:
        """The view of an expectation's source (facts.SOURCES) now."""
        if name == "status":
            return self.dbg.status()
        if name == "state":
            return self.dbg.oci_state()
        if name == "ps":
            return self.dbg.ps()
        if name == "stages":
            return facts.stages_view(self.dbg.pipeline())
        return facts.topic_view(name, self.do_inspect(Args([name])))

    def do_expect(self, a: Args):
        from ocish import expect
        exp = expect.parse(a.pos[0])
        checked = expect.evaluate(exp, self.source, lambda line: self.run(line, history=False),
                                  self.variable)
        if not checked.ok:
            raise Failed(checked, f"expectation failed: {checked.message}")
        return checked

    def do_record(self, a: Args):
        if len(a.pos) != 1:
            raise OcishError(f"usage: {BY_NAME['record'].usage}")
        from ocish import record
        return record.write(self, a.pos[0], bool(a.opts.get("expect")))

    def do_bundle(self, a: Args):
        from ocish import bundle
        action = a.pos[0]
        if action == "init":
            d = a.opts["dir"] or os.path.join(self.workdir(),
                                              f"bundle{len(self.made_bundles) + 1}")
            loaded = self.dbg.bundle if self.dbg.setup is not None or self.dbg.st else ""
            if a.opts["force"] and loaded and os.path.realpath(d) == os.path.realpath(loaded):
                raise OcishError(f"bundle init --force: {d} is the bundle of the loaded "
                                 f"container {self.dbg.cid}: `delete -f` it (or `quit`) first")
            if a.opts.get("image"):
                from ocish.image.build import build
                path = build(d, a.opts["image"], a.opts["args"] or None,
                             force=a.opts["force"], rootless=a.opts["rootless"])
            else:
                path = bundle.init_bundle(d, a.opts["args"] or None, force=a.opts["force"],
                                          rootless=a.opts["rootless"])
            self.made_bundles.add(path)
            self.vars["bundle"] = path
            return BundleResult("init", path)
        path = self.variable("bundle")
        if path not in self.made_bundles:
            raise OcishError(f"bundle {action}: {path} was not made by `bundle init` in this "
                             "session: only such bundles are edited (copy it, or edit its "
                             "config.json)")
        value = bundle.edit_config(path, a.opts["pointer"], a.opts.get("value"),
                                   remove=action == "unset")
        notes = bundle.unknown_members_at(path, a.opts["pointer"])
        d = self.dbg
        if d.bundle == path and (d.setup is not None or d.st is not None):
            notes.append("the loaded container was set up from config.json as it was: "
                         "`restart` reads it again")
        return BundleResult(action, path, a.opts["pointer"], value, notes)

    def settings(self) -> list[Setting]:
        d = self.dbg
        trace = {"": "off", "state": "on", "all": "all"}[d.trace_mode]
        return [Setting("errexit", "on" if self.errexit else "off"), Setting("trace", trace),
                Setting("watch", "on" if d.watching else "off"),
                Setting("catch", "off" if not d.catching else
                        f"exec {d.catch_exec}" if d.catch_exec else "exec")]


# -- exec's own parser: its flags end at the command -------------------------------------------

EXEC_USAGE = ("exec [-d] [-u UID[:GID]] [--cwd D] [-e K=V]... [--id ID] [--ignore-paused] [--step] "
              "[--json] CMD [ARGS...]")
_EXEC_VALUES = {"-u": "user", "--user": "user", "--cwd": "cwd", "-e": "env", "--env": "env",
                "--id": "id"}


def parse_exec(cmd: Command | None, args: list[str]) -> Args:
    """exec's flags (`--flag value`, `--flag=value`, `--` ends them), then CMD [ARGS...]."""
    out = Args([], {"detach": False, "user": None, "cwd": None, "env": [], "id": None,
                    "ignore_paused": False, "step": False})
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "-":
        flag, eq, value = args[i].partition("=")
        i += 1
        if flag == "--" and not eq:
            break
        if flag in ("-d", "--detach") and not eq:
            out.opts["detach"] = True
            continue
        if flag == "--ignore-paused" and not eq:
            out.opts["ignore_paused"] = True
            continue
        if flag == "--step" and not eq:
            out.opts["step"] = True
            continue
        if flag == "--json" and not eq:
            out.json = True
            continue
        dest = _EXEC_VALUES.get(flag)
        if dest is None:
            raise OcishError(f"exec: unknown flag {args[i - 1]}; usage: {EXEC_USAGE}")
        if not eq:
            if i >= len(args):
                raise OcishError(f"exec: {flag} needs a value; usage: {EXEC_USAGE}")
            value, i = args[i], i + 1
        if dest == "env":
            out.opts["env"].append(value)
        else:
            out.opts[dest] = value
    out.pos = args[i:]
    if not out.pos:
        raise OcishError(f"exec: no command; usage: {EXEC_USAGE}")
    return out


BUNDLE_USAGE = ("bundle init [DIR] [--image REF] [--rootless] [--force] [-- CMD ARGS...] | "
                "bundle set POINTER VALUE | bundle unset POINTER")


def parse_bundle(cmd: Command | None, args: list[str]) -> Args:
    """`init [DIR] [--image REF] [--rootless] [--force] [-- CMD...]`, `set POINTER VALUE`, `unset
    POINTER`."""
    if not args or args[0] not in ("init", "set", "unset"):
        raise OcishError(f"usage: {BUNDLE_USAGE}")
    action, rest = args[0], args[1:]
    cut = rest.index("--") if action == "init" and "--" in rest else len(rest)
    as_json = "--json" in rest[:cut]  # what it did, as data: every command with data takes it
    rest = [w for w in rest[:cut] if w != "--json"] + rest[cut:]
    if action == "init":
        opts: dict[str, Any] = {"dir": None, "args": [], "rootless": False, "image": None,
                                "force": False}
        if "--" in rest:
            at = rest.index("--")
            rest, opts["args"] = rest[:at], rest[at + 1:]
        words = iter(rest)
        for w in words:
            if w in ("--rootless", "--force"):
                opts[w[2:]] = True
            elif w == "--image" or w.startswith("--image="):
                opts["image"] = w.partition("=")[2] if "=" in w else next(words, None)
                if not opts["image"]:
                    raise OcishError(f"bundle init: --image needs a REF; usage: {BUNDLE_USAGE}")
            elif w.startswith("-") or opts["dir"]:
                raise OcishError(f"bundle init: unexpected {w!r}; usage: {BUNDLE_USAGE}")
            else:
                opts["dir"] = w
        return Args([action], opts, as_json)
    want = 2 if action == "set" else 1
    if action == "set" and len(rest) > 2 and rest[0].startswith("/"):
        words = " ".join(rest[1:])
        raise OcishError(f"bundle set: the value is {len(rest) - 1} words "
                         f"({words if len(words) <= 40 else words[:40] + '...'}): quote it as "
                         "one, JSON in single "
                         """quotes: bundle set /linux/namespaces/- '{"type": "user"}'""")
    if len(rest) != want or not rest[0].startswith("/"):
        raise OcishError(f"usage: bundle {action} POINTER{' VALUE' if want == 2 else ''} "
                         "(POINTER a JSON pointer into config.json: /linux/resources/pids/limit)")
    return Args([action], {"pointer": rest[0], "value": rest[1] if want == 2 else None}, as_json)


# -- completion of arguments ---------------------------------------------------------------------

def _cannot_keep(d: Debugger) -> str:
    """Why `quit --keep` refuses a container still being set up: it has no state dir nor
    init to wait for `start` yet (runc keeps nothing from a `create` that did not finish)."""
    if d.setup.engine.failed or d.death is not None:
        return (f"quit --keep: container {d.cid} failed during setup: there is no container "
                "to keep; `quit` removes what setup made, `restart` sets it up again")
    nxt = d.where().next
    return (f"quit --keep: container {d.cid} is still being set up (next: {nxt}), not yet "
            "created: `continue` finishes the setup, then `quit --keep` keeps it; "
            "`quit` removes it")


def _stage_names(d: Debugger) -> list[str]:
    return [s.name for s in d.engine.stages] if d.engine else []


def _complete_break(d: Debugger, before: list[str]) -> list[str]:
    if not before:
        from ocish.exec_step import PREFIX, stage_names
        return _stage_names(d) + ["mount", "on"] + [PREFIX + n for n in stage_names()]
    if before == ["on"]:
        return ["error"]
    if before == ["mount"] and d.setup:
        return [m.get("destination", "") for m in d.setup.ctx.spec.get("mounts") or []]
    if len(before) == 1 and d.engine:
        return [item for s, item in d.engine.steps if s.name == before[0] and item]
    return []


def _container_ids(d: Debugger, before: list[str]) -> list[str]:
    from runtime import state
    return state.list_ids(d.root) if not before else []


def _breakpoint_numbers(d: Debugger, before: list[str]) -> list[str]:
    return [str(b.number) for b in d.breakpoints]


def _complete_exec(d: Debugger, before: list[str]) -> list[str]:
    if before[-1:] == ["--id"]:
        from runtime import state
        return state.list_ids(d.root)
    return ["-d", "--user", "--cwd", "--env", "--id", "--ignore-paused", "--json"]


def _first(words: list[str]) -> Callable[[Debugger, list[str]], list[str]]:
    return lambda d, before: list(words) if not before else []


def _complete_set(d: Debugger, before: list[str]) -> list[str]:
    if not before:
        return list(SETTINGS)
    if len(before) == 1:
        return {"trace": ["on", "off", "all"], "catch": ["exec", "off"]}.get(before[0], ["on", "off"])
    return []


# -- the registry --------------------------------------------------------------------------------

C = Command
COMMANDS: list[Command] = [
    C("help", ("h", "?"), "help [COMMAND]", "list commands, or explain one with examples",
      examples=("help", "help break", "help x")),
    C("stages", ("list", "l"), "stages",
      "the setup pipeline: done [x], next -->, failed [!], breakpoints bN",
      "One line per stage, with the first line of what it will do with this config;\n"
      "stages made of items (mounts: rootfs, /mounts/N, devices) list each item.\n"
      "--paths lists them as facts for `expect` (stages.mounts.status).",
      ("stages", "stages --json", "stages --paths"), flags=(("--paths", "paths", False),),
      repeat=True),
    C("info", ("i",), "info breakpoints|stages", "list breakpoints (hits, enabled, ignore "
      "counts), or the stages", examples=("info breakpoints", "info b", "info stages --json"),
      complete=_first(["breakpoints", "stages"]), repeat=True),
    C("explain", ("e",), "explain [STAGE]",
      "what a stage (default: the next) will do with this config, in full",
      examples=("explain", "explain mounts"), complete=lambda d, b: _stage_names(d) if not b else [],
      repeat=True),
    C("step", ("s",), "step [N]", "run the next step (one item of a stage), or N steps",
      "Runs the next item through the runtime's own engine, then stops. With `trace on`\n"
      "the container side's state-changing syscalls are listed; with `watch on` the\n"
      "diff of its kernel state. After the last step the container is created (state.json\n"
      "written, as `ocish create` does) and the lifecycle commands apply. Like every way of\n"
      "running steps, it stops early at a breakpoint, a failure or the container process's\n"
      "death.", ("step", "s 3", "step --json"), repeat=True),
    C("next", ("n",), "next", "run the rest of the current stage (all its items), then stop",
      "Stopped before the first item of a stage, `next` runs the whole stage; in the middle\n"
      "of one (mounts /mounts/3), it runs the items left. It stops before the next stage,\n"
      "or earlier at a breakpoint, a failure or the container process's death.",
      ("next", "n"), repeat=True),
    C("until", ("u",), "until STAGE [ITEM]",
      "run steps until the next one is STAGE (or its ITEM); without STAGE, as `next`",
      "Like gdb's `until LOCATION`: a one-off stop, no breakpoint left behind. Breakpoints\n"
      "and failures on the way still stop it.", ("until pivot", "until mounts /mounts/3"),
      complete=lambda d, b: _stage_names(d) if not b else _complete_break(d, b)),
    C("continue", ("c", "cont"), "continue",
      "run steps until a breakpoint, a failure, the process's death or the end of setup; "
      "at a `catch exec` stop, let the process run",
      examples=("continue", "c"), repeat=True),
    C("break", ("b",), "break [STAGE [ITEM] | mount DESTINATION | exec:STAGE [ITEM]] [if COND] "
      "| break on error",
      "stop before a stage, one of its items, the mount of DESTINATION, or a failing step",
      "`break mounts` stops before the stage's first item; `break mounts /mounts/2`\n"
      "before that item; `break mount /proc` before the mount whose destination is\n"
      "/proc; `break exec:caps` before stage caps of an exec (`exec --step`, or any\n"
      "`exec` while such a breakpoint is set). Without arguments: list breakpoints.\n"
      "`if COND` (gdb's): checked before every step of the stage, it stops only where\n"
      "COND holds. COND is expect's language over the step's fields: stage, item and,\n"
      "when the item is a config.json object, its fields (a mount's type, source,\n"
      "destination, options): `break mounts if type == bind, destination matches ^/mnt`.\n"
      "As in gdb, a false condition is no hit and uses no `ignore` count.\n"
      "`break on error`: a step that fails while its process lives is made the next step\n"
      "again and the run stops before it, with the failing call; inspect what the\n"
      "failure met, then `continue` runs it once more (a second failure stands), or\n"
      "fix config.json and `restart`.",
      ("break pivot", "break mounts /mounts/2", "break mount /proc",
       "break mounts if type == bind", "break exec:join", "break on error"),
      complete=_complete_break),
    C("tbreak", (), "tbreak STAGE [ITEM] [if COND] | tbreak mount DESTINATION | tbreak on error",
      "a temporary breakpoint: deleted when it stops a run",
      examples=("tbreak caps", "tbreak mounts if destination == /proc"),
      complete=_complete_break),
    C("disable", (), "disable [N...]", "disable breakpoints N... (all without N): they stay, "
      "but do not stop runs", examples=("disable 2", "disable"), complete=_breakpoint_numbers),
    C("enable", (), "enable [N...]", "enable breakpoints N... (all without N)",
      examples=("enable 2",), complete=_breakpoint_numbers),
    C("ignore", (), "ignore N COUNT", "let breakpoint N pass its next COUNT crossings",
      "As gdb's: every crossing counts as a hit; the first COUNT do not stop the run.",
      ("ignore 1 2",), complete=_breakpoint_numbers),
    C("delete", ("d",), "delete N... | delete [-f]",
      "delete breakpoints N...; without a number, delete the container (-f: even running)",
      "`delete 2` removes breakpoint 2, as in gdb. `delete` (or `delete -f` for a\n"
      "running container) deletes the container through the runtime, as\n"
      "`ocish delete` does: process, cgroups and state dir.", ("delete 2", "delete -f"),
      flags=(("-f", "force", False), ("--force", "force", False)), complete=_breakpoint_numbers),
    C("restart", ("r", "reload"), "restart",
      "tear the container down and set it up again, config.json read again (breakpoints stay)",
      examples=("restart",)),
    C("quit", ("q", "exit"), "quit [--keep]",
      "tear everything down and leave; --keep leaves the container (created or started)",
      "On a terminal, with a created or running container, it asks first (gdb's \"A\n"
      "debugging session is active\"); Ctrl-D quits the same way. `--keep` leaves the\n"
      "container as it is and says how to get back to it (`ocish attach ID`) or remove it.\n"
      "A container still being set up cannot be kept (it is no OCI container yet): `quit\n"
      "--keep` refuses and the session goes on; `continue` sets it up to created.\n"
      "A container this session attached to is left as it is (gdb detaches).",
      ("quit", "quit --keep"), flags=(("--keep", "keep", False),), data=False),
    C("load", (), "load BUNDLE [--id ID]",
      "set up a bundle's container, stopped before its first stage",
      examples=("load /tmp/bundle", "load . --id web"), flags=(("--id", "id", True),)),
    C("attach", (), "attach ID|NAME|PID [--runtime runc|crun|ocish] [--root R] [--allow-changes]",
      "take over container ID under --root (created, running ...), or inspect another "
      "runtime's read-only",
      "An ocish container under --root is taken over: start, exec, inspect, kill, delete.\n"
      "Any other is another runtime's: runc's (state.json under --root, default /run/runc),\n"
      "crun's (/run/crun), containerd's and Docker's runc state, a podman or Docker name\n"
      "(`podman inspect`), or a host PID. It is held read-only: every `inspect` topic,\n"
      "`diff` (what changed since the last diff), `trace --for S`, `exec` (through the\n"
      "runtime's exec pipeline: setns(2) into its init's namespaces, its cgroups, its\n"
      "config.json's process), `state`, `ps`. start, kill, pause, resume and delete are\n"
      "refused unless --allow-changes, and then run its own runtime's command (`runc kill`,\n"
      "`podman pause` ...). `quit` detaches: the container is left as it is.",
      examples=("attach web", "attach web --runtime runc --root /run/runc", "attach 4242",
                "attach my-podman-container"),
      flags=(("--runtime", "runtime", True), ("--root", "root", True),
             ("--allow-changes", "allow_changes", False)), complete=_container_ids),
    C("start", (), "start", "run the created container's process (`catch exec` traces its "
      "execve); says at once if it died", examples=("start", "start --json")),
    C("state", (), "state [ID] [--paths]", "the runtime state JSON, as `ocish state`",
      examples=("state", "state other-container", "state --paths"),
      flags=(("--paths", "paths", False),), complete=_container_ids, repeat=True),
    C("ps", (), "ps [ID] [--paths]", "pids in the container's cgroup",
      examples=("ps", "ps --json"), flags=(("--paths", "paths", False),),
      complete=_container_ids, repeat=True),
    C("wait", (), "wait [SECONDS]",
      "wait until the container's process ends (default: up to 10 s), then say how",
      "As `docker wait`: returns the exit data (`inspect exit`), so a script can check how\n"
      "its process ended: `expect wait -> exit_code == 3`. Fails when it still runs.",
      ("wait", "wait 30", "expect wait -> signal == SIGKILL")),
    C("pause", (), "pause", "freeze the container's cgroup"),
    C("resume", (), "resume", "thaw the container's cgroup"),
    C("kill", (), "kill [--all] [SIGNAL]",
      "signal the container's init (all its processes with --all); default SIGTERM",
      examples=("kill", "kill KILL", "kill --all 9"),
      flags=(("--all", "all", False), ("-a", "all", False)),
      complete=lambda d, b: ["--all"] + [s.name for s in signal.Signals]),
    C("containers", ("ls",), "containers", "the containers under --root, as `ocish list`",
      examples=("containers --json",), repeat=True),
    C("inspect", ("x",), "inspect TOPIC|all [--json] [--pid PID] [--paths]",
      "the container process's kernel state: " + " ".join(TOPICS),
      "ns       namespace inodes beside the host's (this shell's)\n"
      "ids      uid_map, gid_map, setgroups, uids, gids, groups\n"
      "mounts   mountinfo as a tree relative to the container's root\n"
      "cgroup   membership; limits and usage in human units with their config.json\n"
      "         pointers, usage at the limit flagged, failcnt, OOM kills, pids\n"
      "caps     the five capability sets, decoded\n"
      "seccomp  mode, NoNewPrivs, the filters disassembled (ptrace)\n"
      "rlimits  /proc/PID/limits\n"
      "fds      open fds; those leading back to the host are flagged\n"
      "env      the environment\n"
      "proc     state, parent, threads, pids, command line\n"
      "net      links, addresses, routes of its network namespace (pyroute2)\n"
      "exit     alive, or how it ended (exit status, signal, the OOM killer)\n"
      "exe      the program as loaded: /proc/PID/exe, ELF entry, interpreter, mapped files\n"
      "auxv     the auxiliary vector of its execve (AT_ENTRY, AT_EXECFN ...), decoded\n"
      "After the process died, cgroup and exit still answer. A topic may be shortened\n"
      "(`x mo`). --json prints the reader's data; --pid inspects another process;\n"
      "--paths lists every fact of the topic as `expect` names it (ns.pid,\n"
      "mounts[/proc].fstype, rlimits.nofile.soft) with its value now.",
      ("inspect mounts", "x cgroup", "inspect ns --json", "inspect caps --pid 1",
       "inspect mounts --paths"),
      flags=(("--pid", "pid", True), ("--paths", "paths", False)),
      complete=lambda d, b: list(TOPICS) + ["all"] if not b else ["--json", "--pid", "--paths"],
      repeat=True),
    C("verify", (), "verify [BUNDLE] [--json]",
      "compare what config.json asked for with what the kernel holds for the container",
      "For a created or running container: each namespace (new, joined, inherited), the id\n"
      "maps, hostname, every mount (type, flags, data, propagation, read-only), masked and\n"
      "read-only paths, device nodes, cgroup limits, the five capability sets,\n"
      "no_new_privs, seccomp mode and filter count, rlimits, oom_score_adj, user, groups,\n"
      "umask, cwd and env: a table of item, asked, actual, verdict. What the runtime\n"
      "normalises is compared as the config means it (capabilities after execve, HOME,\n"
      "the default /dev nodes, limits rounded to pages). BUNDLE: compare with that\n"
      "bundle's config.json instead of the one the container was created with. A\n"
      "mismatch makes the command fail (`set errexit on` stops a script there).\n"
      "`ocish verify ID` does the same from the command line, also for runc's containers.",
      ("verify", "verify --json", "verify /tmp/changed-bundle"),
      complete=lambda d, b: ["--json"]),

    C("seccomp", (), "seccomp check SYSCALL [ARG...] | seccomp explain [--pid P | --bundle B "
      "| --config]", "what the seccomp filter does with a call (action, errno, the BPF path), "
      "or its rules by action",
      "`check` runs the container process's loaded filters (read with\n"
      "PTRACE_SECCOMP_GET_FILTER) in a classic-BPF interpreter over the call's seccomp_data\n"
      "on this architecture: the action (SCMP_ACT_* and SECCOMP_RET_*), the errno, the\n"
      "config.json rule that decided and each BPF instruction evaluated. ARG: a number\n"
      "(decimal, 0x hex, -100) or flag names joined by | (CLONE_NEWUSER|CLONE_NEWNS,\n"
      "PER_LINUX32). `explain` lists the rules grouped by action in config.json's terms\n"
      "(reconstructed from the BPF when the filter is not what config.json compiles to).\n"
      "Before the filter is loaded (stages seccomp to exec) both answer from config.json's\n"
      "profile, compiled as stage seccomp does; --config always does; --pid P reads\n"
      "another process, --bundle B compiles another bundle's profile. Calls the process\n"
      "needs to start (execve, the dynamic loader's first calls) that the filter stops are\n"
      "flagged.",
      ("seccomp check mkdir", "seccomp check personality PER_LINUX32",
       "seccomp check clone CLONE_NEWUSER", "seccomp explain", "seccomp check --config execve"),
      flags=(("--pid", "pid", True), ("--bundle", "bundle", True), ("--config", "config", False)),
      complete=lambda d, b: ["check", "explain"] if not b else ["--pid", "--bundle", "--config",
                                                                "--json"]),
    C("diff", (), "diff",
      "what changed in the container's kernel state between the last two stops",
      examples=("diff", "diff --json"), repeat=True),
    C("watch", (), "watch on|off", "show the diff after every step",
      complete=_first(["on", "off"])),
    C("trace", ("t",), "trace on|all|off | trace --for SECONDS [--pid PID] [--state]",
      "ptrace the container side during the next steps: `on` lists the calls that change "
      "state, `all` every call",
      "`on` lists mount, umount2, pivot_root, unshare, setns, clone, sethostname, capset,\n"
      "prctl, seccomp, mount_setattr, set*id, setgroups, setrlimit/prlimit64, mknod,\n"
      "symlink, chdir, chroot, keyctl, umask, execve and opens that may write, with\n"
      "decoded arguments (CAP_*, MS_*, CLONE_*, the namespace behind a setns fd, capset's\n"
      "sets) and results; reads and interpreter noise are hidden (`trace all` shows\n"
      "them). Runs of alike calls fold into one line with a count. The tracer detaches\n"
      "after every step. Host-side stages (cgroup, idmap) run in this shell and are not\n"
      "traced.\n"
      "`trace --for SECONDS` traces the running container's init (or --pid PID) and the\n"
      "children it forks for SECONDS (Ctrl-C ends it sooner), every call (--state: only\n"
      "those that change state), then detaches: seized with PTRACE_SEIZE, never stopped\n"
      "by a signal it could see, and never left stopped, even when the shell dies.",
      ("trace on", "trace all", "trace off", "trace --for 2", "trace --for 5 --pid 4242"),
      flags=(("--for", "for", True), ("--pid", "pid", True), ("--state", "state", False)),
      complete=_first(["on", "all", "off", "--for"])),
    C("catch", (), "catch exec [N] | catch off",
      "at `start`, stop the process right after its execve; `continue` lets it run",
      "gdb's `catch exec`: `start` holds the container's process at its execve's\n"
      "PTRACE_EVENT_EXEC stop (/proc/PID/status: t (tracing stop)), the new program mapped\n"
      "and not one instruction of it run: `inspect exe` (the binary, its entry point, the\n"
      "interpreter, mapped files), `inspect auxv`, `inspect fds` and every other topic show\n"
      "it as it starts; the toolbar says where it is stopped. `continue` detaches and it\n"
      "runs; with N, the first N calls of the new program are traced and shown first.\n"
      "quit, a teardown or the shell's death detach it too: it is never left stopped.\n"
      "A stepped exec (`exec --step`) is caught the same way after its exec stage.\n"
      "The calls the init made before its execve (exec.fifo, the execve) are shown at\n"
      "the stop.", examples=("catch exec", "catch exec 30", "catch off"),
      complete=_first(["exec", "off"])),
    C("set", (), "set [errexit|trace|watch|catch VALUE]",
      "session settings; `set errexit on` ends a script at its first failed command",
      "Without arguments: every setting. `set errexit on` (or `ocish debug --errexit`) makes\n"
      "a failed command end the session at once, exit status 1, as `set -e` does in sh.",
      ("set", "set errexit on"), complete=_complete_set),
    C("shell", ("!",), "shell COMMAND-LINE",
      "run a command line on the host, through /bin/sh (gdb's `shell`)",
      "The rest of the line goes to /bin/sh -c as typed, after $variables ($bundle,\n"
      "$rootfs, $pid, $id ...) are expanded: pipes, redirections and quotes are sh's. It\n"
      "runs in the shell's own namespaces and cgroup, as the host: `exec` runs a command\n"
      "inside the container instead. Prints its output, then `exit status N` (128+N:\n"
      "killed by signal N); in a script its stdout and stderr are its data, as exec's:\n"
      "`expect shell hostname -> stdout != ocish`. A non-zero status does not fail it.",
      ("shell hostname", "shell cat /proc/$pid/status | grep ^Cap",
       "! ls -l /proc/$pid/ns", "expect shell ip link -> stdout contains lo"),
      raw=True),
    C("exec", (), EXEC_USAGE, "run one more process in the container, as `ocish exec` does",
      "Runs the runtime's own exec pipeline (cgroup-join, lsm, seccomp, join, terminal,\n"
      "process, attributes, bounding, user, caps, exec): the process joins the cgroups\n"
      "and namespaces of the container's init. The container must be created (setup\n"
      "complete, before or after `start`) or running; --id ID execs in any container\n"
      "under --root instead of the loaded one.\n"
      "The process is the container's config.json process with CMD ARGS as args:\n"
      "  -u UID[:GID]  run as this user (numbers)\n"
      "  --cwd D       working directory\n"
      "  -e K=V        add to the environment (repeatable)\n"
      "  --ignore-paused  exec in a paused container (as runc's): the process joins the\n"
      "                frozen cgroup and waits, frozen, for `resume` (use -d with it)\n"
      "  -d            do not wait: print its host pid. It runs in its own process group\n"
      "                (ignoring SIGINT, as the init does); the shell reaps it and says\n"
      "                so, and kills it when it tears the container down\n"
      "Its stdout and stderr are the shell's; its stdin is the shell's terminal (none\n"
      "with -d or without a terminal: /dev/null); no -t. The shell waits for it, forwards\n"
      "signals (Ctrl-C) to it, then prints `exit status N` (128+N: killed by signal N).\n"
      "Errors before it runs read `exec failed: ...`, as from `ocish exec`.\n"
      "  --step        load the exec stopped before its first stage: `step`, `next`,\n"
      "                `until exec:STAGE`, `continue`, `stages`, `explain`, `inspect`\n"
      "                then work on its pipeline and its process as on create's;\n"
      "                breakpoints on it are `break exec:STAGE` (an `exec` while one is\n"
      "                set steps too, to it). Its process runs detached once its exec\n"
      "                stage is done; the shell reaps it and says how it ended.",
      ("exec hostname", "exec -u 1000 -- id", "exec -d sleep 60", "exec --step sh"),
      complete=_complete_exec,
      parse=parse_exec),
    C("expect", (), "expect FACT OP VALUE[, ...] | expect COMMAND -> CLAUSE[, ...]",
      "check a fact of the container, or what a command returns (scripts' assertions)",
      "FACT is a source and a path: ns.pid, caps.effective, mounts[/proc].fstype,\n"
      "rlimits.nofile.soft, cgroup.memory.limit, env.PATH, state.status, status, ps.count.\n"
      "Sources: the inspect topics, state, ps, stages, status; `inspect TOPIC --paths`,\n"
      "`state --paths` and `stages --paths` list the paths with their values.\n"
      "OP: == != < <= > >= contains has matches in (`not contains`, `not has`,\n"
      "`not matches`, `not in`). VALUE: a number (64MiB), true, false, null, a word, a\n"
      "\"quoted string\", a [list], or `host`: the same fact of the host (this process).\n"
      "COMMAND -> CLAUSES runs the command and checks its data (exec: status, stdout,\n"
      "stderr; step/continue: reason, next, steps; start: running, exit); the clause\n"
      "`fails` expects it to fail, and the paths are then the failure's: error, stage,\n"
      "op, target, errno (ENOENT), pointer, died, how. $variables expand.",
      ("expect ns.pid != host", "expect status == created",
       "expect caps.effective contains CAP_KILL, caps.ambient == []",
       "expect exec id -u -> status == 0, stdout == 1000",
       "expect continue -> fails, stage == mounts, errno == ENODEV, pointer == /mounts/1"),
      raw=True, complete=lambda d, b: list(facts.SOURCES) if not b else []),
    C("record", (), "record FILE [--expect]",
      "write this session so far as a script that `ocish replay` runs to the same stops",
      "Commands that change the container (load, bundle, break, step ..., start, exec,\n"
      "kill) are written as typed, paths of this machine as $bundle, $id, $rootfs; a\n"
      "failed step as `expect ... -> fails, stage == ...`. --expect also turns what you\n"
      "inspected (inspect, state, ps, stages, exec's output, each stop) into expectations:\n"
      "values of this run (pids, inodes, usage, times) as relations (!= host, > 0,\n"
      "matches), stable ones (maps, mount types, caps, limits, status) as literals.",
      ("record session.ocish", "record --expect regression.ocish"),
      flags=(("--expect", "expect", False),)),
    C("bundle", (), BUNDLE_USAGE,
      "build a busybox bundle (offline) and edit its config.json: scripts make what they need",
      "`bundle init` builds a bundle in the session's scratch directory ($tmp) or DIR, as\n"
      "`ocish bundle init` does, and sets $bundle to it; `load $bundle` sets it up.\n"
      "--force replaces what DIR holds (a bundle of an earlier session).\n"
      "--image REF builds it from an image (oci:DIR[:TAG], a docker/podman save tar,\n"
      "podman:NAME, docker:NAME) with skopeo and umoci; a CMD replaces the image's Cmd.\n"
      "`bundle set POINTER VALUE` writes VALUE (JSON, or else a string) at the JSON\n"
      "pointer in its config.json (/mounts/- appends); `bundle unset POINTER` removes it.\n"
      "Only bundles made by `bundle init` in this session are edited; `restart` reads\n"
      "config.json again.",
      ("bundle init -- sleep 100", "bundle init --image oci:/srv/img:web",
       "bundle set /linux/resources/pids/limit 32",
       "bundle set /hostname web", "bundle unset /linux/namespaces/4"),
      parse=parse_bundle, complete=_first(["init", "set", "unset"])),
]
BY_NAME = {c.name: c for c in COMMANDS}
ALIASES = {a: c.name for c in COMMANDS for a in (c.name,) + c.aliases}


def _detach_mounts_under(path: str) -> bool:
    """umount2(MNT_DETACH) every mount below `path`, deepest first (a detached parent takes its
    children along: EINVAL for them then). False when one could not be detached."""
    import errno as errnomod
    from runtime.linux import procfs
    from runtime.linux import syscalls as S
    prefix = path.rstrip("/") + "/"
    points = [e.mountpoint for e in procfs.mountinfo() if e.mountpoint.startswith(prefix)]
    for mp in sorted(points, key=len, reverse=True):
        try:
            S.umount2(mp, S.MNT_DETACH)
        except OSError as e:
            if e.errno not in (errnomod.EINVAL, errnomod.ENOENT):
                return False
    return True
