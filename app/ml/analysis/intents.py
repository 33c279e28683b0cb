"""Intents from the catalogue: phrase hits in any of the three languages, and for English turns
the meaning-level match of MiniLM embeddings against the catalogue's examples."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.core.enums import SpeakerRole
from app.ml.analysis import text as tx
from app.ml.analysis.catalog import Catalog
from app.ml.analysis.models import minilm
from app.ml.analysis.phrases import PhraseIndex
from app.ml.types import Intent

# Probability that one phrase hit means the call has that intent. Customers state their reason
# for calling; agents often only echo it back, so their phrases count for less.
_HIT_WEIGHT = {SpeakerRole.CUSTOMER: 0.6, SpeakerRole.UNKNOWN: 0.5, SpeakerRole.AGENT: 0.3}
_EMBEDDING_FLOOR = 0.5
"""Cosine similarity below which an English turn is not taken as an example's paraphrase."""
_EMBEDDING_MIN_WORDS = 4
MAX_EMBEDDED_TURNS = 120
"""English turns embedded per call (earliest first): callers state their reason early, and the
cap keeps an hour-long call inside the time budget."""


@dataclass(frozen=True, slots=True)
class IntentTurn:
    """What the intent matcher needs of one segment."""

    text: str
    language: str
    role: SpeakerRole


class IntentMatcher:
    """Built once per catalogue; `match` is cheap."""

    def __init__(self, catalog: Catalog, *, embeddings: bool) -> None:
        self._catalog = catalog
        self._index = PhraseIndex(
            (phrase, spec.name)
            for spec in catalog.intents
            for phrases in spec.phrases.values()
            for phrase in phrases
        )
        self._embeddings = embeddings and any(spec.examples for spec in catalog.intents)
        self._examples: tuple[list[str], Any] | None = None

    def match(self, turns: Sequence[IntentTurn], min_confidence: float) -> list[Intent]:
        hits: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for index, turn in enumerate(turns):
            words = tx.uz_tokens(turn.text) if turn.language == "uz" else tx.tokens(turn.text)
            weight = _HIT_WEIGHT[turn.role]
            for name in {name for name, _ in self._index.find(words)}:
                hits[name].append((index, weight))
        if self._embeddings:
            for name, index, weight in self._embedding_hits(turns):
                hits[name].append((index, weight))
        intents: list[Intent] = []
        for name, evidence in hits.items():
            miss = 1.0
            for _, probability in evidence:
                miss *= 1.0 - probability
            confidence = round(1.0 - miss, 3)
            if confidence >= min_confidence:
                indices = tuple(sorted({i for i, _ in evidence}))
                intents.append(Intent(name=name, confidence=confidence, evidence=indices))
        intents.sort(key=lambda intent: (-intent.confidence, intent.name))
        return intents

    def _example_matrix(self) -> tuple[list[str], Any]:
        if self._examples is None:
            specs = self._catalog.intents
            names = [spec.name for spec in specs for _ in spec.examples]
            sentences = [example for spec in specs for example in spec.examples]
            vectors = minilm().encode(
                sentences, batch_size=32, normalize_embeddings=True, show_progress_bar=False
            )
            self._examples = (names, np.asarray(vectors))
        return self._examples

    def _embedding_hits(self, turns: Sequence[IntentTurn]) -> list[tuple[str, int, float]]:
        chosen = [
            i
            for i, turn in enumerate(turns)
            if turn.language == "en"
            and turn.role is not SpeakerRole.AGENT
            and tx.word_count(turn.text) >= _EMBEDDING_MIN_WORDS
        ][:MAX_EMBEDDED_TURNS]
        if not chosen:
            return []
        names, examples = self._example_matrix()
        vectors = minilm().encode(
            [turns[i].text for i in chosen],
            batch_size=32,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        similarity = np.asarray(vectors) @ examples.T
        hits: list[tuple[str, int, float]] = []
        for row, index in enumerate(chosen):
            best = int(np.argmax(similarity[row]))
            score = float(similarity[row, best])
            if score >= _EMBEDDING_FLOOR:
                # 0.5 -> 0.4, 0.55 -> 0.55, 0.6 -> 0.7: MiniLM puts loose topical neighbours
                # near 0.4 and paraphrases above 0.55.
                probability = min(0.9, 0.4 + (score - _EMBEDDING_FLOOR) * 3.0)
                probability *= _HIT_WEIGHT[turns[index].role] / _HIT_WEIGHT[SpeakerRole.CUSTOMER]
                hits.append((names[best], index, probability))
        return hits
