"""Preflight of the entrypoint: can execve(2) run /process/args/0 inside the rootfs?

What is checked, in the order the kernel and the loader meet it:

    look-up          PATH search as stage exec does it (Go's exec.LookPath, runc): a name with a
                     "/" is used as it is; missing, a directory, no x bit, hidden by a mount
    permissions      x on the file and search on every directory, for the process's uid and gids
                     (mapped to the host's in a user namespace) and its effective capabilities
    format           ELF: class and machine against this kernel (and binfmt_misc handlers),
                     PT_INTERP (the dynamic loader) present, runnable and of the same machine,
                     every DT_NEEDED library found where ld.so looks, transitively;
                     "#!": the interpreter line (a CR of DOS line ends, a missing interpreter,
                     which execve reports as ENOENT of the script itself), recursively;
                     anything else: ENOEXEC
"""
from __future__ import annotations

import difflib
import errno
import glob
import os
import shlex
import shutil
import stat

from ocish import elf
from ocish.diagnose.creds import X, Creds
from ocish.diagnose.model import ERROR, PREFLIGHT, WARNING, Finding, Fix
from ocish.diagnose.rootview import Location, RootView
from runtime.stages.exec import env_path

BINPRM_BUF_SIZE = 256   # bytes of a file the kernel reads to pick its format (5.1+)
MAX_INTERP_DEPTH = 4    # nested "#!" interpreters the kernel follows (BINPRM_MAX_RECURSION)
BINFMT_MISC = "/proc/sys/fs/binfmt_misc"
_WALK_LIMIT = 50000     # files looked at when searching the rootfs for a program by name
_SKIP = {"proc", "sys", "dev"}
ARGS0 = "/process/args/0"


class Checker:
    """One entrypoint analysis; `findings` and `checked` (lines of what was fine) fill up."""

    def __init__(self, spec: dict, view: RootView, creds: Creds) -> None:
        proc = spec.get("process") if isinstance(spec.get("process"), dict) else {}
        self.args = [a for a in proc.get("args") or [] if isinstance(a, str)]
        self.env = [e for e in proc.get("env") or [] if isinstance(e, str)]
        cwd = proc.get("cwd")
        self.cwd = cwd if isinstance(cwd, str) and cwd.startswith("/") else "/"
        self.view, self.creds = view, creds
        self.rootfs = view.rootfs
        self.findings: list[Finding] = []
        self.checked: list[str] = []
        self.host = RootView("/", "/", [])

    # -- helpers -----------------------------------------------------------------------------
    def _add(self, code: str, title: str, cause: str, errno_: int, evidence: list[str],
             fix: Fix | None, pointer: str = ARGS0, severity: str = ERROR,
             op: str = "execve") -> None:
        """op "exec": stage exec's look-up refuses it at create (as runc's does); "execve": the
        kernel refuses it after start; "ld.so": the program starts and its loader gives up."""
        self.findings.append(Finding(code, severity, PREFLIGHT, title, cause, "exec", op,
                                     errno_, pointer, evidence, fix))

    def in_rootfs(self, cpath: str) -> str:
        """The host path of a container path, for commands the user runs."""
        return self.rootfs.rstrip("/") + cpath

    # -- look-up -----------------------------------------------------------------------------
    def run(self) -> None:
        if not self.args:
            return
        name = self.args[0]
        if "/" in name:
            loc = self.view.resolve(name, cwd=self.cwd)
            if self._usable(loc, name):
                self._program(loc, name, 0)
            return
        path = env_path(self.env)
        tried = []
        for d in path.split(":"):
            loc = self.view.resolve(f"{d or '.'}/{name}", cwd=self.cwd)
            st = _stat(loc)
            if st is not None and stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
                self.checked.append(f"entrypoint {name!r} found in PATH: {_chain(loc)}")
                if self._permitted(loc, st, name):
                    self._program(loc, name, 0)
                return
            if st is not None:
                tried.append((loc, st))
        self._not_in_path(name, path, tried)

    def _not_in_path(self, name: str, path: str, tried: list) -> None:
        evidence = [f"PATH={path}" + (" (the default: /process/env has no PATH)"
                                      if not any(e.startswith("PATH=") for e in self.env) else "")]
        for loc, st in tried:
            what = "a directory" if stat.S_ISDIR(st.st_mode) else \
                f"mode {stat.filemode(st.st_mode)}, no execute bit"
            evidence.append(f"{loc.path} exists but is {what}: the PATH search skips it")
        found = self._search_rootfs(name)
        if found:
            evidence.append("found elsewhere in the rootfs: " + ", ".join(found[:5]))
            fix = Fix(f"name the program by its absolute path (or add {os.path.dirname(found[0])} "
                      "to PATH in /process/env)",
                      [{"op": "replace", "path": ARGS0, "value": found[0]}])
            cause = (f"{name!r} is in the rootfs, at {found[0]}, but not in any directory of the "
                     "process's PATH")
        elif any(not stat.S_ISDIR(st.st_mode) for _, st in tried):
            loc = next(loc for loc, st in tried if not stat.S_ISDIR(st.st_mode))
            fix = Fix(f"make {loc.path} executable", command=f"chmod +x {shlex.quote(loc.host)}")
            cause = f"{name!r} exists in PATH but cannot be executed"
        else:
            fix = self._install_fix(name, f"/usr/local/bin/{name}")
            cause = f"there is no program {name!r} in the rootfs"
        self._add("entrypoint-not-in-path", f"entrypoint {name!r} is not in PATH", cause,
                  errno.ENOENT, evidence, fix, op="exec")

    def _search_rootfs(self, name: str) -> list[str]:
        """Container paths of executables named `name` anywhere in the rootfs (bounded walk)."""
        out, seen = [], 0
        root = self.rootfs.rstrip("/")
        for dirpath, dirnames, filenames in os.walk(root):
            if dirpath == root:
                dirnames[:] = [d for d in dirnames if d not in _SKIP]
            seen += len(filenames) + len(dirnames)
            if name in filenames:
                cpath = os.path.join(dirpath, name)[len(root):]
                st = _stat(self.view.resolve(cpath))  # its links point inside the rootfs
                if st is not None and stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
                    out.append(cpath)
            if seen > _WALK_LIMIT:
                break
        return sorted(out, key=len)

    def _install_fix(self, name: str, where: str) -> Fix:
        """Copy the host's program when it is statically linked (it then runs anywhere on this
        architecture); else say what to do."""
        close = self._close_programs(os.path.basename(name))
        if close:
            return Fix(f"did you mean {close[0]}?",
                       [{"op": "replace", "path": ARGS0, "value": close[0]}])
        host = shutil.which(os.path.basename(name))
        text = (f"put the program into the rootfs at {where}, or change /process/args/0 to a "
                "program that is there")
        if host and elf_is_static(host):
            return Fix(text + f" (this host has a static one: {host})",
                       command=f"install -D -m 755 {host} {shlex.quote(self.in_rootfs(where))}")
        return Fix(text)

    def _close_programs(self, name: str) -> list[str]:
        """Executables in the process's PATH whose names are close to `name` (a typo)."""
        names: dict[str, str] = {}
        for d in env_path(self.env).split(":"):
            loc = self.view.resolve(d or "/")
            if not loc.exists or not os.path.isdir(loc.host):
                continue
            try:
                for entry in os.listdir(loc.host):
                    names.setdefault(entry, os.path.join(loc.path, entry))
            except OSError:
                continue
        return [names[n] for n in difflib.get_close_matches(name, list(names), 3, 0.8)]

    def _usable(self, loc: Location, name: str, depth: int = 0) -> bool:
        """The checks of a path given with a "/": exists, a regular file, executable. Stage
        exec makes them for the entrypoint at create; the kernel for an interpreter."""
        op = "exec" if depth == 0 else "execve"
        if loc.error:
            why = os.strerror(loc.error).lower()
            self._add("entrypoint-lookup", f"entrypoint {name!r} cannot be looked up: {why}",
                      f"resolving {name} in the rootfs fails: {why}", loc.error,
                      [f"symlinks followed: {_links(loc)}" if loc.links else
                       f"{loc.path} is not a directory"], None, op=op)
            return False
        if loc.host is None:
            m = self.view.mounts_by_index(loc.mount)
            self._add("entrypoint-hidden", f"entrypoint {name!r} lies under a mount that hides it",
                      f"{loc.path} is under /mounts/{loc.mount} ({m.get('type')} on "
                      f"{m.get('destination')}): the container sees that filesystem there, not "
                      "the rootfs's files", errno.ENOENT,
                      [f"/mounts/{loc.mount}: {m}"],
                      Fix("move the program out of the mount's destination, or remove the mount",
                          [{"op": "remove", "path": f"/mounts/{loc.mount}"}]), op=op)
            return False
        if loc.missing:
            evidence = [f"{loc.missing} does not exist in the rootfs "
                        f"({self.in_rootfs(loc.missing)})" if loc.mount is None else
                        f"{loc.missing} does not exist in the source of /mounts/{loc.mount} "
                        f"({loc.host})"]
            if loc.links:
                evidence.append(f"symlinks followed: {_links(loc)}")
            found = self._search_rootfs(os.path.basename(loc.path))
            if found:
                evidence.append("a program of that name is at " + ", ".join(found[:5]))
                fix = Fix(f"use {found[0]}", [{"op": "replace", "path": ARGS0, "value": found[0]}])
            else:
                fix = self._install_fix(name, loc.path)
            self._add("entrypoint-missing", f"entrypoint {name!r} does not exist in the rootfs",
                      f"{loc.path} is not in the rootfs", errno.ENOENT, evidence, fix,
                      op="exec" if depth == 0 else "execve")
            return False
        st = _stat(loc)
        if st is None:
            return False
        if stat.S_ISDIR(st.st_mode):
            inner = os.path.join(loc.path, os.path.basename(loc.path.rstrip("/")))
            inner_st = _stat(self.view.resolve(inner))
            fix = (Fix(f"name the program inside the directory: {inner}",
                       [{"op": "replace", "path": ARGS0, "value": inner}])
                   if inner_st is not None and stat.S_ISREG(inner_st.st_mode) else
                   Fix("point /process/args/0 at a program, not a directory"))
            self._add("entrypoint-directory", f"entrypoint {name!r} is a directory",
                      f"{loc.path} is a directory; execve(2) needs a regular file (EACCES)",
                      errno.EACCES, [f"{loc.host}: {stat.filemode(st.st_mode)}"], fix, op=op)
            return False
        if not stat.S_ISREG(st.st_mode):
            self._add("entrypoint-not-file", f"entrypoint {name!r} is not a regular file",
                      f"{loc.path} is {_kind(st)}; execve(2) runs regular files only",
                      errno.EACCES, [f"{loc.host}: {stat.filemode(st.st_mode)}"],
                      Fix("point /process/args/0 at a program"), op=op)
            return False
        if not st.st_mode & 0o111:
            self._add("entrypoint-not-executable", f"entrypoint {name!r} is not executable",
                      f"{loc.path} has no execute permission bit (mode "
                      f"{stat.filemode(st.st_mode)})", errno.EACCES,
                      [f"{loc.host}: {stat.filemode(st.st_mode)} uid {st.st_uid} gid {st.st_gid}"],
                      Fix("make it executable", command=f"chmod +x {shlex.quote(loc.host)}"),
                      op=op)
            return False
        self.checked.append(f"entrypoint {name!r}: {_chain(loc)}")
        return self._permitted(loc, st, name, depth)

    def _permitted(self, loc: Location, st: os.stat_result, name: str, depth: int = 0) -> bool:
        """x on the file and search on each directory, for the process's credentials. A closed
        directory fails stage exec's look-up (stat(2), at create) for the entrypoint itself."""
        for cpath, host in loc.dirs:
            try:
                dst = os.stat(host)
            except OSError:
                continue
            if not self.creds.may(dst, X):
                self._add("entrypoint-permission", f"entrypoint {name!r}: no search permission "
                          f"on {cpath}",
                          f"the process ({self.creds.label}) may not search {cpath} "
                          f"(mode {stat.filemode(dst.st_mode)}, owner {dst.st_uid}:{dst.st_gid})",
                          errno.EACCES, [f"{host}: {stat.filemode(dst.st_mode)} "
                                         f"{dst.st_uid}:{dst.st_gid}"],
                          Fix(f"let others search {cpath}",
                              command=f"chmod o+x {shlex.quote(host)}"),
                          op="exec" if depth == 0 else "execve")
                return False
        if not self.creds.may(st, X):
            self._add("entrypoint-permission", f"entrypoint {name!r} is not executable by the "
                      "process's user",
                      f"the process runs as {self.creds.label}, and {loc.path} (mode "
                      f"{stat.filemode(st.st_mode)}, owner {st.st_uid}:{st.st_gid}) does not let "
                      "that user execute it", errno.EACCES,
                      [f"{loc.host}: {stat.filemode(st.st_mode)} {st.st_uid}:{st.st_gid}",
                       f"process user: {self.creds.label}, effective capabilities: "
                       f"{', '.join(sorted(self.creds.caps)) or 'none'}"],
                      Fix("let every user execute it",
                          command=f"chmod a+x {shlex.quote(loc.host)}"))
            return False
        mount = self.view.mounts_by_index(loc.mount) if loc.mount is not None else None
        if mount is not None and "noexec" in (mount.get("options") or []):
            self._add("entrypoint-noexec", f"entrypoint {name!r} is on a noexec mount",
                      f"{loc.path} is under /mounts/{loc.mount}, mounted noexec", errno.EACCES,
                      [f"/mounts/{loc.mount}/options: {mount.get('options')}"],
                      Fix("drop noexec from the mount's options",
                          [{"op": "remove", "path": f"/mounts/{loc.mount}/options/"
                                                    f"{mount['options'].index('noexec')}"}]))
            return False
        return True

    # -- format ------------------------------------------------------------------------------
    def _program(self, loc: Location, name: str, depth: int) -> None:
        try:
            with open(loc.host, "rb") as f:
                head = f.read(BINPRM_BUF_SIZE)
        except OSError as e:
            self._add("entrypoint-unreadable", f"{loc.path} cannot be read",
                      f"reading {loc.host} failed: {os.strerror(e.errno or 0).lower()}",
                      e.errno or 0, [], None, severity=WARNING)
            return
        if elf.is_elf(head):
            self._elf(loc, name, depth)
        elif head.startswith(b"#!"):
            self._script(loc, name, head, depth)
        else:
            self._not_executable_format(loc, name, head, depth)

    def _not_executable_format(self, loc: Location, name: str, head: bytes, depth: int) -> None:
        handler = binfmt_handler(head)
        if handler:
            self.checked.append(f"{loc.path}: run by binfmt_misc handler {handler[0]}")
            return
        first = head.split(b"\n", 1)[0][:60].decode("utf-8", "replace")
        sh = self.view.resolve("/bin/sh")
        fix = Fix(f"start it with a shell (or add a \"#!\" line: sed -i '1i #!/bin/sh' "
                  f"{shlex.quote(loc.host)})",
                  [{"op": "replace", "path": "/process/args",
                    "value": ["/bin/sh"] + self.args}]) if sh.exists and depth == 0 else \
            Fix(f"give {loc.path} a \"#!\" line or replace it with a program")
        self._add("entrypoint-format", f"{loc.path} is neither an ELF program nor a script",
                  f"{loc.path} has no ELF header and no \"#!\" line: execve(2) fails with "
                  "ENOEXEC (exec format error); unlike a shell, the runtime does not fall back to "
                  "/bin/sh", errno.ENOEXEC, [f"{loc.host} starts with {first!r}"], fix)

    def _script(self, loc: Location, name: str, head: bytes, depth: int) -> None:
        line = head[2:].split(b"\n", 1)[0]
        text = line.decode("utf-8", "replace")
        parts = text.strip(" \t").split(None, 1)
        evidence = [f"{loc.host}: first line {('#!' + text)!r}"]
        if not parts:
            self._add("entrypoint-interpreter", f"{loc.path}: empty \"#!\" line",
                      "the script names no interpreter", errno.ENOEXEC, evidence,
                      Fix(f"write the interpreter after #! in {loc.host}"))
            return
        interp = parts[0]
        if interp.endswith("\r") or text.endswith("\r"):
            clean = interp.rstrip("\r")
            self._add("entrypoint-crlf", f"{loc.path} has DOS line endings",
                      f"its \"#!\" line ends with a carriage return, so the kernel looks for an "
                      f"interpreter named {(clean + chr(13))!r} (with the CR), which does not "
                      "exist: execve(2) reports ENOENT, as if the script itself were missing",
                      errno.ENOENT, evidence,
                      Fix("convert the script to Unix line endings",
                          command=f"sed -i 's/\\r$//' {shlex.quote(loc.host)}"))
            return
        if depth >= MAX_INTERP_DEPTH:
            self._add("entrypoint-interpreter", f"{loc.path}: too many nested interpreters",
                      "scripts whose interpreters are scripts nest more than the kernel allows",
                      errno.ELOOP, evidence, None)
            return
        iloc = self.view.resolve(interp, cwd=self.cwd)
        if not iloc.exists:
            where = "under a mount that hides it" if iloc.host is None else \
                "does not exist in the rootfs"
            other = self._search_rootfs(os.path.basename(interp))
            if other:
                evidence.append(f"{os.path.basename(interp)} is in the rootfs at "
                                + ", ".join(other[:3]))
                fix = Fix(f"point the \"#!\" line at {other[0]}",
                          command=f"sed -i '1s|^#! *[^ ]*|#!{other[0]}|' {shlex.quote(loc.host)}")
            else:
                fix = Fix(f"install {interp} in the rootfs (the image's package manager), or "
                          "change the \"#!\" line to an interpreter the rootfs has")
            evidence.append(f"{interp}: {where}" + (f" (no {iloc.missing} in it)"
                                                    if iloc.missing else ""))
            self._add("entrypoint-interpreter",
                      f"the interpreter of {loc.path} is missing: {interp}",
                      f"{loc.path} is a script for {interp}, which {where}: execve(2) reports "
                      "ENOENT (\"no such file or directory\") for the script itself, though the "
                      "script is there", errno.ENOENT, evidence, fix)
            return
        self.checked.append(f"{loc.path}: script for {interp} ({_chain(iloc)})")
        if self._usable(iloc, interp, depth + 1):
            self._program(iloc, interp, depth + 1)

    def _elf(self, loc: Location, name: str, depth: int) -> None:
        try:
            info = elf.read(loc.host)
        except (OSError, ValueError) as e:
            self._add("entrypoint-format", f"{loc.path} is a broken ELF file", str(e),
                      errno.ENOEXEC, [f"{loc.host}: {e}"], None)
            return
        host = elf.host_machine()
        if info.machine != host and not _compatible(host, info.machine):
            handler = binfmt_handler(open(loc.host, "rb").read(BINPRM_BUF_SIZE))
            if handler is None:
                native = elf.MACHINES.get(host, os.uname().machine)
                self._add("entrypoint-architecture",
                          f"{loc.path} is built for {info.machine_name}, this host runs {native}",
                          f"{loc.path} is an ELF program for {info.machine_name}; this kernel "
                          f"runs {native} programs and has no binfmt_misc handler for "
                          f"{info.machine_name}: execve(2) fails with ENOEXEC (exec format error)",
                          errno.ENOEXEC, [f"{loc.host}: {info.describe()}",
                                          f"host: {os.uname().machine}; binfmt_misc handlers: "
                                          f"{', '.join(binfmt_names()) or 'none'}"],
                          Fix(f"use an image (or a build) for {native}, e.g. podman pull --arch "
                              f"{_oci_arch(native)}; or install qemu-user-static and "
                              f"binfmt-support so this host emulates {info.machine_name}"))
                return
            self._binfmt_interpreter(loc, handler)
            return
        self.checked.append(f"{loc.path}: {info.describe()}")
        if info.interpreter is None:
            return
        iloc = self.view.resolve(info.interpreter)
        if not iloc.exists:
            fix = self._copy_fix(info.interpreter, "the dynamic loader")
            self._add("entrypoint-loader", f"the dynamic loader of {loc.path} is missing: "
                      f"{info.interpreter}",
                      f"{loc.path} is dynamically linked; the kernel must load its interpreter "
                      f"{info.interpreter} (PT_INTERP), which is not in the rootfs: execve(2) "
                      "fails with ENOENT (\"no such file or directory\"), though the program "
                      "itself is there", errno.ENOENT,
                      [f"{loc.host}: {info.describe()}",
                       f"{info.interpreter}: not in the rootfs" + (f" (missing: {iloc.missing})"
                                                                   if iloc.missing else "")], fix)
            return
        self._libraries(loc, info)

    def _binfmt_interpreter(self, loc: Location, handler: tuple[str, str, bool]) -> None:
        name, interp, fixed = handler
        if fixed:
            self.checked.append(f"{loc.path}: run by binfmt_misc {name} ({interp}, opened by "
                                "the kernel at registration: flag F)")
            return
        iloc = self.view.resolve(interp)
        if iloc.exists:
            self.checked.append(f"{loc.path}: run by binfmt_misc {name} ({interp} in the rootfs)")
            return
        self._add("entrypoint-binfmt", f"{loc.path} needs the emulator {interp} in the rootfs",
                  f"binfmt_misc handler {name} runs {interp} for this program, resolved in the "
                  "container (the handler lacks the F flag), and the rootfs has no such file",
                  errno.ENOENT, [f"{BINFMT_MISC}/{name}: interpreter {interp}, flags without F"],
                  Fix("register the handler with the F flag (qemu-user-static's binfmt files "
                      "do), or copy the emulator into the rootfs",
                      command=f"install -D -m 755 {interp} {shlex.quote(self.in_rootfs(interp))}"))

    def _copy_fix(self, cpath: str, what: str) -> Fix:
        """Copy a file the rootfs lacks from the host, where the host has it at the same path."""
        if os.path.exists(cpath):
            return Fix(f"copy {what} from the host (same path, same architecture) into the "
                       f"rootfs", command=f"cp -L --parents {cpath} {shlex.quote(self.rootfs)}/")
        return Fix(f"install {what} {cpath} in the rootfs (the image's libc package)")

    def _libraries(self, loc: Location, info: elf.Elf) -> None:
        """Every DT_NEEDED library, transitively, found where ld.so looks in the rootfs."""
        todo = [(loc.path, info)]
        seen: set[str] = set()
        missing: list[tuple[str, str, list[str]]] = []
        found = 0
        while todo and len(seen) < 500:
            who, obj = todo.pop(0)
            for lib in obj.needed:
                if lib in seen:
                    continue
                seen.add(lib)
                hit, searched = find_library(self.view, lib, who, obj, self.env)
                if hit is None:
                    missing.append((lib, who, searched))
                    continue
                found += 1
                if hit[1] is not None:
                    todo.append(hit)
        if not missing:
            if found:
                self.checked.append(f"{loc.path}: {found} shared libraries found in the rootfs")
            return
        lib, who, searched = missing[0]
        host_copies = []
        for name, _, _ in missing:
            hit, _ = find_library(self.host, name, "/", info, [])
            if hit is not None:
                host_copies.append(hit[0])
        names = ", ".join(m[0] for m in missing)
        if len(host_copies) == len(missing):
            fix = Fix("copy the libraries from the host (same architecture) into the rootfs",
                      command=f"cp -L --parents {' '.join(host_copies)} "
                              f"{shlex.quote(self.rootfs)}/")
        else:
            fix = Fix(f"install {names} in the rootfs (the image's packages), or use a "
                      "statically linked build")
        self._add("entrypoint-library", f"{loc.path} needs {names}, which the rootfs lacks",
                  f"the program starts, but the dynamic loader ({info.interpreter}) finds no "
                  f"{lib} (needed by {who}) and exits with status 127 before main(): "
                  "\"error while loading shared libraries\"", errno.ENOENT,
                  [f"{who} needs {lib}; looked in " + ":".join(searched)], fix, op="ld.so")


def find_library(view: RootView, name: str, who: str, obj: elf.Elf,
                 env: list[str]) -> tuple[tuple[str, elf.Elf | None] | None, list[str]]:
    """Where ld.so would find library `name` for `obj` (at container path `who`): ((container
    path, its ELF info), dirs searched); (None, dirs searched) when it finds none. glibc's order:
    DT_RPATH (without DT_RUNPATH), LD_LIBRARY_PATH, DT_RUNPATH, /etc/ld.so.conf's directories
    (what ldconfig puts in ld.so.cache), then the default directories; musl's: LD_LIBRARY_PATH,
    /etc/ld-musl-ARCH.path or /lib:/usr/local/lib:/usr/lib."""
    if "/" in name:
        dirs = [os.path.dirname(name)]
        name = os.path.basename(name)
    else:
        origin = os.path.dirname(who)
        ld_path = next((e[16:] for e in reversed(env) if e.startswith("LD_LIBRARY_PATH=")), "")
        lib = "lib64" if obj.bits == 64 else "lib"
        expand = [d.replace("$ORIGIN", origin).replace("${ORIGIN}", origin)
                  .replace("$LIB", lib).replace("${LIB}", lib) for d in
                  (obj.rpath if not obj.runpath else [])]
        dirs = expand + [d for d in ld_path.split(":") if d]
        dirs += [d.replace("$ORIGIN", origin).replace("${ORIGIN}", origin) for d in obj.runpath]
        if obj.interpreter and "musl" in obj.interpreter:
            dirs += _musl_dirs(view, obj)
        else:
            dirs += _ld_so_conf(view)
            triplet = elf.TRIPLETS.get((obj.bits, obj.machine))
            if triplet:
                dirs += [f"/lib/{triplet}", f"/usr/lib/{triplet}"]
            dirs += ["/lib64", "/usr/lib64", "/lib", "/usr/lib"] if obj.bits == 64 else \
                ["/lib32", "/usr/lib32", "/lib", "/usr/lib"]
    dirs = list(dict.fromkeys(dirs))
    for d in dirs:
        loc = view.resolve(f"{d}/{name}")
        if not loc.exists:
            continue
        try:
            info = elf.read(loc.host)
        except (OSError, ValueError):
            continue  # not a library (a linker script, a broken file): ld.so skips it too
        if info.bits == obj.bits and info.machine == obj.machine:
            return (loc.path, info), dirs
    return None, dirs


def _ld_so_conf(view: RootView) -> list[str]:
    """The directories /etc/ld.so.conf names (with its `include` globs), inside the rootfs."""
    out: list[str] = []

    def read(cpath: str, depth: int) -> None:
        loc = view.resolve(cpath)
        if not loc.exists or depth > 8:
            return
        try:
            with open(loc.host, errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            return
        for line in lines:
            line = line.split("#", 1)[0].strip()
            if line.startswith("include"):
                for pattern in line.split()[1:]:
                    base = view.resolve(os.path.dirname(pattern))
                    if base.exists:
                        for hit in sorted(glob.glob(os.path.join(base.host,
                                                                 os.path.basename(pattern)))):
                            read(os.path.join(base.path, os.path.basename(hit)), depth + 1)
            elif line.startswith("/"):
                out.append(line)
    read("/etc/ld.so.conf", 0)
    return out


def _musl_dirs(view: RootView, obj: elf.Elf) -> list[str]:
    arch = os.path.basename(obj.interpreter or "").removeprefix("ld-musl-").split(".so")[0]
    loc = view.resolve(f"/etc/ld-musl-{arch}.path")
    if loc.exists:
        try:
            with open(loc.host) as f:
                return [d for d in f.read().replace("\n", ":").split(":") if d]
        except OSError:
            pass
    return ["/lib", "/usr/local/lib", "/usr/lib"]


def binfmt_names() -> list[str]:
    try:
        return sorted(n for n in os.listdir(BINFMT_MISC) if n not in ("register", "status"))
    except OSError:
        return []


def binfmt_handler(head: bytes) -> tuple[str, str, bool] | None:
    """The enabled binfmt_misc handler whose magic matches `head`: (name, interpreter, flag F).
    An entry reads "enabled", "interpreter PATH", "flags: F", "offset N", "magic HEX" and
    "mask HEX", one per line."""
    for name in binfmt_names():
        try:
            with open(f"{BINFMT_MISC}/{name}") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        if not lines or lines[0] != "enabled":
            continue
        fields = {k: v.strip() for k, _, v in (line.partition(" ") for line in lines[1:])}
        if "magic" not in fields:
            continue
        try:
            offset = int(fields.get("offset", "0"))
            magic = bytes.fromhex(fields["magic"])
            mask = bytes.fromhex(fields["mask"]) if "mask" in fields else b"\xff" * len(magic)
        except ValueError:
            continue
        chunk = head[offset:offset + len(magic)]
        if len(chunk) == len(magic) and all((c & m) == (g & m)
                                            for c, m, g in zip(chunk, mask, magic)):
            return name, fields.get("interpreter", ""), "F" in fields.get("flags:", "")
    return None


def _compatible(host: int, machine: int) -> bool:
    """A 64-bit x86 kernel runs i386 programs (IA32 emulation, on in every distribution kernel)."""
    return (host, machine) in {(62, 3)}


def _oci_arch(machine: str) -> str:
    return {"x86_64": "amd64", "aarch64": "arm64", "i386": "386"}.get(machine, machine)


def elf_is_static(path: str) -> bool:
    try:
        return elf.read(path).interpreter is None
    except (OSError, ValueError):
        return False


def _stat(loc: Location) -> os.stat_result | None:
    if not loc.exists:
        return None
    try:
        return os.stat(loc.host)
    except OSError:
        return None


def _kind(st: os.stat_result) -> str:
    for test, word in ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a fifo"), (stat.S_ISSOCK, "a socket")):
        if test(st.st_mode):
            return word
    return "not a regular file"


def _links(loc: Location) -> str:
    return ", ".join(f"{p} -> {t}" for p, t in loc.links)


def _chain(loc: Location) -> str:
    return " -> ".join([p for p, _ in loc.links] + [loc.path]) if loc.links else loc.path
