"""The setup stages, run one item at a time against the recording syscall fake.

Each test builds a Context from runc's default spec (runtime.defaults) with a rootfs in tmp_path,
calls a stage's run(ctx, item) directly and asserts the exact syscalls it made, compared by name
(`fake.named()` shows MS_BIND|MS_REC rather than 20480). Nothing here needs privileges: the only
real side effects are directories, empty files and symlinks inside tmp_path, and chdir (restored).
"""
from __future__ import annotations

import errno
import os
import resource
import stat
import sys

import pytest

from runtime import cgroups, sync
from runtime.defaults import default_spec
from runtime.engine import HOST, CONTAINER, Context
from runtime.errors import StageError
from runtime.linux import procfs
from runtime.linux import syscalls as S
from runtime.linux.fake import RecordingSyscalls, flag_names, named_calls
from runtime.linux.procfs import MountEntry
from runtime.stages import pipeline
from runtime.stages.cgroup import Cgroup, Limits, device_rules
from runtime.stages.exec import DEFAULT_PATH, Exec, env_path, look_path
from runtime.stages.idmap import Idmap
from runtime.stages.mounts import DEFAULT_DEVICES, DEV_LINKS, READONLY_LATER, Mounts
from runtime.stages.paths import Paths
from runtime.stages.pivot import Pivot
from runtime.stages import process as process_stage
from runtime.stages.process import Process, User, stdio_to_chown
from runtime.stages.unshare import Unshare

EPERM, ENOENT, EINVAL = errno.EPERM, errno.ENOENT, errno.EINVAL
RO_BIND = S.MS_BIND | S.MS_REMOUNT | S.MS_RDONLY
LOCKED = S.MS_NOSUID | S.MS_NODEV | S.MS_NOEXEC


# --- fixtures --------------------------------------------------------------------------------------

@pytest.fixture
def rootfs(tmp_path):
    root = tmp_path / "rootfs"
    for d in ("proc", "dev", "sys", "tmp", "etc"):
        (root / d).mkdir(parents=True)
    return root


@pytest.fixture
def make_ctx(tmp_path, rootfs):
    """make_ctx(spec=None, **context_fields) -> Context whose ctx.sys is a RecordingSyscalls."""
    def make(spec: dict | None = None, pid: int = 0, **kw) -> Context:
        kw.setdefault("sys", RecordingSyscalls(root=tmp_path))
        ctx = Context("t1", str(tmp_path), spec if spec is not None else default_spec(),
                      str(rootfs), str(tmp_path / "state"), **kw)
        ctx.pid = pid  # set by the engine, not a constructor argument
        return ctx
    return make


@pytest.fixture
def ctx(make_ctx):
    return make_ctx()


@pytest.fixture(autouse=True)
def no_stdio(monkeypatch):
    """Stage `user` looks at no fds: pytest's own stdio differs between capture modes. Tests
    of the stdio hand-over give it fds of their own."""
    monkeypatch.setattr(process_stage, "STDIO", ())


def mount(source, target, fstype, flags, data=None):
    return ("mount", source, target, fstype, flags, data)


def assert_calls(ctx: Context, expected: list[tuple]) -> None:
    """Exact syscalls, compared with flags shown by name so a failure reads MS_BIND|MS_REC."""
    assert ctx.sys.named() == named_calls(expected)


def stage_error(fn, *args) -> StageError:
    with pytest.raises(StageError) as info:
        fn(*args)
    return info.value


def entry(mountpoint, fstype="ext4", optional=(), super_options="rw", mount_id=1):
    return MountEntry(mount_id, 0, "/", mountpoint, "rw", list(optional), fstype, fstype, super_options)


def spec_with(**linux) -> dict:
    spec = default_spec()
    spec["linux"].update(linux)
    return spec


def no_cgroup_ns(spec: dict) -> dict:
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "cgroup"]
    return spec


# --- the fake itself -------------------------------------------------------------------------------

def test_fake_has_every_syscall_wrapper_and_constant():
    fake = RecordingSyscalls()
    public = [n for n in vars(S) if not n.startswith("_")]
    for name in public:
        value = getattr(S, name)
        if callable(value) and getattr(value, "__module__", "") == S.__name__:
            assert callable(getattr(fake, name, None)), f"fake lacks {name}()"
        elif name.isupper():
            assert getattr(fake, name) == value


@pytest.mark.parametrize("name,args", [
    ("setresuid", (2**32 - 1,) * 3), ("setresgid", (0, -1, 0)), ("setgroups", ([5, 2**32 - 1],)),
    ("fchown_user", (0, 2**32 - 1)), ("chown", ("FILE", 0, 2**31))])
def test_syscalls_refuse_ids_that_would_mean_unchanged(name, args, tmp_path):
    """(uid_t)-1 is "leave unchanged" to the kernel: the syscall layer never passes an id above
    2147483647 (each call here is a no-op for root if the check were missing)."""
    (tmp_path / "f").write_text("")
    args = tuple(str(tmp_path / "f") if a == "FILE" else a for a in args)
    with pytest.raises(OSError) as info:
        getattr(S, name)(*args)
    assert info.value.errno == EINVAL and "out of range 0-2147483647" in str(info.value)


def test_fake_fail_is_once_and_matches_when(tmp_path):
    fake = RecordingSyscalls()
    fake.fail("mount", EPERM, when=lambda src, target, *rest: target == "/b")
    fake.mount(None, "/a", None)
    with pytest.raises(PermissionError):
        fake.mount(None, "/b", None)
    fake.mount(None, "/b", None)  # only the next matching call fails
    assert [c[2] for c in fake.calls] == ["/a", "/b", "/b"]
    fake.fail("mknod", errno.EEXIST)
    with pytest.raises(FileExistsError):
        fake.mknod(str(tmp_path / "x"), stat.S_IFCHR | 0o666, os.makedev(1, 3))
    with pytest.raises(AttributeError):
        fake.fail("no_such_call", EPERM)


def test_fake_side_effects_stay_in_root(tmp_path):
    fake = RecordingSyscalls(root=tmp_path)
    fake.mknod(str(tmp_path / "null"), stat.S_IFCHR | 0o666, os.makedev(1, 3))
    assert stat.S_ISREG(os.stat(tmp_path / "null").st_mode)
    with pytest.raises(FileExistsError):
        fake.mknod(str(tmp_path / "null"), stat.S_IFCHR | 0o666, os.makedev(1, 3))
    fake.symlink("/proc/self/fd", str(tmp_path / "fd"))
    assert os.readlink(tmp_path / "fd") == "/proc/self/fd"
    with pytest.raises(AssertionError):
        fake.mknod("/dev/ocish-test-null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    pure = RecordingSyscalls()
    pure.symlink("x", str(tmp_path / "nothing"))
    assert not os.path.lexists(tmp_path / "nothing")


def test_fake_names_flags_modes_and_resources():
    assert flag_names(S.MS_BIND | S.MS_REC) == "MS_BIND|MS_REC"
    assert flag_names(0) == "0"
    assert flag_names(S.CLONE_NEWUSER | S.CLONE_NEWNS, "CLONE_") == "CLONE_NEWNS|CLONE_NEWUSER"
    assert flag_names(1 << 40) == hex(1 << 40)
    fake = RecordingSyscalls(fork_result=lambda: 7)
    fake.mknod("/nowhere", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    fake.setrlimit(resource.RLIMIT_NOFILE, 1, 2)
    fake.umount2(".", S.MNT_DETACH)
    assert fake.fork() == 7
    assert fake.named() == [("mknod", "/nowhere", "S_IFCHR|0o666", "1:3"),
                            ("setrlimit", "RLIMIT_NOFILE", 1, 2),
                            ("umount2", ".", "MNT_DETACH"), ("fork",)]
    assert "mknod('/nowhere', 'S_IFCHR|0o666', '1:3')" in fake.render()


# --- describe ----------------------------------------------------------------------------------

def test_every_stage_describes_its_config(ctx):
    text = {s.name: s.describe(ctx) for s in pipeline()}
    assert all(t.strip() for t in text.values())
    assert "/linux/cgroupsPath" in text["cgroup"] and "devices" in text["limits"]
    assert "pid, network, ipc, uts, mount, cgroup" in text["unshare"]
    assert "nothing to map" in text["idmap"]
    for i, m in enumerate(default_spec()["mounts"]):
        assert f"/mounts/{i}: mount(2)" in text["mounts"] and m["destination"] in text["mounts"]
    assert "proc proc on /proc" in text["mounts"] and "mknod(2) /dev/null" in text["mounts"]
    assert "rslave" in text["mounts"] and ctx.rootfs in text["mounts"]
    assert "pivot_root(2)" in text["pivot"] and ctx.rootfs in text["pivot"]
    assert "sethostname(2) 'ocish'" in text["process"] and "RLIMIT_NOFILE" in text["process"]
    assert "session keyring named 't1'" in text["process"]
    assert "/proc/kcore" in text["paths"] and "/proc/sys" in text["paths"]
    assert "remount / read-only" in text["paths"]
    assert "setresuid 0" in text["user"] and "umask 0o22" in text["user"]
    assert "'sh'" in text["exec"] and "0-2" in text["exec"]


def test_describe_follows_the_config(make_ctx, tmp_path):
    spec = default_spec(rootless=True)
    spec["linux"]["namespaces"].append({"type": "ipc", "path": "/proc/1/ns/ipc"})
    spec["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]
    ctx = make_ctx(spec, no_pivot=True, no_new_keyring=True, preserve_fds=2)
    assert f"0 {os.getuid()} 1" in Idmap().describe(ctx)
    assert "/linux/uidMappings" in Idmap().describe(ctx)
    assert "setns(2) into: ipc (/proc/1/ns/ipc)" in Unshare().describe(ctx)
    mounts = Mounts().describe(ctx)
    assert "bind-mount from the host, nosuid,noexec (user namespace)" in mounts and "/dev/fuse" in mounts
    assert "--no-pivot" in Pivot().describe(ctx)
    assert "join a new session keyring" not in Process().describe(ctx)
    assert "0-4" in Exec().describe(ctx)


# --- cgroup (host side; the manager is faked) -----------------------------------------------------

class FakeManager:
    def __init__(self, fail_create=0):
        self.fail_create, self.log = fail_create, []

    def paths(self):
        return ["/sys/fs/cgroup/x"]

    def create(self):
        self.log.append(("create",))
        if self.fail_create:
            raise OSError(self.fail_create, os.strerror(self.fail_create))

    def apply(self, resources):
        self.log.append(("apply", resources))
        if resources.get("pids", {}).get("limit") == -2:  # the drivers' own stage name
            raise StageError("cgroup", "write", "/x/pids.max", errno.EINVAL,
                             "/linux/resources/pids/limit")

    def add(self, pid):
        self.log.append(("add", pid))


def test_cgroup_stage_adds_the_pid_and_limits_write_the_rules_later(ctx, monkeypatch):
    """`cgroup` makes the cgroups and moves C1 in; `limits`, after `mounts`, writes the
    resources (runc: Apply at start, Set at procHooks)."""
    manager = FakeManager()
    opened = []
    monkeypatch.setattr(cgroups, "open_manager",
                        lambda path, cid: opened.append((path, cid)) or manager)
    ctx.pid = 4321
    ctx.spec["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229},
                                    {"path": "/dev/p", "type": "p"}]
    assert Cgroup.side == Limits.side == HOST
    cgroup = Cgroup()
    cgroup.run(ctx)
    assert opened == [(None, "t1")] and ctx.cgroup is manager
    assert manager.log == [("create",), ("add", 4321)]
    Limits(cgroup).run(ctx)
    assert [e[0] for e in manager.log] == ["create", "add", "apply"]
    rules = manager.log[2][1]["devices"]
    assert rules == device_rules(ctx)
    assert rules[0] == {"allow": False, "access": "rwm"}
    assert {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"} in rules
    assert rules[-1] == {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"}
    names = [s.name for s in pipeline()]
    assert names.index("mounts") + 1 == names.index("limits") == names.index("hooks") - 1


def test_limits_errors_name_their_stage_and_nothing_without_a_cgroup(ctx):
    ctx.spec["linux"]["resources"] = {"pids": {"limit": -2}}
    ctx.cgroup = FakeManager()
    err = stage_error(Limits(Cgroup()).run, ctx)
    assert str(err) == ("stage limits: write /x/pids.max (config /linux/resources/pids/limit): "
                        "invalid argument")
    ctx.cgroup = None  # rootless without a delegated cgroup: nothing to write
    Limits(Cgroup()).run(ctx)


def test_cgroup_stage_error_points_at_cgroups_path(ctx, monkeypatch):
    monkeypatch.setattr(cgroups, "open_manager", lambda p, c: FakeManager(errno.EACCES))
    err = stage_error(Cgroup().run, ctx)
    assert (err.stage, err.op, err.pointer, err.errno) == ("cgroup", "mkdir", "/linux/cgroupsPath",
                                                          errno.EACCES)


def test_device_rules_empty_without_device_resources(make_ctx):
    assert device_rules(make_ctx(default_spec(rootless=True))) == []


# --- unshare -------------------------------------------------------------------------------------

NEW_DEFAULT = (S.CLONE_NEWPID | S.CLONE_NEWNET | S.CLONE_NEWIPC | S.CLONE_NEWUTS | S.CLONE_NEWNS
               | S.CLONE_NEWCGROUP)


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_unshare_default_spec_then_acts_as_child(ctx):
    before = _fds()
    Unshare().run(ctx)  # fake fork() returns 0: this process plays init, reads EOF, carries on
    assert _fds() == before, "the init-sync pipe leaked"
    # the child (init) leads a session of its own: runc's nsexec stage-2 setsid
    assert_calls(ctx, [("unshare", NEW_DEFAULT), ("fork",), ("setsid",)])


def test_unshare_with_a_user_namespace_leaves_ipc_for_later(make_ctx):
    ctx = make_ctx(userns_spec())
    Unshare().run(ctx)
    assert ctx.sys.of("unshare") == [("unshare", (NEW_DEFAULT | S.CLONE_NEWUSER) & ~S.CLONE_NEWIPC)]
    assert "ipc later, by stage mounts" in Unshare().describe(ctx)


def test_unshare_setsid_failure_is_a_stage_error(ctx):
    ctx.sys.fail("setsid", EPERM)
    err = stage_error(Unshare().run, ctx)
    assert str(err) == "stage unshare: setsid: operation not permitted"


def test_unshare_joins_paths_user_first_mount_last(make_ctx, tmp_path):
    nsdir = tmp_path / "ns"
    nsdir.mkdir()
    for kind in ("user", "net", "mnt", "uts"):
        (nsdir / kind).write_text("")
    spec = spec_with(namespaces=[
        {"type": "pid"}, {"type": "mount", "path": str(nsdir / "mnt")},
        {"type": "network", "path": str(nsdir / "net")}, {"type": "user", "path": str(nsdir / "user")},
        {"type": "uts", "path": str(nsdir / "uts")}, {"type": "ipc"}])
    ctx = make_ctx(spec)
    Unshare().run(ctx)
    real = os.path.realpath(nsdir)
    assert_calls(ctx, [("setns", f"{real}/user", S.CLONE_NEWUSER),
                       ("setns", f"{real}/uts", S.CLONE_NEWUTS),
                       ("setns", f"{real}/net", S.CLONE_NEWNET),
                       ("setns", f"{real}/mnt", S.CLONE_NEWNS),
                       ("unshare", S.CLONE_NEWPID | S.CLONE_NEWIPC), ("fork",), ("setsid",)])


def test_unshare_only_joined_namespaces_makes_no_unshare_call(make_ctx, tmp_path):
    (tmp_path / "netns").write_text("")
    ctx = make_ctx(spec_with(namespaces=[{"type": "network", "path": str(tmp_path / "netns")}]))
    Unshare().run(ctx)
    assert [c[0] for c in ctx.sys.calls] == ["setns", "fork", "setsid"]


def test_unshare_setns_errors_point_at_the_namespace(make_ctx, tmp_path):
    (tmp_path / "ipcns").write_text("")
    spec = spec_with(namespaces=[{"type": "pid"}, {"type": "ipc", "path": str(tmp_path / "ipcns")},
                                 {"type": "uts", "path": str(tmp_path / "missing")}])
    ctx = make_ctx(spec)
    err = stage_error(Unshare().run, ctx)  # open(2) of the missing path fails
    assert (err.op, err.target, err.errno, err.pointer) == (
        "setns", str(tmp_path / "missing"), ENOENT, "/linux/namespaces/2")
    ctx = make_ctx(spec)
    ctx.sys.fail("setns", EINVAL)
    err = stage_error(Unshare().run, ctx)
    assert err.pointer == "/linux/namespaces/1"
    assert str(err) == (f"stage unshare: setns {tmp_path}/ipcns (config /linux/namespaces/1): "
                        "invalid argument")


def test_unshare_failure_names_the_kinds(ctx):
    ctx.sys.fail("unshare", EPERM)
    err = stage_error(Unshare().run, ctx)
    assert str(err) == ("stage unshare: unshare pid,network,ipc,uts,mount,cgroup "
                        "(config /linux/namespaces): operation not permitted")
    assert [c[0] for c in ctx.sys.calls] == ["unshare"]  # no fork after a failure


def test_unshare_time_namespace_writes_offsets_before_fork(make_ctx):
    spec = spec_with(timeOffsets={"monotonic": {"secs": 86400, "nanosecs": 5},
                                  "boottime": {"secs": -3}})
    spec["linux"]["namespaces"].append({"type": "time"})
    ctx = make_ctx(spec)
    Unshare().run(ctx)
    assert_calls(ctx, [("unshare", NEW_DEFAULT | S.CLONE_NEWTIME),
                       ("write_file", "/proc/self/timens_offsets", "monotonic 86400 5"),
                       ("write_file", "/proc/self/timens_offsets", "boottime -3 0"),
                       ("fork",), ("setsid",)])
    assert "timens_offsets" in Unshare().describe(ctx)


class _Exited(Exception):
    pass


class RecordingChannel:
    def __init__(self):
        self.sent = []

    def send(self, msg):
        self.sent.append(msg)


def test_unshare_parent_reports_init_pid_and_exits(make_ctx, monkeypatch):
    ctx = make_ctx(sys=RecordingSyscalls(fork_result=4242))
    ctx.chan = RecordingChannel()

    def fake_exit(code):
        raise _Exited(code)

    monkeypatch.setattr(os, "_exit", fake_exit)
    before = _fds()
    try:
        with pytest.raises(_Exited) as info:
            Unshare().run(ctx)
    finally:
        for fd in _fds() - before:  # the write end, which the real C1 closes by exiting
            try:
                os.close(int(fd))
            except OSError:
                pass
    assert info.value.args == (0,)
    assert [(type(m), m.pid) for m in ctx.chan.sent] == [(sync.Pid, 4242)]


# --- idmap -----------------------------------------------------------------------------------------

def test_idmap_nothing_without_user_namespace(ctx):
    Idmap().run(ctx)
    assert ctx.sys.calls == []
    assert Idmap().describe(ctx) == "no new user namespace (config /linux/namespaces): nothing to map."


def userns_spec() -> dict:
    spec = spec_with(uidMappings=[{"containerID": 0, "hostID": 1000, "size": 1},
                                  {"containerID": 1, "hostID": 100000, "size": 65536}],
                     gidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}])
    spec["linux"]["namespaces"].append({"type": "user"})
    return spec


def test_idmap_writes_maps_of_the_init_pid(make_ctx):
    ctx = make_ctx(userns_spec(), pid=4242)
    Idmap().run(ctx)
    assert_calls(ctx, [("write_file", "/proc/4242/uid_map", "0 1000 1\n1 100000 65536\n"),
                       ("write_file", "/proc/4242/gid_map", "0 1000 1\n")])
    assert "uid_map (config /linux/uidMappings):\n0 1000 1\n1 100000 65536" in Idmap().describe(ctx)


def test_idmap_error_points_at_the_mapping(make_ctx):
    ctx = make_ctx(userns_spec(), pid=4242)
    ctx.sys.fail("write_file", EPERM, when=lambda path, data: path.endswith("gid_map"))
    err = stage_error(Idmap().run, ctx)
    assert str(err) == ("stage idmap: write /proc/4242/gid_map (config /linux/gidMappings): "
                        "operation not permitted")


def test_idmap_joined_user_namespace_maps_nothing(make_ctx):
    spec = userns_spec()
    spec["linux"]["namespaces"][-1]["path"] = "/proc/1/ns/user"
    ctx = make_ctx(spec)
    Idmap().run(ctx)
    assert ctx.sys.calls == []


# --- mounts: items and rootfs ----------------------------------------------------------------------

def test_mounts_items(ctx):
    assert Mounts().items(ctx) == ["rootfs"] + [f"/mounts/{i}" for i in range(7)] + ["devices"]


def test_mounts_rootfs_private_parent(ctx, monkeypatch, tmp_path):
    # "/" shared, but the rootfs lives on a private mount: only slave + self-bind
    monkeypatch.setattr(procfs, "mountinfo", lambda pid="self": [
        entry("/", optional=["shared:1"]), entry(str(tmp_path), "tmpfs", mount_id=2)])
    Mounts().run(ctx, "rootfs")
    assert_calls(ctx, [mount(None, "/", None, S.MS_SLAVE | S.MS_REC),
                       mount(ctx.rootfs, ctx.rootfs, "bind", S.MS_BIND | S.MS_REC)])


def test_mounts_rootfs_shared_parent_made_private(make_ctx, monkeypatch, tmp_path):
    monkeypatch.setattr(procfs, "mountinfo", lambda pid="self": [
        entry("/"), entry(str(tmp_path), "tmpfs", optional=["shared:7", "master:2"], mount_id=2)])
    ctx = make_ctx(spec_with(rootfsPropagation="private"))
    Mounts().run(ctx, "rootfs")
    assert_calls(ctx, [mount(None, "/", None, S.MS_PRIVATE),
                       mount(None, str(tmp_path), None, S.MS_PRIVATE),
                       mount(ctx.rootfs, ctx.rootfs, "bind", S.MS_BIND | S.MS_REC)])


def test_mounts_rootfs_reads_real_mountinfo(ctx):
    Mounts().run(ctx, "rootfs")  # whatever the host's propagation, the first and last calls are fixed
    assert ctx.sys.calls[0] == mount(None, "/", None, S.MS_SLAVE | S.MS_REC)
    assert ctx.sys.calls[-1] == mount(ctx.rootfs, ctx.rootfs, "bind", S.MS_BIND | S.MS_REC)


def test_mounts_rootfs_without_a_mount_namespace(make_ctx):
    """In the runtime's mount namespace "/" is never touched: only the rootfs bind, which
    takes the propagation (rslave, or rootfsPropagation)."""
    ctx = make_ctx(spec_with(namespaces=[{"type": "pid"}]))
    Mounts().run(ctx, "rootfs")
    assert_calls(ctx, [mount(ctx.rootfs, ctx.rootfs, "bind", S.MS_BIND | S.MS_REC),
                       mount(None, ctx.rootfs, None, S.MS_SLAVE | S.MS_REC)])
    assert "no mount namespace" in Mounts().describe(ctx)
    ctx = make_ctx(spec_with(namespaces=[], rootfsPropagation="private"))
    Mounts().run(ctx, "rootfs")
    assert ctx.sys.calls[-1] == mount(None, ctx.rootfs, None, S.MS_PRIVATE)


def test_mounts_rootfs_becomes_root_of_user_namespace(make_ctx, monkeypatch):
    monkeypatch.setattr(procfs, "mountinfo", lambda pid="self": [entry("/")])
    ctx = make_ctx(userns_spec())
    Mounts().run(ctx, "rootfs")
    # the IPC namespace comes after (its mqueue takes the creator's mapped fsuid: runc's order)
    assert ctx.sys.calls[:3] == [("setresgid", 0, 0, 0), ("setresuid", 0, 0, 0),
                                 ("unshare", S.CLONE_NEWIPC)]
    ctx = make_ctx(userns_spec())
    ctx.sys.fail("setresuid", EINVAL)
    err = stage_error(Mounts().run, ctx, "rootfs")
    assert err.pointer == "/linux/uidMappings" and "uid/gid 0 must be mapped" in str(err)


# --- mounts: the default spec's mounts -------------------------------------------------------------

def test_mount_proc(ctx, rootfs):
    Mounts().run(ctx, "/mounts/0")
    assert_calls(ctx, [mount("proc", f"{rootfs}/proc", "proc", 0)])


def test_mount_dev_tmpfs(ctx, rootfs):
    Mounts().run(ctx, "/mounts/1")
    assert_calls(ctx, [mount("tmpfs", f"{rootfs}/dev", "tmpfs", S.MS_NOSUID | S.MS_STRICTATIME,
                             "mode=755,size=65536k")])


def test_mount_devpts_creates_its_directory(ctx, rootfs):
    Mounts().run(ctx, "/mounts/2")
    assert (rootfs / "dev" / "pts").is_dir()
    assert_calls(ctx, [mount("devpts", f"{rootfs}/dev/pts", "devpts", S.MS_NOSUID | S.MS_NOEXEC,
                             "newinstance,ptmxmode=0666,mode=0620,gid=5")])


def test_mount_shm_mqueue_sysfs(ctx, rootfs):
    for i in (3, 4, 5):
        Mounts().run(ctx, f"/mounts/{i}")
    nne = S.MS_NOSUID | S.MS_NODEV | S.MS_NOEXEC
    # "ro" sysfs is mounted read-write; stage paths makes it read-only, last
    assert_calls(ctx, [mount("shm", f"{rootfs}/dev/shm", "tmpfs", nne, "mode=1777,size=65536k"),
                       mount("mqueue", f"{rootfs}/dev/mqueue", "mqueue", nne),
                       mount("sysfs", f"{rootfs}/sys", "sysfs", nne)])
    assert ctx.notes[READONLY_LATER] == [["/sys", nne | S.MS_RDONLY, "/mounts/5",
                                          '"sysfs" on "/sys"']]


def test_sysfs_eperm_without_netns_binds_the_hosts(make_ctx, rootfs):
    spec = default_spec()
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "network"]
    ctx = make_ctx(spec)
    ctx.sys.fail("mount", EPERM, when=lambda src, target, fstype, *r: fstype == "sysfs")
    Mounts().run(ctx, "/mounts/5")
    flags = S.MS_NOSUID | S.MS_NODEV | S.MS_NOEXEC | S.MS_RDONLY
    dest = f"{rootfs}/sys"
    assert_calls(ctx, [mount("sysfs", dest, "sysfs", flags & ~S.MS_RDONLY),
                       mount("/sys", dest, None, S.MS_BIND | S.MS_REC),
                       mount(None, dest, None, flags & ~S.MS_RDONLY | S.MS_BIND | S.MS_REMOUNT)])
    assert ctx.notes[READONLY_LATER][0][:2] == ["/sys", flags]


def test_sysfs_eperm_with_netns_is_an_error(ctx):
    ctx.sys.fail("mount", EPERM)
    err = stage_error(Mounts().run, ctx, "/mounts/5")
    assert str(err) == 'stage mounts: mount "sysfs" on "/sys" (config /mounts/5): operation not permitted'


def test_failing_mount_error_message(ctx):
    ctx.sys.fail("mount", EPERM)
    err = stage_error(Mounts().run, ctx, "/mounts/0")
    assert str(err) == 'stage mounts: mount "proc" on "/proc" (config /mounts/0): operation not permitted'
    assert (err.stage, err.op, err.target, err.errno, err.pointer) == (
        "mounts", "mount", '"proc" on "/proc"', EPERM, "/mounts/0")
    assert StageError.from_dict(err.to_dict()).args == err.args


# --- mounts: cgroup ------------------------------------------------------------------------------

V1_MOUNTINFO = [
    entry("/"),
    entry("/sys/fs/cgroup", "tmpfs", super_options="rw,mode=755"),
    entry("/sys/fs/cgroup/cpu,cpuacct", "cgroup", super_options="rw,cpu,cpuacct"),
    entry("/sys/fs/cgroup/memory", "cgroup", super_options="rw,memory"),
    entry("/sys/fs/cgroup/unified", "cgroup2", super_options="rw,nsdelegate"),
]
OWN_CGROUPS = [("cpu,cpuacct", "/ocish/t1"), ("memory", "/ocish/t1"), ("", "/ocish/t1"),
               ("name=systemd", "/user.slice/u.scope")]
CG_BASE = S.MS_NOSUID | S.MS_NOEXEC | S.MS_NODEV | S.MS_RELATIME
CG_REMOUNT = CG_BASE | S.MS_RDONLY | S.MS_BIND | S.MS_REMOUNT


@pytest.fixture
def cgroup_host(monkeypatch):
    def use(mountinfo, own=OWN_CGROUPS):
        monkeypatch.setattr(procfs, "mountinfo", lambda pid="self": mountinfo)
        monkeypatch.setattr(procfs, "self_cgroups", lambda pid="self": own)
    return use


def test_cgroup_v1_with_cgroupns_mounts_each_hierarchy(ctx, rootfs, cgroup_host):
    cgroup_host(V1_MOUNTINFO)
    Mounts().run(ctx, "/mounts/6")
    d = f"{rootfs}/sys/fs/cgroup"
    assert_calls(ctx, [
        mount("tmpfs", d, "tmpfs", CG_BASE, "mode=755"),
        mount("cgroup", f"{d}/cpu,cpuacct", "cgroup", CG_BASE, "cpu,cpuacct"),
        mount(None, f"{d}/cpu,cpuacct", None, CG_REMOUNT),
        mount("cgroup", f"{d}/memory", "cgroup", CG_BASE, "memory"),
        mount(None, f"{d}/memory", None, CG_REMOUNT),
        mount("cgroup2", f"{d}/unified", "cgroup2", CG_BASE, "nsdelegate"),
        mount(None, f"{d}/unified", None, CG_REMOUNT),
    ])
    # the tmpfs holding them is made read-only by stage paths, after every mount
    assert ctx.notes[READONLY_LATER] == [["/sys/fs/cgroup", CG_BASE | S.MS_RDONLY, "/mounts/6",
                                          '"cgroup" on "/sys/fs/cgroup"']]
    assert all((rootfs / "sys/fs/cgroup" / n).is_dir() for n in ("cpu,cpuacct", "memory", "unified"))


def test_cgroup_v1_without_cgroupns_binds_own_cgroups(make_ctx, rootfs, cgroup_host):
    cgroup_host(V1_MOUNTINFO)
    ctx = make_ctx(no_cgroup_ns(default_spec()))
    Mounts().run(ctx, "/mounts/6")
    d = f"{rootfs}/sys/fs/cgroup"
    binds = [c for c in ctx.sys.calls if c[4] & S.MS_BIND and not c[4] & S.MS_REMOUNT]
    assert named_calls(binds) == named_calls([
        mount("/sys/fs/cgroup/cpu,cpuacct/ocish/t1", f"{d}/cpu,cpuacct", None, S.MS_BIND | S.MS_REC),
        mount("/sys/fs/cgroup/memory/ocish/t1", f"{d}/memory", None, S.MS_BIND | S.MS_REC),
        mount("/sys/fs/cgroup/unified/ocish/t1", f"{d}/unified", None, S.MS_BIND | S.MS_REC),
    ])


def test_cgroup_v1_named_hierarchy_binds_own_cgroup(make_ctx, rootfs, cgroup_host):
    cgroup_host([entry("/sys/fs/cgroup/systemd", "cgroup", super_options="rw,xattr,name=systemd")])
    ctx = make_ctx(no_cgroup_ns(default_spec()))
    Mounts().run(ctx, "/mounts/6")
    assert ctx.sys.calls[1][1] == "/sys/fs/cgroup/systemd/user.slice/u.scope"


def test_cgroup_on_v2_host_mounts_cgroup2(ctx, rootfs, cgroup_host):
    cgroup_host([entry("/"), entry("/sys/fs/cgroup", "cgroup2", super_options="rw,nsdelegate")],
                own=[("", "/ocish/t1")])
    Mounts().run(ctx, "/mounts/6")
    d = f"{rootfs}/sys/fs/cgroup"
    assert any(c[0] == "mount" and c[2] == d and c[3] == "cgroup2" for c in ctx.sys.calls), \
        ctx.sys.render()


# --- mounts: binds, options, propagation, symlinks -------------------------------------------------

def test_bind_ro_gets_a_second_remount_call(make_ctx, tmp_path, rootfs):
    (tmp_path / "data").mkdir()
    spec = default_spec()
    spec["mounts"].append({"destination": "/data", "source": "data", "options": ["rbind", "ro"]})
    ctx = make_ctx(spec)
    Mounts().run(ctx, "/mounts/7")
    dest = f"{rootfs}/data"
    assert (rootfs / "data").is_dir()
    assert_calls(ctx, [mount(str(tmp_path / "data"), dest, "bind", S.MS_BIND | S.MS_REC)])
    ctx.sys.clear()
    Paths().run(ctx)  # "ro" comes last, once everything beneath /data is mounted
    assert ctx.sys.named()[0] == named_calls([mount(None, "/data", None, RO_BIND)])[0]


def test_bind_file_creates_a_file_target_and_no_remount_without_flags(make_ctx, tmp_path, rootfs):
    (tmp_path / "hosts").write_text("127.0.0.1 localhost\n")
    spec = default_spec()
    spec["mounts"].append({"destination": "/etc/hosts", "type": "bind",
                           "source": str(tmp_path / "hosts"), "options": ["bind", "rw"]})
    ctx = make_ctx(spec)
    Mounts().run(ctx, "/mounts/7")
    assert (rootfs / "etc/hosts").is_file()
    assert_calls(ctx, [mount(str(tmp_path / "hosts"), f"{rootfs}/etc/hosts", "bind", S.MS_BIND)])


def test_bind_by_type_alone_is_a_bind(make_ctx, tmp_path, rootfs):
    (tmp_path / "data").mkdir()
    spec = default_spec()
    spec["mounts"].append({"destination": "/data", "type": "bind", "source": str(tmp_path / "data")})
    ctx = make_ctx(spec)
    Mounts().run(ctx, "/mounts/7")
    assert ctx.sys.calls[0][4] & S.MS_BIND, ctx.sys.render()


def test_bind_missing_source_points_at_source(make_ctx, tmp_path):
    spec = default_spec()
    spec["mounts"].append({"destination": "/data", "source": "nope", "options": ["bind"]})
    err = stage_error(Mounts().run, make_ctx(spec), "/mounts/7")
    assert (err.op, err.errno, err.pointer) == ("stat", ENOENT, "/mounts/7/source")


def test_propagation_options_are_separate_calls(make_ctx, tmp_path, rootfs):
    (tmp_path / "data").mkdir()
    spec = default_spec()
    spec["mounts"] += [
        {"destination": "/data", "source": str(tmp_path / "data"), "options": ["rbind", "rprivate"]},
        {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
         "options": ["shared", "noexec", "runbindable", "size=1m"]},
    ]
    ctx = make_ctx(spec)
    Mounts().run(ctx, "/mounts/7")
    Mounts().run(ctx, "/mounts/8")
    assert_calls(ctx, [
        mount(str(tmp_path / "data"), f"{rootfs}/data", "bind", S.MS_BIND | S.MS_REC),
        mount(None, f"{rootfs}/data", None, S.MS_PRIVATE | S.MS_REC),
        mount("tmpfs", f"{rootfs}/scratch", "tmpfs", S.MS_NOEXEC, "size=1m"),
        mount(None, f"{rootfs}/scratch", None, S.MS_SHARED),
        mount(None, f"{rootfs}/scratch", None, S.MS_UNBINDABLE | S.MS_REC),
    ])
    ctx = make_ctx(spec)
    ctx.sys.fail("mount", EINVAL, when=lambda src, t, fs, flags, data: flags & S.MS_SHARED)
    err = stage_error(Mounts().run, ctx, "/mounts/8")
    assert err.pointer == "/mounts/8/options"


def test_remount_eperm_in_userns_retries_with_locked_flags(make_ctx, tmp_path, rootfs):
    (tmp_path / "data").mkdir()
    spec = default_spec()
    spec["mounts"].append({"destination": "/data", "source": str(tmp_path / "data"),
                           "options": ["bind", "ro", "nosuid"]})
    ctx = make_ctx(spec)
    ctx.sys.fail("mount", EPERM, when=lambda src, t, fs, flags, data: flags & S.MS_REMOUNT)
    Mounts().run(ctx, "/mounts/7")
    dest = f"{rootfs}/data"
    first = S.MS_BIND | S.MS_REMOUNT | S.MS_NOSUID  # "ro" comes in stage paths
    locked = os.statvfs(dest).f_flag & (S.MS_NOSUID | S.MS_NODEV | S.MS_NOEXEC | S.MS_RDONLY)
    assert_calls(ctx, [mount(str(tmp_path / "data"), dest, "bind", S.MS_BIND),
                       mount(None, dest, None, first),
                       mount(None, dest, None, first | locked)])
    ctx = make_ctx(spec)
    ctx.sys.fail("mount", EINVAL, when=lambda src, t, fs, flags, data: flags & S.MS_REMOUNT)
    err = stage_error(Mounts().run, ctx, "/mounts/7")
    assert (err.op, err.pointer) == ("remount", "/mounts/7/options")


def test_destination_through_absolute_symlink_stays_in_rootfs(make_ctx, rootfs, tmp_path):
    (rootfs / "link").symlink_to("/target")
    (rootfs / "up").symlink_to("../../../../..")
    spec = default_spec()
    spec["mounts"] += [{"destination": "/link/sub", "type": "tmpfs", "source": "tmpfs"},
                       {"destination": "/up/etc/x", "type": "tmpfs", "source": "tmpfs"}]
    ctx = make_ctx(spec)
    Mounts().run(ctx, "/mounts/7")
    Mounts().run(ctx, "/mounts/8")
    assert_calls(ctx, [mount("tmpfs", f"{rootfs}/target/sub", "tmpfs", 0),
                       mount("tmpfs", f"{rootfs}/etc/x", "tmpfs", 0)])
    assert (rootfs / "target" / "sub").is_dir() and (rootfs / "etc" / "x").is_dir()
    assert not os.path.exists("/target/sub")


@pytest.mark.parametrize("index,dest", [(0, "proc"), (5, "sys")])
def test_proc_or_sysfs_on_a_symlink_is_refused(ctx, rootfs, index, dest):
    (rootfs / dest).rmdir()
    (rootfs / dest).symlink_to("/elsewhere")
    err = stage_error(Mounts().run, ctx, f"/mounts/{index}")
    assert err.pointer == f"/mounts/{index}/destination"
    assert "destination is a symlink in the rootfs (resolves to /elsewhere)" in str(err)
    assert ctx.sys.calls == []


def test_mkdir_failure_points_at_destination(make_ctx, rootfs):
    (rootfs / "file").write_text("")
    spec = default_spec()
    spec["mounts"].append({"destination": "/file", "type": "tmpfs", "source": "tmpfs"})
    err = stage_error(Mounts().run, make_ctx(spec), "/mounts/7")
    assert (err.op, err.target, err.errno, err.pointer) == (
        "mkdir", "/file", errno.ENOTDIR, "/mounts/7/destination")  # Go's MkdirAll


def test_destination_below_a_file_points_at_destination(make_ctx, rootfs):
    (rootfs / "file").write_text("")
    spec = default_spec()
    spec["mounts"].append({"destination": "/file/sub", "type": "tmpfs", "source": "tmpfs"})
    err = stage_error(Mounts().run, make_ctx(spec), "/mounts/7")
    assert (err.errno, err.pointer) == (errno.ENOTDIR, "/mounts/7/destination")


# --- mounts: devices -------------------------------------------------------------------------------

@pytest.fixture
def chowns(monkeypatch):
    """os.chown recorded instead of done, so the devices item runs without root too."""
    calls = []
    monkeypatch.setattr(os, "chown", lambda path, uid, gid: calls.append((path, uid, gid)))
    return calls


def test_devices_mknod_and_links(ctx, rootfs, chowns):
    (rootfs / "dev" / "ptmx").write_text("")  # replaced by the pts instance's ptmx link
    Mounts().run(ctx, "devices")
    nodes = [("mknod", f"{rootfs}{p}", stat.S_IFCHR | 0o666, os.makedev(ma, mi))
             for p, ma, mi in DEFAULT_DEVICES]
    links = [("symlink", target, f"{rootfs}{link}") for target, link in DEV_LINKS]
    assert_calls(ctx, nodes + links)
    assert nodes[0][1:] == (f"{rootfs}/dev/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    assert [c[0] for c in chowns] == [n[1] for n in nodes] and {c[1:] for c in chowns} == {(0, 0)}
    for _, path, _, _ in nodes:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o666
    assert os.readlink(rootfs / "dev" / "ptmx") == "pts/ptmx"
    assert os.readlink(rootfs / "dev" / "stderr") == "/proc/self/fd/2"


def test_devices_existing_links_are_not_followed(ctx, rootfs, chowns):
    dev = rootfs / "dev"
    (dev / "pts").mkdir()
    (dev / "pts" / "ptmx").write_text("")      # stands for the devpts instance's ptmx
    (dev / "ptmx").symlink_to("pts/ptmx")
    (dev / "fd").symlink_to("/proc/self/fd")
    Mounts().run(ctx, "devices")               # e.g. a rootfs that ships its /dev links, or a re-run
    assert (dev / "pts" / "ptmx").exists(), "unlinked the node the link points to"
    assert [c[2] for c in ctx.sys.of("symlink")] == [f"{rootfs}{link}" for _, link in DEV_LINKS]


def test_devices_from_config(make_ctx, rootfs, chowns):
    spec = default_spec()
    spec["linux"]["devices"] = [
        {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0, "fileMode": 0o640, "uid": 5, "gid": 6},
        {"path": "/dev/net/tun", "type": "c", "major": 10, "minor": 200},
        {"path": "/dev/fifo", "type": "p"}]
    ctx = make_ctx(spec)
    Mounts().run(ctx, "devices")
    mknods = ctx.sys.of("mknod")[len(DEFAULT_DEVICES):]
    assert named_calls(mknods) == [("mknod", f"{rootfs}/dev/sda", "S_IFBLK|0o640", "8:0"),
                                   ("mknod", f"{rootfs}/dev/net/tun", "S_IFCHR|0o666", "10:200"),
                                   ("mknod", f"{rootfs}/dev/fifo", "S_IFIFO|0o666", "0:0")]
    assert (f"{rootfs}/dev/sda", 5, 6) in chowns
    assert stat.S_IMODE(os.stat(rootfs / "dev/sda").st_mode) == 0o640


def test_devices_mknod_failure(make_ctx, chowns):
    spec = default_spec()
    spec["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]
    ctx = make_ctx(spec)
    ctx.sys.fail("mknod", EINVAL)
    err = stage_error(Mounts().run, ctx, "devices")
    assert str(err) == "stage mounts: mknod /dev/null: invalid argument"
    ctx = make_ctx(spec)
    ctx.sys.fail("mknod", EINVAL, when=lambda path, mode, dev: path.endswith("/fuse"))
    err = stage_error(Mounts().run, ctx, "devices")
    assert str(err) == "stage mounts: mknod /dev/fuse (config /linux/devices/0): invalid argument"


def test_devices_mknod_eperm_binds_the_hosts_node(make_ctx, rootfs, chowns):
    """runc's createDeviceNode: mknod refused (a runtime in a user namespace) -> bind."""
    spec = default_spec()
    spec["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]
    ctx = make_ctx(spec)
    ctx.sys.fail("mknod", EPERM, when=lambda path, mode, dev: path.endswith("/fuse"))
    Mounts().run(ctx, "devices")
    dest = f"{rootfs}/dev/fuse"
    assert [c for c in ctx.sys.calls if c[0] == "mount"] == [
        mount("/dev/fuse", dest, "bind", S.MS_BIND),
        mount(None, dest, None, S.MS_BIND | S.MS_REMOUNT | S.MS_NOSUID | S.MS_NOEXEC)]


def test_devices_in_user_namespace_are_bind_mounted(make_ctx, rootfs):
    ctx = make_ctx(default_spec(rootless=True))
    Mounts().run(ctx, "devices")
    nosuid_noexec = S.MS_BIND | S.MS_REMOUNT | S.MS_NOSUID | S.MS_NOEXEC
    binds = [c for p, _, _ in DEFAULT_DEVICES for c in (
        mount(p, f"{rootfs}{p}", "bind", S.MS_BIND), mount(None, f"{rootfs}{p}", None, nosuid_noexec))]
    links = [("symlink", target, f"{rootfs}{link}") for target, link in DEV_LINKS]
    assert_calls(ctx, binds + links)
    assert all((rootfs / p.lstrip("/")).is_file() for p, _, _ in DEFAULT_DEVICES)


def test_devices_with_dev_bound_from_host(make_ctx, rootfs, chowns):
    spec = default_spec()
    spec["mounts"][1] = {"destination": "/dev", "source": "/dev", "options": ["rbind"]}
    spec["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]
    ctx = make_ctx(spec)
    Mounts().run(ctx, "devices")
    assert named_calls(ctx.sys.calls) == [("mknod", f"{rootfs}/dev/fuse", "S_IFCHR|0o666", "10:229")]
    assert "mknod(2) /dev/fuse (config" in Mounts().describe(ctx)


# --- pivot -----------------------------------------------------------------------------------------

def test_pivot_root(ctx, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    Pivot().run(ctx)
    assert os.getcwd() == "/"
    assert_calls(ctx, [("procfs_handle",), ("pivot_root", ".", "."),
                       mount(None, ".", None, S.MS_SLAVE | S.MS_REC), ("umount2", ".", S.MNT_DETACH)])
    assert ctx.proc_fd >= 0  # opened while a procfs is in view, for exec.fifo after the pivot


def test_pivot_root_einval_suggests_no_pivot(ctx, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    ctx.sys.fail("pivot_root", EINVAL)
    err = stage_error(Pivot().run, ctx)
    assert err.pointer == "/root/path" and "try --no-pivot" in str(err)


def test_no_pivot_moves_and_chroots(make_ctx, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    ctx = make_ctx(spec_with(rootfsPropagation="shared"), no_pivot=True)
    Pivot().run(ctx)
    assert_calls(ctx, [("procfs_handle",), mount(ctx.rootfs, "/", None, S.MS_MOVE), ("chroot", "."),
                       mount(None, "/", None, S.MS_SHARED)])
    ctx = make_ctx(no_pivot=True)
    ctx.sys.fail("chroot", EPERM)
    err = stage_error(Pivot().run, ctx)
    assert str(err) == f"stage pivot: chroot {ctx.rootfs} (config /root/path): operation not permitted"


def test_no_mount_namespace_chroots_only(make_ctx, monkeypatch, tmp_path):
    """pivot_root(2) or MS_MOVE onto / in the runtime's mount namespace would swap its root:
    chroot(2) alone, --no-pivot or not (runc's prepareRootfs without NEWNS)."""
    monkeypatch.chdir(tmp_path)
    for no_pivot in (False, True):
        ctx = make_ctx(spec_with(namespaces=[{"type": "pid"}]), no_pivot=no_pivot)
        Pivot().run(ctx)
        assert_calls(ctx, [("procfs_handle",), ("chroot", ".")])
        assert "chroot(2) into the rootfs (no mount namespace)" in Pivot().describe(ctx)


# --- process and user ----------------------------------------------------------------------------

def test_process_default_spec(ctx):
    Process().run(ctx)
    assert_calls(ctx, [("sethostname", "ocish"),
                       ("setrlimit", resource.RLIMIT_NOFILE, 1024, 1024),
                       ("join_session_keyring", "t1")])


def test_process_everything_in_order(make_ctx):
    spec = spec_with(sysctl={"net.ipv4.ip_forward": "1", "kernel/shm_rmid_forced": "1"})
    spec["domainname"] = "example.org"
    spec["process"]["oomScoreAdj"] = -500
    spec["process"]["rlimits"].append({"type": "RLIMIT_CORE", "soft": 0, "hard": 10})
    ctx = make_ctx(spec, no_new_keyring=True)
    Process().run(ctx)
    assert_calls(ctx, [("sethostname", "ocish"), ("setdomainname", "example.org"),
                       ("write_file", "/proc/sys/net/ipv4/ip_forward", "1"),
                       ("write_file", "/proc/sys/kernel/shm_rmid_forced", "1"),
                       ("setrlimit", resource.RLIMIT_NOFILE, 1024, 1024),
                       ("setrlimit", resource.RLIMIT_CORE, 0, 10)])
    assert "sysctl net.ipv4.ip_forward = 1" in Process().describe(ctx)


def test_oom_score_adj_is_written_before_any_namespace_changes(make_ctx):
    """runc's nsexec: while the host's /proc is in view and we are the host's root."""
    spec = default_spec()
    spec["process"]["oomScoreAdj"] = -500
    ctx = make_ctx(spec)
    Unshare().run(ctx)
    assert ctx.sys.calls[0] == ("write_file", "/proc/self/oom_score_adj", "-500")
    assert ctx.sys.calls[1][0] == "unshare"
    assert "oom_score_adj = -500 first" in Unshare().describe(ctx)
    ctx = make_ctx(spec)
    ctx.sys.fail("write_file", errno.EACCES)
    err = stage_error(Unshare().run, ctx)
    assert (err.stage, err.pointer) == ("unshare", "/process/oomScoreAdj")


@pytest.mark.parametrize("name,when,pointer", [
    ("sethostname", None, "/hostname"),
    ("write_file", lambda p, d: "shm" in p, "/linux/sysctl/kernel~1shm_rmid_forced"),
    ("setrlimit", lambda r, s, h: r == resource.RLIMIT_CORE, "/process/rlimits/1"),
])
def test_process_error_pointers(make_ctx, name, when, pointer):
    spec = spec_with(sysctl={"kernel/shm_rmid_forced": "1"})
    spec["process"]["oomScoreAdj"] = 100
    spec["process"]["rlimits"].append({"type": "RLIMIT_CORE", "soft": 0, "hard": 10})
    ctx = make_ctx(spec)
    ctx.sys.fail(name, EPERM, *([when] if when else []))
    assert stage_error(Process().run, ctx).pointer == pointer


def test_process_keyring_errors(ctx, make_ctx):
    for tolerated in (errno.ENOSYS, errno.EACCES, EPERM):
        c = make_ctx()
        c.sys.fail("join_session_keyring", tolerated)
        Process().run(c)
    ctx.sys.fail("join_session_keyring", EINVAL)
    assert str(stage_error(Process().run, ctx)) == "stage process: keyctl session keyring: invalid argument"


def test_user_default_spec(ctx):
    ctx.fifo_fd = 9  # root stays dumpable: no prctl needed to reach exec.fifo
    User().run(ctx)
    assert_calls(ctx, [("chdir", "/"), ("setgroups", []), ("setresgid", 0, 0, 0),
                       ("setresuid", 0, 0, 0), ("umask", 0o022)])


def test_user_groups_gid_uid_in_order(make_ctx):
    spec = default_spec()
    spec["process"]["user"] = {"uid": 1000, "gid": 100, "additionalGids": [10, 20], "umask": 0o077}
    spec["process"]["cwd"] = "/home/u"
    ctx = make_ctx(spec)
    ctx.fifo_fd = 9  # init, which reopens exec.fifo through /proc/self/fd after the switch
    User().run(ctx)
    assert_calls(ctx, [("chdir", "/home/u"), ("setgroups", [10, 20]), ("setresgid", 100, 100, 100),
                       ("setresuid", 1000, 1000, 1000), ("prctl", S.PR_SET_DUMPABLE, 1, 0, 0, 0),
                       ("umask", 0o077)])
    assert "setresuid 1000" in User().describe(ctx) and "chdir /home/u" in User().describe(ctx)


@pytest.mark.parametrize("first,then", [(errno.EACCES, 0), (EPERM, 0), (errno.EACCES, errno.EACCES)])
def test_user_cwd_retried_after_the_switch_on_permission_errors(make_ctx, first, then):
    """runc's finalizeNamespace: chdir as root; EACCES/EPERM (Go's os.IsPermission) retries
    it once as the user; the second failure is the error."""
    spec = default_spec()
    spec["process"]["user"] = {"uid": 1000, "gid": 1000}
    spec["process"]["cwd"] = "/srv"
    ctx = make_ctx(spec)
    ctx.sys.fail("chdir", first)  # each failure once, in turn
    if then:
        ctx.sys.fail("chdir", then)
    if then:
        assert str(stage_error(User().run, ctx)) == ("stage user: chdir /srv (config "
                                                     "/process/cwd): permission denied")
    else:
        User().run(ctx)
    assert [c[0] for c in ctx.sys.calls if c[0] in ("chdir", "setresuid")] == [
        "chdir", "setresuid", "chdir"]


def test_user_cwd_missing_fails_before_the_switch(make_ctx):
    spec = default_spec()
    spec["process"]["cwd"] = "/nope"
    ctx = make_ctx(spec)
    ctx.sys.fail("chdir", errno.ENOENT)
    assert str(stage_error(User().run, ctx)) == ("stage user: chdir /nope (config /process/cwd): "
                                                 "no such file or directory")
    assert [c[0] for c in ctx.sys.calls if c[0] != "fd_flags"] == ["chdir"]


def test_user_in_userns_skips_empty_setgroups(make_ctx):
    ctx = make_ctx(userns_spec())
    User().run(ctx)
    assert [c[0] for c in ctx.sys.calls] == ["chdir", "setresgid", "setresuid", "umask"]


@pytest.fixture
def stdio_kinds(tmp_path):
    """fds of every kind stdio can be: a pipe, a file written to and one read from, a socket,
    a pty of the test's own, and a character device; only opened, never changed here."""
    import socket
    r, w = os.pipe()
    (tmp_path / "in").write_text("")
    a, b = socket.socketpair()
    master, slave = os.openpty()
    fds = {"pipe": w, "file-written": os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT, 0o644),
           "file-read": os.open(tmp_path / "in", os.O_RDONLY), "socket": a.fileno(),
           "pty": slave, "null": os.open("/dev/null", os.O_RDONLY)}
    yield fds
    for fd in (r, w, master, slave, fds["file-written"], fds["file-read"], fds["null"]):
        os.close(fd)
    a.close()
    b.close()


def test_stdio_to_chown_decides_like_runc_but_never_a_callers_device(stdio_kinds):
    def decide(name, uid=1000, pty=None):
        fd = stdio_kinds[name]
        return stdio_to_chown(os.fstat(fd), S.fd_flags(fd), uid, pty)
    assert decide("pipe") and decide("socket") and decide("file-written")
    assert not decide("file-read")  # a file read as stdin keeps its owner
    assert not decide("pty") and not decide("null")  # the caller's terminal, /dev/null
    st = os.fstat(stdio_kinds["pty"])
    assert decide("pty", pty=(st.st_dev, st.st_ino))  # the pty allocated for the container
    assert not decide("null", pty=(st.st_dev, st.st_ino))
    owner = os.fstat(stdio_kinds["pipe"]).st_uid
    assert not decide("pipe", uid=owner)  # already the user's


def test_user_hands_stdio_before_the_switch(make_ctx, monkeypatch, stdio_kinds):
    kinds = ("pipe", "null", "file-read")
    monkeypatch.setattr(process_stage, "STDIO", tuple(stdio_kinds[k] for k in kinds))
    spec = default_spec()
    spec["process"]["user"] = {"uid": 1000, "gid": 100}
    ctx = make_ctx(spec)
    User().run(ctx)
    names = [c[0] for c in ctx.sys.calls if c[0] != "fd_flags"]
    assert names[:4] == ["fchown_user", "chdir", "setgroups", "setresgid"]  # while CAP_CHOWN is ours
    assert ctx.sys.of("fchown_user") == [("fchown_user", stdio_kinds["pipe"], 1000)]
    assert "never the caller's devices" in User().describe(ctx)


@pytest.mark.parametrize("err", [errno.EPERM, errno.EINVAL, errno.EROFS])
def test_user_stdio_chown_refusals_are_ignored_like_runc(make_ctx, monkeypatch, stdio_kinds, err):
    monkeypatch.setattr(process_stage, "STDIO", (stdio_kinds["pipe"],))
    spec = default_spec()
    spec["process"]["user"] = {"uid": 1000, "gid": 100}
    ctx = make_ctx(spec)
    ctx.sys.fail("fchown_user", err)
    User().run(ctx)
    assert ctx.sys.of("setresuid") == [("setresuid", 1000, 1000, 1000)]


def test_user_stdio_chown_other_errors_fail_the_stage(make_ctx, monkeypatch, stdio_kinds):
    monkeypatch.setattr(process_stage, "STDIO", (stdio_kinds["pipe"],))
    spec = default_spec()
    spec["process"]["user"] = {"uid": 1000, "gid": 100}
    ctx = make_ctx(spec)
    ctx.sys.fail("fchown_user", errno.EIO)
    err = stage_error(User().run, ctx)
    assert str(err) == "stage user: fchown fd %d (config /process/user/uid): input/output error" % (
        stdio_kinds["pipe"])
    assert not ctx.sys.of("setresuid")


def test_exec_process_stays_non_dumpable_after_user_switch(make_ctx):
    """An exec'd process (no exec.fifo) must not become dumpable: the container's own processes
    could open its /proc/<pid>/exe, the host's interpreter, before execve (CVE-2019-5736)."""
    spec = default_spec()
    spec["process"]["user"] = {"uid": 1000, "gid": 100}
    ctx = make_ctx(spec)
    assert ctx.fifo_fd == -1
    User().run(ctx)
    assert "prctl" not in [c[0] for c in ctx.sys.calls]


@pytest.mark.parametrize("name,pointer", [("setgroups", "/process/user/additionalGids"),
                                          ("setresgid", "/process/user/gid"),
                                          ("setresuid", "/process/user/uid"),
                                          ("chdir", "/process/cwd")])
def test_user_error_pointers(make_ctx, name, pointer):
    spec = default_spec()
    spec["process"]["user"] = {"uid": 1000, "gid": 100}
    ctx = make_ctx(spec)
    ctx.sys.fail(name, EPERM)
    if name == "chdir":  # EPERM as root is retried as the user: fail that too
        ctx.sys.fail(name, EPERM)
    err = stage_error(User().run, ctx)
    assert err.pointer == pointer
    assert ctx.sys.calls[-1][0] == name  # nothing after the failing call
    if name == "setresuid":
        assert str(err) == "stage user: setresuid 1000 (config /process/user/uid): operation not permitted"


# --- paths -----------------------------------------------------------------------------------------

def test_paths_masks_and_readonly(make_ctx, tmp_path):
    c = tmp_path / "c"
    (c / "acpi").mkdir(parents=True)
    (c / "kcore").write_text("")
    (c / "sys").mkdir()
    spec = spec_with(maskedPaths=[str(c / "acpi"), str(c / "kcore"), str(c / "missing")],
                     readonlyPaths=[str(c / "missing2"), str(c / "sys")])
    ctx = make_ctx(spec)
    Paths().run(ctx)
    sysd = str(c / "sys")
    locked_sys = os.statvfs(sysd).f_flag & LOCKED
    locked_root = os.statvfs("/").f_flag & LOCKED
    assert_calls(ctx, [
        mount(sysd, sysd, None, S.MS_BIND | S.MS_REC),
        mount(None, sysd, None, RO_BIND | S.MS_REC | locked_sys),
        mount("tmpfs", str(c / "acpi"), "tmpfs", S.MS_RDONLY),
        mount("/dev/null", str(c / "kcore"), None, S.MS_BIND),
        mount(None, "/", None, RO_BIND | locked_root),
    ])


def test_paths_nothing_to_do(make_ctx, tmp_path):
    spec = spec_with(maskedPaths=[str(tmp_path / "nope")], readonlyPaths=[])
    spec["root"]["readonly"] = False
    ctx = make_ctx(spec)
    Paths().run(ctx)
    assert ctx.sys.calls == []
    assert "bind read-only: nothing" in Paths().describe(ctx)


def test_paths_error_pointer(make_ctx, tmp_path):
    (tmp_path / "k").write_text("")
    ctx = make_ctx(spec_with(maskedPaths=[str(tmp_path / "nope"), str(tmp_path / "k")],
                             readonlyPaths=[]))
    ctx.sys.fail("mount", EPERM)
    err = stage_error(Paths().run, ctx)
    assert str(err) == (f"stage paths: mount {tmp_path}/k (config /linux/maskedPaths/1): "
                        "operation not permitted")


# --- exec (pure parts; handoff is never called) ---------------------------------------------------

def test_env_path():
    assert env_path(["TERM=xterm", "PATH=/a:/b"]) == "/a:/b"
    assert env_path(["TERM=xterm"]) == DEFAULT_PATH
    assert env_path([]) == DEFAULT_PATH


def test_env_path_last_wins():
    assert env_path(["PATH=/first", "PATH=/second"]) == "/second"


def test_look_path(tmp_path, monkeypatch):
    a, b, d = tmp_path / "a", tmp_path / "b", tmp_path / "d"
    for x in (a, b, d):
        x.mkdir()
    (a / "prog").write_text("")            # not executable: skipped
    (b / "prog").write_text("#!/bin/sh\n")
    (b / "prog").chmod(0o755)
    (d / "prog").mkdir(mode=0o755)         # a directory: skipped
    path = f"{a}:{d}:{b}"
    assert look_path("prog", path) == f"{b}/prog"
    assert look_path("missing", path) is None
    assert look_path(str(b / "prog"), "") == str(b / "prog")   # a slash: used as is
    with pytest.raises(PermissionError):  # a slash and not executable: runc's "permission denied"
        look_path(str(a / "prog"), path)
    assert look_path(str(a / "nothing"), path) is None
    monkeypatch.chdir(b)
    assert look_path("prog", f"{a}::") == "./prog"              # empty entry means "."


def test_exec_run_reports_missing_program(make_ctx):
    ctx = make_ctx()
    ctx.spec["process"]["args"] = ["no-such-program-ocish"]
    err = stage_error(Exec().run, ctx)
    assert str(err) == ('stage exec: exec "no-such-program-ocish" (config /process/args/0): '
                        "executable file not found in $PATH")
    ctx.spec["process"]["args"] = ["/no/such/prog"]
    assert str(stage_error(Exec().run, ctx)).endswith(": no such file or directory")


def test_exec_run_needs_proc_for_the_fifo(make_ctx, tmp_path):
    prog = tmp_path / "prog"
    prog.write_text("#!/bin/sh\n")
    prog.chmod(0o755)
    ctx = make_ctx(fifo_fd=-1)
    ctx.spec["process"]["args"] = [str(prog)]
    err = stage_error(Exec().run, ctx)
    assert ctx.notes["exec_path"] == str(prog)
    assert err.pointer == "/mounts" and "no /proc mounted" in str(err)


def test_pipeline_order_and_sides():
    stages = pipeline()
    names = [s.name for s in stages]
    ours = ["cgroup", "unshare", "idmap", "mounts", "pivot", "process", "paths", "user", "exec"]
    assert [n for n in names if n in ours] == ours  # other stages may sit in between
    assert names[0] == "cgroup" and names[-1] == "exec" and len(set(names)) == len(names)
    sides = {s.name: s.side for s in stages}
    assert [n for n in ours if sides[n] == HOST] == ["cgroup", "idmap"]
    assert all(s.side in (HOST, CONTAINER) for s in stages)


# --- network ---------------------------------------------------------------------------------------

def test_network_sets_lo_up_only_in_a_new_network_namespace(make_ctx):
    from runtime.stages.network import Network
    ctx = make_ctx()
    Network().run(ctx)
    assert ctx.sys.calls == [("link_up", "lo")]
    i = [n["type"] for n in ctx.linux["namespaces"]].index("network")
    assert f"(config /linux/namespaces/{i})" in Network().describe(ctx)
    ctx.sys.fail("link_up", errno.EPERM)
    err = stage_error(Network().run, ctx)
    assert str(err) == (f"stage network: set link up lo (config /linux/namespaces/{i}): "
                        "operation not permitted")
    for joined in (True, False):  # a joined namespace, or the runtime's own: left alone
        spec = default_spec()
        nss = spec["linux"]["namespaces"]
        if joined:
            nss[i] = {"type": "network", "path": "/proc/1/ns/net"}
        else:
            del nss[i]
        ctx = make_ctx(spec)
        Network().run(ctx)
        assert ctx.sys.calls == [] and "left as it is" in Network().describe(ctx)


def test_netlink_setlink_request_and_ack():
    from runtime.linux import netlink
    msg = netlink.setlink_request("lo", netlink.IFF_UP, netlink.IFF_UP, seq=7)
    u = lambda b: int.from_bytes(b, sys.byteorder)  # noqa: E731
    assert u(msg[0:4]) == len(msg) == 16 + 16 + 8  # header, ifinfomsg, IFLA_IFNAME "lo\0" + pad
    assert (u(msg[4:6]), u(msg[6:8]), u(msg[8:12])) == (netlink.RTM_NEWLINK, 0x5, 7)
    assert (u(msg[20:24]), u(msg[24:28]), u(msg[28:32])) == (0, 1, 1)  # index 0, IFF_UP, mask
    assert msg[32:] == (7).to_bytes(2, sys.byteorder) + (3).to_bytes(2, sys.byteorder) + b"lo\0\0"
    ack = lambda err, seq=7: ((36).to_bytes(4, sys.byteorder) + (2).to_bytes(2, sys.byteorder)  # noqa: E731
                              + b"\0\0" + seq.to_bytes(4, sys.byteorder) + b"\0" * 4
                              + err.to_bytes(4, sys.byteorder, signed=True) + msg[:16])
    assert netlink.ack_errno(ack(0), 7) == 0
    assert netlink.ack_errno(ack(-errno.ENODEV), 7) == errno.ENODEV
    with pytest.raises(ValueError):
        netlink.ack_errno(ack(0, seq=8), 7)
