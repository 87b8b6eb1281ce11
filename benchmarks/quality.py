"""The paper's quality, reconstruction and physics tables for one or more models, one command.

  python benchmarks/quality.py --model [LABEL=]CKPT_OR_DIR [--model ...] \
      --dataset {interhuman,interx,synthetic} --data-root DIR [--evaluator EVAL_CKPT] \
      [--word-vectors GLOVE_DIR (InterX)] [--body-model SMPLX_DIR] \
      [--json PATH] [--replications 20] [--split test] [--guidance S] [--temperature 1] [--steps 50] \
      [--sweep-guidance 0,1,2,3.5,5] [--plot PATH] [--backend torch]

By the InterGen protocol (shared/reference/interhuman-interx-protocol.md): FID, R-Precision
top 1/2/3 and MM-Dist over shuffled drop-last batches of 96, Diversity over 300 pairs,
MModality over 100 texts x 30 generations, each replication on a fresh draw of the test set
and fresh generations (DDIM, 50 steps, guidance 3.5, or 3.0 for InterX, at the ground
truth's lengths), mean and 95% interval over 20 replications. InterX is scored by
InterMask's protocol with Inter-X's own evaluator (its ``finest.tar`` as --evaluator, its
``glove/`` folder as --word-vectors): batches of 32, unscaled embeddings. Per model also the
VAE's rFID, MPJPE (m) and L1 on normalized features, and PV (voxels and ml), PFR, PDR,
Contact of the generations (2 cm voxels; capsule bodies, or SMPL-X meshes with
--body-model). Every departure from the protocol asked for on the command line is listed
under "deviations" in the JSON.
"""
from __future__ import annotations

import argparse
import dataclasses
import platform
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

if __package__ in (None, ""):  # run as `python benchmarks/quality.py`: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch
from tqdm import tqdm

from dhvae_sdk.body.smplx_model import SmplxModel
from dhvae_sdk.evaluation.evaluator_checkpoint import LoadedEvaluator, load_evaluator
from dhvae_sdk.evaluation.interx_evaluator import InterXEmbedder, load_interx_evaluator
from dhvae_sdk.evaluation.protocol import ProtocolConfig, protocol_for, summarize
from dhvae_sdk.evaluation.word_vectors import WordVectors
from dhvae_sdk.manifest import ModelFormatError
from dhvae_sdk.models import DATASETS
from dhvae_sdk.models.config import MAX_TEMPERATURE
from dhvae_sdk.physics import PhysicsConfig
from dhvae_sdk.runtime import BACKENDS, BackendUnavailableError
from training.data.base import InteractionDataset

from benchmarks.quality_data import (CONTACT_SOURCES, Embedder, Representation, open_test_set,
                                     read_synthetic_contacts, representation_of)
from benchmarks.quality_eval import PURPOSES, RunSettings, measure_model, prepare_reference
from benchmarks.quality_models import ModelUnderTest, parse_model_argument
from benchmarks.quality_report import GROUND_TRUTH, markdown_table, plot_guidance_sweep, write_json, write_text

PROTOCOL = ProtocolConfig()
PROTOCOL_STEPS = 50
PROTOCOL_TEMPERATURE = 1.0  # the release samples from unit noise
# The procedural benchmark's evaluator is shipped, not retrained per run, so numbers measured
# on any machine compare. Rebuilt with `python -m training.main evaluator --preset tiny
# --dataset synthetic --steps 3000 --lr 1e-3 --max-frames 300` on the 2000-pair dataset of seed 0
# (2026-12-03, held-out top-3 0.885 in batches of 32), its tensors stored in fp16 (14 MB, not
# 28; loading widens them to fp32).
PROCEDURAL_EVALUATOR = Path(__file__).resolve().parent / "assets" / "procedural_evaluator.ckpt"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python benchmarks/quality.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True, metavar="[LABEL=]PATH",
                        help="denoiser-stage checkpoint or exported model directory; repeat for more rows")
    parser.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    parser.add_argument("--data-root", required=True, type=Path)
    parser.add_argument("--evaluator", type=Path,
                        help="InterGen's interclip.ckpt or RUN/evaluator.ckpt of `training.main evaluator`; "
                             "for InterX Inter-X's text_mot_match/model/finest.tar; for the procedural "
                             "dataset the shipped benchmarks/assets/procedural_evaluator.ckpt by default")
    parser.add_argument("--word-vectors", type=Path, help="InterX: the glove/ folder (hhi_vab_*) of the release")
    parser.add_argument("--body-model", type=Path,
                        help="SMPL-X model file or folder: physics on SMPL-X meshes (and InterX joints)")
    parser.add_argument("--json", type=Path, default=Path("quality.json"),
                        help="results; the Markdown table goes next to it (.md)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--replications", type=int, default=PROTOCOL.replications)
    parser.add_argument("--guidance", type=float, help="default: 3.5 (3.0 for InterX), the protocol's")
    parser.add_argument("--temperature", type=float, default=PROTOCOL_TEMPERATURE,
                        help="scale of the starting noise of every model (the protocol's: 1, unit noise)")
    parser.add_argument("--steps", type=int, default=PROTOCOL_STEPS, help="DDIM steps")
    parser.add_argument("--sweep-guidance", type=guidance_list, default=(), metavar="S1,S2,...",
                        help="also measure FID and R-Precision at these guidance scales and plot them")
    parser.add_argument("--plot", type=Path, help="the sweep's PNG (default: next to the JSON)")
    parser.add_argument("--backend", choices=BACKENDS, default="auto")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")
    parser.add_argument("--seed", type=int, default=0, help="base of every random stream")
    parser.add_argument("--generation-batch", type=int, default=64, help="texts per sampling call")
    quick = parser.add_argument_group("protocol overrides for quick runs (recorded as deviations)")
    quick.add_argument("--batch-size", type=int, help="R-Precision batch (default: 96, InterX 32)")
    quick.add_argument("--mmodality-texts", type=int, default=PROTOCOL.mm_texts)
    quick.add_argument("--mmodality-repeats", type=int, default=PROTOCOL.mm_generations)
    quick.add_argument("--diversity-pairs", type=int, default=PROTOCOL.diversity_pairs)
    args = parser.parse_args(argv)
    if args.batch_size is None:
        args.batch_size = protocol_for(args.dataset).batch_size
    if args.evaluator is None:
        if args.dataset != "synthetic":
            parser.error(f"--dataset {args.dataset} needs --evaluator: InterGen's eval_model/interclip.ckpt for "
                         "InterHuman, Inter-X's text_mot_match/model/finest.tar for InterX")
        args.evaluator = PROCEDURAL_EVALUATOR
    if args.dataset == "interx" and args.word_vectors is None:
        parser.error("--dataset interx needs --word-vectors GLOVE_DIR (the hhi_vab_* files Inter-X's evaluator reads)")
    for flag in ("replications", "steps", "generation_batch", "batch_size", "mmodality_texts", "diversity_pairs"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    if args.replications < 2:
        parser.error("--replications must be >= 2 for a confidence interval")
    if args.mmodality_repeats <= PROTOCOL.mm_pairs:
        parser.error(f"--mmodality-repeats must exceed the {PROTOCOL.mm_pairs} pairs MModality draws per text, "
                     f"got {args.mmodality_repeats}")
    if args.plot is not None and not args.sweep_guidance:
        parser.error("--plot needs --sweep-guidance")
    if not 0 <= args.temperature <= MAX_TEMPERATURE:
        parser.error(f"--temperature must be from 0 to {MAX_TEMPERATURE:g}, got {args.temperature}")
    return args


def guidance_list(text: str) -> tuple[float, ...]:
    try:
        scales = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers such as 0,1,2,3.5,5, got {text!r}") from None
    if any(not np.isfinite(s) or s < 0 for s in scales):
        raise argparse.ArgumentTypeError(f"guidance scales must be finite and >= 0, got {text!r}")
    return scales


def check_sample_counts(samples: int, args: argparse.Namespace) -> None:
    if samples < args.batch_size:
        raise ValueError(f"the {args.split} split has {samples} samples; the protocol ranks each text within a batch "
                         f"of {args.batch_size} motions, so it needs at least {args.batch_size}. For a smoke test "
                         f"pass --batch-size {max(2, samples // 2)} (recorded as a protocol deviation)")
    evaluated = samples // args.batch_size * args.batch_size
    if evaluated <= args.diversity_pairs:
        raise ValueError(f"Diversity draws {args.diversity_pairs} pairs from the {evaluated} motions of full batches; "
                         f"pass --diversity-pairs below {evaluated} (recorded as a protocol deviation)")
    if samples < args.mmodality_texts:
        raise ValueError(f"MModality needs {args.mmodality_texts} texts and the split has {samples} samples; "
                         f"pass --mmodality-texts {samples} or fewer (recorded as a protocol deviation)")


def deviations(args: argparse.Namespace, protocol_guidance: float) -> list[str]:
    chosen = {"R-Precision batch": (args.batch_size, protocol_for(args.dataset).batch_size),
              "replications": (args.replications, PROTOCOL.replications),
              "MModality texts": (args.mmodality_texts, PROTOCOL.mm_texts),
              "MModality generations per text": (args.mmodality_repeats, PROTOCOL.mm_generations),
              "Diversity pairs": (args.diversity_pairs, PROTOCOL.diversity_pairs),
              "DDIM steps": (args.steps, PROTOCOL_STEPS),
              "temperature": (args.temperature, PROTOCOL_TEMPERATURE),
              "guidance": (args.guidance, protocol_guidance)}
    return [f"{name}: {value} (protocol: {expected})"
            for name, (value, expected) in chosen.items() if value != expected]


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "platform": platform.platform()}
    for package in ("dhvae-sdk", "torch", "numpy", "scipy", "onnxruntime"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return found


@dataclasses.dataclass
class Inputs:
    test_set: InteractionDataset
    evaluator: LoadedEvaluator
    models: list[ModelUnderTest]
    contacts: dict[str, bool] | None
    settings: RunSettings
    embedder: Embedder | InterXEmbedder
    representation: Representation


def open_inputs(args: argparse.Namespace) -> Inputs:
    """Everything the run needs, checked before the long work starts."""
    body_model = None if args.body_model is None else SmplxModel.load(args.body_model)
    representation = representation_of(args.dataset, body_model)
    test_set = open_test_set(args.dataset, args.data_root, args.split)
    check_sample_counts(len(test_set), args)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.dataset == "interx":
        if not test_set.sentence_tokens:
            raise ValueError(f"{args.data_root} has no word/POS tokens: Inter-X's evaluator reads the sentences of "
                             f"texts_processed/NAME.txt (\"sentence#word/POS ...#0.0#0.0\") of the InterX release")
        evaluator = LoadedEvaluator(load_interx_evaluator(args.evaluator), "interx", str(args.evaluator))
        embedder = InterXEmbedder(evaluator.model, WordVectors.load(args.word_vectors), test_set.sentence_tokens,
                                  args.generation_batch, device)
    else:
        evaluator = load_evaluator(args.evaluator)
        if evaluator.model.config.person_features != representation.feature_dim:
            raise ValueError(f"{args.evaluator} reads {evaluator.model.config.person_features}-number features and "
                             f"the {args.dataset} data has {representation.feature_dim}; use an evaluator trained on it")
        embedder = Embedder(evaluator.model, args.generation_batch, device)
    labels = [parse_model_argument(argument) for argument in args.model]
    names = [label for label, _ in labels]
    duplicates = sorted({label for label in names if names.count(label) > 1})
    if duplicates:
        raise ValueError(f"two models are labelled {duplicates}; name them with --model LABEL=PATH")
    models = [ModelUnderTest.open(label, path, args.backend, args.device, args.generation_batch,
                                  representation.feature_dim) for label, path in labels]
    for model in models:
        limit = min(model.backend.config.denoiser.num_train_steps, model.backend.max_steps)
        if args.steps > limit:
            raise ValueError(f"--steps {args.steps} is more than model {model.path} can run ({limit:g} on the "
                             f"{model.backend.name} backend)")
    contacts = read_synthetic_contacts(args.data_root) if args.dataset == "synthetic" else None
    protocol = dataclasses.replace(protocol_for(args.dataset), batch_size=args.batch_size,
                                   replications=args.replications,
                                   mm_texts=args.mmodality_texts, mm_generations=args.mmodality_repeats,
                                   diversity_pairs=args.diversity_pairs)
    settings = RunSettings(args.dataset, args.guidance, args.temperature, args.steps, args.seed, protocol,
                           PhysicsConfig(), tuple(args.sweep_guidance))
    return Inputs(test_set, evaluator, models, contacts, settings, embedder, representation)


def measure(inputs: Inputs) -> tuple[dict, str | None]:
    """{row label: {"replications", "summary", ...}} and the physics body model used."""
    settings = inputs.settings
    representation = inputs.representation
    embedder = inputs.embedder
    rows = {GROUND_TRUTH: {"replications": [], "seconds": 0.0}}
    rows.update({model.label: {"model": model.describe(), "replications": [], "seconds": 0.0}
                 for model in inputs.models})
    sweeps = {model.label: {scale: [] for scale in settings.sweep} for model in inputs.models}
    body_model = None
    for replication in tqdm(range(settings.protocol.replications), desc="replications", unit="replication"):
        started = time.perf_counter()
        reference, truth, truth_physics = prepare_reference(inputs.test_set, replication, settings, embedder,
                                                            representation, inputs.contacts)
        body_model = truth_physics.body_model if truth_physics else None
        rows[GROUND_TRUTH]["replications"].append(truth)
        rows[GROUND_TRUTH]["seconds"] += time.perf_counter() - started
        for model in inputs.models:
            started = time.perf_counter()
            values, sweep = measure_model(model, reference, settings, embedder, representation)
            rows[model.label]["replications"].append(values)
            for scale, points in sweep.items():
                sweeps[model.label][scale].append(points)
            rows[model.label]["seconds"] += time.perf_counter() - started
    for label, row in rows.items():
        row["summary"] = summarize(row["replications"])
        if label in sweeps:
            row["sweep"] = {f"{scale:g}": {"guidance": scale, "replications": values, "summary": summarize(values)}
                            for scale, values in sweeps[label].items()}
    return rows, body_model


def settings_record(args: argparse.Namespace, inputs: Inputs, body_model: str | None) -> dict:
    settings = inputs.settings
    return {
        "dataset": args.dataset, "data_root": str(args.data_root), "split": args.split,
        "test_samples": len(inputs.test_set), "evaluator": inputs.evaluator.describe(),
        "device": str(inputs.embedder.device),
        "backend": args.backend, "guidance": settings.guidance, "temperature": settings.temperature,
        "steps": settings.steps, "eta": 0.0,
        "generation_batch": args.generation_batch, "sweep_guidance": list(settings.sweep),
        "protocol": dataclasses.asdict(settings.protocol),
        "seeds": {"base": settings.seed, "streams": list(PURPOSES),
                  "derivation": "numpy SeedSequence(base, spawn_key=(replication, stream index))"},
        "physics": {**dataclasses.asdict(settings.physics), "body_model": body_model,
                    "should_touch": CONTACT_SOURCES[args.dataset]},
        "deviations": deviations(args, DATASETS[args.dataset].guidance),
        "versions": versions(),
    }


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.guidance is None:
        args.guidance = DATASETS[args.dataset].guidance
    try:
        for output in (args.json, args.plot):
            if output is not None:
                output.parent.mkdir(parents=True, exist_ok=True)
        inputs = open_inputs(args)
    except (OSError, ValueError, ModelFormatError, BackendUnavailableError) as error:
        raise SystemExit(f"error: {error}") from None
    rows, body_model = measure(inputs)
    record = {"benchmark": "quality", "settings": settings_record(args, inputs, body_model), "rows": rows}
    table = markdown_table({label: row["summary"] for label, row in rows.items()},
                           record["settings"]["deviations"])
    write_text(args.json.with_suffix(".md"), table)
    if args.sweep_guidance:
        sweeps = {model.label: {point["guidance"]: point["summary"] for point in rows[model.label]["sweep"].values()}
                  for model in inputs.models}
        plot = args.plot or args.json.with_name(f"{args.json.stem}_guidance.png")
        record["settings"]["plot"] = str(plot_guidance_sweep(plot, sweeps))
    write_json(args.json, record)
    print(table, end="")
    return record


if __name__ == "__main__":
    main()
