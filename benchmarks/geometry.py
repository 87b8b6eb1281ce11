"""Does a generated procedural interaction have its type's geometry? One command:

    python -m benchmarks.geometry --model RUN/checkpoint.safetensors --data-root runs/synthetic

For every sequence of the split (test by default) the model generates one motion from one of
the sequence's sentences at the sequence's length, and each motion is checked against its
interaction type (the generator's label in ``synthetic_meta.json``):

- hand types (handshake, high five, lead by the hand, pass an object): in some frame a hand
  of one person is within ``HAND_REACH`` (0.10 m) of a hand of the other, a hand being the
  axis of the physics bodies' hand capsule (``dhvae_sdk.physics.bodies``: from the wrist to
  0.32 forearm lengths past it; the skeleton has no joint inside the hand, and gripping
  hands keep their wrists 15-20 cm apart);
- apart types (the procedural scenes without contact): in no frame is any joint of one
  person closer than ``APART_CLEARANCE`` (0.3 m) to any joint of the other;
- hug, push and dance have no check (their contact is not a hand-to-hand one); their
  closest distances are still reported.

The ground truth is checked the same way (its pass rate is the check's ceiling), and so is its
reconstruction through the model's VAE (posterior means, decoded at the sequence's length): a
type whose reconstructions pass but whose generations do not is lost by the denoiser, not by
the VAE. The table gives the pass rate per type, the median closest distance, and the overall
rate over the checked types; ``--json`` keeps every sample's numbers. ``--frames-dir DIR`` draws the first
generated sample of each hand type (DIR/TYPE.png, the first in split order, not the best) at
the frame where its hands come closest.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script from a source tree
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from tqdm import tqdm

from dhvae_sdk import Generator
from dhvae_sdk.atomic_file import atomic_output
from dhvae_sdk.motion import features_to_joints
from dhvae_sdk.physics.bodies import HAND_CAPSULES
from training.data import InterHumanDataset
from training.data.procedural.catalog import APART_SCENES

HAND_TYPES = ("handshake", "high_five", "lead_by_hand", "pass_object")
APART_TYPES = tuple(APART_SCENES)
HAND_REACH = 0.10  # metres between the closest hands, in some frame
APART_CLEARANCE = 0.3  # metres between the closest joints, in every frame
# Points along each hand's axis, 1 cm apart or closer: the distance of the point sets is the
# axes' distance to within a few millimetres.
HAND_SAMPLES = 9


def hand_points(joints: np.ndarray) -> np.ndarray:
    """[T, 2, hands x HAND_SAMPLES, 3] points on the hand axes of joints [T, 2, J, 3]."""
    return np.concatenate([capsule.axis_points(joints, np.linspace(capsule.start, capsule.end, HAND_SAMPLES)[:, None])
                           for capsule in HAND_CAPSULES], axis=2)


def hand_distances(joints: np.ndarray) -> np.ndarray:
    """[T]: the smallest distance between a hand of person A and one of B, per frame."""
    hands = hand_points(joints)
    return np.linalg.norm(hands[:, 0, :, None] - hands[:, 1, None, :], axis=-1).min(axis=(1, 2))


def closest_hands(joints: np.ndarray) -> float:
    """Smallest distance between a hand of person A and one of B over all frames."""
    return float(hand_distances(joints).min())


def closest_joints(joints: np.ndarray) -> float:
    """Smallest distance between any joint of A and any joint of B over all frames."""
    return float(np.linalg.norm(joints[:, 0, :, None] - joints[:, 1, None, :], axis=-1).min())


def passes(interaction: str, joints: np.ndarray) -> bool | None:
    """The type's check on one motion; None for a type without one."""
    if interaction in HAND_TYPES:
        return closest_hands(joints) <= HAND_REACH
    if interaction in APART_TYPES:
        return closest_joints(joints) >= APART_CLEARANCE
    return None


@dataclass
class Sample:
    name: str
    interaction: str
    text: str
    frames: int
    closest_hands_m: float
    closest_joints_m: float
    passed: bool | None


def measure(name: str, interaction: str, text: str, joints: np.ndarray) -> Sample:
    return Sample(name, interaction, text, len(joints), closest_hands(joints), closest_joints(joints),
                  passes(interaction, joints))


def summarize(samples: list[Sample]) -> dict:
    """Per type: checked count, pass rate and median closest distances; overall over checked types."""
    table = {}
    for interaction in sorted({s.interaction for s in samples}):
        group = [s for s in samples if s.interaction == interaction]
        checked = [s.passed for s in group if s.passed is not None]
        table[interaction] = {
            "samples": len(group),
            "pass_rate": float(np.mean(checked)) if checked else None,
            "median_closest_hands_m": float(np.median([s.closest_hands_m for s in group])),
            "median_closest_joints_m": float(np.median([s.closest_joints_m for s in group])),
        }
    checked = [s.passed for s in samples if s.passed is not None]
    return {"per_type": table, "overall_pass_rate": float(np.mean(checked)) if checked else None}


def read_types(root: Path) -> dict[str, str]:
    path = root / "synthetic_meta.json"
    if not path.is_file():
        raise SystemExit(f"error: {path} does not exist; --data-root must be a procedural dataset "
                         "(python -m training.data.synthetic --out DIR)")
    return {name: entry["interaction"] for name, entry in json.loads(path.read_text(encoding="utf-8")).items()}


def run(model: str | None, root: Path, split: str, seed: int, limit: int | None,
        guidance: float | None = None, temperature: float | None = None, frames_dir: Path | None = None) -> dict:
    types = read_types(root)
    dataset = InterHumanDataset(root, split=split, normalize=False, mirror=False, swap_persons=False, seed=seed)
    generator = Generator.from_pretrained(model, backend="torch")
    rows = {"ground truth": [], "reconstructed": [], "generated": []}
    drawn = set()  # the hand types whose first generated sample is drawn already
    count = len(dataset) if limit is None else min(limit, len(dataset))
    for index in tqdm(range(count), desc="generating", unit="motion"):
        item = dataset[index]
        name, text, frames = item["name"], item["text"], int(item["length"])
        features = item["motion"][:frames].numpy()
        [motion] = generator.generate(text, frames=frames, seed=seed + index, guidance=guidance,
                                       temperature=temperature)
        rows["ground truth"].append(measure(name, types[name], text, features_to_joints(features)))
        reconstructed = features_to_joints(generator.backend.reconstruct(features[None])[0])
        rows["reconstructed"].append(measure(name, types[name], text, reconstructed))
        rows["generated"].append(measure(name, types[name], text, motion.joints))
        if frames_dir is not None and types[name] in HAND_TYPES and types[name] not in drawn:
            drawn.add(types[name])
            render_closest_hands(motion.joints, text, frames_dir / f"{types[name]}.png")
    return {label: {"summary": summarize(samples), "samples": [vars(s) for s in samples]}
            for label, samples in rows.items()}


def render_closest_hands(joints: np.ndarray, text: str, path: Path) -> Path:
    """A picture of the frame in which the hands of ``joints`` come closest, the distance in its title."""
    from dhvae_sdk.visualize import render_frame  # matplotlib loads only when drawing

    distances = hand_distances(joints)
    frame = int(distances.argmin())
    path.parent.mkdir(parents=True, exist_ok=True)
    title = f"{text} (frame {frame}: hands {distances[frame]:.2f} m apart)"
    return render_frame(joints, path, frame=frame, title=title)


def table(result: dict) -> str:
    truth, reconstructed, generated = (result[label]["summary"] for label in ("ground truth", "reconstructed",
                                                                              "generated"))
    lines = ["| type | check | samples | GT pass | reconstructed pass | generated pass "
             "| generated median closest hands (m) | generated median closest joints (m) |",
             "|---|---|---|---|---|---|---|---|"]

    def rate(value):
        return "-" if value is None else f"{value:.2f}"

    for interaction, row in generated["per_type"].items():
        check = ("hands <= 0.10 m" if interaction in HAND_TYPES
                 else "joints >= 0.3 m" if interaction in APART_TYPES else "none")
        lines.append(f"| {interaction} | {check} | {row['samples']} | {rate(truth['per_type'][interaction]['pass_rate'])} "
                     f"| {rate(reconstructed['per_type'][interaction]['pass_rate'])} | {rate(row['pass_rate'])} "
                     f"| {row['median_closest_hands_m']:.3f} "
                     f"| {row['median_closest_joints_m']:.3f} |")
    lines.append(f"| all checked | | | {rate(truth['overall_pass_rate'])} | {rate(reconstructed['overall_pass_rate'])} "
                 f"| {rate(generated['overall_pass_rate'])} | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.geometry", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="denoiser-stage checkpoint or exported model (default: the embedded demo)")
    parser.add_argument("--data-root", type=Path, required=True, help="a procedural dataset folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, help="only the split's first N sequences")
    parser.add_argument("--guidance", type=float, help="classifier-free guidance scale (default: the model's)")
    parser.add_argument("--temperature", type=float, help="scale of the starting noise (default: the model's)")
    parser.add_argument("--json", type=Path, help="write every sample's numbers here")
    parser.add_argument("--frames-dir", type=Path,
                        help="draw the first generated sample of each hand type here (TYPE.png), at the frame "
                             "where its hands come closest")
    args = parser.parse_args(argv)
    result = run(args.model, args.data_root, args.split, args.seed, args.limit, args.guidance, args.temperature,
                 args.frames_dir)
    print(table(result))
    if args.json is not None:
        with atomic_output(args.json) as temporary:
            Path(temporary).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
