"""Soak run: 10,000 batches of the CPU pipeline with mixing on the demo data.

    .venv/bin/python tests/soak/soak.py [--batches 10000] [--every 50] [--data data/demo/train]

Samples resident memory every ``--every`` batches after the warm-up, and open file descriptors
at its end and at the end of the run. Resident memory swings by tens of MB from one sample to
the next (the allocator holds a batch's buffers or has just returned them), so one sample says
little; a leak is growth that persists. The verdict compares the mean of the last quarter of
the samples with the mean of the second quarter: it exits non-zero if that grew by 5 % or
more, or if descriptors grew at all.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from videomix_dali import VideoLoader
from videomix_dali.mix import VideoMix
from videomix_dali.tools.demo import ensure_demo_dataset


def resident_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=10000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--data", default=None)
    args = parser.parse_args()
    if args.batches < args.warmup + 4 * args.every:
        parser.error("--batches must leave at least 4 samples (--every) after --warmup")
    data = args.data or ensure_demo_dataset("data/demo") / "train"
    loader = VideoLoader(data, recipe="demo", device="cpu", mix=VideoMix("spatial", seed=0))
    done, samples = 0, []  # (batch, resident MB) from the warm-up on
    with tqdm(total=args.batches, unit="batch") as bar:
        while done < args.batches:
            for _video, _target in loader:
                done += 1
                bar.update()
                if done == args.warmup:
                    start_fds = open_fds()
                if done >= args.warmup and (done - args.warmup) % args.every == 0:
                    samples.append((done, resident_mb()))
                if done == args.batches:
                    break
    end_fds = open_fds()
    for batch, rss in samples[:: max(1, len(samples) // 20)]:
        print(f"batch {batch:6d}: {rss:7.1f} MB resident")
    rss = np.array([r for _, r in samples])
    quarter = len(rss) // 4
    early, late = rss[quarter : 2 * quarter].mean(), rss[-quarter:].mean()
    print(f"after warm-up: {rss[0]:.1f} MB resident, {start_fds} open descriptors")
    print(
        f"after {done} batches: {rss[-1]:.1f} MB resident (peak {rss.max():.1f}), "
        f"{end_fds} open descriptors"
    )
    growth = late / early - 1
    ok = growth < 0.05 and end_fds <= start_fds
    print(
        f"mean resident memory, second quarter {early:.1f} MB -> last quarter {late:.1f} MB "
        f"({growth:+.1%}): {'ok' if ok else 'FAILED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
