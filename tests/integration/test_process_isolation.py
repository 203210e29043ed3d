"""The container process against its caller (issue 8, items 2-4), checked from inside with busybox
and from the host's /proc:

- ids above 2147483647 are refused wherever an id is taken, as runc refuses them: 4294967295 is
  (uid_t)-1, "unchanged" to setresuid(2), and such a process used to run as root;
- every container process (init, exec, with a tty or not) leads a session of its own, so a
  `kill 0` inside reaches no process of the caller's group (runc's nsexec stage-2 setsid; the
  pty as that session's controlling terminal is checked in test_terminal.py);
- stdio is handed to a non-root process user (runc's fixStdioPermissions) where it is a pipe, a
  socket, a file written to or the container's own pty, never a device the caller passed in:
  those checks run on device nodes and a pty the test makes itself, never on the host's own.
"""
from __future__ import annotations

import fcntl
import glob
import os
import shutil
import signal
import stat
import struct
import subprocess
import termios

import pytest

from tests.conftest import REPO, cid, needs_root, ocish_cmd, proc_stat, reap_orphans
from tests.integration.test_exec import detached, read_until, running, wait_for  # noqa: F401
from tests.integration.test_terminal import _userns

pytestmark = needs_root
RUNC = shutil.which("runc")
ENV = dict(os.environ, PYTHONPATH=str(REPO))
RANGE = "uids and gids must be in range 0-2147483647"
USER = {"uid": 1000, "gid": 1000}


def as_user(spec: dict) -> None:
    spec["process"]["user"] = dict(USER)


def _user(**ids):
    return lambda s: s["process"]["user"].update(ids)


# --- item 2: ids above 2147483647 -------------------------------------------------------------

# (name, mutate, pointer, the id refused, whether runc 1.1.5 checks it too)
TOO_BIG = [
    ("uid (uid_t)-1", _user(uid=2**32 - 1), "/process/user/uid", 2**32 - 1, True),
    ("gid (gid_t)-1", _user(gid=2**32 - 1), "/process/user/gid", 2**32 - 1, True),
    ("uid 2^31", _user(uid=2**31), "/process/user/uid", 2**31, True),
    ("additional gid (gid_t)-1", _user(additionalGids=[5, 2**32 - 1]),
     "/process/user/additionalGids/1", 2**32 - 1, True),
    ("device uid", lambda s: s["linux"].__setitem__("devices", [
        {"path": "/dev/fifo0", "type": "p", "uid": 2**32 - 1}]), "/linux/devices/0/uid",
     2**32 - 1, False),
    ("device gid", lambda s: s["linux"].__setitem__("devices", [
        {"path": "/dev/fifo0", "type": "p", "gid": 2**32 - 1}]), "/linux/devices/0/gid",
     2**32 - 1, False),
    ("uid map containerID", lambda s: (_userns(s), s["linux"]["uidMappings"].append(
        {"containerID": 2**32 - 1, "hostID": 300000, "size": 1})),
     "/linux/uidMappings/1/containerID", 2**32 - 1, False),
    ("gid map hostID", lambda s: (_userns(s), s["linux"]["gidMappings"].append(
        {"containerID": 70000, "hostID": 2**32 - 1, "size": 1})),
     "/linux/gidMappings/1/hostID", 2**32 - 1, False),
    ("id-mapped mount hostID", lambda s: s["mounts"].append(
        {"destination": "/mnt", "type": "bind", "source": "/tmp", "options": ["bind"],
         "uidMappings": [{"containerID": 0, "hostID": 2**32 - 1, "size": 1}],
         "gidMappings": [{"containerID": 0, "hostID": 0, "size": 1}]}),
     "/mounts/7/uidMappings/0/hostID", 2**32 - 1, False),
]


@pytest.mark.parametrize("name,mutate,pointer,value,runc_checks", TOO_BIG,
                         ids=[c[0] for c in TOO_BIG])
def test_ids_above_2147483647_are_refused(ocish, make_bundle, tmp_path, name, mutate, pointer,
                                          value, runc_checks):
    b = make_bundle(["sh", "-c", "touch /ran; id"], mutate=mutate)
    c = cid()
    p = ocish("run", "-b", str(b), c)
    assert (p.returncode, p.stdout) == (1, "")
    # an id map names ids up to 4294967294 (the kernel's limit); the process user's up to ID_MAX
    why = RANGE if "Mappings" not in pointer else "must be an integer from 0 to 4294967294"
    assert p.stderr == f"ocish: config {pointer}: {why}, got {value}\n"
    assert not os.path.exists(b / "rootfs" / "ran")
    assert not os.path.exists(os.path.join(ocish.root, c))
    assert glob.glob(f"/sys/fs/cgroup/*/ocish/{c}") == []
    if runc_checks and RUNC:
        r = subprocess.run(["runc", "--root", str(tmp_path / "runc"), "run", "-b", str(b), cid()],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL)
        assert r.returncode == 1 and RANGE in r.stderr
        assert not os.path.exists(b / "rootfs" / "ran")


def test_the_largest_id_runs_as_itself(ocish, make_bundle):
    top = 2**31 - 1
    b = make_bundle(["sh", "-c", "grep -E '^(Uid|Gid|Groups):' /proc/self/status"],
                    mutate=_user(uid=top, gid=top, additionalGids=[top - 1]))
    p = ocish("run", "-b", str(b), cid())
    assert p.returncode == 0, p.stderr
    assert p.stdout.split("\n")[:3] == [f"Uid:\t{top}\t{top}\t{top}\t{top}",
                                        f"Gid:\t{top}\t{top}\t{top}\t{top}",
                                        f"Groups:\t{top - 1} "]


@pytest.mark.parametrize("flags,pointer,value", [
    (["-u", str(2**32 - 1)], "process /user/uid", 2**32 - 1),
    (["-u", f"1000:{2**32 - 1}"], "process /user/gid", 2**32 - 1),
    (["-u", str(2**31)], "process /user/uid", 2**31),
    (["-g", str(2**32 - 1)], "process /user/additionalGids/0", 2**32 - 1),
    (["--process", "FILE"], "FILE /user/uid", 2**32 - 1),
], ids=["-u uid", "-u gid", "-u 2^31", "-g", "--process"])
def test_exec_refuses_ids_above_2147483647(ocish, make_bundle, tmp_path, flags, pointer, value):
    c, _ = running(ocish, make_bundle)
    proc = tmp_path / "process.json"
    proc.write_text('{"args": ["sh", "-c", "touch /ran"], "cwd": "/", '
                    '"user": {"uid": 4294967295, "gid": 0}}')
    flags = [str(proc) if f == "FILE" else f for f in flags]
    p = ocish("exec", *flags, c, *([] if "--process" in flags else ["sh", "-c", "touch /ran"]))
    where = pointer.replace("FILE", str(proc))
    assert (p.returncode, p.stderr) == (255, f"ocish: exec failed: {where}: {RANGE}, got {value}\n")
    assert ocish("exec", c, "test", "-e", "/ran").returncode == 1  # nothing ran
    top = ocish("exec", "-u", f"{2**31 - 1}:{2**31 - 1}", c, "sh", "-c", "id -u; id -g")
    assert (top.returncode, top.stdout) == (0, f"{2**31 - 1}\n{2**31 - 1}\n")


@pytest.mark.skipif(not RUNC, reason="runc not installed")
def test_runc_exec_refuses_the_same_ids(make_bundle, tmp_path):
    root, rc = str(tmp_path / "runc"), cid()
    subprocess.run(["runc", "--root", root, "run", "-d", "-b", str(make_bundle(["sleep", "100"])),
                    rc], check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        for flags in (["-u", str(2**32 - 1)], ["-g", str(2**32 - 1)]):
            r = subprocess.run(["runc", "--root", root, "exec", *flags, rc, "true"],
                               capture_output=True, text=True)
            assert r.returncode == 255 and RANGE in r.stderr, r.stderr
    finally:
        subprocess.run(["runc", "--root", root, "delete", "-f", rc], capture_output=True)


# --- item 3: sessions and process groups ------------------------------------------------------

def test_container_processes_lead_their_own_session(ocish, make_bundle, tmp_path, detached):
    c, init = running(ocish, make_bundle)
    st = proc_stat(init)
    assert (st["pgrp"], st["session"], st["tty_nr"]) == (init, init, 0)
    assert st["session"] != os.getsid(0)
    pid_file = tmp_path / "pid"
    ocish("exec", "-d", "--pid-file", str(pid_file), c, "sleep", "30", check=True)
    pid = int(pid_file.read_text())
    detached.append(pid)
    st = proc_stat(pid)
    assert (st["pgrp"], st["session"], st["tty_nr"]) == (pid, pid, 0)
    # ... and from the inside: the process is its own session and group leader
    out = ocish("exec", c, "sh", "-c", "cut -d' ' -f5,6 /proc/self/stat; echo $$", check=True)
    group, me = out.stdout.split("\n")[:2]
    assert group == f"{me} {me}"


def _no_pid_ns(spec: dict) -> None:
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "pid"]


# what runs inside, and the exit status it ends with (as `run` or `exec`)
KILLS = {
    # pid 1 of a pid namespace ignores a SIGTERM it has no handler for; an exec'd process dies
    "kill 0": (None, "kill -TERM 0; echo survived", {"run": 0, "exec": 143}),
    # without a pid namespace the group's id is a host pid the container can name
    "kill -pgid": (_no_pid_ns, "kill -TERM -$(cut -d' ' -f5 /proc/self/stat); echo survived",
                   {"run": 143, "exec": 143}),
}


@pytest.mark.parametrize("how", ["run", "exec"])
@pytest.mark.parametrize("kill", list(KILLS))
def test_kill_of_its_group_inside_reaches_nothing_outside(ocish, make_bundle, tmp_path, how,
                                                          kill):
    """A caller (a shell, in a process group of its own with a sentinel) runs the container;
    the container signals its process group. Before every container process had a session of
    its own, that group was the caller's: the shell and the sentinel got SIGTERM."""
    mutate, script, status = KILLS[kill]
    sentinel, rc_file = tmp_path / "sentinel.pid", tmp_path / "rc"
    if how == "run":
        cmd = ["run", "-b", str(make_bundle(["sh", "-c", script], mutate=mutate)), cid()]
    else:
        c, _ = running(ocish, make_bundle, mutate=mutate)
        cmd = ["exec", c, "sh", "-c", script]
    caller = subprocess.Popen(
        ["sh", "-c", f'sleep 1000 </dev/null >/dev/null 2>&1 & echo $! > {sentinel}; "$@"; '
               f'echo $? > {rc_file}', "caller",
         *ocish_cmd(), "--root", ocish.root, *cmd],
        start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, env=ENV)
    pid = 0
    try:
        out = caller.communicate(timeout=60)[0].decode()
        wait_for(sentinel.exists)
        pid = int(sentinel.read_text())
        assert caller.returncode == 0, f"the caller was killed: {caller.returncode} {out}"
        assert int(rc_file.read_text()) == status[how], out
        assert ("survived" in out) == (status[how] == 0)
        assert proc_stat(pid)["state"] in "SR", "the sentinel outside the container was hit"
    finally:
        caller.kill()
        caller.wait()
        if pid:
            os.kill(pid, signal.SIGKILL)
            reap_orphans()


def test_foreground_run_still_forwards_signals(ocish, make_bundle, tmp_path):
    out_path = tmp_path / "out"
    b = make_bundle(["sh", "-c", "trap 'echo got-term; exit 7' TERM; "
                                 "trap 'echo got-int; exit 8' INT; echo ready; "
                                 "while :; do sleep 0.1; done"])
    for signum, status, word in ((signal.SIGTERM, 7, "got-term"), (signal.SIGINT, 8, "got-int")):
        with open(out_path, "w") as out:
            runner = subprocess.Popen(ocish_cmd() + ["--root", ocish.root, "run", "-b", str(b),
                                                     cid()],
                                      stdout=out, stderr=out, stdin=subprocess.DEVNULL, env=ENV)
            try:
                wait_for(lambda: "ready" in out_path.read_text())
                runner.send_signal(signum)
                assert runner.wait(timeout=20) == status
            finally:
                runner.kill()
                runner.wait()
        assert word in out_path.read_text()


def _on_our_pty(args: list[str], rows: int = 24, cols: int = 80):
    """Start `ocish ARGS` with a fresh pty of ours as its stdio; returns (runner, master)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    runner = subprocess.Popen(ocish_cmd() + args, stdin=slave, stdout=slave, stderr=slave,
                              env=ENV, start_new_session=True)
    os.close(slave)
    return runner, master


def test_ctrl_c_on_a_tty_run_reaches_the_container_as_with_runc(ocish, make_bundle):
    """Our terminal is raw: ^C travels to the container's pty, whose line discipline sends
    SIGINT to the foreground group of the container's session."""
    b = make_bundle(["sh", "-c", "trap 'echo got-int; exit 9' INT; echo ready; "
                                 "while :; do sleep 0.1; done"], terminal=True)
    runner, master = _on_our_pty(["--root", ocish.root, "run", "-b", str(b), cid()])
    try:
        read_until(master, b"ready")
        os.write(master, b"\x03")
        read_until(master, b"got-int")
        assert runner.wait(timeout=20) == 9
    finally:
        runner.kill()
        runner.wait()
        os.close(master)


# --- item 4: who owns stdio -------------------------------------------------------------------

# `>>`: a file reopened by path has an offset of its own; id writes first, through fd 1
REOPEN = "id -u && echo out >> /dev/stdout && echo err >> /dev/stderr"


def test_non_root_process_reopens_its_stdout_pipe_and_file(ocish, make_bundle):
    b = make_bundle(["sh", "-c", REOPEN], mutate=as_user)
    # pipes
    p = subprocess.run(ocish_cmd() + ["--root", ocish.root, "run", "-b", str(b), cid()],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, env=ENV,
                       timeout=60)
    assert (p.returncode, p.stdout, p.stderr) == (0, "1000\nout\n", "err\n")
    # regular files (the runner's stdout and stderr are temporary files)
    p = ocish("run", "-b", str(b), cid())
    assert (p.returncode, p.stdout, p.stderr) == (0, "1000\nout\n", "err\n")


def test_exec_as_non_root_reopens_its_stdout_pipe_and_file(ocish, make_bundle):
    c, _ = running(ocish, make_bundle)
    p = subprocess.run(ocish_cmd() + ["--root", ocish.root, "exec", "-u", "1000:1000", c,
                                      "sh", "-c", REOPEN],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, env=ENV,
                       timeout=60)
    assert (p.returncode, p.stdout, p.stderr) == (0, "1000\nout\n", "err\n")
    p = ocish("exec", "-u", "1000:1000", c, "sh", "-c", REOPEN)
    assert (p.returncode, p.stdout, p.stderr) == (0, "1000\nout\n", "err\n")


def test_a_file_read_as_stdin_keeps_its_owner(ocish, make_bundle, tmp_path):
    src = tmp_path / "input"
    src.write_text("from-stdin\n")
    os.chmod(src, 0o644)
    before = os.stat(src)
    with open(src) as f:
        p = ocish("run", "-b", str(make_bundle(["cat"], mutate=as_user)), cid(), stdin=f)
    assert (p.returncode, p.stdout) == (0, "from-stdin\n")
    after = os.stat(src)
    assert (after.st_uid, after.st_gid, after.st_mode) == (before.st_uid, before.st_gid,
                                                           before.st_mode)


TTY_PROBE = "t=$(tty); echo via-path > $t && echo wrote:$t; stat -c %u $t"


def test_non_root_process_writes_its_own_pty_by_path_run_and_exec(ocish, make_bundle):
    b = make_bundle(["sh", "-c", TTY_PROBE], mutate=as_user, terminal=True)
    runner, master = _on_our_pty(["--root", ocish.root, "run", "-b", str(b), cid()])
    try:
        out = read_until(master, b"\r\n1000\r\n").decode()
        assert "via-path\r\nwrote:/dev/" in out  # /dev/pts/N, or /dev/console bound on it
        assert runner.wait(timeout=20) == 0
    finally:
        runner.kill()
        runner.wait()
        os.close(master)
    c, _ = running(ocish, make_bundle)
    runner, master = _on_our_pty(["--root", ocish.root, "exec", "-t", "-u", "1000", c,
                                  "sh", "-c", TTY_PROBE])
    try:
        out = read_until(master, b"\r\n1000\r\n").decode()
        assert "via-path\r\nwrote:/dev/pts/" in out
        assert runner.wait(timeout=20) == 0
    finally:
        runner.kill()
        runner.wait()
        os.close(master)


def _owner(path_or_fd) -> tuple[int, int, int]:
    st = os.stat(path_or_fd)
    return st.st_uid, st.st_gid, st.st_mode


@pytest.mark.parametrize("how", ["run", "exec"])
def test_callers_devices_keep_owner_and_mode(ocish, make_bundle, tmp_path, how):
    """/dev/null, /dev/zero and a terminal of the caller's, as stdio of a uid 1000 process: none
    may change hands. Our own nodes of the same devices and our own pty stand for the host's,
    so that a failure can never change the host's /dev/null."""
    null, zero = tmp_path / "null", tmp_path / "zero"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(zero, stat.S_IFCHR | 0o666, os.makedev(1, 5))
    master, slave = os.openpty()
    host_null = _owner("/dev/null")
    script = "echo out; echo err >&2; id -u; : > /dev/stdout && echo reopened"
    try:
        before = {n: _owner(n) for n in (null, zero)} | {"pty": _owner(slave)}
        with open(null) as stdin, open(zero, "w") as stderr:
            if how == "run":
                args = ["run", "-b", str(make_bundle(["sh", "-c", script], mutate=as_user)), cid()]
            else:
                c, _ = running(ocish, make_bundle)
                args = ["exec", "-u", "1000:1000", c, "sh", "-c", script]
            p = subprocess.run(ocish_cmd() + ["--root", ocish.root, *args], stdin=stdin,
                               stdout=slave, stderr=stderr, env=ENV, timeout=60)
        out = read_until(master, b"1000\r\n").decode()
        # the caller's terminal stays the caller's: uid 1000 may not reopen it by path
        assert "out\r\n" in out and "reopened" not in out
        assert p.returncode == 1
        after = {n: _owner(n) for n in (null, zero)} | {"pty": _owner(slave)}
        assert after == before
        assert _owner("/dev/null") == host_null
    finally:
        os.close(master)
        os.close(slave)
