"""podman --runtime <runc | ocish>: conmon runs the runtime (`create --bundle --pid-file
[--console-socket] ...`, `start`, `exec --detach --process`, `kill`, `pause`, `resume`,
`update --resources`, `delete --force`) and the results must be the same for both."""
from __future__ import annotations

import os
import time

import pytest

from tests.clients import helpers as H
from tests.clients.helpers import IMAGE, params



def run_rm(podman, rt, *args, **kw) -> H.Result:
    return podman("run", "--rm", "--runtime", rt.path, *args, **kw)


def start_detached(podman, rt, name: str, *cmd: str) -> str:
    """`podman run -d` a long-running container; returns its host pid."""
    podman.check("run", "-d", "--name", name, "--runtime", rt.path, IMAGE, *(cmd or ("sleep", "1000")))
    H.wait_for(lambda: podman.inspect(name, "{{.State.Status}}") == "running", 10, what="running")
    return podman.inspect(name, "{{.State.Pid}}")


# --- run --rm -------------------------------------------------------------------------------------

@pytest.mark.parametrize("rt", params(), indirect=True)
def test_run_true(podman, rt):
    r = run_rm(podman, rt, IMAGE, "true")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", ""), r


@pytest.mark.parametrize("rt", params(), indirect=True)
def test_run_echo(podman, rt):
    r = run_rm(podman, rt, IMAGE, "echo", "hello", "world")
    assert (r.returncode, r.stdout) == (0, "hello world\n"), r


@pytest.mark.parametrize("rt", params(), indirect=True)
def test_run_exit_42(podman, rt):
    r = run_rm(podman, rt, IMAGE, "sh", "-c", "echo to-stderr >&2; exit 42")
    assert (r.returncode, r.stderr) == (42, "to-stderr\n"), r


@pytest.mark.parametrize("rt", params(), indirect=True)
def test_run_exec_errors(podman, rt):
    # podman reads the runtime's error from its --log (one JSON line) and maps it: "no such file
    # or directory" / "executable file not found" -> 127, "permission denied" -> 126
    r = run_rm(podman, rt, IMAGE, "/no/such/binary")
    assert r.returncode == 127, r
    r = run_rm(podman, rt, IMAGE, "no-such-command")
    assert r.returncode == 127, r


@pytest.mark.parametrize("rt", params("exec-eacces"), indirect=True)
def test_run_not_executable(podman, rt):
    r = run_rm(podman, rt, IMAGE, "/etc/passwd")  # there, but not executable
    assert r.returncode == 126, r


@pytest.mark.parametrize("rt", params(), indirect=True)
def test_run_stdin(podman, rt):
    data = "".join(f"line {i}\n" for i in range(2000))
    r = run_rm(podman, rt, "-i", IMAGE, "sh", "-c", "cat; echo done", input=data)
    assert (r.returncode, r.stdout) == (0, data + "done\n"), r


@pytest.mark.parametrize("rt", params("terminal"), indirect=True)
def test_run_tty(podman, rt):
    r = run_rm(podman, rt, "-t", IMAGE, "sh", "-c", "tty; [ -t 0 ] && [ -t 1 ] && echo is-a-tty",
               tty=True)
    assert r.returncode == 0, r
    assert "/dev/pts/0" in r.stdout and "is-a-tty" in r.stdout, r


@pytest.mark.parametrize("rt", params("terminal"), indirect=True)
def test_run_interactive_tty(podman, rt):
    r = run_rm(podman, rt, "-it", IMAGE, "sh", tty=True,
               tty_script=[("#", "echo answer=$((6*7))\n"), ("answer=42", "exit 5\n")])
    assert r.returncode == 5, r
    assert "answer=42" in r.stdout, r


# a non-root user reopens its stdio (conmon's pipes, or its pty) by path, and leads a session
# of its own: what runc does (fixStdioPermissions, nsexec's setsid), ocish does
AS_USER = ("id -u; echo out >> /dev/stdout; echo err >> /dev/stderr; "
           "echo sid=$(cut -d' ' -f6 /proc/self/stat) me=$$")


@pytest.mark.parametrize("rt", params(), indirect=True)
def test_run_as_user_reopens_stdio(podman, rt):
    r = run_rm(podman, rt, "--user", "1000:1000", IMAGE, "sh", "-c", AS_USER)
    assert (r.returncode, r.stdout, r.stderr) == (0, "1000\nout\nsid=1 me=1\n", "err\n"), r


@pytest.mark.parametrize("rt", params("terminal"), indirect=True)
def test_run_tty_as_user_writes_its_tty(podman, rt):
    r = run_rm(podman, rt, "-t", "--user", "1000:1000", IMAGE, "sh", "-c",
               "echo via-path > $(tty) && stat -c owner=%u $(tty)", tty=True)
    assert r.returncode == 0 and "via-path" in r.stdout and "owner=1000" in r.stdout, r


# --- a running container ----------------------------------------------------------------------------

@pytest.mark.parametrize("rt", params("exec"), indirect=True)
def test_exec(podman, rt, pm_name):
    name = pm_name()
    start_detached(podman, rt, name)
    r = podman("exec", name, "sh", "-c", "echo in-exec $$; cat /proc/1/cmdline | tr '\\0' ' '; exit 3")
    assert r.returncode == 3, r
    assert r.stdout.startswith("in-exec ") and "sleep 1000" in r.stdout, r
    r = podman("exec", "-i", name, "sh", "-c", "cat", input="via stdin\n")
    assert (r.returncode, r.stdout) == (0, "via stdin\n"), r


@pytest.mark.parametrize("rt", params("exec-tty"), indirect=True)
def test_exec_it(podman, rt, pm_name):
    name = pm_name()
    start_detached(podman, rt, name)
    r = podman("exec", "-it", name, "sh", tty=True,
               tty_script=[("#", "tty; echo x=$((2+3))\n"), ("x=5", "exit 4\n")])
    assert r.returncode == 4, r
    assert "/dev/pts/" in r.stdout and "x=5" in r.stdout, r


@pytest.mark.parametrize("rt", params("exec"), indirect=True)
def test_exec_detached(podman, rt, pm_name):
    name = pm_name()
    start_detached(podman, rt, name)
    podman.check("exec", "-d", name, "sh", "-c", "sleep 0.2; echo from-detached > /tmp/marker")
    H.wait_for(lambda: podman("exec", name, "cat", "/tmp/marker").stdout == "from-detached\n",
               10, what="the detached exec's file")


@pytest.mark.parametrize("rt", params(), indirect=True)
def test_top(podman, rt, pm_name):
    name = pm_name()
    start_detached(podman, rt, name, "sh", "-c", "sleep 1000 & sleep 999")
    r = podman.check("top", name, "pid", "args")
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["PID", "COMMAND"], r
    assert any(l.split()[1:] == ["sleep", "1000"] for l in lines[1:]), r
    assert any(l.split()[1:] == ["sleep", "999"] for l in lines[1:]), r


def _freezer_state(pid: str) -> str:
    return H.read(os.path.join(H.host_pid_cgroup(int(pid), "freezer"), "freezer.state"))


@pytest.mark.parametrize("rt", params("pause"), indirect=True)
def test_pause_unpause(podman, rt, pm_name):
    name = pm_name()
    pid = start_detached(podman, rt, name)
    podman.check("pause", name)
    assert podman.inspect(name, "{{.State.Status}}") == "paused"
    assert _freezer_state(pid) == "FROZEN"
    podman.check("unpause", name)
    assert podman.inspect(name, "{{.State.Status}}") == "running"
    assert _freezer_state(pid) == "THAWED"


@pytest.mark.parametrize("rt", params("update"), indirect=True)
def test_update(podman, rt, pm_name):
    name = pm_name()
    pid = int(start_detached(podman, rt, name))
    podman.check("update", "--memory", "64m", "--cpu-shares", "512", "--cpu-quota", "20000",
                 "--cpu-period", "100000", name)
    assert H.read(os.path.join(H.host_pid_cgroup(pid, "memory"), "memory.limit_in_bytes")) == str(64 << 20)
    cpu = H.host_pid_cgroup(pid, "cpu")
    assert H.read(os.path.join(cpu, "cpu.shares")) == "512"
    assert (H.read(os.path.join(cpu, "cpu.cfs_quota_us")), H.read(os.path.join(cpu, "cpu.cfs_period_us"))) \
        == ("20000", "100000")


@pytest.mark.parametrize("rt", params(), indirect=True)
def test_kill(podman, rt, pm_name):
    name = pm_name()
    start_detached(podman, rt, name, "sh", "-c",
                   "trap 'echo got-usr1; exit 7' USR1; while :; do sleep 0.1; done")
    podman.check("kill", "--signal", "USR1", name)
    r = podman("wait", name, timeout=30)
    assert r.stdout.strip() == "7", r
    assert "got-usr1" in podman.check("logs", name).stdout
    name2 = pm_name()
    start_detached(podman, rt, name2)
    podman.check("kill", name2)  # SIGKILL
    assert podman("wait", name2, timeout=30).stdout.strip() == "137"


@pytest.mark.parametrize("rt", params(), indirect=True)
def test_stop_term(podman, rt, pm_name):
    name = pm_name()
    start_detached(podman, rt, name, "sh", "-c",
                   "trap 'echo got-term; exit 3' TERM; while :; do sleep 0.1; done")
    t = time.monotonic()
    podman.check("stop", "--time", "10", name, timeout=30)
    assert time.monotonic() - t < 8  # TERM did it, no KILL after the grace period
    assert podman.inspect(name, "{{.State.ExitCode}}") == "3"
    assert "got-term" in podman.check("logs", name).stdout


@pytest.mark.parametrize("rt", params(), indirect=True)
def test_stop_kill_after_timeout(podman, rt, pm_name):
    name = pm_name()
    start_detached(podman, rt, name)  # sleep as PID 1 ignores SIGTERM
    t = time.monotonic()
    r = podman.check("stop", "--time", "1", name, timeout=30)
    took = time.monotonic() - t
    assert 1 <= took < 10, r
    assert podman.inspect(name, "{{.State.ExitCode}}") == "137"
    assert podman.inspect(name, "{{.State.Status}}") == "exited"


@pytest.mark.parametrize("rt", params(), indirect=True)
def test_restart(podman, rt, pm_name):
    name = pm_name()
    pid = start_detached(podman, rt, name)
    podman.check("restart", "--time", "0", name, timeout=30)
    H.wait_for(lambda: podman.inspect(name, "{{.State.Status}}") == "running", 10, what="running")
    pid2 = podman.inspect(name, "{{.State.Pid}}")
    assert pid2 != pid and os.path.exists(f"/proc/{pid2}")
    assert open(f"/proc/{pid2}/cmdline", "rb").read().split(b"\0")[:2] == [b"sleep", b"1000"]


@pytest.mark.parametrize("rt", params(), indirect=True)
def test_logs(podman, rt, pm_name):
    name = pm_name()
    podman.check("run", "--name", name, "--runtime", rt.path, IMAGE, "sh", "-c",
                 "echo out-1; echo err-1 >&2; echo out-2")
    r = podman.check("logs", name)
    assert r.stdout == "out-1\nout-2\n" and r.stderr == "err-1\n", r


@pytest.mark.parametrize("rt", params(), indirect=True)
def test_rm_force(podman, rt, pm_name):
    name = pm_name()
    # stops on TERM (a plain `sleep` as PID 1 would take podman's whole 10 s stop timeout)
    start_detached(podman, rt, name, "sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done")
    cid = podman.inspect(name, "{{.Id}}")
    assert os.path.isdir(os.path.join(rt.root, cid))
    podman.check("rm", "--force", name, timeout=30)
    assert podman("container", "exists", name).returncode == 1
    assert not os.path.exists(os.path.join(rt.root, cid))  # the runtime's state is gone too


@pytest.mark.parametrize("rt", params(), indirect=True)
def test_preserve_fds(podman, rt, tmp_path):
    src = tmp_path / "fd3.txt"
    src.write_text("through fd 3\n")
    # podman gets the file as its fd 3; in the container, sh forks ls (not its last command),
    # so ls lists the fds of sh itself
    r = H.run(["sh", "-c", f'exec podman run --rm --runtime "$0" --preserve-fds 1 {IMAGE} '
               "sh -c 'cat <&3; ls /proc/$$/fd; exit 0' 3<\"$1\"",
               rt.path, str(src)], env=podman.env)
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    assert lines[0] == "through fd 3", r
    assert sorted(lines[1:], key=int) == ["0", "1", "2", "3"], r  # nothing else leaked in


@pytest.mark.parametrize("rt", params(), indirect=True)
def test_init(podman, rt):
    r = run_rm(podman, rt, "--init", IMAGE, "sh", "-c",
               "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$")
    assert r.returncode == 0, r
    pid1, me = r.stdout.splitlines()
    assert pid1.split()[0] in ("/run/podman-init", "/dev/init"), r
    assert me != "1", r  # the command runs under the init, not as PID 1
