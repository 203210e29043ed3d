"""`ocish debug --id ID` when a container (a stale one, often) already has the id: runc's
words, then how to see it and remove it, under the session's --root."""
from __future__ import annotations

import os
import subprocess

from tests.conftest import REPO, cid, needs_root, ocish_cmd

pytestmark = needs_root


def test_a_taken_id_says_how_to_free_it(tmp_path, make_bundle) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    root, c = str(tmp_path / "root"), cid()
    bundle = make_bundle(args=["sleep", "60"])
    try:
        subprocess.run(ocish_cmd() + ["--root", root, "create", "-b", bundle, c], check=True,
                       env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60)
        res = subprocess.run(ocish_cmd() + ["--root", root, "debug", bundle, "--id", c,
                                            "--plain"], input="quit\n", capture_output=True,
                             text=True, env=env, timeout=60)
        assert res.returncode == 1
        assert res.stderr.strip().splitlines()[0] == (
            f"ocish: container with id exists: {c} (`ocish --root {root} state {c}` shows it, "
            f"`ocish --root {root} delete -f {c}` removes it, `--id` picks another)")
    finally:
        subprocess.run(ocish_cmd() + ["--root", root, "delete", "-f", c], env=env,
                       capture_output=True, timeout=60)
