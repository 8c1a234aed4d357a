"""The report of a run: ratios to the baseline and shares of the decode-only limit, the
terminal table, the JSON and the PNG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .streams import BASELINE, LIMIT, OURS


def add_ratios(report: dict[str, Any]) -> None:
    """Per row ``ratio_to_baseline`` (to the PyAV row of the same mix setting) and
    ``share_of_limit`` (clips/s over the decode-only limit's); the target figures in
    ``summary``: ours vs the best peer (mixing off, and with the same mixing), the cost of
    mixing in ours and ours' share of the limit (mixing off and on)."""
    rows = report["results"]
    base = {r["mix"]: r["clips_per_s"] for r in rows if r["loader"] == BASELINE}
    limit = next((r["clips_per_s"] for r in rows if r["loader"] == LIMIT), None)
    for r in rows:
        b = base.get(r["mix"])
        r["ratio_to_baseline"] = round(r["clips_per_s"] / b, 3) if b else None
        r["share_of_limit"] = round(r["clips_per_s"] / limit, 3) if limit else None
    ours = {r["mix"]: r["clips_per_s"] for r in rows if r["loader"] == OURS}
    several = report["config"].get("several_clips", {})
    peers: dict[str, list[float]] = {}
    for r in rows:
        if r["loader"] not in (OURS, LIMIT, *several):
            peers.setdefault(r["mix"], []).append(r["clips_per_s"])
    summary: dict[str, Any] = {}
    mixed = [m for m in ours if m != "none"]
    if "none" in ours and peers.get("none"):
        summary["ours_vs_best_peer"] = round(ours["none"] / max(peers["none"]), 3)
    if mixed and peers.get(mixed[0]):
        summary["ours_mixed_vs_best_peer"] = round(ours[mixed[0]] / max(peers[mixed[0]]), 3)
    if "none" in ours and mixed:
        summary["mix_cost"] = round(1.0 - ours[mixed[0]] / ours["none"], 3)
    if limit:
        summary["limit_clips_per_s"] = limit
        if "none" in ours:
            summary["ours_share_of_limit"] = round(ours["none"] / limit, 3)
        if mixed:
            summary["ours_mixed_share_of_limit"] = round(ours[mixed[0]] / limit, 3)
    for r in rows:  # k clips per decoded video against one
        if r["loader"] in several and ours.get(r["mix"]):
            key = f"{r['loader'][len(OURS) + 1 :].replace('=', '').replace(' ', '_')}_vs_k1"
            summary[f"{key}_mix_{r['mix']}"] = round(r["clips_per_s"] / ours[r["mix"]], 3)
    report["summary"] = summary


def write_json(report: dict[str, Any], path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(report, indent=1) + "\n")


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_table(report: dict[str, Any]) -> str:
    """The results as a fixed-width table under the data's label, with ratios to the
    baseline and shares of the decode-only limit, plus skipped peers and the summary."""
    head = (
        f"{'loader':<26}{'dev':<5}{'mix':<15}{'clips/s':>9}{'x base':>8}{'% limit':>8}"
        f"{'frames/s':>10}{'p50 ms':>9}{'p95 ms':>9}{'CPU %':>7}{'RSS MB':>9}{'PSS MB':>9}"
        f"{'GPU MB':>8}"
    )
    c = report["config"]
    title = f"data: {c['data_label']} ({c['videos']} videos, {c['rounds']} rounds)"
    lines = [title, head, "-" * len(head)]
    for r in report["results"]:
        share = r.get("share_of_limit")
        lines.append(
            f"{r['loader']:<26}{r['device']:<5}{r['mix']:<15}{r['clips_per_s']:>9.1f}"
            f"{_fmt(r.get('ratio_to_baseline'), '.2f'):>8}"
            f"{_fmt(None if share is None else 100 * share, '.0f'):>8}{r['frames_per_s']:>10.0f}"
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
    if "ours_mixed_vs_best_peer" in summary:
        lines.append(
            f"videomix-dali vs best peer (mix {c['mix']}): "
            f"{summary['ours_mixed_vs_best_peer']:.2f}x"
        )
    if "mix_cost" in summary:
        lines.append(f"cost of mixing in videomix-dali: {100 * summary['mix_cost']:.1f} %")
    for key, what in (("ours_share_of_limit", "none"), ("ours_mixed_share_of_limit", c["mix"])):
        if key in summary:
            lines.append(
                f"videomix-dali (mix {what}) at {100 * summary[key]:.0f} % of the decode-only "
                f"limit ({summary['limit_clips_per_s']:.1f} clips/s)"
            )
    return "\n".join(lines)


def plot_report(report: dict[str, Any], path: str | Path) -> Path:
    """A PNG: clips/s (with the ratio to the baseline and the share of the decode-only limit,
    which is also drawn as a line), CPU utilisation and peak memory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["results"]
    labels = [f"{r['loader']}\nmix={r['mix']}" for r in rows]
    palette = {OURS: "tab:blue", LIMIT: "tab:green"}
    colors = [palette.get(r["loader"], "tab:gray") for r in rows]
    hatches = ["" if r["mix"] == "none" else "//" for r in rows]
    y = np.arange(len(rows))
    panels = [  # title, values, room for the labels (x axis up to this times the largest)
        ("clips/s (higher is better)", [r["clips_per_s"] for r in rows], 2.0),
        ("CPU utilisation, % of all cores", [100 * r["cpu_util"] for r in rows], 1.3),
        (
            "peak memory of the process tree, MB (PSS)",
            [r.get("peak_pss_mb") or 0 for r in rows],
            1.3,
        ),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(15, 1.6 + 0.7 * max(len(rows), 1)), sharey=True)
    for ax, (title, values, room) in zip(axes, panels):
        bars = ax.barh(y, values, color=colors, edgecolor="black")
        for bar, hatch in zip(bars, hatches):
            bar.set_hatch(hatch)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ax.set_xlim(0, max(values + [1]) * room)
    for bar, r in zip(axes[0].patches, rows):
        ratio, share = r.get("ratio_to_baseline"), r.get("share_of_limit")
        text = f"{r['clips_per_s']:.0f}" + (f"  ({ratio:.2f}x)" if ratio is not None else "")
        text += f", {100 * share:.0f} % of limit" if share is not None else ""
        axes[0].text(bar.get_width(), bar.get_y() + bar.get_height() / 2, " " + text, va="center")
    limit = report.get("summary", {}).get("limit_clips_per_s")
    if limit:
        axes[0].axvline(limit, color="tab:green", linestyle="--", linewidth=1)
    axes[0].set_yticks(y, labels, fontsize=9)
    axes[0].invert_yaxis()
    m, c = report["machine"], report["config"]
    fig.suptitle(
        f"{c['data_label']}\n"
        f"{c['batch_size']} x {c['frames']} frames (stride {c['stride']}) x {c['crop']}^2, "
        f"device {c['device']}; {m['cpu']}, {m['cores']} cores"
        + (f", {m['gpu']}" if m["gpu"] else ", no GPU"),
        fontsize=10,
    )
    skipped = ", ".join(s["loader"] for s in report["skipped"])
    if skipped:
        fig.text(0.01, 0.01, f"skipped (not importable / not applicable): {skipped}", fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 0.92))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
