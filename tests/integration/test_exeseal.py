"""CVE-2019-5736 for a Python runtime: nothing in a container may reach the runtime's interpreter.

The attacks are real and run against a COPY of the interpreter (never the real one): ocish runs
from `interpreter` (a copy of python3.X in tmp), so every container-side process of an unsealed
runtime would have that copy as /proc/self/exe. The rootfs brings what an attacker brings: the
copy's loader and libraries at the paths its ELF asks for, and the stdlib's `encodings` (Python's
start-up needs it). Each attack pins the interpreter file with an fd, waits until no process
executes it any more (ETXTBSY gone) and tries to overwrite it, from a busybox shell so that the
attacker itself does not run it:

- run:  the entrypoint is `#!/proc/self/exe`: the kernel runs the runtime's interpreter inside
        the container, which opens /proc/self/exe O_PATH and hands the fd to the writer;
        `run -d`, so the runtime exits while the container goes on;
- exec: the same script through `exec -d` into a running container;
- created: an exec'd process pins /proc/1/exe of a created, not started container (its init
        waiting on exec.fifo), then `start` makes the init exec its user process.

Each test asserts the copy's bytes are unchanged and how the write failed. To see them fail on a
runtime without the sealed re-exec, point OCISH_ATTACK_TREE at another checkout (the tree whose
`runtime` and `ocish` the copy runs): the writer then rewrites the copy and the hash differs.
The writer refuses any file but the copy (compared by device and inode) or a memfd.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, cid, needs_root
from tests.integration.test_exec import detached  # noqa: F401 - a fixture
from tests.integration.test_extras import assert_nothing_left

pytestmark = [needs_root, pytest.mark.root]

TREE = os.environ.get("OCISH_ATTACK_TREE", str(REPO))
PYHOME = "/py"  # where the rootfs keeps the stdlib's encodings for the interpreter it runs
DOCKER_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
               "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
               "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]

# Run by the interpreter the kernel finds at /proc/self/exe: pin it, and hand over to busybox.
EVIL = """#!/proc/self/exe -S
import os
fd = os.open("/proc/self/exe", os.O_PATH)
os.set_inheritable(fd, True)
os.execv("/bin/sh", ["sh", "/writer", str(fd)])
"""

# busybox sh: $1 is an fd of the pinned file. In the background (the container's process may
# go on or end), retry while the file is busy, then say what happened in /out.
WRITER = """fd=$1
target=$(readlink /proc/self/fd/$fd)
id=$(stat -L -c %d:%i /proc/self/fd/$fd)
echo "$target" > /out/target.tmp && mv /out/target.tmp /out/target
case "$target" in
  /memfd:*) ;;
  *) if [ "$id" != "$COPY_ID" ]; then echo "refused: $target ($id)" > /out/result; exit 0; fi ;;
esac
(
  i=0
  while [ $i -lt 150 ]; do
    if (echo pwned > /proc/self/fd/$fd) 2> /out/err; then
      echo wrote > /out/result.tmp; mv /out/result.tmp /out/result; exit 0
    fi
    grep -q busy /out/err || break
    sleep 0.1
    i=$((i + 1))
  done
  echo "failed: $(cat /out/err)" > /out/result.tmp; mv /out/result.tmp /out/result
) &
wait
"""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def interpreter(tmp_path) -> Path:
    """A copy of the running interpreter's executable (libpython stays shared)."""
    real = Path(os.path.realpath("/proc/self/exe"))
    copy = tmp_path / "pycopy" / "bin" / real.name
    copy.parent.mkdir(parents=True)
    shutil.copy2(real, copy)
    return copy


def copied_ocish(interpreter: Path, root: str, *args: str) -> subprocess.CompletedProcess:
    """ocish run by the interpreter copy, from TREE (output in files: a detached container
    keeps its stdio open)."""
    env = dict(os.environ, PYTHONHOME=sys.base_prefix, PYTHONPATH=TREE)
    cmd = [str(interpreter), "-m", "ocish", "--root", root, *args]
    with tempfile.TemporaryFile("w+") as err:
        rc = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=err, timeout=60, cwd=TREE).returncode  # -m: cwd comes first
        err.seek(0)
        return subprocess.CompletedProcess(cmd, rc, "", err.read())


def arm(rootfs: Path, interpreter: Path) -> None:
    """What the attacker brings in the rootfs: the interpreter's loader and libraries, the
    stdlib's encodings, /evil (mode 0755), /writer and /out."""
    # (a statically linked interpreter: "not a dynamic executable", nothing to bring)
    out = subprocess.run(["ldd", str(interpreter)], capture_output=True, text=True).stdout
    for line in out.splitlines():
        words = line.split()
        lib = words[2] if "=>" in words else words[0]
        if lib.startswith("/"):
            dest = rootfs / lib.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(os.path.realpath(lib), dest)
            dest.chmod(0o755)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    shutil.copytree(Path(sys.base_prefix) / "lib" / version / "encodings",
                    rootfs / PYHOME.lstrip("/") / "lib" / version / "encodings",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (rootfs / "evil").write_text(EVIL)
    (rootfs / "evil").chmod(0o755)
    (rootfs / "writer").write_text(WRITER)
    (rootfs / "out").mkdir()


def attack_bundle(make_bundle, interpreter: Path, args: list[str]) -> Path:
    st = os.stat(interpreter)

    def mutate(spec: dict) -> None:
        spec["root"]["readonly"] = False  # the writer reports in /out
        # Docker's default set: CAP_DAC_OVERRIDE lets root write whatever the file's mode, so
        # only the seals stand between the attacker and the file
        spec["process"]["capabilities"] = {k: DOCKER_CAPS for k in
                                           ("bounding", "effective", "permitted")}
        spec["process"]["env"] = list(spec["process"].get("env") or []) + [
            f"PYTHONHOME={PYHOME}", f"COPY_ID={st.st_dev}:{st.st_ino}"]

    b = make_bundle(args, mutate)
    arm(b / "rootfs", interpreter)
    return b


def wait_for(path: Path, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    return path.read_text().strip()


def check_held(bundle: Path, interpreter: Path, before: str) -> None:
    """The copy is intact, the attacker's fd led to a memfd, and the write failed for good."""
    result = wait_for(bundle / "rootfs" / "out" / "result")
    target = (bundle / "rootfs" / "out" / "target").read_text().strip()
    assert sha256(interpreter) == before, f"the interpreter copy was rewritten ({result}, {target})"
    assert target.startswith("/memfd:ocish"), target
    # EPERM: the memfd's seals (F_SEAL_WRITE/SHRINK) refuse the O_TRUNC open
    assert result.startswith("failed") and "not permitted" in result, result


def test_run_entrypoint_cannot_rewrite_the_interpreter(ocish, make_bundle, interpreter):
    before = sha256(interpreter)
    b = attack_bundle(make_bundle, interpreter, ["/evil"])
    c = cid()
    p = copied_ocish(interpreter, ocish.root, "run", "-d", "-b", str(b), c)
    assert p.returncode == 0, p.stderr
    check_held(b, interpreter, before)


def test_exec_cannot_rewrite_the_interpreter(ocish, make_bundle, interpreter, detached, tmp_path):
    before = sha256(interpreter)
    b = attack_bundle(make_bundle, interpreter, ["sleep", "1000"])
    c = cid()
    p = copied_ocish(interpreter, ocish.root, "run", "-d", "-b", str(b), c)
    assert p.returncode == 0, p.stderr
    pid_file = tmp_path / "exec.pid"
    p = copied_ocish(interpreter, ocish.root, "exec", "-d", "--pid-file", str(pid_file), c, "/evil")
    assert p.returncode == 0, p.stderr
    detached.append(int(pid_file.read_text()))
    check_held(b, interpreter, before)


def test_exec_into_created_container_cannot_rewrite_its_init(ocish, make_bundle, interpreter,
                                                             detached, tmp_path):
    """/proc/1/exe of a created container, pinned by an exec'd process before `start`."""
    before = sha256(interpreter)
    b = attack_bundle(make_bundle, interpreter, ["sleep", "1000"])
    c = cid()
    p = copied_ocish(interpreter, ocish.root, "create", "-b", str(b), c)
    assert p.returncode == 0, p.stderr
    pid_file = tmp_path / "exec.pid"
    p = copied_ocish(interpreter, ocish.root, "exec", "-d", "--pid-file", str(pid_file), c,
                     "sh", "-c", "exec 7</proc/1/exe; exec sh /writer 7")
    assert p.returncode == 0, p.stderr
    detached.append(int(pid_file.read_text()))
    wait_for(b / "rootfs" / "out" / "target")  # pinned while the init still waits on the fifo
    p = copied_ocish(interpreter, ocish.root, "start", c)
    assert p.returncode == 0, p.stderr
    check_held(b, interpreter, before)


def test_created_init_runs_from_a_sealed_memfd(ocish, make_bundle):
    """What a created container's init runs from, seen from the host: a memfd with every seal,
    which cannot be opened for writing; its argv says what it is."""
    from runtime.linux import exeseal
    c = cid()
    ocish("create", "-b", str(make_bundle(["true"])), c, check=True)
    pid = json.loads(ocish("state", c, check=True).stdout)["pid"]
    assert os.readlink(f"/proc/{pid}/exe") == "/memfd:ocish (deleted)"
    fd = os.open(f"/proc/{pid}/exe", os.O_RDONLY | os.O_CLOEXEC)
    try:
        seals = exeseal.get_seals(fd)
        assert seals & exeseal.SEALS == exeseal.SEALS, hex(seals)
        assert seals & exeseal.F_SEAL_EXEC, hex(seals)  # Linux 6.3 and later, as here
        assert os.fstat(fd).st_mode & 0o7777 == 0o511
    finally:
        os.close(fd)
    with pytest.raises(OSError) as info:  # ETXTBSY while it runs, EPERM once it does not
        os.open(f"/proc/{pid}/exe", os.O_WRONLY | os.O_CLOEXEC)
    assert info.value.errno in (errno.ETXTBSY, errno.EPERM)
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[0] == b"ocish init"
    ocish("delete", "-f", c, check=True)


def test_memfd_noexec_is_one_clear_error(ocish, make_bundle):
    """vm.memfd_noexec=2 (set in a pid namespace of our own: the sysctl is per pid namespace)
    forbids the sealed copy: create fails in one line and leaves nothing behind, it never falls
    back to running the container side from the host's file."""
    c = cid()
    b = make_bundle(["true"])
    env = dict(os.environ, PYTHONPATH=str(REPO))
    script = ('echo 2 > /proc/sys/vm/memfd_noexec && '
              'exec "$0" -m ocish --root "$1" run -b "$2" "$3"')
    p = subprocess.run(["unshare", "--pid", "--fork", "sh", "-c", script, sys.executable,
                        ocish.root, str(b), c], env=env, capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 1
    assert p.stderr == ("ocish: create failed: stage exeseal: spawn a sealed copy of "
                        "/proc/self/exe: permission denied (vm.memfd_noexec=2 forbids "
                        "executable memfds)\n")
    assert_nothing_left(ocish, c, b)
