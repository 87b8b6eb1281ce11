"""The training program end to end on tiny data: learning, checkpoints, resume, DDP, evaluator.

Runs use the tiny preset, one torch thread per process (the test machine's cores are shared)
and FK-built pairs (tests/fk_motions.py) or a small procedural dataset.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dhvae_sdk.checkpoint import load_checkpoint, save_checkpoint
from dhvae_sdk.evaluation.evaluator_checkpoint import load_evaluator
from dhvae_sdk.models import build_model, count_parameters
from dhvae_sdk.models.evaluator import tokenize
from tests.fk_motions import write_interhuman
from training.data import InterHumanDataset, make_loader
from training.main import main
from training.stages.common import representation_of
from training.stages.denoiser import group_stds
from training.stages.evaluator import raw_motion

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


@pytest.fixture(autouse=True)
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def run_main(*args) -> None:
    main([str(arg) for arg in args] + ["--threads", "1"])


def command(*args) -> list[str]:
    return [str(arg) for arg in args] + ["--threads", "1"]


def history(run: Path) -> list[dict]:
    return json.loads((run / "metrics.json").read_text())["history"]


def train_state(run: Path) -> dict:
    return torch.load(run / "train_state.pt", weights_only=True)


def pairs_folder(root: Path, count: int, held_out: int) -> Path:
    names = [f"pair{i}" for i in range(count)]
    return write_interhuman(root, {name: 21 for name in names}, {"train": names, "val": names[:held_out]})


@pytest.fixture(scope="module")
def two_pairs(tmp_path_factory) -> Path:
    return pairs_folder(tmp_path_factory.mktemp("two_pairs"), 2, 2)


@pytest.fixture(scope="module")
def four_pairs(tmp_path_factory) -> Path:
    return pairs_folder(tmp_path_factory.mktemp("four_pairs"), 4, 2)


def vae_args(data: Path, out: Path, steps: int, *extra) -> list:
    return ["vae", "--dataset", "interhuman", "--data-root", data, "--preset", "tiny", "--out", out,
            "--steps", steps, *extra]


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory, two_pairs) -> Path:
    """A tiny VAE overfitted to two pairs (held-out split = the same pairs, unaugmented)."""
    out = tmp_path_factory.mktemp("vae") / "run"
    run_main(*vae_args(two_pairs, out, 200, "--batch-size", 2, "--lr", 3e-3, "--no-augment",
                       "--eval-every", 200, "--ckpt-every", 100, "--log-every", 100))
    return out


def test_vae_overfits_a_few_samples(vae_run):
    first, last = history(vae_run)[0], history(vae_run)[-1]
    assert (first["step"], last["step"]) == (0, 200)
    assert last["mpjpe_m"] <= first["mpjpe_m"] / 10, history(vae_run)
    assert last["feature_l1"] <= first["feature_l1"] / 5, history(vae_run)
    log = (vae_run / "train.log").read_text()
    assert "samples_per_s=" in log and "eval feature_l1=" in log
    assert any((vae_run / "tb").iterdir())


def test_checkpoint_holds_the_trained_weights_and_round_trips_bit_exactly(vae_run, tmp_path):
    state = train_state(vae_run)
    assert state["step"] == 200
    loaded = load_checkpoint(vae_run / "checkpoint.safetensors")
    assert loaded.stage == "vae" and loaded.config.preset == "tiny"
    for key, value in loaded.model.vae.state_dict().items():
        assert torch.equal(value, state["model"][f"vae.{key}"]), key
    normalizer = representation_of("interhuman").normalizer
    assert torch.equal(loaded.feature_std, torch.as_tensor(normalizer.std, dtype=torch.float32))

    again = tmp_path / "again.safetensors"
    save_checkpoint(again, loaded.model, feature_mean=loaded.feature_mean, feature_std=loaded.feature_std,
                    latent_scales=loaded.latent_scales, stage=loaded.stage)
    original, copy = load_file(vae_run / "checkpoint.safetensors"), load_file(again)
    assert original.keys() == copy.keys()
    assert all(torch.equal(original[key], copy[key]) for key in original)


def test_denoiser_loss_falls_and_checkpoint_holds_the_scales(vae_run, two_pairs, tmp_path):
    out = tmp_path / "denoiser"
    run_main("denoiser", "--dataset", "interhuman", "--data-root", two_pairs, "--preset", "tiny", "--out", out,
             "--vae", vae_run / "checkpoint.safetensors", "--steps", 150, "--batch-size", 8, "--lr", 2e-3,
             "--latent-views", 4, "--eval-every", 150, "--ckpt-every", 150, "--log-every", 50)
    first, last = history(out)[0], history(out)[-1]
    assert last["denoising_loss"] < 0.5 * first["denoising_loss"], history(out)

    checkpoint = load_checkpoint(out / "checkpoint.safetensors")
    assert checkpoint.stage == "denoiser"
    latents = load_file(out / "latents.safetensors")["latents"]
    assert latents.shape == (2 * 4, 3, checkpoint.config.vae.latent_dim)  # 2 pairs x 4 views, groups a, b, g
    torch.testing.assert_close(checkpoint.latent_scales, group_stds(latents, 1))
    assert not torch.allclose(checkpoint.latent_scales, torch.ones(3))
    frozen_vae = load_checkpoint(vae_run / "checkpoint.safetensors").model.vae.state_dict()
    assert all(torch.equal(value, frozen_vae[key]) for key, value in checkpoint.model.vae.state_dict().items())


def test_same_seed_gives_bit_identical_weights(four_pairs, tmp_path):
    weights = {}
    for name, seed in (("first", 0), ("second", 0), ("other_seed", 1)):
        run_main(*vae_args(four_pairs, tmp_path / name, 3, "--batch-size", 2, "--seed", seed, "--ckpt-every", 3))
        weights[name] = load_file(tmp_path / name / "checkpoint.safetensors")
    assert all(torch.equal(weights["first"][key], weights["second"][key]) for key in weights["first"])
    assert not all(torch.equal(weights["first"][key], weights["other_seed"][key]) for key in weights["first"])


def test_restart_with_other_options_is_refused(vae_run, two_pairs):
    with pytest.raises(SystemExit, match="lr"):
        run_main(*vae_args(two_pairs, vae_run, 200, "--batch-size", 2, "--lr", 1e-4, "--no-augment"))


def test_mixed_precision_is_refused_on_cpu(four_pairs, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(SystemExit, match="needs a CUDA GPU"):
        run_main(*vae_args(four_pairs, tmp_path / "bf16", 2, "--batch-size", 2, "--precision", "bf16"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_on_gpu(four_pairs, tmp_path, precision):
    out = tmp_path / precision
    run_main(*vae_args(four_pairs, out, 4, "--batch-size", 2, "--precision", precision, "--ckpt-every", 2))
    state = train_state(out)
    assert state["step"] == 4
    assert bool(state["grad_scaler"]) == (precision == "fp16")  # the scaler only runs for fp16
    assert all(torch.isfinite(tensor).all() for tensor in load_file(out / "checkpoint.safetensors").values())


@pytest.mark.slow
def test_resume_after_sigkill_continues_from_the_saved_step(four_pairs, tmp_path):
    steps = 60
    args = vae_args(four_pairs, tmp_path / "killed", steps, "--batch-size", 1, "--ckpt-every", 4, "--log-every", 20)
    process = subprocess.Popen(command(sys.executable, "-m", "training.main", *args), cwd=REPO, env=ENV,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed = tmp_path / "killed"
    deadline = time.monotonic() + 240
    try:
        while not ((killed / "train_state.pt").exists() and train_state(killed)["step"] >= 4):
            assert process.poll() is None, "the run ended before a checkpoint was seen"
            assert time.monotonic() < deadline, "no checkpoint within 4 minutes"
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    saved = train_state(killed)["step"]
    assert 4 <= saved < steps and saved % 4 == 0
    load_checkpoint(killed / "checkpoint.safetensors")  # the kill left a usable checkpoint

    subprocess.run(command(sys.executable, "-m", "training.main", *args), cwd=REPO, env=ENV, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    assert f"resumed from {killed / 'train_state.pt'} at step {saved}" in (killed / "train.log").read_text()
    assert train_state(killed)["step"] == steps

    # The interrupted run ends exactly where an uninterrupted one does.
    reference = tmp_path / "reference"
    run_main(*vae_args(four_pairs, reference, steps, "--batch-size", 1, "--ckpt-every", 4, "--log-every", 20))
    resumed, straight = load_file(killed / "checkpoint.safetensors"), load_file(reference / "checkpoint.safetensors")
    assert all(torch.equal(resumed[key], straight[key]) for key in straight)


@pytest.mark.slow
def test_two_process_gloo_ddp_run(four_pairs, tmp_path):
    out = tmp_path / "ddp"
    result = subprocess.run(
        command(sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                "-m", "training.main", *vae_args(four_pairs, out, 4, "--batch-size", 1, "--ckpt-every", 2)),
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    state = train_state(out)
    assert state["step"] == 4 and len(state["rng"]) == 2  # both ranks' random streams were saved
    assert "2 process(es)" in (out / "train.log").read_text()
    assert load_checkpoint(out / "checkpoint.safetensors").stage == "vae"
    assert not [path.name for path in out.iterdir() if path.name.startswith(".")]  # no stray temp files


@pytest.mark.slow
def test_evaluator_ranks_matched_text_motion_pairs(tmp_path):
    data, out = tmp_path / "procedural", tmp_path / "evaluator"
    run_main("evaluator", "--dataset", "synthetic", "--data-root", data, "--synthetic-samples", 160,
             "--preset", "tiny", "--out", out, "--steps", 300, "--batch-size", 32, "--lr", 1e-3,
             "--max-frames", 60, "--ckpt-every", 300, "--log-every", 100)
    assert "generating 160 procedural samples" in (out / "train.log").read_text()

    evaluator = load_evaluator(out / "evaluator.ckpt").model
    test_set = InterHumanDataset(data, split="test", max_len=60, seed=0, mirror=False, swap_persons=False)
    normalizer = representation_of("synthetic", data).normalizer  # the dataset's own statistics
    with torch.no_grad():
        batch = next(iter(make_loader(test_set, len(test_set), shuffle=False, seed=0)))
        motion, mask = raw_motion(batch, normalizer, "cpu")
        distances = torch.cdist(evaluator.encode_text(tokenize(batch["texts"])), evaluator.encode_motion(motion, mask))
    ranks = (distances < distances.diagonal()[:, None]).sum(dim=1).float()  # 0 = own motion is nearest
    chance_rank, chance_top1 = (len(ranks) - 1) / 2, 1 / len(ranks)
    assert float(ranks.mean()) < 0.5 * chance_rank, ranks.tolist()
    assert float((ranks == 0).float().mean()) > 2 * chance_top1, ranks.tolist()


def test_params_prints_counts_per_module_without_clip(capsys):
    main(["params", "--preset", "tiny"])
    counts = json.loads(capsys.readouterr().out)
    assert counts["total"] == counts["vae"] + counts["denoiser"] + counts["text"]
    assert counts["total"] == count_parameters(build_model("tiny"))["total"]
    main(["params", "--preset", "paper"])
    paper = json.loads(capsys.readouterr().out)
    assert 50e6 <= paper["total"] <= 62e6
    assert paper["text"] < 10e6  # the 123M-parameter frozen CLIP tower is not counted
