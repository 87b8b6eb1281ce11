"""benchmarks/quality.py --dataset interx: Inter-X's evaluator, word vectors, InterMask's protocol,
and physics on SMPL-X meshes from the (synthetic) model files."""
import numpy as np
import pytest
import torch

from benchmarks import quality
from benchmarks.quality_data import representation_of
from dhvae_sdk.body import SmplxModel
from dhvae_sdk.checkpoint import save_checkpoint
from dhvae_sdk.models import build_model, get_preset
from dhvae_sdk.motion import features_to_joints, interx
from dhvae_sdk.motion.interhuman import interaction_features
from dhvae_sdk.motion.normalization import interx_normalizer
from tests.fk_motions import fk_pair_raw
from tests.smplx_fixture import write_smplx_model
from tests.test_interx import random_params, write_person
from tests.test_interx_evaluator import INTERX_SHAPES, write_word_vectors

SAMPLES = 16
QUICK = ["--replications", "2", "--batch-size", "8", "--steps", "2", "--mmodality-texts", "4",
         "--mmodality-repeats", "11", "--diversity-pairs", "6", "--backend", "torch", "--device", "cpu"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("quality_interx")
    data = root / "interx"
    (data / "texts_processed").mkdir(parents=True)
    (data / "splits").mkdir()
    names = [f"G001T000A{i:03d}R000" for i in range(SAMPLES)]
    for index, name in enumerate(names):
        (data / "motions" / name).mkdir(parents=True)
        for person, file_name in enumerate(interx.PERSON_FILES):
            write_person(data / "motions" / name / file_name, random_params(24 + index % 3 * 4, 100 * index + person),
                         seed=index)
        words = ["two/NUM", "people/NOUN", "hug/VERB"] if index % 2 else ["one/NUM", "person/NOUN", "wave/VERB"]
        sentence = " ".join(word.split("/")[0] for word in words)
        (data / "texts_processed" / f"{name}.txt").write_text(f"{sentence}#{' '.join(words)}#0.0#0.0\n")
    (data / "splits" / "test.txt").write_text("\n".join(names) + "\n")
    write_word_vectors(root / "glove", ["unk", "sos", "eos", "two", "people", "hug", "one", "person", "wave"])
    generator = torch.Generator().manual_seed(0)
    torch.save({part: {name: torch.randn(shape, generator=generator) * 0.05 for name, shape in shapes.items()}
                for part, shapes in INTERX_SHAPES.items()}, root / "finest.tar")
    torch.manual_seed(0)
    normalizer = interx_normalizer()
    save_checkpoint(root / "model.safetensors", build_model(get_preset("tiny", "interx")), stage="denoiser",
                    latent_scales=torch.ones(3), feature_mean=normalizer.mean, feature_std=normalizer.std)
    write_smplx_model(root / "smplx" / "SMPLX_NEUTRAL.npz")
    return root


def arguments(files, *extra):
    return ["--model", f"tiny={files / 'model.safetensors'}", "--dataset", "interx", "--data-root",
            str(files / "interx"), "--evaluator", str(files / "finest.tar"), "--word-vectors", str(files / "glove"),
            "--json", str(files / "out" / "quality.json"), *QUICK, *extra]


def test_interx_is_scored_with_its_own_evaluator_and_smplx_meshes(files):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        record = quality.main(arguments(files, "--body-model", str(files / "smplx")))
    finally:
        torch.set_num_threads(threads)
    settings = record["settings"]
    assert settings["evaluator"]["kind"] == "interx" and settings["evaluator"]["config"]["motion_hidden"] == 1024
    assert settings["protocol"]["embedding_scale"] == 1.0 and settings["protocol"]["diversity_divisor"] == 1.0
    assert settings["physics"]["body_model"] == "smplx mesh" and settings["guidance"] == 3.0
    assert "R-Precision batch: 8 (protocol: 32)" in settings["deviations"]
    truth, model = record["rows"]["Ground truth"]["summary"], record["rows"]["tiny"]["summary"]
    for summary in (truth, model):
        assert np.isfinite(summary["fid"]["mean"]) and 0 <= summary["r_precision_top1"]["mean"] <= 1
        assert summary["pv_ml"]["mean"] == pytest.approx(8 * summary["pv"]["mean"])
    assert truth["fid"]["mean"] > 0  # two independent draws (other crops) of the test set
    assert np.isfinite(model["mpjpe"]["mean"]) and model["mpjpe"]["mean"] > 0  # joints from the SMPL-X model
    table = (files / "out" / "quality.md").read_text()
    assert "PV (voxels)" in table and "PV (ml)" in table and "8 ml per voxel" in table


def test_interx_needs_the_word_vectors(files, capsys):
    with pytest.raises(SystemExit):
        quality.main([argument for argument in arguments(files) if argument not in ("--word-vectors",
                                                                                   str(files / "glove"))])
    assert "--word-vectors" in capsys.readouterr().err


def test_interhuman_meshes_are_smplx_fitted_to_the_joints(files):
    model = SmplxModel.load(files / "smplx")
    representation = representation_of("synthetic", model)
    raw1, raw2, _ = fk_pair_raw(5, seed=0)
    features = interaction_features(raw1, raw2)
    vertices = representation.to_meshes(features)
    assert vertices.shape == (4, 2, 220, 3) and representation.faces is model.faces
    # The fitted bodies stand where the joints are: each person's mesh centre near its own pelvis.
    pelvis = features_to_joints(features)[:, :, 0]
    assert np.linalg.norm(vertices.mean(axis=2) - pelvis, axis=-1).max() < 0.5
