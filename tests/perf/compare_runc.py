"""`ocish run` vs `runc run` wall time on the same /bin/true bundle, side by side in one run.

    python3 tests/perf/compare_runc.py [--rounds 5] [--runs 20] [--ocish PATH]

Runs alternate (runc, ocish, runc, ocish...) so both see the same machine load; prints each
round's mean per run and the ratio of the medians. Use an installed ocish (`pip install .`):
an editable install's import hooks add tens of milliseconds to every start.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def bundle(tmp: str, ocish: str) -> str:
    b = os.path.join(tmp, "bundle")
    subprocess.run([ocish, "bundle", "init", b, "--", "/bin/true"], check=True, stdout=subprocess.DEVNULL)
    path = os.path.join(b, "config.json")
    with open(path) as f:
        spec = json.load(f)
    spec["process"]["terminal"] = False
    with open(path, "w") as f:
        json.dump(spec, f)
    return b


def mean_run_ms(cmd: list[str], root: str, b: str, runs: int, tag: str) -> float:
    start = time.perf_counter()
    for i in range(runs):
        subprocess.run(cmd + ["--root", root, "run", "-b", b, f"{tag}{i}"], check=True,
                       stdin=subprocess.DEVNULL)
    return (time.perf_counter() - start) * 1000 / runs


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--ocish", default=os.path.join(sys.prefix, "bin", "ocish"))
    a = ap.parse_args()
    runc = shutil.which("runc")
    if not runc:
        print("runc is not installed", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        b = bundle(tmp, a.ocish)
        mine, theirs = [], []
        for r in range(a.rounds):
            theirs.append(mean_run_ms([runc], os.path.join(tmp, "runc"), b, a.runs, f"r{r}-"))
            mine.append(mean_run_ms([a.ocish], os.path.join(tmp, "ocish"), b, a.runs, f"o{r}-"))
            print(f"round {r + 1}: runc {theirs[-1]:.1f} ms  ocish {mine[-1]:.1f} ms  "
                  f"ratio {mine[-1] / theirs[-1]:.2f}")
        m, t = statistics.median(mine), statistics.median(theirs)
        print(f"median per run: runc {t:.1f} ms, ocish {m:.1f} ms; ocish/runc = {m / t:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
