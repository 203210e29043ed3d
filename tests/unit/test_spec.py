"""config.json validation: runtime/spec.py (pure: tmp_path bundles, no root needed)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from runtime import jsonfast
from runtime import spec as specmod
from runtime.defaults import default_spec
from runtime.errors import OcishError, SpecError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "rootfs").mkdir()
    return str(tmp_path)


def write(bundle, spec) -> None:
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(spec, f)


# --- mutations, addressed with JSON pointers ---------------------------------------------------

def _parent(spec, pointer):
    *parts, last = [p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/")]
    node = spec
    for part in parts:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    return node, (int(last) if isinstance(node, list) else last)


def S(pointer, value):
    """Set (creating parent objects as needed)."""
    def mutate(spec):
        node, key = _parent(spec, pointer)
        node[key] = value
    return mutate


def D(pointer):
    """Delete."""
    def mutate(spec):
        node, key = _parent(spec, pointer)
        del node[key]
    return mutate


def A(pointer, value):
    """Append to the list at pointer."""
    def mutate(spec):
        node, key = _parent(spec, pointer)
        node[key].append(value)
    return mutate


def NS(*types):
    """Keep only these namespace types."""
    def mutate(spec):
        spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] in types]
    return mutate


def ROOTLESS(spec):
    spec.clear()
    spec.update(default_spec(rootless=True))


def all_of(*mutations):
    def mutate(spec):
        for m in mutations:
            m(spec)
    return mutate


BIND = {"destination": "/data", "type": "bind", "source": "/srv", "options": ["rbind"]}
IDMAP = [{"containerID": 0, "hostID": 100000, "size": 65536}]

# (id, mutation, expected pointer, expected message fragment)
BROKEN = [
    # top level
    ("no-ociVersion", D("/ociVersion"), "/ociVersion", "missing, expected a version string"),
    ("ociVersion-2", S("/ociVersion", "2.0.0"), "/ociVersion", 'unsupported version "2.0.0"'),
    ("ociVersion-int", S("/ociVersion", 1), "/ociVersion", "must be a version string"),
    ("no-root", D("/root"), "/root", "missing, expected an object"),
    ("root-path-empty", S("/root/path", ""), "/root/path", 'must be a non-empty path, got ""'),
    ("root-readonly-str", S("/root/readonly", "yes"), "/root/readonly",
     'must be true or false, got "yes"'),
    ("linux-not-object", S("/linux", []), "/linux", "must be an object, got an array"),
    ("annotation-value", S("/annotations", {"a/b": 1}), "/annotations/a~1b",
     "must be a string, got 1"),
    # process
    ("no-process", D("/process"), "/process", "missing, expected an object"),
    ("args-empty", S("/process/args", []), "/process/args", "must be a non-empty array"),
    ("args-item", S("/process/args", ["sh", 1]), "/process/args/1", "must be a string, got 1"),
    ("args-nul", S("/process/args", ["sh", "a\0b"]), "/process/args/1", "nul byte"),
    ("hostname-surrogate", S("/hostname", "a\ud800"), "/hostname", "must be valid unicode"),
    ("no-cwd", D("/process/cwd"), "/process/cwd", "missing, expected an absolute path"),
    ("cwd-relative", S("/process/cwd", "tmp"), "/process/cwd",
     'must be an absolute path, got "tmp"'),
    ("cwd-null", S("/process/cwd", None), "/process/cwd", "got null"),
    ("env-no-equals", A("/process/env", "NOEQUALS"), "/process/env/2", '"KEY=value"'),
    ("env-empty-key", A("/process/env", "=x"), "/process/env/2", "non-empty KEY"),
    ("terminal-int", S("/process/terminal", 1), "/process/terminal",
     "must be true or false, got 1"),
    # ids above 2147483647 are refused as runc refuses them: 4294967295 is (uid_t)-1,
    # "unchanged" to setresuid(2), so that process would stay root
    ("uid-negative", S("/process/user/uid", -1), "/process/user/uid",
     "uids and gids must be in range 0-2147483647, got -1"),
    ("uid-minus-one", S("/process/user/uid", 2**32 - 1), "/process/user/uid",
     "uids and gids must be in range 0-2147483647, got 4294967295"),
    ("gid-too-big", S("/process/user/gid", 2**31), "/process/user/gid",
     "uids and gids must be in range 0-2147483647, got 2147483648"),
    ("additional-gid-minus-one", S("/process/user/additionalGids", [5, 2**32 - 1]),
     "/process/user/additionalGids/1", "must be in range 0-2147483647, got 4294967295"),
    ("uid-bool", S("/process/user/uid", True), "/process/user/uid", "got true"),
    ("umask", S("/process/user/umask", 0o1000), "/process/user/umask", "0o777"),
    ("additional-gid", S("/process/user/additionalGids", [1, "2"]),
     "/process/user/additionalGids/1", 'got "2"'),
    ("rlimit-type", S("/process/rlimits/0/type", "RLIMIT_FOO"), "/process/rlimits/0/type",
     'must be an RLIMIT_* name such as "RLIMIT_NOFILE", got "RLIMIT_FOO"'),
    ("rlimit-dup", A("/process/rlimits", {"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}),
     "/process/rlimits/1/type", 'duplicate rlimit "RLIMIT_NOFILE", already at /process/rlimits/0'),
    ("rlimit-soft-gt-hard", S("/process/rlimits/0/soft", 2048), "/process/rlimits/0/soft",
     "must not exceed hard limit 1024, got 2048"),
    ("rlimit-negative", S("/process/rlimits/0/hard", -1), "/process/rlimits/0/hard",
     "must be a non-negative integer"),
    ("rlimit-no-soft", D("/process/rlimits/0/soft"), "/process/rlimits/0/soft", "missing"),
    ("oom-score", S("/process/oomScoreAdj", 1001), "/process/oomScoreAdj",
     "from -1000 to 1000, got 1001"),
    ("nnp-string", S("/process/noNewPrivileges", "true"), "/process/noNewPrivileges",
     "must be true or false"),
    ("caps-not-list", S("/process/capabilities/bounding", "CAP_KILL"),
     "/process/capabilities/bounding", "must be an array of capability names"),
    ("caps-bad-name", S("/process/capabilities/effective", ["KILL"]),
     "/process/capabilities/effective/0", 'must be a capability name like "CAP_KILL", got "KILL"'),
    ("apparmor-int", S("/process/apparmorProfile", 5), "/process/apparmorProfile",
     "must be a string"),
    ("selinux-list", S("/process/selinuxLabel", []), "/process/selinuxLabel", "must be a string"),
    ("ioprio-class", S("/process/ioPriority", {"class": "RT"}), "/process/ioPriority/class",
     "IOPRIO_CLASS_BE"),
    ("cpu-affinity", S("/process/execCPUAffinity", {"initial": "0-a"}),
     "/process/execCPUAffinity/initial", "cpu list"),
    # hostname / domainname
    ("hostname-no-uts", NS("pid", "network", "ipc", "mount", "cgroup"), "/hostname",
     "unable to set hostname without a private uts namespace"),
    ("domainname-no-uts", all_of(NS("pid", "mount"), S("/hostname", ""),
                                 S("/domainname", "example.org")), "/domainname",
     "unable to set domainname without a private uts namespace"),
    ("hostname-too-long", S("/hostname", "h" * 65), "/hostname", "at most 64 bytes"),
    # mounts
    ("mounts-not-list", S("/mounts", {}), "/mounts", "must be an array"),
    ("mount-dest-relative", S("/mounts/2/destination", "proc"), "/mounts/2/destination",
     'must be an absolute path, got "proc"'),
    ("mount-dest-dotdot", S("/mounts/1/destination", "/dev/../../etc"), "/mounts/1/destination",
     'must not contain ".." components'),
    ("mount-no-dest", D("/mounts/0/destination"), "/mounts/0/destination",
     "missing, expected an absolute path"),
    ("mount-type-int", S("/mounts/0/type", 1), "/mounts/0/type", "must be a string"),
    ("mount-options-str", S("/mounts/1/options", "nosuid"), "/mounts/1/options",
     "must be an array of strings"),
    ("mount-option-int", S("/mounts/1/options/2", 755), "/mounts/1/options/2",
     "must be a string, got 755"),
    ("bind-no-source", A("/mounts", {"destination": "/data", "type": "bind"}),
     "/mounts/7/source", "missing, expected the path to bind-mount"),
    ("rbind-empty-source", A("/mounts", {"destination": "/data", "source": "",
                                         "options": ["rbind"]}),
     "/mounts/7/source", "must be the path to bind-mount"),
    ("idmap-half", A("/mounts", dict(BIND, uidMappings=IDMAP)), "/mounts/7/gidMappings",
     "must have both uid and gid mappings specified"),
    ("idmap-empty", A("/mounts", dict(BIND, uidMappings=IDMAP, gidMappings=[])),
     "/mounts/7/gidMappings", "empty: id-mapped mounts must have both uid and gid mappings"),
    ("bind-data-option", A("/mounts", dict(BIND, options=["rbind", "size=1m"])),
     "/mounts/7/options/1", 'unknown option "size=1m": a bind mount takes no filesystem options'),
    ("bind-tmpcopyup", A("/mounts", dict(BIND, options=["rbind", "tmpcopyup"])),
     "/mounts/7/options/1", 'tmpcopyup: only a mount of type "tmpfs" has one'),
    ("idmap-not-bind", all_of(S("/mounts/0/uidMappings", IDMAP), S("/mounts/0/gidMappings", IDMAP)),
     "/mounts/0/uidMappings", "id-mapped mounts must be bind mounts"),
    ("idmap-size-zero", A("/mounts", dict(BIND, uidMappings=[{"containerID": 0, "hostID": 1,
                                                              "size": 0}], gidMappings=IDMAP)),
     "/mounts/7/uidMappings/0/size", "from 1 to 4294967295, got 0"),
    ("idmap-host-past-max", A("/mounts", dict(BIND, uidMappings=IDMAP, gidMappings=[
        {"containerID": 0, "hostID": 2**32 - 10, "size": 10}])), "/mounts/7/gidMappings/0/size",
     "hostID range 4294967286-4294967295 goes past 4294967294"),
    ("userns-no-mount-ns", all_of(ROOTLESS, NS("pid", "user")), "/linux/namespaces/1",
     "a new user namespace needs a mount namespace of its own"),
    # namespaces
    ("ns-unknown-type", S("/linux/namespaces/1/type", "net"), "/linux/namespaces/1/type",
     'must be one of pid, network, mount, ipc, uts, user, cgroup, time, got "net"'),
    ("ns-no-type", S("/linux/namespaces/0", {}), "/linux/namespaces/0/type", "missing"),
    ("ns-duplicate", A("/linux/namespaces", {"type": "pid"}), "/linux/namespaces/6/type",
     'duplicate namespace "pid", already at /linux/namespaces/0'),
    ("ns-path-relative", S("/linux/namespaces/2/path", "proc/1/ns/ipc"),
     "/linux/namespaces/2/path", "must be an absolute path"),
    ("ns-path-missing", S("/linux/namespaces/2/path", "/nonexistent/ns/ipc"),
     "/linux/namespaces/2/path", 'ipc namespace file "/nonexistent/ns/ipc" does not exist'),
    ("ns-not-list", S("/linux/namespaces", {"type": "pid"}), "/linux/namespaces",
     "must be an array"),
    # user namespace and id mappings
    ("maps-without-userns", S("/linux/uidMappings", IDMAP), "/linux/uidMappings",
     "user namespace mappings given, but there is no user namespace"),
    ("userns-no-gidmap", all_of(ROOTLESS, D("/linux/gidMappings")), "/linux/gidMappings",
     "needs gid mappings, got none"),
    ("userns-empty-uidmap", all_of(ROOTLESS, S("/linux/uidMappings", [])), "/linux/uidMappings",
     "needs uid mappings, got none"),
    ("mapping-no-hostid", all_of(ROOTLESS, D("/linux/uidMappings/0/hostID")),
     "/linux/uidMappings/0/hostID", "missing"),
    ("mapping-overlap", all_of(ROOTLESS, A("/linux/gidMappings",
                                           {"containerID": 0, "hostID": 5000, "size": 10})),
     "/linux/gidMappings/1/containerID", "overlaps /linux/gidMappings/0"),
    ("mapping-minus-one", all_of(ROOTLESS, S("/linux/uidMappings/0/containerID", 2**32 - 1)),
     "/linux/uidMappings/0/containerID", "from 0 to 4294967294, got 4294967295"),
    ("mapping-host-minus-one", all_of(ROOTLESS, S("/linux/gidMappings/0/hostID", 2**32 - 1)),
     "/linux/gidMappings/0/hostID", "from 0 to 4294967294, got 4294967295"),
    ("mapping-lines", all_of(ROOTLESS, S("/linux/uidMappings", [
        {"containerID": i, "hostID": 1000 + i, "size": 1} for i in range(341)])),
     "/linux/uidMappings", "has 341 mappings: the kernel takes at most 340 in one id map"),
    ("mapping-page", all_of(ROOTLESS, S("/linux/gidMappings", [
        {"containerID": 100000 + i * 2, "hostID": 100000 + i, "size": 1} for i in range(300)])),
     "/linux/gidMappings", "the kernel takes it in one write of less than a page"),
    ("mapping-overflow", all_of(ROOTLESS, S("/linux/uidMappings/0/containerID", 2**32 - 2),
                                S("/linux/uidMappings/0/size", 2)),
     "/linux/uidMappings/0/size", "containerID range 4294967294-4294967295 goes past 4294967294"),
    ("mapping-size-past-max", all_of(ROOTLESS, S("/linux/uidMappings/0/size", 2**32)),
     "/linux/uidMappings/0/size", "from 1 to 4294967295, got 4294967296"),
    ("uid-not-mapped", all_of(ROOTLESS, S("/process/user/uid", 1000)), "/process/user/uid",
     "uid 1000 is not mapped by /linux/uidMappings"),
    ("gid-not-mapped", all_of(ROOTLESS, S("/process/user/additionalGids", [0, 5])),
     "/process/user/additionalGids/1", "gid 5 is not mapped by /linux/gidMappings"),
    # sysctl
    ("sysctl-net-no-netns", all_of(ROOTLESS, S("/linux/sysctl", {"net.ipv4.ip_forward": "1"})),
     "/linux/sysctl/net.ipv4.ip_forward", "needs a private network namespace"),
    ("sysctl-slash-key", all_of(ROOTLESS, S("/linux/sysctl", {"net/ipv4/ip_forward": "1"})),
     "/linux/sysctl/net~1ipv4~1ip_forward", "needs a private network namespace"),
    ("sysctl-ipc-no-ipcns", all_of(NS("pid", "mount", "uts"),
                                   S("/linux/sysctl", {"kernel.shmmax": "1"})),
     "/linux/sysctl/kernel.shmmax", "needs a private ipc namespace"),
    ("sysctl-mqueue-no-ipcns", all_of(NS("pid", "mount", "uts"),
                                      S("/linux/sysctl", {"fs.mqueue.msg_max": "10"})),
     "/linux/sysctl/fs.mqueue.msg_max", "needs a private ipc namespace"),
    ("sysctl-not-namespaced", S("/linux/sysctl", {"vm.swappiness": "10"}),
     "/linux/sysctl/vm.swappiness", "is not namespaced"),
    ("sysctl-hostname", S("/linux/sysctl", {"kernel.hostname": "x"}),
     "/linux/sysctl/kernel.hostname", "conflicts with /hostname"),
    ("sysctl-domainname-no-uts", all_of(NS("pid", "mount"), D("/hostname"),
                                        S("/linux/sysctl", {"kernel.domainname": "x"})),
     "/linux/sysctl/kernel.domainname", "needs a private uts namespace"),
    ("sysctl-value-int", S("/linux/sysctl", {"net.core.somaxconn": 1024}),
     "/linux/sysctl/net.core.somaxconn", "must be a string, got 1024"),
    # resources
    ("memory-limit", S("/linux/resources/memory", {"limit": -2}), "/linux/resources/memory/limit",
     "or -1 for unlimited, got -2"),
    ("memory-swap-lt-limit", S("/linux/resources/memory", {"limit": 200 << 20,
                                                           "swap": 100 << 20}),
     "/linux/resources/memory/swap", "at least the memory limit 209715200"),
    ("memory-below-setup", S("/linux/resources/memory", {"limit": 256 << 10}),
     "/linux/resources/memory/limit", "must be at least 4194304 (4 MiB), got 262144"),
    ("memory-swappiness", S("/linux/resources/memory", {"swappiness": 101}),
     "/linux/resources/memory/swappiness", "from 0 to 100"),
    ("cpus-format", S("/linux/resources/cpu", {"cpus": "0-"}), "/linux/resources/cpu/cpus",
     'must be a cpu list like "0-2,4", got "0-"'),
    ("mems-reversed", S("/linux/resources/cpu", {"mems": "0,3-1"}), "/linux/resources/cpu/mems",
     "cpu list"),
    ("cpu-shares", S("/linux/resources/cpu", {"shares": -1}), "/linux/resources/cpu/shares",
     "non-negative"),
    ("cpu-shares-above-kernel", S("/linux/resources/cpu", {"shares": 1 << 40}),
     "/linux/resources/cpu/shares", "must be from 2 to 262144 (the kernel's range, as runc "
     "checks; 0: not set), got 1099511627776"),
    ("cpu-shares-below-kernel", S("/linux/resources/cpu", {"shares": 1}),
     "/linux/resources/cpu/shares", "got 1"),
    ("cpu-period-below-kernel", S("/linux/resources/cpu", {"quota": 50000, "period": 100}),
     "/linux/resources/cpu/period", "must be from 1000 to 1000000 microseconds"),
    ("cpu-period-above-kernel", S("/linux/resources/cpu", {"period": 2000000}),
     "/linux/resources/cpu/period", "got 2000000"),
    ("cpu-quota-below-kernel", S("/linux/resources/cpu", {"quota": 500}),
     "/linux/resources/cpu/quota", "or -1 for no limit"),
    ("cpu-quota-above-kernel", S("/linux/resources/cpu", {"quota": 2**44}),
     "/linux/resources/cpu/quota", "got 17592186044416"),
    ("sched-iso", S("/process/scheduler", {"policy": "SCHED_ISO"}), "/process/scheduler/policy",
     "policy SCHED_ISO is reserved: Linux does not implement it"),
    ("sched-fifo-priority-0", S("/process/scheduler", {"policy": "SCHED_FIFO"}),
     "/process/scheduler/priority", "policy SCHED_FIFO needs a priority from 1 to 99, got 0"),
    ("sched-other-priority", S("/process/scheduler", {"policy": "SCHED_OTHER", "priority": 5}),
     "/process/scheduler/priority", "a priority can only be given for SCHED_FIFO or SCHED_RR"),
    ("sched-batch-runtime", S("/process/scheduler", {"policy": "SCHED_BATCH", "runtime": 5}),
     "/process/scheduler", "runtime, deadline and period can only be given for SCHED_DEADLINE"),
    ("sched-deadline-short-runtime", S("/process/scheduler", {
        "policy": "SCHED_DEADLINE", "runtime": 100, "deadline": 10**6}),
     "/process/scheduler/runtime", "at least 1024 nanoseconds, got 100"),
    ("sched-deadline-order", S("/process/scheduler", {
        "policy": "SCHED_DEADLINE", "runtime": 10**6, "deadline": 10**5}),
     "/process/scheduler", "runtime <= deadline <= period, got 1000000, 100000, 100000"),
    ("cpu-quota-float", S("/linux/resources/cpu", {"quota": 1.5}), "/linux/resources/cpu/quota",
     "must be an integer, got 1.5"),
    ("pids-limit", S("/linux/resources/pids", {"limit": "10"}), "/linux/resources/pids/limit",
     "must be an integer"),
    ("blkio-weight", S("/linux/resources/blockIO", {"weight": 5}),
     "/linux/resources/blockIO/weight", "from 10 to 1000 (or 0: not set), got 5"),
    ("blkio-throttle-rate", S("/linux/resources/blockIO",
                              {"throttleReadBpsDevice": [{"major": 8, "minor": 0}]}),
     "/linux/resources/blockIO/throttleReadBpsDevice/0/rate", "missing"),
    ("cgdev-no-allow", S("/linux/resources/devices/0", {"access": "rwm"}),
     "/linux/resources/devices/0/allow", "missing, expected true or false"),
    ("cgdev-type", A("/linux/resources/devices", {"allow": True, "type": "x"}),
     "/linux/resources/devices/1/type", 'must be one of "a", "b", "c"'),
    ("cgdev-access", S("/linux/resources/devices/0/access", "rwx"),
     "/linux/resources/devices/0/access", 'combination of "r", "w" and "m"'),
    ("cgdev-major", A("/linux/resources/devices", {"allow": True, "type": "c", "major": -2}),
     "/linux/resources/devices/1/major", "or -1 for any"),
    ("hugepage-size", S("/linux/resources/hugepageLimits", [{"pageSize": "2M", "limit": 1}]),
     "/linux/resources/hugepageLimits/0/pageSize", 'page size like "2MB"'),
    ("unified-key", S("/linux/resources/unified", {"memory/../x": "1"}),
     "/linux/resources/unified/memory~1..~1x", "must be a cgroup file name"),
    ("unified-value", S("/linux/resources/unified", {"memory.high": 1}),
     "/linux/resources/unified/memory.high", "must be a string"),
    # devices
    ("device-relative", S("/linux/devices", [{"path": "dev/fuse", "type": "c", "major": 10,
                                              "minor": 229}]),
     "/linux/devices/0/path", "must be an absolute path"),
    ("device-no-major", S("/linux/devices", [{"path": "/dev/fuse", "type": "c", "minor": 229}]),
     "/linux/devices/0/major", "missing, expected the device major number"),
    ("device-type", S("/linux/devices", [{"path": "/dev/x", "type": "x"}]),
     "/linux/devices/0/type", 'must be one of "c", "b", "u", "p"'),
    ("device-rootfs", S("/linux/devices", [{"path": "/", "type": "p"}]),
     "/linux/devices/0/path", "not the rootfs itself"),
    ("device-uid-minus-one", S("/linux/devices", [{"path": "/dev/p", "type": "p",
                                                   "uid": 2**32 - 1}]),
     "/linux/devices/0/uid", "must be in range 0-2147483647, got 4294967295"),
    ("device-gid-str", S("/linux/devices", [{"path": "/dev/p", "type": "p", "gid": "5"}]),
     "/linux/devices/0/gid", 'must be an integer from 0 to 2147483647, got "5"'),
    # other /linux fields
    ("cgroups-path-int", S("/linux/cgroupsPath", 5), "/linux/cgroupsPath", "must be a string"),
    ("cgroups-path-dotdot", S("/linux/cgroupsPath", "/../escape"), "/linux/cgroupsPath",
     '".." components'),
    ("propagation", S("/linux/rootfsPropagation", "recursive"), "/linux/rootfsPropagation",
     'must be one of shared, slave, private'),
    ("masked-relative", A("/linux/maskedPaths", "proc/kcore"), "/linux/maskedPaths/10",
     "must be an absolute path"),
    ("readonly-not-list", S("/linux/readonlyPaths", "/proc/sys"), "/linux/readonlyPaths",
     "must be an array of absolute paths"),
    ("masked-no-mount-ns", all_of(NS("pid", "uts"), S("/mounts", [])), "/linux/maskedPaths",
     "without a private mount namespace"),
    ("time-offsets-no-timens", S("/linux/timeOffsets", {"monotonic": {"secs": 1}}),
     "/linux/timeOffsets", "need a time namespace"),
    ("time-offsets-clock", all_of(A("/linux/namespaces", {"type": "time"}),
                                  S("/linux/timeOffsets", {"realtime": {"secs": 1}})),
     "/linux/timeOffsets/realtime", 'unknown clock "realtime"'),
    ("time-offsets-nanosecs", all_of(A("/linux/namespaces", {"type": "time"}),
                                     S("/linux/timeOffsets", {"boottime": {"nanosecs": 10**9}})),
     "/linux/timeOffsets/boottime/nanosecs", "from 0 to 999999999"),
    ("mount-label", S("/linux/mountLabel", 1), "/linux/mountLabel", "must be a string"),
    ("seccomp-list", S("/linux/seccomp", []), "/linux/seccomp", "must be an object, got an array"),
    ("personality", S("/linux/personality", {"domain": "LINUX64"}), "/linux/personality/domain",
     'must be one of LINUX, LINUX32, got "LINUX64"'),
    # hooks
    ("hooks-not-object", S("/hooks", []), "/hooks", "must be an object"),
    ("hook-relative", S("/hooks", {"prestart": [{"path": "hook.sh"}]}), "/hooks/prestart/0/path",
     'must be an absolute path, got "hook.sh"'),
    ("hook-no-path", S("/hooks", {"createRuntime": [{"args": ["x"]}]}),
     "/hooks/createRuntime/0/path", "missing, expected the absolute path of the hook program"),
    ("hook-timeout", S("/hooks", {"poststop": [{"path": "/bin/true", "timeout": 0}]}),
     "/hooks/poststop/0/timeout", "must be a positive number of seconds, got 0"),
    ("hook-args", S("/hooks", {"poststart": [{"path": "/bin/true", "args": "x"}]}),
     "/hooks/poststart/0/args", "must be an array of strings"),
    ("hooks-not-list", S("/hooks", {"startContainer": {"path": "/bin/true"}}),
     "/hooks/startContainer", "must be an array"),
]


@pytest.mark.parametrize("rootless", [False, True])
def test_default_spec_validates(bundle, rootless):
    specmod.validate(default_spec(rootless=rootless), bundle)


@pytest.mark.parametrize("mutation,pointer,fragment", [b[1:] for b in BROKEN],
                         ids=[b[0] for b in BROKEN])
def test_broken_config(bundle, mutation, pointer, fragment):
    spec = default_spec()
    mutation(spec)
    with pytest.raises(SpecError) as exc:
        specmod.validate(spec, bundle)
    err = exc.value
    assert err.pointer == pointer, str(err)
    assert fragment in err.message, str(err)
    assert str(err) == f"config {pointer}: {err.message}"
    assert err.message == err.message.rstrip(".") and err.message[:1].islower()
    # lint's mode: the same first problem, then any others, one per item
    found = specmod.collect(spec, bundle)
    assert [(e.pointer, e.message) for e in found[:1]] == [(err.pointer, err.message)]
    assert len({e.pointer for e in found}) == len(found)


def test_broken_cases_are_distinct():
    ids = [b[0] for b in BROKEN]
    assert len(ids) == len(set(ids))
    assert len({(b[2], b[3]) for b in BROKEN}) == len(BROKEN)
    assert len(BROKEN) >= 30


def test_message_reads_as_in_the_design(bundle):
    spec = default_spec()
    spec["mounts"][2]["destination"] = "proc"
    with pytest.raises(SpecError) as exc:
        specmod.validate(spec, bundle)
    assert str(exc.value) == 'config /mounts/2/destination: must be an absolute path, got "proc"'


def test_not_an_object(bundle):
    with pytest.raises(SpecError) as exc:
        specmod.validate([], bundle)
    assert exc.value.pointer == "" and str(exc.value) == "config /: must be a json object, " \
                                                         "got an array"


def test_first_problem_wins(bundle):
    spec = default_spec()
    spec["process"]["cwd"] = "relative"
    spec["mounts"][0]["destination"] = "proc"
    with pytest.raises(SpecError) as exc:
        specmod.validate(spec, bundle)
    assert exc.value.pointer == "/process/cwd"


def test_unknown_fields_are_ignored(bundle):
    spec = default_spec()
    spec["vendor.extension"] = {"anything": [1, None]}
    spec["process"]["futureField"] = None
    spec["mounts"][0]["x-extra"] = 1
    spec["linux"]["namespaces"][0]["flags"] = "?"
    spec["linux"]["resources"]["futureController"] = {"x": True}
    spec["hooks"] = {"futureHook": "not validated", "prestart": []}
    spec["process"]["capabilities"]["futureSet"] = "x"
    specmod.validate(spec, bundle)


def test_rich_valid_config(bundle, tmp_path):
    """Many optional fields, all valid: guards against false positives."""
    nsfile = tmp_path / "ipcns"
    nsfile.write_text("")
    spec = default_spec()
    spec["domainname"] = "example.org"
    spec["annotations"] = {"org.example/key": "value"}
    proc = spec["process"]
    proc["user"].update(umask=0o22, additionalGids=[1, 2], uid=1000, gid=1000)
    proc["rlimits"].append({"type": "RLIMIT_CORE", "soft": 0, "hard": 2**64 - 1})
    proc.update(oomScoreAdj=-1000, apparmorProfile="unconfined", selinuxLabel="",
                consoleSize={"height": 24, "width": 80},
                ioPriority={"class": "IOPRIO_CLASS_BE", "priority": 4},
                scheduler={"policy": "SCHED_OTHER", "nice": -5},
                execCPUAffinity={"initial": "0", "final": "0-3,7"})
    proc["capabilities"]["inheritable"] = []
    spec["mounts"].append(dict(BIND, uidMappings=IDMAP, gidMappings=IDMAP))
    spec["mounts"].append({"destination": "/etc/hosts", "source": "hosts",
                           "options": ["bind", "ro"]})
    linux = spec["linux"]
    linux["namespaces"][2]["path"] = str(nsfile)
    linux["namespaces"].append({"type": "time"})
    linux["timeOffsets"] = {"monotonic": {"secs": -10, "nanosecs": 5}, "boottime": {"secs": 1}}
    linux["sysctl"] = {"net.ipv4.ip_forward": "1", "net/core/somaxconn": "1024",
                       "kernel.shmmax": "1", "kernel.sem": "1 2 3 4", "fs.mqueue.msg_max": "10",
                       "kernel.domainname": "example.org"}
    linux["resources"].update(
        memory={"limit": 1 << 30, "reservation": -1, "swap": -1, "swappiness": 0,
                "disableOOMKiller": False},
        cpu={"shares": 1024, "quota": -1, "period": 100000, "cpus": "0-2,4", "mems": ""},
        pids={"limit": -1},
        blockIO={"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 10}],
                 "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}]},
        hugepageLimits=[{"pageSize": "2MB", "limit": 0}, {"pageSize": "1GB", "limit": 1 << 30}],
        network={"classID": 1, "priorities": [{"name": "eth0", "priority": 5}]},
        rdma={"mlx5_1": {"hcaHandles": 3}},
        unified={"memory.high": "max", "io.weight": "default 100"},
    )
    linux["resources"]["devices"] += [
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"},
        {"allow": True, "type": "a", "major": -1, "minor": -1, "access": "m"},
        {"allow": True, "type": "b", "access": ""},
    ]
    linux["devices"] = [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666,
         "uid": 0, "gid": 0},
        {"path": "/dev/myfifo", "type": "p"},
    ]
    linux.update(cgroupsPath="system.slice:ocish:abc", rootfsPropagation="rslave",
                 mountLabel="", seccomp={"defaultAction": "SCMP_ACT_ALLOW"},
                 personality={"domain": "LINUX32", "flags": []})
    spec["hooks"] = {k: [{"path": "/usr/bin/hook", "args": ["hook", k], "env": ["A=1"],
                          "timeout": 5}] for k in specmod.HOOKS}
    specmod.validate(spec, bundle)


def test_rootless_with_more_ids_validates(bundle):
    spec = default_spec(rootless=True)
    spec["linux"]["uidMappings"].append({"containerID": 1, "hostID": 100000, "size": 65536})
    spec["linux"]["gidMappings"].append({"containerID": 1, "hostID": 100000, "size": 65536})
    spec["process"]["user"].update(uid=1000, gid=1000, additionalGids=[65536])
    specmod.validate(spec, bundle)


def test_ids_up_to_2147483647_validate(bundle):
    """The last id runc takes for a process user or a device; id maps may name host ids up to
    4294967294 (the kernel's uid_map limit: (uid_t)-1 is "no id")."""
    top = 2**31 - 1
    spec = default_spec(rootless=True)
    spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 1, "size": top},
                                    {"containerID": top, "hostID": 2**32 - 2, "size": 1}]
    spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 2**32 - 1}]
    spec["process"]["user"].update(uid=top - 1, gid=top, additionalGids=[top])
    spec["linux"]["devices"] = [{"path": "/dev/p", "type": "p", "uid": top, "gid": top}]
    specmod.validate(spec, bundle)
    spec["linux"]["gidMappings"][0]["containerID"] = 1  # the range would end at 4294967295
    with pytest.raises(SpecError) as exc:
        specmod.validate(spec, bundle)
    assert str(exc.value) == ("config /linux/gidMappings/0/size: containerID range 1-4294967295 "
                              "goes past 4294967294, the largest id (4294967295 is -1)")
    spec["linux"]["gidMappings"][0]["containerID"] = 0
    spec["process"]["user"]["gid"] = top + 1  # mapped, but not a uid runc takes
    with pytest.raises(SpecError) as exc:
        specmod.validate(spec, bundle)
    assert str(exc.value) == ("config /process/user/gid: uids and gids must be in range "
                              "0-2147483647, got 2147483648")


def test_no_mount_namespace_validates(bundle):
    """runtime-spec: an absent namespace type is inherited; the mounts are made in the
    runtime's mount namespace (runc too). Masked and read-only paths still need one (runc's
    validator)."""
    spec = default_spec()
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "mount"]
    del spec["linux"]["maskedPaths"], spec["linux"]["readonlyPaths"]
    assert spec["mounts"]
    specmod.validate(spec, bundle)


def test_joined_user_namespace_needs_no_mappings(bundle, tmp_path):
    nsfile = tmp_path / "userns"
    nsfile.write_text("")
    spec = default_spec(rootless=True)
    del spec["linux"]["uidMappings"], spec["linux"]["gidMappings"]
    spec["linux"]["namespaces"][-1]["path"] = str(nsfile)
    specmod.validate(spec, bundle)


@pytest.mark.skipif(not os.path.exists("/proc/self/ns/net"), reason="no /proc/self/ns/net")
def test_net_sysctl_in_host_netns(bundle):
    spec = default_spec()
    spec["linux"]["namespaces"][1]["path"] = "/proc/self/ns/net"
    spec["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    with pytest.raises(SpecError) as exc:
        specmod.validate(spec, bundle)
    assert exc.value.pointer == "/linux/sysctl/net.ipv4.ip_forward"
    assert "host network namespace" in exc.value.message


def test_time_offsets_with_joined_time_namespace(bundle, tmp_path):
    nsfile = tmp_path / "timens"
    nsfile.write_text("")
    spec = default_spec()
    spec["linux"]["namespaces"].append({"type": "time", "path": str(nsfile)})
    spec["linux"]["timeOffsets"] = {"monotonic": {"secs": 1}}
    with pytest.raises(SpecError) as exc:
        specmod.validate(spec, bundle)
    assert exc.value.pointer == "/linux/timeOffsets"
    assert "joins an existing one" in exc.value.message


@pytest.mark.parametrize("key,token", [("a/b", "a~1b"), ("a~b", "a~0b"), ("~/", "~0~1"),
                                       ("plain", "plain")])
def test_pointer_escaping(key, token):
    assert specmod.esc(key) == token


# --- rootfs ------------------------------------------------------------------------------------

def test_rootfs_missing(tmp_path):
    with pytest.raises(SpecError) as exc:
        specmod.validate(default_spec(), str(tmp_path))
    assert exc.value.pointer == "/root/path"
    assert "does not exist" in exc.value.message
    assert str(tmp_path / "rootfs") in exc.value.message


def test_rootfs_not_a_directory(tmp_path):
    (tmp_path / "rootfs").write_text("")
    with pytest.raises(SpecError) as exc:
        specmod.validate(default_spec(), str(tmp_path))
    assert exc.value.pointer == "/root/path"
    assert "is not a directory" in exc.value.message


def test_rootfs_absolute_path(tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    (tmp_path / "bundle").mkdir()
    spec = default_spec()
    spec["root"]["path"] = str(other)
    write(str(tmp_path / "bundle"), spec)
    assert specmod.load(str(tmp_path / "bundle"))[1] == str(other.resolve())


# --- load --------------------------------------------------------------------------------------

def test_load_ok(bundle, monkeypatch):
    write(bundle, default_spec())
    spec, rootfs = specmod.load(bundle)
    assert spec == default_spec()
    assert rootfs == os.path.realpath(os.path.join(bundle, "rootfs"))
    monkeypatch.chdir(bundle)  # a relative bundle path
    assert specmod.load(".")[1] == rootfs


def test_load_resolves_symlinked_rootfs(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "rootfs").symlink_to(tmp_path / "real")
    write(str(tmp_path), default_spec())
    assert specmod.load(str(tmp_path))[1] == str((tmp_path / "real").resolve())


def test_load_missing_config(tmp_path):
    with pytest.raises(OcishError) as exc:
        specmod.load(str(tmp_path))
    assert str(exc.value) == f'bundle "{tmp_path}": config.json: no such file or directory'


def test_load_missing_bundle(tmp_path):
    with pytest.raises(OcishError) as exc:
        specmod.load(str(tmp_path / "nope"))
    assert str(exc.value) == f'bundle "{tmp_path / "nope"}": no such file or directory'


@pytest.mark.parametrize("text,fragment", [
    ('{\n  "ociVersion": "1.2.0",\n  "root": {"path": "rootfs"}\n  "process": {}\n}',
     "invalid json at line 4 column 3: expecting ',' delimiter"),
    ("", "invalid json at line 1 column 1: expecting value"),
    ("{} trailing", "invalid json at line 1 column 4: extra data"),
    ('{"a": NaN}', "invalid json: NaN is not a json value"),
    ('{"a": "x', "invalid json at line 1 column 7: unterminated string"),
])
def test_load_bad_json(bundle, text, fragment):
    with open(os.path.join(bundle, "config.json"), "w") as f:
        f.write(text)
    with pytest.raises(OcishError) as exc:
        specmod.load(bundle)
    assert not isinstance(exc.value, SpecError)
    assert str(exc.value).startswith(f'bundle "{bundle}": config.json: ')
    assert fragment in str(exc.value)


def test_load_too_deep(bundle):
    with open(os.path.join(bundle, "config.json"), "w") as f:
        f.write("[" * 200000 + "]" * 200000)
    with pytest.raises(OcishError, match="invalid json: nested too deeply"):
        specmod.load(bundle)


@pytest.mark.parametrize("text", [
    '{"a": [1, -2, 3.5e2, 1e400, true, false, null], "b": "\\u00e9\\n\\ud83d\\ude00"}',
    '  {"big": 18446744073709551615, "neg": -9223372036854775808}  ',
    '{"dup": 1, "dup": 2}', '[]', '"s"', '0',
])
def test_parse_matches_json(text):
    assert jsonfast.loads(text) == json.loads(text)


@pytest.mark.parametrize("text", ["{", "[1", '{"a" 1}', '{"a": [1,}', '[{"a": {"b": [}}]'])
def test_truncated_json_is_a_value_error_without_json_imported(text):
    """The C scanner words errors inside objects and arrays through json.decoder, which it
    only finds in sys.modules: in a runtime that never imported `json` it used to fail with a
    SystemError (a traceback) instead."""
    code = ("import sys; from runtime import jsonfast\n"
            "try: jsonfast.loads(sys.argv[1])\n"
            "except ValueError as e: print(type(e).__name__, e)\n")
    out = subprocess.run([sys.executable, "-S", "-c", code, text], cwd=REPO, check=True,
                         capture_output=True, text=True)
    assert out.stderr == "" and out.stdout.startswith("JSONDecodeError ")


def test_load_not_utf8(bundle):
    with open(os.path.join(bundle, "config.json"), "wb") as f:
        f.write(b'{"a": "\xff"}')
    with pytest.raises(OcishError, match="not valid utf-8 at byte 7"):
        specmod.load(bundle)


def test_load_bom_and_whitespace(bundle):
    with open(os.path.join(bundle, "config.json"), "w", encoding="utf-8-sig") as f:
        f.write("\n  " + json.dumps(default_spec(), indent=2) + "\n\n")
    assert specmod.load(bundle)[0] == default_spec()


def test_load_not_an_object(bundle):
    write(bundle, ["ociVersion"])
    with pytest.raises(SpecError) as exc:
        specmod.load(bundle)
    assert exc.value.pointer == ""


def test_load_missing_rootfs(tmp_path):
    write(str(tmp_path), default_spec())
    with pytest.raises(SpecError) as exc:
        specmod.load(str(tmp_path))
    assert exc.value.pointer == "/root/path"
    assert str(exc.value).startswith(f'config /root/path: rootfs "{tmp_path / "rootfs"}"')


def test_load_validates(bundle):
    spec = default_spec()
    spec["linux"]["namespaces"][0]["type"] = "net"
    write(bundle, spec)
    with pytest.raises(SpecError) as exc:
        specmod.load(bundle)
    assert exc.value.pointer == "/linux/namespaces/0/type"


# --- import cost -------------------------------------------------------------------------------

def test_hot_path_imports_nothing_heavy(bundle):
    """Import, state.validate_id and a successful load must not pull in re, json, pathlib or
    jsonschema (-S: without site, which may import re itself)."""
    write(bundle, default_spec())
    code = ("import sys; import runtime.spec as s, runtime.state as st; st.validate_id('abc'); s.load(sys.argv[1]); "
            "print(' '.join(m for m in ('re', 'json', 'pathlib', 'jsonschema', 'enum', "
            "'typing') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-S", "-c", code, bundle], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout
    assert out.strip() == ""


def test_blkio_weight_zero_means_unset(bundle):
    """dockerd sends {"weight": 0} for "not set"; runc accepts it, so must we."""
    spec = default_spec()
    spec["linux"]["resources"]["blockIO"] = {"weight": 0, "weightDevice": [
        {"major": 8, "minor": 0, "weight": 0}]}
    write(bundle, spec)
    specmod.load(str(bundle))


def test_bad_json_without_json_imported(bundle):
    """_json raises its syntax errors through json.decoder, which create never imports: the
    message must still be the one-line explanation (it was a SystemError traceback)."""
    with open(os.path.join(bundle, "config.json"), "w") as f:
        f.write('{"ociVersion": "1.2.0",\n}')
    code = ("import sys, runtime.spec as s\ntry:\n    s.load(sys.argv[1])\n"
            "except Exception as e:\n    print(type(e).__name__, e)")
    out = subprocess.run([sys.executable, "-S", "-c", code, bundle], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout
    assert out.strip() == (f'ConfigNotJson bundle "{bundle}": config.json: invalid json at line 2 '
                           f'column 1: expecting property name enclosed in double quotes')


# --- lint's mode: every problem, the first one being create's ----------------------------------

@pytest.mark.parametrize("rootless", [False, True])
def test_collect_valid_config(bundle, rootless):
    assert specmod.collect(default_spec(rootless=rootless), bundle) == []


def test_collect_reports_every_independent_problem(bundle):
    spec = default_spec()
    spec["process"]["cwd"] = "rel"
    spec["process"]["args"] = ["sh", 2]
    spec["process"]["env"] = [1, "NOEQUALS", "A=1"]
    spec["process"]["rlimits"] = [{"type": "RLIMIT_X", "soft": -1, "hard": "y"}]
    spec["process"]["capabilities"]["bounding"] = ["CAP_KILL", "CAP_NOPE", "KILL"]
    spec["hostname"] = 5
    spec["mounts"][0]["destination"] = "proc"
    spec["mounts"][1]["options"] = ["nosuid", 1]
    spec["linux"]["resources"]["memory"] = {"limit": "1G", "swappiness": 101}
    spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_NOPE", "syscalls": [
        {"names": []}, {"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 9}]}]}
    spec["linux"]["sysctl"] = {"vm.swappiness": "1", "net.core.somaxconn": 5}
    spec["hooks"] = {"prestart": [{"path": "rel"}, {"path": "/ok", "timeout": 0}]}
    found = [e.pointer for e in specmod.collect(spec, os.path.join(bundle, "nope"))]
    assert found == [
        "/process/args/1", "/process/cwd", "/process/env/0", "/process/env/1",
        "/process/rlimits/0/type", "/process/rlimits/0/soft", "/process/rlimits/0/hard",
        "/process/capabilities/bounding/2", "/hostname", "/mounts/0/destination",
        "/mounts/1/options/1", "/hooks/prestart/0/path", "/hooks/prestart/1/timeout",
        "/linux/sysctl/vm.swappiness", "/linux/sysctl/net.core.somaxconn",
        "/linux/resources/memory/limit", "/linux/resources/memory/swappiness",
        "/process/capabilities/bounding/1", "/linux/seccomp/defaultAction",
        "/linux/seccomp/syscalls/0/names", "/linux/seccomp/syscalls/1/args/0/value",
        "/root/path"]


@pytest.mark.parametrize("mutation,pointer", [
    # the namespaces cannot be told: no "needs a uts/mount namespace" on top
    (S("/linux", []), "/linux"),
    (S("/linux/namespaces", {"type": "pid"}), "/linux/namespaces"),
    (S("/linux/namespaces/4/type", "UTS"), "/linux/namespaces/4/type"),
    # an invalid map: no "uid 0 is not mapped" on top
    (all_of(ROOTLESS, S("/linux/uidMappings/0/containerID", -1)),
     "/linux/uidMappings/0/containerID"),
    (all_of(ROOTLESS, S("/linux/uidMappings", {})), "/linux/uidMappings"),
    (all_of(ROOTLESS, S("/linux/uidMappings", [])), "/linux/uidMappings"),
    # an invalid value read by a later check
    (S("/process/rlimits/0/soft", "1"), "/process/rlimits/0/soft"),
    (S("/linux/resources/memory", {"limit": "1G", "swap": 5}), "/linux/resources/memory/limit"),
    (S("/process/args", "sh"), "/process/args"),
    (S("/root", {"path": 5}), "/root/path"),
])
def test_collect_reports_no_follow_on_problems(bundle, mutation, pointer):
    spec = default_spec()
    mutation(spec)
    assert [e.pointer for e in specmod.collect(spec, bundle)] == [pointer]


def test_collect_leaves_create_strict(bundle):
    spec = default_spec()
    spec["process"]["cwd"] = "rel"
    specmod.collect(spec, bundle)
    with pytest.raises(SpecError):  # lint's mode ended with collect
        specmod.validate(spec, bundle)
