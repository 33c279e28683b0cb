"""The worker's self-check: every configured model loaded on the configured device and run
once on a second of generated, speech-like audio, with load time, run time and memory.

    report = run_self_check(PipelineSettings(), AnalysisSettings())
    report.ok, report.checks[0].load_s

Models are loaded through the same process caches the pipeline and the analyzer use, so a
worker that checks itself at start-up then builds its pipeline without loading anything
twice. A model that is missing, corrupt, or does not fit the device fails here, at deploy
time, instead of inside the first call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from app.ml.compute import configure_threads, resolve_device
from app.ml.models.catalog import ModelSource, ModelSpec, required_models
from app.ml.speech.audio import SAMPLE_RATE, DecodedAudio
from app.ml.types import SpeakerHints

if TYPE_CHECKING:
    from app.ml.analysis.settings import AnalysisSettings
    from app.ml.settings import PipelineSettings
    from app.ml.stt.routes import ModelSpec as RouteModel

CHECK_SECONDS = 1.0
FloatArray = npt.NDArray[np.float32]


def speech_like_signal(seconds: float = CHECK_SECONDS, *, seed: int = 0) -> FloatArray:
    """16 kHz mono audio with the structure of speech, generated in memory.

    Four syllables, each a short noise burst (a consonant) followed by a voiced vowel: a
    glottal pulse train with a gliding pitch (120 to 180 Hz) shaped by three formant
    resonators (/a/, /i/, /o/, /e/-like), then a short pause. A steady vowel is not enough:
    Whisper answers a sustained "aaa" with a repetition loop that runs to its length limit
    at every fallback temperature, which turned a one-second check into minutes.
    """
    rng = np.random.default_rng(seed)
    vowels = ((700, 1200, 2600), (300, 2200, 2900), (500, 900, 2400), (400, 1900, 2600))
    pieces: list[npt.NDArray[np.float64]] = []
    for index, formants in enumerate(vowels):
        burst = _iir_filter([1.0, -0.9], [1.0], rng.normal(0, 1.0, int(0.05 * SAMPLE_RATE)))
        pieces.append(0.3 * burst / max(float(np.max(np.abs(burst))), 1e-9))
        n = int(0.16 * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        pitch_hz = 120 + 30 * np.sin(np.pi * t / 0.16) + 10 * index
        phase = np.cumsum(pitch_hz / SAMPLE_RATE)
        pulses = (np.diff(np.floor(phase), prepend=0.0) > 0).astype(np.float64)
        source = _iir_filter([1.0], [1.0, -0.95], pulses)  # glottal roll-off
        vowel = np.zeros(n)
        for frequency, bandwidth in zip(formants, (90, 110, 160), strict=True):
            r = np.exp(-np.pi * bandwidth / SAMPLE_RATE)
            theta = 2 * np.pi * frequency / SAMPLE_RATE
            vowel += _iir_filter([1 - r], [1, -2 * r * np.cos(theta), r * r], source)
        vowel *= np.hanning(n)
        pieces.append(vowel / max(float(np.max(np.abs(vowel))), 1e-9))
        pieces.append(np.zeros(int(0.04 * SAMPLE_RATE)))
    total = int(seconds * SAMPLE_RATE)
    signal = np.concatenate(pieces)
    signal = np.pad(signal, (0, max(0, total - signal.size)))[:total]
    signal += rng.normal(0, 0.002, signal.size)
    signal *= 0.5 / max(float(np.max(np.abs(signal))), 1e-9)
    return signal.astype(np.float32)


def _iir_filter(
    b: Sequence[float], a: Sequence[float], x: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """`scipy.signal.lfilter(b, a, x)` for the filters above (a[0] == 1, at most two
    poles): importing scipy.signal costs about a second of a worker's start-up."""
    feed_forward = np.convolve(x, b)[: x.size].tolist()
    a1 = a[1] if len(a) > 1 else 0.0
    a2 = a[2] if len(a) > 2 else 0.0
    out = [0.0] * len(feed_forward)
    y1 = y2 = 0.0
    for n, value in enumerate(feed_forward):
        y = value - a1 * y1 - a2 * y2
        out[n] = y
        y1, y2 = y, y1
    return np.asarray(out, dtype=np.float64)


@dataclass(slots=True)
class ModelCheck:
    role: str
    name: str
    source: str
    device: str
    ok: bool
    load_s: float = 0.0
    run_s: float = 0.0
    memory_mb: float | None = None
    """Resident memory the load added (GPU memory on CUDA); None for hosted services."""
    detail: str = ""
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class SelfCheckReport:
    device: str | None
    checks: list[ModelCheck] = field(default_factory=list)
    total_s: float = 0.0
    error: str | None = None
    """A failure before any model (an unusable DEVICE setting, invalid settings)."""
    memory_mb: float | None = None
    """Resident memory the whole check added, when its models loaded concurrently (their
    own `memory_mb` is then None: overlapping loads cannot be told apart)."""

    @property
    def ok(self) -> bool:
        return self.error is None and all(check.ok for check in self.checks)

    @property
    def failures(self) -> list[str]:
        problems = [self.error] if self.error else []
        return problems + [f"{c.role} ({c.name}): {c.error}" for c in self.checks if not c.ok]

    def summary(self) -> str:
        if not self.ok:
            return "model check FAILED: " + "; ".join(self.failures)
        local = [c for c in self.checks if c.source != ModelSource.HOSTED.value]
        return f"{len(local)} models loaded and run on {self.device} in {self.total_s:.1f} s" + (
            f" (+{len(self.checks) - len(local)} hosted)" if len(local) < len(self.checks) else ""
        )

    def joined(self, later: SelfCheckReport) -> SelfCheckReport:
        """This report followed by a later check's (the analysis models after the speech
        models): one report of every model."""
        return SelfCheckReport(
            device=self.device,
            checks=[*self.checks, *later.checks],
            total_s=self.total_s + later.total_s,
            error=self.error or later.error,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "device": self.device,
            "totalS": round(self.total_s, 3),
            "memoryMb": None if self.memory_mb is None else round(self.memory_mb, 1),
            "error": self.error,
            "models": [check.as_dict() for check in self.checks],
        }

    def table(self) -> str:
        header = f"{'ROLE':<20} {'MODEL':<42} {'DEVICE':<7} {'LOAD':>7} {'RUN':>7} {'MEMORY':>9}"
        lines = [f"  {header}  RESULT"]
        for c in self.checks:
            memory = "-" if c.memory_mb is None else f"{c.memory_mb:.0f} MB"
            result = ("ok: " + c.detail) if c.ok else f"FAILED: {c.error}"
            lines.append(
                f"  {c.role:<20} {c.name[:42]:<42} {c.device:<7} {c.load_s:>6.2f}s "
                f"{c.run_s:>6.2f}s {memory:>9}  {result}"
            )
        if self.error:
            lines.append(f"  FAILED before loading any model: {self.error}")
        return "\n".join(lines)


class _Memory:
    """Resident memory of this process, or CUDA memory allocated by torch on a GPU."""

    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda")

    def now_mb(self) -> float:
        if self.cuda:
            import torch

            return float(torch.cuda.memory_allocated()) / 2**20
        import psutil

        return float(psutil.Process().memory_info().rss) / 2**20


Loader = Callable[[], Any]
Runner = Callable[[Any], str]


def run_self_check(
    pipeline: PipelineSettings,
    analysis: AnalysisSettings | None = None,
    *,
    speech: bool = True,
    concurrent: bool = False,
) -> SelfCheckReport:
    """Every model of the configuration; with `speech=False` only the analysis models
    (a worker checks those after it says ready, see app.workers.processor).

    With `concurrent=True` (a worker's start-up) the models whose load is native code that
    releases the GIL (CTranslate2's Whisper models, `NATIVE_LOADING_BACKENDS`) load and run
    in threads of their own while this thread imports torch and checks the others; every
    check still loads and runs its model, and a failure in a thread is reported as any
    other. Resident memory is then measured for the whole check (`memory_mb` of the
    report), not per model, since the loads overlap."""
    started = time.perf_counter()
    try:
        device = resolve_device(pipeline.device)
        specs = required_models(pipeline, analysis)
        if not speech:
            specs = specs[len(required_models(pipeline)) :]
    except Exception as exc:
        return SelfCheckReport(device=None, error=str(exc))
    report = SelfCheckReport(device=device)
    signal = speech_like_signal()
    memory = _Memory(device)
    before_mb = memory.now_mb()
    threaded = [concurrent and _loads_natively(spec) for spec in specs]
    per_model = None if any(threaded) else memory
    checks: list[Callable[[], ModelCheck]] = [
        _check_step(spec, pipeline, device, signal, per_model) for spec in specs
    ]
    with ThreadPoolExecutor(
        max_workers=max(1, sum(threaded)), thread_name_prefix="model-check"
    ) as pool:
        # Imports torch: before CTranslate2, as `import_backend` explains.
        configure_threads(pipeline.cpu_threads)
        if any(threaded):
            from app.ml.stt import import_backend

            for backend in {route.backend for route in _threaded_routes(specs, threaded)}:
                import_backend(backend)
        # Threads first: their native loads run while this thread checks the rest.
        futures = {i: pool.submit(check) for i, check in enumerate(checks) if threaded[i]}
        results = {i: check() for i, check in enumerate(checks) if not threaded[i]}
        results |= {i: future.result() for i, future in futures.items()}
    report.checks = [results[i] for i in range(len(checks))]
    # Importing silero_vad pins torch to one thread; restore the configured count.
    configure_threads(pipeline.cpu_threads)
    if per_model is None:
        report.memory_mb = max(memory.now_mb() - before_mb, 0.0)
    report.total_s = time.perf_counter() - started
    return report


def _threaded_routes(specs: Sequence[ModelSpec], threaded: Sequence[bool]) -> list[RouteModel]:
    return [
        spec.stt_route
        for spec, in_thread in zip(specs, threaded, strict=True)
        if in_thread and spec.stt_route is not None
    ]


def _loads_natively(spec: ModelSpec) -> bool:
    from app.ml.stt import NATIVE_LOADING_BACKENDS

    return spec.stt_route is not None and spec.stt_route.backend in NATIVE_LOADING_BACKENDS


def _check_step(
    spec: ModelSpec,
    pipeline: PipelineSettings,
    device: str,
    signal: FloatArray,
    memory: _Memory | None,
) -> Callable[[], ModelCheck]:
    """One model's check, ready to run in any thread."""
    if spec.source is ModelSource.HOSTED:
        hosted = ModelCheck(
            spec.role,
            spec.name,
            spec.source.value,
            "remote",
            ok=True,
            detail="hosted service: no local model; not contacted by the check",
        )
        return lambda: hosted

    def check() -> ModelCheck:
        # The steps import their model's modules: in the thread that runs the check.
        load, run = _steps(spec, pipeline, device, signal)
        return _check(spec, device, load, run, memory)

    return check


def _check(
    spec: ModelSpec, device: str, load: Loader, run: Runner, memory: _Memory | None
) -> ModelCheck:
    """Loads and runs one model; any failure becomes the check's error (never raised)."""
    check = ModelCheck(spec.role, spec.name, spec.source.value, device, ok=False)
    before = memory.now_mb() if memory else 0.0
    start = time.perf_counter()
    try:
        model = load()
        check.load_s = time.perf_counter() - start
        if memory is not None:
            check.memory_mb = max(memory.now_mb() - before, 0.0)
        start = time.perf_counter()
        check.detail = run(model)
        check.run_s = time.perf_counter() - start
        check.ok = True
    except Exception as exc:
        check.error = f"{type(exc).__name__}: {exc}"
    return check


def _vad_steps(
    spec: ModelSpec, pipeline: PipelineSettings, device: str, signal: FloatArray
) -> tuple[Loader, Runner]:
    from app.ml.compute import MODELS
    from app.ml.speech.vad import SileroVad

    def run_vad(vad: SileroVad) -> str:
        regions = vad(signal)
        speech = sum(end - start for start, end in regions)
        return f"{speech:.2f} s of speech found in {CHECK_SECONDS:.0f} s"

    return (lambda: MODELS.get(("silero-vad",), SileroVad)), run_vad


def _embedder_steps(
    spec: ModelSpec, pipeline: PipelineSettings, device: str, signal: FloatArray
) -> tuple[Loader, Runner]:
    from app.ml.diarization import speaker_embedder

    def run_embedder(embedder: Any) -> str:
        vectors = embedder.embed(embedder.mel(signal)[None, :, :])
        return f"{vectors.shape[-1]}-dim voice embedding"

    return (lambda: speaker_embedder(device)), run_embedder


def _diarizer_steps(
    spec: ModelSpec, pipeline: PipelineSettings, device: str, signal: FloatArray
) -> tuple[Loader, Runner]:
    from app.ml.compute import MODELS
    from app.ml.diarization import build_mono_diarizer
    from app.ml.speech.vad import SileroVad

    def run_diarizer(diarizer: Any) -> str:
        audio = DecodedAudio(signal[None, :], 1, SAMPLE_RATE)
        result = diarizer(audio, hints=SpeakerHints())
        return f"{len(result.turns)} turns"

    return (
        lambda: build_mono_diarizer(pipeline, device, MODELS.get(("silero-vad",), SileroVad))
    ), run_diarizer


def _stt_steps(
    spec: ModelSpec, pipeline: PipelineSettings, device: str, signal: FloatArray
) -> tuple[Loader, Runner]:
    from app.ml.stt import load_model

    route = spec.stt_route
    assert route is not None, "speech-to-text specs carry their route"
    purpose = ", ".join(spec.languages) or "language identification"

    def run_stt(stt: Any) -> str:
        if getattr(stt, "is_multilingual", False) and hasattr(stt, "language_probabilities"):
            # The encoder over the check's second and one decoder step: proof the model
            # runs, at ~0.2 s instead of a 30 s padded window decoded to the end.
            ranked: dict[str, float] = stt.language_probabilities(signal)
            best = max(ranked, key=lambda code: ranked[code])
            routes = "+".join(spec.languages) or "language identification"
            return f"encoder and decoder run (language {best}); routes {routes}"
        if not spec.languages:
            detected = stt.detect_language(signal, [(0.0, CHECK_SECONDS)])
            return f"language identification answers ({detected[0] if detected else '-'})"
        # An English-only model given every language (STT_MODEL without routes) is
        # only ever sent English turns: check it on English.
        english_only = not getattr(stt, "is_multilingual", True)
        language = pipeline.stt_language or ("en" if english_only else spec.languages[0])
        if hasattr(stt, "decoder_step"):
            # The encoder over the check's second and one decoder step, as above: a
            # padded 30 s window decoded to the end took seconds of a worker's start.
            stt.decoder_step(signal, language)
            return f"encoder and decoder run ({language}); routes {'+'.join(spec.languages)}"
        result = stt.transcribe(signal, regions=[(0.0, CHECK_SECONDS)], language=language)
        return (
            f"transcribed as {language} ({len(result.words)} words); "
            f"routes {'+'.join(spec.languages)}"
        )

    return (lambda: load_model(route, pipeline, device, purpose=purpose)), run_stt


def _language_id_steps(
    spec: ModelSpec, pipeline: PipelineSettings, device: str, signal: FloatArray
) -> tuple[Loader, Runner]:
    from app.ml.analysis import language

    def run_language(_: Any) -> str:
        guess = language.detect_segment("Assalomu alaykum, sizga qanday yordam bera olaman?")
        return f"language identification answers ({guess.code})"

    return (lambda: language.detect_segment("прогрев")), run_language


def _minilm_steps(
    spec: ModelSpec, pipeline: PipelineSettings, device: str, signal: FloatArray
) -> tuple[Loader, Runner]:
    from app.ml.analysis.models import minilm

    def run_minilm(model: Any) -> str:
        vectors = model.encode(["I want to close my account"], show_progress_bar=False)
        return f"{vectors.shape[-1]}-dim sentence embedding"

    return minilm, run_minilm


def _natasha_steps(
    spec: ModelSpec, pipeline: PipelineSettings, device: str, signal: FloatArray
) -> tuple[Loader, Runner]:
    from app.ml.analysis.models import natasha

    def run_natasha(models: Any) -> str:
        spans = models[1]("Меня зовут Анна Петрова").spans
        return f"{len(spans)} name(s) found in a test sentence"

    return natasha, run_natasha


if TYPE_CHECKING:
    StepsFor = Callable[[ModelSpec, PipelineSettings, str, FloatArray], tuple[Loader, Runner]]
_STEPS_BY_ROLE: dict[str, StepsFor] = {
    "vad": _vad_steps,
    "speaker-embeddings": _embedder_steps,
    "diarization": _diarizer_steps,
    "speech-to-text": _stt_steps,
    "speech-language-id": _stt_steps,
    "language-id": _language_id_steps,
    "sentence-embeddings": _minilm_steps,
    "names-ru": _natasha_steps,
}


def _steps(
    spec: ModelSpec, pipeline: PipelineSettings, device: str, signal: FloatArray
) -> tuple[Loader, Runner]:
    """How to load a role's model (through the process caches) and run it once."""
    steps = _STEPS_BY_ROLE.get(spec.role)
    if steps is None:
        raise ValueError(f"the self-check has no step for model role {spec.role!r}")
    return steps(spec, pipeline, device, signal)
