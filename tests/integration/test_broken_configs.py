"""Broken bundles: one clear line on stderr naming what and where, exit 1, nothing left behind."""
from __future__ import annotations

import glob
import os

import pytest

from tests.conftest import children, cid, mount_count, needs_root, reap_orphans

pytestmark = needs_root


def _ns(s, kind):
    s["linux"]["namespaces"] = [n for n in s["linux"]["namespaces"] if n["type"] != kind]


def _set(path, value):
    def mutate(s):
        *parents, last = path
        for k in parents:
            s = s[k]
        s[last] = value
    return mutate


# (name, mutate, expected pointer or fragment in the message)
CASES = [
    # caught by validation, before anything exists
    ("relative mount destination", lambda s: s["mounts"].append(
        {"destination": "mnt", "type": "tmpfs", "source": "tmpfs"}), "/mounts/7/destination"),
    ("empty args", _set(["process", "args"], []), "/process/args"),
    ("unknown rlimit", _set(["process", "rlimits"], [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]),
     "/process/rlimits/0/type"),
    ("rlimit soft above hard", _set(["process", "rlimits"],
                                    [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 5}]), "/process/rlimits/0"),
    ("unknown namespace", lambda s: s["linux"]["namespaces"].append({"type": "bogus"}),
     "/linux/namespaces/6/type"),
    ("namespace path missing", lambda s: s["linux"]["namespaces"].__setitem__(
        1, {"type": "network", "path": "/proc/999999999/ns/net"}), "/linux/namespaces/1/path"),
    ("maps without user ns", _set(["linux", "uidMappings"], [{"containerID": 0, "hostID": 1000, "size": 1}]),
     "/linux/uidMappings"),
    ("hostname without uts ns", lambda s: _ns(s, "uts"), "/hostname"),
    ("net sysctl without net ns", lambda s: (_ns(s, "network"), s["linux"].__setitem__(
        "sysctl", {"net.ipv4.ip_forward": "1"})), "/linux/sysctl/net.ipv4.ip_forward"),
    ("memory limit as string", lambda s: s["linux"]["resources"].__setitem__("memory", {"limit": "1G"}),
     "/linux/resources/memory/limit"),
    ("malformed cpuset", lambda s: s["linux"]["resources"].__setitem__("cpu", {"cpus": "0-x"}),
     "/linux/resources/cpu/cpus"),
    ("oomScoreAdj out of range", _set(["process", "oomScoreAdj"], 5000), "/process/oomScoreAdj"),
    ("bad device type", _set(["linux", "devices"], [{"path": "/dev/x", "type": "x", "major": 1, "minor": 1}]),
     "/linux/devices/0/type"),
    ("relative cwd", _set(["process", "cwd"], "tmp"), "/process/cwd"),
    ("env without =", lambda s: s["process"]["env"].append("JUSTAKEY"), "/process/env/2"),
    ("bad rootfs propagation", _set(["linux", "rootfsPropagation"], "sideways"), "/linux/rootfsPropagation"),
    ("relative hook path", _set(["hooks"], {"prestart": [{"path": "hook.sh"}]}), "/hooks/prestart/0/path"),
    ("missing rootfs", _set(["root", "path"], "no-such-rootfs"), "/root/path"),
    ("uid as string", _set(["process", "user"], {"uid": "0", "gid": 0}), "/process/user/uid"),
    ("systemd cgroups path", _set(["linux", "cgroupsPath"], "system.slice:ocish:x"), "/linux/cgroupsPath"),
    # caught by a stage, after processes, cgroups and mounts exist: all of it must be undone
    ("program not in PATH", _set(["process", "args"], ["no-such-program"]), "/process/args/0"),
    # a missing cwd is created (runc, crun); one below a file cannot be
    ("cwd cannot be created", _set(["process", "cwd"], "/etc/passwd/dir"), "/process/cwd"),
    ("bind source missing", lambda s: s["mounts"].append(
        {"destination": "/mnt", "type": "bind", "source": "/no/such/source", "options": ["bind"]}),
     "/mounts/7/source"),
    ("unknown filesystem type", lambda s: s["mounts"].append(
        {"destination": "/mnt", "type": "nosuchfs", "source": "x"}), "/mounts/7"),
    ("hard nofile above ours", _set(["process", "rlimits"],
                                    [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1 << 20}]),
     "/process/rlimits/0"),
    # runc 1.1.5 fails create too ("error closing exec fds: open /proc/self/fd: too many open
    # files"); the container must not die after create returned 0, telling nobody
    ("nofile leaving no fd for exec.fifo", _set(["process", "rlimits"],
                                                [{"type": "RLIMIT_NOFILE", "soft": 3, "hard": 3}]),
     "stage exec: open exec.fifo (config /process/rlimits/0)"),
    # ... also when a seccomp filter is loaded in the handoff (noNewPrivileges)
    ("nofile too low with a handoff filter", lambda s: (
        s["process"].__setitem__("rlimits", [{"type": "RLIMIT_NOFILE", "soft": 3, "hard": 3}]),
        s["process"].__setitem__("noNewPrivileges", True),
        s["linux"].__setitem__("seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]})),
     "stage exec: open exec.fifo (config /process/rlimits/0)"),
    ("cpuset beyond the machine", lambda s: s["linux"]["resources"].__setitem__("cpu", {"cpus": "64"}),
     "/linux/resources/cpu/cpus"),
    ("sysctl that does not exist", _set(["linux", "sysctl"], {"net.ipv4.no_such_knob": "1"}),
     "/linux/sysctl/net.ipv4.no_such_knob"),
    ("uid 0 unmapped in user ns", lambda s: (
        s["linux"]["namespaces"].append({"type": "user"}),
        s["linux"].__setitem__("uidMappings", [{"containerID": 1000, "hostID": 100000, "size": 10}]),
        s["linux"].__setitem__("gidMappings", [{"containerID": 1000, "hostID": 100000, "size": 10}]),
        s["process"].__setitem__("user", {"uid": 1000, "gid": 1000})), "/linux/uidMappings"),
]


@pytest.mark.parametrize("name,mutate,where", CASES, ids=[c[0] for c in CASES])
def test_broken_config(ocish, make_bundle, name, mutate, where):
    b = make_bundle(["true"], mutate=mutate)
    c = cid()
    kids, mounts = children(), mount_count()
    p = ocish("create", "-b", str(b), c)
    assert p.returncode == 1
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("ocish: ") and where in lines[0], lines[0]
    assert "Traceback" not in p.stderr and p.stdout == ""
    # nothing left behind: state dir, cgroup, mount, process
    assert not os.path.exists(os.path.join(ocish.root, c))
    assert glob.glob(f"/sys/fs/cgroup/*/ocish/{c}") == []
    assert mount_count() == mounts
    reap_orphans()  # a killed init is a zombie of ours (the subreaper) until reaped
    assert children() <= kids
