"""Motions built by forward kinematics, and tiny InterHuman folders made of them (test helpers)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dhvae_sdk.motion.interhuman import raw_from_body
from dhvae_sdk.motion.rotation import axis_angle_to_matrix, matrix_to_6d, yaw_matrix
from dhvae_sdk.motion.skeleton import NUM_JOINTS, forward_kinematics


def fk_person(frames: int, first_yaw: float, start_xz, seed: int, speed_xz=(0.3, 0.1), turn_rate: float = 0.4):
    """A person whose joints wiggle smoothly while the body walks and turns.

    Returns (positions [T, 22, 3] Y up with the lowest joint at y = 0, 6D local rotations
    [T, 21, 6], local rotation matrices [T, 21, 3, 3], root rotations [T, 3, 3]). The root
    rotation at frame 0 is the pure yaw ``first_yaw``.
    """
    rng = np.random.default_rng(seed)
    seconds = np.arange(frames)[:, None, None] / 30.0
    amplitude = rng.uniform(0.05, 0.4, size=(NUM_JOINTS - 1, 3))
    frequency = rng.uniform(0.3, 1.5, size=(NUM_JOINTS - 1, 3))
    phase = rng.uniform(0.0, 2.0 * np.pi, size=(NUM_JOINTS - 1, 3))
    local = axis_angle_to_matrix(amplitude * np.sin(2.0 * np.pi * frequency * seconds + phase))
    time = seconds[:, 0]
    sway = np.concatenate([0.1 * np.sin(3.0 * time), np.zeros((frames, 1)), 0.08 * np.sin(2.0 * time)], axis=1)
    root = yaw_matrix(first_yaw + turn_rate * seconds[:, 0, 0]) @ axis_angle_to_matrix(sway)
    root_position = np.zeros((frames, 3))
    root_position[:, 0] = start_xz[0] + speed_xz[0] * seconds[:, 0, 0]
    root_position[:, 1] = 1.0
    root_position[:, 2] = start_xz[1] + speed_xz[1] * seconds[:, 0, 0]
    positions = forward_kinematics(root, local, root_position)
    positions[..., 1] -= positions[..., 1].min()
    return positions, matrix_to_6d(local), local, root


def fk_pair_raw(frames: int, seed: int):
    """Two raw [T, 492] motions (person 1 and 2) and their Y-up positions [T, 2, 22, 3]."""
    rng = np.random.default_rng(seed)
    first = fk_person(frames, rng.uniform(-np.pi, np.pi), rng.uniform(-2, 2, size=2), seed + 1)
    second = fk_person(frames, rng.uniform(-np.pi, np.pi), rng.uniform(-2, 2, size=2), seed + 2)
    raws = [raw_from_body(person[0], person[1]) for person in (first, second)]
    return raws[0], raws[1], np.stack([first[0], second[0]], axis=1)


def write_interhuman(root: Path, lengths: dict[str, int], splits: dict[str, list[str]], split_folder: str = "",
                     ignore: tuple[str, ...] = ()) -> Path:
    """An InterHuman-layout folder with one FK-built pair per name (frame counts from ``lengths``)."""
    for person in ("person1", "person2"):
        (root / "motions_processed" / person).mkdir(parents=True, exist_ok=True)
    (root / "annots").mkdir(parents=True, exist_ok=True)
    for index, (name, frames) in enumerate(lengths.items()):
        raw1, raw2, _ = fk_pair_raw(frames, seed=100 + index)
        np.save(root / "motions_processed" / "person1" / f"{name}.npy", raw1.astype(np.float32))
        np.save(root / "motions_processed" / "person2" / f"{name}.npy", raw2.astype(np.float32))
        (root / "annots" / f"{name}.txt").write_text(
            f"one person waves with the left hand at the other {name}.\n"
            f"Two people greet, the right one turns clockwise.\n\n"
        )
    (root / split_folder).mkdir(parents=True, exist_ok=True)
    for split, names in splits.items():
        (root / split_folder / f"{split}.txt").write_text("".join(f"{name}\n" for name in names))
    if ignore:
        (root / split_folder / "ignore_list.txt").write_text("".join(f"{name}\n" for name in ignore))
    return root
