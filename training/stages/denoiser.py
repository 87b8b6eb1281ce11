"""Stage 2: latent diffusion on the frozen VAE's latents.

The VAE comes from --vae (a stage-1 checkpoint). Every training pair is encoded once
(posterior means; ``latent_views`` augmented views per pair: crops, person swaps, mirrors
and sentence choices differ between views) into RUN_DIR/latents.safetensors, reused as long
as the VAE file, the data and the options are the same. The per-group latent scales (std of
z_a, z_b, z_g over the cache) normalize the tokens; the denoiser and the text encoder's
trainable layers learn to predict the noise, with the text replaced by the learned null
embedding ``cond_drop`` of the time (classifier-free guidance). The checkpoint holds the
whole bundle (VAE + denoiser + text encoder), the feature statistics and the scales.
"""
from __future__ import annotations

import json
import logging
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
from dhvae_sdk.models import DenoiserConfig, DHVAEModel, split_groups, scale_latents, tokenize
from dhvae_sdk.sampling import DDIMScheduler
from training.data import make_loader
from training.runtime import ProcessContext, barrier
from training.stages.common import EVALUATION_SEED, StageOptions, open_dataset, open_held_out, trim_padding

CACHE_FILE = "latents.safetensors"
HELD_OUT_CACHE_FILE = "latents_held_out.safetensors"

log = logging.getLogger("training")


def scheduler_for(config: DenoiserConfig) -> DDIMScheduler:
    return DDIMScheduler(num_train_steps=config.num_train_steps, beta_start=config.beta_start,
                         beta_end=config.beta_end, beta_schedule=config.beta_schedule,
                         prediction=config.prediction)


@torch.no_grad()
def encode_dataset(model: DHVAEModel, dataset, views: int, batch_size: int, seed: int
                   ) -> tuple[torch.Tensor, list[str]]:
    """Posterior means [views * N, 3l, d_z] of every item, ``views`` passes over the data."""
    vae = model.vae.eval()
    device = next(vae.parameters()).device
    dataset.reseed(seed)
    latents, texts = [], []
    for _ in range(views):
        for batch in make_loader(dataset, batch_size, shuffle=False, seed=seed):
            motion, mask = trim_padding(batch, device)
            latents.append(vae.encode(motion[:, :, 0], motion[:, :, 1], mask).mean.float().cpu())
            texts.extend(batch["texts"])
    return torch.cat(latents), texts


def cached_latents(path: Path, key: dict, compute) -> tuple[torch.Tensor, list[str]]:
    """The latents stored at ``path`` if they were made with ``key``, else ``compute()``, stored."""
    key_text = json.dumps(key, sort_keys=True)
    if path.exists():
        try:
            with safe_open(str(path), framework="pt") as file:
                metadata = file.metadata() or {}
                if metadata.get("key") == key_text:
                    return file.get_tensor("latents"), json.loads(metadata["texts"])
            log.info("latent cache %s was made from other inputs; rebuilding it", path)
        except Exception as error:  # a damaged cache is simply rebuilt
            log.warning("latent cache %s is unreadable (%s); rebuilding it", path, error)
    latents, texts = compute()
    with atomic_output(path, durable=True) as temp_path:
        save_file({"latents": latents.contiguous()}, str(temp_path),
                  metadata={"key": key_text, "texts": json.dumps(texts)})
    return latents, texts


def group_stds(latents: torch.Tensor, tokens_per_group: int) -> torch.Tensor:
    """[3]: the std of each latent group (a, b, g) over all its elements."""
    return torch.stack([group.float().std() for group in split_groups(latents, tokens_per_group).values()])


class LatentTextDataset(Dataset):
    def __init__(self, latents: torch.Tensor, texts: list[str]):
        if len(latents) != len(texts):
            raise ValueError(f"{len(latents)} latents but {len(texts)} texts")
        self.latents, self.texts = latents, texts

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, index: int) -> dict:
        return {"latents": self.latents[index], "text": self.texts[index]}


def collate_latents(items: list[dict]) -> dict:
    return {"latents": torch.stack([item["latents"] for item in items]), "texts": [item["text"] for item in items]}


def latent_loader(dataset: LatentTextDataset, batch_size: int, seed: int, context: ProcessContext) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    sampler = DistributedSampler(dataset, shuffle=True, seed=seed) if context.distributed else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=sampler is None, sampler=sampler,
                      generator=generator, collate_fn=collate_latents)


class DenoiserObjective(nn.Module):
    """batch {"latents" (unscaled), "texts"} -> {"loss"}: the diffusion regression with text dropout."""

    def __init__(self, model: DHVAEModel, latent_scales: torch.Tensor):
        super().__init__()
        self.denoiser = model.denoiser
        self.text = model.text
        self.config = model.config
        self.scheduler = scheduler_for(model.config.denoiser)
        self.register_buffer("latent_scales", latent_scales.float())

    def denoising_loss(self, latents, texts, noise, timesteps, drop_text) -> torch.Tensor:
        x0 = scale_latents(latents, self.latent_scales, self.config.vae.latent_tokens)
        x_t = self.scheduler.add_noise(x0, noise, timesteps)
        target = self.scheduler.training_target(x0, noise, timesteps)
        text = self.text(tokenize(texts, self.config.text.context_length).to(x0.device))
        null = self.denoiser.null_text_embedding(len(texts)).to(text.dtype)
        text = torch.where(drop_text[:, None], null, text)
        return F.mse_loss(self.denoiser(x_t, timesteps, text).float(), target.float())

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        device = self.latent_scales.device
        latents = batch["latents"].to(device)
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
        checkpoint = load_checkpoint(options.vae_checkpoint, device=context.device, clip_weights=options.clip_weights)
        config = checkpoint.config
        if (config.preset, config.dataset) != (options.preset, options.dataset):
            raise ValueError(
                f"{options.vae_checkpoint} is a '{config.preset}' VAE for {config.dataset}, but --preset "
                f"{options.preset} --dataset {options.dataset} was given; pass the matching preset and dataset"
            )
        self.model, self.options, self.context = checkpoint.model, options, context
        self.feature_mean, self.feature_std = checkpoint.feature_mean.cpu(), checkpoint.feature_std.cpu()
        self.model.vae.requires_grad_(False)
        vae_hash = file_sha256(Path(options.vae_checkpoint))

        def key(split: str, views: int) -> dict:
            return {"vae_sha256": vae_hash, "data_root": str(Path(options.data_root).resolve()),
                    "dataset": options.dataset, "split": split, "views": views, "seed": options.seed,
                    "augment": options.augment, "max_frames": options.max_frames}

        # Rank 0 encodes; the others wait and read its files.
        if context.is_main:
            latents, texts = self._train_latents(key("train", options.latent_views))
            held_out = open_held_out(options)
            self.held_out_latents, self.held_out_texts = cached_latents(
                options.run_dir / HELD_OUT_CACHE_FILE, key(held_out.split, 1),
                lambda: encode_dataset(self.model, held_out, 1, options.batch_size, EVALUATION_SEED))
        barrier(context)
        if not context.is_main:
            latents, texts = self._train_latents(key("train", options.latent_views))
        self.latent_scales = group_stds(latents, config.vae.latent_tokens)
        log.info("latent cache: %d training latents; per-group std (a, b, g) = %s",
                 len(texts), [round(v, 4) for v in self.latent_scales.tolist()])
        self.module = DenoiserObjective(self.model, self.latent_scales)
        self.loader = latent_loader(LatentTextDataset(latents, texts), options.batch_size, options.seed, context)

    def _train_latents(self, key: dict) -> tuple[torch.Tensor, list[str]]:
        options = self.options
        return cached_latents(
            options.run_dir / CACHE_FILE, key,
            lambda: encode_dataset(self.model, open_dataset(options, "train", seed=options.seed),
                                   options.latent_views, options.batch_size, options.seed))

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Held-out denoising loss with fixed noise and timesteps (conditional)."""
        generator = torch.Generator().manual_seed(EVALUATION_SEED)
        device = self.module.latent_scales.device
        total, count = 0.0, 0
        batch_size = self.options.batch_size
        for start in range(0, min(len(self.held_out_texts), self.options.eval_samples), batch_size):
            latents = self.held_out_latents[start:start + batch_size]
            texts = self.held_out_texts[start:start + batch_size]
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
