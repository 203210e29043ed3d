"""A small runc-style (urfave/cli) argument parser: `PROG [global flags] COMMAND [flags] ARGS`.

argparse costs ~15 ms at import here (it pulls in `re`), paid by every runtime call; this table
driven parser accepts what runc accepts: `--flag value`, `--flag=value`, `-flag value`, short
aliases, `--bool`/`--bool=false`, and `--` to end the flags.
"""
from __future__ import annotations

from runtime.errors import OcishError


def uint(text: str) -> int:
    """A flag's unsigned integer as Go's strconv reads it: ASCII digits only (no sign, "1_0",
    " 5" or "٣", which int() would take)."""
    if not (text.isascii() and text.isdigit()):
        raise ValueError(text)
    return int(text)


class Opt:
    def __init__(self, name: str, kind: type = bool, short: str = "", default=None,
                 help: str = "", choices: tuple[str, ...] = (), multi: bool = False,
                 aliases: tuple[str, ...] = ()) -> None:
        self.name, self.kind, self.short, self.help, self.choices = name, kind, short, help, choices
        self.default = False if kind is bool and default is None else default
        self.multi, self.aliases = multi, aliases  # multi: repeatable, values gathered in a list
        if multi and default is None:
            self.default = []  # never mutated: each value makes a new list
        self.dest = name.replace("-", "_")


class Command:
    def __init__(self, name: str, help: str, opts: list[Opt] = (), args: tuple[str, ...] = (),
                 optional: tuple[str, ...] = (), rest: str = "") -> None:
        self.name, self.help, self.opts = name, help, list(opts)
        self.args, self.optional, self.rest = args, optional, rest  # rest: trailing raw args


class Parsed:
    """Flags as attributes (dashes become underscores), positionals by their names."""

    def __init__(self, **kw) -> None:
        self.__dict__.update(kw)


class HelpRequested(Exception):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def _lookup(opts: list[Opt], flag: str) -> Opt | None:
    bare = flag.lstrip("-")
    for o in opts:
        if bare == o.name or (o.short and bare == o.short) or bare in o.aliases:
            return o
    return None


def _parse_flags(argv: list[str], i: int, opts: list[Opt], out: dict, usage) -> tuple[int, list[str]]:
    """Consume flags (and, interleaved, positionals) from argv[i:]; returns (next index, positionals)."""
    positionals: list[str] = []
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return len(argv), positionals + argv[i + 1:]
        if not arg.startswith("-") or arg == "-":
            return i, positionals
        if arg in ("-h", "--help", "-help"):
            raise HelpRequested(usage())
        flag, eq, value = arg.partition("=")
        opt = _lookup(opts, flag)
        if opt is None:
            raise OcishError(f"flag provided but not defined: {flag}")
        if opt.kind is bool:
            if eq and value not in ("true", "false", "1", "0"):
                raise OcishError(f"invalid boolean value {value!r} for {flag}")
            out[opt.dest] = not eq or value in ("true", "1")
        else:
            if not eq:
                i += 1
                if i >= len(argv):
                    raise OcishError(f"flag needs an argument: {flag}")
                value = argv[i]
            if opt.choices and value not in opt.choices:
                raise OcishError(f"invalid value {value!r} for {flag}: choose from {', '.join(opt.choices)}")
            try:
                parsed = opt.kind(value)
            except ValueError:
                raise OcishError(f"invalid value {value!r} for flag {flag}") from None
            out[opt.dest] = (out[opt.dest] or []) + [parsed] if opt.multi else parsed
        i += 1
    return i, positionals


def parse(prog: str, global_opts: list[Opt], commands: list[Command], argv: list[str]):
    """(global Parsed, Command or None, command Parsed)."""
    glob = {o.dest: o.default for o in global_opts}
    i, _ = _parse_flags(argv, 0, global_opts, glob, lambda: usage(prog, global_opts, commands))
    if i >= len(argv):
        return Parsed(**glob), None, Parsed()
    by_name = {c.name: c for c in commands}
    cmd = by_name.get(argv[i])
    if cmd is None:
        raise OcishError(f"no such command: {argv[i]}")
    vals = {o.dest: o.default for o in cmd.opts}
    args: list[str] = []
    i += 1
    while i < len(argv):
        i, more = _parse_flags(argv, i, cmd.opts, vals, lambda: command_usage(prog, cmd))
        args += more
        if i < len(argv):
            args.append(argv[i])
            i += 1
            if cmd.rest and len(args) >= len(cmd.args):  # after the ids, raw as in runc (exec, ps)
                args += argv[i:]
                break
    n, opt_n = len(cmd.args), len(cmd.optional)
    if len(args) < n or (not cmd.rest and len(args) > n + opt_n):
        want = f"exactly {n}" if not opt_n else f"{n} to {n + opt_n}"
        raise OcishError(f'"{cmd.name}" requires {want} argument(s)')
    names = list(cmd.args) + list(cmd.optional)
    for k, name in enumerate(names):
        vals[name] = args[k] if k < len(args) else None
    if cmd.rest:
        vals[cmd.rest] = args[len(names):]
    return Parsed(**glob), cmd, Parsed(**vals)


def _flags(opts: list[Opt]) -> str:
    rows = []
    for o in opts:
        names = f"--{o.name}" + (f", -{o.short}" if o.short else "")
        if o.kind is not bool:
            names += " value"
        rows.append(f"   {names:<28} {o.help}")
    return "\n".join(rows)


def usage(prog: str, global_opts: list[Opt], commands: list[Command]) -> str:
    cmds = "\n".join(f"   {c.name:<12} {c.help}" for c in commands)
    return (f"usage: {prog} [global options] command [command options] [arguments...]\n\n"
            f"COMMANDS:\n{cmds}\n\nGLOBAL OPTIONS:\n{_flags(global_opts)}")


def command_usage(prog: str, cmd: Command) -> str:
    args = " ".join(f"<{a}>" for a in cmd.args) + "".join(f" [{a}]" for a in cmd.optional)
    if cmd.rest:
        args += f" [{cmd.rest}...]"
    return f"usage: {prog} {cmd.name} [command options] {args}\n\n{cmd.help}\n\nOPTIONS:\n{_flags(cmd.opts)}"
