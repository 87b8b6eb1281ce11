"""The voxel-overlap extension against the brute-force numpy oracle, and its Python API."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from benchmarks.voxel_reference import capsule_overlap_reference, hug_joints, icosphere, mesh_overlap_reference
from dhvae_sdk.motion.rotation import axis_angle_to_matrix
from dhvae_sdk.motion.skeleton import JOINT_INDEX, NUM_JOINTS, PARENTS, forward_kinematics
from dhvae_sdk.physics import (
    DEFAULT_RADII,
    CapsuleBody,
    CudaUnavailableError,
    MeshBody,
    cuda_status,
    overlap_counts,
)
from dhvae_sdk.physics import _voxel

REPO = Path(__file__).resolve().parents[1]
HAS_GPU = cuda_status()["device_count"] > 0


def reference_counts(body_a: CapsuleBody, body_b: CapsuleBody, voxel: float, dilation: int) -> np.ndarray:
    frames = body_a.batch_shape[0] * body_a.batch_shape[1]
    segments_a = body_a.segments().reshape(frames, -1, 2, 3)
    segments_b = body_b.segments().reshape(frames, -1, 2, 3)
    counts = capsule_overlap_reference(segments_a, body_a.radii, segments_b, body_b.radii, voxel, dilation)
    return counts.reshape(body_a.batch_shape)


def random_pose_pair(frames: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two people in random poses (joint angles up to 1 rad), roots 0.1-0.5 m apart."""
    rng = np.random.default_rng(seed)
    local = axis_angle_to_matrix(rng.uniform(-1.0, 1.0, size=(2, frames, NUM_JOINTS - 1, 3)))
    root = axis_angle_to_matrix(rng.uniform(-np.pi, np.pi, size=(2, frames, 3)) * [0.2, 1.0, 0.2])
    position = rng.uniform(-0.25, 0.25, size=(2, frames, 3)) + [1.3, 0.9, -2.1]
    joints = forward_kinematics(root, local, position)
    return joints[0][None], joints[1][None]


def sphere_body(centres, radius: float) -> CapsuleBody:
    """Bodies that are one ball each: every joint at the centre, one capsule with a radius."""
    centres = np.asarray(centres, dtype=np.float64)
    joints = np.broadcast_to(centres[..., None, :], centres.shape[:-1] + (NUM_JOINTS, 3))
    radii = np.zeros_like(DEFAULT_RADII)
    radii[0] = radius
    return CapsuleBody(joints, radii)


# ---------------------------------------------------------------- capsules: exact counts

@pytest.mark.parametrize("dilation", [0, 1])
def test_hug_poses_match_reference_at_2cm(dilation):
    a, b = (CapsuleBody(j) for j in hug_joints(3, seed=11))
    counts = overlap_counts(a, b, voxel=0.02, dilation=dilation, device="cpu")
    np.testing.assert_array_equal(counts, reference_counts(a, b, 0.02, dilation))
    assert counts.dtype == np.int64 and counts.shape == (1, 3)
    assert (counts > 0).all()


@pytest.mark.parametrize("dilation", [0, 2])
def test_random_poses_match_reference(dilation):
    a, b = (CapsuleBody(j) for j in random_pose_pair(10, seed=3))
    counts = overlap_counts(a, b, voxel=0.05, dilation=dilation, device="cpu")
    np.testing.assert_array_equal(counts, reference_counts(a, b, 0.05, dilation))
    assert (counts > 0).sum() >= 5  # the poses do interpenetrate, so the check has teeth


@pytest.mark.parametrize("offset", [0.0, 1234.5])
def test_random_segments_match_reference(offset):
    """Arbitrary capsules, including bones parallel to the axes, zero-length bones, and end
    points and radii on quarter voxels, where voxel centres fall exactly on capsule surfaces."""
    rng = np.random.default_rng(5)
    frames, capsules = 30, 7
    voxel = 0.0625
    segments = rng.uniform(-0.4, 0.4, size=(2, frames, capsules, 2, 3))
    radii = rng.uniform(0.03, 0.2, size=(2, capsules))
    segments[:, ::2] = np.round(segments[:, ::2] / voxel * 4) * voxel / 4
    radii[:, ::2] = np.round(radii[:, ::2] / voxel * 4) * voxel / 4
    segments[:, :, 1, 1, 1:] = segments[:, :, 1, 0, 1:]                   # parallel to x
    segments[:, :, 2, 1, :2] = segments[:, :, 2, 0, :2]                   # parallel to z
    segments[:, :, 3, 1] = segments[:, :, 3, 0]                           # zero length
    segments += offset
    for dilation in (0, 1):
        counts = _voxel.capsule_counts(segments[0], radii[0], segments[1], radii[1], voxel, dilation, "cpu", 2)
        expected = capsule_overlap_reference(segments[0], radii[0], segments[1], radii[1], voxel, dilation)
        np.testing.assert_array_equal(counts, expected)
        assert (counts > 0).sum() > frames // 2


def test_balls_sharing_one_lattice_centre():
    # Voxel 0.25: each ball holds its own centre voxel and the 6 neighbours exactly 0.25 away
    # (ties count as inside); the two balls share just the voxel centred at x = 0.375.
    a = sphere_body([[[0.125, 0.125, 0.125]]], 0.25)
    b = sphere_body([[[0.625, 0.125, 0.125]]], 0.25)
    assert overlap_counts(a, a, voxel=0.25, device="cpu")[0, 0] == 7
    assert overlap_counts(a, b, voxel=0.25, device="cpu")[0, 0] == 1


def test_balls_touching_at_a_voxel_face_share_nothing_until_dilated():
    a = sphere_body([[[0.125, 0.125, 0.125]]], 0.125)
    b = sphere_body([[[0.375, 0.125, 0.125]]], 0.125)
    assert overlap_counts(a, b, voxel=0.25, device="cpu")[0, 0] == 0
    # Dilated by one voxel each ball reaches 0.375: A holds the x-centres 0.125 +- 0.25 and B
    # 0.375 +- 0.25 along the row y = z = 0.125; they share x = 0.125 and 0.375 there, plus
    # the 4 side neighbours of each of those two voxels (0.25 off the row: 0.25^2 + 0.25^2
    # <= 0.375^2): 2 + 8 = 10.
    assert overlap_counts(a, b, voxel=0.25, dilation=1, device="cpu")[0, 0] == 10


def test_translation_by_whole_voxels_keeps_counts():
    a, b = (CapsuleBody(j) for j in hug_joints(2, seed=4))
    shift = np.array([7, -3, 12]) * 0.0625
    moved_a, moved_b = CapsuleBody(a.joints + shift), CapsuleBody(b.joints + shift)
    np.testing.assert_array_equal(
        overlap_counts(a, b, voxel=0.0625, device="cpu"), overlap_counts(moved_a, moved_b, voxel=0.0625, device="cpu")
    )


def test_far_apart_bodies_share_nothing():
    a, b = hug_joints(2, seed=1)
    assert (overlap_counts(a, b + [3.0, 0.0, 0.0], device="cpu") == 0).all()
    assert (overlap_counts(a, b + [0.0, 0.0, -3.0], dilation=3, device="cpu") == 0).all()


def test_identical_bodies_count_their_volume():
    a = CapsuleBody(hug_joints(2, seed=2)[0])
    counts = overlap_counts(a, a, voxel=0.04, device="cpu")
    np.testing.assert_array_equal(counts, reference_counts(a, a, 0.04, 0))


def test_default_radii_give_an_adult_volume():
    """The capsule table at the rest skeleton holds roughly an adult's 55-80 litres."""
    eye = np.eye(3)
    rest = forward_kinematics(eye, np.broadcast_to(eye, (NUM_JOINTS - 1, 3, 3)), np.zeros(3))[None, None]
    litres = overlap_counts(rest, rest, voxel=0.02, device="cpu")[0, 0] * 0.02 ** 3 * 1000
    assert 50.0 < litres < 80.0


def test_zero_length_bone_matches_reference():
    a, b = hug_joints(2, seed=6)
    for joint in ("l_wrist", "r_knee", "head"):
        index = JOINT_INDEX[joint]
        a[..., index, :] = a[..., PARENTS[index], :]
    a, b = CapsuleBody(a), CapsuleBody(b)
    np.testing.assert_array_equal(overlap_counts(a, b, voxel=0.04, device="cpu"), reference_counts(a, b, 0.04, 0))


@pytest.mark.parametrize("shape", [(0, 5), (3, 0), (0, 0)])
def test_empty_batches_give_empty_counts(shape):
    joints = np.zeros(shape + (NUM_JOINTS, 3))
    counts = overlap_counts(joints, joints, device="cpu")
    assert counts.shape == shape and counts.dtype == np.int64


def test_thread_count_does_not_change_counts():
    a, b = hug_joints(9, seed=8)
    one = overlap_counts(a, b, voxel=0.03, device="cpu", threads=1)
    np.testing.assert_array_equal(one, overlap_counts(a, b, voxel=0.03, device="cpu", threads=2))


# ---------------------------------------------------------------- input errors

def test_nan_joints_are_rejected():
    a, b = hug_joints(2, seed=0)
    a[0, 1, 5, 2] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinite.*\(0, 1, 5, 2\)"):
        overlap_counts(a, b)


@pytest.mark.parametrize(
    "joints_b, message",
    [(np.zeros((1, 2, 21, 3)), r"\[N, T, 22, 3\]"), (np.zeros((2, 22, 3)), "leading axes"),
     (np.zeros((1, 3, 22, 3)), "must match"), (np.zeros((2, 2, 22, 3)), "must match")],
)
def test_wrong_shapes_are_rejected(joints_b, message):
    with pytest.raises(ValueError, match=message):
        overlap_counts(np.zeros((1, 2, NUM_JOINTS, 3)), joints_b)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"voxel": 0.0}, "voxel"), ({"voxel": float("nan")}, "voxel"), ({"dilation": -1}, "dilation"),
     ({"dilation": 1.5}, "dilation"), ({"device": "gpu"}, "device")],
)
def test_bad_options_are_rejected(kwargs, message):
    joints = np.zeros((1, 1, NUM_JOINTS, 3))
    with pytest.raises(ValueError, match=message):
        overlap_counts(joints, joints, **kwargs)


def test_bad_radii_and_far_coordinates_are_rejected():
    joints = np.zeros((1, 1, NUM_JOINTS, 3))
    with pytest.raises(ValueError, match="radii must have shape"):
        CapsuleBody(joints, radii=np.ones(3))
    with pytest.raises(ValueError, match="units"):
        overlap_counts(joints + 1e7, joints + 1e7)


def test_mixed_body_models_are_rejected():
    vertices, faces = icosphere(0, 0.2)
    with pytest.raises(ValueError, match="same body model"):
        overlap_counts(np.zeros((1, 1, NUM_JOINTS, 3)), MeshBody(vertices[None, None], faces))


@pytest.mark.skipif(HAS_GPU, reason="a GPU is present")
def test_forcing_cuda_without_a_gpu_is_a_clear_error():
    joints = np.zeros((1, 1, NUM_JOINTS, 3))
    with pytest.raises(CudaUnavailableError, match="device='cpu'"):
        overlap_counts(joints, joints, device="cuda")
    assert overlap_counts(joints, joints, device="auto")[0, 0] > 0


# ---------------------------------------------------------------- meshes

CUBE_FACES = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1], [2, 3, 7], [2, 7, 6],
                       [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]], dtype=np.int32)


def cube(lo: float, size: float) -> np.ndarray:
    return np.array([[x, y, z] for x in (0, size) for y in (0, size) for z in (0, size)], dtype=np.float64) + lo


def test_cube_on_lattice_faces_holds_its_analytic_count():
    # The rays through the voxel centres of a face diagonal hit the shared edge of the face's
    # two triangles exactly: the tie rule must count them once.
    body = MeshBody(cube(0.1, 0.2)[None, None], CUBE_FACES)
    assert overlap_counts(body, body, voxel=0.02, device="cpu")[0, 0] == 1000
    shifted = MeshBody(cube(0.2, 0.2)[None, None], CUBE_FACES)
    assert overlap_counts(body, shifted, voxel=0.02, device="cpu")[0, 0] == 5 * 5 * 5
    assert overlap_counts(body, shifted, voxel=0.02, dilation=1, device="cpu")[0, 0] == (
        mesh_overlap_reference(body.vertices[0], CUBE_FACES, shifted.vertices[0], CUBE_FACES, 0.02, 1)[0]
    )


def moving_spheres(subdivisions: int, radius: float, frames: int, seed: int):
    vertices, faces = icosphere(subdivisions, radius)
    rng = np.random.default_rng(seed)
    a = vertices + rng.uniform(-0.05, 0.05, size=(frames, 1, 3))
    b = vertices + rng.uniform(-0.05, 0.05, size=(frames, 1, 3)) + [radius, 0.3 * radius, 0.0]
    return a, b, faces


@pytest.mark.parametrize("dilation", [0, 1])
def test_icosphere_overlap_matches_reference(dilation):
    a, b, faces = moving_spheres(1, 0.12, 3, seed=dilation)
    counts = overlap_counts(MeshBody(a[None], faces), MeshBody(b[None], faces), voxel=0.02, dilation=dilation,
                            device="cpu")
    np.testing.assert_array_equal(counts[0], mesh_overlap_reference(a, faces, b, faces, 0.02, dilation))
    assert (counts > 0).all()


def test_icosphere_volume_matches_its_polyhedron():
    vertices, faces = icosphere(3, 0.25)
    triangles = vertices[faces]
    volume = np.einsum("ij,ij->i", triangles[:, 0], np.cross(triangles[:, 1], triangles[:, 2])).sum() / 6.0
    body = MeshBody(vertices[None, None] + 0.013, faces)
    count = overlap_counts(body, body, voxel=0.01, device="cpu")[0, 0]
    assert abs(count * 0.01 ** 3 / volume - 1.0) < 0.01


def test_small_hole_barely_changes_the_count():
    """One missing triangle spoils the parity of the rays through it. Along a single axis that
    misplaces whole columns (15 to 84 voxels of this sphere, depending on the axis); with the
    three-axis majority vote only voxels whose rays cross the hole twice can flip."""
    a, b, faces = moving_spheres(2, 0.2, 2, seed=7)
    holed = np.delete(faces, 37, axis=0)
    closed = overlap_counts(MeshBody(a[None], faces), MeshBody(b[None], faces), device="cpu")
    with_hole = overlap_counts(MeshBody(a[None], holed), MeshBody(b[None], faces), device="cpu")
    assert np.abs(with_hole - closed).max() <= 2
    np.testing.assert_array_equal(with_hole[0], mesh_overlap_reference(a, holed, b, faces, 0.02, 0))


def test_mesh_region_too_large_is_a_clear_error():
    vertices, faces = icosphere(0, 1.0)
    body = MeshBody(vertices[None, None], faces)
    with pytest.raises(ValueError, match="larger voxel"):
        overlap_counts(body, body, voxel=0.0003, device="cpu")


def test_bad_faces_are_rejected():
    vertices, faces = icosphere(0, 0.2)
    with pytest.raises(ValueError, match="index vertices"):
        MeshBody(vertices[None, None], faces + 1)
    with pytest.raises(ValueError, match="integer"):
        MeshBody(vertices[None, None], faces.astype(float))


# ---------------------------------------------------------------- SMPL-X meshes

def write_synthetic_smplx(path: Path) -> None:
    """A model file with SMPL-X's real sizes and random content (the real one is licensed)."""
    rng = np.random.default_rng(0)
    vertices, joints = 10475, 55
    np.savez_compressed(
        path, v_template=rng.normal(size=(vertices, 3)).astype(np.float32) * 0.3,
        f=rng.integers(0, vertices, size=(20908, 3)),
        shapedirs=rng.normal(size=(vertices, 3, 20)).astype(np.float32) * 0.01,
        posedirs=np.zeros((vertices, 3, (joints - 1) * 9), dtype=np.float32),
        J_regressor=np.full((joints, vertices), 1.0 / vertices, dtype=np.float32),
        weights=np.full((vertices, joints), 1.0 / joints, dtype=np.float32),
        kintree_table=np.stack([np.r_[-1, np.zeros(joints - 1)], np.arange(joints)]).astype(np.int64),
        hands_componentsl=np.eye(45), hands_componentsr=np.eye(45), hands_meanl=np.zeros(45),
        hands_meanr=np.zeros(45), lmk_faces_idx=np.arange(51), lmk_bary_coords=np.full((51, 3), 1 / 3),
    )


def test_smplx_meshes_come_from_the_model_file(tmp_path):
    write_synthetic_smplx(tmp_path / "SMPLX_NEUTRAL.npz")
    rng = np.random.default_rng(1)
    params = {"global_orient": rng.normal(size=(2, 3, 3)) * 0.3, "body_pose": rng.normal(size=(2, 3, 63)) * 0.3,
              "transl": rng.normal(size=(2, 3, 3)), "betas": rng.normal(size=(2, 10))}
    params["global_orient"][1, 2] = params["global_orient"][0, 0]
    params["body_pose"][1, 2] = params["body_pose"][0, 0]
    params["betas"][1] = params["betas"][0]
    body = MeshBody.from_smplx(params, tmp_path)
    assert body.vertices.shape == (2, 3, 10475, 3) and body.faces.shape == (20908, 3)
    # Same pose and shape in frames (0, 0) and (1, 2): the meshes differ by the translation only.
    moved = body.vertices[1, 2] - body.vertices[0, 0]
    np.testing.assert_allclose(moved, np.broadcast_to(params["transl"][1, 2] - params["transl"][0, 0], moved.shape),
                               atol=1e-5)
    assert np.abs(body.vertices[0, 1] - body.vertices[0, 0]).max() > 0.01  # other frames are posed differently
    np.testing.assert_allclose(MeshBody.from_smplx(params, tmp_path, chunk=4).vertices, body.vertices, atol=1e-6)


def test_smplx_missing_model_file_names_it(tmp_path):
    params = {"global_orient": np.zeros((1, 1, 3)), "body_pose": np.zeros((1, 1, 63)), "transl": np.zeros((1, 1, 3))}
    with pytest.raises(FileNotFoundError, match="SMPLX_FEMALE.npz"):
        MeshBody.from_smplx(params, tmp_path, gender="female")


# ---------------------------------------------------------------- CUDA

@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="no CUDA GPU (cudaGetDeviceCount == 0)")
def test_cuda_path_equals_cpu_path():
    a, b = hug_joints(40, seed=9)
    for dilation in (0, 1):
        np.testing.assert_array_equal(overlap_counts(a, b, dilation=dilation, device="cuda"),
                                      overlap_counts(a, b, dilation=dilation, device="cpu"))
    va, vb, faces = moving_spheres(3, 0.2, 6, seed=2)
    for dilation in (0, 1):
        mesh = [MeshBody(v[None], faces) for v in (va, vb)]
        np.testing.assert_array_equal(overlap_counts(*mesh, dilation=dilation, device="cuda"),
                                      overlap_counts(*mesh, dilation=dilation, device="cpu"))


@pytest.mark.skipif(shutil.which("nvcc") is None and not os.path.exists("/usr/local/cuda/bin/nvcc"),
                    reason="nvcc not installed")
def test_cuda_source_compiles(tmp_path):
    nvcc = shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"
    result = subprocess.run(
        [nvcc, "-c", str(REPO / "csrc" / "voxel_cuda.cu"), "-o", str(tmp_path / "voxel_cuda.o"), "-std=c++17",
         "-Xcompiler", "-fPIC", "-gencode=arch=compute_90,code=sm_90", f"-I{REPO / 'csrc'}"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "voxel_cuda.o").stat().st_size > 0
