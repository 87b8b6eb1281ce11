"""Generator: batching, seeds, backend parity, hierarchy controls, bad input, threads, memory."""
from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from dhvae_sdk import Generator, GeneratorError
from dhvae_sdk.checkpoint import load_checkpoint, save_checkpoint
from dhvae_sdk.manifest import MANIFEST_NAME, ModelFormatError
from dhvae_sdk.models import empty_text_tokens
from dhvae_sdk.motion import features_to_joints
from dhvae_sdk.motion.bvh import load_bvh
from dhvae_sdk.motion.npz import load_interaction_npz
from dhvae_sdk.runtime import selection
from dhvae_sdk.runtime.torch_backend import NumpySeededTorchOps
from dhvae_sdk.sampling import NumpyOps, sample_latents
from model_fixtures import MAX_FRAMES

FAST = dict(frames=24, steps=6)
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def checkpoint(micro_checkpoint):
    return micro_checkpoint


@pytest.fixture(scope="module")
def model_dir(micro_export):
    return micro_export[0]


@pytest.fixture(scope="module")
def torch_gen(checkpoint):
    return Generator.from_pretrained(checkpoint)


@pytest.fixture(scope="module")
def ort_gen(model_dir):
    return Generator.from_pretrained(model_dir)


def test_auto_picks_torch_for_checkpoints_and_onnxruntime_for_model_directories(torch_gen, ort_gen):
    assert torch_gen.backend.name == "torch" and "checkpoint" in torch_gen.reason
    assert ort_gen.backend.name == "onnxruntime" and "TensorRT" in ort_gen.reason
    assert "CPUExecutionProvider" in ort_gen.backend.describe()


def test_many_texts_and_samples_come_back_in_text_major_order(ort_gen):
    motions = ort_gen.generate(["two people shake hands", "a hug"], num_samples=2, seed=1, **FAST)
    assert [m.text for m in motions] == ["two people shake hands"] * 2 + ["a hug"] * 2
    for motion in motions:
        assert motion.joints.shape == (24, 2, 22, 3) and motion.features.shape == (24, 2, 262)
        assert motion.fps == 30.0 and motion.seconds == pytest.approx(0.8)
        np.testing.assert_allclose(motion.joints, features_to_joints(motion.features))
    assert not np.allclose(motions[0].joints, motions[1].joints)  # two samples of one text differ
    assert not np.allclose(motions[0].joints, motions[2].joints)


def test_seconds_become_frames_at_the_model_rate(torch_gen):
    assert torch_gen.generate("a wave", seconds=0.5, steps=2)[0].frames == 15


def test_same_seed_same_motion_other_seed_other_motion(ort_gen, torch_gen):
    for generator in (ort_gen, torch_gen):
        first = generator.generate("they dance", seed=7, **FAST)[0]
        again = generator.generate("they dance", seed=7, **FAST)[0]
        other = generator.generate("they dance", seed=8, **FAST)[0]
        np.testing.assert_array_equal(first.joints, again.joints)
        assert np.abs(first.joints - other.joints).max() > 1e-3


def test_backends_agree_within_fp32_parity(ort_gen, torch_gen):
    texts = ["one pushes the other", "they bow"]
    reference = torch_gen.generate(texts, seed=3, guidance=2.5, temperature=0.7, **FAST)
    exported = ort_gen.generate(texts, seed=3, guidance=2.5, temperature=0.7, **FAST)
    for a, b in zip(reference, exported):
        assert np.abs(a.latents - b.latents).max() <= 1e-4 * max(1.0, np.abs(a.latents).max())
        assert np.abs(a.features - b.features).max() <= 1e-4


def test_temperature_narrows_the_samples_of_one_text_down_to_one_motion_at_zero(torch_gen):
    def latents(temperature):
        motions = torch_gen.generate("they dance", num_samples=4, seed=1, temperature=temperature, **FAST)
        return np.stack([motion.latents for motion in motions])

    unit, half, zero = latents(1.0), latents(0.5), latents(0.0)
    np.testing.assert_array_equal(unit, np.stack([m.latents for m in torch_gen.generate(
        "they dance", num_samples=4, seed=1, **FAST)]))  # the micro model's default is 1
    np.testing.assert_allclose(zero, np.broadcast_to(zero[:1], zero.shape), atol=1e-6)
    spread = {name: value.std(axis=0).mean() for name, value in (("unit", unit), ("half", half))}
    assert spread["unit"] > 0.05 and spread["half"] < 0.8 * spread["unit"]


def test_a_checkpoints_temperature_is_its_default(checkpoint, torch_gen, tmp_path):
    loaded = load_checkpoint(checkpoint)
    config = loaded.model.config
    loaded.model.config = dataclasses.replace(config, denoiser=dataclasses.replace(config.denoiser, temperature=0.4))
    cooler = tmp_path / "cooler.safetensors"
    save_checkpoint(cooler, loaded.model, feature_mean=loaded.feature_mean, feature_std=loaded.feature_std,
                    latent_scales=loaded.latent_scales, stage="denoiser")
    generator = Generator.from_pretrained(cooler, backend="torch", device="cpu", quiet=True)
    [default] = generator.generate("they bow", seed=4, **FAST)
    [explicit] = torch_gen.generate("they bow", seed=4, temperature=0.4, **FAST)
    np.testing.assert_array_equal(default.latents, explicit.latents)


def test_the_null_text_is_the_empty_strings_encoding_computed_once(ort_gen, torch_gen, monkeypatch):
    model = torch_gen.backend.model
    with torch.inference_mode():
        empty = model.text(empty_text_tokens(1)).numpy()
    np.testing.assert_array_equal(torch_gen.backend.null_text.numpy(), empty)
    np.testing.assert_allclose(ort_gen.backend.null_text, empty[0], atol=1e-5)
    assert np.abs(empty).max() > 0.1
    calls = []
    monkeypatch.setattr(model.text, "forward", lambda tokens: calls.append(len(tokens)) or torch.zeros(len(tokens), 48))
    torch_gen.generate(["they wave", "they bow"], **FAST)
    assert calls == [2]  # the two sentences, once; the unconditional rows reuse the cached encoding


def test_torch_sampling_with_cached_null_rows_matches_the_denoisers_own_forward(torch_gen):
    """The cached null-text modulation rows and their order in the table give what the training
    forward computes on [sentences; empty string] at every step."""
    backend = torch_gen.backend
    model = backend.model
    text = np.random.default_rng(6).standard_normal((2, model.config.text.width)).astype(np.float32)
    with torch.inference_mode():
        conditions = torch.cat([torch.from_numpy(text), model.null_text_embedding(2)])

        def denoise(latents, timestep, step_index):
            return model.denoiser(latents, torch.full((len(latents),), timestep), conditions)

        shape = (2, model.denoiser.num_tokens, model.denoiser.width)
        expected = sample_latents(denoise, backend.scheduler, shape, 7, 2.5,
                                  NumpySeededTorchOps(NumpyOps.from_seed(5), torch.device("cpu"))).numpy()
    for _ in range(2):  # the second call takes the null rows from the cache
        np.testing.assert_allclose(backend.sample(text, 7, 2.5, 1.0, NumpyOps.from_seed(5)), expected, rtol=1e-5, atol=1e-5)
    assert np.abs(expected).max() > 1.0


def test_person_a_is_kept_and_person_b_generated(ort_gen, torch_gen):
    given = ort_gen.generate("one waits", seed=2, **FAST)[0]
    for generator in (ort_gen, torch_gen):
        results = generator.generate(["the other walks up and greets", "the other runs away"], person_a=given,
                                     seed=5, steps=6)
        normalized = generator.backend.normalizer.normalize(given.features[:, 0])
        pair = np.stack([normalized, np.zeros_like(normalized)], axis=1)[None].astype(np.float32)
        expected_a = generator.backend.encode(pair)[0, 0]
        for result in results:
            assert result.frames == given.frames
            np.testing.assert_array_equal(result.latents[0], expected_a)  # z_a fixed exactly
        assert np.abs(results[0].latents[1:] - results[1].latents[1:]).max() > 1e-3


@pytest.mark.parametrize("keep, kept, resampled", [("interaction", [2], [0, 1]), ("individuals", [0, 1], [2])])
def test_vary_keeps_one_level_of_the_hierarchy(ort_gen, keep, kept, resampled):
    original = ort_gen.generate("two people hug", seed=4, **FAST)[0]
    variants = ort_gen.vary(original, keep=keep, num_samples=2, seed=9, steps=6)
    assert len(variants) == 2
    for variant in variants:
        assert variant.text == original.text and variant.frames == original.frames
        np.testing.assert_array_equal(variant.latents[kept], original.latents[kept])
        assert np.abs(variant.latents[resampled] - original.latents[resampled]).max() > 1e-3


@pytest.mark.parametrize("kwargs, message", [
    (dict(texts=""), "empty"),
    (dict(texts=["ok", "   "]), "text 1 is empty"),
    (dict(texts=[]), "non-empty list"),
    (dict(texts=["ok", 3]), "text 1 must be a string"),
    (dict(texts="ok", seconds=0), "positive"),
    (dict(texts="ok", seconds=-2.0), "positive"),
    (dict(texts="ok", seconds=float("nan")), "number"),
    (dict(texts="ok", frames=0), "frames must be a positive integer"),
    (dict(texts="ok", frames=MAX_FRAMES + 1), f"maximum of {MAX_FRAMES} frames"),
    (dict(texts="ok", seconds=60), "maximum"),
    (dict(texts="ok", seconds=1, frames=30), "not both"),
    (dict(texts="ok", num_samples=0), "num_samples"),
    (dict(texts="ok", steps=0), "steps"),
    (dict(texts="ok", steps=5000), "at most 1000"),
    (dict(texts="ok", guidance=-1.0), "guidance"),
    (dict(texts="ok", temperature=2.5), "temperature must be a number from 0 to 2"),
    (dict(texts="ok", temperature=True), "temperature must be a number"),
    (dict(texts="ok", person_a=np.zeros((10, 5))), "person_a"),
    (dict(texts="ok", person_a=np.full((10, 262), np.nan)), "NaN"),
])
def test_bad_requests_raise_a_clear_error(torch_gen, kwargs, message):
    with pytest.raises(GeneratorError, match=message):
        torch_gen.generate(**kwargs)


def test_vary_rejects_bad_arguments(torch_gen):
    original = torch_gen.generate("ok", frames=10, steps=2)[0]
    with pytest.raises(GeneratorError, match="keep must be one of"):
        torch_gen.vary(original, keep="everything")
    with pytest.raises(GeneratorError, match="Interaction"):
        torch_gen.vary(original.joints)


def test_arguments_after_the_texts_and_the_interaction_are_keyword_only(torch_gen):
    original = torch_gen.generate("ok", frames=10, steps=2)[0]
    with pytest.raises(TypeError, match="positional"):
        torch_gen.generate("ok", 1.0)
    with pytest.raises(TypeError, match="positional"):
        torch_gen.vary(original, "individuals")


def test_threads_option_reaches_torch_and_onnxruntime(checkpoint, model_dir):
    previous = torch.get_num_threads()
    try:
        Generator.from_pretrained(checkpoint, threads=2)
        assert torch.get_num_threads() == 2  # torch's threads are the process's
    finally:
        torch.set_num_threads(previous)
    sessions = Generator.from_pretrained(model_dir, threads=2).backend.sessions
    assert sessions["decoder"].get_session_options().intra_op_num_threads == 2
    assert sessions["sampler_step"].get_session_options().intra_op_num_threads == 1  # too small to split
    with pytest.raises(ValueError, match="threads must be a positive integer, got 0"):
        Generator.from_pretrained(model_dir, threads=0)


def test_cpu_sessions_run_the_decoder_without_the_skip_layernorm_fusion(model_dir, tmp_path):
    import onnxruntime as ort

    from dhvae_sdk.runtime.onnx_backend import CPU, _open_session, _session_options

    options = _session_options(ort, 1)
    options.optimized_model_filepath = str(tmp_path / "decoder.optimized.onnx")
    _open_session(ort, model_dir / "decoder.onnx", options, [CPU])
    ops = {node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node}
    assert "LayerNormalization" in ops and "SkipLayerNormalization" not in ops, sorted(ops)


def test_too_long_text_is_truncated_with_a_warning(torch_gen):
    with pytest.warns(UserWarning, match="truncated"):
        [motion] = torch_gen.generate("they walk " * 60, frames=10, steps=2)
    assert motion.text.startswith("they walk")


def test_unknown_backend_and_wrong_pairings_name_the_fix(checkpoint, model_dir, tmp_path):
    with pytest.raises(ValueError, match="unknown backend 'tpu'"):
        Generator.from_pretrained(model_dir, backend="tpu")
    with pytest.raises(ModelFormatError, match="python -m export.to_onnx"):
        Generator.from_pretrained(checkpoint, backend="onnxruntime")
    with pytest.raises(ModelFormatError, match="training checkpoints"):
        Generator.from_pretrained(model_dir, backend="torch")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Generator.from_pretrained(tmp_path / "nothing.safetensors")
    from dhvae_sdk.runtime import BackendUnavailableError

    with pytest.raises(BackendUnavailableError, match="TensorRT|GPU"):
        Generator.from_pretrained(model_dir, backend="tensorrt")


def _damaged_copy(model_dir, tmp_path, damage):
    copy = tmp_path / "copy"
    shutil.copytree(model_dir, copy)
    damage(copy)
    return copy


def _flip_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _edit_manifest(directory, edit):
    manifest = json.loads((directory / MANIFEST_NAME).read_text())
    edit(manifest)
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest))


@pytest.mark.parametrize("damage, message", [
    (lambda d: _flip_byte(d / "decoder.onnx"), r"decoder.onnx \(decoder\) does not match its SHA-256"),
    (lambda d: (d / "sampler_step.onnx").write_bytes((d / "sampler_step.onnx").read_bytes()[:1000]), "truncated"),
    (lambda d: (d / "encoder.onnx").unlink(), "encoder.onnx .* is missing"),
    (lambda d: (d / MANIFEST_NAME).unlink(), "no manifest.json"),
    (lambda d: (d / MANIFEST_NAME).write_text("{not json"), "not valid JSON"),
    (lambda d: _edit_manifest(d, lambda m: m.update(format="other-model")), "not a dhvae model manifest"),
    (lambda d: _edit_manifest(d, lambda m: m.update(format_version=[1, 0])),
     r"format version 1.0, an export of an older model architecture .* re-export it .*python -m export.to_onnx"),
    (lambda d: _edit_manifest(d, lambda m: m.update(format_version=[3, 0])), "format version 3.0, newer"),
    (lambda d: _edit_manifest(d, lambda m: m.pop("files")), "incomplete or malformed"),
    (lambda d: _edit_manifest(d, lambda m: m["config"]["vae"].update(width="wide")), "config is invalid"),
])
def test_damaged_or_foreign_model_directories_are_refused(model_dir, tmp_path, damage, message):
    with pytest.raises(ModelFormatError, match=message):
        Generator.from_pretrained(_damaged_copy(model_dir, tmp_path, damage))


def test_demo_model_lookup_and_its_absence(monkeypatch, tmp_path, checkpoint, model_dir):
    monkeypatch.setattr(selection, "assets_directory", lambda: tmp_path)
    with pytest.raises(ModelFormatError, match="demo model is missing.*rebuild it as README.md"):
        Generator.from_pretrained()
    shutil.copy(checkpoint, tmp_path / selection.DEMO_CHECKPOINT)
    assert Generator.from_pretrained().backend.name == "torch"
    shutil.copytree(model_dir, tmp_path / selection.DEMO_MODEL_DIR)
    assert Generator.from_pretrained().backend.name == "onnxruntime"
    assert Generator.from_pretrained(backend="torch").backend.name == "torch"


def _as_format_1_checkpoint(source, target):
    """``source`` with the metadata of a checkpoint of the retired architecture."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(source), "pt") as file:
        metadata = {**file.metadata(), "format_version": "1"}
    save_file(load_file(str(source)), str(target), metadata=metadata)


def test_an_outdated_demo_model_is_refused_with_the_rebuild_to_run(monkeypatch, tmp_path, checkpoint, model_dir):
    monkeypatch.setattr(selection, "assets_directory", lambda: tmp_path)
    _as_format_1_checkpoint(checkpoint, tmp_path / selection.DEMO_CHECKPOINT)
    with pytest.raises(ModelFormatError, match=r"demo model .*demo.safetensors cannot be used .*checkpoint format 1"
                                               r".*rebuild it as README.md"):
        Generator.from_pretrained()
    shutil.copytree(model_dir, tmp_path / selection.DEMO_MODEL_DIR)
    _edit_manifest(tmp_path / selection.DEMO_MODEL_DIR, lambda m: m.update(format_version=[1, 0]))
    with pytest.raises(ModelFormatError, match=r"demo model .*demo_onnx cannot be used .*format version 1.0"
                                               r".*rebuild it as README.md"):
        Generator.from_pretrained()


def test_outputs_are_written_and_read_back(torch_gen, tmp_path):
    motion = torch_gen.generate("a high five", frames=12, steps=2, seed=0)[0]
    record = load_interaction_npz(motion.save_npz(tmp_path / "m.npz"))
    np.testing.assert_allclose(record.joints, motion.joints, atol=1e-6)
    assert record.text == "a high five" and record.fps == 30.0
    first, second = motion.save_bvh(tmp_path / "m.bvh")
    assert (first.name, second.name) == ("m_a.bvh", "m_b.bvh")
    np.testing.assert_allclose(load_bvh(second).joints[:, 0], motion.joints[:, 1, 0], atol=1e-5)  # root track
    assert motion.save_bvh(tmp_path / "p-{person}.bvh")[0].name == "p-a.bvh"
    gif = motion.render_gif(tmp_path / "m.gif")
    assert gif.read_bytes()[:3] == b"GIF"
    with pytest.raises(GeneratorError, match=r"\.mp4"):
        motion.render_mp4(tmp_path / "m.gif")


def test_one_generator_shared_by_eight_threads_matches_serial_calls(ort_gen):
    texts = [f"two people, variant {i}" for i in range(8)]
    serial = [ort_gen.generate(text, seed=i, **FAST)[0].joints for i, text in enumerate(texts)]
    results = [None] * 8
    barrier = threading.Barrier(8)

    def work(index):
        barrier.wait()
        for _ in range(2):
            results[index] = ort_gen.generate(texts[index], seed=index, **FAST)[0].joints

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for expected, got in zip(serial, results):
        np.testing.assert_array_equal(expected, got)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def test_repeated_generation_does_not_grow_memory(ort_gen):
    for seed in range(30):
        ort_gen.generate("they spin", frames=20, steps=5, seed=seed)
    before = _rss_bytes()
    for seed in range(200):
        ort_gen.generate("they spin", frames=20, steps=5, seed=seed)
    grown = _rss_bytes() - before
    assert grown < 20 * 2 ** 20, f"RSS grew by {grown / 2 ** 20:.1f} MiB over 200 generations"


def test_the_embedded_demo_model_generates_offline():
    gen = Generator.from_pretrained()
    assert gen.backend.name == "torch"
    first, again = (gen.generate("two people shake hands", frames=45, steps=5, seed=7)[0] for _ in range(2))
    assert first.joints.shape == (45, 2, 22, 3) and np.isfinite(first.joints).all()
    np.testing.assert_array_equal(first.joints, again.joints)
    heights = first.joints[..., 15, 1] - first.joints[..., 0, 1]  # head above pelvis: people stand upright
    assert (heights > 0.2).all(), heights.min()


# Run in a fresh interpreter in which importing torch fails: generation from an exported model
# must neither import it nor need it.
TORCH_FREE_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np

    class NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "torch":
                raise ImportError(f"{name} must not be imported by the ONNX runtime path")

    sys.meta_path.insert(0, NoTorch())
    from dhvae_sdk import Generator

    gen = Generator.from_pretrained(sys.argv[1], backend="onnxruntime")
    [motion] = gen.generate("two people shake hands", frames=24, steps=6, seed=5)
    [completed] = gen.generate("two people shake hands", person_a=motion, steps=6, seed=6)
    [varied] = gen.vary(motion, keep="interaction", steps=6, seed=7)
    assert not {name.split(".")[0] for name in sys.modules} & {"torch", "open_clip"}, "torch was imported"
    np.savez(sys.argv[2], motion=motion.joints, completed=completed.joints, varied=varied.joints)
""")


def test_onnx_generation_never_imports_torch(ort_gen, model_dir, tmp_path):
    out = tmp_path / "joints.npz"
    result = subprocess.run([sys.executable, "-c", TORCH_FREE_SCRIPT, str(model_dir), str(out)], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    [motion] = ort_gen.generate("two people shake hands", frames=24, steps=6, seed=5)
    [completed] = ort_gen.generate("two people shake hands", person_a=motion, steps=6, seed=6)
    [varied] = ort_gen.vary(motion, keep="interaction", steps=6, seed=7)
    with np.load(out) as saved:  # the same numbers as in this process, where torch is loaded
        np.testing.assert_array_equal(saved["motion"], motion.joints)
        np.testing.assert_array_equal(saved["completed"], completed.joints)
        np.testing.assert_array_equal(saved["varied"], varied.joints)
