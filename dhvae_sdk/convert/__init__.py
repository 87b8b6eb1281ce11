"""Reading the paper's released DHVAE checkpoints (``python -m dhvae_sdk.convert``)."""
from dhvae_sdk.checkpoint import Checkpoint, save_checkpoint

from .official import OfficialCheckpointError, read_official, release_layout, release_parameter_count

__all__ = ["OfficialCheckpointError", "read_official", "release_layout", "release_parameter_count", "convert_official"]


def convert_official(source, out, clip_heads: int | None = None) -> Checkpoint:
    """Write a released checkpoint (file or ``ckpt/<name>/`` folder) as a dhvae-sdk checkpoint."""
    official = read_official(source, clip_heads=clip_heads)
    save_checkpoint(
        out, official.model, feature_mean=official.feature_mean, feature_std=official.feature_std,
        stage=official.stage, latent_scales=official.latent_scales, extra_metadata=official.metadata,
    )
    return official
