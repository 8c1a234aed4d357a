"""Experiments over mixing modes and seeds: ``--compare m1,m2 --seeds N`` and ``--ablation``.

Every (mode, seed) pair is one run with the same model and budget; runs of the same seed share
the model init, the epoch order and the crops, so the per-seed difference between two modes is
a paired comparison. The summary gives mean and sample standard deviation (n - 1) per test split
and a verdict per split that reads the interval of the paired differences, not the means.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

__all__ = [
    "ABLATION_MODES",
    "AUGMENT_ROWS",
    "format_table",
    "machine",
    "mean_std",
    "paired_difference",
    "plot_summary",
    "run_grid",
    "summarize",
    "verdict",
    "write_json",
]

#: Rows that are not one mix mode: the run's settings besides ``mix`` (the paper's Table 2
#: RandAugment row, M = 9, and the stacks of its Table 13, each stage in the paper's order).
AUGMENT_ROWS: dict[str, dict[str, Any]] = {
    "randaugment": {"mix": "none", "randaugment": [2, 9]},
    "spatial+cutout": {"mix": "spatial", "stack": ["cutout"]},
    "spatial+randaugment": {"mix": "spatial", "randaugment": [2, 9]},
    "spatial+cutout+randaugment": {"mix": "spatial", "stack": ["cutout"], "randaugment": [2, 9]},
    "mixup+cutout": {"mix": "mixup", "stack": ["cutout"]},
    "mixup+cutout+randaugment": {"mix": "mixup", "stack": ["cutout"], "randaugment": [2, 9]},
}
#: the paper's Tables 2, 3, 6 and 13 in miniature: the VideoMix variants, the image baselines,
#: RandAugment and its strongest stack (the other stacks: ``--compare``)
ABLATION_MODES: tuple[str, ...] = (
    "none",
    "spatial",
    "temporal",
    "spatiotemporal",
    "perframe",
    "mixup",
    "cutout",
    "randaugment",
    "spatial+cutout+randaugment",
)


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for fewer than two values)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def summarize(runs: dict[str, list[dict[str, Any]]], splits: Sequence[str]) -> dict[str, Any]:
    """{mode: {split: {"mean", "std", "values"}}} of per-run top-1 ``runs[mode][i][split]``."""
    out: dict[str, Any] = {}
    for mode, rows in runs.items():
        out[mode] = {}
        for split in splits:
            values = [float(r[split]) for r in rows]
            mean, std = mean_std(values)
            out[mode][split] = {"mean": mean, "std": std, "values": values}
    return out


def paired_difference(
    runs: dict[str, list[dict[str, Any]]], mode: str, baseline: str, split: str
) -> tuple[float, float | None, int]:
    """Mean and std of ``mode - baseline`` over the seeds both ran, and their count."""
    base = {r["seed"]: float(r[split]) for r in runs[baseline]}
    diffs = [float(r[split]) - base[r["seed"]] for r in runs[mode] if r["seed"] in base]
    return (*mean_std(diffs), len(diffs))


def verdict(runs: dict[str, list[dict[str, Any]]], mode: str, baseline: str, split: str) -> str:
    """One line: ``mode - baseline`` on ``split`` as mean ± std of the per-seed differences,
    and whether that interval excludes 0."""
    mean, std, n = paired_difference(runs, mode, baseline, split)
    head = f"{mode} − {baseline} on {split}: {mean:+.1f}"
    if std is None:
        return f"{head} points over {n} seed (one seed: no interval, no verdict)"
    reading = (
        "the interval contains 0: not separated from seed noise"
        if abs(mean) <= std + 1e-9  # top-1 values are k/n: equal bounds must not split on ulps
        else f"the interval excludes 0: {mode} {'higher' if mean > 0 else 'lower'}"
    )
    return f"{head} ± {std:.1f} points over {n} seeds ({reading})"


def _cell(stat: dict[str, Any]) -> str:
    std = stat["std"]
    return f"{stat['mean']:.1f} ± {std:.1f}" if std is not None else f"{stat['mean']:.1f}"


def format_table(summary: dict[str, Any], splits: Sequence[str], num_seeds: int) -> str:
    """Markdown table: top-1 mean ± std per split (rows) and mode (columns)."""
    modes = list(summary)
    label = f"top-1 (%), mean ± std over {num_seeds} seed{'s' if num_seeds > 1 else ''}"
    lines = [
        f"| {label} | " + " | ".join(modes) + " |",
        "|---|" + "---|" * len(modes),
    ]
    for split in splits:
        lines.append(f"| {split} | " + " | ".join(_cell(summary[m][split]) for m in modes) + " |")
    return "\n".join(lines)


def plot_summary(
    summary: dict[str, Any], splits: Sequence[str], path: str | Path, *, chance: float, title: str
) -> list[tuple[str, str, float, float]]:
    """Bar chart of top-1 per mode and split: mean bars, ± std error bars, one dot per seed,
    a dashed chance line. Returns ``(mode, split, height, error)`` of every bar as drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(summary)
    width = 0.8 / len(splits)
    fig, ax = plt.subplots(figsize=(1.1 * len(modes) + 2.5, 3.6))
    drawn = []
    for j, split in enumerate(splits):
        xs = [i + (j - (len(splits) - 1) / 2) * width for i in range(len(modes))]
        means = [summary[m][split]["mean"] for m in modes]
        errs = [summary[m][split]["std"] or 0.0 for m in modes]
        bars = ax.bar(xs, means, width, yerr=errs, capsize=3, label=split, alpha=0.8)
        err_segments = bars.errorbar.lines[2][0].get_segments()
        for m, rect, seg in zip(modes, bars.patches, err_segments, strict=True):
            drawn.append((m, split, float(rect.get_height()), float(seg[1][1] - seg[0][1]) / 2))
        for x, m in zip(xs, modes, strict=True):
            values = summary[m][split]["values"]
            ax.plot([x] * len(values), values, "k.", markersize=3)
    ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label=f"chance ({chance:g} %)")
    ax.set_xticks(range(len(modes)), modes, rotation=20)
    ax.set_ylabel("top-1 (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return drawn


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """Where the runs ran: host CPU, core count, torch, CUDA device if any."""
    return {
        "platform": platform.platform(),
        "processor": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def run_grid(
    modes: Sequence[str],
    seeds: Sequence[int],
    train_one: Callable[[str, int], dict[str, float]],
    *,
    baseline: str,
    progress: bool = True,
) -> dict[str, Any]:
    """Run ``train_one(mode, seed) -> {split: top-1, ...}`` for every seed and mode (seed by
    seed, so an interrupted grid stays paired) and summarise it; a tqdm bar over the runs.
    ``train_one`` may add ``wall_s`` and ``reused`` (a finished run it did not train again)."""
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    start = time.perf_counter()
    with tqdm(total=len(modes) * len(seeds), desc="runs", unit="run", disable=not progress) as bar:
        for seed in seeds:
            for mode in modes:
                bar.set_postfix_str(f"{mode} seed {seed}")
                t0 = time.perf_counter()
                row = train_one(mode, seed)
                runs[mode].append({"seed": seed, "wall_s": time.perf_counter() - t0, **row})
                bar.update()
    splits = [k for k in runs[modes[0]][0] if k not in ("seed", "wall_s", "reused")]
    verdicts = [verdict(runs, m, baseline, s) for m in modes if m != baseline for s in splits]
    return {
        "modes": list(modes),
        "seeds": list(seeds),
        "splits": splits,
        "baseline": baseline,
        "runs": runs,
        "summary": summarize(runs, splits),
        "verdicts": verdicts,
        "wall_s": time.perf_counter() - start,
        "machine": machine(),
    }


def write_json(result: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return path
