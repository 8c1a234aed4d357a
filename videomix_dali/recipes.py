"""Dataset protocols of the paper as typed values, one TOML file each in ``pipelines/``.

A :class:`Recipe` carries everything a protocol fixes: how clips are cut and augmented, how
they are normalised and tested, the batch, the class count and the training :class:`Schedule`.
It is frozen and checked once, on construction; :meth:`Recipe.replace` makes a checked copy
with some fields changed (the loader's keyword overrides).
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from .checks import checked_choice, checked_int, finite_floats
from .shipped import shipped_dir

SAMPLINGS = ("window", "segment")
#: What the ``clips_per_video`` clips of one decoded video differ in (see ``Recipe``).
REPEATS = ("views", "windows")
#: Most clips one decoded video may give per epoch.
MAX_CLIPS_PER_VIDEO = 16
SCHEDULE_KINDS = ("cosine", "step")
#: Most frames a clip may have: DALI decodes, resizes and holds a clip's frames one by one in
#: one buffer per sample, so a clip's time and memory grow with its frames; the paper's
#: protocols use 8 to 64.
MAX_NUM_FRAMES = 1024


def _positive_ints(values: dict[str, Any]) -> None:
    for name, value in values.items():
        checked_int(name, value, 1)


@dataclass(frozen=True)
class Schedule:
    """Per-iteration learning rate of a protocol.

    ``kind``: ``"cosine"`` (linear warm-up from ``warmup_start`` x lr over ``warmup_epochs``,
    then cosine to 0 at ``epochs``) or ``"step"`` (x ``gamma`` at each epoch in
    ``milestones``, after the same optional warm-up). ``lr`` is for a global batch of
    ``ref_batch`` clips and scales linearly with the batch.
    """

    kind: str = "cosine"
    lr: float = 0.1
    epochs: int = 250
    warmup_epochs: float = 0.0
    warmup_start: float = 0.1
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    ref_batch: int = 64

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULE_KINDS:
            raise ValueError(f"schedule kind={self.kind!r} must be 'cosine' or 'step'")
        if self.epochs < 1:
            raise ValueError(f"epochs={self.epochs} must be >= 1")
        if self.lr <= 0:
            raise ValueError(f"lr={self.lr} must be > 0")
        if not 0 <= self.warmup_epochs <= self.epochs:
            raise ValueError(f"warmup_epochs={self.warmup_epochs} must be in [0, epochs]")
        _positive_ints({"ref_batch": self.ref_batch})
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))

    def replace(self, **changes: Any) -> Schedule:
        """A checked copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    def scaled_lr(self, global_batch: int) -> float:
        """The lr for ``global_batch`` clips per step (linear scaling rule)."""
        return self.lr * global_batch / self.ref_batch

    def factor(self, epoch_f: float) -> float:
        """Multiplier of the (scaled) lr at fractional epoch ``epoch_f``."""
        if epoch_f < self.warmup_epochs:
            end = self._decay(self.warmup_epochs)
            w = epoch_f / self.warmup_epochs
            return self.warmup_start + (end - self.warmup_start) * w
        return self._decay(epoch_f)

    def _decay(self, epoch_f: float) -> float:
        if self.kind == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(epoch_f, self.epochs) / self.epochs))
        return self.gamma ** sum(epoch_f >= m for m in self.milestones)


class _Fields:
    """What every recipe type shares: checked copies, reading from TOML."""

    def replace(self, **overrides: Any) -> Self:
        """A checked copy with ``overrides``; a value of None keeps the recipe's own.

        Raises TypeError naming a keyword that is not a recipe field, ValueError naming a bad
        value.
        """
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise TypeError(
                f"{', '.join(unknown)}: not a recipe field; recipe fields are "
                f"{', '.join(sorted(names))}"
            )
        changes = {k: v for k, v in overrides.items() if v is not None}
        return dataclasses.replace(self, **changes) if changes else self

    @classmethod
    def from_toml(cls, path: str | Path, name: str | None = None) -> Self:
        """Read a recipe file (the layout of ``pipelines/*.toml``); ``name`` defaults to its
        stem."""
        path = Path(path)
        return cls.from_values(tomllib.loads(path.read_text()), name or path.stem)

    @classmethod
    def from_values(cls, values: dict[str, Any], name: str) -> Self:
        """The recipe ``name`` of parsed TOML ``values``; ValueError on unknown keys or missing
        ones (a field with a default may be left out)."""
        values = {k: v for k, v in values.items() if k != "kind"}
        fields = [f for f in dataclasses.fields(cls) if f.name != "name"]
        required = {
            f.name
            for f in fields
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        unknown = set(values) - {f.name for f in fields}
        missing = required - set(values)
        if unknown or missing:
            raise ValueError(
                f"recipe {name!r} is malformed: unknown keys {sorted(unknown)}, "
                f"missing keys {sorted(missing)}"
            )
        return cls(name=name, **values)


#: RandAugment's magnitude bins (m is one of 0 .. 30) and the most operations a clip gets.
RANDAUGMENT_BINS, MAX_RANDAUGMENT_OPS = 31, 8


def checked_randaugment(value: Any) -> tuple[int, int] | None:
    """``randaugment`` as (n, m): from a TOML table ``{n = 2, m = 9}``, a pair, or None."""
    if value is None:
        return None
    if isinstance(value, dict):
        if set(value) != {"n", "m"}:
            raise ValueError(f"randaugment={value!r} must have exactly the keys n and m")
        value = (value["n"], value["m"])
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"randaugment={value!r} must be (n, m) or {{n = .., m = ..}}")
    n = checked_int("randaugment n", value[0], 0, MAX_RANDAUGMENT_OPS)
    m = checked_int("randaugment m", value[1], 0, RANDAUGMENT_BINS - 1)
    return n, m


@dataclass(frozen=True)
class Recipe(_Fields):
    """A video dataset protocol: clip sampling, augmentation, testing, batch, classes, schedule.

    Clip: ``num_frames`` frames ``stride`` apart from a random window (``sampling="window"``)
    or one frame per equal bin (``"segment"``, SSv2); random-resized-crop of ``scale`` of the
    area with aspect ``ratio`` (w/h) to ``crop_size`` x ``crop_size`` pixels, horizontal
    ``flip``; normalised by ``mean``/``std`` in 0..255 units (R, G, B); ``randaugment`` (n, m):
    when training, n RandAugment operations at magnitude bin m (0..30) on every clip, the same
    for all its frames, after the crop and before mixing (None or n = 0: none). Testing: the
    frame scaled to ``eval_short_side`` pixels, ``test_clips`` uniform clips x ``test_crops``
    (1 or 3) crops. ``batch_size`` clips per process; ``num_classes`` of the dataset.

    ``clips_per_video`` k (training only; evaluation enumerates its own views): every video an
    epoch visits gives k clips from one decode, side by side in one batch (``batch_size``
    counts clips and must be a multiple of k). ``repeat="views"``: the same frames, k
    independent crops and flips; ``"windows"``: k independent windows inside one span of at
    most 1.5 clip spans (``sampling.windows_span``), each with its own crop.
    """

    name: str
    num_frames: int
    stride: int
    sampling: str
    crop_size: int
    scale: tuple[float, float]
    ratio: tuple[float, float]
    flip: bool
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    eval_short_side: int
    test_clips: int
    test_crops: int
    batch_size: int
    num_classes: int
    schedule: Schedule = field(default_factory=Schedule)
    randaugment: tuple[int, int] | None = None
    clips_per_video: int = 1
    repeat: str = "views"

    def __post_init__(self) -> None:
        object.__setattr__(self, "randaugment", checked_randaugment(self.randaugment))
        checked_int("clips_per_video", self.clips_per_video, 1, MAX_CLIPS_PER_VIDEO)
        checked_choice("repeat", self.repeat, REPEATS)
        for name in ("scale", "ratio", "mean", "std"):
            layout = ("min", "max") if name in ("scale", "ratio") else ("R", "G", "B")
            object.__setattr__(self, name, finite_floats(name, getattr(self, name), layout))
        if isinstance(self.schedule, dict):
            object.__setattr__(self, "schedule", Schedule(**self.schedule))
        _positive_ints(
            {
                name: getattr(self, name)
                for name in (
                    "batch_size",
                    "num_frames",
                    "stride",
                    "crop_size",
                    "eval_short_side",
                    "test_clips",
                    "test_crops",
                    "num_classes",
                )
            }
        )
        if self.num_frames > MAX_NUM_FRAMES:
            raise ValueError(
                f"num_frames={self.num_frames} must be <= {MAX_NUM_FRAMES}: DALI decodes and "
                "resizes a clip's frames one by one into one buffer per sample (the paper's "
                "protocols use 8 to 64)"
            )
        if self.batch_size % self.clips_per_video:
            raise ValueError(
                f"batch_size={self.batch_size} must be a multiple of clips_per_video="
                f"{self.clips_per_video}: a video's clips share one batch"
            )
        if self.test_crops not in (1, 3):
            raise ValueError(f"test_crops={self.test_crops} must be 1 or 3")
        checked_choice("sampling", self.sampling, SAMPLINGS)
        if self.sampling == "segment" and self.test_clips != 1:
            raise ValueError("test_clips must be 1 with sampling='segment' (one view per bin)")
        if not isinstance(self.flip, bool):
            raise ValueError(f"flip={self.flip!r} must be True or False")
        lo, hi = self.scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"scale={self.scale!r} must satisfy 0 < min <= max <= 1")
        lo, hi = self.ratio
        if not 0 < lo <= hi:
            raise ValueError(f"ratio={self.ratio!r} must satisfy 0 < min <= max")
        if min(self.std) <= 0:
            raise ValueError(f"std={self.std!r} must be positive")

    @property
    def clip_span(self) -> int:
        """Frames a clip spans in the file: ``(num_frames - 1) * stride + 1`` (segment: T)."""
        if self.sampling == "segment":
            return self.num_frames
        return (self.num_frames - 1) * self.stride + 1


@dataclass(frozen=True)
class FeatureRecipe(_Fields):
    """A feature-sequence protocol (weakly-supervised temporal action localization).

    ``num_positions`` T segments per video (one feature row each), ``batch_size`` videos per
    batch; ``epochs``, ``lr`` and ``weight_decay`` of the training app's optimiser. A TOML
    file declares this kind with ``kind = "features"``.
    """

    name: str
    num_positions: int
    batch_size: int
    epochs: int
    lr: float
    weight_decay: float

    def __post_init__(self) -> None:
        _positive_ints(
            {
                "num_positions": self.num_positions,
                "batch_size": self.batch_size,
                "epochs": self.epochs,
            }
        )
        if not self.lr > 0:
            raise ValueError(f"lr={self.lr!r} must be > 0")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay={self.weight_decay!r} must be >= 0")


#: the recipe type of each ``kind`` a TOML file may declare (default ``"video"``)
KINDS: dict[str, type[Recipe] | type[FeatureRecipe]] = {"video": Recipe, "features": FeatureRecipe}


def _read(name: str) -> dict[str, Any]:
    return tomllib.loads((shipped_dir("pipelines") / f"{name}.toml").read_text())


def list_recipes(kind: str | None = "video") -> list[str]:
    """Names of the recipes shipped in ``pipelines/`` of ``kind`` (None: every kind)."""
    root = shipped_dir("pipelines")
    names = sorted(p.name[: -len(".toml")] for p in root.iterdir() if p.name.endswith(".toml"))
    return [n for n in names if kind is None or _read(n).get("kind", "video") == kind]


def load_recipe(name: str) -> Recipe | FeatureRecipe:
    """The shipped recipe ``name`` (e.g. ``"kinetics"``; ``"thumos-features"`` is a
    :class:`FeatureRecipe`)."""
    names = list_recipes(None)
    if name not in names:
        raise ValueError(f"recipe={name!r} is unknown; choose one of {', '.join(names)}")
    values = _read(name)
    kind = values.get("kind", "video")
    if kind not in KINDS:
        raise ValueError(f"recipe {name!r} has kind={kind!r}; use one of {', '.join(KINDS)}")
    return KINDS[kind].from_values(values, name)


def resolve_recipe(recipe: str | Any, cls: type = Recipe, **overrides: Any) -> Any:
    """``recipe`` (a shipped name or a recipe of type ``cls``) with ``overrides`` applied."""
    if isinstance(recipe, str):
        recipe = load_recipe(recipe)
    if not isinstance(recipe, cls):
        raise ValueError(f"recipe={getattr(recipe, 'name', recipe)!r} is not a {cls.__name__}")
    return recipe.replace(**overrides)
