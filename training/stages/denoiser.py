"""Stage 2: latent diffusion on the frozen VAE's posterior samples.

The VAE comes from --vae (a stage-1 checkpoint) and stays frozen. Every training pair is
encoded once (``latent_views`` augmented views per pair: crops, person swaps, mirrors and
sentence choices differ between views) into RUN_DIR/latents.safetensors: the posterior's
mean and log-variance, reused as long as the VAE file, the data and the options are the
same. Every step draws a fresh posterior sample from them, as the release encodes each batch
with its frozen VAE's sampling encoder. The latents enter the denoiser divided by the latent
scales: the release's fixed (1, 1, 1/5), i.e. z_g x 5, or with --latent-scales std the
per-group std of the samples. The denoiser and the text encoder's trainable parts learn to
predict the target of the VAE checkpoint's config (the noise as released, the clean latents in
the tiny and small presets; --prediction overrides it); ``cond_drop`` of the texts are
replaced by the empty string (classifier-free guidance). The checkpoint holds the whole
bundle (VAE + denoiser + text encoder), the feature statistics and the scales.
"""
from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from dhvae_sdk.atomic_file import atomic_output
from dhvae_sdk.checkpoint import load_checkpoint, save_checkpoint
from dhvae_sdk.manifest import file_sha256
from dhvae_sdk.models import (
    DHVAEModel, LatentPosterior, build_denoiser, empty_text_tokens, scale_latents, split_groups, tokenize,
)
from dhvae_sdk.runtime.base import scheduler_of
from training.data import make_loader
from training.runtime import ProcessContext, barrier
from training.stages.common import EVALUATION_SEED, StageOptions, open_dataset, open_held_out, trim_padding

CACHE_FILE = "latents.safetensors"
HELD_OUT_CACHE_FILE = "latents_held_out.safetensors"
# What a cache file holds; part of its key, so caches of another content are rebuilt.
CACHE_CONTENT = "posterior mean and logvar"
POSTERIOR_KEYS = ("mean", "logvar")
# The release's latent scales: z_a and z_b as they are, z_g x 5 (its mld.z3_scale).
RELEASE_LATENT_SCALES = (1.0, 1.0, 1.0 / 5.0)

log = logging.getLogger("training")


@torch.no_grad()
def encode_dataset(model: DHVAEModel, dataset, views: int, batch_size: int, seed: int
                   ) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Posterior means and log-variances [views * N, 3l, d_z] of every item, ``views`` passes
    over the data, by the VAE in eval mode."""
    vae = model.vae.eval()
    device = next(vae.parameters()).device
    dataset.reseed(seed)
    parts: dict[str, list[torch.Tensor]] = {key: [] for key in POSTERIOR_KEYS}
    texts = []
    for _ in range(views):
        for batch in make_loader(dataset, batch_size, shuffle=False, seed=seed):
            motion, mask = trim_padding(batch, device)
            posterior = vae.encode(motion[:, :, 0], motion[:, :, 1], mask)
            parts["mean"].append(posterior.mean.float().cpu())
            parts["logvar"].append(posterior.logvar.float().cpu())
            texts.extend(batch["texts"])
    return {key: torch.cat(values) for key, values in parts.items()}, texts


def cached_posteriors(path: Path, key: dict, compute) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The posteriors stored at ``path`` if they were made with ``key``, else ``compute()``, stored."""
    key_text = json.dumps({**key, "content": CACHE_CONTENT}, sort_keys=True)
    if path.exists():
        try:
            with safe_open(str(path), framework="pt") as file:
                metadata = file.metadata() or {}
                if metadata.get("key") == key_text:
                    return {name: file.get_tensor(name) for name in POSTERIOR_KEYS}, json.loads(metadata["texts"])
            log.info("latent cache %s was made from other inputs; rebuilding it", path)
        except Exception as error:  # a damaged cache is simply rebuilt
            log.warning("latent cache %s is unreadable (%s); rebuilding it", path, error)
    posteriors, texts = compute()
    with atomic_output(path, durable=True) as temp_path:
        save_file({name: tensor.contiguous() for name, tensor in posteriors.items()}, str(temp_path),
                  metadata={"key": key_text, "texts": json.dumps(texts)})
    return posteriors, texts


def sample_stds(posteriors: dict[str, torch.Tensor], tokens_per_group: int) -> torch.Tensor:
    """[3]: the std of each group's posterior samples (a, b, g) over the whole cache, exactly:
    the variance of the means plus the mean posterior variance (law of total variance)."""
    means = split_groups(posteriors["mean"], tokens_per_group).values()
    variances = split_groups(posteriors["logvar"].exp(), tokens_per_group).values()
    return torch.stack([(mean.double().var(unbiased=False) + variance.double().mean()).sqrt().float()
                        for mean, variance in zip(means, variances)])


def latent_scales_of(choice: str, posteriors: dict[str, torch.Tensor], tokens_per_group: int) -> torch.Tensor:
    if choice == "std":
        return sample_stds(posteriors, tokens_per_group)
    return torch.tensor(RELEASE_LATENT_SCALES)


class PosteriorTextDataset(Dataset):
    def __init__(self, posteriors: dict[str, torch.Tensor], texts: list[str]):
        if any(len(tensor) != len(texts) for tensor in posteriors.values()):
            raise ValueError(f"{[len(t) for t in posteriors.values()]} posteriors but {len(texts)} texts")
        self.posteriors, self.texts = posteriors, texts

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, index: int) -> dict:
        return {**{key: tensor[index] for key, tensor in self.posteriors.items()}, "text": self.texts[index]}


def collate_posteriors(items: list[dict]) -> dict:
    batch = {key: torch.stack([item[key] for item in items]) for key in POSTERIOR_KEYS}
    return {**batch, "texts": [item["text"] for item in items]}


def posterior_loader(dataset: PosteriorTextDataset, batch_size: int, seed: int, context: ProcessContext) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    sampler = DistributedSampler(dataset, shuffle=True, seed=seed) if context.distributed else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=sampler is None, sampler=sampler,
                      generator=generator, collate_fn=collate_posteriors)


class DenoiserObjective(nn.Module):
    """batch {"mean", "logvar" (VAE posteriors), "texts"} -> {"loss"}: the diffusion regression
    on a posterior sample, with the text replaced by the empty string ``cond_drop`` of the time."""

    def __init__(self, model: DHVAEModel, latent_scales: torch.Tensor):
        super().__init__()
        self.denoiser = model.denoiser
        self.text = model.text
        self.config = model.config
        self.scheduler = scheduler_of(model.config)
        self.register_buffer("latent_scales", latent_scales.float())

    def text_tokens(self, texts: list[str], drop_text: torch.Tensor) -> torch.Tensor:
        """CLIP tokens of ``texts``, the empty string's where ``drop_text`` [B] is True."""
        context = self.config.text.context_length
        tokens = tokenize(texts, context).to(drop_text.device)
        return torch.where(drop_text[:, None], empty_text_tokens(len(texts), context).to(tokens.device), tokens)

    def denoising_loss(self, latents, texts, noise, timesteps, drop_text) -> torch.Tensor:
        x0 = scale_latents(latents, self.latent_scales, self.config.vae.latent_tokens)
        x_t = self.scheduler.add_noise(x0, noise, timesteps)
        target = self.scheduler.training_target(x0, noise, timesteps)
        text = self.text(self.text_tokens(texts, drop_text))
        return F.mse_loss(self.denoiser(x_t, timesteps, text).float(), target.float())

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        device = self.latent_scales.device
        posterior = LatentPosterior(batch["mean"].to(device), batch["logvar"].to(device),
                                    self.config.vae.latent_tokens)
        latents = posterior.sample()
        count = latents.shape[0]
        timesteps = torch.randint(0, self.scheduler.num_train_steps, (count,), device=device)
        drop_text = torch.rand(count, device=device) < self.config.denoiser.cond_drop
        return {"loss": self.denoising_loss(latents, batch["texts"], torch.randn_like(latents), timesteps, drop_text)}


class DenoiserStage:
    name = "denoiser"
    checkpoint_name = "checkpoint.safetensors"

    def __init__(self, options: StageOptions, context: ProcessContext):
        if options.vae_checkpoint is None:
            raise ValueError("the denoiser stage needs --vae PATH (the checkpoint of a finished vae stage)")
        checkpoint = load_checkpoint(options.vae_checkpoint, device=context.device)
        config = checkpoint.config
        if (config.preset, config.dataset) != (options.preset, options.dataset):
            raise ValueError(
                f"{options.vae_checkpoint} is a '{config.preset}' VAE for {config.dataset}, but --preset "
                f"{options.preset} --dataset {options.dataset} was given; pass the matching preset and dataset"
            )
        self.model, self.options, self.context = checkpoint.model, options, context
        self._use_denoiser_options(prediction=options.prediction, temperature=options.temperature,
                                   guidance=options.guidance, layers=options.denoiser_layers)
        self._use_clip_weights(json.loads(checkpoint.metadata["config"])["text"]["clip_weights"])
        self.feature_mean, self.feature_std = checkpoint.feature_mean.cpu(), checkpoint.feature_std.cpu()
        self.model.vae.requires_grad_(False)
        vae_hash = file_sha256(Path(options.vae_checkpoint))

        def key(split: str, views: int) -> dict:
            return {"vae_sha256": vae_hash, "data_root": str(Path(options.data_root).resolve()),
                    "dataset": options.dataset, "split": split, "views": views, "seed": options.seed,
                    "augment": options.augment, "max_frames": options.max_frames}

        # Rank 0 encodes; the others wait and read its files.
        if context.is_main:
            posteriors, texts = self._train_posteriors(key("train", options.latent_views))
            held_out = open_held_out(options)
            self.held_out, self.held_out_texts = cached_posteriors(
                options.run_dir / HELD_OUT_CACHE_FILE, key(held_out.split, 1),
                lambda: encode_dataset(self.model, held_out, 1, options.batch_size, EVALUATION_SEED))
        barrier(context)
        if not context.is_main:
            posteriors, texts = self._train_posteriors(key("train", options.latent_views))
        self.latent_scales = latent_scales_of(options.latent_scales, posteriors, config.vae.latent_tokens)
        log.info("latent cache: %d training posteriors; latent scales (a, b, g) = %s (%s); posterior-sample "
                 "std (a, b, g) = %s", len(texts), [round(v, 4) for v in self.latent_scales.tolist()],
                 options.latent_scales,
                 [round(v, 4) for v in sample_stds(posteriors, config.vae.latent_tokens).tolist()])
        self.module = DenoiserObjective(self.model, self.latent_scales)
        self.loader = posterior_loader(PosteriorTextDataset(posteriors, texts), options.batch_size, options.seed,
                                       context)

    def _use_denoiser_options(self, **given) -> None:
        """--prediction (the target: it decides the loss and the sampler, not a weight),
        --temperature and --guidance (sampling defaults) and --denoiser-layers replace the VAE
        checkpoint's in the config the checkpoint will hold. The VAE stage never trains the
        denoiser, so another depth is simply a freshly initialized one."""
        changes = {name: value for name, value in given.items() if value is not None}
        if not changes:
            return
        old_layers = self.model.config.denoiser.layers
        self.model.config = replace(self.model.config, denoiser=replace(self.model.config.denoiser, **changes))
        if self.model.config.denoiser.layers == old_layers:
            self.model.denoiser.config = self.model.config.denoiser
        else:
            device = next(self.model.denoiser.parameters()).device
            self.model.denoiser = build_denoiser(self.model.config).to(device)

    def _use_clip_weights(self, recorded: str | None) -> None:
        """--clip-weights loads a CLIP tower over the one in the VAE checkpoint (which holds
        whatever the VAE stage had: the tower is not used before this stage)."""
        text, config = self.model.text, self.model.config
        clip_weights = recorded
        if self.options.clip_weights is not None:
            text.tower.load_clip_weights(self.options.clip_weights)
            clip_weights = self.options.clip_weights
        self.model.config = replace(config, text=replace(config.text, clip_weights=clip_weights))
        if clip_weights is None and not text.config.train_tower:
            log.warning("the CLIP text tower is frozen but was never loaded (no --clip-weights here nor at "
                        "the vae stage): the text condition is random features; pass --clip-weights PATH")

    def _train_posteriors(self, key: dict) -> tuple[dict[str, torch.Tensor], list[str]]:
        options = self.options
        return cached_posteriors(
            options.run_dir / CACHE_FILE, key,
            lambda: encode_dataset(self.model, open_dataset(options, "train", seed=options.seed),
                                   options.latent_views, options.batch_size, options.seed))

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Held-out denoising loss (conditional) with fixed posterior samples, noise and timesteps."""
        generator = torch.Generator().manual_seed(EVALUATION_SEED)
        device = self.module.latent_scales.device
        tokens_per_group = self.model.config.vae.latent_tokens
        total, count = 0.0, 0
        batch_size = self.options.batch_size
        for start in range(0, min(len(self.held_out_texts), self.options.eval_samples), batch_size):
            rows = slice(start, start + batch_size)
            posterior = LatentPosterior(self.held_out["mean"][rows], self.held_out["logvar"][rows], tokens_per_group)
            latents = posterior.sample(generator)
            texts = self.held_out_texts[rows]
            noise = torch.randn(latents.shape, generator=generator)
            timesteps = torch.randint(0, self.module.scheduler.num_train_steps, (len(texts),), generator=generator)
            loss = self.module.denoising_loss(latents.to(device), texts, noise.to(device), timesteps.to(device),
                                              torch.zeros(len(texts), dtype=torch.bool, device=device))
            total += float(loss) * len(texts)
            count += len(texts)
        return {"denoising_loss": total / count}

    def save_checkpoint(self, path: Path) -> None:
        save_checkpoint(path, self.model, feature_mean=self.feature_mean, feature_std=self.feature_std,
                        latent_scales=self.latent_scales, stage="denoiser",
                        extra_metadata={"vae_checkpoint": str(self.options.vae_checkpoint)})
