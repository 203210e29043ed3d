"""OCI hooks: when each kind runs, in which namespaces, with what on stdin, and what a failure does.

The hooks are small /bin/sh scripts in a world-traversable directory that is also bind-mounted at
the same path into the container, so startContainer (resolved inside the container) finds them
too. Each appends one line to a log: `<kind> <mount ns of the hook> <state JSON from stdin>`.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from tests.conftest import REPO, cid, needs_root, ocish_cmd, reap_orphans
from tests.shell.conftest import _sweep_cgroups

pytestmark = needs_root

ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
KINDS = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]


def _script(d, name: str, body: str) -> str:
    path = d / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


def _logger(d) -> str:
    return _script(d, "log.sh", f'echo "$1 $(readlink /proc/self/ns/mnt) $(cat)" >> {d}/log')


def _with_hooks(d, hooks: dict, annotations: dict | None = None):
    """mutate(): the hooks, and `d` bind-mounted at the same path inside the container."""
    def mutate(spec: dict) -> None:
        spec["hooks"] = hooks
        spec["mounts"].append({"destination": str(d), "type": "bind", "source": str(d),
                               "options": ["rbind", "rw"]})
        if annotations:
            spec["annotations"] = annotations
    return mutate


def _log(d) -> list[tuple[str, str, dict]]:
    try:
        text = (d / "log").read_text()
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        kind, ns, raw = line.split(" ", 2)
        out.append((kind, ns, json.loads(raw)))
    return out


def _gone(pid: int) -> bool:
    reap_orphans()
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def _nothing_left(ocish, c: str, pid: int) -> None:
    assert not os.path.exists(os.path.join(ocish.root, c))
    assert glob.glob(f"/sys/fs/cgroup/*/ocish/{c}") == []
    assert not os.path.exists(f"/sys/fs/cgroup/memory/ocish/{c}")
    assert pid > 0 and _gone(pid)


def test_order_namespaces_and_state_on_stdin(ocish, make_bundle, open_dir):
    log = _logger(open_dir)
    hooks = {k: [{"path": log, "args": ["log.sh", k], "env": ENV}] for k in KINDS}
    b = make_bundle(["sleep", "30"], mutate=_with_hooks(open_dir, hooks, {"org.test": "yes"}))
    c = cid()
    ocish("create", "-b", str(b), c, check=True)
    pid = ocish.state(c)["pid"]
    created = _log(open_dir)
    assert [k for k, _, _ in created] == ["prestart", "createRuntime", "createContainer"]
    host_ns = os.readlink("/proc/self/ns/mnt")  # ocish runs in the test's mount namespace
    container_ns = os.readlink(f"/proc/{pid}/ns/mnt")
    assert host_ns != container_ns
    ns = {k: n for k, n, _ in created}
    assert ns["prestart"] == ns["createRuntime"] == host_ns
    assert ns["createContainer"] == container_ns  # run by init, in the container's mount ns
    for kind, _, st in created:
        assert st["id"] == c and st["pid"] == pid and st["status"] == "creating", kind
        assert st["bundle"] == str(b) and st["ociVersion"].startswith("1.")
        assert st["annotations"] == {"org.test": "yes"}

    p = ocish("start", c, check=True)
    assert p.stderr == ""
    started = _log(open_dir)[3:]
    assert [k for k, _, _ in started] == ["startContainer", "poststart"]
    (_, sc_ns, sc), (_, ps_ns, ps) = started
    assert sc_ns == container_ns and ps_ns == host_ns
    assert (sc["status"], sc["pid"]) == ("created", pid)
    assert (ps["status"], ps["pid"]) == ("running", pid)
    assert ocish.state(c)["status"] == "running"
    assert open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[0] == b"sleep"

    ocish("delete", "-f", c, check=True)
    kinds = [k for k, _, _ in _log(open_dir)]
    assert kinds == KINDS
    _, stop_ns, stop = _log(open_dir)[-1]
    assert stop_ns == host_ns and stop["status"] == "stopped" and stop["id"] == c
    assert "pid" not in stop  # gone, as with runc


def test_failing_create_runtime_aborts_create_and_leaves_nothing(ocish, make_bundle, open_dir):
    bad = _script(open_dir, "bad.sh", f"cat > {open_dir}/state.json\n"
                                      "echo 'boom: no network for you' >&2\necho more >&2\nexit 3")
    log = _logger(open_dir)
    hooks = {"createRuntime": [{"path": bad, "env": ENV}],
             "createContainer": [{"path": log, "args": ["log.sh", "createContainer"], "env": ENV}],
             "poststop": [{"path": log, "args": ["log.sh", "poststop"], "env": ENV}]}
    b = make_bundle(["sleep", "30"], mutate=_with_hooks(open_dir, hooks))
    c = cid()
    p = ocish("create", "-b", str(b), c)
    assert p.returncode == 1
    assert p.stderr == (f"ocish: create failed: stage hooks: createRuntime hook {bad} "
                        f"(config /hooks/createRuntime/0): exit status 3: boom: no network for you\n")
    pid = json.loads((open_dir / "state.json").read_text())["pid"]
    _nothing_left(ocish, c, pid)
    assert _log(open_dir) == []  # neither the later create hook nor poststop ran


def test_failing_create_container_aborts_create(ocish, make_bundle, open_dir):
    bad = _script(open_dir, "bad.sh", f"cat > {open_dir}/state.json\necho 'inside: no' >&2\nexit 1")
    b = make_bundle(["true"], mutate=_with_hooks(open_dir, {"createContainer": [{"path": bad}]}))
    c = cid()
    p = ocish("create", "-b", str(b), c)
    assert p.returncode == 1
    assert p.stderr == (f"ocish: create failed: stage container-hooks: createContainer hook {bad} "
                        f"(config /hooks/createContainer/0): exit status 1: inside: no\n")
    _nothing_left(ocish, c, json.loads((open_dir / "state.json").read_text())["pid"])


def _hanging(d) -> str:
    """A hook that starts a child (60 s) and waits for it."""
    return _script(d, "hang.sh", "sleep 60 &\nwait")


def _pids(hook: str, timeout: float = 10) -> list[int]:
    """The host pids of the running hook (found by its path) and of its child."""
    from runtime.linux.procfs import children
    deadline = time.monotonic() + timeout
    while True:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if hook.encode() in f.read().split(b"\0"):
                        kids = children(int(pid))
                        if kids:
                            return [int(pid), *kids]
            except OSError:
                continue
        assert time.monotonic() < deadline, "the hook did not start"
        time.sleep(0.02)


def _all_gone(pids: list[int], timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while not all(_gone(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.mark.parametrize("kind", ["createRuntime", "createContainer"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_create_stopped_by_a_signal_leaves_no_hook_running(ocish, make_bundle, open_dir, kind,
                                                           signum):
    """The runtime dies of SIGTERM and SIGHUP as before (Ctrl-C: create fails), but kills its
    hook's process group first; a createContainer hook (run by the container side) is killed
    when the runtime it answers to is gone."""
    hook = _hanging(open_dir)
    b = make_bundle(["true"], mutate=_with_hooks(open_dir, {kind: [{"path": hook, "env": ENV}]}))
    c = cid()
    p = subprocess.Popen(ocish_cmd() + ["--root", ocish.root, "create", "-b", str(b), c],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        pids = _pids(hook)
        p.send_signal(signum)
        p.wait(15)
        assert p.returncode == (130 if signum == signal.SIGINT else -signum), p.stderr.read()
        assert _all_gone(pids), f"hook processes left: {[q for q in pids if not _gone(q)]}"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stderr.close()
        _sweep_cgroups(c)
        reap_orphans()


def test_hook_timeout_kills_it_and_fails(ocish, make_bundle, open_dir):
    slow = _script(open_dir, "slow.sh", f"echo $$ > {open_dir}/hook.pid\nexec sleep 60")
    b = make_bundle(["true"], mutate=_with_hooks(
        open_dir, {"prestart": [{"path": slow, "timeout": 1, "env": ENV}]}))
    c = cid()
    t0 = time.monotonic()
    p = ocish("create", "-b", str(b), c)
    assert p.returncode == 1 and time.monotonic() - t0 < 15
    assert p.stderr.startswith(f"ocish: create failed: stage hooks: prestart hook {slow} "
                               f"(config /hooks/prestart/0): timeout")
    assert _gone(int((open_dir / "hook.pid").read_text()))  # the hook was killed
    assert not os.path.exists(os.path.join(ocish.root, c))
    # and what it started, with it (its process group)
    hook = _hanging(open_dir)
    b = make_bundle(["true"], mutate=_with_hooks(
        open_dir, {"prestart": [{"path": hook, "timeout": 2, "env": ENV}]}))
    p = subprocess.Popen(ocish_cmd() + ["--root", ocish.root, "create", "-b", str(b), cid()],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env=dict(os.environ, PYTHONPATH=str(REPO)))
    pids = _pids(hook)
    assert p.wait(15) == 1
    assert _all_gone(pids)


def test_failing_poststart_and_poststop_only_warn(ocish, make_bundle, open_dir):
    log = _logger(open_dir)
    bad = _script(open_dir, "bad.sh", "cat >/dev/null\necho 'post: oops' >&2\nexit 7")
    hooks = {"poststart": [{"path": bad}, {"path": log, "args": ["log.sh", "poststart"], "env": ENV}],
             "poststop": [{"path": bad}, {"path": log, "args": ["log.sh", "poststop"], "env": ENV}]}
    b = make_bundle(["sleep", "30"], mutate=_with_hooks(open_dir, hooks))
    c = cid()
    ocish("create", "-b", str(b), c, check=True)
    p = ocish("start", c)
    assert p.returncode == 0
    assert p.stderr == (f"ocish: warning: poststart hook {bad} (config /hooks/poststart/0): "
                        f"exit status 7: post: oops\n")
    assert ocish.state(c)["status"] == "running"
    p = ocish("delete", "-f", c)
    assert p.returncode == 0
    assert p.stderr == (f"ocish: warning: poststop hook {bad} (config /hooks/poststop/0): "
                        f"exit status 7: post: oops\n")
    assert not os.path.exists(os.path.join(ocish.root, c))
    assert [k for k, _, _ in _log(open_dir)] == ["poststart", "poststop"]  # the rest still ran


def test_failing_start_container_fails_start_and_stops_the_container(ocish, make_bundle, open_dir):
    bad = _script(open_dir, "bad.sh", "cat >/dev/null\necho 'not today' >&2\nexit 2")
    log = _logger(open_dir)
    hooks = {"startContainer": [{"path": bad}],
             "poststart": [{"path": log, "args": ["log.sh", "poststart"], "env": ENV}]}
    b = make_bundle(["sleep", "30"], mutate=_with_hooks(open_dir, hooks))
    c = cid()
    ocish("create", "-b", str(b), c, check=True)
    pid = ocish.state(c)["pid"]
    p = ocish("start", c)
    assert p.returncode == 1
    assert p.stderr == (f"ocish: start failed: startContainer hook {bad} "
                        f"(config /hooks/startContainer/0): exit status 2: not today\n")
    assert ocish.state(c)["status"] == "stopped" and _gone(pid)
    assert _log(open_dir) == []  # no poststart
    ocish("delete", c, check=True)


@pytest.mark.parametrize("kind", ["createRuntime", "poststart"])
def test_hook_args_env_and_missing_program(ocish, make_bundle, open_dir, kind):
    show = _script(open_dir, "show.sh", f'echo "$# $1 $2 FOO=$FOO" >> {open_dir}/out')
    hooks = {kind: [{"path": show, "args": ["ignored-argv0", "a b", "c"], "env": ["FOO=bar"]}]}
    b = make_bundle(["sleep", "30"], mutate=_with_hooks(open_dir, hooks))
    c = cid()
    ocish("run", "-d", "-b", str(b), c, check=True)
    assert (open_dir / "out").read_text() == "2 a b c FOO=bar\n"
    ocish("delete", "-f", c, check=True)

    missing = str(open_dir / "no-such-hook")
    b = make_bundle(["sleep", "30"], mutate=_with_hooks(open_dir, {kind: [{"path": missing}]}))
    c = cid()
    p = ocish("run", "-d", "-b", str(b), c)
    msg = f"{kind} hook {missing} (config /hooks/{kind}/0): no such file or directory"
    if kind == "poststart":
        assert p.returncode == 0 and p.stderr == f"ocish: warning: {msg}\n"
    else:
        assert p.returncode == 1 and p.stderr == f"ocish: create failed: stage hooks: {msg}\n"


def test_a_user_namespace_container_side_imports_nothing_late(ocish, make_bundle, open_dir,
                                                              tmp_path):
    """The container side loads what a config needs (hooks, seccomp) before it enters a user
    namespace: after it, its root is an unprivileged host uid that may not read the runtime's
    own files, as /root/.pyenv's are not. Here the runtime runs from a copy in a 0700
    directory, so a module imported late fails this test wherever Python is installed."""
    private = tmp_path / "private"
    for package in ("runtime", "ocish"):
        shutil.copytree(REPO / package, private / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    private.chmod(0o700)

    def mutate(s):
        s["linux"]["namespaces"].append({"type": "user"})
        s["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        s["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        s["linux"].pop("resources", None)
        s["mounts"] = [m for m in s["mounts"] if m["type"] != "cgroup"]
        s["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["reboot"], "action": "SCMP_ACT_ERRNO"}]}
        s["hooks"] = {"createContainer": [{"path": "/bin/true"}]}
    b = make_bundle(["sh", "-c", "grep Seccomp: /proc/self/status"], mutate=mutate, base=open_dir)
    c = cid()
    p = subprocess.run([*ocish_cmd(), "--root", ocish.root, "run", "-b", str(b), c],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=str(private)))
    assert (p.returncode, p.stderr) == (0, ""), p.stderr
    assert p.stdout.split() == ["Seccomp:", "2"]
