"""The process's signal state, as Python and as the kernel see it: shared
by the tests and the scripts they run in subprocesses."""

import signal


def proc_status(tid=None):
    """SigBlk, SigIgn and SigCgt of this process's main thread (or of thread
    `tid`) from /proc: dispositions set outside Python's `signal` module
    (by Rust code, say) show up here and not in `signal.getsignal`."""
    path = "/proc/self/status" if tid is None else "/proc/self/task/%d/status" % tid
    fields = {}
    with open(path) as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("SigBlk", "SigIgn", "SigCgt"):
                fields[name] = int(value.strip(), 16)
    return fields


def handlers():
    """Every Python-level handler, by signal number."""
    return {
        int(s): signal.getsignal(s)
        for s in signal.valid_signals()
        if s not in (signal.SIGKILL, signal.SIGSTOP)
    }


def mask():
    """The calling thread's signal mask, as sorted signal numbers."""
    return sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, []))


def signal_state():
    """Handlers, the kernel's caught and ignored sets, and the calling
    thread's mask: what a guest in the process must leave as it found."""
    status = proc_status()
    return {
        "handlers": handlers(),
        "caught": status["SigCgt"],
        "ignored": status["SigIgn"],
        "mask": mask(),
    }
