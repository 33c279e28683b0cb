"""Offline mono diarization: silero-vad regions -> Resemblyzer embeddings over sliding
windows -> clustering with automatic speaker count (hints honoured exactly) -> smoothing
of short flips -> turns.

Resemblyzer (GE2E LSTM, 256-dim) ships its weights inside its PyPI package, so this runs
with no download. Its embeddings are ReLU outputs, all in the positive orthant, so raw
cosine similarity is high even between different people; clustering therefore works on
embeddings centred on the recording's mean voice, and the single-speaker decision (where
centring would only amplify noise) is made on the raw embeddings.

Memory and time are bounded by design, whatever the call's length: average-linkage
clustering and silhouettes are quadratic in the windows they see (a 4-hour call of the
bench's kind has about 13,000 windows: 650 MB of distances for the linkage alone), so
above `max_clustered_windows` they run on an evenly spread sample of the windows and every
window then goes to the nearest speaker centroid (then the k-means refinement runs over
all windows, linear in their number). What stays per window for the whole call is its
centre and its 256-dim embedding: 1 KB.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from app.ml.compute import ModelLoadError
from app.ml.diarization.base import (
    Diarization,
    DiarizationRequest,
    Diarizer,
    SpeakerTurn,
    centroid_embeddings,
    speaker_bounds,
    speaker_label,
)
from app.ml.speech.audio import SAMPLE_RATE
from app.ml.speech.vad import Region, SileroVad
from app.ml.types import ProgressCallback, SpeakerHints, Stage, part_of

FloatArray = npt.NDArray[np.float32]

_MEL_HOP_S = 0.01
_N_FFT = 400
_HOP = 160
_N_MELS = 40
_TARGET_DBFS = -30.0
_EMBEDDING_DIM = 256
EMBEDDING_MODEL = "resemblyzer-ge2e-256"
"""The name voiceprints record with embeddings of this encoder."""
_MEL_LINEAR_HZ = 200.0 / 3
"""Slaney's mel scale: 200/3 Hz per mel below 1 kHz..."""
_MEL_LOG_START = 1000.0 / _MEL_LINEAR_HZ
_MEL_LOG_STEP = float(np.log(6.4) / 27.0)
"""...and log-spaced above it, 27 mels per factor of 6.4."""


@dataclass(frozen=True, slots=True)
class LocalDiarizationParams:
    window_s: float = 1.5
    step_s: float = 0.5
    batch_size: int = 32
    min_two_speaker_silhouette: float = 0.15
    """Below this silhouette for the best two-way split, the call has one speaker."""
    extra_speaker_gain: float = 0.03
    """Silhouette gain a larger speaker count must bring to be preferred."""
    min_cluster_share: float = 0.05
    """In automatic mode a speaker must hold at least this share of the windows (a cough,
    a laugh or a noisy window is not a participant)."""
    refine_iterations: int = 5
    min_turn_s: float = 0.6
    """Turns shorter than this between two turns of one other speaker are smoothed away."""
    default_max_speakers: int = 8
    fill_gap_s: float = 0.6
    """A speaker's pause up to this long stays inside their turn (pyannote's
    `min_duration_off`): reference annotations count such pauses as speech. On the shared
    AMI clips it lowers DER by up to 2 points and changes no other file."""
    region_merge_gap_s: float = 0.0
    """Pauses are where speakers change: joining regions across them mixes voices in one
    window (pyannote_sample: DER 23% joined at 0.3 s, 17% unjoined)."""
    max_clustered_windows: int = 2000
    """The hierarchical clustering and the speaker-count choice see at most this many
    windows (about 17 minutes of speech at the 0.5 s step): an evenly spread sample of a
    longer call, so their memory (~16 MB of distances for 2000) and time stay bounded."""


class ResemblyzerEmbedder:
    """Embeds fixed-length windows of 16 kHz audio; one instance per process.

    Resemblyzer's network (a 3-layer LSTM over 40 mel bands, a linear layer, ReLU, L2 norm)
    is built here and given the weights file its package ships: importing `resemblyzer`
    itself pulls librosa, scipy.signal, scipy.ndimage and numba for its own preprocessing,
    about 2-4 s of a worker's start-up for nothing this class uses."""

    def __init__(self, device: str = "cpu") -> None:
        self._encoder = _voice_encoder(device)
        self.device = device
        self._window = _hann(_N_FFT)
        # Transposed once, contiguous: the product below reads it row by row.
        self._mel_basis_t = np.ascontiguousarray(mel_basis().T)

    def mel(self, audio: FloatArray) -> FloatArray:
        """(frames, 40) power mel spectrogram, as resemblyzer.wav_to_mel_spectrogram computes
        it (librosa defaults: centred Hann STFT, n_fft 400, hop 160, Slaney mel), but with
        one BLAS product per block instead of librosa's einsum, which is ~30x slower here."""
        padded = np.pad(audio, (_N_FFT // 2, _N_FFT // 2))
        frames = 1 + (padded.size - _N_FFT) // _HOP
        if frames <= 0:
            return np.zeros((0, _N_MELS), dtype=np.float32)
        strided = np.lib.stride_tricks.sliding_window_view(padded, _N_FFT)[::_HOP][:frames]
        spectrum = np.fft.rfft(strided * self._window, axis=1)
        power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
        return np.asarray(power @ self._mel_basis_t, dtype=np.float32)

    def embed(self, mels: FloatArray) -> FloatArray:
        """(batch, frames, 40) power mels -> (batch, 256) L2-normalised embeddings."""
        import torch

        with torch.inference_mode():
            tensor = torch.from_numpy(mels).to(self.device)
            return np.asarray(self._encoder(tensor).cpu().numpy(), dtype=np.float32)


def resemblyzer_weights() -> Path:
    """The GE2E weights inside the installed Resemblyzer package, found without importing
    the package."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError("the Resemblyzer package is not installed (pip install Resemblyzer)")
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"
    if not path.is_file():
        raise ModelLoadError(f"the Resemblyzer weights are missing: {path}")
    return path


def _voice_encoder(device: str) -> Any:
    """Resemblyzer's VoiceEncoder network with its bundled weights, in inference mode."""
    import torch
    from torch import nn

    class VoiceEncoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(_N_MELS, _EMBEDDING_DIM, 3, batch_first=True)
            self.linear = nn.Linear(_EMBEDDING_DIM, _EMBEDDING_DIM)
            self.relu = nn.ReLU()

        def forward(self, mels: torch.Tensor) -> torch.Tensor:
            _, (hidden, _) = self.lstm(mels)
            raw: torch.Tensor = self.relu(self.linear(hidden[-1]))
            unit: torch.Tensor = raw / torch.norm(raw, dim=1, keepdim=True)
            return unit

    encoder = VoiceEncoder()
    checkpoint = torch.load(resemblyzer_weights(), map_location="cpu", weights_only=True)
    # The checkpoint also holds the training-time similarity scale and bias, unused here.
    state = {
        key: value
        for key, value in checkpoint["model_state"].items()
        if key.split(".")[0] in {"lstm", "linear"}
    }
    encoder.load_state_dict(state, strict=True)
    return encoder.to(device).eval()


def _hann(length: int) -> npt.NDArray[np.float64]:
    # Periodic Hann, as scipy.signal.get_window("hann", n, fftbins=True) gives librosa.
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / length)


def _hz_to_mel(hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Slaney's mel scale (librosa's default, htk=False): linear to 1 kHz, log above."""
    linear = hz / _MEL_LINEAR_HZ
    log_part = _MEL_LOG_START + np.log(np.maximum(hz, 1e-10) / 1000.0) / _MEL_LOG_STEP
    return np.where(hz >= 1000.0, log_part, linear)


def _mel_to_hz(mel: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    linear = mel * _MEL_LINEAR_HZ
    log_part = 1000.0 * np.exp(_MEL_LOG_STEP * (mel - _MEL_LOG_START))
    return np.where(mel >= _MEL_LOG_START, log_part, linear)


def mel_basis() -> FloatArray:
    """(40, 201) Slaney-normalised triangular mel filters for 16 kHz and n_fft 400: what
    librosa.filters.mel(sr=16000, n_fft=400, n_mels=40) returns, without importing librosa
    (its import brings numba and scipy.signal, seconds of start-up)."""
    fft_hz = np.fft.rfftfreq(_N_FFT, 1.0 / SAMPLE_RATE)
    edges = np.array([0.0, SAMPLE_RATE / 2.0])
    low_mel, high_mel = _hz_to_mel(edges)
    mel_hz = _mel_to_hz(np.linspace(low_mel, high_mel, _N_MELS + 2))
    widths = np.diff(mel_hz)
    ramps = np.subtract.outer(mel_hz, fft_hz)
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (mel_hz[2:] - mel_hz[:-2]))[:, None]
    return np.asarray(weights, dtype=np.float32)


@dataclass(slots=True)
class _Windows:
    centers_s: FloatArray
    embeddings: FloatArray


class LocalDiarizer(Diarizer):
    takes_speech_regions: ClassVar[bool] = True

    def __init__(
        self,
        vad: SileroVad,
        embedder: ResemblyzerEmbedder,
        params: LocalDiarizationParams | None = None,
    ) -> None:
        self.vad = vad
        self.embedder = embedder
        self.params = params or LocalDiarizationParams()

    def diarize(self, request: DiarizationRequest) -> Diarization:
        """Without `regions` the VAD runs first and fills the first half of the stage."""
        hints, progress, regions = request.hints, request.progress, request.regions
        signal = request.audio.mono()
        duration = signal.size / SAMPLE_RATE
        if regions is None:
            regions = self.vad(signal, part_of(progress, 0.0, 0.5))
            progress = part_of(progress, 0.5, 1.0)
        regions = merge_regions(regions, self.params.region_merge_gap_s)
        progress(Stage.DIARIZING, 0.0, duration)
        # Each window's mel is a small matrix product; OpenBLAS splitting it over threads
        # costs far more than the product (a 30 s call: ~1.5 s of mels on a busy 2-core
        # machine against ~0.1 s on one thread). torch's LSTM keeps its own threads.
        with threadpool_limits(1, user_api="blas"):
            windows = self._embed_windows(signal, regions, progress, duration)
        labels = cluster(windows.embeddings, hints, self.params)
        turns = label_regions(regions, windows.centers_s, labels, self.params.step_s)
        turns = smooth_turns(turns, self.params.min_turn_s, speaker_bounds(hints, default_max=1)[0])
        turns = join_turns(turns, self.params.fill_gap_s)
        progress(Stage.DIARIZING, duration, duration)
        # Raw (uncentred) embeddings: centring depends on the recording, a voiceprint must not.
        embeddings = centroid_embeddings(
            EMBEDDING_MODEL, turns, windows.centers_s, windows.embeddings, self.params.step_s
        )
        return Diarization(turns=turns, speaker_embeddings=embeddings)

    def _embed_windows(
        self,
        signal: FloatArray,
        regions: list[Region],
        progress: ProgressCallback,
        duration: float,
    ) -> _Windows:
        """Reports progress as seconds of the recording whose windows are embedded."""
        p = self.params
        win = round(p.window_s * SAMPLE_RATE)
        win_frames = round(p.window_s / _MEL_HOP_S)
        centers: list[float] = []
        embeddings: list[FloatArray] = []
        batch: list[FloatArray] = []

        def flush() -> None:
            if batch:
                embeddings.append(self.embedder.embed(np.stack(batch)))
                batch.clear()

        for start_s, end_s in regions:
            for window_start in window_starts(start_s, end_s, p.window_s, p.step_s):
                first = max(0, min(round(window_start * SAMPLE_RATE), signal.size - win))
                chunk = signal[first : first + win]
                if chunk.size < win:
                    chunk = np.pad(chunk, (0, win - chunk.size))
                mel = self.embedder.mel(normalise_volume(chunk))[:win_frames]
                if mel.shape[0] < win_frames:
                    mel = np.pad(mel, ((0, win_frames - mel.shape[0]), (0, 0)))
                batch.append(mel)
                centers.append(first / SAMPLE_RATE + p.window_s / 2)
                if len(batch) >= p.batch_size:
                    flush()
                    progress(Stage.DIARIZING, max(window_start, start_s), duration)
            progress(Stage.DIARIZING, end_s, duration)
        flush()
        if not embeddings:
            return _Windows(np.zeros(0, np.float32), np.zeros((0, 256), np.float32))
        return _Windows(np.asarray(centers, dtype=np.float32), np.concatenate(embeddings))


def normalise_volume(chunk: FloatArray) -> FloatArray:
    """Scale to -30 dBFS RMS, as Resemblyzer's own preprocessing does for whole utterances."""
    rms = float(np.sqrt(np.mean(np.square(chunk, dtype=np.float64))))
    if rms < 1e-6:
        return chunk
    gain = 10 ** (_TARGET_DBFS / 20) / rms
    return (chunk * gain).astype(np.float32)


def merge_regions(regions: list[Region], gap_s: float) -> list[Region]:
    merged: list[Region] = []
    for start, end in sorted(regions):
        if merged and start - merged[-1][1] <= gap_s:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def window_starts(start_s: float, end_s: float, window_s: float, step_s: float) -> list[float]:
    """Window starts covering [start_s, end_s]; a region shorter than a window gets one
    window centred on it (the encoder needs a fixed length)."""
    length = end_s - start_s
    if length <= window_s:
        return [start_s + length / 2 - window_s / 2]
    count = int(np.floor((length - window_s) / step_s)) + 1
    starts = [start_s + i * step_s for i in range(count)]
    if end_s - (starts[-1] + window_s) > step_s / 2:
        starts.append(end_s - window_s)
    return starts


def cluster(
    embeddings: FloatArray, hints: SpeakerHints, params: LocalDiarizationParams
) -> npt.NDArray[np.int64]:
    """One speaker index per window, numbered by first appearance.

    With `num_speakers` the count is exactly that (given at least that many windows);
    with min/max the automatic choice is made only among counts inside the range.
    Above `params.max_clustered_windows` windows the tree and the count come from an evenly
    spread sample, and each window takes the nearest of the sample's speaker centroids.
    """
    n = embeddings.shape[0]
    low, high = speaker_bounds(hints, default_max=params.default_max_speakers)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    sample = clustering_sample(n, params.max_clustered_windows)
    high = min(high, sample.size)
    low = min(low, high)
    if high == 1:
        return np.zeros(n, dtype=np.int64)

    centred = embeddings - embeddings.mean(axis=0, keepdims=True)
    centred /= np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-8)
    sampled = sample.size < n
    tree = _linkage(centred[sample] if sampled else centred)
    raw = embeddings[sample] if sampled else embeddings
    k = low if low == high else _automatic_count(raw, tree, low, high, params)
    if k == 1:
        return np.zeros(n, dtype=np.int64)
    labels = _cut(tree, k)
    if sampled:
        labels = _assign_to_centroids(centred, sample, labels, k)
    labels = _refine(labels, centred, k, params.refine_iterations)
    return _renumber(labels)


def clustering_sample(n: int, cap: int) -> npt.NDArray[np.int64]:
    """Indices of at most `cap` of `n` windows, evenly spread over the call (every window
    when there are no more than `cap`): each speaker who holds a real share of the call
    holds about the same share of the sample."""
    if n <= cap:
        return np.arange(n, dtype=np.int64)
    return np.unique(np.linspace(0, n - 1, cap).round().astype(np.int64))


def _assign_to_centroids(
    centred: FloatArray,
    sample: npt.NDArray[np.int64],
    sample_labels: npt.NDArray[np.int64],
    k: int,
) -> npt.NDArray[np.int64]:
    """Every window's label: the nearest (cosine) centroid of the sample's clusters. The
    sampled windows keep their own labels if nearest-centroid assignment would empty a
    cluster, so an exact speaker count asked for is still met."""
    cents = np.stack([_unit(centred[sample[sample_labels == c]].mean(axis=0)) for c in range(k)])
    labels: npt.NDArray[np.int64] = np.argmax(centred @ cents.T, axis=1).astype(np.int64)
    if np.unique(labels).size < k:
        labels[sample] = sample_labels
    return labels


def _automatic_count(
    raw: FloatArray,
    tree: npt.NDArray[np.float64],
    low: int,
    high: int,
    params: LocalDiarizationParams,
) -> int:
    """Silhouette (raw cosine) of the hierarchical cut at each count in [low, high].

    One speaker when even the best two-way split is poorly separated; otherwise the
    smallest count that a further split does not clearly improve on, so noise inside one
    voice does not become an extra speaker. Only counts whose every cluster holds a real
    share of the speech are candidates.
    """
    n = raw.shape[0]
    min_size = max(2, int(np.ceil(params.min_cluster_share * n)))
    scores: dict[int, float] = {}
    distances = cosine_distances(raw)
    for k in range(max(2, low), min(high, n - 1) + 1):
        labels = _cut(tree, k)
        if np.bincount(labels).min() < min_size:
            continue
        scores[k] = silhouette(distances, labels)
    if not scores:
        return low
    if low == 1 and scores.get(2, -1.0) < params.min_two_speaker_silhouette:
        return 1
    best = min(scores)
    for k in sorted(scores):
        if k > best and scores[k] > scores[best] + params.extra_speaker_gain:
            best = k
    return best


def cosine_distances(vectors: FloatArray) -> FloatArray:
    """(n, n) cosine distances in float32: 16 MB for `max_clustered_windows` windows."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    distances = np.asarray(unit @ unit.T, dtype=np.float32)
    np.subtract(1.0, distances, out=distances)
    np.clip(distances, 0.0, 2.0, out=distances)
    np.fill_diagonal(distances, 0.0)
    return distances


def silhouette(distances: FloatArray, labels: npt.NDArray[np.int64]) -> float:
    """Mean silhouette over precomputed distances, as sklearn.metrics.silhouette_score(...,
    metric="precomputed") gives (a window alone in its cluster scores 0): importing sklearn
    would cost the first job about 2 s."""
    labels = np.unique(labels, return_inverse=True)[1].reshape(-1)
    k = int(labels.max()) + 1
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    to_cluster = distances @ np.eye(k, dtype=np.float32)[labels]
    rows = np.arange(labels.size)
    own = counts[labels]
    within = to_cluster[rows, labels] / np.maximum(own - 1, 1)
    mean_to_cluster = to_cluster / np.maximum(counts, 1)
    mean_to_cluster[rows, labels] = np.inf
    nearest_other = mean_to_cluster.min(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = (nearest_other - within) / np.maximum(within, nearest_other)
    scores = np.where(own > 1, np.nan_to_num(scores), 0.0)
    return float(scores.mean())


def cosine_silhouette(vectors: FloatArray, labels: npt.NDArray[np.int64]) -> float:
    """sklearn.metrics.silhouette_score(vectors, labels, metric="cosine")."""
    return silhouette(cosine_distances(vectors), labels)


def _refine(
    labels: npt.NDArray[np.int64], centred: FloatArray, k: int, iterations: int
) -> npt.NDArray[np.int64]:
    """A few k-means steps (cosine) from the hierarchical cut: average linkage leaves
    boundary windows on the wrong side, nearest-centroid assignment fixes most of them."""
    for _ in range(iterations):
        if np.unique(labels).size < k:
            break
        cents = np.stack([_unit(centred[labels == c].mean(axis=0)) for c in range(k)])
        updated = np.argmax(centred @ cents.T, axis=1).astype(np.int64)
        if np.unique(updated).size < k or np.array_equal(updated, labels):
            break
        labels = updated
    return labels


def _linkage(centred: FloatArray) -> npt.NDArray[np.float64]:
    from scipy.cluster.hierarchy import linkage

    return np.asarray(linkage(centred.astype(np.float64), method="average", metric="cosine"))


def _cut(tree: npt.NDArray[np.float64], k: int) -> npt.NDArray[np.int64]:
    from scipy.cluster.hierarchy import fcluster

    return np.asarray(fcluster(tree, t=k, criterion="maxclust"), dtype=np.int64) - 1


def _unit(vector: FloatArray) -> FloatArray:
    return vector / max(float(np.linalg.norm(vector)), 1e-8)


def _renumber(labels: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    order: dict[int, int] = {}
    for label in labels.tolist():
        order.setdefault(label, len(order))
    return np.asarray([order[label] for label in labels.tolist()], dtype=np.int64)


def label_regions(
    regions: list[Region],
    centers_s: FloatArray,
    labels: npt.NDArray[np.int64],
    resolution_s: float,
) -> list[SpeakerTurn]:
    """Cut each speech region at label changes; every instant takes the label of the
    nearest window centre."""
    turns: list[SpeakerTurn] = []
    if labels.size == 0:
        return turns
    step = min(resolution_s, 0.1)
    # Sorted once: each instant finds its nearest centre by bisection, so labelling is
    # O(instants x log windows) instead of a instants-by-windows distance matrix per region.
    order = np.argsort(centers_s, kind="stable")
    sorted_centers = centers_s[order].astype(np.float64)
    for start, end in regions:
        times = np.arange(start, end, step, dtype=np.float64)
        if times.size == 0:
            continue
        point_labels = labels[order[_nearest_sorted(sorted_centers, times)]]
        boundary = start
        for i in range(1, times.size):
            if point_labels[i] != point_labels[i - 1]:
                cut = float(times[i])
                turns.append(SpeakerTurn(speaker_label(int(point_labels[i - 1])), boundary, cut))
                boundary = cut
        turns.append(SpeakerTurn(speaker_label(int(point_labels[-1])), boundary, end))
    return turns


def _nearest_sorted(
    sorted_values: npt.NDArray[np.float64], points: npt.NDArray[np.float64]
) -> npt.NDArray[np.int64]:
    """Index of the nearest value in ascending `sorted_values` for each point; on a tie
    the first such index, as argmin over the distances picks."""
    if sorted_values.size == 1:
        return np.zeros(points.size, dtype=np.int64)
    above = np.searchsorted(sorted_values, points, side="left").clip(1, sorted_values.size - 1)
    # The first index of each neighbouring value, so duplicates resolve as argmin does.
    left = np.searchsorted(sorted_values, sorted_values[above - 1], side="left")
    right = np.searchsorted(sorted_values, sorted_values[above], side="left")
    take_left = points - sorted_values[left] <= sorted_values[right] - points
    return np.asarray(np.where(take_left, left, right), dtype=np.int64)


def smooth_turns(
    turns: list[SpeakerTurn], min_turn_s: float, min_speakers: int
) -> list[SpeakerTurn]:
    """Fold turns shorter than `min_turn_s` that touch another speaker's turn into that
    speaker, shortest first, never removing a speaker's last turn when that would drop
    the count under `min_speakers`."""
    result = join_turns(turns)
    while True:
        per_speaker: dict[str, int] = {}
        for turn in result:
            per_speaker[turn.speaker] = per_speaker.get(turn.speaker, 0) + 1
        best: tuple[float, int, str] | None = None
        for i, turn in enumerate(result):
            if turn.duration_s >= min_turn_s or (best is not None and turn.duration_s >= best[0]):
                continue
            if per_speaker[turn.speaker] == 1 and len(per_speaker) <= min_speakers:
                continue
            neighbours = [
                result[j]
                for j in (i - 1, i + 1)
                if 0 <= j < len(result)
                and result[j].speaker != turn.speaker
                and _touches(result[j], turn)
            ]
            if neighbours:
                target = max(neighbours, key=lambda t: t.duration_s).speaker
                best = (turn.duration_s, i, target)
        if best is None:
            return result
        _, i, target = best
        turn = result[i]
        result[i] = SpeakerTurn(target, turn.start_s, turn.end_s, turn.channel)
        # Joining makes the relabelled turn part of its neighbour, so it cannot flip back.
        result = join_turns(result)


def _touches(a: SpeakerTurn, b: SpeakerTurn, gap_s: float = 0.05) -> bool:
    return a.start_s <= b.end_s + gap_s and b.start_s <= a.end_s + gap_s


def join_turns(turns: list[SpeakerTurn], gap_s: float = 0.05) -> list[SpeakerTurn]:
    joined: list[SpeakerTurn] = []
    for turn in sorted(turns, key=lambda t: (t.start_s, t.end_s)):
        last = joined[-1] if joined else None
        if last is not None and last.speaker == turn.speaker and turn.start_s <= last.end_s + gap_s:
            joined[-1] = SpeakerTurn(
                last.speaker, last.start_s, max(last.end_s, turn.end_s), last.channel
            )
        else:
            joined.append(turn)
    return joined
