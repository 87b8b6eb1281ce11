"""BVH export (one person's joint positions -> rotations) and a small BVH reader.

Format written (chosen for Blender's importer, whose defaults are Y up, scale 1):
- metres, Y up, so the skeleton imports at its real size with the default scale 1.0;
- ROOT ``pelvis`` with OFFSET 0 0 0 and channels ``Xposition Yposition Zposition Zrotation
  Xrotation Yrotation``; the position channels are the pelvis world position, so the two
  people of an interaction, exported to two files, land in their shared world frame;
- every other joint: OFFSET = rest direction (``skeleton.REST_DIRECTIONS``) times the
  motion's own bone length, channels ``Zrotation Xrotation Yrotation`` in degrees, meaning
  the local rotation Rz @ Rx @ Ry;
- the leaf joints (feet, head, wrists) rotate with their parent and end in an End Site
  that continues their bone by half its length, so Blender draws a bone for them too.

The reader follows Blender's reading of position channels: they replace the OFFSET.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from dhvae_sdk.atomic_file import atomic_output
from dhvae_sdk.motion.checks import joint_array, positive_fps
from dhvae_sdk.motion.skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS, REST_DIRECTIONS, bone_lengths_of

ROTATION_ORDER = "ZXY"
END_SITE_FRACTION = 0.5
CHILDREN = tuple(tuple(c for c in range(NUM_JOINTS) if PARENTS[c] == j) for j in range(NUM_JOINTS))
_AXES = {"X": 0, "Y": 1, "Z": 2}


class BvhMotion(NamedTuple):
    joints: np.ndarray  # [T, J, 3] world positions of the ROOT/JOINT entries, in file order
    names: tuple[str, ...]
    parents: tuple[int, ...]  # index into ``names``; -1 for the root
    fps: float


def global_rotations(joints: np.ndarray) -> np.ndarray:
    """World rotations [T, 22, 3, 3] that turn each joint's rest child directions onto the
    posed ones (inverse kinematics from positions [T, 22, 3]).

    Several children (pelvis, spine3): the best-fitting rotation (Kabsch). One child: the
    parent's rotation followed by the smallest rotation aligning the bone, so twist about a
    bone is inherited from the parent instead of being invented. No child: the parent's.
    """
    frames = len(joints)
    result = np.empty((frames, NUM_JOINTS, 3, 3))
    for j in range(NUM_JOINTS):  # parents precede children in the joint order
        base = np.broadcast_to(np.eye(3), (frames, 3, 3)) if PARENTS[j] < 0 else result[:, PARENTS[j]]
        children = CHILDREN[j]
        if not children:
            result[:, j] = base
            continue
        posed = joints[:, children] - joints[:, [j]]
        posed = posed / np.linalg.norm(posed, axis=-1, keepdims=True)
        if len(children) == 1:
            turned = np.einsum("tij,j->ti", base, REST_DIRECTIONS[children[0]])
            result[:, j] = _aligning_rotation(turned, posed[:, 0]) @ base
        else:
            result[:, j] = _best_fit_rotation(REST_DIRECTIONS[list(children)], posed)
    return result


def save_bvh(
    joints: np.ndarray,
    path: str | os.PathLike,
    fps: float = 30.0,
    names: Sequence[str] = JOINT_NAMES,
) -> Path:
    """Write one person's motion [T, 22, 3] (Y up, metres) as a BVH file (see module doc)."""
    joints = joint_array(joints, persons=None)
    names = _check_names(names)
    fps = positive_fps(fps)
    _check_bones(joints)
    lengths = bone_lengths_of(joints)

    world = global_rotations(joints)
    parents = np.array(PARENTS[1:])
    local = np.concatenate([world[:, :1], np.swapaxes(world[:, parents], -1, -2) @ world[:, 1:]], axis=1)
    order = _depth_first_order()
    with warnings.catch_warnings():
        # At X = +-90 degrees scipy warns of gimbal lock; the angles it returns still give the
        # exact rotation, which is all the file needs.
        warnings.filterwarnings("ignore", message="Gimbal lock detected")
        euler = Rotation.from_matrix(local[:, order].reshape(-1, 3, 3)).as_euler(ROTATION_ORDER, degrees=True)
    channels = np.concatenate([joints[:, 0], euler.reshape(len(joints), -1)], axis=1)

    text = io.StringIO()
    text.write("HIERARCHY\n")
    _write_joint(text, 0, 0, names, lengths)
    text.write(f"MOTION\nFrames: {len(joints)}\nFrame Time: {1.0 / fps:.17g}\n")
    np.savetxt(text, channels, fmt="%.6f")
    path = Path(path)
    with atomic_output(path) as temp:
        temp.write_text(text.getvalue())
    return path


def load_bvh(path: str | os.PathLike) -> BvhMotion:
    """Read a BVH file and compute the world positions of its joints (End Sites left out)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"BVH file {path} does not exist")
    text = path.read_text()
    head, separator, motion = text.partition("MOTION")
    if not separator:
        raise ValueError(f"{path}: no MOTION section; not a complete BVH file")
    hierarchy = _Hierarchy(head.split(), path)
    tokens = motion.split()
    if len(tokens) < 5 or tokens[0] != "Frames:" or tokens[2:4] != ["Frame", "Time:"]:
        raise ValueError(f"{path}: MOTION must be followed by 'Frames: N' and 'Frame Time: SECONDS'")
    try:
        frames, frame_time = int(tokens[1]), float(tokens[4])
        values = np.array(tokens[5:], dtype=np.float64)
    except ValueError as error:
        raise ValueError(f"{path}: non-numeric value in the MOTION section ({error})") from None
    if frames < 0 or not frame_time > 0:
        raise ValueError(f"{path}: Frames must be >= 0 and Frame Time > 0, got {frames} and {frame_time}")
    width = sum(len(c) for c in hierarchy.channels)
    if values.size != frames * width:
        raise ValueError(f"{path}: expected {frames} frames of {width} channel values "
                         f"({frames * width} numbers), found {values.size}")
    joints = hierarchy.forward_kinematics(values.reshape(frames, width))
    return BvhMotion(joints, tuple(hierarchy.names), tuple(hierarchy.parents), 1.0 / frame_time)


def _aligning_rotation(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Smallest rotations [T, 3, 3] turning unit vectors ``source`` onto ``target`` [T, 3]."""
    axis = np.cross(source, target)
    cos = np.sum(source * target, axis=-1)
    opposite = cos < -1.0 + 1e-9
    # Opposite vectors: half a turn about any perpendicular; take one through the least
    # aligned coordinate axis so it is well defined.
    helper = np.eye(3)[np.argmin(np.abs(source), axis=-1)]
    perpendicular = np.cross(source, helper)
    perpendicular /= np.linalg.norm(perpendicular, axis=-1, keepdims=True)
    skew = _skew(axis)
    scale = 1.0 / np.where(opposite, 1.0, 1.0 + cos)
    rotation = np.eye(3) + skew + (skew @ skew) * scale[:, None, None]
    half_turn = 2.0 * np.einsum("ti,tj->tij", perpendicular, perpendicular) - np.eye(3)
    return np.where(opposite[:, None, None], half_turn, rotation)


def _best_fit_rotation(rest: np.ndarray, posed: np.ndarray) -> np.ndarray:
    """Rotations [T, 3, 3] best mapping rest directions [K, 3] onto posed ones [T, K, 3] (Kabsch)."""
    covariance = np.einsum("ki,tkj->tij", rest, posed)
    u, _, vt = np.linalg.svd(covariance)
    sign = np.sign(np.linalg.det(np.swapaxes(vt, -1, -2) @ np.swapaxes(u, -1, -2)))
    fix = np.broadcast_to(np.eye(3), covariance.shape).copy()
    fix[:, 2, 2] = sign
    return np.swapaxes(vt, -1, -2) @ fix @ np.swapaxes(u, -1, -2)


def _skew(vector: np.ndarray) -> np.ndarray:
    x, y, z = vector[..., 0], vector[..., 1], vector[..., 2]
    zero = np.zeros_like(x)
    return np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1).reshape(vector.shape[:-1] + (3, 3))


def _check_bones(joints: np.ndarray) -> None:
    vectors = joints[:, 1:] - joints[:, list(PARENTS[1:])]
    short = np.linalg.norm(vectors, axis=-1) < 1e-6
    if short.any():
        frame, bone = (int(i) for i in np.argwhere(short)[0])
        raise ValueError(f"joint {JOINT_NAMES[bone + 1]} coincides with its parent at frame {frame}: "
                         "a zero-length bone has no direction to export")


def _check_names(names: Sequence[str]) -> tuple[str, ...]:
    names = tuple(names)
    valid = all(isinstance(n, str) and n and not any(c.isspace() or c in "{}" for c in n) for n in names)
    if len(names) != NUM_JOINTS or not valid or len(set(names)) != NUM_JOINTS:
        raise ValueError(f"names must be {NUM_JOINTS} distinct non-empty strings without spaces or braces, got {names!r}")
    return names


def _depth_first_order(joint: int = 0) -> list[int]:
    """Joint indices in the order the HIERARCHY lists them (and their MOTION columns)."""
    return [joint] + [j for child in CHILDREN[joint] for j in _depth_first_order(child)]


def _write_joint(text: io.StringIO, joint: int, depth: int, names: tuple[str, ...], lengths: np.ndarray) -> None:
    indent = "\t" * depth
    offset = REST_DIRECTIONS[joint] * lengths[joint]
    rotations = " ".join(f"{axis}rotation" for axis in ROTATION_ORDER)
    if PARENTS[joint] < 0:
        text.write(f"ROOT {names[joint]}\n{indent}{{\n")
        text.write(f"{indent}\tOFFSET 0.000000 0.000000 0.000000\n")
        text.write(f"{indent}\tCHANNELS 6 Xposition Yposition Zposition {rotations}\n")
    else:
        text.write(f"{indent}JOINT {names[joint]}\n{indent}{{\n")
        text.write(f"{indent}\tOFFSET {offset[0]:.6f} {offset[1]:.6f} {offset[2]:.6f}\n")
        text.write(f"{indent}\tCHANNELS 3 {rotations}\n")
    for child in CHILDREN[joint]:
        _write_joint(text, child, depth + 1, names, lengths)
    if not CHILDREN[joint]:
        tip = offset * END_SITE_FRACTION
        text.write(f"{indent}\tEnd Site\n{indent}\t{{\n")
        text.write(f"{indent}\t\tOFFSET {tip[0]:.6f} {tip[1]:.6f} {tip[2]:.6f}\n{indent}\t}}\n")
    text.write(f"{indent}}}\n")


class _Hierarchy:
    """The joints of a BVH HIERARCHY section, parsed from its whitespace-separated tokens."""

    def __init__(self, tokens: list[str], path: Path):
        self.path = path
        self.names: list[str] = []
        self.parents: list[int] = []
        self.offsets: list[np.ndarray] = []
        self.channels: list[list[str]] = []
        self._tokens = tokens
        self._position = 0
        if self._next() != "HIERARCHY" or self._next() != "ROOT":
            raise ValueError(f"{path}: a BVH file starts with 'HIERARCHY' then 'ROOT'")
        self._joint(parent=-1)
        if self._position != len(tokens):
            raise ValueError(f"{path}: unexpected '{tokens[self._position]}' after the root joint's closing brace")

    def forward_kinematics(self, values: np.ndarray) -> np.ndarray:
        frames = len(values)
        positions = np.empty((frames, len(self.names), 3))
        rotations = np.empty((frames, len(self.names), 3, 3))
        column = 0
        for j, (parent, offset, channels) in enumerate(zip(self.parents, self.offsets, self.channels)):
            translation = np.tile(offset, (frames, 1))
            rotation = np.broadcast_to(np.eye(3), (frames, 3, 3))
            for channel in channels:
                value = values[:, column]
                column += 1
                axis = _AXES[channel[0].upper()]
                if channel[1:].lower() == "position":
                    translation[:, axis] = value
                else:
                    rotation = rotation @ _axis_rotation(axis, np.radians(value))
            if parent < 0:
                positions[:, j], rotations[:, j] = translation, rotation
            else:
                positions[:, j] = positions[:, parent] + np.einsum("tij,tj->ti", rotations[:, parent], translation)
                rotations[:, j] = rotations[:, parent] @ rotation
        return positions

    def _joint(self, parent: int) -> None:
        index = len(self.names)
        self.names.append(self._next())
        self.parents.append(parent)
        self._expect("{")
        self._expect("OFFSET")
        self.offsets.append(self._numbers(3))
        self._expect("CHANNELS")
        count = self._next()
        if not count.isdigit():
            raise ValueError(f"{self.path}: joint {self.names[index]}: CHANNELS must be followed by a count, got '{count}'")
        channels = [self._next() for _ in range(int(count))]
        for channel in channels:
            if channel[:1].upper() not in _AXES or channel[1:].lower() not in ("position", "rotation"):
                raise ValueError(f"{self.path}: joint {self.names[index]}: unknown channel '{channel}'")
        self.channels.append(channels)
        while True:
            token = self._next()
            if token == "}":
                return
            if token == "JOINT":
                self._joint(parent=index)
            elif token == "End":
                self._expect("Site")
                self._expect("{")
                self._expect("OFFSET")
                self._numbers(3)
                self._expect("}")
            else:
                raise ValueError(f"{self.path}: joint {self.names[index]}: expected JOINT, End Site or '}}', got '{token}'")

    def _next(self) -> str:
        if self._position >= len(self._tokens):
            raise ValueError(f"{self.path}: HIERARCHY ends early (unbalanced braces or a truncated file)")
        self._position += 1
        return self._tokens[self._position - 1]

    def _expect(self, word: str) -> None:
        token = self._next()
        if token != word:
            raise ValueError(f"{self.path}: expected '{word}' in the HIERARCHY, got '{token}'")

    def _numbers(self, count: int) -> np.ndarray:
        words = [self._next() for _ in range(count)]
        try:
            return np.array(words, dtype=np.float64)
        except ValueError:
            raise ValueError(f"{self.path}: expected {count} numbers in the HIERARCHY, got {words}") from None


def _axis_rotation(axis: int, angle: np.ndarray) -> np.ndarray:
    """Rotations [T, 3, 3] by ``angle`` [T] radians about coordinate axis 0, 1 or 2."""
    cos, sin = np.cos(angle), np.sin(angle)
    first, second = (axis + 1) % 3, (axis + 2) % 3
    matrix = np.zeros(angle.shape + (3, 3))
    matrix[:, axis, axis] = 1.0
    matrix[:, first, first] = cos
    matrix[:, second, second] = cos
    matrix[:, second, first] = sin
    matrix[:, first, second] = -sin
    return matrix
