"""``python -m training.demo`` writes its model into --out and never into the package."""
import argparse
import hashlib
import json

import pytest
import torch

from dhvae_sdk import Generator
from dhvae_sdk.checkpoint import load_checkpoint
from dhvae_sdk.runtime.selection import DEMO_CHECKPOINT, assets_directory
from training import demo
from training import main as training_main
from training.main import RUN_FILE, TRAIN_STATE_FILE
from training.recipe import RECIPE, SAMPLING_TEMPERATURE, RecipeRun, add_recipe_arguments, recipe_run
from training.data.synthetic import generate_dataset


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_demo_build_writes_a_loadable_half_precision_model_into_out_only(tmp_path, capsys):
    embedded = assets_directory() / DEMO_CHECKPOINT
    before = digest(embedded)
    out = tmp_path / "demo"
    generate_dataset(out / "data", 12, 0, 1)  # present data is used as it is, not regenerated
    demo.main(["--out", str(out), "--vae-steps", "1", "--contact-steps", "1", "--denoiser-steps", "1",
               "--max-frames", "40"])
    built = out / DEMO_CHECKPOINT
    checkpoint = load_checkpoint(built)
    assert checkpoint.stage == "denoiser" and checkpoint.config.preset == "tiny"
    # The recipe's chain: the VAE, its hand-contact fine-tune, the denoiser on that.
    assert checkpoint.config.vae.latent_tokens == 4 and checkpoint.config.loss.recon_loss == "berhu"
    contact = load_checkpoint(out / "contact" / "checkpoint.safetensors")
    assert (contact.config.loss.w_hand_contact, contact.config.loss.hand_contact_points) == (1.0, "hand_ends")
    # Both VAE stages: no triplet (its gradient is ~2e-4 of the rest's) and the metre-space joint term.
    for vae_stage in (contact, load_checkpoint(out / "vae" / "checkpoint.safetensors")):
        assert (vae_stage.config.loss.w_tri, vae_stage.config.loss.w_joint_metres) == (0.0, 5.0)
    denoiser_vae = load_checkpoint(out / "denoiser" / "checkpoint.safetensors").model.vae.state_dict()
    assert all(torch.equal(value, denoiser_vae[key]) for key, value in contact.model.vae.state_dict().items())
    first_vae = load_checkpoint(out / "vae" / "checkpoint.safetensors").model.vae.state_dict()
    assert not all(torch.equal(value, denoiser_vae[key]) for key, value in first_vae.items())  # the fine-tune trained
    # The recipe's denoiser samples at its temperature and checkpoints the moving average of its weights.
    assert checkpoint.config.denoiser.temperature == SAMPLING_TEMPERATURE < 1.0
    assert torch.load(out / "denoiser" / TRAIN_STATE_FILE, weights_only=True)["weight_average"]["updates"] == 1
    contact_log = (out / "contact" / "train.log").read_text()
    assert f"VAE weights from {out / 'vae' / 'checkpoint.safetensors'}" in contact_log
    assert {p.dtype for p in checkpoint.model.parameters()} == {torch.float32}  # widened on load
    assert built.stat().st_size < 0.6 * sum(p.numel() * 4 for p in checkpoint.model.parameters())  # stored fp16
    assert digest(embedded) == before
    printed = capsys.readouterr().out
    assert f"cp {built} dhvae_sdk/assets/{DEMO_CHECKPOINT}" in printed
    [motion] = Generator.from_pretrained(built, backend="torch").generate("two people shake hands", frames=20, seed=0)
    assert motion.joints.shape == (20, 2, 22, 3)
    # A rerun of a finished build trains nothing (no stage log grows) and embeds the same model.
    logs = {stage.name: (out / stage.name / "train.log").read_text() for stage in RECIPE}
    demo.main(["--out", str(out), "--vae-steps", "1", "--contact-steps", "1", "--denoiser-steps", "1",
               "--max-frames", "40"])
    assert {stage.name: (out / stage.name / "train.log").read_text() for stage in RECIPE} == logs
    rebuilt = load_checkpoint(built).model.state_dict()
    assert all(torch.equal(value, rebuilt[key]) for key, value in checkpoint.model.state_dict().items())


def test_processes_share_each_stage_batch_and_must_divide_it(tmp_path, capsys):
    run = RecipeRun(out=tmp_path, data_root=tmp_path / "data", processes=2)
    per_process = {}
    for stage in RECIPE:
        argv = run.argv(stage)
        assert argv.count("--batch-size") == 1
        per_process[stage.name] = int(argv[argv.index("--batch-size") + 1])
    assert per_process == {"vae": 8, "contact": 8, "denoiser": 32}  # the recipe's 16, 16 and 64 over two
    with pytest.raises(SystemExit):
        demo.main(["--out", str(tmp_path), "--processes", "3"])
    refusal = "--processes must divide every stage's batch (16, 64), got 3; use one of 1, 2, 4, 8, 16"
    assert refusal in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # refused before any stage ran


def test_an_ablation_replaces_options_of_both_vae_stages_only(tmp_path):
    run = RecipeRun(out=tmp_path, data_root=tmp_path / "data", seed=2,
                    vae_overrides={"--w-tri": "1e-4", "--vae-kind": "flat"})
    argvs = {stage.name: run.argv(stage) for stage in RECIPE}
    for name, argv in argvs.items():
        options = dict(zip(argv[1::2], argv[2::2]))
        assert len(options) == (len(argv) - 1) // 2  # every option once: no earlier value left for argparse to drop
        assert options["--seed"] == "2" and options["--out"] == str(tmp_path / name)
        if name == "denoiser":
            assert "--w-tri" not in options and "--vae-kind" not in options
            assert options["--vae"] == str(tmp_path / "contact" / "checkpoint.safetensors")
        else:
            assert (options["--w-tri"], options["--vae-kind"]) == ("1e-4", "flat")
    assert dict(zip(argvs["contact"][1::2], argvs["contact"][2::2]))["--hand-contact-points"] == "hand_ends"


def test_the_small_recipe_runs_every_stage_on_the_small_preset(tmp_path):
    parser = argparse.ArgumentParser()
    add_recipe_arguments(parser)
    run = recipe_run(parser, parser.parse_args(["--preset", "small"]), out=tmp_path, data_root=tmp_path / "data")
    tiny = RecipeRun(out=tmp_path, data_root=tmp_path / "data")
    for stage in RECIPE:
        small_options, tiny_options = (dict(zip(argv[1::2], argv[2::2]))
                                       for argv in (run.argv(stage), tiny.argv(stage)))
        assert small_options.pop("--preset") == "small" and tiny_options.pop("--preset") == "tiny"
        assert small_options == tiny_options
    with pytest.raises(SystemExit):
        parser.parse_args(["--preset", "paper"])  # the released size is not a CPU recipe
    (tmp_path / "vae").mkdir()  # a tiny run's first stage, its options recorded and a training state saved
    (tmp_path / "vae" / RUN_FILE).write_text(json.dumps(training_main.parse(tiny.argv(RECIPE[0])).identity()))
    (tmp_path / "vae" / TRAIN_STATE_FILE).write_bytes(b"")
    with pytest.raises(SystemExit, match=r"holds a run with other options \(preset: 'tiny' -> 'small'\)"):
        run.train()
    assert sorted(path.name for path in (tmp_path / "vae").iterdir()) == [RUN_FILE, TRAIN_STATE_FILE]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["vae"]  # refused before any stage ran
