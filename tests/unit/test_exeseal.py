"""runtime.linux.exeseal: the sealed memfd copy the container side is spawned from.

Memfds need no privilege: these run anywhere on Linux 3.17 and later (F_SEAL_EXEC from 6.3).
The attacks through a container are in tests/integration/test_exeseal.py.
"""
from __future__ import annotations

import errno
import os
import sys

import pytest

from runtime.linux import exeseal


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "interp"
    path.write_bytes(os.urandom(100_000) + b"end")
    return path


def test_sealed_copy_holds_the_bytes_and_every_seal(source):
    fd = exeseal.sealed_copy(str(source))
    try:
        assert os.pread(fd, 200_000, 0) == source.read_bytes()
        seals = exeseal.get_seals(fd)
        assert seals & exeseal.SEALS == exeseal.SEALS
        assert seals & exeseal.F_SEAL_EXEC  # Linux 6.3 and later, as on these hosts
        st = os.fstat(fd)
        assert st.st_mode & 0o7777 == 0o511 and st.st_nlink == 0
        assert not os.get_inheritable(fd)
        assert os.readlink(f"/proc/self/fd/{fd}") == "/memfd:ocish (deleted)"
    finally:
        os.close(fd)


def test_a_sealed_copy_cannot_change(source):
    fd = exeseal.sealed_copy(str(source))
    try:
        for attempt in (lambda: os.pwrite(fd, b"x", 0), lambda: os.ftruncate(fd, 0),
                        lambda: os.ftruncate(fd, 1 << 20),
                        lambda: exeseal.add_seals(fd, exeseal.F_SEAL_WRITE)):
            with pytest.raises(PermissionError):
                attempt()
        # a reopen through /proc (what a container does with /proc/<pid>/exe) is no way round
        with pytest.raises(PermissionError):
            os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_TRUNC)
        rw = os.open(f"/proc/self/fd/{fd}", os.O_RDWR)
        try:
            with pytest.raises(PermissionError):
                os.write(rw, b"x")
        finally:
            os.close(rw)
        with pytest.raises(PermissionError):  # F_SEAL_EXEC: the exec bits stay
            os.fchmod(fd, 0o600)
        assert os.pread(fd, 200_000, 0) == source.read_bytes()
    finally:
        os.close(fd)


def test_get_seals_of_a_plain_file_is_einval(source):
    fd = os.open(source, os.O_RDONLY)
    try:
        with pytest.raises(OSError) as info:
            exeseal.get_seals(fd)
        assert info.value.errno == errno.EINVAL
    finally:
        os.close(fd)


def test_memfd_without_mfd_exec_before_linux_6_3(monkeypatch):
    """EINVAL for MFD_EXEC (a kernel before 6.3): once more without it, as runc does."""
    calls = []
    real = os.memfd_create

    def memfd_create(name, flags):
        calls.append(flags)
        if flags & exeseal.MFD_EXEC:
            raise OSError(errno.EINVAL, "unknown flag")
        return real(name, flags)

    monkeypatch.setattr(os, "memfd_create", memfd_create)
    os.close(exeseal.executable_memfd())
    base = exeseal.MFD_CLOEXEC | exeseal.MFD_ALLOW_SEALING
    assert calls == [base | exeseal.MFD_EXEC, base]


def test_memfd_noexec_2_is_said_not_worked_around(monkeypatch):
    """EACCES for MFD_EXEC is vm.memfd_noexec=2: one clear error, no second try."""
    calls = []

    def memfd_create(name, flags):
        calls.append(flags)
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "memfd_create", memfd_create)
    with pytest.raises(OSError) as info:
        exeseal.spawn([sys.executable, "-c", "pass"], {}, {0, 1, 2})
    assert info.value.errno == errno.EACCES and info.value.strerror == exeseal.NOEXEC
    assert len(calls) == 1


def test_spawn_keeps_exactly_the_fds_asked_for(tmp_path):
    """The spawned copy gets the kept fds (close-on-exec or not), never the others, even an
    inheritable one; stdin can be replaced; its exe is the memfd."""
    kept = os.open(tmp_path, os.O_RDONLY | os.O_CLOEXEC)
    leak = os.open(tmp_path, os.O_RDONLY)
    os.set_inheritable(leak, True)
    stdin_r, stdin_w = os.pipe()
    out = tmp_path / "out"
    pipe = os.readlink(f"/proc/self/fd/{stdin_r}")
    code = ("import os; fds = sorted(int(n) for n in os.listdir('/proc/self/fd')"
            " if os.path.exists(f'/proc/self/fd/{n}'));"
            f"open({str(out)!r}, 'w').write(repr((fds, os.readlink('/proc/self/exe'),"
            " os.readlink('/proc/self/fd/0'))))")
    env = {"PYTHONHOME": sys.base_prefix}
    try:
        pid = exeseal.spawn(["ocish test", "-S", "-c", code], env, {0, 1, 2, kept}, stdin=stdin_r)
        _, status = os.waitpid(pid, 0)
    finally:
        for fd in (kept, leak, stdin_r, stdin_w):
            os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    fds, exe, fd0 = eval(out.read_text())  # noqa: S307 - our own repr
    assert fds == [0, 1, 2, kept] and leak not in fds
    assert exe == "/memfd:ocish (deleted)"
    assert fd0 == pipe
