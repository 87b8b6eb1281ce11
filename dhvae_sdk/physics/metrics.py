"""Physical plausibility of two-person motion (paper Table 8): PV, PFR, PDR and Contact.

Per frame the two bodies are voxelized (2 cm) and the voxels inside both are counted:
- PV: mean overlap count over all real frames of all sequences, in voxels (the paper's Table 8
  definition, "average number of overlapping voxels"); ``pv_ml`` is the same mean as a volume,
  count x voxel volume (8 ml per 2 cm voxel), the unit of the paper's code
  (``utils/penetrations.py``);
- PFR: fraction of sequences with a frame of nonzero overlap;
- PDR: per sequence the fraction of its frames with nonzero overlap, averaged over sequences;
- Contact: among sequences that should touch, the fraction whose bodies dilated by one voxel
  overlap in some frame while the undilated overlap never exceeds k^3 voxels (k = 4); deeper
  overlaps are severe penetrations, not contact.
Sequences may be padded: ``lengths`` [N] marks the real frames, and sequences of length 0
take no part in the averages. Every result records the body model, voxel size, dilation and
k that produced it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from dhvae_sdk.physics.bodies import CapsuleBody, MeshBody
from dhvae_sdk.physics.overlap import as_body, overlap_counts


@dataclass(frozen=True)
class PhysicsConfig:
    voxel: float = 0.02            # metres
    contact_dilation: int = 1      # voxels added around each body for the contact test
    severe_k: int = 4              # undilated overlap above severe_k ** 3 voxels is a severe penetration

    def __post_init__(self):
        if not self.voxel > 0:
            raise ValueError(f"PhysicsConfig.voxel must be > 0 metres, got {self.voxel}")
        if self.contact_dilation < 0 or self.severe_k < 0:
            raise ValueError(f"PhysicsConfig.contact_dilation and severe_k must be >= 0, got {self}")

    @property
    def severe_voxels(self) -> int:
        return self.severe_k ** 3


@dataclass(frozen=True)
class PhysicsMetrics:
    pv: float
    pfr: float
    pdr: float
    contact: float | None           # None when no sequence should touch
    body_model: str                 # "capsule", "mesh" or "smplx mesh"
    voxel: float
    contact_dilation: int
    severe_k: int
    sequences: int                  # sequences with at least one real frame
    frames: int                     # real frames
    contact_sequences: int          # of those, sequences that should touch

    @property
    def pv_ml(self) -> float:
        """PV as a volume: voxels x (voxel edge in cm)^3 ml."""
        return self.pv * (self.voxel * 100.0) ** 3

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "pv_ml": self.pv_ml}


def frame_mask(batch_shape: tuple[int, int], lengths=None) -> np.ndarray:
    """Real frames [N, T]: the first lengths[n] frames of sequence n (all frames without lengths)."""
    n, t = batch_shape
    if lengths is None:
        return np.ones((n, t), dtype=bool)
    lengths = np.asarray(lengths.detach().cpu() if hasattr(lengths, "detach") else lengths)
    if lengths.shape != (n,) or not np.issubdtype(lengths.dtype, np.integer):
        raise ValueError(f"lengths must be integers of shape ({n},), got {lengths.dtype} {lengths.shape}")
    if (lengths < 0).any() or (lengths > t).any():
        raise ValueError(f"lengths must lie in [0, {t}] (the number of frames), got {lengths.min()}..{lengths.max()}")
    return np.arange(t)[None, :] < lengths[:, None]


def contact_flags(dilated, undilated, mask, severe_voxels: int) -> np.ndarray:
    """Per sequence [N]: dilated overlap in some real frame and no real frame beyond severe_voxels."""
    touching = ((np.asarray(dilated) > 0) & mask).any(axis=1)
    severe = ((np.asarray(undilated) > severe_voxels) & mask).any(axis=1)
    return touching & ~severe


def metrics_from_counts(undilated, dilated=None, should_touch=None, lengths=None,
                        config: PhysicsConfig = PhysicsConfig(), body_model: str = "capsule") -> PhysicsMetrics:
    """The metrics from overlap counts [N, T] (``dilated`` is needed when some sequence should touch)."""
    undilated = np.asarray(undilated)
    if undilated.ndim != 2:
        raise ValueError(f"overlap counts must have shape [N, T], got {undilated.shape}")
    mask = frame_mask(undilated.shape, lengths)
    real = mask.any(axis=1)
    frames = int(mask.sum())
    penetrating = (undilated > 0) & mask
    pv = float(undilated[mask].mean()) if frames else 0.0
    pfr = float(penetrating.any(axis=1)[real].mean()) if real.any() else 0.0
    pdr = float((penetrating.sum(axis=1)[real] / mask.sum(axis=1)[real]).mean()) if real.any() else 0.0
    touch = np.zeros(len(undilated), dtype=bool) if should_touch is None else np.asarray(should_touch, dtype=bool)
    if touch.shape != (len(undilated),):
        raise ValueError(f"should_touch must have shape ({len(undilated)},), got {touch.shape}")
    touch &= real
    contact = None
    if touch.any():
        if dilated is None:
            raise ValueError("dilated overlap counts are needed to score contact")
        flags = contact_flags(dilated, undilated, mask, config.severe_voxels)
        contact = float(flags[touch].mean())
    return PhysicsMetrics(
        pv=pv, pfr=pfr, pdr=pdr, contact=contact, body_model=body_model, voxel=config.voxel,
        contact_dilation=config.contact_dilation, severe_k=config.severe_k, sequences=int(real.sum()),
        frames=frames, contact_sequences=int(touch.sum()),
    )


def physics_metrics(body_a, body_b, should_touch=None, lengths=None, config: PhysicsConfig = PhysicsConfig(),
                    device: str = "auto") -> PhysicsMetrics:
    """PV, PFR, PDR and Contact of body pairs (CapsuleBody / MeshBody / joints [N, T, 22, 3]).

    ``should_touch`` [N] bool marks the sequences that should touch (from annotation or
    ground truth); without it Contact is None.
    """
    a, b = as_body(body_a, "body_a"), as_body(body_b, "body_b")
    undilated = overlap_counts(a, b, config.voxel, 0, device)
    dilated = None
    if should_touch is not None and np.any(should_touch):
        dilated = overlap_counts(a, b, config.voxel, config.contact_dilation, device)
    return metrics_from_counts(undilated, dilated, should_touch, lengths, config, body_model=a.kind)


def contact_test(joints_a, joints_b, voxel: float = 0.02, dilation: int = 1, lengths=None,
                 device: str = "auto", threads: int | None = None) -> np.ndarray:
    """Do the capsule bodies of joints [N, T, 22, 3] touch (dilated overlap) in some real frame? bool [N].

    The triplet loss uses this to pick the positive offset range for each training pair.
    ``threads`` limits the CPU path (default: every core this process may use).
    """
    a, b = CapsuleBody(joints_a), CapsuleBody(joints_b)
    counts = overlap_counts(a, b, voxel, dilation, device, threads)
    return ((counts > 0) & frame_mask(a.batch_shape, lengths)).any(axis=1)


def mesh_sequence_metrics(sequences, faces, should_touch=None, config: PhysicsConfig = PhysicsConfig(),
                          body_model: str = "smplx mesh", device: str = "auto") -> PhysicsMetrics:
    """The metrics of two-person mesh sequences, one at a time: ``sequences`` yields vertices
    [T_i, 2, V, 3] (real frames only) and ``faces`` [F, 3] is shared. Meshes of whole test
    sets do not fit in memory at once (10,475 SMPL-X vertices per body and frame)."""
    undilated, dilated, lengths = [], [], []
    touch = None if should_touch is None else np.asarray(should_touch, dtype=bool)
    for index, vertices in enumerate(sequences):
        vertices = np.asarray(vertices, dtype=np.float64)
        if vertices.ndim != 4 or vertices.shape[1] != 2:
            raise ValueError(f"sequence {index}: vertices must be [T, 2, V, 3], got {vertices.shape}")
        a, b = (MeshBody(vertices[None, :, person], faces) for person in (0, 1))
        undilated.append(overlap_counts(a, b, config.voxel, 0, device)[0])
        if touch is not None and touch[index]:
            dilated.append(overlap_counts(a, b, config.voxel, config.contact_dilation, device)[0])
        else:
            dilated.append(np.zeros_like(undilated[-1]))
        lengths.append(len(vertices))
    frames = max(lengths, default=0)
    pad = lambda rows: np.stack([np.pad(r, (0, frames - len(r))) for r in rows]) if rows else np.zeros((0, 0))  # noqa
    return metrics_from_counts(pad(undilated), pad(dilated), touch, np.array(lengths, dtype=np.int64), config,
                               body_model=body_model)
