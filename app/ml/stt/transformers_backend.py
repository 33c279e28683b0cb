"""Whisper and Seamless M4T v2 checkpoints through Hugging Face transformers.

`STT_MODEL` is a model id (`openai/whisper-large-v3`, `facebook/seamless-m4t-v2-large`) or a
local directory. Ids resolve to the directory `ovozly models fetch` fills under `MODELS_DIR`;
nothing is downloaded here. Inputs are the packed speech regions (see `regions.py`), each at
most 30 s, so every input is one Whisper window and nothing is conditioned on earlier text.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from app.ml.stt.base import (
    SAMPLE_RATE,
    Regions,
    SttError,
    SttResult,
    mono_float32,
    no_speech,
    spoken_language,
)
from app.ml.stt.languages import SEAMLESS_CODES, WHISPER_LANGUAGES
from app.ml.stt.regions import (
    PackedGroup,
    drop_repetition_loops,
    pack_regions,
    sample_windows,
    sorted_words,
    spread_over_group,
)
from app.ml.types import Word

if TYPE_CHECKING:
    from app.ml.settings import PipelineSettings

WINDOW_S = 30.0
LANGUAGE_WINDOWS = 5


def _load_error(model: str, source: Path, exc: Exception) -> SttError:
    return SttError(
        f"could not load the transformers model {model!r} from {source}: {exc}. "
        "`ovozly models verify` checks a fetched model against its published hashes"
    )


def fetched_model_dir(model: str, models_dir: Path | None) -> Path:
    """A local directory as given, else where `ovozly models fetch` puts the Hub id."""
    from app.ml.models.catalog import hub_model_dir

    local = Path(model).expanduser()
    if local.exists():
        return local
    directory = hub_model_dir(models_dir or Path(".ovozly/models"), model)
    if not (directory / "config.json").is_file():
        raise SttError(
            f"STT model {model!r} is not in MODELS_DIR ({directory} has no config.json). "
            "Workers never download; run `ovozly models fetch` once, or point STT_MODEL at a "
            "local directory"
        )
    return directory


class TransformersStt:
    """`SpeechToText` over a transformers Whisper or Seamless M4T v2 checkpoint."""

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        model_name: str,
        device: str,
        batch_size: int = 8,
        default_language: str | None = None,
        num_beams: int = 1,
    ) -> None:
        self._model = model
        self._processor = processor
        self._name = model_name
        self._device = device
        self._batch_size = batch_size
        self._default_language = default_language
        self._num_beams = num_beams
        self._is_seamless = model.config.model_type.startswith("seamless_m4t")
        self._pipeline: Any = None

    @classmethod
    def from_settings(cls, settings: PipelineSettings, device: str) -> TransformersStt:
        if settings.stt_model is None:
            raise SttError(
                "STT_BACKEND=transformers needs STT_MODEL: a Whisper or "
                "facebook/seamless-m4t-v2-large model id or local directory"
            )
        if settings.cpu_threads:
            import torch

            torch.set_num_threads(settings.cpu_threads)
        return cls.load(
            settings.stt_model,
            device=device,
            batch_size=settings.stt_batch_size,
            models_dir=settings.models_dir,
            default_language=settings.stt_language,
            num_beams=5 if device.startswith("cuda") else 1,
        )

    @classmethod
    def load(
        cls,
        model: str,
        *,
        device: str = "cpu",
        batch_size: int = 8,
        models_dir: Path | None = None,
        default_language: str | None = None,
        num_beams: int = 1,
    ) -> TransformersStt:
        import torch
        from transformers import (
            AutoConfig,
            AutoProcessor,
            SeamlessM4Tv2ForSpeechToText,
            WhisperForConditionalGeneration,
        )

        source = fetched_model_dir(model, models_dir)
        try:
            config = AutoConfig.from_pretrained(source, local_files_only=True)
            dtype = torch.float16 if device.startswith("cuda") else torch.float32
            if config.model_type == "whisper":
                network: Any = WhisperForConditionalGeneration.from_pretrained(
                    source, local_files_only=True, dtype=dtype
                )
            elif config.model_type.startswith("seamless_m4t"):
                network = SeamlessM4Tv2ForSpeechToText.from_pretrained(
                    source, local_files_only=True, dtype=dtype
                )
            else:
                raise SttError(
                    f"STT model {model!r} is a {config.model_type!r} model; the transformers "
                    "backend runs Whisper and Seamless M4T v2 checkpoints"
                )
            processor = AutoProcessor.from_pretrained(  # type: ignore[no-untyped-call]
                source, local_files_only=True
            )
        except SttError:
            raise
        except (OSError, ValueError) as exc:
            raise _load_error(model, source, exc) from exc
        network.to(device).eval()
        if network.config.model_type.startswith("seamless_m4t") and default_language is None:
            # Failing at start-up beats failing every call: Seamless cannot say which
            # language it hears, so the operator must.
            raise SttError(
                "Seamless M4T cannot identify the spoken language; set STT_LANGUAGE "
                "(e.g. uz, ru, en) when using it"
            )
        return cls(
            network,
            processor,
            model_name=model,
            device=device,
            batch_size=batch_size,
            default_language=default_language,
            num_beams=num_beams,
        )

    @property
    def is_multilingual(self) -> bool:
        if self._is_seamless:
            return True
        return bool(getattr(self._model.generation_config, "lang_to_id", None))

    # --- SpeechToText ------------------------------------------------------------------

    def detect_language(self, audio: np.ndarray, regions: Regions) -> tuple[str, float] | None:
        """Whisper: probabilities of the language tokens at the first decoding step, averaged
        over windows sampled across the call and weighted by their speech. English-only
        Whisper reports English. Seamless cannot identify languages: it returns the
        configured STT_LANGUAGE with probability 1.0.
        """
        groups = pack_regions(mono_float32(audio), regions, max_group_s=WINDOW_S, split_long=True)
        if not groups:
            return None
        if self._is_seamless:
            return (self._default_language, 1.0) if self._default_language else None
        if not self.is_multilingual:
            return "en", 1.0
        import torch

        lang_to_id: dict[str, int] = self._model.generation_config.lang_to_id
        codes = [token[2:-2] for token in lang_to_id]
        token_ids = torch.tensor(list(lang_to_id.values()))
        windows = sample_windows(groups, count=LANGUAGE_WINDOWS)
        features = self._features([window.audio for window in windows])
        start = torch.full(
            (len(windows), 1), self._model.generation_config.decoder_start_token_id
        ).to(self._device)
        with torch.inference_mode():
            logits = self._model(input_features=features, decoder_input_ids=start).logits
        probabilities = torch.softmax(logits[:, -1, token_ids].float(), dim=-1).cpu().numpy()
        weights = np.array([window.speech_s for window in windows])
        mean = (probabilities * weights[:, None]).sum(axis=0) / weights.sum()
        best = int(mean.argmax())
        return codes[best], round(float(mean[best]), 4)

    def transcribe(self, audio: np.ndarray, *, regions: Regions, language: str | None) -> SttResult:
        audio = mono_float32(audio)
        groups = pack_regions(audio, regions, max_group_s=WINDOW_S, split_long=True)
        if not groups:
            return no_speech(language)
        language, probability = spoken_language(self, audio, regions, language)
        words: list[Word] = []
        for first in range(0, len(groups), self._batch_size):
            batch = groups[first : first + self._batch_size]
            if self._is_seamless:
                words.extend(self._seamless_batch(batch, language))
            else:
                words.extend(self._whisper_batch(batch, language))
        return SttResult(
            words=drop_repetition_loops(sorted_words(words)),
            language=language,
            language_probability=probability,
        )

    # --- internals ---------------------------------------------------------------------

    def _features(self, chunks: list[np.ndarray]) -> Any:
        import torch

        extracted = self._processor.feature_extractor(
            chunks, sampling_rate=SAMPLE_RATE, return_tensors="pt"
        )
        return extracted.input_features.to(self._device, dtype=self._model.dtype or torch.float32)

    def _whisper_batch(self, groups: list[PackedGroup], language: str | None) -> list[Word]:
        generate: dict[str, Any] = {"task": "transcribe", "num_beams": self._num_beams}
        if self.is_multilingual and language is not None:
            if language not in WHISPER_LANGUAGES:
                raise SttError(f"Whisper does not know language {language!r}")
            generate["language"] = language
        outputs = self._asr_pipeline()(
            [{"raw": group.audio, "sampling_rate": SAMPLE_RATE} for group in groups],
            batch_size=len(groups),
            return_timestamps="word",
            generate_kwargs=generate,
        )
        words: list[Word] = []
        for group, output in zip(groups, outputs, strict=True):
            for chunk in output.get("chunks", ()):
                text = chunk["text"].strip()
                start, end = chunk["timestamp"]
                if not text or start is None:
                    continue
                # The last word of a window can come back without an end time.
                end = group.duration_s if end is None else end
                limit = group.duration_s
                words.append(group.map_word(text, min(start, limit), min(end, limit), None))
        return words

    def _asr_pipeline(self) -> Any:
        if self._pipeline is None:
            from transformers import pipeline

            self._pipeline = pipeline(
                "automatic-speech-recognition",
                model=self._model,
                tokenizer=self._processor.tokenizer,
                feature_extractor=self._processor.feature_extractor,
                device=self._device,
            )
        return self._pipeline

    def _seamless_batch(self, groups: list[PackedGroup], language: str | None) -> list[Word]:
        """Seamless M4T v2 returns text only, with no time for any word: each group's words are
        spread over its speech in proportion to their length (see `spread_over_group`), so
        word times are estimates, exact only at region edges.
        """
        import torch

        code = SEAMLESS_CODES.get(language or "")
        if code is None:
            raise SttError(
                f"no Seamless M4T language code for {language!r}; set STT_LANGUAGE to one of "
                f"{', '.join(sorted(SEAMLESS_CODES))}"
            )
        inputs = self._processor(
            audios=[group.audio for group in groups],
            sampling_rate=SAMPLE_RATE,
            return_tensors="pt",
        ).to(self._device)
        with torch.inference_mode():
            tokens = self._model.generate(**inputs, tgt_lang=code, num_beams=self._num_beams)
        texts = self._processor.batch_decode(tokens, skip_special_tokens=True)
        words: list[Word] = []
        for group, text in zip(groups, texts, strict=True):
            words.extend(spread_over_group(text, group))
        return words
