"""Stage `terminal`: give the container its own pty and send the master to the console socket.

Runs after `pivot`, where runc sets its console up (after prepareRootfs, before the rootfs is made
read-only): /dev/ptmx is then the container's devpts instance, so the pts belongs to the
container, and /dev/console can still be created. See runtime/terminal.py for the whole path.
Nothing to do without `process.terminal`. The runtime always has a socket for it (--console-socket,
or its own end when `run`/`exec` copy the pty in the foreground); only a debugger session that
gives the process its own stdio has none, and `describe` says so.
"""
from __future__ import annotations

import os

from runtime.engine import CONTAINER, Context, Stage
from runtime.errors import StageError
from runtime.linux import syscalls as S

PTR = "/process/terminal"


class Terminal(Stage):
    name = "terminal"
    side = CONTAINER
    summary = "create the container's pty and send its master to the console socket"

    def __init__(self, console: bool = True) -> None:
        # False for a process joining a running container (runc exec): /dev/console stays
        self.console = console

    def describe(self, ctx: Context) -> str:
        if not ctx.process.get("terminal"):
            return ("process.terminal is false: the process keeps the stdio it inherits "
                    "(config /process/terminal).")
        if ctx.console_sock is None:
            return ("process.terminal is true, but this session has no console socket to send a "
                    "pty master to: no pty, the process keeps the stdio it inherits "
                    "(config /process/terminal).")
        size = ctx.process.get("consoleSize") or {}
        lines = [self.summary + ".",
                 "open /dev/ptmx (the container's devpts), unlock the pts.",
                 "make the pts the controlling terminal of the process's session (TIOCSCTTY), "
                 "dup2 it onto 0, 1, 2.",
                 "bind-mount the pts onto /dev/console." if self.console else "",
                 f"sendmsg(2) the master to {ctx.console_socket or 'the caller'} with SCM_RIGHTS."]
        if size:
            lines.insert(2, f"TIOCSWINSZ {size.get('height', 0)} rows x {size.get('width', 0)} "
                            f"columns (config /process/consoleSize).")
        return "\n".join(line for line in lines if line)

    def preload(self, ctx: Context) -> list[str]:
        return ["runtime.terminal"] if ctx.process.get("terminal") else []

    def run(self, ctx: Context, item: str = "") -> None:
        sock = ctx.console_sock
        if not ctx.process.get("terminal") or sock is None:
            return
        from runtime import terminal  # preloaded
        try:
            master, pts = terminal.open_pty()
        except OSError as e:
            raise StageError(self.name, "open", "/dev/ptmx", e.errno or 0, PTR) from None
        try:
            size = ctx.process.get("consoleSize")
            if size:
                self._do(terminal.set_size, (master, size.get("height", 0), size.get("width", 0)),
                         "ioctl TIOCSWINSZ", pts, "/process/consoleSize")
            try:
                slave = os.open(pts, os.O_RDWR | os.O_NOCTTY)
            except OSError as e:
                raise StageError(self.name, "open", pts, e.errno or 0, PTR) from None
            st = os.fstat(slave)  # the one character device `user` hands to the process user
            ctx.notes["pty_inode"] = (st.st_dev, st.st_ino)
            self._do(terminal.make_controlling, (slave,), "ioctl TIOCSCTTY", pts, PTR)
            if self.console:
                self._do(terminal.create_console_target, (), "create", "/dev/console", PTR)
                self._do(ctx.sys.mount, (pts, "/dev/console", None, S.MS_BIND), "mount",
                         f'"{pts}" on "/dev/console"', PTR)
            self._do(terminal.dup_stdio, (slave,), "dup2", pts, PTR)
            if ctx.console_socket is None:  # the master goes to our own Attach (foreground)
                # runc's recvtty clears ONLCR on the master it keeps, once received (racing the
                # process's first output); here it is cleared before the process can write
                self._do(terminal.clear_onlcr, (master,), "ioctl TCSETS", pts, PTR)
            self._do(terminal.send_fd, (sock, master, pts), "sendmsg", "console socket", PTR)
        finally:
            os.close(master)
            sock.close()
        ctx.notes["pty"] = pts

    def _do(self, fn, args: tuple, op: str, target: str, ptr: str) -> None:
        try:
            fn(*args)
        except OSError as e:
            raise StageError(self.name, op, target, e.errno or 0, ptr) from None
