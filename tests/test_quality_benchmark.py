"""benchmarks/quality.py end to end on a tiny dataset, model and evaluator, and its clear errors."""
import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from matplotlib import image

from benchmarks import quality, quality_data
from benchmarks.quality_eval import RunSettings, prepare_reference, reconstruction_quality
from dhvae_sdk.evaluation.evaluator_checkpoint import load_evaluator
from dhvae_sdk.evaluation.metrics import fid, matching_scores
from dhvae_sdk.evaluation.protocol import ProtocolConfig
from dhvae_sdk.physics import PhysicsConfig
from benchmarks.quality_models import ModelUnderTest, parse_model_argument, same_length_groups
from benchmarks.quality_report import COLUMNS, GROUND_TRUTH, format_cell, json_ready, markdown_table
from dhvae_sdk.checkpoint import save_checkpoint
from dhvae_sdk.evaluation.reconstruction import ReconstructionErrors
from dhvae_sdk.models import build_model, get_preset
from dhvae_sdk.models.evaluator import InterCLIP, InterCLIPConfig
from dhvae_sdk.motion import interhuman_normalizer
from tests.fk_motions import write_interhuman
from training.data import InterHumanDataset
from training.data.synthetic import generate_dataset

TEST_SAMPLES = 48
QUICK = ["--replications", "2", "--batch-size", "8", "--steps", "2", "--mmodality-texts", "4",
         "--mmodality-repeats", "11", "--diversity-pairs", "10", "--backend", "torch", "--device", "cpu"]
TINY_EVALUATOR = InterCLIPConfig(motion_width=32, motion_layers=1, motion_heads=4, motion_ff=64, text_width=32,
                                 text_layers=1, text_heads=4, text_ff=64, embedding_dim=16, position_table=128)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("quality")
    names = [f"pair{i:03d}" for i in range(TEST_SAMPLES + 4)]
    data = write_interhuman(root / "data", {name: 16 + i % 5 for i, name in enumerate(names)},
                            {"train": names[:4], "test": names[4:]})
    (data / "synthetic_meta.json").write_text(json.dumps(
        {name: {"interaction": "wave", "contact": i % 2 == 0} for i, name in enumerate(names)}))
    torch.manual_seed(0)
    normalizer = interhuman_normalizer()
    model = build_model(get_preset("tiny", "synthetic"))
    statistics = dict(feature_mean=normalizer.mean, feature_std=normalizer.std)
    save_checkpoint(root / "model.safetensors", model, stage="denoiser", latent_scales=torch.ones(3), **statistics)
    save_checkpoint(root / "vae_only.safetensors", model, stage="vae", **statistics)
    evaluator = InterCLIP(TINY_EVALUATOR)
    torch.save({"state_dict": evaluator.state_dict(), "interclip_config": dataclasses.asdict(TINY_EVALUATOR)},
               root / "evaluator.ckpt")
    torch.save({"state_dict": {f"model.{k}": v for k, v in evaluator.state_dict().items()}}, root / "lightning.ckpt")
    return root


@pytest.fixture(scope="module")
def one_thread():
    # The run is many tiny matrix products: extra threads only contend on a busy machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def arguments(files, *extra, model=None, evaluator=None, data=None):
    return ["--model", str(model or f"tiny={files / 'model.safetensors'}"), "--dataset", "synthetic",
            "--data-root", str(data or files / "data"), "--evaluator", str(evaluator or files / "evaluator.ckpt"),
            "--json", str(files / "out" / "quality.json"), *QUICK, *extra]


@pytest.fixture(scope="module")
def run(files, one_thread):
    record = quality.main(arguments(files, "--sweep-guidance", "0,2"))
    return record, files / "out"


def test_every_metric_of_both_rows_is_reported_and_finite(run):
    record, _ = run
    rows = record["rows"]
    assert list(rows) == [GROUND_TRUTH, "tiny"]
    truth_metrics = {"fid", "r_precision_top1", "r_precision_top2", "r_precision_top3", "mm_dist", "diversity",
                     "pv", "pv_ml", "pfr", "pdr", "contact"}
    model_metrics = truth_metrics | {"mmodality", "rfid", "recon_r_precision_top3", "mpjpe", "pose_mpjpe", "path_error",
                                     "pose_motion_ratio", "feature_l1"}
    for label, expected in ((GROUND_TRUTH, truth_metrics), ("tiny", model_metrics)):
        assert set(rows[label]["summary"]) == expected
        assert len(rows[label]["replications"]) == 2
        for name in expected:
            values = [replication[name] for replication in rows[label]["replications"]]
            assert all(math.isfinite(v) for v in values), (label, name, values)
            assert rows[label]["summary"][name]["mean"] == pytest.approx(np.mean(values))
            assert rows[label]["summary"][name]["ci95"] == pytest.approx(1.96 * np.std(values) / math.sqrt(2))


def test_values_obey_the_protocol(run):
    record, _ = run
    truth, model = record["rows"][GROUND_TRUTH], record["rows"]["tiny"]
    # Two independent draws of the test set (other person swaps): not zero, as one draw against itself would be.
    assert truth["summary"]["fid"]["mean"] > 1e-6
    for row in (truth, model):
        for replication in row["replications"]:
            precision = [replication[f"r_precision_top{k}"] for k in (1, 2, 3)]
            assert 0.0 <= precision[0] <= precision[1] <= precision[2] <= 1.0
            assert 0.0 <= replication["pfr"] <= 1.0 and 0.0 <= replication["pdr"] <= replication["pfr"]
            assert replication["pv"] >= 0.0 and replication["pv_ml"] == pytest.approx(8.0 * replication["pv"])
    assert model["summary"]["fid"]["mean"] > 1e-3  # an untrained model is not the ground truth
    assert model["summary"]["mpjpe"]["mean"] > 0.0
    settings = record["settings"]
    assert settings["test_samples"] == TEST_SAMPLES
    assert settings["evaluator"]["kind"] == "trained"
    assert settings["physics"]["body_model"] == "capsule"
    assert settings["protocol"]["batch_size"] == 8
    assert "R-Precision batch: 8 (protocol: 96)" in settings["deviations"]
    assert settings["guidance"] == 3.5 and settings["steps"] == 2 and settings["temperature"] == 1.0
    assert not any(line.startswith("temperature") for line in settings["deviations"])


def first_replication(files, embedder=None):
    """(settings, embedder, reference, ground-truth row) of replication 0 under the quick protocol,
    embedded by ``embedder`` or by a fresh untrained evaluator."""
    dataset = quality_data.open_test_set("synthetic", files / "data", "test")
    embedder = embedder or quality_data.Embedder(InterCLIP(TINY_EVALUATOR), 16, torch.device("cpu"))
    settings = RunSettings("synthetic", 3.5, 1.0, 2, 0, ProtocolConfig(batch_size=8, mm_texts=4, diversity_pairs=10),
                           PhysicsConfig(), ())
    reference, truth, _ = prepare_reference(dataset, 0, settings, embedder, quality_data.representation_of("synthetic"),
                                            quality_data.read_synthetic_contacts(files / "data"))
    return settings, embedder, reference, truth


def test_ground_truth_fid_compares_two_independent_draws(files, one_thread):
    _, embedder, reference, truth = first_replication(files)
    # 48 samples in batches of 8: every sample is evaluated, so FID sees both draws whole.
    assert truth["fid"] == pytest.approx(fid(reference.motion_embeddings, reference.fid_reference_embeddings))
    differing = np.abs(reference.motion_embeddings - reference.fid_reference_embeddings).max(axis=1) > 1e-6
    assert 0 < differing.sum() < len(differing)  # fresh swap coins: some samples come out in the other order
    _, _, again, _ = first_replication(files, embedder)
    np.testing.assert_array_equal(again.fid_reference_embeddings, reference.fid_reference_embeddings)


def test_a_perfect_reconstruction_scores_as_the_ground_truth(files, one_thread, monkeypatch):
    torch.manual_seed(0)  # an evaluator under which the mismatched pairs below rank differently
    settings, embedder, reference, truth = first_replication(files)
    representation = quality_data.representation_of("synthetic")
    model = ModelUnderTest.open("tiny", files / "model.safetensors", "torch", "cpu", 16, representation.feature_dim)
    monkeypatch.setattr(model, "reconstruct", lambda motions, progress=None: [m.copy() for m in motions])
    perfect = reconstruction_quality(model, reference, settings, embedder, representation)
    # Ranked in the ground truth's batches: the same hits, whatever the untrained evaluator ranks.
    assert perfect["recon_r_precision_top3"] == truth["r_precision_top3"]
    assert perfect["rfid"] == pytest.approx(0.0, abs=1e-6)
    assert perfect["mpjpe"] == 0.0 and perfect["pose_motion_ratio"] == pytest.approx(1.0)

    def another_of_the_same_length(motions, progress=None):
        swapped = list(motions)
        for group in same_length_groups(np.array([len(m) for m in motions])):
            for row, other in zip(group, np.roll(group, 1)):
                swapped[row] = motions[other]
        return swapped

    monkeypatch.setattr(model, "reconstruct", another_of_the_same_length)
    mismatched = reconstruction_quality(model, reference, settings, embedder, representation)
    assert mismatched["recon_r_precision_top3"] != truth["r_precision_top3"]
    assert mismatched["mpjpe"] > 0.0


def test_json_and_markdown_files(run):
    record, out = run
    saved = json.loads((out / "quality.json").read_text())
    for name, entry in record["rows"]["tiny"]["summary"].items():
        assert saved["rows"]["tiny"]["summary"][name]["mean"] == pytest.approx(entry["mean"])
    table = (out / "quality.md").read_text().splitlines()
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    assert header == ["Method"] + [title for _, title in COLUMNS]
    truth_cells = [cell.strip() for cell in table[2].strip("|").split("|")]
    model_cells = [cell.strip() for cell in table[3].strip("|").split("|")]
    assert truth_cells[0] == GROUND_TRUTH and model_cells[0] == "tiny"
    columns = [key for key, _ in COLUMNS]
    assert truth_cells[1 + columns.index("mmodality")] == "-"
    assert truth_cells[1 + columns.index("rfid")] == "-"
    assert all("±" in cell for cell in model_cells[1:])
    assert "- R-Precision batch: 8 (protocol: 96)" in table


def test_guidance_sweep_is_recorded_and_plotted(run):
    record, out = run
    sweep = record["rows"]["tiny"]["sweep"]
    assert list(sweep) == ["0", "2"]
    assert len(sweep["2"]["replications"]) == 2
    png = out / "quality_guidance.png"
    assert record["settings"]["plot"] == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert image.imread(png).shape[2] in (3, 4)


@pytest.mark.parametrize("change, message", [
    (dict(data="missing"), "does not exist"),
    (dict(evaluator="missing.ckpt"), "does not exist"),
    (dict(evaluator="model.safetensors"), "DHVAE model checkpoint"),
    (dict(evaluator="lightning.ckpt"), "not an InterCLIP state dict"),
    (dict(model="missing.safetensors"), "does not exist"),
    (dict(model="evaluator.ckpt"), "not a readable safetensors file"),
    (dict(model="vae_only.safetensors"), "vae-stage checkpoint"),
])
def test_bad_inputs_are_named(files, change, message):
    change = {key: files / value for key, value in change.items()}
    with pytest.raises(SystemExit) as error:
        quality.main(arguments(files, **change))
    assert message in str(error.value)


def test_too_few_samples_for_the_protocol_batch(files):
    argv = arguments(files)
    argv[argv.index("--batch-size") + 1] = "96"
    with pytest.raises(SystemExit) as error:
        quality.main(argv)
    assert f"has {TEST_SAMPLES} samples" in str(error.value) and "--batch-size" in str(error.value)


def test_a_temperature_other_than_unit_noise_is_a_deviation_and_out_of_range_is_refused(files, capsys):
    argv = arguments(files, "--temperature", "0.6")
    assert "temperature: 0.6 (protocol: 1.0)" in quality.deviations(quality.parse_args(argv), 3.5)
    with pytest.raises(SystemExit):
        quality.main(arguments(files, "--temperature", "2.5"))
    assert "--temperature must be from 0 to 2, got 2.5" in capsys.readouterr().err


def test_unknown_dataset_is_refused(files, capsys):
    argv = arguments(files)
    argv[argv.index("--dataset") + 1] = "humanml3d"
    with pytest.raises(SystemExit):
        quality.main(argv)
    assert "invalid choice: 'humanml3d'" in capsys.readouterr().err


def test_reconstruction_errors_by_hand():
    target = np.zeros((2, 3, 2, 4))
    recon = target + 0.5
    recon[1, 2] = 100.0  # a padded frame: must not count
    mask = np.array([[True, True, True], [True, True, False]])
    joints_target = np.zeros((2, 3, 2, 22, 3))
    joints_recon = joints_target + np.array([0.03, 0.04, 0.0])
    joints_recon[0, 0, 1] += np.array([0.0, 0.0, 0.12])  # person B of one frame: 0.13 m off
    errors = ReconstructionErrors()
    errors.add_features(recon[:1], target[:1], mask[:1])
    errors.add_features(recon[1:], target[1:], mask[1:])
    errors.add_joints(joints_recon, joints_target, mask)
    assert errors.feature_l1 == pytest.approx(0.5)
    assert errors.mpjpe == pytest.approx((4 * 0.05 + (0.05 + 0.13) / 2) / 5)  # 4 frames 5 cm off, one 9 cm
    assert errors.path_error == pytest.approx(errors.mpjpe)  # whole bodies moved: all of it is path
    assert errors.pose_mpjpe == pytest.approx(0.0)
    posed = ReconstructionErrors()
    bent = joints_target.copy()
    bent[..., 5, :] += np.array([0.0, 0.22, 0.0])  # one joint of 22 off, the root in place
    posed.add_joints(bent, joints_target, mask)
    assert posed.path_error == pytest.approx(0.0)
    assert posed.pose_mpjpe == pytest.approx(0.22 / 22)
    assert posed.mpjpe == pytest.approx(0.22 / 22)
    with pytest.raises(ValueError, match="mask must be bool"):
        errors.add_features(recon, target, mask.astype(int))



def test_pose_motion_ratio_tells_a_sliding_rest_pose_from_real_motion():
    frames = np.arange(6, dtype=float)
    walking = np.zeros((1, 6, 2, 22, 3))
    walking[..., 0] = 0.1 * frames[None, :, None, None]  # both bodies move along x
    walking[:, :, :, 7, 1] = 0.05 * np.sin(frames)[None, :, None]  # an ankle swings relative to the root
    sliding = walking.copy()
    sliding[:, :, :, 7, 1] = 0.0  # the same path, the limb still
    half = walking.copy()
    half[:, :, :, 7, 1] *= 0.5
    mask = np.array([[True, True, True, True, True, False]])
    walking[0, 5, :, 7, 1] = 50.0  # the padded frame's jump of the ankle must not count
    ratios = []
    for recon in (walking, sliding, half):
        errors = ReconstructionErrors()
        errors.add_joints(recon, walking, mask)
        ratios.append(errors.pose_motion_ratio)
    assert ratios == pytest.approx([1.0, 0.0, 0.5])
    with pytest.raises(ValueError, match="never move a joint"):
        still = ReconstructionErrors()
        still.add_joints(sliding, sliding, mask)
        still.pose_motion_ratio
    with pytest.raises(ValueError, match="call add_joints first"):
        ReconstructionErrors().pose_motion_ratio

def test_table_cells_and_json_nan():
    assert format_cell({"mean": 0.12345, "ci95": 0.0061}) == "0.123±0.006"
    assert format_cell({"mean": float("nan"), "ci95": float("nan")}) == "n/a"
    assert format_cell(None) == "-"
    assert format_cell({"mean": -1e-12, "ci95": 0.0}) == "0.000±0.000"
    table = markdown_table({"row": {"fid": {"mean": 1.0, "ci95": 0.5}}})
    assert table.splitlines()[2].startswith("| row | 1.000±0.500 | - |")
    assert json_ready({"contact": float("nan"), "v": np.float32(2.0)}) == {"contact": None, "v": 2.0}


def test_model_labels_and_length_groups(tmp_path):
    assert parse_model_argument("flat=runs/a/checkpoint.safetensors")[0] == "flat"
    assert parse_model_argument("runs/dhvae/checkpoint.safetensors")[0] == "dhvae"
    assert parse_model_argument("exported/model_dir")[0] == "model_dir"
    groups = same_length_groups(np.array([30, 20, 30, 25]))
    assert [g.tolist() for g in groups] == [[1], [3], [0, 2]]


def test_the_procedural_benchmark_ships_an_evaluator_that_knows_the_interactions(tmp_path, capsys):
    """The default --evaluator of --dataset synthetic, on procedural pairs of another seed than
    its training data: a sentence finds its own motion among the top 3 of a batch of 32 far more
    often than by chance (3/32), and no better than chance once the motions are shuffled."""
    parsed = quality.parse_args(["--model", "m", "--dataset", "synthetic", "--data-root", str(tmp_path)])
    assert parsed.evaluator == quality.PROCEDURAL_EVALUATOR
    with pytest.raises(SystemExit):
        quality.parse_args(["--model", "m", "--dataset", "interhuman", "--data-root", str(tmp_path)])
    assert "--dataset interhuman needs --evaluator: InterGen's eval_model/interclip.ckpt" in capsys.readouterr().err
    generate_dataset(tmp_path / "data", 160, seed=123)
    dataset = InterHumanDataset(tmp_path / "data", split="train", normalize=False, mirror=False,
                                swap_persons=False, seed=0)
    items = [dataset[index] for index in range(len(dataset))]
    embedder = quality_data.Embedder(load_evaluator(quality.PROCEDURAL_EVALUATOR).model, 32, torch.device("cpu"))
    texts = embedder.texts([item["text"] for item in items])
    motions = embedder.motions([item["motion"][: int(item["length"])].numpy() for item in items])
    own = matching_scores(texts, motions, np.random.default_rng(0), batch_size=32).r_precision[2]
    shuffled = matching_scores(texts, motions[np.random.default_rng(1).permutation(len(motions))],
                               np.random.default_rng(0), batch_size=32).r_precision[2]
    assert own > 0.75, own  # 0.91 when shipped
    assert shuffled < 0.25, shuffled
