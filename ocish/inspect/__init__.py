"""Readers of a container process's kernel state, one module per topic.

Readers take a `Target` and return plain dataclasses; they never print (ocish.render does). The
same data feeds the shell, `inspect --json`, `diff` snapshots and the tests.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

TOPICS = ("ns", "ids", "mounts", "cgroup", "caps", "seccomp", "rlimits", "fds", "env", "proc", "net",
          "exit", "exe", "auxv")
# what can still answer once the process is dead: its cgroup outlives it, and how it ended
AFTER_DEATH = ("cgroup", "exit")


@dataclass
class Target:
    """The process to inspect and what the session knows about it."""
    pid: int
    rootfs: str = ""                                           # the bundle's rootfs on the host
    cgroup_paths: dict[str, str] = field(default_factory=dict)  # the cgroup manager's directories
    status: int | None = None      # its wait status, once the session reaped it (it is dead)
    resources: dict | None = None  # config.json's /linux/resources, for the cgroup topic's pointers


def read(topic: str, target: Target) -> Any:
    """The reader of `topic` (one of TOPICS) applied to `target`; raises OSError if the process
    is gone."""
    if topic not in TOPICS:
        raise ValueError(f"unknown topic {topic!r}")
    return importlib.import_module(f"ocish.inspect.{topic}").read(target)
