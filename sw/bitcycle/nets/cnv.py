"""CNV-like binary CNN (FINN's CNV: 6 valid 3×3 convs 64-64-P-128-128-P-256-256, FC 512-512), W1A1.

For 32×32 inputs the spatial sizes are 30-28-14-12-10-5-3-1 (FINN's CNV exactly). A 28×28 input
would shrink to zero at the sixth conv, so for ``input_size=28`` the default plan has five convs
(26-24-12-10-8-4-2 → 256·2·2 features). ``channels``/``fc`` or ``width_mult`` narrow the net.
"""

from __future__ import annotations

import torch

from bitcycle.errors import BitCycleError
from bitcycle.nets.layers import BinaryConv2d, BinaryLinear, PerTensorNorm, binary_act, input_quant

CNV_CHANNELS = {32: (64, 64, 128, 128, 256, 256), 28: (64, 64, 128, 128, 256)}
CNV_FC = (512, 512)
POOL_AFTER = (1, 3)  # 2×2 max-pool after the 2nd and 4th conv, as in FINN's CNV


class BinaryCNV(torch.nn.Module):
    def __init__(self, input_size: int = 32, in_channels: int = 3, num_classes: int = 10, channels=None,
                 fc=CNV_FC, width_mult: float = 1.0, in_bits: int = 8, last_weight_bits: int = 1):
        super().__init__()
        if channels is None:
            if input_size not in CNV_CHANNELS:
                raise BitCycleError(f"cnv: no default conv plan for input_size={input_size}; use 28 or 32 or give channels=")
            channels = CNV_CHANNELS[input_size]
        channels = [max(1, int(round(c * width_mult))) for c in channels]
        fc = [max(1, int(round(f * width_mult))) for f in fc]
        self.conv_features = torch.nn.ModuleList([input_quant(in_bits)])
        size, ch = input_size, in_channels
        for i, out_ch in enumerate(channels):
            self.conv_features.append(BinaryConv2d(ch, out_ch, 3))
            self.conv_features.append(torch.nn.BatchNorm2d(out_ch, eps=1e-4))
            self.conv_features.append(binary_act())
            size -= 2
            if i in POOL_AFTER:
                self.conv_features.append(torch.nn.MaxPool2d(2))
                size //= 2
            if size < 1:
                raise BitCycleError(f"cnv: {len(channels)} convs shrink a {input_size}×{input_size} input to nothing; use fewer channels entries")
            ch = out_ch
        self.linear_features = torch.nn.ModuleList()
        width = ch * size * size
        for f in fc:
            self.linear_features.append(BinaryLinear(width, f))
            self.linear_features.append(torch.nn.BatchNorm1d(f, eps=1e-4))
            self.linear_features.append(binary_act())
            width = f
        self.linear_features.append(BinaryLinear(width, num_classes, weight_bits=last_weight_bits))
        self.linear_features.append(PerTensorNorm())
        self.input_size, self.in_channels = input_size, in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = 2.0 * x - torch.tensor([1.0], device=x.device)
        for layer in self.conv_features:
            x = layer(x)
        x = x.reshape(x.shape[0], -1)
        for layer in self.linear_features:
            x = layer(x)
        return x
