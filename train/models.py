"""SlowOnly and SlowFast video classifiers (Feichtenhofer et al., "SlowFast Networks for Video
Recognition", ICCV 2019), as used by the VideoMix paper (Sec. 4.1, 4.2), in plain PyTorch.

Architecture (SlowFast paper, Table 1 and Sec. 4):

* stem: conv 1x7x7 (SlowOnly, slow pathway) / 5x7x7 (fast pathway), stride (1, 2, 2), then a
  1x3x3 max-pool with stride (1, 2, 2); no temporal down-sampling anywhere;
* res2..res5 with spatial strides 1, 2, 2, 2 (``last_stride=1`` keeps res5 at res4's resolution,
  as the VideoMix paper does for its ST-CAMs, Appendix F);
* temporal kernels: slow pathway / SlowOnly use 1x1x1 in the first conv of the res2/res3 blocks
  and 3x1x1 in res4/res5; the fast pathway uses 3x1x1 in every stage. ResNet-18/34 bodies
  (BasicBlock) put the temporal extent on the first 3x3 conv instead (1x3x3 in res2/res3,
  3x3x3 in res4/res5);
* SlowFast: the fast pathway has beta = 1/8 of the channels and alpha = 4 times the frames; after
  the stem and after res2, res3, res4 a lateral 5x1x1 conv with temporal stride alpha maps the
  fast features to 2 * beta * C channels which are concatenated to the slow pathway;
* head: global average pooling (of each pathway, concatenated), dropout, a linear classifier.

The input is one clip (N, 3, T, H, W). A SlowFast model is given the *fast* clip (T_fast frames)
and derives the slow pathway itself as ``fast[:, :, ::alpha]``, so a VideoMix box pasted into the
fast clip is the same box in the slow clip.

FLOPs are counted with forward hooks on the conv and linear layers, 1 multiply-add = 1 FLOP (the
SlowFast paper's convention; batch-norm, ReLU, pooling and additions are not counted).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

__all__ = [
    "MODELS",
    "ResNet3d",
    "SlowFast",
    "build_model",
    "count_flops",
    "count_params",
    "describe",
    "loader_frames",
]

# depth -> (block kind, blocks per stage)
DEPTHS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
}
EXPANSION = {"basic": 1, "bottleneck": 4}
# temporal kernel size of the first conv of each block in res2..res5
SLOW_TEMPORAL = (1, 1, 3, 3)
FAST_TEMPORAL = (3, 3, 3, 3)


def _bn(channels: int) -> nn.BatchNorm3d:
    return nn.BatchNorm3d(channels)


class BasicBlock(nn.Module):
    """Two convs kt x 3 x 3 (spatial stride on the first) and 1 x 3 x 3, plus the shortcut."""

    def __init__(self, c_in: int, width: int, stride: int, kt: int) -> None:
        super().__init__()
        c_out = width
        self.conv1 = nn.Conv3d(
            c_in, width, (kt, 3, 3), (1, stride, stride), (kt // 2, 1, 1), bias=False
        )
        self.bn1 = _bn(width)
        self.conv2 = nn.Conv3d(width, c_out, (1, 3, 3), 1, (0, 1, 1), bias=False)
        self.bn2 = _bn(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class Bottleneck(nn.Module):
    """kt x 1 x 1 -> 1 x 3 x 3 (spatial stride) -> 1 x 1 x 1 (x4 channels), plus the shortcut."""

    def __init__(self, c_in: int, width: int, stride: int, kt: int) -> None:
        super().__init__()
        c_out = width * 4
        self.conv1 = nn.Conv3d(c_in, width, (kt, 1, 1), 1, (kt // 2, 0, 0), bias=False)
        self.bn1 = _bn(width)
        self.conv2 = nn.Conv3d(width, width, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False)
        self.bn2 = _bn(width)
        self.conv3 = nn.Conv3d(width, c_out, 1, bias=False)
        self.bn3 = _bn(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + (x if self.shortcut is None else self.shortcut(x)))


def _shortcut(c_in: int, c_out: int, stride: int) -> nn.Module | None:
    if c_in == c_out and stride == 1:
        return None
    return nn.Sequential(
        nn.Conv3d(c_in, c_out, 1, (1, stride, stride), bias=False),
        _bn(c_out),
    )


def _stage(kind: str, c_in: int, width: int, blocks: int, stride: int, kt: int) -> nn.Sequential:
    block = BasicBlock if kind == "basic" else Bottleneck
    layers = []
    for i in range(blocks):
        layers.append(block(c_in, width, stride if i == 0 else 1, kt))
        c_in = width * EXPANSION[kind]
    return nn.Sequential(*layers)


def _stem(c_out: int, kt: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(3, c_out, (kt, 7, 7), (1, 2, 2), (kt // 2, 3, 3), bias=False),
        _bn(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
    )


def _init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)
    # zero-init the last BN of every residual branch (SlowFast's ZERO_INIT_FINAL_BN)
    for m in module.modules():
        if isinstance(m, Bottleneck):
            nn.init.zeros_(m.bn3.weight)
        elif isinstance(m, BasicBlock):
            nn.init.zeros_(m.bn2.weight)


def _body(depth: int, last_stride: int) -> tuple[str, tuple[int, int, int, int]]:
    """Block kind and blocks per stage of a ResNet-``depth`` body, after checking arguments."""
    if depth not in DEPTHS:
        raise ValueError(f"depth={depth} must be one of {sorted(DEPTHS)}")
    if last_stride not in (1, 2):
        raise ValueError(f"last_stride={last_stride} must be 1 or 2")
    return DEPTHS[depth]


class ResNet3d(nn.Module):
    """SlowOnly-``depth``: the slow pathway alone (stem, res2..res5, pooled linear head).

    ``features(x)`` returns the last feature map (N, C, T', H', W') before global pooling, which
    ``fc`` (``self.fc.weight``) turns into class scores: what ST-CAM uses (Appendix F).
    """

    alpha = 1

    def __init__(
        self,
        depth: int = 50,
        num_classes: int = 400,
        *,
        width: int = 64,
        last_stride: int = 2,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"width={width} must be >= 1")
        kind, blocks = _body(depth, last_stride)
        self.depth, self.width, self.kind = depth, width, kind
        self.stem = _stem(width, 1)
        c_in = width
        stages = []
        for i, (n, kt) in enumerate(zip(blocks, SLOW_TEMPORAL)):
            stride = 1 if i == 0 else (last_stride if i == 3 else 2)
            stages.append(_stage(kind, c_in, width * 2**i, n, stride, kt))
            c_in = width * 2**i * EXPANSION[kind]
        self.res2, self.res3, self.res4, self.res5 = stages
        self.feature_dim = c_in
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(c_in, num_classes)
        _init(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        return self.res5(self.res4(self.res3(self.res2(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x).mean(dim=(2, 3, 4))
        return self.fc(self.dropout(f))

    def cam(self, x: torch.Tensor) -> torch.Tensor:
        """Class activation maps (N, K, T', H', W'): ``fc.weight @ features`` per position.

        Global-average-pooling them (plus ``fc.bias``) gives the logits exactly.
        """
        f = self.features(x)
        return torch.einsum("ncthw,kc->nkthw", f, self.fc.weight)


class SlowFast(nn.Module):
    """SlowFast-``depth`` (T_slow x tau) with fast pathway ratio ``alpha`` and channel ratio
    ``beta`` (8x8: alpha=4, beta=1/8); the input is the fast clip (N, 3, alpha * T_slow, H, W)."""

    def __init__(
        self,
        depth: int = 50,
        num_classes: int = 400,
        *,
        width: int = 64,
        alpha: int = 4,
        beta_inv: int = 8,
        fusion_ratio: int = 2,
        fusion_kernel: int = 5,
        last_stride: int = 2,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if width % beta_inv:
            raise ValueError(f"width={width} must be a multiple of beta_inv={beta_inv}")
        kind, blocks = _body(depth, last_stride)
        exp = EXPANSION[kind]
        self.depth, self.width, self.kind, self.alpha = depth, width, kind, alpha
        fw = width // beta_inv

        def lateral(c: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv3d(
                    c,
                    c * fusion_ratio,
                    (fusion_kernel, 1, 1),
                    (alpha, 1, 1),
                    (fusion_kernel // 2, 0, 0),
                    bias=False,
                ),
                _bn(c * fusion_ratio),
                nn.ReLU(inplace=True),
            )

        self.slow_stem = _stem(width, 1)
        self.fast_stem = _stem(fw, 5)
        self.lateral = nn.ModuleList([lateral(fw)])
        slow_in, fast_in = width + fw * fusion_ratio, fw
        slow, fast = [], []
        for i, n in enumerate(blocks):
            stride = 1 if i == 0 else (last_stride if i == 3 else 2)
            slow.append(_stage(kind, slow_in, width * 2**i, n, stride, SLOW_TEMPORAL[i]))
            fast.append(_stage(kind, fast_in, fw * 2**i, n, stride, FAST_TEMPORAL[i]))
            slow_out, fast_out = width * 2**i * exp, fw * 2**i * exp
            if i < 3:
                self.lateral.append(lateral(fast_out))
                slow_in = slow_out + fast_out * fusion_ratio
            fast_in = fast_out
        self.slow_stages = nn.ModuleList(slow)
        self.fast_stages = nn.ModuleList(fast)
        self.feature_dim = slow_out + fast_out
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(self.feature_dim, num_classes)
        _init(self)

    def pathways(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Last (slow, fast) feature maps before pooling."""
        if x.shape[2] % self.alpha:
            raise ValueError(f"the fast clip has T={x.shape[2]}, not a multiple of {self.alpha}")
        slow = self.slow_stem(x[:, :, :: self.alpha])
        fast = self.fast_stem(x)
        for i in range(4):  # lateral after the stems and after res2, res3, res4
            slow = torch.cat([slow, self.lateral[i](fast)], dim=1)
            slow = self.slow_stages[i](slow)
            fast = self.fast_stages[i](fast)
        return slow, fast

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        slow, fast = self.pathways(x)
        f = torch.cat([slow.mean(dim=(2, 3, 4)), fast.mean(dim=(2, 3, 4))], dim=1)
        return self.fc(self.dropout(f))

    def cam(self, x: torch.Tensor) -> torch.Tensor:
        """CAM on the slow grid (N, K, T_slow, H', W'): the slow part of ``fc`` on the slow map
        plus the fast part on the fast map averaged over each group of ``alpha`` frames."""
        slow, fast = self.pathways(x)
        n, c, t, h, w = fast.shape
        fast = fast.reshape(n, c, t // self.alpha, self.alpha, h, w).mean(3)
        ws, wf = self.fc.weight.split([slow.shape[1], c], dim=1)
        return torch.einsum("ncthw,kc->nkthw", slow, ws) + torch.einsum("ncthw,kc->nkthw", fast, wf)


def _slowonly(depth: int):
    def make(num_classes: int, *, width: int = 64, last_stride: int = 2, dropout: float = 0.5):
        return ResNet3d(depth, num_classes, width=width, last_stride=last_stride, dropout=dropout)

    return make


def _slowfast(depth: int):
    def make(num_classes: int, *, width: int = 64, last_stride: int = 2, dropout: float = 0.5):
        return SlowFast(depth, num_classes, width=width, last_stride=last_stride, dropout=dropout)

    return make


MODELS = {
    "slowonly18": _slowonly(18),
    "slowonly34": _slowonly(34),
    "slowonly50": _slowonly(50),
    "slowonly101": _slowonly(101),
    "slowfast50": _slowfast(50),
}
TORCHVISION_MODELS = ("r3d_18", "mc3_18", "r2plus1d_18")


def available_models() -> list[str]:
    """Names accepted by ``build_model``; ``tv_*`` only where torchvision is importable."""
    names = list(MODELS)
    try:
        import torchvision.models.video  # noqa: F401
    except ImportError:
        return names
    return names + [f"tv_{n}" for n in TORCHVISION_MODELS]


def build_model(
    name: str, num_classes: int, *, width: int = 64, last_stride: int = 2, dropout: float = 0.5
) -> nn.Module:
    """A model by name (``slowonly18/34/50/101``, ``slowfast50``; ``tv_r3d_18`` etc. from
    torchvision if it is installed)."""
    if name.startswith("tv_"):
        if name not in available_models():
            raise ValueError(f"model={name!r} needs torchvision (pip install torchvision)")
        import torchvision.models.video as tvm

        return getattr(tvm, name[3:])(num_classes=num_classes)
    if name not in MODELS:
        raise ValueError(
            f"model={name!r} is unknown; choose one of {', '.join(available_models())}"
        )
    return MODELS[name](num_classes, width=width, last_stride=last_stride, dropout=dropout)


def loader_frames(model: nn.Module, num_frames: int, stride: int) -> tuple[int, int]:
    """(frames, stride) the loader must deliver for a model named by its *slow* T x tau.

    SlowOnly: unchanged. SlowFast (8x8, alpha 4): the fast clip, 32 frames with stride 2.
    """
    alpha = getattr(model, "alpha", 1)
    if alpha == 1:
        return num_frames, stride
    if stride % alpha:
        raise ValueError(f"stride={stride} must be a multiple of the model's alpha={alpha}")
    return num_frames * alpha, stride // alpha


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, input_shape: Iterable[int]) -> int:
    """Multiply-adds of conv and linear layers for one input of ``input_shape`` (C, T, H, W),
    measured with forward hooks (1 multiply-add = 1 FLOP)."""
    total = 0

    def conv_hook(m: nn.Conv3d, inp, out):
        nonlocal total
        k = m.in_channels // m.groups
        for s in m.kernel_size:
            k *= s
        total += out[0].numel() * k  # per sample: C_out * T' * H' * W' outputs

    def linear_hook(m: nn.Linear, inp, out):
        nonlocal total
        total += m.in_features * m.out_features

    hooks = []
    for m in model.modules():
        if isinstance(m, (nn.Conv3d, nn.Conv2d, nn.Conv1d)):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        p = next(model.parameters())
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=p.device, dtype=p.dtype))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return total


def describe(model: nn.Module, input_shape: tuple[int, int, int, int]) -> str:
    """One line: parameters and GFLOPs per view for ``input_shape`` (C, T, H, W)."""
    params = count_params(model)
    flops = count_flops(model, input_shape)
    c, t, h, w = input_shape
    return (
        f"{type(model).__name__}: {params / 1e6:.2f} M parameters, "
        f"{flops / 1e9:.2f} GFLOPs per view of {c}x{t}x{h}x{w} "
        "(1 multiply-add = 1 FLOP; conv + linear layers)"
    )
