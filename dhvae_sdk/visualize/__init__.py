"""Pictures of interactions: mp4 / gif videos, grids of several clips, png frames."""
from dhvae_sdk.visualize.render import render_frame, render_grid, render_video

__all__ = ["render_frame", "render_grid", "render_video"]
