"""`ocish debug`, `ocish shell` and `ocish attach`: the interactive debugger's REPL.

The commands live in ocish/commands.py (one registry for the prompt, scripts and completion);
this module reads lines, runs them through that registry and renders what they return.

On a terminal the shell reads with prompt_toolkit (history, completion, a toolbar that shows the
container's status, its death included) and renders with rich; an empty line repeats the last
step, next, continue or inspect (gdb); `quit` and Ctrl-D ask before tearing down a created or
running container. Otherwise (stdin a pipe or file, --plain, or NO_COLOR) it reads one command
per line, echoes it after the prompt and prints plain text: data on stdout, errors, failures
and news on stderr; the session exits 1 when a command failed (at once with --errexit or
`set errexit on`, as sh's `set -e`), so sessions are scripts.

A bundle whose config.json the runtime refuses still opens the shell: every problem `ocish lint`
finds is listed, nothing is set up, and `restart` (alias `reload`) reads config.json again once
it is fixed (and lists the problems again while it is not).

Ctrl-C interrupts a command, never the shell: during a step it is deferred to the end of that
step (a step half done would desynchronise the engine and the container side). Ctrl-D, EOF,
`quit`, SIGTERM and SIGHUP all tear the container down.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
from contextlib import ExitStack, contextmanager
from typing import Any, Callable, Iterator

from ocish import render
from ocish.commands import Banner, Commands, Outcome, resolve
from ocish.debugger import Debugger, Exec, News, Run, StepReport
from ocish.variables import split_words
from runtime.cli import default_root
from runtime.errors import OcishError

PROMPT = "(ocish) "
HISTORY = os.path.expanduser("~/.local/state/ocish/history")
STEPPING = ("step", "next", "until", "continue")


class Shell:
    def __init__(self, root: str, fancy: bool, interactive: bool, errexit: bool = False,
                 quiet: bool = False) -> None:
        self.dbg = Debugger(root)
        self.fancy = fancy
        self.interactive = interactive
        self.quiet = quiet               # piped: no transcript (echo, banner, progress) at all
        self._interrupted = False
        self._failure_shown = False
        self._console = None
        if fancy:
            from rich.console import Console
            self._console = Console(highlight=False)
        self.commands = Commands(self.dbg, emit=self._emit, confirm=self._confirm,
                                 interrupted=lambda: self._interrupted)
        self.commands.errexit = errexit
        # a script's exec: the output is the command's data (and shown after it); on a
        # terminal the process may be interactive, its output goes straight to the terminal
        self.commands.capture_exec = not sys.stdin.isatty()
        self.failures: list[int] = []   # input line numbers of failed commands
        self.log = None                 # runtime.cli.Log of the global --log: errors too
        self.lineno = 0
        self._last_repeatable = ""
        self._confirm_session = None
        self._refused: set[str] = set()  # bundles whose config.json a load refused

    @property
    def done(self) -> bool:
        return self.commands.done

    def _width(self) -> int:
        if self._console is not None:
            return self._console.width
        return shutil.get_terminal_size((80, 24)).columns if sys.stdout.isatty() else 80

    # -- output ----------------------------------------------------------------------------------
    def show(self, obj, err: bool = False) -> None:
        """Print text or a rich renderable; plain mode sends `err` output to stderr."""
        if obj is None or obj == "":
            return
        if self._console is None:
            if err:
                sys.stdout.flush()
            print(obj, file=sys.stderr if err else sys.stdout, flush=True)
        elif isinstance(obj, str):
            self._console.print(obj, markup=False, highlight=False)
        else:
            self._console.print(obj)

    def transcript(self, obj) -> None:
        """What tells the session's course, not a command's data: the echoed command, the
        banner, each step's progress. On a terminal, as everything else; piped, on stderr
        (stdout carries only data: `printf 'inspect ns --json' | ocish debug B | jq` works),
        or nowhere with --quiet."""
        if self._console is not None:
            self.show(obj)
        elif not self.quiet:
            self.show(obj, err=True)

    def error(self, msg: str) -> None:
        if self.log is not None:
            self.log.write("error", msg)
        if self._console is None:
            sys.stdout.flush()
            print(f"error: {msg}", file=sys.stderr, flush=True)
        else:
            self._console.print(f"error: {msg}", style="bold red", markup=False)

    def note(self, msg: str) -> None:
        if self._console is None:
            sys.stdout.flush()
            print(msg, file=sys.stderr, flush=True)
        else:
            self._console.print(msg, style="dim", markup=False)

    def _emit(self, kind: str, obj: Any, as_json: bool) -> None:
        """What a command hands over while it runs: news at once; step reports unless --json."""
        if kind == "news":
            self._news(obj)
        elif kind == "step" and not as_json:
            self._step(obj)

    def _news(self, n: News) -> None:
        if n.kind == "died" and self._console is not None:
            self._console.print(n.text, style="bold red", markup=False)
        else:
            self.note(n.text)

    def _step(self, report: StepReport) -> None:
        failed = report.error is not None
        for block in render.step_report(report, self.dbg.container_pid(), self.fancy,
                                        self.dbg.diagnose_hint()):
            if failed:
                self.show(block, err=True)
            else:
                self.transcript(block)
        self._failure_shown = self._failure_shown or failed

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> int:
        """Read and run commands until quit or EOF; the session's exit status."""
        reader = self._prompt_reader() if self.interactive else self._line_reader()
        while not self.done:
            try:
                line = reader()
            except KeyboardInterrupt:
                continue  # Ctrl-C at the prompt: a fresh prompt
            except EOFError:
                if not self.interactive and not self.quiet:
                    print(file=sys.stderr, flush=True)
                line = "quit"
            self.lineno += 1
            if self.interactive and not line.strip() and self._last_repeatable:
                line = self._last_repeatable  # gdb: an empty line repeats the last command
            out = self.onecmd(line)
            if not out.ok and self.commands.errexit and not self.done:
                self.note(f"ocish: stopping at line {self.lineno} (errexit): the command failed")
                self.dbg.teardown()
                self.commands.done = True
                return 1
        return self.exit_status()

    def exit_status(self) -> int:
        """0, or 1 when a command of a non-interactive session failed (said on stderr)."""
        if not self.failures or self.interactive:
            return 0
        lines = ", ".join(str(n) if n else "0 (the bundle's load)" for n in self.failures[:10]) \
            + (", ..." if len(self.failures) > 10 else "")
        self.note(f"ocish: {len(self.failures)} command(s) failed (input line {lines})")
        return 1

    def _line_reader(self) -> Callable[[], str]:
        """Plain input: the prompt and the echo of what was read go to stderr (the transcript;
        a terminal echoes by itself), none with --quiet."""
        echo_off = sys.stdin.isatty()

        def read() -> str:
            if not self.quiet:
                sys.stdout.flush()
                sys.stderr.write(PROMPT)
                sys.stderr.flush()
            line = sys.stdin.readline()
            if not line:
                raise EOFError
            if not echo_off and not self.quiet:
                print(line.rstrip("\n"), file=sys.stderr, flush=True)
            return line
        return read

    def _prompt_reader(self) -> Callable[[], str]:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import FileHistory
        from ocish.completion import ShellCompleter
        os.makedirs(os.path.dirname(HISTORY), exist_ok=True)
        session = PromptSession(history=FileHistory(HISTORY), completer=ShellCompleter(self),
                                bottom_toolbar=self.toolbar, complete_while_typing=False,
                                refresh_interval=0.5)  # the toolbar follows a death while idle

        def watch() -> None:  # a task of the prompt's own event loop, cancelled when it ends
            session.app.create_background_task(self._watch_news())
        return lambda: session.prompt(PROMPT, pre_run=watch)

    async def _watch_news(self) -> None:
        """While the user is idle at the prompt, the container's death (and exec'd processes
        that end) is told at once, above the prompt (as gdb reports a stop while it waits);
        run_in_terminal then draws the prompt and toolbar anew below it, also clearing what
        the container's own output left on the screen."""
        import asyncio
        from prompt_toolkit.application import run_in_terminal
        while True:
            await asyncio.sleep(0.5)
            news = self.dbg.news()
            if news:
                await run_in_terminal(lambda: [self._news(n) for n in news])

    def _confirm(self, question: str) -> bool:
        """gdb's query(): asked on a terminal only; EOF answers yes."""
        if not self.interactive:
            return True
        from prompt_toolkit import PromptSession
        if self._confirm_session is None:
            self._confirm_session = PromptSession()
        head, _, ask = question.rpartition("\n")
        self.show(head)
        while True:
            try:
                answer = self._confirm_session.prompt(ask).strip().lower()
            except EOFError:
                return True
            except KeyboardInterrupt:
                return False
            if answer in ("y", "yes"):
                return True
            if answer in ("n", "no"):
                return False
            self.show("Please answer y or n.")

    def toolbar(self) -> str:
        d = self.dbg
        if d.load_error:
            return f" ocish | {d.bundle}: config.json refused: fix it, then restart "
        if not d.cid:
            return " ocish | no container: load BUNDLE "
        status = d.status()
        if status == "died" or (d.death is not None and status == "stopped"):
            status = f"{status}: {d.death.how}" if d.death else status
        flags = "".join(f" | {n} on" for n, on in (("trace", d.tracing), ("watch", d.watching)) if on)
        if d.held is not None:  # `catch exec`: where the process is stopped says more
            return f" ocish | id {d.cid} | {d.held.text} (pid {d.held.pid}) | continue runs it{flags} "
        if d.foreign is not None:  # no stages: whose it is, and whether it may be changed
            mode = "changes allowed" if d.foreign.allow_changes else "read-only"
            return f" ocish | {d.foreign.label} | status {status} | {mode}{flags} "
        return f" ocish | id {d.cid} | status {status} | stage {d.position()}{flags} "

    def onecmd(self, line: str) -> Outcome:
        """Run one line and show what it did; failures are counted for the exit status."""
        self._failure_shown = False
        self.commands.width = self._width()  # the terminal may have been resized
        stepping = _command_of(line) in STEPPING
        with self._deferred_sigint() if stepping else _nothing():
            out = self.commands.run(line)
        if out.ok:
            self._render(out)
            if out.command in ("restart", "load") and self.dbg.bundle in self._refused:
                self.still_wrong()  # a partial fix: what lint still finds
        else:
            if isinstance(out.data, Run) or out.command == "verify" and out.data is not None:
                self._render(out)  # the stop line (the failure block came with the step); the
                # table of a verify with mismatches
            if not self._failure_shown:
                self.error(out.error)
            if out.command in ("restart", "load") and self.dbg.refused:
                self.config_refused()
                self._refused.add(self.dbg.refused)
            self.failures.append(self.lineno)
        if out.command:
            cmd = resolve(out.command)
            self._last_repeatable = line if cmd.repeat else ""
        return out

    def _render(self, out: Outcome) -> None:
        if out.args is not None and out.args.json:
            if out.data is not None:
                self.show(render.to_json(out.data))
            return
        if isinstance(out.data, Exec) and out.data.stderr:
            self.show(out.data.stderr.rstrip("\n"), err=True)
        if isinstance(out.data, Banner):  # load, restart, attach: where the session stands
            self.transcript(render.banner(out.data))
            return
        blocks = render.command(out, self.fancy, self.commands.width,
                                self.dbg.diagnose_hint(), self.dbg.container_pid())
        status = ""
        if isinstance(out.data, Exec) and out.data.status is not None and blocks:
            *blocks, status = blocks  # `exit status N`: said, not the process's output
        for block in blocks:
            self.show(block)
        if status:
            self.note(status)

    @contextmanager
    def _deferred_sigint(self) -> Iterator[None]:
        """Ctrl-C during a step only sets a flag: the step finishes, then stepping stops; a
        hook it waits for is killed at once (the step then stops as interrupted)."""
        self._interrupted = False

        def handler(signum, frame) -> None:
            self._interrupted = True
            self.dbg.interrupt()  # a hook the step waits for is killed
        old = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, old)

    def banner(self) -> None:
        self.transcript(render.banner(self.commands.banner()))

    def config_refused(self) -> None:
        """The runtime refused a bundle's config.json: every problem lint finds (the one that
        stopped the load among them), and how to go on. Errors: on stderr when plain."""
        d = self.dbg
        self._lint_lines(d.refused or d.bundle)
        if d.holds:
            self.note(f"{d.kept_text()}: fix config.json, then `load` (or `restart`) again")
        else:
            self.note("nothing is set up: fix config.json, then `restart` (or `reload`) reads "
                      "it again")

    def still_wrong(self) -> None:
        """After a config.json the runtime refused was fixed far enough to load: what lint
        still finds (a mount option the kernel refuses fails at stage mounts), as when the
        shell opened on it; nothing when it is clean."""
        from ocish.diagnose.model import ERROR, WARNING
        from ocish.lint.checks import LintError, lint
        try:
            report = lint(self.dbg.bundle)
        except LintError:
            return
        if not (report.count(ERROR) or report.count(WARNING)):
            self._refused.discard(self.dbg.bundle)
        else:
            self._lint_lines(self.dbg.bundle, report)
            self.note("config.json loads now, but lint still finds the problems above: " + (
                "the setup fails where an error says; fix them, then `restart`"
                if report.count(ERROR) else "warnings only: the setup may go through"))

    def _lint_lines(self, bundle: str, report=None) -> None:
        from ocish.lint import text_lines
        from ocish.lint.checks import LintError, lint
        try:
            lines = text_lines(report or lint(bundle))
        except LintError as e:
            lines = [(f"lint: {e}", "")]
        if self._console is None:
            sys.stdout.flush()
            sys.stderr.write("".join(text + "\n" for text, _ in lines))
            sys.stderr.flush()
        else:
            from rich.text import Text
            for text, style in lines:
                self._console.print(Text(text, style=style))


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _command_of(line: str) -> str:
    try:
        words = split_words(line)
        return resolve(words[0]).name if words else ""
    except (ValueError, OcishError):
        return ""


class _ArgParser(argparse.ArgumentParser):
    def error(self, message: str):
        raise OcishError(f"{self.prog}: {message}")


def main(argv: list[str], command: str, log=None, global_root: str | None = None) -> int:
    """`ocish debug [BUNDLE | --image REF [--keep-bundle]] [--id ID]`, `ocish shell` or `ocish
    attach ID`, each with [--root R] [--plain] [--errexit] [--quiet]. `log` (runtime.cli.Log,
    from the global --log, --debug) gets the session's errors and, with --debug, its steps
    with their times."""
    p = _ArgParser(prog=f"ocish {command}")
    if command == "debug":
        p.add_argument("bundle", nargs="?")
        p.add_argument("--id")
        p.add_argument("--image", metavar="REF",
                       help="a bundle from this image (as `ocish bundle init DIR --image REF`), "
                            "in a temporary directory removed at quit")
        p.add_argument("--keep-bundle", action="store_true",
                       help="with --image: keep the temporary bundle at quit (its path is shown)")
        from ocish.engine_bundle import engine_args
        engine_args(p)  # --podman NAME|ID, --containerd ID [--namespace N]
    elif command == "attach":
        p.add_argument("id", help="an id, a podman or Docker name, or a host pid")
        p.add_argument("--runtime", choices=("runc", "crun", "ocish"),
                       help="whose state root to look in (default: ours, then runc's, crun's, "
                            "Docker's and containerd's roots, then podman's and Docker's names)")
        p.add_argument("--allow-changes", action="store_true",
                       help="let start, kill, pause, resume and delete change another "
                            "runtime's container (through its own runtime); read-only without")
    # for attach, --root is the state root of --runtime (ours by default)
    p.add_argument("--root", default=None, help="the state root (default: ocish's; for attach "
                   "--runtime runc|crun, that runtime's: /run/runc, /run/crun)")
    p.add_argument("--plain", action="store_true", help="plain text, one command per line")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="piped: no transcript on stderr (echoed commands, banner, progress); "
                        "data still on stdout, errors and news on stderr")
    p.add_argument("--errexit", "-e", action="store_true",
                   help="end the session at the first failed command, exit status 1")
    if command == "debug":
        p.add_argument("--record", metavar="FILE",
                       help="at the end, write the session as a script (as `record FILE`)")
        p.add_argument("--record-expect", metavar="FILE",
                       help="the same, with what was inspected as expectations")
    try:
        a = p.parse_args(argv)
        if command == "debug" and a.image is not None and a.bundle is not None:
            raise OcishError("ocish debug: give BUNDLE or --image REF, not both")
        if command == "debug" and a.image is not None and (a.podman or a.containerd):
            raise OcishError("ocish debug: give --image REF or a --podman/--containerd "
                             "container, not both")
        if command == "debug" and a.keep_bundle and a.image is None:
            raise OcishError("ocish debug: --keep-bundle keeps the bundle --image builds")
    except OcishError as e:
        sys.stderr.write(f"ocish: {e}\n")
        return 1
    interactive = sys.stdin.isatty() and not a.plain and "NO_COLOR" not in os.environ
    runtime = getattr(a, "runtime", None)
    theirs = command == "attach" and runtime not in (None, "ocish")
    # `ocish --root R attach --runtime runc --root RR ID`: R stays the session's own root (a
    # typed `attach ID` or `load` looks there); RR is only where runc's state is read
    session_root = global_root or (default_root() if a.root is None or theirs else a.root)
    shell = Shell(os.path.abspath(session_root), fancy=interactive and sys.stdout.isatty(),
                  interactive=interactive, errexit=a.errexit, quiet=a.quiet)
    if log is not None:
        shell.log = log
        if log.debug_on:
            from runtime.cli import StepLog
            shell.dbg.step_log = StepLog(log)
    # SIGTERM and SIGHUP (the terminal went away) unwind through the teardown below, in this
    # process only: a forked helper (pyroute2's netns child, the tracer) inherits the handler,
    # and must never tear down the container it shares with us.
    owner = os.getpid()

    def on_signal(signum: int, _frame) -> None:
        if os.getpid() != owner:
            os._exit(128 + signum)
        sys.exit(128 + signum)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    borrowed = ExitStack()  # a podman/containerd container's mount: undone last
    try:
        if command == "debug":
            bundle, temp = a.bundle, ""
            try:
                bundle = _borrow(a, borrowed, shell) or bundle
            except OcishError as e:
                sys.stderr.write(f"ocish: {e}\n")
                return 1
            except KeyboardInterrupt:  # Ctrl-C while podman/ctr mount it: all undone
                return 128 + signal.SIGINT
            try:
                if bundle is None:
                    temp = tempfile.mkdtemp(prefix="ocish-debug-")
                    bundle = _session_bundle(shell, os.path.join(temp, "bundle"), a.image,
                                             a.keep_bundle)
                shell.dbg.load(bundle, a.id, "" if a.keep_bundle else temp)
            except OcishError as e:
                if temp and not (shell.dbg.load_error or a.keep_bundle and bundle):
                    shutil.rmtree(temp, ignore_errors=True)
                if shell.log is not None:
                    shell.log.write("error", str(e))
                sys.stderr.write(f"ocish: {e}\n")
                if not shell.dbg.load_error:
                    return 1
                # config.json refused: the shell opens anyway, to fix it and `restart`
                shell.config_refused()
                shell._refused.add(shell.dbg.bundle)
                shell.failures.append(0)
                if shell.commands.errexit:
                    return shell.exit_status()
            except BaseException:  # Ctrl-C while an image unpacks: its temporary dir goes too
                if temp and shell.dbg.temp_dir != temp and not (a.keep_bundle and bundle):
                    shutil.rmtree(temp, ignore_errors=True)
                raise
            else:
                shell.commands.note_load(made=bool(temp), image=a.image or "")
                shell.banner()
        elif command == "attach":
            try:
                shell.dbg.attach(a.id, runtime=runtime,
                                 root=os.path.abspath(a.root) if a.root else None,
                                 allow_changes=a.allow_changes)
            except OcishError as e:
                if shell.log is not None:
                    shell.log.write("error", str(e))
                sys.stderr.write(f"ocish: {e}\n")
                return 1
            shell.commands.note_attach()
            shell.banner()
        else:
            shell.note("no container loaded: `load BUNDLE` sets one up, `attach ID` takes one "
                       "over; `help` lists commands")
        return shell.run()
    finally:
        if os.getpid() == owner:
            _record_at_end(shell, getattr(a, "record", None), getattr(a, "record_expect", None))
        if os.getpid() == owner and not shell.done:
            # a second SIGTERM or SIGHUP must not cut the teardown short and leave cgroups
            # behind: noted, not raised (a handler, unlike a mask or SIG_IGN, is not inherited
            # by the poststop hooks delete may run)
            for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
                signal.signal(sig, lambda _signum, _frame: None)
            shell.dbg.teardown()
        if os.getpid() == owner:
            shell.commands.close()
            try:
                borrowed.close()
            except OcishError as e:
                sys.stderr.write(f"ocish: {e}\n")


def _borrow(a: argparse.Namespace, stack: ExitStack, shell: Shell) -> str | None:
    """`debug --podman NAME|ID` / `--containerd ID`: the container as a temp bundle, held by
    `stack` until the session ends (ocish.engine_bundle); None without those flags."""
    from ocish.engine_bundle import borrow, engine_of
    engine, ref = engine_of(a, a.bundle is not None)
    if not engine:
        return None
    b = stack.enter_context(borrow(engine, ref, a.namespace))
    shell.note(f"{b.title()}: config {b.config}, rootfs {b.rootfs} (unmounted at quit)")
    for note in b.notes:
        shell.note(note)
    return b.bundle


def _session_bundle(shell: Shell, path: str, image: str | None, keep: bool) -> str:
    """The bundle `ocish debug` builds when given none: busybox running sh, or with `image`
    the image's (ocish.image.build), at `path`."""
    if image is None:
        from ocish.bundle import init_bundle
        return init_bundle(path, args=["sh"], terminal=False)
    from ocish.image.build import build
    if not shell.quiet:
        shell.note(f"building a bundle from image {image} (skopeo copy, umoci raw unpack)")
    bundle = build(path, image)
    if keep:
        shell.note(f"bundle {bundle} is kept at quit (--keep-bundle)")
    return bundle


def _record_at_end(shell: Shell, plain: str | None, expect: str | None) -> None:
    """`ocish debug --record FILE` / `--record-expect FILE`: the session, written as it ends."""
    from ocish import record
    for file, with_expect in ((plain, False), (expect, True)):
        if not file:
            continue
        try:
            shell.show(render.recorded(record.write(shell.commands, file, with_expect)), err=True)
        except OcishError as e:
            shell.error(str(e))
