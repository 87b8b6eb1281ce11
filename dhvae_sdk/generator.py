"""Text in, two-person motion out: the SDK's front door.

    from dhvae_sdk import Generator
    gen = Generator.from_pretrained()                     # the embedded demo model
    [motion] = gen.generate("two people shake hands", seconds=6, seed=0)
    motion.render_mp4("handshake.mp4")

Every call owns its random generator (seeded by ``seed``) and its buffers, so one Generator
can be shared by many threads, and the same seed gives the same motion on the same backend.
"""
from __future__ import annotations

import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from dhvae_sdk.errors import DHVAEError
from dhvae_sdk.models import GROUPS, token_ids
from dhvae_sdk.models.config import MAX_TEMPERATURE
from dhvae_sdk.motion import FEATURE_DIM, features_to_joints
from dhvae_sdk.motion.bvh import save_bvh
from dhvae_sdk.motion.npz import save_interaction_npz
from dhvae_sdk.motion.skeleton import NUM_JOINTS
from dhvae_sdk.runtime import Backend, Inpainting, ProgressFn, open_backend
from dhvae_sdk.sampling import NumpyOps

DEFAULT_SECONDS = 7.0  # or the model maximum, when shorter
VARY_KEEPS = ("interaction", "individuals")
# Far beyond any useful scale (the release uses 3.5): larger ones only push the latents off the
# distribution the decoder knows, which yields wild motion, not a more faithful one.
MAX_GUIDANCE = 20.0
DEVICE_PATTERN = re.compile(r"cpu|cuda(:\d+)?")
# One call may plan for this share of the memory the machine has available (``_check_batch``).
MEMORY_SHARE = 0.5


class GeneratorError(DHVAEError, ValueError):
    """A request the model cannot serve; the message says what to change."""


@dataclass(frozen=True)
class Interaction:
    """One generated two-person motion.

    ``joints`` [T, 2, 22, 3] (Y up, metres; person A then B), ``features`` [T, 2, 262]
    (InterHuman features in raw units), ``latents`` [3l, d_z] (denoiser space, what ``vary``
    starts from), ``text`` and ``fps``.
    """

    joints: np.ndarray
    features: np.ndarray
    latents: np.ndarray
    text: str
    fps: float

    @property
    def frames(self) -> int:
        return len(self.joints)

    @property
    def seconds(self) -> float:
        return self.frames / self.fps

    def save_npz(self, path: str | os.PathLike) -> Path:
        return save_interaction_npz(path, self.joints, self.features, self.text, self.fps)

    def save_bvh(self, path: str | os.PathLike) -> tuple[Path, Path]:
        """One BVH per person (BVH holds one skeleton). ``path`` may contain ``{person}``
        (replaced by "a" and "b"); otherwise "_a" / "_b" go before the suffix."""
        template = str(path)
        if "{person}" not in template:
            stem, suffix = os.path.splitext(template)
            template = f"{stem}_{{person}}{suffix or '.bvh'}"
        return tuple(save_bvh(self.joints[:, index], template.format(person=person), fps=self.fps)
                     for index, person in enumerate("ab"))

    def to_smplx(self, model_dir: str | os.PathLike, path: str | os.PathLike | None = None, betas=None,
                 render: str | os.PathLike | None = None):
        """SMPL-X parameters fitted to both persons (``dhvae_sdk.body.fit_interaction``; the
        model files are the user's). ``path`` (``out.smplx.npz``) writes one Blender add-on
        .npz per person, ``render`` an mp4 of the meshes. Returns the ``InteractionFit``."""
        from dhvae_sdk.body.export import fit_interaction  # torch fitting loads only when asked

        fit = fit_interaction(self.joints, self.fps, model_dir, betas)
        if path is not None:
            fit.save(path)
        if render is not None:
            from dhvae_sdk.body.render import render_mesh_mp4

            render_mesh_mp4(fit, render, self.text)
        return fit

    def render_mp4(self, path: str | os.PathLike) -> Path:
        return self._render(path, ".mp4")

    def render_gif(self, path: str | os.PathLike) -> Path:
        return self._render(path, ".gif")

    def _render(self, path, suffix: str) -> Path:
        from dhvae_sdk.visualize import render_video  # matplotlib loads only when rendering

        if Path(path).suffix.lower() != suffix:
            raise GeneratorError(f"{path}: a {suffix} file name is needed here")
        return render_video(self.joints, path, title=self.text, fps=self.fps)


class Generator:
    def __init__(self, backend: Backend, reason: str = ""):
        self.backend = backend
        self.reason = reason
        self.config = backend.config
        if self.config.vae.feature_dim != FEATURE_DIM:
            raise GeneratorError(
                f"this model produces {self.config.vae.feature_dim}-number {self.config.dataset} features; "
                f"the Generator turns InterHuman-format ({FEATURE_DIM}) models into joints"
            )
        self.fps = float(self.config.fps)
        self.max_frames = self.config.vae.max_frames

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None = None, backend: str = "auto",
                        device: str | None = None, threads: int | None = None,
                        quiet: bool = False) -> "Generator":
        """``path``: a training checkpoint (.safetensors, runs on torch) or an exported model
        directory (ONNX Runtime / TensorRT); None for the embedded demo model. ``backend``:
        "auto", "torch", "onnxruntime" or "tensorrt". ``device``: None (automatic), "cpu",
        "cuda" or "cuda:N". ``threads``: CPU threads of the backend (torch's are per process,
        so the torch backend sets them for the whole process); None picks as many as the CPUs
        this process may use and the other jobs leave idle
        (``dhvae_sdk.threads.default_threads``). The backend chosen and why is printed as one
        line on stderr unless ``quiet``."""
        if device is not None and not (isinstance(device, str) and DEVICE_PATTERN.fullmatch(device)):
            raise GeneratorError(f"device must be None (automatic), 'cpu', 'cuda' or 'cuda:N', got {device!r}")
        chosen, reason = open_backend(path, backend, device, threads)
        if not quiet:
            print(f"dhvae: using {chosen.describe()} ({reason})", file=sys.stderr)
        return cls(chosen, reason)

    def generate(self, texts: str | Sequence[str], *, seconds: float | None = None, frames: int | None = None,
                 num_samples: int = 1, seed: int | None = None, guidance: float | None = None,
                 temperature: float | None = None, steps: int | None = None,
                 person_a: "Interaction | np.ndarray | None" = None,
                 progress: ProgressFn | None = None) -> list[Interaction]:
        """Motions for each text (``num_samples`` each, text-major order), all in one batch.

        ``texts``: one description or a list of them.
        ``seconds``: length in seconds (default 7 s, or the model's maximum when shorter);
        or ``frames``: length in frames at the model's rate (``self.fps``, 30 for InterHuman
        models), at most ``self.max_frames``. Give one of them, not both.
        ``num_samples``: motions per text; the batch (texts x ``num_samples``) must fit in
        half the memory the machine has available, by the estimate of ``batch_bytes``.
        ``seed``: a non-negative integer seed of the noise; the same seed gives the same
        motions on the same backend (None: fresh randomness).
        ``guidance``: classifier-free guidance scale, 0 to ``MAX_GUIDANCE`` (20) (1: the text
        condition alone, 0: no text; default the model's, 3.5 for InterHuman).
        ``temperature``: the scale of the starting noise, 0 to 2 (default the model's, 1 for the
        released models): below 1, the samples of one text vary less and follow it more closely;
        at 0 every seed gives the same motion.
        ``steps``: number of DDIM denoising steps (default the model's; 50 in every preset).
        ``person_a``: a given motion of person A (an Interaction, or InterHuman features
        [T, 262] in raw units); person B is generated around it and the length is its length.
        ``progress``: called as ``progress(step, total)`` after each denoising step, ``step``
        counting from 0.
        """
        texts = self._texts(texts)
        count = self._sample_count(num_samples, len(texts))
        rows = [text for text in texts for _ in range(count)]
        inpainting = None
        if person_a is not None:
            known_features = self._person_a_features(person_a)
            if seconds is not None or frames is not None:
                raise GeneratorError("with person_a the length is person_a's; leave seconds and frames unset")
            frames = len(known_features)
            tokens = self._encode_person_a(known_features, len(rows))
            inpainting = Inpainting(tokens, self._group_mask(("a",)))
        return self._run(rows, self._frames(seconds, frames), seed, guidance, temperature, steps, inpainting,
                         progress)

    def vary(self, interaction: Interaction, *, keep: str = "interaction", num_samples: int = 1,
             seed: int | None = None, guidance: float | None = None, temperature: float | None = None,
             steps: int | None = None, progress: ProgressFn | None = None) -> list[Interaction]:
        """New motions that keep part of ``interaction``'s latent: ``keep="interaction"`` keeps
        z_g and resamples both individuals; ``keep="individuals"`` keeps z_a, z_b and resamples z_g.
        The length (in frames) and text are ``interaction``'s; ``num_samples``, ``seed``,
        ``guidance``, ``temperature``, ``steps`` and ``progress`` are as in ``generate``."""
        if not isinstance(interaction, Interaction):
            raise GeneratorError(f"vary needs an Interaction returned by generate, got {type(interaction).__name__}")
        if keep not in VARY_KEEPS:
            raise GeneratorError(f"keep must be one of {VARY_KEEPS}, got {keep!r}")
        count = self._sample_count(num_samples, 1)
        kept = ("g",) if keep == "interaction" else ("a", "b")
        tokens = np.repeat(interaction.latents[None].astype(np.float32), count, axis=0)
        return self._run([interaction.text] * count, self._frames(None, interaction.frames), seed, guidance,
                         temperature, steps, Inpainting(tokens, self._group_mask(kept)), progress)

    def _run(self, rows, frames, seed, guidance, temperature, steps, inpainting, progress) -> list[Interaction]:
        guidance = self._guidance(guidance)
        temperature = self._temperature(temperature)
        steps = self._steps(steps)
        self._check_batch(len(rows), frames)
        ops = NumpyOps(np.random.default_rng(self._seed(seed)))
        unique = list(dict.fromkeys(rows))
        tokens = token_ids(unique, self.config.text.context_length)  # warns when it truncates
        embeddings = self.backend.encode_text(tokens)
        text_rows = embeddings[[unique.index(text) for text in rows]]
        latents = self.backend.sample(text_rows, steps, guidance, temperature, ops, inpainting, progress)
        features = self.backend.normalizer.denormalize(self.backend.decode(latents, frames).astype(np.float64))
        joints = features_to_joints(features)
        return [Interaction(joints[i].astype(np.float32), features[i].astype(np.float32), latents[i], text, self.fps)
                for i, text in enumerate(rows)]

    def _encode_person_a(self, features: np.ndarray, rows: int) -> np.ndarray:
        normalized = self.backend.normalizer.normalize(features)
        pair = np.stack([normalized, np.zeros_like(normalized)], axis=1)[None].astype(np.float32)
        # z_a depends on person A alone (its own encoder), so B's placeholder does not matter.
        return np.repeat(self.backend.encode(pair), rows, axis=0)

    def _group_mask(self, groups: tuple[str, ...]) -> np.ndarray:
        per_token = np.repeat([group in groups for group in GROUPS], self.config.vae.latent_tokens)
        return per_token[None, :, None]

    @staticmethod
    def _texts(texts) -> list[str]:
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, Sequence) or len(texts) == 0:
            raise GeneratorError(f"texts must be a string or a non-empty list of strings, got {texts!r}")
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise GeneratorError(f"text {index} must be a string, got {type(text).__name__}: {text!r}")
            if not any(character.isprintable() and not character.isspace() for character in text):
                raise GeneratorError(f"text {index} is empty or has no printable characters ({text!r}); "
                                     "describe the interaction, e.g. 'two people hug'")
        return list(texts)

    def _frames(self, seconds, frames) -> int:
        if seconds is not None and frames is not None:
            raise GeneratorError("give seconds or frames, not both")
        if frames is None and seconds is None:
            return min(round(DEFAULT_SECONDS * self.fps), self.max_frames)
        if frames is None:
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
                raise GeneratorError(f"seconds must be a number, got {seconds!r}")
            if seconds <= 0:
                raise GeneratorError(f"seconds must be positive, got {seconds}")
            frames = max(1, round(seconds * self.fps))
        else:
            frames = self._positive_int("frames", frames)
        if frames > self.max_frames:
            raise GeneratorError(
                f"{frames} frames ({frames / self.fps:.2f} s) is longer than this model's maximum of "
                f"{self.max_frames} frames ({self.max_frames / self.fps:.1f} s); ask for less"
            )
        return frames

    def _guidance(self, guidance) -> float:
        if guidance is None:
            return float(self.config.denoiser.guidance)
        if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or not 0 <= guidance <= MAX_GUIDANCE:
            raise GeneratorError(f"guidance must be a number from 0 to {MAX_GUIDANCE:g} (the model's default is "
                                 f"{self.config.denoiser.guidance:g}), got {guidance!r}")
        return float(guidance)

    def _temperature(self, temperature) -> float:
        if temperature is None:
            return float(self.config.denoiser.temperature)
        if (isinstance(temperature, bool) or not isinstance(temperature, (int, float))
                or not 0 <= temperature <= MAX_TEMPERATURE):
            raise GeneratorError(f"temperature must be a number from 0 to {MAX_TEMPERATURE:g} (the model's default "
                                 f"is {self.config.denoiser.temperature:g}), got {temperature!r}")
        return float(temperature)

    @staticmethod
    def _seed(seed) -> int | None:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise GeneratorError(f"seed must be a non-negative integer or None, got {seed!r}")
        return seed

    def _sample_count(self, num_samples, texts: int) -> int:
        """``num_samples``, checked; a batch that could not fit even at one frame is refused
        before its rows are listed (the exact check, at the requested length, is ``_run``'s)."""
        count = self._positive_int("num_samples", num_samples)
        self._check_batch(texts * count, 1)
        return count

    def _check_batch(self, rows: int, frames: int) -> None:
        """Refuse a batch that would exhaust the memory, instead of being killed halfway."""
        needed = rows * batch_bytes(self.config, frames)
        budget = MEMORY_SHARE * available_memory()
        if needed > budget:
            most = max(1, int(budget // batch_bytes(self.config, frames)))
            raise GeneratorError(
                f"{rows} motions (texts x num_samples) need about {needed / 2**30:.1f} GiB at {frames} frame(s) each, "
                f"more than half the {budget / MEMORY_SHARE / 2**30:.1f} GiB available; ask for at most {most} "
                "per call (lower num_samples)"
            )

    def _steps(self, steps) -> int:
        if steps is None:
            return self.config.denoiser.sampling_steps
        steps = self._positive_int("steps", steps)
        limit = min(self.config.denoiser.num_train_steps, getattr(self.backend, "max_steps", math.inf))
        if steps > limit:
            raise GeneratorError(f"steps must be at most {limit} on the {self.backend.name} backend, got {steps}")
        return steps

    @staticmethod
    def _positive_int(name: str, value) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise GeneratorError(f"{name} must be a positive integer, got {value!r}")
        return int(value)

    def _person_a_features(self, person_a) -> np.ndarray:
        if isinstance(person_a, Interaction):
            features = person_a.features[:, 0]
        else:
            features = np.asarray(person_a, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != FEATURE_DIM or len(features) == 0:
            raise GeneratorError(
                f"person_a must be an Interaction or InterHuman features [T, {FEATURE_DIM}] (raw units), "
                f"got shape {features.shape}"
            )
        if not np.all(np.isfinite(features)):
            raise GeneratorError("person_a contains NaN or infinite values")
        self._frames(None, len(features))
        return features


def batch_bytes(config, frames: int) -> int:
    """Estimated peak host memory of one generated motion: the decoder's largest layer
    activations per person (feed-forward hidden, attention scores, a few width-sized
    buffers, float32) plus the float64 features and joints of the result (three copies)."""
    vae = config.vae
    activations = 4 * 2 * frames * (vae.ff + 4 * vae.width + vae.heads * frames)
    outputs = 8 * 3 * frames * 2 * (FEATURE_DIM + NUM_JOINTS * 3)
    return activations + outputs


def available_memory() -> float:
    """Bytes the machine can still give (MemAvailable on Linux), or infinity when unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return math.inf
