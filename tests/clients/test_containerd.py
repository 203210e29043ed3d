"""containerd: `ctr` with `--runc-binary <runc | ocish> --runc-root <dir>`, and the CRI plugin with
a config.toml `runtimes.<name>` entry (runtime_type io.containerd.runc.v2, options BinaryName):
the path a Kubernetes RuntimeClass takes. The runc shim calls the runtime with `--root R --log
<bundle>/log.json --log-format json` on every call."""
from __future__ import annotations

import os
import uuid

import pytest

from tests.clients import helpers as H
from tests.clients.helpers import IMAGE, NS, params


def state_dir(containerd, rt, cid: str, namespace: str = NS) -> str:
    """Where the runtime keeps the container: the shim passes `--root <Root>/<namespace>`."""
    return os.path.join(containerd.roots[rt.name], namespace, cid)


def ctr_run(containerd, rt, *args: str, **kw) -> H.Result:
    """`ctr run` with the runtime given by flags (as `ctr run --runc-binary` documents)."""
    flags = ["--runc-binary", rt.path, "--runc-root", containerd.roots[rt.name]]
    return containerd.ctr("run", *flags, *args, **kw)


def tasks(containerd) -> dict[str, dict]:
    """`ctr task ls`: {id: {"pid": ..., "status": ...}}."""
    out = containerd.ctr("tasks", "list").stdout.splitlines()[1:]
    return {f[0]: {"pid": f[1], "status": f[2]} for f in (line.split() for line in out) if len(f) >= 3}


def run_detached(containerd, rt, cid: str, *cmd: str) -> str:
    r = ctr_run(containerd, rt, "--detach", IMAGE, cid, *(cmd or ("sleep", "1000")))
    assert r.returncode == 0, r
    def running():
        t = tasks(containerd).get(cid)
        return t if t and t["status"] == "RUNNING" else None
    return H.wait_for(running, 10, what="task RUNNING")["pid"]


@pytest.mark.parametrize("rt", params(), indirect=True)
def test_run_rm_exit_code_and_output(containerd, rt, ctr_id):
    cid = ctr_id()
    r = ctr_run(containerd, rt, "--rm", IMAGE, cid, "sh", "-c",
                "echo hello; echo to-stderr >&2; exit 42")
    assert (r.returncode, r.stdout, r.stderr) == (42, "hello\n", "to-stderr\n"), r
    assert containerd.ctr("containers", "info", cid).returncode != 0  # --rm removed it
    assert not os.path.exists(state_dir(containerd, rt, cid))


@pytest.mark.parametrize("rt", params(), indirect=True)
def test_run_rm_stdin(containerd, rt, ctr_id):
    # ctr never closes the task's stdin at EOF: read a known number of lines
    data = "".join(f"{i}\n" for i in range(500))
    r = ctr_run(containerd, rt, "--rm", IMAGE, ctr_id(), "sh", "-c", "head -n 500; exit 3",
                input=data, timeout=30)
    assert (r.returncode, r.stdout) == (3, data), r


@pytest.mark.parametrize("rt", params("terminal"), indirect=True)
def test_run_rm_tty(containerd, rt, ctr_id):
    r = ctr_run(containerd, rt, "--rm", "--tty", IMAGE, ctr_id(), "sh", "-c",
                "tty; [ -t 0 ] && echo is-a-tty; exit 6", tty=True)
    assert r.returncode == 6, r
    assert "/dev/pts/0" in r.stdout and "is-a-tty" in r.stdout, r


@pytest.mark.parametrize("rt", params("exec"), indirect=True)
def test_task_exec(containerd, rt, ctr_id):
    cid = ctr_id()
    run_detached(containerd, rt, cid)
    r = containerd.ctr("tasks", "exec", "--exec-id", "e1", cid, "sh", "-c",
                       "echo in-exec; cat /proc/1/cmdline | tr '\\0' ' '; exit 3")
    assert (r.returncode, r.stdout) == (3, "in-exec\nsleep 1000 "), r
    r = containerd.ctr("tasks", "exec", "--exec-id", "e2", cid, "cat", input="exec stdin\n")
    assert (r.returncode, r.stdout) == (0, "exec stdin\n"), r


@pytest.mark.parametrize("rt", params("exec-tty"), indirect=True)
def test_task_exec_tty(containerd, rt, ctr_id):
    cid = ctr_id()
    run_detached(containerd, rt, cid)
    r = containerd.ctr("tasks", "exec", "--tty", "--exec-id", "t1", cid, "sh", "-c",
                       "tty; exit 4", tty=True)
    assert r.returncode == 4 and "/dev/pts/" in r.stdout, r


@pytest.mark.parametrize("rt", params("ps"), indirect=True)
def test_task_ps(containerd, rt, ctr_id):
    cid = ctr_id()
    pid = run_detached(containerd, rt, cid, "sh", "-c", "sleep 1000 & sleep 999")
    r = containerd.ctr("tasks", "ps", cid)
    assert r.returncode == 0, r
    pids = [line.split()[0] for line in r.stdout.splitlines()[1:]]
    assert pid in pids and len(pids) == 2, r  # the runtime's `ps --format json`: host pids


@pytest.mark.parametrize("rt", params("pause"), indirect=True)
def test_task_pause_resume(containerd, rt, ctr_id):
    cid = ctr_id()
    pid = run_detached(containerd, rt, cid)
    freezer = os.path.join(H.host_pid_cgroup(int(pid), "freezer"), "freezer.state")
    r = containerd.ctr("tasks", "pause", cid)
    assert r.returncode == 0, r
    assert tasks(containerd)[cid]["status"] == "PAUSED" and H.read(freezer) == "FROZEN"
    r = containerd.ctr("tasks", "resume", cid)
    assert r.returncode == 0, r
    assert tasks(containerd)[cid]["status"] == "RUNNING" and H.read(freezer) == "THAWED"


@pytest.mark.parametrize("rt", params(), indirect=True)
def test_task_kill_and_delete(containerd, rt, ctr_id):
    cid = ctr_id()
    run_detached(containerd, rt, cid, "sh", "-c",
                 "trap 'exit 3' TERM; while :; do sleep 0.1; done")
    r = containerd.ctr("tasks", "kill", cid)  # SIGTERM
    assert r.returncode == 0, r
    H.wait_for(lambda: tasks(containerd)[cid]["status"] == "STOPPED", 10, what="task STOPPED")
    r = containerd.ctr("tasks", "delete", cid)
    assert r.returncode == 0 and "non-zero exit code 3" in r.stderr, r
    cid2 = ctr_id()
    run_detached(containerd, rt, cid2)
    r = containerd.ctr("tasks", "kill", "--all", "--signal", "SIGKILL", cid2)
    assert r.returncode == 0, r
    H.wait_for(lambda: tasks(containerd)[cid2]["status"] == "STOPPED", 10, what="task STOPPED")
    r = containerd.ctr("tasks", "delete", cid2)
    assert r.returncode == 0 and "non-zero exit code 137" in r.stderr, r
    assert not os.path.exists(state_dir(containerd, rt, cid2))


@pytest.mark.parametrize("rt", params(), indirect=True)
def test_task_delete_force(containerd, rt, ctr_id):
    cid = ctr_id()
    pid = run_detached(containerd, rt, cid)
    assert os.path.isdir(state_dir(containerd, rt, cid))
    r = containerd.ctr("tasks", "delete", "--force", cid)
    assert r.returncode in (0, 137), r
    assert cid not in tasks(containerd)
    assert not os.path.exists(state_dir(containerd, rt, cid))
    H.wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 5, what="the container process to go")


def _init_pid(containerd, cid: str, namespace: str = "k8s.io") -> int:
    """The container's host pid, as the shim recorded it (`create --pid-file <bundle>/init.pid`)."""
    path = os.path.join(containerd.base, "state", "io.containerd.runtime.v2.task", namespace, cid,
                        "init.pid")
    return int(H.read(path))


# --- through config.toml: the CRI plugin's runtimes table (a RuntimeClass handler) -------------

@pytest.fixture
def cri(containerd):
    pytest.importorskip("grpc", reason="grpcio is not installed (pip install grpcio)")
    from tests.clients.cri import CRI
    client = CRI(containerd.sock)
    sandboxes = []
    client.sandboxes = sandboxes
    yield client
    for sb in sandboxes:
        for call in (client.stop_pod_sandbox, client.remove_pod_sandbox):
            try:
                call(sb)
            except Exception:
                pass
    client.close()


@pytest.mark.parametrize("rt", params("exec"), indirect=True)
def test_cri_runtime_handler_from_config(containerd, cri, rt, tmp_path):
    """A pod with runtime_handler=<name> runs on the binary config.toml names for it."""
    assert cri.version()["runtime_name"] == "containerd"
    log_dir = str(tmp_path / "pod-logs")
    os.makedirs(log_dir)
    pod = cri.sandbox_config(f"pod-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex, log_dir,
                             f"{H.CRI_CGROUP}/pod-{uuid.uuid4().hex[:8]}")
    offset = rt.calls_offset()
    sandbox = cri.run_pod_sandbox(pod, rt.name)
    cri.sandboxes.append(sandbox)
    root = os.path.join(containerd.roots[rt.name], "k8s.io")
    assert os.path.isdir(os.path.join(root, sandbox))  # the pause container

    # a container that exits: its output reaches the CRI log, its exit status the kubelet
    short = cri.create_container(sandbox, pod, "once", IMAGE,
                                 ["sh", "-c", "echo hello-from-$(hostname); exit 42"], "once.log")
    cri.start_container(short)
    st = cri.wait_state(short, 2)
    assert (st["state"], st["exit_code"]) == (2, 42), st
    log = open(os.path.join(log_dir, "once.log")).read()
    assert " stdout F hello-from-" in log, log

    # a long-running one: ExecSync goes through the runtime's exec
    long = cri.create_container(sandbox, pod, "long", IMAGE, ["sleep", "1000"], "long.log")
    cri.start_container(long)
    assert cri.wait_state(long, 1)["state"] == 1
    assert os.path.isdir(os.path.join(root, long))
    r = cri.exec_sync(long, ["sh", "-c", "echo exec-ok; cat /proc/1/cmdline | tr '\\0' ' '; exit 3"])
    assert r == {"stdout": "exec-ok\nsleep 1000 ", "stderr": "", "exit_code": 3}, r

    # an in-place resize: the shim's `update --resources - ID`, the JSON on stdin
    cri.update_container_resources(long, 64 << 20, 512)
    pid = _init_pid(containerd, long)
    assert H.read(os.path.join(H.host_pid_cgroup(pid, "memory"), "memory.limit_in_bytes")) == str(64 << 20)
    assert H.read(os.path.join(H.host_pid_cgroup(pid, "cpu"), "cpu.shares")) == "512"

    cri.stop_container(long, 0)
    assert cri.wait_state(long, 2)["state"] == 2
    cri.stop_pod_sandbox(sandbox)
    cri.remove_pod_sandbox(sandbox)
    cri.sandboxes.remove(sandbox)
    for c in (sandbox, short, long):
        assert not os.path.exists(os.path.join(root, c))
    if rt.calls_log:  # the calls really went to ocish, with the shim's flags
        calls = rt.calls_since(offset)
        assert f"--root {root} --log " in calls and "create --bundle" in calls, calls
