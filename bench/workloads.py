"""The workloads of `bench/run.py`: each one measured for the other runtime and for ocish,
alternated pair by pair in one run on the same bundle (the order flips every round, so neither
always runs on a warmer cache), as issue 11 lists them.
"""
from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from bench.runtimes import BenchError, Runtime, interpreter_of
from bench.stats import Result, Spread, paired

_ids = itertools.count()


@dataclass
class Env:
    other: Runtime
    ocish: Runtime
    true_bundle: str     # runs /bin/true
    sleep_bundle: str    # runs sleep 3600 (a container that stays up)
    rounds: int
    sequential: int      # containers in the sequential workload (issue 11: 100)
    concurrent: tuple[int, ...]  # batch sizes of the concurrent workload (10, 50)
    present: int         # containers present for list/state (100)


def _cid(rt: Runtime) -> str:
    return f"bench-{rt.name}-{os.getpid()}-{next(_ids)}"


def alternate(rounds: int, measure: Callable[[Runtime], float], env: Env
              ) -> tuple[list[float], list[float]]:
    """`measure` for the other runtime and ocish, `rounds` pairs, the order flipped each round:
    (the other's values, ocish's values)."""
    theirs, mine = [], []
    for r in range(rounds):
        if r % 2 == 0:
            theirs.append(measure(env.other))
            mine.append(measure(env.ocish))
        else:
            mine.append(measure(env.ocish))
            theirs.append(measure(env.other))
    return theirs, mine


def _ms(values: list[float]) -> list[float]:
    return [v * 1000 for v in values]


def run_and_delete(env: Env) -> Result:
    """`run` of /bin/true and `delete -f`: two processes, ms."""
    def once(rt: Runtime) -> float:
        cid = _cid(rt)
        return rt.timed("run", "-b", env.true_bundle, cid) + rt.timed("delete", "-f", cid)
    theirs, mine = alternate(env.rounds, once, env)
    return paired("`run` + `delete -f` (/bin/true)", "ms", _ms(theirs), _ms(mine), 1.0)


def shim_cycle(env: Env) -> Result:
    """create, start, state, kill, delete -f: five processes as containerd's shim calls them."""
    def once(rt: Runtime) -> float:
        cid = _cid(rt)
        return (rt.timed("create", "-b", env.sleep_bundle, cid) + rt.timed("start", cid)
                + rt.timed("state", cid) + rt.timed("kill", cid, "KILL")
                + rt.timed("delete", "-f", cid))
    theirs, mine = alternate(env.rounds, once, env)
    return paired("create, start, state, kill, delete -f", "ms", _ms(theirs), _ms(mine), 1.3)


def sequential(env: Env) -> Result:
    """N containers one after another (`run` + `delete -f` each; crun's README figure), s."""
    def once(rt: Runtime) -> float:
        t = time.perf_counter()
        for _ in range(env.sequential):
            cid = _cid(rt)
            rt.call("run", "-b", env.true_bundle, cid)
            rt.call("delete", "-f", cid)
        return time.perf_counter() - t
    theirs, mine = alternate(max(2, env.rounds // 5), once, env)
    return paired(f"{env.sequential} sequential containers", "s", theirs, mine, 1.0)


def concurrent(env: Env, n: int) -> Result:
    """n create/start/delete -f cycles at once (threads, each its own processes): the wall time
    of the whole batch, s."""
    def cycle(rt: Runtime) -> None:
        cid = _cid(rt)
        rt.call("create", "-b", env.true_bundle, cid)
        rt.call("start", cid)
        rt.call("delete", "-f", cid)

    def once(rt: Runtime) -> float:
        t = time.perf_counter()
        with ThreadPoolExecutor(max_workers=n) as pool:
            for f in [pool.submit(cycle, rt) for _ in range(n)]:
                f.result()
        return time.perf_counter() - t
    try:
        theirs, mine = alternate(max(2, env.rounds // 5), once, env)
    finally:
        env.other.clean()
        env.ocish.clean()
    return paired(f"{n} concurrent create/start/delete", "s", theirs, mine, None)


def list_and_state(env: Env) -> list[Result]:
    """`list` with nothing present, `state` with one container, then both with `present`
    created containers: ms."""
    out = []
    try:
        theirs, mine = alternate(env.rounds, lambda rt: rt.timed("list"), env)
        out.append(paired("`list`, no containers", "ms", _ms(theirs), _ms(mine), 2.5))
        first = {rt.name: _cid(rt) for rt in (env.other, env.ocish)}
        for rt in (env.other, env.ocish):
            rt.call("create", "-b", env.sleep_bundle, first[rt.name])
        theirs, mine = alternate(env.rounds, lambda rt: rt.timed("state", first[rt.name]), env)
        out.append(paired("`state`, 1 container", "ms", _ms(theirs), _ms(mine), 2.5))
        for rt in (env.other, env.ocish):
            for _ in range(env.present - 1):
                rt.call("create", "-b", env.sleep_bundle, _cid(rt))
        n = env.present
        theirs, mine = alternate(env.rounds, lambda rt: rt.timed("list"), env)
        out.append(paired(f"`list`, {n} containers", "ms", _ms(theirs), _ms(mine), 2.5))
        theirs, mine = alternate(env.rounds, lambda rt: rt.timed("state", first[rt.name]), env)
        out.append(paired(f"`state`, {n} containers present", "ms", _ms(theirs), _ms(mine), 2.5))
    finally:
        env.other.clean()
        env.ocish.clean()
    return out


def _pss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    raise BenchError(f"/proc/{pid}/smaps_rollup has no Pss line")


def waiting_init_pss(env: Env) -> Result:
    """The PSS of a created container's waiting init (the process `start` releases), MiB."""
    def once(rt: Runtime) -> float:
        cid = _cid(rt)
        rt.call("create", "-b", env.sleep_bundle, cid)
        try:
            return _pss_mib(rt.pid(cid))
        finally:
            rt.call("delete", "-f", cid)
    theirs, mine = alternate(max(2, env.rounds // 3), once, env)
    return paired("waiting init after `create`, PSS", "MiB", theirs, mine, 1.0)


def exec_into(env: Env) -> Result:
    """`exec` of /bin/true into a running container, ms."""
    running = {}
    try:
        for rt in (env.other, env.ocish):
            running[rt.name] = _cid(rt)
            rt.call("run", "-d", "-b", env.sleep_bundle, running[rt.name])
        theirs, mine = alternate(env.rounds, lambda rt: rt.timed("exec", running[rt.name],
                                                                 "/bin/true"), env)
    finally:
        env.other.clean()
        env.ocish.clean()
    return paired("`exec` into a running container", "ms", _ms(theirs), _ms(mine), None)


def debugger(env: Env) -> list[Result]:
    """The debugger's own figures (no other runtime has them), measured in the installed
    ocish's interpreter by bench/debugger_probe.py: ms."""
    probe = os.path.join(os.path.dirname(__file__), "debugger_probe.py")
    python = interpreter_of(env.ocish.argv[0])
    p = subprocess.run([python, probe, env.sleep_bundle, env.ocish.root,
                        str(max(3, env.rounds // 2))], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, cwd="/")
    if p.returncode:
        raise BenchError("debugger probe: " + (p.stderr.strip().splitlines() or ["failed"])[-1])
    got = json.loads(p.stdout)
    return [Result("debugger: load a bundle", "ms", Spread.of(got["load_ms"]),
                   rounds=len(got["load_ms"])),
            Result("debugger: a step's overhead over the bare stage", "ms",
                   Spread.of(got["step_overhead_ms"]), target=5.0, goal="value",
                   rounds=len(got["step_overhead_ms"]),
                   notes=[f"{got['steps']} steps from load to created"]),
            Result("debugger: `inspect all`", "ms", Spread.of(got["inspect_all_ms"]),
                   target=30.0, goal="value", rounds=len(got["inspect_all_ms"]))]


ALL = ("run", "cycle", "sequential", "concurrent", "list", "pss", "exec", "debugger")


def measure(name: str, env: Env) -> list[Result]:
    """The results of workload `name` (one of ALL)."""
    if name == "run":
        return [run_and_delete(env)]
    if name == "cycle":
        return [shim_cycle(env)]
    if name == "sequential":
        return [sequential(env)]
    if name == "concurrent":
        return [concurrent(env, n) for n in env.concurrent]
    if name == "list":
        return list_and_state(env)
    if name == "pss":
        return [waiting_init_pss(env)]
    if name == "exec":
        return [exec_into(env)]
    if name == "debugger":
        return debugger(env)
    raise BenchError(f"unknown workload {name!r}: one of {', '.join(ALL)}")


if __name__ == "__main__":
    sys.exit("run bench/run.py")
