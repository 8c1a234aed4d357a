"""Where a process runs: one device resolution and one rank lookup for the library and the app."""

from __future__ import annotations

import pytest
import torch

from videomix_dali.runtime import rank_and_world_size, resolve_device


def test_device_names_resolve_in_one_place():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("gpu" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device='tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device is visible"):
            resolve_device("gpu")


def test_rank_without_a_process_group_is_the_only_process():
    assert rank_and_world_size() == (0, 1)
