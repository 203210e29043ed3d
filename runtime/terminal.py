"""Terminals: the container's pty, the --console-socket hand-off, and `run`'s own terminal.

With `process.terminal: true` the container gets a pty of its own, made the way runc makes it:

    host (create)                                   container init (stage `terminal`, after pivot)
    ─────────────                                   ──────────────────────────────────────────────
    connect(--console-socket) before the spawn ──►  inherits the connected socket
                                                    open /dev/ptmx (the container's devpts, so the
                                                      pts belongs to the container), unlockpt
                                                    TIOCSWINSZ from process.consoleSize
                                                    TIOCSCTTY on /dev/pts/N (the session is
                                                      the process's own since its fork)
                                                    bind /dev/pts/N onto /dev/console
                                                    dup2 it onto 0, 1, 2
    the socket's listener (podman, containerd,  ◄── sendmsg: one SCM_RIGHTS fd (the master) with
      a test) gets the pty master                     the pts path ("/dev/pts/0") as payload

The socket is connected by the runtime on the host, before the container side is started (it
inherits the socket): its path is resolved in the runtime's view and with the runtime's credentials (a user-namespaced init might
not be allowed to reach it), as runc does.

Terminal options are checked like runc's `checkTerminal`: `create` (and `run -d`) with a terminal
needs --console-socket ("cannot allocate tty if ocish will detach without setting console socket"),
and --console-socket without a terminal, or with `run` in the foreground, is refused. `run` in the
foreground with a terminal and no socket gives the container a pty whose master stays with us
(`Attach`): our stdin goes raw and the bytes are copied both ways until the container exits, window
size changes follow; when our stdin is not a terminal there is nothing to attach and the container
simply inherits our stdio.

Container side, this module runs after pivot_root: it imports all it needs at import time (ctypes
for ioctl(2), so no `fcntl` on the runtime's start-up path).
"""
from __future__ import annotations

import ctypes
import os
import sys

import _socket

from runtime.errors import OcishError

# <asm-generic/ioctls.h>: the same numbers on x86_64 and aarch64
TIOCGWINSZ = 0x5413
TIOCSWINSZ = 0x5414
TIOCSCTTY = 0x540E
TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431

# runc's checks and words ("... if runc will detach ..."), with the runtime that is speaking
ERR_DETACH = "cannot allocate tty if ocish will detach without setting console socket"
ERR_SOCKET = "cannot use console socket if ocish will not detach or allocate tty"

_libc = ctypes.CDLL(None, use_errno=True)


def _ioctl(fd: int, request: int, arg) -> int:
    ret = _libc.ioctl(ctypes.c_int(fd), ctypes.c_ulong(request), arg)
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


# -- container side -----------------------------------------------------------------------------

def open_pty() -> tuple[int, str]:
    """Open /dev/ptmx as seen from here (after pivot_root: the container's devpts instance) and
    unlock its slave; returns (master fd, slave path)."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        _ioctl(master, TIOCSPTLCK, ctypes.byref(ctypes.c_int(0)))
        n = ctypes.c_uint(0)
        _ioctl(master, TIOCGPTN, ctypes.byref(n))
    except OSError:
        os.close(master)
        raise
    return master, f"/dev/pts/{n.value}"


def set_size(fd: int, rows: int, cols: int) -> None:
    ws = b"".join(v.to_bytes(2, sys.byteorder) for v in (rows, cols, 0, 0))
    _ioctl(fd, TIOCSWINSZ, ctypes.c_char_p(ws))


def get_size(fd: int) -> tuple[int, int]:
    buf = ctypes.create_string_buffer(8)
    _ioctl(fd, TIOCGWINSZ, buf)
    raw = buf.raw
    return int.from_bytes(raw[0:2], sys.byteorder), int.from_bytes(raw[2:4], sys.byteorder)


def make_controlling(slave: int) -> None:
    """Make `slave` the controlling terminal of our session: the new one every container
    process gets when it is forked (stage `unshare`, runc's nsexec stage-2 setsid), the way
    runc's init calls Setctty after setupConsole."""
    _ioctl(slave, TIOCSCTTY, ctypes.c_int(0))


def create_console_target(path: str = "/dev/console") -> None:
    """The bind-mount target for the pts, mode 0666 whatever the umask (runc's mountConsole)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, 0o666)
    finally:
        os.close(fd)


def dup_stdio(slave: int) -> None:
    for target in (0, 1, 2):
        os.dup2(slave, target)  # dup2 leaves 0-2 inheritable
    if slave > 2:
        os.close(slave)


def send_fd(sock: _socket.socket, fd: int, name: str) -> None:
    """runc's utils.SendFd: one message, one SCM_RIGHTS fd, the name as the payload."""
    sock.sendmsg([name.encode()],
                 [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fd.to_bytes(4, sys.byteorder))])


# -- host side ----------------------------------------------------------------------------------

def connect(path: str) -> _socket.socket:
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)  # close-on-exec, as all Python's
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        why = os.strerror(e.errno).lower() if e.errno else str(e)
        raise OcishError(f"console socket {path}: connect: {why}") from None
    return sock


def prepare(ctx, detach: bool) -> "Attach | None":
    """Check the terminal options (runc's checkTerminal) and get the socket the container's
    `terminal` stage sends its pty master to (`ctx.console_sock`). Returns an `Attach` when
    `run` in the foreground keeps the master itself."""
    want = bool(ctx.process.get("terminal"))
    if ctx.console_socket:
        if not detach or not want:
            raise OcishError(ERR_SOCKET)
        ctx.console_sock = connect(ctx.console_socket)
        return None
    if not want:
        return None
    if detach:
        raise OcishError(ERR_DETACH)
    if not os.isatty(0):
        return None  # no terminal of ours to lend: the container inherits our stdio
    attach = Attach()
    ctx.console_sock = attach.peer
    return attach


def recv_fd(sock: _socket.socket) -> tuple[int, str]:
    """The other end of send_fd: (fd, name)."""
    space = _socket.CMSG_SPACE(4)
    data, anc, _, _ = sock.recvmsg(4096, space)
    fds = [int.from_bytes(d[:4], sys.byteorder) for lvl, typ, d in anc
           if lvl == _socket.SOL_SOCKET and typ == _socket.SCM_RIGHTS]
    if len(fds) != 1:
        for fd in fds:
            os.close(fd)
        raise OcishError("terminal: the container sent no pty master")
    os.set_inheritable(fds[0], False)
    return fds[0], data.decode(errors="replace")


class Attach:
    """`run` in the foreground with a terminal: the container's pty master, copied to and from
    our own terminal until the container's init exits."""

    def __init__(self) -> None:
        self.sock, self.peer = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
        self.master = -1
        self.name = ""

    def close_peer(self) -> None:
        """The container side has its copy (forked): ours must go, or recv never sees EOF."""
        if self.peer is not None:
            self.peer.close()
            self.peer = None

    def receive(self) -> None:
        self.close_peer()
        self.master, self.name = recv_fd(self.sock)
        self.sock.close()
        self.resize()

    def resize(self) -> None:
        """Give the pty our terminal's size (at start and on SIGWINCH)."""
        if self.master < 0:
            return
        try:
            set_size(self.master, *get_size(0))
        except OSError:
            pass

    def close(self) -> None:
        self.close_peer()
        self.sock.close()
        if self.master >= 0:
            os.close(self.master)
            self.master = -1

    def pump(self, pid: int) -> None:
        """Copy stdin -> master and master -> stdout, stdin raw, until `pid` exits."""
        import select
        import termios
        import tty
        saved = None
        try:
            saved = termios.tcgetattr(0)
            tty.setraw(0, termios.TCSANOW)
        except termios.error:
            pass
        pidfd = os.pidfd_open(pid)
        os.set_blocking(self.master, False)
        poller = select.poll()
        poller.register(0, select.POLLIN)
        poller.register(self.master, select.POLLIN)
        poller.register(pidfd, select.POLLIN)
        try:
            while True:
                events = poller.poll()
                if any(fd == pidfd for fd, _ in events):
                    self._drain()
                    return
                for fd, ev in events:
                    if fd == 0:
                        data = os.read(0, 65536)
                        if data:
                            _write_all(self.master, data)
                        else:  # EOF on our stdin: nothing more to type
                            poller.unregister(0)
                    elif fd == self.master:
                        if not self._copy_out():
                            poller.unregister(self.master)
        finally:
            os.close(pidfd)
            if saved is not None:
                termios.tcsetattr(0, termios.TCSADRAIN, saved)
            self.close()

    def _copy_out(self) -> bool:
        """Master -> stdout; False once the pty has no more to give (EIO: every slave closed)."""
        try:
            data = os.read(self.master, 65536)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if not data:
            return False
        _write_all(1, data)
        return True

    def _drain(self) -> None:
        """What the container wrote just before exiting; never waits for more."""
        while _readable(self.master) and self._copy_out():
            pass


def _readable(fd: int) -> bool:
    import select
    p = select.poll()
    p.register(fd, select.POLLIN)
    return any(ev & select.POLLIN for _, ev in p.poll(0))


def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            data = data[os.write(fd, data):]
        except BlockingIOError:
            import select
            p = select.poll()
            p.register(fd, select.POLLOUT)
            p.poll(1000)
