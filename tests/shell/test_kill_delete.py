"""`kill KILL` then `delete` at once: the shell waits for the init to die, so the delete finds
it stopped (it used to race: "cannot delete container ... that is not stopped: running")."""
from __future__ import annotations

import os
import subprocess

from tests.conftest import REPO, needs_root, ocish_cmd

pytestmark = needs_root

ROUNDS = 10


def test_kill_then_delete_does_not_race(ocish, make_bundle):
    b = make_bundle(["sleep", "100"])
    # paused every other round: SIGKILL thaws a paused container (runc's Signal), then the wait
    script = "".join("continue\nstart\n" + ("pause\n" if n % 2 else "") +
                     "kill KILL\ndelete\nrestart\n" for n in range(ROUNDS))
    p = subprocess.run(ocish_cmd() + ["debug", str(b), "--root", ocish.root, "--plain",
                                      "--errexit"], input=script, capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("deleted container") == ROUNDS, p.stdout + p.stderr
