"""The shell's pure logic: the command registry (prefixes, typos, flags), folding of trace
lines, argument decoding from (our own) memory, and the cgroup reader on fake v1 and v2 trees."""
from __future__ import annotations

import ctypes
import os

import pytest

from ocish import commands, syscall_args
from ocish.inspect import Target
from ocish.inspect import cgroup as cgroupmod
from ocish.inspect.exit import evidence
from ocish.trace import Call, Event, Repeated, group
from runtime.errors import OcishError
from runtime.linux import seccomp as seccomp_lib


def test_resolve_names_aliases_prefixes_and_typos():
    assert commands.resolve("c").name == "continue"  # an alias beats prefixes
    assert commands.resolve("contin").name == "continue"
    assert commands.resolve("tb").name == "tbreak"
    with pytest.raises(OcishError, match="ambiguous command 'st': stages, start, state, step"):
        commands.resolve("st")
    with pytest.raises(OcishError, match="did you mean inspect"):
        commands.resolve("inspcet")
    with pytest.raises(OcishError, match="^unknown command 'zzz' \\(`help`"):
        commands.resolve("zzz")


def test_every_command_has_a_handler_examples_or_no_data():
    handlers = commands.Commands
    for c in commands.COMMANDS:
        assert hasattr(handlers, f"do_{c.name}"), c.name
        assert c.usage.startswith(c.name), c.name
    assert len(commands.ALIASES) == sum(1 + len(c.aliases) for c in commands.COMMANDS)  # unique


def test_parse_args_flags_json_and_errors():
    inspect = commands.BY_NAME["inspect"]
    a = commands.parse_args(inspect, ["ns", "--pid=12", "--json"])
    assert (a.pos, a.opts, a.json) == (["ns"], {"pid": "12"}, True)
    a = commands.parse_args(inspect, ["--pid", "3", "--", "--weird"])
    assert (a.pos, a.opts) == (["--weird"], {"pid": "3"})
    with pytest.raises(OcishError, match="--pid needs a value"):
        commands.parse_args(inspect, ["ns", "--pid"])
    with pytest.raises(OcishError, match="quit returns no data: --json does not apply"):
        commands.parse_args(commands.BY_NAME["quit"], ["--json"])
    with pytest.raises(OcishError, match="pause: unknown flag -x \\(it takes --json\\)"):
        commands.parse_args(commands.BY_NAME["pause"], ["-x"])
    assert commands.parse_args(commands.BY_NAME["kill"], ["-9"]).pos == ["-9"]  # a number
    a = commands.parse_exec(None, ["-d", "--json", "-e", "A=1", "--", "ls", "-l"])
    assert (a.pos, a.opts["detach"], a.opts["env"], a.json) == (["ls", "-l"], True, ["A=1"], True)
    # bundle returns what it did: --json, before init's `--` (after it, the command's own word)
    a = commands.parse_bundle(None, ["init", "/b", "--json", "--", "echo", "--json"])
    assert (a.opts["dir"], a.opts["args"], a.json) == ("/b", ["echo", "--json"], True)
    a = commands.parse_bundle(None, ["set", "/hostname", "web", "--json"])
    assert (a.opts["pointer"], a.opts["value"], a.json) == ("/hostname", "web", True)
    assert not commands.parse_bundle(None, ["unset", "/hostname"]).json


def test_pick_prefix_and_suggestion():
    assert commands.pick("mo", ("mounts", "ns"), "topic") == "mounts"
    with pytest.raises(OcishError, match="ambiguous topic 'c': cgroup, caps"):
        commands.pick("c", ("cgroup", "caps"), "topic")
    with pytest.raises(OcishError, match="did you mean mounts\\?"):
        commands.pick("mountz", ("mounts", "ns"), "topic")


def test_group_folds_alike_calls_without_losing_values():
    def call(*args, result="0", errno=""):
        return Call(7, "prctl", list(args), result, errno)
    eperm = "-1 EPERM (operation not permitted)"
    records = [call("PR_CAPBSET_DROP", "CAP_CHOWN"), call("PR_CAPBSET_DROP", "CAP_KILL"),
               Event(7, "fork", "child 8"),
               call("PR_CAP_AMBIENT", "RAISE", "CAP_KILL", result=eperm, errno="EPERM"),
               call("PR_CAP_AMBIENT", "RAISE", "CAP_SYS_ADMIN", result=eperm, errno="EPERM"),
               Call(7, "mount", ["a", "/x", "f1"], "0"), Call(7, "mount", ["a", "/y", "f2"], "0"),
               Call(7, "openat", ["AT_FDCWD", '"/a"', "O_RDONLY"], "-1 ENOENT", "ENOENT"),
               Call(7, "openat", ["AT_FDCWD", '"/b"', "O_WRONLY"], "-1 ENOENT", "ENOENT")]
    out = group(records)
    assert [r.text() for r in out] == [
        "prctl(PR_CAPBSET_DROP, {CAP_CHOWN, CAP_KILL}) = 0  (x2)",
        "--- fork child 8 ---",
        f"prctl(PR_CAP_AMBIENT, RAISE, {{CAP_KILL, CAP_SYS_ADMIN}}) = {eperm}  (x2)",
        'mount(a, /x, f1) = 0', 'mount(a, /y, f2) = 0',  # two arguments differ: kept apart
        'openat(AT_FDCWD, "/a", O_RDONLY) = -1 ENOENT  (x2, other arguments)']  # failures fold
    assert isinstance(out[0], Repeated) and out[0].values == ["CAP_CHOWN", "CAP_KILL"]


@pytest.mark.skipif(os.uname().machine != "x86_64" or not seccomp_lib.available(),
                    reason="x86_64 numbers, named by libseccomp")
def test_one_syscall_name_table_names_the_newest_calls():
    """trace, inspect seccomp and seccomp check name calls from one table: libseccomp's kernel
    names over python-ptrace's (which says `timerfd` and stops at 440)."""
    names = syscall_args.syscall_names()
    assert (names[0], names[283], names[442]) == ("read", "timerfd_create", "mount_setattr")


def test_decoders_read_structs_from_memory():
    mem = syscall_args.Memory(os.getpid())
    try:
        hdr = (ctypes.c_uint32 * 2)(0x20080522, 0)
        data = (ctypes.c_uint32 * 6)(1 << 5, 1 << 5 | 1 << 21, 0, 1, 0, 0)  # cap 32: high word
        assert syscall_args.decode("capset", [ctypes.addressof(hdr), ctypes.addressof(data)] +
                                   [0] * 4, mem) == [
            "{version=_LINUX_CAPABILITY_VERSION_3, pid=0}",
            "{effective=CAP_KILL|CAP_MAC_OVERRIDE, permitted=CAP_KILL|CAP_SYS_ADMIN, inheritable=0}"]
        assert syscall_args.decode("prctl", [24, 21, 0, 0, 0, 0], mem) == \
            ["PR_CAPBSET_DROP", "CAP_SYS_ADMIN"]
        assert syscall_args.decode("prctl", [47, 4, 0, 0, 0, 0], mem) == \
            ["PR_CAP_AMBIENT", "PR_CAP_AMBIENT_CLEAR_ALL"]
        assert syscall_args.decode("prctl", [1, 9, 0, 0, 0, 0], mem) == ["PR_SET_PDEATHSIG", "SIGKILL"]
        attr = (ctypes.c_uint64 * 4)(0x1 | 0x8, 0x2, 0x40000, 2**64 - 1)
        path = ctypes.create_string_buffer(b"/mnt")
        assert syscall_args.decode("mount_setattr", [2**64 - 100, ctypes.addressof(path), 0x8000,
                                                     ctypes.addressof(attr), 32, 0], mem) == [
            "AT_FDCWD", '"/mnt"', "AT_RECURSIVE",
            "{attr_set=MOUNT_ATTR_RDONLY|MOUNT_ATTR_NOEXEC, attr_clr=MOUNT_ATTR_NOSUID, "
            "propagation=MS_PRIVATE, userns_fd=-1}", "32"]
        prog = (ctypes.c_uint64 * 2)(7, 0x1000)
        assert syscall_args.decode("seccomp", [1, 1, ctypes.addressof(prog), 0, 0, 0], mem) == \
            ["SECCOMP_SET_MODE_FILTER", "SECCOMP_FILTER_FLAG_TSYNC", "{len=7, filter=0x1000}"]
        fd = os.open("/proc/self/ns/uts", os.O_RDONLY)
        try:
            assert syscall_args.decode("setns", [fd, 0x04000000, 0, 0, 0, 0], mem) == \
                [f"{fd}<{os.readlink('/proc/self/ns/uts')}>", "CLONE_NEWUTS"]
        finally:
            os.close(fd)
        assert syscall_args.decode("clone", [0x01200000 | 17] + [0] * 5, mem) == \
            ["CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD"]
        # a read-only open is not a state change; a write or a create is
        ro = ctypes.create_string_buffer(b"/proc/self/mountinfo")
        assert not syscall_args.interesting("openat", [0, ctypes.addressof(ro), os.O_RDONLY, 0, 0, 0], mem)
        assert syscall_args.interesting("openat", [0, ctypes.addressof(ro), os.O_WRONLY, 0, 0, 0], mem)
        # the new mount API makes a mount (the pivot stage's procfs handle): listed, decoded;
        # the mkdir -p of mount destinations (mostly EEXIST) only under `trace all`
        key, value = ctypes.create_string_buffer(b"subset"), ctypes.create_string_buffer(b"pid")
        args = [4, 1, ctypes.addressof(key), ctypes.addressof(value), 0, 0]
        assert syscall_args.interesting("fsconfig", args, mem)
        assert syscall_args.decode("fsconfig", args, mem) == \
            ["4", "FSCONFIG_SET_STRING", '"subset"', '"pid"', "0"]
        assert syscall_args.decode("fsconfig", [4, 6, 0, 0, 0, 0], mem) == \
            ["4", "FSCONFIG_CMD_CREATE", "NULL", "NULL", "0"]
        assert syscall_args.decode("fsmount", [4, 1, 0xE, 0, 0, 0], mem) == \
            ["4", "0x1", "MOUNT_ATTR_NOSUID|MOUNT_ATTR_NODEV|MOUNT_ATTR_NOEXEC"]
        assert not syscall_args.interesting("mkdir", [ctypes.addressof(ro), 0o755, 0, 0, 0, 0], mem)
        assert syscall_args.decode("mkdir", [ctypes.addressof(ro), 0o755, 0, 0, 0, 0], mem) == \
            ['"/proc/self/mountinfo"', "0755"]
    finally:
        mem.close()


def _tree(root, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")


def test_cgroup_reader_v1(tmp_path):
    _tree(tmp_path, {
        "memory/c/memory.limit_in_bytes": str(512 * 1024),
        "memory/c/memory.usage_in_bytes": str(500 * 1024),
        "memory/c/memory.max_usage_in_bytes": str(512 * 1024),
        "memory/c/memory.failcnt": "37",
        "memory/c/memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2",
        "pids/c/pids.max": "max", "pids/c/pids.current": "3", "pids/c/pids.events": "max 0",
        "cpu/c/cpu.shares": "512", "cpu/c/cpu.cfs_quota_us": "50000",
        "cpu/c/cpu.cfs_period_us": "100000", "freezer/c/freezer.state": "THAWED"})
    paths = {k: str(tmp_path / k / "c") for k in ("memory", "pids", "cpu", "freezer")}
    info = cgroupmod.read(Target(os.getpid(), cgroup_paths=paths,
                                 resources={"memory": {"limit": 512 * 1024}, "cpu": {"shares": 512}}))
    mem, pids = info.resources
    assert (mem.usage, mem.limit, mem.peak, mem.at_limit, mem.configured) == \
        (500 * 1024, 512 * 1024, 512 * 1024, True, True)
    assert mem.counters == {"failcnt": 37, "oom_kill": 2}
    assert (pids.usage, pids.limit, pids.at_limit, pids.configured) == (3, None, False, False)
    assert [(s.name, s.value, s.configured) for s in info.settings] == [
        ("cpu shares", "512", True), ("cpu quota", "50000 us per 100000 us (0.50 CPUs)", False),
        ("freezer", "THAWED", False)]
    cause, ptr = evidence(info, killed=True)
    assert cause == "the OOM killer: the cgroup's memory reached its limit (512.0 KiB); oom_kill counter 2"
    assert ptr == "/linux/resources/memory/limit" and evidence(info, killed=False) == ("", "")


def test_cgroup_reader_v2(tmp_path):
    _tree(tmp_path, {"c/memory.max": "max", "c/memory.current": str(3 << 20),
                     "c/memory.peak": str(4 << 20), "c/memory.events": "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1",
                     "c/pids.max": "4", "c/pids.current": "4", "c/pids.events": "max 2",
                     "c/cpu.max": "max 100000", "c/cpu.weight": "100", "c/cgroup.freeze": "1"})
    info = cgroupmod.read(Target(os.getpid(), cgroup_paths={"": str(tmp_path / "c")}))
    mem, pids = info.resources
    assert (mem.usage, mem.limit, mem.peak, mem.at_limit) == (3 << 20, None, 4 << 20, False)
    assert mem.counters == {"max": 5, "oom": 1, "oom_kill": 1}
    assert (pids.usage, pids.limit, pids.at_limit, pids.counters) == (4, 4, True, {"forks refused": 2})
    assert [(s.name, s.value) for s in info.settings] == [
        ("cpu weight", "100"), ("cpu quota", "no limit (period 100000 us)"), ("freezer", "frozen")]
    assert evidence(info, killed=False) == ("the pids limit (4) refused 2 fork(s)",
                                            "/linux/resources/pids/limit")
    assert cgroupmod.human_size(1536) == "1.5 KiB" and cgroupmod.human_size(1000) == "1000 B"


def test_global_flags_written_first_reach_the_shell_commands(monkeypatch):
    """The runtime's global flags before a debugger command: counted with their values, and
    --root handed to the commands that have one, ahead of their own (which win); attach's own
    --root is another runtime's state root, so the global one is the session's."""
    import ocish.__main__ as entry
    import ocish.shell
    assert entry._leading_globals(["--root", "/r", "--debug", "--log=/l", "attach", "web"]) == 4
    assert entry._leading_globals(["-root", "/r", "list"]) == 2
    assert entry._leading_globals(["debug", "--root", "/r"]) == 0
    seen = []
    monkeypatch.setattr(ocish.shell, "main", lambda argv, command, log, root: seen.append(
        (argv, command, log.debug_on, root)) or 0)
    assert entry.main(["--root", "/r", "--debug", "attach", "web"]) == 0
    assert entry.main(["--root=/r", "debug", "b", "--root", "/own"]) == 0
    assert seen == [(["web"], "attach", True, "/r"),
                    (["--root", "/r", "b", "--root", "/own"], "debug", False, None)]
