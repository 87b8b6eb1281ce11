"""Model configuration: dataclasses saved inside every checkpoint, and the presets.

Every value that ``shared/reference/dhvae-method.md`` marks "chosen" is a field here.
A config round-trips through a JSON dict: ``to_dict()`` / ``from_dict()``. ``from_dict``
rejects unknown keys and wrongly typed values; missing keys take the field's default, so a
user's JSON file can override only what it changes.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field

from ..motion import interhuman, interx

VAE_KINDS = ("dhvae", "flat")
TEXT_KINDS = ("clip", "small_clip")
PREDICTION_TYPES = ("epsilon", "x0", "v")
BETA_SCHEDULES = ("scaled_linear", "linear")


class ConfigDict:
    """Mixin: JSON-dict round trip with strict key and type checks."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict):
        if not isinstance(data, dict):
            raise ValueError(f"{cls.__name__}.from_dict expects a dict, got {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(
                f"{cls.__name__}: unknown key(s) {unknown}; known keys are {known}"
            )
        values = {name: _coerce(cls.__name__, name, value, hints[name]) for name, value in data.items()}
        return cls(**values)


def _coerce(owner: str, name: str, value, hint):
    if isinstance(hint, type) and issubclass(hint, ConfigDict):
        if isinstance(value, hint):
            return value
        return hint.from_dict(value)
    allowed = typing.get_args(hint) or (hint,)
    if value is None and type(None) in allowed:
        return None
    # JSON has one number type: an integral float is accepted for an int field, an int for a float one.
    if float in allowed and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if int in allowed and isinstance(value, float) and value.is_integer():
        return int(value)
    if any(t is not type(None) and type(value) is t for t in allowed):
        return value
    names = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
    raise ValueError(f"{owner}.{name} must be {names}, got {value!r}")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _require_choice(owner: str, name: str, value, choices) -> None:
    _require(value in choices, f"{owner}.{name} must be one of {list(choices)}, got {value!r}")


def _require_positive(owner: str, **values) -> None:
    for name, value in values.items():
        _require(value > 0, f"{owner}.{name} must be positive, got {value!r}")


def _require_heads(owner: str, width_name: str, width: int, heads: int) -> None:
    _require(
        width % heads == 0,
        f"{owner}.{width_name}={width} must be divisible by its number of heads ({heads})",
    )


def _require_dropout(owner: str, value: float) -> None:
    _require(0.0 <= value < 1.0, f"{owner}.dropout must be in [0, 1), got {value!r}")


@dataclass
class VAEConfig(ConfigDict):
    """The motion VAE. ``kind`` "dhvae" is the paper's model, "flat" the MLD-style baseline.

    The flat VAE has one encoder of ``encoder_layers + cotransformer_layers`` layers and one
    decoder of ``interaction_decoder_layers + person_decoder_layers`` layers, the depth of the
    DHVAE's path from input to latent and from latent to output.
    """

    kind: str = "dhvae"
    feature_dim: int = interhuman.FEATURE_DIM
    latent_tokens: int = 1
    latent_dim: int = 256
    width: int = 256
    heads: int = 4
    ff: int = 512
    encoder_layers: int = 4
    cotransformer_layers: int = 3
    interaction_decoder_layers: int = 3
    person_decoder_layers: int = 4
    dropout: float = 0.1
    max_frames: int = 300

    def __post_init__(self):
        _require_choice("vae", "kind", self.kind, VAE_KINDS)
        _require_positive(
            "vae", feature_dim=self.feature_dim, latent_tokens=self.latent_tokens,
            latent_dim=self.latent_dim, width=self.width, heads=self.heads, ff=self.ff,
            encoder_layers=self.encoder_layers, cotransformer_layers=self.cotransformer_layers,
            interaction_decoder_layers=self.interaction_decoder_layers,
            person_decoder_layers=self.person_decoder_layers, max_frames=self.max_frames,
        )
        _require_heads("vae", "width", self.width, self.heads)
        _require_dropout("vae", self.dropout)


@dataclass
class DenoiserConfig(ConfigDict):
    """The latent denoiser and its diffusion process.

    ``modulation_rank``: each block regresses its shift/scale/gate from the condition through
    Linear(width, rank) -> Linear(rank, 6 * width). A full-rank regression (DiT's) costs
    6 * width^2 per block, 20M parameters for 13 blocks of width 512, which alone would break
    the paper's parameter budget; rank 128 keeps the budget with the chosen widths.
    ``sampling_steps``, ``eta`` and ``guidance`` are the sampler's defaults.
    """

    width: int = 512
    ff: int = 1024
    blocks: int = 13
    heads: int = 4
    modulation_rank: int = 128
    long_skips: bool = True
    dropout: float = 0.1
    num_train_steps: int = 1000
    beta_schedule: str = "scaled_linear"
    beta_start: float = 0.00085
    beta_end: float = 0.012
    prediction: str = "epsilon"
    cond_drop: float = 0.1
    guidance: float = 3.5
    sampling_steps: int = 50
    eta: float = 0.0

    def __post_init__(self):
        _require_positive(
            "denoiser", width=self.width, ff=self.ff, blocks=self.blocks, heads=self.heads,
            modulation_rank=self.modulation_rank, num_train_steps=self.num_train_steps,
            beta_start=self.beta_start, sampling_steps=self.sampling_steps,
        )
        _require_heads("denoiser", "width", self.width, self.heads)
        _require_dropout("denoiser", self.dropout)
        _require_choice("denoiser", "beta_schedule", self.beta_schedule, BETA_SCHEDULES)
        _require_choice("denoiser", "prediction", self.prediction, PREDICTION_TYPES)
        _require(
            self.beta_start < self.beta_end < 1.0,
            f"denoiser needs 0 < beta_start < beta_end < 1, got {self.beta_start}, {self.beta_end}",
        )
        _require(0.0 <= self.cond_drop < 1.0, f"denoiser.cond_drop must be in [0, 1), got {self.cond_drop}")
        _require(self.guidance >= 0.0, f"denoiser.guidance must be >= 0, got {self.guidance}")
        _require(
            self.sampling_steps <= self.num_train_steps,
            f"denoiser.sampling_steps ({self.sampling_steps}) cannot exceed num_train_steps "
            f"({self.num_train_steps})",
        )
        _require(self.eta >= 0.0, f"denoiser.eta must be >= 0, got {self.eta}")


@dataclass
class TextEncoderConfig(ConfigDict):
    """Text conditioning: a CLIP-shaped tower, ``layers`` trainable layers, the end-of-text feature.

    "clip": open_clip's ViT-L-14 text tower, frozen, weights from ``clip_weights`` (a local
    file; without one it gets random weights and a loud warning). OpenAI's released weights
    need ``clip_quick_gelu=True``; LAION/DataComp open_clip weights need False.
    "small_clip": a small tower trained with the model (the ``tower_*`` and
    ``token_embedding_dim`` fields; ignored by "clip"). Both use CLIP's BPE tokenizer.
    """

    kind: str = "clip"
    clip_weights: str | None = None
    clip_quick_gelu: bool = True
    context_length: int = 77
    width: int = 512
    layers: int = 2
    heads: int = 8
    ff: int = 1024
    dropout: float = 0.1
    tower_width: int = 256
    tower_layers: int = 4
    tower_heads: int = 4
    tower_ff: int = 1024
    token_embedding_dim: int = 64

    def __post_init__(self):
        _require_choice("text", "kind", self.kind, TEXT_KINDS)
        _require_positive(
            "text", context_length=self.context_length, width=self.width, layers=self.layers,
            heads=self.heads, ff=self.ff, tower_width=self.tower_width,
            tower_layers=self.tower_layers, tower_heads=self.tower_heads,
            tower_ff=self.tower_ff, token_embedding_dim=self.token_embedding_dim,
        )
        _require_heads("text", "width", self.width, self.heads)
        _require_heads("text", "tower_width", self.tower_width, self.tower_heads)
        _require_dropout("text", self.dropout)
        _require(
            self.kind == "small_clip" or self.context_length == 77,
            f"text.context_length must be 77 for the ViT-L-14 tower, got {self.context_length}",
        )


@dataclass
class LossConfig(ConfigDict):
    """Stage-1 loss weights and the triplet loss's sampling of positives and negatives."""

    w_kl: float = 1e-4
    w_joint: float = 1.0
    w_tri: float = 0.1
    delta_c: float = 0.05
    delta_nc: float = 0.25
    neg_min: float = 0.4
    neg_max: float = 1.5
    neg_std: float = 1.0  # spread (m) of the negative's truncated two-tailed Gaussian shift
    margin: float = 1.0
    contact_voxel: float = 0.02
    contact_dilation: int = 1

    def __post_init__(self):
        for name in ("w_kl", "w_joint", "w_tri", "margin"):
            _require(getattr(self, name) >= 0.0, f"loss.{name} must be >= 0, got {getattr(self, name)}")
        _require_positive(
            "loss", delta_c=self.delta_c, delta_nc=self.delta_nc, neg_min=self.neg_min,
            neg_std=self.neg_std, contact_voxel=self.contact_voxel,
        )
        _require(
            self.neg_min < self.neg_max,
            f"loss needs neg_min < neg_max, got {self.neg_min} and {self.neg_max}",
        )
        _require(self.contact_dilation >= 0, f"loss.contact_dilation must be >= 0, got {self.contact_dilation}")


@dataclass(frozen=True)
class DatasetDefaults:
    feature_dim: int
    fps: int
    guidance: float


# The procedural "synthetic" pairs use the InterHuman representation.
DATASETS = {
    "interhuman": DatasetDefaults(feature_dim=interhuman.FEATURE_DIM, fps=interhuman.FPS, guidance=3.5),
    "interx": DatasetDefaults(feature_dim=interx.FEATURE_DIM, fps=interx.FPS, guidance=3.0),
    "synthetic": DatasetDefaults(feature_dim=interhuman.FEATURE_DIM, fps=interhuman.FPS, guidance=3.5),
}


@dataclass
class DHVAEConfig(ConfigDict):
    """Everything needed to rebuild the model bundle; saved in every checkpoint."""

    preset: str = "paper"
    dataset: str = "interhuman"
    fps: int = interhuman.FPS
    vae: VAEConfig = field(default_factory=VAEConfig)
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self):
        _require_choice("config", "dataset", self.dataset, DATASETS)
        _require_positive("config", fps=self.fps)

    @property
    def feature_dim(self) -> int:
        return self.vae.feature_dim


def _paper() -> DHVAEConfig:
    return DHVAEConfig(preset="paper")


def _small() -> DHVAEConfig:
    return DHVAEConfig(
        preset="small",
        vae=VAEConfig(latent_dim=128, width=128, heads=4, ff=256),
        denoiser=DenoiserConfig(width=192, ff=384, blocks=9, heads=4, modulation_rank=48),
        text=TextEncoderConfig(
            kind="small_clip", width=192, layers=1, heads=4, ff=384,
            tower_width=128, tower_layers=2, tower_heads=4, tower_ff=256, token_embedding_dim=16,
        ),
    )


def _tiny() -> DHVAEConfig:
    return DHVAEConfig(
        preset="tiny",
        vae=VAEConfig(
            latent_dim=32, width=64, heads=4, ff=128, encoder_layers=2, cotransformer_layers=1,
            interaction_decoder_layers=1, person_decoder_layers=2,
        ),
        denoiser=DenoiserConfig(width=128, ff=256, blocks=5, heads=4, modulation_rank=32),
        text=TextEncoderConfig(
            kind="small_clip", width=64, layers=1, heads=4, ff=128,
            tower_width=64, tower_layers=2, tower_heads=4, tower_ff=128, token_embedding_dim=16,
        ),
    )


PRESETS = {"paper": _paper, "small": _small, "tiny": _tiny}


def get_preset(name: str, dataset: str = "interhuman") -> DHVAEConfig:
    """A fresh config of preset ``name`` with the feature width, fps and guidance of ``dataset``."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(DATASETS)}")
    config = PRESETS[name]()
    defaults = DATASETS[dataset]
    config.dataset = dataset
    config.fps = defaults.fps
    config.vae.feature_dim = defaults.feature_dim
    config.denoiser.guidance = defaults.guidance
    return config
