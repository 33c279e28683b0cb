"""Benchmark of the local analyzer on the labelled calls in bench/data/analysis_calls.yaml.

    python -m bench.analysis [--no-embeddings] [--json]

Reports language and sentiment accuracy, intent precision/recall/F1 (micro), entity F1 per
type (values before PII masking; cards and accounts are always masked), and the
time and memory to analyse a one-hour transcript on one core (warm models).
Targets: language >= 0.97, sentiment >= 0.80, pattern-entity F1 >= 0.90 (phone,
email, money, card, date), intent F1 >= 0.80, one hour in < 2 s.
"""

from __future__ import annotations

import os

# One core, as the target says; must be set before numpy/torch start their thread pools.
for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import yaml  # noqa: E402

from app.ml.analysis.local import LocalAnalyzer  # noqa: E402
from app.ml.analysis.models import warm_up  # noqa: E402
from app.ml.analysis.settings import AnalysisSettings  # noqa: E402
from app.ml.types import CallInsight, Transcript, TranscriptSegment  # noqa: E402

DATA = Path(__file__).resolve().parent / "data" / "analysis_calls.yaml"
WORDS_PER_SECOND = 2.6
GAP_S = 0.4
PATTERN_TYPES = ("PHONE", "EMAIL", "MONEY", "CARD", "DATE")
SURFACE_TYPES = frozenset({"DATE", "TIME", "PERSON", "ORG", "LOCATION"})
TARGETS = {"language": 0.97, "sentiment": 0.80, "intent_f1": 0.80, "pattern_entity_f1": 0.90}


@dataclass(slots=True)
class Call:
    id: str
    language: str
    sentiment: str
    intents: set[str]
    entities: list[tuple[str, str]]
    turns: list[tuple[str, str]]


@dataclass(slots=True)
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, tp: int, fp: int, fn: int) -> None:
        self.tp, self.fp, self.fn = self.tp + tp, self.fp + fp, self.fn + fn

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass(slots=True)
class Report:
    calls: int = 0
    language_ok: int = 0
    sentiment_ok: int = 0
    intents: Counts = field(default_factory=Counts)
    entities: dict[str, Counts] = field(default_factory=lambda: defaultdict(Counts))
    errors: list[str] = field(default_factory=list)


def load_calls(path: Path = DATA) -> list[Call]:
    raw = yaml.safe_load(path.read_text("utf-8"))
    calls: list[Call] = []
    for item in raw["calls"]:
        gold = [*item.get("entities", []), *item.get("extra_entities", [])]
        calls.append(
            Call(
                id=item["id"],
                language=item["language"],
                sentiment=item["sentiment"],
                intents=set(item["intents"]),
                entities=[(e["type"], str(e["value"])) for e in gold],
                turns=[(speaker, text) for speaker, text in item["turns"]],
            )
        )
    return calls


def to_transcript(turns: list[tuple[str, str]], offset_s: float = 0.0, tag: str = "") -> Transcript:
    segments: list[TranscriptSegment] = []
    clock = offset_s
    for speaker, text in turns:
        duration = max(0.8, len(text.split()) / WORDS_PER_SECOND)
        label = f"{tag}SPEAKER_0{0 if speaker == 'A' else 1}"
        segments.append(TranscriptSegment(label, round(clock, 2), round(clock + duration, 2), text))
        clock += duration + GAP_S
    return Transcript(segments=segments, duration_s=round(clock, 2))


def _norm(value: str) -> str:
    return re.sub(r"[\s.,]+", " ", value.lower()).strip()


def _matches(kind: str, gold: str, predicted: str) -> bool:
    if kind in SURFACE_TYPES:  # spans as spoken: either may include a word more
        g, p = _norm(gold), _norm(predicted)
        return bool(g) and bool(p) and (g in p or p in g)
    return gold.lower() == predicted.lower()


def score_call(call: Call, insight: CallInsight, report: Report) -> None:
    analysis = insight.analysis
    report.calls += 1
    if analysis.language == call.language:
        report.language_ok += 1
    else:
        report.errors.append(f"{call.id}: language {analysis.language} != {call.language}")
    if analysis.sentiment.value == call.sentiment:
        report.sentiment_ok += 1
    else:
        report.errors.append(
            f"{call.id}: sentiment {analysis.sentiment.value} ({analysis.sentiment_score:+.2f})"
            f" != {call.sentiment}"
        )
    predicted = {intent.name for intent in analysis.intents}
    report.intents.add(
        len(predicted & call.intents), len(predicted - call.intents), len(call.intents - predicted)
    )
    if predicted != call.intents:
        report.errors.append(f"{call.id}: intents {sorted(predicted)} != {sorted(call.intents)}")
    found = [(e.type, e.value) for e in analysis.entities]
    kinds = {kind for kind, _ in call.entities} | {kind for kind, _ in found}
    for kind in kinds:
        gold = [value for k, value in call.entities if k == kind]
        mine = [value for k, value in found if k == kind]
        used: set[int] = set()
        tp = 0
        for value in gold:
            hit = next(
                (i for i, p in enumerate(mine) if i not in used and _matches(kind, value, p)), None
            )
            if hit is not None:
                used.add(hit)
                tp += 1
            else:
                report.errors.append(f"{call.id}: missed {kind} {value!r}")
        for i, value in enumerate(mine):
            if i not in used:
                report.errors.append(f"{call.id}: spurious {kind} {value!r}")
        report.entities[kind].add(tp, len(mine) - tp, len(gold) - tp)


def hour_transcript(calls: list[Call], seconds: float = 3600.0) -> Transcript:
    """Labelled calls back to back until an hour is filled (speakers kept apart per call)."""
    segments: list[TranscriptSegment] = []
    clock = 0.0
    round_number = 0
    while clock < seconds:
        for call in calls:
            part = to_transcript(call.turns, clock, tag=f"{call.id}-{round_number}-")
            segments += part.segments
            clock = part.duration_s + 1.0
            if clock >= seconds:
                break
        round_number += 1
    return Transcript(segments=segments, duration_s=clock)


def run(*, embeddings: bool, redact: bool) -> dict[str, Any]:
    settings = AnalysisSettings(intent_embeddings=embeddings, redact_pii=redact, _env_file=None)
    analyzer = LocalAnalyzer(settings)
    calls = load_calls()

    started = time.perf_counter()
    warm_up(embeddings=embeddings)  # lingua (both scripts), VADER, MiniLM, natasha
    analyzer.analyze(to_transcript(calls[0].turns))
    load_s = time.perf_counter() - started

    report = Report()
    started = time.perf_counter()
    for call in calls:
        score_call(call, analyzer.analyze(to_transcript(call.turns)), report)
    per_call_s = (time.perf_counter() - started) / len(calls)

    hour = hour_transcript(calls)
    started_cpu = time.process_time()
    started = time.perf_counter()
    insight = analyzer.analyze(hour)
    hour_s = time.perf_counter() - started
    hour_cpu_s = time.process_time() - started_cpu
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    entity_f1 = {kind: round(c.f1, 3) for kind, c in sorted(report.entities.items())}
    pattern = Counts()
    for kind in PATTERN_TYPES:
        c = report.entities[kind]
        pattern.add(c.tp, c.fp, c.fn)
    return {
        "calls": report.calls,
        "language_accuracy": round(report.language_ok / report.calls, 3),
        "sentiment_accuracy": round(report.sentiment_ok / report.calls, 3),
        "intent_precision": round(report.intents.precision, 3),
        "intent_recall": round(report.intents.recall, 3),
        "intent_f1": round(report.intents.f1, 3),
        "entity_f1": entity_f1,
        "entity_support": {k: c.tp + c.fn for k, c in sorted(report.entities.items())},
        "pattern_entity_f1": round(pattern.f1, 3),
        "model_load_s": round(load_s, 2),
        "per_call_ms": round(per_call_s * 1000, 1),
        "hour": {
            "segments": len(hour.segments),
            "words": sum(len(s.text.split()) for s in hour.segments),
            "wall_s": round(hour_s, 3),
            "cpu_s": round(hour_cpu_s, 3),
            "intents": len(insight.analysis.intents),
        },
        "peak_rss_mib": round(peak_rss_mib),
        "errors": report.errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--no-embeddings", action="store_true", help="phrases only, no MiniLM")
    parser.add_argument(
        "--redact", action="store_true", help="score masked values (phones, emails) as stored"
    )
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    args = parser.parse_args()
    result = run(embeddings=not args.no_embeddings, redact=args.redact)
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return
    hour = result["hour"]
    print(f"calls: {result['calls']}")
    for key in ("language_accuracy", "sentiment_accuracy", "intent_f1", "pattern_entity_f1"):
        target = TARGETS[key.replace("_accuracy", "")]
        verdict = "ok" if result[key] >= target else "BELOW TARGET"
        print(f"{key}: {result[key]:.3f} (target {target}) {verdict}")
    print(
        f"intent precision/recall: {result['intent_precision']:.3f} / {result['intent_recall']:.3f}"
    )
    print("entity F1 per type (support):")
    for kind, f1 in result["entity_f1"].items():
        print(f"  {kind:9s} {f1:.3f} ({result['entity_support'][kind]})")
    print(f"model load: {result['model_load_s']} s; per short call: {result['per_call_ms']} ms")
    verdict = "ok" if hour["wall_s"] < 2.0 else "BELOW TARGET"
    print(
        f"1-hour transcript ({hour['segments']} segments, {hour['words']} words): "
        f"{hour['wall_s']} s wall, {hour['cpu_s']} s CPU (target < 2 s) {verdict}"
    )
    print(f"peak RSS: {result['peak_rss_mib']} MiB")
    if result["errors"]:
        print("misses:")
        for line in result["errors"]:
            print(f"  {line}")


if __name__ == "__main__":
    main()
