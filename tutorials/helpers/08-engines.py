#!/usr/bin/python3
"""Tutorial 08's engines: podman, containerd and Docker with ocish as their runtime, each in a
directory of its own, and a busybox image for them, built offline.

    08-engines.py image DIR                       DIR/rootfs.tar (podman/docker import) and
                                                  DIR/oci.tar (ctr images import), from the busybox
                                                  rootfs `ocish bundle init` builds
    08-engines.py podman DIR [--while PID]        DIR/containers.conf, DIR/storage.conf: podman's
                                                  store under DIR, runtime `ocish`
    08-engines.py containerd DIR [--while PID]    a containerd on DIR/containerd.sock, root and
                                                  state under DIR
    08-engines.py docker DIR [--while PID]        that containerd plus a dockerd on DIR/docker.sock
                                                  with runtime `ocish`, data-root and exec-root
                                                  under DIR
    08-engines.py stop DIR                        remove all of it: containers, images, daemons,
                                                  their mounts and cgroups, DIR itself

Each engine command writes DIR/env (`. DIR/env` points podman, ctr and docker at DIR) and
leaves a keeper process behind: it owns the daemons (their parent and child subreaper, so the
shims and monitors they orphan are reaped) and removes everything when `stop DIR` asks, or, with
`--while PID`, as soon as process PID ends (a replay that stopped half-way: nothing stays
behind). The host's own engines, stores and sockets are never used.

The runtime given to the engines is the first `ocish` on PATH (a pyenv shim is replaced by the
launcher it runs, as the README's "Use with podman / containerd / Docker" says:
the engines need the launcher's absolute path), or $OCISH_RUNTIME.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time

PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CGROUP_ROOT = "/sys/fs/cgroup"
KEEPER = "keeper.pid"
# Host paths the engines create whatever they are told (podman's blob-info cache, containerd
# 1.6's shim sockets and fifos, dockerd's plugin dir): when one was not there before the engine
# started, it is removed again at stop, as far as it holds only these files and empty dirs and
# no other engine runs (the same rule as tests/clients/conftest.py's host_leftovers).
HOST_PATHS = ["/var/lib/containers", "/run/containerd", "/run/docker"]
HOST_FILES = ["/var/lib/containers/cache/blob-info-cache-v1.boltdb"]
ENGINES = (b"podman", b"conmon", b"containerd", b"dockerd", b"containerd-shim-runc-v2")


def die(msg: str) -> None:
    """One line on stderr, exit status 1."""
    print(f"08-engines: {msg}", file=sys.stderr)
    sys.exit(1)


def runtime_path() -> str:
    """The ocish launcher the engines run (an absolute path)."""
    path = os.environ.get("OCISH_RUNTIME") or shutil.which("ocish")
    if not path:
        die("no ocish on PATH (install it as the README says)")
    if "/shims/" in path:  # pyenv's shim: the engines need the launcher it runs
        path = subprocess.run(["pyenv", "which", "ocish"], capture_output=True, text=True,
                              check=True).stdout.strip()
    return os.path.abspath(path)


# --- the image ----------------------------------------------------------------------------------

def _root_owned(ti: tarfile.TarInfo) -> tarfile.TarInfo:
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    ti.mtime = 0
    return ti


def make_image(d: str) -> None:
    """DIR/rootfs.tar: the busybox rootfs of `ocish bundle init`, owned by root; DIR/oci.tar: the
    same as an OCI image layout tarball (one layer, image name localhost/tut8:busybox, CMD sh)."""
    import gzip
    import hashlib
    import io
    os.makedirs(d, exist_ok=True)
    bundle = os.path.join(d, "bundle")
    subprocess.run([runtime_path(), "bundle", "init", bundle, "--", "sh"], check=True,
                   stdout=subprocess.DEVNULL)
    tar = os.path.join(d, "rootfs.tar")
    with tarfile.open(tar, "w", format=tarfile.PAX_FORMAT) as t:
        rootfs = os.path.join(bundle, "rootfs")
        for top in sorted(os.listdir(rootfs)):
            t.add(os.path.join(rootfs, top), arcname=top, filter=_root_owned)
    shutil.rmtree(bundle)
    blobs: dict[str, bytes] = {}

    def blob(data: bytes, media: str) -> dict:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"mediaType": media, "digest": digest, "size": len(data)}

    raw = open(tar, "rb").read()
    layer = blob(gzip.compress(raw, mtime=0), "application/vnd.oci.image.layer.v1.tar+gzip")
    config = blob(json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": [PATH_ENV], "Cmd": ["sh"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]},
    }).encode(), "application/vnd.oci.image.config.v1+json")
    manifest = blob(json.dumps({"schemaVersion": 2, "config": config, "layers": [layer],
                                "mediaType": "application/vnd.oci.image.manifest.v1+json"}
                               ).encode(), "application/vnd.oci.image.manifest.v1+json")
    manifest["annotations"] = {"io.containerd.image.name": "localhost/tut8:busybox",
                               "org.opencontainers.image.ref.name": "busybox"}
    index = {"schemaVersion": 2, "manifests": [manifest]}
    with tarfile.open(os.path.join(d, "oci.tar"), "w") as t:
        files = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}', "index.json":
                 json.dumps(index).encode()}
        files.update({"blobs/sha256/" + k.split(":")[1]: v for k, v in blobs.items()})
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), 0o644
            t.addfile(ti, io.BytesIO(data))
    print(f"{tar} {os.path.join(d, 'oci.tar')}")


# --- engine configurations ----------------------------------------------------------------------

def podman_conf(d: str, rt: str) -> dict:
    """containers.conf, storage.conf and registries.conf under d: podman's store there, ocish as
    runtime `ocish` (README "Use with podman"). Returns the environment that points podman at them."""
    env = {"CONTAINERS_CONF": f"{d}/containers.conf",
           "CONTAINERS_STORAGE_CONF": f"{d}/storage.conf",
           "CONTAINERS_REGISTRIES_CONF": f"{d}/registries.conf"}
    conmon_env = [PATH_ENV] + [f"{k}={v}" for k, v in env.items()]
    with open(env["CONTAINERS_CONF"], "w") as f:
        f.write(f"""\
[containers]
# this machine's bounding set may lack CAP_SYS_RESOURCE: podman's defaults (the host's hard
# limits) could not be set by any runtime
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
netns = "none"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{d}/events.log"
tmp_dir = "{d}/tmp"
volume_path = "{d}/volumes"
# conmon's exit command (`podman container cleanup`) must read this file too
conmon_env_vars = {json.dumps(conmon_env)}
runtime_supports_json = ["ocish", "crun", "runc"]

[engine.runtimes]
ocish = ["{rt}"]
""")
    with open(env["CONTAINERS_STORAGE_CONF"], "w") as f:
        f.write(f'[storage]\ndriver = "overlay"\ngraphroot = "{d}/graph"\nrunroot = "{d}/run"\n')
    with open(env["CONTAINERS_REGISTRIES_CONF"], "w") as f:
        f.write('unqualified-search-registries = []\n')
    return env


def containerd_conf(d: str) -> str:
    """A containerd config.toml under d (socket, root, state there; no CRI plugin); its path."""
    path = f"{d}/containerd.toml"
    with open(path, "w") as f:
        f.write(f"""\
version = 2
root = "{d}/containerd/root"
state = "{d}/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp",
                    "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[debug]
  address = "{d}/containerd-debug.sock"
""")
    return path


def docker_conf(d: str, rt: str) -> str:
    """dockerd's daemon.json under d: runtime `ocish` = rt, the containerd of d, no networking
    of the host's touched (no iptables, no bridge), cgroupfs under cgroup_parent(d); its path."""
    path = f"{d}/daemon.json"
    cfg = {"runtimes": {"ocish": {"path": rt}}, "hosts": [f"unix://{d}/docker.sock"],
           "data-root": f"{d}/docker/data", "exec-root": f"{d}/docker/exec",
           "pidfile": f"{d}/docker/docker.pid", "containerd": f"{d}/containerd.sock",
           "containerd-namespace": "moby", "containerd-plugins-namespace": "moby-plugins",
           "iptables": False, "ip6tables": False, "ip-forward": False, "ip-masq": False,
           "bridge": "none", "storage-driver": "overlay2",
           "exec-opts": ["native.cgroupdriver=cgroupfs"], "cgroup-parent": cgroup_parent(d),
           "default-ulimits": {"nofile": {"Name": "nofile", "Hard": 20000, "Soft": 20000},
                               "nproc": {"Name": "nproc", "Hard": 32768, "Soft": 32768}},
           "log-driver": "json-file", "userland-proxy": False, "features": {"buildkit": False}}
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)
    return path


def cgroup_parent(d: str) -> str:
    """Docker's cgroup parent: this directory's alone, named for its whole path ("/tmp/tut/dk"
    gives "/tmp-tut-dk", so that two directories named dk do not share one), removed at stop."""
    return "/" + d.strip("/").replace("/", "-")


# --- the keeper ---------------------------------------------------------------------------------

def alive(pid: int) -> bool:
    """Whether pid runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_socket(path: str, daemon: subprocess.Popen, what: str, timeout: float = 60) -> None:
    """Until the daemon made its socket; RuntimeError when it died or took too long."""
    end = time.monotonic() + timeout
    while not os.path.exists(path):
        if daemon.poll() is not None:
            raise RuntimeError(f"{what} exited at start (status {daemon.returncode})")
        if time.monotonic() > end:
            raise RuntimeError(f"{what} made no {path} in {timeout:.0f} s")
        time.sleep(0.05)


def start_daemon(d: str, name: str, argv: list[str]) -> subprocess.Popen:
    """A daemon, its output to d/NAME.log, with a PATH that finds the shims and runtimes."""
    log = open(f"{d}/{name}.log", "wb")
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, PATH=PATH_ENV.split("=", 1)[1]))


def keep(d: str, engine: str, watch: int | None, ready_w: int) -> None:
    """The keeper (a detached child): starts the engine's daemons, reports on ready_w, then
    reaps orphans until `stop` (SIGTERM) or the end of `watch`, and tears everything down."""
    from ctypes import CDLL
    CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: shims, conmons
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    daemons = []
    try:
        if engine in ("containerd", "docker"):
            cd = start_daemon(d, "containerd", ["containerd", "--config", containerd_conf(d)])
            daemons.append(cd)
            wait_socket(f"{d}/containerd.sock", cd, "containerd")
        if engine == "docker":
            dk = start_daemon(d, "dockerd", ["dockerd", "--config-file", docker_conf(d, runtime_path())])
            daemons.append(dk)
            wait_socket(f"{d}/docker.sock", dk, "dockerd")
            env = dict(os.environ, DOCKER_HOST=f"unix://{d}/docker.sock")
            end = time.monotonic() + 60
            while subprocess.run(["docker", "version"], env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL).returncode != 0:
                if time.monotonic() > end:
                    raise RuntimeError("dockerd does not answer")
                time.sleep(0.2)
        os.write(ready_w, b"ok")
    except Exception as e:  # told to the waiting parent, then the same teardown
        os.write(ready_w, str(e).encode())
        stop.append(1)
    os.close(ready_w)
    while not stop and (watch is None or alive(watch)):
        reap()
        time.sleep(0.2)
    teardown(d, daemons)


def reap() -> None:
    """Collect every exited child (the keeper is the subreaper of the engines' monitors)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def quiet(argv: list[str], env: dict, timeout: float = 60) -> str:
    """A client command's stdout, '' when it fails to run: teardown goes on regardless."""
    try:
        return subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout).stdout
    except (subprocess.TimeoutExpired, OSError):
        return ""


def engine_env(d: str) -> dict:
    """This environment with d/env's variables on it."""
    env = dict(os.environ)
    with open(f"{d}/env") as f:
        for line in f:
            k, _, v = line.removeprefix("export ").strip().partition("=")
            env[k] = v
    return env


def teardown(d: str, daemons: list[subprocess.Popen]) -> None:
    """Everything the engines made under d goes: containers, images, daemons (TERM, then KILL),
    the shims and monitors still naming d, mounts below d, cgroups, d itself."""
    env = engine_env(d)
    if os.path.exists(env.get("CONTAINERS_CONF", "/nonexistent")):
        ids = quiet(["podman", "ps", "-aq", "--no-trunc"], env).split()
        quiet(["podman", "rm", "-af", "-t", "0"], env, 120)
        quiet(["podman", "system", "reset", "--force"], env, 120)
        remove_cgroups(f"libpod_parent/libpod-{i}" for i in ids)
    if "DOCKER_HOST" in env:
        ids = quiet(["docker", "ps", "-aq"], env).split()
        if ids:
            quiet(["docker", "rm", "-f", *ids], env, 120)
    if "CONTAINERD_ADDRESS" in env:
        for ns in quiet(["ctr", "namespaces", "list", "-q"], env).split():
            e = dict(env, CONTAINERD_NAMESPACE=ns)
            for t in quiet(["ctr", "tasks", "list", "-q"], e).split():
                quiet(["ctr", "tasks", "kill", "-a", "-s", "SIGKILL", t], e)
                quiet(["ctr", "tasks", "delete", "-f", t], e)
            for c in quiet(["ctr", "containers", "list", "-q"], e).split():
                quiet(["ctr", "containers", "delete", c], e)
            if ns != "moby":
                remove_cgroups([ns])
    for p in reversed(daemons):
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            if p.poll() is None:
                p.send_signal(sig)
                try:
                    p.wait(wait)
                except subprocess.TimeoutExpired:
                    pass
    kill_naming(d)
    reap()
    if os.path.exists(f"{d}/daemon.json"):
        remove_cgroups([cgroup_parent(d)])
    unmount_under(d)
    remove_host_paths(d)
    shutil.rmtree(d, ignore_errors=True)


def remove_host_paths(d: str) -> None:
    """The HOST_PATHS that were not there at setup (listed in d/host-paths), emptied of
    HOST_FILES and removed, unless another engine runs now (it may be using them)."""
    try:
        with open(f"{d}/host-paths") as f:
            before = f.read().split()
    except OSError:
        return
    for _, cmd in cmdlines():
        if os.path.basename(cmd.split(b"\0")[0]) in ENGINES and d.encode() not in cmd:
            return
    for top in HOST_PATHS:
        if top in before or not os.path.isdir(top):
            continue
        for f in HOST_FILES:
            if f.startswith(top + "/") and os.path.isfile(f):
                os.unlink(f)
        for sub, _, _ in sorted(os.walk(top), key=lambda w: w[0].count("/"), reverse=True):
            try:
                os.rmdir(sub)
            except OSError:
                pass


def kill_naming(d: str) -> None:
    """SIGKILL the processes whose command line names d (containerd's shims, conmons)."""
    me = os.getpid()
    for pid, cmd in cmdlines():
        if pid != me and d.encode() + b"/" in cmd and b"08-engines" not in cmd:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def cmdlines():
    """(pid, /proc/PID/cmdline) of every process that is still there to read."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                yield int(pid), f.read()
        except OSError:
            continue
    time.sleep(0.2)


def unmount_under(d: str) -> None:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4].encode().decode("unicode_escape") for line in f]
    for mp in sorted({p for p in points if p == d or p.startswith(d + "/")}, key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], stderr=subprocess.DEVNULL)


def remove_cgroups(names) -> None:
    """rmdir each named cgroup in every v1 hierarchy (and the unified one), deepest first, after
    killing what still runs there (they are this tutorial's alone)."""
    names = [n.strip("/") for n in names]
    dirs = []
    for h in os.listdir(CGROUP_ROOT):
        for n in names:
            top = os.path.join(CGROUP_ROOT, h, n)
            if n and not os.path.islink(os.path.join(CGROUP_ROOT, h)) and os.path.isdir(top):
                dirs += [w[0] for w in os.walk(top)]
    for c in sorted(dirs, key=lambda p: p.count("/"), reverse=True):
        for _ in range(50):
            try:
                with open(f"{c}/cgroup.procs") as f:
                    for pid in f.read().split():
                        os.kill(int(pid), signal.SIGKILL)
                os.rmdir(c)
                break
            except FileNotFoundError:
                break
            except OSError:
                reap()
                time.sleep(0.05)


# --- commands -----------------------------------------------------------------------------------

def setup(engine: str, d: str, watch: int | None) -> None:
    """Configure the engine in d, start the keeper (and through it the daemons), wait until
    they answer; one line on stdout when ready, else die with the keeper's error."""
    if os.path.exists(f"{d}/{KEEPER}"):
        die(f"{d} already has an engine: `08-engines.py stop {d}` first")
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)
    env = {}
    if engine in ("podman", "docker"):  # the runtime named in their configuration: say which
        print(f"using ocish: {runtime_path()}", flush=True)
    if engine == "podman":
        env = podman_conf(d, runtime_path())
    if engine in ("containerd", "docker"):
        env["CONTAINERD_ADDRESS"] = f"{d}/containerd.sock"
    if engine == "docker":
        env["DOCKER_HOST"] = f"unix://{d}/docker.sock"
        env["DOCKER_CONFIG"] = f"{d}/docker/client"
    with open(f"{d}/env", "w") as f:
        f.writelines(f"export {k}={v}\n" for k, v in env.items())
    with open(f"{d}/host-paths", "w") as f:
        f.write("\n".join(p for p in HOST_PATHS if os.path.exists(p)))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the keeper: its own session, no stdio of the caller's (a pipe held open
        os.close(r)  # would keep `shell` waiting)
        os.setsid()
        if os.fork():
            os._exit(0)
        fd = os.open(f"{d}/keeper.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        # nothing else of the caller's: an inherited flock(1) lock or pipe would be held for
        # the keeper's whole life
        os.closerange(3, w)
        os.closerange(w + 1, 65536)
        with open(f"{d}/{KEEPER}", "w") as f:
            f.write(str(os.getpid()))
        try:
            keep(d, engine, watch, w)
        finally:
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    answer = b""
    while chunk := os.read(r, 4096):
        answer += chunk
    if answer != b"ok":
        wait_gone(d)
        die(f"{engine}: {answer.decode(errors='replace') or 'the keeper died'}")
    until = f", removed when pid {watch} ends" if watch else ""
    print(f"{engine} ready in {d} (`. {d}/env` points the clients at it{until})")


def wait_gone(d: str, timeout: float = 180) -> None:
    """Until the keeper removed d (or the timeout passed)."""
    end = time.monotonic() + timeout
    while os.path.exists(d) and time.monotonic() < end:
        time.sleep(0.1)


def stop(d: str) -> None:
    """Ask d's keeper to tear everything down (or do it here when the keeper is gone)."""
    try:
        with open(f"{d}/{KEEPER}") as f:
            pid = int(f.read())
    except (OSError, ValueError):
        die(f"{d}: no engine started there")
    if alive(pid):
        os.kill(pid, signal.SIGTERM)
    else:
        teardown(d, [])
    wait_gone(d)
    if os.path.exists(d):
        die(f"{d} is still there")
    print(f"stopped and removed {d}")


def main(argv: list[str]) -> None:
    """The command line (see the module's docstring)."""
    if len(argv) < 2 or argv[0] not in ("image", "podman", "containerd", "docker", "stop"):
        die("usage: 08-engines.py image|podman|containerd|docker|stop DIR [--while PID]")
    cmd, d = argv[0], os.path.abspath(argv[1])
    watch = None
    if argv[2:3] == ["--while"]:
        if len(argv) < 4 or not argv[3].isdigit():
            die(f"--while wants a pid, got {argv[3] if len(argv) > 3 else 'nothing'!r}")
        watch = int(argv[3])
    if os.geteuid() != 0:
        die("the engines need root")
    if cmd == "image":
        make_image(d)
    elif cmd == "stop":
        stop(d)
    else:
        setup(cmd, d, watch)


if __name__ == "__main__":
    main(sys.argv[1:])
