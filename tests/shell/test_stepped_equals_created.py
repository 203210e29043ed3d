"""A container the debugger set up one step at a time and one `ocish create` set up end up the
same: their `inspect all --json` snapshots are equal once what differs by nature (pids, inode
and mount numbers, the container id in paths, who else holds an fd) is taken out.

`create` sends runs of container-side steps as one sync.Batch and starts its container side
before it reads the config; the debugger sends one Run per step. This test is what keeps the
two paths from drifting apart (issue 11)."""
from __future__ import annotations

import json
import re

from tests.conftest import cid, needs_root
from tests.shell.conftest import alive

pytestmark = needs_root


def _rich(spec: dict) -> None:
    """A config that goes through most stages: seccomp (loaded in bounding, without
    noNewPrivileges), rlimits, a hostname, a memory and a pids limit, env, cwd, an extra tmpfs,
    masked and read-only paths."""
    p, lx = spec["process"], spec["linux"]
    p["noNewPrivileges"] = False
    p["cwd"] = "/tmp"
    p["env"] = ["PATH=/bin:/usr/bin", "STEPPED=1"]
    p["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024}]
    spec["hostname"] = "same"
    lx["resources"] = {"memory": {"limit": 64 << 20}, "pids": {"limit": 50}}
    lx["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                     "syscalls": [{"names": ["reboot", "kexec_load"],
                                   "action": "SCMP_ACT_ERRNO"}]}
    lx["maskedPaths"] = ["/proc/kcore", "/proc/keys"]
    lx["readonlyPaths"] = ["/proc/sys"]
    spec["mounts"].append({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                           "options": ["nosuid", "size=1m"]})


def _normal(snap: dict, container_id: str) -> dict:
    """The snapshot without what two equal containers still differ in."""
    out = dict(snap)
    out["ns"] = [(i["kind"], i["differs"]) for i in snap["ns"]["items"]]
    out["cgroup"] = [{k: str(v).replace(container_id, "ID") for k, v in m.items()}
                     for m in snap["cgroup"]["membership"]]
    out["mounts"] = _mount_tree(snap["mounts"]["root"])
    # stdio differs by design (the debugger gives its container side a stdin of its own)
    # the runtime's own fds (exec.fifo, the procfs handle) by what they are, not their numbers
    out["fds"] = sorted((re.sub(r"\[\d+\]", "[N]", f["target"]).replace(container_id, "ID"),
                         f["flags"]) for f in snap["fds"]["fds"] if f["fd"] > 2)
    proc = snap["proc"]
    out["proc"] = {"name": proc["name"], "threads": proc["threads"], "nspid": proc["nspid"][1:],
                   "exe": proc["exe"], "cwd": proc["cwd"], "argv": proc["cmdline"][:-1]}
    out["exit"] = {k: v for k, v in snap["exit"].items() if k != "pid"}
    # addresses move with ASLR: what is mapped and where it starts relative to the load base
    exe = snap["exe"]
    out["exe"] = {"path": exe["path"], "elf": exe["elf"], "e_entry": exe["e_entry"],
                  "entry": exe["entry"] - exe["load_base"], "interpreter": exe["interpreter"],
                  "mapped": sorted(m["path"] for m in exe["mapped"])}
    out["auxv"] = [a["name"] for a in snap["auxv"]]
    return out


def _mount_tree(m: dict) -> dict:
    keep = ("mountpoint", "source", "fstype", "options", "super_options", "propagation")
    return {**{k: m.get(k) for k in keep},
            "children": [_mount_tree(c) for c in m.get("children") or []]}


def test_a_stepped_container_and_a_created_one_are_the_same(ocish, session, make_bundle):
    # two copies: a container makes its missing mount targets in its rootfs (/scratch)
    stepped = session(make_bundle(["sleep", "100"], mutate=_rich))
    steps = 0
    while "setup is complete" not in (out := stepped.cmd("step")):
        steps += 1
        assert steps < 100 and "error" not in out, out
    assert steps >= 19  # every stage, mounts item by item
    a = stepped.json("inspect all --json")

    created_id = cid()
    ocish("create", "-b", str(make_bundle(["sleep", "100"], mutate=_rich)), created_id,
          check=True)
    try:
        attached = session(None, created_id, command="attach")
        b = attached.json("inspect all --json")
        pid = b["proc"]["pid"]
        assert b["exit"]["alive"] and alive(pid)
        assert b["seccomp"]["mode"] == "filter" and b["seccomp"]["filter_count"] == 1
        na, nb = _normal(a, stepped.cid), _normal(b, created_id)
        assert {k: v for k, v in na.items() if k != "mounts"} == \
               {k: v for k, v in nb.items() if k != "mounts"}
        assert json.dumps(na["mounts"], indent=1) == json.dumps(nb["mounts"], indent=1)
        attached.quit()
    finally:
        ocish("delete", "-f", created_id, check=True)
