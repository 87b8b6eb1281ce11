"""The contract between the exported graphs and everything that runs them.

One definition of each graph an export writes: its role (the manifest's key for its file and
the file's stem), its input names with their axes, and its output names, in the order the
graph takes and returns them. Axes are named where they are dynamic: ``batch`` (texts x
samples), ``guided`` (twice ``batch``: the conditional rows, then the unconditional ones),
``steps``, ``rows`` (condition rows of the modulation: the sentences', or the null text's
alone) and ``frames``; None marks a fixed size.

The same module holds the two table layouts the step graph and the runtimes must agree on:
the columns of the scheduler coefficient table and the order of the denoiser's modulation rows.
``export/`` (the graphs), the denoiser (the rows) and every backend read them from here. It
imports nothing, so that any layer of the SDK may use it without pulling in torch.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GraphContract:
    role: str
    inputs: dict[str, tuple[str | None, ...]]  # input name -> per axis: dynamic axis name or None
    outputs: tuple[str, ...]

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(self.inputs)

    @property
    def file_name(self) -> str:
        return f"{self.role}.onnx"


# CLIP BPE ids [N, context] -> text embeddings [N, C].
TEXT_ENCODER = GraphContract("text_encoder", {"tokens": ("batch", None)}, ("text_embeddings",))
# Timesteps [S] and conditions [R, C] -> the modulation of every (step, row) pair [S, R, rows, W].
MODULATION = GraphContract("modulation", {"timesteps": ("steps",), "conditions": ("rows", None)},
                           ("modulation_table",))
# One guided DDIM step of the whole-loop tables, picked by ``step`` [1].
SAMPLER_STEP = GraphContract("sampler_step", {
    "latents": ("batch", None, None),
    "step": (None,),
    "modulation_table": ("steps", "guided", None, None),
    "coefficient_table": ("steps", None),
    "guidance": (None,),
    "known_table": ("steps", "batch", None, None),
    "known_mask": ("batch", None, None),
}, ("next_latents",))
# Denoiser-space latents [B, N, d_z] and a frame mask [B, T] -> normalized features [B, T, 2, F].
DECODER = GraphContract("decoder", {"latents": ("batch", None, None), "mask": ("batch", "frames")}, ("features",))
# Normalized features [B, T, 2, F] and a frame mask -> the posterior in denoiser space: its
# means (what the backends use) and log-variances, each [B, N, d_z].
ENCODER = GraphContract("encoder", {"features": ("batch", "frames", None, None), "mask": ("batch", "frames")},
                        ("latents", "logvars"))

GRAPHS = (TEXT_ENCODER, MODULATION, SAMPLER_STEP, DECODER, ENCODER)
ROLES = tuple(graph.role for graph in GRAPHS)

# Columns of ``coefficient_table`` [S, 4]: the fields of ``sampling.StepCoefficients``, in the
# order the step graph reads them (x0 = c0 x_t + c1 eps; x_prev = c2 x0 + c3 x_t).
COEFFICIENT_COLUMNS = ("x0_from_sample", "x0_from_output", "prev_from_x0", "prev_from_sample")

# The modulation rows of one denoiser layer, then those of its head, in table order.
LAYER_MODULATION_ROWS = ("attention_gate", "ffn_gate", "attention_scale", "ffn_scale", "attention_shift", "ffn_shift")
HEAD_MODULATION_ROWS = ("scale", "shift")
