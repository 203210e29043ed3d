"""`ocish`: the runtime's command line, plus the debugger's own commands (debug, shell, attach,
bundle, diagnose, bisect, lint, replay, seccomp, verify)."""
from __future__ import annotations

import os
import sys

SHELL_COMMANDS = {"attach", "bisect", "bundle", "debug", "diagnose", "lint", "replay", "seccomp",
                  "shell", "verify"}
HELP_FLAGS = ("-h", "--help", "-help")
DEBUGGER_HELP = """
DEBUGGER COMMANDS (`ocish COMMAND --help` for each):
   debug        step through a bundle's (or an image's: --image REF) setup in the debugger
   shell        the debugger's shell, no container loaded (bare `ocish` on a terminal)
   attach       open the debugger on a container under --root, or read-only on one
                runc, crun, podman, containerd or Docker made (by id, name or pid)
   bundle       build a bundle to experiment with (`bundle init DIR [--image REF]`)
   lint         check a bundle's config.json: every finding, with its fix
   diagnose     why a bundle (or a podman, containerd container) does not start, what to change
   bisect       the smallest config change that makes a good bundle fail like a bad one
   replay       run .ocish scripts without a terminal (TAP, JSON, JUnit)
   seccomp      what a seccomp filter does with a call (`seccomp check`), its rules
                (`seccomp explain`): a running container's, or a bundle's
   verify       compare a running container's kernel state with its config.json
   help         this text; `ocish help COMMAND`: one command's

Inside the debugger, `help` lists its own commands (step, next, break, continue, inspect,
trace, diff, expect, record ...) and `help COMMAND` explains one with examples."""
# the ones with a state directory: a global --root is theirs too
ROOTED = {"attach", "bisect", "debug", "lint", "replay", "seccomp", "shell", "verify"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv and sys.stdin.isatty() and sys.stdout.isatty():
        argv = ["shell"]  # bare `ocish` on a terminal: the debugger shell, empty
    n = _leading_globals(argv)
    command = argv[n] if n < len(argv) else None
    if command == "help" and len(argv) > n + 1:  # runc's `help COMMAND`: the command's --help
        return main(argv[:n] + [argv[n + 1], "--help"])
    flags = argv[:n]
    if command == "help" or command is None and (not argv or any(f in HELP_FLAGS for f in flags)):
        from runtime.cli import main as runtime_main
        code = runtime_main([f for f in flags if f not in HELP_FLAGS] + ["--help"])
        print(DEBUGGER_HELP)
        return code
    if command not in SHELL_COMMANDS:
        from runtime.cli import main as runtime_main
        return runtime_main(argv)
    # the runtime's global flags before a debugger command, as before any runc command: parsed
    # by the runtime's own table; each applies where it means something
    from runtime.cli import GLOBAL, Log
    from runtime.cliparse import parse
    from runtime.errors import OcishError
    try:
        g = parse("ocish", GLOBAL, [], argv[:n])[0]
        # an unusable --log fails at once, as runc's; a session's errors (and with --debug its
        # steps) go there too; the offline commands (bundle, lint, ...) have nothing to log
        log = Log(g.log, g.log_format, g.debug)
    except OcishError as e:
        sys.stderr.write(f"ocish: {e}\n")
        return 1
    if g.version:  # `ocish -v debug` is `ocish -v`, as `runc -v spec` is `runc -v`
        from runtime.cli import main as runtime_main
        return runtime_main(["--version"])
    rest = argv[n + 1:]
    # before the command's own, which wins (the last); attach's own --root is another
    # runtime's state root, so the global one goes to it as the session's
    if g.root and command in ROOTED and command != "attach":
        rest = ["--root", g.root] + rest
    if command == "bundle":
        from ocish.bundle import main as bundle_main
        return bundle_main(rest)
    if command == "diagnose":
        from ocish.diagnose import main as diagnose_main
        return diagnose_main(rest)
    if command == "bisect":
        from ocish.bisect import main as bisect_main
        return bisect_main(rest)
    if command == "replay":
        from ocish.replay import main as replay_main
        return replay_main(rest)
    if command == "lint":
        from ocish.lint import main as lint_main
        return lint_main(rest)
    if command == "verify":
        from ocish.verify.cli import main as verify_main
        return verify_main(rest)
    if command == "seccomp":
        from ocish.seccomp import main as seccomp_main
        return seccomp_main(rest)
    from ocish.shell import main as shell_main
    return shell_main(rest, command, log, g.root if command == "attach" else None)


def _leading_globals(argv: list[str]) -> int:
    """How many words of argv are global flags (with their values) before the command."""
    from runtime.cli import GLOBAL  # what the runtime's commands import first anyway
    valued = {f"{dash}{o.name}" for o in GLOBAL if o.kind is not bool for dash in ("-", "--")}
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] not in ("-", "--"):
        i += 2 if argv[i] in valued else 1
    return min(i, len(argv))


def _stdio_open() -> None:
    """Open /dev/null on whichever of fds 0, 1 and 2 we were started without, as Go's runtime
    does for runc: else the first file the runtime opens (exec.fifo's O_PATH fd) would take
    fd 0 and be handed to the container as its stdin, and a closed stdout would leave Python's
    sys.stdout None."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            if os.open("/dev/null", os.O_RDWR) != fd:  # the lowest free fd: this one
                raise SystemExit(f"ocish: cannot open /dev/null on fd {fd}")
            stream = open(fd, "r" if fd == 0 else "w", closefd=False)
            setattr(sys, ("stdin", "stdout", "stderr")[fd], stream)


def run() -> None:
    """Entry point of bin/ocish and `python -m ocish`: exit without interpreter teardown.

    Runtime commands have nothing left to clean up when main() returns; skipping Python's
    finalisation (module and object teardown) saves milliseconds at every runtime call.
    """
    _stdio_open()
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:  # `ocish --help | head -1`: the reader left; no traceback
        code = 128 + 13  # as if killed by SIGPIPE, the status a C program would have
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
