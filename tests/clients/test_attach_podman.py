"""`ocish attach NAME` on a container podman made (with runc, from the busybox image the package
fixture imports offline): found by its podman name (`podman inspect`), inspected against /proc,
exec'd into with the config.json podman wrote (its seccomp profile, its capabilities), refused
any change, and left running. The podman fixtures remove the container and the image."""
from __future__ import annotations

import os

from tests.clients import helpers as H
from tests.clients.helpers import IMAGE
from tests.shell.conftest import Session, status_field


def test_attach_a_podman_container_by_name(podman, runtimes, pm_name, ocish):
    name = pm_name()
    podman.check("run", "-d", "--name", name, "--runtime", runtimes["runc"].path, IMAGE,
                 "sleep", "1000")
    H.wait_for(lambda: podman.inspect(name, "{{.State.Status}}") == "running", 10,
               what="running")
    pid = int(podman.inspect(name, "{{.State.Pid}}"))
    config = podman.inspect(name, "{{.OCIConfigPath}}")
    # the shell's podman must see the fixture's private storage: its environment
    s = Session(ocish.root, [name], name, command="attach", env=podman.env)
    try:
        assert s.banner.startswith(f"attached to podman container {name} (running, pid {pid}), "
                                   f"bundle {os.path.dirname(config)}"), s.banner
        ns = s.json("inspect ns --json")
        assert {i["kind"]: i["inode"] for i in ns["items"]} == {
            k: os.stat(f"/proc/{pid}/ns/{k}").st_ino for k in os.listdir(f"/proc/{pid}/ns")}
        caps = {c["name"]: c["mask"] for c in s.json("inspect caps --json")["sets"]}
        assert caps["effective"] == status_field(pid, "CapEff")
        assert s.json("inspect proc --json")["cmdline"] == ["sleep", "1000"]
        # exec through the exec pipeline, with podman's config.json process: in its pid and
        # mount namespaces, its seccomp filter and capabilities as its init has them
        out = s.cmd("exec cat /proc/1/cmdline")
        assert out.split("\n")[0].split("\0")[:2] == ["sleep", "1000"], out
        out = s.cmd("exec cat /proc/self/status")
        assert f"Seccomp:\t{status_field(pid, 'Seccomp')}" in out, out
        assert status_field(pid, "Seccomp") == "2"  # podman's default profile: a filter
        assert f"CapEff:\t{status_field(pid, 'CapEff')}" in out, out
        assert s.cmd("kill KILL").startswith(f"error: kill refused: podman container {name} "
                                             "is attached read-only")
        out = s.quit()
        assert f"detached from podman container {name} (running, pid {pid})" in out, out
    finally:
        s.close()
    assert podman.inspect(name, "{{.State.Status}}") == "running"
    assert status_field(pid, "State")[0] in "SR"
