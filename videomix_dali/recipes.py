"""Dataset protocols of the paper, one TOML file each in ``pipelines/`` (shipped in the wheel)."""

from __future__ import annotations

import tomllib
from importlib.resources import files
from typing import Any

RECIPE_KEYS = {
    "num_frames": int,
    "stride": int,
    "sampling": str,
    "crop_size": int,
    "scale": list,
    "ratio": list,
    "flip": bool,
    "mean": list,
    "std": list,
    "eval_short_side": int,
    "test_clips": int,
    "test_crops": int,
    "batch_size": int,
}


def list_recipes() -> list[str]:
    """Names of the recipes shipped in ``pipelines/``."""
    root = files("videomix_dali.pipelines")
    return sorted(p.name[: -len(".toml")] for p in root.iterdir() if p.name.endswith(".toml"))


def load_recipe(name: str) -> dict[str, Any]:
    """The defaults of recipe ``name`` (e.g. ``"kinetics"``) as a dict."""
    names = list_recipes()
    if name not in names:
        raise ValueError(f"recipe={name!r} is unknown; choose one of {', '.join(names)}")
    text = files("videomix_dali.pipelines").joinpath(f"{name}.toml").read_text()
    recipe = tomllib.loads(text)
    unknown = set(recipe) - set(RECIPE_KEYS)
    missing = set(RECIPE_KEYS) - set(recipe)
    if unknown or missing:
        raise ValueError(
            f"recipe {name!r} is malformed: unknown keys {sorted(unknown)}, "
            f"missing keys {sorted(missing)}"
        )
    return recipe
