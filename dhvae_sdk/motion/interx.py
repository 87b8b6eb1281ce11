"""InterX: SMPL-X parameters per person and the 336-number representation of DHVAE / InterMask.

On disk (InterX's release): ``motions/NAME/P1.npz`` and ``P2.npz`` with SMPL-X parameters
at 120 fps, keys ``root_orient`` [T, 3], ``pose_body`` [T, 63], ``pose_lhand`` and
``pose_rhand`` [T, 45], ``trans`` [T, 3] (axis-angle, Y up, metres).

Parameters (InterX's own preprocessing): every 4th frame (30 fps), one [T, 56, 3] array
per person: rows 0..54 the SMPL-X full pose in axis-angle (root, 21 body joints, jaw and
both eyes set to zero, 15 left-hand and 15 right-hand joints), row 55 the translation.
Each person is lifted so its lowest joint touches y = 0 (this needs the body model), then
both translations are shifted by person 1's first translation.

Features per person and frame (InterMask's "smpl" representation): the 55 rotations in 6D,
then the translation and its velocity t[i+1] - t[i] (zero at the last frame): 55*6 + 6 = 336.
The 6D layout here is InterMask's (the first two matrix *rows*), not the column layout of
``rotation.matrix_to_6d`` used for InterHuman: InterMask's statistics are in this layout.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from .arraylike import check_last_dim
from .rotation import axis_angle_to_matrix, matrix_to_axis_angle, sixd_to_matrix
from .skeleton import NUM_JOINTS

SOURCE_FPS = 120
FPS = 30
DOWNSAMPLE = SOURCE_FPS // FPS
NUM_ROTATIONS = 55
PARAM_ROWS = NUM_ROTATIONS + 1
TRANSLATION_ROW = NUM_ROTATIONS

FEATURE_DIM = 336
ROTATIONS = slice(0, NUM_ROTATIONS * 6)
TRANSLATION = slice(330, 333)
VELOCITY = slice(333, 336)

PERSON_FILES = ("P1.npz", "P2.npz")
BODY_MODEL_FILE = "SMPLX_NEUTRAL.npz"
# npz key -> the parameter rows it fills (jaw and eyes, rows 22..24, stay zero). The
# translation comes first because its length sets the frame count the others must match.
_NPZ_ROWS = {
    "trans": slice(TRANSLATION_ROW, PARAM_ROWS),
    "root_orient": slice(0, 1),
    "pose_body": slice(1, 22),
    "pose_lhand": slice(25, 40),
    "pose_rhand": slice(40, 55),
}
_SMPLX_FRAMES_PER_CALL = 128


def read_person(path) -> np.ndarray:
    """SMPL-X parameters [T, 56, 3] at 30 fps from one InterX person file (120 fps)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"InterX person file {path} does not exist: every sample needs {' and '.join(PERSON_FILES)}"
        )
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is not a readable .npz file of SMPL-X parameters: {error}") from error
    with archive:
        missing = [key for key in _NPZ_ROWS if key not in archive.files]
        if missing:
            raise ValueError(f"{path} lacks the SMPL-X keys {missing}; it has {sorted(archive.files)}")
        arrays = {key: np.asarray(archive[key], dtype=np.float64) for key in _NPZ_ROWS}
    frames = len(arrays["trans"]) if arrays["trans"].ndim else 0
    for key, rows in _NPZ_ROWS.items():
        value, width = arrays[key], (rows.stop - rows.start) * 3
        if value.ndim == 0 or len(value) != frames or np.prod(value.shape[1:]) != width:
            raise ValueError(f"{path}: '{key}' has shape {value.shape}, expected (frames, {width}) with the "
                             f"frame count of 'trans'")
    params = np.zeros((frames, PARAM_ROWS, 3))
    for key, rows in _NPZ_ROWS.items():
        params[:, rows] = arrays[key].reshape(frames, -1, 3)
    if not np.all(np.isfinite(params)):
        raise ValueError(f"{path} contains NaN or infinite values")
    return params[::DOWNSAMPLE]


def read_pair(sample_dir, model_dir=None) -> np.ndarray:
    """Both persons of an InterX sample folder: parameters [T, 2, 56, 3] at 30 fps.

    With ``model_dir`` (SMPL-X files) each person is first lifted onto the floor as InterX
    does; without it that step is skipped, which only changes person 2's height by the
    difference of the two people's lowest joints (person 1's lift cancels in the shift).
    """
    sample_dir = Path(sample_dir)
    persons = [read_person(sample_dir / name) for name in PERSON_FILES]
    if len(persons[0]) != len(persons[1]):
        raise ValueError(
            f"{sample_dir}: {PERSON_FILES[0]} has {len(persons[0])} frames but {PERSON_FILES[1]} has "
            f"{len(persons[1])}; both persons must have the same frame count"
        )
    if model_dir is not None:
        for params in persons:
            joints = joints_from_smplx(params, model_dir, num_joints=NUM_ROTATIONS)
            params[:, TRANSLATION_ROW, 1] -= joints[..., 1].min()
    base = persons[0][0, TRANSLATION_ROW].copy()
    for params in persons:
        params[:, TRANSLATION_ROW] -= base
    return np.stack(persons, axis=1)


def matrix_to_6d_rows(matrix: np.ndarray) -> np.ndarray:
    """[..., 3, 3] -> [..., 6]: the first two rows (InterMask's and pytorch3d's layout)."""
    matrix = np.asarray(matrix)
    return matrix[..., :2, :].reshape(matrix.shape[:-2] + (6,))


def rows_6d_to_matrix(sixd: np.ndarray) -> np.ndarray:
    """[..., 6] in the row layout -> [..., 3, 3] (Gram-Schmidt on the two rows)."""
    rows = np.asarray(sixd, dtype=np.float64).reshape(np.shape(sixd)[:-1] + (2, 3))
    as_columns = np.swapaxes(rows, -1, -2).reshape(rows.shape[:-2] + (6,))
    return np.swapaxes(sixd_to_matrix(as_columns), -1, -2)


def person_features(params: np.ndarray) -> np.ndarray:
    """Features [T, 336] of one person's parameters [T, 56, 3]."""
    params = _check_params(params)
    frames = len(params)
    rotations = matrix_to_6d_rows(axis_angle_to_matrix(params[:, :NUM_ROTATIONS]))
    translation = params[:, TRANSLATION_ROW]
    velocity = np.zeros_like(translation)
    velocity[:-1] = translation[1:] - translation[:-1]
    return np.concatenate([rotations.reshape(frames, -1), translation, velocity], axis=1)


def interaction_features(pair: np.ndarray) -> np.ndarray:
    """Features [T, 2, 336] of a pair's parameters [T, 2, 56, 3]."""
    pair = np.asarray(pair, dtype=np.float64)
    if pair.ndim != 4 or pair.shape[1] != 2:
        raise ValueError(f"a pair's parameters are [T, 2, {PARAM_ROWS}, 3], got {pair.shape}")
    return np.stack([person_features(pair[:, 0]), person_features(pair[:, 1])], axis=1)


def params_from_features(features: np.ndarray) -> np.ndarray:
    """Parameters [..., 56, 3] of features [..., 336] (raw units; the velocity is not needed)."""
    features = np.asarray(features, dtype=np.float64)
    check_last_dim(features, FEATURE_DIM, "InterX features")
    sixd = features[..., ROTATIONS].reshape(features.shape[:-1] + (NUM_ROTATIONS, 6))
    rotations = matrix_to_axis_angle(rows_6d_to_matrix(sixd))
    return np.concatenate([rotations, features[..., None, TRANSLATION]], axis=-2)


def find_body_model(model_dir) -> Path:
    """The neutral SMPL-X file: ``model_dir`` itself, ``model_dir/smplx/`` or ``model_dir/``."""
    model_dir = Path(model_dir)
    if model_dir.is_file():
        return model_dir
    candidates = [model_dir / "smplx" / BODY_MODEL_FILE, model_dir / BODY_MODEL_FILE]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"SMPL-X body model not found: looked for {' and '.join(map(str, candidates))}. "
        f"Download SMPL-X (https://smpl-x.is.tue.mpg.de) and put {BODY_MODEL_FILE} in one of them."
    )


@functools.lru_cache(maxsize=2)
def _body_model(path: str):
    import smplx

    # No PCA and no mean hand pose: InterX stores full hand poses and adds no mean.
    return smplx.create(path, model_type="smplx", gender="neutral", use_pca=False, flat_hand_mean=True).eval()


def joints_from_smplx(params: np.ndarray, model_dir, num_joints: int = NUM_JOINTS) -> np.ndarray:
    """World joint positions [T, num_joints, 3] of parameters [T, 56, 3] (neutral shape).

    The first 22 SMPL-X joints are the body joints in SMPL order (as in the InterHuman
    skeleton); up to 55 give jaw, eyes and fingers too.
    """
    import torch  # the SMPL-X body model is a torch module; the features above need only numpy

    params = _check_params(params)
    if not 1 <= num_joints <= NUM_ROTATIONS:
        raise ValueError(f"num_joints must be in 1..{NUM_ROTATIONS}, got {num_joints}")
    model = _body_model(str(find_body_model(model_dir)))
    joints = []
    with torch.no_grad():
        for start in range(0, len(params), _SMPLX_FRAMES_PER_CALL):
            chunk = torch.as_tensor(params[start : start + _SMPLX_FRAMES_PER_CALL], dtype=torch.float32)
            frames = len(chunk)
            output = model(
                global_orient=chunk[:, 0],
                body_pose=chunk[:, 1:22].reshape(frames, -1),
                jaw_pose=chunk[:, 22],
                leye_pose=chunk[:, 23],
                reye_pose=chunk[:, 24],
                left_hand_pose=chunk[:, 25:40].reshape(frames, -1),
                right_hand_pose=chunk[:, 40:55].reshape(frames, -1),
                transl=chunk[:, TRANSLATION_ROW],
                betas=torch.zeros(frames, model.num_betas),
                expression=torch.zeros(frames, model.num_expression_coeffs),
                return_verts=False,
            )
            joints.append(output.joints[:, :num_joints].double().numpy())
    return np.concatenate(joints, axis=0)


def _check_params(params) -> np.ndarray:
    params = np.asarray(params, dtype=np.float64)
    if params.ndim != 3 or params.shape[1:] != (PARAM_ROWS, 3):
        raise ValueError(f"SMPL-X parameters must be [T, {PARAM_ROWS}, 3], got {params.shape}")
    return params
