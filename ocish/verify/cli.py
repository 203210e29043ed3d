"""`ocish verify ID|PID [--runtime ocish|runc] [--root R] [--bundle B] [--json]`.

Exit status, as diff(1) and cmp(1) have it (and `ocish lint`): 0 when every item matches, 1 on
a mismatch, 2 when verify could not compare (bad arguments, no such container or process, no
readable config, the process gone). A usage error is one line on stderr; with --json, stdout
gets {"error", "exit_status"} too, as lint and diagnose do.
"""
from __future__ import annotations

import json
import os
import sys

from runtime.errors import OcishError


def main(argv: list[str]) -> int:
    from ocish.lint import _ArgParser
    from ocish.render import to_plain
    from ocish.verify import verify
    from ocish.verify.render import report
    from ocish.verify.subject import RUNTIMES, find
    p = _ArgParser(argv=argv, prog="ocish verify",
                   description="Compare what config.json asked for with what the kernel holds "
                   "for a created or running container: namespaces, id maps, mounts, masked "
                   "and read-only paths, devices, cgroup limits, capabilities, no_new_privs, "
                   "seccomp, rlimits, hostname, oom_score_adj, user, groups, umask, cwd, env. "
                   "Exit status 0: all match; 1: a mismatch; 2: could not verify.")
    p.add_argument("id", metavar="ID|PID", help="a container under --root, or a host pid "
                   "(with --bundle)")
    p.add_argument("--runtime", choices=RUNTIMES, default="ocish",
                   help="whose state files --root holds (default ocish)")
    p.add_argument("--root", default="", help="the runtime's state root (default /run/ocish, "
                   "/run/runc)")
    p.add_argument("--bundle", "-b", default="", help="compare with this bundle's config.json "
                   "(default: the one the container was created with)")
    p.add_argument("--json", action="store_true", help="the report as JSON")
    try:
        a = p.parse_args(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 2
    try:
        r = verify(find(a.id, a.runtime, a.root, a.bundle))
    except (OcishError, OSError) as e:
        why = str(e) if isinstance(e, OcishError) or not e.errno else \
            f"{e.filename + ': ' if e.filename else ''}{os.strerror(e.errno).lower()}"
        sys.stderr.write(f"ocish: verify: {why}\n")
        if a.json:
            sys.stdout.write(json.dumps({"error": why, "exit_status": 2}) + "\n")
        return 2
    if a.json:
        data = to_plain(r)
        data["exit_status"] = 1 if r.mismatches else 0
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    elif sys.stdout.isatty():
        from rich.console import Console
        Console().print(report(r, True))
    else:
        sys.stdout.write(report(r, False) + "\n")
    return 1 if r.mismatches else 0
