"""DDIM scheduler, classifier-free guidance and the sampling loop, checked against closed forms."""
import math

import numpy as np
import pytest
import torch

from dhvae_sdk.sampling import DDIMScheduler, NumpyOps, classifier_free_guidance, sample_latents
from dhvae_sdk.sampling.torch_arrays import TorchOps

# The oracle tests end on clean data (alpha 1), where a point-mass oracle's target is reached
# exactly; the release's default last step, onto alphas_cumprod[0], has a test of its own.
CLEAN_END = dict(set_alpha_to_one=True)


def point_mass_oracle(scheduler, target):
    """The ideal network output when every training sample equals ``target``."""
    def output(x_t, t):
        alpha = scheduler.alpha_cumprod(t)
        eps = (x_t - math.sqrt(alpha) * target) / math.sqrt(1.0 - alpha)
        if scheduler.prediction == "epsilon":
            return eps
        if scheduler.prediction == "x0":
            return target + 0.0 * x_t
        return math.sqrt(alpha) * eps - math.sqrt(1.0 - alpha) * target
    return output


def run_ddim(scheduler, oracle, x_t, num_steps, eta=0.0, rng=None):
    trajectory = []
    for t, t_prev in scheduler.step_pairs(num_steps):
        noise = rng.standard_normal(x_t.shape) if eta > 0 else None
        x_t = scheduler.step(oracle(x_t, t), t, t_prev, x_t, eta=eta, noise=noise)
        trajectory.append(x_t)
    return trajectory


def test_scaled_linear_schedule_matches_its_definition():
    scheduler = DDIMScheduler()
    betas = scheduler.betas
    assert betas[0] == pytest.approx(0.00085) and betas[-1] == pytest.approx(0.012)
    assert np.allclose(np.diff(np.sqrt(betas), n=2), 0.0, atol=1e-15)
    step = (math.sqrt(0.012) - math.sqrt(0.00085)) / 999
    expected_last = math.prod(1.0 - (math.sqrt(0.00085) + i * step) ** 2 for i in range(1000))
    assert scheduler.alphas_cumprod[-1] == pytest.approx(expected_last, rel=1e-9)


def test_the_last_step_lands_on_the_first_alpha_unless_set_to_one():
    """The release's setting (set_alpha_to_one False): the final target is alphas_cumprod[0]."""
    assert DDIMScheduler().alpha_cumprod(-19) == pytest.approx(1.0 - 0.00085) == DDIMScheduler().alphas_cumprod[0]
    assert DDIMScheduler(set_alpha_to_one=True).alpha_cumprod(-19) == 1.0
    scheduler = DDIMScheduler()
    x0, eps = np.array([0.7, -1.2]), np.array([0.3, 0.9])
    alpha_t, alpha_0 = scheduler.alphas_cumprod[1], scheduler.alphas_cumprod[0]
    x_t = math.sqrt(alpha_t) * x0 + math.sqrt(1.0 - alpha_t) * eps
    # DDIM with eta 0 keeps the noise direction: x_prev = sqrt(a_0) x0 + sqrt(1 - a_0) eps.
    expected = math.sqrt(alpha_0) * x0 + math.sqrt(1.0 - alpha_0) * eps
    assert np.allclose(scheduler.step(eps, 1, -19, x_t), expected, atol=1e-12)
    assert not np.allclose(DDIMScheduler(set_alpha_to_one=True).step(eps, 1, -19, x_t), expected, atol=1e-3)


def test_linear_schedule_is_evenly_spaced():
    betas = DDIMScheduler(beta_schedule="linear", beta_start=1e-4, beta_end=0.02).betas
    assert np.allclose(np.diff(betas), (0.02 - 1e-4) / 999)


def test_leading_timesteps_are_offset_by_one_as_the_release_samples():
    scheduler = DDIMScheduler()
    assert scheduler.timesteps(50) == list(range(981, 0, -20))
    pairs = scheduler.step_pairs(50)
    assert pairs[0] == (981, 961) and pairs[-1] == (1, -19)
    assert DDIMScheduler(steps_offset=0).timesteps(1000) == list(range(999, -1, -1))
    with pytest.raises(ValueError, match="reach past timestep 999; use fewer steps"):
        scheduler.timesteps(1000)


@pytest.mark.parametrize("prediction", ["epsilon", "x0", "v"])
def test_oracle_is_recovered_in_50_steps(prediction):
    scheduler = DDIMScheduler(prediction=prediction, **CLEAN_END)
    target = np.array([0.7, -1.3, 2.0, 0.0])
    start = np.random.default_rng(0).standard_normal((8, 4))
    final = run_ddim(scheduler, point_mass_oracle(scheduler, target), start, 50)[-1]
    assert np.abs(final - target).max() < 1e-5


def test_parameterizations_follow_the_same_trajectory():
    target = np.array([0.5, -0.25, 1.5])
    start = np.random.default_rng(1).standard_normal((4, 3))
    trajectories = []
    for prediction in ("epsilon", "x0", "v"):
        scheduler = DDIMScheduler(prediction=prediction)
        trajectories.append(np.stack(run_ddim(scheduler, point_mass_oracle(scheduler, target), start, 20)))
    assert np.abs(trajectories[0] - trajectories[1]).max() < 1e-9
    assert np.abs(trajectories[0] - trajectories[2]).max() < 1e-9


def test_stochastic_steps_still_reach_the_oracle():
    scheduler = DDIMScheduler(**CLEAN_END)
    target = np.array([1.0, -2.0])
    start = np.random.default_rng(2).standard_normal((16, 2))
    final = run_ddim(scheduler, point_mass_oracle(scheduler, target), start, 25, eta=1.0,
                     rng=np.random.default_rng(3))[-1]
    assert np.abs(final - target).max() < 1e-5


def test_eta_one_with_unit_stride_is_the_ddpm_posterior():
    scheduler = DDIMScheduler()
    t = 600
    alpha, alpha_prev = scheduler.alphas_cumprod[t], scheduler.alphas_cumprod[t - 1]
    beta = scheduler.betas[t]
    coef = scheduler.step_coefficients(t, t - 1, eta=1.0)
    assert coef.prev_from_noise ** 2 == pytest.approx((1 - alpha_prev) / (1 - alpha) * beta, rel=1e-9)
    assert coef.prev_from_x0 == pytest.approx(math.sqrt(alpha_prev) * beta / (1 - alpha), rel=1e-9)
    assert coef.prev_from_sample == pytest.approx(math.sqrt(1 - beta) * (1 - alpha_prev) / (1 - alpha),
                                                  rel=1e-9)


def test_coefficients_reproduce_step():
    scheduler = DDIMScheduler(prediction="v")
    rng = np.random.default_rng(4)
    x_t, output, noise = (rng.standard_normal((3, 5)) for _ in range(3))
    for coef in scheduler.coefficients(10, eta=0.5):
        x0 = coef.x0_from_sample * x_t + coef.x0_from_output * output
        by_hand = coef.prev_from_x0 * x0 + coef.prev_from_sample * x_t + coef.prev_from_noise * noise
        stepped = scheduler.step(output, coef.timestep, coef.prev_timestep, x_t, eta=0.5, noise=noise)
        assert np.allclose(stepped, by_hand, atol=1e-12)


def test_numpy_and_torch_inputs_give_the_same_step():
    scheduler = DDIMScheduler()
    rng = np.random.default_rng(5)
    x_t, output, noise = (rng.standard_normal((2, 3, 8)).astype(np.float32) for _ in range(3))
    for t, t_prev in scheduler.step_pairs(50)[::7]:
        from_numpy = scheduler.step(output, t, t_prev, x_t, eta=0.3, noise=noise)
        from_torch = scheduler.step(torch.from_numpy(output), t, t_prev, torch.from_numpy(x_t),
                                    eta=0.3, noise=torch.from_numpy(noise))
        assert isinstance(from_torch, torch.Tensor) and from_torch.dtype == torch.float32
        assert from_numpy.dtype == np.float32
        assert np.allclose(from_numpy, from_torch.numpy(), rtol=1e-6, atol=1e-6)


def test_add_noise_statistics():
    scheduler = DDIMScheduler()
    x0 = np.full(400_000, 2.0)
    noise = np.random.default_rng(6).standard_normal(x0.shape)
    noised = scheduler.add_noise(x0, noise, 500)
    alpha = scheduler.alphas_cumprod[500]
    assert noised.mean() == pytest.approx(2.0 * math.sqrt(alpha), abs=5e-3)
    assert noised.std() == pytest.approx(math.sqrt(1.0 - alpha), rel=5e-3)


def test_per_row_timesteps_match_single_timesteps():
    scheduler = DDIMScheduler(prediction="v")
    x0 = torch.randn(3, 4, 2, generator=torch.Generator().manual_seed(0))
    noise = torch.randn(3, 4, 2, generator=torch.Generator().manual_seed(1))
    steps = torch.tensor([10, 500, 999])
    noised = scheduler.add_noise(x0, noise, steps)
    target = scheduler.training_target(x0, noise, steps)
    for row, t in enumerate(steps.tolist()):
        assert torch.allclose(noised[row], scheduler.add_noise(x0[row], noise[row], t))
        assert torch.allclose(target[row], scheduler.training_target(x0[row], noise[row], t))
    with pytest.raises(ValueError, match="one per row"):
        scheduler.add_noise(x0, noise, [1, 2])


@pytest.mark.parametrize("prediction", ["epsilon", "x0", "v"])
def test_training_target_inverts_to_x0(prediction):
    scheduler = DDIMScheduler(prediction=prediction)
    rng = np.random.default_rng(7)
    x0, noise = rng.standard_normal((4, 6)), rng.standard_normal((4, 6))
    steps = np.array([0, 250, 750, 999])
    x_t = scheduler.add_noise(x0, noise, steps)
    recovered = scheduler.predict_x0(scheduler.training_target(x0, noise, steps), x_t, steps)
    assert np.allclose(recovered, x0, atol=1e-9)


def test_clip_sample_bounds_the_estimate():
    scheduler = DDIMScheduler(prediction="x0", clip_sample=True, **CLEAN_END)
    x_t = np.zeros(3)
    assert np.allclose(scheduler.step(np.array([5.0, -5.0, 0.5]), 0, -1, x_t), [1.0, -1.0, 0.5])


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="beta_schedule"):
        DDIMScheduler(beta_schedule="cosine")
    with pytest.raises(ValueError, match="prediction"):
        DDIMScheduler(prediction="score")
    scheduler = DDIMScheduler()
    with pytest.raises(ValueError, match="num_steps"):
        scheduler.timesteps(0)
    with pytest.raises(ValueError, match="t_prev"):
        scheduler.step_coefficients(10, 10)
    with pytest.raises(ValueError, match="noise"):
        scheduler.step(np.zeros(2), 20, 0, np.zeros(2), eta=1.0)
    with pytest.raises(ValueError, match="outside the schedule"):
        scheduler.add_noise(np.zeros(2), np.zeros(2), 1000)


def test_guidance_extrapolates_from_unconditional_rows():
    batched = np.array([[1.0, 2.0], [0.0, 1.0]])  # row 0 conditional, row 1 unconditional
    assert np.allclose(classifier_free_guidance(batched, 3.0), [[3.0, 4.0]])
    assert np.allclose(classifier_free_guidance(batched, 0.0), [[0.0, 1.0]])
    with pytest.raises(ValueError, match="odd"):
        classifier_free_guidance(np.zeros((3, 2)), 2.0)


def two_target_denoiser(scheduler, conditional_target, unconditional_target, calls):
    """Conditional rows aim at one point, unconditional rows at another."""
    conditional = point_mass_oracle(scheduler, conditional_target)
    unconditional = point_mass_oracle(scheduler, unconditional_target)

    def denoise(latents, t, step_index):
        calls.append((latents.shape[0], t, step_index))
        half = latents.shape[0] // 2
        return np.concatenate([conditional(latents[:half], t), unconditional(latents[half:], t)])
    return denoise


def test_sampling_loop_applies_guidance_to_one_doubled_batch():
    scheduler = DDIMScheduler(**CLEAN_END)
    conditional, unconditional = np.array([1.0, 0.0, -1.0]), np.array([0.0, 0.5, -0.5])
    calls = []
    latents = sample_latents(two_target_denoiser(scheduler, conditional, unconditional, calls),
                             scheduler, (5, 2, 3), 50, 3.5, NumpyOps.from_seed(0, dtype=np.float64))
    # Guidance on point-mass oracles is the oracle of the extrapolated point.
    expected = unconditional + 3.5 * (conditional - unconditional)
    assert np.abs(latents - expected).max() < 1e-5
    assert calls == [(10, t, i) for i, t in enumerate(scheduler.timesteps(50))]


def test_inpainting_noises_known_tokens_and_returns_them_exactly():
    scheduler = DDIMScheduler(**CLEAN_END)
    batch = 4000
    known = np.zeros((batch, 3, 1))
    known[:, 0] = 0.8
    mask = np.zeros((batch, 3, 1), dtype=bool)
    mask[:, 0] = True
    standardized_known = []
    free_target = point_mass_oracle(scheduler, -0.3)

    def denoise(latents, t, step_index):
        alpha = scheduler.alpha_cumprod(t)
        standardized_known.append((latents[:batch, 0] - math.sqrt(alpha) * 0.8) / math.sqrt(1 - alpha))
        return free_target(latents, t)

    latents = sample_latents(denoise, scheduler, (batch, 3, 1), 10, 2.0, NumpyOps.from_seed(1, np.float64),
                             known_tokens=known, known_mask=mask)
    assert np.array_equal(latents[:, 0], known[:, 0])
    assert np.abs(latents[:, 1:] + 0.3).max() < 1e-5
    # Before every step the known token carries fresh noise of exactly that step's level.
    for standardized in standardized_known:
        assert abs(standardized.mean()) < 0.06 and standardized.std() == pytest.approx(1.0, abs=0.05)
    assert abs(np.corrcoef(standardized_known[0][:, 0], standardized_known[1][:, 0])[0, 1]) < 0.06


def test_torch_sampling_path_matches_the_oracle():
    scheduler = DDIMScheduler(prediction="v", **CLEAN_END)
    target = torch.tensor([0.25, -0.75])
    oracle = point_mass_oracle(scheduler, target)
    known = torch.zeros(3, 2, 2)
    known[:, 1] = torch.tensor([2.0, -2.0])
    mask = torch.zeros(3, 2, 1, dtype=torch.bool)
    mask[:, 1] = True
    latents = sample_latents(lambda x, t, i: oracle(x, t), scheduler, (3, 2, 2), 50, 1.0,
                             TorchOps.from_seed(0), known_tokens=known, known_mask=mask)
    assert isinstance(latents, torch.Tensor) and latents.dtype == torch.float32
    assert torch.equal(latents[:, 1], known[:, 1])
    assert (latents[:, 0] - target).abs().max() < 1e-5


def test_temperature_scales_the_starting_noise_and_nothing_else():
    scheduler = DDIMScheduler()
    first_inputs = {}

    def recording(temperature):
        def denoise(latents, t, step_index):
            first_inputs.setdefault(temperature, latents.copy())
            return np.zeros_like(latents)
        return denoise

    for temperature in (1.0, 0.3):
        sample_latents(recording(temperature), scheduler, (2, 3), 5, 2.0, NumpyOps.from_seed(4),
                       temperature=temperature)
    unit, scaled = first_inputs[1.0], first_inputs[0.3]
    assert np.abs(unit).max() > 0.5
    np.testing.assert_allclose(scaled, 0.3 * unit, rtol=1e-6)
    np.testing.assert_array_equal(unit[:2], unit[2:])  # the doubled batch: conditional and unconditional rows


def test_sampling_loop_refuses_inconsistent_inputs():
    scheduler = DDIMScheduler()
    ops = NumpyOps.from_seed(0)
    with pytest.raises(ValueError, match="known_mask"):
        sample_latents(lambda x, t, i: x, scheduler, (2, 3), 5, 1.0, ops, known_tokens=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="doubled batch"):
        sample_latents(lambda x, t, i: x[:2], scheduler, (2, 3), 5, 1.0, ops)
