"""Real clients driving the runtime: podman (through conmon), containerd (ctr, its runc shim, its
CRI plugin) and Docker. Every scenario runs twice, with runc as the control and with ocish.

Everything lives under temporary directories and is torn down once the last client test is done
(package-scoped fixtures: the daemons do not outlive tests/clients), pass or fail: podman's
storage (containers.conf and storage.conf come from CONTAINERS_CONF / CONTAINERS_STORAGE_CONF, so
the host's podman state is never touched), the containerd and dockerd daemons (own sockets, root,
state and exec-root), their mounts and the cgroups they made.

A client binary that is not installed skips its tests with the reason; `.ci/run` installs them all.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid

import pytest

from tests.clients import helpers as H
from tests.conftest import IS_ROOT

NS = H.NS
# cgroups that are this run's alone (ctr: /<namespace>/<id>; CRI pods and dockerd: the parent we
# give them): removed at the end, whatever still runs in them killed. podman's libpod_parent is
# shared with any other podman: only our containers' empty cgroups are removed there.
CONTAINERD_CGROUPS = [NS, H.CRI_CGROUP]
DOCKER_CGROUPS = [H.DOCKER_CGROUP]
ENGINES = ("containerd", "dockerd", "conmon", "containerd-shim-runc-v2", "podman")


def pytest_collection_modifyitems(config, items):
    if not IS_ROOT:
        skip = pytest.mark.skip(reason="client tests need root and the real kernel")
        for item in items:
            if "tests/clients/" in str(item.fspath):
                item.add_marker(skip)


# Host paths the clients create whatever they are told (containerd 1.6's shim sockets and ctr's
# fifos, dockerd's plugin dir, the image blob cache): removed again, when they were not there
# before, as far as they hold only what these tests leave (empty dirs and these files).
HOST_PATHS = ["/run/containerd", "/run/docker", "/var/lib/containers"]
HOST_FILES = ["/var/lib/containers/cache/blob-info-cache-v1.boltdb"]


@pytest.fixture(scope="package", autouse=True)
def host_leftovers(runtimes):
    before = {p for p in HOST_PATHS if os.path.exists(p)}
    yield
    if H.foreign_processes(ENGINES, ()):  # ours are all stopped by now
        return  # another engine (or another run of this suite) may be using them right now
    for top in HOST_PATHS:
        if top in before or not os.path.isdir(top):
            continue
        for f in HOST_FILES:
            if f.startswith(top + "/") and os.path.isfile(f):
                os.unlink(f)
        for d, _, _ in sorted(os.walk(top), key=lambda w: w[0].count("/"), reverse=True):
            try:
                os.rmdir(d)
            except OSError:
                pass


# --- the two runtimes ---------------------------------------------------------------------------

@pytest.fixture(scope="package")
def runtimes(tmp_path_factory):
    base = H.short_tmpdir("ocish-rt-")
    rts = {"ocish": H.make_ocish_launcher(base)}
    runc = H.runc_runtime()
    if runc:
        rts["runc"] = runc
    yield rts
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def rt(request, runtimes):
    """The runtime under test, from `@pytest.mark.parametrize("rt", H.params(...), indirect=True)`."""
    name = request.param
    if name not in runtimes:
        pytest.skip(f"{name} is not installed (the control runtime)")
    r = runtimes[name]
    request.node.ocish_calls = (r, r.calls_offset())
    return r


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing (or xfailing) ocish test reports the runtime calls the client made, with their
    exit status and what the runtime logged: the exact failing call is in the test report."""
    outcome = yield
    report = outcome.get_result()
    calls = getattr(item, "ocish_calls", None)
    if calls and report.when == "call" and (report.failed or hasattr(report, "wasxfail")):
        text = calls[0].calls_since(calls[1])
        if text:
            report.sections.append(("ocish calls", text[-20000:]))


# --- images -------------------------------------------------------------------------------------

@pytest.fixture(scope="package")
def image_files(rootfs_template, tmp_path_factory):
    """The busybox rootfs as a plain tar (podman/docker import) and as an OCI archive (ctr)."""
    d = tmp_path_factory.mktemp("images")
    tar = H.rootfs_tar(rootfs_template / "rootfs", str(d / "rootfs.tar"))
    oci = H.oci_archive(tar, str(d / "oci.tar"), {
        H.IMAGE: {"Cmd": ["sh"]},
        H.PAUSE_IMAGE: {"Entrypoint": ["sleep", "2147483647"]},
    })
    return {"tar": tar, "oci": oci}


# --- podman ---------------------------------------------------------------------------------------

class Podman:
    def __init__(self, base: str, runtimes: dict) -> None:
        self.base = base
        self.conf = os.path.join(base, "containers.conf")
        self.storage_conf = os.path.join(base, "storage.conf")
        self.env = dict(os.environ, CONTAINERS_CONF=self.conf,
                        CONTAINERS_STORAGE_CONF=self.storage_conf,
                        CONTAINERS_REGISTRIES_CONF=os.path.join(base, "registries.conf"),
                        TMPDIR=os.path.join(base, "vartmp"))
        os.makedirs(self.env["TMPDIR"])
        names = sorted({os.path.basename(r.path) for r in runtimes.values()} | {"runc", "crun"})
        table = "\n".join(f'{name} = ["{r.path}"]' for name, r in runtimes.items())
        env_vars = [H.PATH_ENV, f"CONTAINERS_CONF={self.conf}",
                    f"CONTAINERS_STORAGE_CONF={self.storage_conf}",
                    f"CONTAINERS_REGISTRIES_CONF={self.env['CONTAINERS_REGISTRIES_CONF']}"]
        with open(self.conf, "w") as f:
            f.write(f"""\
# The clients tests' podman: everything under {base}.
[containers]
# the bounding set here lacks CAP_SYS_RESOURCE: podman's defaults (from the host's hard limits)
# would make runc and ocish alike fail at setrlimit
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
netns = "none"
init_path = "/usr/libexec/podman/catatonit"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{base}/events.log"
tmp_dir = "{base}/tmp"
volume_path = "{base}/volumes"
# conmon gets this environment; its exit command (`podman container cleanup`) must find our
# containers.conf too, or the cleanup looks in the host's default database and the container
# stays "stopped" (podman then waits 20 s for it)
conmon_env_vars = {json.dumps(env_vars)}
runtime_supports_json = {json.dumps(names)}

[engine.runtimes]
{table}
""")
        with open(self.storage_conf, "w") as f:
            f.write(f'[storage]\ndriver = "overlay"\ngraphroot = "{base}/graph"\n'
                    f'runroot = "{base}/run"\n')
        with open(self.env["CONTAINERS_REGISTRIES_CONF"], "w") as f:
            f.write('unqualified-search-registries = []\nshort-name-mode = "permissive"\n')

    def __call__(self, *args: str, **kw) -> H.Result:
        kw.setdefault("timeout", 60)
        return H.run(["podman", *args], env=self.env, **kw)

    def check(self, *args: str, **kw) -> H.Result:
        return self(*args, check=True, **kw)

    def inspect(self, name: str, fmt: str) -> str:
        return self.check("inspect", "--format", fmt, name).stdout.strip()


@pytest.fixture(scope="package")
def podman(runtimes, image_files):
    for tool in ("podman", "conmon"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed (apt-get install podman conmon)")
    base = H.short_tmpdir("ocish-pm-")
    shared_before = H.cgroup_dirs(["libpod_parent"])
    pm = Podman(base, runtimes)
    ids: set[str] = set()
    try:
        with open(image_files["tar"], "rb") as f:
            data = f.read()
        pm.check("import", "--change", 'CMD ["sh"]', "-", H.IMAGE, input=data, timeout=120)
        yield pm
    finally:
        ids |= set(pm("ps", "--all", "--quiet", "--no-trunc", timeout=60).stdout.split())
        pm("rm", "--all", "--force", "--time", "0", timeout=120)
        pm("system", "reset", "--force", timeout=120)
        H.reap()
        H.unmount_under(base)
        shutil.rmtree(base, ignore_errors=True)
        ours = {d for d in H.cgroup_dirs(["libpod_parent"]) - shared_before
                if os.path.basename(d) in {f"libpod-{i}" for i in ids}}
        H.remove_cgroups(ours)
        if not H.foreign_processes(("conmon", "podman"), (base,)):
            H.remove_cgroups(H.cgroup_dirs(["libpod_parent"]) - shared_before)  # empty ones only


@pytest.fixture
def pm_name(podman):
    """A fresh container name; the container is force-removed after the test, pass or fail."""
    names = []

    def new() -> str:
        n = f"oc-{uuid.uuid4().hex[:10]}"
        names.append(n)
        return n
    yield new
    for n in names:
        podman("rm", "--force", "--time", "0", n)


# --- containerd -----------------------------------------------------------------------------------

class Daemon:
    """A daemon we started, with its log file; stopped (TERM, then KILL) at the end."""

    def __init__(self, name: str, argv: list[str], log: str, env: dict | None = None) -> None:
        self.name, self.log = name, log
        self.logf = open(log, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def alive(self) -> bool:
        try:
            os.kill(self.proc.pid, 0)
            with open(f"/proc/{self.proc.pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except (ProcessLookupError, FileNotFoundError):
            return False

    def tail(self, n: int = 4000) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            if not self.alive():
                break
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                break
            end = time.monotonic() + wait
            while self.alive() and time.monotonic() < end:
                H.reap()
                time.sleep(0.05)
        try:
            self.proc.wait(timeout=1)
        except (subprocess.TimeoutExpired, ChildProcessError):
            pass
        H.reap()
        self.logf.close()


def _wait_socket(daemon: Daemon, sock: str, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not os.path.exists(sock):
        if not daemon.alive():
            raise RuntimeError(f"{daemon.name} died at start:\n{daemon.tail()}")
        if time.monotonic() > end:
            raise RuntimeError(f"{daemon.name} did not create {sock} in {timeout}s:\n{daemon.tail()}")
        H.reap()
        time.sleep(0.05)


class Containerd:
    def __init__(self, base: str, runtimes: dict) -> None:
        self.base = base
        self.sock = os.path.join(base, "containerd.sock")
        self.roots = {name: os.path.join(base, f"{name}-root") for name in runtimes}
        self.config = os.path.join(base, "config.toml")
        self.cni = os.path.join(base, "cni")
        os.makedirs(self.cni)
        runtime_tables = "".join(f"""
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{name}]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{name}.options]
        BinaryName = "{r.path}"
        Root = "{self.roots[name]}"
""" for name, r in runtimes.items())
        with open(self.config, "w") as f:
            f.write(f"""\
# The clients tests' containerd: its own socket, root and state under {base}. The CRI plugin
# names ocish as the runc shim's BinaryName: a Kubernetes RuntimeClass with handler "ocish".
version = 2
root = "{base}/root"
state = "{base}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{self.sock}"

[ttrpc]
  address = "{self.sock}.ttrpc"

[debug]
  address = "{base}/debug.sock"
  level = "info"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{H.PAUSE_IMAGE}"
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  enable_selinux = false
  disable_apparmor = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{self.cni}"
    conf_dir = "{self.cni}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
{runtime_tables}""")

    def ctr(self, *args: str, namespace: str = NS, timeout: float = 60, **kw) -> H.Result:
        # `timeout -s KILL`: a wedged ctr (an attach that never ends) must not hang the suite
        return H.run(["timeout", "-s", "KILL", str(int(timeout)), "ctr", "--address", self.sock,
                      "--namespace", namespace, *args], timeout=timeout + 10, **kw)


@pytest.fixture(scope="package")
def containerd(runtimes, image_files):
    for tool in ("containerd", "ctr", "containerd-shim-runc-v2"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed (apt-get install containerd)")
    base = H.short_tmpdir("ocish-cd-")
    cd = Containerd(base, runtimes)
    env = dict(os.environ, PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    daemon = Daemon("containerd", ["containerd", "--config", cd.config], f"{base}/containerd.log", env)
    cd.daemon = daemon
    try:
        _wait_socket(daemon, cd.sock)
        H.wait_for(lambda: cd.ctr("version", timeout=10).returncode == 0, 30, what="containerd")
        for ns in (NS, "k8s.io"):
            r = cd.ctr("images", "import", "--all-platforms", image_files["oci"], namespace=ns,
                       timeout=120)
            if r.returncode != 0:
                raise RuntimeError(f"ctr images import failed:\n{r}")
        yield cd
    finally:
        for ns in (NS, "k8s.io"):
            tasks = cd.ctr("tasks", "list", "--quiet", namespace=ns, timeout=20).stdout.split()
            for t in tasks:
                cd.ctr("tasks", "kill", "--all", "--signal", "SIGKILL", t, namespace=ns, timeout=20)
                cd.ctr("tasks", "delete", "--force", t, namespace=ns, timeout=20)
            for c in cd.ctr("containers", "list", "--quiet", namespace=ns, timeout=20).stdout.split():
                cd.ctr("containers", "delete", c, namespace=ns, timeout=20)
        daemon.stop()
        _kill_shims(base)
        H.unmount_under(base)
        shutil.rmtree(base, ignore_errors=True)
        H.remove_cgroups(H.cgroup_dirs(CONTAINERD_CGROUPS), kill=True)


def _kill_shims(base: str) -> None:
    """Shims of our containerd outlive it by design; end those whose command line names `base`."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"containerd-shim-runc-v2") and any(base.encode() in a for a in cmd):
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
    H.reap()


@pytest.fixture
def ctr_id(containerd):
    """A fresh container id in the test namespace; task and container removed after the test."""
    ids = []

    def new() -> str:
        i = f"oc-{uuid.uuid4().hex[:10]}"
        ids.append(i)
        return i
    yield new
    for i in ids:
        containerd.ctr("tasks", "kill", "--all", "--signal", "SIGKILL", i, timeout=20)
        containerd.ctr("tasks", "delete", "--force", i, timeout=20)
        containerd.ctr("containers", "delete", i, timeout=20)


# --- docker ---------------------------------------------------------------------------------------

DOCKER_CLI = "/usr/bin/docker"   # Debian's client, the daemon's own version


class Dockerd:
    def __init__(self, base: str, runtimes: dict, containerd_sock: str) -> None:
        self.base = base
        self.sock = os.path.join(base, "docker.sock")
        self.cli = DOCKER_CLI if os.path.exists(DOCKER_CLI) else shutil.which("docker")
        self.config = os.path.join(base, "daemon.json")
        cfg = {
            "runtimes": {"ocish": {"path": runtimes["ocish"].path}},
            "hosts": [f"unix://{self.sock}"],
            "data-root": os.path.join(base, "data"),
            "exec-root": os.path.join(base, "exec"),
            "pidfile": os.path.join(base, "docker.pid"),
            "deprecated-key-path": os.path.join(base, "key.json"),
            "containerd": containerd_sock,
            "containerd-namespace": "moby",
            "containerd-plugins-namespace": "moby-plugins",
            "iptables": False, "ip6tables": False, "ip-forward": False, "ip-masq": False,
            "bridge": "none",
            "storage-driver": "overlay2",
            "exec-opts": ["native.cgroupdriver=cgroupfs"],
            "cgroup-parent": H.DOCKER_CGROUP,
            "default-ulimits": {"nofile": {"Name": "nofile", "Hard": 20000, "Soft": 20000},
                                "nproc": {"Name": "nproc", "Hard": 32768, "Soft": 32768}},
            "log-driver": "json-file",
            "userland-proxy": False,
            "features": {"buildkit": False},
        }
        with open(self.config, "w") as f:
            json.dump(cfg, f, indent=2)
        self.env = dict(os.environ, DOCKER_HOST=f"unix://{self.sock}",
                        DOCKER_CONFIG=os.path.join(base, "client"))

    def __call__(self, *args: str, timeout: float = 60, **kw) -> H.Result:
        return H.run([self.cli, *args], env=self.env, timeout=timeout, **kw)

    def check(self, *args: str, **kw) -> H.Result:
        return self(*args, check=True, **kw)


@pytest.fixture(scope="package")
def dockerd(runtimes, image_files, containerd):
    if not shutil.which("dockerd"):
        pytest.skip("dockerd is not installed (apt-get install docker.io)")
    base = H.short_tmpdir("ocish-dk-")
    dk = Dockerd(base, runtimes, containerd.sock)
    env = dict(os.environ, PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    daemon = Daemon("dockerd", ["dockerd", "--config-file", dk.config], f"{base}/dockerd.log", env)
    dk.daemon = daemon
    try:
        _wait_socket(daemon, dk.sock)
        H.wait_for(lambda: dk("version", timeout=10).returncode == 0, 60, what="dockerd")
        with open(image_files["tar"], "rb") as f:
            data = f.read()
        r = dk("import", "--change", 'CMD ["sh"]', "-", H.IMAGE, input=data, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"docker import failed:\n{r}\n{daemon.tail()}")
        yield dk
    finally:
        ids = dk("ps", "-aq", timeout=20).stdout.split()
        if ids:
            dk("rm", "-f", *ids, timeout=60)
        daemon.stop()
        containerd.ctr("tasks", "list", namespace="moby", timeout=10)
        H.unmount_under(base)
        shutil.rmtree(base, ignore_errors=True)
        H.remove_cgroups(H.cgroup_dirs(DOCKER_CGROUPS), kill=True)


@pytest.fixture
def dk_name(dockerd):
    names = []

    def new() -> str:
        n = f"oc-{uuid.uuid4().hex[:10]}"
        names.append(n)
        return n
    yield new
    for n in names:
        dockerd("rm", "-f", n, timeout=30)
