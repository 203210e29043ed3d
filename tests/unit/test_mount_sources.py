"""Bind sources the host opens (Stage.host_fds), fds over the sync channel, id-mapped mounts,
with the recording syscall fake."""
from __future__ import annotations

import os

import pytest

from runtime import sync
from runtime.defaults import default_spec
from runtime.engine import Context
from runtime.errors import StageError
from runtime.linux import nsfs
from runtime.linux import syscalls as S
from runtime.linux.fake import RecordingSyscalls
from runtime.stages import mountsource
from runtime.stages.mounts import Mounts


@pytest.fixture
def make_ctx(tmp_path, monkeypatch):
    """Contexts whose syscalls are recorded; the helper that makes the copy in the container's
    mount namespace runs inline (its fork would take the record with it: tested below)."""
    monkeypatch.setattr(mountsource, "in_container_mount_ns", lambda ctx, stage, ptr, make: make())
    (tmp_path / "rootfs").mkdir()
    (tmp_path / "data").mkdir()

    def make(spec: dict) -> Context:
        ctx = Context("t1", str(tmp_path), spec, str(tmp_path / "rootfs"), str(tmp_path / "state"),
                      sys=RecordingSyscalls(root=tmp_path))
        ctx.pid = os.getpid()
        return ctx
    return make


def spec_with_bind(userns: bool, **extra) -> dict:
    spec = default_spec()
    if userns:
        spec["linux"]["namespaces"].append({"type": "user"})
        spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    spec["mounts"].append({"destination": "/data", "source": "data", "options": ["rbind", "ro"],
                           **extra})
    return spec


def test_channel_carries_fds_with_a_message(tmp_path):
    host, child = sync.pair()
    (tmp_path / "f").write_text("x")
    fd = os.open(tmp_path / "f", os.O_RDONLY | os.O_CLOEXEC)
    try:
        host.send(sync.Run("mounts", "/mounts/7"), [fd])
        host.send(sync.Run("mounts", "/mounts/8"))
        msg = child.recv(fds=True)
        got = child.take_fds()
        assert (msg.stage, msg.item, len(got)) == ("mounts", "/mounts/7", 1)
        assert os.path.samestat(os.fstat(got[0]), os.fstat(fd))
        assert not os.get_inheritable(got[0])  # MSG_CMSG_CLOEXEC
        assert child.recv(fds=True).item == "/mounts/8" and child.take_fds() == []
        host.send(sync.Run("mounts", "/mounts/9"), [fd])  # read with recv(2): fds dropped
        assert child.recv().item == "/mounts/9" and child.take_fds() == []
        os.close(got[0])
    finally:
        os.close(fd)
        host.close()
        child.close()


def test_no_host_fds_without_a_user_namespace(make_ctx):
    ctx = make_ctx(spec_with_bind(userns=False))
    assert Mounts().host_fds(ctx, "/mounts/7") == [] and ctx.sys.calls == []
    assert Mounts().host_fds(ctx, "rootfs") == []


def test_user_namespace_bind_source_opened_by_the_host(make_ctx, tmp_path):
    """A detached recursive copy, made a slave as a bind in the container's rslave namespace
    would be; the container side attaches it and remounts it read-only later."""
    ctx = make_ctx(spec_with_bind(userns=True))
    fds = Mounts().host_fds(ctx, "/mounts/7")
    assert len(fds) == 1
    assert ctx.sys.calls == [("open_tree", str(tmp_path / "data"), True),
                             ("mount_setattr", 0, 0, S.MS_SLAVE, True)]
    assert "move_mount(2) bind data on /data" in Mounts().describe(ctx)
    ctx.sys.clear()
    ctx.fds = fds  # as the engine's container side hands them over
    Mounts().run(ctx, "/mounts/7")
    assert ctx.sys.calls == [("move_mount", f"{ctx.rootfs}/data")]
    assert ctx.notes["readonly_later"][0][0] == "/data"
    os.close(fds[0])


def test_private_root_propagation_makes_the_copy_private(make_ctx):
    spec = spec_with_bind(userns=True)
    spec["linux"]["rootfsPropagation"] = "rprivate"
    ctx = make_ctx(spec)
    os.close(Mounts().host_fds(ctx, "/mounts/7")[0])
    assert ctx.sys.calls[1] == ("mount_setattr", 0, 0, S.MS_PRIVATE, True)


def test_idmapped_bind_takes_the_containers_user_namespace(make_ctx):
    spec = spec_with_bind(userns=True)
    spec["mounts"][-1]["options"] = ["rbind", "ridmap"]
    ctx = make_ctx(spec)
    os.close(Mounts().host_fds(ctx, "/mounts/7")[0])
    assert ctx.sys.calls[-1] == ("mount_setattr", S.MOUNT_ATTR_IDMAP, 0, 0, True)
    assert "id-mapped copy" in Mounts().describe(ctx)


def test_idmapped_bind_with_mappings_of_its_own(make_ctx, monkeypatch):
    made = []

    def new_userns(uid_map, gid_map):
        made.append((uid_map, gid_map))
        return os.open("/proc/self/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    monkeypatch.setattr(nsfs, "new_userns", new_userns)
    m = [{"containerID": 1234, "hostID": 5000, "size": 1}]
    ctx = make_ctx(spec_with_bind(userns=False, uidMappings=m, gidMappings=m))
    os.close(Mounts().host_fds(ctx, "/mounts/7")[0])
    assert made == [("1234 5000 1\n", "1234 5000 1\n")]
    assert ctx.sys.calls[-1] == ("mount_setattr", S.MOUNT_ATTR_IDMAP, 0, 0, False)


def test_idmap_refused_by_the_filesystem_says_so(make_ctx):
    spec = spec_with_bind(userns=True)
    spec["mounts"][-1]["options"] = ["bind", "idmap"]
    ctx = make_ctx(spec)
    ctx.sys.fail("mount_setattr", 22, when=lambda a_set, *rest: a_set & S.MOUNT_ATTR_IDMAP)
    with pytest.raises(StageError) as info:
        Mounts().host_fds(ctx, "/mounts/7")
    assert info.value.pointer == "/mounts/7/options"
    assert "may not support id-mapped mounts" in str(info.value)


def test_open_tree_failure_points_at_the_source(make_ctx):
    ctx = make_ctx(spec_with_bind(userns=True))
    ctx.sys.fail("open_tree", 2)
    with pytest.raises(StageError) as info:
        Mounts().host_fds(ctx, "/mounts/7")
    assert (info.value.op, info.value.pointer) == ("open_tree", "/mounts/7/source")


def test_new_userns_has_the_maps():
    if os.geteuid() != 0:
        pytest.skip("writes another namespace's maps: needs root")
    fd = nsfs.new_userns("0 100000 10\n", "0 200000 10\n")
    try:
        assert os.readlink(f"/proc/self/fd/{fd}").startswith("user:[")
        assert os.readlink(f"/proc/self/fd/{fd}") != os.readlink("/proc/self/ns/user")
    finally:
        os.close(fd)


def test_helper_hands_back_the_fd_it_made(tmp_path):
    """A real fork; our own mount namespace (ctx.pid is us), so no setns(2)."""
    (tmp_path / "f").write_text("x")
    ctx = Context("t1", str(tmp_path), default_spec(), str(tmp_path), str(tmp_path / "state"),
                  sys=RecordingSyscalls(root=tmp_path))
    ctx.pid = os.getpid()
    fd = mountsource.in_container_mount_ns(
        ctx, "mounts", "/mounts/7", lambda: os.open(tmp_path / "f", os.O_RDONLY | os.O_CLOEXEC))
    try:
        assert os.path.samestat(os.fstat(fd), os.stat(tmp_path / "f"))
    finally:
        os.close(fd)

    def refused():
        raise StageError("mounts", "open_tree", '"/x"', 13, "/mounts/7/source")
    with pytest.raises(StageError) as info:
        mountsource.in_container_mount_ns(ctx, "mounts", "/mounts/7", refused)
    assert str(info.value) == ('stage mounts: open_tree "/x" (config /mounts/7/source): '
                               'permission denied')

    def crash():
        raise RuntimeError("boom")
    with pytest.raises(StageError) as info:
        mountsource.in_container_mount_ns(ctx, "mounts", "/mounts/7", crash)
    assert "helper in the container's mount namespace died" in str(info.value)
