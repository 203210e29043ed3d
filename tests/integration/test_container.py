"""Containers checked from the inside: a busybox probe reports what the kernel shows it."""
from __future__ import annotations

import glob
import json
import os
import subprocess
import uuid

from tests.conftest import REPO, cid, needs_root, ocish_cmd

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
    made = glob.glob(f"/sys/fs/cgroup/*/ocish/{c}")
    # every v1 hierarchy and the unified tree
    assert {p.split("/")[4] for p in made} >= {"memory", "pids", "cpu", "freezer", "devices", "unified"}
    with open(f"/sys/fs/cgroup/pids/ocish/{c}/cgroup.procs") as f:
        assert int(f.read()) == ocish.state(c)["pid"]
    ocish("delete", c, check=True)
    assert glob.glob(f"/sys/fs/cgroup/*/ocish/{c}") == []


def test_time_namespace_offsets(ocish, make_bundle):
    def mutate(s):
        s["linux"]["namespaces"].append({"type": "time"})
        s["linux"]["timeOffsets"] = {"boottime": {"secs": 86400 * 365, "nanosecs": 0}}
    uptime = float(probe(ocish, make_bundle, "cut -d' ' -f1 /proc/uptime", mutate).strip())
    with open("/proc/uptime") as f:
        host = float(f.read().split()[0])
    assert uptime - host > 86400 * 364


def test_oom_score_adj(ocish, make_bundle):
    def mutate(s):
        s["process"]["oomScoreAdj"] = 500
    assert probe(ocish, make_bundle, "cat /proc/self/oom_score_adj", mutate).strip() == "500"


def test_join_namespace_by_path(ocish, make_bundle):
    first = cid()
    ocish("run", "-d", "-b", str(make_bundle(["sleep", "30"])), first, check=True)
    pid = ocish.state(first)["pid"]

    def mutate(s):
        for ns in s["linux"]["namespaces"]:
            if ns["type"] in ("network", "uts"):
                ns["path"] = f"/proc/{pid}/ns/{'net' if ns['type'] == 'network' else 'uts'}"
        s.pop("hostname")  # the joined uts namespace keeps its own
    out = probe(ocish, make_bundle, "for n in net uts mnt; do readlink /proc/self/ns/$n; done; hostname",
                mutate).split()
    assert out[0] == os.readlink(f"/proc/{pid}/ns/net")
    assert out[1] == os.readlink(f"/proc/{pid}/ns/uts")
    assert out[2] != os.readlink(f"/proc/{pid}/ns/mnt")  # the rest are its own
    assert out[3] == "ocish"  # the first container's hostname


def test_pid_file_and_preserve_fds(ocish, make_bundle, tmp_path):
    data = tmp_path / "passed"
    data.write_text("through fd 3\n")
    pid_file = tmp_path / "pid"
    b = make_bundle(["sh", "-c", "cat <&3"])
    # a shell opens the file as fd 3 of the runtime, as conmon does with --preserve-fds
    cmd = ["sh", "-c", 'exec 3<"$0"; exec "$@"', str(data)] + ocish_cmd() + [
        "--root", ocish.root, "run", "--preserve-fds", "1", "--pid-file", str(pid_file), "--keep",
        "-b", str(b), cid()]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert p.returncode == 0, p.stderr
    assert p.stdout == "through fd 3\n"
    assert int(pid_file.read_text()) > 0


def test_fds_are_not_leaked_without_preserve(ocish, make_bundle, tmp_path):
    leak = open(tmp_path / "leak", "w")
    os.set_inheritable(leak.fileno(), True)
    try:
        out = probe(ocish, make_bundle, "ls /proc/self/fd | sort -n | tr '\\n' ' '")
    finally:
        leak.close()
    assert out.split() == ["0", "1", "2", "3"]  # 3 is ls's own listing of the directory


def test_spec_then_run(ocish, tmp_path, rootfs_template):
    b = tmp_path / "fresh"
    b.mkdir()
    os.symlink(rootfs_template / "rootfs", b / "rootfs")
    assert ocish("spec", "-b", str(b)).returncode == 0
    p = ocish("spec", "-b", str(b))
    assert p.returncode == 1 and "exists" in p.stderr
    spec = json.loads((b / "config.json").read_text())
    assert spec["ociVersion"].startswith("1.") and spec["root"]["path"] == "rootfs"
    spec["process"].update(args=["hostname"], terminal=False)
    (b / "config.json").write_text(json.dumps(spec))
    p = ocish("run", "-b", str(b), cid())
    assert p.returncode == 0 and p.stdout.strip() == spec["hostname"]
    r = tmp_path / "rootless"
    r.mkdir()
    assert ocish("spec", "--rootless", "-b", str(r)).returncode == 0
    rl = json.loads((r / "config.json").read_text())
    assert {"type": "user"} in rl["linux"]["namespaces"] and rl["linux"]["uidMappings"]


def test_default_cgroup_parent_goes_with_the_last_container(ocish, make_bundle):
    first, second = cid(), cid()
    ocish("create", "-b", str(make_bundle(["true"])), first, check=True)
    ocish("create", "-b", str(make_bundle(["true"])), second, check=True)
    ocish("delete", first, check=True)   # the parent's maker leaves while it is still shared
    assert glob.glob(f"/sys/fs/cgroup/*/ocish/{second}")
    ocish("delete", second, check=True)
    others = [d for d in glob.glob("/sys/fs/cgroup/pids/ocish/*") if os.path.isdir(d)]
    if not others:  # no other ocish container on this host: nothing of ours is left
        assert glob.glob("/sys/fs/cgroup/*/ocish") == []
