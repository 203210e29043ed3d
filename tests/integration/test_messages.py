"""Messages say what is wrong, quoted and with its pointer, and never name runc as if it were
the runtime speaking (issue 8 review, item F)."""
from __future__ import annotations

import glob
import json

from tests.conftest import cid, needs_root
from tests.integration.test_malformed import one_line

pytestmark = needs_root


def test_exec_and_update_messages(ocish, make_bundle, tmp_path):
    c = cid()
    ocish("run", "-d", "-b", str(make_bundle(["sleep", "100"])), c, check=True)
    assert one_line(ocish("exec", "-u", ":", c, "true"), 255) == (
        'ocish: exec failed: invalid user ":": uid "" is not a number (-u takes UID or UID:GID)')
    # --env is named as written, not as an index of the env merged with config.json's
    assert one_line(ocish("exec", "--env", "=x", c, "true"), 255) == (
        'ocish: exec failed: --env "=x": must be "KEY=value" with a non-empty KEY')
    assert one_line(ocish("exec", "-u", "0:g", c, "true"), 255).endswith(
        'invalid user "0:g": gid "g" is not a number (-u takes UID or UID:GID)')
    proc = tmp_path / "process.json"
    proc.write_text(json.dumps({"args": [], "cwd": "/"}))
    assert one_line(ocish("exec", "--process", str(proc), c), 255) == (
        f"ocish: exec failed: {proc} /args: must not be empty")
    for args in (["-d", "-t"], ["--console-socket", "/nonexistent.sock"]):
        msg = one_line(ocish("exec", *args, c, "true"), 255)
        assert "runc" not in msg and "--console-socket" in msg, msg  # names the flag
    limit = glob.glob(f"/sys/fs/cgroup/memory/ocish/{c}/memory.limit_in_bytes")
    before = open(limit[0]).read() if limit else None
    res = tmp_path / "res.json"
    for value in (2**64, 2**63, "x"):
        res.write_text(json.dumps({"memory": {"limit": value}}))
        msg = one_line(ocish("update", "-r", str(res), c))
        assert msg.startswith("ocish: resources /memory/limit: must be a number of bytes, or -1 "
                              "for unlimited, got "), msg
    assert "uses" not in msg
    if limit:
        assert open(limit[0]).read() == before
    assert ocish.state(c)["status"] == "running"


def test_exec_refused_by_the_pids_limit_names_it(ocish, make_bundle):
    """The exec's fork in stage join meets the container's pids limit (runc aborts with a Go
    stack dump here): the limit is named, with its pointer."""
    c = cid()
    b = make_bundle(["sleep", "100"], mutate=lambda s: s["linux"]["resources"].update(
        pids={"limit": 1}))
    ocish("run", "-d", "-b", str(b), c, check=True)
    assert one_line(ocish("exec", c, "true"), 255) == (
        "ocish: exec failed: stage join: fork (config /linux/resources/pids/limit): the "
        "container's pids limit 1 is reached: fork(2) fails with EAGAIN")
