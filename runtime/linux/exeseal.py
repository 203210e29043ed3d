"""Start the container side from a sealed memfd copy of the runtime's executable (CVE-2019-5736).

Were a container-side process a fork of the runtime's Python, its /proc/self/exe would be the
host's interpreter file: a rootfs whose entrypoint starts with
`#!/proc/self/exe` (and brings its own ld.so and libraries) makes the kernel run that very file
inside the container; the container keeps an O_PATH fd to it across exec and, once no process
runs it any more (ETXTBSY gone), reopens it through /proc/self/fd/N for writing and replaces the
host's interpreter. /proc/1/exe of a created container's init, open to an exec'd process, is the
same door.

So the container side is spawned from a private copy of /proc/self/exe, a fresh interpreter that
never ran as the host's file: a memfd sealed against every change (F_SEAL_SEAL, SHRINK, GROW,
WRITE, and EXEC where the kernel has it), and every process it forks (init, exec'd processes)
inherits it as /proc/self/exe. Whatever the container reaches through
/proc/<pid>/exe or an fd of it is then that copy: opening it for writing fails (EPERM), and it
goes away with the last process running it. The host file is never reachable again.

This follows runc 1.1 (libcontainer/nsenter/cloned_binary.c: memfd_create, sendfile, the four
seals, fexecve of the copy) and runc 1.2 (libcontainer/exeseal/cloned_binary_linux.go: MFD_EXEC
first and without it on EINVAL, chmod 0511, F_SEAL_EXEC where supported). runc 1.2 first tries a detached
read-only overlayfs of the binary's directory (libcontainer/exeseal/overlayfs_linux.go) to avoid
copying a 10 MB Go binary. The file copied here is the interpreter's executable: 17 KB where
libpython is a shared library (0.04 ms to copy and seal, against 0.15 ms for that overlayfs),
about 3 ms for a 7 MB statically linked one.

No fallback to the host file exists: when the kernel refuses an executable memfd
(vm.memfd_noexec=2), the error says so and the container is not created.

The shared libraries the interpreter maps (libpython, libc, libseccomp) stay the host's files
until the user process's execve; /proc/<pid>/map_files is the only path to them from inside,
and it needs CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE in the initial user namespace, with which
a container can write any host file anyway (Debian's runc 1.1.5, linked against libc and
libseccomp, is in the same place).
"""
from __future__ import annotations

import errno
import fcntl  # a C module: not ctypes, which costs milliseconds before the container side starts
import os

# <linux/memfd.h>
MFD_CLOEXEC = 0x0001
MFD_ALLOW_SEALING = 0x0002
MFD_EXEC = 0x0010           # Linux 6.3: executable whatever vm.memfd_noexec=1 says
# <linux/fcntl.h>
F_ADD_SEALS = 1033
F_GET_SEALS = 1034
F_SEAL_SEAL = 0x0001
F_SEAL_SHRINK = 0x0002
F_SEAL_GROW = 0x0004
F_SEAL_WRITE = 0x0008
F_SEAL_EXEC = 0x0020        # Linux 6.3: the mode's exec bits can no longer change
SEALS = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE  # always, as runc checks them
MEMFD_NAME = "ocish"        # /proc/<pid>/exe reads "/memfd:ocish (deleted)"

NOEXEC = "permission denied (vm.memfd_noexec=2 forbids executable memfds)"
EXEC_DENIED = ("permission denied (executing a memfd is refused: vm.memfd_noexec=2, which Linux "
               "6.3 to 6.5 report this late, or a security module)")


def get_seals(fd: int) -> int:
    """fcntl(F_GET_SEALS): the seals of a memfd; EINVAL for a file that is not one."""
    return fcntl.fcntl(fd, F_GET_SEALS)


def add_seals(fd: int, seals: int) -> None:
    """fcntl(F_ADD_SEALS); EPERM once F_SEAL_SEAL is set, EINVAL for an unknown seal."""
    fcntl.fcntl(fd, F_ADD_SEALS, seals)


def executable_memfd(name: str = MEMFD_NAME) -> int:
    """A close-on-exec, sealable memfd that may be executed (runc's system.ExecutableMemfd).

    MFD_EXEC first; a kernel before 6.3 does not know it (EINVAL) and makes memfds executable
    anyway. EACCES is vm.memfd_noexec=2: raised as OSError(EACCES) saying so.
    """
    flags = MFD_CLOEXEC | MFD_ALLOW_SEALING
    try:
        return os.memfd_create(name, flags | MFD_EXEC)
    except OSError as e:
        if e.errno == errno.EACCES:
            raise OSError(errno.EACCES, NOEXEC) from None
        if e.errno != errno.EINVAL:
            raise
    return os.memfd_create(name, flags)


def sealed_copy(path: str = "/proc/self/exe", name: str = MEMFD_NAME) -> int:
    """A memfd holding a copy of `path`, mode 0511, sealed with SEALS and F_SEAL_EXEC where the
    kernel has it; returns its fd (close-on-exec). Raises OSError (the memfd, the copy, a seal
    the kernel refused, or a file that changed size while it was copied)."""
    fd = executable_memfd(name)
    try:
        src = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            size = os.fstat(src).st_size
            done = 0
            while done < size:  # sendfile(2) between two files: no copy through user space
                n = os.sendfile(fd, src, None, size - done)
                if n == 0:
                    raise OSError(errno.EIO, f"{path} shrank while it was copied")
                done += n
        finally:
            os.close(src)
        os.fchmod(fd, 0o511)
        try:
            add_seals(fd, F_SEAL_EXEC)
        except OSError as e:
            if e.errno != errno.EINVAL:  # EINVAL: a kernel before 6.3; the others still hold
                raise
        add_seals(fd, SEALS)
    except BaseException:
        os.close(fd)
        raise
    return fd


def spawn(argv: list[str], env: dict[str, str], keep: set[int], stdin: int | None = None,
          new_group: bool = False) -> int:
    """posix_spawn(3) a sealed copy of /proc/self/exe with argv and env; returns its pid.

    The new process has exactly the fds in `keep` (those open here; close-on-exec cleared in
    the child only: a dup2(fd, fd) file action does that, glibc 2.29 and later, musl) and
    `stdin` on fd 0 when given; every other fd is closed. `new_group`: a process group of its
    own (setpgid(0, 0) before the exec). The exec goes through /proc/self/fd/N of the spawned
    child, whose copy of the fd table holds the memfd until the exec closes it (close-on-exec):
    afterwards only /proc/<pid>/exe leads to it. posix_spawn, not fork: the child runs no
    Python before its exec, so there is no copy-on-write of our heap to pay (3 to 4 ms measured
    here) before the interpreter starts.

    Raises OSError when the copy or the exec fails (glibc reports the child's exec errno), with
    words of its own for EACCES: NOEXEC from memfd_create, EXEC_DENIED from the exec.
    """
    fd = sealed_copy()
    try:
        actions: list[tuple] = [] if stdin is None else [(os.POSIX_SPAWN_DUP2, stdin, 0)]
        for n in sorted(keep - ({0} if stdin is not None else set())):
            try:
                os.get_inheritable(n)
            except OSError:  # not open: nothing to keep
                continue
            actions.append((os.POSIX_SPAWN_DUP2, n, n))
        for name in os.listdir("/proc/self/fd"):
            n = int(name)
            if n not in keep and n != fd:
                try:
                    if os.get_inheritable(n):
                        actions.append((os.POSIX_SPAWN_CLOSE, n))
                except OSError:  # the listing's own fd, closed by now
                    pass
        try:
            group = {"setpgroup": 0} if new_group else {}
            return os.posix_spawn(f"/proc/self/fd/{fd}", argv, env, file_actions=actions, **group)
        except OSError as e:
            if e.errno == errno.EACCES:
                raise OSError(errno.EACCES, EXEC_DENIED) from None
            raise
    finally:
        os.close(fd)
