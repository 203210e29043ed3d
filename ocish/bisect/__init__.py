"""`ocish bisect GOOD BAD`: the smallest set of config changes that turns a container that starts
into one that fails, as a JSON patch, with the diagnosis it causes.

    read      GOOD and BAD: bundle directories or config.json files; root.path and relative
              bind sources made absolute, each against its own bundle (so two bundles with
              their own rootfs differ at /root/path, and the same rootfs does not differ)
    diff      the differences as units (delta.py: leaves, array items by key or value)
    try       GOOD must start, BAD must fail: each in a throwaway container by diagnose's
              dry run (trial.py); BAD's failure is the one to keep
    ddmin     Zeller's delta debugging over the units (ddmin.py): each candidate is GOOD with
              some units from BAD, tried once (cached); "fails" means fails as BAD does
              (--any-failure: any failure)
    diagnose  GOOD + the minimal change, diagnosed as `ocish diagnose` does: stage, pointer,
              cause, fix
    render    text (rich on a terminal) or --json; progress on stderr (progress.py)

Everything runs through one temporary bundle directory (the rootfs stays where it is) and the
dry run's own temporary --roots (in --root R when given); all are removed before bisect exits,
on a stop signal too.

Exit status:
    0   the minimal change was found, and it fails again when diagnosed
    1   the minimal change failed during the search but not when diagnosed (flaky)
    2   bisect cannot run: bad arguments, an input that is not a readable bundle or
        config.json holding a JSON object
    3   GOOD fails by itself
    4   BAD starts: there is no failure to bisect
    5   GOOD and BAD are the same config
    128+N   stopped by signal N, everything removed
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from ocish.diagnose import DEFAULT_WINDOW, check_window

CANNOT_RUN, FLAKY, GOOD_FAILS, BAD_STARTS, IDENTICAL = 2, 1, 3, 4, 5


class BisectError(Exception):
    """bisect cannot run or has nothing to bisect; `status` is the exit status."""

    def __init__(self, message: str, status: int = CANNOT_RUN) -> None:
        super().__init__(message)
        self.status = status


def load(arg: str, which: str) -> tuple[str, dict]:
    """(the absolute path shown, the config) of GOOD or BAD (`which`): a bundle directory or a
    config file, read as the runtime reads config.json (a regular file, size-capped), with
    root.path and relative bind sources made absolute against its directory. Raises
    BisectError naming `which` and the file."""
    from runtime import spec as specmod
    from runtime.errors import OcishError
    path = os.path.abspath(arg)
    if not os.path.exists(path):
        raise BisectError(f"{which} {arg}: no such file or directory")
    bundle, name = (path, "config.json") if os.path.isdir(path) else os.path.split(path)
    try:
        doc = specmod.read(bundle, name)
    except OcishError as e:
        why = str(e).split(": ", 1)[-1]  # the file's name, then why
        raise BisectError(f"{which} {arg}: {why if bundle == path else why.split(': ', 1)[-1]}"
                          ) from None
    if not isinstance(doc, dict):
        raise BisectError(f"{which} {arg}: {'config.json: ' if bundle == path else ''}"
                          "not a JSON object")
    return path, absolute_paths(doc, bundle)


def absolute_paths(spec: dict, bundle: str) -> dict:
    """`spec` with root.path and the relative sources of bind mounts joined to `bundle`, as
    the runtime resolves them (runtime/spec.py _rootfs, stages/mounts.py bind_source; runc
    resolves both against the bundle too), so that the config means the same from the
    temporary bundle."""
    from ocish.diagnose.rootview import is_bind
    root = spec.get("root")
    if isinstance(root, dict) and isinstance(root.get("path"), str) and root["path"]:
        root["path"] = os.path.normpath(os.path.join(bundle, root["path"]))
    for m in spec.get("mounts") if isinstance(spec.get("mounts"), list) else []:
        if isinstance(m, dict) and isinstance(m.get("source"), str) and m["source"] \
                and not os.path.isabs(m["source"]) and is_bind(m):
            m["source"] = os.path.join(bundle, m["source"])
    return spec


def bisect(good_arg: str, bad_arg: str, window: float = DEFAULT_WINDOW,
           root_dir: str | None = None, any_failure: bool = False, trace: bool = True,
           progress_mode: str = "off", save: str | None = None):
    """Bisect GOOD against BAD; returns a report.Result. `save`: a new directory where GOOD
    with the minimal change is written as a bundle (and diagnosed). Raises BisectError (with
    the exit status) when it cannot or there is nothing to bisect, dryrun.Interrupted on a
    stop signal (after removing everything)."""
    from ocish.bisect import delta
    from ocish.bisect.ddmin import ddmin
    from ocish.bisect.progress import Progress
    from ocish.bisect.report import Result
    from ocish.bisect.trial import Trials, signature
    from ocish.diagnose import diagnose
    t0 = time.monotonic()
    good_path, good = load(good_arg, "good")
    bad_path, bad = load(bad_arg, "bad")
    if save is not None:
        save = os.path.abspath(save)
        if os.path.exists(save) and (not os.path.isdir(save) or os.listdir(save)):
            raise BisectError(f"--save {save}: exists and is not an empty directory")
    changes = delta.changes(good, bad)
    if not changes:
        raise BisectError(f"good {good_arg} and bad {bad_arg} are the same config: nothing to "
                          "bisect", IDENTICAL)
    root_dir = os.path.abspath(root_dir) if root_dir is not None else None
    made_root = root_dir is not None and not os.path.exists(root_dir)
    if root_dir is not None and not made_root and not os.path.isdir(root_dir):
        raise BisectError(f"--root {root_dir}: not a directory")
    if made_root:
        try:
            os.mkdir(root_dir)
        except OSError as e:
            raise BisectError(f"--root {root_dir}: {os.strerror(e.errno or 0).lower()}") from None
    progress = Progress(len(changes), progress_mode)
    label = [""]
    trials = Trials(window, root_dir, any_failure, lambda t: progress.tried(t, label[0]))
    try:
        label[0] = "good"
        out = trials.run(good).outcome
        if not out.healthy:
            raise BisectError(f"good {good_arg} fails by itself ({out.summary()}): "
                              f"`ocish diagnose {good_arg}` says why", GOOD_FAILS)
        label[0] = "bad"
        out = trials.run(bad).outcome
        if out.healthy:
            raise BisectError(f"bad {bad_arg} starts ({out.summary()}): there is no failure "
                              "to bisect", BAD_STARTS)
        trials.failure, failure = signature(out), out.summary()

        def test(subset: list[int]) -> str:
            label[0] = f"{len(subset)} of {len(changes)} changes"
            config = delta.candidate(good, bad, {changes[i].uid for i in subset})
            return trials.run(config, len(subset), judge=True).verdict
        minimal = [changes[i] for i in ddmin(range(len(changes)), test)]
        final = delta.candidate(good, bad, {c.uid for c in minimal})
        progress.close()
        trials.write(final, save)
        report = diagnose(save or trials.bundle, window, trace, root_dir=root_dir)
    finally:
        progress.close()
        trials.close()
        if made_root:
            try:
                os.rmdir(root_dir)  # empty again: each dry run removed its own --root
            except OSError:
                pass
    result = Result(good_path, bad_path, changes, failure, minimal, delta.patch(good, final),
                    report, trials.tries, trials.hits, time.monotonic() - t0)
    if save:
        result.notes.append(f"good with the patch is the bundle {save} (its rootfs by absolute "
                            "path)")
    elif rename(report, trials.bundle, PATCHED):
        result.notes.append(f"{PATCHED}: good's config with the patch applied, as a bundle "
                            "(--save DIR writes one)")
    if not result.reproduced:
        result.notes.append("the minimal change did not fail when diagnosed again: the failure "
                            "comes and goes")
    return result


PATCHED = "GOOD+PATCH"


def rename(report, old: str, new: str) -> bool:
    """Replace the path `old` (the temporary bundle, gone when bisect ends) by `new` in the
    words of `report`'s findings (commands of fixes, causes, evidence); True when one had it."""
    seen = False

    def sub(text: str) -> str:
        nonlocal seen
        seen = seen or old in text
        return text.replace(old, new)
    for f in report.findings:
        f.title, f.cause, f.evidence = sub(f.title), sub(f.cause), [sub(e) for e in f.evidence]
        if f.fix is not None:
            f.fix.text, f.fix.command = sub(f.fix.text), sub(f.fix.command)
    o = report.outcome
    o.reason, o.error_text, o.start_error = sub(o.reason), sub(o.error_text), sub(o.start_error)
    o.notes = [sub(n) for n in o.notes]
    return seen


class _ArgParser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit status 2
        raise BisectError(message)


def main(argv: list[str]) -> int:
    """`ocish bisect GOOD BAD [--json] [--root R] [--timeout S] [--any-failure] [--save DIR]
    [--no-trace] [--quiet]`; the exit statuses are in the module's docstring."""
    from ocish.bisect import progress, report as render
    from ocish.diagnose import dryrun
    p = _ArgParser(prog="ocish bisect", description="The smallest set of config.json changes "
                   "that turns GOOD (a bundle that starts) into a failing one like BAD: delta "
                   "debugging, each candidate tried in a throwaway container by diagnose's dry "
                   "run. Prints the change as a JSON patch and the diagnosis it causes.",
                   epilog="exit status: 0 found; 1 flaky (the minimal change did not fail "
                   "again); 2 cannot run (arguments, unreadable input); 3 good fails by "
                   "itself; 4 bad starts; 5 the configs are the same; 128+N stopped by "
                   "signal N")
    p.add_argument("good", help="a bundle directory, or a config.json, that starts")
    p.add_argument("bad", help="a bundle directory, or a config.json, that fails")
    p.add_argument("--json", action="store_true", help="the result as JSON on stdout")
    p.add_argument("--root", metavar="R", help="where the throwaway containers' state goes "
                   "(a temporary directory in R per try; default: the temp dir)")
    p.add_argument("--timeout", type=float, default=DEFAULT_WINDOW, metavar="S",
                   help=f"seconds to watch each started process (default {DEFAULT_WINDOW})")
    p.add_argument("--any-failure", action="store_true", help="any failure counts, not only "
                   "BAD's (same stage, operation, errno, exit status)")
    p.add_argument("--no-trace", action="store_true", help="diagnose the result without "
                   "re-running a dying process under strace")
    p.add_argument("--save", metavar="DIR", help="write good with the minimal change as a "
                   "bundle in DIR (new or empty; the rootfs by absolute path)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    as_json = "--json" in argv
    try:
        a = p.parse_args(argv)
        check_window(a.timeout, BisectError)
        dryrun.install_stop_handlers()
        result = bisect(a.good, a.bad, a.timeout, a.root, a.any_failure, not a.no_trace,
                        progress.mode_for(sys.stderr, a.quiet), a.save)
    except BisectError as e:
        return _fail(str(e), e.status, as_json)
    except dryrun.Interrupted as e:
        sys.stderr.write("ocish: bisect interrupted: the throwaway containers and the temporary "
                         "bundle were removed\n")
        return 128 + e.signum
    except Exception as e:  # noqa: BLE001 - a bug of ours: one line, never a traceback
        return _fail(f"internal error: {type(e).__name__}: {e}", CANNOT_RUN, as_json)
    if a.json:
        sys.stdout.write(render.to_json(result) + "\n")
    else:
        text = render.render_text(result, sys.stdout.isatty() and "NO_COLOR" not in os.environ)
        if text is not None:
            sys.stdout.write(text)
    return 0 if result.reproduced else FLAKY


def _fail(message: str, status: int, as_json: bool) -> int:
    """One line on stderr; with --json, a document on stdout too."""
    sys.stderr.write(f"ocish: bisect: {message}\n")
    if as_json:
        sys.stdout.write(json.dumps({"error": message, "exit_status": status}) + "\n")
    return status
