"""Soak run: 2,000 batches of the CPU pipeline with mixing on the demo data.

    .venv/bin/python tests/soak/soak.py [--batches 2000] [--data data/demo/train]

Prints resident memory and open file descriptors after warm-up and at the end, and exits
non-zero if memory grew by 5 % or more or descriptors grew at all.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

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
    parser.add_argument("--data", default=None)
    args = parser.parse_args()
    data = args.data or ensure_demo_dataset("data/demo") / "train"
    loader = VideoLoader(data, recipe="demo", device="cpu", mix=VideoMix("spatial", seed=0))
    done = 0
    with tqdm(total=args.batches, unit="batch") as bar:
        while done < args.batches:
            for _video, _target in loader:
                done += 1
                bar.update()
                if done == args.warmup:
                    start_rss, start_fds = resident_mb(), open_fds()
                if done == args.batches:
                    break
    end_rss, end_fds = resident_mb(), open_fds()
    print(f"after warm-up: {start_rss:.1f} MB resident, {start_fds} open descriptors")
    print(f"after {done} batches: {end_rss:.1f} MB resident, {end_fds} open descriptors")
    growth = end_rss / start_rss - 1
    ok = growth < 0.05 and end_fds <= start_fds
    print(f"memory growth {growth:+.1%}: {'ok' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
