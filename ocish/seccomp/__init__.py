"""Seccomp answers: what a container's filter (loaded, or compiled from config.json without
running anything) does with a call, and its rules grouped by action.

    ocish seccomp check   (--bundle B | --pid P | ID [--root R]) SYSCALL [ARG...] [--json]
    ocish seccomp explain (--bundle B | --pid P | ID [--root R]) [--json]

and `seccomp check|explain` in the debugger's shell (the loaded container by default). The
modules: source.py (where the filters come from), bpfrun.py (a classic-BPF interpreter, concrete
and symbolic), answers.py (check, and the start-up calls a filter stops), explain.py (rules by
action), render.py (text).
"""
from __future__ import annotations

import sys

from runtime.errors import OcishError

USAGE = ("usage: ocish seccomp check (--bundle B | --pid P | ID [--root R]) SYSCALL [ARG...] "
         "[--json]\n       ocish seccomp explain (--bundle B | --pid P | ID [--root R]) [--json]")
HELP = USAGE + """

What a seccomp filter answers on this machine's architecture, read from the kernel or compiled
from config.json without running anything:
  check    the action for SYSCALL called with ARG... (SCMP_ACT_* as config.json names it, and
           the kernel's SECCOMP_RET_*), its errno, the config rule that decided it and the BPF
           path that did (each instruction evaluated, disassembled)
  explain  the filter's rules grouped by action, in config.json's terms (syscall names,
           argument conditions); for a loaded filter reconstructed from its BPF
Both flag the calls a process needs to start (the runtime's after the filter is loaded,
execve, the dynamic loader's first calls) that the filter stops.

  --bundle B   a bundle (or its config.json): /linux/seccomp compiled with libseccomp as
               stage seccomp compiles it, and exported as BPF
  --pid P      the filters process P has loaded (PTRACE_SECCOMP_GET_FILTER), or its
               /proc/P/status Seccomp mode
  ID           a container under --root (default /run/ocish; runc's and crun's roots work
               too): its init's filters, compared with the config.json it was created with
  ARG          a number (decimal, 0x hex, negative: two's complement) or flag names joined by
               | (CLONE_NEWUSER|CLONE_NEWNS, PER_LINUX32, O_CREAT|O_WRONLY, MS_RDONLY)
  --json       the answer as JSON
Exit status: 0 answered, 1 bad input or the filters could not be read."""


def parse(argv: list[str]) -> tuple[str, dict, list[str]]:
    """(check|explain, options, positional words after it). Flags anywhere until `--`; a
    negative number is an argument, not a flag. Raises SystemExit(0) for --help."""
    opts: dict = {"json": False}
    pos: list[str] = []
    names = {"--bundle": "bundle", "-b": "bundle", "--pid": "pid", "--root": "root"}
    i = 0
    while i < len(argv):
        w = argv[i]
        i += 1
        if w == "--":
            pos += argv[i:]
            break
        if not w.startswith("-") or w[1:2].isdigit():
            pos.append(w)
            continue
        flag, eq, value = w.partition("=")
        if flag in ("-h", "--help"):
            raise SystemExit(0)
        if flag == "--json" and not eq:
            opts["json"] = True
            continue
        if flag not in names:
            raise OcishError(f"unknown flag {flag}")
        if not eq:
            if i >= len(argv):
                raise OcishError(f"{flag} needs a value")
            value, i = argv[i], i + 1
        opts[names[flag]] = value
    if not pos:
        raise OcishError("which command? check or explain")
    if pos[0] == "help":
        raise SystemExit(0)
    if pos[0] not in ("check", "explain"):
        raise OcishError(f"unknown seccomp command {pos[0]!r}: check or explain")
    return pos[0], opts, pos[1:]


def pid_number(text: str) -> int:
    """--pid's value as a process id; an OcishError otherwise."""
    if not text.isdigit() or int(text) < 1:
        raise OcishError(f"--pid must be a process id, not {text!r}")
    return int(text)


def main(argv: list[str]) -> int:
    """`ocish seccomp ...`: the answer on stdout (text or --json), exit status 0; a mistake
    is one line on stderr and exit status 1."""
    from ocish.seccomp import source
    try:
        action, o, pos = parse(argv)
    except SystemExit:
        print(HELP)
        return 0
    except OcishError as e:
        sys.stderr.write(f"ocish: seccomp: {e}\n{USAGE}\n")
        return 1
    try:
        given = [k for k in ("bundle", "pid") if k in o]
        if len(given) > 1:
            raise OcishError("give one of --bundle and --pid")
        cid = ""
        if not given:
            if not pos:
                raise OcishError("which filter? give --bundle B, --pid P or a container ID")
            cid = pos.pop(0)
        validate(action, pos)  # the words first: nothing is read for a mistyped command
        if "bundle" in o:
            src = source.from_bundle(o["bundle"])
        elif "pid" in o:
            src = source.from_pid(pid_number(o["pid"]))
        else:
            from runtime.cli import default_root
            src = source.from_container(o.get("root") or default_root(), cid)
        data = answer(src, action, pos)
    except OcishError as e:
        sys.stderr.write(f"ocish: seccomp {action}: {e}\n")
        return 1
    if o["json"]:
        from ocish.render import to_json
        print(to_json(data))
    else:
        from ocish.seccomp.render import render
        print(render(data))
    return 0


def validate(action: str, pos: list[str]) -> None:
    """The words after check|explain make sense (a known syscall, arguments that parse)."""
    if action == "explain":
        if pos:
            raise OcishError(f"explain takes no syscall: {' '.join(pos)}")
        return
    if not pos:
        raise OcishError("which syscall? (seccomp check SYSCALL [ARG...])")
    from ocish.seccomp.answers import parse_args, resolve_syscall
    resolve_syscall(pos[0])
    parse_args(pos[1:])


def answer(src, action: str, pos: list[str]):
    """The data of `check SYSCALL ARG...` or `explain` over a Source."""
    validate(action, pos)
    if action == "check":
        from ocish.seccomp.answers import check
        return check(src, pos[0], pos[1:])
    from ocish.seccomp.explain import explain
    return explain(src)


def session_source(dbg, opts: dict):
    """The Source `seccomp` answers from in the shell: --pid P, --bundle B, --config (the loaded
    container's config.json compiled), else the loaded container's process: its loaded filter,
    or, before one is loaded (stages seccomp to exec), its config.json's profile."""
    from ocish.seccomp import source
    if "pid" in opts:
        return source.from_pid(pid_number(opts["pid"]))
    if "bundle" in opts:
        return source.from_bundle(opts["bundle"])
    cfg = dbg.config()
    if opts.get("config"):
        if not cfg:
            raise dbg.nothing_loaded()
        return source.from_profile(cfg, f"config.json of container {dbg.cid} (compiled, "
                                        "not loaded)")
    t = dbg.readable("seccomp")
    return source.of_container(source.from_pid(t.pid, f"container {dbg.cid} (pid {t.pid})"),
                               cfg, dbg.cid)
