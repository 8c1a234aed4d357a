"""The VideoMix family as one plain class, plus backend-dispatching appliers.

>>> import numpy as np
>>> from videomix_dali.mix import VideoMix
>>> mix = VideoMix("spatial", num_classes=4, seed=0)
>>> x = np.zeros((2, 3, 4, 8, 8), np.float32)
>>> params = mix.sample(x.shape)
>>> params.partners.ravel().tolist()  # N = 2: each sample pastes from the other
[1, 0]
>>> x_out, y_soft = mix.apply(x, np.array([0, 3]), params)
>>> y_soft.shape, y_soft.dtype
((2, 4), dtype('float32'))
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..checks import checked_int
from ..runtime import rank_and_world_size
from .apply_numpy import apply_numpy, mix_normalize_batch_numpy
from .arrays import is_cupy, on_device_of, unwrap_array, wrap_array
from .labels import check_label_smoothing, check_num_classes, mix_labels
from .params import MixParams, sample_mix_params, validate_options

__all__ = ["VideoMix", "apply_mix", "mix_normalize_batch"]


def apply_mix(x: Any, params: MixParams) -> Any:
    """Mix ``x`` (NumPy, CuPy or torch; (N, C, T, H, W) or (N, T, D)) with ``params``.

    Pure: ``x`` is not modified; the result has ``x``'s type, device and dtype.  NumPy
    and torch CPU run the NumPy twin, CuPy and torch CUDA one kernel launch.
    """
    arr, kind, _ = unwrap_array(x, "x")
    if tuple(arr.shape) != params.shape:
        raise ValueError(f"x has shape {tuple(arr.shape)} but params were drawn for {params.shape}")
    if not is_cupy(arr):
        return wrap_array(apply_numpy(arr, params), kind)
    from .apply_cupy import apply_cupy

    with on_device_of(x):
        return wrap_array(apply_cupy(arr, params), kind)


def mix_normalize_batch(
    frames: Any,
    params: MixParams,
    mean: Any,
    std: Any,
    *,
    out: Any = None,
    dtype: Any = np.float32,
) -> Any:
    """Fused pipeline step: paste by ``params``, ``(x - mean) / std``, cast, NCTHW.

    ``frames``: a list of N per-sample (T, H, W, C) uint8 clips (NumPy on CPU, CuPy on
    GPU; they need not be contiguous with each other) or one (N, T, H, W, C) array.
    ``mean`` / ``std``: per channel, in 0..255 units.  ``dtype``: float32 or float16.
    ``out``: optional caller-owned (N, C, T, H, W) array (NumPy / CuPy / torch) written
    in place and returned; otherwise a new array of the frames' kind.  Mode ``none``
    (or ``applied`` all false) is a plain normalise + transpose.
    """
    try:  # numpy dtypes, names, or torch dtypes such as torch.float16
        dt = np.dtype(str(dtype).replace("torch.", "") if "torch." in str(dtype) else dtype)
    except TypeError:
        raise ValueError(f"dtype must be float32 or float16, got {dtype!r}") from None
    seq = frames if isinstance(frames, (list, tuple)) else [frames]
    on_gpu = len(seq) > 0 and is_cupy(seq[0])
    out_arr = None if out is None else unwrap_array(out, "out")[0]
    if not on_gpu:
        if out_arr is not None and is_cupy(out_arr):
            raise ValueError("out must live on the CPU when frames do")
        res = mix_normalize_batch_numpy(frames, params, mean, std, out=out_arr, dtype=dt)
        return out if out is not None else res
    from .apply_cupy import mix_normalize_batch_cupy

    if out_arr is not None and not is_cupy(out_arr):
        raise ValueError("out must live on the GPU when frames do")
    with on_device_of(out if out is not None else seq[0]):
        res = mix_normalize_batch_cupy(frames, params, mean, std, out=out_arr, dtype=dt)
    return out if out is not None else res


class VideoMix:
    """VideoMix family batch augmentation (Yun et al., "VideoMix: Rethinking Data
    Augmentation for Video Classification", 2020), with CutMix / Mixup / Cutout
    extended to video as the paper's baselines.

    Args:
        mode: ``"spatial"`` (VideoMix, default: box over H x W, all T frames),
            ``"temporal"`` (frames t1:t2, whole frame; also (N, T, D) features),
            ``"spatiotemporal"`` (cuboid, = 3-D CutMix), ``"perframe"`` (independent
            spatial box and lam per frame; ablation), ``"mixup"`` (voxel-wise blend),
            ``"cutout"`` (3-D erase to 0, labels unchanged) or ``"none"``.
        alpha: lam ~ Beta(alpha, alpha); > 0.
        prob: chance to mix, per batch (per sample with ``per_sample=True``).
        num_videos: k >= 2; k - 1 boxes pasted from k - 1 distinct partners, in order.
        num_classes: K, needed for int labels.
        label_smoothing: eps in [0, 1), applied to one-hot targets before mixing.
        per_sample: False (paper): one lam and one box shared by the batch; True:
            every sample draws its own ``applied``, lam and box.
        seed: base seed (None: fresh entropy, kept in ``seed``).  Params of a step come
            from ``PCG64(SeedSequence([seed, rank, step]))``: the same on every backend,
            different per DDP rank and per step.
        cutout_size: ``(h, w)`` (all T frames) or ``(t, h, w)`` fixed cutout box, e.g.
            ``(112, 112)`` as in the paper's Table 2; None: box from lam like
            spatiotemporal.
        rank: DDP rank (default: torch.distributed's rank if initialised, else 0).
    """

    def __init__(
        self,
        mode: str = "spatial",
        *,
        alpha: float = 1.0,
        prob: float = 1.0,
        num_videos: int = 2,
        num_classes: int | None = None,
        label_smoothing: float = 0.0,
        per_sample: bool = False,
        seed: int | None = None,
        cutout_size: tuple[int | None, ...] | None = None,
        rank: int | None = None,
    ) -> None:
        self.cutout_size = validate_options(mode, alpha, prob, num_videos, cutout_size)
        self._cutout_arg = cutout_size
        self.mode = mode
        self.alpha = float(alpha)
        self.prob = float(prob)
        self.num_videos = int(num_videos)
        self.num_classes = check_num_classes(num_classes)
        self.label_smoothing = check_label_smoothing(label_smoothing)
        if not isinstance(per_sample, (bool, np.bool_)):
            raise ValueError(f"per_sample must be a bool, got {per_sample!r}")
        self.per_sample = bool(per_sample)
        if seed is None:
            seed = int(np.random.SeedSequence().entropy)
        self.seed = checked_int("seed", seed, 0)
        if rank is None:
            rank = rank_and_world_size()[0]
        self.rank = checked_int("rank", rank, 0)
        self._step = 0

    def __repr__(self) -> str:
        return (
            f"VideoMix(mode={self.mode!r}, alpha={self.alpha}, prob={self.prob}, "
            f"num_videos={self.num_videos}, num_classes={self.num_classes}, "
            f"label_smoothing={self.label_smoothing}, per_sample={self.per_sample}, "
            f"seed={self.seed}, cutout_size={self._cutout_arg}, rank={self.rank})"
        )

    # ---- seeding / checkpoint
    @property
    def step(self) -> int:
        """The step the next ``sample()`` without ``step=`` will use."""
        return self._step

    def rng(self, step: int) -> np.random.Generator:
        return np.random.Generator(
            np.random.PCG64(np.random.SeedSequence([self.seed, self.rank, step]))
        )

    def state_dict(self) -> dict[str, int]:
        return {"step": self._step, "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._step = checked_int("state['step']", state.get("step"), 0)
        if "seed" in state:
            self.seed = int(state["seed"])

    # ---- the three verbs
    def sample(
        self, shape: tuple[int, ...], *, step: int | None = None, siblings: int = 1
    ) -> MixParams:
        """Draw the params of one batch of ``shape`` (N, C, T, H, W) or (N, T, D).

        Without ``step`` the internal step counter is used and advanced. ``siblings``: rows
        come in consecutive runs of that many clips of one video, never paired with each other.
        """
        if step is None:
            step = self._step
            self._step += 1
        else:
            checked_int("step", step, 0)
        return sample_mix_params(
            tuple(shape),
            rng=self.rng(int(step)),
            mode=self.mode,
            alpha=self.alpha,
            prob=self.prob,
            num_videos=self.num_videos,
            per_sample=self.per_sample,
            cutout_size=self._cutout_arg,
            siblings=siblings,
        )

    def apply(self, x: Any, y: Any, params: MixParams) -> tuple[Any, Any]:
        """Pure: ``(mixed x, soft labels (N, K) float32)``; same params, same result.

        ``y`` may be None (then the second result is None).
        """
        arr, _, _ = unwrap_array(x, "x")
        _check_x(arr, self.mode)
        x_out = apply_mix(x, params)
        y_soft = None
        if y is not None:
            y_soft = mix_labels(y, params, self.num_classes, self.label_smoothing)
        return x_out, y_soft

    def __call__(self, x: Any, y: Any, *, step: int | None = None) -> tuple[Any, Any]:
        arr, _, _ = unwrap_array(x, "x")
        _check_x(arr, self.mode)
        return self.apply(x, y, self.sample(tuple(arr.shape), step=step))


class MixStack:
    """Several mixing ops applied to a batch one after the other, e.g. VideoMix, then Mixup,
    then Cutout (the paper's Table 13 stacks them): each stage draws its own params from its
    own seed, and the soft labels are mixed stage by stage with the exact rules of each (Mixup
    after a paste blends the pasted soft targets; Cutout leaves them). Label smoothing is the
    first stage's, applied once.
    """

    def __init__(self, *stages: VideoMix) -> None:
        if len(stages) < 2 or not all(isinstance(s, VideoMix) for s in stages):
            raise ValueError(f"MixStack needs two or more VideoMix stages, got {stages!r}")
        if any(s.mode == "none" for s in stages):
            raise ValueError("a MixStack stage cannot have mode='none'")
        if any(s.label_smoothing for s in stages[1:]):
            raise ValueError("label_smoothing belongs to the first stage only (applied once)")
        classes = {s.num_classes for s in stages} - {None}
        if len(classes) > 1:
            raise ValueError(f"the stages disagree on num_classes: {sorted(classes)}")
        self.stages = tuple(stages)
        self.num_classes = classes.pop() if classes else None

    def __repr__(self) -> str:
        return f"MixStack({', '.join(map(repr, self.stages))})"

    @property
    def mode(self) -> str:
        """The first stage's mode (the graph's main mixing step)."""
        return self.stages[0].mode

    @property
    def num_videos(self) -> int:
        return self.stages[0].num_videos

    @property
    def label_smoothing(self) -> float:
        return self.stages[0].label_smoothing

    def sample(
        self, shape: tuple[int, ...], *, step: int | None = None, siblings: int = 1
    ) -> list[MixParams]:
        """Each stage's params for one batch of ``shape`` (see :meth:`VideoMix.sample`)."""
        return [s.sample(shape, step=step, siblings=siblings) for s in self.stages]

    def labels(self, y: Any, params: list[MixParams], num_classes: int | None = None) -> Any:
        """Soft labels (N, K) float32 after every stage, of ``y``'s type and device."""
        y = mix_labels(y, params[0], num_classes or self.num_classes, self.label_smoothing)
        for p in params[1:]:
            y = mix_labels(y, p)
        return y

    def apply(self, x: Any, y: Any, params: list[MixParams]) -> tuple[Any, Any]:
        """Pure: ``(x mixed by every stage in order, soft labels or None)``."""
        for p in params:
            x = apply_mix(x, p)
        return x, None if y is None else self.labels(y, params)

    def __call__(self, x: Any, y: Any, *, step: int | None = None) -> tuple[Any, Any]:
        arr, _, _ = unwrap_array(x, "x")
        for s in self.stages:
            _check_x(arr, s.mode)
        return self.apply(x, y, self.sample(tuple(arr.shape), step=step))


def _check_x(arr: Any, mode: str) -> None:
    if arr.ndim == 5:
        N, C, T, H, W = arr.shape
        if W in (1, 3) and C not in (1, 3) and H > 4:
            raise ValueError(
                f"x of shape {tuple(arr.shape)} looks channel-last (N, T, H, W, C); "
                "x must be (N, C, T, H, W)"
            )
        return
    if arr.ndim == 3:
        if mode not in ("temporal", "mixup", "none"):
            raise ValueError(
                f"x of shape {tuple(arr.shape)} is an (N, T, D) feature sequence, which "
                f"mode={mode!r} does not accept (only temporal, mixup, none)"
            )
        return
    raise ValueError(
        f"x must be (N, C, T, H, W) (or (N, T, D) features for temporal mixing), "
        f"got ndim={arr.ndim}, shape {tuple(arr.shape)}"
    )
