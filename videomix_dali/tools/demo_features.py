"""``videomix-dali demo-features``: a synthetic feature dataset for the WSTAL pipeline (the
layout :func:`~videomix_dali.source.features.load_feature_dataset` reads), made in a fraction of a
second so the localization app runs end to end without THUMOS'14."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..source.features import SEGMENT_FRAMES


def make_demo_features(
    root: str | Path,
    *,
    seed: int = 0,
    num_classes: int = 8,
    dim: int = 64,
    train_videos: int = 160,
    test_videos: int = 80,
    min_length: int = 80,
    max_length: int = 240,
    fps: float = 25.0,
    noise: float = 1.0,
) -> Path:
    """Write a synthetic WSTAL feature dataset under ``root``; return ``root``.

    ``root/features/<video_id>.npy`` (L x ``dim`` float32, L uniform in
    [min_length, max_length]), ``root/annotations.json`` (ActivityNet style, train videos
    in subset ``"validation"``, test videos in ``"test"``) and ``root/classes.txt``.

    Every video has one or two classes and two to four action instances of 6 to 40
    segments each.  A segment's feature is ``noise * N(0, I)`` plus: inside an action of
    class c, ``a(t) * mu_c`` with a profile ``a`` that peaks at 3 in the middle of the
    instance and falls to 1 at its ends (a discriminative core and weaker borders); in the
    background, ``mu_bg`` plus, within 12 segments of an action of class c, a weak scene
    context ``0.8 * ctx_c`` (what makes weak supervision spill over the borders).  Class
    signatures are random directions of norm 1 (the noise has norm ~sqrt(dim)).
    Deterministic by ``seed``; about a second for the defaults.
    """
    root = Path(root)
    if num_classes < 2 or dim < 2 or min_length < 50 or max_length < min_length:
        raise ValueError(
            "need num_classes >= 2, dim >= 2, 50 <= min_length <= max_length; got "
            f"{num_classes}, {dim}, {min_length}, {max_length}"
        )
    rng = np.random.Generator(np.random.PCG64(seed))

    def unit(n: int) -> np.ndarray:
        v = rng.standard_normal((n, dim))
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    mu, ctx, bg = unit(num_classes), unit(num_classes), unit(1)[0]
    classes = [f"Action{c:02d}" for c in range(num_classes)]
    feat_dir = root / "features"
    feat_dir.mkdir(parents=True, exist_ok=True)
    db: dict[str, Any] = {}
    for subset, count in (("validation", train_videos), ("test", test_videos)):
        for v in range(count):
            vid = f"video_{subset}_{v:07d}"
            L = int(rng.integers(min_length, max_length + 1))
            present = rng.choice(num_classes, size=int(rng.integers(1, 3)), replace=False)
            n_inst = int(rng.integers(2, 5))
            x = noise * rng.standard_normal((L, dim)) + bg
            taken = np.zeros(L, bool)
            anns = []
            for k in range(n_inst):
                c = int(present[k % len(present)])
                for _ in range(20):  # place without overlap (gap >= 2)
                    n = int(rng.integers(6, 41))
                    s = int(rng.integers(0, L - n + 1))
                    if not taken[max(0, s - 2) : s + n + 2].any():
                        break
                else:
                    continue
                taken[s : s + n] = True
                u = (np.arange(n) + 0.5) / n
                amp = 1.0 + 2.0 * np.sin(np.pi * u)
                x[s : s + n] += amp[:, None] * mu[c] - bg
                lo, hi = max(0, s - 12), min(L, s + n + 12)
                near = np.arange(lo, hi)
                near = near[(near < s) | (near >= s + n)]
                x[near] += 0.8 * ctx[c]
                anns.append(
                    {
                        "segment": [
                            round(s * SEGMENT_FRAMES / fps, 3),
                            round((s + n) * SEGMENT_FRAMES / fps, 3),
                        ],
                        "label": classes[c],
                    }
                )
            anns.sort(key=lambda a: a["segment"][0])
            np.save(feat_dir / f"{vid}.npy", x.astype(np.float32))
            db[vid] = {
                "subset": subset,
                "duration": round(L * SEGMENT_FRAMES / fps, 3),
                "fps": fps,
                "annotations": anns,
            }
    (root / "annotations.json").write_text(json.dumps({"database": db}, indent=1))
    (root / "classes.txt").write_text("\n".join(classes) + "\n")
    return root
