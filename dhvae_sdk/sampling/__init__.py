"""DDIM scheduler, classifier-free guidance and the sampling loop, independent of any network.

Importing this package never imports torch; ``dhvae_sdk.sampling.torch_arrays.TorchOps`` is
the torch adapter for ``sample_latents``.
"""
from dhvae_sdk.sampling.arrays import ArrayOps, NumpyOps
from dhvae_sdk.sampling.guidance import classifier_free_guidance, sample_latents
from dhvae_sdk.sampling.scheduler import DDIMScheduler, StepCoefficients

__all__ = ["ArrayOps", "NumpyOps", "classifier_free_guidance", "sample_latents",
           "DDIMScheduler", "StepCoefficients"]
