"""SMPL-X from generated joints, on a synthetic model file with the release's key names."""
import numpy as np
import pytest
import torch

from dhvae_sdk.body import SmplxModel, fit_smplx
from dhvae_sdk.body.export import fit_interaction, person_path
from dhvae_sdk.body.render import render_mesh_mp4
from dhvae_sdk.body.smplx_model import axis_angle_to_matrix
from dhvae_sdk.cli import main
from dhvae_sdk.generator import Interaction
from model_fixtures import save_micro_checkpoint
from tests.smplx_fixture import rest_joints, write_smplx_model

FRAMES = 12


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_smplx_model(tmp_path_factory.mktemp("smplx") / "SMPLX_NEUTRAL.npz").parent


@pytest.fixture(scope="module")
def model(model_dir):
    return SmplxModel.load(model_dir)


def known_motion(model, seed=0, frames=FRAMES, betas=None):
    """Joints [T, 22, 3] of a smoothly changing random pose, and that pose [T, 55, 3]."""
    rng = np.random.default_rng(seed)
    blend = np.linspace(0.0, 1.0, frames)[:, None, None]
    pose = np.zeros((frames, 55, 3))
    pose[:, :22] = rng.normal(0, 0.3, (1, 22, 3)) * (1 - blend) + rng.normal(0, 0.3, (1, 22, 3)) * blend
    transl = np.cumsum(rng.normal(0, 0.01, (frames, 3)), axis=0)
    betas = None if betas is None else torch.as_tensor(betas)
    with torch.no_grad():
        joints = model.joints(axis_angle_to_matrix(torch.as_tensor(pose))[:, :22], torch.as_tensor(transl), betas)
    return joints.numpy(), pose


def test_model_file_is_read_without_pickle_and_checked(model, model_dir, tmp_path):
    _, joints = model.shaped()
    np.testing.assert_allclose(joints.numpy(), rest_joints(), atol=1e-12)
    assert model.parents[:3] == (-1, 0, 0) and model.num_betas == 10
    with pytest.raises(FileNotFoundError, match="SMPLX_NEUTRAL.npz.*smpl-x.is.tue.mpg.de"):
        SmplxModel.load(tmp_path)
    pickled = tmp_path / "SMPLX_NEUTRAL.pkl"
    pickled.write_bytes(b"not read")
    with pytest.raises(ValueError, match="pickle release"):
        SmplxModel.load(pickled)
    broken = tmp_path / "broken.npz"
    np.savez(broken, v_template=np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"lacks the SMPL-X arrays \['f'"):
        SmplxModel.load(broken)


def test_joints_and_vertices_match_the_smplx_package(tmp_path):
    smplx = pytest.importorskip("smplx")
    path = write_smplx_model(tmp_path / "SMPLX_NEUTRAL.npz", full_size=True)
    ours = SmplxModel.load(path)
    reference = smplx.SMPLX(str(path), ext="npz", use_pca=False, flat_hand_mean=True, num_betas=10)
    rng = np.random.default_rng(3)
    pose = rng.normal(0, 0.4, (2, 55, 3))
    transl, betas = rng.normal(0, 0.5, (2, 3)), rng.normal(0, 1.0, (1, 10))
    as_float = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    with torch.no_grad():
        expected = reference(global_orient=as_float(pose[:, 0]), body_pose=as_float(pose[:, 1:22].reshape(2, -1)),
                             jaw_pose=as_float(pose[:, 22]), leye_pose=as_float(pose[:, 23]),
                             reye_pose=as_float(pose[:, 24]),
                             left_hand_pose=as_float(pose[:, 25:40].reshape(2, -1)),
                             right_hand_pose=as_float(pose[:, 40:].reshape(2, -1)), transl=as_float(transl),
                             betas=as_float(betas).expand(2, -1), expression=torch.zeros(2, 10))
        rotations = axis_angle_to_matrix(torch.as_tensor(pose))
        joints = ours.joints(rotations, torch.as_tensor(transl), torch.as_tensor(betas[0]))
        vertices = ours.vertices(rotations, torch.as_tensor(transl), torch.as_tensor(betas[0]))
    np.testing.assert_allclose(joints.numpy(), expected.joints[:, :55].numpy(), atol=1e-5)
    np.testing.assert_allclose(vertices.numpy(), expected.vertices.numpy(), atol=1e-5)


def test_fit_recovers_the_joints_of_a_known_pose_within_5_mm(model):
    joints, pose = known_motion(model)
    fit = fit_smplx(joints, model)
    assert fit.max_error_mm < 5.0 and fit.mean_error_mm < 2.0
    assert fit.body_pose.shape == (FRAMES, 21, 3) and fit.transl.shape == (FRAMES, 3)
    np.testing.assert_array_equal(fit.betas, np.zeros(10))
    with torch.no_grad():
        refitted = model.joints(fit.rotations()[:, :22], torch.as_tensor(fit.transl)).numpy()
    np.testing.assert_allclose(1000 * np.linalg.norm(refitted - joints, axis=-1), fit.joint_error_mm, atol=1e-6)
    # The pelvis and hip rotations are pinned down by the joints: they come back as posed.
    np.testing.assert_allclose(fit.global_orient, pose[:, 0], atol=0.02)


def test_given_betas_are_used_and_unobserved_rotations_stay_still(model):
    betas = np.linspace(-1.0, 1.0, 10)
    joints, _ = known_motion(model, seed=1, frames=6, betas=betas)
    assert fit_smplx(joints, model, betas=betas).max_error_mm < 5.0
    zero_betas = fit_smplx(joints, model)
    assert zero_betas.mean_error_mm > 1.0  # zero betas cannot reach the other body
    with pytest.raises(ValueError, match="betas must be 10 finite numbers"):
        fit_smplx(joints, model, betas=np.zeros(3))
    # The wrists' own rotations move none of the 22 joints: only the prior and smoothness decide them.
    assert np.abs(np.diff(zero_betas.body_pose[:, 19:21], axis=0)).max() < 1e-3


def test_bad_joints_are_named(model):
    with pytest.raises(ValueError, match=r"joints\[:, 0\] and joints\[:, 1\]"):
        fit_smplx(np.zeros((4, 2, 22, 3)), model)
    with pytest.raises(ValueError, match="NaN"):
        fit_smplx(np.full((4, 22, 3), np.nan), model)


def test_interaction_to_smplx_writes_the_blender_addon_npz_and_a_mesh_video(model, model_dir, tmp_path):
    frames = 6
    joints = np.stack([known_motion(model, seed, frames)[0] for seed in (4, 5)], axis=1)
    interaction = Interaction(joints=joints, features=np.zeros((frames, 2, 262)), latents=np.zeros((3, 4)),
                              text="two people wave", fps=30.0)
    video = tmp_path / "wave.mp4"
    fit = interaction.to_smplx(model_dir, tmp_path / "wave.smplx.npz", render=video)
    assert fit.mean_error_mm < 2.0
    for person, expected in zip("ab", fit.persons):
        with np.load(tmp_path / f"wave_{person}.smplx.npz", allow_pickle=False) as data:
            # What the add-on's "Add Animation" reads.
            assert str(data["gender"]) == "neutral" and float(data["mocap_frame_rate"]) == 30.0
            assert data["poses"].shape == (frames, 165) and data["trans"].shape == (frames, 3)
            np.testing.assert_allclose(data["poses"][:, 3:66], expected.body_pose.reshape(frames, -1))
            np.testing.assert_allclose(data["root_orient"], expected.global_orient)
            np.testing.assert_array_equal(data["poses"][:, 66:], 0.0)
    assert video.stat().st_size > 1000
    assert person_path("x/{person}.smplx.npz", "b").name == "b.smplx.npz"
    with pytest.raises(ValueError, match="end in .smplx.npz"):
        person_path("out.npz", "a")
    with pytest.raises(ValueError, match="mesh render is an .mp4"):
        render_mesh_mp4(fit, tmp_path / "wave.gif")


def test_cli_writes_smplx_files_and_needs_the_model(model_dir, tmp_path, capsys):
    checkpoint = save_micro_checkpoint(tmp_path / "micro.safetensors")
    out = tmp_path / "hug.smplx.npz"
    arguments = ["generate", "a hug", "--model", str(checkpoint), "-o", str(out), "--frames", "8", "--steps", "2"]
    assert main(arguments) == 1
    assert "--body-model" in capsys.readouterr().err
    assert main([*arguments, "--body-model", str(model_dir)]) == 0
    assert sorted(p.name for p in tmp_path.glob("hug*")) == ["hug.smplx.mp4", "hug_a.smplx.npz", "hug_b.smplx.npz"]
    assert "SMPL-X fit: mean joint error" in capsys.readouterr().err


def test_fit_interaction_checks_its_input(model_dir):
    with pytest.raises(ValueError, match=r"joints \[T, 2, 22, 3\]"):
        fit_interaction(np.zeros((4, 22, 3)), 30.0, model_dir)
