"""SMPL-X bodies of generated joints: the body model (from the user's model files), the fit of
its parameters to joints, the Blender add-on's .npz and a mesh render."""
from dhvae_sdk.body.fit import FitSettings, SmplxFit, fit_smplx
from dhvae_sdk.body.smplx_model import SmplxModel, find_model_file

__all__ = ["FitSettings", "SmplxFit", "SmplxModel", "find_model_file", "fit_smplx"]
