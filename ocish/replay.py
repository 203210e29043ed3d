"""`ocish replay SCRIPT...`: run scripts without a person, report every expectation.

A replay is a debugger session without a terminal (DESIGN.md): each script gets a fresh
`Debugger` under a private --root, and its lines run through the shell's own command registry
(`Commands.run`), exactly as if typed; `expect` lines check the data those commands return.

    ocish replay              Commands / Debugger                 runtime engine
    ────────────              ───────────────────                 ──────────────
    parse every script        (a syntax error: exit 2, nothing runs)
    per script: vars          bundle init, load $bundle  ───►     Setup, spawn C1
      line by line            step/continue/start/exec   ───►     stages, lifecycle
      expect ... -> ...       run, then compare the data
    teardown, always          Debugger.teardown, Commands.close    process, cgroup, state dir
    report                    TAP (streamed) | JSON | JUnit

Exit status: 0 when every expectation held, 1 when one failed (or a command failed that no
expectation said would), 2 when a script could not run (a syntax error with FILE:LINE, a bundle
that is missing, a $variable never set); 128+N after signal N. A script stops at its first
failure (the lines after it depend on the state it left), unless --keep-going. Ctrl-C, SIGTERM
and SIGHUP unwind through the same teardown as the end of a script, with further signals held
off until it is done: no state dir, cgroup, mount or process is left.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from ocish import render, script as scriptmod
from ocish.commands import Commands, Outcome
from ocish.debugger import Debugger, Exec
from runtime.errors import OcishError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# a failure of these means the script cannot run at all: there is no container to check
SETUP_COMMANDS = ("load", "bundle")


class Interrupted(BaseException):
    """A stop signal (Ctrl-C, SIGTERM, SIGHUP) during a replay."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@dataclass
class Result:
    """One test point: an expectation, or a command that failed unexpectedly."""
    file: str
    line: int
    text: str
    kind: str                  # expect | command | syntax (the script cannot be read)
    status: str                # pass | fail | skip | error
    message: str = ""
    expected: str = ""
    actual: str = ""
    clauses: list[dict] = field(default_factory=list)
    duration: float = 0.0


@dataclass
class ScriptRun:
    file: str
    id: str
    status: str = "passed"     # passed | failed | error (could not run) | interrupted
    error: str = ""
    results: list[Result] = field(default_factory=list)
    duration: float = 0.0
    started: float = 0.0       # wall-clock time.time() at its start
    output: str = ""           # what its container and exec'd processes wrote (the tail)


@dataclass
class Options:
    bundle: str | None = None
    id: str | None = None
    root: str | None = None
    keep_going: bool = False
    verbose: bool = False


class Runner:
    """Runs scripts one after the other; `on_result` sees every result as it comes (TAP
    streams)."""

    def __init__(self, opts: Options, on_result=None) -> None:
        self.opts = opts
        self.on_result = on_result or (lambda r: None)

    def _say(self, text: str) -> None:
        if self.opts.verbose and text:
            sys.stderr.write(text.rstrip("\n") + "\n")
            sys.stderr.flush()

    def _emit(self, kind: str, obj: Any, as_json: bool) -> None:
        if kind == "news":
            self._say(obj.text)
        elif kind == "step" and not as_json:
            for block in render.step_report(obj, 0, False):
                self._say(str(block))

    def _add(self, run: ScriptRun, r: Result) -> None:
        run.results.append(r)
        self.on_result(r)

    def run(self, sc: scriptmod.Script) -> ScriptRun:
        """Run one script; everything it made is removed before this returns (or raises
        Interrupted)."""
        cid = self.opts.id or f"replay-{uuid.uuid4().hex[:8]}"
        run = ScriptRun(sc.file, cid, started=time.time())
        root = self.opts.root or tempfile.mkdtemp(prefix="ocish-replay-")
        from runtime import state
        before = set(state.list_ids(root))
        t0 = time.monotonic()
        dbg = Debugger(os.path.abspath(root))
        dbg.exec_keeps = STOP_SIGNALS
        cmds = Commands(dbg, emit=self._emit)
        cmds.capture_exec = True
        cmds.default_id = cid
        cmds.vars["scriptdir"] = os.path.dirname(sc.path)
        if self.opts.bundle:
            cmds.vars["bundle"] = os.path.abspath(self.opts.bundle)
        stopped_at = 0
        output = tempfile.TemporaryFile()
        try:
            with _stdio_to(output.fileno()):
                stopped_at = self._lines(sc, cmds, run)
        except Interrupted as e:
            run.status = "interrupted"
            run.error = f"interrupted by {signal.Signals(e.signum).name}"
            raise
        finally:
            with _held(STOP_SIGNALS), _stdio_to(output.fileno()):
                for note in dbg.teardown():
                    self._say(note)
                for note in _delete_made(root, before, not self.opts.root, cid):
                    self._say(note)
                cmds.close()
                if not self.opts.root:
                    shutil.rmtree(root, ignore_errors=True)
            run.duration = time.monotonic() - t0
            run.output = _tail(output)
        if run.status == "passed" and any(r.status in ("fail", "error") for r in run.results):
            run.status = "error" if any(r.status == "error" for r in run.results) else "failed"
        return run

    def _lines(self, sc: scriptmod.Script, cmds: Commands, run: ScriptRun) -> int:
        """Run the script's lines; the line it stopped at (0: it ran to its end)."""
        stopped_at = 0
        for ln in sc.lines:
            if stopped_at:
                if ln.command == "expect":
                    self._add(run, Result(sc.file, ln.number, ln.text, "expect", "skip",
                                          f"not run: the script stopped at line {stopped_at}"))
                continue
            self._say(f"(ocish) {ln.text}")
            t = time.monotonic()
            out = cmds.run(ln.text)
            took = time.monotonic() - t
            self._show(cmds, out)
            if isinstance(out.data, Exec):  # captured: kept with the container's own output
                for text in (out.data.stdout, out.data.stderr):
                    if text:
                        os.write(1, text.encode(errors="replace"))
            if ln.command == "expect":
                r = self._expectation(sc, ln, out, took)
                self._add(run, r)
                if r.status != "pass" and not self.opts.keep_going:
                    stopped_at = ln.number
            elif not out.ok:
                if out.command in SETUP_COMMANDS or _unset_variable(out):
                    run.status, run.error = "error", f"line {ln.number}: {out.error}"
                    self._add(run, Result(sc.file, ln.number, ln.text, "command", "error",
                                          f"the script cannot run: {out.error}",
                                          duration=took))
                    stopped_at = ln.number
                    continue
                self._add(run, Result(sc.file, ln.number, ln.text, "command", "fail",
                                      f"the command failed: {out.error}",
                                      "the command succeeds", out.error, duration=took))
                if not self.opts.keep_going:
                    stopped_at = ln.number
            if cmds.done and not stopped_at:  # quit: the rest is not run
                stopped_at = ln.number
        return stopped_at

    def _show(self, cmds: Commands, out: Outcome) -> None:
        if not self.opts.verbose:
            return
        if not out.ok:
            self._say(f"error: {out.error}")
            return
        if out.data is not None:
            for block in render.command(out, False, 100):
                self._say(str(block))

    @staticmethod
    def _expectation(sc: scriptmod.Script, ln: scriptmod.Line, out: Outcome,
                     took: float) -> Result:
        from ocish.expect import Checked
        r = Result(sc.file, ln.number, ln.text, "expect", "pass", duration=took)
        c = out.data
        if isinstance(c, Checked):
            r.clauses = [{"clause": x.clause, "ok": x.ok, "expected": x.expected,
                          "actual": x.actual} for x in c.results]
            if not c.ok:
                bad = [x for x in c.results if not x.ok]
                r.status, r.message = "fail", c.message
                r.expected = "; ".join(x.expected for x in bad)
                r.actual = "; ".join(x.actual for x in bad)
        elif not out.ok:  # the expectation could not be evaluated at all
            r.status = "error" if _unset_variable(out) else "fail"
            r.message = out.error
        return r


TAIL_BYTES = 64 * 1024


def _delete_made(root: str, before: set[str], private: bool, cid: str) -> list[str]:
    """`delete -f` the containers a script made besides the session's own (`shell ocish
    --root $root create ...`) that are still under `root`: every new one in a `private` root,
    and in a --root shared with others only the new ones named with the script's id
    (`$id-...`). Returns what could not be removed, one line each."""
    from runtime import lifecycle, state
    notes = []
    for other in sorted(set(state.list_ids(root)) - before):
        if not private and not other.startswith(f"{cid}-"):
            continue
        try:
            lifecycle.delete(root, other, force=True)
        except OcishError as e:
            notes.append(f"container {other} the script made could not be removed: {e}")
    return notes


def _tail(f) -> str:
    """The last TAIL_BYTES of a file, as text; the file is closed."""
    with f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - TAIL_BYTES))
        return f.read().decode(errors="replace")


class _stdio_to:
    """fds 1 and 2 point to `fd` (the container side and exec'd processes inherit them, so
    their output never mixes into the report); sys.stderr stays the user's."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __enter__(self) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self.saved = os.dup(1), os.dup(2)
        self.stderr = sys.stderr
        sys.stderr = os.fdopen(os.dup(self.saved[1]), "w")
        os.dup2(self.fd, 1)
        os.dup2(self.fd, 2)

    def __exit__(self, *exc) -> None:
        sys.stderr.close()
        sys.stderr = self.stderr
        for fd, saved in zip((1, 2), self.saved):
            os.dup2(saved, fd)
            os.close(saved)


def _unset_variable(out: Outcome) -> bool:
    return "is not set yet" in out.error or out.error.startswith("unknown variable $")


class _held:
    """Signals held off while a teardown runs: noted, not acted on (a handler, unlike a mask,
    is not inherited by the poststop hooks a delete may run)."""

    def __init__(self, signals: tuple[int, ...]) -> None:
        self.signals, self.old = signals, {}

    def __enter__(self) -> None:
        for s in self.signals:
            self.old[s] = signal.signal(s, lambda _n, _f: None)

    def __exit__(self, *exc) -> None:
        for s, h in self.old.items():
            signal.signal(s, h)


class _ArgParser(argparse.ArgumentParser):
    def error(self, message: str):
        raise OcishError(f"ocish replay: {message}")


def main(argv: list[str]) -> int:
    """`ocish replay SCRIPT... [--bundle B] [--id ID] [--format tap|json|junit] [--keep-going]
    [--root R] [--verbose]`."""
    from ocish import replay_report
    p = _ArgParser(prog="ocish replay", add_help=False)
    p.add_argument("scripts", nargs="*")
    p.add_argument("--bundle", "-b")
    p.add_argument("--id")
    p.add_argument("--format", "-f", default="tap", choices=replay_report.FORMATS)
    p.add_argument("--keep-going", "-k", action="store_true")
    p.add_argument("--root")
    p.add_argument("--verbose", "-v", action="store_true")
    p.add_argument("--help", "-h", action="store_true")
    try:
        a = p.parse_args(argv)
    except OcishError as e:
        return _cannot_run(str(e), _format_of(argv))
    if a.help:
        sys.stdout.write(USAGE)
        return 0
    if not a.scripts:
        return _cannot_run("ocish replay: no script given; usage: " + USAGE.splitlines()[0],
                           a.format)
    if a.bundle and not os.path.isfile(os.path.join(a.bundle, "config.json")):
        return _cannot_run(f"ocish replay: --bundle {a.bundle}: no config.json there", a.format)
    parsed: list[scriptmod.Script | OcishError] = []
    for f in a.scripts:
        try:
            parsed.append(scriptmod.parse(f))
        except OcishError as e:
            parsed.append(e)
    errors = [str(e) for e in parsed if isinstance(e, OcishError)]
    for e in errors:
        sys.stderr.write(f"ocish replay: {e}\n")
    # the report has its own stdout: fd 1 points to each script's output file while it runs
    report = replay_report.Report(a.format, os.fdopen(os.dup(1), "w"))
    if len(errors) == len(parsed):  # nothing can run: each script with why
        report.bail(errors, [unreadable(f, e) for f, e in zip(a.scripts, parsed)])
        return 2
    owner = os.getpid()

    def on_signal(signum: int, _frame) -> None:
        if os.getpid() != owner:  # a forked helper (pyroute2, the tracer) just ends
            os._exit(128 + signum)
        raise Interrupted(signum)
    for s in STOP_SIGNALS:
        signal.signal(s, on_signal)
    runner = Runner(Options(a.bundle, a.id, a.root, a.keep_going, a.verbose), report.result)
    runs: list[ScriptRun] = []
    try:
        for f, sc in zip(a.scripts, parsed):
            if isinstance(sc, OcishError):  # unreadable: reported, and the others still run
                runs.append(unreadable(f, sc, report))
                continue
            report.start(sc.file)
            runs.append(runner.run(sc))
    except Interrupted as e:
        name = signal.Signals(e.signum).name
        sys.stderr.write(f"ocish replay: interrupted by {name}: everything it made is removed\n")
        report.finish(runs, interrupted=name, status=128 + e.signum)
        return 128 + e.signum
    for r in runs:
        if r.status == "error" and not any(x.kind == "syntax" for x in r.results):
            sys.stderr.write(f"ocish replay: {r.file}: {r.error}\n")
    report.finish(runs)
    return exit_status(runs)


def unreadable(file: str, e: OcishError, report=None) -> ScriptRun:
    """A script that cannot be read (a syntax error, FILE:LINE): one test point that could not
    run, reported (to `report`, when given) where the script stands among the others."""
    run = ScriptRun(file, "", status="error", error=str(e), started=time.time())
    syntax = isinstance(e, scriptmod.ScriptSyntaxError)
    line, text = (e.line, e.text) if syntax else (0, "")
    r = Result(file, line, text, "syntax", "error",
               f"the script cannot run: {e.message if syntax else e}")
    run.results.append(r)
    if report is not None:
        report.start(file)
        report.result(r)
    return run


def _format_of(argv: list[str]) -> str:
    """The --format asked for, read from argv when argparse refused the rest (tap else)."""
    from ocish import replay_report
    for i, w in enumerate(argv):
        value = (argv[i + 1] if i + 1 < len(argv) else "") if w in ("--format", "-f") else (
            w.split("=", 1)[1] if w.startswith("--format=") else None)
        if value is not None:
            return value if value in replay_report.FORMATS else "tap"
    return "tap"


def _cannot_run(error: str, fmt: str) -> int:
    """Nothing can run (no script, a missing --bundle, bad options): the error on stderr, and
    the report in the format asked for (a TAP `Bail out!`, a JSON errors document, a JUnit
    <error>), so a harness that reads only stdout sees why. Exit status 2."""
    from ocish import replay_report
    sys.stderr.write(error + "\n")
    replay_report.Report(fmt, sys.stdout).bail([error], [])
    return 2


def exit_status(runs: list[ScriptRun]) -> int:
    if any(r.status == "error" for r in runs):
        return 2
    return 1 if any(r.status == "failed" for r in runs) else 0


USAGE = """\
ocish replay SCRIPT... [--bundle B] [--id ID] [--format tap|json|junit] [--keep-going]
                       [--root R] [--verbose]

Run scripts (*.ocish: the debugger's commands plus `expect` lines) without a terminal and
report every expectation: TAP (default), JSON, or JUnit XML. Each script gets a fresh
container under a private --root, removed at the end whatever happens.

  --bundle B     $bundle for scripts that `load $bundle` (else they build one: `bundle init`)
  --id ID        the container id ($id; default replay-<random>)
  --format F     tap (one line per expectation), json, junit
  --keep-going   a failure does not end its script: the rest still runs
  --root R       keep state under R instead of a private directory
  --verbose      the session's transcript on stderr

Exit status: 0 all expectations held, 1 one failed, 2 a script could not run.
"""
