"""Soak run: 2,000 batches of the CPU pipeline with mixing on the demo data.

    .venv/bin/python tests/soak/soak.py [--batches 2000] [--every 50] [--data data/demo/train]

Samples resident memory every ``--every`` batches after the warm-up and open file descriptors
at its end and at the end of the run. A leak is steady growth, so the verdict reads the trend
of the second half of the samples, not one end-of-run sample (allocators hold a buffer more or
less from one moment to the next: a plateau that alternates between two levels is not a leak):
it exits non-zero if the least-squares slope of that half is 1 % of the warm-up level per
1,000 batches or more, or if descriptors grew at all.
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
from videomix_dali.demo import ensure_demo_dataset
from videomix_dali.mix import VideoMix


def resident_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=2000)
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
    start_rss = samples[0][1]
    late = np.array(samples[len(samples) // 2 :], dtype=np.float64)
    slope = np.polyfit(late[:, 0], late[:, 1], 1)[0] * 1000  # MB per 1,000 batches
    print(f"after warm-up: {start_rss:.1f} MB resident, {start_fds} open descriptors")
    peak = max(rss for _, rss in samples)
    print(
        f"after {done} batches: {samples[-1][1]:.1f} MB resident (peak {peak:.1f}), "
        f"{end_fds} open descriptors"
    )
    trend = slope / start_rss
    ok = trend < 0.01 and end_fds <= start_fds
    print(
        f"second-half trend {slope:+.2f} MB per 1,000 batches ({trend:+.2%} of the warm-up "
        f"level): {'ok' if ok else 'FAILED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
