"""Speakers from per-window voice embeddings: agglomerative clustering with a calibrated
distance threshold (or exactly the count asked for), small clusters folded into the large
ones, then a constrained assignment: two local speakers of one window are never one
speaker (pyannote 3.x's `AgglomerativeClustering` does the same; its window-level
constraint is what keeps overlapping voices apart)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


def count_and_cluster(
    embeddings: FloatArray,
    weights: FloatArray,
    *,
    low: int,
    high: int,
    threshold: float,
    min_cluster_weight: float,
) -> IntArray:
    """A cluster index per embedding (0 .. k-1) with low <= k <= high where possible.

    `weights` is each embedding's seconds of speech. Average linkage on cosine distance;
    the automatic count is the number of clusters below `threshold` that hold at least
    `min_cluster_weight` seconds (a backchannel or a cough is not a person); the rest join
    the nearest large cluster. The count is then clipped into [low, high] by cutting the
    tree again, which is how the hints are honoured exactly.
    """
    n = embeddings.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    high = max(1, min(high, n))
    low = max(1, min(low, high))
    if n == 1 or high == 1:
        return np.zeros(n, dtype=np.int64)
    from scipy.cluster.hierarchy import fcluster, linkage

    tree = linkage(embeddings.astype(np.float64), method="average", metric="cosine")
    if low < high:
        labels = np.asarray(fcluster(tree, t=threshold, criterion="distance") - 1, np.int64)
        labels = _fold_small(embeddings, weights, labels, min_cluster_weight)
        k = int(np.unique(labels).size)
        if low <= k <= high:
            return _renumber(labels)
        target = low if k < low else high
    else:
        target = low
    return _renumber(_exact(embeddings, weights, tree, target, min_cluster_weight))


def _exact(
    embeddings: FloatArray,
    weights: FloatArray,
    tree: npt.NDArray[np.float64],
    k: int,
    min_weight: float,
) -> IntArray:
    """Exactly `k` clusters of real weight: the tree is cut ever finer until `k` of its
    clusters hold `min_weight` seconds each (a plain k-way cut of average linkage tends to
    isolate a single outlier embedding as a "speaker"), the rest join them."""
    from scipy.cluster.hierarchy import fcluster

    n = embeddings.shape[0]
    labels = np.asarray(fcluster(tree, t=k, criterion="maxclust") - 1, dtype=np.int64)
    for cut in range(k, n + 1):
        labels = np.asarray(fcluster(tree, t=cut, criterion="maxclust") - 1, dtype=np.int64)
        totals = np.bincount(labels, weights=weights)
        if int((totals >= min_weight).sum()) >= k:
            break
    return _fold_small(embeddings, weights, labels, min_weight, keep=k, exactly=True)


def _fold_small(
    embeddings: FloatArray,
    weights: FloatArray,
    labels: IntArray,
    min_weight: float,
    keep: int | None = None,
    exactly: bool = False,
) -> IntArray:
    """Clusters under `min_weight` seconds join the nearest large cluster (by centroid),
    unless none is large; with `keep`, never fold below `keep` clusters."""
    clusters = np.unique(labels)
    totals = np.array([weights[labels == c].sum() for c in clusters])
    large = clusters[totals >= min_weight]
    if large.size == 0:
        large = clusters[[int(np.argmax(totals))]]
    if keep is not None and (large.size < keep or (exactly and large.size > keep)):
        order = clusters[np.argsort(-totals, kind="stable")]
        large = order[: min(keep, order.size)]
    if large.size == clusters.size:
        return labels
    centroids = np.stack([_unit(embeddings[labels == c].mean(axis=0)) for c in large])
    result = labels.copy()
    for c in clusters:
        if c in large:
            continue
        members = labels == c
        nearest = np.argmax(_unit(embeddings[members].mean(axis=0)) @ centroids.T)
        result[members] = large[nearest]
    return result


def centroids_of(embeddings: FloatArray, labels: IntArray, k: int) -> FloatArray:
    return np.stack([_unit(embeddings[labels == c].mean(axis=0)) for c in range(k)])


def assign_local_speakers(
    similarity: FloatArray, window_of: IntArray, local_of: IntArray, windows: int
) -> IntArray:
    """(windows, 3) cluster of each window's local speaker (-1: none), maximising the
    similarity to the centroids with distinct clusters inside each window (Hungarian)."""
    from scipy.optimize import linear_sum_assignment

    assignment = np.full((windows, 3), -1, dtype=np.int64)
    for w in np.unique(window_of):
        rows = np.flatnonzero(window_of == w)
        scores = similarity[rows]
        if scores.shape[1] >= rows.size:
            chosen_rows, chosen_cols = linear_sum_assignment(scores, maximize=True)
            for r, c in zip(chosen_rows, chosen_cols, strict=True):
                assignment[w, local_of[rows[r]]] = c
        else:
            # More local speakers than speakers allowed: each takes its nearest.
            for r in range(rows.size):
                assignment[w, local_of[rows[r]]] = int(np.argmax(scores[r]))
    return assignment


def _unit(vector: FloatArray) -> FloatArray:
    return np.asarray(vector / max(float(np.linalg.norm(vector)), 1e-8), dtype=np.float32)


def _renumber(labels: IntArray) -> IntArray:
    order: dict[int, int] = {}
    for label in labels.tolist():
        order.setdefault(label, len(order))
    return np.asarray([order[label] for label in labels.tolist()], dtype=np.int64)
