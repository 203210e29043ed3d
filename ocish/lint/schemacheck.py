"""The runtime-spec 1.2 JSON schema as a cross-check of the runtime's own validation.

`runtime/spec.py` is the validator (`create` runs it; `ocish lint` collects all it finds); this
module runs the official schema (ocish/lint/schema/, with `jsonschema`, draft 4) over the same
config.json. The two agree except where listed below, each with its reason: `STRICTER`, what
spec.py refuses and the schema accepts (the spec's prose says MUST where the schema is silent,
the kernel or runc cannot take the value), and `LOOSER`, what the schema refuses and spec.py
accepts (runc accepts it, or Linux never reads it). tests/lint/test_schema_agreement.py fails on
any other difference. jsonschema is imported here only: never on create's path.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator

SCHEMA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schema")
BASE = "https://opencontainers.org/runtime-spec/v1.2.1/schema/"

# (pointer pattern, fragment of spec.py's message, why spec.py refuses what the schema allows).
# A pattern's "*" is one reference token, a trailing "**" any number of them.
STRICTER: list[tuple[str, str, str]] = [
    ("/**", "nul byte", "strings reach C: a nul byte would cut them"),
    ("/**", "valid unicode", "a lone surrogate has no UTF-8 form to hand the kernel"),
    ("/ociVersion", "unsupported version", "the runtime speaks runtime-spec 1.x only"),
    ("/root", "missing", 'the spec\'s prose: "root ... REQUIRED" on Linux'),
    ("/root/path", "non-empty path", "an empty path names no rootfs"),
    ("/root/path", "rootfs", "the rootfs must exist and be a directory"),
    ("/process", "missing", "the runtime starts a process: the spec requires it for `start`"),
    ("/process/args", "must be a non-empty array", 'the spec\'s prose: "at least one entry is REQUIRED"'),
    ("/process/args", "missing", "the runtime starts a process: it needs the program"),
    ("/process/args/0", "program name", "args[0] names the program"),
    ("/process/cwd", "absolute path", 'the spec\'s prose: "This value MUST be an absolute path"'),
    ("/process/env/*", "KEY=value", 'environ(7) entries are "name=value" (runc refuses too)'),
    ("/process/user/*", "uids and gids must be in range 0-2147483647",
     "runc's id range: 4294967295 is (uid_t)-1, \"unchanged\" to setresuid(2)"),
    ("/process/user/additionalGids/*", "uids and gids must be in range 0-2147483647",
     "runc's id range"),
    ("/process/user/umask", "0o777", "umask(2) takes the permission bits only"),
    ("/process/user/*", "is not mapped by", "a process id must be mapped in its user namespace"),
    ("/process/user/additionalGids/*", "is not mapped by", "as runc: every gid must be mapped"),
    ("/process/consoleSize/*", "from 0 to 65535", "struct winsize holds 16-bit sizes"),
    ("/process/rlimits/*/type", "an RLIMIT_* name", "only the rlimits Linux has (runc refuses "
                                                     "others)"),
    ("/process/rlimits/*/type", "duplicate rlimit", "one value per rlimit"),
    ("/process/rlimits/*/soft", "must not exceed hard limit", "setrlimit(2) refuses it"),
    ("/process/oomScoreAdj", "from -1000 to 1000", "the kernel's oom_score_adj range"),
    ("/process/ioPriority/priority", "from 0 to 7", "ioprio_set(2)'s levels"),
    ("/process/scheduler/nice", "from -20 to 19", "setpriority(2)'s range"),
    ("/process/scheduler/policy", "SCHED_ISO is reserved", "Linux has no SCHED_ISO: EINVAL"),
    ("/process/scheduler/priority", "needs a priority from 1 to 99",
     "sched_setattr(2): realtime priorities are 1-99"),
    ("/process/scheduler/priority", "only be given for SCHED_FIFO or SCHED_RR",
     "sched_setattr(2): other policies take priority 0 (runc's rule)"),
    ("/process/scheduler", "only be given for SCHED_DEADLINE",
     "sched_setattr(2): only SCHED_DEADLINE takes runtime, deadline, period"),
    ("/process/scheduler/**", "policy SCHED_DEADLINE needs",
     "the kernel's __checkparam_dl: a deadline, runtime >= 1024 ns, runtime <= deadline <= "
     "period"),
    ("/process/capabilities/*/*", "capability", "runc refuses unknown capability names"),
    ("/process/execCPUAffinity/*", "cpu list", 'a cpu list ("0-2,4") as the kernel takes it'),
    ("/hostname", "at most 64 bytes", "HOST_NAME_MAX"),
    ("/hostname", "uts namespace", "runc: setting a hostname needs a private uts namespace"),
    ("/domainname", "uts namespace", "runc: as /hostname"),
    ("/domainname", "at most 64 bytes", "HOST_NAME_MAX"),
    ("/mounts/*/destination", "absolute path", "a relative destination is ambiguous (runc 1.1 "
                                                "guesses; the spec's prose asks for absolute)"),
    ("/mounts/*/destination", '".." components', "a destination never climbs out of the rootfs"),
    ("/mounts/*/source", "path to bind-mount", "a bind mount needs a source"),
    ("/mounts/*/*", "id-mapped", "the kernel maps bind mounts only, by both maps"),
    ("/mounts/*/*Mappings/**", "", "id maps as the kernel's uid_map takes them (see /linux)"),
    ("/mounts/*/options/*", "a bind mount takes no filesystem options", "a bind drops "
     "filesystem data unseen: runc 1.2 refuses it too"),
    ("/mounts/*/options/*", "tmpcopyup", "only a tmpfs copies up what it covers (runc, crun)"),
    ("/hooks/*/*/path", "absolute path", 'the spec\'s prose: "path MUST be absolute"'),
    ("/hooks/*/*/timeout", "positive number of seconds", "a timeout beyond int64 seconds"),
    ("/annotations/*", "must be a string", "the spec's prose: values MUST be strings (also "
                                            "under an empty key, which the schema skips)"),
    ("/linux/namespaces/*/type", "duplicate namespace", "one entry per namespace type"),
    ("/linux/namespaces/*/path", "absolute path", "the spec's prose: MUST be absolute"),
    ("/linux/namespaces/*", "needs a mount namespace", "runc fails it in its init: the "
                                                       "container's root may not mount in the "
                                                       "host's mount namespace"),
    ("/linux/namespaces/*/path", "does not exist", "the namespace to join must exist"),
    ("/linux/*Mappings", "user namespace", "runc: mappings need a user namespace and back"),
    ("/linux/*Mappings/*/*", "from 0 to 4294967294", "the kernel's uid_map: (uid_t)-1 is no id"),
    ("/linux/*Mappings/*/size", "from 1 to", "the kernel's uid_map refuses an empty range"),
    ("/linux/*Mappings/*/size", "goes past", "the kernel's uid_map: ids end at 4294967294"),
    ("/linux/*Mappings/*/*", "overlaps", "the kernel's uid_map refuses overlapping ranges"),
    ("/linux/*Mappings", "the kernel takes at most 340", "the kernel's uid_map: 340 lines"),
    ("/linux/*Mappings", "less than a page", "the kernel's uid_map: one write under a page"),
    ("/linux/sysctl/*", "sysctl", "runc: only namespaced sysctls, in namespaces the container "
                                  "owns"),
    ("/linux/resources/memory/*", "a number of bytes, or -1", "-1 is the only negative the kernel "
                                                         "takes"),
    ("/linux/resources/memory/limit", "at least 4194304", "the runtime's setup needs the memory"),
    ("/linux/resources/memory/swap", "memory+swap", "the kernel keeps memsw >= memory"),
    ("/linux/resources/memory/swappiness", "from 0 to 100", "the kernel's range"),
    ("/linux/resources/cpu/cpus", "cpu list", "cpuset.cpus' syntax"),
    ("/linux/resources/cpu/shares", "from 2 to 262144", "the kernel's cpu.shares range (runc "
                                                        "checks it)"),
    ("/linux/resources/cpu/mems", "cpu list", "cpuset.mems' syntax"),
    ("/linux/resources/cpu/period", "from 1000 to 1000000 microseconds",
     "the kernel's cfs period bounds (tg_set_cfs_bandwidth: 1 ms to 1 s)"),
    ("/linux/resources/cpu/quota", "or -1 for no limit",
     "the kernel's cfs quota bounds (tg_set_cfs_bandwidth: at least 1 ms, at most "
     "max_cfs_runtime)"),
    ("/linux/resources/blockIO/**", "from 10 to 1000", "the kernel's blkio weights"),
    ("/linux/resources/blockIO/*/*/rate", "missing", 'the spec\'s prose: "rate ... REQUIRED"'),
    ("/linux/resources/blockIO/*/*/*", "non-negative integer", "device numbers are not "
                                                               "negative"),
    ("/linux/resources/devices/*/type", "a\", \"b\", \"c", 'the spec\'s prose: "a", "c" or '
                                                           '"b"'),
    ("/linux/resources/devices/*/*", "or -1 for any", "-1 is the only negative (a wildcard)"),
    ("/linux/resources/devices/*/access", '"r", "w" and "m"', "the spec's prose: a "
                                                              "composition of r, w and m"),
    ("/linux/resources/network/priorities/*/name", "non-empty", "an interface has a name"),
    ("/linux/resources/unified/*", "cgroup file name", "a key names a cgroup file"),
    ("/linux/devices/*/path", "absolute path", "the spec's prose: path is in the container"),
    ("/linux/devices/*/path", '".." components', "a device never lands outside the rootfs"),
    ("/linux/devices/*/path", "not the rootfs itself", "a device node needs a name"),
    ("/linux/devices/*/*", "(a Linux device ", "device numbers are not negative and fit the "
     "kernel's dev_t: a 12-bit major, a 20-bit minor"),
    ("/linux/devices/*/*", "missing, expected the device", "the spec's prose: major and minor "
                                                           "are REQUIRED for c and b devices"),
    ("/linux/devices/*/*", "uids and gids must be in range", "runc's id range"),
    ("/linux/cgroupsPath", '".." components', "a cgroup path never climbs out"),
    ("/linux/maskedPaths/*", "absolute path", "paths in the container"),
    ("/linux/readonlyPaths/*", "absolute path", "paths in the container"),
    ("/linux/maskedPaths/*", '".." components', "paths in the container"),
    ("/linux/readonlyPaths/*", '".." components', "paths in the container"),
    ("/linux/maskedPaths", "mount namespace", "masking happens in the mount namespace"),
    ("/linux/readonlyPaths", "mount namespace", "as /linux/maskedPaths"),
    ("/linux/timeOffsets", "time namespace", "runc: offsets need a new time namespace"),
    ("/linux/timeOffsets/*", "unknown clock", "time_namespaces(7) has these two clocks"),
    ("/linux/timeOffsets/*/nanosecs", "999999999", "nanoseconds below one second"),
    ("/linux/personality/domain", "missing", 'the spec\'s prose: "domain ... REQUIRED"'),
    ("/linux/seccomp/**", "from 0 to 65535", "an errno is 16 bits in SECCOMP_RET_DATA"),
    ("/linux/seccomp/syscalls/*/args/*/index", "from 0 to 5", "a syscall has six arguments"),
    ("/linux/seccomp/defaultAction", "NOTIFY", "runc: no notify default action"),
    ("/linux/seccomp/listenerPath", "", "runc: notify rules need an absolute listener path"),
    ("/linux/seccomp/syscalls/*/names/*", "sendmsg", "the runtime needs sendmsg"),
]

# (pointer pattern, why spec.py accepts what the schema refuses)
LOOSER: list[tuple[str, str]] = [
    ("/solaris/**", "another platform's section: a Linux runtime does not read it"),
    ("/windows/**", "another platform's section: a Linux runtime does not read it"),
    ("/vm/**", "another platform's section: ocish starts no virtual machine"),
    ("/zos/**", "another platform's section: a Linux runtime does not read it"),
    ("/linux/rootfsPropagation", "runc also accepts the recursive forms rshared, rslave, "
                                 "rprivate and runbindable"),
    ("/linux/devices/*/fileMode", "the schema's maximum, 512, would refuse 0o777 with a set-id or "
                                  "sticky bit; containerd sends mode &^ S_IFMT (up to 0o7777)"),
]


@dataclass
class SchemaError:
    pointer: str
    message: str
    validator: str


def errors(doc) -> list[SchemaError]:
    """Every place where `doc` breaks the runtime-spec 1.2 config schema; the pointer of a
    missing required member names the member itself."""
    from runtime.spec import esc
    out = []
    for e in _validator().iter_errors(doc):
        for leaf in _leaves(e):
            ptr = "".join("/" + esc(str(p)) for p in leaf.absolute_path)
            if leaf.validator == "required":
                missing = next((r for r in leaf.validator_value
                                if leaf.message.startswith(repr(r) + " ")), "")
                ptr += "/" + esc(missing)
            out.append(SchemaError(ptr, leaf.message, str(leaf.validator)))
    return sorted(out, key=lambda s: s.pointer)


def _leaves(e):
    """anyOf and allOf errors carry the real ones in their context."""
    if e.context:
        for sub in e.context:
            yield from _leaves(sub)
    else:
        yield e


def related(a: str, b: str) -> bool:
    """Pointers about the same item: equal, or one inside the other."""
    return a == b or a.startswith(b + "/") or b.startswith(a + "/") or not a or not b


def matches(pattern: str, pointer: str) -> bool:
    pat, ptr = pattern.split("/")[1:], pointer.split("/")[1:]
    for i, token in enumerate(pat):
        if token == "**":
            return True
        if i >= len(ptr) or not _token(token, ptr[i]):
            return False
    return len(pat) == len(ptr)


def _token(pattern: str, token: str) -> bool:
    if "*" not in pattern:
        return pattern == token
    head, _, tail = pattern.partition("*")
    return token.startswith(head) and token.endswith(tail) and len(token) >= len(head + tail)


def looser(pointer: str) -> str:
    """Why spec.py accepts a value the schema refuses at `pointer`, or ""."""
    return next((why for pat, why in LOOSER if matches(pat, pointer)), "")


def known_members(doc) -> Iterator[tuple[str, str, list[str]]]:
    """(pointer of an object, a member the schema does not define there, the ones it does) for
    the objects whose members the schema lists (not maps such as /annotations)."""
    root = schemas()["config-schema.json"]
    nodes: dict[str, list[dict]] = {}
    for ptr, _, node, value in walk(doc, root, "config-schema.json"):
        if isinstance(value, dict):
            nodes.setdefault(ptr, []).append(node)
    for ptr, branches in nodes.items():
        if any("patternProperties" in n or "additionalProperties" in n for n in branches):
            continue
        known = sorted({k for n in branches for k in n.get("properties", {})})
        if not known:
            continue
        value = resolve(doc, ptr)
        for key in value:
            if key not in known:
                yield ptr, key, known


def resolve(doc, ptr: str):
    for token in ptr.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        doc = doc[int(token)] if isinstance(doc, list) else doc[token]
    return doc


# -- the schema files, walked next to a document ------------------------------------------------

@lru_cache(maxsize=1)
def schemas() -> dict[str, dict]:
    """The schema files by name."""
    out = {}
    for name in os.listdir(SCHEMA_DIR):
        if name.endswith(".json"):
            with open(os.path.join(SCHEMA_DIR, name)) as f:
                out[name] = json.load(f)
    return out


def _deref(node: dict, file: str) -> tuple[dict, str]:
    while "$ref" in node:  # draft 4: members next to $ref are ignored
        target, _, frag = node["$ref"].partition("#")
        file = target or file
        node = schemas()[file]
        for part in [p for p in frag.split("/") if p]:
            node = node[part]
    return node, file


def branches(node: dict, file: str) -> Iterator[tuple[dict, str]]:
    """A schema node with its $ref followed, then its allOf and anyOf parts, each so."""
    node, file = _deref(node, file)
    yield node, file
    for key in ("allOf", "anyOf"):
        for sub in node.get(key, []):
            yield from branches(sub, file)


def _children(node: dict, file: str, key: str) -> list[tuple[dict, str, str]]:
    """(schema, its file, its path token) of member `key` of an object described by `node`:
    the member's name, or "?" for a map's key."""
    out = []
    if key in node.get("properties", {}):
        out.append((node["properties"][key], file, key))
    for pattern, sub in node.get("patternProperties", {}).items():
        if re.search(pattern, key):
            out.append((sub, file, "?"))
    if not out and isinstance(node.get("additionalProperties"), dict):
        out.append((node["additionalProperties"], file, "?"))
    return out


def walk(value, node: dict, file: str, ptr: str = "",
         spath: str = "") -> Iterator[tuple[str, str, dict, object]]:
    """(pointer, schema path, schema node, value) for every value of `value` the schema
    describes; schema paths name arrays' items "*" and maps' keys "?"."""
    from runtime.spec import esc
    for n, f in branches(node, file):
        yield ptr, spath, n, value
        if isinstance(value, dict):
            for k, v in value.items():
                for sub, sf, token in _children(n, f, k):
                    yield from walk(v, sub, sf, f"{ptr}/{esc(k)}", f"{spath}/{token}")
        elif isinstance(value, list) and isinstance(n.get("items"), dict):
            for i, v in enumerate(value):
                yield from walk(v, n["items"], f, f"{ptr}/{i}", f"{spath}/*")


@lru_cache(maxsize=1)
def _validator():
    from jsonschema import Draft4Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4
    registry = Registry().with_resources(
        (BASE + name, Resource.from_contents(doc, default_specification=DRAFT4))
        for name, doc in schemas().items())
    return Draft4Validator({"$ref": BASE + "config-schema.json"}, registry=registry)
