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

Terminal options are checked like runc's `checkTerminal`: `create` (and `run -d`, `exec -d`) with
a terminal needs --console-socket, and --console-socket without a terminal, or in the foreground,
is refused. In the foreground with a terminal and no socket, the process always gets a pty of its
own whose master stays with us (`Attach`, runc's tty.go recvtty): the bytes are copied both ways,
stdin to the pty and the pty to stdout, until the process exits, whatever our stdio is (a
terminal, pipes, files, /dev/null). As runc does, the pty's ONLCR is cleared (a piped stdout gets
the process's own "\n", not "\r\n"); when our stdin is a terminal it goes raw (output processing
kept, as containerd/console's SetRaw keeps OPOST) and the pty follows its window size. runc 1.1.5
fails when none of our stdio is a terminal and /dev/tty does not open; ocish copies all the same.

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

# runc's checkTerminal refusals ("cannot allocate tty if runc will detach without setting
# console socket", "cannot use console socket if runc will not detach or allocate tty"), in words
# that name what to change
ERR_DETACH = ("cannot allocate a tty for a detached process without --console-socket "
              "(the pty master needs a receiver)")
ERR_SOCKET_NO_TTY = "cannot use --console-socket without a tty (process.terminal or exec -t)"
ERR_SOCKET_FOREGROUND = ("cannot use --console-socket in the foreground: the pty is copied to "
                         "our stdio (add -d)")
TCGETS, TCSETS = 0x5401, 0x5402
ONLCR = 0o4  # <asm-generic/termbits.h>, c_oflag

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
        if not want:
            raise OcishError(ERR_SOCKET_NO_TTY)
        if not detach:
            raise OcishError(ERR_SOCKET_FOREGROUND)
        ctx.console_sock = connect(ctx.console_socket)
        return None
    if not want:
        return None
    if detach:
        raise OcishError(ERR_DETACH)
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


def clear_onlcr(fd: int) -> None:
    """Clear ONLCR on the pty behind `fd` (runc's console.ClearONLCR on the master its foreground
    `run`/`exec` keeps): the process's "\n" reaches our stdout as "\n". Container side, in stage
    `terminal`, before the process can write. Raises OSError."""
    buf = ctypes.create_string_buffer(64)  # struct termios (60 bytes on Linux)
    _ioctl(fd, TCGETS, buf)
    oflag = int.from_bytes(buf.raw[4:8], sys.byteorder) & ~ONLCR
    buf[4:8] = oflag.to_bytes(4, sys.byteorder)
    _ioctl(fd, TCSETS, buf)


class Attach:
    """A foreground process with a terminal: the pty master it sends back, copied to and from
    our stdio until the process exits (runc's tty.go)."""

    def __init__(self) -> None:
        self.sock, self.peer = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
        self.master = -1
        self.name = ""
        # ours that is a terminal, for the window size (runc's initHostConsole tries stderr,
        # stdout, stdin); -1 when none is
        self.host = next((fd for fd in (2, 1, 0) if os.isatty(fd)), -1)

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
        if self.master < 0 or self.host < 0:
            return
        try:
            set_size(self.master, *get_size(self.host))
        except OSError:
            pass

    def close(self) -> None:
        self.close_peer()
        self.sock.close()
        if self.master >= 0:
            os.close(self.master)
            self.master = -1

    def pump(self, pid: int) -> None:
        """Copy stdin -> master and master -> stdout until `pid` exits; stdin goes raw when it
        is a terminal. Neither side can block the other: stdin is read only when what was read
        before is in the pty, which is written as it drains."""
        import select
        saved = self._raw()
        pidfd = os.pidfd_open(pid)
        os.set_blocking(self.master, False)
        poller = select.poll()
        reading = _open(0)
        if reading:
            poller.register(0, select.POLLIN)
        poller.register(pidfd, select.POLLIN)
        pending = b""  # read from stdin, not yet in the pty
        out_ok = True  # our stdout takes what the process writes (else it is dropped)
        master_open = True
        try:
            while True:
                if master_open:  # (registering again changes the events asked for)
                    poller.register(self.master, select.POLLIN | (select.POLLOUT if pending else 0))
                for fd, ev in poller.poll():
                    if fd == pidfd:
                        if master_open:
                            self._drain(out_ok)
                        return
                    if fd == 0:
                        data = b""
                        if ev & (select.POLLIN | select.POLLHUP):
                            try:
                                data = os.read(0, 65536)
                            except OSError:
                                data = b""
                        if data:
                            pending = data
                            poller.unregister(0)  # until the pty took it
                        else:  # EOF (or no stdin at all): nothing more to type
                            poller.unregister(0)
                            reading = False
                    elif fd == self.master:
                        if ev & select.POLLOUT and pending:
                            try:
                                pending = pending[os.write(self.master, pending):]
                            except BlockingIOError:
                                pass
                            except OSError:  # the pty is gone: nothing to type into
                                pending, reading = b"", False
                            if not pending and reading:
                                poller.register(0, select.POLLIN)
                        if ev & (select.POLLIN | select.POLLHUP | select.POLLERR):
                            more, out_ok = self._copy_out(out_ok)
                            if not more:
                                poller.unregister(self.master)
                                master_open = False
        finally:
            os.close(pidfd)
            if saved is not None:
                import termios
                termios.tcsetattr(0, termios.TCSADRAIN, saved)
            self.close()

    def _raw(self):
        """Our stdin raw when it is a terminal: keystrokes (Ctrl-C too) go to the process's pty,
        which echoes and interprets them; output processing stays on (containerd/console's
        SetRaw keeps OPOST). Returns the attributes to restore, None when untouched. A stdin
        that is not a terminal leaves every terminal of ours as it is (runc makes one raw even
        then, which takes Ctrl-C from a user whose keyboard the process does not read)."""
        if not os.isatty(0):
            return None
        import termios
        import tty
        try:
            saved = termios.tcgetattr(0)
            mode = termios.tcgetattr(0)
        except termios.error:
            return None
        tty.setraw(0, termios.TCSANOW)
        raw = termios.tcgetattr(0)
        raw[tty.OFLAG] = mode[tty.OFLAG]  # keep OPOST
        termios.tcsetattr(0, termios.TCSANOW, raw)
        return saved

    def _copy_out(self, out_ok: bool) -> tuple[bool, bool]:
        """Master -> stdout: (whether the pty may give more, whether stdout still takes it);
        the pty gives no more once every slave is closed (EIO). What a closed or broken stdout
        cannot take is read and dropped, so the process never blocks on its terminal."""
        try:
            data = os.read(self.master, 65536)
        except BlockingIOError:
            return True, out_ok
        except OSError:
            return False, out_ok
        if not data:
            return False, out_ok
        if out_ok:
            try:
                _write_all(1, data)
            except OSError:
                out_ok = False
        return True, out_ok

    def _drain(self, out_ok: bool) -> None:
        """What the process wrote just before exiting; never waits for more."""
        more = True
        while more and _readable(self.master):
            more, out_ok = self._copy_out(out_ok)


def _open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


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
