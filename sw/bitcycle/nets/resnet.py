"""A small binary ResNet (Bi-Real-style): a real-valued residual stream, binary convs inside.

stem: 8-bit input → BinaryConv 3×3 → BN.  Each block: sign(x) → BinaryConv 3×3 → BN, plus the
shortcut x (AvgPool 2×2 + sign → BinaryConv 1×1 → BN where the shape changes). Head: global
average pool → sign → BinaryLinear → PerTensorNorm. Every matmul has ±1 operands on both sides,
so the engine runs all of them; the residual adds are the host's (or a threshold unit's) work.
"""

from __future__ import annotations

import torch

from bitcycle.nets.layers import BinaryConv2d, BinaryLinear, PerTensorNorm, binary_act, input_quant


class BinaryBasicBlock(torch.nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.act = binary_act()
        self.conv = BinaryConv2d(in_ch, out_ch, 3, stride=stride, padding=1)
        self.bn = torch.nn.BatchNorm2d(out_ch, eps=1e-4)
        self.shortcut = None
        if stride != 1 or in_ch != out_ch:
            self.shortcut = torch.nn.Sequential(
                torch.nn.AvgPool2d(stride) if stride > 1 else torch.nn.Identity(),
                binary_act(), BinaryConv2d(in_ch, out_ch, 1), torch.nn.BatchNorm2d(out_ch, eps=1e-4))

    def forward(self, x):
        short = x if self.shortcut is None else self.shortcut(x)
        return self.bn(self.conv(self.act(x))) + short


class BinaryResNet(torch.nn.Module):
    def __init__(self, input_size: int = 32, in_channels: int = 3, num_classes: int = 10,
                 stages=(16, 32, 64), blocks_per_stage: int = 2, width_mult: float = 1.0, in_bits: int = 8):
        super().__init__()
        stages = [max(1, int(round(c * width_mult))) for c in stages]
        self.inp = input_quant(in_bits)
        self.stem = BinaryConv2d(in_channels, stages[0], 3, padding=1)
        self.stem_bn = torch.nn.BatchNorm2d(stages[0], eps=1e-4)
        blocks, ch = [], stages[0]
        for i, out_ch in enumerate(stages):
            for j in range(blocks_per_stage):
                blocks.append(BinaryBasicBlock(ch, out_ch, 2 if (i > 0 and j == 0) else 1))
                ch = out_ch
        self.blocks = torch.nn.Sequential(*blocks)
        self.head_act = binary_act()
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = BinaryLinear(ch, num_classes)
        self.norm = PerTensorNorm()
        self.input_size, self.in_channels = input_size, in_channels

    def forward(self, x):
        x = 2.0 * x - torch.tensor([1.0], device=x.device)
        x = self.stem_bn(self.stem(self.inp(x)))
        x = self.blocks(x)
        x = self.head_act(self.pool(x).reshape(x.shape[0], -1))
        return self.norm(self.fc(x))
