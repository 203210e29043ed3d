"""`ocish attach` on containers the engines made with runc, from the busybox image the package
fixtures import offline: podman's by its name (`podman inspect`), containerd's by id in its runc
shim's state root, Docker's by its name (`docker inspect`, its bundle found through the shim).
Each is inspected against /proc, exec'd into with the config.json its engine wrote (seccomp,
capabilities as its init has them), refused any change, and left running. The engines' fixtures
remove the containers and images."""
from __future__ import annotations

import os

from tests.clients import helpers as H
from tests.clients.helpers import IMAGE, NS
from tests.shell.conftest import Session, status_field


def check_attached(s: Session, label: str, pid: int, bundle: str) -> None:
    """The session's view of the container against /proc, exec inside, read-only, detach."""
    try:
        assert s.banner.startswith(f"attached to {label} (running, pid {pid}), bundle {bundle}"), \
            s.banner
        ns = s.json("inspect ns --json")
        assert {i["kind"]: i["inode"] for i in ns["items"]} == {
            k: os.stat(f"/proc/{pid}/ns/{k}").st_ino for k in os.listdir(f"/proc/{pid}/ns")}
        caps = {c["name"]: c["mask"] for c in s.json("inspect caps --json")["sets"]}
        assert caps["effective"] == status_field(pid, "CapEff")
        assert s.json("inspect proc --json")["cmdline"] == ["sleep", "1000"]
        # exec through the exec pipeline, with the engine's config.json process: in its pid and
        # mount namespaces, its seccomp filter and capabilities as its init has them
        out = s.cmd("exec cat /proc/1/cmdline")
        assert out.split("\n")[0].split("\0")[:2] == ["sleep", "1000"], out
        out = s.cmd("exec cat /proc/self/status")
        assert status_field(pid, "Seccomp") == "2"  # the engine's default profile: a filter
        assert "Seccomp:\t2" in out and f"CapEff:\t{status_field(pid, 'CapEff')}" in out, out
        assert s.cmd("kill KILL").startswith(f"error: kill refused: {label} is attached "
                                             "read-only")
        out = s.quit()
        assert f"detached from {label} (running, pid {pid})" in out, out
    finally:
        s.close()
    assert status_field(pid, "State")[0] in "SR"


def test_attach_a_podman_container_by_name(podman, runtimes, pm_name, ocish):
    name = pm_name()
    podman.check("run", "-d", "--name", name, "--runtime", runtimes["runc"].path, IMAGE,
                 "sleep", "1000")
    H.wait_for(lambda: podman.inspect(name, "{{.State.Status}}") == "running", 10,
               what="running")
    pid = int(podman.inspect(name, "{{.State.Pid}}"))
    bundle = os.path.dirname(podman.inspect(name, "{{.OCIConfigPath}}"))
    # the shell's podman must see the fixture's private storage: its environment
    check_attached(Session(ocish.root, [name], name, command="attach", env=podman.env),
                   f"podman container {name}", pid, bundle)
    assert podman.inspect(name, "{{.State.Status}}") == "running"


def test_attach_a_containerd_container_by_id(containerd, runtimes, ctr_id, ocish):
    cid = ctr_id()
    runc = runtimes["runc"]
    # --seccomp: containerd's default profile (ctr loads none without it)
    r = containerd.ctr("run", "--runc-binary", runc.path, "--runc-root", containerd.roots["runc"],
                       "--seccomp", "--detach", IMAGE, cid, "sleep", "1000")
    assert r.returncode == 0, r
    root = os.path.join(containerd.roots["runc"], NS)  # the shim's `runc --root`

    def pid():
        out = containerd.ctr("tasks", "list").stdout.splitlines()[1:]
        return next((int(f[1]) for f in map(str.split, out) if f[0] == cid and f[2] == "RUNNING"),
                    None)
    init = H.wait_for(pid, 10, what="task RUNNING")
    bundle = os.readlink(f"/proc/{_parent(init)}/cwd")  # the shim runs in the bundle
    check_attached(Session(root, [cid, "--runtime", "runc"], cid, command="attach"),
                   f"runc container {cid}", init, bundle)
    assert pid() == init


def test_attach_a_docker_container_by_name(dockerd, runtimes, dk_name, ocish):
    name = dk_name()
    dockerd.check("run", "-d", "--name", name, "--runtime", "runc", "--network", "none", IMAGE,
                  "sleep", "1000")
    H.wait_for(lambda: dockerd("inspect", "-f", "{{.State.Running}}", name).stdout.strip()
               == "true", 10, what="running")
    pid = int(dockerd.check("inspect", "-f", "{{.State.Pid}}", name).stdout)
    bundle = os.readlink(f"/proc/{_parent(pid)}/cwd")
    check_attached(Session(ocish.root, [name], name, command="attach", env=dockerd.env),
                   f"docker container {name}", pid, bundle)
    assert dockerd("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true"


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])
