"""Reading the paper's released DHVAE checkpoints (``python -m dhvae_sdk.convert``)."""
from .official import (
    OfficialCheckpointError, OfficialModel, read_official, release_layout, release_parameter_count,
)

__all__ = ["OfficialCheckpointError", "OfficialModel", "read_official", "release_layout", "release_parameter_count",
           "convert_official"]


def convert_official(source, out, clip_heads: int | None = None) -> OfficialModel:
    """Write a released checkpoint (file or ``ckpt/<name>/`` folder) as a dhvae-sdk checkpoint."""
    from dhvae_sdk.checkpoint import save_checkpoint

    official = read_official(source, clip_heads=clip_heads)
    save_checkpoint(
        out, official.model, feature_mean=official.feature_mean, feature_std=official.feature_std,
        stage=official.stage, latent_scales=official.latent_scales,
        extra_metadata={"converted_from": str(official.source)},
    )
    return official
