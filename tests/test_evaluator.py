"""InterCLIP evaluator: InterGen's state-dict layout, loading, shapes and the contrastive loss."""
import math

import pytest
import torch

from dhvae_sdk.models.evaluator import InterCLIP, InterCLIPConfig, load_interclip, tokenize

SMALL = InterCLIPConfig(motion_width=32, motion_layers=2, motion_heads=4, motion_ff=64, position_table=64,
                        vocab_size=49408, text_width=32, text_layers=2, text_heads=4, text_ff=64,
                        embedding_dim=16)

# Names and shapes of the released interclip.ckpt, read in tr3e/InterGen: datasets/evaluator_models.py
# (InterCLIP: token_embedding, positional_embedding, latent_scale, textTransEncoder, text_ln, out),
# models/nets.py (MotionEncoder: query_token, embed_motion over 2 x 258 inputs, sequence_pos_encoder,
# transformer, out_ln, out), models/utils.py (PositionalEncoding buffer `pe`, max_len=2000) and
# configs/eval_model.yaml (8 layers, 8 heads, width 1024, feed-forward 2048).
INTERGEN_SHAPES = {
    "token_embedding.weight": (49408, 768),
    "positional_embedding": (77, 768),
    "latent_scale": (1,),
    "textTransEncoder.layers.0.self_attn.in_proj_weight": (2304, 768),
    "textTransEncoder.layers.7.linear1.weight": (2048, 768),
    "text_ln.weight": (768,),
    "out.weight": (512, 768),
    "motion_encoder.query_token": (1, 1024),
    "motion_encoder.embed_motion.weight": (1024, 516),
    "motion_encoder.sequence_pos_encoder.pe": (2000, 1024),
    "motion_encoder.transformer.layers.7.linear2.weight": (1024, 2048),
    "motion_encoder.transformer.layers.3.norm2.bias": (1024,),
    "motion_encoder.out_ln.bias": (1024,),
    "motion_encoder.out.weight": (512, 1024),
}
# 12 tensors per Transformer layer, 2 x 8 layers, plus 7 text-side and 8 motion-side tensors.
INTERGEN_KEY_COUNT = 12 * 16 + 7 + 8


def test_default_config_has_intergen_layout():
    with torch.device("meta"):
        state = InterCLIP().state_dict()
    assert len(state) == INTERGEN_KEY_COUNT
    for name, shape in INTERGEN_SHAPES.items():
        assert tuple(state[name].shape) == shape, name


def random_motion(batch, frames, seed=0):
    generator = torch.Generator().manual_seed(seed)
    motion = torch.randn(batch, frames, 2, 262, generator=generator)
    lengths = torch.randint(frames // 2, frames + 1, (batch,), generator=generator)
    mask = torch.arange(frames)[None] < lengths[:, None]
    return motion, mask


def save_lightning_style(model, path):
    torch.save({"epoch": 7, "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, path)


@pytest.fixture
def trained_looking_model():
    torch.manual_seed(0)
    model = InterCLIP(SMALL)
    with torch.no_grad():
        model.latent_scale.fill_(2.5)
    return model.eval()


def test_lightning_checkpoint_round_trip(tmp_path, trained_looking_model):
    path = tmp_path / "interclip.ckpt"
    save_lightning_style(trained_looking_model, path)
    loaded = load_interclip(path, SMALL)
    assert not loaded.training
    expected = trained_looking_model.state_dict()
    assert set(loaded.state_dict()) == set(expected)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in expected.items())
    tokens = tokenize(["two people shake hands", "one person pushes the other"])
    motion, mask = random_motion(2, 40)
    with torch.no_grad():
        text, moves = loaded.encode_text(tokens), loaded.encode_motion(motion, mask)
        assert torch.equal(text, trained_looking_model.encode_text(tokens))
    assert text.shape == (2, 16) and moves.shape == (2, 16)
    assert torch.allclose(text.norm(dim=-1), torch.full((2,), 2.5))
    assert torch.allclose(moves.norm(dim=-1), torch.full((2,), 2.5))


def test_plain_state_dict_loads_too(tmp_path, trained_looking_model):
    path = tmp_path / "plain.pt"
    torch.save(trained_looking_model.state_dict(), path)
    assert torch.equal(load_interclip(path, SMALL).latent_scale, torch.tensor([2.5]))


def test_foreign_or_mismatched_files_are_refused(tmp_path, trained_looking_model):
    state = {f"model.{k}": v for k, v in trained_looking_model.state_dict().items()}

    def saved(name, payload):
        torch.save(payload, tmp_path / name)
        return tmp_path / name

    without_ln = {k: v for k, v in state.items() if k != "model.text_ln.weight"}
    with pytest.raises(ValueError, match="text_ln.weight"):
        load_interclip(saved("missing.ckpt", {"state_dict": without_ln}), SMALL)
    with pytest.raises(ValueError, match="extra.weight"):
        load_interclip(saved("extra.ckpt", {"state_dict": {**state, "model.extra.weight": torch.zeros(1)}}), SMALL)
    with pytest.raises(ValueError, match="shapes differ"):
        load_interclip(saved("wide.ckpt", {"state_dict": {**state, "model.out.weight": torch.zeros(16, 33)}}), SMALL)
    deeper = InterCLIPConfig(**{**SMALL.__dict__, "text_layers": 3})
    with pytest.raises(ValueError, match="12 missing keys"):
        load_interclip(saved("good.ckpt", {"state_dict": state}), deeper)
    with pytest.raises(ValueError, match="Python objects"):
        load_interclip(saved("pickled.ckpt", {"state_dict": state, "config": NotATensor()}), SMALL)
    (tmp_path / "garbage.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a torch checkpoint"):
        load_interclip(tmp_path / "garbage.ckpt", SMALL)
    with pytest.raises(FileNotFoundError, match="interclip.ckpt"):
        load_interclip(tmp_path / "absent.ckpt", SMALL)


class NotATensor:
    """A pickled object that weights_only loading must refuse."""


def test_motion_encoder_ignores_contacts_and_padding(trained_looking_model):
    motion, mask = random_motion(3, 30, seed=1)
    mask[:, 20:] = False
    with torch.no_grad():
        reference = trained_looking_model.encode_motion(motion, mask)
        changed = motion.clone()
        changed[..., 258:] = 5.0  # foot contacts are dropped by InterGen's evaluator
        changed[:, 20:] = -3.0  # padded frames are masked out
        assert torch.allclose(trained_looking_model.encode_motion(changed, mask), reference, atol=1e-5)
        trimmed = trained_looking_model.encode_motion(motion[:, :20], mask[:, :20])
        assert torch.allclose(trimmed, reference, atol=1e-5)
        as_double = trained_looking_model.encode_motion(motion.double(), mask)
        assert as_double.dtype == torch.float32 and torch.allclose(as_double, reference, atol=1e-5)
        changed[:, 0, 1, 0] += 1.0  # person B's pelvis x does matter
        assert not torch.allclose(trained_looking_model.encode_motion(changed, mask), reference, atol=1e-3)


def test_text_embedding_reads_the_end_of_text_token(trained_looking_model):
    tokens = tokenize(["a b c", "two people dance together"])
    end_of_text = tokens.argmax(dim=-1)
    assert end_of_text.tolist() == [4, 5]
    captured = []
    hook = trained_looking_model.text_ln.register_forward_hook(lambda module, args, out: captured.append(out))
    with torch.no_grad():
        embedding = trained_looking_model.encode_text(tokens)
    hook.remove()
    per_position = trained_looking_model.out(captured[0])  # [B, 77, 16]
    for row, position in enumerate(end_of_text.tolist()):
        picked = per_position[row, position]
        assert torch.allclose(embedding[row], picked / picked.norm() * 2.5, atol=1e-5)
        other = per_position[row, position + 1]
        assert not torch.allclose(embedding[row], other / other.norm() * 2.5, atol=1e-3)


def test_bad_inputs_are_refused(trained_looking_model):
    motion, mask = random_motion(2, 10)
    with pytest.raises(ValueError, match="262"):
        trained_looking_model.encode_motion(motion[..., :200], mask)
    with pytest.raises(ValueError, match="mask"):
        trained_looking_model.encode_motion(motion, mask[:, :5])
    with pytest.raises(ValueError, match="limit of 63"):
        trained_looking_model.encode_motion(torch.zeros(1, 64, 2, 262), torch.ones(1, 64, dtype=torch.bool))
    with pytest.raises(ValueError, match="tokenize"):
        trained_looking_model.encode_text(torch.zeros(2, 77))


def test_contrastive_loss_matches_the_closed_form(trained_looking_model):
    batch, scale = 4, 2.5
    embeddings = torch.eye(batch, 16) * 3.0  # orthogonal pairs, identical text and motion
    loss = trained_looking_model.contrastive_loss(embeddings, embeddings)
    logit = scale ** 2
    expected = -math.log(math.exp(logit) / (math.exp(logit) + batch - 1))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


@pytest.fixture
def one_thread():
    # Many tiny ops: with other jobs on the 2 cores, a second intra-op thread makes this 10x slower.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_short_training_separates_pairs_and_keeps_clip_tables_frozen(one_thread):
    torch.manual_seed(0)
    model = InterCLIP(SMALL)
    tokens = tokenize(["wave", "hug", "push", "dance"])
    motion, mask = random_motion(4, 12, seed=3)
    frozen = model.token_embedding.weight.clone()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    first = None
    for _ in range(60):
        loss = model(tokens, motion, mask)
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * first
    assert model.latent_scale.item() > 1.0
    assert torch.equal(model.token_embedding.weight, frozen)
    with torch.no_grad():
        model.eval()
        distances = torch.cdist(model.encode_text(tokens), model.encode_motion(motion, mask))
    assert torch.equal(distances.argmin(dim=1), torch.arange(4))


@pytest.mark.xdist_group("open-clip")  # with test_models.py's, on the worker that imports open_clip
def test_tokenize_gives_open_clips_ids_and_truncates_long_texts_silently(recwarn):
    import open_clip

    texts = ["two people shake hands", "word " * 100]
    assert torch.equal(tokenize(texts), open_clip.tokenize(texts))  # InterGen tokenizes with open_clip
    assert not [w for w in recwarn if "truncated" in str(w.message)]
