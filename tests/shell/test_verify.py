"""The shell's `verify [BUNDLE]`: refused during setup; on the created container (env not yet
exec'd: skipped) and the running one, all ok with the kernel's values; a limit written under
the container's feet makes the command fail, its table naming the item."""
from __future__ import annotations

import json

from tests.conftest import needs_root
from tests.shell.conftest import CGROUP_ROOT, status_field

pytestmark = needs_root


def _config(spec):
    spec["hostname"] = "verified"
    spec["process"]["oomScoreAdj"] = 100
    spec["linux"]["resources"] = {"pids": {"limit": 20}}


def test_verify_in_a_session(session, make_bundle, tmp_path):
    s = session(make_bundle(["sleep", "100"], mutate=_config))
    assert "still being set up (next: cgroup)" in s.cmd("verify")
    assert "setup complete" in s.cmd("continue")
    created = s.json("verify --json")
    pid = created["pid"]
    items = {i["item"]: i for i in created["items"]}
    assert created["status"] == "created"
    assert items["env"]["verdict"] == "skip" and "start the container" in items["env"]["note"]
    assert {i["verdict"] for i in created["items"] if i["item"] != "env"} <= {"ok", "skip"}
    # before its execve the init holds the asked sets as they are
    assert items["caps effective"]["actual"] == "CAP_KILL, CAP_NET_BIND_SERVICE, CAP_AUDIT_WRITE"
    assert int(status_field(pid, "CapEff"), 16) == (1 << 5) | (1 << 10) | (1 << 29)
    s.cmd("start")
    out = s.cmd("verify")
    assert out.splitlines()[0].endswith(f"pid {pid}, running: against "
                                        f"{s_root(s)}/{s.cid}/config.json")
    assert out.rstrip().splitlines()[-1].endswith(", 0 mismatches")
    pids_max = f"{CGROUP_ROOT}/pids/ocish/{s.cid}/pids.max"
    row = next(ln for ln in out.splitlines() if ln.startswith("cgroup pids.max"))
    assert row.split()[2:] == ["20", "20", "ok"]
    with open(f"/proc/{pid}/oom_score_adj") as f:
        assert f.read().strip() == "100"
    with open(pids_max, "w") as f:
        f.write("7")
    out = s.cmd("verify")
    row = next(ln for ln in out.splitlines() if ln.startswith("cgroup pids.max"))
    assert row.split()[2:] == ["20", "7", "mismatch"]
    assert out.rstrip().splitlines()[-1] == "error: verify: 1 mismatch: cgroup pids.max"
    # against another config: its hostname is not the kernel's
    other = tmp_path / "other"
    other.mkdir()
    spec = json.loads(open(f"{s_root(s)}/{s.cid}/config.json").read())
    spec["hostname"] = "elsewhere"
    (other / "config.json").write_text(json.dumps(spec))
    out = s.cmd(f"verify {other}")
    assert "error: verify: 2 mismatches: hostname, cgroup pids.max" in out
    assert "hostname" in out and "elsewhere" in out and "verified" in out


def s_root(s) -> str:
    """The session's --root (the shell was started with it)."""
    args = s.proc.args
    return args[args.index("--root") + 1]
