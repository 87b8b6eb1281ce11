"""benchmarks/aits.py: the report every latency claim comes from."""
from __future__ import annotations

import json

import pytest

from benchmarks import aits
from dhvae_sdk.models import build_model, count_parameters, get_preset


@pytest.mark.slow
def test_aits_times_each_backend_and_states_its_memory_floor(tmp_path, capsys):
    out = tmp_path / "aits.json"
    assert aits.main(["--preset", "tiny", "--random-init", "--backend", "all", "--steps", "3", "--frames", "30",
                      "--repeats", "1", "--threads", "1", "--workdir", str(tmp_path), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["params"] == count_parameters(build_model(get_preset("tiny")))
    torch_row, onnx_row = report["backends"]["torch"], report["backends"]["onnxruntime"]
    for row in (torch_row, onnx_row):
        assert row["aits_s"] == pytest.approx(row["loop_s"] + row["decode_s"])  # one repeat: no medians
        assert row["floor_s"] == pytest.approx(row["step_weight_bytes"] * 3 / (report["read_bandwidth_gb_s"] * 1e9))
        assert row["loop_vs_floor"] == pytest.approx(row["loop_s"] / row["floor_s"])
    assert "int8" in onnx_row["device"]  # the default ONNX export is the int8 one
    assert onnx_row["step_weight_bytes"] < 0.6 * torch_row["step_weight_bytes"]
    assert onnx_row["speedup_vs_torch"] == pytest.approx(torch_row["aits_s"] / onnx_row["aits_s"])
    if "tensorrt" not in report["backends"]:
        assert "TensorRT" in report["skipped"]["tensorrt"]
        assert not (tmp_path / "tiny-random-onnx-fp32").exists()  # no export for a backend that cannot run
    table = capsys.readouterr().out
    assert "memory floor" in table and "onnxruntime" in table
