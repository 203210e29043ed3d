"""Docker: daemon.json `"runtimes": {"ocish": {"path": ...}}`, then `docker run --runtime ocish`;
the control is Docker's built-in `runc`. dockerd drives the runtime through containerd's runc shim
(BinaryName = the path; dockerd 20.10 gives every runtime the Root <exec-root>/runtime-runc, so
the shim calls `ocish --root <exec-root>/runtime-runc/moby ...`)."""
from __future__ import annotations

import os
import time

import pytest

from tests.clients import helpers as H
from tests.clients.helpers import IMAGE, params


def start(dockerd, rt, name: str, *cmd: str) -> int:
    dockerd.check("run", "-d", "--name", name, "--runtime", rt.name, "--network", "none", IMAGE,
                  *(cmd or ("sleep", "1000")))
    H.wait_for(lambda: dockerd("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true",
               10, what="running")
    return int(dockerd.check("inspect", "-f", "{{.State.Pid}}", name).stdout)


@pytest.mark.parametrize("rt", params("blkio-weight-0"), indirect=True)
def test_run_rm(dockerd, rt):
    r = dockerd("run", "--rm", "--runtime", rt.name, "--network", "none", IMAGE,
                "sh", "-c", "echo hello; echo to-stderr >&2; exit 42")
    assert (r.returncode, r.stdout, r.stderr) == (42, "hello\n", "to-stderr\n"), r
    r = dockerd("run", "--rm", "-i", "--runtime", rt.name, "--network", "none", IMAGE, "cat",
                input="via stdin\n")
    assert (r.returncode, r.stdout) == (0, "via stdin\n"), r


@pytest.mark.parametrize("rt", params("blkio-weight-0", "terminal"), indirect=True)
def test_run_tty(dockerd, rt):
    r = dockerd("run", "--rm", "-t", "--runtime", rt.name, "--network", "none", IMAGE,
                "sh", "-c", "tty; exit 5", tty=True)
    assert r.returncode == 5 and "/dev/pts/0" in r.stdout, r


@pytest.mark.parametrize("rt", params("blkio-weight-0", "terminal"), indirect=True)
def test_run_as_user_reopens_stdio(dockerd, rt):
    """A non-root user reopens its stdio (the shim's pipes, or its pty) by path, as with runc."""
    r = dockerd("run", "--rm", "--user", "1000:1000", "--runtime", rt.name, "--network", "none",
                IMAGE, "sh", "-c", "id -u; echo out >> /dev/stdout; echo err >> /dev/stderr")
    assert (r.returncode, r.stdout, r.stderr) == (0, "1000\nout\n", "err\n"), r
    r = dockerd("run", "--rm", "-t", "--user", "1000:1000", "--runtime", rt.name, "--network",
                "none", IMAGE, "sh", "-c", "echo via-path > $(tty) && stat -c owner=%u $(tty)",
                tty=True)
    assert r.returncode == 0 and "via-path" in r.stdout and "owner=1000" in r.stdout, r


@pytest.mark.parametrize("rt", params("blkio-weight-0", "exec"), indirect=True)
def test_exec(dockerd, rt, dk_name):
    name = dk_name()
    start(dockerd, rt, name)
    r = dockerd("exec", name, "sh", "-c", "echo in-exec; cat /proc/1/cmdline | tr '\\0' ' '; exit 3")
    assert (r.returncode, r.stdout) == (3, "in-exec\nsleep 1000 "), r
    r = dockerd("exec", "-i", name, "cat", input="exec stdin\n")
    assert (r.returncode, r.stdout) == (0, "exec stdin\n"), r
    dockerd.check("exec", "-d", name, "sh", "-c", "echo detached > /tmp/marker")
    H.wait_for(lambda: dockerd("exec", name, "cat", "/tmp/marker").stdout == "detached\n", 10,
               what="the detached exec's file")


@pytest.mark.parametrize("rt", params("blkio-weight-0", "exec-tty"), indirect=True)
def test_exec_tty(dockerd, rt, dk_name):
    name = dk_name()
    start(dockerd, rt, name)
    r = dockerd("exec", "-it", name, "sh", tty=True,
                tty_script=[("#", "tty; echo x=$((2+3))\n"), ("x=5", "exit 4\n")])
    assert r.returncode == 4 and "/dev/pts/" in r.stdout and "x=5" in r.stdout, r


@pytest.mark.parametrize("rt", params("blkio-weight-0", "ps"), indirect=True)
def test_top(dockerd, rt, dk_name):
    name = dk_name()
    pid = start(dockerd, rt, name, "sh", "-c", "sleep 1000 & sleep 999")
    r = dockerd("top", name)  # containerd asks the runtime: `ps --format json`
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    assert "PID" in lines[0].split(), r
    col = lines[0].split().index("PID")
    assert str(pid) in [l.split()[col] for l in lines[1:]], r
    assert sum("sleep 1000" in l for l in lines) == 1 and sum("sleep 999" in l for l in lines) == 1, r


@pytest.mark.parametrize("rt", params("blkio-weight-0", "update"), indirect=True)
def test_update(dockerd, rt, dk_name):
    name = dk_name()
    pid = start(dockerd, rt, name)
    r = dockerd("update", "--memory", "64m", "--memory-swap", "128m", "--cpu-shares", "512",
                "--pids-limit", "77", name)  # the shim: `update --resources - ID`, JSON on stdin
    assert r.returncode == 0, r
    assert H.read(os.path.join(H.host_pid_cgroup(pid, "memory"), "memory.limit_in_bytes")) == str(64 << 20)
    assert H.read(os.path.join(H.host_pid_cgroup(pid, "cpu"), "cpu.shares")) == "512"
    assert H.read(os.path.join(H.host_pid_cgroup(pid, "pids"), "pids.max")) == "77"


@pytest.mark.parametrize("rt", params("blkio-weight-0"), indirect=True)
def test_stop(dockerd, rt, dk_name):
    name = dk_name()
    start(dockerd, rt, name, "sh", "-c", "trap 'exit 3' TERM; while :; do sleep 0.1; done")
    t = time.monotonic()
    dockerd.check("stop", "-t", "10", name, timeout=30)
    assert time.monotonic() - t < 8
    assert dockerd.check("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip() == "3"
    name2 = dk_name()
    start(dockerd, rt, name2)  # sleep as PID 1 ignores SIGTERM: KILL after the timeout
    t = time.monotonic()
    dockerd.check("stop", "-t", "1", name2, timeout=30)
    assert 1 <= time.monotonic() - t < 10
    assert dockerd.check("inspect", "-f", "{{.State.ExitCode}}", name2).stdout.strip() == "137"


def test_bundle_from_docker_image(dockerd, rootfs_template, ocish, tmp_path, monkeypatch):
    """`ocish bundle init --image docker:NAME` (and a bare NAME, found in Docker's store after
    podman's, here a private and empty one): skopeo reads the image from our dockerd
    ($DOCKER_HOST, handed to skopeo as --src-daemon-host); ocish runs the image's entrypoint,
    which reports its Env, WorkingDir and User from inside."""
    import shutil as _shutil
    from tests import images as I
    from tests.conftest import cid
    if not (_shutil.which("umoci") and _shutil.which("skopeo")):
        pytest.skip("umoci and skopeo are not installed (apt-get install umoci skopeo)")
    tar = I.rootfs_tar(I.image_rootfs(rootfs_template, tmp_path), tmp_path / "rootfs.tar")
    name = f"ocish-image-{os.getpid()}"
    dockerd.check("import", "--change", 'ENTRYPOINT ["/usr/local/bin/entry"]',
                  "--change", 'CMD ["from-docker"]', "--change", "ENV GREETING=hello-from-docker",
                  "--change", f"WORKDIR {I.WORKDIR}", "--change", "USER app", str(tar), name)
    store = I.PodmanStore(tmp_path / "podman")  # the bare NAME's first try: an empty store
    try:
        for key in ("DOCKER_HOST", "DOCKER_CONFIG"):
            monkeypatch.setenv(key, dockerd.env[key])
        for key, value in store.env.items():
            monkeypatch.setenv(key, value)
        for n, ref in enumerate((f"docker:{name}", name)):
            bundle = tmp_path / f"b{n}"
            ocish("bundle", "init", str(bundle), "--image", ref, check=True, timeout=120)
            got = I.probe_lines(ocish("run", "-b", str(bundle), cid(), check=True).stdout)
            assert (got["args"], got["greeting"], got["cwd"]) == (
                "from-docker", "hello-from-docker", I.WORKDIR), (ref, got)
            assert (got["Uid"], got["Groups"]) == (" ".join([str(I.UID)] * 4), str(I.EXTRA_GID))
    finally:
        store.close()
        dockerd("rmi", "-f", name)
