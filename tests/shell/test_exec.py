"""`exec` in the shell: the runtime's own exec (runtime.execprocess, as `ocish exec`) into the
loaded container, or any container under --root with --id."""
from __future__ import annotations

import json
import os
import signal
import time

from tests.conftest import needs_root
from tests.shell.conftest import alive, cgroup_dirs

pytestmark = needs_root

NS = ["ipc", "uts", "net", "pid", "cgroup", "mnt"]


def _hostname(spec):
    spec["hostname"] = "exec-test-host"


def _wait(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_exec_joins_the_running_container(ocish, session, make_bundle):
    s = session(make_bundle(["sleep", "30"], mutate=_hostname))
    out = s.cmd("exec hostname")  # before setup completes: one clear line
    assert out.count("\n") == 1 and out.startswith("error: exec: the container is not set up yet")
    s.cmd("continue")
    assert s.cmd("exec true") == "exit status 0\n"  # created: init waits on exec.fifo
    s.cmd("start")
    init = s.json("state")["pid"]
    assert s.cmd("exec hostname") == "exec-test-host\nexit status 0\n"
    assert s.cmd("exec sh -c 'exit 3'") == "exit status 3\n"
    assert s.cmd("exec readlink /proc/self/ns/mnt") == \
        os.readlink(f"/proc/{init}/ns/mnt") + "\nexit status 0\n"
    out = s.cmd("exec sh -c 'for n in " + " ".join(NS) + "; do readlink /proc/self/ns/$n; done'")
    assert out.splitlines() == [os.readlink(f"/proc/{init}/ns/{n}") for n in NS] + ["exit status 0"]
    # the container's config is the base, the flags go over it
    out = s.cmd("exec -u 1000:1001 --cwd /tmp -e FOO=bar -- sh -c 'id -u; id -g; pwd; echo $FOO'")
    assert out.splitlines() == ["1000", "1001", "/tmp", "bar", "exit status 0"]
    # its stdin is /dev/null, never the shell's script
    assert s.cmd("exec cat") == "exit status 0\n"
    assert s.cmd(f"exec --id {s.cid} hostname") == "exec-test-host\nexit status 0\n"
    # `#` starts a comment only at the start of a word, as in sh, on both sides of `->`
    assert s.cmd("exec echo a#b #c") == "a#b\nexit status 0\n"
    assert s.cmd("expect exec echo a#b -> stdout == a#b  # ok") == \
        "ok: exec echo a#b -> stdout == a#b\n"
    # runc's errors, one line each
    out = s.cmd("exec /nonexistent")
    assert out.count("\n") == 1 and out.startswith("error: exec failed:")
    assert s.cmd("exec --id nope true").startswith("error: exec failed: ")
    assert "usage: exec" in s.cmd("exec -x true") and "no command" in s.cmd("exec -d")
    assert "exec [-d] [-u UID[:GID]]" in s.cmd("help exec")
    assert s.cmd("ps").split() == [str(init)]  # every foreground exec was reaped
    s.quit()
    # commands failed above (exec before setup, exec of a missing program...): a piped
    # session with failures exits 1
    assert s.proc.returncode == 1 and not cgroup_dirs(s.cid)


def test_exec_detached_is_reaped_and_torn_down(ocish, session, make_bundle):
    s = session(make_bundle(["sleep", "30"]))
    s.cmd("continue")
    s.cmd("start")
    init = s.json("state")["pid"]
    out = s.cmd("exec -d sleep 0.2")
    pid = int(out.split()[2])
    assert out == f"exec process {pid} running (detached)\n"
    time.sleep(0.5)
    assert f"exec process {pid} exited: exit status 0" in s.cmd("ps")
    out = s.cmd("exec -d sleep 100")
    pid = int(out.split()[2])
    assert sorted(map(int, s.cmd("ps").split())) == sorted([init, pid])
    assert all(os.readlink(f"/proc/{pid}/ns/{n}") == os.readlink(f"/proc/{init}/ns/{n}")
               for n in NS)
    s.quit()  # teardown kills and reaps it, then deletes the container
    assert s.proc.returncode == 0 and not alive(pid) and not alive(init)
    assert not cgroup_dirs(s.cid) and not os.path.exists(os.path.join(ocish.root, s.cid))


def test_sigterm_during_exec_tears_everything_down(ocish, session, make_bundle):
    s = session(make_bundle(["sleep", "30"]))
    s.cmd("continue")
    s.cmd("start")
    init = s.json("state")["pid"]
    s.proc.stdin.write(b"exec sleep 100\n")
    s.proc.stdin.flush()
    assert _wait(lambda: len(json.loads(ocish("ps", "-f", "json", s.cid).stdout)) == 2)
    s.proc.send_signal(signal.SIGTERM)
    s.proc.wait(15)  # not forwarded to the exec'd process: the shell tears down
    assert not alive(init) and not cgroup_dirs(s.cid)
    assert not os.path.exists(os.path.join(ocish.root, s.cid))


def test_exec_errors_name_the_exec_not_config_json(ocish, session, make_bundle):
    """What exec's own command line set (its args, -u, --cwd) is blamed as such; the
    container's config.json only for what comes from it."""
    s = session(make_bundle(["sleep", "30"]))
    s.cmd("continue")
    s.cmd("start")
    assert s.cmd("exec nonexist") == ('error: exec failed: stage exec: exec "nonexist" (the '
                                      "exec's command): executable file not found in $PATH\n")
    assert s.cmd("exec --cwd /nope true") == ("error: exec failed: stage user: chdir /nope "
                                              "(exec --cwd): no such file or directory\n")
    p = ocish("exec", s.cid, "nonexist")
    assert p.returncode == 255
    assert p.stderr == ('ocish: exec failed: stage exec: exec "nonexist" (the exec\'s command): '
                        "executable file not found in $PATH\n")
    s.quit()


def test_exec_ignore_paused_waits_for_resume(ocish, session, make_bundle, tmp_path):
    """runc's `exec --ignore-paused` sets the process up in the frozen cgroup, so it waits
    for the container to be resumed: the shell runs it in the background (-d) and says when
    its process runs."""
    s = session(make_bundle(["sleep", "30"]))
    s.cmd("continue")
    s.cmd("start")
    init = s.json("state")["pid"]
    s.cmd("pause")
    assert "use --ignore-paused to override" in s.cmd("exec true")
    assert "runs detached: its process waits, frozen, until `resume` (add -d)" in \
        s.cmd("exec --ignore-paused true")
    out = s.cmd("exec -d --ignore-paused sh -c 'sleep 60'")
    assert out.startswith("the container is paused: exec ") and "waits, frozen, until `resume`" in out
    time.sleep(0.5)
    assert s.json("state")["status"] == "paused"  # nothing thawed it
    assert "resumed" in s.cmd("resume")
    assert _wait(lambda: len(json.loads(ocish("ps", "-f", "json", s.cid).stdout)) == 2)
    out = s.cmd("ps")
    pids = [int(w) for w in out.split() if w.isdigit()]
    news = [ln for ln in out.splitlines() if "the container was resumed" in ln]
    if not news:  # told with the next command when the background exec ended later
        news = [ln for ln in s.cmd("ps").splitlines() if "the container was resumed" in ln]
    assert news and news[0].startswith("exec process ")
    pid = int(news[0].split()[2])
    assert pid in pids and pid != init and alive(pid)
    s.quit()  # the detached process is killed with the container
    assert not alive(pid) and not cgroup_dirs(s.cid)


def test_quit_of_a_paused_container_with_a_detached_exec(session, make_bundle):
    """A SIGKILLed process of a frozen v1 cgroup dies only once thawed: quitting (as a replay
    does after a failed expectation) while the container is paused and a detached exec still
    runs used to wait for that exec for ever. The shell thaws after its SIGKILLs, as runc's
    Signal does."""
    s = session(make_bundle(["sleep", "30"]))
    s.cmd("continue")
    s.cmd("start")
    pid = int(s.cmd("exec -d sleep 60").split()[2])
    assert _wait(lambda: alive(pid))
    s.cmd("pause")
    assert s.json("state")["status"] == "paused"
    s.quit(timeout=15)
    assert not alive(pid) and not cgroup_dirs(s.cid)
