"""The zero-copy hand-off keeps DALI's memory alive while torch still uses it."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
import torch
from videos import ramp_video, write_video

from videomix_dali import VideoLoader
from videomix_dali.handoff import keep_until_consumed, release_finished


class _Owner:
    """Stands for the DALI tensor that backs a batch's memory."""


class _Event:
    def __init__(self) -> None:
        self.done = False

    def query(self) -> bool:
        return self.done


def test_owner_is_held_until_the_tensor_and_its_views_are_gone_and_the_work_is_done():
    events: list[_Event] = []

    def record() -> _Event:
        events.append(_Event())
        return events[-1]

    release_finished()  # nothing left over from other tests
    t = torch.zeros(4, 3)
    owner = _Owner()
    alive = weakref.ref(owner)
    keep_until_consumed(t, owner, record)
    del owner
    view = t[1:]
    del t
    gc.collect()
    assert alive() is not None and events == []  # a view keeps the batch alive
    del view
    gc.collect()
    assert len(events) == 1  # recorded the moment the last reference died
    assert release_finished() == 1 and alive() is not None  # its work is still queued
    events[0].done = True
    assert release_finished() == 0 and alive() is None


@pytest.mark.gpu
def test_gpu_batch_survives_a_slow_consumer(tmp_path):
    """Drop a batch while a slow kernel still reads it; DALI must not overwrite it."""
    for i in range(4):
        video = ramp_video(8, 128, 128, seed=i)
        write_video(tmp_path / f"c{i % 2}" / f"v{i}.mp4", video, codec="libx264")
    kw = dict(
        recipe="demo",
        device="gpu",
        batch_size=2,
        num_frames=4,
        stride=1,
        crop_size=128,
        seed=0,
        progress=False,
    )
    expected = [v.cpu() for v, _ in VideoLoader(tmp_path, **kw)]
    loader = VideoLoader(tmp_path, **kw)
    release_finished()
    video, _ = next(iter(loader))  # the iterator is gone: `video` is the batch's only holder
    out = torch.empty_like(video)
    torch.cuda._sleep(1 << 31)  # about a second of GPU time on torch's stream
    out.copy_(video)  # queued behind the sleep
    del video
    assert release_finished() >= 1  # the batch's memory is held until the copy has run
    for _ in range(6):  # DALI keeps decoding into free buffers meanwhile
        for _batch in loader:
            pass
    torch.cuda.synchronize()
    np.testing.assert_array_equal(out.cpu().numpy(), expected[0].numpy())
