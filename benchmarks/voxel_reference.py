"""Brute-force dense-grid voxel overlap in numpy: the test oracle and the speed baseline.

Per frame it lays the voxel lattice (centres at (i + 0.5) * voxel) over the union of both
bodies' bounding boxes plus one voxel, tests every voxel against every primitive of each body
with no culling at all, and counts the voxels inside both. The inside tests are the formulas
of csrc/voxel_core.h evaluated in the same order in float64, so the extension's counts must
equal these exactly, not approximately.

It also holds the test geometry shared by tests/test_voxel.py and benchmarks/voxel.py.
"""
from __future__ import annotations

import numpy as np

from dhvae_sdk.motion.rotation import axis_angle_to_matrix, yaw_matrix
from dhvae_sdk.motion.skeleton import JOINT_INDEX, NUM_JOINTS, forward_kinematics


def _centres(lo: np.ndarray, hi: np.ndarray, voxel: float) -> list[np.ndarray]:
    """Voxel centres along each axis covering [lo, hi] with one voxel to spare."""
    first = np.floor(lo / voxel) - 1
    last = np.ceil(hi / voxel) + 1
    return [(np.arange(f, l + 1, dtype=np.float64) + 0.5) * voxel for f, l in zip(first, last)]


def _grid(centres: list[np.ndarray]) -> list[np.ndarray]:
    """Centre coordinates shaped to broadcast over the (x, y, z) grid."""
    return [centres[0][:, None, None], centres[1][None, :, None], centres[2][None, None, :]]


def _segment_within(a, d, px, py, pz, radius2):
    """a, d: sequences of 3 coordinates (scalars or arrays broadcasting with the points)."""
    wx, wy, wz = px - a[0], py - a[1], pz - a[2]
    length2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(length2 > 0.0, np.clip((wx * d[0] + wy * d[1] + wz * d[2]) / length2, 0.0, 1.0), 0.0)
    ex, ey, ez = wx - t * d[0], wy - t * d[1], wz - t * d[2]
    return ex * ex + ey * ey + ez * ez <= radius2


def _capsule_occupancy(segments: np.ndarray, radii: np.ndarray, grid, voxel: float, dilation: int):
    occupied = np.zeros(np.broadcast_shapes(*(g.shape for g in grid)), dtype=bool)
    for segment, radius in zip(segments, radii):
        reach = float(radius) + float(dilation) * voxel
        occupied |= _segment_within(segment[0], segment[1] - segment[0], *grid, reach * reach)
    return occupied


def capsule_overlap_reference(segments_a, radii_a, segments_b, radii_b, voxel: float, dilation: int) -> np.ndarray:
    """Overlap counts [F] of capsule bodies given as segments [F, C, 2, 3] and radii [C]."""
    segments_a = np.asarray(segments_a, dtype=np.float64)
    segments_b = np.asarray(segments_b, dtype=np.float64)
    radii_a = np.asarray(radii_a, dtype=np.float64)
    radii_b = np.asarray(radii_b, dtype=np.float64)
    reach = max(radii_a.max(), radii_b.max()) + dilation * voxel
    counts = np.zeros(len(segments_a), dtype=np.int64)
    for frame, (seg_a, seg_b) in enumerate(zip(segments_a, segments_b)):
        points = np.concatenate([seg_a.reshape(-1, 3), seg_b.reshape(-1, 3)])
        grid = _grid(_centres(points.min(0) - reach, points.max(0) + reach, voxel))
        inside_a = _capsule_occupancy(seg_a, radii_a, grid, voxel, dilation)
        inside_b = _capsule_occupancy(seg_b, radii_b, grid, voxel, dilation)
        counts[frame] = np.count_nonzero(inside_a & inside_b)
    return counts


def _oriented_edge(p, q, u, v, pu, pv):
    forward = (p[:, u] < q[:, u]) | ((p[:, u] == q[:, u]) & (p[:, v] < q[:, v]))
    s = np.where(forward[:, None], p, q)
    t = np.where(forward[:, None], q, p)
    e = (t[:, u] - s[:, u]) * (pv - s[:, v]) - (t[:, v] - s[:, v]) * (pu - s[:, u])
    return np.where(forward, e, -e)


def _inside_edge(e, p, q, u, v, orientation):
    du = np.where(orientation > 0, q[:, u] - p[:, u], p[:, u] - q[:, u])
    dv = np.where(orientation > 0, q[:, v] - p[:, v], p[:, v] - q[:, v])
    owned = (dv < 0.0) | ((dv == 0.0) & (du > 0.0))
    return (e > 0.0) | ((e == 0.0) & owned)


def _axis_parity(triangles: np.ndarray, centres: list[np.ndarray], axis: int) -> np.ndarray:
    """Ray parity along +axis for every voxel, as an (x, y, z) bool grid."""
    u, v = (axis + 1) % 3, (axis + 2) % 3
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    pu = centres[u][:, None, None]
    pv = centres[v][None, :, None]
    area = _oriented_edge(a, b, u, v, c[:, u], c[:, v])
    orientation = np.where(area > 0.0, 1.0, -1.0)
    ea = orientation * _oriented_edge(b, c, u, v, pu, pv)
    eb = orientation * _oriented_edge(c, a, u, v, pu, pv)
    ec = orientation * _oriented_edge(a, b, u, v, pu, pv)
    weight = ea + eb + ec
    hit = (area != 0.0) & (weight > 0.0)
    hit &= _inside_edge(ea, b, c, u, v, orientation)
    hit &= _inside_edge(eb, c, a, u, v, orientation)
    hit &= _inside_edge(ec, a, b, u, v, orientation)
    with np.errstate(divide="ignore", invalid="ignore"):
        coordinate = (ea * a[:, axis] + eb * b[:, axis] + ec * c[:, axis]) / weight
    along = centres[axis]
    crossings = np.zeros((len(centres[u]), len(centres[v]), len(along)), dtype=np.int64)
    for k, centre in enumerate(along):
        crossings[:, :, k] = np.count_nonzero(hit & (coordinate > centre), axis=-1)
    parity = crossings % 2 == 1  # indexed (u, v, axis)
    order = [None, None, None]
    order[u], order[v], order[axis] = 0, 1, 2
    return parity.transpose(order)


def _cross(x, y):
    return (x[1] * y[2] - x[2] * y[1], x[2] * y[0] - x[0] * y[2], x[0] * y[1] - x[1] * y[0])


def _dot(x, y):
    return x[0] * y[0] + x[1] * y[1] + x[2] * y[2]


def _near_surface(triangles: np.ndarray, centres: list[np.ndarray], radius: float) -> np.ndarray:
    """Voxels within `radius` of some triangle, as an (x, y, z) bool grid."""
    radius2 = radius * radius
    shape = tuple(len(c) for c in centres)
    point = [g.reshape(-1, 1) for g in np.meshgrid(*centres, indexing="ij")]
    near = np.zeros(point[0].shape[0], dtype=bool)
    for start in range(0, len(triangles), 32):
        a, b, c = (triangles[start:start + 32, k].T for k in range(3))  # each [3][K]
        normal = _cross(b - a, c - a)
        normal2 = _dot(normal, normal)
        height = _dot(normal, [point[k] - a[k] for k in range(3)])
        over_face = (normal2 > 0.0) & (height * height <= radius2 * normal2)
        for p, q in ((a, b), (b, c), (c, a)):
            side = _cross(q - p, [point[k] - p[k] for k in range(3)])
            over_face &= _dot(normal, side) >= 0.0
            over_face |= _segment_within(p, q - p, *point, radius2)
        near |= over_face.any(axis=1)
    return near.reshape(shape)


def _mesh_occupancy(triangles: np.ndarray, centres, voxel: float, dilation: int) -> np.ndarray:
    votes = sum(_axis_parity(triangles, centres, axis).astype(np.int8) for axis in range(3))
    occupied = votes >= 2
    if dilation > 0:
        occupied |= _near_surface(triangles, centres, float(dilation) * voxel)
    return occupied


def mesh_overlap_reference(vertices_a, faces_a, vertices_b, faces_b, voxel: float, dilation: int) -> np.ndarray:
    """Overlap counts [F] of triangle meshes given as vertices [F, V, 3] and faces [T, 3]."""
    vertices_a = np.asarray(vertices_a, dtype=np.float64)
    vertices_b = np.asarray(vertices_b, dtype=np.float64)
    counts = np.zeros(len(vertices_a), dtype=np.int64)
    reach = dilation * voxel
    for frame, (verts_a, verts_b) in enumerate(zip(vertices_a, vertices_b)):
        points = np.concatenate([verts_a, verts_b])
        centres = _centres(points.min(0) - reach, points.max(0) + reach, voxel)
        inside_a = _mesh_occupancy(verts_a[faces_a], centres, voxel, dilation)
        inside_b = _mesh_occupancy(verts_b[faces_b], centres, voxel, dilation)
        counts[frame] = np.count_nonzero(inside_a & inside_b)
    return counts


def icosphere(subdivisions: int, radius: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A closed, outward-wound triangle sphere: vertices [V, 3], faces [20 * 4**subdivisions, 3]."""
    t = (1.0 + 5.0 ** 0.5) / 2.0
    vertices = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t), (0, -1, -t), (0, 1, -t),
                (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    faces = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2),
             (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5), (2, 4, 11),
             (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    vertices = [np.array(v, dtype=np.float64) / np.linalg.norm(v) for v in vertices]
    for _ in range(subdivisions):
        midpoints: dict[tuple[int, int], int] = {}

        def midpoint(i: int, j: int) -> int:
            key = (min(i, j), max(i, j))
            if key not in midpoints:
                m = vertices[i] + vertices[j]
                vertices.append(m / np.linalg.norm(m))
                midpoints[key] = len(vertices) - 1
            return midpoints[key]

        refined = []
        for a, b, c in faces:
            ab, bc, ca = midpoint(a, b), midpoint(b, c), midpoint(c, a)
            refined += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = refined
    return np.array(vertices) * radius, np.array(faces, dtype=np.int32)


def hug_joints(frames: int, seed: int, gap: float = 0.30, jitter: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """Two people hugging: joints [1, frames, 22, 3] each, B facing A ``gap`` metres in front of it.

    Both reach forward with the upper arms and bend the forearms around the other person;
    every joint angle jitters by up to ``jitter`` radians per frame and the roots by 2 cm.
    """
    rng = np.random.default_rng(seed)
    local = axis_angle_to_matrix(rng.uniform(-jitter, jitter, size=(2, frames, NUM_JOINTS - 1, 3)))
    forward = axis_angle_to_matrix(np.array([-np.pi / 2, 0.0, 0.0]))
    for side, inward in (("l", -1.0), ("r", 1.0)):
        shoulder, elbow = JOINT_INDEX[f"{side}_shoulder"] - 1, JOINT_INDEX[f"{side}_elbow"] - 1
        local[:, :, shoulder] = forward @ local[:, :, shoulder]
        # bend the forearm about the (now forward-pointing) upper arm's frame's vertical axis
        wrap = forward.T @ axis_angle_to_matrix(np.array([0.0, inward * 1.2, 0.0])) @ forward
        local[:, :, elbow] = wrap @ local[:, :, elbow]
    root_rotation = np.stack([np.broadcast_to(yaw_matrix(np.array(angle)), (frames, 3, 3)) for angle in (0.0, np.pi)])
    root_position = np.zeros((2, frames, 3))
    root_position[1, :, 2] = gap
    root_position += rng.uniform(-0.02, 0.02, size=(2, frames, 3))
    joints = forward_kinematics(root_rotation, local, root_position)
    return joints[0][None], joints[1][None]
