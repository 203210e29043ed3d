"""`ocish`: the runtime's command line, plus the debugger's own commands (debug, shell, attach,
bundle, diagnose, lint, replay)."""
from __future__ import annotations

import os
import sys

SHELL_COMMANDS = {"attach", "bundle", "debug", "diagnose", "lint", "replay", "shell"}
HELP_FLAGS = ("-h", "--help", "-help")
DEBUGGER_HELP = """
DEBUGGER COMMANDS (`ocish COMMAND --help` for each):
   debug        step through a bundle's setup in the interactive debugger
   shell        the debugger's shell, no container loaded (bare `ocish` on a terminal)
   attach       open the debugger on a container under --root
   bundle       build a bundle to experiment with (`bundle init DIR`)
   lint         check a bundle's config.json: every finding, with its fix
   diagnose     why a bundle does not start, and what to change
   replay       run .ocish scripts without a terminal (TAP, JSON, JUnit)
   help         this text; `ocish help COMMAND`: one command's

Inside the debugger, `help` lists its own commands (step, next, break, continue, inspect,
trace, diff, expect, record ...) and `help COMMAND` explains one with examples."""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv and sys.stdin.isatty() and sys.stdout.isatty():
        argv = ["shell"]  # bare `ocish` on a terminal: the debugger shell, empty
    argv = _root_first(argv)
    command = argv[0] if argv else None
    if command == "help" and len(argv) > 1:  # runc's `help COMMAND`: the command's --help
        return main([argv[1], "--help"])
    if command is None or command == "help" or command in HELP_FLAGS:
        from runtime.cli import main as runtime_main
        code = runtime_main(["--help"])
        print(DEBUGGER_HELP)
        return code
    if command in SHELL_COMMANDS:
        if command == "bundle":
            from ocish.bundle import main as bundle_main
            return bundle_main(argv[1:])
        if command == "diagnose":
            from ocish.diagnose import main as diagnose_main
            return diagnose_main(argv[1:])
        if command == "replay":
            from ocish.replay import main as replay_main
            return replay_main(argv[1:])
        if command == "lint":
            from ocish.lint import main as lint_main
            return lint_main(argv[1:])
        from ocish.shell import main as shell_main
        return shell_main(argv[1:], command)
    from runtime.cli import main as runtime_main
    return runtime_main(argv)


def _root_first(argv: list[str]) -> list[str]:
    """`ocish --root R debug ...` (the runtime's global flag written first, as in the hints the
    shell prints) is `ocish debug ... --root R`."""
    if argv[:1] == ["--root"] and len(argv) > 2 and argv[2] in SHELL_COMMANDS:
        return argv[2:] + argv[:2]
    if argv[:1] and argv[0].startswith("--root=") and len(argv) > 1 and argv[1] in SHELL_COMMANDS:
        return argv[1:] + ["--root", argv[0][len("--root="):]]
    return argv


def run() -> None:
    """Entry point of bin/ocish and `python -m ocish`: exit without interpreter teardown.

    Runtime commands have nothing left to clean up when main() returns; skipping Python's
    finalisation (module and object teardown) saves milliseconds at every runtime call.
    """
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:  # `ocish --help | head -1`: the reader left; no traceback
        code = 128 + 13  # as if killed by SIGPIPE, the status a C program would have
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
