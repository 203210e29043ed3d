"""Capabilities, no_new_privs and seccomp of real containers, checked from inside with busybox.

Each container prints its own /proc/self/status (or runs a probe command); the test compares the
kernel's view with the config. Where runc is installed, the same bundle runs under runc too and the
capability lines must match. A seccomp listener (SCMP_ACT_NOTIFY) is played by a thread of the
test that receives the notify fd over the unix socket and answers with raw ioctls.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import select
import shutil
import socket
import struct
import subprocess
import threading
import time

import pytest

from tests.conftest import cid, needs_root

pytestmark = needs_root
RUNC = shutil.which("runc")
STATUS_KEYS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")
DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
# Docker's default capability set (moby oci/caps/defaults.go)
DOCKER_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
               "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
               "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]


def status(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in STATUS_KEYS:
            out[key] = int(value.strip(), 16) if key.startswith("Cap") else int(value.strip())
    return out


def mask(names: list[str]) -> int:
    from runtime.linux.capabilities import NUMBERS
    m = 0
    for n in names:
        m |= 1 << NUMBERS[n]
    return m


def set_caps(spec: dict, **sets: list[str]) -> None:
    spec["process"]["capabilities"] = {k: list(v) for k, v in sets.items()}


def run(ocish, bundle) -> "subprocess.CompletedProcess":
    return ocish("run", "-b", str(bundle), cid())


# --- capabilities and no_new_privs -------------------------------------------------------------

def test_default_caps_and_no_new_privs(ocish, make_bundle):
    p = run(ocish, make_bundle(["cat", "/proc/self/status"]))
    assert p.returncode == 0, p.stderr
    st = status(p.stdout)
    want = mask(DEFAULT_CAPS)
    assert want == 0x20000420
    assert st["CapBnd"] == st["CapEff"] == st["CapPrm"] == want
    # the default spec lists ambient caps but no inheritable ones: the kernel refuses to raise an
    # ambient capability that is not inheritable, and runc skips them; so do we
    assert st["CapInh"] == 0 and st["CapAmb"] == 0
    assert st["NoNewPrivs"] == 1 and st["Seccomp"] == 0


def test_no_new_privileges_false(ocish, make_bundle):
    def mutate(spec):
        spec["process"]["noNewPrivileges"] = False
    p = run(ocish, make_bundle(["cat", "/proc/self/status"], mutate=mutate))
    assert p.returncode == 0, p.stderr
    assert status(p.stdout)["NoNewPrivs"] == 0


def test_absent_capabilities_drop_everything_like_runc(ocish, make_bundle):
    def mutate(spec):
        del spec["process"]["capabilities"]
    p = run(ocish, make_bundle(["cat", "/proc/self/status"], mutate=mutate))
    assert p.returncode == 0, p.stderr
    st = status(p.stdout)
    assert st["CapBnd"] == st["CapEff"] == st["CapPrm"] == st["CapInh"] == st["CapAmb"] == 0


def test_non_root_user_keeps_ambient_caps(ocish, make_bundle):
    amb = ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"]

    def mutate(spec):
        spec["process"]["user"] = {"uid": 1000, "gid": 1000}
        set_caps(spec, bounding=amb + ["CAP_KILL"], effective=amb, permitted=amb,
                 inheritable=amb, ambient=amb)
    script = "cat /proc/self/status; id; touch /dev/shm/f && chown 0:0 /dev/shm/f && echo chowned"
    p = run(ocish, make_bundle(["sh", "-c", script], mutate=mutate))
    assert p.returncode == 0, p.stderr
    st = status(p.stdout)
    assert "uid=1000 gid=1000" in p.stdout
    assert st["CapAmb"] == st["CapEff"] == st["CapPrm"] == st["CapInh"] == mask(amb)
    assert st["CapBnd"] == mask(amb + ["CAP_KILL"])
    assert "chowned" in p.stdout  # CAP_CHOWN really works for uid 1000


def test_non_root_user_without_ambient_has_no_caps(ocish, make_bundle):
    caps = ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"]

    def mutate(spec):
        spec["process"]["user"] = {"uid": 1000, "gid": 1000}
        set_caps(spec, bounding=caps, effective=caps, permitted=caps)
    p = run(ocish, make_bundle(["sh", "-c", "cat /proc/self/status; touch /dev/shm/f; "
                                            "chown 0:0 /dev/shm/f"], mutate=mutate))
    assert p.returncode != 0 and "Operation not permitted" in p.stderr
    st = status(p.stdout)
    assert st["CapEff"] == st["CapPrm"] == st["CapAmb"] == 0 and st["CapBnd"] == mask(caps)


def test_unknown_capability_is_one_line_error_and_leaves_nothing(ocish, make_bundle):
    def mutate(spec):
        spec["process"]["capabilities"]["bounding"] = ["CAP_KILL", "CAP_CHOWN", "CAP_FOO"]
    c = cid()
    p = ocish("create", "-b", str(make_bundle(["true"], mutate=mutate)), c)
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert "/process/capabilities/bounding/2" in lines[0] and '"CAP_FOO"' in lines[0]
    assert "Traceback" not in p.stderr
    assert not os.path.exists(os.path.join(ocish.root, c))  # refused before anything was made
    assert ocish("state", c).returncode == 1


def test_capability_the_runtime_lacks_is_explained(ocish, make_bundle):
    from runtime.linux.capabilities import NUMBERS, capget
    _, held, _ = capget()
    missing = [n for n, i in NUMBERS.items() if i <= 40 and not held >> i & 1]
    if not missing:
        pytest.skip("this runtime holds every capability")

    def mutate(spec):
        spec["process"]["capabilities"]["permitted"] = DEFAULT_CAPS + missing[:1]
    p = ocish("create", "-b", str(make_bundle(["true"], mutate=mutate)), cid())
    assert p.returncode == 1
    assert "/process/capabilities/permitted" in p.stderr and missing[0] in p.stderr
    assert not os.path.isdir(ocish.root) or os.listdir(ocish.root) == []


@pytest.mark.skipif(RUNC is None, reason="runc is not installed")
@pytest.mark.parametrize("case", ["default", "docker", "user-ambient", "empty", "absent"])
def test_caps_match_runc(ocish, make_bundle, tmp_path, case):
    def mutate(spec):
        if case == "docker":
            set_caps(spec, bounding=DOCKER_CAPS, effective=DOCKER_CAPS, permitted=DOCKER_CAPS)
            spec["process"]["noNewPrivileges"] = False
        elif case == "user-ambient":
            spec["process"]["user"] = {"uid": 1000, "gid": 1000}
            c = ["CAP_NET_RAW", "CAP_KILL"]
            set_caps(spec, bounding=c + ["CAP_CHOWN"], effective=c, permitted=c,
                     inheritable=c[:1], ambient=c)
        elif case == "empty":
            spec["process"]["capabilities"] = {}
        elif case == "absent":
            del spec["process"]["capabilities"]
    b = make_bundle(["cat", "/proc/self/status"], mutate=mutate)
    ours = run(ocish, b)
    theirs = subprocess.run([RUNC, "--root", str(tmp_path / "runc"), "run", "-b", str(b), cid()],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert ours.returncode == theirs.returncode == 0, (ours.stderr, theirs.stderr)
    assert status(ours.stdout) == status(theirs.stdout)


# --- seccomp -----------------------------------------------------------------------------------

def _writable(spec):
    spec["root"]["readonly"] = False


def test_seccomp_errno_blocks_mkdir(ocish, make_bundle):
    def mutate(spec):
        _writable(spec)
        spec["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["mkdir", "mkdirat", "no_such_syscall"],
                          "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM}]}
    script = "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; touch /tmp/f && echo touched; mkdir /tmp/x"
    p = run(ocish, make_bundle(["sh", "-c", script], mutate=mutate))
    assert p.returncode == 1
    assert "touched" in p.stdout
    assert "can't create directory '/tmp/x': Operation not permitted" in p.stderr
    assert "Seccomp:\t2" in p.stdout and "NoNewPrivs:\t1" in p.stdout


@pytest.mark.parametrize("nnp", [True, False])
def test_seccomp_errno_ret_and_args(ocish, make_bundle, nnp):
    """errnoRet reaches the process; an arg condition only matches its value. Without
    noNewPrivileges the filter is loaded earlier (stage bounding), with CAP_SYS_ADMIN."""
    def mutate(spec):
        _writable(spec)
        spec["process"]["noNewPrivileges"] = nnp
        spec["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                 "errnoRet": errno.EDQUOT},
                # refuse only mode 0o700: chmod(path, mode), fchmodat(AT_FDCWD, path, mode)
                {"names": ["chmod"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 1, "value": 0o700, "op": "SCMP_CMP_EQ"}]},
                {"names": ["fchmodat"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 2, "value": 0o700, "op": "SCMP_CMP_EQ"}]},
            ]}
    script = ("grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; touch /tmp/f; "
              "chmod 600 /tmp/f && echo chmod600; chmod 700 /tmp/f || echo chmod700-refused; "
              "mkdir /tmp/x")
    p = run(ocish, make_bundle(["sh", "-c", script], mutate=mutate))
    assert "Disk quota exceeded" in p.stderr, p.stderr
    assert "chmod600" in p.stdout and "chmod700-refused" in p.stdout
    assert "Seccomp:\t2" in p.stdout and f"NoNewPrivs:\t{int(nnp)}" in p.stdout


@pytest.mark.parametrize("action,code,message", [
    ("SCMP_ACT_ERRNO", 1, "Operation not permitted"),
    ("SCMP_ACT_TRACE", 1, "Function not implemented"),   # no tracer attached: ENOSYS
    ("SCMP_ACT_LOG", 0, ""),
    ("SCMP_ACT_TRAP", 128 + 31, ""),                     # SIGSYS
    ("SCMP_ACT_KILL", 128 + 31, ""),
    ("SCMP_ACT_KILL_THREAD", 128 + 31, ""),
    ("SCMP_ACT_KILL_PROCESS", 128 + 31, ""),
])
def test_seccomp_actions(ocish, make_bundle, action, code, message):
    def mutate(spec):
        _writable(spec)
        spec["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                      "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": action}]}
    b = make_bundle(["mkdir", "/tmp/x"], mutate=mutate)
    p = run(ocish, b)
    assert p.returncode == code, (p.stdout, p.stderr)
    assert message in p.stderr
    assert (b / "rootfs" / "tmp" / "x").is_dir() == (code == 0)


def test_seccomp_kill_process(ocish, make_bundle):
    def mutate(spec):
        spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"}]}
    # busybox sh reads getppid for $PPID at start-up: killed by SIGSYS
    p = run(ocish, make_bundle(["sh", "-c", "echo $PPID"], mutate=mutate))
    assert p.returncode == 128 + 31, (p.returncode, p.stdout, p.stderr)


def test_seccomp_bad_profile_names_the_pointer(ocish, make_bundle):
    def mutate(spec):
        spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["rmdir"], "action": "SCMP_ACT_FROBNICATE"}]}
    p = ocish("create", "-b", str(make_bundle(["true"], mutate=mutate)), cid())
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "/linux/seccomp/syscalls/1/action" in p.stderr and "SCMP_ACT_FROBNICATE" in p.stderr
    assert not os.path.isdir(ocish.root) or os.listdir(ocish.root) == []


# A faithful reduction of moby's profiles/seccomp/default.json as Docker hands it to runc on
# amd64 with Docker's default capabilities (no CAP_SYS_ADMIN): the includes/excludes and archMap
# resolved, every rule kept that applies to x86_64 and those capabilities.
DOCKER_ALLOW = """
accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32
clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2
dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait
epoll_wait_old eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64
fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat fchown fchown32 fchownat fcntl fcntl64
fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs
fstatfs64 fsync ftruncate ftruncate64 futex futex_time64 futex_waitv futimesat getcpu getcwd
getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32
getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid getresgid32
getresuid getresuid32 getrlimit get_robust_list getrusage getsid getsockname getsockopt
get_thread_area gettid gettimeofday getuid getuid32 getxattr inotify_add_watch inotify_init
inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents
io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit io_uring_enter io_uring_register
io_uring_setup ipc kill landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown
lchown32 lgetxattr link linkat listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr
lstat lstat64 madvise membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat
mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive
mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv
msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat _newselect open
openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect
poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64 process_mrelease pselect6
pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv recv recvfrom
recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr rename renameat renameat2
restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn
rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity
sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler
sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity sched_setattr
sched_setparam sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop
semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid
setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority setregid
setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit
set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32 setxattr shmat
shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask sigreturn socketcall
socketpair splice stat stat64 statfs statfs64 statx symlink symlinkat sync sync_file_range
syncfs sysinfo tee tgkill time timer_create timer_delete timer_getoverrun timer_gettime
timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64
timerfd_settime timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink
unlinkat utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
""".split()


def docker_default_profile() -> dict:
    allow = "SCMP_ACT_ALLOW"
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": DOCKER_ALLOW, "action": allow},
            {"names": ["process_vm_readv", "process_vm_writev", "ptrace"], "action": allow},
            {"names": ["socket"], "action": allow,
             "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]},
            *({"names": ["personality"], "action": allow,
               "args": [{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}]}
              for v in (0, 8, 131072, 131080, 4294967295)),
            {"names": ["arch_prctl"], "action": allow},
            {"names": ["modify_ldt"], "action": allow},
            {"names": ["chroot"], "action": allow},
            {"names": ["clone"], "action": allow,
             "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        ],
    }


@pytest.mark.parametrize("nnp", [False, True])
def test_docker_default_profile(ocish, make_bundle, nnp):
    """Docker runs without no_new_privs by default: the filter is then loaded before the user
    switch and the capability drop, and everything after it must be allowed by the profile."""
    def mutate(spec):
        spec["process"]["noNewPrivileges"] = nnp
        spec["linux"]["seccomp"] = docker_default_profile()
        caps = DOCKER_CAPS + ["CAP_SYS_ADMIN"]  # the caps would allow sethostname; seccomp won't
        set_caps(spec, bounding=caps, effective=caps, permitted=caps)
    script = ("echo ok; ls /; id; grep -E '^Seccomp:' /proc/self/status; "
              "linux32 true && echo personality-ok; hostname blocked || echo hostname-refused")
    p = run(ocish, make_bundle(["sh", "-c", script], mutate=mutate))
    assert p.returncode == 0, (p.stdout, p.stderr)
    out = p.stdout.splitlines()
    assert out[0] == "ok"
    assert {"bin", "dev", "proc", "etc"} <= set(p.stdout.split())
    assert "uid=0(root) gid=0(root)" in p.stdout
    assert "Seccomp:\t2" in out
    assert "personality-ok" in out and "hostname-refused" in out
    assert "Operation not permitted" in p.stderr


def test_without_seccomp_hostname_works(ocish, make_bundle):
    """The control for the test above: with the same capabilities and no profile it works."""
    def mutate(spec):
        caps = DOCKER_CAPS + ["CAP_SYS_ADMIN"]
        set_caps(spec, bounding=caps, effective=caps, permitted=caps)
    p = run(ocish, make_bundle(["sh", "-c", "hostname changed && hostname"], mutate=mutate))
    assert p.returncode == 0 and p.stdout.strip() == "changed", (p.stdout, p.stderr)


# --- SCMP_ACT_NOTIFY ---------------------------------------------------------------------------

def _ioc(nr: int, size: int) -> int:
    return (3 << 30) | (size << 16) | (ord("!") << 8) | nr   # _IOWR('!', nr, size)


class _NotifSizes(ctypes.Structure):
    _fields_ = [("seccomp_notif", ctypes.c_uint16), ("seccomp_notif_resp", ctypes.c_uint16),
                ("seccomp_data", ctypes.c_uint16)]


def notif_sizes() -> tuple[int, int]:
    """seccomp(SECCOMP_GET_NOTIF_SIZES): the kernel's struct seccomp_notif{,_resp} sizes."""
    libc = ctypes.CDLL(None, use_errno=True)
    sizes = _NotifSizes()
    nr_seccomp = {"x86_64": 317, "aarch64": 277}[os.uname().machine]
    assert libc.syscall(ctypes.c_long(nr_seccomp), 3, 0, ctypes.byref(sizes)) == 0
    return sizes.seccomp_notif, sizes.seccomp_notif_resp


class Listener(threading.Thread):
    """Accepts one runtime connection, takes the seccomp fd, answers every notification with
    `-answer` (an errno) using SECCOMP_IOCTL_NOTIF_RECV/SEND, until the filter's users are gone."""

    def __init__(self, path: str, answer: int) -> None:
        super().__init__(daemon=True)
        self.path, self.answer = path, answer
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(1)
        self.payload: dict | None = None
        self.fds: list[int] = []
        self.seen: list[int] = []        # syscall numbers notified
        self.error: BaseException | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            self._run()
        except BaseException as e:  # reported by the test
            self.error = e

    def _run(self) -> None:
        self.sock.settimeout(30)
        conn, _ = self.sock.accept()
        with conn:
            msg, fds, _, _ = socket.recv_fds(conn, 65536, 4)
        self.payload, self.fds = json.loads(msg), fds
        fd = fds[0]
        notif_size, resp_size = notif_sizes()
        recv, send = _ioc(0, notif_size), _ioc(1, resp_size)
        while not self.stop.is_set():
            ready = select.poll()
            ready.register(fd, select.POLLIN)
            events = ready.poll(100)
            if not events:
                continue
            if events[0][1] & select.POLLHUP:
                return
            buf = bytearray(notif_size)   # must be zeroed for the kernel
            try:
                fcntl.ioctl(fd, recv, buf)
            except OSError as e:
                if e.errno in (errno.ENOENT, errno.EINTR):  # the task died meanwhile
                    continue
                raise
            notif_id, _pid, _flags, nr = struct.unpack_from("=QIIi", buf)
            self.seen.append(nr)
            resp = bytearray(resp_size)
            struct.pack_into("=QqiI", resp, 0, notif_id, 0, -self.answer, 0)
            try:
                fcntl.ioctl(fd, send, resp)
            except OSError as e:
                if e.errno != errno.ENOENT:
                    raise

    def close(self) -> None:
        self.stop.set()
        self.join(5)
        self.sock.close()
        for fd in self.fds:
            os.close(fd)


@pytest.fixture
def listener(tmp_path):
    made = []

    def make(answer: int) -> Listener:
        lst = Listener(str(tmp_path / f"listener{len(made)}.sock"), answer)
        lst.start()
        made.append(lst)
        return lst
    yield make
    for lst in made:
        lst.close()


@pytest.mark.parametrize("nnp", [True, False])
def test_seccomp_notify_listener_answers(ocish, make_bundle, listener, nnp):
    lst = listener(errno.EDQUOT)

    def mutate(spec):
        _writable(spec)
        spec["process"]["noNewPrivileges"] = nnp
        spec["annotations"] = {"org.example/test": "notify"}
        spec["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": lst.path,
            "listenerMetadata": "hello listener",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}
    b = make_bundle(["sh", "-c", "mkdir /tmp/x; echo rc=$? > /result; "
                                 "grep ^Seccomp: /proc/self/status >> /result"], mutate=mutate)
    c = cid()
    ocish("create", "-b", str(b), c, check=True)
    pid = ocish.state(c)["pid"]
    ocish("start", c, check=True)
    deadline = time.monotonic() + 20
    while ocish.state(c)["status"] != "stopped":
        assert lst.error is None, lst.error
        assert time.monotonic() < deadline, "container did not finish"
        time.sleep(0.05)
    assert lst.error is None, lst.error
    result = (b / "rootfs" / "result").read_text()
    assert "rc=1" in result and "Seccomp:\t2" in result
    assert not (b / "rootfs" / "tmp" / "x").exists()
    from runtime.linux.seccomp import syscall_number
    assert set(lst.seen) <= {syscall_number("mkdir"), syscall_number("mkdirat")} and lst.seen
    st = lst.payload
    assert st["fds"] == ["seccompFd"] and len(lst.fds) == 1
    assert st["metadata"] == "hello listener"
    assert st["pid"] == pid and st["state"]["pid"] == pid
    assert st["ociVersion"] == st["state"]["ociVersion"]
    assert st["state"]["id"] == c and st["state"]["bundle"] == str(b)
    assert st["state"]["status"] == "creating"
    assert st["state"]["annotations"] == {"org.example/test": "notify"}


def test_seccomp_notify_message_seen_by_container(ocish, make_bundle, listener):
    lst = listener(errno.EROFS)

    def mutate(spec):
        _writable(spec)
        spec["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": lst.path,
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}
    p = run(ocish, make_bundle(["mkdir", "/tmp/x"], mutate=mutate))
    assert p.returncode == 1
    assert "can't create directory '/tmp/x': Read-only file system" in p.stderr
    assert lst.error is None, lst.error


def test_seccomp_notify_listener_missing(ocish, make_bundle, tmp_path):
    def mutate(spec):
        spec["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": str(tmp_path / "nobody.sock"),
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}
    p = ocish("create", "-b", str(make_bundle(["true"], mutate=mutate)), cid())
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "stage seccomp" in p.stderr and "/linux/seccomp/listenerPath" in p.stderr
    assert "no such file or directory" in p.stderr
    assert not os.path.isdir(ocish.root) or os.listdir(ocish.root) == []
