"""`checkpoint` and `restore` through criu (CRIU's command line, with the options runc's RPC sets).

    ocish checkpoint [--image-path D] [--work-path D] [--leave-running] ... ID
        criu dump --tree <init pid> --images-dir D --work-dir W --log-file dump.log -v4
                  --root <rootfs> --manage-cgroups=soft [--freeze-cgroup <freezer dir>]
                  --external mnt[<dest>]:<dest> (every bind mount)
                  --external mnt[<path>]:/dev/null (masked files) [--external net[INODE]:extRootNetNS]
        then, unless --leave-running or --pre-dump, the container is deleted (criu has killed it).

    ocish restore [--image-path D] [--work-path D] [-b BUNDLE] [--detach] [--pid-file F] ... ID
        state dir and cgroups as `create` makes them, then in a private mount namespace (so the
        host never sees it) the rootfs is bound on <state>/criu-root, criu joins the cgroups and runs
        criu restore --images-dir D --work-dir W --log-file restore.log -v4 --root <state>/criu-root
                     --restore-detached --pidfile <state>/restore.pid --manage-cgroups=soft
                     --external mnt[<dest>]:<source> ... [--inherit-fd fd[N]:pipe:[...] (stdio)]
        and the restored init is recorded like a started container.

criu's failures are reported in one line, from its log: the last "Error" line, the first one when it
differs (the cause, usually), and the log's path, which is kept. A failed checkpoint leaves the
container as it was: running, and thawed if criu froze it; a failed restore leaves nothing.
Not on the hot path: this module may import what it likes, but only `checkpoint`/`restore` load it.
"""
from __future__ import annotations

import os

from runtime import jsonfast, state
from runtime.errors import OcishError

DESCRIPTORS = "descriptors.json"   # the init's stdio, as runc records it in the image dir
EXT_NETNS = "extRootNetNS"
MANAGE_CGROUPS_MODES = ("soft", "full", "strict", "ignore")


class CriuFailed(OcishError):
    pass


def find_criu(criu: str) -> str:
    if "/" in criu:
        if os.access(criu, os.X_OK):
            return criu
    else:
        for d in (os.environ.get("PATH") or "/usr/sbin:/usr/bin:/sbin:/bin").split(":") + ["/usr/sbin", "/sbin"]:
            exe = os.path.join(d or ".", criu)
            if os.path.isfile(exe) and os.access(exe, os.X_OK):
                return exe
    raise OcishError(f'criu binary "{criu}" not found: install criu or pass --criu PATH')


def log_errors(log_path: str, output: str = "") -> tuple[str, str]:
    """(last error, first error) of a criu log, without timestamps; criu's own output when the
    log has none."""
    lines: list[str] = []
    try:
        with open(log_path, errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        pass
    errors = [_strip(ln) for ln in lines if "Error (" in ln]
    if not errors:
        errors = [_strip(ln) for ln in output.splitlines() if ln.strip()]
    if not errors:
        return "", ""
    return errors[-1], errors[0]


def _strip(line: str) -> str:
    """"(00.048994) Error (criu/crtools.c:260): Could not ..." -> "Could not ... (criu/crtools.c:260)"."""
    line = line.strip()
    if line.startswith("(") and ") " in line:
        line = line.split(") ", 1)[1]
    if line.startswith("Error (") and "): " in line:
        where, msg = line[len("Error ("):].split("): ", 1)
        return f"{msg.strip()} ({where})"
    return line


def failure(what: str, rc: int, log_path: str, output: str) -> str:
    last, first = log_errors(log_path, output)
    msg = f"criu {what}: {last or f'exit status {rc}'}"
    if first and first != last:
        msg += f"; first error: {first}"
    return msg + f"; log: {log_path}"


def run_criu(argv: list[str], setup=None) -> tuple[int, str]:
    """Run criu, returning (exit status, its own output). `setup()` runs in the child before
    exec (restore: private mount namespace, cgroups); its failure is reported as output."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(r)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.dup2(w, 1)
            os.dup2(w, 2)
            if setup is not None:
                setup()
            os.execv(argv[0], argv)
        except BaseException as e:  # noqa: BLE001 - reported through the pipe
            os.write(2, f"ocish: running criu: {e}\n".encode())
        os._exit(127)
    os.close(w)
    chunks = []
    while True:
        b = os.read(r, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode(errors="replace")


def _spec(st_dir: str, bundle: str) -> dict:
    for path in (os.path.join(st_dir, state.CONFIG_COPY), os.path.join(bundle, "config.json")):
        try:
            with open(path) as f:
                return jsonfast.loads(f.read())
        except FileNotFoundError:
            continue
    raise OcishError("the container's config is gone: cannot tell criu its mounts")


def _bind_mounts(spec: dict) -> list[dict]:
    return [m for m in spec.get("mounts") or []
            if m.get("type") == "bind" or {"bind", "rbind"} & set(m.get("options") or [])]


def _common_flags(opts: dict) -> list[str]:
    out = []
    for flag in ("tcp-established", "ext-unix-sk", "shell-job", "file-locks"):
        if opts.get(flag.replace("-", "_")):
            out.append(f"--{flag}")
    mode = opts.get("manage_cgroups_mode") or "soft"
    if mode not in MANAGE_CGROUPS_MODES:
        raise OcishError(f"invalid --manage-cgroups-mode {mode!r}: choose from "
                         + ", ".join(MANAGE_CGROUPS_MODES))
    if mode != "ignore":
        out.append(f"--manage-cgroups={mode}")
    return out


def _dirs(opts: dict) -> tuple[str, str]:
    image = os.path.abspath(opts.get("image_path") or os.path.join(os.getcwd(), "checkpoint"))
    work = os.path.abspath(opts.get("work_path") or image)
    return image, work


# ---------------------------------------------------------------------------------------------
# checkpoint

def checkpoint(root: str, cid: str, opts: dict, criu: str = "criu") -> None:
    st = state.load(root, cid)
    status = state.status(root, st)
    if status not in ("running", "paused"):
        raise OcishError("container is not running" if status != "created"
                         else "cannot checkpoint a container that is not started")
    exe = find_criu(criu)
    image, work = _dirs(opts)
    for d in (image, work):
        os.makedirs(d, 0o700, exist_ok=True)
    sdir = state.container_dir(root, cid)
    spec = _spec(sdir, st["bundle"])
    pid = st["pid"]
    what = "pre-dump" if opts.get("pre_dump") else "dump"
    log = what.replace("-", "") + ".log"
    argv = [exe, what, "--tree", str(pid), "--images-dir", image, "--work-dir", work,
            "--log-file", log, "-v4", "--root", st["rootfs"]]
    if opts.get("parent_path"):
        argv += ["--prev-images-dir", opts["parent_path"]]
    if opts.get("leave_running") or opts.get("pre_dump"):
        argv.append("--leave-running")
    argv += _common_flags(opts)
    manager = None
    if st.get("cgroup"):
        from runtime import cgroups
        manager = cgroups.from_state(st["cgroup"])
        paths = manager.paths()
        freezer = paths.get("freezer") or paths.get("")
        if freezer:
            argv += ["--freeze-cgroup", freezer]
    for m in _bind_mounts(spec):
        argv += ["--external", f"mnt[{m['destination']}]:{m['destination']}"]
    for path in (spec.get("linux") or {}).get("maskedPaths") or []:
        full = os.path.join(st["rootfs"], path.lstrip("/"))
        if os.path.lexists(full) and not os.path.isdir(full):
            argv += ["--external", f"mnt[{path}]:/dev/null"]
    for ns in (spec.get("linux") or {}).get("namespaces") or []:
        if ns.get("type") == "network" and ns.get("path"):
            argv += ["--external", f"net[{os.stat(ns['path']).st_ino}]:{EXT_NETNS}"]
    _write_descriptors(image, pid)
    was_frozen = manager.frozen() if manager is not None else False
    rc, output = run_criu(argv)
    if rc != 0:
        if manager is not None and not was_frozen and manager.frozen():
            manager.thaw()  # criu froze it and gave up: the container runs on, as before
        raise CriuFailed("checkpoint failed: " + failure(what, rc, os.path.join(work, log), output))
    if not (opts.get("leave_running") or opts.get("pre_dump")):
        from runtime import lifecycle
        lifecycle.delete(root, cid, force=True)  # criu killed it: what is left is its state


def _write_descriptors(image: str, pid: int) -> None:
    """runc's descriptors.json: what the init's fds 0-2 were, for restore's --inherit-fd."""
    fds = []
    for n in range(3):
        try:
            fds.append(os.readlink(f"/proc/{pid}/fd/{n}"))
        except OSError:
            fds.append("/dev/null")
    with open(os.path.join(image, DESCRIPTORS), "w") as f:
        f.write(jsonfast.dumps(fds))


# ---------------------------------------------------------------------------------------------
# restore

def restore(root: str, cid: str, bundle: str, opts: dict, criu: str = "criu") -> int:
    """Restore a checkpointed container; in the foreground, wait for it and return its status."""
    from runtime import cgroups, lifecycle
    from runtime import spec as specmod
    from runtime.linux import syscalls as S
    state.validate_id(cid)
    exe = find_criu(criu)
    image, work = _dirs(opts)
    if not os.path.isdir(image):
        raise OcishError(f"restore failed: image path {image}: no such directory")
    bundle = os.path.abspath(bundle)
    spec, rootfs = specmod.load(bundle)
    os.makedirs(root, 0o700, exist_ok=True)
    os.makedirs(work, 0o700, exist_ok=True)
    sdir = state.container_dir(root, cid)
    try:
        os.mkdir(sdir, 0o711)
    except FileExistsError:
        raise OcishError(f"container with id exists: {cid}") from None
    manager = None
    criu_root = os.path.join(sdir, "criu-root")
    pidfile = os.path.join(sdir, "restore.pid")
    try:
        st = state.begin(root, cid, bundle, rootfs, spec.get("annotations") or {})
        os.mkdir(criu_root, 0o755)
        linux = spec.get("linux") or {}
        if os.geteuid() == 0:
            from runtime.engine import Context
            from runtime.stages.cgroup import device_rules
            chosen = cgroups.open_manager(linux.get("cgroupsPath"), cid)
            chosen.refuse_busy()  # not ours to remove then
            manager = chosen
            st["cgroup"] = manager.planned_state()  # a crash from here on leaves it to delete
            state.save(root, st)
            manager.create()
            resources = dict(linux.get("resources") or {})
            if resources.get("devices"):
                resources["devices"] = device_rules(Context(cid, bundle, spec, rootfs, sdir))
            manager.apply(resources)
        argv = [exe, "restore", "--images-dir", image, "--work-dir", work,
                "--log-file", "restore.log", "-v4", "--root", criu_root, "--restore-detached",
                "--pidfile", pidfile]
        argv += _common_flags(opts)
        for m in _bind_mounts(spec):
            source = m.get("source") or ""
            if not os.path.isabs(source):
                source = os.path.join(bundle, source)
            argv += ["--external", f"mnt[{m['destination']}]:{source}"]
        for path in linux.get("maskedPaths") or []:
            argv += ["--external", f"mnt[{path}]:/dev/null"]
        keep_fds = []
        for ns in linux.get("namespaces") or []:
            if ns.get("type") == "network" and ns.get("path"):
                fd = os.open(ns["path"], os.O_RDONLY)
                keep_fds.append(fd)
                argv += ["--inherit-fd", f"fd[{fd}]:{EXT_NETNS}"]
        argv += _inherit_stdio(image)
        if not opts.get("detach"):
            S.prctl(S.PR_SET_CHILD_SUBREAPER, 1)  # the restored init comes back to us

        def setup() -> None:  # in criu's process, before exec
            for fd in keep_fds:
                os.set_inheritable(fd, True)
            S.unshare(S.CLONE_NEWNS)
            S.mount(None, "/", None, S.MS_REC | S.MS_PRIVATE)
            S.mount(rootfs, criu_root, None, S.MS_BIND | S.MS_REC)
            if manager is not None:
                manager.add(os.getpid())

        rc, output = run_criu(argv, setup)
        for fd in keep_fds:
            os.close(fd)
        os.rmdir(criu_root)  # the bind lived in criu's own mount namespace only
        if rc != 0:
            raise CriuFailed("restore failed: " + failure("restore", rc,
                                                          os.path.join(work, "restore.log"), output))
        with open(pidfile) as f:
            pid = int(f.read().strip())
    except BaseException:
        if manager is not None:
            try:
                manager.destroy()
            except OcishError:
                pass
        _remove_state(sdir)
        raise
    from runtime.linux import procfs
    del st["creating"]
    st.update(pid=pid, start_time=procfs.start_time(pid), created=state.rfc3339_now(),
              cgroup=manager.to_state() if manager is not None else None)
    with open(os.path.join(sdir, state.CONFIG_COPY), "w") as f:
        f.write(jsonfast.dumps(spec))
    state.save(root, st)
    if opts.get("pid_file"):
        lifecycle.write_pid_file(opts["pid_file"], pid)
    if opts.get("detach"):
        return 0
    _, status = os.waitpid(pid, 0)
    lifecycle.delete(root, cid, force=True)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def _inherit_stdio(image: str) -> list[str]:
    """As runc: a checkpointed init whose stdio were pipes gets ours in their place."""
    try:
        with open(os.path.join(image, DESCRIPTORS)) as f:
            fds = jsonfast.loads(f.read())
    except (OSError, ValueError):
        return []
    return [arg for n, d in enumerate(fds[:3]) if isinstance(d, str) and d.startswith("pipe:")
            for arg in ("--inherit-fd", f"fd[{n}]:{d}")]


def _remove_state(sdir: str) -> None:
    try:
        os.rmdir(os.path.join(sdir, "criu-root"))
    except OSError:
        pass
    state.remove_dir(sdir)
