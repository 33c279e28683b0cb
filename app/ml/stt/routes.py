"""Which speech-to-text model transcribes which language: the `STT_MODELS` routes.

Syntax (comma-separated routes; spaces ignored):

    STT_MODELS="uz=onnx:/models/gigaam-multilingual,ru=onnx[gigaam-v3-ctc]:/models/gigaam-v3,en=faster-whisper:bundled-tiny.en"
    STT_MODELS="uz+ru=onnx:/models/gigaam-multilingual,en=faster-whisper:bundled-base"
    STT_MODELS="uz=aisha,ru=openai,en=faster-whisper:/models/whisper-small-ct2"

Each route is `LANGUAGES=BACKEND[:MODEL]`: one or more ISO 639-1 codes joined by `+` (all of
them must be in `LANGUAGES`), a backend (`faster-whisper`, `onnx`, `transformers`, `openai`,
`aisha`) and the backend's model: for `faster-whisper` `bundled-base`, `bundled-tiny.en`, a
CTranslate2 directory or a Hub name; for `onnx` a directory exported for onnx-asr, with the
onnx-asr model type in brackets when the directory's `config.json` does not name it; for the
hosted APIs an optional model name. Routes naming the same backend and model share one loaded
model. A configured language with no route is not transcribed: its turns keep speaker, times
and language, with empty text, and the call gets a warning.

Without `STT_MODELS`, `STT_BACKEND`/`STT_MODEL` keep their meaning as the single-model case
(one model for every configured language) when either is set; with neither, the defaults
below apply (chosen by measurement, see docs/languages.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app.ml.stt.bundled import BUNDLED_MODELS, model_dir
from app.ml.stt.languages import WHISPER_LANGUAGES, language_name

if TYPE_CHECKING:
    from app.ml.settings import PipelineSettings

BACKENDS = ("faster-whisper", "onnx", "transformers", "openai", "aisha")
BUNDLED_TINY_EN = "bundled-tiny.en"
BUNDLED_BASE = "bundled-base"


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One speech-to-text model as configured (not yet loaded)."""

    backend: str
    model: str | None = None
    """Backend-specific: a bundled name, a path, a Hub or API model name; None = default."""
    onnx_type: str | None = None
    """onnx-asr model type (`gigaam-v3-ctc`, `nemo-conformer-rnnt`, ...) for `onnx`."""

    @property
    def name(self) -> str:
        kind = f"{self.backend}[{self.onnx_type}]" if self.onnx_type else self.backend
        return f"{kind}:{self.model}" if self.model else kind

    @property
    def path(self) -> Path | None:
        """The local directory the model is read from, when it is one."""
        if self.backend == "faster-whisper" and self.model == BUNDLED_BASE:
            return model_dir(BUNDLED_MODELS[BUNDLED_BASE])
        local = self.model is not None and (
            self.backend == "onnx"
            or (
                self.backend in {"faster-whisper", "transformers"}
                and self.model.startswith(("/", ".", "~"))
            )
        )
        return Path(self.model).expanduser() if local and self.model else None

    @property
    def expected_sha256(self) -> str | None:
        """The pinned hash of `model.bin` for a bundled model; None otherwise."""
        if self.backend == "faster-whisper" and self.model in BUNDLED_MODELS:
            return BUNDLED_MODELS[self.model].model_sha256
        return None


DEFAULT_ROUTES: dict[str, ModelSpec] = {
    "ru": ModelSpec("faster-whisper", BUNDLED_BASE),
    "en": ModelSpec("faster-whisper", BUNDLED_TINY_EN),
}
"""The offline default, chosen by measurement (bench/languages.py, docs/benchmarks.md):
Whisper base (multilingual, assembled at install) for Russian; Whisper tiny.en for English,
which matched base on the telephone-band English copies (10.6 % WER), beat it on the clean
references (7.2 % against 10.6 %) and ran 1.4-3x faster. No model that ships in a package
transcribes Uzbek usably, so `uz` has none and its turns are marked and reported
(docs/languages.md)."""


@dataclass(frozen=True, slots=True)
class ModelDescription:
    """A configured model as `ovozly models list` and `worker --check` show it."""

    name: str
    backend: str
    languages: tuple[str, ...]
    path: Path | None
    expected_sha256: str | None


@dataclass(frozen=True, slots=True)
class SttRoutes:
    languages: tuple[str, ...]
    """The centre's languages (LANGUAGES), in configured order."""
    routes: dict[str, ModelSpec]
    """Language -> model, for the configured languages that have one."""
    explicit: bool = False
    """The routes came from STT_MODELS: a route a model cannot serve is an error rather
    than a language left untranscribed."""

    def models(self) -> list[ModelSpec]:
        """Each distinct model once, in route order."""
        seen: list[ModelSpec] = []
        for spec in self.routes.values():
            if spec not in seen:
                seen.append(spec)
        return seen

    def languages_of(self, spec: ModelSpec) -> tuple[str, ...]:
        return tuple(code for code, routed in self.routes.items() if routed == spec)

    def describe(self) -> list[ModelDescription]:
        """One typed description per configured model (the single place to list them)."""
        return [
            ModelDescription(
                name=spec.name,
                backend=spec.backend,
                languages=self.languages_of(spec),
                path=spec.path,
                expected_sha256=spec.expected_sha256,
            )
            for spec in self.models()
        ]

    def unrouted(self) -> tuple[str, ...]:
        return tuple(code for code in self.languages if code not in self.routes)


_MODEL_PATTERN = re.compile(
    r"^(?P<backend>[a-z-]+)(?:\[(?P<type>[A-Za-z0-9._/-]+)\])?(?::(?P<model>.+))?$"
)


def parse_stt_models(value: str, languages: tuple[str, ...]) -> dict[str, ModelSpec]:
    """Parse STT_MODELS; raises ValueError with the route at fault and how to fix it."""
    routes: dict[str, ModelSpec] = {}
    for raw in value.split(","):
        item = raw.strip()
        if not item:
            continue
        left, equals, right = item.partition("=")
        if not equals or not left.strip() or not right.strip():
            raise ValueError(
                f"STT_MODELS route {item!r} is not LANGUAGE=BACKEND[:MODEL], "
                "e.g. uz=onnx:/models/gigaam-multilingual"
            )
        match = _MODEL_PATTERN.match(right.strip())
        if match is None or match["backend"] not in BACKENDS:
            raise ValueError(
                f"STT_MODELS route {item!r}: unknown backend in {right.strip()!r}; "
                f"use one of {', '.join(BACKENDS)}"
            )
        backend, onnx_type, model = match["backend"], match["type"], match["model"]
        if onnx_type and backend != "onnx":
            raise ValueError(f"STT_MODELS route {item!r}: a [type] is only for onnx models")
        if backend == "onnx" and not model:
            raise ValueError(
                f"STT_MODELS route {item!r}: onnx needs a model directory, "
                "e.g. uz=onnx:/models/gigaam-multilingual"
            )
        spec = ModelSpec(backend, model.strip() if model else None, onnx_type)
        for code in left.split("+"):
            code = code.strip().lower()
            if code not in WHISPER_LANGUAGES:
                raise ValueError(
                    f"STT_MODELS route {item!r}: unknown language code {code!r} "
                    "(use ISO 639-1 codes such as uz, ru, en)"
                )
            if code not in languages:
                raise ValueError(
                    f"STT_MODELS routes {code!r} ({language_name(code)}) but LANGUAGES is "
                    f"{','.join(languages)}: add {code} to LANGUAGES or remove the route"
                )
            if code in routes:
                raise ValueError(f"STT_MODELS routes {code!r} twice")
            routes[code] = spec
    return routes


def routes_from_settings(settings: PipelineSettings) -> SttRoutes:
    languages = settings.language_codes
    if settings.stt_models:
        return SttRoutes(languages, parse_stt_models(settings.stt_models, languages), explicit=True)
    if settings.stt_backend != "faster-whisper" or settings.stt_model is not None:
        single = ModelSpec(settings.stt_backend, settings.stt_model)
        return SttRoutes(languages, dict.fromkeys(languages, single))
    return SttRoutes(
        languages, {code: DEFAULT_ROUTES[code] for code in languages if code in DEFAULT_ROUTES}
    )
