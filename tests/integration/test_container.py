"""Containers checked from the inside: a busybox probe reports what the kernel shows it."""
from __future__ import annotations

import json
import os
import uuid

import pytest

from tests.conftest import cid, needs_root

pytestmark = needs_root


def probe(ocish, make_bundle, script: str, mutate=None, extra: tuple = (), base=None) -> str:
    b = make_bundle(["sh", "-c", script], mutate=mutate, base=base)
    p = ocish("run", *extra, "-b", str(b), cid())
    assert p.returncode == 0, p.stderr + p.stdout
    return p.stdout


def test_namespaces_differ_from_host(ocish, make_bundle):
    kinds = ["pid", "mnt", "uts", "ipc", "net", "cgroup"]
    out = probe(ocish, make_bundle, " ; ".join(f"readlink /proc/self/ns/{k}" for k in kinds))
    inside = out.split()
    host = [os.readlink(f"/proc/self/ns/{k}") for k in kinds]
    assert len(inside) == len(kinds)
    for k, i, h in zip(kinds, inside, host):
        assert i.startswith(f"{k}:[") and i != h, k
    # pid 1 of its own pid namespace
    assert probe(ocish, make_bundle, "echo $$").strip() == "1"


def test_hostname_and_domainname(ocish, make_bundle):
    def mutate(s):
        s["hostname"] = "probe-host"
        s["domainname"] = "probe.example"
    out = probe(ocish, make_bundle, "hostname; cat /proc/sys/kernel/domainname", mutate)
    assert out.split() == ["probe-host", "probe.example"]


def edit_config(bundle, fn) -> None:
    spec = json.loads((bundle / "config.json").read_text())
    fn(spec)
    (bundle / "config.json").write_text(json.dumps(spec))


def test_symlinked_destination_stays_in_rootfs(ocish, make_bundle):
    outside = f"/tmp/ocish-escape-{uuid.uuid4().hex[:8]}"
    b = make_bundle(["sh", "-c", f"grep -c ' {outside}/m[12] ' /proc/self/mountinfo"])
    os.symlink(outside, b / "rootfs" / "abs")                              # absolute target
    os.symlink("../../../../../.." + outside, b / "rootfs" / "rel")        # climbs past /
    edit_config(b, lambda s: s["mounts"].extend([
        {"destination": "/abs/m1", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/rel/m2", "type": "tmpfs", "source": "tmpfs"}]))
    p = ocish("run", "-b", str(b), cid())
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "2"  # both mounted, inside the container's view of the rootfs
    assert not os.path.exists(outside)  # and nothing was created on the host


def test_proc_on_symlink_is_refused(ocish, make_bundle):
    b = make_bundle(["true"])
    os.rmdir(b / "rootfs" / "proc")
    os.symlink("/etc", b / "rootfs" / "proc")
    p = ocish("run", "-b", str(b), cid())
    assert p.returncode == 1
    assert "stage mounts" in p.stderr and "/mounts/0/destination" in p.stderr and "symlink" in p.stderr
    assert os.listdir(ocish.root) == []


def test_user_namespace_id_maps(ocish, make_bundle, open_dir):
    def mutate(s):
        s["linux"]["namespaces"].append({"type": "user"})
        s["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        s["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
        s["linux"].pop("resources", None)
        s["mounts"] = [m for m in s["mounts"] if m["type"] != "cgroup"]
    out = probe(ocish, make_bundle, "cat /proc/self/uid_map /proc/self/gid_map; id -u; "
                                    "readlink /proc/self/ns/user", mutate, base=open_dir)
    lines = out.split("\n")
    assert lines[0].split() == ["0", "100000", "65536"]
    assert lines[1].split() == ["0", "200000", "65536"]
    assert lines[2] == "0"
    assert lines[3] != os.readlink("/proc/self/ns/user")


def test_memory_limit_seen_inside(ocish, make_bundle):
    def mutate(s):
        s["linux"]["resources"]["memory"] = {"limit": 64 * 1024 * 1024}
    out = probe(ocish, make_bundle, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes", mutate)
    assert out.strip() == str(64 * 1024 * 1024)


def test_pids_limit_stops_fork_bomb(ocish, make_bundle):
    def mutate(s):
        s["linux"]["resources"]["pids"] = {"limit": 10}
    # sh counts each fork that worked; busybox sh gives up at the first one the kernel refuses
    # (and when it exits, the pid namespace dies with it, sleeps included)
    script = ("read max < /sys/fs/cgroup/pids/pids.max; echo max=$max; i=0; "
              "while [ $i -lt 30 ]; do sleep 30 & i=$((i+1)); echo $i; done")
    b = make_bundle(["sh", "-c", script], mutate=mutate)
    p = ocish("run", "-b", str(b), cid())
    out = p.stdout.split()
    assert out[0] == "max=10"
    assert out[-1] == "9"  # sh itself + 9 sleeps = 10
    assert p.returncode != 0 and "can't fork" in p.stderr


def test_rlimits(ocish, make_bundle):
    def mutate(s):
        s["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024},
                                   {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]
    out = probe(ocish, make_bundle, "ulimit -Sn; ulimit -Hn; ulimit -c", mutate)
    assert out.split() == ["512", "1024", "0"]


def test_cwd_env_user_umask(ocish, make_bundle):
    def mutate(s):
        s["process"]["cwd"] = "/tmp"
        s["process"]["env"].append("PROBE=value with spaces")
        s["process"]["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [10, 20], "umask": 0o027}
        s["root"]["readonly"] = False
    out = probe(ocish, make_bundle,
                'pwd; echo "$PROBE"; id -u; id -g; id -G; umask; touch f; stat -c %a f', mutate)
    assert out.split("\n")[:7] == ["/tmp", "value with spaces", "1000", "1001", "1001 10 20",
                                   "0027", "640"]


def test_masked_and_readonly_paths(ocish, make_bundle):
    assert os.listdir("/sys/firmware") and os.path.exists("/proc/keys")  # something to mask
    script = ("wc -c < /proc/keys; ls /sys/firmware | wc -l; "
              "echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null && echo writable || echo ro; "
              "touch /newfile 2>/dev/null && echo rootrw || echo rootro")
    out = probe(ocish, make_bundle, script).split()
    assert out == ["0", "0", "ro", "rootro"]


def test_writable_root_when_not_readonly(ocish, make_bundle):
    def mutate(s):
        s["root"]["readonly"] = False
    assert probe(ocish, make_bundle, "touch /newfile && echo ok", mutate).strip() == "ok"


def test_no_pivot(ocish, make_bundle):
    out = probe(ocish, make_bundle, "ls /; cat /proc/self/mountinfo | head -1", extra=("--no-pivot",))
    assert "bin" in out.split()


def test_sysctl_in_network_namespace(ocish, make_bundle):
    def mutate(s):
        s["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    assert probe(ocish, make_bundle, "cat /proc/sys/net/ipv4/ip_forward", mutate).strip() == "1"
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        host = f.read().strip()
    assert host in ("0", "1")  # untouched by the container (its own netns)


def test_devices(ocish, make_bundle):
    out = probe(ocish, make_bundle, "ls -l /dev/null /dev/zero /dev/tty | cut -c1; "
                                    "head -c 4 /dev/zero | wc -c; readlink /dev/fd; readlink /dev/ptmx")
    assert out.split() == ["c", "c", "c", "4", "/proc/self/fd", "pts/ptmx"]


def test_bind_mount_readonly(ocish, make_bundle, tmp_path):
    src = tmp_path / "shared"
    src.mkdir()
    (src / "hello").write_text("from host\n")

    def mutate(s):
        s["mounts"].append({"destination": "/mnt/shared", "type": "bind", "source": str(src),
                            "options": ["rbind", "ro", "nosuid"]})
    out = probe(ocish, make_bundle, "cat /mnt/shared/hello; touch /mnt/shared/x 2>/dev/null "
                                    "&& echo rw || echo ro", mutate)
    assert out.split("\n")[:2] == ["from host", "ro"]
    assert sorted(os.listdir(src)) == ["hello"]


def test_cgroup_removed_after_delete(ocish, make_bundle):
    c = cid()
    ocish("create", "-b", str(make_bundle(["true"])), c, check=True)
    path = f"/sys/fs/cgroup/memory/ocish/{c}"
    assert os.path.isdir(path)
    ocish("delete", c, check=True)
    assert not os.path.exists(path)
