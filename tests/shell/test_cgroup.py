"""`inspect cgroup`: limits and usage in human units with their config pointers, the limit
flagged when usage reaches it, failcnt and forks refused; checked against the cgroup files."""
from __future__ import annotations

import os

from tests.conftest import needs_root

pytestmark = needs_root

CG = "/sys/fs/cgroup"


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _limits(spec):
    spec["linux"]["resources"] = {"memory": {"limit": 64 * 1024 * 1024}, "pids": {"limit": 1}}


def test_a_pids_limit_the_container_is_at(session, make_bundle):
    """A pids limit of 1 leaves the setup alone (stage limits writes it once the init exists,
    as runc does); the init is then at its limit and an `exec` cannot fork its process."""
    s = session(make_bundle(["sleep", "100"], mutate=_limits))
    assert "setup complete" in s.cmd("continue")
    s.cmd("start")
    out = s.cmd("exec true")  # exec's C1 joins the cgroup, its fork of the process is refused
    assert "pids limit 1 is reached" in out and "/linux/resources/pids/limit" in out
    events = dict(ln.split() for ln in _read(f"{CG}/pids/ocish/{s.cid}/pids.events").splitlines())
    refused = int(events["max"])
    assert refused >= 1
    cg = s.json("inspect cgroup --json")
    res = {r["name"]: r for r in cg["resources"]}
    pids = res["pids"]
    assert pids["usage"] == int(_read(f"{CG}/pids/ocish/{s.cid}/pids.current")) == 1
    assert (pids["limit"], pids["at_limit"], pids["configured"]) == (1, True, True)
    assert pids["counters"] == {"forks refused": refused}
    mem = res["memory"]
    raw = {lim["label"]: lim["value"] for lim in cg["limits"]}
    assert mem["limit"] == int(_read(f"{CG}/memory/ocish/{s.cid}/memory.limit_in_bytes")) \
        == 64 * 1024 * 1024
    assert mem["usage"] == int(raw["memory usage"]) > 0  # the same read as the raw file
    assert mem["counters"]["failcnt"] == int(_read(f"{CG}/memory/ocish/{s.cid}/memory.failcnt"))
    assert not mem["at_limit"] and mem["pointer"] == "/linux/resources/memory/limit"
    swap = res.get("memory+swap")
    if swap is not None:  # swap accounting on: unlimited, not set by the config
        assert swap["limit"] is None and not swap["configured"]
    text = s.cmd("inspect cgroup")
    plain = {ln.split()[0]: ln for ln in text.split("limits and usage:\n")[1].splitlines()}
    assert " of 64.0 MiB (" in plain["memory"]
    assert plain["memory"].endswith("config /linux/resources/memory/limit")
    assert "1 of 1 (100%) AT LIMIT" in plain["pids"] and f"forks refused {refused}" in plain["pids"]
    shares = [st for st in cg["settings"] if st["name"] == "cpu shares"][0]
    assert shares["value"] == _read(f"{CG}/cpu/ocish/{s.cid}/cpu.shares")
    assert shares["pointer"] == "/linux/resources/cpu/shares" and not shares["configured"]
    assert os.path.basename(shares["file"]) == "cpu.shares"
