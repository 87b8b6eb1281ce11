"""DDIM noise schedule and update rule, written once for every backend.

The schedule tables are numpy float64 and every per-step coefficient is a python float, so
``step`` and ``add_noise`` only use ``*``, ``+`` and ``-`` on the arrays they are given: the
same object drives torch tensors (training, torch backend) and numpy arrays (ONNX Runtime,
TensorRT backends). Nothing here imports torch.

Spacing is diffusers' "leading" rule, as the released model samples: ``num_steps``
timesteps ``k * (N // num_steps) + steps_offset`` from the largest down, each step going to
``t - N // num_steps``. The last step's target is negative: its cumulative alpha is
``alphas_cumprod[0]`` (``set_alpha_to_one`` False, the release's setting) or 1.0.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Sequence

import numpy as np

BETA_SCHEDULES = ("scaled_linear", "linear")
PREDICTIONS = ("epsilon", "x0", "v")

Array = Any  # a numpy array or a torch tensor; only arithmetic is applied to it


@dataclass(frozen=True)
class StepCoefficients:
    """One DDIM update as two linear maps, so a backend can bake the floats in:

    ``x0 = x0_from_sample * x_t + x0_from_output * model_output`` (then optional clipping),
    ``x_prev = prev_from_x0 * x0 + prev_from_sample * x_t + prev_from_noise * noise``.
    """
    timestep: int
    prev_timestep: int
    x0_from_sample: float
    x0_from_output: float
    prev_from_x0: float
    prev_from_sample: float
    prev_from_noise: float


@dataclass(frozen=True)
class DDIMScheduler:
    num_train_steps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    beta_schedule: str = "scaled_linear"
    prediction: str = "epsilon"
    steps_offset: int = 1
    set_alpha_to_one: bool = False
    clip_sample: bool = False
    clip_range: float = 1.0

    def __post_init__(self):
        if self.num_train_steps < 2:
            raise ValueError(f"num_train_steps must be at least 2, got {self.num_train_steps}")
        if self.steps_offset < 0:
            raise ValueError(f"steps_offset must be >= 0, got {self.steps_offset}")
        if self.beta_schedule not in BETA_SCHEDULES:
            raise ValueError(f"beta_schedule {self.beta_schedule!r} is unknown; use one of {BETA_SCHEDULES}")
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction {self.prediction!r} is unknown; use one of {PREDICTIONS}")
        if not 0.0 < self.beta_start <= self.beta_end < 1.0:
            raise ValueError(f"betas must satisfy 0 < beta_start <= beta_end < 1, "
                             f"got {self.beta_start} and {self.beta_end}")

    @property
    def betas(self) -> np.ndarray:
        if self.beta_schedule == "linear":
            return np.linspace(self.beta_start, self.beta_end, self.num_train_steps)
        return np.linspace(self.beta_start ** 0.5, self.beta_end ** 0.5, self.num_train_steps) ** 2

    @cached_property
    def alphas_cumprod(self) -> np.ndarray:
        return np.cumprod(1.0 - self.betas)

    def alpha_cumprod(self, t: int) -> float:
        """Cumulative alpha at timestep ``t``; any t < 0 is the target of the last step."""
        if t < 0:
            return 1.0 if self.set_alpha_to_one else float(self.alphas_cumprod[0])
        if t >= self.num_train_steps:
            raise ValueError(f"timestep {t} is outside the schedule [0, {self.num_train_steps - 1}]")
        return float(self.alphas_cumprod[t])

    def timesteps(self, num_steps: int) -> list[int]:
        if not 1 <= num_steps <= self.num_train_steps:
            raise ValueError(f"num_steps must be in [1, {self.num_train_steps}], got {num_steps}")
        stride = self.num_train_steps // num_steps
        if (num_steps - 1) * stride + self.steps_offset >= self.num_train_steps:
            raise ValueError(f"{num_steps} steps with steps_offset {self.steps_offset} reach past timestep "
                             f"{self.num_train_steps - 1}; use fewer steps")
        return [k * stride + self.steps_offset for k in reversed(range(num_steps))]

    def step_pairs(self, num_steps: int) -> list[tuple[int, int]]:
        """(t, t_prev) for every sampling step; the last t_prev is negative."""
        stride = self.num_train_steps // num_steps
        return [(t, t - stride) for t in self.timesteps(num_steps)]

    def step_coefficients(self, t: int, t_prev: int, eta: float = 0.0) -> StepCoefficients:
        if t_prev >= t:
            raise ValueError(f"t_prev ({t_prev}) must be smaller than t ({t})")
        if eta < 0.0:
            raise ValueError(f"eta must be >= 0, got {eta}")
        alpha, alpha_prev = self.alpha_cumprod(t), self.alpha_cumprod(t_prev)
        x0_from_sample, x0_from_output = self._x0_weights(alpha)
        sigma = eta * np.sqrt((1.0 - alpha_prev) / (1.0 - alpha) * (1.0 - alpha / alpha_prev))
        # Direction back towards x_t, written through x0 and x_t: eps = (x_t - sqrt(a) x0) / sqrt(1 - a).
        direction = np.sqrt(max(1.0 - alpha_prev - sigma ** 2, 0.0)) / np.sqrt(1.0 - alpha)
        return StepCoefficients(
            timestep=t,
            prev_timestep=t_prev,
            x0_from_sample=x0_from_sample,
            x0_from_output=x0_from_output,
            prev_from_x0=float(np.sqrt(alpha_prev) - direction * np.sqrt(alpha)),
            prev_from_sample=float(direction),
            prev_from_noise=float(sigma),
        )

    def coefficients(self, num_steps: int, eta: float = 0.0) -> list[StepCoefficients]:
        return [self.step_coefficients(t, t_prev, eta) for t, t_prev in self.step_pairs(num_steps)]

    def step(self, model_output: Array, t: int, t_prev: int, x_t: Array,
             eta: float = 0.0, noise: Array | None = None) -> Array:
        coef = self.step_coefficients(t, t_prev, eta)
        if coef.prev_from_noise > 0.0 and noise is None:
            raise ValueError(f"eta={eta} makes the DDIM step stochastic: pass `noise` shaped like x_t")
        x0 = coef.x0_from_sample * x_t + coef.x0_from_output * model_output
        if self.clip_sample:
            x0 = x0.clip(-self.clip_range, self.clip_range)
        x_prev = coef.prev_from_x0 * x0 + coef.prev_from_sample * x_t
        if coef.prev_from_noise > 0.0:
            x_prev = x_prev + coef.prev_from_noise * noise
        return x_prev

    def predict_x0(self, model_output: Array, x_t: Array, t: int | Sequence[int] | Array) -> Array:
        alphas = self._alphas_for(t)
        from_sample, from_output = zip(*(self._x0_weights(a) for a in alphas))
        return (_per_sample(from_sample, x_t) * x_t
                + _per_sample(from_output, model_output) * model_output)

    def add_noise(self, x0: Array, noise: Array, t: int | Sequence[int] | Array) -> Array:
        """q(x_t | x0). ``t`` is one timestep or one per batch row (int sequence/array/tensor)."""
        signal, spread = self._signal_and_noise_scales(t)
        return _per_sample(signal, x0) * x0 + _per_sample(spread, noise) * noise

    def training_target(self, x0: Array, noise: Array, t: int | Sequence[int] | Array) -> Array:
        """What the network regresses at timestep ``t`` under this scheduler's parameterization."""
        if self.prediction == "epsilon":
            return noise
        if self.prediction == "x0":
            return x0
        signal, spread = self._signal_and_noise_scales(t)
        return _per_sample(signal, noise) * noise - _per_sample(spread, x0) * x0

    def _x0_weights(self, alpha: float) -> tuple[float, float]:
        """x0 = w_sample * x_t + w_output * model_output for this parameterization."""
        if self.prediction == "epsilon":
            return float(1.0 / np.sqrt(alpha)), float(-np.sqrt(1.0 - alpha) / np.sqrt(alpha))
        if self.prediction == "x0":
            return 0.0, 1.0
        return float(np.sqrt(alpha)), float(-np.sqrt(1.0 - alpha))

    def _signal_and_noise_scales(self, t) -> tuple[list[float], list[float]]:
        """sqrt(alpha_cumprod) and sqrt(1 - alpha_cumprod) per timestep."""
        alphas = self._alphas_for(t)
        return [float(np.sqrt(a)) for a in alphas], [float(np.sqrt(1.0 - a)) for a in alphas]

    def _alphas_for(self, t) -> list[float]:
        steps = [t] if isinstance(t, (int, np.integer)) else list(np.asarray(_to_list(t)).reshape(-1))
        return [self.alpha_cumprod(int(s)) for s in steps]


def _to_list(values) -> list:
    """Plain python numbers from a sequence, numpy array or torch tensor (no torch import)."""
    return values.tolist() if hasattr(values, "tolist") else list(values)


def _per_sample(values: Sequence[float], like: Array):
    """A float (one timestep) or a [B, 1, ..., 1] array of ``like``'s kind, dtype and device."""
    if len(values) == 1:
        return float(values[0])
    if len(values) != like.shape[0]:
        raise ValueError(f"got {len(values)} timesteps for a batch of {like.shape[0]} rows; "
                         f"pass one timestep or one per row")
    shape = (len(values),) + (1,) * (len(like.shape) - 1)
    if hasattr(like, "new_tensor"):  # torch: keep the tensor's dtype and device
        return like.new_tensor(list(values)).reshape(shape)
    return np.asarray(values, dtype=like.dtype).reshape(shape)
