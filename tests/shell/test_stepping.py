"""Stepping through setup and inspecting the container process, checked against /proc."""
from __future__ import annotations

import json
import os

from tests.conftest import needs_root
from tests.shell.conftest import alive, blocked, cgroup_dirs, status_field

pytestmark = needs_root


def _ns_inode(path: str) -> int:
    text = os.readlink(path)
    return int(text[text.index("[") + 1:-1])


def test_pipeline_listing_and_breakpoints(session, make_bundle):
    s = session(make_bundle(["sleep", "100"]))
    assert "stopped before the first stage" in s.banner and "next: cgroup" in s.banner
    out = s.cmd("stages")
    assert out.splitlines()[1].startswith("-->") and "cgroup" in out.splitlines()[1]
    assert "[ ] /mounts/0  mount(2) proc proc on /proc" in out
    assert "breakpoint 1 before mounts /mounts/0" in s.cmd("break mount /proc")
    assert "breakpoint 2 before pivot (first step)" in s.cmd("b pivot")
    assert "no stage 'nope'" in s.cmd("break nope")
    info = s.cmd("info breakpoints")
    assert "mount /proc" in info and "pivot" in info
    out = s.cmd("c")
    assert "ran unshare (container side)" in out and "ran mounts rootfs" in out
    assert "breakpoint 1, next: mounts /mounts/0 -- mount(2) proc proc on /proc" in out
    assert "b1" in [ln for ln in s.cmd("l").splitlines() if "/mounts/0" in ln][0]
    assert "deleted breakpoint 1" in s.cmd("delete 1")
    assert "breakpoint 2, next: pivot" in s.cmd("continue")
    assert "pivot_root(2)" in s.cmd("explain")
    assert "mount(2) proc proc on /proc" in s.cmd("explain mounts")
    assert "step [N]" in s.cmd("help s") and "not set up yet" in s.cmd("exec true")


def test_unshare_namespaces_match_proc(session, make_bundle):
    s = session(make_bundle(["sleep", "100"]))
    s.cmd("break idmap")
    s.cmd("continue")  # cgroup, unshare
    pid = s.json("inspect proc --json")["pid"]
    shown = {n["kind"]: n for n in s.json("inspect ns --json")["items"]}
    for kind in ("pid", "mnt", "uts", "net", "ipc"):
        real = _ns_inode(f"/proc/{pid}/ns/{kind}")
        host = _ns_inode(f"/proc/{s.proc.pid}/ns/{kind}")
        assert shown[kind]["inode"] == real and shown[kind]["host_inode"] == host
        assert real != host and shown[kind]["differs"]
    assert not shown["user"]["differs"]  # the bundle asks for no user namespace
    plain = s.cmd("inspect ns")
    assert f"mnt                {_ns_inode(f'/proc/{pid}/ns/mnt')}  own" in plain
    # the pid in the new pid namespace is 1, and the init is still blocked, not running setup
    assert s.json("inspect proc --json")["nspid"][-1] == 1
    assert blocked(pid)


def test_mounts_after_the_mounts_stage(session, make_bundle):
    b = make_bundle(["sleep", "100"])
    s = session(b)
    s.cmd("break pivot")
    s.cmd("c")
    pid = s.json("inspect proc --json")["pid"]
    out = s.cmd("inspect mounts")
    assert f"mounts under the rootfs {b}/rootfs (not pivoted yet" in out
    proc_line = [ln for ln in out.splitlines() if ln.endswith("private") and "/proc  proc proc" in ln]
    assert proc_line, out
    with open(f"/proc/{pid}/mountinfo") as f:
        real = [ln.split() for ln in f]
    assert any(f[4] == f"{b}/rootfs/proc" and f[f.index("-") + 1] == "proc" for f in real)
    tree = s.json("inspect mounts --json")
    assert tree["based_at"] == f"{b}/rootfs" and not tree["pivoted"]
    s.cmd("step")  # pivot
    tree = s.json("inspect mounts --json")
    assert tree["based_at"] == "/" and tree["pivoted"]
    assert "/proc" in [c["mountpoint"] for c in tree["root"]["children"]]


def test_caps_match_status(session, make_bundle):
    s = session(make_bundle(["sleep", "100"]))
    s.cmd("continue")  # to the end: the bounding and caps stages have dropped capabilities
    pid = s.json("inspect proc --json")["pid"]
    shown = {c["name"]: c for c in s.json("inspect caps --json")["sets"]}
    from runtime.linux.capabilities import NAMES as CAP_NAMES
    for key, name in (("CapInh", "inheritable"), ("CapPrm", "permitted"), ("CapEff", "effective"),
                      ("CapBnd", "bounding"), ("CapAmb", "ambient")):
        mask = status_field(pid, key)
        assert shown[name]["mask"] == mask
        expect = [CAP_NAMES[b] for b in range(len(CAP_NAMES)) if int(mask, 16) >> b & 1]
        assert shown[name]["caps"] == expect
    plain = s.cmd("inspect caps")
    assert f"bounding     {status_field(pid, 'CapBnd')}" in plain


def test_watch_and_diff_show_what_a_step_changed(session, make_bundle):
    s = session(make_bundle(["sleep", "100"]))
    assert "only one stop" in s.cmd("diff")
    s.cmd("step")  # cgroup
    out = s.cmd("diff")
    assert "+cgroup memory /ocish/" in out and "-cgroup memory /" in out
    s.cmd("watch on")
    out = s.cmd("step")  # unshare
    assert "ran unshare" in out
    for kind in ("mnt", "pid", "uts"):
        assert any(ln.startswith(f"-ns {kind} ") and ln.endswith(" host") for ln in out.splitlines())
        assert any(ln.startswith(f"+ns {kind} ") and ln.endswith(" own") for ln in out.splitlines())
    assert "+proc pid" in out and "(in its namespace: 1)" in out
    assert s.cmd("diff").strip() == "\n".join(
        ln for ln in out.splitlines() if ln.startswith(("---", "+++", "@@", "-", "+"))).strip()


def test_failed_stage_stays_inspectable_and_quit_cleans_up(ocish, session, make_bundle):
    def bogus(spec):
        spec["mounts"].insert(1, {"destination": "/mnt", "type": "bogusfs", "source": "x"})
    s = session(make_bundle(["sleep", "100"], mutate=bogus))
    out = s.cmd("continue")
    assert 'FAILED: stage mounts: mount "x" on "/mnt" (config /mounts/1): no such device' in out
    for row in (["stage", "mounts"], ["operation", "mount"], ["target", '"x" on "/mnt"'],
                ["errno", "ENODEV (no such device)"], ["config", "/mounts/1"]):
        assert any(ln.split(None, 1) == row for ln in out.splitlines()), row
    assert "[!]" in [ln for ln in s.cmd("stages").splitlines() if "/mounts/1" in ln][0]
    pid = s.json("inspect proc --json")["pid"]
    assert alive(pid) and blocked(pid)  # blocked, inspectable
    assert "restart" in s.cmd("step")  # the failure stays until restart or quit
    assert os.path.isdir(os.path.join(ocish.root, s.cid)) and cgroup_dirs(s.cid)
    s.quit()
    assert s.proc.returncode == 1  # `continue` and `step` failed
    assert not os.path.exists(os.path.join(ocish.root, s.cid))
    assert not cgroup_dirs(s.cid)
    assert not alive(pid)


def test_restart_leaves_nothing_behind(ocish, session, make_bundle):
    s = session(make_bundle(["sleep", "100"]))
    s.cmd("break mounts")
    s.cmd("continue")
    first = s.json("inspect proc --json")["pid"]
    assert cgroup_dirs(s.cid)
    out = s.cmd("restart")
    assert "stopped before the first stage" in out and "next: cgroup" in out
    assert not alive(first)
    assert not cgroup_dirs(s.cid)  # the new setup has not reached its cgroup stage
    assert sorted(os.listdir(os.path.join(ocish.root, s.cid))) == ["exec.fifo", "state.json"]
    assert ocish.state(s.cid)["status"] == "creating"  # the shell is setting it up
    assert "breakpoint 1, next: mounts rootfs" in s.cmd("c")  # breakpoints survive restart
    second = s.json("inspect proc --json")["pid"]
    s.quit()
    assert not alive(second)
    assert not os.path.exists(os.path.join(ocish.root, s.cid)) and not cgroup_dirs(s.cid)


def test_fds_flag_host_fds_and_never_see_a_leaked_one(session, make_bundle, tmp_path, ocish):
    # the caller of the runtime left an inheritable fd open: the container side re-executes
    # itself keeping only stdio and its own fds (runtime/linux/exeseal.py), so it never holds
    # it; its own O_PATH fd of exec.fifo is a host file the debugger flags
    secret = tmp_path / "host-secret"
    secret.write_text("host only")
    fd = os.open(secret, os.O_RDONLY)  # no O_CLOEXEC
    os.set_inheritable(fd, True)
    try:
        s = session(make_bundle(["sleep", "100"]), pass_fds=(fd,))
    finally:
        os.close(fd)
    s.cmd("break process")
    s.cmd("continue")  # after pivot: the container has its own root
    pid = s.json("inspect proc --json")["pid"]
    fds = {f["fd"]: f for f in s.json("inspect fds --json")["fds"]}
    assert all(f["target"] != str(secret) for f in fds.values()), fds
    fifo = os.path.join(ocish.root, s.cid, "exec.fifo")
    [n] = [n for n, f in fds.items() if f["target"] == fifo]
    assert fds[n]["host"] and "not in the container's mount table" in fds[n]["why"]
    assert os.path.samestat(os.stat(f"/proc/{pid}/fd/{n}"), os.stat(fifo))
    assert not os.path.exists(f"/proc/{pid}/root{fifo}")  # unreachable from its root
    plain = [ln for ln in s.cmd("inspect fds").splitlines() if ln.split()[:1] == [str(n)]]
    assert "HOST:" in plain[0]
    # the exec stage marks every fd but stdio close-on-exec: the user process never gets it
    s.cmd("continue")
    s.cmd("start")
    pid = s.json("inspect proc --json")["pid"]
    assert not os.path.exists(f"/proc/{pid}/fd/{n}")
    assert all(f["fd"] <= 2 for f in s.json("inspect fds --json")["fds"])


def test_inspect_other_topics(session, make_bundle):
    s = session(make_bundle(["sleep", "100"]))
    s.cmd("break pivot")
    s.cmd("c")
    pid = s.json("inspect proc --json")["pid"]
    net = s.json("inspect net --json")
    assert [link["name"] for link in net["links"]] == ["lo"]  # a fresh network namespace
    ids = s.json("inspect ids --json")
    assert ids["uid_map"] == [{"inside": 0, "outside": 0, "count": 4294967295}]
    cg = s.json("inspect cgroup --json")
    assert any(m["controllers"] == "memory" and m["path"] == f"/ocish/{s.cid}" for m in cg["membership"])
    usage = [lim for lim in cg["limits"] if lim["label"] == "memory usage"][0]
    assert usage["file"] == f"/sys/fs/cgroup/memory/ocish/{s.cid}/memory.usage_in_bytes"
    assert int(usage["value"]) > 0
    limits = {r["name"]: r for r in s.json("inspect rlimits --json")}
    with open(f"/proc/{pid}/limits") as f:
        assert f.read().splitlines()[8].split()[3] == limits["Max open files"]["soft"]
    assert s.json("inspect seccomp --json")["mode"] == "disabled"
    with open(f"/proc/{pid}/environ", "rb") as f:
        assert s.json("inspect env --json") == [e.decode() for e in f.read().split(b"\0") if e]
    out = s.cmd("inspect all")
    for topic in ("== ns", "== mounts", "== fds", "== net"):
        assert topic in out
    assert "error:" in s.cmd("inspect nothing")


def test_default_bundle_is_temporary(session):
    s = session(None)
    bundle = s.banner.split("bundle ", 1)[1].split(",", 1)[0]
    assert os.path.basename(os.path.dirname(bundle)).startswith("ocish-debug-")
    with open(os.path.join(bundle, "config.json")) as f:
        spec = json.load(f)
    assert spec["process"]["args"] == ["sh"] and spec["process"]["terminal"] is False
    assert "look up 'sh'" in s.cmd("explain exec")
    s.quit("")  # EOF quits too
    assert not os.path.exists(os.path.dirname(bundle))
