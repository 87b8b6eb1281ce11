"""The per-type geometry check of benchmarks/geometry.py on hand-built skeletons, and its command."""
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks.geometry import (
    HAND_TYPES, closest_hands, closest_joints, hand_distances, main, measure, passes, render_closest_hands, summarize,
)
from dhvae_sdk.checkpoint import load_checkpoint, save_checkpoint
from dhvae_sdk.models import build_model
from dhvae_sdk.motion import features_to_joints
from dhvae_sdk.motion.skeleton import JOINT_INDEX, NUM_JOINTS, forward_kinematics
from dhvae_sdk.visualize import render_frame
from model_fixtures import micro_config
from training.data import InterHumanDataset
from training.data.synthetic import generate_dataset


def facing_pair(gap: float, frames: int = 4) -> np.ndarray:
    """Two rest skeletons, B at ``gap`` metres along x from A: [T, 2, 22, 3]."""
    rest = forward_kinematics(np.eye(3), np.tile(np.eye(3), (NUM_JOINTS - 1, 1, 1)), np.zeros(3))
    pair = np.stack([rest, rest + np.array([gap, 0.0, 0.0])])
    return np.repeat(pair[None], frames, axis=0)


def reaching_pair() -> np.ndarray:
    """``facing_pair(2.0)`` in which, in frame 2, A's right forearm points at B's right hand so
    that A's hand axis ends 5 cm from B's."""
    joints = facing_pair(2.0)
    wrist, elbow = JOINT_INDEX["r_wrist"], JOINT_INDEX["r_elbow"]
    b_hand_end = joints[2, 1, wrist] + 0.32 * (joints[2, 1, wrist] - joints[2, 1, elbow])
    direction = np.array([1.0, 0.0, 0.0])
    joints[2, 0, wrist] = b_hand_end - 0.05 * direction - 0.32 * 0.25 * direction
    joints[2, 0, elbow] = joints[2, 0, wrist] - 0.25 * direction
    return joints


def test_hands_meet_only_when_the_hand_axes_come_within_reach():
    joints = reaching_pair()
    assert closest_hands(joints) <= 0.05 + 1e-6
    assert passes("handshake", joints)
    assert not passes("handshake", facing_pair(2.0))
    assert passes("hug", joints) is None  # no check for this type


def test_the_drawn_frame_is_the_one_where_the_hands_come_closest(tmp_path):
    joints = reaching_pair()
    distances = hand_distances(joints)
    assert distances.argmin() == 2 and distances[2] == pytest.approx(0.05, abs=1e-6) and distances[0] > 0.5
    drawn = render_closest_hands(joints, "two people shake hands", tmp_path / "frames" / "handshake.png")
    expected = render_frame(joints, tmp_path / "frame2.png", frame=2,
                            title="two people shake hands (frame 2: hands 0.05 m apart)")
    assert np.array_equal(np.asarray(Image.open(drawn)), np.asarray(Image.open(expected)))


def test_apart_types_fail_when_any_joint_comes_closer_than_the_clearance():
    assert passes("wave", facing_pair(1.0))
    close = facing_pair(1.0)
    close[1, 1] = close[1, 0] + np.array([0.2, 0.0, 0.0])  # one frame, B 0.2 m from A
    assert closest_joints(close) < 0.3
    assert not passes("wave", close)


def test_summary_rates_count_checked_types_only():
    samples = [measure("a", "wave", "t", facing_pair(1.0)), measure("b", "hug", "t", facing_pair(1.0)),
               measure("c", "handshake", "t", facing_pair(1.0))]
    summary = summarize(samples)
    assert summary["per_type"]["wave"]["pass_rate"] == 1.0
    assert summary["per_type"]["hug"]["pass_rate"] is None
    assert summary["per_type"]["handshake"]["pass_rate"] == 0.0
    assert summary["overall_pass_rate"] == 0.5


def test_the_command_scores_generations_at_the_given_guidance(tmp_path):
    data = tmp_path / "procedural"
    generate_dataset(data, 20, seed=0, workers=1)
    config = micro_config()
    model = build_model(replace(config, vae=replace(config.vae, max_frames=300)))  # procedural clips: 4-10 s
    checkpoint = tmp_path / "model.safetensors"
    save_checkpoint(checkpoint, model, feature_mean=torch.zeros(262), feature_std=torch.ones(262),
                    latent_scales=torch.ones(3), stage="denoiser")
    results = {guidance: main(["--model", str(checkpoint), "--data-root", str(data), "--limit", "2",
                               "--guidance", str(guidance), "--json", str(tmp_path / f"{guidance}.json"),
                               "--frames-dir", str(tmp_path / f"frames-{guidance}")])
               for guidance in (1.0, 6.0)}
    weak, strong = ([sample["closest_hands_m"] for sample in results[guidance]["generated"]["samples"]]
                    for guidance in (1.0, 6.0))
    assert len(weak) == 2 and weak != strong  # same seeds, other guidance: other motions
    assert results[1.0]["ground truth"] == results[6.0]["ground truth"]
    assert results[1.0]["reconstructed"] == results[6.0]["reconstructed"]  # guidance plays no part in it
    assert json.loads((tmp_path / "6.0.json").read_text()) == results[6.0]
    hand_types = {sample["interaction"] for sample in results[6.0]["generated"]["samples"]} & set(HAND_TYPES)
    assert hand_types and sorted(path.name for path in (tmp_path / "frames-6.0").iterdir()) \
        == sorted(f"{interaction}.png" for interaction in hand_types)


def test_reconstructions_are_the_vae_posterior_means_decoded(tmp_path):
    data = tmp_path / "procedural"
    generate_dataset(data, 20, seed=0, workers=1)
    config = micro_config()
    model = build_model(replace(config, vae=replace(config.vae, max_frames=300)))
    mean, std = torch.linspace(-0.5, 0.5, 262), torch.linspace(0.5, 2.0, 262)
    checkpoint = tmp_path / "model.safetensors"
    save_checkpoint(checkpoint, model, feature_mean=mean, feature_std=std, latent_scales=torch.ones(3), stage="denoiser")
    result = main(["--model", str(checkpoint), "--data-root", str(data), "--limit", "2"])
    dataset = InterHumanDataset(data, split="test", normalize=False, mirror=False, swap_persons=False, seed=0)
    vae = load_checkpoint(checkpoint).model.vae
    for index, sample in enumerate(result["reconstructed"]["samples"]):
        item = dataset[index]
        normalized = (item["motion"][:int(item["length"])] - mean) / std
        mask = torch.ones(1, len(normalized), dtype=torch.bool)
        with torch.no_grad():
            decoded = torch.stack(vae.decode(vae.encode(normalized[None, :, 0], normalized[None, :, 1], mask).mean,
                                             mask), dim=2)[0]
        joints = features_to_joints((decoded * std + mean).numpy())
        assert sample["name"] == item["name"]
        assert sample["closest_hands_m"] == pytest.approx(closest_hands(joints), abs=1e-4)
        assert sample["closest_joints_m"] == pytest.approx(closest_joints(joints), abs=1e-4)
        truth = result["ground truth"]["samples"][index]
        assert sample["closest_joints_m"] != pytest.approx(truth["closest_joints_m"], abs=1e-3)  # an untrained VAE
