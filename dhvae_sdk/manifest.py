"""The ``manifest.json`` of an exported model directory: what the files are and how to trust them.

The exporter writes it last, so a directory without one is an unfinished export. The runtime
reads it before opening any graph: a missing file, a size or SHA-256 mismatch, a manifest of
another project or of an incompatible format version all stop loading with a
:class:`ModelFormatError` that names the directory and the fix.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from dhvae_sdk.atomic_file import atomic_output
from dhvae_sdk.errors import DHVAEError

MANIFEST_NAME = "manifest.json"
FORMAT_NAME = "dhvae-model"
# Bump the major when a reader of the old layout would misread the new one. 2: the released
# DHVAE architecture (condition of the text width, modulation rows of the latent width, the
# empty string's encoding as the null text); 1.x graphs were the retired architecture's.
# 2.1: the encoder graph also outputs the posterior's log-variances (2.0 readers use its first output).
FORMAT_VERSION = (2, 1)
_HASH_CHUNK = 1 << 22


class ModelFormatError(DHVAEError, ValueError):
    """A model directory or file that cannot be used as it is (corrupt, foreign, outdated)."""


@dataclass(frozen=True)
class ModelFile:
    """One graph or engine of the directory, with what it must hash to."""

    path: str
    sha256: str
    bytes: int


@dataclass(frozen=True)
class Manifest:
    """What an exported model directory holds."""

    directory: Path
    format_version: tuple[int, int]
    precision: str
    config: dict
    stats: dict[str, np.ndarray]
    latent_scales: np.ndarray
    null_text_embedding: np.ndarray
    files: dict[str, ModelFile]
    versions: dict[str, str]

    def file_path(self, role: str) -> Path:
        if role not in self.files:
            raise ModelFormatError(
                f"{self.directory / MANIFEST_NAME} lists no '{role}' file "
                f"(it has {sorted(self.files)}); re-export the model with `python -m export.to_onnx`"
            )
        return self.directory / self.files[role].path

    def to_json(self) -> dict:
        return {
            "format": FORMAT_NAME,
            "format_version": list(self.format_version),
            "precision": self.precision,
            "config": self.config,
            "stats": {name: values.tolist() for name, values in self.stats.items()},
            "latent_scales": self.latent_scales.tolist(),
            "null_text_embedding": self.null_text_embedding.tolist(),
            "files": {role: vars(entry) for role, entry in self.files.items()},
            "versions": self.versions,
        }


def toolchain_versions() -> dict[str, str]:
    """Installed versions of the packages an export depends on (read without importing them)."""
    found = {}
    for package in ("dhvae-sdk", "torch", "onnx", "onnxscript", "onnxruntime", "onnxruntime-gpu"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return found


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def describe_file(directory: Path, relative_path: str) -> ModelFile:
    path = Path(directory) / relative_path
    return ModelFile(relative_path, file_sha256(path), path.stat().st_size)


def write_manifest(manifest: Manifest) -> Path:
    """Writes ``manifest.json`` atomically (temp file in the same directory, then rename)."""
    target = Path(manifest.directory) / MANIFEST_NAME
    with atomic_output(target) as temp_path:
        temp_path.write_text(json.dumps(manifest.to_json(), indent=1))
    return target


def is_model_directory(path: Path) -> bool:
    return Path(path).is_dir() and (Path(path) / MANIFEST_NAME).is_file()


def read_manifest(directory: Path, verify_files: bool = True) -> Manifest:
    """Reads and validates ``directory/manifest.json``; with ``verify_files`` also every file's hash."""
    directory = Path(directory)
    manifest_path = directory / MANIFEST_NAME
    if not manifest_path.is_file():
        raise ModelFormatError(
            f"{directory} has no {MANIFEST_NAME}: it is not an exported dhvae model (or the export "
            "did not finish); export one with `python -m export.to_onnx CHECKPOINT --out DIR`"
        )
    try:
        raw = json.loads(manifest_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFormatError(f"{manifest_path} is not valid JSON ({error}); re-export the model") from error
    if not isinstance(raw, dict) or raw.get("format") != FORMAT_NAME:
        raise ModelFormatError(
            f"{manifest_path} is not a dhvae model manifest (format is "
            f"{raw.get('format') if isinstance(raw, dict) else type(raw).__name__!r}, expected {FORMAT_NAME!r})"
        )
    manifest = _parse(directory, manifest_path, raw)
    for role, entry in manifest.files.items():
        _check_file(directory, role, entry, verify_files)
    return manifest


def _parse(directory: Path, manifest_path: Path, raw: dict) -> Manifest:
    try:
        version = tuple(int(part) for part in raw["format_version"])
        if len(version) != 2:
            raise ValueError("format_version must be [major, minor]")
        if version[0] < FORMAT_VERSION[0]:
            raise ModelFormatError(
                f"{manifest_path} has format version {version[0]}.{version[1]}, an export of an older "
                f"model architecture that this dhvae_sdk (format {FORMAT_VERSION[0]}.x) cannot run; re-export "
                f"it from its checkpoint with this version's `python -m export.to_onnx CHECKPOINT --out DIR`"
            )
        if version[0] > FORMAT_VERSION[0]:
            raise ModelFormatError(
                f"{manifest_path} has format version {version[0]}.{version[1]}, newer than this dhvae_sdk "
                f"reads ({FORMAT_VERSION[0]}.x); upgrade dhvae-sdk or re-export with this version's `python -m export.to_onnx`"
            )
        files = {role: ModelFile(str(e["path"]), str(e["sha256"]), int(e["bytes"])) for role, e in raw["files"].items()}
        manifest = Manifest(
            directory=directory,
            format_version=version,
            precision=str(raw["precision"]),
            config=dict(raw["config"]),
            stats={name: np.asarray(values, dtype=np.float32) for name, values in raw["stats"].items()},
            latent_scales=np.asarray(raw["latent_scales"], dtype=np.float32),
            null_text_embedding=np.asarray(raw["null_text_embedding"], dtype=np.float32),
            files=files,
            versions={str(k): str(v) for k, v in raw["versions"].items()},
        )
        _check_arrays(manifest)
        return manifest
    except ModelFormatError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ModelFormatError(
            f"{manifest_path} is incomplete or malformed ({type(error).__name__}: {error}); re-export the model"
        ) from error


def _check_arrays(manifest: Manifest) -> None:
    """The numbers the runtime uses as they are: a null or NaN entry would otherwise turn
    every generated motion into NaN without an error."""
    feature_dim, text_width = int(manifest.config["vae"]["feature_dim"]), int(manifest.config["text"]["width"])
    expected = {"stats.mean": (manifest.stats.get("mean"), (feature_dim,)),
                "stats.std": (manifest.stats.get("std"), (feature_dim,)),
                "latent_scales": (manifest.latent_scales, (3,)),  # one per latent group a, b, g
                "null_text_embedding": (manifest.null_text_embedding, (text_width,))}
    for field, (values, shape) in expected.items():
        if values is None or values.shape != shape or not np.all(np.isfinite(values)):
            found = "missing" if values is None else f"shape {values.shape}, finite: {bool(np.all(np.isfinite(values)))}"
            raise ModelFormatError(
                f"{manifest.directory / MANIFEST_NAME}: {field} must be {shape[0]} finite numbers ({found}); "
                "the file was edited or damaged: re-export the model"
            )
    for field, values in (("stats.std", manifest.stats["std"]), ("latent_scales", manifest.latent_scales)):
        if not np.all(values > 0):
            raise ModelFormatError(
                f"{manifest.directory / MANIFEST_NAME}: {field} must be positive, got minimum {values.min()}; "
                "re-export the model"
            )


def _check_file(directory: Path, role: str, entry: ModelFile, verify_hash: bool) -> None:
    path = directory / entry.path
    if Path(entry.path).is_absolute() or ".." in Path(entry.path).parts:
        raise ModelFormatError(f"{directory / MANIFEST_NAME}: file '{entry.path}' points outside the model directory")
    if not path.is_file():
        raise ModelFormatError(f"{path} ({role}) is missing; copy the whole model directory or re-export it")
    size = path.stat().st_size
    if size != entry.bytes:
        raise ModelFormatError(
            f"{path} ({role}) is {size} bytes, the manifest says {entry.bytes}: the file is truncated or "
            "replaced; copy it again or re-export the model"
        )
    if verify_hash and file_sha256(path) != entry.sha256:
        raise ModelFormatError(
            f"{path} ({role}) does not match its SHA-256 in the manifest: the file is corrupt; "
            "copy it again or re-export the model"
        )
