"""`ocish diagnose [BUNDLE]`: why does this bundle not start, and what do I change?

    1. lint       the runtime's own validation of config.json      lint_step.py
    2. preflight  the rootfs and the host, nothing run             preflight.py, entrypoint.py
    3. dry run    the real pipeline in a throwaway container,      dryrun.py (ocish.debugger)
                  then `start` and a short window; a process
                  that dies is re-run under strace for its last
                  system call
    explain       failures -> cause, evidence, fix                 explain.py, probe.py
    render        text (rich on a terminal) or JSON                report.py
    --against     the same bundle under runc, side by side         against.py

Exit status: 0 when the bundle starts (a clear "healthy" line), 1 with findings, 2 when diagnose
itself cannot run (no bundle directory, config.json unreadable, bad arguments); 128+N after a
stop signal N, with everything removed.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

from ocish.diagnose.model import ERROR, INFO, WARNING, DiagnoseError, Outcome, Report

DEFAULT_WINDOW = 1.5
MAX_WINDOW = 3600.0  # an hour: diagnose watches a process's first moments, not its life


def check_window(seconds: float, error: type[Exception]) -> None:
    """--timeout's value: `error` unless 0 < seconds <= MAX_WINDOW (nan and inf too)."""
    if not 0 < seconds <= MAX_WINDOW:
        raise error(f"--timeout must be a number of seconds from 0 (excluded) to "
                    f"{MAX_WINDOW:g}, got {seconds:g}")
SETUP_DEADLINE = 10.0
_ORDER = {ERROR: 0, WARNING: 1, INFO: 2}


def read_config(bundle: str):
    """config.json of `bundle` as far as JSON can read it (None when it is not JSON: lint says
    why), whatever its type. Raises DiagnoseError when there is no bundle or config.json cannot
    be read (as lint: a FIFO, a directory, too large)."""
    from runtime import spec as specmod
    from runtime.errors import ConfigNotJson, OcishError
    if not os.path.isdir(bundle):
        why = "not a directory" if os.path.exists(bundle) else "no such file or directory"
        raise DiagnoseError(f"bundle {bundle}: {why}")
    try:  # the runtime's own reading: a regular file only (a FIFO would block), size-capped
        doc = specmod.read(bundle)
    except ConfigNotJson:
        return None
    except OcishError as e:  # as lint says it
        why = str(e).split("config.json: ", 1)[-1]
        raise DiagnoseError(f"{os.path.join(bundle, 'config.json')}: {why}") from None
    return doc


def rootfs_of(spec: dict, bundle: str) -> str | None:
    root = spec.get("root")
    path = root.get("path") if isinstance(root, dict) else None
    if not isinstance(path, str) or not path:
        return None
    full = os.path.join(bundle, path)
    return os.path.realpath(full) if os.path.isdir(full) else None


def setup_deadline(spec: dict) -> float:
    """How long setup may take: a fixed margin plus the timeouts of the hooks it runs."""
    hooks = spec.get("hooks") if isinstance(spec.get("hooks"), dict) else {}
    total = 0
    for kind in ("prestart", "createRuntime", "createContainer"):
        for h in hooks.get(kind) or []:
            if isinstance(h, dict) and isinstance(h.get("timeout"), int):
                total += h["timeout"]
    return SETUP_DEADLINE + total


def diagnose(bundle: str, window: float = DEFAULT_WINDOW, trace: bool = True,
             against: str | None = None, root_dir: str | None = None) -> Report:
    """Lint, preflight and dry-run `bundle` (the throwaway container's --root a temporary
    directory in `root_dir`, default the system's temp dir); raises DiagnoseError when it
    cannot, and dryrun.Interrupted (after removing everything) on a stop signal."""
    from ocish.diagnose import dryrun, explain, lint_step
    from ocish.diagnose.preflight import Preflight
    t0 = time.monotonic()
    bundle = os.path.abspath(bundle)
    doc = read_config(bundle)
    spec = doc if isinstance(doc, dict) else {}
    report = Report(bundle, spec=doc)
    report.findings += lint_step.findings(bundle)
    report.lint_ok = not report.errors
    rootfs = rootfs_of(spec, bundle)
    if rootfs is not None and spec:
        pre = Preflight(spec, bundle, rootfs)
        pre.run()
        report.findings += pre.findings
        report.checked += pre.checked
    predicted = [f for f in report.findings if f.source == "preflight"]
    if report.lint_ok:
        report.outcome = dryrun.run(bundle, window, setup_deadline(spec), root_dir=root_dir)
        if trace and report.outcome.died and not report.outcome.healthy and shutil.which("strace"):
            _traced_rerun(report.outcome, bundle, window, setup_deadline(spec), root_dir)
    else:
        report.outcome = Outcome(reason="`create` refuses this config (see lint): fix that first")
    report.findings += explain.outcome_findings(report.outcome, spec, rootfs or "", predicted,
                                                bundle)
    report.findings.sort(key=lambda f: (_ORDER.get(f.severity, 3), not f.confirmed,
                                        f.source != "dry run"))
    if against:
        from ocish.diagnose import against as against_mod
        report.against = against_mod.run(bundle, spec, window, against)
    report.seconds = time.monotonic() - t0
    return report


def _traced_rerun(out: Outcome, bundle: str, window: float, deadline: float,
                  root_dir: str | None = None) -> None:
    """Run again under strace -f, for the last system call of a process that died; kept only
    when the traced run died the same way."""
    from ocish.diagnose import dryrun
    traced = dryrun.run(bundle, window, deadline, trace=True, root_dir=root_dir)
    if (traced.signal, traced.exit_status, traced.phase) == (out.signal, out.exit_status,
                                                             out.phase):
        out.trace, out.last_syscall = traced.trace, traced.last_syscall
        out.notes.append("re-run under strace -f for the last system call: it died the same way")


def _could_not_run(message: str, argv: list[str]) -> int:
    """Exit status 2: one line on stderr; with --format json, a document on stdout too, for
    the tool that reads it."""
    sys.stderr.write(f"ocish: diagnose: {message}\n")
    if wants_json(argv):
        sys.stdout.write(json.dumps({"error": message, "exit_status": 2}) + "\n")
    return 2


def wants_json(argv: list[str]) -> bool:
    """--format json, read from the words (the parser may be what failed)."""
    return any(a == "--format=json" or (a == "--format" and argv[i + 1:i + 2] == ["json"])
               for i, a in enumerate(argv))


class _ArgParser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit status 2, like every diagnose failure
        raise DiagnoseError(message)


def main(argv: list[str]) -> int:
    """`ocish diagnose [BUNDLE | --podman NAME|ID | --containerd ID [--namespace N]]
    [--format text|json] [--timeout S] [--against runc] [--no-trace]`."""
    from ocish.diagnose import dryrun, report as render
    p = _ArgParser(prog="ocish diagnose", description="Why does this bundle not start, and what "
                   "do I change? Lint, preflight checks and a dry run in a throwaway container.")
    p.add_argument("bundle", nargs="?", help="the bundle directory (default: .)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--timeout", type=float, default=DEFAULT_WINDOW, metavar="S",
                   help=f"seconds to watch the started process (default {DEFAULT_WINDOW})")
    p.add_argument("--against", choices=("runc",), help="run the bundle under runc too, side "
                   "by side")
    p.add_argument("--no-trace", action="store_true",
                   help="do not re-run a dying process under strace")
    from ocish.engine_bundle import EngineError, borrow, engine_args, engine_of
    engine_args(p)
    try:
        a = p.parse_args(argv)
        check_window(a.timeout, DiagnoseError)
        dryrun.install_stop_handlers()
        engine, ref = engine_of(a, a.bundle is not None)
        if engine:
            with borrow(engine, ref, a.namespace) as b:
                result = diagnose(b.bundle, a.timeout, not a.no_trace, a.against)
                result.container, result.bundle = b.describe(), b.title()
                result.outcome.notes += b.notes
        else:
            result = diagnose(a.bundle or ".", a.timeout, not a.no_trace, a.against)
    except (DiagnoseError, EngineError) as e:
        return _could_not_run(str(e), argv)
    except dryrun.Interrupted as e:
        sys.stderr.write("ocish: diagnose interrupted: the throwaway container and all it made "
                         "were removed\n")
        return 128 + e.signum
    except Exception as e:  # noqa: BLE001 - a bug of ours: one line, never a traceback
        return _could_not_run(f"internal error: {type(e).__name__}: {e}", argv)
    if a.format == "json":
        sys.stdout.write(render.to_json(result) + "\n")
    else:
        text = render.render_text(result, styled=sys.stdout.isatty()
                                  and "NO_COLOR" not in os.environ)
        if text is not None:
            sys.stdout.write(text)
    return 0 if result.healthy else 1
