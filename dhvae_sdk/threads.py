"""How many CPU threads torch and ONNX Runtime get: one rule for generation and training.

Their own defaults take every core of the machine. On a machine shared with other jobs that
oversubscribes it: a parallel operator waits at its barrier for the worker whose core another
process holds, once per operator, and sampling runs thousands of small operators. On a 2-core
machine with other jobs (load average 7 to 8), generating 6 s of the demo model on torch took
a median 3.5 to 6 s (0.8 to 11 s) on torch's default 2 threads and 0.19 to 0.28 s on one.

The rule: the CPUs this process may use (its affinity and its cgroup's CPU quota), less the
ones the other jobs keep busy (the 1-minute load average), at least 1 and at most
``MAX_THREADS``, shared among the ``processes`` of a job. ``OMP_NUM_THREADS``, when set, is the
user's choice and wins. The load average counts this process too once it has been busy, so a
process that asks late may take a thread fewer than it could: under-using beats oversubscribing.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

from dhvae_sdk.errors import DHVAEError

# A guard for big machines, not a measurement (the 2-core machine never reaches it): the
# models' matrices are small (a few tokens, widths up to 768), so few threads already split them.
MAX_THREADS = 4
CGROUP_ROOT = Path("/sys/fs/cgroup")


class ThreadCountError(DHVAEError, ValueError):
    """A thread count that is not a positive integer."""


def default_threads(processes: int = 1) -> int:
    """CPU threads for each of ``processes`` processes of one job (see the module docstring)."""
    requested = os.environ.get("OMP_NUM_THREADS", "")
    if requested.isdigit() and int(requested) > 0:
        return int(requested)
    usable = min(_affinity_cpus(), _quota_cpus())
    # The load average is machine-wide, so it is weighed against every CPU of the machine;
    # rounded, so that the background load of an idle machine (0.1) does not cost a core.
    idle = (os.cpu_count() or usable) - _load_average()
    return max(1, min(usable, MAX_THREADS, int(idle + 0.5)) // max(1, processes))


def resolve_threads(threads: int | None, processes: int = 1) -> int:
    """``threads`` when given (checked), else ``default_threads(processes)``."""
    if threads is None:
        return default_threads(processes)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ThreadCountError(f"threads must be a positive integer, got {threads!r}; leave it unset for the default")
    return threads


def _affinity_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):  # Linux; elsewhere every CPU is ours
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _load_average() -> float:
    """Runnable processes over the last minute; 0 where the system keeps no such count."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


def _quota_cpus() -> float:
    """The CPUs' worth of time the cgroup allows per period (cgroup v2 ``cpu.max``, v1
    ``cpu.cfs_quota_us``); unlimited when neither is readable."""
    try:
        quota, period = (CGROUP_ROOT / "cpu.max").read_text().split()
    except (OSError, ValueError):
        try:
            quota = (CGROUP_ROOT / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (CGROUP_ROOT / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return math.inf
    if quota in ("max", "-1"):
        return math.inf
    return max(1, int(quota) // int(period))
