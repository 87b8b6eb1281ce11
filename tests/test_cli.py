"""The ``dhvae`` command: generate to every output format, info, and errors as one line."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dhvae_sdk.cli import main
from dhvae_sdk.manifest import FORMAT_VERSION, Manifest, describe_file, write_manifest
from dhvae_sdk.motion.bvh import load_bvh
from dhvae_sdk.motion.npz import load_interaction_npz
from model_fixtures import micro_config

QUICK = ["--frames", "12", "--steps", "3", "--seed", "4"]


@pytest.fixture(scope="module")
def checkpoint(micro_checkpoint):
    return micro_checkpoint


def test_generate_npz_with_several_texts_and_samples(checkpoint, tmp_path, capsys):
    out = tmp_path / "motion.npz"
    assert main(["generate", "two people shake hands", "a hug", "--num-samples", "2", "--model", str(checkpoint),
                 "-o", str(out), *QUICK]) == 0
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == [f"motion_{i}.npz" for i in range(4)]
    records = [load_interaction_npz(tmp_path / name) for name in written]
    assert [r.text for r in records] == ["two people shake hands"] * 2 + ["a hug"] * 2
    assert all(r.joints.shape == (12, 2, 22, 3) for r in records)
    captured = capsys.readouterr()
    assert "torch" in captured.err.lower() and "denoising" in captured.err
    assert "motion_3.npz: 'a hug', 0.4 s" in captured.out


def test_same_seed_from_the_command_line_gives_the_same_file(checkpoint, tmp_path):
    for name in ("a.npz", "b.npz"):
        assert main(["generate", "they wave", "--model", str(checkpoint), "-o", str(tmp_path / name), *QUICK]) == 0
    a, b = (load_interaction_npz(tmp_path / name) for name in ("a.npz", "b.npz"))
    np.testing.assert_array_equal(a.joints, b.joints)


def test_temperature_zero_from_the_command_line_gives_every_seed_the_same_motion(checkpoint, tmp_path):
    for name, seed in (("a.npz", "1"), ("b.npz", "2")):
        assert main(["generate", "they wave", "--model", str(checkpoint), "-o", str(tmp_path / name), *QUICK,
                     "--seed", seed, "--temperature", "0"]) == 0
    a, b = (load_interaction_npz(tmp_path / name) for name in ("a.npz", "b.npz"))
    np.testing.assert_allclose(a.joints, b.joints, atol=1e-5)


def test_generate_bvh_writes_one_file_per_person(checkpoint, tmp_path):
    assert main(["generate", "they spar", "--model", str(checkpoint), "-o", str(tmp_path / "fight.bvh"), *QUICK]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fight_a.bvh", "fight_b.bvh"]
    assert load_bvh(tmp_path / "fight_a.bvh").joints.shape[0] == 12


def test_generate_gif_on_the_given_threads(checkpoint, tmp_path):
    previous = torch.get_num_threads()
    try:
        assert main(["generate", "they dance", "--model", str(checkpoint), "-o", str(tmp_path / "d.gif"),
                     "--seconds", "0.3", "--steps", "2", "--threads", "2"]) == 0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
    assert (tmp_path / "d.gif").read_bytes()[:3] == b"GIF"


@pytest.mark.parametrize("args, message", [
    (["generate", "x", "-o", "{tmp}/out.txt"], "must end in one of .mp4, .gif, .bvh, .npz"),
    (["generate", "x", "-o", "{tmp}/missing/out.npz"], "does not exist; create it first"),
    (["generate", "x", "--model", "{ckpt}", "--backend", "tpu", "-o", "{tmp}/o.npz"], "unknown backend 'tpu'"),
    (["generate", "", "--model", "{ckpt}", "-o", "{tmp}/o.npz"], "text 0 is empty"),
    (["generate", "x", "--model", "{ckpt}", "--frames", "0", "-o", "{tmp}/o.npz"], "frames must be a positive integer"),
    (["generate", "x", "--model", "{ckpt}", "--seconds", "99", "-o", "{tmp}/o.npz"], "longer than this model's maximum"),
    (["generate", "x", "--model", "{ckpt}", "--threads", "0", "-o", "{tmp}/o.npz"], "threads must be a positive integer"),
    (["generate", "x", "--model", "{ckpt}", "--temperature", "-1", "-o", "{tmp}/o.npz"],
     "temperature must be a number from 0 to 2"),
    (["generate", "x", "--model", "{ckpt}", "--backend", "onnxruntime", "-o", "{tmp}/o.npz"], "python -m export.to_onnx"),
    (["info", "{tmp}"], "has no manifest.json"),
])
def test_errors_are_one_clear_line_and_exit_status_1(checkpoint, tmp_path, capsys, args, message):
    args = [a.format(tmp=tmp_path, ckpt=checkpoint) for a in args]
    assert main(args) == 1
    err = capsys.readouterr().err
    error_lines = [line for line in err.splitlines() if line.startswith("dhvae: error:")]
    assert len(error_lines) == 1 and message in error_lines[0]
    assert "denoising" not in err  # no progress bar opens for input that never reaches the loop
    assert not list(tmp_path.glob("o*.npz"))


@pytest.mark.parametrize("precision, engines", [
    ("fp16", "TensorRT engines: none (build them with `python -m export.to_trt MODEL_DIR`)"),
    ("int8", "TensorRT: an int8 model runs on ONNX Runtime only"),  # no engine build suggested
])
def test_info_describes_a_model_directory(tmp_path, capsys, precision, engines):
    (tmp_path / "decoder.onnx").write_bytes(b"\0" * 2_000_000)
    config = micro_config()
    write_manifest(Manifest(
        directory=tmp_path, format_version=FORMAT_VERSION, precision=precision, config=config.to_dict(),
        stats={"mean": np.zeros(262), "std": np.ones(262)}, latent_scales=np.ones(3),
        null_text_embedding=np.zeros(config.text.width), files={"decoder": describe_file(tmp_path, "decoder.onnx")},
        versions={"torch": "2.14.1"},
    ))
    assert main(["info", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"precision {precision}" in out and "preset tiny" in out and "up to 90 frames (3.0 s)" in out
    assert "decoder.onnx" in out and "2.00 MB" in out and "torch 2.14.1" in out
    assert engines in out and ("TensorRT engines: none" in out) == (precision != "int8")


def test_info_describes_a_checkpoint(checkpoint, capsys):
    assert main(["info", str(checkpoint)]) == 0
    out = capsys.readouterr().out
    assert "training checkpoint" in out and "stage denoiser" in out
    assert "latents 3 x 1 x 64; denoiser 3 layers of that width" in out and "temperature 1.0" in out
    assert "1-layer CLIP tower and 1 head layer(s) of width 48" in out


def test_the_module_runs_as_a_program(checkpoint, tmp_path):
    result = subprocess.run([sys.executable, "-m", "dhvae_sdk.cli", "info", str(checkpoint)],
                            capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 0 and "preset tiny" in result.stdout
