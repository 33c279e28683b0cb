"""Telling the agent by voice, and finding the voice that recurs across an agent's calls.

Cosine similarity of unit-length speaker centroids, with thresholds per speaker encoder
(their similarities live on different scales), measured on the shared single-speaker
recordings (USC, Picovoice, LibriSpeech voices):
- the local diarizer's GE2E encoder: one agent's centroids in different assembled calls
  0.92-0.98, the agent against anyone else 0.50-0.72;
- the neural diarizer's CAM++: clips of one speaker 0.69-0.95 to each other and at least
  0.81 to the mean of their other clips, clips of different speakers at most 0.31.
The thresholds sit in those gaps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from app.core.enums import RoleSource, SpeakerRole
from app.ml.types import RoleDecision, SpeakerEmbeddings

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Thresholds:
    match: float
    """A speaker at least this similar to the voiceprint is the agent."""
    customer_distance: float
    """How far below `match` a speaker must be to be a customer with full confidence."""
    margin: float
    """When learning, the recurring voice of a call must be this much closer than the
    call's other voices."""
    recurring: float
    """Voices of different calls at least this similar are taken to be one person."""


THRESHOLDS: dict[str, Thresholds] = {
    "resemblyzer-ge2e-256": Thresholds(
        match=0.80, customer_distance=0.2, margin=0.08, recurring=0.80
    ),
    "campplus-cn-en-common-192": Thresholds(
        match=0.55, customer_distance=0.25, margin=0.15, recurring=0.65
    ),
}
"""Per speaker encoder (`SpeakerEmbeddings.model`); an encoder without an entry never
decides a role or enrols a voiceprint."""
MIN_SAMPLE_SPEECH_S = 1.0
"""A speaker with less speech than this in a call says too little to learn from. The local
diarizer counts 0.5 s per 1.5 s window, so 1.0 s is about 2 s of talk; dropping an agent who
said little leaves only the customer's voice in that call, and the agent then does not recur
in every call."""


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
    """Roles of a mono call's speakers by voice: every speaker matching `voice` is AGENT (a
    diarizer may split one voice into two speakers), the others CUSTOMER; empty when the
    voice cannot decide (another encoder, no speaker close enough, or every one of several
    speakers close), so words decide instead.

    Confidence: 0.5 at the match threshold, rising to 1 as a speaker's similarity moves
    away from it (towards a perfect match for AGENT, down by 0.2 or more for CUSTOMER)."""
    limits = THRESHOLDS.get(voice.model)
    if embeddings.model != voice.model or not embeddings.vectors or limits is None:
        return {}
    scores = {
        speaker: float(np.dot(vector, voice.vector))
        for speaker, vector in embeddings.vectors.items()
    }
    agents = {speaker for speaker, score in scores.items() if score >= limits.match}
    if not agents or (len(scores) > 1 and len(agents) == len(scores)):
        return {}
    decisions: dict[str, RoleDecision] = {}
    for speaker, score in scores.items():
        if speaker in agents:
            away = (score - limits.match) / (1.0 - limits.match)
            role = SpeakerRole.AGENT
        else:
            away = (limits.match - score) / limits.customer_distance
            role = SpeakerRole.CUSTOMER
        confidence = round(float(np.clip(0.5 + 0.5 * away, 0.0, 1.0)), 3)
        decisions[speaker] = RoleDecision(role, RoleSource.VOICE, confidence)
    return decisions


def recurring_voice(calls: Sequence[Mapping[str, FloatArray]], model: str) -> list[str] | None:
    """The speaker of each call whose voice recurs in every call (the agent's), or None
    when no one voice is in all of them. Needs at least two calls: a single call cannot say
    which of its voices is the agent's.

    Each speaker of each call is tried as the seed; every call contributes its speaker most
    similar to the seed; the seed whose picks agree best wins, and the picks are redone
    against their own mean. Each pick is judged against the mean of the *other* calls'
    picks (with its own voice in the mean, three different voices of pairwise similarity
    0.6 would each be 0.86 to it and pass for one person). Accepted only when every pick is
    at least the encoder's `recurring` threshold to the others' mean and clearly closer to
    it than the call's other voices (those that are not the same voice again)."""
    limits = THRESHOLDS.get(model)
    if limits is None or len(calls) < 2 or any(not call for call in calls):
        return None
    best: tuple[float, list[str]] | None = None
    for seed_call in calls:
        for seed in seed_call.values():
            picks = [_closest(call, seed) for call in calls]
            centre = mean_voice([call[p] for call, p in zip(calls, picks, strict=True)])
            picks = [_closest(call, centre) for call in calls]
            agreement = min(score for score, _ in _against_the_others(calls, picks))
            if best is None or agreement > best[0]:
                best = (agreement, picks)
    assert best is not None
    agreement, picks = best
    if agreement < limits.recurring:
        return None
    for own, others in _against_the_others(calls, picks):
        # A voice as close as the recurring threshold is the same person split in two by
        # the diarizer, not a rival.
        rivals = [score for score in others if score < limits.recurring]
        if rivals and own - max(rivals) < limits.margin:
            return None
    return picks


def _against_the_others(
    calls: Sequence[Mapping[str, FloatArray]], picks: Sequence[str]
) -> list[tuple[float, list[float]]]:
    """Per call: its pick's similarity to the mean of the other calls' picks, and the
    similarities of the call's other voices to that mean."""
    vectors = [call[p] for call, p in zip(calls, picks, strict=True)]
    out = []
    for index, (call, pick) in enumerate(zip(calls, picks, strict=True)):
        others_mean = mean_voice(vectors[:index] + vectors[index + 1 :])
        others = [float(np.dot(v, others_mean)) for s, v in call.items() if s != pick]
        out.append((float(np.dot(call[pick], others_mean)), others))
    return out


def joined_voice(
    embeddings: SpeakerEmbeddings, speakers: Sequence[str]
) -> tuple[FloatArray, float]:
    """One voice from `speakers` that are one person: their speech-weighted mean embedding
    and their speech seconds together."""
    speech = [embeddings.speech_s.get(speaker, 0.0) for speaker in speakers]
    vector = mean_voice(
        [embeddings.vectors[speaker] for speaker in speakers], [max(t, 1e-3) for t in speech]
    )
    return vector, round(sum(speech), 3)


def one_voice_per_person(embeddings: SpeakerEmbeddings) -> SpeakerEmbeddings:
    """The call's voices with the speakers a diarizer split one voice into joined: a
    speaker at least the encoder's `recurring` threshold to a voice already taken (most
    speech first) joins it (speech-weighted mean, speech added), under that voice's label.
    Learning then sees one voice with all its speech, not fragments each too short to
    learn from. Unchanged for an encoder without thresholds."""
    limits = THRESHOLDS.get(embeddings.model)
    if limits is None or len(embeddings.vectors) < 2:
        return embeddings
    speech = embeddings.speech_s
    members: dict[str, list[str]] = {}
    centres: dict[str, FloatArray] = {}
    for speaker in sorted(embeddings.vectors, key=lambda s: -speech.get(s, 0.0)):
        vector = embeddings.vectors[speaker]
        scored = [(float(np.dot(vector, centre)), label) for label, centre in centres.items()]
        best = max(scored, default=None)
        if best is not None and best[0] >= limits.recurring:
            label = best[1]
            members[label].append(speaker)
            centres[label], _ = joined_voice(embeddings, members[label])
        else:
            members[speaker] = [speaker]
            centres[speaker] = vector
    return SpeakerEmbeddings(
        model=embeddings.model,
        vectors=centres,
        speech_s={label: joined_voice(embeddings, group)[1] for label, group in members.items()},
    )


def _closest(call: Mapping[str, FloatArray], target: FloatArray) -> str:
    """The speaker of `call` whose voice is most similar to `target`."""
    return max(call, key=lambda speaker: float(np.dot(call[speaker], target)))
