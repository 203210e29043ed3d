"""A seccomp filter loaded before setup ends (stage bounding, without noNewPrivileges) applies
to the runtime's own calls: what it refuses fails `create` in one line that names the stage,
the operation, the errno and the filter as the cause; never a Python exception, never two
lines, never a container that dies at `start` for a call made during setup."""
from __future__ import annotations

import pytest

from tests.conftest import cid, needs_root
from tests.integration.test_malformed import nothing_left, one_line

pytestmark = needs_root

CAUSE = "(config /linux/seccomp): operation not permitted: the seccomp filter refuses a call " \
        "the runtime makes after loading it"


def _seccomp(default: str, allow=(), deny=(), nnp: bool = False):
    def mutate(spec):
        spec["process"]["noNewPrivileges"] = nnp
        rules = [{"names": list(allow), "action": "SCMP_ACT_ALLOW"}] if allow else []
        rules += [{"names": list(deny), "action": "SCMP_ACT_ERRNO"}] if deny else []
        spec["linux"]["seccomp"] = {"defaultAction": default, "syscalls": rules}
    return mutate


@pytest.mark.parametrize("profile,expect", [
    (_seccomp("SCMP_ACT_ERRNO", allow=["write", "exit_group", "read", "brk", "mmap", "close"]),
     f"ocish: create failed: stage bounding: prctl PR_CAPBSET_DROP {CAUSE}"),
    (_seccomp("SCMP_ACT_ALLOW", deny=["openat"]),
     f"ocish: create failed: stage exec: open exec.fifo {CAUSE}"),
    (_seccomp("SCMP_ACT_ALLOW", deny=["recvfrom"]),
     f"ocish: create failed: stage bounding: sync recvfrom {CAUSE}"),
    # the handoff's own calls, tried in stage exec (they once failed silently at `start`)
    (_seccomp("SCMP_ACT_ALLOW", deny=["write"]),
     f"ocish: create failed: stage exec: write exec.fifo {CAUSE}"),
    (_seccomp("SCMP_ACT_ALLOW", deny=["rt_sigprocmask"]),
     f"ocish: create failed: stage exec: rt_sigprocmask {CAUSE}"),
    # the program's lookup in $PATH: not "executable file not found"
    (_seccomp("SCMP_ACT_ALLOW", deny=["newfstatat"]),
     f'ocish: create failed: stage exec: stat "true" {CAUSE}'),
    (_seccomp("SCMP_ACT_KILL", allow=["write", "exit_group", "read", "brk", "mmap", "close"]),
     "ocish: create failed: stage bounding: sync: container process exited during setup: "
     "killed by SIGSYS; the "
     "seccomp filter of /linux/seccomp, loaded here as /process/noNewPrivileges is false, may "
     "kill the runtime for a call it makes after loading it"),
    # noNewPrivileges: loaded in the handoff after create; a child tries it during create
    (_seccomp("SCMP_ACT_ALLOW", deny=["openat"], nnp=True),
     f"ocish: create failed: stage exec: open exec.fifo {CAUSE}"),
    (_seccomp("SCMP_ACT_KILL", allow=["read", "exit_group", "close"], nnp=True),
     "ocish: create failed: stage exec: write exec.fifo (config /linux/seccomp): killed by "
     "signal 31: the seccomp filter refuses a call the runtime makes after loading it"),
])
def test_filter_refusing_the_runtime_is_one_line(ocish, make_bundle, profile, expect):
    b = make_bundle(["true"], mutate=profile)
    c = cid()
    assert one_line(ocish("create", "-b", str(b), c)) == expect
    nothing_left(ocish, c)


def test_filter_that_lets_the_runtime_through_runs(ocish, make_bundle):
    """The tries during create change nothing for a profile the runtime gets through."""
    for nnp in (False, True):
        b = make_bundle(["sh", "-c", "grep Seccomp: /proc/self/status"],
                        mutate=_seccomp("SCMP_ACT_ALLOW", deny=["reboot", "kexec_load"], nnp=nnp))
        p = ocish("run", "-b", str(b), cid())
        assert (p.returncode, p.stderr) == (0, ""), p.stderr
        assert p.stdout.split() == ["Seccomp:", "2"]
