"""Stage `exec`: find the program, seal the fds, wait on exec.fifo for `start`, then execve(2).

`run` resolves args[0] inside the container and reports back, so a missing program fails
`create` (as with runc) instead of the started container. `handoff` runs after the host has its
answer: it blocks opening exec.fifo for writing until `start` opens it for reading, writes one
byte, and execs. Nothing Python-level runs after that open but execve, and the config's
startContainer hooks (runtime/hooks.py) between the open and the byte: a failing one makes
the process write "1" and the error instead, for `start` to report, and exit.
"""
from __future__ import annotations

import errno
import os
import stat

from runtime.engine import CONTAINER, SECCOMP_CAUSE, Context, Stage, blame_filter
from runtime.engine import seccomp_module as _seccomp
from runtime.errors import StageError
from runtime.linux import sig
from runtime.linux.syscalls import PR_SET_DUMPABLE

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _start_hooks(ctx: Context) -> bool:
    return bool((ctx.spec.get("hooks") or {}).get("startContainer"))


def env_path(env: list[str]) -> str:
    for entry in reversed(env):  # execve's env (and runc) keep the last PATH=
        if entry.startswith("PATH="):
            return entry[5:]
    return DEFAULT_PATH


def look_path(name: str, path: str) -> str | None:
    """Like Go's exec.LookPath: a name with a slash is used as is, others are searched in PATH.

    None when nothing is found; raises PermissionError when a name with a slash exists but
    cannot be executed (runc: `exec: "/etc/passwd": permission denied`; clients map it to 126).
    """
    candidates = [name] if "/" in name else [f"{d or '.'}/{name}" for d in path.split(":")]
    for c in candidates:
        try:
            st = os.stat(c)
        except OSError as e:
            if e.errno == errno.EPERM:  # stat(2) never says so of a file: a seccomp filter
                raise
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return c
        if "/" in name:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), name)
    return None


class Exec(Stage):
    name = "exec"
    side = CONTAINER
    summary = "close leaked fds, wait for `start` on exec.fifo, then execve(2) the user process"

    def __init__(self, wait_start: bool = True) -> None:
        # False for `ocish exec`: the process runs at once, there is no exec.fifo to wait on
        self.wait_start = wait_start

    def describe(self, ctx: Context) -> str:
        args = ctx.process.get("args") or []
        keep = f"0-{2 + ctx.preserve_fds}" if ctx.preserve_fds else "0-2"
        return (f"look up {args[0] if args else '?'!r} in the container's PATH (config /process/args/0).\n"
                f"mark every fd but {keep} close-on-exec (--preserve-fds {ctx.preserve_fds}).\n"
                + ("block opening exec.fifo until `ocish start`, then " if self.wait_start else "")
                + f"execve(2) {args} with "
                f"{len(ctx.process.get('env') or [])} environment variables (config /process/env).")

    def preload(self, ctx: Context) -> list[str]:
        return ["runtime.hooks"] if _start_hooks(ctx) else []  # run after pivot_root

    def run(self, ctx: Context, item: str = "") -> None:
        args = ctx.process.get("args") or []
        env = ctx.process.get("env") or []
        try:
            path = look_path(args[0], env_path(env))
        except PermissionError as e:
            if e.errno == errno.EPERM:  # blame_filter names the filter, when one refuses it
                raise StageError(self.name, "stat", f'"{args[0]}"', errno.EPERM) from None
            raise StageError(self.name, "exec", f'"{args[0]}"', errno.EACCES, "/process/args/0") from None
        if path is None:
            raise StageError(self.name, "exec", f'"{args[0]}"', errno.ENOENT, "/process/args/0",
                             "executable file not found in $PATH" if "/" not in args[0]
                             else "no such file or directory")
        ctx.notes["exec_path"] = path
        if not self.wait_start:
            # not dumpable until execve(2) decides: other processes of the container may not
            # ptrace us (runc's init does the same; /proc/<pid>/exe is a sealed copy anyway,
            # runtime/linux/exeseal.py, CVE-2019-5736)
            ctx.sys.prctl(PR_SET_DUMPABLE, 0)
        elif ctx.proc_fd < 0 and not os.path.exists(f"/proc/self/fd/{ctx.fifo_fd}"):
            raise StageError(self.name, "open", "/proc/self/fd", errno.ENOENT, "/mounts",
                             "no procfs handle could be made and the container has no /proc "
                             "mounted: one is needed to reach exec.fifo")
        else:
            self._try_fifo(ctx)  # under a filter loaded already, too (stage bounding)
            if (seccomp := _seccomp()) is not None and seccomp.prepared() is not None:
                if seccomp.pending():
                    self._try_handoff(ctx)
                else:
                    self._try_loaded(ctx)
        keep = 3 + ctx.preserve_fds
        for fd in range(3, keep):
            try:
                os.set_inheritable(fd, True)
            except OSError:  # a gap in the preserved fds
                pass
        # every other fd close-on-exec, without listing /proc/self/fd (crun does the same)
        try:
            ctx.sys.close_range(keep, 2**32 - 1, ctx.sys.CLOSE_RANGE_CLOEXEC)
        except OSError as e:
            raise StageError(self.name, "close_range", f"{keep}-", e.errno or 0) from None

    @staticmethod
    def _open_fifo(ctx: Context, flags: int = 0) -> int:
        """exec.fifo (an O_PATH fd from the host) reopened for writing through /proc; without
        O_NONBLOCK the open blocks until `start` opens it for reading."""
        flags |= os.O_WRONLY | os.O_CLOEXEC
        if ctx.proc_fd >= 0:
            return os.open(f"self/fd/{ctx.fifo_fd}", flags, dir_fd=ctx.proc_fd)
        return os.open(f"/proc/self/fd/{ctx.fifo_fd}", flags)

    # the least RLIMIT_NOFILE soft limit `ocish create` takes, measured: under it the open
    # finds no free descriptor number below the limit (stdio and the runtime's own, as Init's
    # SCM_RIGHTS left them; --preserve-fds adds its own). The debugger's container side holds
    # fewer (one descriptor number lower), so lint and diagnose go by this create's figure.
    MIN_NOFILE = 6

    def _try_fifo(self, ctx: Context) -> None:
        """The handoff's open of exec.fifo, made now without blocking (ENXIO: no reader yet, as
        it should be): one that cannot be made fails `create`, as runc 1.1.5's does (its init
        fails "error closing exec fds: open /proc/self/fd: too many open files" before create
        returns), not the container later with nobody to tell. EMFILE: the config's
        RLIMIT_NOFILE leaves no free file descriptor."""
        try:
            os.close(self._open_fifo(ctx, os.O_NONBLOCK))
        except OSError as e:
            if e.errno == errno.ENXIO:
                return
            pointer, detail = "", ""
            if e.errno == errno.EMFILE:
                limits = [r.get("type") for r in ctx.process.get("rlimits") or []]
                if "RLIMIT_NOFILE" in limits:
                    pointer = f"/process/rlimits/{limits.index('RLIMIT_NOFILE')}"
                    detail = ("the RLIMIT_NOFILE limit leaves no file descriptor free for "
                              "the runtime's last open: raise it above the fds in use")
            raise StageError(self.name, "open", "exec.fifo", e.errno or 0, pointer,
                             detail) from None

    def _try_loaded(self, ctx: Context) -> None:
        """With the seccomp filter loaded already (stage bounding), make the handoff's calls
        now, harmlessly: its signal mask reset (to the mask it has) and a write(2), to a pipe
        (the open of exec.fifo is _try_fifo's, made before under the same filter): a filter
        that refuses one fails `create` with its cause (blame_filter), not the container
        silently at `start`."""
        try:
            sig.pthread_sigmask(sig.SIG_SETMASK, sig.pthread_sigmask(sig.SIG_BLOCK, []))
        except OSError as e:
            raise StageError(self.name, "rt_sigprocmask", "", e.errno or 0) from None
        r, w = os.pipe()
        try:
            os.write(w, b"0")
        except OSError as e:
            raise StageError(self.name, "write", "exec.fifo", e.errno or 0) from None
        finally:
            os.close(r)
            os.close(w)

    def _try_handoff(self, ctx: Context) -> None:
        """With noNewPrivileges the filter is loaded in the handoff, after `create` returned,
        right before exec.fifo is opened and written (runc loads it later, after those: its
        standard_init_linux.go). A child forked now loads the same filter and makes those
        calls (the open without blocking: ENXIO, no reader yet), so that a filter that
        refuses them fails `create` with its cause, not the container before `start`. Not with
        SCMP_ACT_NOTIFY rules (the listener must see the one real load only)."""
        prep = _seccomp().prepared()
        if prep.filter.notify:
            return
        try:
            r, w = os.pipe()
            pid = os.fork()
        except OSError:  # a pids limit, say: the handoff will tell
            return
        if pid == 0:
            code = 0
            try:
                os.close(r)
                prep.filter.load()
                os.write(w, b"0")  # the write first: a byte in the pipe says it passed
                try:
                    os.close(self._open_fifo(ctx, os.O_NONBLOCK))
                except OSError as e:
                    if e.errno != errno.ENXIO:
                        raise
            except OSError as e:
                code = e.errno or 255
            os._exit(code)
        os.close(w)
        try:
            _, status = os.waitpid(pid, 0)
            wrote = os.read(r, 1) == b"0"
        finally:
            os.close(r)
        if status == 0:
            return
        op = "open exec.fifo" if wrote else "write exec.fifo"
        if os.WIFSIGNALED(status):
            raise StageError(self.name, op, "", 0, "/linux/seccomp",
                             f"killed by signal {os.WTERMSIG(status)}: {SECCOMP_CAUSE}")
        err = os.WEXITSTATUS(status)
        raise StageError(self.name, op, "", err, "/linux/seccomp",
                         f"{os.strerror(err).lower()}: {SECCOMP_CAUSE}")

    def handoff(self, ctx: Context) -> None:
        # Python ignores SIGPIPE (and more); ignored signals would survive execve(2)
        for n in range(1, sig.NSIG):
            if n not in (sig.SIGKILL, sig.SIGSTOP):
                try:
                    sig.signal(n, sig.SIG_DFL)
                except (OSError, ValueError):
                    pass
        sig.pthread_sigmask(sig.SIG_SETMASK, [])
        if (seccomp := _seccomp()) is not None:
            seccomp.load_or_exit()  # as late as possible: the fifo, startContainer hooks, execve
        if self.wait_start:
            # exec.fifo is an O_PATH fd from the host, reopened for writing through /proc (a
            # FIFO's O_WRONLY open blocks until `start` opens it for reading)
            fd = -1
            try:
                fd = self._open_fifo(ctx)
                if _start_hooks(ctx):
                    from runtime import hooks  # preloaded
                    hooks.start_container(ctx, fd)  # exits, telling `start` why, if one fails
                os.write(fd, b"0")
            except OSError as e:  # nobody to answer: one line on the process's stderr
                err = blame_filter(StageError(self.name, "open exec.fifo" if fd < 0 else
                                              "write exec.fifo", "", e.errno or 0))
                os.write(2, f"ocish: {err}\n".encode())
                os._exit(1)
        args = ctx.process["args"]
        env = dict(e.split("=", 1) for e in ctx.process.get("env") or [])
        if "home" in ctx.notes:  # stage `user` found no HOME in process.env (runc's setupUser)
            env["HOME"] = ctx.notes["home"]
        path = ctx.notes["exec_path"]
        try:
            os.execve(path, args, env)
        except OSError as e:
            # runc 1.1.5: its init writes the os.PathError ("exec /bin/x: no such file or
            # directory", the path as LookPath resolved it) on the process's stderr, the sync
            # pipe being closed after start, and `runc init` exits 1; `runc run` and
            # `runc exec` then exit 1 too. A missing interpreter (ENOENT) or a file the kernel
            # cannot run (ENOEXEC, EACCES on a noexec mount) all end the same way.
            os.write(2, f"exec {path}: {os.strerror(e.errno or 0).lower()}\n".encode())
            os._exit(1)
