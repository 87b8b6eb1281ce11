"""The training program end to end on tiny data: learning, checkpoints, resume, DDP, evaluator.

Runs use the tiny preset, one torch thread per process (the test machine's cores are shared)
and FK-built pairs (tests/fk_motions.py) or a small procedural dataset.
"""
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dhvae_sdk.checkpoint import load_checkpoint, save_checkpoint
from dhvae_sdk.evaluation.evaluator_checkpoint import load_evaluator
from dhvae_sdk.models import build_model, count_parameters, empty_text_tokens, get_preset, scale_latents
from dhvae_sdk.models import tokenize as tokenize_clip
from dhvae_sdk.models.evaluator import tokenize
from tests.fk_motions import write_interhuman
from training.data import InterHumanDataset, make_loader
from training.data.interhuman import STATS_FILES
from training.main import main
from training.options import TrainOptions, build_parser, parse_options
from training.stages.common import representation_of
from training.stages.denoiser import RELEASE_LATENT_SCALES, DenoiserObjective, sample_stds
from training.trainer import LoopConfig, WeightAverage, lr_factor
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
    """A tiny VAE run without the triplet term, which doubles a step and barely moves the weights
    (``LossConfig``); tests/test_losses.py covers the term."""
    return ["vae", "--dataset", "interhuman", "--data-root", data, "--preset", "tiny", "--out", out,
            "--steps", steps, "--w-tri", 0, *extra]


# The tests of the run below: one scheduling group (tests/conftest.py), so one worker trains it.
VAE_RUN = pytest.mark.xdist_group("training-vae-run")


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory, two_pairs) -> Path:
    """A tiny VAE overfitted to two pairs (held-out split = the same pairs, unaugmented)."""
    out = tmp_path_factory.mktemp("vae") / "run"
    run_main(*vae_args(two_pairs, out, 200, "--batch-size", 2, "--lr", 3e-3, "--no-augment",
                       "--eval-every", 200, "--ckpt-every", 100, "--log-every", 100))
    return out


@pytest.mark.slow
@VAE_RUN
def test_vae_overfits_a_few_samples(vae_run):
    first, last = history(vae_run)[0], history(vae_run)[-1]
    assert (first["step"], last["step"]) == (0, 200)
    # Measured: 1.03 -> 0.11 m and 1.05 -> 0.46 (rotations learn slower); 1.05 -> 0.11 m with the triplet.
    assert last["mpjpe_m"] <= first["mpjpe_m"] / 5, history(vae_run)
    assert last["feature_l1"] <= first["feature_l1"] / 2, history(vae_run)
    log = (vae_run / "train.log").read_text()
    assert "samples_per_s=" in log and "eval feature_l1=" in log
    assert any((vae_run / "tb").iterdir())


@VAE_RUN
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


def denoiser_args(data: Path, vae_run: Path, out: Path, steps: int, *extra) -> list:
    return ["denoiser", "--dataset", "interhuman", "--data-root", data, "--preset", "tiny", "--out", out,
            "--vae", vae_run / "checkpoint.safetensors", "--steps", steps, *extra]


@VAE_RUN
def test_denoiser_loss_falls_and_checkpoint_holds_the_scales(vae_run, two_pairs, tmp_path):
    out = tmp_path / "denoiser"
    run_main(*denoiser_args(two_pairs, vae_run, out, 150, "--batch-size", 8, "--lr", 2e-3, "--latent-views", 4,
                            "--eval-every", 150, "--ckpt-every", 150, "--log-every", 50))
    first, last = history(out)[0], history(out)[-1]
    assert last["denoising_loss"] < 0.5 * first["denoising_loss"], history(out)

    checkpoint = load_checkpoint(out / "checkpoint.safetensors")
    assert checkpoint.stage == "denoiser"
    cache = load_file(out / "latents.safetensors")
    width = checkpoint.config.vae.latent_dim
    # 2 pairs x 4 views, groups a, b, g: the posterior (mean, logvar) the steps sample from.
    assert {key: tuple(value.shape) for key, value in cache.items()} == {"mean": (8, 3, width), "logvar": (8, 3, width)}
    torch.testing.assert_close(checkpoint.latent_scales, torch.tensor([1.0, 1.0, 0.2]))
    frozen_vae = load_checkpoint(vae_run / "checkpoint.safetensors").model.vae.state_dict()
    assert all(torch.equal(value, frozen_vae[key]) for key, value in checkpoint.model.vae.state_dict().items())


@VAE_RUN
def test_vae_stage_fine_tunes_from_a_vae_checkpoint(vae_run, two_pairs, tmp_path):
    trained = vae_run / "checkpoint.safetensors"
    out = tmp_path / "fine-tuned"
    run_main(*vae_args(two_pairs, out, 2, "--vae", trained, "--batch-size", 2, "--lr", 1e-5, "--no-augment",
                       "--w-hand-contact", 3, "--eval-every", 2, "--log-every", 1))
    # Step 0 evaluates the copied weights on the same held-out pairs: the trained run's last numbers.
    start, end = history(out)[0], history(vae_run)[-1]
    assert start["step"] == 0 and start["mpjpe_m"] == pytest.approx(end["mpjpe_m"], rel=1e-4)
    assert f"VAE weights from {trained}" in (out / "train.log").read_text()
    assert load_checkpoint(out / "checkpoint.safetensors").config.loss.w_hand_contact == 3.0
    with pytest.raises(SystemExit, match=r"another VAE architecture \(\{'latent_tokens': \(1, 2\)\}"):
        run_main(*vae_args(two_pairs, tmp_path / "other", 1, "--vae", trained, "--latent-tokens", 2))
    # Data normalized otherwise would feed the copied weights inputs they never saw.
    restated = tmp_path / "restated"
    shutil.copytree(two_pairs, restated)
    published = representation_of("interhuman").normalizer
    for name, values in zip(STATS_FILES, (published.mean + 1.0, published.std)):
        np.save(restated / name, values)
    with pytest.raises(SystemExit, match=f"trained on other feature statistics than {restated}'s"):
        run_main(*vae_args(restated, tmp_path / "restated-run", 1, "--vae", trained))


@VAE_RUN
def test_latent_scales_std_option_and_denoiser_resume(vae_run, two_pairs, tmp_path):
    out = tmp_path / "std_scales"
    for steps in (2, 4):  # the second run resumes the first
        run_main(*denoiser_args(two_pairs, vae_run, out, steps, "--batch-size", 4, "--latent-scales", "std",
                                "--ckpt-every", 2))
    assert f"resumed from {out / 'train_state.pt'} at step 2" in (out / "train.log").read_text()
    assert train_state(out)["step"] == 4
    stds = sample_stds(load_file(out / "latents.safetensors"), 1)
    torch.testing.assert_close(load_checkpoint(out / "checkpoint.safetensors").latent_scales, stds)
    assert not torch.allclose(stds, torch.tensor(RELEASE_LATENT_SCALES))


def test_weight_average_ramps_its_decay_and_swaps_the_trained_weights_back():
    module = torch.nn.Linear(2, 1)
    module.bias.requires_grad_(False)  # frozen parameters are not averaged
    start = module.weight.detach().clone()
    average = WeightAverage(module, decay=0.9)
    with torch.no_grad():
        module.weight.fill_(1.0)
    average.update()  # first update: decay (1 + 1) / (10 + 1), not 0.9
    expected = start * (2 / 11) + 1.0 * (9 / 11)
    torch.testing.assert_close(average.average["weight"], expected)
    assert set(average.average) == {"weight"}
    with average.applied():
        torch.testing.assert_close(module.weight.detach(), expected)
    assert torch.equal(module.weight.detach(), torch.ones(1, 2))
    for _ in range(100):  # past the ramp, each update keeps 0.9 of the average
        average.update()
    previous = average.average["weight"].clone()
    average.update()
    torch.testing.assert_close(average.average["weight"], 0.9 * previous + 0.1)
    with pytest.raises(ValueError, match=r"--average-decay must lie in \[0, 1\)"):
        LoopConfig(average_decay=1.0)


@VAE_RUN
def test_average_decay_checkpoints_the_average_and_resumes_it(vae_run, two_pairs, tmp_path):
    out, straight = tmp_path / "averaged", tmp_path / "straight"
    for steps in (2, 4):  # the second run resumes the first, average included
        run_main(*denoiser_args(two_pairs, vae_run, out, steps, "--batch-size", 4, "--lr", 1e-2,
                                "--average-decay", 0.99, "--ckpt-every", 2))
    run_main(*denoiser_args(two_pairs, vae_run, straight, 4, "--batch-size", 4, "--lr", 1e-2,
                            "--average-decay", 0.99, "--ckpt-every", 2))
    resumed, reference = load_file(out / "checkpoint.safetensors"), load_file(straight / "checkpoint.safetensors")
    assert all(torch.equal(resumed[key], reference[key]) for key in reference)

    state = train_state(out)
    assert state["weight_average"]["updates"] == 4
    denoiser = load_checkpoint(out / "checkpoint.safetensors").model.denoiser.state_dict()
    average, trained = state["weight_average"]["average"], state["model"]
    prefix = next(name for name in average if name.endswith("denoiser.head.weight"))[:-len("head.weight")]
    names = [name for name in average if name.startswith(prefix)]
    assert names and all(torch.equal(denoiser[name[len(prefix):]], average[name]) for name in names)
    assert not all(torch.equal(average[name], trained[name]) for name in names)


@VAE_RUN
def test_prediction_and_sampling_options_change_the_config_and_keep_the_vae(vae_run, two_pairs, tmp_path):
    out = tmp_path / "epsilon"
    run_main(*denoiser_args(two_pairs, vae_run, out, 2, "--batch-size", 4, "--prediction", "epsilon",
                            "--temperature", "0.7", "--guidance", "2"))
    trained = load_checkpoint(out / "checkpoint.safetensors")
    vae = load_checkpoint(vae_run / "checkpoint.safetensors")
    # The tiny preset predicts x0 and samples from unit noise; the options override both for this run only.
    assert (trained.config.denoiser.prediction, vae.config.denoiser.prediction) == ("epsilon", "x0")
    assert (trained.config.denoiser.temperature, vae.config.denoiser.temperature) == (0.7, 1.0)
    assert (trained.config.denoiser.guidance, vae.config.denoiser.guidance) == (2.0, 3.5)
    # The config refuses a temperature out of range before the latents are encoded.
    refused = tmp_path / "too_hot"
    with pytest.raises(SystemExit, match="denoiser.temperature must be from 0 to 2, got 2.5"):
        run_main(*denoiser_args(two_pairs, vae_run, refused, 2, "--batch-size", 4, "--temperature", "2.5"))
    assert not (refused / "latents.safetensors").exists()
    kept = trained.model.vae.state_dict()
    assert all(torch.equal(value, kept[key]) for key, value in vae.model.vae.state_dict().items())
    objective = DenoiserObjective(trained.model, trained.latent_scales)
    latents, noise = torch.randn(2, 3, 64), torch.randn(2, 3, 64)
    x0 = scale_latents(latents, trained.latent_scales, 1)
    torch.testing.assert_close(objective.scheduler.training_target(x0, noise, torch.tensor([5, 900])), noise)


@VAE_RUN
def test_denoiser_layers_option_trains_a_denoiser_of_that_depth(vae_run, two_pairs, tmp_path):
    out = tmp_path / "deeper"
    run_main(*denoiser_args(two_pairs, vae_run, out, 2, "--batch-size", 4, "--denoiser-layers", 6))
    trained = load_checkpoint(out / "checkpoint.safetensors")
    vae = load_checkpoint(vae_run / "checkpoint.safetensors")
    assert (trained.config.denoiser.layers, vae.config.denoiser.layers) == (6, 4)
    assert len(trained.model.denoiser.layers) == len(vae.model.denoiser.layers) + 2
    kept = trained.model.vae.state_dict()
    assert all(torch.equal(value, kept[key]) for key, value in vae.model.vae.state_dict().items())
    # The depth is part of the run's identity: resuming with another refuses.
    with pytest.raises(SystemExit, match="denoiser_layers"):
        run_main(*denoiser_args(two_pairs, vae_run, out, 4, "--batch-size", 4, "--denoiser-layers", 5))
    with pytest.raises(SystemExit, match="--denoiser-layers"):
        run_main(*denoiser_args(two_pairs, vae_run, tmp_path / "none", 2, "--denoiser-layers", 0))


def test_sample_stds_follow_the_law_of_total_variance():
    mean = torch.zeros(4, 3, 2)
    mean[:2, 0], mean[2:, 0] = 1.0, -1.0  # group a: means +-1 (variance 1), posterior variance 1
    logvar = torch.zeros(4, 3, 2)
    logvar[:, 1] = float(np.log(4.0))  # group b: means 0, posterior variance 4
    logvar[:, 2] = -30.0  # group g: a point mass at 0
    stds = sample_stds({"mean": mean, "logvar": logvar}, 1)
    torch.testing.assert_close(stds, torch.tensor([2 ** 0.5, 2.0, 0.0]), atol=1e-6, rtol=0)


def test_denoiser_objective_samples_the_posterior_and_drops_text_to_the_empty_string():
    model = build_model("tiny").eval()
    objective = DenoiserObjective(model, torch.tensor(RELEASE_LATENT_SCALES))
    texts = ["two people shake hands", "one pushes the other"]
    tokens = objective.text_tokens(texts, torch.tensor([True, False]))
    torch.testing.assert_close(tokens[0], empty_text_tokens(1)[0])
    torch.testing.assert_close(tokens[1], tokenize_clip(texts[1:])[0])

    batch = {"mean": torch.randn(2, 3, 64), "logvar": torch.full((2, 3, 64), -1.0), "texts": texts}
    torch.manual_seed(3)
    loss = objective(batch)["loss"]
    torch.manual_seed(3)  # replay forward's draws in its order: sample, timesteps, text dropout, noise
    latents = batch["mean"] + torch.exp(0.5 * batch["logvar"]) * torch.randn(2, 3, 64)
    timesteps = torch.randint(0, 1000, (2,))
    drop = torch.rand(2) < model.config.denoiser.cond_drop
    expected = objective.denoising_loss(latents, texts, torch.randn(2, 3, 64), timesteps, drop)
    torch.testing.assert_close(loss, expected)
    scaled = scale_latents(latents, torch.tensor(RELEASE_LATENT_SCALES), 1)
    torch.testing.assert_close(scaled[:, 2], 5 * latents[:, 2])  # z_g x 5 in denoiser space


def test_release_lr_schedule_is_flat_for_ten_epochs_then_halves_every_thousand():
    factor = lr_factor(LoopConfig(lr_schedule="release"), steps_per_epoch=4)
    assert [factor(step) for step in (0, 39, 40, 43)] == [1.0, 1.0, 1.0, 1.0]
    assert factor(44) == pytest.approx(0.5 ** (1 / 1000))
    assert factor(4 * 1010) == pytest.approx(0.5)
    cosine = lr_factor(LoopConfig(lr_schedule="cosine", steps=100, warmup_steps=10), steps_per_epoch=4)
    assert (cosine(0), cosine(9), cosine(99)) == (pytest.approx(0.1), 1.0, pytest.approx(0.1, abs=1e-3))


def test_same_seed_gives_bit_identical_weights(four_pairs, tmp_path):
    weights = {}
    for name, seed in (("first", 0), ("second", 0), ("other_seed", 1)):
        run_main(*vae_args(four_pairs, tmp_path / name, 3, "--batch-size", 2, "--seed", seed, "--ckpt-every", 3))
        weights[name] = load_file(tmp_path / name / "checkpoint.safetensors")
    assert all(torch.equal(weights["first"][key], weights["second"][key]) for key in weights["first"])
    assert not all(torch.equal(weights["first"][key], weights["other_seed"][key]) for key in weights["first"])


@VAE_RUN
def test_restart_with_other_options_is_refused(vae_run, two_pairs):
    with pytest.raises(SystemExit, match="lr"):
        run_main(*vae_args(two_pairs, vae_run, 200, "--batch-size", 2, "--lr", 1e-4, "--no-augment"))


def test_one_options_dataclass_makes_the_command_line_and_the_run_identity():
    parser = build_parser("p", "d")
    flags = {flag for action in parser._actions for flag in action.option_strings} - {"-h", "--help"}
    names = [item.name for item in dataclasses.fields(TrainOptions)]
    assert flags == {"--" + name.replace("_", "-") for name in names if name != "stage"}
    options = parse_options(["denoiser", "--preset", "tiny", "--data-root", "d", "--out", "o", "--vae", "v.safetensors",
                             "--no-augment", "--lr", "1e-3"], "p", "d")
    assert (options.batch_size, options.lr_schedule, options.grad_clip) == (64, "release", 0.0)  # the stage's
    assert (options.vae, options.no_augment, options.steps, options.threads) == (Path("v.safetensors"), True, 10000, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.lr = 1.0
    # The run.json of a run started before the options became a dataclass (runs/demo/vae/run.json).
    recorded = {"stage": "vae", "preset": "tiny", "dataset": "synthetic", "data_root": "/data", "seed": 0,
                "batch_size": 32, "lr": 0.001, "lr_schedule": "release", "max_frames": 120, "no_augment": False,
                "vae": None, "vae_kind": None, "w_tri": None, "clip_weights": None, "latent_views": 4,
                "latent_scales": "release"}
    same = parse_options(["vae", "--preset", "tiny", "--dataset", "synthetic", "--data-root", "/data", "--out", "o",
                          "--lr", "1e-3", "--max-frames", "120", "--steps", "5", "--threads", "2"], "p", "d")
    added_later = {"w_joint": None, "latent_tokens": None, "recon_loss": None, "w_distance_map": None,
                   "w_hand_contact": None, "hand_contact_points": None, "w_joint_metres": None, "w_kl": None, "prediction": None,
                   "denoiser_layers": None, "average_decay": 0.0}
    assert same.identity() == {**recorded, **added_later} and same.identity_changes(recorded) == {}
    older = {key: value for key, value in recorded.items() if key != "latent_scales"}
    assert same.identity_changes(older) == {}  # an option the record predates counts at its default
    assert dataclasses.replace(same, lr=1e-4, seed=2).identity_changes(recorded) == {"seed": (0, 2), "lr": (0.001, 1e-4)}


def test_a_path_reached_through_a_link_is_the_same_identity(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    real, alias = tmp_path / "real", tmp_path / "alias"

    def options(root: Path, vae: Path) -> TrainOptions:
        return parse_options(["denoiser", "--preset", "tiny", "--data-root", str(root), "--out", "o",
                              "--vae", str(vae)], "p", "d")

    recorded = options(real / "data", real / "contact" / "checkpoint.safetensors").identity()
    assert options(alias / "data", alias / "contact" / "checkpoint.safetensors").identity_changes(recorded) == {}
    other = options(real / "other", real / "contact" / "checkpoint.safetensors")
    assert other.identity_changes(recorded) == {"data_root": (str(real / "data"), str(real / "other"))}


def test_loss_options_reach_the_saved_config(four_pairs, tmp_path):
    run_main(*vae_args(four_pairs, tmp_path / "run", 1, "--batch-size", 1, "--w-joint", 2.5, "--w-tri", 2e-4,
                       "--recon-loss", "berhu", "--latent-tokens", 2, "--w-distance-map", 1.5,
                       "--w-hand-contact", 3, "--hand-contact-points", "hand_ends", "--w-joint-metres", 4,
                       "--w-kl", 1e-6))
    config = load_checkpoint(tmp_path / "run" / "checkpoint.safetensors").config
    loss = config.loss
    assert (loss.w_joint, loss.w_tri, loss.w_rec, loss.recon_loss, loss.w_distance_map, loss.w_hand_contact,
            loss.hand_contact_points, loss.w_joint_metres, loss.w_kl) == (2.5, 2e-4, 0.5, "berhu", 1.5, 3.0, "hand_ends",
                                                                          4.0, 1e-6)
    assert config.vae.latent_tokens == 2 and get_preset("tiny").vae.latent_tokens == 1
    # InterX features carry no joint positions to measure the two bodies' distances on.
    with pytest.raises(SystemExit, match="--w-hand-contact and --w-joint-metres need joint positions, which the inter"):
        run_main("vae", "--dataset", "interx", "--data-root", tmp_path / "interx", "--preset", "tiny",
                 "--out", tmp_path / "interx-run", "--steps", 1, "--w-hand-contact", 1, "--w-joint-metres", 1)


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
    steps = 24
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
             "--preset", "tiny", "--out", out, "--steps", 300, "--batch-size", 16, "--lr", 1e-3,
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


def test_params_prints_counts_per_module_and_the_release_count(capsys):
    main(["params", "--preset", "tiny"])
    counts = json.loads(capsys.readouterr().out)
    assert counts["total"] == counts["vae"] + counts["denoiser"] + counts["text"]
    assert counts["total"] == count_parameters(build_model("tiny"))["total"]
    assert counts["trainable"]["text"] == counts["text"]  # tiny trains its whole tower
    main(["params", "--preset", "paper"])
    paper = json.loads(capsys.readouterr().out)
    assert paper["release_layout_vae_denoiser"] == 56_425_996  # the paper's "56M"
    assert (paper["vae"], paper["denoiser"]) == (31_362_828, 19_301_888)
    tower = paper["breakdown"]["text"]["tower"]
    assert tower == 123_060_480  # CLIP ViT-L/14's text tower, frozen but for its positions
    assert paper["trainable"]["text"] == paper["text"] - tower + 77 * 768
