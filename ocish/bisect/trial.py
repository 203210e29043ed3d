"""Each candidate config tried once, in a throwaway container, by diagnose's dry run.

    candidate ──► <temp bundle>/config.json ──► ocish.diagnose.dryrun.run ──► Outcome
                  (root.path absolute: the        (ocish.debugger, the runtime's engine,
                   rootfs of GOOD or BAD)          its own temp --root, torn down)

Nothing here sets a container up: the dry run does, as `ocish diagnose` does (DESIGN.md, one
way of setting up a container). Answers are cached by the candidate's canonical JSON, so a
config asked for twice (ddmin meets the same subset again) runs once.

A failure is "the same" as BAD's when its signature (`signature`) matches: where it failed
(phase, stage, operation, errno) and how the process ended (signal, exit status), never which
array index was blamed (an index moves when other items come and go).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from typing import Callable

from ocish.bisect.ddmin import FAIL, PASS, UNRESOLVED
from ocish.bisect.delta import canonical
from ocish.diagnose import dryrun, setup_deadline
from ocish.diagnose.model import Outcome


@dataclass
class Tried:
    """One answer: the try's number (0 when it came from the cache), how many changes the
    candidate had, its verdict (PASS/FAIL/UNRESOLVED, or "" for GOOD and BAD themselves) and
    the dry run's Outcome."""
    number: int
    size: int
    verdict: str
    outcome: Outcome
    cached: bool = False


def signature(out: Outcome) -> tuple:
    """What identifies a failure across candidates: ("healthy",) for a container that starts;
    else phase, stage, operation, errno, signal and exit status. A config `create` refuses
    before any stage counts by its message with the numbers taken out (/mounts/7 and
    /mounts/3 are the same refusal)."""
    if out.healthy:
        return ("healthy",)
    err = out.error or {}
    refused = re.sub(r"\d+", "N", out.reason) if out.phase == "setup" and not out.stage else ""
    return (out.phase, out.stage, err.get("op", ""), err.get("errno", 0), out.signal,
            out.exit_status, refused)


class Trials:
    """The candidates' runs: one temporary bundle directory whose config.json each try
    rewrites (removed by `close`), the throwaway containers' --roots in `root_dir` (default:
    the system's temp dir), `window` seconds of watching each started process."""

    def __init__(self, window: float, root_dir: str | None, any_failure: bool = False,
                 on_try: Callable[[Tried], None] = lambda _t: None) -> None:
        self.window, self.root_dir, self.on_try = window, root_dir, on_try
        self.any_failure = any_failure
        self.bundle = tempfile.mkdtemp(prefix="ocish-bisect-")
        self.cache: dict[str, Outcome] = {}
        self.tries = self.hits = 0
        self.failure: tuple | None = None   # BAD's signature, once known

    def run(self, config: dict, size: int = 0, judge: bool = False) -> Tried:
        """`config` tried (or answered from the cache); `judge`: give it a verdict against
        BAD's failure. Raises dryrun.Interrupted on a stop signal (the container removed)."""
        key = canonical(config)
        out = self.cache.get(key)
        cached = out is not None
        if out is None:
            self.write(config)
            out = dryrun.run(self.bundle, self.window, setup_deadline(config),
                             root_dir=self.root_dir)
            self.cache[key] = out
            self.tries += 1
        else:
            self.hits += 1
        tried = Tried(0 if cached else self.tries, size, self.verdict(out) if judge else "",
                      out, cached)
        self.on_try(tried)
        return tried

    def verdict(self, out: Outcome) -> str:
        """PASS when it starts, FAIL when it fails as BAD does (any failure with
        `any_failure`), UNRESOLVED when it fails some other way."""
        if out.healthy:
            return PASS
        if self.any_failure or signature(out) == self.failure:
            return FAIL
        return UNRESOLVED

    def write(self, config: dict, bundle: str | None = None) -> None:
        """`config` as the config.json of `bundle` (made when missing; default the temporary
        bundle)."""
        bundle = bundle or self.bundle
        os.makedirs(bundle, exist_ok=True)
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(config, f, indent=2)

    def close(self) -> None:
        shutil.rmtree(self.bundle, ignore_errors=True)
