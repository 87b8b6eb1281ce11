"""Saving and loading one interaction as .npz: round trip, safe loading, clear errors."""
import numpy as np
import pytest

from dhvae_sdk.motion import npz as npz_module
from dhvae_sdk.motion.npz import load_interaction_npz, save_interaction_npz


def sample(frames: int = 8, width: int = 262, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(frames, 2, 22, 3)), rng.normal(size=(frames, 2, width))


def test_round_trip_keeps_joints_features_text_and_fps(tmp_path):
    joints, features = sample()
    text = "Two people hug — then one steps back. 二人が抱き合う"
    path = save_interaction_npz(tmp_path / "hug.npz", joints, features, text, fps=30)
    record = load_interaction_npz(path)
    assert record.joints.dtype == np.float32 and record.features.dtype == np.float32
    np.testing.assert_array_equal(record.joints, joints.astype(np.float32))
    np.testing.assert_array_equal(record.features, features.astype(np.float32))
    assert record.text == text
    assert record.fps == 30.0
    with np.load(path, allow_pickle=False) as archive:
        assert sorted(archive.files) == ["features", "fps", "joints", "text"]
        assert archive["text"].dtype.kind == "U"


def test_features_are_optional(tmp_path):
    joints, _ = sample(frames=3)
    record = load_interaction_npz(save_interaction_npz(tmp_path / "no_features", joints, None, "", fps=12.5))
    assert record.features is None and record.text == "" and record.fps == 12.5
    assert (tmp_path / "no_features").is_file()  # written exactly where asked


@pytest.mark.parametrize("change, message", [
    (dict(joints=np.zeros((4, 22, 3))), "shape"),
    (dict(joints=np.full((4, 2, 22, 3), np.inf)), "NaN or infinite"),
    (dict(features=np.zeros((5, 2, 262))), r"\[T=4, 2, D\]"),
    (dict(text=["two", "texts"]), "text must be a string"),
    (dict(fps=float("nan")), "fps"),
])
def test_bad_values_are_refused_before_writing(tmp_path, change, message):
    arguments = dict(joints=np.zeros((4, 2, 22, 3)), features=np.zeros((4, 2, 262)), text="a", fps=30.0)
    arguments.update(change)
    with pytest.raises(ValueError, match=message):
        save_interaction_npz(tmp_path / "bad.npz", **arguments)
    assert list(tmp_path.iterdir()) == []


def test_wrong_files_give_errors_naming_the_file_and_the_problem(tmp_path):
    joints, features = sample(frames=4)
    cases = {
        "missing.npz": (dict(joints=joints, fps=np.array(30.0)), r"lacks the keys \['text'\]"),
        "shape.npz": (dict(joints=joints[:, 0], text=np.array("a"), fps=np.array(30.0)), "'joints' in .*shape"),
        "features.npz": (dict(joints=joints, features=features[:2], text=np.array("a"), fps=np.array(30.0)),
                         "'features' in .*T=4"),
        "text.npz": (dict(joints=joints, text=np.array(["a", "b"]), fps=np.array(30.0)), "'text' in"),
        "fps.npz": (dict(joints=joints, text=np.array("a"), fps=np.array(-1.0)), "'fps' in"),
        "pickled.npz": (dict(joints=joints, text=np.array(["a", 1], dtype=object), fps=np.array(30.0)),
                        "not a readable .npz"),
    }
    for name, (arrays, message) in cases.items():
        np.savez(tmp_path / name, **arrays)
        with pytest.raises(ValueError, match=message) as error:
            load_interaction_npz(tmp_path / name)
        assert name in str(error.value)
    (tmp_path / "garbage.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="garbage.npz"):
        load_interaction_npz(tmp_path / "garbage.npz")
    with pytest.raises(FileNotFoundError, match="absent.npz"):
        load_interaction_npz(tmp_path / "absent.npz")


def test_a_failed_write_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    joints, features = sample(frames=4)
    path = save_interaction_npz(tmp_path / "kept.npz", joints, features, "first", fps=30)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(npz_module.np, "savez_compressed", crash)
    with pytest.raises(OSError, match="disk full"):
        save_interaction_npz(path, joints * 2, None, "second", fps=30)
    assert load_interaction_npz(path).text == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["kept.npz"]
