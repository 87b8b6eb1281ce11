"""Inter-X's evaluator: a checkpoint with exactly its parameter names loads, its input layout,
and the word vectors in Inter-X's file format."""
import pickle

import numpy as np
import pytest
import torch

from dhvae_sdk.evaluation.interx_evaluator import (InterXEmbedder, evaluator_input, evaluator_lengths,
                                                   load_interx_evaluator)
from dhvae_sdk.evaluation.word_vectors import POS_TAGS, WordVectors


def gru_shapes(prefix, width):
    shapes = {}
    for direction in ("", "_reverse"):
        shapes.update({f"{prefix}.weight_ih_l0{direction}": (3 * width, width),
                       f"{prefix}.weight_hh_l0{direction}": (3 * width, width),
                       f"{prefix}.bias_ih_l0{direction}": (3 * width,), f"{prefix}.bias_hh_l0{direction}": (3 * width,)})
    return shapes


def head_shapes(width, output):
    return {"output_net.0.weight": (width, 2 * width), "output_net.0.bias": (width,),
            "output_net.1.weight": (width,), "output_net.1.bias": (width,),
            "output_net.3.weight": (output, width), "output_net.3.bias": (output,), "hidden": (2, 1, width)}


# Inter-X's evaluation/text2motion/networks/modules.py with the hhi options (dim_pose 56 * 12).
INTERX_SHAPES = {
    "movement_encoder": {"main.0.weight": (512, 672, 4), "main.0.bias": (512,), "main.3.weight": (512, 512, 4),
                         "main.3.bias": (512,), "out_net.weight": (512, 512), "out_net.bias": (512,)},
    "text_encoder": {"pos_emb.weight": (300, 15), "pos_emb.bias": (300,), "input_emb.weight": (512, 300),
                     "input_emb.bias": (512,), **gru_shapes("gru", 512), **head_shapes(512, 512)},
    "motion_encoder": {"input_emb.weight": (1024, 512), "input_emb.bias": (1024,), **gru_shapes("gru", 1024),
                       **head_shapes(1024, 512)},
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    generator = torch.Generator().manual_seed(0)
    parts = {part: {name: torch.randn(shape, generator=generator) * 0.05 for name, shape in shapes.items()}
             for part, shapes in INTERX_SHAPES.items()}
    path = tmp_path_factory.mktemp("interx_eval") / "finest.tar"
    torch.save({**parts, "epoch": 123, "it": 4567}, path)
    return path, parts


@pytest.fixture(scope="module")
def evaluator(checkpoint):
    return load_interx_evaluator(checkpoint[0])


def write_word_vectors(folder, words, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    vectors = np.random.default_rng(seed).normal(size=(len(words), 300)).astype(np.float32)
    np.save(folder / "hhi_vab_data.npy", vectors)
    (folder / "hhi_vab_words.pkl").write_bytes(pickle.dumps(list(words)))
    (folder / "hhi_vab_idx.pkl").write_bytes(pickle.dumps({word: row for row, word in enumerate(words)}))
    return vectors


def test_released_parameter_names_load_unchanged(evaluator, checkpoint):
    _, parts = checkpoint
    for part, tensors in parts.items():
        state = getattr(evaluator, part).state_dict()
        assert set(state) == set(tensors)
        for name, tensor in tensors.items():
            torch.testing.assert_close(state[name], tensor)


def test_checkpoint_errors_are_named(checkpoint, tmp_path):
    _, parts = checkpoint
    torch.save({"movement_encoder": parts["movement_encoder"], "text_encoder": parts["text_encoder"]},
               tmp_path / "partial.tar")
    with pytest.raises(ValueError, match=r"lacks \['motion_encoder'\]"):
        load_interx_evaluator(tmp_path / "partial.tar")
    renamed = {**parts, "text_encoder": {k.replace("pos_emb", "tag_emb"): v for k, v in parts["text_encoder"].items()}}
    torch.save(renamed, tmp_path / "renamed.tar")
    with pytest.raises(ValueError, match="'text_encoder' does not fit"):
        load_interx_evaluator(tmp_path / "renamed.tar")
    with pytest.raises(FileNotFoundError, match="finest.tar"):
        load_interx_evaluator(tmp_path / "absent.tar")


def test_input_interleaves_the_persons_and_zeroes_the_velocities():
    features = np.arange(3 * 2 * 336, dtype=np.float32).reshape(3, 2, 336)
    rows = evaluator_input(features).reshape(3, 56, 12)
    np.testing.assert_array_equal(rows[:, 10, :6], features[:, 0, 60:66])  # joint 10's 6D, person 1
    np.testing.assert_array_equal(rows[:, 10, 6:], features[:, 1, 60:66])  # then person 2
    np.testing.assert_array_equal(rows[:, 55, [0, 1, 2, 6, 7, 8]], features[:, :, 330:333].reshape(3, 6))
    assert np.all(rows[:, 55, [3, 4, 5, 9, 10, 11]] == 0.0)
    np.testing.assert_array_equal(evaluator_lengths([23, 24, 151, 400]), [20, 24, 148, 148])
    assert evaluator_lengths([152]).item() == 148  # cut to 150 first, then to a multiple of 4
    with pytest.raises(ValueError, match=r"\[\.\.\., T, 2, 336\]"):
        evaluator_input(np.zeros((3, 336)))


def test_motion_embedding_reads_only_the_real_frames(evaluator):
    rng = np.random.default_rng(1)
    short, long = rng.normal(size=(24, 2, 336)), rng.normal(size=(40, 2, 336))
    together = InterXEmbedder(evaluator, None, {}, 8, torch.device("cpu")).motions([short, long])
    alone = InterXEmbedder(evaluator, None, {}, 1, torch.device("cpu")).motions([short])
    np.testing.assert_allclose(together[0], alone[0], atol=1e-5)  # every motion is padded to 150 frames alike
    longer = InterXEmbedder(evaluator, None, {}, 1, torch.device("cpu")).motions([np.concatenate([short, long])[:27]])
    np.testing.assert_allclose(longer[0], alone[0], atol=1e-5)  # frames past the last multiple of 4 are not read
    assert together.shape == (2, 512) and not np.allclose(together[0], together[1])
    with pytest.raises(ValueError, match="multiples of 4"):
        evaluator.encode_motion(torch.zeros(1, 8, 672), torch.tensor([6]))


def test_word_vectors_in_interx_format(tmp_path, evaluator):
    vectors = write_word_vectors(tmp_path / "glove", ["unk", "sos", "eos", "two", "people", "left", "hug"])
    words = WordVectors.load(tmp_path / "glove")
    encoded, tags, length = words.encode(["two/NUM", "people/NOUN", "left/ADV", "hug/VERB", "zebra/NOUN"])
    assert length == 7 and encoded.shape == (37, 300) and tags.shape == (37, len(POS_TAGS))
    np.testing.assert_array_equal(encoded[[0, 1, 3, 6]], vectors[[1, 3, 5, 2]])  # sos, two, left, eos
    np.testing.assert_array_equal(encoded[5], vectors[0])  # an unknown word is unk
    np.testing.assert_array_equal(encoded[7:], np.repeat(vectors[:1], 30, axis=0))  # unk padding
    expected_tags = ["OTHER", "NUM", "NOUN", "Loc_VIP", "VERB", "OTHER", "OTHER"]  # 'left' is a special word
    assert [POS_TAGS[i] for i in tags[:7].argmax(axis=1)] == expected_tags
    assert len(words.encode(["two/NUM"] * 50)[0]) == 37 and words.encode(["two/NUM"] * 50)[2] == 37
    embedder = InterXEmbedder(evaluator, words, {"two people hug": ["two/NUM", "people/NOUN", "hug/VERB"]}, 4,
                              torch.device("cpu"))
    assert embedder.texts(["two people hug"]).shape == (1, 512)
    with pytest.raises(ValueError, match="no word/POS tokens"):
        embedder.texts(["an unseen sentence"])


def test_word_lists_that_would_run_code_are_refused(tmp_path):
    write_word_vectors(tmp_path, ["unk", "a"])
    (tmp_path / "hhi_vab_idx.pkl").write_bytes(pickle.dumps({"unk": 0, "a": np.int64(1)}))
    with pytest.raises(ValueError, match="refusing to load numpy"):
        WordVectors.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="hhi_vab_data.npy"):
        WordVectors.load(tmp_path / "absent")
