"""The paper's ablation on the procedural data, several seeds per model.

``python benchmarks/reproduce.py train`` trains DHVAE (triplet weight 1e-4, as released), the
flat MLD-style VAE (the paper's baseline, same recipe otherwise) and DHVAE without the triplet
term with the CPU recipe of ``training.recipe``, seed after seed, each model in
OUT/MODEL/seedN. Runs resume, so the training may span sessions; two ``train`` commands on
different --seeds share a 2-core machine best (one single-threaded process each).

``python benchmarks/reproduce.py report`` measures every finished model that has no measurement
yet with the quality benchmark (``benchmarks/quality.py``) and the per-type geometry check
(``benchmarks.geometry``), both sampling at the recipe's temperature and guidance, and keeps each in
RESULTS/MODEL_seedN.json: small files meant to be committed, so that models trained in different
sessions (or on different machines) add up. It then writes each model's mean over all its
measured seeds +- the 95% interval across seeds (JSON and a Markdown table next to it); it
refuses to average measurements taken with different recipes, data or benchmark settings.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from datetime import date
from pathlib import Path

if __package__ in (None, ""):  # run as `python benchmarks/reproduce.py`: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import geometry, quality  # noqa: E402
from benchmarks.quality_report import COLUMNS, GROUND_TRUTH, markdown_table, write_json, write_text  # noqa: E402
from dhvae_sdk.evaluation.protocol import summarize  # noqa: E402
from training.recipe import (  # noqa: E402
    RECIPE, SAMPLING_GUIDANCE, SAMPLING_TEMPERATURE, RecipeRun, add_recipe_arguments, recipe_run,
)

# folder: (row label, the options of both VAE stages that replace the recipe's)
ABLATION = {
    "dhvae": ("DHVAE", {"--w-tri": "1e-4"}),
    "flat": ("Flat VAE", {"--vae-kind": "flat", "--w-tri": "1e-4"}),
    "no_triplet": ("DHVAE w/o triplet", {"--w-tri": "0"}),
}
# The run options that make the ablation's models differ by design: only these may differ between models.
DEFINING_OPTIONS = {flag.removeprefix("--").replace("-", "_")
                    for _, overrides in ABLATION.values() for flag in overrides}
GEOMETRY = ("geometry", "Geometry pass ↑")
SEED_NOTE = ("A model's cell: the mean over its training seeds of each seed's mean over the replications, +- the 95% "
             "interval across seeds (the ground truth's: across replications). Geometry pass: the share of generated "
             "test motions that pass their type's check (python -m benchmarks.geometry).")


def parse_args(argv: list[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="python benchmarks/reproduce.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train (or resume) the models of the given seeds")
    report = commands.add_parser("report", help="measure the finished models, mean over their seeds")
    for command in (train, report):
        command.add_argument("--out", type=Path, default=Path("runs/reproduction"), help="the runs' folder")
        command.add_argument("--data-root", type=Path, required=True, help="a procedural dataset folder")
        command.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
        command.add_argument("--models", nargs="+", choices=sorted(ABLATION), default=list(ABLATION))
        add_recipe_arguments(command)
    report.add_argument("--json", type=Path, default=Path("benchmarks/results/reproduction.json"),
                        help="the mean over seeds; the Markdown table goes next to it (.md)")
    report.add_argument("--results", type=Path, default=Path("benchmarks/results/reproduction"),
                        help="one measurement per model and seed (MODEL_seedN.json), kept across sessions")
    report.add_argument("--remeasure", action="store_true",
                        help="measure finished models again, replacing their measurements")
    quick = report.add_argument_group("the quality benchmark's settings (quick CPU ones by default; recorded as "
                                      "protocol deviations)")
    quick.add_argument("--replications", type=int, default=2)
    quick.add_argument("--mmodality-texts", type=int, default=5)
    quick.add_argument("--mmodality-repeats", type=int, default=11)
    quick.add_argument("--diversity-pairs", type=int, default=150)
    quick.add_argument("--batch-size", type=int, default=96, help="R-Precision batch")
    quick.add_argument("--sampling-steps", type=int, default=50, help="DDIM steps")
    args = parser.parse_args(argv)
    return (train if args.command == "train" else report), args


def runs(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[tuple[str, int], RecipeRun]:
    return {(model, seed): recipe_run(parser, args, out=args.out / model / f"seed{seed}", data_root=args.data_root,
                                      seed=seed, vae_overrides=ABLATION[model][1])
            for seed in args.seeds for model in args.models}


def train(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    for (model, seed), run in runs(parser, args).items():
        print(f"{ABLATION[model][0]}, seed {seed}: {run.out}", flush=True)
        run.train()


MEASUREMENT_KEYS = {"comparable", "metrics", "geometry_per_type", "ground_truth", "measured"}


def measurement_path(results: Path, model: str, seed: int) -> Path:
    return results / f"{model}_seed{seed}.json"


def data_fingerprint(root: Path) -> str:
    """The procedural dataset's identity: its samples' metadata and its splits."""
    digest = hashlib.sha256()
    for name in ("synthetic_meta.json", "train.txt", "val.txt", "test.txt"):
        digest.update((root / name).read_bytes())
    return digest.hexdigest()


def measure(run: RecipeRun, model: str, seed: int, args: argparse.Namespace) -> dict:
    """One trained model's quality and geometry, with what makes it comparable to another's."""
    label, checkpoint = f"{ABLATION[model][0]}, seed {seed}", run.checkpoint(RECIPE[-1].name)
    record = quality.main([
        f"--model={label}={checkpoint}", "--dataset", "synthetic", "--data-root", str(args.data_root),
        "--json", str(run.out / "quality.json"), "--replications", str(args.replications),
        "--mmodality-texts", str(args.mmodality_texts), "--mmodality-repeats", str(args.mmodality_repeats),
        "--diversity-pairs", str(args.diversity_pairs), "--batch-size", str(args.batch_size),
        "--steps", str(args.sampling_steps), "--temperature", str(SAMPLING_TEMPERATURE),
        "--guidance", str(SAMPLING_GUIDANCE), "--backend", "torch", "--device", "cpu"])
    generated = geometry.run(str(checkpoint), args.data_root, "test", seed=0, limit=None, guidance=SAMPLING_GUIDANCE,
                             temperature=SAMPLING_TEMPERATURE)["generated"]["summary"]
    settings = record["settings"]
    comparable = {"recipe_preset": run.preset, "recipe_steps": run.steps, "recipe_options": run.trained_options(),
                  "data": data_fingerprint(args.data_root),
                  "evaluator": settings["evaluator"]["config"],
                  **{key: settings[key] for key in ("test_samples", "guidance", "temperature", "steps", "protocol",
                                                    "deviations")}}
    means = {metric: entry["mean"] for metric, entry in record["rows"][label]["summary"].items()}
    # No checked type among the test motions: "n/a" in the table, as quality's metrics without data.
    passed = generated["overall_pass_rate"]
    return {"model": model, "seed": seed, "measured": date.today().isoformat(), "comparable": comparable,
            "metrics": {**means, "geometry": float("nan") if passed is None else passed},
            "geometry_per_type": {name: row["pass_rate"] for name, row in generated["per_type"].items()},
            "ground_truth": record["rows"][GROUND_TRUTH]["summary"]}


def read_measurement(path: Path) -> dict:
    """A measurement as written, with NaN (a metric without data) back where JSON holds null for it."""
    def restored(value):
        if isinstance(value, dict):
            return {key: restored(item) for key, item in value.items()}
        return float("nan") if value is None else value
    try:
        measurement = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SystemExit(f"error: cannot read the measurement {path} ({error}); remeasure it (--remeasure, with its "
                         f"trained model) or move it out of {path.parent}") from None
    if not isinstance(measurement, dict) or not MEASUREMENT_KEYS <= set(measurement):
        raise SystemExit(f"error: {path} is not a measurement of benchmarks/reproduce.py (it needs the keys "
                         f"{', '.join(sorted(MEASUREMENT_KEYS))}); move it out of {path.parent}")
    # Only numbers may be null for NaN: a null among the settings stays None, or it would never equal itself.
    return {**measurement, **{key: restored(measurement[key]) for key in ("metrics", "geometry_per_type",
                                                                          "ground_truth")}}


def recipe_options(comparable: dict, defining: bool) -> dict:
    """Each stage's options that define the ablation's model (defining) or that all its models share."""
    return {stage: {name: value for name, value in options.items() if (name in DEFINING_OPTIONS) == defining}
            for stage, options in comparable["recipe_options"].items()}


def shared_settings(comparable: dict) -> dict:
    """What must match between the ablation's models: the settings without their defining options."""
    return {**comparable, "recipe_options": recipe_options(comparable, defining=False)}


def require_comparable(paths: dict[tuple[str, int], Path], measurements: dict[tuple[str, int], dict]) -> None:
    """Every measurement like the first: in all settings the first of its model, in all but the
    defining options the first of all."""
    (first_key, first), *others = measurements.items()
    first_of_model = {}
    for key in measurements:
        first_of_model.setdefault(key[0], key)
    for key, other in others:
        for reference, view in ((first_of_model[key[0]], dict), (first_key, shared_settings)):
            expected, got = view(measurements[reference]["comparable"]), view(other["comparable"])
            differing = sorted(name for name in expected.keys() | got.keys()
                               if expected.get(name) != got.get(name))
            if differing:
                raise SystemExit(f"error: {paths[key]} and {paths[reference]} were measured differently "
                                 f"({', '.join(differing)}), so their mean would mean nothing; remeasure one "
                                 f"(--remeasure, with its trained model) or move it out of {paths[key].parent}")


def report(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict:
    requested = runs(parser, args)
    for folder in (args.results, args.json.parent):
        folder.mkdir(parents=True, exist_ok=True)
    for (model, seed), run in requested.items():
        path = measurement_path(args.results, model, seed)
        if run.finished(RECIPE[-1]) and (args.remeasure or not path.exists()):
            write_json(path, measure(run, model, seed, args))
    measured = {key: path for key in requested if (path := measurement_path(args.results, *key)).exists()}
    missing = sorted(set(requested) - set(measured))
    if not measured:
        parser.error(f"no finished model under {args.out} and no measurement in {args.results}; train them first: "
                     f"python benchmarks/reproduce.py train --out {args.out} --data-root {args.data_root}")
    if missing:
        print("neither measured nor finished, left out: " + ", ".join(f"{model} seed {seed}" for model, seed in missing),
              flush=True)
    measurements = {key: read_measurement(path) for key, path in measured.items()}
    require_comparable(measured, measurements)
    first = next(iter(measurements.values()))
    rows = {GROUND_TRUTH: {"summary": first["ground_truth"]}}
    for model in args.models:
        seeds = {seed: measurement for (of_model, seed), measurement in measurements.items() if of_model == model}
        if seeds:
            summary = summarize([measurement["metrics"] for measurement in seeds.values()])
            rows[f"{ABLATION[model][0]} ({len(seeds)} seed{'s' if len(seeds) > 1 else ''})"] = {
                "recipe_options": recipe_options(next(iter(seeds.values()))["comparable"], defining=True),
                "seeds": {seed: {key: measurement[key] for key in ("metrics", "geometry_per_type", "measured")}
                          for seed, measurement in seeds.items()},
                "summary": summary}
    table = markdown_table({label: row["summary"] for label, row in rows.items()},
                           first["comparable"]["deviations"], columns=(*COLUMNS, GEOMETRY)) + f"\n{SEED_NOTE}\n"
    settings = {**shared_settings(first["comparable"]), "training_seeds": args.seeds}
    result = {"benchmark": "reproduction", "settings": settings,
              "rows": rows, "missing": [f"{model} seed {seed}" for model, seed in missing]}
    write_text(args.json.with_suffix(".md"), table)
    write_json(args.json, result)
    print(table, end="")
    return result


def main(argv: list[str] | None = None):
    parser, args = parse_args(argv)
    return (train if args.command == "train" else report)(parser, args)


if __name__ == "__main__":
    main()
