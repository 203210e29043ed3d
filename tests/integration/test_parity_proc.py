"""runc parity (issue 10): the same busybox bundle under runc 1.1.5 and ocish, side by side.

Each test runs runc with its own --root in tmp_path where runc is right, and says so where
ocish follows a later runc fix or does better than runc 1.1.5.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

import pytest

from tests.conftest import cid, needs_root

pytestmark = needs_root

RUNC = shutil.which("runc")
needs_runc = pytest.mark.skipif(RUNC is None, reason="runc is not installed")


class Runc:
    """runc 1.1.5 with a --root of its own; `delete_all` cleans up whatever a test left."""

    def __init__(self, root: str) -> None:
        self.root = root

    def __call__(self, *args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
        kw.setdefault("stdin", subprocess.DEVNULL)
        cmd = [RUNC, "--root", self.root, *args]
        # files, not pipes: a detached container keeps its stdout open (see run_ocish)
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            rc = subprocess.run(cmd, stdout=out, stderr=err, timeout=timeout, **kw).returncode
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(cmd, rc, out.read(), err.read())

    def delete_all(self) -> None:
        if os.path.isdir(self.root):
            for name in os.listdir(self.root):
                self("delete", "-f", "--", name)


@pytest.fixture
def runc(tmp_path, request):
    rt = Runc(str(tmp_path / "runc-root"))
    request.addfinalizer(rt.delete_all)
    return rt


# --- item 9: container ids --------------------------------------------------------------------

ACCEPTED = ["_x", "+a", ".x", "..a", "a..b", "...", "A-b.c_d+e", "-x"]
REFUSED = ["..", ".", "a b", "a/b", "caf\u00e9", "a:b", "a\tb"]


@needs_runc
def test_ids_accepted_and_refused_as_runc_does(ocish, runc, make_bundle):
    """runc's validateID: letters, digits, "_", "+", "-", "." with any first character; not
    "." or "..". Both runtimes answer `state` alike: a valid id is only missing."""
    for name in ACCEPTED + REFUSED:
        theirs = runc("state", "--", name).stderr
        ours = ocish("state", "--", name).stderr
        valid = name in ACCEPTED
        assert ("container does not exist" in theirs) == valid, (name, theirs)
        assert ("invalid container ID format" in theirs) != valid, (name, theirs)
        if valid:
            assert ours == "ocish: container does not exist\n", name
        else:
            assert ours.startswith("ocish: invalid container id ") and ours.count("\n") == 1, ours
    # "," passes runc 1.1.5's regexp `[\w+-\.]` (a range "+" to "."), a bug runc 1.2 fixed
    assert "container does not exist" in runc("state", "a,b").stderr
    assert 'character "," is not allowed' in ocish("state", "a,b").stderr
    b = make_bundle(["true"])
    for name in ("_x", ".x", "-x", "+a"):  # each makes a container both runtimes can run
        c = name + uuid.uuid4().hex[:6]
        ocish("create", "-b", str(b), "--", c, check=True)
        assert ocish("list", "-q").stdout.split() == [c]
        assert json.loads(ocish("state", "--", c, check=True).stdout)["status"] == "created"
        ocish("delete", "-f", "--", c, check=True)
        assert os.listdir(ocish.root) == []
        assert runc("run", "-b", str(b), "--", c).returncode == 0


# --- item 3: HOME -----------------------------------------------------------------------------

def _run_both(ocish, runc, bundle) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    c = cid()
    return ocish("run", "-b", str(bundle), c), runc("run", "-b", str(bundle), c)


@needs_runc
@pytest.mark.parametrize("env,uid,home", [
    ([], 0, "/root"),                      # root's entry in the rootfs's /etc/passwd
    ([], 65534, "/nonexistent"),           # nobody's
    ([], 4242, "/"),                       # no entry: "/"
    (["HOME="], 0, "/root"),               # empty counts as none
    (["HOME=/x", "HOME="], 0, "/root"),    # the last one is what execve(2) gets
    (["HOME=/srv"], 4242, "/srv"),         # one of its own is kept
])
def test_home_from_the_containers_passwd(ocish, runc, make_bundle, env, uid, home):
    def mutate(spec):
        spec["process"]["env"] += env
        spec["process"]["user"]["uid"] = uid
    b = make_bundle(["sh", "-c", 'echo "HOME=$HOME"'], mutate=mutate)
    ours, theirs = _run_both(ocish, runc, b)
    assert theirs.returncode == 0 and theirs.stdout == f"HOME={home}\n", theirs.stderr
    assert ours.returncode == 0 and ours.stdout == theirs.stdout, ours.stderr


@needs_runc
def test_home_for_exec_and_without_a_passwd_file(ocish, runc, make_bundle):
    b = make_bundle(["sleep", "100"])
    c = cid()
    ocish("run", "-d", "-b", str(b), c, check=True)
    assert runc("run", "-d", "-b", str(b), c).returncode == 0
    probe = ["sh", "-c", 'echo "HOME=$HOME"']
    for flags, home in ((), "/root"), (("-u", "65534"), "/nonexistent"), (("-u", "7"), "/"), \
            (("-e", "HOME="), "/root"), (("-e", "HOME=/y"), "/y"):
        theirs = runc("exec", *flags, c, *probe)
        ours = ocish("exec", *flags, c, *probe)
        assert theirs.stdout == f"HOME={home}\n", (flags, theirs.stderr)
        assert ours.stdout == theirs.stdout, (flags, ours.stderr)
    # no /etc/passwd at all: "/" (runc's default ExecUser); a FIFO there reads as none (runc
    # 1.1.5 blocks on it for good, so it runs only under ocish)
    b = make_bundle(["sh", "-c", 'echo "HOME=$HOME"'])
    os.unlink(b / "rootfs" / "etc" / "passwd")
    ours, theirs = _run_both(ocish, runc, b)
    assert theirs.stdout == ours.stdout == "HOME=/\n", (ours.stderr, theirs.stderr)
    os.mkfifo(b / "rootfs" / "etc" / "passwd")
    assert ocish("run", "-b", str(b), cid(), timeout=20).stdout == "HOME=/\n"


# --- item 10: the hooks' working directory ----------------------------------------------------

HOST_HOOKS = ("prestart", "createRuntime", "createContainer", "poststart", "poststop")


def _pwd_hooks(out_dir):
    def mutate(spec):
        spec["hooks"] = {kind: [{"path": "/bin/sh", "args": ["sh", "-c", f"pwd -P > {out_dir}/{kind}"]}]
                         for kind in HOST_HOOKS}
    return mutate


@needs_runc
def test_hooks_run_in_the_bundle(ocish, runc, make_bundle, tmp_path):
    """runc's `run` chdirs into the bundle, so its hooks run there, createContainer in the
    rootfs (prepareRootfs's chdir); ocish gives the runtime's hooks the bundle whichever command
    runs them (crun's do_hooks passes the bundle to poststart and poststop too)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    seen = {}
    for name, rt in (("ocish", ocish), ("runc", runc)):
        out = tmp_path / f"pwd-{name}"
        out.mkdir()
        b = make_bundle(["true"], mutate=_pwd_hooks(out))
        p = rt("run", "-b", str(b), cid(), cwd=str(elsewhere))
        assert p.returncode == 0, p.stderr
        seen[name] = {k: (out / k).read_text().strip().replace(str(b), "BUNDLE") for k in HOST_HOOKS}
    assert seen["runc"] == {"prestart": "BUNDLE", "createRuntime": "BUNDLE",
                            "createContainer": "BUNDLE/rootfs", "poststart": "BUNDLE",
                            "poststop": "BUNDLE"}
    assert seen["ocish"] == seen["runc"]
    # create, start and delete as separate commands, run from elsewhere: still the bundle
    out = tmp_path / "pwd-split"
    out.mkdir()
    b = make_bundle(["true"], mutate=_pwd_hooks(out))
    c = cid()
    for cmd in (["create", "-b", str(b), c], ["start", c]):
        ocish(*cmd, cwd=str(elsewhere), check=True)
    for _ in range(100):
        if ocish.state(c)["status"] == "stopped":
            break
        time.sleep(0.05)
    ocish("delete", c, cwd=str(elsewhere), check=True)
    assert {k: (out / k).read_text().strip() for k in HOST_HOOKS} == {
        **{k: str(b) for k in HOST_HOOKS}, "createContainer": str(b / "rootfs")}


def test_a_bundle_gone_fails_the_hook_not_the_runtime(ocish, make_bundle, tmp_path):
    """poststop after the bundle was removed: the hook cannot enter it (crun fails it too);
    a warning, and `delete` still removes the container."""
    out = tmp_path / "pwd"
    out.mkdir()
    b = make_bundle(["true"], mutate=_pwd_hooks(out))
    c = cid()
    ocish("run", "--keep", "-b", str(b), c, check=True)
    shutil.rmtree(b)
    p = ocish("delete", c)
    assert p.returncode == 0
    assert p.stderr == (f"ocish: warning: poststop hook /bin/sh (config /hooks/poststop/0): "
                        f"chdir {b}: no such file or directory\n")
    assert not (out / "poststop").exists() and os.listdir(ocish.root) == []


# --- item 6: SIGKILL to a paused container ----------------------------------------------------

def _status_soon(state, c: str, want: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while (status := state(c)) != want and time.monotonic() < deadline:
        time.sleep(0.02)
    return status


@needs_runc
@pytest.mark.parametrize("all_", [False, True], ids=["init", "all"])
def test_sigkill_kills_a_paused_container(ocish, runc, make_bundle, all_):
    """runc's Signal thaws a paused container after SIGKILL: in a frozen v1 cgroup the killed
    processes die only once thawed. Then it is stopped and a plain `delete` removes it."""
    b = make_bundle(["sh", "-c", "sleep 100 & sleep 100"])
    flags = ["--all"] if all_ else []
    states = {"ocish": lambda c: ocish.state(c)["status"],
              "runc": lambda c: json.loads(runc("state", c).stdout)["status"]}
    for name, rt in (("ocish", ocish), ("runc", runc)):
        c = cid()
        assert rt("run", "-d", "-b", str(b), c).returncode == 0
        assert rt("pause", c).returncode == 0 and states[name](c) == "paused"
        p = rt("kill", *flags, c, "KILL")
        assert p.returncode == 0, (name, p.stderr)
        assert _status_soon(states[name], c, "stopped") == "stopped", name
        p = rt("delete", c)
        assert p.returncode == 0, (name, p.stderr)
    assert os.listdir(ocish.root) == []


def test_other_signals_leave_a_paused_container_paused(ocish, make_bundle):
    """SIGTERM to a paused container stays pending; it is still paused, and takes effect once
    resumed (runc 1.1.5's `kill --all` thaws it whatever the signal: its freeze-signal-thaw
    does not look at the state it started from)."""
    c = cid()
    b = make_bundle(["sh", "-c", "trap 'exit 3' TERM; sleep 100 & wait"])  # pid 1: a handler
    ocish("run", "-d", "-b", str(b), c, check=True)
    pid = ocish.state(c)["pid"]
    for _ in range(250):  # until the shell catches SIGTERM (SigCgt bit 15)
        with open(f"/proc/{pid}/status") as f:
            caught = int(next(ln for ln in f if ln.startswith("SigCgt:")).split()[1], 16)
        if caught & (1 << (signal.SIGTERM - 1)):
            break
        time.sleep(0.02)
    ocish("pause", c, check=True)
    for flags in ([], ["--all"]):
        ocish("kill", *flags, c, "TERM", check=True)
        assert ocish.state(c)["status"] == "paused"
    ocish("resume", c, check=True)
    assert _status_soon(lambda x: ocish.state(x)["status"], c, "stopped") == "stopped"


# --- item 5: process.terminal always gives a pty ------------------------------------------------

TTY_PROBE = "read x; echo got:$x; tty; echo err >&2; exit 3"
# what the process's pty shows: its echo of our input, then the process's output; ONLCR is
# cleared on the pty (runc's recvtty ClearONLCR), so "\n" stays "\n" on a pipe or a file
TTY_OUT = "hello\ngot:hello\n/dev/pts/0\nerr\n"


def _shell_line(runtime: list[str], root: str, bundle, c: str, out) -> str:
    argv = " ".join(f"'{a}'" for a in [*runtime, "--root", root, "run", "-b", str(bundle), c])
    return f"printf 'hello\\n' | {argv} > {out}/stdout 2> {out}/stderr; echo $? > {out}/rc"


def _read(out) -> tuple[int, str, str]:
    return (int((out / "rc").read_text()), (out / "stdout").read_text(),
            (out / "stderr").read_text())


@needs_runc
def test_terminal_run_with_piped_stdio_under_a_terminal(ocish, runc, make_bundle, tmp_path):
    """Under script(1) (a session with a controlling terminal), stdin a pipe and stdout, stderr
    files: runc's foreground run copies the pty to its stdio; so does ocish, byte for byte."""
    from tests.conftest import REPO, ocish_cmd
    b = make_bundle(["sh", "-c", TTY_PROBE], terminal=True)
    results = {}
    for name, runtime, root in (("runc", [RUNC], runc.root), ("ocish", ocish_cmd(), ocish.root)):
        out = tmp_path / name
        out.mkdir()
        line = _shell_line(runtime, root, b, cid(), out)
        subprocess.run(["script", "-qec", line, "/dev/null"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, timeout=60, check=True,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
        results[name] = _read(out)
    assert results["runc"] == (3, TTY_OUT, ""), results["runc"]
    assert results["ocish"] == results["runc"]


@needs_runc
def test_terminal_run_and_exec_with_pipes_and_no_terminal(ocish, runc, make_bundle):
    """No terminal anywhere (a new session, stdio pipes): runc 1.1.5 fails ("open /dev/tty"),
    ocish gives the process its pty all the same and copies it to the pipes; exec -t too."""
    b = make_bundle(["sh", "-c", TTY_PROBE], terminal=True)
    c = cid()
    theirs = runc("run", "-b", str(b), c, start_new_session=True)
    assert theirs.returncode == 1 and "open /dev/tty: no such device or address" in theirs.stderr
    from tests.conftest import REPO, ocish_cmd
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.run(ocish_cmd() + ["--root", ocish.root, "run", "-b", str(b), c],
                       input=b"hello\n", capture_output=True, timeout=60, env=env,
                       start_new_session=True)
    assert (p.returncode, p.stdout.decode(), p.stderr) == (3, TTY_OUT, b"")
    assert not os.path.exists(os.path.join(ocish.root, c))
    # stdin /dev/null, stdout a pipe read to its end: the pty is ours, the pipe ends with us
    b = make_bundle(["sh", "-c", "tty; echo out"], terminal=True)
    p = subprocess.run(ocish_cmd() + ["--root", ocish.root, "run", "-b", str(b), c],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60, env=env,
                       start_new_session=True)
    assert (p.returncode, p.stdout, p.stderr) == (0, b"/dev/pts/0\nout\n", b"")
    b = make_bundle(["sleep", "100"])
    ocish("run", "-d", "-b", str(b), c, check=True)
    p = subprocess.run(ocish_cmd() + ["--root", ocish.root, "exec", "-t", c, "sh", "-c",
                                      "read x; echo got:$x; tty; exit 2"],
                       input=b"typed\n", capture_output=True, timeout=60, env=env,
                       start_new_session=True)
    assert p.returncode == 2, p.stderr
    assert p.stdout.decode().startswith("typed\ngot:typed\n/dev/pts/")


# --- item 11: cgroup limits once the init exists; a death during setup told --------------------

@needs_runc
@pytest.mark.parametrize("resources,script,rc,out", [
    # a pids limit of 1: the init alone (the runtime's fork of it comes before the limit); the
    # limit holds for the program: busybox sh's first fork is refused, and fatal (status 2)
    ({"pids": {"limit": 1}},
     "read n < /sys/fs/cgroup/pids/pids.max; echo $n; (true); echo forked", 2, "1\n"),
    # the 4 MiB floor of runtime/spec.py
    ({"memory": {"limit": 4 << 20, "swap": 4 << 20}},
     "read n < /sys/fs/cgroup/memory/memory.limit_in_bytes; echo $n", 0, f"{4 << 20}\n"),
], ids=["pids-1", "memory-4MiB"])
def test_small_limits_leave_the_setup_alone(ocish, runc, make_bundle, resources, script, rc, out):
    """runc 1.1.5 writes the limits (manager.Set) at its init's procHooks sync; so does ocish,
    in stage `limits` after `mounts`: neither the fork of init nor the interpreter's memory
    counts against them."""
    def mutate(spec):
        spec["linux"]["resources"] = resources
    b = make_bundle(["sh", "-c", script], mutate=mutate)
    ours, theirs = _run_both(ocish, runc, b)
    assert (theirs.returncode, theirs.stdout) == (rc, out), theirs.stderr
    assert (ours.returncode, ours.stdout, ours.stderr) == (rc, out, theirs.stderr)


@needs_runc
def test_a_death_during_setup_says_how(ocish, runc, make_bundle):
    """A prestart hook SIGKILLs the init: runc names its sync pipe ("read init-p: connection
    reset by peer", or "write init-p: broken pipe"), never the signal; ocish says which signal,
    and leaves nothing behind."""
    kill = 'kill -KILL $(grep -o "\\"pid\\": *[0-9]*" | grep -o "[0-9]*$")'

    def mutate(spec):
        spec["hooks"] = {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", kill]}]}
    b = make_bundle(["true"], mutate=mutate)
    c = cid()
    theirs = runc("create", "-b", str(b), c)
    assert theirs.returncode == 1 and "init-p" in theirs.stderr and "KILL" not in theirs.stderr
    p = ocish("create", "-b", str(b), c)
    assert (p.returncode, p.stderr) == (1, "ocish: create failed: stage container-hooks: sync: "
                                           "container process exited during setup: killed by "
                                           "SIGKILL\n")
    assert os.listdir(ocish.root) == []
    assert not any(os.path.exists(f"/sys/fs/cgroup/{h}/ocish/{c}") for h in ("pids", "memory"))


def test_an_oom_kill_during_setup_is_told(tmp_path):
    """The real `cgroup` and `limits` stages, then a container side that needs 64 MiB under a
    4 MiB limit: the kernel's OOM killer ends it, the memory cgroup counts it, the error says so
    and blames the limit."""
    from runtime.defaults import default_spec
    from runtime.engine import Context, Engine
    from runtime.errors import StageError
    spec = default_spec()
    spec["linux"]["resources"] = {"memory": {"limit": 4 << 20, "swap": 4 << 20}}
    (tmp_path / "rootfs").mkdir()
    ctx = Context(cid(), str(tmp_path), spec, str(tmp_path / "rootfs"), str(tmp_path / "state"))
    engine = Engine(ctx, "tests.integration.setup_pipelines:cgroup_then_hog", [64])
    try:
        with pytest.raises(StageError) as info:
            engine.run()
        assert str(info.value) == (
            "stage hog: sync (config /linux/resources/memory/limit): container process exited "
            f"during setup: killed by SIGKILL (an OOM kill: the memory cgroup counts 1, limit "
            f"{4 << 20} bytes)")
        assert ctx.cgroup.oom_kills() == 1
    finally:
        engine.kill()
        if ctx.cgroup is not None:
            ctx.cgroup.destroy()


# --- item 12: the loopback of a new network namespace is up --------------------------------------

LO_PROBE = ("cat /sys/class/net/lo/flags; ip -o link show lo | cut -d' ' -f2-3; "
            "ping -c1 -W2 127.0.0.1 >/dev/null && echo reached")


def _userns_net(spec: dict) -> None:
    spec["linux"]["namespaces"].append({"type": "user"})
    spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    spec["linux"].pop("resources", None)
    spec["mounts"] = [m for m in spec["mounts"] if m["type"] != "cgroup"]


def _ping_caps(spec: dict) -> None:
    for kind in ("bounding", "effective", "permitted"):
        spec["process"]["capabilities"][kind].append("CAP_NET_RAW")


@needs_runc
@pytest.mark.parametrize("userns", [False, True], ids=["plain", "userns"])
def test_loopback_of_a_new_network_namespace_is_up(ocish, runc, make_bundle, open_dir, userns):
    """runc's loopback network: lo up (IFF_UP; 0x9 with IFF_LOOPBACK), 127.0.0.1 answers; in a
    user namespace too. Read from inside with busybox, the same under both runtimes."""
    def mutate(spec):
        _ping_caps(spec)
        if userns:
            _userns_net(spec)
    b = make_bundle(["sh", "-c", LO_PROBE], mutate=mutate, base=open_dir)
    ours, theirs = _run_both(ocish, runc, b)
    assert (theirs.returncode, theirs.stdout) == (0, "0x9\nlo: <LOOPBACK,UP,LOWER_UP>\nreached\n"), \
        theirs.stderr
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout), ours.stderr


@needs_runc
def test_a_joined_network_namespace_is_left_as_it_is(ocish, runc, make_bundle):
    """A network namespace given by path is someone else's: lo stays down (runc adds its
    loopback network only for a new one)."""
    holder = subprocess.Popen(["unshare", "--net", "sleep", "60"])
    try:
        deadline = time.monotonic() + 10
        while os.readlink(f"/proc/{holder.pid}/ns/net") == os.readlink("/proc/self/ns/net"):
            assert time.monotonic() < deadline
            time.sleep(0.01)

        def mutate(spec):
            for ns in spec["linux"]["namespaces"]:
                if ns["type"] == "network":
                    ns["path"] = f"/proc/{holder.pid}/ns/net"
        b = make_bundle(["sh", "-c", "cat /sys/class/net/lo/flags"], mutate=mutate)
        ours, theirs = _run_both(ocish, runc, b)
        assert (theirs.returncode, theirs.stdout) == (0, "0x8\n"), theirs.stderr
        assert (ours.returncode, ours.stdout) == (0, "0x8\n"), ours.stderr
    finally:
        holder.kill()
        holder.wait()


# --- item 16: --preserve-fds with a gap ----------------------------------------------------------

def _with_fds(setup: str, argv: list[str]) -> subprocess.CompletedProcess:
    """argv run by a shell that first runs `setup` (exec 3<... 5<...: the fds to pass)."""
    from tests.conftest import REPO
    return subprocess.run(["sh", "-c", setup + '; exec "$@"', "sh", *argv], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))


@needs_runc
def test_preserve_fds_with_a_gap(ocish, runc, make_bundle, tmp_path):
    """runc 1.1.5 checks nothing: its process fails with "bad file descriptor" on the fd that
    is missing, or gets whatever of runc's own fills the gap (its --log file). ocish refuses at
    once, names the fd, and no fd of its own can fill the gap (checked before --log opens)."""
    from tests.conftest import ocish_cmd
    b = make_bundle(["sh", "-c", "echo leaked >&3"])
    log = tmp_path / "runc.log"
    theirs = _with_fds("exec 3<&-", [RUNC, "--root", runc.root, "--log", str(log), "run",
                                     "--preserve-fds", "1", "-b", str(b), cid()])
    assert theirs.returncode == 0 and "leaked" in log.read_text()  # runc's log reached the container
    log = tmp_path / "ocish.log"
    ours = _with_fds("exec 3<&-", ocish_cmd() + ["--root", ocish.root, "--log", str(log), "run",
                                                 "--preserve-fds", "1", "-b", str(b), cid()])
    assert (ours.returncode, ours.stderr) == (1, "ocish: --preserve-fds 1: fd 3 is not open (fd 3 "
                                                 "is passed to the process: it must be open)\n")
    assert "leaked" not in log.read_text()
    gap = "exec 3</dev/null 5</dev/null"
    b = make_bundle(["sh", "-c", "cat <&4"])
    theirs = _with_fds(gap, [RUNC, "--root", runc.root, "run", "--preserve-fds", "3", "-b", str(b),
                             cid()])
    assert "bad file descriptor" in theirs.stderr.lower()
    ours = _with_fds(gap, ocish_cmd() + ["--root", ocish.root, "run", "--preserve-fds", "3", "-b",
                                         str(b), cid()])
    assert (ours.returncode, ours.stderr) == (
        1, "ocish: --preserve-fds 3: fd 4 is not open (fds 3 to 5 are passed to the process, "
           "each must be open: a gap in the numbers is not allowed)\n")
    assert not os.path.exists(ocish.root) or os.listdir(ocish.root) == []
    c = cid()
    ocish("run", "-d", "-b", str(make_bundle(["sleep", "100"])), c, check=True)
    ours = _with_fds(gap, ocish_cmd() + ["--root", ocish.root, "exec", "--preserve-fds", "3", c,
                                         "true"])
    assert (ours.returncode, ours.stderr) == (
        255, "ocish: exec failed: --preserve-fds 3: fd 4 is not open (fds 3 to 5 are passed to "
             "the process, each must be open: a gap in the numbers is not allowed)\n")


# --- item 17: version, and the global flags before every command -------------------------------

@needs_runc
def test_version_as_runc_prints_it(ocish, runc):
    """runc --version: "runc version V", commit, spec, go, libseccomp; ours the same five lines
    with ocish's versions (python for go), for --version, -v and `version` alike."""
    from runtime.defaults import OCI_VERSION
    from tests.conftest import REPO
    theirs = runc("--version").stdout.splitlines()
    assert [ln.split(":")[0] for ln in theirs[1:]] == ["commit", "spec", "go", "libseccomp"]
    outs = {args: ocish(*args) for args in (("--version",), ("-v",), ("version",),
                                            ("--root", "/nonexistent", "-v", "list"))}
    assert all(p.returncode == 0 and p.stderr == "" for p in outs.values())
    assert len({p.stdout for p in outs.values()}) == 1
    ours = outs[("--version",)].stdout.splitlines()
    assert ours[0].startswith("ocish version ")
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    assert ours[1] == f"commit: {head or 'unknown'}"
    assert ours[2] == f"spec: {OCI_VERSION}"
    assert ours[3].startswith("python: 3.")
    assert ours[4] == theirs[4]  # the same libseccomp


def _session(args: list[str], script: str) -> subprocess.CompletedProcess:
    """`ocish ARGS` fed `script` on stdin; stdout and stderr through files (a container the
    session leaves running holds them open)."""
    from tests.conftest import REPO, ocish_cmd
    with tempfile.TemporaryFile("w+") as inp, tempfile.TemporaryFile("w+") as out, \
            tempfile.TemporaryFile("w+") as err:
        inp.write(script)
        inp.seek(0)
        rc = subprocess.run(ocish_cmd() + args, stdin=inp, stdout=out, stderr=err, timeout=60,
                            env=dict(os.environ, PYTHONPATH=str(REPO))).returncode
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(args, rc, out.read(), err.read())


def test_global_flags_before_the_debugger_commands(ocish, tmp_path):
    """--root, --log, --log-format and --debug before debug, shell, attach and bundle, as before
    any runtime command: the session's steps (--debug) and errors go to the log."""
    log = tmp_path / "log"
    b = tmp_path / "b"
    p = _session(["--root", ocish.root, "--log", str(log), "--debug", "bundle", "init", str(b),
                  "--", "sleep", "60"], "")
    assert p.returncode == 0 and (b / "config.json").exists(), p.stderr
    c = cid()
    session = "continue\nstart\nbogus\nquit --keep\n"
    p = _session(["--root", ocish.root, "--log", str(log), "--log-format", "json", "--debug",
                  "debug", str(b), "--id", c, "--plain"], session)
    assert p.returncode == 1 and "unknown command 'bogus'" in p.stderr, p.stderr
    assert ocish.state(c)["status"] == "running"  # under the global --root
    lines = [json.loads(ln) for ln in log.read_text().splitlines()]
    msgs = {(ln["level"], ln["msg"].split(" (")[0]) for ln in lines}
    assert {("debug", "stage cgroup"), ("debug", "stage limits"), ("debug", "stage exec")} <= msgs
    assert ("error", "unknown command 'bogus'") in msgs
    p = _session(["--debug", "--root", ocish.root, "attach", c, "--plain"], "delete -f\n")
    assert p.returncode == 0, p.stderr
    assert ocish("state", c).returncode == 1  # deleted
    p = _session(["--root=" + ocish.root, "--log-format", "text", "shell", "--plain"],
                 f"load {b}\nstep\n")
    assert p.returncode == 0 and "ran cgroup" in p.stdout + p.stderr, p.stderr
    p = ocish("--log", str(tmp_path / "no" / "dir"), "debug", str(b))
    assert (p.returncode, p.stderr) == (1, f'ocish: --log "{tmp_path}/no/dir": no such file or '
                                           "directory\n")
