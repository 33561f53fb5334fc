"""Synthetic vectors shaped like CLIP image embeddings, for benchmarks that need millions of them.

Isotropic gaussian noise in 512 dimensions is a poor stand-in: every point is nearly orthogonal
to every other, nearest neighbours are barely nearer than the rest, and HNSW recall on it is far
worse than on real embeddings. Real CLIP image embeddings sit in a narrow cone (random pairs have a
cosine of about 0.5), most of their variance lies in a low-rank subspace with a decaying spectrum,
and they form clumps (subjects, places, bursts of shots) whose local dimension is much lower still.
This generator copies that structure:

    x = cone * m + U (c_k + s_k * z_local L_k + spread * z_rank * spectrum) + noise * z_full / sqrt(dim)

then L2-normalises. `m` is a fixed unit direction (the cone's axis), `U` an orthonormal basis of a
`rank`-dimensional subspace, `c_k` one of `clusters` centres drawn with a decaying spectrum, picked
with skewed (log-normal) probabilities, `L_k` a per-cluster `local_dim`-dimensional frame and `s_k` a
per-cluster spread, plus a little isotropic noise in the subspace and in the full space.

Everything is deterministic by seed, and generated in blocks of `BLOCK` rows, each from its own
random stream, so row i is the same however the rows are asked for (all at once, in chunks, or
the first n of a larger set). Queries come from the same generator with another stream: fresh
points near the data (as a text query lands near images), never copies of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np

BLOCK = 4096
GENERATOR_VERSION = 1  # bump when the vectors for a given seed change, so cached work is not reused


@dataclass(frozen=True)
class Shape:
    dim: int = 512
    rank: int = 128  # the subspace holding almost all the variance
    clusters: int = 4000
    local_dim: int = 24  # dimension of each cluster's own spread
    cone: float = 1.2  # weight of the shared direction: sets the cosine of random pairs (about 0.5)
    spectrum_decay: float = 0.5  # the subspace's j-th axis is scaled by (1 + j) ** -decay
    cluster_spread: float = 0.55  # median of the per-cluster spread s_k (log-normal, sigma 0.5)
    subspace_noise: float = 0.2
    full_noise: float = 0.2
    skew: float = 1.0  # sigma of the log-normal cluster weights: a few big clusters, many small ones

    @classmethod
    def for_dim(cls, dim: int) -> Shape:
        """The default shape in `dim` dimensions: the subspace is at most half of them (e.g. 64 of 128)."""
        rank = min(cls.rank, dim // 2)
        return cls(dim=dim, rank=rank, local_dim=min(cls.local_dim, rank))

    def to_dict(self) -> dict:
        return {"version": GENERATOR_VERSION, **asdict(self)}


class ClipLikeVectors:
    """`rows(start, count)`, `blocks(n)` and `fill(n)` of the data set; `queries(n)` of fresh points."""

    DATA_STREAM = 1
    QUERY_STREAM = 2

    def __init__(self, seed: int = 0, shape: Shape | None = None) -> None:
        self.seed = seed
        self.shape = shape = shape or Shape()
        if not 0 < shape.local_dim <= shape.rank < shape.dim:
            raise ValueError("need 0 < local_dim <= rank < dim")
        rng = np.random.default_rng([seed, 0])
        basis, _ = np.linalg.qr(rng.standard_normal((shape.dim, shape.rank + 1)))
        self._axis = basis[:, 0].astype(np.float32)  # the cone's axis, orthogonal to the subspace
        # (rank, dim), scaled so that a centre (unit mean square per axis) has a length of about 1
        self._basis = np.ascontiguousarray(basis[:, 1:].T / np.sqrt(shape.rank), dtype=np.float32)
        self._spectrum = ((1.0 + np.arange(shape.rank)) ** -shape.spectrum_decay).astype(np.float32)
        self._spectrum *= np.float32(np.sqrt(shape.rank / np.sum(self._spectrum ** 2)))  # unit mean square
        self._centres = (rng.standard_normal((shape.clusters, shape.rank)) * self._spectrum).astype(np.float32)
        frames = rng.standard_normal((shape.clusters, shape.local_dim, shape.rank)) * self._spectrum
        frames /= np.linalg.norm(frames, axis=2, keepdims=True)
        self._frames = (frames * np.sqrt(shape.rank / shape.local_dim)).astype(np.float32)
        self._spreads = (shape.cluster_spread * rng.lognormal(0.0, 0.5, shape.clusters)).astype(np.float32)
        weights = rng.lognormal(0.0, shape.skew, shape.clusters)
        self._cumulative = np.cumsum(weights / weights.sum())
        self._cumulative[-1] = 1.0

    # -------------------------------------------------------------------------------------------
    def _block(self, stream: int, number: int) -> np.ndarray:
        shape = self.shape
        rng = np.random.default_rng([self.seed, stream, number])
        labels = np.searchsorted(self._cumulative, rng.random(BLOCK), side="right")
        local = rng.standard_normal((BLOCK, 1, shape.local_dim), dtype=np.float32)
        inner = np.matmul(local, self._frames[labels])[:, 0, :]  # (BLOCK, rank)
        inner *= self._spreads[labels, None]
        inner += self._centres[labels]
        inner += shape.subspace_noise * rng.standard_normal((BLOCK, shape.rank), dtype=np.float32) * self._spectrum
        out = inner @ self._basis
        out += np.float32(shape.cone) * self._axis
        out += np.float32(shape.full_noise / np.sqrt(shape.dim)) * rng.standard_normal((BLOCK, shape.dim),
                                                                                      dtype=np.float32)
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out

    def rows(self, start: int, count: int, stream: int = DATA_STREAM) -> np.ndarray:
        """Rows [start, start + count) of a stream, as float32 (count, dim), each of unit length."""
        out = np.empty((count, self.shape.dim), dtype=np.float32)
        done = 0
        while done < count:
            row = start + done
            number, offset = divmod(row, BLOCK)
            take = min(BLOCK - offset, count - done)
            out[done:done + take] = self._block(stream, number)[offset:offset + take]
            done += take
        return out

    def blocks(self, n: int, rows_per_chunk: int = 16 * BLOCK) -> Iterator[tuple[int, np.ndarray]]:
        """(start, vectors) for the first n rows of the data set, in chunks."""
        for start in range(0, n, rows_per_chunk):
            yield start, self.rows(start, min(rows_per_chunk, n - start))

    def fill(self, n: int, out: np.ndarray | None = None) -> np.ndarray:
        """The first n rows in one (n, dim) float32 array (or into `out`, e.g. a memory-mapped file)."""
        if out is None:
            out = np.empty((n, self.shape.dim), dtype=np.float32)
        for start, chunk in self.blocks(n):
            out[start:start + len(chunk)] = chunk
        return out

    def queries(self, n: int) -> np.ndarray:
        return self.rows(0, n, stream=self.QUERY_STREAM)


# -----------------------------------------------------------------------------------------------
# Exact search and a profile of the data, shared by the benchmarks.


def exact_top_k(data: np.ndarray, queries: np.ndarray, k: int, chunk: int = 32768) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force inner-product top-k: (indices, scores), each (len(queries), k), best first."""
    best_ids = np.empty((len(queries), 0), dtype=np.int64)
    best_scores = np.empty((len(queries), 0), dtype=np.float32)
    for start in range(0, len(data), chunk):
        block = np.asarray(data[start:start + chunk], dtype=np.float32)
        scores = np.concatenate([best_scores, queries @ block.T], axis=1)
        ids = np.concatenate([best_ids, np.broadcast_to(np.arange(start, start + len(block)),
                                                        (len(queries), len(block)))], axis=1)
        keep = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
        best_scores = np.take_along_axis(scores, keep, axis=1)
        best_ids = np.take_along_axis(ids, keep, axis=1)
    order = np.argsort(-best_scores, axis=1)
    return np.take_along_axis(best_ids, order, axis=1), np.take_along_axis(best_scores, order, axis=1)


def profile(data: np.ndarray, queries: np.ndarray, top_scores: np.ndarray, seed: int = 0) -> dict:
    """What the data looks like from the queries: cosines of random pairs and of the nearest neighbours,
    and the local intrinsic dimension (Levina-Bickel MLE over the k nearest, by Euclidean distance)."""
    rng = np.random.default_rng(seed)
    a = np.asarray(data[np.sort(rng.integers(0, len(data), 2000))])
    b = np.asarray(data[np.sort(rng.integers(0, len(data), 2000))])
    random_pairs = np.einsum("ij,ij->i", a, b)
    distances = np.sqrt(np.maximum(2.0 - 2.0 * top_scores.astype(np.float64), 1e-12))
    k = distances.shape[1]
    lid = -1.0 / np.mean(np.log(distances[:, :k - 1] / distances[:, k - 1:]), axis=1)
    return {
        "random_pair_cosine_mean": float(random_pairs.mean()),
        "random_pair_cosine_p5_p95": [float(np.percentile(random_pairs, 5)), float(np.percentile(random_pairs, 95))],
        "query_top1_cosine_mean": float(top_scores[:, 0].mean()),
        f"query_top{k}_cosine_mean": float(top_scores[:, -1].mean()),
        "local_intrinsic_dim_mle": float(np.median(lid)),
        "queries": len(queries),
    }
