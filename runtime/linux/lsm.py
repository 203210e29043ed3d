"""Linux security modules: which ones the host runs, and the exec-time labels of AppArmor and SELinux.

Which LSMs are active, from the first source that answers:

1. /sys/kernel/security/lsm (securityfs; often not mounted on minimal hosts),
2. lsm_list_modules(2) (Linux 6.8 and later; needs no mount and works in a user namespace),
3. per module: /sys/module/apparmor/parameters/enabled ("Y", what runc reads) and "selinuxfs" in
   /proc/filesystems (registered only when SELinux is enabled).

The labels are "on exec" attributes: written to /proc/self/attr/..., they take effect at the next
execve(2) of this process, so the runtime writes them last, and its own Python keeps running
unconfined until then. AppArmor has its own directory since Linux 5.1 (attr/apparmor/exec, which
stays AppArmor's when other modules are stacked); the shared attr/exec belongs to the first major
module, which is SELinux's place.
"""
from __future__ import annotations

import os

from runtime.linux import syscalls

LSM_FILE = "/sys/kernel/security/lsm"
APPARMOR_PARAM = "/sys/module/apparmor/parameters/enabled"
FILESYSTEMS = "/proc/filesystems"
APPARMOR_EXEC = "/proc/self/attr/apparmor/exec"
ATTR_EXEC = "/proc/self/attr/exec"

# <uapi/linux/lsm.h> LSM_ID_*
IDS = {100: "capability", 101: "selinux", 102: "smack", 103: "tomoyo", 104: "apparmor",
       105: "yama", 106: "loadpin", 107: "safesetid", 108: "lockdown", 109: "bpf",
       110: "landlock", 111: "ima", 112: "evm", 113: "ipe"}
NAMES = {"apparmor": "AppArmor", "selinux": "SELinux"}


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace").strip()
    except OSError:
        return None


def active() -> tuple[list[str] | None, str]:
    """(names of the active LSMs in the kernel's order, where they were read); (None, "") when
    neither securityfs nor lsm_list_modules(2) answers."""
    text = _read(LSM_FILE)
    if text is not None:
        return [n for n in text.split(",") if n], LSM_FILE
    try:
        ids = syscalls.lsm_list_modules()
    except OSError:
        return None, ""
    return [IDS.get(i, str(i)) for i in ids], "lsm_list_modules(2)"


def enabled(module: str) -> tuple[bool, str]:
    """Is `module` ("apparmor" or "selinux") active here; and the evidence, in words, for errors
    ("/sys/kernel/security/lsm: lockdown,capability,landlock,bpf")."""
    names, source = active()
    if names is not None:
        return module in names, f"{source}: {','.join(names) or 'none'}"
    if module == "apparmor":
        value = _read(APPARMOR_PARAM)
        return (value or "").startswith("Y"), (
            f"{LSM_FILE} not readable, lsm_list_modules(2) not available; "
            f"{APPARMOR_PARAM}: {value if value is not None else 'absent'}")
    fs = _read(FILESYSTEMS) or ""
    on = any(line.split()[-1] == "selinuxfs" for line in fs.splitlines() if line.split())
    return on, (f"{LSM_FILE} not readable, lsm_list_modules(2) not available; "
                f"selinuxfs {'registered' if on else 'not registered'} in {FILESYSTEMS}")


def not_enabled(module: str, evidence: str) -> str:
    return f"{NAMES[module]} is not enabled on this host ({evidence})"


def apparmor_exec_path() -> str:
    return APPARMOR_EXEC if os.path.exists(APPARMOR_EXEC) else ATTR_EXEC


def set_apparmor_exec(profile: str, sys=syscalls) -> str:
    """Confine the next execve(2) with `profile` (AppArmor's change_onexec); returns the file."""
    path = apparmor_exec_path()
    sys.write_file(path, f"exec {profile}")
    return path


def set_selinux_exec(label: str, sys=syscalls) -> str:
    """Run the next execve(2) in SELinux context `label` (setexeccon); returns the file."""
    sys.write_file(ATTR_EXEC, label)
    return ATTR_EXEC


def mount_label_option(label: str) -> str:
    """The mount option that labels a whole filesystem (go-selinux's FormatMountLabel)."""
    return f'context="{label}"'
