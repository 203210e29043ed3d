"""Configs on which the runtime-spec 1.2 schema and runtime/spec.py are compared.

`rich_config()` sets every member the schema knows for Linux, valid for both; `mutations()` breaks
each of its values the ways the schema forbids (wrong type, out of range, not in the enum, not
matching the pattern, a required member removed, an empty array that must not be), one at a
time, by walking the schema next to the config. `schema_paths()` lists every member the schema
describes, so a test can check that the rich config leaves none out.
"""
from __future__ import annotations

import copy
from typing import Iterator

from ocish.lint.schemacheck import branches, schemas, walk
from runtime.defaults import default_spec
from runtime.spec import esc

OTHER_PLATFORMS = ("solaris", "windows", "vm", "zos")
IDS = [{"containerID": 0, "hostID": 100000, "size": 65536}]


def rich_config() -> dict:
    """Every schema member for Linux, each with a value both validators accept."""
    s = default_spec()
    s["annotations"] = {"org.example.key": "value"}
    s["domainname"] = "example.org"
    p = s["process"]
    p.update(commandLine="sh", terminal=False, consoleSize={"height": 24, "width": 80},
             oomScoreAdj=100, noNewPrivileges=True, apparmorProfile="", selinuxLabel="",
             ioPriority={"class": "IOPRIO_CLASS_BE", "priority": 4},
             scheduler={"policy": "SCHED_OTHER", "nice": 0, "priority": 0,
                        "flags": ["SCHED_FLAG_RESET_ON_FORK"], "runtime": 0, "deadline": 0,
                        "period": 0},
             execCPUAffinity={"initial": "0", "final": "0-1"})
    p["user"] = {"uid": 0, "gid": 0, "umask": 0o22, "additionalGids": [1, 2], "username": "root"}
    p["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024}]
    p["capabilities"].update(ambient=[], inheritable=[])
    s["mounts"].append({"destination": "/data", "type": "bind", "source": "/srv",
                        "options": ["rbind"], "uidMappings": IDS, "gidMappings": IDS})
    s["hooks"] = {k: [{"path": "/usr/bin/hook", "args": ["hook", k], "env": ["A=1"],
                       "timeout": 5}] for k in ("prestart", "createRuntime", "createContainer",
                                                "startContainer", "poststart", "poststop")}
    linux = s["linux"]
    linux["namespaces"] += [{"type": "user"}, {"type": "time"}]
    linux["namespaces"][2]["path"] = "/proc/self/ns/ipc"
    linux["uidMappings"] = linux["gidMappings"] = IDS
    linux["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                         "fileMode": 0o666, "uid": 0, "gid": 0}]
    linux["resources"]["devices"].append({"allow": True, "type": "c", "major": 1, "minor": 3,
                                          "access": "rw"})
    linux["resources"].update(
        unified={"memory.high": "max"},
        pids={"limit": 100},
        blockIO={"weight": 500, "leafWeight": 500,
                 "weightDevice": [{"major": 8, "minor": 0, "weight": 500, "leafWeight": 500}],
                 **{k: [{"major": 8, "minor": 0, "rate": 100}]
                    for k in ("throttleReadBpsDevice", "throttleWriteBpsDevice",
                              "throttleReadIOPSDevice", "throttleWriteIOPSDevice")}},
        cpu={"cpus": "0", "mems": "0", "period": 100000, "quota": 50000, "burst": 0,
             "realtimePeriod": 0, "realtimeRuntime": 0, "shares": 1024, "idle": 0},
        hugepageLimits=[{"pageSize": "2MB", "limit": 0}],
        memory={"kernel": -1, "kernelTCP": -1, "limit": 1 << 30, "reservation": 1 << 29,
                "swap": 1 << 31, "swappiness": 60, "disableOOMKiller": False,
                "useHierarchy": True, "checkBeforeUpdate": False},
        network={"classID": 1, "priorities": [{"name": "eth0", "priority": 1}]},
        rdma={"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10}})
    linux.update(
        cgroupsPath="/ocish/rich", rootfsPropagation="private",
        seccomp={"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
                 "flags": ["SECCOMP_FILTER_FLAG_LOG"], "listenerPath": "/run/seccomp.sock",
                 "listenerMetadata": "x", "architectures": ["SCMP_ARCH_X86_64"],
                 "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1,
                               "args": [{"index": 0, "value": 1, "valueTwo": 0,
                                         "op": "SCMP_CMP_EQ"}]}]},
        sysctl={"net.ipv4.ip_forward": "1"}, mountLabel="",
        intelRdt={"closID": "guaranteed", "l3CacheSchema": "L3:0=ff", "memBwSchema": "MB:0=70",
                  "enableCMT": True, "enableMBM": True},
        personality={"domain": "LINUX", "flags": []},
        timeOffsets={"boottime": {"secs": 1, "nanosecs": 0}, "monotonic": {"secs": 1,
                                                                           "nanosecs": 0}})
    return s


# -- the schema, walked ------------------------------------------------------------------------

SCHEMAS = schemas()


def schema_paths(platforms: bool = False) -> set[str]:
    """Every member the config schema describes, arrays' items as "*", maps' keys as "?"."""
    out: set[str] = set()

    def visit(node: dict, file: str, path: str, depth: int) -> None:
        if depth > 12:
            return
        for n, f in branches(node, file):
            for k, sub in n.get("properties", {}).items():
                if not path and k in OTHER_PLATFORMS and not platforms:
                    continue
                out.add(f"{path}/{k}")
                visit(sub, f, f"{path}/{k}", depth + 1)
            for sub in list(n.get("patternProperties", {}).values()) + (
                    [n["additionalProperties"]] if isinstance(n.get("additionalProperties"),
                                                             dict) else []):
                out.add(f"{path}/?")
                visit(sub, f, f"{path}/?", depth + 1)
            if isinstance(n.get("items"), dict):
                visit(n["items"], f, f"{path}/*", depth + 1)
    visit(SCHEMAS["config-schema.json"], "config-schema.json", "", 0)
    return out


def present_paths(doc) -> set[str]:
    """The schema paths (as schema_paths names them) that `doc` sets."""
    root = SCHEMAS["config-schema.json"]
    return {spath for _, spath, _, _ in walk(doc, root, "config-schema.json") if spath}


# -- mutations ---------------------------------------------------------------------------------

_WRONG_TYPE = {"string": [1], "integer": ["1", 1.5, True], "boolean": ["true", 0],
               "array": [{}], "object": [[]], "number": ["1"]}


def _violations(node: dict, value) -> Iterator[tuple[str, object]]:
    """(kind, bad value) for the constraints `node` puts on `value`."""
    t = node.get("type")
    for bad in _WRONG_TYPE.get(t, []) if isinstance(t, str) else []:
        yield f"type {t}", bad
    if "enum" in node:
        yield "enum", "NOT_IN_THE_ENUM"
    if "pattern" in node:
        yield "pattern", "!"
    if "minimum" in node:
        yield "minimum", node["minimum"] - 1
    if "maximum" in node:
        yield "maximum", node["maximum"] + 1
    if node.get("minItems") and isinstance(value, list):
        yield "minItems", []


def mutations(doc: dict) -> list[tuple[str, str, dict]]:
    """(name, pointer, broken copy of doc): one schema violation each."""
    out, seen = [], set()
    root = SCHEMAS["config-schema.json"]
    for ptr, _, node, value in walk(doc, root, "config-schema.json"):
        for kind, bad in _violations(node, value):
            if (ptr, kind, repr(bad)) not in seen and ptr:
                seen.add((ptr, kind, repr(bad)))
                out.append((f"{ptr} {kind} {bad!r}", ptr, _set(doc, ptr, bad)))
        if isinstance(value, dict):
            for key in node.get("required", []):
                if key in value and (ptr, key) not in seen:
                    seen.add((ptr, key))
                    out.append((f"{ptr}/{key} required", f"{ptr}/{esc(key)}",
                                _delete(doc, f"{ptr}/{esc(key)}")))
    return out


def _parent(doc, ptr: str):
    *parts, last = [p.replace("~1", "/").replace("~0", "~") for p in ptr.split("/")[1:]]
    node = doc
    for p in parts:
        node = node[int(p)] if isinstance(node, list) else node[p]
    return node, (int(last) if isinstance(node, list) else last)


def _set(doc: dict, ptr: str, value) -> dict:
    doc = copy.deepcopy(doc)
    node, key = _parent(doc, ptr)
    if isinstance(node, list) and key == len(node):
        node.append(value)
    else:
        node[key] = value
    return doc


def _delete(doc: dict, ptr: str) -> dict:
    doc = copy.deepcopy(doc)
    node, key = _parent(doc, ptr)
    del node[key]
    return doc


# -- where the two differ on purpose (schemacheck.STRICTER and LOOSER), one example each ---------

def _example(*edits):
    """A copy of rich_config() with (pointer, value) edits; value DELETE removes the member."""
    doc = rich_config()
    for ptr, value in edits:
        doc = _delete(doc, ptr) if value is DELETE else _set(doc, ptr, value)
    return doc


DELETE = object()

DIFFERENCES = [
    ("args missing", _example(("/process/args", DELETE))),
    ("args[0] empty", _example(("/process/args", ["", "x"]))),
    ("console height above 16 bits", _example(("/process/consoleSize/height", 70000))),
    ("rlimit twice", _example(("/process/rlimits/1", {"type": "RLIMIT_NOFILE", "soft": 1,
                                                       "hard": 1}))),
    ("io priority 8", _example(("/process/ioPriority/priority", 8))),
    ("nice 20", _example(("/process/scheduler/nice", 20))),
    ("cpu affinity reversed", _example(("/process/execCPUAffinity/initial", "1-0"))),
    ("umask above 0o777", _example(("/process/user/umask", 0o1000))),
    ("domainname too long", _example(("/domainname", "d" * 65))),
    ("hook timeout beyond int64", _example(("/hooks/prestart/0/timeout", 2**63))),
    ("annotation under an empty key", _example(("/annotations", {"": 1}))),
    ("id map of size 0", _example(("/linux/uidMappings", [{"containerID": 0, "hostID": 1,
                                                           "size": 0}]))),
    ("id map past the last id", _example(("/linux/gidMappings", [
        {"containerID": 0, "hostID": 2**32 - 2, "size": 10}]))),
    ("swap below memory", _example(("/linux/resources/memory/swap", 1 << 20))),
    ("blkio major -1", _example(("/linux/resources/blockIO/weightDevice/0/major", -1))),
    ("blkio minor -1", _example(("/linux/resources/blockIO/throttleReadBpsDevice/0/minor", -1))),
    ("throttle without a rate", _example(
        ("/linux/resources/blockIO/throttleWriteIOPSDevice/0/rate", DELETE))),
    ("priority of an unnamed interface", _example(("/linux/resources/network/priorities/0/name",
                                                   ""))),
    ("device path through ..", _example(("/linux/devices/0/path", "/dev/../x"))),
    ("device minor -1", _example(("/linux/devices/0/minor", -1))),
    ("device major missing", _example(("/linux/devices/0/major", DELETE))),
    ("readonly path relative", _example(("/linux/readonlyPaths/0", "proc/bus"))),
    ("masked path through ..", _example(("/linux/maskedPaths/0", "/proc/../etc"))),
    ("readonly path through ..", _example(("/linux/readonlyPaths/0", "/proc/../etc"))),
    ("personality without domain", _example(("/linux/personality/domain", DELETE))),
    ("errno above 16 bits", _example(("/linux/seccomp/defaultErrnoRet", 70000))),
    ("seccomp argument 6", _example(("/linux/seccomp/syscalls/0/args/0/index", 6))),
    ("notify by default", _example(("/linux/seccomp/defaultAction", "SCMP_ACT_NOTIFY"))),
    ("relative listener", _example(("/linux/seccomp/listenerPath", "seccomp.sock"))),
    ("notify on sendmsg", _example(("/linux/seccomp/syscalls/0", {
        "names": ["sendmsg"], "action": "SCMP_ACT_NOTIFY"}))),
    ("recursive rootfs propagation", _example(("/linux/rootfsPropagation", "rprivate"))),
    ("device file mode 0o4666", _example(("/linux/devices/0/fileMode", 0o4666))),
]
