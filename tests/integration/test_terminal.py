"""process.terminal: the pty sent to --console-socket, runc's option checks, and `run` in the
foreground on the caller's own terminal (pipes and no terminal at all: test_parity_proc.py)."""
from __future__ import annotations

import fcntl
import glob
import os
import select
import signal
import socket
import struct
import subprocess
import termios
import time

import pytest

from tests.conftest import REPO, cid, needs_root, ocish_cmd, proc_stat

pytestmark = needs_root

PROBE = ("tty; stty size; echo ctty-ok > /dev/tty; "
         "grep -c ' /dev/console ' /proc/self/mountinfo; read x; echo got:$x")


def _read_until(fd: int, want: bytes, timeout: float = 15) -> bytes:
    buf = b""
    deadline = time.monotonic() + timeout
    while want not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{want!r} never came; got {buf!r}")
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


def _with_size(rows: int, cols: int):
    def mutate(spec: dict) -> None:
        spec["process"]["consoleSize"] = {"height": rows, "width": cols}
    return mutate


def _userns(spec: dict) -> None:
    spec["linux"]["namespaces"].append({"type": "user"})
    spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    spec["linux"].pop("resources", None)
    spec["mounts"] = [m for m in spec["mounts"] if m["type"] != "cgroup"]


@pytest.mark.parametrize("userns", [False, True], ids=["plain", "userns"])
def test_console_socket_gets_the_pty_master(ocish, make_bundle, open_dir, userns):
    path = str(open_dir / "console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)

    def mutate(spec: dict) -> None:
        _with_size(33, 101)(spec)
        if userns:
            _userns(spec)
    b = make_bundle(["sh", "-c", PROBE], terminal=True, mutate=mutate, base=open_dir)
    c = cid()
    try:
        ocish("create", "--console-socket", path, "-b", str(b), c, check=True)
        server.settimeout(10)
        conn, _ = server.accept()
        with conn:
            name, fds, _, _ = socket.recv_fds(conn, 1024, 4)
            assert len(fds) == 1 and name.startswith(b"/dev/pts/")
            assert conn.recv(1) == b""  # one message, then the container closed its end
        master = fds[0]
        try:
            assert os.isatty(master)
            # init leads a session of its own (runc's nsexec setsid), the pty is its controlling
            # terminal and init's group the terminal's foreground group
            init = ocish.state(c)["pid"]
            st = proc_stat(init)
            assert (st["pgrp"], st["session"], st["tpgid"]) == (init, init, init)
            assert st["tty_nr"] == os.makedev(136, int(name.decode().rsplit("/", 1)[1]))
            ocish("start", c, check=True)
            out = _read_until(master, b"\n1\r\n").decode()
            lines = out.split("\r\n")
            assert lines[0] in (name.decode(), "/dev/console")
            assert lines[1] == "33 101"  # process.consoleSize
            assert lines[2] == "ctty-ok"  # it is the controlling terminal: /dev/tty opens
            assert lines[3] == "1"  # the pts is bind-mounted on /dev/console
            os.write(master, b"hello\n")
            _read_until(master, b"got:hello")
        finally:
            os.close(master)
    finally:
        server.close()


def test_terminal_option_checks_like_runc(ocish, make_bundle, open_dir):
    c = cid()
    b = make_bundle(["true"], terminal=True)
    for cmd in (["create"], ["run", "-d"]):
        p = ocish(*cmd, "-b", str(b), c)
        assert p.returncode == 1
        # runc's checkTerminal, in words that name the flag (no message names runc)
        assert p.stderr == ("ocish: cannot allocate a tty for a detached process without "
                            "--console-socket (the pty master needs a receiver)\n")
        assert not os.path.exists(os.path.join(ocish.root, c))
        assert glob.glob(f"/sys/fs/cgroup/*/ocish/{c}") == []
    sock = str(open_dir / "nobody.sock")
    for cmd, terminal, why in (
            (["create"], False, "without a tty (process.terminal or exec -t)"),
            (["run"], True, "in the foreground: the pty is copied to our stdio (add -d)")):
        b = make_bundle(["true"], terminal=terminal)
        p = ocish(*cmd, "--console-socket", sock, "-b", str(b), c)
        assert p.returncode == 1
        assert p.stderr == f"ocish: cannot use --console-socket {why}\n"
    b = make_bundle(["true"], terminal=True)
    p = ocish("create", "--console-socket", sock, "-b", str(b), c)
    assert p.returncode == 1
    assert p.stderr == f"ocish: console socket {sock}: connect: no such file or directory\n"
    assert not os.path.exists(os.path.join(ocish.root, c))


def test_run_in_the_foreground_lends_the_callers_terminal(ocish, make_bundle):
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    b = make_bundle(["sh", "-c", PROBE + "; stty size; exit 5"], terminal=True)
    c = cid()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    runner = subprocess.Popen(ocish_cmd() + ["--root", ocish.root, "run", "-b", str(b), c],
                              stdin=slave, stdout=slave, stderr=slave, env=env,
                              start_new_session=True)
    os.close(slave)
    try:
        out = _read_until(master, b"\n1\r\n").decode()
        lines = out.split("\r\n")
        assert lines[0].startswith("/dev/pts/") or lines[0] == "/dev/console"
        assert lines[1] == "40 120"  # the caller's size
        assert lines[2] == "ctty-ok"
        # our terminal changes size: SIGWINCH to `ocish run` passes the new size on
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
        runner.send_signal(signal.SIGWINCH)
        time.sleep(0.2)
        os.write(master, b"typed\n")
        _read_until(master, b"got:typed\r\n50 160\r\n")
        assert runner.wait(timeout=20) == 5
    finally:
        runner.kill()
        runner.wait()
        os.close(master)
    assert not os.path.exists(os.path.join(ocish.root, c))

