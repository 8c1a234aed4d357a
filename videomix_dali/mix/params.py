"""Mixing parameters of the VideoMix family and their seeded sampler.

Sampling is kept apart from applying (as timm's ``mixup.py``, torchvision v2's
``_get_params`` / ``_transform`` and kornia's ``generate_parameters`` do): the sampler
draws a :class:`MixParams`, a small frozen value of NumPy arrays, and every applier
(NumPy, CuPy kernel, fused DALI path, labels) is a pure function of ``(x, params)``.

Semantics follow VideoMix (Yun et al., 2020), Eq. 1-3 -- *not* the label line of its
Appendix A pseudo-code, which puts the box fraction on the wrong label: the output takes
the box from the partner video and the rest from the video itself, and each source's
label weight is exactly the fraction of output voxels that came from it, counted from
the clipped integer box.

Box convention (documented once, used everywhere)
-------------------------------------------------
A box is half-open in voxel indices, ``[a1, a2)`` on each cut axis of length ``L``.  Its
centre ``c`` is a voxel *edge*, an integer drawn uniformly from ``{0, 1, ..., L}`` --
``L + 1`` values, both ends included: the integer twin of the paper's ``Unif(0, L)``.
With the integer side ``s = floor(L * lam**(1/d) + 0.5)`` (``d`` = number of cut axes)
the box is ``a1 = c - s // 2``, ``a2 = a1 + s``, both clipped to ``[0, L]``.

Why the inclusive bound: ``c = 0`` gives the box clipped to its half at the first
border and ``c = L`` the one clipped to its half at the last border, so every border
placement is drawn, every voxel ``0 .. L-1`` is covered by some centre for every
``s >= 1``, and for even ``s`` the distribution of boxes is exactly mirror-symmetric
(``c`` and ``L - c`` give mirrored boxes).  An exclusive bound (``randint(0, L)``) never
draws the half-clipped boxes at the last border and leans towards the first one.  For
odd ``s`` an edge cannot be the exact centre; the box then reaches one voxel further to
the right of ``c`` than to its left (a half-voxel shift).  The label weights never
depend on the convention: they are counted from the clipped box.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..checks import checked_int

__all__ = [
    "MODES",
    "MODE_CODES",
    "MixParams",
    "sample_mix_params",
    "validate_options",
    "num_pastes",
    "canonical_dims",
]

MODES = ("spatial", "temporal", "spatiotemporal", "perframe", "mixup", "cutout", "none")
# Same numbers as the VM_* macros in kernels/videomix.cuh.
MODE_CODES = {
    "none": 0,
    "spatial": 1,
    "temporal": 2,
    "spatiotemporal": 3,
    "perframe": 4,
    "mixup": 5,
    "cutout": 6,
}
_CODE_MODES = {v: k for k, v in MODE_CODES.items()}
PAIRING_MODES = ("spatial", "temporal", "spatiotemporal", "perframe", "mixup")
FEATURE_MODES = ("temporal", "mixup", "none")  # modes that accept (N, T, D) features
# cut axes (0 = t, 1 = h, 2 = w) of the modes whose box size comes from lam
_CUT_AXES = {
    "spatial": (1, 2),
    "temporal": (0,),
    "spatiotemporal": (0, 1, 2),
    "perframe": (1, 2),
    "cutout": (0, 1, 2),
}
# int32 header of every packed row: applied, P, B, K (coef length), num_videos, per_sample,
# mode code; the VM_ROW_* offsets in kernels/videomix.cuh.
ROW_HEADER = 7


def num_pastes(mode: str, num_videos: int) -> int:
    """Number of pastes P: ``num_videos - 1`` for the mixing modes, 1 for cutout, 0 for none."""
    if mode == "none":
        return 0
    if mode == "cutout":
        return 1
    return int(num_videos) - 1


def canonical_dims(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(T, H, W) of an (N, C, T, H, W) shape; (T, 1, D) of an (N, T, D) feature shape."""
    if len(shape) == 5:
        return int(shape[2]), int(shape[3]), int(shape[4])
    if len(shape) == 3:
        return int(shape[1]), 1, int(shape[2])
    raise ValueError(f"shape must be (N, C, T, H, W) or (N, T, D), got {tuple(shape)}")


def validate_options(
    mode: Any,
    alpha: Any,
    prob: Any,
    num_videos: Any,
    cutout_size: Any = None,
) -> tuple[int, ...] | None:
    """Check the sampler options; return the normalised ``cutout_size``."""
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating, np.integer)):
        raise ValueError(f"alpha must be a number > 0, got {alpha!r}")
    if not np.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"alpha must be > 0 (Beta(alpha, alpha)), got {alpha!r}")
    if isinstance(prob, bool) or not isinstance(prob, (int, float, np.floating, np.integer)):
        raise ValueError(f"prob must be a number in [0, 1], got {prob!r}")
    if not 0.0 <= float(prob) <= 1.0:
        raise ValueError(f"prob must be in [0, 1], got {prob!r}")
    if isinstance(num_videos, bool) or not isinstance(num_videos, (int, np.integer)):
        raise ValueError(f"num_videos must be an int >= 2, got {num_videos!r}")
    if num_videos < 2:
        raise ValueError(f"num_videos must be >= 2, got {num_videos!r}")
    if cutout_size is None:
        return None
    if mode != "cutout":
        raise ValueError(f"cutout_size is only used with mode='cutout', got mode={mode!r}")
    size = tuple(cutout_size) if isinstance(cutout_size, (tuple, list)) else None
    if size is None or len(size) not in (2, 3):
        raise ValueError(f"cutout_size must be (h, w) or (t, h, w), got {cutout_size!r}")
    if len(size) == 2:
        size = (None, *size)
    for i, s in enumerate(size):
        if s is None and i == 0:
            continue
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1:
            raise ValueError(f"cutout_size entries must be ints >= 1, got {cutout_size!r}")
    return tuple(-1 if s is None else int(s) for s in size)  # -1: full T


def _check_shape(shape: Any, mode: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        raise ValueError(f"shape must be a tuple of ints, got {shape!r}") from None
    if len(shape) == 3:
        if mode not in FEATURE_MODES:
            raise ValueError(
                f"shape {shape} is an (N, T, D) feature sequence, which only modes "
                f"{', '.join(FEATURE_MODES)} accept (mode={mode!r}); clips must be (N, C, T, H, W)"
            )
    elif len(shape) != 5:
        raise ValueError(
            f"shape must be (N, C, T, H, W) (or (N, T, D) for temporal mixing), got {shape}"
        )
    if any(s < 1 for s in shape):
        raise ValueError(f"shape must have no empty axis, got {shape}")
    return shape


# --------------------------------------------------------------------------- the value


def _frozen(a: np.ndarray, dtype: Any) -> np.ndarray:
    a = np.array(a, dtype=dtype, copy=True)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False, repr=False)
class MixParams:
    """Everything an applier needs to mix one batch; small, inspectable, immutable.

    With ``N`` = batch size, ``P`` = number of pastes (``num_videos - 1``; 1 for cutout;
    0 for none) and ``B`` = boxes per paste (``T`` for perframe, else 1):

    ``applied`` (N,) bool
        whether sample n is mixed at all (``prob``; ``N = 1`` never pairs).
    ``partners`` (N, P) int64
        the sample whose box paste j copies into sample n; each column is a derangement
        of the batch, the entries of a row are distinct and differ from n; -1 means
        "erase to zero" (cutout) or "no partner" (a batch of one).
    ``lam`` (N, P, B) float64
        the drawn ``lam ~ Beta(alpha, alpha)``.  Cut modes: the nominal (unclipped) box
        volume fraction, i.e. the partner's share before clipping.  mixup: the blend
        weight of what is already there (``x*lam + partner*(1-lam)``).  cutout with a fixed
        ``cutout_size``: the nominal box fraction.
    ``boxes`` (N, P, B, 6) int64
        ``[t1, t2, h1, h2, w1, w2]``, half-open and clipped; perframe box b covers frame b
        only; mixup boxes are the whole clip.  For (N, T, D) features, h spans [0, 1) and
        w spans [0, D).
    ``weights`` (N, 1 + P) float64
        label weight of the sample itself and of each paste's partner: the exact share
        of output voxels each one owns (counted from the clipped boxes, later pastes
        overwriting earlier ones; mixup: the blend coefficients).  Cutout keeps the
        label: ``[1, 0]``.
    """

    mode: str
    shape: tuple[int, ...]
    num_videos: int
    per_sample: bool
    applied: np.ndarray
    partners: np.ndarray
    lam: np.ndarray
    boxes: np.ndarray
    weights: np.ndarray

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        object.__setattr__(self, "num_videos", int(self.num_videos))
        object.__setattr__(self, "per_sample", bool(self.per_sample))
        N, P, B = self.batch_size, self.num_pastes, self.boxes_per_paste
        for name, dtype, want in (
            ("applied", np.bool_, (N,)),
            ("partners", np.int64, (N, P)),
            ("lam", np.float64, (N, P, B)),
            ("boxes", np.int64, (N, P, B, 6)),
            ("weights", np.float64, (N, 1 + P)),
        ):
            a = _frozen(getattr(self, name), dtype)
            if a.shape != want:
                raise ValueError(f"MixParams.{name} must have shape {want}, got {a.shape}")
            object.__setattr__(self, name, a)

    # ---- derived sizes
    @property
    def batch_size(self) -> int:
        return int(self.shape[0])

    @property
    def num_pastes(self) -> int:
        return num_pastes(self.mode, self.num_videos)

    @property
    def boxes_per_paste(self) -> int:
        return self.dims[0] if self.mode == "perframe" else 1

    @property
    def dims(self) -> tuple[int, int, int]:
        """(T, H, W) of the clip; (T, 1, D) for an (N, T, D) feature sequence."""
        return canonical_dims(self.shape)

    @property
    def is_features(self) -> bool:
        return len(self.shape) == 3

    @property
    def mode_code(self) -> int:
        return MODE_CODES[self.mode]

    # ---- value semantics
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MixParams):
            return NotImplemented
        return (
            self.mode == other.mode
            and self.shape == other.shape
            and self.num_videos == other.num_videos
            and self.per_sample == other.per_sample
            and all(
                np.array_equal(getattr(self, f), getattr(other, f))
                for f in ("applied", "partners", "lam", "boxes", "weights")
            )
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        head = (
            f"MixParams(mode={self.mode!r}, shape={self.shape}, num_videos={self.num_videos}, "
            f"per_sample={self.per_sample})"
        )
        lines = [head]
        N = self.batch_size
        shown = range(N) if N <= 16 else list(range(8)) + list(range(N - 4, N))
        last = -1
        for n in shown:
            if n != last + 1:
                lines.append("  ...")
            last = n
            lines.append("  " + self._describe(n))
        return "\n".join(lines)

    def _describe(self, n: int) -> str:
        if not self.applied[n]:
            return f"[{n}] not mixed  weights self 1.000"
        parts = []
        w = self.weights[n]
        for j in range(self.num_pastes):
            p = int(self.partners[n, j])
            lam = self.lam[n, j]
            if self.mode == "mixup":
                parts.append(f"blend <- {p} lam={float(lam[0]):.3f}")
            elif self.mode == "perframe":
                nonempty = sum(_volume(b) > 0 for b in self.boxes[n, j])
                mean_lam = float(np.mean(lam))
                parts.append(
                    f"<- {p} {nonempty}/{len(lam)} per-frame boxes, mean lam={mean_lam:.3f}"
                )
            else:
                src = "erase" if p < 0 else f"<- {p}"
                parts.append(f"{src} {_box_str(self.boxes[n, j, 0])} lam={float(lam[0]):.3f}")
        ws = [f"self {w[0]:.3f}"]
        for j in range(self.num_pastes):
            p = int(self.partners[n, j])
            if p >= 0:
                ws.append(f"#{p} {w[j + 1]:.3f}")
        if self.mode == "cutout":
            T, H, W = self.dims
            ws.append(f"(label kept, {_volume(self.boxes[n, 0, 0]) / (T * H * W):.3f} erased)")
        return f"[{n}] " + "; ".join(parts) + "  weights " + " | ".join(ws)

    # ---- the wire format: what the source packs, what the kernels and the twin read
    @staticmethod
    def packed_widths(mode: str, num_videos: int, T: int) -> tuple[int, int]:
        """(row length R, coef length) of :meth:`pack` for this mode / num_videos / T."""
        P = num_pastes(mode, num_videos)
        B = int(T) if mode == "perframe" else 1
        return ROW_HEADER + P + 6 * P * B, 2 * P + P * B + 1 + P

    def pack(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows int32 (N, R), coef float64 (N, K)): the layout of kernels/videomix.cuh.

        Row: ``[applied, P, B, K, num_videos, per_sample, mode_code, partners (P),
        boxes (P*B*6)]``.
        Coef: ``[lam_j, 1 - lam_j for each paste (2*P), lam (P*B), weights (1+P)]``; the
        kernels read the first ``2*P`` (mixup), the rest makes :meth:`unpack` exact.
        """
        N, P, B = self.batch_size, self.num_pastes, self.boxes_per_paste
        R, K = self.packed_widths(self.mode, self.num_videos, self.dims[0])
        rows = np.empty((N, R), dtype=np.int32)
        rows[:, 0] = self.applied
        rows[:, 1] = P
        rows[:, 2] = B
        rows[:, 3] = K
        rows[:, 4] = self.num_videos
        rows[:, 5] = self.per_sample
        rows[:, 6] = self.mode_code
        rows[:, ROW_HEADER : ROW_HEADER + P] = self.partners
        rows[:, ROW_HEADER + P :] = self.boxes.reshape(N, P * B * 6)
        coef = np.empty((N, K), dtype=np.float64)
        lam = self.lam[:, :, 0]
        coef[:, 0 : 2 * P : 2] = lam
        coef[:, 1 : 2 * P : 2] = 1.0 - lam
        coef[:, 2 * P : 2 * P + P * B] = self.lam.reshape(N, P * B)
        coef[:, 2 * P + P * B :] = self.weights
        return rows, coef

    @classmethod
    def unpack(cls, rows: Any, coef: Any, *, mode: str, shape: tuple[int, ...]) -> MixParams:
        """Inverse of :meth:`pack`; ``rows`` / ``coef`` are (N, R) / (N, K) or lists of N."""
        rows = _stack_rows(rows, np.int32, "rows")
        coef = _stack_rows(coef, np.float64, "coef")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
        shape = tuple(int(s) for s in shape)
        if rows.shape[0] != shape[0] or coef.shape[0] != shape[0] or rows.shape[1] < ROW_HEADER:
            raise ValueError(
                f"rows {rows.shape} and coef {coef.shape} must both have N={shape[0]} rows"
            )
        if np.any(rows[:, 6] != MODE_CODES[mode]):
            got = _CODE_MODES.get(int(rows[0, 6]), int(rows[0, 6]))
            raise ValueError(f"rows were packed for mode {got!r}, not mode={mode!r}")
        k, T = int(rows[0, 4]), canonical_dims(shape)[0]
        P, B = num_pastes(mode, k), (T if mode == "perframe" else 1)
        widths = cls.packed_widths(mode, k, T)
        if (rows.shape[1], coef.shape[1]) != widths or (int(rows[0, 1]), int(rows[0, 2])) != (
            P,
            B,
        ):
            raise ValueError(
                f"rows of width {rows.shape[1]} / coef of width {coef.shape[1]} do not fit "
                f"mode={mode!r}, shape={shape} (expected {widths[0]} / {widths[1]})"
            )
        N = shape[0]
        return cls(
            mode=mode,
            shape=shape,
            num_videos=k,
            per_sample=bool(rows[0, 5]),
            applied=rows[:, 0] != 0,
            partners=rows[:, ROW_HEADER : ROW_HEADER + P],
            lam=coef[:, 2 * P : 2 * P + P * B].reshape(N, P, B),
            boxes=rows[:, ROW_HEADER + P :].reshape(N, P, B, 6),
            weights=coef[:, 2 * P + P * B :],
        )


def _stack_rows(a: Any, dtype: Any, name: str) -> np.ndarray:
    if isinstance(a, (list, tuple)):
        a = np.stack([np.asarray(r).reshape(-1) for r in a])
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{name} must be (N, width), got shape {a.shape}")
    return a.astype(dtype, copy=False)


def _volume(box: np.ndarray) -> int:
    return int(max(box[1] - box[0], 0) * max(box[3] - box[2], 0) * max(box[5] - box[4], 0))


def _box_str(b: np.ndarray) -> str:
    return f"t[{b[0]}:{b[1]}) h[{b[2]}:{b[3]}) w[{b[4]}:{b[5]})"


# --------------------------------------------------------------------------- sampler


def _derangement_columns(rng: np.random.Generator, N: int, P: int) -> np.ndarray:
    """(N, P) partners: every column a derangement, every row distinct entries != n.

    Column by column, a uniform permutation is redrawn until it has no fixed point and
    no clash with the earlier columns (uniform over derangements for P = 1).  Should a
    column need more than 200 draws (only for P close to N), the whole matrix is built
    instead from one random permutation s and distinct random shifts d_j in 1..N-1:
    partner_j(s[i]) = s[(i + d_j) mod N].
    """
    ar = np.arange(N)
    out = np.empty((N, P), dtype=np.int64)
    for j in range(P):
        for _ in range(200):
            perm = rng.permutation(N)
            bad = perm == ar
            for i in range(j):
                bad |= perm == out[:, i]
            if not bad.any():
                out[:, j] = perm
                break
        else:
            s = rng.permutation(N)
            shifts = rng.choice(np.arange(1, N), size=P, replace=False)
            for jj, d in enumerate(shifts):
                out[s, jj] = s[(ar + d) % N]
            return out
    return out


def _cross_group_columns(rng: np.random.Generator, N: int, P: int, siblings: int) -> np.ndarray:
    """(N, P) partners where rows come in consecutive runs of ``siblings`` (the clips of one
    video): no row's partner is in its own run, and every row's partners are distinct.

    The rows are laid out in a random order that cycles through the ``G = N / siblings`` runs
    (a random order of the runs, a random order of each run's rows); a row's partner j is the
    row ``d_j`` places further along, for distinct shifts ``d_j`` that are not multiples of
    ``G``, so it lies in another run. Every column is a permutation without fixed points.
    """
    G = N // siblings
    runs = rng.permutation(G)
    members = np.stack([rng.permutation(siblings) for _ in range(G)])
    t = np.arange(N)
    s = runs[t % G] * siblings + members[runs[t % G], t // G]
    allowed = np.array([d for d in range(1, N) if d % G])
    shifts = rng.choice(allowed, size=P, replace=False)
    out = np.empty((N, P), dtype=np.int64)
    for j, d in enumerate(shifts):
        out[s, j] = s[(t + d) % N]
    return out


def _check_siblings(siblings: Any, N: int, P: int) -> int:
    """``siblings`` as an int that divides ``N`` and leaves ``P`` partners outside a run."""
    siblings = checked_int("siblings", siblings, 1)
    if N % siblings:
        raise ValueError(f"a batch of {N} rows is not made of runs of siblings={siblings}")
    if siblings > 1 and P and 0 < N - siblings < P:
        raise ValueError(
            f"a batch of {N} clips in runs of {siblings} per video has {N - siblings} clips of "
            f"other videos, fewer than the {P} partners each clip needs: batch more videos"
        )
    return siblings


def _sides(lam: np.ndarray, L: int, d: int) -> np.ndarray:
    """Integer box side floor(L * lam**(1/d) + 0.5), within [0, L]."""
    s = np.floor(L * np.power(lam, 1.0 / d) + 0.5).astype(np.int64)
    return np.clip(s, 0, L)


def _boxes_from(
    centres: np.ndarray, sides: np.ndarray, dims: tuple[int, int, int], cut: tuple[int, ...]
) -> np.ndarray:
    """Boxes [t1, t2, h1, h2, w1, w2] from integer centres/sides (..., 3); uncut axes full."""
    boxes = np.empty(centres.shape[:-1] + (6,), dtype=np.int64)
    for ax, L in enumerate(dims):
        if ax in cut:
            a1 = centres[..., ax] - sides[..., ax] // 2
            a2 = a1 + sides[..., ax]
            boxes[..., 2 * ax] = np.clip(a1, 0, L)
            boxes[..., 2 * ax + 1] = np.clip(a2, 0, L)
        else:
            boxes[..., 2 * ax] = 0
            boxes[..., 2 * ax + 1] = L
    return boxes


def _box_vol(b: np.ndarray) -> np.ndarray:
    e = np.maximum(b[..., 1::2] - b[..., 0::2], 0)
    return e[..., 0] * e[..., 1] * e[..., 2]


def _intersect(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty(np.broadcast_shapes(a.shape, b.shape), dtype=np.int64)
    out[..., 0::2] = np.maximum(a[..., 0::2], b[..., 0::2])
    out[..., 1::2] = np.minimum(a[..., 1::2], b[..., 1::2])
    return out


def owned_voxels(boxes: np.ndarray, dims: tuple[int, int, int]) -> np.ndarray:
    """Exact voxel counts (S, 1 + P) owned by the sample itself and by each paste.

    ``boxes`` is (S, P, B, 6); paste j owns its box minus the boxes of later pastes
    (later pastes overwrite earlier ones); the boxes of one paste are disjoint (one per
    frame for perframe).  Counted by inclusion-exclusion over the later pastes' boxes of
    the same frame slot b, vectorised over samples and slots; for more than 8 pastes by
    painting an ownership volume per sample instead.
    """
    S, P, B, _ = boxes.shape
    total = int(dims[0]) * int(dims[1]) * int(dims[2])
    counts = np.zeros((S, 1 + P), dtype=np.int64)
    if P == 0:
        counts[:, 0] = total
        return counts
    if P > 8:
        T, H, W = dims
        for s in range(S):
            owner = np.zeros((T, H, W), dtype=np.int64)
            for j in range(P):
                for b in range(B):
                    t1, t2, h1, h2, w1, w2 = boxes[s, j, b]
                    owner[t1:t2, h1:h2, w1:w2] = j + 1
            counts[s] = np.bincount(owner.ravel(), minlength=1 + P)
        return counts
    for j in range(P):
        later = list(range(j + 1, P))
        c = np.zeros(S, dtype=np.int64)
        for mask in range(1 << len(later)):
            box = boxes[:, j]
            sign = 1
            for bit, i in enumerate(later):
                if mask >> bit & 1:
                    box = _intersect(box, boxes[:, i])
                    sign = -sign
            c += sign * _box_vol(box).sum(axis=1)
        counts[:, j + 1] = c
    counts[:, 0] = total - counts[:, 1:].sum(axis=1)
    return counts


def sample_mix_params(
    shape: tuple[int, ...],
    *,
    rng: np.random.Generator,
    mode: str = "spatial",
    alpha: float = 1.0,
    prob: float = 1.0,
    num_videos: int = 2,
    per_sample: bool = False,
    cutout_size: tuple[int | None, ...] | None = None,
    siblings: int = 1,
) -> MixParams:
    """Draw the parameters of one batch of ``shape`` (N, C, T, H, W) or (N, T, D).

    ``siblings``: the batch's rows come in consecutive runs of that many clips of one video
    (``clips_per_video``); no row is paired with a row of its own run.

    Draw order (fixed, so a seed means the same params everywhere): ``applied``, then
    ``lam`` ~ Beta(alpha, alpha) for every (sample-or-batch, paste, box slot), then the
    box centres for every slot and axis (uniform over ``{0, ..., L}``, see the module
    docstring), then the partner derangements.  Everything is drawn whether used or
    not, so ``prob`` does not shift the stream.  ``per_sample=False``: one ``applied``
    flag, one ``lam`` and one box per paste for the whole batch (the paper);
    ``per_sample=True``: each sample draws its own.
    """
    size = validate_options(mode, alpha, prob, num_videos, cutout_size)
    shape = _check_shape(shape, mode)
    N = shape[0]
    dims = canonical_dims(shape)
    P = num_pastes(mode, num_videos)
    pairing = mode in PAIRING_MODES
    if pairing and N >= 2 and num_videos > N:
        raise ValueError(f"num_videos={num_videos} exceeds the batch size N={N}")
    siblings = _check_siblings(siblings, N, P if pairing else 0)
    B = dims[0] if mode == "perframe" else 1
    S = N if per_sample else 1

    applied_s = rng.random(S) < prob
    lam = rng.beta(alpha, alpha, size=(S, max(P, 1), B))[:, :P]
    centres = rng.integers(0, np.asarray(dims), size=(S, max(P, 1), B, 3), endpoint=True)[:, :P]
    alone = N == siblings  # one video's clips: nothing to pair with, like a batch of one
    if pairing and not alone and siblings > 1:
        partners = _cross_group_columns(rng, N, P, siblings)
    elif pairing and not alone:
        partners = _derangement_columns(rng, N, P)
    else:
        partners = np.full((N, P), -1, dtype=np.int64)

    if mode in _CUT_AXES:
        cut = _CUT_AXES[mode]
        sides = np.zeros(centres.shape, dtype=np.int64)
        if mode == "cutout" and size is not None:
            fixed = [dims[0] if size[0] < 0 else min(size[0], dims[0])]
            fixed += [min(size[1], dims[1]), min(size[2], dims[2])]
            sides[...] = np.asarray(fixed)
            cut = (1, 2) if size[0] < 0 else (0, 1, 2)
            lam = np.full(lam.shape, float(np.prod(fixed)) / float(np.prod(dims)))
        else:
            for ax in cut:
                sides[..., ax] = _sides(lam, dims[ax], len(cut))
        boxes = _boxes_from(centres, sides, dims, cut)
        if mode == "perframe":
            boxes[..., 0] = np.arange(B)
            boxes[..., 1] = np.arange(B) + 1
    else:  # mixup (whole clip) / none (no boxes)
        boxes = np.zeros((S, P, B, 6), dtype=np.int64)
        boxes[..., 1::2] = np.asarray(dims)

    if pairing and (N < 2 or alone):
        applied_s[:] = False
    if mode == "none":
        applied_s[:] = False

    # label weights, from the exact clipped volumes
    if mode == "mixup":
        lam0 = lam[:, :, 0]
        w = np.empty((S, 1 + P))
        w[:, 0] = np.prod(lam0, axis=1)
        for j in range(P):
            w[:, j + 1] = (1.0 - lam0[:, j]) * np.prod(lam0[:, j + 1 :], axis=1)
    elif mode == "cutout" or mode == "none":
        w = np.zeros((S, 1 + P))
        w[:, 0] = 1.0
    else:
        counts = owned_voxels(boxes, dims)
        w = counts / float(dims[0] * dims[1] * dims[2])
    w[~applied_s] = 0.0
    w[~applied_s, 0] = 1.0

    def expand(a: np.ndarray) -> np.ndarray:
        return np.broadcast_to(a, (N,) + a.shape[1:]) if S == 1 else a

    return MixParams(
        mode=mode,
        shape=shape,
        num_videos=num_videos,
        per_sample=per_sample,
        applied=expand(applied_s),
        partners=partners,
        lam=expand(lam),
        boxes=expand(boxes),
        weights=expand(w),
    )
