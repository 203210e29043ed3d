"""`ocish exec`: a new process joins a running container: namespaces, cgroups, process attributes,
exit status, --detach, and runc's errors (status 255), checked against runc where it is installed."""
from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import termios
import time

import pytest

from tests.conftest import REPO, cid, needs_root, ocish_cmd

pytestmark = needs_root
RUNC = shutil.which("runc")
NS = ["user", "ipc", "uts", "net", "pid", "cgroup", "time", "mnt"]


def running(ocish, make_bundle, mutate=None, base=None, args=("sleep", "100")) -> tuple[str, int]:
    c = cid()
    ocish("run", "-d", "-b", str(make_bundle(list(args), mutate=mutate, base=base)), c, check=True)
    return c, ocish.state(c)["pid"]


@pytest.fixture
def detached(ocish):
    """Pids of `exec -d` processes. They are orphans of ours (the test process is the subreaper):
    killed and reaped here, before `ocish` deletes the containers, because a container's init
    cannot finish dying while a process of its pid namespace waits, unreaped, for its parent."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def wait_for(cond, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.05)


def test_exec_joins_every_namespace_and_the_cgroup(ocish, make_bundle, tmp_path, detached):
    c, init = running(ocish, make_bundle)
    pid_file = tmp_path / "pid"
    ocish("exec", "-d", "--pid-file", str(pid_file), c, "sleep", "30", check=True)
    pid = int(pid_file.read_text())
    detached.append(pid)
    assert pid != init and pid > 0
    for ns in NS:  # seen from the host: the same namespace objects as init
        assert os.readlink(f"/proc/{pid}/ns/{ns}") == os.readlink(f"/proc/{init}/ns/{ns}"), ns
    with open(f"/proc/{pid}/cgroup") as a, open(f"/proc/{init}/cgroup") as b:
        assert a.read() == b.read()
    # ... and from the inside: pid 1 is the container's init, our own pid is small
    out = ocish("exec", c, "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$; "
                "for n in " + " ".join(NS) + "; do readlink /proc/self/ns/$n; done", check=True)
    lines = out.stdout.split("\n")
    assert lines[0].split() == ["sleep", "100"]
    assert 1 < int(lines[1]) < 100
    assert lines[2:2 + len(NS)] == [os.readlink(f"/proc/{init}/ns/{ns}") for ns in NS]
    assert sorted(json.loads(ocish("ps", "-f", "json", c).stdout)) == sorted([init, pid])


def test_exec_defaults_come_from_the_container_config(ocish, make_bundle):
    def mutate(s):
        s["process"]["env"].append("FROM_CONFIG=yes")
        s["process"]["cwd"] = "/tmp"
        s["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [5]}
        s["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 512}]
    c, _ = running(ocish, make_bundle, mutate)
    out = ocish("exec", c, "sh", "-c", "echo $FROM_CONFIG; pwd; id -u; id -g; id -G; ulimit -n; "
                "grep CapEff /proc/self/status", check=True).stdout.split("\n")
    assert out[:6] == ["yes", "/tmp", "1000", "1000", "1000 5", "512"]
    assert out[6].split()[1] == "0000000000000000"  # a non-root user keeps no capability


def test_exec_flags_override_the_config(ocish, make_bundle):
    c, _ = running(ocish, make_bundle)
    out = ocish("exec", "-e", "FOO=bar", "--env", "PATH=/bin", "--cwd", "/dev", "-u", "1234:99",
                "--additional-gids", "7", "-g", "8", c,
                "sh", "-c", "echo $FOO $PATH; pwd; id -u; id -g; id -G", check=True)
    assert out.stdout.split("\n")[:5] == ["bar /bin", "/dev", "1234", "99", "99 7 8"]
    # only the uid: the gid stays the config's (0)
    assert ocish("exec", "-u", "5", c, "id", "-g", check=True).stdout.strip() == "0"
    # --cap adds to the bounding, effective, permitted and ambient sets, as runc's does
    out = ocish("exec", "--cap", "CAP_SYS_ADMIN", c, "grep", "CapBnd", "/proc/self/status", check=True)
    assert int(out.stdout.split()[1], 16) & (1 << 21)
    out = ocish("exec", "--no-new-privs", c, "grep", "NoNewPrivs", "/proc/self/status", check=True)
    assert out.stdout.split()[1] == "1"


def test_exec_process_json(ocish, make_bundle, tmp_path):
    c, _ = running(ocish, make_bundle)
    process = {"terminal": False, "user": {"uid": 42, "gid": 43}, "args": ["sh", "-c",
               "echo $ONLY; pwd; id -u; id -g; grep CapEff /proc/self/status"],
               "env": ["ONLY=json", "PATH=/bin:/usr/bin"], "cwd": "/proc",
               "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"],
                                "permitted": ["CAP_KILL"], "inheritable": ["CAP_KILL"],
                                "ambient": ["CAP_KILL"]}}  # ambient: kept by a non-root user
    f = tmp_path / "process.json"
    f.write_text(json.dumps(process))
    out = ocish("exec", "--process", str(f), c, check=True).stdout.split("\n")
    assert out[:4] == ["json", "/proc", "42", "43"]
    assert int(out[4].split()[1], 16) == 1 << 5  # CAP_KILL and nothing of the config's
    f.write_text(json.dumps({**process, "cwd": "relative"}))
    p = ocish("exec", "-p", str(f), c)
    assert p.returncode == 255 and p.stderr.startswith("ocish: exec failed: ") and "/cwd" in p.stderr


def test_exec_cpu_affinity(ocish, make_bundle, tmp_path):
    """process.execCPUAffinity (runtime-spec 1.2) is applied to the exec'd process as runc 1.2
    applies it: `final` is its affinity once in the container's cgroup; an `initial` list the
    kernel refuses (CPUs that are not online) fails the exec with its pointer."""
    c, _ = running(ocish, make_bundle)
    f = tmp_path / "process.json"
    base = {"terminal": False, "cwd": "/", "args": ["grep", "Cpus_allowed_list",
                                                     "/proc/self/status"]}
    f.write_text(json.dumps(base))
    online = open("/sys/devices/system/cpu/online").read().strip()
    assert ocish("exec", "-p", str(f), c, check=True).stdout.split()[1] == online
    f.write_text(json.dumps({**base, "execCPUAffinity": {"initial": online, "final": "0"}}))
    assert ocish("exec", "-p", str(f), c, check=True).stdout.split()[1] == "0"
    f.write_text(json.dumps({**base, "execCPUAffinity": {"initial": "1000"}}))
    p = ocish("exec", "-p", str(f), c)
    assert p.returncode == 255 and "/execCPUAffinity/initial): invalid argument" in p.stderr, \
        p.stderr


def test_exit_status_passes_through(ocish, make_bundle):
    c, _ = running(ocish, make_bundle)
    assert ocish("exec", c, "sh", "-c", "exit 3").returncode == 3
    assert ocish("exec", c, "sh", "-c", "kill -TERM $$").returncode == 128 + signal.SIGTERM
    p = ocish("exec", c, "no-such-program")
    assert p.returncode == 255
    assert "exec failed" in p.stderr and "executable file not found in $PATH" in p.stderr


def test_signals_are_forwarded(ocish, make_bundle, tmp_path):
    c, _ = running(ocish, make_bundle)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    with open(tmp_path / "out", "w+") as out:
        runner = subprocess.Popen(
            ocish_cmd() + ["--root", ocish.root, "exec", c, "sh", "-c",
                           "trap 'echo got-term; exit 7' TERM; echo ready; "
                           "while :; do sleep 0.1; done"],
            stdout=out, stderr=out, stdin=subprocess.DEVNULL, env=env)
        try:
            wait_for(lambda: "ready" in open(tmp_path / "out").read())
            runner.send_signal(signal.SIGTERM)
            assert runner.wait(timeout=20) == 7
        finally:
            runner.kill()
            runner.wait()
        assert "got-term" in open(tmp_path / "out").read()


def test_detach_writes_the_pid_file_and_returns(ocish, make_bundle, tmp_path, detached):
    c, _ = running(ocish, make_bundle)
    pid_file = tmp_path / "exec.pid"
    start = time.monotonic()
    p = ocish("exec", "-d", "--pid-file", str(pid_file), c, "sleep", "60")
    assert p.returncode == 0 and p.stdout == "" and time.monotonic() - start < 20
    pid = int(pid_file.read_text())
    detached.append(pid)
    assert os.waitpid(pid, os.WNOHANG) == (0, 0)  # ours to reap: reparented to the subreaper
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[:2] == [b"sleep", b"60"]
    assert pid in json.loads(ocish("ps", "-f", "json", c).stdout)


def test_exec_in_a_created_container(ocish, make_bundle):
    c = cid()
    ocish("create", "-b", str(make_bundle(["sleep", "100"])), c, check=True)
    assert ocish("exec", c, "sh", "-c", "echo inside").stdout == "inside\n"
    assert ocish.state(c)["status"] == "created"


def test_preserve_fds(ocish, make_bundle, tmp_path):
    c, _ = running(ocish, make_bundle)
    data = tmp_path / "passed"
    data.write_text("through fd 3\n")
    cmd = ["sh", "-c", 'exec 3<"$0"; exec "$@"', str(data)] + ocish_cmd() + [
        "--root", ocish.root, "exec", "--preserve-fds", "1", c, "sh", "-c", "cat <&3"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert p.returncode == 0 and p.stdout == "through fd 3\n", p.stderr
    out = ocish("exec", c, "sh", "-c", "ls /proc/self/fd | sort -n | tr '\\n' ' '", check=True)
    assert out.stdout.split() == ["0", "1", "2", "3"]  # 3: ls's own listing


def test_exec_joins_the_user_namespace(ocish, make_bundle, open_dir):
    def mutate(s):
        s["linux"]["namespaces"].append({"type": "user"})
        s["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        s["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
        s["linux"].pop("resources", None)
        s["mounts"] = [m for m in s["mounts"] if m["type"] != "cgroup"]
    c, init = running(ocish, make_bundle, mutate, base=open_dir)
    out = ocish("exec", "-u", "7", c, "sh", "-c",
                "readlink /proc/self/ns/user; id -u; cat /proc/self/uid_map", check=True)
    lines = out.stdout.split("\n")
    assert lines[0] == os.readlink(f"/proc/{init}/ns/user") != os.readlink("/proc/self/ns/user")
    assert lines[1] == "7"
    assert lines[2].split() == ["0", "100000", "65536"]


def test_exec_sub_cgroup(ocish, make_bundle, tmp_path, detached):
    c, init = running(ocish, make_bundle)
    st = json.load(open(os.path.join(ocish.root, c, "state.json")))
    pids_dir = st["cgroup"]["paths"]["pids"]
    os.mkdir(f"{pids_dir}/sub")
    pid_file = tmp_path / "pid"
    ocish("exec", "-d", "--cgroup", "pids:sub", "--pid-file", str(pid_file), c, "sleep", "30",
          check=True)
    pid = int(pid_file.read_text())
    detached.append(pid)
    own = dict(line.split(":", 2)[1:] for line in open(f"/proc/{pid}/cgroup").read().splitlines())
    init_own = dict(line.split(":", 2)[1:] for line in open(f"/proc/{init}/cgroup").read().splitlines())
    assert own["pids"] == init_own["pids"] + "/sub"
    assert own["memory"] == init_own["memory"]
    p = ocish("exec", "--cgroup", "nope", c, "true")
    assert p.returncode == 255 and "no such cgroup" in p.stderr


@pytest.mark.parametrize("state", ["stopped", "paused"])
def test_exec_refused_like_runc(ocish, make_bundle, tmp_path, state):
    messages = {"stopped": "exec failed: cannot exec in a stopped container",
                "paused": "exec failed: cannot exec in a paused container "
                          "(use --ignore-paused to override)"}
    b = make_bundle(["sleep", "100"])
    c, _ = running(ocish, make_bundle)
    if state == "stopped":
        ocish("kill", c, "KILL", check=True)
        wait_for(lambda: ocish.state(c)["status"] == "stopped")
    else:
        ocish("pause", c, check=True)
    p = ocish("exec", c, "true")
    assert (p.returncode, p.stderr.strip()) == (255, f"ocish: {messages[state]}")
    p = ocish("exec", "nope", "true")
    assert (p.returncode, p.stderr.strip()) == (255, "ocish: exec failed: container does not exist")
    if not RUNC:
        return
    root, rc = str(tmp_path / "runc"), cid()
    subprocess.run(["runc", "--root", root, "run", "-d", "-b", str(b), rc], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if state == "stopped":
            subprocess.run(["runc", "--root", root, "kill", rc, "KILL"], check=True)
            wait_for(lambda: '"stopped"' in subprocess.run(
                ["runc", "--root", root, "state", rc], capture_output=True, text=True).stdout)
        else:
            subprocess.run(["runc", "--root", root, "pause", rc], check=True)
        r = subprocess.run(["runc", "--root", root, "exec", rc, "true"], capture_output=True, text=True)
        assert r.returncode == 255 and messages[state] in r.stderr
    finally:
        subprocess.run(["runc", "--root", root, "delete", "-f", rc], capture_output=True)


def test_terminal_option_checks_like_runc(ocish, make_bundle):
    c, _ = running(ocish, make_bundle)
    p = ocish("exec", "--console-socket", "/nonexistent.sock", c, "true")
    assert (p.returncode, p.stderr) == (255, "ocish: exec failed: cannot use --console-socket "
                                             "without a tty (process.terminal or exec -t)\n")
    p = ocish("exec", "-t", "-d", c, "true")
    assert (p.returncode, p.stderr) == (255, "ocish: exec failed: cannot allocate a tty for a "
                                             "detached process without --console-socket (the "
                                             "pty master needs a receiver)\n")
    # -t without a terminal of ours: the process still gets its pty, copied to our stdout
    p = ocish("exec", "-t", c, "sh", "-c", "tty; exit 2")
    assert p.returncode == 2 and p.stdout.startswith("/dev/pts/"), p


def test_exec_tty_through_the_console_socket(ocish, make_bundle, open_dir, tmp_path, detached):
    c, _ = running(ocish, make_bundle, base=open_dir)
    path = str(open_dir / "console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    pid_file = tmp_path / "pid"
    try:
        ocish("exec", "-d", "-t", "--console-socket", path, "--pid-file", str(pid_file), c,
              "sh", "-c", "tty; read x; echo got:$x", check=True)
        detached.append(int(pid_file.read_text()))
        server.settimeout(10)
        conn, _ = server.accept()
        with conn:
            name, fds, _, _ = socket.recv_fds(conn, 1024, 4)
        master = fds[0]
        try:
            assert name.startswith(b"/dev/pts/") and os.isatty(master)
            assert read_until(master, b"\r\n").decode().split("\r\n")[0] == name.decode()
            os.write(master, b"hello\n")
            read_until(master, b"got:hello")
        finally:
            os.close(master)
        # the container's own console is untouched by an exec: no /dev/console bind for it
        out = ocish("exec", c, "sh", "-c", "grep -c ' /dev/console ' /proc/self/mountinfo || true")
        assert out.stdout.strip() == "0"
    finally:
        server.close()


def test_exec_tty_on_our_terminal(ocish, make_bundle):
    c, _ = running(ocish, make_bundle)
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 90, 0, 0))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    runner = subprocess.Popen(ocish_cmd() + ["--root", ocish.root, "exec", "-t", c, "sh", "-c",
                                             "tty; stty size; read x; echo got:$x; exit 6"],
                              stdin=slave, stdout=slave, stderr=slave, env=env,
                              start_new_session=True)
    os.close(slave)
    try:
        out = read_until(master, b"30 90\r\n").decode()
        assert out.split("\r\n")[0].startswith("/dev/pts/")
        os.write(master, b"typed\n")
        read_until(master, b"got:typed")
        assert runner.wait(timeout=20) == 6
    finally:
        runner.kill()
        runner.wait()
        os.close(master)


def read_until(fd: int, want: bytes, timeout: float = 15) -> bytes:
    buf = b""
    deadline = time.monotonic() + timeout
    while want not in buf:
        left = deadline - time.monotonic()
        assert left > 0, f"{want!r} never came; got {buf!r}"
        if select.select([fd], [], [], left)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: every slave closed
                break
            if not chunk:
                break
            buf += chunk
    assert want in buf, buf
    return buf


def test_lsm_labels_need_the_module(ocish, make_bundle):
    from runtime.linux import lsm
    c, _ = running(ocish, make_bundle)
    for flag, module in (("--apparmor", "apparmor"), ("--process-label", "selinux")):
        if lsm.enabled(module)[0]:
            continue
        p = ocish("exec", flag, "some-label", c, "true")
        assert p.returncode == 255 and p.stderr.startswith("ocish: exec failed: stage lsm: ")
        assert "not enabled on this host" in p.stderr


def _rootless_ready() -> bool:
    try:
        from tests.integration import test_rootless as rl
    except Exception:
        return False
    return bool(rl.SETPRIV and shutil.which("useradd") and rl._system_python_ok())


if _rootless_ready():
    from tests.integration.test_rootless import pkg, rootless_bundle, user  # noqa: F401 (fixtures)

    def test_rootless_exec(user, rootless_bundle):  # noqa: F811
        """An unprivileged runtime joins the user namespace it made (no cgroup to join)."""
        b = rootless_bundle(["sleep", "100"])
        c = cid()
        p = user("run", "-d", c, cwd=b)
        assert p.returncode == 0, p.stderr
        init = json.loads(user("state", c).stdout)["pid"]
        p = user("exec", c, "sh", "-c", "id -u; for n in user mnt pid; do readlink /proc/self/ns/$n; "
                 "done; exit 9")
        assert p.returncode == 9, p.stderr
        out = p.stdout.split("\n")
        assert out[0] == "0"
        assert out[1:4] == [os.readlink(f"/proc/{init}/ns/{n}") for n in ("user", "mnt", "pid")]
        assert json.loads(user("ps", "-f", "json", c).stdout) == [init]
