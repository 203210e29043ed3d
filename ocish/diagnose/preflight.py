"""Step 2 of diagnose: everything that can be checked without running anything.

The bundle against the rootfs (the entrypoint, see entrypoint.py; the cwd; mount sources and
destinations) and against this host (filesystem types, namespace files, rlimits and capabilities
the runtime may grant, security modules, sysctls, hook programs, what a seccomp profile leaves
the runtime between loading the filter and execve(2)). Each problem is a Finding that names the
stage that will fail and how, so that the dry run can confirm it; what was fine goes to `checked`.

The config may be invalid (lint failed): every check reads it defensively and is skipped, with a
note, where the config is too malformed to say anything.
"""
from __future__ import annotations

import difflib
import errno
import os
import resource
import shlex
import stat
import tempfile
from typing import Callable

from ocish.diagnose.creds import X, namespace_root, process_creds
from ocish import elf
from ocish.diagnose.entrypoint import Checker, binfmt_handler
from ocish.diagnose.model import ERROR, INFO, PREFLIGHT, WARNING, Finding, Fix, append_ops
from ocish.diagnose.rootview import RootView, is_bind
from runtime import cgroups
from runtime.errors import StageError
from runtime.linux import capabilities as C
from runtime.linux import fscontext, lsm, nsfs
from runtime.linux.paths import secure_join
from runtime.spec import esc
from runtime.stages import mountopts

FILESYSTEMS = "/proc/filesystems"
CPUS_ONLINE = "/sys/devices/system/cpu/online"
NODES_ONLINE = "/sys/devices/system/node/online"
UNLIMITED = 2**64 - 1
NS_NAMES = {"net": "network", "mnt": "mount", "pid": "pid", "ipc": "ipc", "uts": "uts",
            "user": "user", "cgroup": "cgroup", "time": "time"}
NS_FILES = {v: k for k, v in NS_NAMES.items()}
# fs types mounted on a real directory only (stage mounts refuses a symlinked destination)
NO_SYMLINK_TYPES = ("proc", "sysfs")
# the sysctls a container may set (runtime/spec.py's _sysctl): the namespaces they live in
NAMESPACED_SYSCTLS = ("net.", "kernel.msg", "kernel.sem", "kernel.shm", "fs.mqueue.",
                      "kernel.domainname")
# fs types the runtime handles itself rather than passing to mount(2) as they are
RUNTIME_TYPES = ("bind", "cgroup")
# pseudo filesystems that need no device and take any source: what an unknown type may be a
# typo of, as a fix that works (a block filesystem's source would have to be a device)
DEVICELESS_TYPES = ("tmpfs", "ramfs", "proc", "sysfs", "mqueue", "devpts", "cgroup2")


class Preflight:
    def __init__(self, spec: dict, bundle: str, rootfs: str) -> None:
        self.spec, self.bundle, self.rootfs = spec, bundle, rootfs
        self.proc = _dict(spec.get("process"))
        self.linux = _dict(spec.get("linux"))
        mounts = spec.get("mounts")
        self.mounts = [m for m in mounts if isinstance(m, dict)] if isinstance(mounts, list) \
            else []
        self.view = RootView(rootfs, bundle, spec.get("mounts") or [])
        self.findings: list[Finding] = []
        self.checked: list[str] = []

    def add(self, code: str, severity: str, title: str, cause: str, stage: str, op: str,
            errno_: int, pointer: str, evidence: list[str], fix: Fix | None) -> None:
        self.findings.append(Finding(code, severity, PREFLIGHT, title, cause, stage, op, errno_,
                                     pointer, evidence, fix))

    def run(self) -> None:
        for check in (self.rootfs_reachable, self.entrypoint, self.cwd, self.mount_checks,
                      self.hooks, self.namespace_paths, self.rlimits, self.oom_score_adj,
                      self.scheduler, self.realtime_runtime, self.capabilities,
                      self.security_modules, self.sysctls, self.cpusets,
                      self.cgroups_path, self.cgroup_resources, self.proc_mounted,
                      self.seccomp, self.terminal):
            try:
                check()
            except (TypeError, KeyError, AttributeError, ValueError, IndexError) as e:
                self.checked.append(f"{check.__name__}: skipped, the config is malformed there "
                                    f"({type(e).__name__}: {e})")

    # -- the rootfs and the process ----------------------------------------------------------
    def rootfs_reachable(self) -> None:
        """In a new user namespace the runtime binds the rootfs as the namespace's root, a host
        uid with no rights over the host's files: every directory down to it must be searchable
        by that uid."""
        creds = namespace_root(self.spec)
        if creds is None:
            return
        if creds.uid is None or not creds.gids:
            self._root_unmapped(creds)
            return
        path = "/"
        for part in [p for p in self.rootfs.split("/") if p] + [""]:
            try:
                st = os.stat(path)
            except OSError:
                return
            if not creds.may(st, X):
                # A closed parent refuses the bind of the rootfs; the rootfs itself is bound
                # (its own mode is not searched), then each path resolved in it is refused.
                inside = part == ""
                self.add("userns-rootfs-access", ERROR,
                         f"the user namespace's root cannot reach the rootfs: {path} is closed",
                         f"the container's root is {creds.label}; {path} (mode "
                         f"{stat.filemode(st.st_mode)}, owner {st.st_uid}:{st.st_gid}) lets only "
                         + ("its owner and group" if st.st_mode & stat.S_IXGRP else "its owner")
                         + " in, so " + (
                             "each mount's destination, resolved inside it in the user "
                             "namespace, is refused" if inside else
                             "the bind mount of the rootfs, made inside the user namespace, "
                             "is refused"), "mounts", "resolve" if inside else "mount",
                         errno.EACCES,
                         "/root/path", [f"{path}: {stat.filemode(st.st_mode)} "
                                        f"{st.st_uid}:{st.st_gid}",
                                        f"/linux/uidMappings: {creds.uid_map}"],
                         Fix(f"let others search {path} (or give the rootfs to the mapped "
                             "root: chown -R to its host uid and gid)" if inside else
                             f"let others search {path} (or keep the bundle under a directory "
                             "that is open, or owned by the mapped root)",
                             command=f"chmod o+x {shlex.quote(path)}"))
                return
            path = os.path.join(path, part)
        self.checked.append(f"rootfs reachable by {creds.label}")

    def _root_unmapped(self, creds) -> None:
        """The runtime becomes the namespace's root (uid and gid 0) to set the mounts up."""
        from ocish.diagnose.explain import map_zero
        key = "uidMappings" if creds.uid is None else "gidMappings"
        maps = creds.uid_map if creds.uid is None else creds.gid_map
        self.add("userns-root-unmapped", ERROR, f"id 0 is not mapped in the user namespace "
                 f"(/linux/{key})", "the runtime's container side becomes the user "
                 "namespace's root (uid and gid 0) to set up the mounts, and the maps give 0 "
                 "no host id: setresuid(2)/setresgid(2) fail with EINVAL", "mounts",
                 "setresuid", errno.EINVAL, f"/linux/{key}", [f"/linux/{key}: {maps}"],
                 Fix("map container id 0 too (uid and gid)", map_zero(self.spec)))

    def entrypoint(self) -> None:
        checker = Checker(self.spec, self.view, process_creds(self.spec))
        checker.run()
        self.findings += checker.findings
        self.checked += checker.checked

    def cwd(self) -> None:
        cwd = self.proc.get("cwd")
        if not isinstance(cwd, str) or not cwd.startswith("/"):
            return
        loc = self.view.resolve(cwd)
        creds = process_creds(self.spec)
        fix_root = {"op": "replace", "path": "/process/cwd", "value": "/"}
        if loc.host is None:
            self.checked.append(f"cwd {cwd}: under /mounts/{loc.mount}, made at run time")
            return
        if loc.error == errno.ENOTDIR or (loc.exists and not os.path.isdir(loc.host)):
            # stage pivot creates a missing cwd (runc's os.MkdirAll): a file on the way fails it
            self.add("cwd-not-directory", ERROR, f"cwd {cwd} is not a directory",
                     f"{cwd} is a file in the rootfs, so creating it as a directory (mkdir(2)) "
                     "fails with ENOTDIR", "pivot", "mkdir", errno.ENOTDIR, "/process/cwd",
                     [f"{loc.host}: {_mode(loc.host)}"],
                     Fix(f"use a directory as the cwd, e.g. {os.path.dirname(cwd) or '/'}",
                         [{**fix_root, "value": os.path.dirname(loc.path) or "/"}]))
            return
        if loc.missing or loc.error:
            self.add("cwd-created", INFO, f"cwd {cwd} does not exist in the rootfs: it is created",
                     f"{loc.missing or cwd} is not in the rootfs: stage pivot creates {cwd} "
                     "(mode 0755, owned by the container's root) before anything turns "
                     "read-only, as runc and crun do", "pivot", "mkdir", 0, "/process/cwd",
                     [f"{self.rootfs}{loc.missing or cwd}: missing"], None)
            return
        # stage user enters the cwd as root first (runc's finalizeNamespace), as the user only
        # when root may not: the chdir fails only when both are refused
        root = namespace_root(self.spec)
        chain = [(cpath, host, os.stat(host)) for cpath, host in loc.dirs + [(loc.path, loc.host)]]
        root_may = root is None or all(root.may(st, X) for _, _, st in chain)
        for cpath, host, st in chain:
            if not creds.may(st, X):
                mode = f"{cpath} (mode {stat.filemode(st.st_mode)}, owner {st.st_uid}:{st.st_gid})"
                fix = Fix(f"let others search {cpath}", command=f"chmod o+x {shlex.quote(host)}")
                evidence = [f"{host}: {stat.filemode(st.st_mode)}"]
                title = f"cwd {cwd}: {cpath} is not searchable by the process's user"
                if not root_may:
                    self.add("cwd-permission", ERROR, title, f"the process runs as "
                             f"{creds.label}; {mode} refuses it and the user namespace's root "
                             "too, so chdir(2) fails with EACCES", "user", "chdir",
                             errno.EACCES, "/process/cwd", evidence, fix)
                    return
                hit = ("every path relative to the cwd ('.', a plain `ls`) fails with EACCES"
                       if cpath == loc.path else
                       f"absolute paths through {cpath} fail with EACCES")
                self.add("cwd-permission", WARNING, title, f"the runtime enters {cwd} as root "
                         "before the user switch (as runc does), so setup goes through and the "
                         f"process starts there; but it runs as {creds.label}, and {mode} "
                         f"refuses it: {hit}", "start", "", errno.EACCES, "/process/cwd",
                         evidence, fix)
                return
        self.checked.append(f"cwd {cwd}: a directory")

    # -- mounts ------------------------------------------------------------------------------
    def mount_checks(self) -> None:
        known = _filesystems()
        raw = self.spec.get("mounts") if isinstance(self.spec.get("mounts"), list) else []
        bad_before = len(self.findings)
        for i, m in enumerate(raw):
            if not isinstance(m, dict) or not isinstance(m.get("destination"), str):
                continue
            if not m["destination"].startswith("/"):
                continue  # lint's finding
            if is_bind(m):
                self._bind_source(i, m, raw[:i])
            else:
                self._fs_type(i, m, known)
            self._destination(i, m, raw[:i])
        if len(self.findings) == bad_before:
            self.checked.append(f"{len(raw)} mounts: sources, types and destinations fine")

    def _bind_source(self, i: int, m: dict, before: list) -> None:
        ptr = f"/mounts/{i}"
        source = m.get("source")
        if not isinstance(source, str) or not source:
            return
        full = source if os.path.isabs(source) else os.path.join(self.bundle, source)
        try:
            st = os.stat(full)
        except OSError as e:
            self.add("mount-source-missing", ERROR, f"the source of mount {m['destination']} "
                     f"does not exist: {source}",
                     f"bind mount /mounts/{i} takes {full} from the host, which "
                     + ("does not exist" if e.errno == errno.ENOENT else
                        os.strerror(e.errno or 0).lower()), "mounts", "stat", e.errno or 0,
                     f"{ptr}/source", [f"{full}: {os.strerror(e.errno or 0).lower()}"],
                     Fix("create the source (or remove the mount from config.json)",
                         [{"op": "remove", "path": ptr}],
                         command=f"mkdir -p {shlex.quote(full)}"))
            return
        view = RootView(self.rootfs, self.bundle, before)
        loc = view.resolve(m["destination"])
        if not loc.exists:
            return  # made by the runtime, of the source's kind
        dst = os.stat(loc.host)
        src_dir, dst_dir = stat.S_ISDIR(st.st_mode), stat.S_ISDIR(dst.st_mode)
        if src_dir == dst_dir:
            return
        if dst_dir:  # a file onto a directory
            inside = os.path.join(m["destination"], os.path.basename(full))
            self.add("mount-file-on-directory", ERROR, f"mount {m['destination']}: a file "
                     "onto a directory", f"the source {full} is a file and the destination "
                     f"{m['destination']} is a directory in the rootfs: mount(2) fails with "
                     "ENOTDIR (a bind mount needs both of the same kind)", "mounts", "mount",
                     errno.ENOTDIR, ptr, [f"{full}: a file", f"{loc.host}: a directory"],
                     Fix(f"mount the file at a file path, e.g. {inside}",
                         [{"op": "replace", "path": f"{ptr}/destination", "value": inside}]))
        else:        # a directory onto a file
            self.add("mount-directory-on-file", ERROR, f"mount {m['destination']}: a directory "
                     "onto a file", f"the source {full} is a directory and the destination "
                     f"{m['destination']} is a file in the rootfs: the runtime cannot make a "
                     "directory there (EEXIST), and mount(2) would refuse it (ENOTDIR)",
                     "mounts", "mkdir", errno.EEXIST, f"{ptr}/destination",
                     [f"{full}: a directory", f"{loc.host}: a file"],
                     Fix("mount the directory at a directory (a path the rootfs does not have "
                         "is created)", [{"op": "replace", "path": f"{ptr}/destination",
                                          "value": "/mnt/" + os.path.basename(full.rstrip("/"))}]))

    def _fs_type(self, i: int, m: dict, known: dict[str, bool]) -> None:
        ptr = f"/mounts/{i}"
        kind = m.get("type")
        if not isinstance(kind, str) or not kind or kind in RUNTIME_TYPES:
            return
        if kind not in known:
            # only a type that can take this mount's place: one the kernel has that needs no
            # device (squashfs for "nosuchfs" would fail on its source: ENOENT)
            fitting = [t for t in DEVICELESS_TYPES if t in known and not known[t]]
            close = difflib.get_close_matches(kind, fitting, 1, 0.6)
            fix = Fix(f"use {close[0]!r}", [{"op": "replace", "path": f"{ptr}/type",
                                             "value": close[0]}]) if close else \
                Fix("use a filesystem type this kernel has, or remove the mount",
                    [{"op": "remove", "path": ptr}])
            self.add("mount-unknown-type", ERROR, f"mount {m['destination']}: unknown "
                     f"filesystem type {kind!r}", f"this kernel has no filesystem {kind!r} (not "
                     f"in {FILESYSTEMS}" + ("" if _modules_dir() else ", and no modules to "
                                            "load") + "): mount(2) fails with ENODEV",
                     "mounts", "mount", errno.ENODEV, f"{ptr}/type",
                     [f"{FILESYSTEMS}: " + " ".join(sorted(known)[:40])], fix)
            return
        self._data_options(i, m, kind)
        source = m.get("source")
        if known[kind] and isinstance(source, str) and source.startswith("/") \
                and not os.path.exists(source):
            self.add("mount-device-missing", ERROR, f"mount {m['destination']}: device "
                     f"{source} does not exist", f"{kind} mounts a block device, and {source} "
                     "is not there: mount(2) fails with ENOENT", "mounts", "mount",
                     errno.ENOENT, f"{ptr}/source", [f"{source}: missing"],
                     Fix("name an existing device as the source", []))

    def _data_options(self, i: int, m: dict, kind: str) -> None:
        """The filesystem's own parser over the mount's data options (fsconfig(2), nothing
        mounted): an option it refuses makes mount(2) fail with EINVAL."""
        options = m.get("options") if isinstance(m.get("options"), list) else []
        data = [(j, o) for j, o in enumerate(options)
                if isinstance(o, str) and mountopts.parse([o]).data]
        try:
            bad = fscontext.refused_option(kind, [o for _, o in data])
        except OSError:
            return  # no such type (reported above), or not privileged: mount(2) will say
        if bad is None:
            return
        j, opt = data[bad[0]]
        ptr = f"/mounts/{i}/options/{j}"
        said = bad[2] or os.strerror(bad[1]).lower()
        self.add("mount-bad-option", ERROR, f"mount {m['destination']}: {kind} refuses the "
                 f"option {opt!r}", f"the kernel's {kind} parser refuses {opt!r} ({said}): "
                 f"mount(2) of {kind} on {m['destination']} fails with "
                 f"{errno.errorcode.get(bad[1], bad[1])}", "mounts", "mount", bad[1], ptr,
                 [f"fsconfig(2) {kind} {opt}: {said}"],
                 Fix(f"remove {opt!r} (or correct its value)", [{"op": "remove", "path": ptr}]))

    def _destination(self, i: int, m: dict, before: list) -> None:
        """A destination through a symlink in the rootfs lands where the link points (inside the
        rootfs); proc and sysfs are refused there; a loop fails the look-up; a file on the way
        (/bin/sh/x, /bin/sh a link to a file) leaves no directory to make: ENOTDIR."""
        ptr = f"/mounts/{i}/destination"
        dest = os.path.normpath(m["destination"])
        loc = RootView(self.rootfs, self.bundle, before).resolve(dest)
        if loc.error == errno.ENOTDIR:
            self.add("mount-destination-not-directory", ERROR, f"mount {dest}: {loc.path} is "
                     "not a directory", f"{loc.path} is a file in the rootfs"
                     + (" (through the symlink " + ", ".join(f"{a} -> {b}" for a, b in loc.links)
                        + ")" if loc.links else "")
                     + f", so there is no directory to make {dest} in: mkdir(2) fails with "
                     "ENOTDIR", "mounts", "mkdir", errno.ENOTDIR, ptr,
                     [f"{loc.host}: {_mode(loc.host)}"] + [_link_chain(self.rootfs, dest)]
                     if loc.links else [f"{loc.host}: {_mode(loc.host)}"],
                     Fix("mount it under a directory, e.g. /mnt/" + os.path.basename(dest),
                         [{"op": "replace", "path": ptr,
                           "value": "/mnt/" + os.path.basename(dest)}]))
            return
        try:
            resolved = secure_join(self.rootfs, dest)
        except OSError as e:
            self.add("mount-destination-loop", ERROR, f"mount {dest}: symlink loop in the "
                     "rootfs", f"resolving {dest} in the rootfs follows symlinks in a loop",
                     "mounts", "resolve", e.errno or errno.ELOOP, ptr,
                     [_link_chain(self.rootfs, dest)],
                     Fix("remove the looping symlink from the rootfs", command="rm " +
                         shlex.quote(self.rootfs.rstrip("/") + _first_link(self.rootfs, dest))))
            return
        lands = resolved[len(self.rootfs.rstrip("/")):] or "/"
        if lands == dest:
            return
        link = _first_link(self.rootfs, dest)
        if m.get("type") in NO_SYMLINK_TYPES:
            host_link = self.rootfs.rstrip("/") + link
            self.add("mount-destination-symlink", ERROR, f"mount {dest}: the destination is a "
                     "symlink", f"{link} is a symlink in the rootfs, so {m['type']} on {dest} "
                     f"would land on {lands}; the runtime refuses to mount {m['type']} anywhere "
                     "but on a real directory", "mounts", "mount", 0, ptr,
                     [f"{host_link} -> {os.readlink(host_link)}"],
                     Fix(f"replace the symlink with a directory in the rootfs",
                         command=f"rm {shlex.quote(host_link)} && mkdir {shlex.quote(host_link)}"))
            return
        self.add("mount-destination-symlink", WARNING, f"mount {dest} lands on {lands}",
                 f"{link} is a symlink in the rootfs: the mount is made on {lands} (inside the "
                 "rootfs; a symlink can never lead a mount out of it)", "mounts", "mount", 0, ptr,
                 [_link_chain(self.rootfs, dest)],
                 Fix(f"name the real path as the destination",
                     [{"op": "replace", "path": ptr, "value": lands}]))

    # -- hooks -------------------------------------------------------------------------------
    def hooks(self) -> None:
        hooks = _dict(self.spec.get("hooks"))
        n = 0
        for kind, hooklist in hooks.items():
            if not isinstance(hooklist, list):
                continue
            stage = {"prestart": "hooks", "createRuntime": "hooks",
                     "createContainer": "container-hooks"}.get(kind, "start" if
                                                               kind == "startContainer" else "")
            for i, h in enumerate(hooklist):
                path = h.get("path") if isinstance(h, dict) else None
                if not isinstance(path, str) or not path.startswith("/"):
                    continue
                n += 1
                # startContainer runs after pivot_root: its path is the container's
                host = self.view.resolve(path).host if kind == "startContainer" else path
                self._hook(kind, i, path, host, stage)
        if n:
            self.checked.append(f"{n} hook program{'s' if n > 1 else ''}: present and "
                                "executable")

    def _hook(self, kind: str, i: int, path: str, host: str | None, stage: str) -> None:
        ptr = f"/hooks/{kind}/{i}/path"
        severity = ERROR if stage else WARNING  # poststart and poststop failures only warn
        where = "in the rootfs" if kind == "startContainer" else "on the host"
        remove = Fix("install the hook program, or remove the hook from config.json",
                     [{"op": "remove", "path": f"/hooks/{kind}/{i}"}])
        if host is None or not os.path.exists(host):
            self.add("hook-missing", severity, f"{kind} hook {path} does not exist",
                     f"the hook program is not {where}: running it fails with ENOENT"
                     + ("" if stage else " (a warning: this kind of hook cannot fail the "
                        "container)"), stage or "delete", f"{kind} hook", errno.ENOENT, ptr,
                     [f"{host or path}: missing"], remove)
            return
        st = os.stat(host)
        if not stat.S_ISREG(st.st_mode) or not st.st_mode & 0o111:
            self.add("hook-not-executable", severity, f"{kind} hook {path} is not executable",
                     f"{host} is {'a directory' if stat.S_ISDIR(st.st_mode) else 'not executable'}"
                     f" (mode {stat.filemode(st.st_mode)}): running it fails with EACCES",
                     stage or "delete", f"{kind} hook", errno.EACCES, ptr,
                     [f"{host}: {stat.filemode(st.st_mode)}"],
                     Fix("make the hook executable", command=f"chmod +x {shlex.quote(host)}"))
            return
        try:
            with open(host, "rb") as f:
                head = f.read(256)
        except OSError:
            return
        if not head.startswith((b"#!", elf.MAGIC)) and binfmt_handler(head) is None:
            self.add("hook-format", severity, f"{kind} hook {path} is not a program",
                     f"{host} has no ELF header and no \"#!\" line (and no binfmt_misc "
                     "handler takes it): running it fails with ENOEXEC (exec format error); the "
                     "runtime does not fall back to /bin/sh", stage or "delete", f"{kind} hook",
                     errno.ENOEXEC, ptr, [f"{host} starts with {head[:16]!r}"],
                     Fix(f"give it a \"#!\" line (e.g. #!/bin/sh) or name a program",
                         command=f"sed -i '1i #!/bin/sh' {shlex.quote(host)}"))
            return
        if head.startswith(b"#!"):
            interp = (head[2:].split(b"\n", 1)[0].split() or [b""])[0].decode(errors="replace")
            if interp and not os.path.exists(interp if kind != "startContainer"
                                             else self.view.resolve(interp).host or ""):
                self.add("hook-interpreter", severity, f"{kind} hook {path}: interpreter "
                         f"{interp} is missing", f"the hook is a script for {interp}, which is "
                         f"not {where}: running it fails with ENOENT", stage or "delete",
                         f"{kind} hook", errno.ENOENT, ptr, [f"{host}: #!{interp}"],
                         Fix(f"install {interp} or change the hook's \"#!\" line"))

    # -- the host ----------------------------------------------------------------------------
    def namespace_paths(self) -> None:
        for i, ns in enumerate(self.linux.get("namespaces") or []):
            if not isinstance(ns, dict) or not isinstance(ns.get("path"), str):
                continue
            want, path = ns.get("type"), ns["path"]
            got = ns_type(path)
            if got is None or got == want:
                if got == want:
                    self.checked.append(f"/linux/namespaces/{i}: {path} is a {want} namespace")
                continue
            ptr = f"/linux/namespaces/{i}/path"
            proc_form = path.rsplit("/", 1)
            fix = Fix(f"name a {want} namespace file")
            if len(proc_form) == 2 and proc_form[0].startswith("/proc/") and \
                    proc_form[0].endswith("/ns") and want in NS_FILES:
                right = f"{proc_form[0]}/{NS_FILES[want]}"
                fix = Fix(f"use the process's {want} namespace: {right}",
                          [{"op": "replace", "path": ptr, "value": right}])
            what = "not a namespace file" if got == "" else \
                f"{'an' if got[0] in 'aeiou' else 'a'} {got} namespace"
            self.add("namespace-path-type", ERROR, f"/linux/namespaces/{i}: {path} is {what}, "
                     f"not a {want} namespace", f"the entry asks to join a {want} namespace, but "
                     f"{path} is {what}: setns(2) fails with EINVAL", "unshare", "setns",
                     errno.EINVAL, ptr, [f"{path}: {what}"], fix)

    def rlimits(self) -> None:
        held = _own_caps()
        can_raise = "CAP_SYS_RESOURCE" in held
        nr_open = _read_int("/proc/sys/fs/nr_open")
        for i, r in enumerate(self.proc.get("rlimits") or []):
            name = r.get("type") if isinstance(r, dict) else None
            res = getattr(resource, name, None) if isinstance(name, str) and \
                name.startswith("RLIMIT_") else None
            hard = r.get("hard") if isinstance(r, dict) else None
            if res is None or not isinstance(hard, int):
                continue
            if name == "RLIMIT_NOFILE":
                self._nofile_floor(i, r.get("soft") if isinstance(r.get("soft"), int) else hard,
                                   hard)
            our_hard = _limit(resource.getrlimit(res)[1])
            ceiling = UNLIMITED if can_raise else our_hard
            if name == "RLIMIT_NOFILE" and nr_open:  # the kernel's cap, even for the privileged
                ceiling = min(ceiling, nr_open)
            if _limit(hard) <= ceiling:
                continue
            soft = r.get("soft") if isinstance(r.get("soft"), int) else hard
            ptr = f"/process/rlimits/{i}"
            why = (f"the runtime's own hard limit is {ceiling} and it lacks CAP_SYS_RESOURCE "
                   "(not in this host's bounding set), so it can lower the limit but not raise "
                   "it" if not can_raise else f"fs.nr_open is {nr_open}")
            self.add("rlimit-above-host", ERROR, f"{name} hard limit {hard} is above what this "
                     f"host allows ({ceiling})", f"setrlimit(2) of {name} to {hard} fails with "
                     f"EPERM: {why}", "process", "setrlimit", errno.EPERM, ptr,
                     [f"{name}: asked hard {hard}, runtime's hard {our_hard}",
                      f"CAP_SYS_RESOURCE {'held' if can_raise else 'not held'}"],
                     Fix(f"lower the limit to {ceiling}",
                         [{"op": "replace", "path": f"{ptr}/hard", "value": ceiling},
                          {"op": "replace", "path": f"{ptr}/soft", "value": min(soft, ceiling)}]))

    def _nofile_floor(self, i: int, soft: int, hard: int) -> None:
        """The runtime's own last open, exec.fifo's, happens under the config's RLIMIT_NOFILE:
        below Exec.MIN_NOFILE it fails with EMFILE and create fails (runc 1.1.5 fails create
        too, below 7: "error closing exec fds: open /proc/self/fd: too many open files")."""
        from runtime.stages.exec import Exec
        if _limit(soft) >= Exec.MIN_NOFILE:
            return
        ptr = f"/process/rlimits/{i}"
        self.add("rlimit-nofile-too-low", ERROR, f"RLIMIT_NOFILE soft limit {soft} leaves the "
                 "runtime no file descriptor for its last open",
                 f"when `create` hands over, stdio and the runtime's own descriptors are open: "
                 f"opening exec.fifo needs descriptor number {Exec.MIN_NOFILE - 1}, which a "
                 f"limit of {soft} refuses with EMFILE (--preserve-fds needs more)",
                 "exec", "openat", errno.EMFILE, ptr,
                 [f"RLIMIT_NOFILE: soft {soft}, the runtime needs {Exec.MIN_NOFILE}"],
                 Fix(f"raise the soft limit to {Exec.MIN_NOFILE} or more (the program's own "
                     "needs come on top)",
                     [{"op": "replace", "path": f"{ptr}/soft", "value": Exec.MIN_NOFILE}]
                     + ([{"op": "replace", "path": f"{ptr}/hard", "value": Exec.MIN_NOFILE}]
                        if _limit(hard) < Exec.MIN_NOFILE else [])))

    def oom_score_adj(self) -> None:
        """proc(5): a process without CAP_SYS_RESOURCE cannot lower its oom_score_adj below
        the minimum it inherited (the runtime's own): the container side's write fails with
        EACCES, as runc's does. Tried on this process (and put back): exact."""
        value = self.proc.get("oomScoreAdj")
        if type(value) is not int or "CAP_SYS_RESOURCE" in _own_caps():
            return
        own = _read_int("/proc/self/oom_score_adj")
        if own is None or value >= own or _may_set_oom_score_adj(value, own):
            self.checked.append(f"oomScoreAdj {value}: settable by the runtime")
            return
        self.add("oom-score-adj", ERROR, f"oomScoreAdj {value} is below what the runtime may "
                 "set", f"lowering oom_score_adj below the runtime's own ({own}) needs "
                 "CAP_SYS_RESOURCE, which this host's bounding set lacks: the write of "
                 "/proc/self/oom_score_adj fails with EACCES (runc fails the same)", "process",
                 "write", errno.EACCES, "/process/oomScoreAdj",
                 [f"runtime's oom_score_adj: {own}", "CAP_SYS_RESOURCE not held"],
                 Fix(f"use {own} or more (or remove it)",
                     [{"op": "replace", "path": "/process/oomScoreAdj", "value": own}]))

    def scheduler(self) -> None:
        """A realtime policy (SCHED_FIFO, SCHED_RR) needs CAP_SYS_NICE and, where the kernel
        groups realtime time by cgroup (cpu.rt_runtime_us of a v1 cpu hierarchy, with realtime
        bandwidth on), realtime runtime in the container's cgroup, which a new one does not
        have: sched_setattr(2) fails with EPERM otherwise (kernel: __sched_setscheduler)."""
        sch = _dict(self.proc.get("scheduler"))
        policy = sch.get("policy")
        if policy not in ("SCHED_FIFO", "SCHED_RR"):
            return
        ptr = "/process/scheduler/policy"
        other = [{"op": "replace", "path": "/process/scheduler",
                  "value": {**{k: v for k, v in sch.items() if k != "priority"},
                            "policy": "SCHED_OTHER"}}]
        if "CAP_SYS_NICE" not in _own_caps():
            self.add("scheduler-realtime", ERROR, f"{policy} needs CAP_SYS_NICE",
                     "the runtime does not hold CAP_SYS_NICE: sched_setattr(2) fails with "
                     "EPERM", "attributes", "sched_setattr", errno.EPERM, ptr,
                     ["CAP_SYS_NICE not held"], Fix("use SCHED_OTHER", other))
            return
        cpu = _rt_group_cpu(self.linux.get("cgroupsPath"))
        runtime = _dict(_dict(self.linux.get("resources")).get("cpu")).get("realtimeRuntime")
        if cpu is None or (type(runtime) is int and runtime > 0):
            self.checked.append(f"scheduler {policy}: realtime time available")
            return
        self.add("scheduler-realtime", ERROR, f"{policy} needs realtime time in the container's "
                 "cgroup", "this kernel groups realtime time by cgroup (cpu.rt_runtime_us) and "
                 "the container's new cgroup gets none unless "
                 "/linux/resources/cpu/realtimeRuntime gives it some (its parent must have that "
                 "much): sched_setattr(2) fails with EPERM (runc fails the same)", "attributes",
                 "sched_setattr", errno.EPERM, ptr,
                 [f"{cpu}/cpu.rt_runtime_us: {_read(cpu + '/cpu.rt_runtime_us')}",
                  f"kernel.sched_rt_runtime_us: {_read('/proc/sys/kernel/sched_rt_runtime_us')}",
                  "/linux/resources/cpu/realtimeRuntime: not set"],
                 Fix("use SCHED_OTHER (or give the container's cgroup, and its parent, realtime "
                     "runtime)", other))

    def realtime_runtime(self) -> None:
        """cpu.rt_runtime_us of a new v1 cpu cgroup: the kernel (tg_rt_schedulable) refuses
        with EINVAL a runtime its parent cannot give (the children's runtime/period
        ratios may not add up to more than the parent's), and a parent the runtime makes (the
        default "ocish" included, until something gives it some) has none: 0. runc 1.1.5 fails
        the same (it writes the value, as stage cgroup does). Read from the parent."""
        cpu = _dict(_dict(self.linux.get("resources")).get("cpu"))
        want = cpu.get("realtimeRuntime")
        if type(want) is not int or want <= 0:
            return
        path = self.linux.get("cgroupsPath")
        if _read("/proc/sys/kernel/sched_rt_runtime_us") in (None, "-1"):
            return
        try:
            own = cgroups.open_manager(path if isinstance(path, str) and path else None,
                                       "lint").paths().get("cpu")
        except StageError:
            return  # cgroups_path() reports it
        if own is None or not os.path.exists(os.path.join(_existing(own), "cpu.rt_runtime_us")):
            return
        period = cpu.get("realtimePeriod") if type(cpu.get("realtimePeriod")) is int and \
            cpu.get("realtimePeriod") > 0 else _read_int("/proc/sys/kernel/sched_rt_period_us")
        parent = os.path.dirname(own)
        if os.path.isdir(parent):
            p_runtime = _read_int(f"{parent}/cpu.rt_runtime_us")
            p_period = _read_int(f"{parent}/cpu.rt_period_us")
            if p_runtime is None or p_runtime < 0 or not p_period or not period:
                return
            given = sum(_rt_ratio(os.path.join(parent, c)) for c in os.listdir(parent)
                        if os.path.isdir(os.path.join(parent, c))
                        and os.path.join(parent, c) != own)
            free = p_runtime / p_period - given
            evidence = [f"{parent}/cpu.rt_runtime_us: {p_runtime} (period {p_period})"]
        else:
            free, p_runtime = 0.0, 0
            evidence = [f"{parent}: made by the runtime, with cpu.rt_runtime_us 0"]
        if want / period <= free + 1e-12:
            self.checked.append(f"realtimeRuntime {want}: the parent cgroup has room for it")
            return
        ptr = "/linux/resources/cpu/realtimeRuntime"
        self.add("realtime-runtime", ERROR, f"realtimeRuntime {want} is more than the parent "
                 f"cgroup can give ({int(free * period)} of {period} us)",
                 f"the kernel lets a cgroup's children have no more realtime time than it has "
                 f"itself: {parent} has {p_runtime} us per period"
                 + (f", and its other children use {round(given * period)}" if
                    os.path.isdir(parent) and given else "")
                 + ", so writing cpu.rt_runtime_us fails with EINVAL (runc fails the same)",
                 "cgroup", "write", errno.EINVAL, ptr, evidence,
                 Fix("remove it (or first give the parent cgroup, and each of its ancestors, "
                     "realtime runtime in cpu.rt_runtime_us)", [{"op": "remove", "path": ptr}]))

    def capabilities(self) -> None:
        caps = _dict(self.proc.get("capabilities"))
        held = _own_caps()
        want = {s: [c for c in caps.get(s) or [] if isinstance(c, str)] for s in C.SETS}
        missing = [c for c in want["permitted"] if c in C.NUMBERS and c not in held]
        eff_only = [c for c in want["effective"] if c not in want["permitted"]]
        if missing:
            names = sorted(set(missing))
            self.add("capability-not-held", ERROR, f"the runtime cannot grant "
                     f"{', '.join(names)}", f"{', '.join(names)} is not held by the runtime "
                     "(this host's bounding set lacks it), so capset(2) cannot put it in the "
                     "container's permitted set: EPERM", "caps", "capset", errno.EPERM,
                     f"/process/capabilities/permitted/{want['permitted'].index(names[0])}",
                     [f"runtime's permitted set lacks: {', '.join(names)}"],
                     Fix("remove it from the capability sets", _remove_caps(caps, set(names))))
        elif eff_only:
            self.add("capability-effective-not-permitted", ERROR, f"effective capabilities "
                     f"not permitted: {', '.join(eff_only)}", "every effective capability must "
                     "also be permitted: capset(2) fails with EPERM", "caps", "capset",
                     errno.EPERM, f"/process/capabilities/effective/"
                                  f"{want['effective'].index(eff_only[0])}",
                     [f"permitted: {', '.join(want['permitted']) or 'none'}"],
                     Fix("add them to the permitted set", append_ops(
                         self.spec, "/process/capabilities/permitted", *eff_only)))
        else:
            self.checked.append("capabilities: all held by the runtime")

    def security_modules(self) -> None:
        wants = [("apparmor", "apparmorProfile", self.proc, "/process/apparmorProfile"),
                 ("selinux", "selinuxLabel", self.proc, "/process/selinuxLabel"),
                 ("selinux", "mountLabel", self.linux, "/linux/mountLabel")]
        for module, key, where, ptr in wants:
            value = where.get(key)
            if not value:
                continue
            ok, evidence = lsm.enabled(module)
            if ok:
                self.checked.append(f"{key}: {lsm.NAMES[module]} is enabled")
                continue
            self.add("lsm-not-enabled", ERROR, f"{key} {value!r} needs {lsm.NAMES[module]}, "
                     "which this host does not run", "the config asks for "
                     + ("an AppArmor profile" if module == "apparmor" else "a SELinux label")
                     + f", but the kernel has no "
                     f"{lsm.NAMES[module]}: the runtime refuses rather than run the container "
                     "unconfined", "lsm", key, 0, ptr, [evidence],
                     Fix(f"remove {ptr} on hosts without {lsm.NAMES[module]}",
                         [{"op": "remove", "path": ptr}]))

    def sysctls(self) -> None:
        sysctls = _dict(self.linux.get("sysctl"))
        self._net_sysctls([k for k in sysctls if isinstance(k, str) and k.startswith("net.")])
        self._sysctl_values(sysctls)
        for key, value in sysctls.items():
            path = "/proc/sys/" + key.replace(".", "/")
            if os.path.exists(path):
                continue
            ptr = "/linux/sysctl/" + esc(key)
            here = [os.path.join(d, f)[len("/proc/sys/"):].replace("/", ".")
                    for d, _, files in os.walk(os.path.dirname(path)) for f in files][:2000] \
                if os.path.isdir(os.path.dirname(path)) else []
            close = difflib.get_close_matches(key, here, 1, 0.8)
            self.add("sysctl-unknown", ERROR, f"sysctl {key} does not exist on this kernel",
                     f"{path} is not there: writing it fails with ENOENT", "process", "write",
                     errno.ENOENT, ptr, [f"{path}: missing"],
                     Fix(f"did you mean {close[0]}?" if close else "remove it",
                         [{"op": "remove", "path": ptr}] + (
                             [{"op": "add", "path": "/linux/sysctl/" + esc(close[0]),
                               "value": value}] if close else [])))

    def _sysctl_values(self, sysctls: dict) -> None:
        """Each namespaced sysctl's value written for real in throwaway namespaces of its kind
        (new network, ipc and uts namespaces of a child process, gone with it): the kernel's
        own handler judges it (a word for an integer sysctl is EINVAL, as is a value out of
        range for some)."""
        keys = {k: v for k, v in sysctls.items() if isinstance(k, str) and isinstance(v, str)
                and k.replace("/", ".").startswith(NAMESPACED_SYSCTLS)
                and os.path.exists("/proc/sys/" + k.replace(".", "/"))}
        if not keys:
            return
        try:
            refused = _refused_sysctls(keys)
        except OSError as e:
            self.checked.append(f"sysctl values: not checked ({os.strerror(e.errno or 0).lower()})")
            return
        for key, (err, default) in refused.items():
            if err in (errno.EACCES, errno.EPERM, errno.ENOENT):
                continue  # read-only in a namespace (_net_sysctls says so), or missing
            ptr = "/linux/sysctl/" + esc(key)
            self.add("sysctl-value", ERROR, f"sysctl {key}: the kernel refuses the value "
                     f"{keys[key]!r}", f"writing {keys[key]!r} to /proc/sys/"
                     f"{key.replace('.', '/')} fails with {errno.errorcode.get(err, err)} "
                     f"({os.strerror(err).lower()}): the kernel's handler for it does not take "
                     "that value (an integer sysctl takes only numbers)", "process", "write",
                     err, ptr, [f"written in a new namespace: {os.strerror(err).lower()}",
                                f"its value there: {default!r}"],
                     Fix(f"use a value the kernel takes, e.g. its default {default!r}",
                         [{"op": "replace", "path": ptr, "value": default}]) if default else
                     Fix("use a value the kernel takes, or remove it",
                         [{"op": "remove", "path": ptr}]))

    def _net_sysctls(self, keys: list[str]) -> None:
        """A net.* sysctl that is not kept per network namespace (net.core.rmem_max ...) is
        read-only (0444) in any but the host's: the write fails with EACCES. Looked at in a new
        network namespace, or the one the config joins."""
        join = next((n.get("path") for n in self.linux.get("namespaces") or []
                     if isinstance(n, dict) and n.get("type") == "network"), None)
        if not keys or not (join is None or isinstance(join, str)):
            return
        if not any(isinstance(n, dict) and n.get("type") == "network"
                   for n in self.linux.get("namespaces") or []):
            return  # spec.py's finding: it needs a network namespace of its own
        try:
            read_only = _read_only_sysctls(keys, join)
        except OSError as e:
            self.checked.append(f"net sysctls: not checked ({os.strerror(e.errno or 0).lower()})")
            return
        for key in keys:
            if key not in read_only:
                continue
            ptr = "/linux/sysctl/" + esc(key)
            self.add("sysctl-not-per-netns", ERROR, f"sysctl {key} is not kept per network "
                     "namespace", f"{key} is one of the host's, not the container network "
                     "namespace's: the kernel shows it read-only (0444) there, so the write "
                     "fails with EACCES", "process", "write", errno.EACCES, ptr,
                     [f"/proc/sys/{key.replace('.', '/')} in a new network namespace: "
                      "read-only"],
                     Fix(f"remove it (set it on the host, if the host should have it)",
                         [{"op": "remove", "path": ptr}]))

    def cpusets(self) -> None:
        """cpuset.cpus and cpuset.mems take only CPUs and memory nodes that are online."""
        cpu = _dict(_dict(self.linux.get("resources")).get("cpu"))
        for key, online_file, what in (("cpus", CPUS_ONLINE, "CPU"),
                                       ("mems", NODES_ONLINE, "memory node")):
            value = cpu.get(key)
            if not isinstance(value, str) or not value.strip():
                continue
            want, online = _id_list(value), _id_list(_read(online_file) or "0")
            if want is None or online is None or want <= online:
                continue
            ptr = f"/linux/resources/cpu/{key}"
            extra = ",".join(map(str, sorted(want - online)))
            self.add("cpuset-offline", ERROR, f"{key} {value!r} names {what}s this host does "
                     f"not have online ({extra})", f"cpuset.{key} takes only {what}s that are "
                     f"online ({_read(online_file) or '0'}): the write fails with EINVAL",
                     "cgroup", "write", errno.EINVAL, ptr,
                     [f"{online_file}: {_read(online_file) or '0 (no file: one node)'}"],
                     Fix(f"use {what}s of {_read(online_file) or '0'}",
                         [{"op": "replace", "path": ptr,
                           "value": _read(online_file) or "0"}]))

    def cgroups_path(self) -> None:
        """The runtime's own reading of /linux/cgroupsPath (runtime.cgroups.open_manager, which
        makes nothing): the systemd form, or a path that names no cgroup."""
        path = self.linux.get("cgroupsPath")
        if not isinstance(path, str) or not path:
            return
        try:
            cgroups.open_manager(path, "lint")
        except StageError as e:
            self.add("cgroups-path", ERROR, f"cgroupsPath {path!r}: {e.detail or e}",
                     e.detail or str(e), "cgroup", e.op, e.errno, e.pointer or
                     "/linux/cgroupsPath", [f"/linux/cgroupsPath: {path!r}"],
                     Fix("use a cgroupfs path like \"/ocish/<id>\"", [{
                         "op": "remove", "path": "/linux/cgroupsPath"}]))

    def cgroup_resources(self) -> None:
        """Stage cgroup's own driver (runtime/cgroups) applies /linux/resources, one section at
        a time, to an empty mirror of this host's cgroup files (v1: a directory per mounted
        controller with the files of the container's nearest existing cgroup): a file it would
        write that the mirror lacks is one the kernel lacks: a controller that is not mounted,
        cgroup v2 settings on a v1 host, a huge page size the kernel does not have. The values
        themselves are the kernel's to judge: cpusets and devices are checked apart."""
        res = self.linux.get("resources")
        path = self.linux.get("cgroupsPath")
        if not isinstance(res, dict) or not res:
            return
        try:
            real = cgroups.open_manager(path if isinstance(path, str) and path else None, "lint")
        except StageError:
            return  # cgroups_path() reports it
        if real.version != 1:
            return  # a v2 child's files depend on the parent's subtree_control: not mirrored
        bad = len(self.findings)
        with tempfile.TemporaryDirectory(prefix="ocish-lint-cgroup-") as mirror:
            paths, unknown = {}, set()
            for ctrl, d in real.paths().items():
                paths[ctrl] = os.path.join(mirror, ctrl.replace("=", "-"))
                os.mkdir(paths[ctrl])
                src = _model_cgroup(d)
                if src is None:
                    unknown.add(paths[ctrl])
                    continue
                for name in os.listdir(src):
                    if os.path.isfile(os.path.join(src, name)):
                        open(os.path.join(paths[ctrl], name), "w").close()
            probe = type(real)(paths, real.root)
            for key, value in res.items():
                # each setting of a section alone (each fails alone), the lists whole
                for part in ([{sub: v} for sub, v in value.items()] if
                             isinstance(value, dict) and key != "rdma" else [value]):
                    try:
                        probe.apply({key: part})
                    except StageError as e:
                        if os.path.dirname(e.target) not in unknown:
                            self._cgroup_finding(e, mirror, real.paths())
        if len(self.findings) == bad:
            self.checked.append("cgroup resources: every file the driver writes exists here")
        self._block_devices(res)

    def _cgroup_finding(self, e: StageError, mirror: str, real: dict[str, str]) -> None:
        ptr = e.pointer or "/linux/resources"
        if e.target.startswith(mirror + "/"):  # a file of the mirror: the kernel lacks it
            ctrl, _, name = e.target[len(mirror) + 1:].partition("/")
            where = _existing(real.get(ctrl.replace("-", "="), ""))
            title = f"this kernel has no cgroup file {name}"
            cause = (f"stage cgroup writes {ptr} to {name}, which {where} does not have (the "
                     "controller lacks this setting here): the write fails with ENOENT")
            evidence = [f"{where}: no {name}"]
        else:
            title = f"{e.target}: {e.detail}" if e.target else e.detail
            cause, evidence = f"stage cgroup cannot apply {ptr}: {title}", []
        self.add("cgroup-unsupported", ERROR, title, cause, "cgroup", e.op, e.errno, ptr,
                 evidence, Fix(f"remove {_unsupported_setting(ptr, self.linux)} on this host",
                               [{"op": "remove",
                                 "path": _unsupported_setting(ptr, self.linux)}]))

    def _block_devices(self, res: dict) -> None:
        """blkio rules name block devices by major:minor: one the host lacks is refused."""
        bio = _dict(res.get("blockIO"))
        for key in ("weightDevice", "throttleReadBpsDevice", "throttleWriteBpsDevice",
                    "throttleReadIOPSDevice", "throttleWriteIOPSDevice"):
            for i, dev in enumerate(bio.get(key) if isinstance(bio.get(key), list) else []):
                major, minor = _dict(dev).get("major"), _dict(dev).get("minor")
                if not isinstance(major, int) or not isinstance(minor, int):
                    continue
                if os.path.exists(f"/sys/dev/block/{major}:{minor}"):
                    continue
                ptr = f"/linux/resources/blockIO/{key}/{i}"
                self.add("blkio-device-missing", ERROR, f"block device {major}:{minor} does not "
                         "exist", f"the blkio controller takes rules for existing block devices "
                         f"only: writing the rule for {major}:{minor} fails with ENODEV",
                         "cgroup", "write", errno.ENODEV, ptr,
                         [f"/sys/dev/block/{major}:{minor}: missing"],
                         Fix("name a block device of this host (ls /sys/dev/block)",
                             [{"op": "remove", "path": ptr}]))

    def proc_mounted(self) -> None:
        """Without a proc (or a bind of one) on /proc the container still starts (the runtime
        reaches exec.fifo through a procfs handle of its own, as crun does; runc 1.1.5 fails),
        but what reads /proc inside (ps, top, a shell's $$ lookups) finds nothing: an info."""
        if any(os.path.normpath(m["destination"]) == "/proc" and m.get("type") in ("proc", "bind")
               for m in self.mounts if isinstance(m.get("destination"), str)):
            return
        self.add("no-proc", INFO, "no proc filesystem on /proc", "no mount puts a proc "
                 "filesystem on /proc: the container starts, but programs that read /proc (ps, "
                 "top, pidof) find nothing there", "", "", 0, "/mounts",
                 ["/mounts: no proc on /proc"],
                 Fix("mount proc on /proc, if the container's programs need it",
                     proc_mount_ops(self.spec)))

    def seccomp(self) -> None:
        sc = self.linux.get("seccomp")
        if not isinstance(sc, dict):
            return
        from ocish.diagnose import seccomp_check
        self.findings += seccomp_check.findings(sc, self.proc)
        if not any(f.code.startswith("seccomp") for f in self.findings):
            self.checked.append("seccomp: the profile lets the runtime reach execve(2)")

    def terminal(self) -> None:
        if self.proc.get("terminal") is True:
            self.add("terminal", INFO, "process.terminal is true", "`create` needs a "
                     "--console-socket for it (podman, containerd and Docker pass one); the dry "
                     "run gives the process plain files instead, to read its output", "terminal",
                     "", 0, "/process/terminal", [], None)


def ns_type(path: str) -> str | None:
    """The namespace kind of a file ("network", "mount" ...) by ioctl(NS_GET_NSTYPE), "" when it
    is no namespace file, None when it cannot be opened (lint reports that)."""
    from runtime.stages.unshare import FLAGS
    try:
        flag = nsfs.ns_type(path)
    except OSError:
        return None
    return next((kind for kind, f in FLAGS.items() if f == flag), "")


def _limit(value: int) -> int:
    """An rlimit as a number: unlimited (Python's RLIM_INFINITY, -1; config.json's 2^64-1) is
    UNLIMITED."""
    return UNLIMITED if value < 0 or value >= UNLIMITED else value


def _remove_caps(caps: dict, names: set[str]) -> list[dict]:
    """JSON patch operations removing `names` from every set (highest index first per set)."""
    ops = []
    for s in C.SETS:
        entries = caps.get(s) or []
        for j in range(len(entries) - 1, -1, -1):
            if entries[j] in names:
                ops.append({"op": "remove", "path": f"/process/capabilities/{s}/{j}"})
    return ops


def proc_mount_ops(spec: dict) -> list[dict]:
    """Patch operations mounting proc on /proc, with the mount namespace that mounts need
    (runtime/spec.py) when the config has none."""
    ns = ((spec.get("linux") or {}).get("namespaces") if isinstance(spec.get("linux"), dict)
          else None) or []
    ops = []
    if not any(isinstance(n, dict) and n.get("type") == "mount" for n in ns):
        ops += append_ops(spec, "/linux/namespaces", {"type": "mount"})
    return ops + append_ops(spec, "/mounts", {"destination": "/proc", "type": "proc",
                                              "source": "proc"})


def _may_set_oom_score_adj(value: int, own: int) -> bool:
    """Whether this process may lower its oom_score_adj to `value` (then put back to `own`)."""
    try:
        fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return True
    try:
        os.write(fd, str(value).encode())
    except OSError:
        return False
    else:
        os.write(fd, str(own).encode())
        return True
    finally:
        os.close(fd)


def _rt_group_cpu(cgroups_path) -> str | None:
    """The v1 cpu hierarchy the container's cgroup will be in, when the kernel groups realtime
    time by cgroup there (cpu.rt_runtime_us, realtime bandwidth on); else None."""
    if _read("/proc/sys/kernel/sched_rt_runtime_us") in (None, "-1"):
        return None
    try:
        paths = cgroups.open_manager(cgroups_path if isinstance(cgroups_path, str) else None,
                                     "lint").paths()
    except StageError:
        return None
    cpu = paths.get("cpu")
    if cpu is None:
        return None
    d = cpu
    while d != "/" and not os.path.isdir(d):
        d = os.path.dirname(d)  # the nearest cgroup that exists: the files are alike
    return d if os.path.exists(os.path.join(d, "cpu.rt_runtime_us")) else None


def _unsupported_setting(ptr: str, linux: dict) -> str:
    """What to remove for a cgroup setting the host lacks at `ptr`: the whole setting (a list
    of rules, /linux/resources/blockIO/weightDevice, not its first item: the driver stops at
    the first item and the file is missing for all of them), and the whole section when that
    leaves it empty or without its required member (pids.limit)."""
    tokens = ptr.split("/")[1:]
    if len(tokens) < 3 or tokens[:2] != ["linux", "resources"]:
        return ptr
    section = "/" + "/".join(tokens[:3])
    value = _dict(linux.get("resources")).get(tokens[2])
    if not isinstance(value, dict) or len(tokens) < 4 or tokens[2] == "pids" \
            or set(value) <= {tokens[3]}:
        return section
    return section + "/" + tokens[3]


def _rt_ratio(cgroup: str) -> float:
    """A v1 cpu cgroup's realtime runtime per period (0 when it has none or cannot be read)."""
    runtime, period = _read_int(f"{cgroup}/cpu.rt_runtime_us"), \
        _read_int(f"{cgroup}/cpu.rt_period_us")
    return runtime / period if runtime and runtime > 0 and period else 0.0


def _in_namespaces(enter: Callable[[], None], look: Callable[[], list[str]], what: str
                   ) -> list[str]:
    """The lines `look()` returns in a child process that first runs `enter()` (unshare or
    setns: namespaces that end with the child, so this process keeps its own). Raises OSError
    (EPERM, "cannot WHAT") when the child fails."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: enter, look, answer, _exit
        code = 1
        try:
            os.close(r)
            enter()
            os.write(w, "\n".join(look()).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    try:
        chunks = []
        while chunk := os.read(r, 65536):
            chunks.append(chunk)
    finally:
        os.close(r)
        _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise OSError(errno.EPERM, f"cannot {what}")
    return [line for line in b"".join(chunks).decode().split("\n") if line]


def _refused_sysctls(values: dict[str, str]) -> dict[str, tuple[int, str]]:
    """{key: (errno, the value it had)} for the sysctls whose value the kernel refuses, each
    written (as stage process writes it: one write(2)) by a child process in new network, ipc
    and uts namespaces, which end with it. Raises OSError when the namespaces cannot be made."""
    from runtime.linux import syscalls as S

    def look() -> list[str]:
        out = []
        for key, value in values.items():
            path, before = "/proc/sys/" + key.replace(".", "/"), ""
            try:
                with open(path) as f:
                    before = f.read().strip()
                S.write_file(path, value)
            except OSError as e:
                out.append(f"{key}\t{e.errno or 0}\t{before}")
        return out
    found = {}
    for line in _in_namespaces(lambda: S.unshare(S.CLONE_NEWNET | S.CLONE_NEWIPC
                                                 | S.CLONE_NEWUTS), look,
                               "make new namespaces"):
        key, err, before = line.split("\t", 2)
        found[key] = (int(err), before)
    return found


def _read_only_sysctls(keys: list[str], join: str | None) -> set[str]:
    """Of the net.* sysctls `keys`, those that exist but cannot be written in a new network
    namespace (or the one at `join`): looked at by a child process that enters it."""
    from runtime.linux import syscalls as S

    def enter() -> None:
        if join:
            S.setns(os.open(join, os.O_RDONLY | os.O_CLOEXEC), S.CLONE_NEWNET)
        else:
            S.unshare(S.CLONE_NEWNET)

    def look() -> list[str]:
        paths = {k: "/proc/sys/" + k.replace(".", "/") for k in keys}
        return [k for k, p in paths.items() if os.path.exists(p) and not os.access(p, os.W_OK)]
    return set(_in_namespaces(enter, look, "enter a network namespace"))


def _own_caps() -> set[str]:
    """The capabilities this process may grant (its permitted set)."""
    _, permitted, _ = C.capget()
    return set(C.names(permitted))


def _filesystems() -> dict[str, bool]:
    """{fs type: needs a block device} from /proc/filesystems."""
    out = {}
    try:
        with open(FILESYSTEMS) as f:
            for line in f:
                parts = line.split()
                if parts:
                    out[parts[-1]] = len(parts) == 1
    except OSError:
        pass
    return out


def _modules_dir() -> bool:
    return os.path.isdir(f"/lib/modules/{os.uname().release}")


def _first_link(rootfs: str, dest: str) -> str:
    """The first component of `dest` that is a symlink in the rootfs ("" when none)."""
    cur = ""
    for part in [p for p in dest.split("/") if p]:
        cur += "/" + part
        if os.path.islink(rootfs.rstrip("/") + cur):
            return cur
    return ""


def _link_chain(rootfs: str, dest: str) -> str:
    link = _first_link(rootfs, dest)
    if not link:
        return dest
    return f"{link} -> {os.readlink(rootfs.rstrip('/') + link)} (in the rootfs)"


def _mode(path: str) -> str:
    try:
        return stat.filemode(os.stat(path).st_mode)
    except OSError as e:
        return os.strerror(e.errno or 0).lower()


def _read_int(path: str) -> int | None:
    try:
        return int(_read(path) or "")
    except ValueError:
        return None


def _model_cgroup(path: str) -> str | None:
    """The cgroup whose files a new cgroup at `path` will have: `path` or its nearest existing
    ancestor, unless that is its hierarchy's root, which lacks the limit files every child
    has (pids.max, blkio.weight ...): then any child of the root, and None when it has none
    (nothing here shows what a child would have)."""
    src = _existing(path)
    if os.path.exists(os.path.join(os.path.dirname(src), "cgroup.procs")):
        return src  # a cgroup below the root
    try:
        return next((e.path for e in os.scandir(src) if e.is_dir(follow_symlinks=False)), None)
    except OSError:
        return None


def _existing(path: str) -> str:
    """`path`, or its nearest ancestor that exists."""
    while not os.path.isdir(path) and path not in ("", "/"):
        path = os.path.dirname(path)
    return path


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _id_list(text: str) -> set[int] | None:
    """A cpu or node list ("0-2,4") as a set; None when it does not parse."""
    out: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            return None
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def _dict(v) -> dict:
    return v if isinstance(v, dict) else {}
