"""The step loop every stage shares: Adam (the release's optimizer), the learning-rate
schedule, an optional moving average of the weights, mixed precision, DDP, logging, periodic
atomic checkpoints and resuming from them.

A stage hands over a ``Stage``: a module whose ``forward(batch)`` returns a dict of scalar
losses (key "loss" is optimized), the loader it trains on (batches are dicts with a "texts"
list, one per sample), a held-out evaluation and the writer of its model file. The run
directory then holds
  <stage.checkpoint_name>  the model, rewritten every --ckpt-every steps
  train_state.pt           everything needed to resume (weights_only-loadable)
  metrics.json             held-out evaluations so far ({"history": [{"step": ..}, ..]})
  train.log, tb/           text log and TensorBoard scalars
"""
from __future__ import annotations

import json
import logging
import math
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Protocol

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from dhvae_sdk.errors import DHVAEError
from training.runtime import (
    ProcessContext, atomic_torch_save, atomic_write_json, barrier, gather_rng_states, load_training_state,
    restore_rng_state,
)

TRAIN_STATE_FILE = "train_state.pt"
METRICS_FILE = "metrics.json"
STATE_FORMAT = "dhvae-train-state/1"

log = logging.getLogger("training")


LR_SCHEDULES = ("release", "cosine")
# The release's schedule (per epoch): 10 epochs at the base rate, then x 0.5 every 1000 epochs.
RELEASE_FLAT_EPOCHS = 10
RELEASE_HALVING_EPOCHS = 1000


@dataclass
class LoopConfig:
    steps: int = 10000
    ckpt_every: int = 1000
    eval_every: int = 0  # 0: evaluate only at the end
    log_every: int = 50
    lr: float = 1e-4
    lr_schedule: str = "release"  # release: flat, then exponential per epoch; cosine: warmup + cosine
    warmup_steps: int = 100  # cosine only
    min_lr_ratio: float = 0.1  # cosine decay ends at lr * min_lr_ratio
    grad_clip: float = 0.0  # max gradient norm; 0: no clipping (the release clips nothing)
    precision: str = "auto"  # auto | fp32 | bf16 | fp16; anything but fp32 needs a GPU
    average_decay: float = 0.0  # exponential moving average of the weights; 0: none

    def __post_init__(self):
        if self.steps < 1 or self.ckpt_every < 1:
            raise ValueError(f"--steps ({self.steps}) and --ckpt-every ({self.ckpt_every}) must be >= 1")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"--lr must be a positive finite number (the release uses 1e-4), got {self.lr}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"--lr-schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.grad_clip < 0:
            raise ValueError(f"--grad-clip must be >= 0 (0 turns clipping off), got {self.grad_clip}")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be auto, fp32, bf16 or fp16, got {self.precision!r}")
        if not 0.0 <= self.average_decay < 1.0:
            raise ValueError(f"--average-decay must lie in [0, 1) (0 turns the average off; 0.999 averages over "
                             f"about the last 1000 steps), got {self.average_decay}")


class TrainingDivergedError(DHVAEError, FloatingPointError):
    """The loss or a weight became NaN or infinite: nothing after this point is worth saving."""


class TrainingInterrupted(DHVAEError, RuntimeError):
    """Ctrl-C (SIGINT) stopped the loop; the message says which step the run folder keeps."""


class Stage(Protocol):
    name: str
    checkpoint_name: str
    module: nn.Module  # forward(batch) -> {"loss": ..., other scalars}
    loader: torch.utils.data.DataLoader

    def evaluate(self) -> dict[str, float]: ...

    def save_checkpoint(self, path: Path) -> None: ...


def resolve_precision(requested: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype (None = full fp32). Mixed precision is a GPU-only feature."""
    if device.type != "cuda":
        if requested in ("bf16", "fp16"):
            raise ValueError(f"--precision {requested} needs a CUDA GPU; use fp32 (or auto) on CPU")
        return None
    if requested == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[requested]


def warmup_cosine(config: LoopConfig) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = min(1.0, (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps))
        return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return factor


def release_decay(steps_per_epoch: int) -> Callable[[int], float]:
    """The release's learning-rate factor, stepped per epoch as its Lightning scheduler is."""
    gamma = 0.5 ** (1 / RELEASE_HALVING_EPOCHS)

    def factor(step: int) -> float:
        return gamma ** max(0, step // steps_per_epoch - RELEASE_FLAT_EPOCHS)
    return factor


def lr_factor(config: LoopConfig, steps_per_epoch: int) -> Callable[[int], float]:
    return release_decay(steps_per_epoch) if config.lr_schedule == "release" else warmup_cosine(config)


def trainable_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The module's state without frozen parameters (they come back from their own source)."""
    frozen = {name for name, p in module.named_parameters() if not p.requires_grad}
    return {k: v for k, v in module.state_dict().items() if k not in frozen}


def load_trainable_state(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    missing, unexpected = module.load_state_dict(state, strict=False)
    frozen = {name for name, p in module.named_parameters() if not p.requires_grad}
    if unexpected or set(missing) - frozen:
        raise ValueError(
            "the training state does not match the model (missing "
            f"{sorted(set(missing) - frozen)[:5]}, unexpected {unexpected[:5]}); was the run "
            "directory made with another --preset or stage? Use a fresh --out"
        )


class WeightAverage:
    """An exponential moving average of a module's trainable parameters.

    Its decay ramps up as (1 + n) / (10 + n) over the first updates, so the average is not held
    at the initialization for the first thousand steps of a run. ``applied()`` swaps the average
    into the module (checkpoints and evaluations see it) and the trained weights back after.
    """

    def __init__(self, module: nn.Module, decay: float):
        self.decay, self.updates = decay, 0
        self.parameters = {name: p for name, p in module.named_parameters() if p.requires_grad}
        self.average = {name: p.detach().clone() for name, p in self.parameters.items()}

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for name, p in self.parameters.items():
            self.average[name].lerp_(p.detach(), 1 - decay)

    @contextmanager
    def applied(self):
        trained = {name: p.detach().clone() for name, p in self.parameters.items()}
        self._copy_into_module(self.average)
        try:
            yield
        finally:
            self._copy_into_module(trained)

    @torch.no_grad()
    def _copy_into_module(self, values: dict[str, torch.Tensor]) -> None:
        for name, p in self.parameters.items():
            p.copy_(values[name])

    def state_dict(self) -> dict:
        return {"updates": self.updates, "average": self.average}

    def load_state_dict(self, state: dict) -> None:
        if set(state["average"]) != set(self.average):
            raise ValueError("the training state's weight average does not match the model; use a fresh --out")
        self.updates = state["updates"]
        for name, value in state["average"].items():
            self.average[name].copy_(value)


class BatchStream:
    """Endless batches, epoch after epoch; knows its position so a resumed run continues it.

    Each epoch reseeds the loader's generator and the dataset's augmentation stream from
    (base seed, epoch), so epoch e draws the same order, crops and augmentations whether or
    not the run was interrupted before it.
    """

    def __init__(self, loader, epoch: int = 0, batches_done: int = 0):
        self.loader = loader
        self.epoch = epoch
        self.batches_done = batches_done
        generator = getattr(loader, "generator", None)
        self._base_seed = generator.initial_seed() if generator is not None else None
        self._iterator: Iterator | None = None

    def _start_epoch(self) -> None:
        for sampler in (getattr(self.loader, "sampler", None), getattr(self.loader, "batch_sampler", None)):
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(self.epoch)
        if self._base_seed is not None:
            epoch_seed = (self._base_seed + 1_000_003 * self.epoch) % 2**63
            self.loader.generator.manual_seed(epoch_seed)
            if hasattr(self.loader.dataset, "reseed"):  # in-process loading; workers reseed themselves
                self.loader.dataset.reseed(epoch_seed)
        self._iterator = iter(self.loader)

    def __next__(self):
        if self._iterator is None:
            self._start_epoch()
            for _ in range(self.batches_done):  # resuming mid-epoch: replay the order, drop the data
                next(self._iterator)
        try:
            batch = next(self._iterator)
        except StopIteration:
            self.epoch, self.batches_done = self.epoch + 1, 0
            self._start_epoch()
            batch = next(self._iterator)
        self.batches_done += 1
        return batch


class ThroughputWindow:
    """Mean losses and samples per second since the last log line, pauses excluded."""

    def __init__(self):
        self.start = time.perf_counter()
        self.paused_seconds = 0.0
        self.steps = self.samples = 0
        self.sums: dict[str, float] = {}

    def add(self, scalars: dict[str, float], samples: int) -> None:
        self.steps += 1
        self.samples += samples
        for key, value in scalars.items():
            self.sums[key] = self.sums.get(key, 0.0) + value

    @contextmanager
    def paused(self):
        began = time.perf_counter()
        try:
            yield
        finally:
            self.paused_seconds += time.perf_counter() - began

    def summary(self) -> dict[str, float]:
        elapsed = time.perf_counter() - self.start - self.paused_seconds
        return {**{k: v / self.steps for k, v in self.sums.items()}, "samples_per_s": self.samples / elapsed}


class Trainer:
    def __init__(self, stage: Stage, config: LoopConfig, context: ProcessContext, run_dir: Path):
        self.stage, self.config, self.context, self.run_dir = stage, config, context, Path(run_dir)
        self.module = stage.module.to(context.device)
        self.autocast_dtype = resolve_precision(config.precision, context.device)
        params = [p for p in self.module.parameters() if p.requires_grad]
        # fused: one kernel for the whole update, on CPUs too, where torch's default is a Python
        # loop over the parameters (a fifth of a tiny model's step; fused takes a third of that).
        self.optimizer = torch.optim.Adam(params, lr=config.lr, fused=True)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_factor(config, max(1, len(stage.loader))))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast_dtype == torch.float16)
        self.step = 0
        self.saved_step = 0  # the step of the run folder's checkpoint: where a rerun resumes
        self.stream = BatchStream(stage.loader)
        self.average = WeightAverage(self.module, config.average_decay) if config.average_decay else None
        self.writer = None

    # -- state ---------------------------------------------------------------------------
    def resume_if_possible(self) -> None:
        path = self.run_dir / TRAIN_STATE_FILE
        if not path.exists():
            return
        state = load_training_state(path)
        if state.get("format") != STATE_FORMAT or state.get("stage") != self.stage.name:
            raise ValueError(
                f"{path} is not a '{self.stage.name}' training state (found {state.get('stage')!r}); "
                "pass a fresh --out for this stage"
            )
        load_trainable_state(self.module, state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["lr_schedule"])
        self.scaler.load_state_dict(state["grad_scaler"])
        if self.average is not None:
            self.average.load_state_dict(state["weight_average"])
        self.step = self.saved_step = state["step"]
        self.stream = BatchStream(self.stage.loader, state["epoch"], state["batches_done"])
        rng_states = state["rng"]
        if len(rng_states) == self.context.world_size:
            restore_rng_state(rng_states[self.context.rank])
        else:
            log.warning("resuming with %d processes instead of %d: random streams restart from the seed",
                        self.context.world_size, len(rng_states))
        log.info("resumed from %s at step %d", path, self.step)

    def save(self) -> None:
        self._require_finite_weights()
        rng_states = gather_rng_states(self.context)  # collective: every rank enters
        if self.context.is_main:
            # Model first: a kill between the two writes leaves a state that merely redoes steps.
            with self._averaged():
                self.stage.save_checkpoint(self.run_dir / self.stage.checkpoint_name)
            atomic_torch_save({
                "format": STATE_FORMAT,
                "stage": self.stage.name,
                "step": self.step,
                "epoch": self.stream.epoch,
                "batches_done": self.stream.batches_done,
                "model": trainable_state(self.module),
                "optimizer": self.optimizer.state_dict(),
                "lr_schedule": self.schedule.state_dict(),
                "grad_scaler": self.scaler.state_dict(),
                "weight_average": None if self.average is None else self.average.state_dict(),
                "rng": rng_states,
            }, self.run_dir / TRAIN_STATE_FILE)
        barrier(self.context)
        self.saved_step = self.step

    def _require_finite_weights(self) -> None:
        bad = [name for name, value in self.module.state_dict().items()
               if value.is_floating_point() and not bool(torch.isfinite(value).all())]
        if bad:
            raise TrainingDivergedError(
                f"{len(bad)} weight(s) of the {self.stage.name} model became NaN or infinite by step {self.step} "
                f"(first: {bad[0]}); not saving them over {self.run_dir / self.stage.checkpoint_name}; lower --lr "
                f"(now {self.config.lr:g}) or set --grad-clip, then start a fresh --out"
            )

    def _averaged(self):
        """The weights the run's model file and evaluations show: the average when there is one."""
        return nullcontext() if self.average is None else self.average.applied()

    # -- loop ----------------------------------------------------------------------------
    def _wrapped(self) -> nn.Module:
        if not self.context.distributed:
            return self.module
        device_ids = [self.context.device.index] if self.context.device.type == "cuda" else None
        return DistributedDataParallel(self.module, device_ids=device_ids)

    def _train_step(self, model: nn.Module, batch) -> dict[str, float]:
        model.train()
        autocast = (torch.autocast("cuda", dtype=self.autocast_dtype) if self.autocast_dtype
                    else nullcontext())
        with autocast:
            losses = model(batch)
        if not bool(torch.isfinite(losses["loss"].detach())):
            raise TrainingDivergedError(
                f"the {self.stage.name} loss became {float(losses['loss'].detach())} at step {self.step + 1}: training "
                f"diverged; the last checkpoint in {self.run_dir} (if any) is from before; lower --lr "
                f"(now {self.config.lr:g}) or set --grad-clip, then resume or start a fresh --out"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(losses["loss"]).backward()
        self.scaler.unscale_(self.optimizer)
        # With clipping off, an infinite bound still measures the norm for the log.
        grad_norm = torch.nn.utils.clip_grad_norm_(
            [p for p in self.module.parameters() if p.requires_grad], self.config.grad_clip or math.inf)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.schedule.step()
        if self.average is not None:
            self.average.update()
        scalars = {k: float(v.detach()) for k, v in losses.items()}
        scalars["grad_norm"] = float(grad_norm)
        return scalars

    def _log(self, scalars: dict[str, float], prefix: str) -> None:
        """Training scalars are rank 0's (no extra collective per step); samples/s counts all ranks."""
        if self.writer is not None:
            for key, value in scalars.items():
                self.writer.add_scalar(f"{prefix}/{key}", value, self.step)
        text = " ".join(f"{k}={v:.5g}" for k, v in scalars.items())
        log.info("step %d %s %s", self.step, prefix, text)

    def _evaluate(self) -> None:
        """Held-out metrics: logged, and appended to the run's metrics.json history."""
        if self.context.is_main:
            self.module.eval()
            with torch.no_grad(), self._averaged():
                metrics = self.stage.evaluate()
            self._log(metrics, "eval")
            path = self.run_dir / METRICS_FILE
            history = json.loads(path.read_text())["history"] if path.exists() else []
            history = [entry for entry in history if entry["step"] < self.step]  # drop undone steps
            atomic_write_json(path, {"stage": self.stage.name, "history": [*history, {"step": self.step, **metrics}]})
        barrier(self.context)

    def run(self) -> None:
        self.resume_if_possible()
        if self.context.is_main:
            self.writer = SummaryWriter(self.run_dir / "tb", purge_step=self.step)
        model = self._wrapped()
        config = self.config
        if self.step == 0 and config.eval_every:
            self._evaluate()  # the baseline the later evaluations compare with
        progress = tqdm(total=config.steps, initial=self.step, disable=not self.context.is_main,
                        desc=self.stage.name, dynamic_ncols=True)
        window = ThroughputWindow()
        try:
            while self.step < config.steps:
                batch = next(self.stream)
                scalars = self._train_step(model, batch)
                self.step += 1
                window.add(scalars, len(batch["texts"]) * self.context.world_size)
                progress.update(1)
                progress.set_postfix(loss=f"{scalars['loss']:.4g}")
                if self.step % config.log_every == 0 or self.step == config.steps:
                    self._log({**window.summary(), "lr": self.schedule.get_last_lr()[0]}, "train")
                    window = ThroughputWindow()
                with window.paused():  # checkpoints and evaluations are not training throughput
                    if self.step % config.ckpt_every == 0 or self.step == config.steps:
                        self.save()
                    if config.eval_every and self.step % config.eval_every == 0 and self.step != config.steps:
                        self._evaluate()
            self._evaluate()
        except KeyboardInterrupt:
            # Ctrl-C: one line on what the run folder keeps, not a traceback from inside a layer.
            raise TrainingInterrupted(
                f"{self.stage.name} interrupted at step {self.step} of {config.steps}; {self.run_dir} keeps "
                f"step {self.saved_step}: rerun the same command to resume from there"
            ) from None
        finally:
            progress.close()
            if self.writer is not None:
                self.writer.close()
