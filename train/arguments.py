"""``argparse`` value types and checks shared by the training command lines: a bad value is
one line naming the option, exit status 2 (as ``videomix-dali`` does)."""

from __future__ import annotations

import argparse
import math
import warnings
from collections.abc import Callable
from pathlib import Path

from videomix_dali.mix import MODES
from videomix_dali.recipes import checked_randaugment
from videomix_dali.source.index import read_index
from videomix_dali.tools.argtypes import positive_int

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


def int_at_least(low: int) -> Callable[[str], int]:
    """The type of an integer option >= ``low``."""

    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    parse.__name__ = f"int >= {low}"  # argparse's 'invalid int >= 2 value: 'x''
    return parse


non_negative_int = int_at_least(0)


def fraction(text: str) -> float:
    """A number in (0, 1]."""
    value = _finite(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


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


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = _finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0."""
    value = _finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def probability(text: str) -> float:
    """A number in [0, 1]."""
    value = _finite(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def existing_file(text: str) -> Path:
    """The path of an existing file."""
    path = Path(text)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise argparse.ArgumentTypeError(f"{text!r} {what}; expected a file")
    return path


def existing_dir(text: str) -> Path:
    """The path of an existing directory."""
    path = Path(text)
    if not path.is_dir():
        what = "is a file" if path.exists() else "does not exist"
        raise argparse.ArgumentTypeError(f"{text!r} {what}; expected a directory")
    return path


def output_dir(text: str) -> Path:
    """The path of a directory to write into: an existing one, or none yet."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a file; expected a directory")
    return path


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
