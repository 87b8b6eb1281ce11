"""dhvae-sdk: text to two-person 3D motion (DHVAE latent diffusion).

``from dhvae_sdk import Generator`` is the entry point. It is imported on first access, so
``import dhvae_sdk`` alone stays cheap (no torch, no ONNX Runtime).
"""
__version__ = "0.1.0"
__all__ = ["DHVAEError", "Generator", "GeneratorError", "Interaction"]


def __getattr__(name: str):
    if name == "DHVAEError":
        from dhvae_sdk.errors import DHVAEError

        return DHVAEError
    if name in __all__:
        from dhvae_sdk import generator

        return getattr(generator, name)
    raise AttributeError(f"module 'dhvae_sdk' has no attribute {name!r}")
