"""python -m benchmarks.aits: the report every latency claim comes from."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import aits
from dhvae_sdk.checkpoint import load_checkpoint
from dhvae_sdk.models import count_parameters
from model_fixtures import TEXT_WIDTH

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_aits_times_each_backend_and_states_its_memory_floor(micro_checkpoint, tmp_path, capsys):
    # The session's micro model: its graphs are traced already (tests/conftest.py).
    out = tmp_path / "aits.json"
    assert aits.main(["--checkpoint", str(micro_checkpoint), "--backend", "all", "--steps", "3", "--frames", "30",
                      "--repeats", "1", "--threads", "1", "--workdir", str(tmp_path), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    loaded = load_checkpoint(micro_checkpoint)
    model = loaded.model
    # The timed model is the checkpoint's, named by its own preset, not --preset's default.
    assert report["setup"]["checkpoint"] == str(micro_checkpoint)
    assert report["setup"]["preset"] == loaded.config.preset
    assert report["params"] == count_parameters(model)
    torch_row, onnx_row = report["backends"]["torch"], report["backends"]["onnxruntime"]
    bandwidth, throughput = report["read_bandwidth_gb_s"] * 1e9, report["matmul_gflop_s"] * 1e9
    assert report["text_gflop"] * 1e9 == pytest.approx(aits.text_flops(model))
    # >= the one tower layer's matmuls (attention 4 C x C, MLP 2 C x 96) on 77 tokens
    assert aits.text_flops(model) > 2 * 77 * (4 * TEXT_WIDTH ** 2 + 2 * TEXT_WIDTH * 96)
    for row in (torch_row, onnx_row):
        assert row["aits_s"] == pytest.approx(row["loop_s"] + row["decode_s"])  # one repeat: no medians
        assert row["floor_s"] == pytest.approx(row["step_weight_bytes"] * 3 / bandwidth)
        assert row["loop_vs_floor"] == pytest.approx(row["loop_s"] / row["floor_s"])
        assert row["text_floor_s"] == pytest.approx(max(row["text_weight_bytes"] / bandwidth,
                                                        report["text_gflop"] * 1e9 / throughput))
        assert row["text_vs_floor"] == pytest.approx(row["text_encoder_s"] / row["text_floor_s"])
    # The token table is looked up, not read: neither backend counts its 49408 x C floats.
    table_bytes = 49408 * TEXT_WIDTH * 4
    text_bytes = torch_row["text_weight_bytes"]
    assert text_bytes == 4 * sum(p.numel() for p in model.text.parameters()) - table_bytes
    assert 0.5 * text_bytes < onnx_row["text_weight_bytes"] < text_bytes + table_bytes / 2
    assert "int8" in onnx_row["device"]  # the default ONNX export is the int8 one
    assert onnx_row["step_weight_bytes"] < 0.6 * torch_row["step_weight_bytes"]
    assert onnx_row["speedup_vs_torch"] == pytest.approx(torch_row["aits_s"] / onnx_row["aits_s"])
    if "tensorrt" not in report["backends"]:
        assert "TensorRT" in report["skipped"]["tensorrt"]
        assert not (tmp_path / f"{micro_checkpoint.stem}-onnx-fp32").exists()  # no export for a backend that cannot run
    table = capsys.readouterr().out
    assert "memory floor" in table and "onnxruntime" in table
    assert f"(checkpoint {micro_checkpoint})" in table.splitlines()[0]


def test_a_preset_given_with_a_checkpoint_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        aits.main(["--preset", "tiny", "--checkpoint", str(tmp_path / "model.safetensors")])
    assert "--preset applies to --random-init" in capsys.readouterr().err


def test_the_temporary_folder_is_removed_even_when_the_run_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(aits.tempfile, "tempdir", str(tmp_path))
    written = []

    def failing_checkpoint(preset, path):
        path.write_bytes(b"partial")
        written.append(path)
        raise RuntimeError("disk full")

    monkeypatch.setattr(aits, "random_checkpoint", failing_checkpoint)
    with pytest.raises(RuntimeError, match="disk full"):
        aits.main(["--preset", "tiny", "--random-init", "--backend", "torch"])
    assert written and written[0].parent.parent == tmp_path and written[0].parent.name.startswith("dhvae-aits-")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["-m", "benchmarks.aits"], [str(REPO / "benchmarks" / "aits.py")]])
def test_module_and_script_forms_both_run(command):
    result = subprocess.run([sys.executable, *command, "--help"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m benchmarks.aits") and "--workdir" in result.stdout


def test_random_init_gives_every_weight_of_the_preset_a_random_value(tmp_path):
    checkpoint = load_checkpoint(aits.random_checkpoint("tiny", tmp_path / "tiny-random.safetensors"))
    assert checkpoint.config.preset == "tiny" and checkpoint.stage == "denoiser"
    assert all(parameter.any() for parameter in checkpoint.model.parameters())


def test_the_table_without_a_torch_run_shows_a_dash_for_the_speedup(capsys):
    row = dict(aits_s=0.2, loop_s=0.15, decode_s=0.05, per_step_ms=3.0, step_weight_bytes=7e6, floor_s=0.02,
               loop_vs_floor=7.5, text_encoder_s=0.15, text_floor_s=0.16, text_vs_floor=0.94, device="ORT")
    report = dict(setup=dict(preset="paper", checkpoint=None, steps=50, frames=210, cpus=2, torch_threads=1,
                             load_average=[0.5]),
                  params=dict(total=1e8, denoiser=2e7, text=1e8), read_bandwidth_gb_s=19.0, text_gflop=15.0,
                  matmul_gflop_s=90.0, backends={"onnxruntime": row}, skipped={})
    aits._print_table(report)
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("onnxruntime"))
    assert "nan" not in line and line.split()[8] == "-"
    report["backends"] = {"onnxruntime": dict(row, speedup_vs_torch=4.25)}
    aits._print_table(report)
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("onnxruntime"))
    assert line.split()[8] == "4.25x"
