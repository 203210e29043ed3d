"""`ocish verify`: a container with a rich config verifies all-ok, and the actual values it
reports are the kernel's (read here from /proc and cgroupfs, and with nsenter); kernel state
changed after start, or a changed config, is a mismatch naming the item; a runc 1.1.5
container is verified from runc's own state files, and by host pid."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile

import pytest

from tests.conftest import cid, needs_root, run_ocish

pytestmark = needs_root

CG = "/sys/fs/cgroup"
CAPS = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def _rich(data: str):
    def mutate(spec: dict) -> None:
        p = spec["process"]
        p["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [10, 20], "umask": 0o027}
        p["cwd"] = "/tmp"
        p["env"] = ["PATH=/bin:/usr/bin", "FOO=bar", "FOO=baz", "TERM=dumb"]
        p["oomScoreAdj"] = 250
        p["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024},
                        {"type": "RLIMIT_CORE", "soft": 0, "hard": 2**64 - 1},
                        {"type": "RLIMIT_NPROC", "soft": 500, "hard": 600}]
        p["capabilities"] = {"bounding": CAPS + ["CAP_SETUID"], "permitted": CAPS,
                             "effective": CAPS, "inheritable": CAPS[1:], "ambient": CAPS[1:]}
        p["noNewPrivileges"] = True
        spec["hostname"], spec["domainname"] = "rich", "example.org"
        linux = spec["linux"]
        linux["namespaces"].append({"type": "user"})
        linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        linux["resources"] = {"memory": {"limit": 64 * 2**20 + 1000}, "pids": {"limit": 42}}
        linux["maskedPaths"] = ["/proc/kcore", "/proc/acpi", "/etc/secret", "/nonexistent"]
        linux["readonlyPaths"] = ["/proc/sys", "/etc/motd.d"]
        linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                            "syscalls": [{"names": ["mknodat"], "action": "SCMP_ACT_ERRNO"}]}
        # runc 1.1.5 leaves the v1 cgroup tmpfs read-write whatever the config asks (its
        # mountCgroupV1): not this test's subject
        spec["mounts"] = [m for m in spec["mounts"] if m["type"] != "cgroup"] + [
            {"destination": "/data", "type": "bind", "source": data,
             "options": ["rbind", "ro", "nosuid"]},
            {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "size=8m", "mode=1770"]}]
    return mutate


@pytest.fixture
def rich_bundle(make_bundle, open_dir):
    data = open_dir / "data"
    data.mkdir()
    (data / "f").write_text("hi\n")
    b = make_bundle(["sleep", "300"], mutate=_rich(str(data)), base=open_dir)
    for d in ("data", "scratch", "etc/secret", "etc/motd.d"):
        (b / "rootfs" / d).mkdir(parents=True, exist_ok=True)
    return b


def _verify(*args: str, root: str) -> tuple[int, dict]:
    p = run_ocish("verify", *args, "--json", root=root)
    assert p.returncode in (0, 1), p.stderr
    return p.returncode, json.loads(p.stdout)


def _items(report: dict) -> dict[str, dict]:
    return {i["item"]: i for i in report["items"]}


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _status(pid: int) -> dict[str, str]:
    return {k: v.strip() for k, _, v in (ln.partition(":") for ln in _read(
        f"/proc/{pid}/status").splitlines())}


def _mountinfo(pid: int, point: str) -> list[str]:
    """The fields of the last mountinfo line of mount point `point`."""
    lines = [ln.split() for ln in _read(f"/proc/{pid}/mountinfo").splitlines()]
    return [f for f in lines if f[4] == point][-1]


def test_rich_config_verifies_all_ok_with_the_kernels_values(ocish, rich_bundle):
    c = cid()
    ocish("run", "-d", "--bundle", str(rich_bundle), c, check=True)
    pid = ocish.state(c)["pid"]
    rc, report = _verify(c, root=ocish.root)
    items = _items(report)
    assert rc == 0 and report["exit_status"] == 0, [i for i in report["items"]
                                                     if i["verdict"] == "mismatch"]
    assert {i["verdict"] for i in report["items"]} == {"ok"}
    assert (report["pid"], report["status"], report["runtime"]) == (pid, "running", "ocish")
    # every kind of item is there
    for name in ("namespace user", "uid_map", "gid_map", "hostname", "domainname", "root /",
                 "mount /data", "mount /scratch", "masked /etc/secret", "readonly /proc/sys",
                 "device /dev/null", "cgroup memory.limit_in_bytes", "cgroup pids.max",
                 "caps ambient", "no_new_privs", "seccomp mode", "seccomp filters",
                 "rlimit nofile", "oom_score_adj", "user uid", "user groups", "umask", "cwd",
                 "env FOO", "env HOME"):
        assert name in items, name
    # the actual side is the kernel's
    st = _status(pid)
    assert items["namespace user"]["actual"] == os.readlink(f"/proc/{pid}/ns/user")
    assert items["uid_map"]["actual"] == " ".join(_read(f"/proc/{pid}/uid_map").split())
    host = subprocess.run(["nsenter", "-t", str(pid), "-u", "hostname"], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert items["hostname"]["actual"] == host == "rich"
    data = _mountinfo(pid, "/data")
    assert "ro" in data[5].split(",") and "nosuid" in data[5].split(",")
    assert items["mount /data"]["actual"].startswith(f"{data[-3]} {data[5]}")
    scratch = _mountinfo(pid, "/scratch")
    assert "size=8192k" in scratch[-1] and "mode=1770" in scratch[-1]
    assert _mountinfo(pid, "/etc/secret")[-3] == "tmpfs"
    pids_max = _read(f"{CG}/pids/ocish/{c}/pids.max")
    assert items["cgroup pids.max"]["actual"] == pids_max == "42"
    mem = _read(f"{CG}/memory/ocish/{c}/memory.limit_in_bytes")
    assert items["cgroup memory.limit_in_bytes"]["actual"] == mem == str(64 * 2**20)
    amb = int(st["CapAmb"], 16)
    assert amb == (1 << 5) | (1 << 10)  # CAP_KILL, CAP_NET_BIND_SERVICE
    assert items["caps ambient"]["actual"] == "CAP_KILL, CAP_NET_BIND_SERVICE"
    # uid 1000 after execve: permitted and effective are the ambient set (capabilities(7))
    assert int(st["CapEff"], 16) == int(st["CapPrm"], 16) == amb
    assert (st["NoNewPrivs"], st["Seccomp"]) == ("1", "2")
    assert items["seccomp filters"]["actual"] == st["Seccomp_filters"]
    limits = [ln for ln in _read(f"/proc/{pid}/limits").splitlines() if "open files" in ln][0]
    assert limits.split()[3:5] == ["512", "1024"]
    assert items["rlimit nofile"]["actual"] == "soft 512 hard 1024"
    assert items["oom_score_adj"]["actual"] == _read(f"/proc/{pid}/oom_score_adj") == "250"
    assert items["user uid"]["actual"] == "/".join(st["Uid"].split()) == "/".join(["101000"] * 4)
    assert items["user groups"]["actual"] == ", ".join(st["Groups"].split()) == "100010, 100020"
    assert items["umask"]["actual"] == st["Umask"] == "0027"
    assert items["cwd"]["actual"] == os.readlink(f"/proc/{pid}/cwd") == "/tmp"
    env = dict(e.split("=", 1) for e in _read(f"/proc/{pid}/environ").split("\0") if e)
    assert items["env FOO"]["actual"] == env["FOO"] == "baz"
    assert items["env HOME"]["actual"] == env["HOME"] == "/"  # uid 1000 has no passwd entry


def _remount_rw(pid: int, path: str) -> None:
    """Remount `path` of the container read-write (nosuid kept), from a child process that
    joins its mount namespace."""
    from runtime.linux import syscalls as S
    child = os.fork()
    if child == 0:
        code = 1
        try:
            S.setns(os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY), S.CLONE_NEWNS)
            S.mount(None, path, None, S.MS_REMOUNT | S.MS_BIND | S.MS_NOSUID)
            code = 0
        finally:
            os._exit(code)
    assert os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) == 0


def test_kernel_state_changed_after_start_is_a_mismatch(ocish, rich_bundle):
    c = cid()
    ocish("run", "-d", "--bundle", str(rich_bundle), c, check=True)
    pid = ocish.state(c)["pid"]
    with open(f"{CG}/pids/ocish/{c}/pids.max", "w") as f:
        f.write("100")
    _remount_rw(pid, "/data")
    p = run_ocish("verify", c, root=ocish.root)
    assert p.returncode == 1, p.stdout + p.stderr
    assert p.stdout.rstrip().endswith("2 mismatches: mount /data, cgroup pids.max")
    rc, report = _verify(c, root=ocish.root)
    bad = {i["item"]: i for i in report["items"] if i["verdict"] == "mismatch"}
    assert rc == 1 and set(bad) == {"mount /data", "cgroup pids.max"}
    assert bad["cgroup pids.max"]["actual"] == _read(f"{CG}/pids/ocish/{c}/pids.max") == "100"
    assert bad["cgroup pids.max"]["pointer"] == "/linux/resources/pids/limit"
    assert _mountinfo(pid, "/data")[5].split(",")[0] == "rw"
    assert bad["mount /data"]["note"] == "ro asked, rw holds"
    # the same container against a changed config (--bundle): hostname and umask differ
    changed = rich_bundle.parent / "changed"
    changed.mkdir()
    spec = json.loads((rich_bundle / "config.json").read_text())
    spec["hostname"], spec["process"]["user"]["umask"] = "other", 0o022
    (changed / "config.json").write_text(json.dumps(spec))
    rc, report = _verify(c, "--bundle", str(changed), root=ocish.root)
    bad = {i["item"]: i for i in report["items"] if i["verdict"] == "mismatch"}
    assert rc == 1 and set(bad) == {"mount /data", "cgroup pids.max", "hostname", "umask"}
    assert (bad["hostname"]["asked"], bad["hostname"]["actual"]) == ("other", "rich")
    assert report["config"] == str(changed / "config.json")


def test_usage_errors_exit_2_with_one_line(ocish):
    for args, words in ((["nosuch"], f"container nosuch does not exist under {ocish.root}"),
                        (["4194305"], "pid 4194305: give the config to compare with: --bundle"),
                        (["--runtime", "crun", "x"], "invalid choice: 'crun'")):
        p = run_ocish("verify", *args, root=ocish.root)
        assert p.returncode == 2 and words in p.stderr and len(p.stderr.splitlines()) == 1, \
            (args, p.stderr)


@pytest.fixture
def runc_root():
    root = tempfile.mkdtemp(prefix="ocish-verify-runc-")
    made: list[str] = []
    yield root, made
    for c in made:
        subprocess.run(["runc", "--root", root, "delete", "--force", c], capture_output=True)
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed")
def test_a_runc_container_by_id_and_by_pid(ocish, rich_bundle, runc_root):
    """runc 1.1.5 (its default cgroupfs driver) runs the same rich bundle; verify finds it in
    runc's state.json and reads the config from its bundle label. runc 1.1.5 does not set
    /domainname (runc 1.2 added it): the one mismatch, and the kernel agrees."""
    root, made = runc_root
    c = cid()
    made.append(c)
    pid = _runc_run(root, rich_bundle, c)
    rc, report = _verify(c, "--runtime", "runc", "--root", root, root=None)
    bad = {i["item"]: i for i in report["items"] if i["verdict"] == "mismatch"}
    assert rc == 1 and set(bad) == {"domainname"}, bad
    domain = subprocess.run(["nsenter", "-t", str(pid), "-u", "cat",
                             "/proc/sys/kernel/domainname"], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert bad["domainname"]["actual"] == domain == "(none)"
    items = _items(report)
    assert (report["runtime"], report["pid"]) == ("runc", pid)
    assert report["config"] == str(rich_bundle / "config.json")
    assert items["cgroup pids.max"]["actual"] == "42"
    st = _status(pid)
    assert items["user uid"]["actual"] == "/".join(st["Uid"].split())
    assert items["caps effective"]["verdict"] == "ok" and int(st["CapEff"], 16) == (1 << 5) | (1 << 10)
    # by host pid, with the bundle: the same verdicts
    rc2, by_pid = _verify(str(pid), "--bundle", str(rich_bundle), root=ocish.root)
    assert rc2 == 1 and (by_pid["runtime"], by_pid["pid"]) == ("pid", pid)
    assert [(i["item"], i["verdict"]) for i in by_pid["items"]] == [
        (i["item"], i["verdict"]) for i in report["items"]]


def _runc_run(root: str, bundle, c: str) -> int:
    """`runc run -d`; the container's host pid."""
    with tempfile.TemporaryFile("w+") as err:  # a file: the container holds its stdio open
        p = subprocess.run(["runc", "--root", root, "run", "-d", "--bundle", str(bundle), c],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                           timeout=60)
        err.seek(0)
        assert p.returncode == 0, err.read()
    return json.loads(subprocess.run(["runc", "--root", root, "state", c], check=True,
                                     capture_output=True, text=True).stdout)["pid"]


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed")
def test_runc_leaves_the_v1_cgroup_tmpfs_read_write(make_bundle, runc_root):
    """The default config's cgroup mount asks for ro; on a cgroup v1 host runc 1.1.5 mounts the
    tmpfs holding the hierarchies with its default flags only (mountCgroupV1), read-write."""
    root, made = runc_root
    c = cid()
    made.append(c)
    pid = _runc_run(root, make_bundle(["sleep", "300"]), c)
    rc, report = _verify(c, "--runtime", "runc", "--root", root, root=None)
    bad = [i for i in report["items"] if i["verdict"] == "mismatch"]
    assert rc == 1 and [i["item"] for i in bad] == ["mount /sys/fs/cgroup"], bad
    fields = _mountinfo(pid, "/sys/fs/cgroup")
    assert fields[-3] == "tmpfs" and fields[5].split(",")[0] == "rw"
    assert bad[0]["note"] == "ro asked, rw holds"


def test_a_joined_namespace_is_the_one_its_path_names(ocish, make_bundle):
    a, b = cid(), cid()
    ocish("run", "-d", "--bundle", str(make_bundle(["sleep", "300"])), a, check=True)
    pid_a = ocish.state(a)["pid"]
    path = f"/proc/{pid_a}/ns/net"

    def join(spec):
        spec["linux"]["namespaces"] = [n if n["type"] != "network" else {"type": "network",
                                                                         "path": path}
                                       for n in spec["linux"]["namespaces"]]
    bundle = make_bundle(["sleep", "300"], mutate=join)
    ocish("run", "-d", "--bundle", str(bundle), b, check=True)
    pid_b = ocish.state(b)["pid"]
    rc, report = _verify(b, root=ocish.root)
    net = _items(report)["namespace network"]
    assert rc == 0 and net["verdict"] == "ok" and net["pointer"].endswith("/path")
    assert net["actual"] == os.readlink(f"/proc/{pid_b}/ns/net") == os.readlink(path)
    # a config that asks for the host's network namespace (this process's) instead
    spec = json.loads((bundle / "config.json").read_text())
    for n in spec["linux"]["namespaces"]:
        if n["type"] == "network":
            n["path"] = f"/proc/{os.getpid()}/ns/net"  # the host's
    (bundle / "config.json").write_text(json.dumps(spec))
    rc, report = _verify(b, "--bundle", str(bundle), root=ocish.root)
    bad = [i for i in report["items"] if i["verdict"] == "mismatch"]
    assert rc == 1 and [i["item"] for i in bad] == ["namespace network"]
    assert bad[0]["note"] == "not the namespace of path"
