"""Written files: the umask's mode, and no temporaries left behind by killed writers."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dhvae_sdk.atomic_file import atomic_output, remove_stale_temporaries, temporary_sibling
from dhvae_sdk.checkpoint import load_checkpoint
from export import to_onnx
from export.to_onnx import export_model
from model_fixtures import save_micro_checkpoint
from training.data.procedural.writer import generate_dataset

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'tests'}", "OMP_NUM_THREADS": "1"}


@pytest.fixture
def checkpoint(micro_checkpoint):
    return micro_checkpoint  # the session's: its graphs are traced once for every test


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_checkpoints_and_other_outputs_keep_the_umasks_mode(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    expected = 0o666 & ~umask
    assert expected != 0o600  # this umask would not tell a private file from a normal one
    saved = save_micro_checkpoint(tmp_path / "c.safetensors")
    assert _mode(saved) == expected
    with atomic_output(tmp_path / "x.txt") as temp:
        temp.write_text("hello")
        temp.chmod(0o600)  # a writer that makes its file private (as safetensors does)
    assert _mode(tmp_path / "x.txt") == expected
    model_dir = temporary_sibling(tmp_path / "model", directory=True)
    assert _mode(model_dir) == 0o777 & ~umask


def _killed_writer(target: Path, directory: bool = False) -> Path:
    """Start a process that holds a temporary of ``target``, SIGKILL it, return the temporary."""
    code = (f"import sys, time; from dhvae_sdk.atomic_file import temporary_sibling; "
            f"print(temporary_sibling({str(target)!r}, directory={directory}), flush=True); time.sleep(60)")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=ENV)
    temporary = Path(process.stdout.readline().strip())
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert temporary.exists() and temporary.parent == target.parent
    return temporary


def test_the_next_save_removes_a_killed_trainings_temporary_checkpoint(tmp_path):
    target = tmp_path / "checkpoint.safetensors"
    orphan = _killed_writer(target)
    assert orphan.name.startswith(".checkpoint.safetensors.") and orphan.name.endswith(".tmp.safetensors")
    save_micro_checkpoint(target)
    assert not orphan.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.safetensors"]
    assert load_checkpoint(target).stage == "denoiser"


def test_temporaries_of_live_processes_and_other_files_are_kept(tmp_path):
    target = tmp_path / "metrics.json"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".metrics.json.{sleeper.pid}.abcd1234.tmp.json"
        own = tmp_path / f".metrics.json.{os.getpid()}.abcd1234.tmp.json"
        other_target = tmp_path / f".metrics.json.5.{sleeper.pid}.x1.tmp.json"  # "metrics.json.5"'s, not ours
        unrelated = tmp_path / ".metrics.json.notes"
        for path in (live, own, other_target, unrelated):
            path.write_text("{}")
        dead = _killed_writer(target)
        with atomic_output(target) as temp:
            temp.write_text("{}")
        assert not dead.exists()
        assert all(path.exists() for path in (live, own, other_target, unrelated))
    finally:
        sleeper.kill()
        sleeper.wait()
    assert remove_stale_temporaries(target) == [live]  # its process has ended now


def test_the_next_export_removes_a_killed_exports_staging_folder(tmp_path, checkpoint, monkeypatch):
    monkeypatch.setattr(to_onnx, "DESCRIPTORS", to_onnx.DESCRIPTORS[3:4])  # the decoder alone keeps this fast
    out = tmp_path / "model"
    staging = _killed_writer(out, directory=True)
    (staging / "decoder.onnx").write_bytes(b"half written")
    export_model(checkpoint, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert (out / "manifest.json").is_file()


def test_the_next_dataset_generation_removes_a_killed_ones_folder(tmp_path):
    staging = _killed_writer(tmp_path / "data", directory=True)
    generate_dataset(tmp_path / "data", 4, seed=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    assert not staging.exists()
