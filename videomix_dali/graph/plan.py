"""Every choice of a loader's DALI graph that depends on the backend, the CPU plugin and the mix
mode, made once, in one value.

The graph's shape follows from where frames are decoded (DALI's CPU decoder, NVDEC, or PyAV on
the host for codecs DALI's CPU build lacks), whether the CPU crop/resize plugin is loaded
(process state: it compiles on first use), and whether the mix mode pastes while resizing. A
:class:`GraphPlan` records those facts; :mod:`~videomix_dali.graph.build` builds from it, and
the loader's host source encodes each batch's :class:`~videomix_dali.mix.MixParams` with
:meth:`GraphPlan.encode_mix` for that same graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..mix import MixParams
from ..source.host_decode import DALI_CPU_CODECS
from . import cpu_plugin
from .ops import PASTE_MODES, dali_batch_size, dali_inputs, num_dali_inputs

DEVICES = ("cpu", "gpu")
#: What the host-side source yields per batch, in this order (one array per sample each);
#: with mixing, :meth:`GraphPlan.encode_mix`'s arrays follow.
SOURCE_OUTPUTS = (
    "encoded",
    "frames",
    "roi_start",
    "roi_end",
    "label",
    "index",
    "augment",
    "decodes",
    "leader",
    "order",
)


@dataclass(frozen=True)
class GraphPlan:
    """How one video graph is built.

    ``device``: ``"cpu"`` or ``"gpu"``. ``host_decoded``: the source yields decoded frames
    (CPU, a codec DALI's CPU decoder lacks) instead of file bytes. ``plugin``: the CPU
    crop/resize plugin is loaded. ``mix_mode`` / ``num_videos``: the VideoMix mode (None: no
    mixing) and how many videos it mixes. ``randaugment``: (n, m) with n >= 1 where every clip
    gets RandAugment after the crop and before mixing (:mod:`~videomix_dali.graph.randaugment`).
    ``then_modes``: the modes of a :class:`~videomix_dali.mix.MixStack`'s later stages, applied
    in order to the normalised batch after the first stage. ``clips_per_video``: consecutive
    runs of that many clips share one decode of their video, with the same frames
    (``repeat="views"``) or windows of their own (``"windows"``). ``padded``: some clips
    repeat frames (videos shorter than a clip).

    The decoder is never handed a repeated or backward frame index (DALI 2.4's decoder then
    decodes the file again from its first frame): it decodes each video's distinct frames
    once, ascending, and the graph picks each clip's frames from them (:attr:`picks_frames`).
    """

    device: str
    host_decoded: bool = False
    plugin: bool = False
    mix_mode: str | None = None
    num_videos: int = 2
    randaugment: tuple[int, int] | None = None
    then_modes: tuple[str, ...] = ()
    clips_per_video: int = 1
    repeat: str = "views"
    padded: bool = False

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"device={self.device!r} must be 'cpu' or 'gpu'")
        if self.device == "gpu" and (self.host_decoded or self.plugin):
            raise ValueError("host decoding and the CPU plugin are the CPU graph's")
        if self.then_modes and self.mix_mode is None:
            raise ValueError("later mixing stages need a first one (mix_mode)")
        if self.randaugment is not None and self.randaugment[0] < 1:
            raise ValueError(f"randaugment={self.randaugment} must apply n >= 1 operations")

    @classmethod
    def choose(
        cls,
        device: str,
        codecs: set[str],
        mix_mode: str | None = None,
        num_videos: int = 2,
        randaugment: tuple[int, int] | None = None,
        then_modes: tuple[str, ...] = (),
        clips_per_video: int = 1,
        repeat: str = "views",
        padded: bool = False,
    ) -> GraphPlan:
        """The plan for videos of ``codecs`` on ``device``, loading the CPU plugin if needed
        (``randaugment`` with n = 0 applies nothing: no step)."""
        cpu = device == "cpu"
        return cls(
            device=device,
            host_decoded=cpu and not codecs <= set(DALI_CPU_CODECS),
            plugin=cpu and cpu_plugin.load_plugin() is None,
            mix_mode=mix_mode,
            num_videos=num_videos,
            randaugment=randaugment if randaugment and randaugment[0] else None,
            then_modes=tuple(then_modes),
            clips_per_video=clips_per_video,
            repeat=repeat,
            padded=padded,
        )

    @property
    def shares_decodes(self) -> bool:
        """One sample of each run of ``clips_per_video`` decodes (a DALI conditional) and the
        run's clips take its frames (``permute_batch``); decoded on the host, the source
        shares them instead."""
        return self.clips_per_video > 1 and not self.host_decoded

    @property
    def picks_frames(self) -> bool:
        """The graph picks each clip's frames from its video's decoded distinct frames
        (``sequence_rearrange``); where no clip repeats a frame and siblings are views of the
        same frames, the decoded frames are each clip's."""
        windows = self.clips_per_video > 1 and self.repeat == "windows"
        return (windows or self.padded) and not self.host_decoded

    @property
    def pastes_while_resizing(self) -> bool:
        """The plugin mixes the batch while it crops and resizes (the paste modes; not where
        RandAugment must come between the two)."""
        return self.plugin and self.mix_mode in PASTE_MODES and self.randaugment is None

    @property
    def mixes_with_dali_ops(self) -> bool:
        """The CPU graph mixes after resizing with DALI's operators (mixup, cutout; pastes
        without the plugin); on the GPU the CuPy kernel mixes."""
        cpu_mix = self.device == "cpu" and self.mix_mode is not None
        return cpu_mix and not self.pastes_while_resizing

    @property
    def conditionals(self) -> bool:
        """The graph branches per sample (RandAugment's operations, shared decodes)."""
        return self.randaugment is not None or self.shares_decodes

    @property
    def source_outputs(self) -> tuple[str, ...]:
        """``SOURCE_OUTPUTS`` of this graph: decoded on the host, "encoded" holds the frames
        and there are no frame indices to pass; "augment" only with RandAugment; "decodes"
        and "leader" where decodes are shared, "order" where the graph picks frames."""
        left_out = {"frames"} if self.host_decoded else set()
        left_out |= set() if self.randaugment else {"augment"}
        left_out |= set() if self.shares_decodes else {"decodes", "leader"}
        left_out |= set() if self.picks_frames else {"order"}
        return tuple(n for n in SOURCE_OUTPUTS if n not in left_out)

    @property
    def num_first_mix_inputs(self) -> int:
        """Arrays per sample :meth:`encode_mix` yields for the first (or only) stage."""
        if self.mix_mode is None:
            return 0
        return num_dali_inputs(self.mix_mode, self.num_videos) if self.device == "cpu" else 2

    @property
    def num_mix_inputs(self) -> int:
        """Arrays per sample :meth:`encode_mix` yields: the first stage's, then (rows, coef)
        of each later stage."""
        return self.num_first_mix_inputs + 2 * len(self.then_modes)

    def encode_mix(self, params: MixParams | list[MixParams]) -> tuple[list[np.ndarray], ...]:
        """The mixing inputs the source yields after ``source_outputs``, per sample: for the
        first stage, on the CPU the small arrays of DALI's operators and the plugin
        (:func:`~videomix_dali.graph.ops.dali_inputs`), on the GPU the packed params (rows,
        coef) the CuPy kernel reads as they are; for each later stage its packed params."""
        first, *later = params if isinstance(params, list) else [params]
        if len(later) != len(self.then_modes):
            raise ValueError(f"{1 + len(later)} stages of params for a plan of {self.stages}")
        if self.device == "cpu":
            out = tuple(dali_inputs(first))
        else:
            rows, coef = first.pack()
            out = (list(rows), list(coef))
        for p in later:
            rows, coef = p.pack()
            out += (list(rows), list(coef))
        return out

    @property
    def stages(self) -> int:
        """Mixing stages of this graph."""
        return (self.mix_mode is not None) + len(self.then_modes)

    def pipeline_batch_size(self, batch_size: int, num_frames: int) -> int:
        """The pipeline's maximum batch size: DALI's paste operator works per frame, so the
        CPU graph that mixes with it needs room for a batch's frames."""
        if self.mixes_with_dali_ops:
            return dali_batch_size(self.mix_mode, batch_size, num_frames)
        return batch_size
