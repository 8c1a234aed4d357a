"""The report of a run: ratios to the baseline, the terminal table, the JSON and the PNG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .streams import BASELINE, OURS


def add_ratios(report: dict[str, Any]) -> None:
    """``ratio_to_baseline`` per row (same mix setting) and the target figures in ``summary``."""
    rows = report["results"]
    base = {r["mix"]: r["clips_per_s"] for r in rows if r["loader"] == BASELINE}
    for r in rows:
        b = base.get(r["mix"])
        r["ratio_to_baseline"] = round(r["clips_per_s"] / b, 3) if b else None
    ours = {r["mix"]: r["clips_per_s"] for r in rows if r["loader"] == OURS}
    peers = [r["clips_per_s"] for r in rows if r["loader"] != OURS and r["mix"] == "none"]
    summary: dict[str, Any] = {}
    if "none" in ours and peers:
        summary["ours_vs_best_peer"] = round(ours["none"] / max(peers), 3)
    mixed = [m for m in ours if m != "none"]
    if "none" in ours and mixed:
        summary["mix_cost"] = round(1.0 - ours[mixed[0]] / ours["none"], 3)
    report["summary"] = summary


def write_json(report: dict[str, Any], path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(report, indent=1) + "\n")


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_table(report: dict[str, Any]) -> str:
    """The results as a fixed-width table with ratios to the baseline, plus skipped peers."""
    head = (
        f"{'loader':<16}{'dev':<5}{'mix':<15}{'clips/s':>9}{'x base':>8}{'frames/s':>10}"
        f"{'p50 ms':>9}{'p95 ms':>9}{'CPU %':>7}{'RSS MB':>9}{'PSS MB':>9}{'GPU MB':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in report["results"]:
        lines.append(
            f"{r['loader']:<16}{r['device']:<5}{r['mix']:<15}{r['clips_per_s']:>9.1f}"
            f"{_fmt(r.get('ratio_to_baseline'), '.2f'):>8}{r['frames_per_s']:>10.0f}"
            f"{r['batch_ms_p50']:>9.1f}{r['batch_ms_p95']:>9.1f}{100 * r['cpu_util']:>7.0f}"
            f"{r['peak_rss_mb']:>9.0f}{_fmt(r.get('peak_pss_mb'), '.0f'):>9}"
            f"{_fmt(r['gpu_mem_mb'], '.0f'):>8}"
        )
        if "train_clips_per_s" in r:
            lines.append(
                f"{'':<21}{r['model']}: {r['train_clips_per_s']:.1f} clips/s fed by the loader, "
                f"{r['model_only_clips_per_s']:.1f} alone (GPU fed {100 * r['gpu_fed']:.0f} %)"
            )
    for s in report["skipped"]:
        lines.append(f"{s['loader']:<16}skipped: {s['reason']}")
    load = report["machine"].get("loadavg")
    if load and load[0] > 0.5:
        lines.append(
            f"note: load average {load[0]:.2f} at the start on {report['machine']['cores']} "
            "cores; other processes compete for the CPU"
        )
    summary = report.get("summary", {})
    if "ours_vs_best_peer" in summary:
        lines.append(f"videomix-dali vs best peer (mix none): {summary['ours_vs_best_peer']:.2f}x")
    if "mix_cost" in summary:
        lines.append(f"cost of mixing in videomix-dali: {100 * summary['mix_cost']:.1f} %")
    return "\n".join(lines)


def plot_report(report: dict[str, Any], path: str | Path) -> Path:
    """A PNG: clips/s (with the ratio to the baseline), CPU utilisation and peak memory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["results"]
    labels = [f"{r['loader']}\nmix={r['mix']}" for r in rows]
    colors = ["tab:blue" if r["loader"] == OURS else "tab:gray" for r in rows]
    hatches = ["" if r["mix"] == "none" else "//" for r in rows]
    y = np.arange(len(rows))
    panels = [
        ("clips/s (higher is better)", [r["clips_per_s"] for r in rows]),
        ("CPU utilisation, % of all cores", [100 * r["cpu_util"] for r in rows]),
        ("peak memory of the process tree, MB (PSS)", [r.get("peak_pss_mb") or 0 for r in rows]),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(15, 1.6 + 0.7 * max(len(rows), 1)), sharey=True)
    for ax, (title, values) in zip(axes, panels):
        bars = ax.barh(y, values, color=colors, edgecolor="black")
        for bar, hatch in zip(bars, hatches):
            bar.set_hatch(hatch)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ax.set_xlim(0, max(values + [1]) * 1.3)
    for bar, r in zip(axes[0].patches, rows):
        ratio = r.get("ratio_to_baseline")
        text = f"{r['clips_per_s']:.0f}" + (f"  ({ratio:.2f}x)" if ratio is not None else "")
        axes[0].text(bar.get_width(), bar.get_y() + bar.get_height() / 2, " " + text, va="center")
    axes[0].set_yticks(y, labels, fontsize=9)
    axes[0].invert_yaxis()
    m, c = report["machine"], report["config"]
    fig.suptitle(
        f"{c['batch_size']} x {c['frames']} frames (stride {c['stride']}) x {c['crop']}^2, "
        f"device {c['device']}; {m['cpu']}, {m['cores']} cores"
        + (f", {m['gpu']}" if m["gpu"] else ", no GPU"),
        fontsize=10,
    )
    skipped = ", ".join(s["loader"] for s in report["skipped"])
    if skipped:
        fig.text(0.01, 0.01, f"skipped (not importable / not applicable): {skipped}", fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
