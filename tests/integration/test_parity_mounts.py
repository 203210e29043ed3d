"""runc parity for the rootfs, mounts and devices (issue 10), checked from inside with busybox.

Each test runs the same bundle under ocish and, where runc 1.1.5 behaves as the spec (or its own
later fix) says, under runc with its own --root in tmp_path, each on a fresh copy of the bundle
(a run may change its rootfs: a created cwd, a mount point), and compares what the container
reports. Where runc is wrong or lacks the feature, the runc half is left out and the test says why.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from tests.conftest import REPO, cid, needs_root, ocish_cmd

pytestmark = needs_root
RUNC = shutil.which("runc")


def wait_for(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def run_runc(tmp_path, bundle, *args: str) -> subprocess.CompletedProcess:
    """`runc run` of `bundle` in the foreground (its own --root in tmp_path), deleted after."""
    c, root = cid(), str(tmp_path / "runc")
    try:
        return subprocess.run([RUNC, "--root", root, "run", *args, "-b", str(bundle), c],
                              capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    finally:
        subprocess.run([RUNC, "--root", root, "delete", "-f", c], capture_output=True)


def both(ocish, make_bundle, tmp_path, script: str, mutate=None, prepare=None, runc: bool = True):
    """(ocish's, runc's) CompletedProcess of `sh -c script` in the same bundle, each run on its
    own copy; runc's is None when runc is not installed or `runc` is False."""
    out = []
    for who in ("ocish", "runc"):
        if who == "runc" and not (runc and RUNC):
            out.append(None)
            continue
        b = make_bundle(["sh", "-c", script], mutate=mutate)
        if prepare:
            prepare(b)
        out.append(ocish("run", "-b", str(b), cid()) if who == "ocish" else run_runc(tmp_path, b))
    return out


def same(ours, theirs, expected: str | None = None) -> None:
    """ocish printed what runc printed (when runc ran), both exited 0, and `expected` if given."""
    assert ours.returncode == 0, ours.stderr
    if theirs is not None:
        assert theirs.returncode == 0, theirs.stderr
        assert ours.stdout == theirs.stdout
    if expected is not None:
        assert ours.stdout == expected


# --- 1. process.cwd ----------------------------------------------------------------------------

def test_missing_cwd_is_created_like_runc(ocish, make_bundle, tmp_path):
    """runc (prepareRootfs: MkdirAll(cwd, 0755) after the jail) and crun create a missing cwd,
    as the container's root, before the read-only root applies; the process then enters it."""
    def mutate(spec):
        spec["process"]["cwd"] = "/new/dir"
        spec["process"]["user"] = {"uid": 1000, "gid": 1000}
        assert spec["root"]["readonly"]
    ours, theirs = both(ocish, make_bundle, tmp_path, "pwd; stat -c '%n %a %u %g' /new /new/dir",
                        mutate)
    same(ours, theirs, "/new/dir\n/new 755 0 0\n/new/dir 755 0 0\n")


def test_cwd_that_is_a_file_fails_create(ocish, make_bundle):
    b = make_bundle(["true"], mutate=lambda s: s["process"].update(cwd="/etc/passwd"))
    p = ocish("run", "-b", str(b), cid())
    assert p.returncode == 1
    # Go's os.MkdirAll (runc's createCwd) reports a file on the way as ENOTDIR
    assert p.stderr == ("ocish: create failed: stage pivot: mkdir /etc/passwd (config "
                        "/process/cwd): not a directory\n")  # Go's MkdirAll: ENOTDIR
    assert os.listdir(ocish.root) == []


def test_exec_cwd_is_not_created_like_runc(ocish, make_bundle, tmp_path):
    """`runc exec --cwd` of a missing directory fails (its setns init only chdirs), exit 255."""
    b = make_bundle(["sleep", "30"])
    c = cid()
    ocish("run", "-d", "-b", str(b), c, check=True)
    p = ocish("exec", "--cwd", "/nope", c, "true")
    assert (p.returncode, p.stderr) == (255, "ocish: exec failed: stage user: chdir /nope "
                                             "(exec --cwd): no such file or directory\n")
    assert not (b / "rootfs/nope").exists()
    if RUNC:
        root, rc = str(tmp_path / "runc"), cid()
        subprocess.run([RUNC, "--root", root, "run", "-d", "-b", str(make_bundle(["sleep", "30"])),
                        rc], check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        try:
            theirs = subprocess.run([RUNC, "--root", root, "exec", "--cwd", "/nope", rc, "true"],
                                    capture_output=True, text=True)
            assert theirs.returncode == 255 and "no such file or directory" in theirs.stderr
        finally:
            subprocess.run([RUNC, "--root", root, "delete", "-f", rc], capture_output=True)


# --- 2. tmpfs mode -------------------------------------------------------------------------------

def _tmpfs(dest: str, *options: str) -> dict:
    return {"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": list(options)}


def test_tmpfs_takes_the_mode_of_the_directory_it_covers_like_runc(ocish, make_bundle, tmp_path):
    def mutate(spec):
        spec["mounts"] += [_tmpfs("/data", "size=1m"), _tmpfs("/newdir"), _tmpfs("/opt/sticky")]

    def prepare(b):
        (b / "rootfs/data").mkdir(mode=0o700)
        (b / "rootfs/data").chmod(0o2710)  # setgid kept too
        (b / "rootfs/opt/sticky").mkdir(parents=True)
        (b / "rootfs/opt/sticky").chmod(0o1750)
    ours, theirs = both(ocish, make_bundle, tmp_path,
                        "stat -c '%n %a' /data /newdir /opt/sticky; grep -c ' /data tmpfs' /proc/mounts",
                        mutate, prepare)
    same(ours, theirs, "/data 2710\n/newdir 1777\n/opt/sticky 1750\n1\n")


def test_tmpfs_mode_option_wins_over_the_directory(ocish, make_bundle):
    """An explicit mode= is kept. No runc half: runc 1.1.5 chmods the mount point back to the
    directory's mode after mounting (/tmp stays 1777), the bug its commit 9fa8b9de fixed (1.2)."""
    b = make_bundle(["stat", "-c", "%n %a", "/tmp", "/dev"],
                    mutate=lambda s: s["mounts"].append(_tmpfs("/tmp", "mode=700")))
    p = ocish("run", "-b", str(b), cid())
    assert (p.returncode, p.stdout) == (0, "/tmp 700\n/dev 755\n"), p.stderr


# --- 4. read-only mounts with what lies beneath them -----------------------------------------------

def test_readonly_dev_is_populated_first_like_runc(ocish, make_bundle, tmp_path):
    """runc mounts /dev (and every tmpfs) read-write and remounts it read-only in finalizeRootfs
    (commit fc98958 "Remount /dev as ro after it is populated"): devpts, shm, mqueue, the device
    nodes and the /dev symlinks are all there, and /dev refuses writes."""
    def mutate(spec):
        dev = next(m for m in spec["mounts"] if m["destination"] == "/dev")
        dev["options"].append("ro")
        spec["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                                     "fileMode": 0o600}]
    script = ("grep -E ' /dev(/| )' /proc/self/mounts | cut -d' ' -f1-4 | cut -d, -f1; "
              "ls /dev | tr '\\n' ' '; echo; stat -c '%n %t %T %a' /dev/fuse /dev/null; "
              "echo x > /dev/null && echo written; touch /dev/new 2>&1")
    ours, theirs = both(ocish, make_bundle, tmp_path, script, mutate)
    assert theirs is None or theirs.returncode == 1  # touch's status
    assert ours.returncode == 1, ours.stderr
    if theirs is not None:
        assert ours.stdout == theirs.stdout
    assert ours.stdout.splitlines()[:4] == ["tmpfs /dev tmpfs ro", "devpts /dev/pts devpts rw",
                                            "shm /dev/shm tmpfs rw", "mqueue /dev/mqueue mqueue rw"]
    assert "/dev/fuse a e5 600" in ours.stdout and "written" in ours.stdout
    assert ours.stdout.endswith("touch: /dev/new: Read-only file system\n")


def test_readonly_bind_with_a_mount_beneath_it(ocish, make_bundle, open_dir):
    """A read-only bind whose mount point below it must still be created: crun defers every
    read-only remount (finalize_mounts); runc 1.1.5 remounts a bind read-only at once and then
    fails to create the mount point (EROFS), so there is no runc half."""
    src = open_dir / "data"
    src.mkdir()
    (src / "f").write_text("data\n")

    def mutate(spec):
        spec["mounts"] += [{"destination": "/data", "type": "bind", "source": str(src),
                            "options": ["rbind", "ro", "nosuid"]}, _tmpfs("/data/scratch", "size=1m")]
    b = make_bundle(["sh", "-c", "cat /data/f; echo y > /data/scratch/y && cat /data/scratch/y; "
                                 "grep -E ' /data(/| )' /proc/self/mounts | cut -d' ' -f2,4 | "
                                 "cut -d, -f1,2; touch /data/z"], mutate=mutate)
    p = ocish("run", "-b", str(b), cid())
    assert p.returncode == 1, p.stderr
    assert p.stdout == "data\ny\n/data ro,nosuid\n/data/scratch rw,relatime\n"
    assert "Read-only file system" in p.stderr


# --- 15. devices in a user namespace ---------------------------------------------------------------

def _userns(spec: dict) -> None:
    spec["linux"]["namespaces"].append({"type": "user"})
    spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    spec["linux"].pop("resources", None)
    spec["mounts"] = [m for m in spec["mounts"] if m["type"] != "cgroup"]


DEVICES = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o600},
           {"path": "/dev/net/tun", "type": "c", "major": 10, "minor": 200, "fileMode": 0o600}]
# the nodes (type, major, minor), that they work, and the per-mount flags of each bound one
DEVICE_SCRIPT = ("stat -c '%n %F %t %T' /dev/null /dev/zero /dev/fuse /dev/net/tun; "
                 "echo x > /dev/null && head -c 3 /dev/zero | wc -c; "
                 "grep -E ' /dev/(null|zero|fuse|net/tun) ' /proc/self/mountinfo | "
                 "cut -d' ' -f5,6 | sed 's/,relatime//'")


def test_devices_in_a_user_namespace_are_bound_nosuid_noexec(ocish, make_bundle, open_dir, tmp_path):
    """mknod(2) is refused in a user namespace: the configured devices and the defaults are the
    host's nodes bind-mounted (runc does the same), nosuid,noexec (crun does; runc 1.1.5 binds
    them without: its mountinfo lines are not compared)."""
    def mutate(spec):
        _userns(spec)
        spec["linux"]["devices"] = DEVICES
    make = lambda *a, **k: make_bundle(*a, base=open_dir, **k)  # noqa: E731
    ours, theirs = both(ocish, make, tmp_path, DEVICE_SCRIPT, mutate)
    assert ours.returncode == 0, ours.stderr
    nodes = ["/dev/null character special file 1 3", "/dev/zero character special file 1 5",
             "/dev/fuse character special file a e5", "/dev/net/tun character special file a c8",
             "3"]
    assert ours.stdout.splitlines()[:5] == nodes
    assert sorted(ours.stdout.splitlines()[5:]) == [f"{d} rw,nosuid,noexec" for d in (
        "/dev/fuse", "/dev/net/tun", "/dev/null", "/dev/zero")]
    if theirs is not None:
        assert theirs.returncode == 0, theirs.stderr
        assert theirs.stdout.splitlines()[:5] == nodes


def test_devices_in_a_joined_user_namespace_are_bound(ocish, make_bundle, open_dir):
    """A user namespace joined by path refuses mknod(2) as much as a new one."""
    holder = cid()
    ocish("run", "-d", "-b", str(make_bundle(["sleep", "30"], mutate=_userns, base=open_dir)),
          holder, check=True)
    userns = f"/proc/{ocish.state(holder)['pid']}/ns/user"

    def mutate(spec):
        _userns(spec)
        del spec["linux"]["uidMappings"], spec["linux"]["gidMappings"]
        spec["linux"]["namespaces"][-1]["path"] = userns
        spec["linux"]["devices"] = DEVICES
    p = ocish("run", "-b", str(make_bundle(["sh", "-c", "readlink /proc/self/ns/user; " + DEVICE_SCRIPT],
                                           mutate=mutate, base=open_dir)), cid())
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == os.readlink(userns)
    assert lines[3:6] == ["/dev/fuse character special file a e5",
                          "/dev/net/tun character special file a c8", "3"]
    assert "/dev/fuse rw,nosuid,noexec" in lines


# --- 8. no /proc in the container ------------------------------------------------------------------

def _no_proc(spec: dict) -> None:
    spec["mounts"] = [m for m in spec["mounts"] if m["destination"] != "/proc"]


@pytest.mark.parametrize("userns", [False, True], ids=["root", "userns-uid-1000"])
def test_bundle_without_proc_runs_like_crun(ocish, make_bundle, open_dir, tmp_path, userns):
    """crun runs a bundle that mounts no /proc; runc 1.1.5 fails it ("error closing exec fds:
    open /proc/self/fd"), so there is no runc half. exec.fifo is reached through a procfs
    handle (a private procfs mounted nowhere), oom_score_adj is written through it, the fds are
    swept with close_range(2) and --preserve-fds still hands fd 3 over. As root (with
    CAP_SYS_ADMIN) the container then mounts a /proc of its own to show that it got no other fd;
    in a user namespace as uid 1000, init stays non-dumpable until execve(2)."""
    def mutate(spec):
        _no_proc(spec)
        spec["process"]["oomScoreAdj"] = 123
        if userns:
            _userns(spec)
            spec["process"]["user"] = {"uid": 1000, "gid": 1000}
        else:
            caps = spec["process"]["capabilities"]
            for key in ("bounding", "effective", "permitted"):
                caps[key].append("CAP_SYS_ADMIN")
    check = ("echo uid $(id -u); mount -t proc proc /proc && ls /proc/self/fd | tr '\\n' ' '; "
             "echo" if not userns else "echo uid $(id -u)")
    b = make_bundle(["sh", "-c", f"ls -A /proc | wc -l; cat <&3; {check}; echo done; sleep 30"],
                    mutate=mutate, base=open_dir)
    data, out, pid_file = tmp_path / "passed", tmp_path / "out", tmp_path / "pid"
    data.write_text("through fd 3\n")
    # a shell opens the file as fd 3 of the runtime, as conmon does with --preserve-fds
    cmd = ["sh", "-c", 'exec 3<"$0"; exec "$@"', str(data)] + ocish_cmd() + [
        "--root", ocish.root, "run", "-d", "--preserve-fds", "1", "--pid-file", str(pid_file),
        "-b", str(b), cid()]
    with open(out, "w") as f:
        p = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=60,
                           stdin=subprocess.DEVNULL, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert p.returncode == 0, out.read_text()
    wait_for(lambda: "done" in out.read_text())
    pid = int(pid_file.read_text())
    lines = out.read_text().splitlines()
    assert lines[:3] == ["0", "through fd 3", "uid 1000" if userns else "uid 0"]
    if not userns:  # 3 is the preserved file, 4 ls's own listing of the directory
        assert lines[3].split() == ["0", "1", "2", "3", "4"]
    with open(f"/proc/{pid}/oom_score_adj") as f:
        assert f.read() == "123\n"


def test_exec_into_a_container_without_proc(ocish, make_bundle, tmp_path):
    """`exec` sweeps its fds with close_range(2) too, and writes its oomScoreAdj before joining
    the container (runc's nsexec), where there is no /proc to write it through."""
    c = cid()
    ocish("run", "-d", "-b", str(make_bundle(["sleep", "30"], mutate=_no_proc)), c, check=True)
    p = ocish("exec", c, "sh", "-c", "ls -A /proc | wc -l; echo ran")
    assert (p.returncode, p.stdout) == (0, "0\nran\n"), p.stderr
    process, pid_file = tmp_path / "process.json", tmp_path / "exec.pid"
    process.write_text(json.dumps({"args": ["sleep", "30"], "cwd": "/", "oomScoreAdj": 321,
                                   "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}}))
    ocish("exec", "-d", "--pid-file", str(pid_file), "--process", str(process), c, check=True)
    pid = int(pid_file.read_text())
    try:
        with open(f"/proc/{pid}/oom_score_adj") as f:
            assert f.read() == "321\n"
    finally:  # an orphan of ours (the subreaper): the container's init waits for its reaping
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_oom_score_adj_in_a_user_namespace_like_runc(ocish, make_bundle, open_dir, tmp_path):
    """Written before the user namespace exists (runc's nsexec): inside it the file is the
    host root's once the process is not dumpable, and writing it failed with EACCES."""
    def mutate(spec):
        _userns(spec)
        spec["process"]["oomScoreAdj"] = 100
    make = lambda *a, **k: make_bundle(*a, base=open_dir, **k)  # noqa: E731
    ours, theirs = both(ocish, make, tmp_path, "cat /proc/self/oom_score_adj", mutate)
    same(ours, theirs, "100\n")


# --- 13. bind sources are opened by the host -------------------------------------------------------

def test_bind_source_only_host_root_reaches_like_runc(ocish, make_bundle, open_dir, tmp_path):
    """A user-namespaced container's root cannot search a 0700 directory of the host's root,
    but the host opens the bind sources for it (runc 1.1.5's mount source fds, runc 1.2's
    open_tree): a directory and a file below it, "rbind,ro" and "bind"."""
    secret = tmp_path / "secret"  # pytest's tmp_path is 0700 root's too
    (secret / "inner").mkdir(parents=True)
    secret.chmod(0o700)
    (secret / "inner/f").write_text("s3cret\n")

    def mutate(spec):
        _userns(spec)
        spec["mounts"] += [
            {"destination": "/mnt/in", "type": "bind", "source": str(secret / "inner"),
             "options": ["rbind", "ro"]},
            {"destination": "/mnt/f", "type": "bind", "source": str(secret / "inner/f"),
             "options": ["bind"]}]
    def prepare(b):  # mount points the container's root (host uid 100000) could not make
        (b / "rootfs/mnt/in").mkdir(parents=True)
        (b / "rootfs/mnt/f").write_text("")
    make = lambda *a, **k: make_bundle(*a, base=open_dir, **k)  # noqa: E731
    ours, theirs = both(ocish, make, tmp_path, "cat /mnt/in/f /mnt/f; stat -c '%n %F' /mnt/in "
                        "/mnt/f; grep ' /mnt/' /proc/self/mountinfo | cut -d' ' -f5,6; "
                        "touch /mnt/in/x 2>&1; :", mutate, prepare)
    same(ours, theirs, "s3cret\ns3cret\n/mnt/in directory\n/mnt/f regular file\n"
                       "/mnt/in ro,relatime\n/mnt/f rw,relatime\n"
                       "touch: /mnt/in/x: Read-only file system\n")


def test_bind_source_missing_points_at_source_in_a_user_namespace(ocish, make_bundle, open_dir):
    index = []

    def mutate(spec):
        _userns(spec)
        index.append(len(spec["mounts"]))
        spec["mounts"].append({"destination": "/mnt", "source": "/no/such/dir",
                               "options": ["bind"]})
    p = ocish("run", "-b", str(make_bundle(["true"], mutate=mutate, base=open_dir)), cid())
    n = index[0]
    assert p.returncode == 1
    assert p.stderr == (f'ocish: create failed: stage mounts: open_tree "/no/such/dir" (config '
                        f'/mounts/{n}/source): no such file or directory\n')
    assert os.listdir(ocish.root) == []


# --- 14. id-mapped mounts ----------------------------------------------------------------------

@pytest.fixture
def owned_tree(tmp_path):
    """A tree of files owned by uid 1234/gid 1234 and by root, with a tmpfs mounted in it
    (this test process's private mount namespace), itself holding a file of uid 1234."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    tmp_path.chmod(0o755)
    (src / "f").write_text("data\n")
    os.chown(src / "f", 1234, 1234)
    (src / "root").write_text("")
    from runtime.linux import syscalls as S
    S.mount("tmpfs", str(src / "sub"), "tmpfs", 0, "mode=755")
    (src / "sub/g").write_text("")
    os.chown(src / "sub/g", 1234, 1234)
    yield src
    S.umount2(str(src / "sub"), S.MNT_DETACH)


def _bind(dest: str, src, *options: str, **maps) -> dict:
    return {"destination": dest, "type": "bind", "source": str(src), "options": list(options),
            **maps}


def _map(container_id: int, host_id: int) -> list[dict]:
    return [{"containerID": container_id, "hostID": host_id, "size": 1}]


def test_idmapped_mounts_in_a_user_namespace(ocish, make_bundle, open_dir, owned_tree):
    """No runc half: runc 1.1.5 passes "idmap" to mount(2) as data, which a bind ignores, so
    the mount is silently not id-mapped (runc 1.2 implements it as here). The container is
    root = host uid 100000. "idmap" alone takes that mapping: on-disk uid 1234 shows as 1234,
    root's files as root, and a file the container's root creates is root's on the host.
    Mount mappings of their own (1234 -> 100042/100043) show it as 42/43. "ridmap" maps the
    tmpfs beneath an rbind too; "idmap" maps only the top (the tmpfs file shows unmapped)."""
    def mutate(spec):
        _userns(spec)
        spec["mounts"] += [
            _bind("/mnt/own", owned_tree, "rbind", "idmap"),
            _bind("/mnt/rec", owned_tree, "rbind", "ridmap"),
            _bind("/mnt/maps", owned_tree, "rbind", "idmap", uidMappings=_map(1234, 100042),
                  gidMappings=_map(1234, 100043))]
    script = ("for d in own rec maps; do stat -c \"$d %n %u:%g\" /mnt/$d/f /mnt/$d/root; done; "
              "stat -c '%n %u:%g' /mnt/own/sub/g /mnt/rec/sub/g; touch /mnt/own/new; "
              "grep -E ' /mnt/[a-z]+ ' /proc/self/mountinfo | cut -d' ' -f5,6")
    b = make_bundle(["sh", "-c", script], mutate=mutate, base=open_dir)
    for d in ("own", "rec", "maps"):  # the container's root (host uid 100000) cannot make them
        (b / "rootfs/mnt" / d).mkdir(parents=True)
    p = ocish("run", "-b", str(b), cid())
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        "own /mnt/own/f 1234:1234", "own /mnt/own/root 0:0",
        "rec /mnt/rec/f 1234:1234", "rec /mnt/rec/root 0:0",
        "maps /mnt/maps/f 42:43", "maps /mnt/maps/root 65534:65534",
        "/mnt/own/sub/g 65534:65534", "/mnt/rec/sub/g 1234:1234",
        "/mnt/own rw,relatime,idmapped", "/mnt/rec rw,relatime,idmapped",
        "/mnt/maps rw,relatime,idmapped"]
    st = os.stat(owned_tree / "new")
    assert (st.st_uid, st.st_gid) == (0, 0)


def test_idmapped_mount_without_a_user_namespace(ocish, make_bundle, owned_tree):
    """Mappings of the mount's own need no user namespace in the container: the mount shows
    on-disk uid 1234 as 5000 to everyone."""
    b = make_bundle(["stat", "-c", "%n %u:%g", "/mnt/f", "/mnt/root"], mutate=lambda s: s[
        "mounts"].append(_bind("/mnt", owned_tree, "bind", "ro", uidMappings=_map(1234, 5000),
                               gidMappings=_map(1234, 6000))))
    p = ocish("run", "-b", str(b), cid())
    assert (p.returncode, p.stdout) == (0, "/mnt/f 5000:6000\n/mnt/root 65534:65534\n"), p.stderr


@pytest.mark.parametrize("mount,where,why", [
    (_tmpfs("/mnt", "idmap"), "/mounts/7/options/0", "idmap: id-mapped mounts must be bind mounts"),
    (_bind("/mnt", "/tmp", "bind", "ridmap"), "/mounts/7/options/1",
     "ridmap without uidMappings and gidMappings takes the container's user namespace mapping, "
     "but there is none"),
    (_bind("/mnt", "/tmp", "rbind", uidMappings=[], gidMappings=[]), "/mounts/7/uidMappings",
     "empty: id-mapped mounts must have both uid and gid mappings specified"),
    (_bind("/mnt", "/tmp", "rbind", "idmap", uidMappings=_map(0, 1), gidMappings=[]),
     "/mounts/7/gidMappings", "empty: id-mapped mounts must have both uid and gid mappings"),
    (_bind("/mnt", "/tmp", "rbind", uidMappings=_map(0, 1)), "/mounts/7/gidMappings",
     "missing: id-mapped mounts must have both uid and gid mappings specified"),
    (_bind("/mnt", "/tmp", "rbind", uidMappings=[{"containerID": 2 * i, "hostID": 2 * i,
                                                   "size": 1} for i in range(341)],
           gidMappings=_map(0, 1)), "/mounts/7/uidMappings",
     "has 341 mappings: the kernel takes at most 340 in one id map"),
], ids=["tmpfs", "no-userns", "both-empty", "gid-empty", "gid-missing", "341-entries"])
def test_idmapped_mounts_refused(ocish, make_bundle, mount, where, why):
    """Never ignored: what cannot be id-mapped is refused with the config pointer."""
    b = make_bundle(["true"], mutate=lambda s: s["mounts"].append(mount))
    p = ocish("run", "-b", str(b), cid())
    assert p.returncode == 1 and f"{where}: {why}" in p.stderr, p.stderr
    assert not os.path.exists(ocish.root) or os.listdir(ocish.root) == []


# --- 7. no mount namespace ---------------------------------------------------------------------
# These containers mount in the runtime's mount namespace: here the test process's own, which
# tests/conftest.py made private (unshare(CLONE_NEWNS), "/" rprivate) before any test ran, so
# the host's mount table is never touched; each test checks that first.

@pytest.fixture
def private_mount_ns():
    """The test process is in a mount namespace of its own, not its parent's (PID 1's is not
    readable on these machines), where no mount propagates anywhere."""
    from runtime.linux import procfs
    assert os.readlink("/proc/self/ns/mnt") != os.readlink(f"/proc/{os.getppid()}/ns/mnt")
    assert not any(t.startswith("shared:") for e in procfs.mountinfo() for t in e.optional)
    return os.readlink("/proc/self/ns/mnt")


def _no_mount_ns(spec: dict) -> None:
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "mount"]
    for key in ("maskedPaths", "readonlyPaths"):  # runc's validator: these need one
        spec["linux"].pop(key, None)
    spec["mounts"].append(_tmpfs("/mnt/t", "size=1m"))


def _mounts_under(path) -> list[str]:
    from runtime.linux import procfs
    path = str(path)
    return [e.mountpoint for e in procfs.mountinfo()
            if e.mountpoint == path or e.mountpoint.startswith(path + "/")]


def _detach(path) -> None:
    """What runc leaves behind: its rootfs bind and all beneath it."""
    from runtime.linux import syscalls as S
    while _mounts_under(path):
        S.umount2(str(path), S.MNT_DETACH)


def test_no_mount_namespace_like_runc(ocish, make_bundle, tmp_path, private_mount_ns):
    """runtime-spec: an absent namespace type is inherited. runc (prepareRootfs, then chroot
    without NEWNS) and ocish mount the rootfs and the config's mounts in the runtime's mount
    namespace and chroot into it. The root stays writable here: runc skips root.readonly
    without NEWNS (finalizeRootfs), see the next test. runc's mounts outlive its `delete`;
    ocish's `run` (create, start, delete) leaves none."""
    def mutate(spec):
        _no_mount_ns(spec)
        spec["root"]["readonly"] = False
    script = ("readlink /proc/self/ns/mnt; pwd; ls /; grep ' /mnt/t ' /proc/self/mountinfo | "
              "cut -d' ' -f5,9; grep -c ' /proc ' /proc/self/mountinfo; touch /x && echo rw")
    out = {}
    for who in ("ocish", "runc"):
        b = make_bundle(["sh", "-c", script], mutate=mutate)
        try:
            out[who] = (ocish("run", "-b", str(b), cid()) if who == "ocish"
                        else run_runc(tmp_path, b))
            left = _mounts_under(b / "rootfs")
        finally:
            _detach(b / "rootfs")
        assert out[who].returncode == 0, out[who].stderr
        if who == "ocish":
            assert left == []
    lines = out["ocish"].stdout.splitlines()
    assert lines[:2] == [private_mount_ns, "/"] and lines[-3:] == ["/mnt/t tmpfs", "1", "rw"]
    assert out["ocish"].stdout == out["runc"].stdout


def test_no_mount_namespace_readonly_root_exec_and_delete(ocish, make_bundle, tmp_path,
                                                          private_mount_ns):
    """No runc half, where runc is wrong: it leaves the root writable without NEWNS (the spec:
    root.readonly MUST make it read-only), runs `exec` in the host's root (setns(2) into a
    shared mount namespace leaves the root as it is) and leaves its mounts after `delete`.
    The rootfs is a mount point of its own beforehand (a containerd overlay, say): `delete`
    removes the container's bind on top of it and all beneath, and keeps that mount."""
    from runtime.linux import syscalls as S
    b = make_bundle(["sleep", "300"], mutate=_no_mount_ns)
    rootfs = str(b / "rootfs")
    S.mount(rootfs, rootfs, None, S.MS_BIND)
    try:
        c = cid()
        assert ocish("run", "-d", "-b", str(b), c).returncode == 0
        mounted = _mounts_under(rootfs)
        assert rootfs + "/mnt/t" in mounted and rootfs + "/proc" in mounted
        p = ocish("exec", c, "sh", "-c", "readlink /proc/self/ns/mnt; ls /; touch /x; "
                                          "touch /mnt/t/y && echo tmpfs rw")
        assert p.stdout.splitlines() == ([private_mount_ns] + sorted(os.listdir(rootfs))
                                         + ["tmpfs rw"])
        assert "touch: /x: Read-only file system" in p.stderr
        assert ocish("delete", "-f", c).returncode == 0
        assert _mounts_under(rootfs) == [rootfs]  # the one we made before create
    finally:
        _detach(rootfs)


def test_no_mount_namespace_failed_create_leaves_no_mount(ocish, make_bundle, private_mount_ns):
    index = []

    def mutate(spec):
        _no_mount_ns(spec)
        index.append(len(spec["mounts"]))
        spec["mounts"].append({"destination": "/mnt/b", "type": "bind", "source": "/no/such"})
    b = make_bundle(["true"], mutate=mutate)
    try:
        p = ocish("run", "-b", str(b), cid())
        assert p.returncode == 1 and f"(config /mounts/{index[0]}/source)" in p.stderr, p.stderr
        assert _mounts_under(b / "rootfs") == []
        assert os.listdir(ocish.root) == []
    finally:
        _detach(b / "rootfs")


def test_user_namespace_without_mount_namespace_refused(ocish, make_bundle, private_mount_ns):
    """runc fails it in its init ("mount /, flags: 0x84000: operation not permitted"): the
    container's root has no rights in the runtime's mount namespace. Refused up front."""
    def mutate(spec):
        _no_mount_ns(spec)
        _userns(spec)
    b = make_bundle(["true"], mutate=mutate)
    p = ocish("run", "-b", str(b), cid())
    assert p.returncode == 1
    assert "a new user namespace needs a mount namespace of its own" in p.stderr, p.stderr
    assert _mounts_under(b / "rootfs") == []
    assert not os.path.exists(ocish.root) or os.listdir(ocish.root) == []


def test_no_mount_namespace_create_killed_after_mounts(ocish, make_bundle, monkeypatch,
                                                       private_mount_ns):
    """A create SIGKILLed once the mounts are made (runtime/crashpoint.py): its state.json
    already records them, and `delete -f` unmounts them with the rest."""
    b = make_bundle(["true"], mutate=_no_mount_ns)
    c = cid()
    try:
        monkeypatch.setenv("OCISH_TEST_CRASH", "before:hooks")
        p = ocish("create", "-b", str(b), c)
        monkeypatch.delenv("OCISH_TEST_CRASH")
        assert p.returncode != 0 and str(b / "rootfs/mnt/t") in _mounts_under(b / "rootfs")
        assert ocish("delete", "-f", c).returncode == 0
        assert _mounts_under(b / "rootfs") == []
    finally:
        _detach(b / "rootfs")


def test_plain_bind_of_a_tree_with_submounts_in_a_user_namespace_like_runc(
        ocish, make_bundle, open_dir, owned_tree, tmp_path):
    """The kernel locks the mounts beneath a source to it in the container's mount namespace
    (has_locked_children): a plain "bind" of it fails under runc ("invalid argument") as under
    ocish, which says why; "rbind" works (the test above)."""
    index = []

    def mutate(spec):
        _userns(spec)
        index.append(len(spec["mounts"]))
        spec["mounts"].append(_bind("/mnt/t", owned_tree, "bind"))
    make = lambda *a, **k: make_bundle(*a, base=open_dir, **k)  # noqa: E731
    ours, theirs = both(ocish, make, tmp_path, "true", mutate,
                        lambda b: (b / "rootfs/mnt/t").mkdir(parents=True))
    assert ours.returncode == 1 and ours.stderr.endswith(
        f'(config /mounts/{index[0]}/source): in a user namespace a source with mounts beneath it can '
        'only be bound with them: use "rbind"\n'), ours.stderr
    if theirs is not None:
        assert theirs.returncode == 1 and "invalid argument" in theirs.stderr, theirs.stderr


def test_host_opened_binds_keep_their_locks_like_runc(ocish, make_bundle, open_dir, owned_tree,
                                                      tmp_path):
    """The copy is made in the container's mount namespace, where the kernel locked what it
    inherited: its root (CAP_SYS_ADMIN in its user namespace) can neither remount a host
    read-only mount read-write nor unmount a submount to see beneath it, under runc as under
    ocish. (A copy made in the runtime's namespace would let it do both.)"""
    from runtime.linux import syscalls as S
    src = str(owned_tree)
    S.mount(src, src, None, S.MS_BIND | S.MS_REC)
    try:
        S.mount(None, src, None, S.MS_BIND | S.MS_REMOUNT | S.MS_RDONLY)

        def mutate(spec):
            _userns(spec)
            spec["mounts"].append(_bind("/mnt/t", src, "rbind"))
            caps = spec["process"]["capabilities"]
            for kind in ("bounding", "effective", "permitted"):
                caps[kind].append("CAP_SYS_ADMIN")
        make = lambda *a, **k: make_bundle(*a, base=open_dir, **k)  # noqa: E731
        script = ("mount -o remount,bind,rw /mnt/t 2>/dev/null; echo remount $?; "
                  "umount /mnt/t/sub 2>/dev/null; echo umount $?; ls /mnt/t/sub; "
                  "touch /mnt/t/x 2>/dev/null; echo touch $?")
        ours, theirs = both(ocish, make, tmp_path, script, mutate,
                            lambda b: (b / "rootfs/mnt/t").mkdir(parents=True))
        same(ours, theirs, "remount 1\numount 1\ng\ntouch 1\n")
    finally:
        S.umount2(src, S.MNT_DETACH)


# --- review 2: recursive mount attributes, tmpcopyup, unknown options --------------------------

def test_recursive_bind_options_like_runc(ocish, make_bundle, open_dir, tmp_path):
    """runc 1.1.5's setRecAttr: mount_setattr(AT_RECURSIVE) after the bind. "rro,rnosuid,
    rnoexec" reach the tmpfs mounted beneath the source too; writes fail on both."""
    src = open_dir / "hostdir"
    (src / "sub").mkdir(parents=True)
    (src / "f").write_text("data\n")
    from runtime.linux import syscalls as S
    S.mount("tmpfs", str(src / "sub"), "tmpfs", 0, "mode=755")
    try:
        def mutate(spec):
            spec["mounts"].append(_bind("/data", src, "rbind", "rro", "rnosuid", "rnoexec",
                                        "rnoatime"))
        script = ("cat /data/f; grep -E ' /data(/| )' /proc/self/mounts | cut -d' ' -f2,4 | "
                  "cut -d, -f1-4; touch /data/new /data/sub/new 2>&1 | sed 's/^touch: //'")
        ours, theirs = both(ocish, make_bundle, tmp_path, script, mutate)
        same(ours, theirs, "data\n/data ro,nosuid,noexec,noatime\n"
                           "/data/sub ro,nosuid,noexec,noatime\n"
                           "/data/new: Read-only file system\n"
                           "/data/sub/new: Read-only file system\n")
        assert sorted(os.listdir(src)) == ["f", "sub"]
    finally:
        S.umount2(str(src / "sub"), S.MNT_DETACH)


def test_recursive_options_on_a_tmpfs(ocish, make_bundle, tmp_path):
    """On any mount type, not only binds (crun, runc 1.2: setRecAttr after every mount);
    "rrw" wins over "ro" (runc's remount comes first, setRecAttr after). No runc half: runc
    1.1.5's tmpfs case returns before setRecAttr, so it shows "/t1 rw" and "/t2 ro"."""
    def mutate(spec):
        spec["mounts"] += [_tmpfs("/t1", "rro", "rnodev", "size=1m"),
                           _tmpfs("/t2", "ro", "rrw", "rnoexec")]
    script = ("grep -E ' /t[12] ' /proc/self/mounts | cut -d' ' -f2,4 | cut -d, -f1-3; "
              "touch /t1/x 2>&1 | sed 's/^touch: //'; touch /t2/x && echo t2 written")
    ours, theirs = both(ocish, make_bundle, tmp_path, script, mutate, runc=False)
    same(ours, theirs, "/t1 ro,nodev,relatime\n/t2 rw,noexec,relatime\n"
                       "/t1/x: Read-only file system\nt2 written\n")


def test_ratime_clears_the_atime_mode(ocish, make_bundle):
    """runc 1.1.5 clears only MOUNT_ATTR_NOATIME for "ratime", which the kernel refuses
    (EINVAL: the atime mode is replaced as a whole): no runc half; runc 1.2 and youki clear it."""
    b = make_bundle(["sh", "-c", "grep ' /t ' /proc/self/mounts | cut -d' ' -f4 | cut -d, -f1,2"],
                    mutate=lambda s: s["mounts"].append(_tmpfs("/t", "noatime", "ratime")))
    p = ocish("run", "-b", str(b), cid())
    assert (p.returncode, p.stdout) == (0, "rw,relatime\n"), p.stderr


def test_tmpcopyup_like_runc(ocish, make_bundle, tmp_path):
    """runc's EXT_COPYUP: the new tmpfs holds what the directory it covers held, with modes,
    owners and symlinks; the rootfs's copy is not changed by writes."""
    def prepare(b):
        d = b / "rootfs/opt/app"
        (d / "conf").mkdir(parents=True)
        (d / "conf/a.conf").write_text("a=1\n")
        (d / "run.sh").write_text("#!/bin/sh\n")
        (d / "run.sh").chmod(0o750)
        os.chown(d / "run.sh", 1000, 1000)
        os.symlink("conf/a.conf", d / "link")
    def mutate(spec):
        spec["mounts"].append(_tmpfs("/opt/app", "tmpcopyup", "size=1m"))
    script = ("grep ' /opt/app ' /proc/self/mounts | cut -d' ' -f1,3; cat /opt/app/link; "
              "stat -c '%n %a %u:%g' /opt/app/run.sh /opt/app/conf; echo b > /opt/app/conf/b; "
              "ls /opt/app/conf")
    ours, theirs = both(ocish, make_bundle, tmp_path, script, mutate, prepare)
    same(ours, theirs, "tmpfs tmpfs\na=1\n/opt/app/run.sh 750 1000:1000\n/opt/app/conf 755 0:0\n"
                       "a.conf\nb\n")


@pytest.mark.parametrize("mount,where,why", [
    (_bind("/mnt", "/tmp", "rbind", "size=1m"), "/mounts/7/options/1",
     'unknown option "size=1m": a bind mount takes no filesystem options'),
    (_bind("/mnt", "/tmp", "rbind", "nocopy"), "/mounts/7/options/1",
     'unknown option "nocopy": a bind mount takes no filesystem options'),
    (_bind("/mnt", "/tmp", "rbind", "tmpcopyup"), "/mounts/7/options/1",
     'tmpcopyup: only a mount of type "tmpfs" has one'),
    (_tmpfs("/mnt", "nosuid", "mode=abc"), "/mounts/7/options/1",
     "invalid argument (tmpfs: bad value for 'mode')"),
    (_tmpfs("/mnt", "rnosuid", "bogus"), "/mounts/7/options/1",
     "invalid argument (tmpfs: unknown parameter 'bogus')"),
], ids=["bind-data", "bind-podman-nocopy", "bind-tmpcopyup", "tmpfs-mode", "tmpfs-unknown"])
def test_unknown_mount_options_are_named(ocish, make_bundle, mount, where, why):
    """Never dropped unseen: a bind takes no filesystem data (runc 1.1.5 drops it, runc 1.2
    refuses it); an option a filesystem refuses is named (runc and crun say only "invalid
    argument")."""
    b = make_bundle(["true"], mutate=lambda s: s["mounts"].append(mount))
    p = ocish("run", "-b", str(b), cid())
    assert p.returncode == 1 and where in p.stderr and why in p.stderr, p.stderr
    assert p.stderr.count("\n") == 1
    assert not os.path.exists(ocish.root) or os.listdir(ocish.root) == []


# --- review 3: a configured device at a default device's path ----------------------------------

def test_configured_device_at_a_default_path_wins_like_runc(ocish, make_bundle, tmp_path):
    """runc's specconv adds a default device (/dev/null, /dev/zero ...) only when linux.devices
    has none at its path: the config's numbers, mode and owner are what the container sees."""
    def mutate(spec):
        spec["linux"]["devices"] = [
            {"path": "/dev/zero", "type": "c", "major": 1, "minor": 5, "fileMode": 0o640,
             "uid": 1000, "gid": 1001},
            {"path": "/dev/full", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600}]
    ours, theirs = both(ocish, make_bundle, tmp_path,
                        "stat -c '%n %t:%T %a %u:%g' /dev/zero /dev/full /dev/null", mutate)
    same(ours, theirs, "/dev/zero 1:5 640 1000:1001\n/dev/full 1:3 600 0:0\n"
                       "/dev/null 1:3 666 0:0\n")


# --- review 4: a cwd only root can enter -----------------------------------------------------------

def _root_only_dir(b) -> None:
    d = b / "rootfs/root"
    d.mkdir(exist_ok=True)
    d.chmod(0o700)
    os.chown(d, 0, 0)


def test_cwd_only_root_can_enter_like_runc(ocish, make_bundle, tmp_path):
    """runc's finalizeNamespace: chdir before the user switch (the process keeps the cwd it
    could not open itself); EACCES/EPERM only retries it after the switch."""
    def mutate(spec):
        spec["process"]["cwd"] = "/root"
        spec["process"]["user"] = {"uid": 1000, "gid": 1000}
    ours, theirs = both(ocish, make_bundle, tmp_path, "pwd; id -u; ls . 2>&1 | sed 's/^ls: //'",
                        mutate, prepare=_root_only_dir)
    same(ours, theirs, "/root\n1000\n.: Permission denied\n")


def test_exec_cwd_only_root_can_enter_like_runc(ocish, make_bundle, tmp_path):
    b = make_bundle(["sleep", "30"])
    _root_only_dir(b)
    c = cid()
    ocish("run", "-d", "-b", str(b), c, check=True)
    ours = ocish("exec", "-u", "1000", "--cwd", "/root", c, "pwd")
    assert (ours.returncode, ours.stdout) == (0, "/root\n"), ours.stderr
    if RUNC:
        root, rc, rb = str(tmp_path / "runc"), cid(), make_bundle(["sleep", "30"])
        _root_only_dir(rb)
        subprocess.run([RUNC, "--root", root, "run", "-d", "-b", str(rb), rc], check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        try:
            theirs = subprocess.run([RUNC, "--root", root, "exec", "-u", "1000", "--cwd", "/root",
                                     rc, "pwd"], capture_output=True, text=True)
            assert (theirs.returncode, theirs.stdout) == (0, "/root\n"), theirs.stderr
        finally:
            subprocess.run([RUNC, "--root", root, "delete", "-f", rc], capture_output=True)


# --- review 8: errors that name what is wrong ----------------------------------------------------

@pytest.mark.parametrize("mount", [_tmpfs("/etc/passwd"), _bind("/etc/passwd", "/tmp", "rbind"),
                                   _tmpfs("/etc/passwd/sub")], ids=["tmpfs", "dir-bind", "under"])
def test_directory_mount_onto_a_file_like_runc(ocish, make_bundle, tmp_path, mount):
    """runc's MkdirAll (Go's os.MkdirAll) says "not a directory" for a directory mount point
    that is a file, or lies under one: so does ocish, naming the destination."""
    ours, theirs = both(ocish, make_bundle, tmp_path, "true",
                        mutate=lambda s: s["mounts"].append(mount))
    assert ours.returncode == 1
    assert ours.stderr == (f"ocish: create failed: stage mounts: mkdir {mount['destination']} "
                           "(config /mounts/7/destination): not a directory\n")
    if theirs is not None:
        assert theirs.returncode != 0 and "not a directory" in theirs.stderr


# --- review 1: two containers without a mount namespace on one rootfs ---------------------------

@pytest.mark.parametrize("how", ["same-bundle", "same-root-path"])
def test_no_mount_namespace_second_container_on_a_rootfs_refused(ocish, make_bundle, tmp_path,
                                                                 private_mount_ns, how):
    """runc 1.1.5 stacks the second bind on the first and never unmounts either. Here `delete`
    of the first would detach the second's mounts (umount2 of a path takes the top one) and
    leave its own: the second create is refused, naming /root/path and the first container;
    once the first is deleted the rootfs is free again and nothing is left mounted."""
    a = make_bundle(["sleep", "30"], mutate=_no_mount_ns)
    if how == "same-bundle":
        b = a
    else:
        def mutate(spec):
            _no_mount_ns(spec)
            spec["root"]["path"] = str(a / "rootfs")
        b = make_bundle(["sleep", "30"], mutate=mutate)
    first, second = cid(), cid()
    try:
        ocish("run", "-d", "-b", str(a), first, check=True)
        before = _mounts_under(a / "rootfs")
        p = ocish("create", "-b", str(b), second)
        assert p.returncode == 1
        assert p.stderr == (f"ocish: config /root/path: {a / 'rootfs'} is the "
                            f"rootfs of container {first}, which has no mount namespace either: "
                            f"both would mount on it here (give one a mount namespace or a "
                            f"rootfs of its own)\n")
        assert os.listdir(ocish.root) == [first]
        assert _mounts_under(a / "rootfs") == before  # the first's /proc, /dev ... untouched
        ocish("delete", "-f", first, check=True)
        assert _mounts_under(a / "rootfs") == []
        ocish("run", "-d", "-b", str(b), second, check=True)  # free again
        ocish("delete", "-f", second, check=True)
        assert _mounts_under(a / "rootfs") == []
    finally:
        _detach(a / "rootfs")


# --- review 7: /dev/mqueue in a user namespace ------------------------------------------------------

def test_mqueue_in_a_user_namespace_belongs_to_its_root_like_runc(ocish, make_bundle, open_dir,
                                                                  tmp_path):
    """runc's nsexec unshares the user namespace, becomes its root, then the rest: the IPC
    namespace's mqueue filesystem is owned by the container's root, not by an unmapped id.
    runc 1.1.5 calls only setresuid(0) first, so its gid stays unmapped (0:65534); ocish
    becomes root by gid too (0:0)."""
    outs = []
    for who in ("ocish", "runc"):
        if who == "runc" and not RUNC:
            continue
        b = make_bundle(["sh", "-c", "stat -c '%u:%g' /dev/mqueue; readlink /proc/self/ns/ipc"],
                        mutate=_userns, base=open_dir)
        outs.append(ocish("run", "-b", str(b), cid()) if who == "ocish" else run_runc(tmp_path, b))
    for p, owner in zip(outs, ("0:0", "0:65534")):
        assert p.returncode == 0, p.stderr
        assert p.stdout.split()[0] == owner
        assert p.stdout.split()[1] != os.readlink("/proc/self/ns/ipc")
