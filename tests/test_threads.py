"""dhvae_sdk.threads: the CPU thread rule of generation and training."""
import os

import pytest

from dhvae_sdk import DHVAEError
from dhvae_sdk import threads as thread_rule
from dhvae_sdk.threads import MAX_THREADS, default_threads, resolve_threads


@pytest.fixture
def machine(monkeypatch, tmp_path):
    """A fake machine: ``set(cpus, affinity, load, quota)``; quota is cgroup v2's cpu.max text."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(thread_rule, "CGROUP_ROOT", tmp_path)

    def set_machine(cpus: int, affinity: int, load: float, quota: str | None = None) -> None:
        monkeypatch.setattr(os, "cpu_count", lambda: cpus)
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(affinity)))
        monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
        if quota is not None:
            (tmp_path / "cpu.max").write_text(quota)

    return set_machine


def test_other_jobs_load_leaves_fewer_threads(machine):
    machine(cpus=2, affinity=2, load=0.1)
    assert default_threads() == 2  # an idle 2-core machine: both cores
    machine(cpus=2, affinity=2, load=1.0)
    assert default_threads() == 1  # one core busy with another job
    machine(cpus=2, affinity=2, load=5.0)
    assert default_threads() == 1  # never fewer than one


def test_affinity_quota_and_cap_bound_the_count(machine, tmp_path):
    machine(cpus=64, affinity=3, load=0.0)
    assert default_threads() == 3
    machine(cpus=64, affinity=64, load=10.0, quota="200000 100000")  # a container of 2 CPUs on a big host
    assert default_threads() == 2
    machine(cpus=64, affinity=64, load=10.0, quota="max 100000")
    assert default_threads() == MAX_THREADS
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("150000\n")  # cgroup v1: 1.5 CPUs
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert default_threads() == 1


def test_processes_share_the_cpus_and_omp_num_threads_wins(machine, monkeypatch):
    machine(cpus=8, affinity=8, load=0.0)
    assert (default_threads(), default_threads(2), default_threads(3), default_threads(8)) == (4, 2, 1, 1)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_threads() == 3


def test_explicit_threads_are_checked():
    assert resolve_threads(5) == 5
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(DHVAEError, match="threads must be a positive integer"):
            resolve_threads(bad)
    with pytest.raises(ValueError):
        resolve_threads(0)
