"""`ocish debug` and `ocish shell`: the interactive debugger's REPL and its command table.

On a terminal the shell reads with prompt_toolkit (history, completion, a toolbar) and renders
with rich. Otherwise (stdin a pipe or file, --plain, or NO_COLOR) it reads one command per line,
echoes it after the prompt and prints plain text, so sessions are scripts and tests read them.

Ctrl-C interrupts a command, never the shell: during a step it is deferred to the end of that
step (a step half done would desynchronise the engine and the container side). Ctrl-D, EOF,
`quit`, SIGTERM and SIGHUP all tear the container down.
"""
from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Generator, Iterator

from ocish import render
from ocish.debugger import Debugger, StepReport
from ocish.inspect import TOPICS
from runtime.cli import DEFAULT_ROOT
from runtime.errors import OcishError

PROMPT = "(ocish) "
HISTORY = os.path.expanduser("~/.local/state/ocish/history")


@dataclass
class Command:
    name: str
    func: Callable[[list[str]], None]
    aliases: tuple[str, ...]
    usage: str
    summary: str
    detail: str = ""


class Shell:
    def __init__(self, root: str, fancy: bool, interactive: bool) -> None:
        self.dbg = Debugger(root)
        self.fancy = fancy
        self.interactive = interactive
        self.done = False
        self._interrupted = False
        self._console = None
        if fancy:
            from rich.console import Console
            self._console = Console(highlight=False)
        self.commands: dict[str, Command] = {}
        self.aliases: dict[str, str] = {}
        for c in self._table():
            self.commands[c.name] = c
            for a in (c.name,) + c.aliases:
                self.aliases[a] = c.name

    # -- the command table ---------------------------------------------------------------------
    def _table(self) -> list[Command]:
        C = Command
        return [
            C("help", self.do_help, ("h", "?"), "help [COMMAND]", "list commands, or explain one"),
            C("stages", self.do_stages, ("list", "l"), "stages",
              "the setup pipeline: done [x], next -->, failed [!], breakpoints bN",
              "One line per stage, with the first line of what it will do with this config;\n"
              "stages made of items (mounts: rootfs, /mounts/N, devices) list each item."),
            C("explain", self.do_explain, ("e",), "explain [STAGE]",
              "what a stage (default: the next) will do with this config, in full"),
            C("step", self.do_step, ("s",), "step [N]",
              "run the next step (one item of a stage), or N steps",
              "Runs the next item through the runtime's own engine, then stops. With `trace on`\n"
              "the container side's state-changing syscalls are listed; with `watch on` the\n"
              "diff of its kernel state. After the last step the container is created (state.json\n"
              "written, as `ocish create` does) and the lifecycle commands apply."),
            C("continue", self.do_continue, ("c", "cont"), "continue",
              "run steps until a breakpoint, a failure or the end of setup"),
            C("break", self.do_break, ("b",), "break [STAGE [ITEM] | mount DESTINATION]",
              "stop before a stage, one of its items, or the mount of DESTINATION",
              "`break mounts` stops before the stage's first item; `break mounts /mounts/2`\n"
              "before that item; `break mount /proc` before the mount whose destination is\n"
              "/proc. Without arguments: list breakpoints."),
            C("info", self.do_info, ("i",), "info breakpoints", "list breakpoints"),
            C("delete", self.do_delete, ("d",), "delete N | delete [-f]",
              "delete breakpoint N; without a number, delete the container (-f: even running)",
              "`delete 2` removes breakpoint 2, as in gdb. `delete` (or `delete -f` for a\n"
              "running container) deletes the container through the runtime, as\n"
              "`ocish delete` does: process, cgroups and state dir."),
            C("restart", self.do_restart, ("r",), "restart",
              "tear the container down and set it up again from the bundle (breakpoints stay)"),
            C("quit", self.do_quit, ("q", "exit"), "quit [--keep]",
              "tear everything down and leave; --keep leaves a started container running"),
            C("load", self.do_load, (), "load BUNDLE [--id ID]",
              "set up a bundle's container, stopped before its first stage"),
            C("start", self.do_start, (), "start",
              "run the created container's process (`catch exec` traces its execve)"),
            C("state", self.do_state, (), "state [ID]", "the runtime state JSON, as `ocish state`"),
            C("ps", self.do_ps, (), "ps [ID]", "pids in the container's cgroup"),
            C("pause", self.do_pause, (), "pause", "freeze the container's cgroup"),
            C("resume", self.do_resume, (), "resume", "thaw the container's cgroup"),
            C("kill", self.do_kill, (), "kill [--all] [SIGNAL]",
              "signal the container's init (all its processes with --all); default SIGTERM"),
            C("containers", self.do_containers, ("ls",), "containers",
              "the containers under --root, as `ocish list`"),
            C("inspect", self.do_inspect, ("x",), "inspect TOPIC|all [--json] [--pid PID]",
              "the container process's kernel state: " + " ".join(TOPICS),
              "ns       namespace inodes beside the host's (this shell's)\n"
              "ids      uid_map, gid_map, setgroups, uids, gids, groups\n"
              "mounts   mountinfo as a tree relative to the container's root\n"
              "cgroup   membership, limits and usage\n"
              "caps     the five capability sets, decoded\n"
              "seccomp  mode, NoNewPrivs, the filters disassembled (ptrace)\n"
              "rlimits  /proc/PID/limits\n"
              "fds      open fds; those leading back to the host are flagged\n"
              "env      the environment\n"
              "proc     state, parent, threads, pids, command line\n"
              "net      links, addresses, routes of its network namespace (pyroute2)\n"
              "--json prints the reader's data; --pid inspects another process."),
            C("diff", self.do_diff, (), "diff",
              "what changed in the container's kernel state between the last two stops"),
            C("watch", self.do_watch, (), "watch on|off", "show the diff after every step"),
            C("trace", self.do_trace, ("t",), "trace on|off",
              "ptrace the container side during the next steps, listing state-changing syscalls",
              "Lists mount, umount2, pivot_root, unshare, setns, clone, sethostname, capset,\n"
              "prctl, seccomp, set*id, setgroups, setrlimit/prlimit64, mknod, symlink, chdir,\n"
              "chroot, keyctl, umask, execve and opens of /proc and /sys files or for writing,\n"
              "with decoded arguments and results; interpreter noise is hidden. The tracer\n"
              "detaches after every step. Host-side stages (cgroup, idmap) run in this shell\n"
              "and are not traced."),
            C("catch", self.do_catch, (), "catch exec [N] | catch off",
              "at `start`, trace the init across its execve and show the first N (10) calls"),
            C("exec", self.do_exec, (), EXEC_USAGE,
              "run one more process in the container, as `ocish exec` does",
              "Runs the runtime's own exec pipeline (cgroup-join, lsm, seccomp, join, terminal,\n"
              "process, attributes, bounding, user, caps, exec): the process joins the cgroups\n"
              "and namespaces of the container's init. The container must be created (setup\n"
              "complete, before or after `start`) or running; --id ID execs in any container\n"
              "under --root instead of the loaded one.\n"
              "The process is the container's config.json process with CMD ARGS as args:\n"
              "  -u UID[:GID]  run as this user (numbers)\n"
              "  --cwd D       working directory\n"
              "  -e K=V        add to the environment (repeatable)\n"
              "  -d            do not wait: print its host pid. It runs in its own process group\n"
              "                (ignoring SIGINT, as the init does); the shell reaps it and says\n"
              "                so, and kills it when it tears the container down\n"
              "Its stdout and stderr are the shell's; its stdin is the shell's terminal (none\n"
              "with -d or without a terminal: /dev/null); no -t. The shell waits for it, forwards\n"
              "signals (Ctrl-C) to it, then prints `exit status N` (128+N: killed by signal N).\n"
              "Errors before it runs read `exec failed: ...`, as from `ocish exec`."),
        ]

    # -- output ----------------------------------------------------------------------------------
    def show(self, obj) -> None:
        if obj is None:
            return
        if self._console is None:
            print(obj, flush=True)
        elif isinstance(obj, str):
            self._console.print(obj, markup=False, highlight=False)
        else:
            self._console.print(obj)

    def error(self, msg: str) -> None:
        if self._console is None:
            print(f"error: {msg}", flush=True)
        else:
            self._console.print(f"error: {msg}", style="bold red", markup=False)

    def note(self, msg: str) -> None:
        if self._console is None:
            print(msg, flush=True)
        else:
            self._console.print(msg, style="dim", markup=False)

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> int:
        reader = self._prompt_reader() if self.interactive else self._line_reader()
        while not self.done:
            try:
                line = reader()
            except KeyboardInterrupt:
                continue  # Ctrl-C at the prompt: a fresh prompt
            except EOFError:
                if not self.interactive:
                    print(flush=True)
                line = "quit"
            self.onecmd(line)
        return 0

    def _line_reader(self) -> Callable[[], str]:
        echo_off = sys.stdin.isatty()

        def read() -> str:
            sys.stdout.write(PROMPT)
            sys.stdout.flush()
            line = sys.stdin.readline()
            if not line:
                raise EOFError
            if not echo_off:  # a terminal echoes by itself; a transcript shows what was read
                print(line.rstrip("\n"), flush=True)
            return line
        return read

    def _prompt_reader(self) -> Callable[[], str]:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import FileHistory
        from ocish.completion import ShellCompleter
        os.makedirs(os.path.dirname(HISTORY), exist_ok=True)
        session = PromptSession(history=FileHistory(HISTORY), completer=ShellCompleter(self),
                                bottom_toolbar=self.toolbar, complete_while_typing=False)
        return lambda: session.prompt(PROMPT)

    def toolbar(self) -> str:
        d = self.dbg
        if not d.cid:
            return " ocish | no container: load BUNDLE "
        flags = "".join(f" | {n} on" for n, on in (("trace", d.tracing), ("watch", d.watching)) if on)
        return f" ocish | id {d.cid} | status {d.status()} | stage {d.position()}{flags} "

    def onecmd(self, line: str) -> None:
        try:
            words = shlex.split(line)
        except ValueError as e:
            self.error(str(e))
            return
        if not words:
            return
        name = self.aliases.get(words[0])
        if name is None:
            self.error(f"unknown command {words[0]!r}: `help` lists them")
            return
        try:
            self.commands[name].func(words[1:])
        except OcishError as e:
            self.error(str(e))
        except OSError as e:
            self.error(f"{e.filename + ': ' if e.filename else ''}{os.strerror(e.errno).lower()}"
                       if e.errno else str(e))
        except KeyboardInterrupt:
            self.error("interrupted")
        except Exception as e:  # a bug of ours must not kill the shell and leak the container
            self.error(f"internal error: {type(e).__name__}: {e}")
        for msg in self.dbg.reap():
            self.note(msg)

    @contextmanager
    def _deferred_sigint(self) -> Iterator[None]:
        """Ctrl-C during a step only sets a flag: the step finishes, then stepping stops."""
        self._interrupted = False

        def handler(signum, frame) -> None:
            self._interrupted = True
        old = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, old)

    # -- stepping ----------------------------------------------------------------------------
    def _run_steps(self, reports: Generator[StepReport, None, None]) -> None:
        with self._deferred_sigint():
            for report in reports:
                pid = self.dbg.setup.ctx.pid if self.dbg.setup else 0
                for block in render.step_report(report, pid, self.fancy):
                    self.show(block)
                if report.created:
                    self.show(f"setup complete: container {self.dbg.cid} created "
                              f"(pid {report.created['pid']}, listed by `ocish --root "
                              f"{self.dbg.root} list`); `start` runs its process")
                if self._interrupted:
                    reports.close()
                    self.note("interrupted")
                    break
        self._where()

    def _where(self) -> None:
        d = self.dbg
        if not d.in_setup:
            return
        if d.setup.engine.failed:
            return
        step = d.setup.engine.next_step
        if step is None:
            return
        bp = d.breakpoint_ahead()
        rows = {r.name: r for r in d.pipeline()}
        row = rows[step[0].name]
        text = next((i.text for i in row.items if i.item == step[1]), "") or row.summary
        prefix = f"breakpoint {bp.number}, " if bp else ""
        self.show(f"{prefix}next: {step[0].name} {step[1]}".rstrip() + f" -- {text}")

    def do_step(self, args: list[str]) -> None:
        count = int(args[0]) if args and args[0].isdigit() else 1
        self._run_steps(self.dbg.step(count))

    def do_continue(self, args: list[str]) -> None:
        self._run_steps(self.dbg.cont())

    def do_stages(self, args: list[str]) -> None:
        self.show(render.stages(self.dbg.pipeline(), self.fancy))

    def do_explain(self, args: list[str]) -> None:
        self.show(self.dbg.explain(args[0] if args else None))

    def do_break(self, args: list[str]) -> None:
        if not args:
            self.do_info(["breakpoints"])
            return
        bp = self.dbg.add_breakpoint(args)
        where = f"{bp.stage} " + (", ".join(bp.items) if bp.items else "(first step)")
        self.show(f"breakpoint {bp.number} before {where}")

    def do_info(self, args: list[str]) -> None:
        if args[:1] not in ([], ["breakpoints"], ["b"], ["break"]):
            raise OcishError("usage: info breakpoints")
        self.show(render.breakpoints(self.dbg.breakpoints, self.fancy))

    def do_delete(self, args: list[str]) -> None:
        if args and args[0].isdigit():
            self.dbg.delete_breakpoint(int(args[0]))
            self.show(f"deleted breakpoint {args[0]}")
            return
        force = args[:1] in (["-f"], ["--force"])
        self.dbg.delete(force)
        self.show(f"deleted container {self.dbg.cid}")

    def do_restart(self, args: list[str]) -> None:
        self.dbg.restart()
        self.banner()

    def do_quit(self, args: list[str]) -> None:
        keep = "--keep" in args
        if keep and not self.dbg.started:
            self.note("--keep applies to a started container only: tearing down")
        for msg in self.dbg.teardown(keep=keep):
            self.note(msg)
        self.done = True

    def do_load(self, args: list[str]) -> None:
        p = _ArgParser(prog="load")
        p.add_argument("bundle")
        p.add_argument("--id")
        a = p.parse_args(args)
        self.dbg.load(a.bundle, a.id)
        self.banner()

    def banner(self) -> None:
        d = self.dbg
        self.show(f"bundle {d.bundle}, container {d.cid}, root {d.root}\n"
                  f"container side started: pid {d.setup.ctx.pid}, stopped before the first stage")
        self._where()

    # -- lifecycle ---------------------------------------------------------------------------
    def do_start(self, args: list[str]) -> None:
        result = self.dbg.start()
        self.show(f"started container {self.dbg.cid}")
        if result is not None:
            self.show("catch exec:")
            self.show(render.trace(result, self.fancy))

    def do_state(self, args: list[str]) -> None:
        self.show(render.to_json(self.dbg.oci_state(args[0] if args else None)))

    def do_ps(self, args: list[str]) -> None:
        self.show("\n".join(map(str, self.dbg.ps(args[0] if args else None))) or "(no process)")

    def do_pause(self, args: list[str]) -> None:
        self.dbg.pause()
        self.show(f"paused {self.dbg.cid}")

    def do_resume(self, args: list[str]) -> None:
        self.dbg.resume()
        self.show(f"resumed {self.dbg.cid}")

    def do_kill(self, args: list[str]) -> None:
        from runtime.cli import parse_signal
        all_ = "--all" in args or "-a" in args
        rest = [a for a in args if a not in ("--all", "-a")]
        self.dbg.kill(parse_signal(rest[0] if rest else "SIGTERM"), all_)

    def do_containers(self, args: list[str]) -> None:
        from runtime import lifecycle
        self.show(render.containers(lifecycle.list_states(self.dbg.root), self.fancy))

    def do_exec(self, args: list[str]) -> None:
        a = parse_exec(args)
        devnull = -1
        if a["detach"] or not sys.stdin.isatty():  # never the shell's own input (a script)
            devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        sys.stdout.flush()  # its output comes after what we printed
        sys.stderr.flush()
        try:
            pid, status = self.dbg.exec(a["command"], a["id"], detach=a["detach"], user=a["user"],
                                        cwd=a["cwd"], env=a["env"],
                                        stdin_fd=devnull if devnull >= 0 else None)
        finally:
            if devnull >= 0:
                os.close(devnull)
        if status is None:
            self.show(f"exec process {pid} running (detached)")
        else:
            self.show(f"exit status {status}")

    # -- inspection --------------------------------------------------------------------------
    def do_inspect(self, args: list[str]) -> None:
        from ocish import inspect
        p = _ArgParser(prog="inspect")
        p.add_argument("topic", choices=TOPICS + ("all",))
        p.add_argument("--json", action="store_true")
        p.add_argument("--pid", type=int)
        a = p.parse_args(args)
        target = inspect.Target(a.pid) if a.pid else self.dbg.target()
        if target is None:
            raise OcishError("no container process to inspect" +
                             ("" if self.dbg.cid else ": load a bundle first"))
        for topic in TOPICS if a.topic == "all" else (a.topic,):
            try:
                data = inspect.read(topic, target)
            except (FileNotFoundError, ProcessLookupError):
                raise OcishError(f"process {target.pid} is gone") from None
            if a.json:
                self.show(render.to_json(data))
            else:
                if a.topic == "all":
                    self.show(f"== {topic}")
                self.show(render.TOPIC_RENDERERS[topic](data, self.fancy))

    def do_diff(self, args: list[str]) -> None:
        lines, why = self.dbg.last_diff()
        self.show(render.diff(lines, self.fancy) if lines else why)

    def _switch(self, args: list[str], what: str) -> bool:
        if args not in (["on"], ["off"]):
            raise OcishError(f"usage: {what} on|off")
        self.show(f"{what} {args[0]}")
        return args[0] == "on"

    def do_watch(self, args: list[str]) -> None:
        self.dbg.watching = self._switch(args, "watch")

    def do_trace(self, args: list[str]) -> None:
        self.dbg.tracing = self._switch(args, "trace")

    def do_catch(self, args: list[str]) -> None:
        if args == ["off"]:
            self.dbg.catch_exec = 0
            self.show("catch off")
            return
        if not args or args[0] != "exec" or (len(args) > 1 and not args[1].isdigit()):
            raise OcishError("usage: catch exec [N] | catch off")
        self.dbg.catch_exec = int(args[1]) if len(args) > 1 else 10
        self.show(f"catch exec: `start` will show the first {self.dbg.catch_exec} syscalls "
                  "after the execve")

    # -- help --------------------------------------------------------------------------------
    def do_help(self, args: list[str]) -> None:
        if args:
            name = self.aliases.get(args[0])
            if name is None:
                raise OcishError(f"unknown command {args[0]!r}")
            c = self.commands[name]
            aliases = f" (aliases: {', '.join(c.aliases)})" if c.aliases else ""
            self.show(f"{c.usage}{aliases}\n  {c.summary}" + (f"\n\n{c.detail}" if c.detail else ""))
            return
        rows = [[c.usage, c.summary] for c in self.commands.values()]
        self.show("\n".join(render.columns(rows, "  ")) +
                  "\n\nThe container's stdin is a pipe held by this shell (never written); its "
                  "stdout and stderr are the shell's, as are those of `exec`'s processes.")


EXEC_USAGE = "exec [-d] [-u UID[:GID]] [--cwd D] [-e K=V]... [--id ID] CMD [ARGS...]"
_EXEC_VALUES = {"-u": "user", "--user": "user", "--cwd": "cwd", "-e": "env", "--env": "env",
                "--id": "id"}


def parse_exec(args: list[str]) -> dict:
    """exec's flags (`--flag value`, `--flag=value`, `--` ends them), then CMD [ARGS...]."""
    out: dict = {"detach": False, "user": None, "cwd": None, "env": [], "id": None}
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "-":
        flag, eq, value = args[i].partition("=")
        i += 1
        if flag == "--" and not eq:
            break
        if flag in ("-d", "--detach") and not eq:
            out["detach"] = True
            continue
        dest = _EXEC_VALUES.get(flag)
        if dest is None:
            raise OcishError(f"exec: unknown flag {args[i - 1]}; usage: {EXEC_USAGE}")
        if not eq:
            if i >= len(args):
                raise OcishError(f"exec: {flag} needs a value; usage: {EXEC_USAGE}")
            value, i = args[i], i + 1
        if dest == "env":
            out["env"].append(value)
        else:
            out[dest] = value
    out["command"] = args[i:]
    if not out["command"]:
        raise OcishError(f"exec: no command; usage: {EXEC_USAGE}")
    return out


class _ArgParser(argparse.ArgumentParser):
    def error(self, message: str):
        raise OcishError(f"{self.prog}: {message}")


def main(argv: list[str], command: str) -> int:
    """`ocish debug [BUNDLE] [--id ID] [--root R] [--plain]` or `ocish shell [--root R] [--plain]`."""
    p = _ArgParser(prog=f"ocish {command}")
    if command == "debug":
        p.add_argument("bundle", nargs="?")
        p.add_argument("--id")
    p.add_argument("--root", default=DEFAULT_ROOT)
    p.add_argument("--plain", action="store_true", help="plain text, one command per line")
    try:
        a = p.parse_args(argv)
    except OcishError as e:
        sys.stderr.write(f"ocish: {e}\n")
        return 1
    interactive = sys.stdin.isatty() and not a.plain and "NO_COLOR" not in os.environ
    shell = Shell(os.path.abspath(a.root), fancy=interactive and sys.stdout.isatty(),
                  interactive=interactive)
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
    try:
        if command == "debug":
            bundle, temp = a.bundle, ""
            if bundle is None:
                temp = tempfile.mkdtemp(prefix="ocish-debug-")
                from ocish.bundle import init_bundle
                bundle = init_bundle(os.path.join(temp, "bundle"), args=["sh"], terminal=False)
            try:
                shell.dbg.load(bundle, a.id, temp)
            except OcishError as e:
                if temp:
                    import shutil
                    shutil.rmtree(temp, ignore_errors=True)
                sys.stderr.write(f"ocish: {e}\n")
                return 1
            shell.banner()
        else:
            shell.note("no container loaded: `load BUNDLE` sets one up; `help` lists commands")
        return shell.run()
    finally:
        if os.getpid() == owner and not shell.done:
            shell.dbg.teardown()
