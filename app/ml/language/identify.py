"""Language of each speech turn, among the centre's configured languages only.

1. Audio: Whisper base (multilingual, bundled) scores every language on the turn's own
   speech (`FasterWhisperStt.language_probabilities`, encoder run on the turn's length, not
   a padded 30 s window). The scores are folded onto the configured languages by a
   documented rule (`app.ml.stt.languages.fold_relatives`): Azerbaijani, Turkish, Kazakh ...
   count for Uzbek, Ukrainian, Belarusian, Bulgarian ... for Russian, and mass on unrelated
   languages for the configured language Whisper knows least (Uzbek).
2. Call prior: a turn's folded scores are multiplied by the call's (talk-time weighted mean
   of every turn's scores), so a short or unclear turn leans towards the languages the call
   is actually in, while a clear turn in another language still wins (code-switching).
3. Text, where the audio is still unsure (best score below `UNSURE_BELOW`, or below
   `SHORT_TURN_SURE` on a turn under `SHORT_TURN_S` of speech: on the bench's 1-4 s turns,
   Whisper gave short English turns 0.12-0.34 and a short Uzbek turn 0.28, most of their
   mass on unrelated languages that fold to Uzbek; a short turn counts as sure only when its
   own audio score is, so the call prior cannot make a short backchannel in a language the
   call's long turns lack look certain): Whisper writes the turn greedily in each
   plausible configured language it can write (score at least `TEXT_MIN_AUDIO`; not Uzbek,
   which Whisper base cannot write), and a language is taken when the decoder was sure of
   its text (mean log-probability at least `TEXT_MIN_LOGPROB`, no loop) and the text
   identifier of the analysis (`app.ml.analysis.language`: Uzbek Latin/Cyrillic, Russian and
   English by letters, words and suffixes) agrees. On the shared clips, English and Russian
   speech written in its own language decoded at -0.12 to -0.8 (short English turns) and to
   -1.08 (short Russian ones), Uzbek speech forced into English or Russian at -0.82 to -3.1
   (or looped). English text is the sharper test: when the audio's best language is English
   and its English text decodes below `ENGLISH_REFUTED_BELOW`, the turn is taken as the
   configured language Whisper cannot write (Uzbek) if the audio gives that at least
   `REFUTED_FALLBACK_MIN`. Russian text is not used that way (Russian speech itself decoded
   down to -1.08).
4. Turns under `MIN_TURN_S` of speech take the language of the same speaker's nearest
   identified turn, else of the nearest turn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from app.ml.speech.turns import SpeechTurn
from app.ml.stt.base import SAMPLE_RATE
from app.ml.stt.faster_whisper_backend import FasterWhisperStt
from app.ml.stt.languages import UNDER_REPRESENTED, fold_relatives
from app.ml.stt.regions import pack_regions

MIN_TURN_S = 1.0
UNSURE_BELOW = 0.7
SHORT_TURN_S = 3.0
SHORT_TURN_SURE = 0.9
"""A turn under `SHORT_TURN_S` of speech is checked by its text below this score."""
TEXT_CONFIDENT = 0.3
TEXT_MIN_AUDIO = 0.1
"""The text check may only pick a language the audio gives at least this score."""
TEXT_MIN_LOGPROB = -0.8
ENGLISH_REFUTED_BELOW = -1.0
REFUTED_FALLBACK_MIN = 0.2
TEXT_MAX_COMPRESSION = 2.0
PRIOR_FLOOR = 0.05
"""No language is ruled out by the call prior alone."""
MAX_EXCERPT_S = 10.0
"""Speech per turn that the identifier hears: the middle of a longer turn (of its first
30 s when it is longer still). Whisper's language scores settle within a few seconds of
speech, and the encoder's cost grows with the excerpt, so a call of long monologues paid
for its speech twice (once here, once in its transcription model) for nothing."""


def _nothing() -> None:
    return None


@dataclass(frozen=True, slots=True)
class LanguageDecision:
    language: str
    score: float
    """The chosen language's score after folding and the call prior (1.0 when configured)."""
    method: str
    """"configured", "audio", "text" or "neighbour"."""


class TurnLanguageIdentifier:
    """Stateless per call; holds the identifying Whisper model (loaded once per worker)."""

    def __init__(
        self,
        languages: tuple[str, ...],
        whisper: FasterWhisperStt | None,
        *,
        forced: str | None = None,
    ) -> None:
        self.languages = languages
        self.whisper = whisper
        self.forced = forced or (languages[0] if len(languages) == 1 else None)

    def identify(
        self,
        signal: npt.NDArray[np.float32],
        turns: Sequence[SpeechTurn],
        *,
        after_turn: Callable[[], None] = _nothing,
    ) -> list[LanguageDecision]:
        """`after_turn` runs after each turn the model hears (the pipeline releases the
        memory the turn's audio used there)."""
        if self.forced is not None or self.whisper is None:
            language = self.forced or self.languages[0]
            return [LanguageDecision(language, 1.0, "configured") for _ in turns]
        if not turns:
            return []
        scored: list[tuple[int, dict[str, float]]] = []
        for index, turn in enumerate(turns):
            if turn.speech_s >= MIN_TURN_S:
                scored.append((index, self._audio_scores(signal, turn.regions)))
                after_turn()
        if not scored:
            # Every turn is too short alone: the call's speech as a whole decides for all.
            regions = sorted(region for turn in turns for region in turn.regions)
            scores = self._audio_scores(signal, regions)
            best = max(scores, key=lambda code: scores[code])
            return [LanguageDecision(best, round(scores[best], 4), "neighbour")] * len(turns)
        prior = self._call_prior([(turns[i].speech_s, scores) for i, scores in scored])
        decisions: list[LanguageDecision | None] = [None] * len(turns)
        for index, scores in scored:
            decisions[index] = self._decide(signal, turns[index], scores, prior)
            after_turn()
        return self._fill_short_turns(turns, decisions)

    def _audio_scores(
        self, signal: npt.NDArray[np.float32], regions: Sequence[tuple[float, float]]
    ) -> dict[str, float]:
        assert self.whisper is not None
        groups = pack_regions(signal, regions, max_group_s=30.0, split_long=True)
        if not groups:
            return {code: 1.0 / len(self.languages) for code in self.languages}
        raw = self.whisper.language_probabilities(excerpt(groups[0].audio))
        return fold_relatives(raw, self.languages)

    def _call_prior(self, weighted: Sequence[tuple[float, dict[str, float]]]) -> dict[str, float]:
        total = sum(weight for weight, _ in weighted) or 1.0
        return {
            code: max(PRIOR_FLOOR, sum(w * scores[code] for w, scores in weighted) / total)
            for code in self.languages
        }

    def _decide(
        self,
        signal: npt.NDArray[np.float32],
        turn: SpeechTurn,
        scores: dict[str, float],
        prior: dict[str, float],
    ) -> LanguageDecision:
        posterior = {code: scores[code] * prior[code] for code in self.languages}
        norm = sum(posterior.values()) or 1.0
        posterior = {code: value / norm for code, value in posterior.items()}
        best = max(posterior, key=lambda code: posterior[code])
        # A short turn is sure only when its own audio is: the call prior alone must not
        # make a short backchannel in the call's rarest language look certain.
        short = turn.speech_s < SHORT_TURN_S
        sure = min(posterior[best], scores[best]) if short else posterior[best]
        if sure >= (SHORT_TURN_SURE if short else UNSURE_BELOW):
            return LanguageDecision(best, round(posterior[best], 4), "audio")
        heard = {code: max(scores[code], posterior[code]) for code in self.languages}
        by_text = self._by_text(signal, turn, heard, best)
        if by_text is not None:
            return LanguageDecision(by_text, round(posterior[by_text], 4), "text")
        return LanguageDecision(best, round(posterior[best], 4), "audio")

    def _by_text(
        self,
        signal: npt.NDArray[np.float32],
        turn: SpeechTurn,
        heard: dict[str, float],
        best: str,
    ) -> str | None:
        """The language the turn's text confirms, or the unwritable one when English, the
        audio's best, is refuted by its own text; None when the text settles nothing.
        `heard`: each language's score from the turn's audio or with the call prior,
        whichever is higher."""
        from app.ml.analysis.language import detect_segment

        assert self.whisper is not None
        groups = pack_regions(signal, turn.regions, max_group_s=30.0, split_long=True)
        if not groups:
            return None
        candidates = sorted(
            (
                code
                for code in self.languages
                if heard[code] >= TEXT_MIN_AUDIO and code not in UNDER_REPRESENTED
            ),
            key=lambda code: -heard[code],
        )
        refuted = False
        for code in candidates[:2]:
            written = self.whisper.quick_text(excerpt(groups[0].audio), code)
            if (
                written.avg_logprob >= TEXT_MIN_LOGPROB
                and written.compression_ratio <= TEXT_MAX_COMPRESSION
            ):
                guess = detect_segment(written.text)
                if guess.code == code and guess.confidence >= TEXT_CONFIDENT:
                    return code
            if code == best == "en" and written.text.strip():
                refuted = written.avg_logprob < ENGLISH_REFUTED_BELOW
        if refuted:
            unwritable = [code for code in UNDER_REPRESENTED if code in self.languages]
            if unwritable and heard[unwritable[0]] >= REFUTED_FALLBACK_MIN:
                return unwritable[0]
        return None

    def _fill_short_turns(
        self, turns: Sequence[SpeechTurn], decisions: list[LanguageDecision | None]
    ) -> list[LanguageDecision]:
        known = [i for i, decision in enumerate(decisions) if decision is not None]
        filled: list[LanguageDecision] = []
        for index, decision in enumerate(decisions):
            if decision is not None:
                filled.append(decision)
                continue
            turn = turns[index]
            same_speaker = [i for i in known if turns[i].speaker == turn.speaker] or known
            nearest = min(same_speaker, key=lambda i: abs(turns[i].start_s - turn.start_s))
            source = decisions[nearest]
            assert source is not None
            filled.append(LanguageDecision(source.language, source.score, "neighbour"))
        return filled


def excerpt(audio: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The middle `MAX_EXCERPT_S` of a stretch of speech (all of a shorter one): the start
    of a turn is where greetings, fillers and the other party's last words sit."""
    keep = round(MAX_EXCERPT_S * SAMPLE_RATE)
    if audio.size <= keep:
        return audio
    start = (audio.size - keep) // 2
    return audio[start : start + keep]
