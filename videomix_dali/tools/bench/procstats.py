"""CPU time and memory of this process and its children (e.g. DataLoader workers), from
``/proc``, and a thread that samples the peaks while a loader runs."""

from __future__ import annotations

import os
import threading

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name (field 3 = ``[0]``)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    return data[data.rindex(")") + 2 :].split()


def process_tree() -> list[int]:
    """This process and all its live descendants, from ``/proc``."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = _stat_fields(int(name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(name))
    tree, todo = [], [os.getpid()]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def tree_cpu_seconds() -> float:
    """User + system CPU seconds of the process tree (live processes plus reaped children)."""
    total = 0
    for pid in process_tree():
        fields = _stat_fields(pid)
        if fields is not None:  # utime, stime, cutime, cstime
            total += sum(int(v) for v in fields[11:15])
    return total / CLK_TCK


def tree_memory_mb() -> tuple[float, float]:
    """(RSS, PSS) of the process tree in MB. RSS sums pages shared by forked workers once per
    process; PSS (``/proc/<pid>/smaps_rollup``) splits them, so it is the fairer total."""
    rss = pss = 0
    for pid in process_tree():
        fields = _stat_fields(pid)
        if fields is None:
            continue
        rss += int(fields[21]) * PAGE_SIZE
        try:
            with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
                for line in fh:
                    if line.startswith(b"Pss:"):
                        pss += int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
    return rss / 2**20, pss / 2**20


def _gpu_used_mb() -> float | None:
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        free, total = torch.cuda.mem_get_info()
        return (total - free) / 2**20
    except Exception:  # noqa: BLE001 - no CUDA, no figure
        return None


class ProcessTreeMonitor:
    """A thread sampling the process tree's RSS / PSS (and the GPU's used memory) every
    ``interval`` seconds; ``peak_*`` hold the maxima since ``start()``."""

    def __init__(self, interval: float = 0.1, gpu: bool = False) -> None:
        self.interval = interval
        self.gpu = gpu
        self.peak_rss_mb = 0.0
        self.peak_pss_mb = 0.0
        self.gpu_base_mb: float | None = None
        self.peak_gpu_mb: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> None:
        rss, pss = tree_memory_mb()
        self.peak_rss_mb = max(self.peak_rss_mb, rss)
        self.peak_pss_mb = max(self.peak_pss_mb, pss)
        if self.gpu:
            used = _gpu_used_mb()
            if used is not None:
                self.peak_gpu_mb = max(self.peak_gpu_mb or 0.0, used)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> ProcessTreeMonitor:
        if self.gpu:
            self.gpu_base_mb = _gpu_used_mb()
        self.sample()
        self._thread = threading.Thread(target=self._run, name="bench-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()

    @property
    def gpu_mem_mb(self) -> float | None:
        """Peak device memory in use minus what was in use when the monitor started."""
        if self.peak_gpu_mb is None:
            return None
        return self.peak_gpu_mb - (self.gpu_base_mb or 0.0)
