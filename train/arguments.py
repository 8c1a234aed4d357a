"""``argparse`` value types and checks of the training command lines: the shared ones of
:mod:`videomix_dali.tools.argtypes` and the app's own (mix modes, RandAugment, datasets)."""

from __future__ import annotations

import argparse
import warnings

from videomix_dali.mix import MODES
from videomix_dali.recipes import checked_randaugment
from videomix_dali.source.index import read_index
from videomix_dali.tools.argtypes import (
    existing_dir,
    existing_file,
    fraction,
    int_at_least,
    non_negative_float,
    non_negative_int,
    output_dir,
    positive_float,
    positive_int,
    probability,
)

__all__ = [
    "check_dataset",
    "existing_dir",
    "existing_file",
    "fraction",
    "mix_modes",
    "int_at_least",
    "non_negative_float",
    "non_negative_int",
    "output_dir",
    "positive_float",
    "positive_int",
    "probability",
    "randaugment",
]


def mix_modes(text: str) -> list[str]:
    """Comma-separated mix modes, each one of ``videomix_dali.mix.MODES`` but ``none``."""
    modes = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES or m == "none"]
    if bad or not modes:
        choices = ", ".join(m for m in MODES if m != "none")
        raise argparse.ArgumentTypeError(f"unknown mode(s) {bad or text!r}; choose from {choices}")
    return modes


def randaugment(text: str) -> tuple[int, int]:
    """``N,M``: RandAugment's operations per clip and magnitude bin (checked as a recipe's)."""
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"must be N,M (e.g. 2,9), got {text!r}")
    try:
        return checked_randaugment((int(parts[0]), int(parts[1])))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def check_dataset(parser: argparse.ArgumentParser, option: str, path: str) -> None:
    """Exit 2 naming ``option`` unless ``path`` is a dataset ``read_index`` reads (a
    folder-per-class directory or an index file) with at least one video on disk."""
    if not path:
        parser.error(f"argument {option}: empty path")
    try:
        with warnings.catch_warnings():  # missing files are reported when the loader reads it
            warnings.simplefilter("ignore")
            read_index(path)
    except ValueError as exc:
        parser.error(f"argument {option}: {exc}")
