"""Speech regions with silero-vad's batched ("sequence") ONNX model, bundled in its package.

The sequence model runs one ONNX call per ~16 s block instead of one per 32 ms frame, so
the Python loop (which holds the GIL) is not the bottleneck on long calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from app.ml.speech.audio import SAMPLE_RATE
from app.ml.types import ProgressCallback, Stage, no_progress

Region = tuple[float, float]
"""(start_s, end_s) of one speech region."""

_FRAME = 512
_CONTEXT = 64
_BLOCK_FRAMES = 512


@dataclass(frozen=True, slots=True)
class VadParams:
    """The default serves the diarizer and the speech turns (the local diarizer's speaker
    count and DER were tuned on it); `TRANSCRIPTION_VAD` is the wider setting the models
    transcribe."""

    threshold: float = 0.4
    min_speech_s: float = 0.25
    min_silence_s: float = 0.1
    speech_pad_s: float = 0.03


TRANSCRIPTION_VAD = VadParams(threshold=0.25, min_silence_s=0.3, speech_pad_s=0.15)
"""Wider regions, the speech the models transcribe (`app.ml.speech.transcription`), measured
for coverage on telephone lines (bench.hard_calls); the segments still follow the
diarizer's turns.

With the default the regions held 71-85 % of the reference speech of the shared AMI
two-party files, clean and on their G.711, GSM 6.10 and 10 dB copies: quiet far-field speech
scored between 0.25 and 0.4, and 30 ms pads clipped word edges. These hold 86-97 % there
(100 % on pyannote_sample), for 3.6 % of region time outside the reference speech instead of
1.1 %; a missed word can never be transcribed, while Whisper decodes a margin of silence as
nothing. The diarizer keeps the default: on these regions the local diarizer's error on
pyannote_sample rose from 17 % to 22 %, and wider settings (0.6 s pauses, 0.3 s pads) merged
the two parties' speech until it found 7 speakers in a 2-speaker call.
"""


class SileroVad:
    """Loaded once per process (see app.ml.compute.ModelCache); safe to call from one thread
    at a time per instance (state lives only inside a call)."""

    def __init__(self, params: VadParams | None = None) -> None:
        from silero_vad import load_silero_vad

        self.params = params or VadParams()
        self._model = load_silero_vad(sequence=True)

    def probabilities(
        self,
        audio: npt.NDArray[np.float32],
        progress: ProgressCallback = no_progress,
    ) -> npt.NDArray[np.float32]:
        """Speech probability per 32 ms frame of 16 kHz mono `audio`."""
        from silero_vad.sequence_vad import frame_blocks

        total_frames = (audio.size + _FRAME - 1) // _FRAME
        hidden = np.zeros((1, 1, 128), dtype=np.float32)
        cell = np.zeros((1, 1, 128), dtype=np.float32)
        probs = np.empty(total_frames, dtype=np.float32)
        done = 0
        # The LSTM state is carried across blocks, so the result equals one pass over
        # the whole call while each block's input stays ~16 s of audio.
        for block in frame_blocks(np.ascontiguousarray(audio), _FRAME, _CONTEXT, _BLOCK_FRAMES):
            values, hidden, cell = self._model.session.run(
                ["speech_probs", "hn", "cn"], {"input": block, "h": hidden, "c": cell}
            )
            n = block.shape[0]
            probs[done : done + n] = np.asarray(values, dtype=np.float32).reshape(-1)
            done += n
            # Voice activity detection is the first step of diarizing.
            progress(Stage.DIARIZING, done, total_frames)
        return probs

    def __call__(
        self,
        audio: npt.NDArray[np.float32],
        progress: ProgressCallback = no_progress,
        params: VadParams | None = None,
    ) -> list[Region]:
        """Speech regions of 16 kHz mono `audio`, in seconds, sorted and non-overlapping
        (`params` replaces this instance's)."""
        if audio.size == 0:
            return []
        return self.regions(self.probabilities(audio, progress), audio.size, params)

    def regions(
        self,
        probs: npt.NDArray[np.float32],
        samples: int,
        params: VadParams | None = None,
    ) -> list[Region]:
        """Speech regions from `probabilities` of `samples` of audio: one VAD pass serves
        several settings."""
        from silero_vad import get_speech_timestamps_from_probs

        if samples == 0:
            return []
        p = params or self.params
        stamps = get_speech_timestamps_from_probs(
            probs.tolist(),
            sampling_rate=SAMPLE_RATE,
            threshold=p.threshold,
            min_speech_duration_ms=int(p.min_speech_s * 1000),
            min_silence_duration_ms=int(p.min_silence_s * 1000),
            speech_pad_ms=int(p.speech_pad_s * 1000),
            audio_length_samples=int(samples),
        )
        return [(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps]


def total_speech_s(regions: list[Region]) -> float:
    return sum(end - start for start, end in regions)
