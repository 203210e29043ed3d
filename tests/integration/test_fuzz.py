"""Property-based fuzzing of `create` (hypothesis): mutated configs through the real runtime.

Each example starts from the working default bundle config and applies a few structure-aware
mutations: drop a field, duplicate an array item, retype a value, put huge, negative or
fractional numbers or odd strings (newlines, control characters, nul, lone surrogates, very
long) where numbers and strings go, insert known fields of the OCI spec with such values
(rlimits, devices, resources, hooks, mounts, time offsets, id mappings, seccomp...), and
sometimes truncate the JSON text or break its encoding. Then `ocish create` runs as a
subprocess with a private --root, and after each example:

- exit status 0 or 1, stderr one `ocish: ` line on failure (empty on success), never a
  traceback or an "internal error";
- a created container is deleted with `delete -f`;
- nothing is left behind: no state dir, no cgroup (every hierarchy, under the test's own
  parents), no new mount in our mount namespace, no process.

OCISH_FUZZ_EXAMPLES sets the number of examples (default 100: about half a minute here); with
OCISH_FUZZ_SEED a run is reproducible, otherwise CI runs the same derandomized examples each
time. The generated values never name host paths that a container could change: bind sources,
hook programs and namespace paths come from small safe pools.
"""
from __future__ import annotations

import copy
import glob
import json
import os
import shutil
import subprocess
import uuid

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from tests.conftest import children, cid, needs_root, reap_orphans, run_ocish

pytestmark = needs_root

EXAMPLES = int(os.environ.get("OCISH_FUZZ_EXAMPLES", "100"))
SEED = os.environ.get("OCISH_FUZZ_SEED")
TOKEN = uuid.uuid4().hex[:8]
PARENT = f"ocish-fuzz-{TOKEN}"  # every cgroup the fuzzer asks for is below it

NUMBERS = [0, 1, -1, 7, 255, 1000, -1000, 4095, 4096, 2**20 - 1, 2**20, 2**31 - 1, 2**31,
           -2**31, 2**32 - 1, 2**32, 2**53, 2**63 - 1, 2**63, -2**63, -2**63 - 1, 2**64 - 1,
           2**64, 10**30, -10**30, 0.5, -0.0, 1e308, 1e-300, 3.0]
ODD_STRINGS = ["", " ", "\n", "a\nb", "line1\r\nline2", "\t", "\x00", "a\x00b", "\x1b[31mred",
               "\x7f", "\u202eevil", "é", "\ud800", "\udfff", "x" * 300, "/", "//", "/..",
               "../x", "-1", "0x10", "1e3", "null", "true", "[]", "{}", "RLIMIT_NOFILE",
               "CAP_SYS_ADMIN", "CAP_NOPE", "/nonexistent/fuzz", "relative/path", "tmpfs",
               "bind", "rbind", "ro", "nosuid", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "a:b:c",
               "%s%n", "${HOME}", "'\"`", "\\", "\u0085", "\u2028"]
SAFE_SOURCES = ["/nonexistent/fuzz", "relative/path", "proc", "tmpfs", "", "/dev/null"]
SAFE_PROGRAMS = ["/bin/true", "/bin/false", "/nonexistent/fuzz", "relative", "/dev/null", ""]
RLIMITS = ["RLIMIT_NOFILE", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_NPROC",
           "RLIMIT_STACK", "RLIMIT_RTTIME", "RLIMIT_MSGQUEUE", "RLIMIT_BOGUS"]

numbers = st.one_of(st.sampled_from(NUMBERS), st.integers(), st.integers(-10, 70000),
                    st.floats(allow_nan=False, allow_infinity=False))
odd = st.one_of(st.sampled_from(ODD_STRINGS), st.text(max_size=12))
scalars = st.one_of(st.none(), st.booleans(), numbers, odd)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(odd, inner, max_size=3)), max_leaves=6)
paths_in = st.one_of(st.sampled_from(["/mnt", "/dev/fuzz", "/proc/fuzz", "/tmp/x", "/etc/hosts",
                                      "/a/b/c", "/dev/null", "/dev/pts/ptmx"]), odd)
num_or_any = st.one_of(numbers, numbers, scalars)


def _rlimit():
    return st.fixed_dictionaries({"type": st.one_of(st.sampled_from(RLIMITS), odd),
                                  "soft": num_or_any, "hard": num_or_any})


def _device():
    return st.fixed_dictionaries({"path": paths_in, "type": st.sampled_from(["c", "b", "u", "p", "x"]),
                                  "major": num_or_any, "minor": num_or_any},
                                 optional={"fileMode": num_or_any, "uid": num_or_any,
                                           "gid": num_or_any})


def _hook():
    return st.fixed_dictionaries({"path": st.sampled_from(SAFE_PROGRAMS)},
                                 optional={"args": st.lists(odd, max_size=3),
                                           "env": st.lists(odd, max_size=2),
                                           "timeout": num_or_any})


def _mount():
    return st.fixed_dictionaries(
        {"destination": paths_in},
        optional={"type": st.sampled_from(["tmpfs", "proc", "bind", "nosuchfs", "sysfs", "mqueue"]),
                  "source": st.sampled_from(SAFE_SOURCES),
                  "options": st.lists(st.sampled_from(
                      ["ro", "rw", "bind", "rbind", "nosuid", "size=1k", "mode=0777", "rprivate",
                       "idmap", "bogus", "strictatime", "uid=4294967295", "nr_inodes=99999999999999999999"]),
                      max_size=4)})


def _idmap():
    return st.lists(st.fixed_dictionaries({"containerID": num_or_any, "hostID": num_or_any,
                                           "size": num_or_any}), min_size=1, max_size=2)


def _throttle():
    return st.lists(st.fixed_dictionaries({"major": num_or_any, "minor": num_or_any,
                                           "rate": num_or_any}), max_size=2)


def _extreme(lo: int, hi: int):
    """Integers in [lo, hi], mostly at and around the edges: valid, so they reach the stages."""
    edges = sorted({v for e in (lo, hi, 0, 1, 2**31 - 1, 2**32 - 1, 2**63 - 1)
                    for v in (e - 1, e, e + 1) if lo <= v <= hi})
    return st.one_of(st.sampled_from(edges), st.integers(lo, hi))


def _valid_rlimit():
    return st.tuples(st.sampled_from(RLIMITS[:-1]), _extreme(0, 2**64 - 1),
                     _extreme(0, 2**64 - 1)).map(
        lambda t: {"type": t[0], "soft": min(t[1], t[2]), "hard": max(t[1], t[2])})


# (JSON pointer tokens, strategy): fields of the OCI spec with valid extremes, which pass
# validation and so reach the stages and their syscalls
VALID = [
    (["process", "rlimits"], st.lists(_valid_rlimit(), max_size=3, unique_by=lambda r: r["type"])),
    (["hooks", "createRuntime"], st.lists(st.fixed_dictionaries(
        {"path": st.just("/bin/true"), "timeout": _extreme(1, 2**63 - 1)}), max_size=1)),
    (["linux", "devices", "-"], st.fixed_dictionaries(
        {"path": st.sampled_from(["/dev/fz0", "/dev/fz1"]), "type": st.sampled_from("cbup"),
         "major": _extreme(0, 4095), "minor": _extreme(0, 2**20 - 1)},
        optional={"fileMode": _extreme(0, 2**32 - 1), "uid": _extreme(0, 2**32 - 1),
                  "gid": _extreme(0, 2**32 - 1)})),
    (["linux", "resources", "memory"], st.fixed_dictionaries({}, optional={
        k: _extreme(-1, 2**63 - 1) for k in ("limit", "reservation", "swap")})),
    (["linux", "resources", "cpu"], st.fixed_dictionaries({}, optional={
        "shares": _extreme(0, 2**64 - 1), "quota": _extreme(-2**63, 2**63 - 1),
        "period": _extreme(0, 2**64 - 1), "burst": _extreme(0, 2**64 - 1)})),
    (["linux", "resources", "pids"], st.fixed_dictionaries({"limit": _extreme(-2**63, 2**63 - 1)})),
    (["process", "oomScoreAdj"], _extreme(-1000, 1000)),
    (["process", "scheduler"], st.fixed_dictionaries(
        {"policy": st.sampled_from(["SCHED_OTHER", "SCHED_BATCH", "SCHED_DEADLINE", "SCHED_FIFO"])},
        optional={"nice": _extreme(-20, 19), "priority": _extreme(-2**31, 2**31 - 1),
                  "runtime": _extreme(0, 2**64 - 1), "deadline": _extreme(0, 2**64 - 1),
                  "period": _extreme(0, 2**64 - 1)})),
    (["linux", "seccomp"], st.fixed_dictionaries(
        {"defaultAction": st.just("SCMP_ACT_ALLOW"),
         "syscalls": st.lists(st.fixed_dictionaries(
             {"names": st.just(["getppid"]), "action": st.just("SCMP_ACT_ERRNO"),
              "errnoRet": _extreme(0, 2**32 - 1),
              "args": st.lists(st.fixed_dictionaries(
                  {"index": _extreme(0, 5), "value": _extreme(0, 2**64 - 1),
                   "valueTwo": _extreme(0, 2**64 - 1),
                   "op": st.sampled_from(["SCMP_CMP_EQ", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_GT"])}),
                  max_size=2)}), max_size=2)})),
]
# ... and with awkward values, valid or not
KNOWN = VALID + [
    (["process", "rlimits"], st.lists(_rlimit(), max_size=3)),
    (["process", "user"], st.fixed_dictionaries({}, optional={
        "uid": num_or_any, "gid": num_or_any, "umask": num_or_any,
        "additionalGids": st.lists(num_or_any, max_size=3)})),
    (["process", "oomScoreAdj"], num_or_any),
    (["process", "consoleSize"], st.fixed_dictionaries({"height": num_or_any, "width": num_or_any})),
    (["process", "env"], st.lists(st.one_of(odd, st.just("A=b"), st.just("PATH=/bin")), max_size=3)),
    (["process", "args"], st.lists(st.one_of(st.just("true"), odd), min_size=0, max_size=3)),
    (["process", "cwd"], paths_in),
    (["process", "ioPriority"], st.fixed_dictionaries({"class": st.one_of(st.sampled_from(
        ["IOPRIO_CLASS_RT", "IOPRIO_CLASS_BE", "IOPRIO_CLASS_IDLE"]), odd)},
        optional={"priority": num_or_any})),
    (["process", "scheduler"], st.fixed_dictionaries({"policy": st.one_of(st.sampled_from(
        ["SCHED_OTHER", "SCHED_BATCH", "SCHED_IDLE", "SCHED_FIFO", "SCHED_DEADLINE"]), odd)},
        optional={"nice": num_or_any, "priority": num_or_any, "runtime": num_or_any,
                  "deadline": num_or_any, "period": num_or_any,
                  "flags": st.lists(odd, max_size=2)})),
    (["process", "capabilities", "bounding"], st.lists(st.one_of(st.sampled_from(
        ["CAP_KILL", "CAP_CHOWN", "CAP_NOPE", "CAP_SYS_ADMIN"]), odd), max_size=3)),
    (["process", "capabilities", "ambient"], st.lists(odd, max_size=2)),
    (["process", "apparmorProfile"], odd),
    (["process", "selinuxLabel"], odd),
    (["process", "execCPUAffinity"], st.fixed_dictionaries({}, optional={"initial": odd,
                                                                         "final": odd})),
    (["hostname"], odd),
    (["domainname"], odd),
    (["annotations"], st.dictionaries(odd, st.one_of(odd, scalars), max_size=3)),
    (["mounts", "-"], _mount()),
    (["hooks", "prestart"], st.lists(_hook(), max_size=2)),
    (["hooks", "createRuntime"], st.lists(_hook(), max_size=2)),
    (["hooks", "createContainer"], st.lists(_hook(), max_size=2)),
    (["hooks", "startContainer"], st.lists(_hook(), max_size=2)),
    (["hooks", "poststop"], st.lists(_hook(), max_size=2)),
    (["linux", "devices", "-"], _device()),
    (["linux", "resources", "devices", "-"], st.fixed_dictionaries(
        {"allow": st.one_of(st.booleans(), scalars)},
        optional={"type": st.sampled_from(["a", "b", "c", "x"]), "major": num_or_any,
                  "minor": num_or_any, "access": st.sampled_from(["rwm", "r", "", "rrw", "q"])})),
    (["linux", "resources", "memory"], st.fixed_dictionaries({}, optional={
        k: num_or_any for k in ("limit", "reservation", "swap", "kernel", "kernelTCP",
                                "swappiness")})),
    (["linux", "resources", "cpu"], st.fixed_dictionaries({}, optional={
        **{k: num_or_any for k in ("shares", "quota", "period", "realtimeRuntime",
                                   "realtimePeriod", "burst", "idle")},
        "cpus": st.one_of(st.sampled_from(["0", "0-1", "1,0", "9999", "0-"]), odd),
        "mems": st.one_of(st.just("0"), odd)})),
    (["linux", "resources", "pids"], st.fixed_dictionaries({"limit": num_or_any})),
    (["linux", "resources", "blockIO"], st.fixed_dictionaries({}, optional={
        "weight": num_or_any, "leafWeight": num_or_any,
        "weightDevice": st.lists(st.fixed_dictionaries({"major": num_or_any, "minor": num_or_any,
                                                        "weight": num_or_any}), max_size=2),
        "throttleReadBpsDevice": _throttle(), "throttleWriteIOPSDevice": _throttle()})),
    (["linux", "resources", "hugepageLimits"], st.lists(st.fixed_dictionaries(
        {"pageSize": st.one_of(st.sampled_from(["2MB", "1GB", "64KB", "3MB"]), odd),
         "limit": num_or_any}), max_size=2)),
    (["linux", "resources", "network"], st.fixed_dictionaries({}, optional={
        "classID": num_or_any, "priorities": st.lists(st.fixed_dictionaries(
            {"name": odd, "priority": num_or_any}), max_size=2)})),
    (["linux", "resources", "rdma"], st.dictionaries(odd, st.fixed_dictionaries(
        {}, optional={"hcaHandles": num_or_any, "hcaObjects": num_or_any}), max_size=2)),
    (["linux", "resources", "unified"], st.dictionaries(
        st.sampled_from(["memory.max", "pids.max", "fuzz.knob", "nodot", "a/b.c", ".x"]), odd,
        max_size=2)),
    (["linux", "sysctl"], st.dictionaries(st.sampled_from(
        ["net.ipv4.ip_forward", "net.core.somaxconn", "kernel.shm_rmid_forced", "kernel.domainname",
         "net.ipv4.no_such_knob", "vm.swappiness", "kernel.hostname", ""]), odd, max_size=2)),
    (["linux", "timeOffsets"], st.dictionaries(st.sampled_from(["monotonic", "boottime", "realtime"]),
                                               st.fixed_dictionaries({}, optional={
                                                   "secs": num_or_any, "nanosecs": num_or_any}),
                                               max_size=2)),
    (["linux", "namespaces", "-"], st.fixed_dictionaries(
        {"type": st.one_of(st.sampled_from(["user", "time", "cgroup", "pid", "bogus"]), odd)},
        optional={"path": st.sampled_from(["/nonexistent/ns", "relative/ns", ""])})),
    (["linux", "uidMappings"], _idmap()),
    (["linux", "gidMappings"], _idmap()),
    (["linux", "maskedPaths"], st.lists(paths_in, max_size=2)),
    (["linux", "readonlyPaths"], st.lists(paths_in, max_size=2)),
    (["linux", "rootfsPropagation"], st.one_of(st.sampled_from(["private", "rslave", "shared"]), odd)),
    (["linux", "mountLabel"], odd),
    (["linux", "personality"], st.fixed_dictionaries({"domain": st.one_of(st.sampled_from(
        ["LINUX", "LINUX32"]), odd)}, optional={"flags": st.lists(odd, max_size=2)})),
    (["linux", "seccomp"], st.fixed_dictionaries(
        {"defaultAction": st.one_of(st.sampled_from(["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO"]), odd)},
        optional={"defaultErrnoRet": num_or_any,
                  "architectures": st.lists(st.one_of(st.just("SCMP_ARCH_X86_64"), odd), max_size=2),
                  "syscalls": st.lists(st.fixed_dictionaries(
                      {"names": st.lists(st.one_of(st.sampled_from(["getpid", "nosuch"]), odd),
                                         max_size=2),
                       "action": st.one_of(st.sampled_from(["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO",
                                                            "SCMP_ACT_LOG"]), odd)},
                      optional={"errnoRet": num_or_any, "args": st.lists(st.fixed_dictionaries(
                          {"index": num_or_any, "value": num_or_any,
                           "op": st.one_of(st.sampled_from(["SCMP_CMP_EQ", "SCMP_CMP_MASKED_EQ"]),
                                           odd)},
                          optional={"valueTwo": num_or_any}), max_size=2)}), max_size=2)})),
    (["linux", "cgroupsPath"], st.sampled_from(
        [f"/{PARENT}/x", f"/{PARENT}/a/b", f"{PARENT}:ocish:x", f"/{PARENT}/../x", "", "/",
         f"/{PARENT}/\n"])),
    (["root", "path"], st.sampled_from(["rootfs", "nonexistent", "", "config.json", "rootfs/"])),
    (["ociVersion"], st.one_of(st.sampled_from(["1.0.0", "1.2.0", "2.0.0", "1"]), odd)),
]


def _nodes(tree, path=()):
    """Every (path, value) below the root, for mutations that pick an existing node."""
    out = []
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for k, v in items:
        out.append((path + (k,), v))
        out += _nodes(v, path + (k,))
    return out


def _parent(tree, path):
    for k in path[:-1]:
        tree = tree[k]
    return tree


def _insert(tree, tokens, value) -> None:
    node = tree
    for i, k in enumerate(tokens[:-1]):
        if not isinstance(node, dict):
            return
        nxt = tokens[i + 1]
        if not isinstance(node.get(k), list if nxt == "-" else dict):
            node[k] = [] if nxt == "-" else {}
        node = node[k]
    last = tokens[-1]
    if last == "-" and isinstance(node, list):
        node.append(value)
    elif isinstance(node, dict):
        node[last] = value


def _mutate(data, tree, extreme: bool) -> None:
    kind = "valid" if extreme else data.draw(st.sampled_from(
        ["drop", "duplicate", "retype", "number", "string", "insert", "insert", "insert"]))
    if kind in ("insert", "valid"):
        tokens, strategy = data.draw(st.sampled_from(VALID if extreme else KNOWN))
        _insert(tree, tokens, data.draw(strategy))
        return
    nodes = [(p, v) for p, v in _nodes(tree) if p[:2] != ("linux", "cgroupsPath")]
    if kind == "duplicate":
        nodes = [(p, v) for p, v in nodes if isinstance(v, list) and v]
    elif kind == "number":
        nodes = [(p, v) for p, v in nodes if type(v) in (int, float)] or nodes
    elif kind == "string":
        nodes = [(p, v) for p, v in nodes if type(v) is str and p[:2] != ("root", "path")] or nodes
    if not nodes:
        return
    path, value = data.draw(st.sampled_from(nodes))
    parent = _parent(tree, path)
    if kind == "drop":
        del parent[path[-1]]
    elif kind == "duplicate":
        value.insert(data.draw(st.integers(0, len(value))), copy.deepcopy(
            value[data.draw(st.integers(0, len(value) - 1))]))
    elif kind == "retype":
        parent[path[-1]] = data.draw(values)
    elif kind == "number":
        parent[path[-1]] = data.draw(numbers)
    elif path[:2] != ("root", "path"):
        parent[path[-1]] = data.draw(odd)


def _text(data, tree) -> bytes:
    text = json.dumps(tree, ensure_ascii=data.draw(st.booleans()))
    raw = text.encode("utf-8", "surrogatepass")
    how = data.draw(st.sampled_from(["whole"] * 8 + ["truncate", "bad utf-8", "bom", "nul"]))
    if how == "truncate":
        raw = raw[:data.draw(st.integers(0, max(0, len(raw) - 1)))]
    elif how == "bad utf-8":
        at = data.draw(st.integers(0, len(raw)))
        raw = raw[:at] + b"\xff\xfe" + raw[at:]
    elif how == "bom":
        raw = b"\xef\xbb\xbf" + raw
    elif how == "nul":
        raw += b"\x00"
    return raw


# -- what must hold after each example ----------------------------------------------------------

def _hierarchies() -> list[str]:
    return [d for d in glob.glob("/sys/fs/cgroup/*") if os.path.isdir(d) and not os.path.islink(d)
            and os.path.exists(f"{d}/cgroup.procs")]


def _cgroups_left(c: str) -> list[str]:
    """Cgroup dirs of this example: under the fuzz parent, or the default /ocish/<id>."""
    left = []
    for h in _hierarchies():
        left += [p for p in (f"{h}/{PARENT}", f"{h}/ocish/{c}") if os.path.exists(p)]
    return left


def _mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return f.read().splitlines()


@pytest.fixture(scope="module")
def fuzz_env(tmp_path_factory, rootfs_template):
    d = tmp_path_factory.mktemp("fuzz")
    bundle = d / "bundle"
    bundle.mkdir()
    subprocess.run(["cp", "-a", str(rootfs_template / "rootfs"), str(bundle / "rootfs")], check=True)
    base = json.loads((rootfs_template / "config.json").read_text())
    base["process"]["args"] = ["true"]
    base["process"]["terminal"] = False
    base["linux"]["cgroupsPath"] = f"/{PARENT}/x"
    root = f"/run/ocish-fuzz-{TOKEN}"
    stats = dict.fromkeys(["examples", "created", "refused", "tracebacks", "bad exit statuses",
                           "multi-line errors", "leaks"], 0)
    stats["where"] = {}  # refused by: "validation" or "stage <name>"
    stats["first"] = None  # the first problem found, as it was seen
    yield bundle, base, root, stats
    print("\nfuzz: " + ", ".join(f"{k} {v}" for k, v in stats.items() if k != "first"))
    if stats["first"]:
        print(f"first problem: {stats['first']!r:.3000}")
    for c in os.listdir(root) if os.path.isdir(root) else ():
        run_ocish("delete", "-f", c, root=root)
    shutil.rmtree(root, ignore_errors=True)
    reap_orphans()


def _problem(stats: dict, kind: str, ok: bool, *details) -> None:
    if not ok:
        stats[kind] += 1
        stats["first"] = stats["first"] or (kind, *details)
        raise AssertionError(kind, *details)


def _sweep(root: str) -> None:
    """After a failed example: remove what it left, so that the next ones are judged alone."""
    for c in os.listdir(root) if os.path.isdir(root) else ():
        run_ocish("delete", "-f", c, root=root)
    for h in _hierarchies():
        for d in sorted(glob.glob(f"{h}/{PARENT}/**/", recursive=True), reverse=True):
            try:
                os.rmdir(d)
            except OSError:
                pass
    reap_orphans()


def _check(bundle, raw: bytes, root: str, stats: dict) -> None:
    try:
        _example(bundle, raw, root, stats)
    except AssertionError:
        _sweep(root)
        raise


def _example(bundle, raw: bytes, root: str, stats: dict) -> None:
    (bundle / "config.json").write_bytes(raw)
    c = cid()
    kids, mounts = children(), _mounts()
    p = run_ocish("create", "-b", str(bundle), c, root=root, timeout=60)
    stats["examples"] += 1
    shown = raw[:300]
    _problem(stats, "tracebacks", "Traceback" not in p.stderr and "internal error" not in p.stderr,
             p.stderr, shown)
    _problem(stats, "bad exit statuses", p.returncode in (0, 1), p.returncode, p.stderr, shown)
    if p.returncode == 1:
        stats["refused"] += 1
        where = p.stderr.split(":")[2].strip() if p.stderr.startswith("ocish: create failed:") \
            else "validation"
        stats["where"][where] = stats["where"].get(where, 0) + 1
        lines = p.stderr.split("\n")
        _problem(stats, "multi-line errors", len(lines) == 2 and lines[1] == ""
                 and lines[0].startswith("ocish: "), p.stderr, shown)
    else:
        stats["created"] += 1
        _problem(stats, "multi-line errors", p.stderr == "", p.stderr, shown)
        d = run_ocish("delete", "-f", c, root=root)
        _problem(stats, "leaks", d.returncode == 0, "delete -f failed", d.stderr, shown)
        _problem(stats, "tracebacks", all(ln.startswith("ocish: warning: poststop hook ")
                                          for ln in d.stderr.splitlines()), d.stderr, shown)
    reap_orphans()
    _problem(stats, "leaks", not os.path.exists(os.path.join(root, c)), "state dir", p.returncode,
             p.stderr, shown)
    _problem(stats, "leaks", _cgroups_left(c) == [], "cgroups", _cgroups_left(c), shown)
    _problem(stats, "leaks", _mounts() == mounts, "mounts", shown)
    _problem(stats, "leaks", children() <= kids, "processes", children() - kids, shown)


_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                     derandomize=SEED is None, phases=[Phase.explicit, Phase.generate, Phase.shrink],
                     suppress_health_check=list(HealthCheck))


def _seeded(f):
    return seed(int(SEED))(f) if SEED is not None else f


@_seeded
@_SETTINGS
@given(data=st.data())
def test_fuzz_create(fuzz_env, data):
    bundle, base, root, stats = fuzz_env
    tree = copy.deepcopy(base)
    extreme = data.draw(st.booleans())  # only valid extremes: far into the stages
    for _ in range(data.draw(st.integers(1, 4))):
        _mutate(data, tree, extreme)
    raw = json.dumps(tree).encode("utf-8", "surrogatepass") if extreme else _text(data, tree)
    _check(bundle, raw, root, stats)
