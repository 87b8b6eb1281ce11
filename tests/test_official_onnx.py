"""The released DHVAE on ONNX Runtime (fp32): the authors' fixture, converted and exported like
any checkpoint, reproduces every recorded array through the exported graphs."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from dhvae_sdk.convert import convert_official
from dhvae_sdk.generator import Generator
from dhvae_sdk.models import empty_text_tokens, lengths_to_mask
from dhvae_sdk.runtime.base import LoopPlan
from dhvae_sdk.runtime.onnx_backend import OnnxRuntimeBackend
from export.to_onnx import export_model
from tests.official_fixture import VARIANTS, assert_matches, clip_heads, model_checkpoint, official, recorded


class FixtureNoise:
    """``NumpyOps`` whose one draw is the fixture's initial noise."""

    def __init__(self, initial: np.ndarray):
        self.initial = initial

    def randn(self, shape):
        assert tuple(shape) == self.initial.shape
        return self.initial.copy()


def step_with_guided_output(path) -> ort.InferenceSession:
    """The exported DDIM step with its guided prediction as a second output, so that the test
    compares the prediction itself: read back from the next latents through the step's linear
    maps, the latents' float32 rounding grew to 1.7e-5 x max|ref| (6e-7 measured directly)."""
    model = onnx.load(path)
    # guided = unconditional + guidance * (conditional - unconditional): the Add after the
    # one Mul that reads the guidance input.
    [scale] = [node for node in model.graph.node if node.op_type == "Mul" and "guidance" in node.input]
    [guided] = [node for node in model.graph.node if node.op_type == "Add" and scale.output[0] in node.input]
    model.graph.output.append(onnx.helper.make_tensor_value_info(guided.output[0], onnx.TensorProto.FLOAT, None))
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


# Each variant's export takes about a minute here: the variants are separate scheduling groups
# (tests/conftest.py), so that two workers export two of them at once.
@pytest.fixture(scope="module", params=[
    pytest.param(variant, marks=[pytest.mark.slow, pytest.mark.xdist_group(f"official-onnx-{variant}")])
    for variant in VARIANTS
])
def exported(request, tmp_path_factory):
    variant = request.param
    folder = tmp_path_factory.mktemp(variant)
    convert_official(model_checkpoint(variant), folder / "model.safetensors", clip_heads=clip_heads())
    export_model(folder / "model.safetensors", folder / "onnx", precision="fp32")
    return variant, OnnxRuntimeBackend.from_directory(folder / "onnx", device="cpu"), folder / "onnx"


def test_text_condition_and_modulation_match(exported):
    variant, backend, _ = exported
    arrays = recorded(variant)
    assert_matches("cond", backend.encode_text(arrays["tokens"]), arrays["cond"])
    assert_matches("null text", backend.null_text, arrays["cond"][0])
    # The modulation graph holds the timestep embedding: compare it with the recorded one's.
    denoiser = official(variant).model.denoiser
    batch = len(arrays["texts"])
    conditions = arrays["cond"][batch:]
    with torch.no_grad():
        condition = torch.from_numpy(arrays["time_emb"])[:, None] + torch.from_numpy(conditions)[None]
        expected = denoiser.modulation(condition.flatten(0, 1)).unflatten(0, condition.shape[:2])
    assert_matches("modulation", backend._modulation(arrays["timesteps"], conditions), expected)


def test_every_ddim_step_matches(exported):
    variant, backend, folder = exported
    arrays = recorded(variant)
    batch, steps = len(arrays["texts"]), int(arrays["steps"])
    plan = LoopPlan.draw(backend.scheduler, arrays["init_latents"].shape, steps, 1.0,
                         FixtureNoise(arrays["init_latents"]), None)
    null = backend.null_modulation(plan.timesteps)
    table = np.concatenate([backend._modulation(plan.timesteps, arrays["cond"][batch:]),
                            np.broadcast_to(null, (steps, batch, *null.shape[2:]))], axis=1)
    session = step_with_guided_output(folder / "sampler_step.onnx")
    for index in range(steps):
        # Each step from the recorded latents before it, so that one step's error stands alone.
        latents = arrays["init_latents"] if index == 0 else arrays["step_latents_out"][index - 1]
        inputs = {"latents": latents, "step": np.array([index]), "modulation_table": np.ascontiguousarray(table),
                  "coefficient_table": plan.coefficients, "guidance": np.array([3.5], np.float32),
                  "known_table": plan.known_table, "known_mask": plan.known_mask}
        out, guided = session.run(None, inputs)
        assert_matches(f"step {index} latents", out, arrays["step_latents_out"][index])
        assert_matches(f"step {index} guided", guided, arrays["step_noise_pred_guided"][index])
    # The backend's own loop, from the same noise.
    final = backend.sample(arrays["cond"][batch:], steps, 3.5, 1.0, FixtureNoise(arrays["init_latents"]))
    assert_matches("step_latents_out", final, arrays["step_latents_out"][-1])


def test_decoder_and_encoder_match(exported):
    variant, backend, _ = exported
    arrays = recorded(variant)
    lengths = arrays["lengths"]
    mask = lengths_to_mask(torch.from_numpy(lengths), arrays["output_normalized"].shape[1]).numpy()
    decoded = backend.sessions["decoder"].run(None, {"latents": arrays["step_latents_out"][-1], "mask": mask})[0]
    assert_matches("output_normalized", decoded.reshape(decoded.shape[0], decoded.shape[1], -1), arrays["output_normalized"])
    motion = arrays["enc_motion"]
    features = motion.reshape(*motion.shape[:2], 2, -1)
    mask = lengths_to_mask(torch.from_numpy(arrays["enc_lengths"]), motion.shape[1]).numpy()
    means, logvars = backend.sessions["encoder"].run(None, {"features": features, "mask": mask})
    tokens = official(variant).config.vae.latent_tokens
    for index, scale in enumerate((1.0, 1.0, 5.0)):  # denoiser space: z_g x 5, so its variance x 25
        reference = arrays[f"enc_z{index + 1}"]  # the first tokens are the means, the next the logvars
        assert_matches(f"enc_z{index + 1} mean", np.split(means, 3, axis=1)[index], scale * reference[:, :tokens])
        assert_matches(f"enc_z{index + 1} logvar", np.split(logvars, 3, axis=1)[index] - 2 * np.log(scale),
                       reference[:, tokens:])


def test_generator_runs_the_released_file_directly(tmp_path):
    converted = tmp_path / "cat.safetensors"
    convert_official(model_checkpoint("cat"), converted)  # CLIP's default head count, as the Generator reads it
    from_ckpt = Generator.from_pretrained(model_checkpoint("cat"), backend="torch")
    from_converted = Generator.from_pretrained(converted, backend="torch")
    [ours] = from_ckpt.generate("two people shake hands", frames=40, seed=3)
    [reference] = from_converted.generate("two people shake hands", frames=40, seed=3)
    assert ours.joints.shape == (40, 2, 22, 3)
    np.testing.assert_allclose(ours.joints, reference.joints, atol=1e-5)
    assert np.abs(ours.joints).max() > 0
