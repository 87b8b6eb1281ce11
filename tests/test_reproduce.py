"""``benchmarks/reproduce.py``: the ablation's models per seed, and their mean over seeds."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks import reproduce
from benchmarks.quality_report import json_ready
from dhvae_sdk.checkpoint import load_checkpoint
from training import main as training_main
from training.data.synthetic import generate_dataset
from training.recipe import RECIPE, SAMPLING_GUIDANCE, SAMPLING_TEMPERATURE, RecipeRun

ONE_STEP = ["--vae-steps", "1", "--contact-steps", "1", "--denoiser-steps", "1", "--max-frames", "40"]
QUICK = ["--replications", "2", "--batch-size", "4", "--sampling-steps", "2", "--mmodality-texts", "2",
         "--mmodality-repeats", "11", "--diversity-pairs", "2"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("reproduction")
    generate_dataset(root / "data", 40, 0, 1)
    reproduce.main(["train", "--out", str(root / "runs"), "--data-root", str(root / "data"), "--seeds", "0", "1",
                    "--models", "no_triplet", *ONE_STEP])
    return root


def test_each_seed_trains_its_own_model_with_the_ablations_options(trained):
    seeds = [load_checkpoint(trained / "runs" / "no_triplet" / f"seed{seed}" / "denoiser" / "checkpoint.safetensors")
             for seed in (0, 1)]
    assert [json.loads((trained / "runs" / "no_triplet" / f"seed{seed}" / "vae" / "run.json").read_text())["seed"]
            for seed in (0, 1)] == [0, 1]
    assert all(checkpoint.config.loss.w_tri == 0.0 for checkpoint in seeds)
    first, second = (checkpoint.model.vae.state_dict() for checkpoint in seeds)
    assert not all(np.array_equal(value.numpy(), second[key].numpy()) for key, value in first.items())


@pytest.fixture(scope="module")
def reported(trained):
    """The report of two finished seeds (and one model never trained), geometry's sampling recorded."""
    measure_geometry, sampling = reproduce.geometry.run, []

    def recording_geometry(*args, guidance=None, temperature=None, **kwargs):
        sampling.append((guidance, temperature))
        return measure_geometry(*args, guidance=guidance, temperature=temperature, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reproduce.geometry, "run", recording_geometry)
        result = reproduce.main(report_argv(trained, "no_triplet", "flat"))
    return result, sampling


def report_argv(root, *models, seeds=("0", "1")):
    return ["report", "--out", str(root / "runs"), "--data-root", str(root / "data"), "--seeds", *seeds,
            "--models", *models, "--json", str(root / "reproduction.json"), "--results", str(root / "measured"),
            *ONE_STEP, *QUICK]


def later_session(trained, tmp_path):
    """A machine that kept only the data and the committed measurements, no trained model."""
    later = tmp_path / "later"
    shutil.copytree(trained / "data", later / "data")
    shutil.copytree(trained / "measured", later / "measured")
    return later


def test_report_averages_each_model_over_its_finished_seeds(trained, reported):
    result, sampling = reported
    assert result["missing"] == ["flat seed 0", "flat seed 1"]  # not trained: left out, and said so
    row = result["rows"]["DHVAE w/o triplet (2 seeds)"]
    assert set(row["seeds"]) == {0, 1} and set(result["rows"]) == {"Ground truth", "DHVAE w/o triplet (2 seeds)"}
    for metric in ("fid", "r_precision_top3", "mpjpe", "geometry"):
        values = [row["seeds"][seed]["metrics"][metric] for seed in (0, 1)]
        assert row["summary"][metric]["mean"] == pytest.approx(np.mean(values))
        assert row["summary"][metric]["ci95"] > 0 or values[0] == values[1]
    assert 0.0 <= row["summary"]["geometry"]["mean"] <= 1.0
    meta = json.loads((trained / "data" / "synthetic_meta.json").read_text())
    assert 0 < len(row["seeds"][0]["geometry_per_type"]) and \
        set(row["seeds"][0]["geometry_per_type"]) <= {entry["interaction"] for entry in meta.values()}
    table = (trained / "reproduction.md").read_text()
    assert "| DHVAE w/o triplet (2 seeds) |" in table and "Geometry pass" in table
    saved = json.loads((trained / "reproduction.json").read_text())
    assert saved["settings"]["training_seeds"] == [0, 1] and saved["settings"]["recipe_steps"]["denoiser"] == 1
    assert saved["settings"]["recipe_preset"] == "tiny"
    # What each stage trained with, as its run.json says, without the machine's paths or the seed.
    # The options the ablation's models differ in are the model's row's, the rest shared.
    trained_with = saved["settings"]["recipe_options"]
    own = saved["rows"]["DHVAE w/o triplet (2 seeds)"]["recipe_options"]
    assert own["vae"] == own["contact"] == {"vae_kind": None, "w_tri": 0.0}
    assert trained_with["contact"]["w_hand_contact"] == 1.0 and "w_tri" not in trained_with["contact"]
    assert (trained_with["denoiser"]["latent_scales"], trained_with["denoiser"]["denoiser_layers"]) == ("std", None)
    assert not {"data_root", "vae", "seed"} & {name for options in trained_with.values() for name in options}
    # Both benchmarks sample at the recipe's temperature and guidance, departures from the protocol.
    assert (saved["settings"]["guidance"], saved["settings"]["temperature"]) == (SAMPLING_GUIDANCE, SAMPLING_TEMPERATURE)
    assert sampling == [(SAMPLING_GUIDANCE, SAMPLING_TEMPERATURE)] * 2
    assert f"temperature: {SAMPLING_TEMPERATURE} (protocol: 1.0)" in saved["settings"]["deviations"]
    assert f"guidance: {SAMPLING_GUIDANCE} (protocol: 3.5)" in saved["settings"]["deviations"]


def test_measurements_outlive_the_trained_models(trained, reported, tmp_path, capsys):
    """A later session still reports every measured seed."""
    result, _ = reported
    later = later_session(trained, tmp_path)
    assert sorted(path.name for path in (later / "measured").iterdir()) == ["no_triplet_seed0.json",
                                                                            "no_triplet_seed1.json"]
    again = reproduce.main(report_argv(later, "no_triplet"))  # no runs folder at all
    assert "left out" not in capsys.readouterr().out
    assert json_ready(again["rows"]) == json_ready(result["rows"])  # NaN (no data) compares as null
    reproduce.main(report_argv(later, "no_triplet", "flat"))
    assert "neither measured nor finished, left out: flat seed 0, flat seed 1" in capsys.readouterr().out
    only_one = reproduce.main(report_argv(later, "no_triplet", seeds=("1",)))
    assert set(only_one["rows"]["DHVAE w/o triplet (1 seed)"]["seeds"]) == {1}


@pytest.mark.parametrize("key, stage, option, value", [("recipe_steps", None, "vae", 10000),
                                                       ("recipe_options", "denoiser", "denoiser_layers", 6)])
def test_measurements_taken_differently_are_not_averaged(trained, reported, tmp_path, key, stage, option, value):
    later = later_session(trained, tmp_path)
    path = later / "measured" / "no_triplet_seed1.json"
    for name in ("no_triplet_seed0.json", "no_triplet_seed1.json"):
        measurement = json.loads((later / "measured" / name).read_text())
        measurement["comparable"]["protocol"]["unset"] = None  # null on both sides: no difference
        if name == path.name:
            changed = measurement["comparable"][key]
            (changed if stage is None else changed[stage])[option] = value
        (later / "measured" / name).write_text(json.dumps(measurement))
    with pytest.raises(SystemExit, match=f"measured differently \\({key}\\)"):
        reproduce.main(report_argv(later, "no_triplet"))


def flat_measured_like(later, changes: dict, seeds=(0, 1)):
    """The no_triplet measurements again as the flat VAE's, its VAE stages trained with its options (and changes)."""
    for seed in (0, 1):
        measurement = json.loads((later / "measured" / f"no_triplet_seed{seed}.json").read_text())
        measurement["model"] = "flat"
        for stage in ("vae", "contact"):
            options = measurement["comparable"]["recipe_options"][stage]
            options.update({"vae_kind": "flat", "w_tri": 1e-4, **(changes if seed in seeds else {})})
        (later / "measured" / f"flat_seed{seed}.json").write_text(json.dumps(measurement))


def test_models_are_reported_side_by_side_though_trained_with_their_own_options(trained, reported, tmp_path):
    later = later_session(trained, tmp_path)
    flat_measured_like(later, {})
    both = reproduce.main(report_argv(later, "no_triplet", "flat"))
    assert both["rows"]["Flat VAE (2 seeds)"]["recipe_options"]["contact"] == {"vae_kind": "flat", "w_tri": 1e-4}
    assert both["rows"]["DHVAE w/o triplet (2 seeds)"]["recipe_options"]["contact"] == {"vae_kind": None, "w_tri": 0.0}
    shared = both["settings"]["recipe_options"]["vae"]
    assert shared["lr"] == 1e-3 and not {"vae_kind", "w_tri"} & set(shared)


@pytest.mark.parametrize("changes, seeds, refused, against", [
    ({"lr": 0.01}, (0, 1), "flat_seed0", "no_triplet_seed0"),  # not an option the ablation's models differ in
    ({"w_tri": 0.0}, (1,), "flat_seed1", "flat_seed0"),  # one model's seeds trained differently
])
def test_models_differing_beyond_their_own_options_are_not_reported(trained, reported, tmp_path, changes, seeds,
                                                                     refused, against):
    later = later_session(trained, tmp_path)
    flat_measured_like(later, changes, seeds)
    with pytest.raises(SystemExit, match=f"{refused}.json and .*{against}.json were measured differently "
                                         f"\\(recipe_options\\)"):
        reproduce.main(report_argv(later, "no_triplet", "flat"))


@pytest.mark.parametrize("content", ["{not json", '{"metrics": {}}'])
def test_a_broken_measurement_is_named(trained, reported, tmp_path, content):
    later = later_session(trained, tmp_path)
    (later / "measured" / "no_triplet_seed0.json").write_text(content)
    with pytest.raises(SystemExit, match="no_triplet_seed0.json"):
        reproduce.main(report_argv(later, "no_triplet"))


def test_report_without_finished_models_names_the_train_command(tmp_path, capsys):
    with pytest.raises(SystemExit):
        reproduce.main(["report", "--out", str(tmp_path / "runs"), "--data-root", str(tmp_path / "data"),
                        "--results", str(tmp_path / "measured")])
    assert "no finished model under" in capsys.readouterr().err


RESULTS = Path(reproduce.__file__).parent / "results"
CARRIED_RUNS = sorted((RESULTS / "carried").iterdir())
# The small preset's recipe run (python -m training.demo --preset small --processes 2), carried the same way.
CARRIED_SMALL = RESULTS / "carried_small"


def test_runs_are_carried():
    assert "no_triplet_seed0" in [path.name for path in CARRIED_RUNS]  # the embedded demo's


def assert_resumes_after_its_finished_stages(run: RecipeRun):
    """A run carried up to a stage boundary: copied into an --out it must count as finished up to
    there, with the options the recipe gives that run, and its last finished stage's model must load."""
    finished = [run.finished(stage) for stage in RECIPE]
    assert finished[0] and finished == sorted(finished, reverse=True), finished
    done = RECIPE[:finished.count(True)]
    for stage in done:
        options = training_main.parse(run.argv(stage))
        changed = options.identity_changes(json.loads((run.out / stage.name / training_main.RUN_FILE).read_text()))
        assert set(changed) <= {"data_root", "vae"}, changed  # only the machine's paths differ
    checkpoint = load_checkpoint(run.checkpoint(done[-1].name))
    last_vae_stage = [stage for stage in done if stage.stage == "vae"][-1]
    expected = training_main.parse(run.argv(last_vae_stage))
    assert (checkpoint.stage, checkpoint.config.preset) == (done[-1].stage, run.preset)
    assert checkpoint.config.loss.w_tri == expected.w_tri
    assert checkpoint.config.loss.w_hand_contact == (1.0 if last_vae_stage.name == "contact" else 0.0)
    if checkpoint.stage == "denoiser":  # the sampling defaults the recipe's models record
        sampling = checkpoint.config.denoiser
        assert (sampling.guidance, sampling.temperature) == (SAMPLING_GUIDANCE, SAMPLING_TEMPERATURE)
    assert all(torch.isfinite(value).all() for value in checkpoint.model.state_dict().values())


@pytest.mark.parametrize("carried", CARRIED_RUNS, ids=lambda path: path.name)
def test_a_carried_run_resumes_after_its_finished_stages(carried, tmp_path):
    """benchmarks/results/carried/MODEL_seedN is the reproduction's run of that model and seed."""
    model, seed = carried.name.rsplit("_seed", 1)
    assert_resumes_after_its_finished_stages(
        RecipeRun(out=carried, data_root=tmp_path, seed=int(seed), vae_overrides=reproduce.ABLATION[model][1]))


def test_the_small_recipe_run_is_carried_finished(tmp_path):
    run = RecipeRun(out=CARRIED_SMALL, data_root=tmp_path, preset="small", processes=2)
    assert run.finished(RECIPE[-1])  # every stage: the folder holds the finished small model
    assert_resumes_after_its_finished_stages(run)
