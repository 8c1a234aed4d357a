"""Draws docs/images/data-path.png, the data path of docs/architecture.md:

python docs/draw_data_path.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

OUT = Path(__file__).resolve().parent / "images" / "data-path.png"
# (title, what it does, where it lives), left to right; the host side, then the DALI graph
HOST = [
    ("index", "dataset ->\n(path, label)", "source/index.py"),
    (
        "probe",
        "frames, size,\ncodec, safe cut\npoints (cached)",
        "source/probe.py\ncuts.py remux.py",
    ),
    ("sampler", "epoch order,\nshard; frames,\ncrop per clip", "sampling.py"),
    (
        "host source",
        "one decode per\nvideo from its\nkeyframe; mix\nparams",
        "loading/videos.py\nmix/",
    ),
]
GRAPH = [
    ("decode", "DALI CPU,\nNVDEC, or\nPyAV (host)", "graph/build.py"),
    ("pick frames", "each clip's\nframes of the\ndecoded ones", "graph/build.py"),
    ("crop / resize", "ROI, flip;\nCPU plugin:\nalso paste,\nnormalise", "graph/cpu_plugin.py"),
    ("mix, normalise", "VideoMix\nfamily, exact\nsoft targets", "graph/ops.py\nkernels/"),
    ("torch", "(N, C, T, H, W)\nno copy", "handoff.py"),
]  # fmt: skip


def draw() -> None:
    fig, ax = plt.subplots(figsize=(16, 4.4))
    ax.set_xlim(0, len(HOST) + len(GRAPH))
    ax.set_ylim(0, 3.2)
    ax.axis("off")
    steps = [(s, "#dbe9f6") for s in HOST] + [(s, "#fde9d3") for s in GRAPH]
    for k, ((title, what, where), colour) in enumerate(steps):
        x = k + 0.08
        ax.add_patch(
            FancyBboxPatch((x, 0.7), 0.84, 1.9, boxstyle="round,pad=0.02", fc=colour, ec="0.3")
        )
        ax.text(x + 0.42, 2.35, title, ha="center", va="center", fontsize=11, weight="bold")
        ax.text(x + 0.42, 1.7, what, ha="center", va="center", fontsize=9)
        ax.text(x + 0.42, 1.0, where, ha="center", va="center", fontsize=7, family="monospace")
        if k:
            ax.annotate("", (x, 1.65), (x - 0.16, 1.65), arrowprops={"arrowstyle": "->"})
    ax.text(len(HOST) / 2, 0.35, "host (Python, a batch ahead)", ha="center", fontsize=10)
    ax.text(len(HOST) + len(GRAPH) / 2, 0.35, "one DALI graph, device cpu or gpu (GraphPlan)",
            ha="center", fontsize=10)  # fmt: skip
    ax.plot([len(HOST), len(HOST)], [0.2, 3.0], ls="--", c="0.5")
    fig.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=110)


if __name__ == "__main__":
    draw()
