"""The training stages: stage 1 the motion VAE, stage 2 the latent denoiser, and the evaluator."""
from .denoiser import DenoiserStage
from .evaluator import EvaluatorStage
from .vae import VAEStage

STAGES = {stage.name: stage for stage in (VAEStage, DenoiserStage, EvaluatorStage)}

__all__ = ["STAGES", "DenoiserStage", "EvaluatorStage", "VAEStage"]
