"""Test hook: SIGKILL the runtime at a named point, to prove that a crash anywhere is recoverable.

    OCISH_TEST_CRASH=<point> ocish create ...    # dies with SIGKILL when it reaches <point>

For tests only (tests/integration/test_crash.py); never set it in production. The variable is
read once, when this module is imported; a process that never reaches the point is unaffected.
The points:

- `before:<stage>`, `after:<stage>`: the engine, around the first item of every setup stage
  (runtime/engine.py; `after:exec` is once the init blocks on exec.fifo);
- `create:dir` (state dir made, nothing recorded yet), `create:recorded` (first state.json
  written: runtime/state.py's begin, for restore too), `create:config` (the config copy and
  the pid file written, state.json not final yet), `create:saved` (state.json final):
  runtime/lifecycle.py's Setup;
- `delete:killed` (processes dead), `delete:cgroup` (cgroups removed): lifecycle.delete;
  `delete:files` (all but state.json removed), `delete:state` (state.json removed, the dir not
  yet): state.remove_dir, which a failed create's undo passes through too.

SIGKILL, not an exception: nothing of ours runs after it (no finally, no abort), as when the OOM
killer or a client's timeout kills the runtime.
"""
from __future__ import annotations

import os

AT = os.environ.get("OCISH_TEST_CRASH", "")


def reached(point: str) -> None:
    """Die here if the test hook names this point."""
    if point == AT:
        os.kill(os.getpid(), 9)  # SIGKILL; runtime.linux.sig is not needed for one number
