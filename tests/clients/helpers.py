"""What the client tests share: a reaping command runner, the logging ocish launcher, images.

Why a runner of our own instead of `subprocess.run`: PID 1 on these machines never reaps, and the
clients daemonise (conmon double-forks, containerd shims re-exec themselves), so their monitors
end up as children of the nearest subreaper. tests/conftest.py makes pytest that subreaper; while
a client command runs, `run()` waits with `waitpid(-1)` and so reaps those adopted monitors too.
Without it a dead conmon stays a zombie, podman believes it alive and every `podman run` / `wait`
takes 20 seconds longer (podman's conmon timeout).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pty
import select
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import tempfile
import termios
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGE = "localhost/busybox:ocish"
PAUSE_IMAGE = "localhost/pause:ocish"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CGROUP_ROOT = "/sys/fs/cgroup"
# Another run of this suite may share the machine (developers run it side by side): whatever is
# named on the host (cgroups, containerd namespaces) carries this run's own suffix.
SESSION = uuid.uuid4().hex[:6]
NS = f"ocishtest-{SESSION}"                 # containerd namespace of the ctr tests (cgroup /NS/ID)
CRI_CGROUP = f"/ocish-cri-{SESSION}"        # the CRI pods' cgroup_parent
DOCKER_CGROUP = f"/ocish-docker-{SESSION}"  # dockerd's cgroup-parent


@dataclass(repr=False)
class Result:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False

    def __str__(self) -> str:
        tail = " (TIMED OUT, killed)" if self.timed_out else ""
        return (f"$ {' '.join(self.argv)}\n-> exit {self.returncode} in {self.seconds:.2f}s{tail}\n"
                f"stdout: {self.stdout[-3000:]!r}\nstderr: {self.stderr[-3000:]!r}")

    __repr__ = __str__  # pytest shows an assert message object by its repr


class CommandFailed(AssertionError):
    pass


def run(argv: list[str], *, input: str | bytes | None = None, timeout: float = 60,
        env: dict | None = None, cwd: str | None = None, tty: bool = False,
        tty_script: list[tuple[str, str]] | None = None, check: bool = False) -> Result:
    """Run a client command to completion, reaping every orphan that dies meanwhile.

    Output goes to files (a detached container can inherit and hold pipes open). With `tty`, the
    command gets a new session whose controlling terminal is a pty (stdin, stdout and stderr all
    on it, as in an interactive shell) and everything written there comes back as stdout;
    `tty_script` is a list of (wait-for-text, then-type) pairs fed to it. On timeout the whole
    process group is killed.
    """
    start = time.monotonic()
    deadline = start + timeout
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    master = None
    inp = None
    try:
        if tty:
            master, slave = pty.openpty()
            attrs = termios.tcgetattr(slave)
            attrs[3] &= ~termios.ECHO  # keep the typed lines out of the transcript
            termios.tcsetattr(slave, termios.TCSANOW, attrs)
            # `setsid --ctty`: a new session whose controlling terminal is the pty (stdin); no
            # preexec_fn, which is unsafe once grpc has started threads in this process
            p = subprocess.Popen(["setsid", "--ctty", *argv], stdin=slave, stdout=slave,
                                 stderr=slave, env=env, cwd=cwd)
            os.close(slave)
            os.set_blocking(master, False)
        else:
            if input is not None:
                inp = tempfile.TemporaryFile()
                inp.write(input.encode() if isinstance(input, str) else input)
                inp.seek(0)
            p = subprocess.Popen(argv, stdin=inp if inp is not None else subprocess.DEVNULL,
                                 stdout=out, stderr=err, env=env, cwd=cwd, start_new_session=True)
        transcript = bytearray()
        script = list(tty_script or [])
        timed_out = False
        rc = None
        while rc is None:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid, status = 0, 0
            if pid == p.pid:
                rc = os.waitstatus_to_exitcode(status)
                p.returncode = rc
                break
            if pid:
                continue  # an adopted orphan (conmon, a shim): reaped, look again at once
            if master is not None:
                ready, _, _ = select.select([master], [], [], 0.02)
                if ready:
                    try:
                        transcript += os.read(master, 65536)
                    except OSError:
                        pass
                while script and script[0][0] in transcript.decode(errors="replace"):
                    os.write(master, script.pop(0)[1].encode())
            else:
                time.sleep(0.01)
            if time.monotonic() > deadline:
                timed_out = True
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                deadline = float("inf")
        if master is not None:
            end = time.monotonic() + 1
            while time.monotonic() < end:  # drain what the terminal still holds
                ready, _, _ = select.select([master], [], [], 0.05)
                if not ready:
                    break
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                transcript += chunk
            stdout = transcript.decode(errors="replace").replace("\r\n", "\n")
            stderr = ""
        else:
            out.seek(0)
            err.seek(0)
            stdout = out.read().decode(errors="replace")
            stderr = err.read().decode(errors="replace")
        res = Result(list(argv), rc, stdout, stderr, time.monotonic() - start, timed_out)
    finally:
        out.close()
        err.close()
        if inp is not None:
            inp.close()
        if master is not None:
            os.close(master)
    if check and res.returncode != 0:
        raise CommandFailed(str(res))
    return res


def reap() -> None:
    """Collect adopted orphans now (only safe while no command of ours is running)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def wait_for(predicate, timeout: float = 10, interval: float = 0.05, what: str = "condition"):
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        reap()
        time.sleep(interval)


# --- the runtimes under test --------------------------------------------------------------------

@dataclass
class Runtime:
    """One OCI runtime binary as the clients see it: runc (the control) or the ocish launcher."""
    name: str
    path: str
    root: str              # its default --root (used when a client passes none: podman)
    calls_log: str | None = None
    marks: list = field(default_factory=list)

    def calls_since(self, offset: int) -> str:
        if not self.calls_log or not os.path.exists(self.calls_log):
            return ""
        with open(self.calls_log, errors="replace") as f:
            f.seek(offset)
            return f.read()

    def calls_offset(self) -> int:
        return os.path.getsize(self.calls_log) if self.calls_log and os.path.exists(self.calls_log) else 0


WRAPPER = r"""#!/bin/bash
# ocish as the clients run it, recording every call: argv, exit status, and what the runtime
# reported (stderr for commands that hand no stdio to a container; the new lines of --log).
log=@LOG@
py=@PY@
main=@MAIN@
export PYTHONPATH=@REPO@
n="$$"
printf '[%s %s] ocish %s\n' "$(date +%T.%N | cut -c1-12)" "$n" "$*" >> "$log"
runtime_log=""
prev=""
for a in "$@"; do
  case "$prev" in --log) runtime_log="$a";; esac
  case "$a" in --log=*) runtime_log="${a#--log=}";; esac
  prev="$a"
done
before=0
[ -n "$runtime_log" ] && [ -f "$runtime_log" ] && before=$(stat -c %s "$runtime_log")
case " $* " in
  *" create "*|*" run "*|*" exec "*)
    # stdio belongs to the container process: leave it alone
    "$py" -S "$main" "$@"; rc=$? ;;
  *)
    errf=$(mktemp /tmp/ocish-call-err.XXXXXX)
    "$py" -S "$main" "$@" 2>"$errf"; rc=$?
    cat "$errf" >&2
    sed "s/^/[$n]   stderr: /" "$errf" >> "$log"
    rm -f "$errf" ;;
esac
if [ -n "$runtime_log" ] && [ -f "$runtime_log" ]; then
  tail -c +$((before + 1)) "$runtime_log" | sed "s/^/[$n]   log: /" >> "$log"
fi
printf '[%s]   exit %s\n' "$n" "$rc" >> "$log"
exit $rc
"""


def make_ocish_launcher(directory: str) -> Runtime:
    """`<directory>/bin/ocish`: runs this work tree's runtime (bin/ocish under -S, as installed)
    and logs each call to `<directory>/calls.log`.

    OCISH_CLIENTS_BIN=/abs/path/ocish runs an installed launcher instead (no call log).
    """
    override = os.environ.get("OCISH_CLIENTS_BIN")
    if override:
        return Runtime("ocish", override, "/run/ocish")
    bindir = os.path.join(directory, "bin")
    os.makedirs(bindir, exist_ok=True)
    log = os.path.join(directory, "calls.log")
    open(log, "a").close()
    path = os.path.join(bindir, "ocish")
    text = (WRAPPER.replace("@LOG@", log).replace("@PY@", sys.executable)
            .replace("@MAIN@", str(REPO / "bin" / "ocish")).replace("@REPO@", str(REPO)))
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o755)
    os.chmod(directory, 0o755)
    return Runtime("ocish", path, "/run/ocish", calls_log=log)


def runc_runtime() -> Runtime | None:
    path = shutil.which("runc") or ("/usr/sbin/runc" if os.path.exists("/usr/sbin/runc") else None)
    return Runtime("runc", path, "/run/runc") if path else None


# --- images -------------------------------------------------------------------------------------

def rootfs_tar(rootfs: Path, dest: str) -> str:
    """An uncompressed tar of the rootfs, owned by root, in a stable order."""
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        def reset(ti: tarfile.TarInfo) -> tarfile.TarInfo:
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = "root"
            ti.mtime = 0
            return ti
        for top in sorted(os.listdir(rootfs)):
            tar.add(str(rootfs / top), arcname=top, filter=reset)
    return dest


def _blob(blobs: dict, data: bytes) -> dict:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return {"digest": digest, "size": len(data)}


def oci_archive(layer_tar: str, dest: str, images: dict[str, dict]) -> str:
    """An OCI image layout tarball (`ctr images import` reads it): one gzipped layer, and one
    manifest and config per name in `images` ({name: image config: Cmd, Entrypoint, ...})."""
    blobs: dict[str, bytes] = {}
    raw = Path(layer_tar).read_bytes()
    diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        gz.write(raw)
    layer = dict(_blob(blobs, buf.getvalue()), mediaType="application/vnd.oci.image.layer.v1.tar+gzip")
    manifests = []
    for name, cfg in images.items():
        config = {"architecture": "amd64", "os": "linux",
                  "config": dict({"Env": [PATH_ENV], "WorkingDir": "/"}, **cfg),
                  "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                  "history": [{"created_by": "ocish tests: busybox rootfs"}]}
        cdesc = dict(_blob(blobs, json.dumps(config).encode()),
                     mediaType="application/vnd.oci.image.config.v1+json")
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": cdesc, "layers": [layer]}
        mdesc = dict(_blob(blobs, json.dumps(manifest).encode()),
                     mediaType="application/vnd.oci.image.manifest.v1+json")
        mdesc["annotations"] = {"io.containerd.image.name": name,
                                "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1]}
        mdesc["platform"] = {"architecture": "amd64", "os": "linux"}
        manifests.append(mdesc)
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": manifests}
    with tarfile.open(dest, "w") as tar:
        def add(name: str, data: bytes) -> None:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o644
            tar.addfile(ti, io.BytesIO(data))
        add("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        add("index.json", json.dumps(index).encode())
        for digest, data in blobs.items():
            add("blobs/sha256/" + digest.split(":", 1)[1], data)
    return dest


# --- cleanup ------------------------------------------------------------------------------------

def unmount_under(prefix: str) -> None:
    """Lazily unmount everything mounted at or below `prefix` in our mount namespace."""
    from runtime.linux import syscalls as S
    prefix = prefix.rstrip("/")
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].encode().decode("unicode_escape")
            if mp == prefix or mp.startswith(prefix + "/"):
                points.append(mp)
    for mp in sorted(set(points), key=len, reverse=True):
        try:
            S.umount2(mp, 2)  # MNT_DETACH
        except OSError:
            pass


def cgroup_dirs(parents: list[str]) -> set[str]:
    """Every cgroup directory at or below /<parent> in every hierarchy (v1 and the unified one)."""
    found = set()
    if not os.path.isdir(CGROUP_ROOT):
        return found
    hierarchies = [CGROUP_ROOT] if os.path.exists(f"{CGROUP_ROOT}/cgroup.controllers") else [
        os.path.join(CGROUP_ROOT, h) for h in os.listdir(CGROUP_ROOT)
        if not os.path.islink(os.path.join(CGROUP_ROOT, h))]
    for h in hierarchies:
        for parent in parents:
            top = os.path.join(h, parent.strip("/"))
            if not os.path.isdir(top):
                continue
            for d, subdirs, _ in os.walk(top):
                found.add(d)
    return found


def remove_cgroups(dirs: set[str], kill: bool = False) -> list[str]:
    """rmdir the given cgroups, deepest first; with `kill` (only for cgroups that are this run's
    alone) SIGKILL what still runs in them first. Returns the ones left."""
    left = []
    for d in sorted(dirs, key=lambda p: p.count("/"), reverse=True):
        if not os.path.isdir(d):
            continue
        try:
            with open(os.path.join(d, "cgroup.procs")) as f:
                pids = [int(x) for x in f.read().split()]
        except OSError:
            pids = []
        if pids and not kill:
            left.append(d)
            continue
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for _ in range(50 if kill else 1):
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError:
                reap()
                time.sleep(0.02)
        else:
            left.append(d)
    return left


def foreign_processes(names: tuple[str, ...], mine: tuple[str, ...]) -> list[int]:
    """Pids of running processes called one of `names` whose command line names none of `mine`
    (our temp dirs): another engine on this host, or another run of this suite."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().decode(errors="replace")
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
        except OSError:
            continue
        argv0 = os.path.basename(cmd.split("\0", 1)[0])
        if argv0 in names and not any(m in cmd for m in mine):
            found.append(int(pid))
    return found


def short_tmpdir(prefix: str) -> str:
    """A short, world-traversable temp dir (socket paths must stay under 108 bytes)."""
    d = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(d, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    return d


def host_pid_cgroup(pid: int, controller: str) -> str | None:
    """The host path of `pid`'s cgroup in the v1 `controller` hierarchy."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            for line in f:
                _, ctrls, path = line.rstrip("\n").split(":", 2)
                if controller in ctrls.split(","):
                    for h in os.listdir(CGROUP_ROOT):
                        if controller in h.split(","):
                            return os.path.join(CGROUP_ROOT, h, path.lstrip("/"))
    except OSError:
        return None
    return None


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


# --- what ocish cannot do yet -------------------------------------------------------------------
# A scenario that needs one of these runs for ocish as a strict xfail: the day the feature lands
# it XPASSes, the run fails, and the entry must go. The text is what the client's call gets today.
MISSING: dict[str, str] = {}


def params(*needs: str) -> list:
    """Parametrize values for the `rt` fixture: runc (the control), then ocish, which is marked
    xfail(strict) when it lacks one of `needs`."""
    missing = [n for n in needs if n in MISSING]
    marks = [pytest.mark.xfail(strict=True, reason="; ".join(
        f"needs {n}: {MISSING[n]}" for n in missing))] if missing else []
    return ["runc", pytest.param("ocish", marks=marks, id="ocish")]
