"""Rendering interactions to mp4 / gif / png: frame counts, content, layout and bad input."""
import imageio.v2 as imageio
import numpy as np
import pytest
from matplotlib.colors import to_rgb

from dhvae_sdk.motion import skeleton
from dhvae_sdk.motion.rotation import axis_angle_to_matrix, yaw_matrix
from dhvae_sdk.visualize import render_frame, render_grid, render_video
from dhvae_sdk.visualize.camera import camera_for
from dhvae_sdk.visualize.render import DEFAULT_COLORS, _wrap_title


def waving_pair(frames: int, separation: float = 1.2) -> np.ndarray:
    """Two people facing each other along X, each waving the right forearm: [T, 2, 22, 3]."""
    time = np.arange(frames) / 30.0
    people = []
    for person, (x, yaw) in enumerate(((-separation / 2, np.pi / 2), (separation / 2, -np.pi / 2))):
        local = np.tile(np.eye(3), (frames, 21, 1, 1))
        local[:, skeleton.JOINT_INDEX["neck"] - 1] = axis_angle_to_matrix(np.array([-np.pi / 2, 0.0, 0.0]))
        local[:, skeleton.JOINT_INDEX["r_shoulder"] - 1] = axis_angle_to_matrix(np.array([0.0, 0.0, -2.3]))
        wave = 0.6 * np.sin(2 * np.pi * time + person)
        local[:, skeleton.JOINT_INDEX["r_elbow"] - 1] = axis_angle_to_matrix(
            np.stack([np.zeros(frames), np.zeros(frames), wave], axis=-1))
        root = np.stack([np.full(frames, x), np.full(frames, 0.92), 0.1 * time], axis=-1)
        people.append(skeleton.forward_kinematics(yaw_matrix(np.full(frames, yaw)), local, root))
    return np.stack(people, axis=1)


def read_frames(path) -> np.ndarray:
    with imageio.get_reader(path) as reader:
        return np.stack([np.asarray(frame)[..., :3] for frame in reader])


def color_mask(image: np.ndarray, color: str, tolerance: float) -> np.ndarray:
    target = np.array(to_rgb(color)) * 255.0
    return np.abs(image.astype(np.float64) - target).max(axis=-1) <= tolerance


@pytest.mark.parametrize("suffix, tolerance", [(".mp4", 40.0), (".gif", 6.0)])
def test_video_has_one_frame_per_motion_frame_showing_both_people(tmp_path, suffix, tolerance):
    joints = waving_pair(24)
    path = render_video(joints, tmp_path / f"pair{suffix}", title="two people wave at each other")
    frames = read_frames(path)
    assert frames.shape == (24, 480, 640, 3)
    assert frames[0].std() > 10.0
    first, second = (color_mask(frames[0], c, tolerance) for c in DEFAULT_COLORS)
    assert first.sum() > 300 and second.sum() > 300
    # Person 0 is framed on the left of person 1.
    assert np.nonzero(first)[1].mean() < np.nonzero(second)[1].mean()
    # The waving forearm moves, so frames differ.
    assert np.abs(frames[0].astype(int) - frames[12].astype(int)).max() > 100
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"pair{suffix}"]


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_motionless_and_single_frame_clips_keep_every_frame(tmp_path, suffix):
    still = np.repeat(waving_pair(1), 5, axis=0)
    assert read_frames(render_video(still, tmp_path / f"still{suffix}")).shape[0] == 5
    assert read_frames(render_video(still[:1], tmp_path / f"one{suffix}")).shape[0] == 1


def test_camera_shows_people_upright_and_keeps_every_joint_in_front():
    joints = waving_pair(30)
    camera = camera_for(joints)
    screen = camera.project(joints)
    head, ankle = skeleton.JOINT_INDEX["head"], skeleton.JOINT_INDEX["l_ankle"]
    assert np.all(screen[:, :, head, 1] > screen[:, :, ankle, 1] + 0.1)
    assert np.all(camera.depth(joints) > 1.0)
    assert camera.floor_height == pytest.approx(joints[..., 1].min())


def test_grid_lasts_as_long_as_its_longest_clip_and_holds_short_clips(tmp_path):
    short, long, middle = waving_pair(6), waving_pair(14, separation=1.8), waving_pair(10)
    path = render_grid([short, long, middle], tmp_path / "grid.gif", titles=["short", "long", None])
    frames = read_frames(path)
    assert frames.shape == (14, 640, 800, 3)  # 2 columns x 2 rows of 400 x 320 panels
    short_panel, long_panel = frames[:, :320, :400], frames[:, :320, 400:]
    assert all(np.array_equal(short_panel[5], short_panel[t]) for t in range(6, 14))
    assert not np.array_equal(long_panel[5], long_panel[13])

    row = render_grid([short, long, middle], tmp_path / "row.mp4", columns=3)
    assert read_frames(row).shape == (14, 320, 1200, 3)


def test_title_is_drawn_above_the_people(tmp_path):
    joints = waving_pair(3)
    titled = np.asarray(imageio.imread(render_frame(joints, tmp_path / "t.png", frame=1, title="a handshake")))
    plain = np.asarray(imageio.imread(render_frame(joints, tmp_path / "p.png", frame=1)))
    assert titled.shape[:2] == (480, 640)
    dark = titled[:30, :, :3].max(axis=-1) < 80
    assert dark.sum() > 30
    assert (plain[:30, :, :3].max(axis=-1) < 80).sum() == 0


def test_long_titles_wrap_to_at_most_three_lines_with_an_ellipsis():
    text = " ".join(["the first person slowly walks around the second one"] * 6)
    wrapped = _wrap_title(text, width_px=624, font_px=15)
    lines = wrapped.split("\n")
    assert len(lines) == 3
    assert lines[-1].endswith("…")
    assert all(len(line) <= 624 / (0.55 * 15) for line in lines)
    assert _wrap_title("short  text", 624, 15) == "short text"


@pytest.mark.parametrize("joints, message", [
    (np.zeros((10, 22, 3)), "shape"),
    (np.zeros((0, 2, 22, 3)), "no frames"),
    (np.full((4, 2, 22, 3), np.nan), "NaN"),
])
def test_bad_motions_are_refused(tmp_path, joints, message):
    with pytest.raises(ValueError, match=message):
        render_video(joints, tmp_path / "x.mp4")


def test_bad_arguments_are_refused(tmp_path):
    joints = waving_pair(4)
    with pytest.raises(ValueError, match=r"\.mp4, \.gif"):
        render_video(joints, tmp_path / "x.avi")
    with pytest.raises(ValueError, match="GIF"):
        render_video(joints, tmp_path / "x.gif", fps=120)
    with pytest.raises(ValueError, match="fps"):
        render_video(joints, tmp_path / "x.mp4", fps=0)
    with pytest.raises(ValueError, match="colors"):
        render_video(joints, tmp_path / "x.mp4", colors=("red",))
    with pytest.raises(ValueError, match="titles"):
        render_grid([joints, joints], tmp_path / "x.mp4", titles=["one"])
    with pytest.raises(ValueError, match="non-empty list"):
        render_grid([], tmp_path / "x.mp4")
    with pytest.raises(ValueError, match=r"clips\[1\]"):
        render_grid([joints, joints[:, 0]], tmp_path / "x.mp4")
    with pytest.raises(ValueError, match="frame"):
        render_frame(joints, tmp_path / "x.png", frame=4)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        render_video(joints, tmp_path / "missing" / "x.mp4")
    assert list(tmp_path.iterdir()) == []
