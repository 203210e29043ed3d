"""Signal numbers and calls from the C module `_signal`.

The `signal` module wraps the same functions in enums, and importing enum costs several
milliseconds at every runtime start; the runtime only needs the numbers and the calls.
"""
from _signal import (NSIG, SIG_BLOCK, SIG_DFL, SIG_IGN, SIG_SETMASK, SIGHUP, SIGINT,  # noqa: F401
                     SIGKILL, SIGQUIT, SIGSTOP, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH,
                     pthread_sigmask, signal)
import _signal


# What `run` and `exec` in the foreground relay to the process: whatever a shell could send it.
FORWARDED = [getattr(_signal, n) for n in (
    "SIGHUP", "SIGINT", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGTERM", "SIGALRM", "SIGCONT",
    "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGWINCH", "SIGPIPE", "SIGPWR", "SIGVTALRM", "SIGPROF",
    "SIGIO", "SIGXCPU", "SIGXFSZ", "SIGSYS", "SIGTRAP", "SIGABRT") if hasattr(_signal, n)]


def number(name: str) -> int:
    """A signal by number or name, with or without "SIG" (9, KILL, SIGKILL); KeyError if unknown
    (ASCII digits only, below NSIG: "٣" or 2**70 are no signals)."""
    if name.isascii() and name.isdigit():
        if int(name) >= NSIG:
            raise KeyError(name)
        return int(name)
    upper = name.upper()
    value = getattr(_signal, upper if upper.startswith("SIG") else "SIG" + upper, None)
    if not isinstance(value, int) or upper.startswith("SIG_"):
        raise KeyError(name)
    return value


def name(num: int) -> str:
    """The name of signal `num` ("SIGKILL"; the first alphabetically where there are aliases,
    SIGABRT before SIGIOT), else "signal N"."""
    for attr in sorted(dir(_signal)):
        if attr.startswith("SIG") and not attr.startswith("SIG_") and getattr(_signal, attr) == num:
            return attr
    return f"signal {num}"
