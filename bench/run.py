"""ocish against runc (or crun), side by side in one run on the same bundle.

    python3 bench/run.py [--against runc|crun] [--rounds N] [--ocish PATH] [--only W,W]
                         [--quick] [--json]

Every workload of issue 11 is measured for both runtimes, alternated pair by pair (the order
flips each round), and printed as a Markdown table of medians and the ocish/other ratio with
its spread, against the issue's targets. --json prints the same for tracking. Measure a regular
install (`pip install .`): an editable one's import hooks add tens of milliseconds per start.
Run as root; nothing is left behind (each runtime has a throwaway --root).

Exit status: 0 when it ran (targets met or not: this is a measurement, not a test), 2 when it
cannot run (a runtime missing, a command failing: one line on stderr).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.runtimes import BenchError, Runtime, ocish_runtime, other_runtime  # noqa: E402
from bench.stats import Result, table  # noqa: E402
from bench.workloads import ALL, Env, measure  # noqa: E402


def _bundle(ocish: Runtime, path: str, *args: str) -> str:
    subprocess.run([*ocish.argv, "bundle", "init", path, "--", *args], check=True,
                   stdout=subprocess.DEVNULL)
    config = os.path.join(path, "config.json")
    with open(config) as f:
        spec = json.load(f)
    spec["process"]["terminal"] = False
    with open(config, "w") as f:
        json.dump(spec, f)
    return path


def _first_line(cmd: list[str]) -> str:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True)
    except OSError:
        return "?"
    return (p.stdout.strip().splitlines() or ["?"])[0]


def machine(other: Runtime, ocish: Runtime) -> dict:
    """What the figures were measured on."""
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    return {"kernel": platform.release(), "cpus": os.cpu_count(), "cpu": model,
            "python": platform.python_version(), "load_at_start": load,
            other.name: _first_line([*other.argv, "--version"]),
            "ocish": _first_line([*ocish.argv, "--version"]), "ocish_path": ocish.argv[0]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--against", choices=("runc", "crun"), default="runc")
    ap.add_argument("--rounds", type=int, default=10, help="pairs per workload (default 10)")
    ap.add_argument("--ocish", default="ocish", help="the installed ocish to measure")
    ap.add_argument("--only", default="", help=f"comma-separated workloads of: {','.join(ALL)}")
    ap.add_argument("--quick", action="store_true",
                    help="small sizes (a smoke test): 5 sequential, 2 and 5 concurrent, 5 present")
    ap.add_argument("--json", action="store_true", help="JSON instead of the table")
    a = ap.parse_args(argv)
    if a.rounds < 1:
        ap.error("--rounds must be at least 1")
    names = [w for w in a.only.split(",") if w] or list(ALL)
    unknown = [w for w in names if w not in ALL]
    if unknown:
        ap.error(f"--only: unknown workload {unknown[0]!r} (one of {', '.join(ALL)})")
    if os.geteuid() != 0:
        print("bench/run.py: run it as root (both runtimes create real containers)",
              file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="ocish-bench-")
    other = ocish = None
    try:
        other = other_runtime(a.against, os.path.join(tmp, a.against))
        ocish = ocish_runtime(a.ocish, os.path.join(tmp, "ocish"))
        env = Env(other, ocish, _bundle(ocish, os.path.join(tmp, "true"), "/bin/true"),
                  _bundle(ocish, os.path.join(tmp, "sleep"), "sleep", "3600"), a.rounds,
                  5 if a.quick else 100, (2, 5) if a.quick else (10, 50), 5 if a.quick else 100)
        facts = machine(other, ocish)
        results: list[Result] = []
        for name in names:
            print(f"measuring {name} ...", file=sys.stderr, flush=True)
            results += measure(name, env)
    except (BenchError, subprocess.CalledProcessError) as e:
        print(f"bench/run.py: {e}", file=sys.stderr)
        return 2
    finally:
        for rt in (other, ocish):
            if rt:
                rt.clean()
        shutil.rmtree(tmp, ignore_errors=True)
    if a.json:
        print(json.dumps({"machine": facts, "against": a.against, "rounds": a.rounds,
                          "results": [r.as_dict() for r in results]}, indent=2))
    else:
        print(f"{facts['cpus']} × {facts['cpu']}, Linux {facts['kernel']}, Python "
              f"{facts['python']}, load {facts['load_at_start']}; {facts[a.against]}; "
              f"{facts['ocish']} ({facts['ocish_path']}); {a.rounds} rounds\n")
        print(table(results, a.against))
    return 0


if __name__ == "__main__":
    sys.exit(main())
