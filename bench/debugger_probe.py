"""The debugger's figures, measured in the interpreter of an installed ocish (bench/run.py
starts it with that ocish's python): time to load a bundle, a step's overhead over the bare
stage, and `inspect all` at the stop after stage mounts.

    python debugger_probe.py BUNDLE ROOT ROUNDS   ->  JSON on stdout

A step's overhead: a session that steps every item from load to `created`, minus one that runs
the same stages with `continue` (the same engine and observer, no stops), over the number of
steps. The bare stage is the continue's; what a stop adds (the stop, the diff's snapshots, the
round trip to the container side) is the overhead.
"""
from __future__ import annotations

import json
import sys
import time

from ocish.commands import Commands
from ocish.debugger import Debugger


def _timed(c: Commands, line: str) -> float:
    t = time.perf_counter()
    out = c.run(line, history=False)
    took = (time.perf_counter() - t) * 1000
    if not out.ok:
        raise SystemExit(f"{line}: {out.error}")
    return took


def _session(root: str) -> Commands:
    return Commands(Debugger(root))


def main(bundle: str, root: str, rounds: int) -> dict:
    load, overhead, inspect, steps = [], [], [], 0
    for i in range(rounds):
        c = _session(root)
        load.append(_timed(c, f"load {bundle} --id probe-c{i}"))
        straight = _timed(c, "continue")
        c.dbg.teardown()

        c = _session(root)
        _timed(c, f"load {bundle} --id probe-s{i}")
        stepped, steps = 0.0, 0
        while c.dbg.in_setup:
            stepped += _timed(c, "step")
            steps += 1
        c.dbg.teardown()
        overhead.append(max(0.0, stepped - straight) / max(1, steps))

        c = _session(root)
        _timed(c, f"load {bundle} --id probe-i{i}")
        _timed(c, "until pivot")
        inspect.append(_timed(c, "inspect all"))
        c.dbg.teardown()
    return {"load_ms": load, "step_overhead_ms": overhead, "inspect_all_ms": inspect,
            "steps": steps}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], int(sys.argv[3]))))
