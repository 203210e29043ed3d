"""ps, pause/resume, update, events and features on real containers, with runc's outputs."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest

from tests.conftest import cid, needs_root

pytestmark = needs_root
RUNC = shutil.which("runc")


def running(ocish, make_bundle, args=("sleep", "100"), mutate=None) -> tuple[str, int]:
    c = cid()
    ocish("run", "-d", "-b", str(make_bundle(list(args), mutate=mutate)), c, check=True)
    return c, ocish.state(c)["pid"]


def paths(ocish, c: str) -> dict:
    with open(os.path.join(ocish.root, c, "state.json")) as f:
        return json.load(f)["cgroup"]["paths"]


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def utime(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    return int(data[data.rindex(b")") + 2:].split()[11])  # field 14


def wait_for(cond, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.05)


# ---------------------------------------------------------------------------------------------
# ps

def test_ps_json_is_the_cgroup_pids(ocish, make_bundle):
    c, init = running(ocish, make_bundle, ("sh", "-c", "sleep 100 & sleep 101; true"))
    wait_for(lambda: len(read(paths(ocish, c)["pids"] + "/cgroup.procs").split()) == 3)
    p = ocish("ps", "-f", "json", c, check=True)
    pids = json.loads(p.stdout)
    procs = sorted(int(x) for x in read(paths(ocish, c)["pids"] + "/cgroup.procs").split())
    assert sorted(pids) == procs and init in pids and len(pids) == 3
    assert " " not in p.stdout.strip()  # compact, as Go's encoder writes it


def test_ps_table(ocish, make_bundle):
    c, init = running(ocish, make_bundle, ("sleep", "123"))
    out = ocish("ps", c, check=True).stdout.splitlines()
    assert out[0].split()[:3] == ["UID", "PID", "PPID"]
    assert len(out) == 2 and out[1].split()[1] == str(init) and "sleep 123" in out[1]
    # the ps options after the id go to ps itself, as with runc
    out = ocish("ps", c, "-o", "pid,comm", check=True).stdout.splitlines()
    assert out[0].split() == ["PID", "COMMAND"] and out[1].split() == [str(init), "sleep"]
    p = ocish("ps", c, "-o", "comm")
    assert p.returncode == 1 and "couldn't find PID field in ps output" in p.stderr


def test_ps_of_a_stopped_container_is_empty(ocish, make_bundle):
    c = cid()
    ocish("run", "--keep", "-b", str(make_bundle(["true"])), c, check=True)
    assert ocish("ps", "-f", "json", c, check=True).stdout.strip() == "null"  # runc says null
    assert len(ocish("ps", c, check=True).stdout.splitlines()) == 1
    p = ocish("ps", "nope")
    assert p.returncode == 1 and p.stderr.strip() == "ocish: container does not exist"


# ---------------------------------------------------------------------------------------------
# pause, resume

def test_pause_stops_the_clock_and_resume_restarts_it(ocish, make_bundle):
    c, init = running(ocish, make_bundle, ("sh", "-c", "while :; do :; done"))
    wait_for(lambda: utime(init) > 0)
    ocish("pause", c, check=True)
    assert ocish.state(c)["status"] == "paused"
    assert read(paths(ocish, c)["freezer"] + "/freezer.state") == "FROZEN"
    before = utime(init)
    time.sleep(0.5)
    assert utime(init) == before
    p = ocish("pause", c)
    assert (p.returncode, p.stderr.strip()) == (1, "ocish: container not running")
    ocish("resume", c, check=True)
    assert ocish.state(c)["status"] == "running"
    wait_for(lambda: utime(init) > before)
    p = ocish("resume", c)
    assert (p.returncode, p.stderr.strip()) == (1, "ocish: container not paused")


def test_pause_a_created_container_then_stopped_ones(ocish, make_bundle):
    c = cid()
    ocish("create", "-b", str(make_bundle(["sleep", "100"])), c, check=True)
    ocish("pause", c, check=True)
    assert ocish.state(c)["status"] == "paused"
    ocish("resume", c, check=True)
    assert ocish.state(c)["status"] == "created"
    ocish("kill", c, "KILL", check=True)
    wait_for(lambda: ocish.state(c)["status"] == "stopped")
    assert ocish("pause", c).stderr.strip() == "ocish: container not running"
    assert ocish("resume", c).stderr.strip() == "ocish: container not paused"


def test_delete_force_of_a_paused_container(ocish, make_bundle):
    c, init = running(ocish, make_bundle)
    ocish("pause", c, check=True)
    ocish("delete", "-f", c, check=True)
    assert not os.path.exists(os.path.join(ocish.root, c))


# ---------------------------------------------------------------------------------------------
# update

def test_update_memory_and_pids_flags(ocish, make_bundle):
    c, _ = running(ocish, make_bundle)
    p = paths(ocish, c)
    ocish("update", "--memory", "100M", "--pids-limit", "50", c, check=True)
    assert read(p["memory"] + "/memory.limit_in_bytes") == str(100 * 1024 * 1024)
    assert read(p["pids"] + "/pids.max") == "50"
    inside = ocish("exec", c, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                   "/sys/fs/cgroup/pids/pids.max", check=True).stdout.split()
    assert inside == [str(100 * 1024 * 1024), "50"]
    ocish("update", "--memory", "268435456", "--memory-swap", "512m", c, check=True)
    assert read(p["memory"] + "/memory.limit_in_bytes") == str(256 * 1024 * 1024)
    assert read(p["memory"] + "/memory.memsw.limit_in_bytes") == str(512 * 1024 * 1024)
    ocish("update", "--pids-limit", "-1", c, check=True)
    assert read(p["pids"] + "/pids.max") == "max"


def test_update_resources_from_stdin(ocish, make_bundle):
    c, _ = running(ocish, make_bundle)
    p = paths(ocish, c)
    # what containerd sends: a whole LinuxResources (devices are not touched by update)
    res = {"memory": {"limit": 200 * 1024 * 1024}, "pids": {"limit": 70},
           "cpu": {"shares": 512, "quota": 50000, "period": 100000},
           "devices": [{"allow": False, "access": "rwm"}]}
    ocish("update", "-r", "-", c, input=json.dumps(res).encode(), stdin=None, check=True)
    assert read(p["memory"] + "/memory.limit_in_bytes") == str(200 * 1024 * 1024)
    assert read(p["pids"] + "/pids.max") == "70"
    assert read(p["cpu"] + "/cpu.shares") == "512"
    assert read(p["cpu"] + "/cpu.cfs_quota_us") == "50000"
    assert ocish("exec", c, "cat", "/sys/fs/cgroup/pids/pids.max").stdout.strip() == "70"
    # remembered: a later update merges over it
    st = json.load(open(os.path.join(ocish.root, c, "state.json")))
    assert st["resources"]["memory"] == {"limit": 200 * 1024 * 1024}
    ocish("update", "--cpu-period", "200000", c, check=True)
    st = json.load(open(os.path.join(ocish.root, c, "state.json")))
    assert st["resources"]["cpu"] == {"shares": 512, "quota": 50000, "period": 200000}
    assert st["resources"]["pids"] == {"limit": 70}
    assert read(p["cpu"] + "/cpu.cfs_period_us") == "200000"


def test_update_errors(ocish, make_bundle, tmp_path):
    c, _ = running(ocish, make_bundle)
    p = ocish("update", "--memory", "abc", c)
    assert (p.returncode, p.stderr.strip()) == (1, "ocish: invalid value for memory: invalid size: 'abc'")
    p = ocish("update", "--memory", "1k", c)  # below what the container already uses
    assert p.returncode == 1 and "memory.limit_in_bytes" in p.stderr and "Traceback" not in p.stderr
    bad = tmp_path / "r.json"
    bad.write_text(json.dumps({"memory": {"limit": "lots"}}))
    p = ocish("update", "-r", str(bad), c)
    assert p.returncode == 1 and "resources /memory/limit" in p.stderr
    p = ocish("update", "--kernel-memory", "10m", c)
    assert p.returncode == 0 and "kernel memory settings are ignored" in p.stderr
    ocish("kill", c, "KILL", check=True)
    wait_for(lambda: ocish.state(c)["status"] == "stopped")
    p = ocish("update", "--memory", "100m", c)
    assert (p.returncode, p.stderr.strip()) == (1, "ocish: container not running")


# ---------------------------------------------------------------------------------------------
# events, features

def test_events_stats_once(ocish, make_bundle):
    c, _ = running(ocish, make_bundle, ("sh", "-c", "sleep 100 & sleep 100; true"))
    wait_for(lambda: len(read(paths(ocish, c)["pids"] + "/cgroup.procs").split()) == 3)
    p = ocish("events", "--stats", c, check=True)
    lines = p.stdout.splitlines()
    assert len(lines) == 1
    ev = json.loads(lines[0])
    assert ev["type"] == "stats" and ev["id"] == c
    data = ev["data"]
    assert set(data) == {"cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt",
                         "network_interfaces"}
    assert data["cpu"]["usage"]["total"] > 0 and {"kernel", "user"} <= set(data["cpu"]["usage"])
    assert len(data["cpu"]["usage"]["percpu"]) == os.cpu_count()
    assert {"usage", "max", "limit", "failcnt"} <= set(data["memory"]["usage"])
    assert data["memory"]["usage"]["usage"] > 0
    assert data["pids"]["current"] == 3
    p = ocish("events", "--stats", "nope")
    assert p.returncode == 1 and "container does not exist" in p.stderr


def test_events_interval_stream_ends_with_the_container(ocish, make_bundle):
    c, _ = running(ocish, make_bundle, ("sleep", "2"))
    start = time.monotonic()
    p = ocish("events", "--interval", "300ms", c, timeout=30)
    assert p.returncode == 0 and time.monotonic() - start < 15
    events = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(events) >= 2 and all(e["type"] == "stats" and e["id"] == c for e in events)
    p = ocish("events", "--stats", c)
    assert (p.returncode, p.stderr.strip()) == (1, f"ocish: container with id {c} is not running")
    assert ocish("events", "--interval", "0s", c).returncode == 1


def test_events_reports_oom(ocish, make_bundle):
    def mutate(s):
        s["linux"]["resources"]["memory"] = {"limit": 16 * 1024 * 1024, "swap": 16 * 1024 * 1024}
    c, _ = running(ocish, make_bundle, ("sleep", "100"), mutate)
    env = dict(os.environ, PYTHONPATH=str(__import__("tests.conftest").conftest.REPO))
    from tests.conftest import ocish_cmd
    with open(os.devnull, "w") as null, subprocess.Popen(
            ocish_cmd() + ["--root", ocish.root, "events", "--interval", "60s", c],
            stdout=subprocess.PIPE, stderr=null, stdin=subprocess.DEVNULL, env=env) as events:
        try:
            time.sleep(0.5)  # let it register for OOM notifications
            # a memory hog inside: tail keeps the whole "line" of zeroes in memory
            ocish("exec", c, "sh", "-c", "head -c 64m /dev/zero | tail")
            line = events.stdout.readline()
            assert json.loads(line) == {"type": "oom", "id": c}
        finally:
            events.kill()


def test_features_lists_only_what_works(ocish):
    p = ocish("features", check=True)
    f = json.loads(p.stdout)
    assert f["ociVersionMin"] == "1.0.0" and f["ociVersionMax"].startswith("1.")
    linux = f["linux"]
    assert set(linux["namespaces"]) == {"cgroup", "ipc", "mount", "network", "pid", "time",
                                        "user", "uts"}
    assert linux["cgroup"] == {"v1": True, "v2": True, "systemd": False, "systemdUser": False}
    # the runtime-spec's "enabled": ocish can apply them (runtime/linux/lsm.py), host or not
    assert linux["apparmor"] == {"enabled": True} and linux["selinux"] == {"enabled": True}
    assert "CAP_SYS_ADMIN" in linux["capabilities"] and "CAP_KILL" in linux["capabilities"]
    assert {"ro", "nosuid", "bind", "rbind", "rprivate"} <= set(f["mountOptions"])
    # acted on since the recursive family and tmpcopyup were implemented (mount_setattr(2))
    assert {"rro", "rnosuid", "rnoatime", "ratime", "tmpcopyup", "idmap", "ridmap"} <= set(
        f["mountOptions"])
    assert linux["mountExtensions"] == {"idmap": {"enabled": True}}  # runc 1.2's key
    sc = linux["seccomp"]
    if sc["enabled"]:
        assert "SCMP_ACT_ERRNO" in sc["actions"] and "SCMP_CMP_MASKED_EQ" in sc["operators"]
        assert "SCMP_ARCH_X86_64" in sc["archs"] or "SCMP_ARCH_AARCH64" in sc["archs"]
    assert set(f["hooks"]) <= {"prestart", "createRuntime", "createContainer", "startContainer",
                               "poststart", "poststop"}
    if RUNC:  # the same layout as runc's
        theirs = json.loads(subprocess.run(["runc", "features"], capture_output=True,
                                           text=True).stdout)
        assert set(f) == set(theirs)
        assert set(linux) - {"mountExtensions"} == set(theirs["linux"])  # runc 1.2 has it
        assert set(theirs["mountOptions"]) <= set(f["mountOptions"])
        assert set(linux["namespaces"]) >= set(theirs["linux"]["namespaces"])


def test_missing_container_messages_match_runc(ocish, tmp_path):
    for args in (["ps", "nope"], ["pause", "nope"], ["resume", "nope"],
                 ["update", "--memory", "1m", "nope"], ["events", "--stats", "nope"]):
        p = ocish(*args)
        assert (p.returncode, p.stderr.strip()) == (1, "ocish: container does not exist"), args
        if RUNC:
            r = subprocess.run(["runc", "--root", str(tmp_path / "runc")] + args,
                               capture_output=True, text=True)
            assert r.returncode == 1 and "container does not exist" in r.stderr, args


# ---------------------------------------------------------------------------------------------
# the parsers behind the flags (pure)

@pytest.mark.parametrize("text,value", [
    ("512", 512), ("1k", 1024), ("100M", 100 * 1024**2), ("1.5g", int(1.5 * 1024**3)),
    ("2 GiB", 2 * 1024**3), ("64kb", 64 * 1024), ("1KB", 1024)])
def test_ram_in_bytes_like_go_units(text, value):
    from runtime.commands import ram_in_bytes
    assert ram_in_bytes(text) == value


@pytest.mark.parametrize("text", ["abc", "", "m", "1x", "-5", "1.2.3"])
def test_ram_in_bytes_refuses(text):
    from runtime.commands import ram_in_bytes
    with pytest.raises(ValueError):
        ram_in_bytes(text)


@pytest.mark.parametrize("text,seconds", [("5s", 5), ("500ms", 0.5), ("1m30s", 90), ("1.5h", 5400),
                                          ("0", 0), ("250us", 0.00025)])
def test_go_durations(text, seconds):
    from runtime.events import parse_duration
    assert parse_duration(text) == pytest.approx(seconds)


def test_runc_stats_layout_and_omitempty():
    from runtime.events import runc_stats
    out = runc_stats({"cpu": {"usage": {"total": 5, "kernel": 1, "user": 2}},
                      "memory": {"usage": {"usage": 10, "limit": 20, "max": 0, "failcnt": 0}},
                      "pids": {"current": 1, "limit": 0}})
    assert out["cpu"] == {"usage": {"total": 5, "kernel": 1, "user": 2}, "throttling": {}}
    assert out["memory"]["usage"] == {"limit": 20, "usage": 10, "failcnt": 0}  # max: omitempty
    assert out["memory"]["kernelTCP"] == {"limit": 0, "failcnt": 0}
    assert "cache" not in out["memory"] and "raw" not in out["memory"]
    assert out["pids"] == {"current": 1}
    assert out["network_interfaces"] is None and out["intel_rdt"] == {}
