"""Physical plausibility: voxel overlap of two bodies (csrc/ extension, CPU and CUDA) and the
metrics built on it (PV, PFR, PDR, Contact, and the triplet loss's contact test)."""
from dhvae_sdk.physics.bodies import CAPSULE_NAMES, CAPSULES, DEFAULT_RADII, CapsuleBody, CapsuleSpec, MeshBody
from dhvae_sdk.physics.metrics import (
    PhysicsConfig,
    PhysicsMetrics,
    contact_test,
    mesh_sequence_metrics,
    metrics_from_counts,
    physics_metrics,
)
from dhvae_sdk.physics.overlap import CudaUnavailableError, cuda_status, overlap_counts

__all__ = [
    "CAPSULES", "CAPSULE_NAMES", "DEFAULT_RADII", "CapsuleBody", "CapsuleSpec", "MeshBody", "CudaUnavailableError",
    "PhysicsConfig", "PhysicsMetrics", "contact_test", "cuda_status", "mesh_sequence_metrics", "metrics_from_counts",
    "overlap_counts", "physics_metrics",
]
