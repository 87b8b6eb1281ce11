"""``python -m training.demo`` writes its model into --out and never into the package."""
import hashlib

import torch

from dhvae_sdk import Generator
from dhvae_sdk.checkpoint import load_checkpoint
from dhvae_sdk.runtime.selection import DEMO_CHECKPOINT, assets_directory
from training import demo
from training.data.synthetic import generate_dataset


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_demo_build_writes_a_loadable_half_precision_model_into_out_only(tmp_path, capsys):
    embedded = assets_directory() / DEMO_CHECKPOINT
    before = digest(embedded)
    out = tmp_path / "demo"
    generate_dataset(out / "data", 12, 0, 1)  # present data is used as it is, not regenerated
    demo.main(["--out", str(out), "--vae-steps", "1", "--denoiser-steps", "1"])
    built = out / DEMO_CHECKPOINT
    checkpoint = load_checkpoint(built)
    assert checkpoint.stage == "denoiser" and checkpoint.config.preset == "tiny"
    assert {p.dtype for p in checkpoint.model.parameters()} == {torch.float32}  # widened on load
    assert built.stat().st_size < 0.6 * sum(p.numel() * 4 for p in checkpoint.model.parameters())  # stored fp16
    assert digest(embedded) == before
    printed = capsys.readouterr().out
    assert f"cp {built} dhvae_sdk/assets/{DEMO_CHECKPOINT}" in printed
    [motion] = Generator.from_pretrained(built, backend="torch").generate("two people shake hands", frames=20, seed=0)
    assert motion.joints.shape == (20, 2, 22, 3)
