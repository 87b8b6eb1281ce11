"""The paper's ablation on the procedural data, several seeds per model.

``python benchmarks/reproduce.py train`` trains DHVAE (triplet weight 1e-4, as released), the
flat MLD-style VAE (the paper's baseline, same recipe otherwise) and DHVAE without the triplet
term with the CPU recipe of ``training.recipe``, seed after seed, each model in
OUT/MODEL/seedN. Runs resume, so the training may span sessions; two ``train`` commands on
different --seeds share a 2-core machine best (one single-threaded process each).

``python benchmarks/reproduce.py report`` measures every finished model with the quality
benchmark (``benchmarks/quality.py``) and the per-type geometry check (``benchmarks.geometry``),
both sampling at the recipe's temperature, and writes each model's mean over its seeds +- the
95% interval across seeds (JSON and a Markdown table next to it).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python benchmarks/reproduce.py`: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import geometry, quality  # noqa: E402
from benchmarks.quality_report import COLUMNS, GROUND_TRUTH, markdown_table, write_json, write_text  # noqa: E402
from dhvae_sdk.evaluation.protocol import summarize  # noqa: E402
from training.recipe import RECIPE, SAMPLING_TEMPERATURE, RecipeRun, add_recipe_arguments, recipe_run  # noqa: E402

# folder: (row label, the options of both VAE stages that replace the recipe's)
ABLATION = {
    "dhvae": ("DHVAE", {"--w-tri": "1e-4"}),
    "flat": ("Flat VAE", {"--vae-kind": "flat", "--w-tri": "1e-4"}),
    "no_triplet": ("DHVAE w/o triplet", {"--w-tri": "0"}),
}
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
                        help="results; the Markdown table goes next to it (.md)")
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


def report(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict:
    requested = runs(parser, args)
    finished = {key: run for key, run in requested.items() if run.finished(RECIPE[-1])}
    missing = sorted(set(requested) - set(finished))
    if not finished:
        parser.error(f"no finished model under {args.out}; train them first: python benchmarks/reproduce.py train "
                     f"--out {args.out} --data-root {args.data_root}")
    if missing:
        print("not finished, left out: " + ", ".join(f"{model} seed {seed}" for model, seed in missing), flush=True)
    labels = {key: f"{ABLATION[key[0]][0]}, seed {key[1]}" for key in finished}
    record = quality.main([
        *(f"--model={labels[key]}={run.checkpoint(RECIPE[-1].name)}" for key, run in finished.items()),
        "--dataset", "synthetic", "--data-root", str(args.data_root), "--json", str(args.out / "quality.json"),
        "--replications", str(args.replications), "--mmodality-texts", str(args.mmodality_texts),
        "--mmodality-repeats", str(args.mmodality_repeats), "--diversity-pairs", str(args.diversity_pairs),
        "--batch-size", str(args.batch_size), "--steps", str(args.sampling_steps),
        "--temperature", str(SAMPLING_TEMPERATURE), "--backend", "torch", "--device", "cpu"])
    per_seed = {}
    for key, run in finished.items():
        measured = geometry.run(str(run.checkpoint(RECIPE[-1].name)), args.data_root, "test", seed=0, limit=None,
                                temperature=SAMPLING_TEMPERATURE)
        generated = measured["generated"]["summary"]
        means = {metric: entry["mean"] for metric, entry in record["rows"][labels[key]]["summary"].items()}
        # No checked type among the test motions: "n/a" in the table, as quality's metrics without data.
        passed = generated["overall_pass_rate"]
        per_seed[key] = {"metrics": {**means, "geometry": float("nan") if passed is None else passed},
                         "geometry_per_type": {name: row["pass_rate"] for name, row in generated["per_type"].items()}}
    rows = {GROUND_TRUTH: {"summary": record["rows"][GROUND_TRUTH]["summary"]}}
    for model in args.models:
        seeds = {seed: values for (name, seed), values in per_seed.items() if name == model}
        if seeds:
            summary = summarize([values["metrics"] for values in seeds.values()])
            rows[f"{ABLATION[model][0]} ({len(seeds)} seeds)"] = {"seeds": seeds, "summary": summary}
    table = markdown_table({label: row["summary"] for label, row in rows.items()},
                           record["settings"]["deviations"], columns=(*COLUMNS, GEOMETRY)) + f"\n{SEED_NOTE}\n"
    result = {"benchmark": "reproduction",
              "settings": {**record["settings"], "training_seeds": args.seeds,
                           "recipe_preset": args.preset, "recipe_steps": next(iter(finished.values())).steps},
              "rows": rows, "missing": [f"{model} seed {seed}" for model, seed in missing]}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    write_text(args.json.with_suffix(".md"), table)
    write_json(args.json, result)
    print(table, end="")
    return result


def main(argv: list[str] | None = None):
    parser, args = parse_args(argv)
    return (train if args.command == "train" else report)(parser, args)


if __name__ == "__main__":
    main()
