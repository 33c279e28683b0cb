"""Telling the agent by voice, and finding the voice that recurs across an agent's calls.

Cosine similarity of unit-length speaker centroids. With the local diarizer's GE2E encoder,
measured on two-party calls assembled from the shared single-speaker recordings (USC,
Picovoice, LibriSpeech voices): one agent's centroids in different calls 0.92-0.98, the
agent against anyone else 0.50-0.72. The thresholds sit in that gap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from app.ml.types import RoleDecision, RoleSource, SpeakerEmbeddings, SpeakerRole

FloatArray = npt.NDArray[np.float32]

MATCH_SIMILARITY = 0.80
"""A speaker this similar to the voiceprint can be the agent..."""
MATCH_MARGIN = 0.08
"""...when no other speaker of the call comes within this of them."""
RECURRING_SIMILARITY = 0.80
"""Voices of different calls at least this similar are taken to be one person."""
MIN_SAMPLE_SPEECH_S = 2.0
"""A speaker with less speech than this in a call says too little to learn from."""


@dataclass(frozen=True, slots=True)
class AgentVoice:
    """What matching needs of an agent's voiceprint."""

    model: str
    vector: FloatArray
    calls: int


def unit(vector: npt.NDArray[np.floating]) -> FloatArray:
    norm = float(np.linalg.norm(vector))
    return (np.asarray(vector, dtype=np.float64) / max(norm, 1e-12)).astype(np.float32)


def mean_voice(vectors: Sequence[FloatArray], weights: Sequence[float] | None = None) -> FloatArray:
    """The unit-length (weighted) mean of unit-length vectors."""
    stacked = np.stack([np.asarray(v, dtype=np.float64) for v in vectors])
    w = np.asarray(weights if weights is not None else [1.0] * len(vectors), dtype=np.float64)
    return unit((stacked * w[:, None]).sum(axis=0))


def match_agent(embeddings: SpeakerEmbeddings, voice: AgentVoice) -> dict[str, RoleDecision]:
    """Roles of a mono call's speakers by voice: the one matching `voice` is AGENT, the
    others CUSTOMER; empty when the voice cannot decide (another encoder, no speaker close
    enough, two speakers too alike), so words decide instead.

    Confidence: 0.5 at the match threshold rising to 1 at a perfect match, scaled down when
    the runner-up comes close."""
    if embeddings.model != voice.model or not embeddings.vectors:
        return {}
    scores = {
        speaker: float(np.dot(vector, voice.vector))
        for speaker, vector in embeddings.vectors.items()
        if embeddings.speech_s.get(speaker, MIN_SAMPLE_SPEECH_S) >= MIN_SAMPLE_SPEECH_S / 2
    }
    if not scores:
        return {}
    ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)
    best_speaker, best = ranked[0]
    runner_up = ranked[1][1] if len(ranked) > 1 else -1.0
    if best < MATCH_SIMILARITY or best - runner_up < MATCH_MARGIN:
        return {}
    closeness = 0.5 + 0.5 * (best - MATCH_SIMILARITY) / (1.0 - MATCH_SIMILARITY)
    separation = min(1.0, (best - runner_up) / (2 * MATCH_MARGIN))
    confidence = round(float(np.clip(closeness * separation, 0.0, 1.0)), 3)
    return {
        speaker: RoleDecision(
            SpeakerRole.AGENT if speaker == best_speaker else SpeakerRole.CUSTOMER,
            RoleSource.VOICE,
            confidence,
        )
        for speaker in embeddings.vectors
    }


def recurring_voice(calls: Sequence[Mapping[str, FloatArray]]) -> list[str] | None:
    """The speaker of each call whose voice recurs in every call (the agent's), or None
    when no one voice is in all of them. Needs at least two calls: a single call cannot say
    which of its voices is the agent's.

    Each speaker of each call is tried as the seed; every call contributes its speaker most
    similar to the seed; the seed whose picks agree best wins, and the picks are redone
    against their own mean. Accepted only when every pick is at least
    RECURRING_SIMILARITY to that mean and clearly closer than the call's other voices."""
    if len(calls) < 2 or any(not call for call in calls):
        return None
    best: tuple[float, list[str]] | None = None
    for seed_call in calls:
        for seed in seed_call.values():
            picks = [_closest(call, seed) for call in calls]
            centre = mean_voice([call[p] for call, p in zip(calls, picks, strict=True)])
            picks = [_closest(call, centre) for call in calls]
            centre = mean_voice([call[p] for call, p in zip(calls, picks, strict=True)])
            agreement = min(
                float(np.dot(call[p], centre)) for call, p in zip(calls, picks, strict=True)
            )
            if best is None or agreement > best[0]:
                best = (agreement, picks)
    assert best is not None
    agreement, picks = best
    if agreement < RECURRING_SIMILARITY:
        return None
    centre = mean_voice([call[p] for call, p in zip(calls, picks, strict=True)])
    for call, pick in zip(calls, picks, strict=True):
        own = float(np.dot(call[pick], centre))
        others = [float(np.dot(v, centre)) for s, v in call.items() if s != pick]
        if others and own - max(others) < MATCH_MARGIN:
            return None
    return picks


def _closest(call: Mapping[str, FloatArray], target: FloatArray) -> str:
    """The speaker of `call` whose voice is most similar to `target`."""
    return max(call, key=lambda speaker: float(np.dot(call[speaker], target)))
