"""SFC/LFC-like binary MLPs (FINN's shapes: TFC 3×64, SFC 3×256, LFC 3×1024), W1A1."""

from __future__ import annotations

import torch

from bitcycle.nets.layers import BinaryLinear, PerTensorNorm, binary_act, input_quant


class BinaryMLP(torch.nn.Module):
    """input → 8-bit QuantIdentity → [BinaryLinear → BN → sign (→ dropout)] × len(hidden) →
    BinaryLinear → PerTensorNorm. Inputs are in [0, 1]; the model maps them to [−1, 1]."""

    def __init__(self, hidden=(256, 256, 256), in_features: int = 784, num_classes: int = 10,
                 in_bits: int = 8, last_weight_bits: int = 1, dropout: float = 0.0):
        super().__init__()
        self.in_features = in_features
        self.features = torch.nn.ModuleList([input_quant(in_bits)])
        if dropout > 0:
            self.features.append(torch.nn.Dropout(dropout))
        width = in_features
        for h in hidden:
            self.features.append(BinaryLinear(width, h))
            self.features.append(torch.nn.BatchNorm1d(h, eps=1e-4))
            self.features.append(binary_act())
            if dropout > 0:
                self.features.append(torch.nn.Dropout(dropout))
            width = h
        self.features.append(BinaryLinear(width, num_classes, weight_bits=last_weight_bits))
        self.features.append(PerTensorNorm())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], -1)
        x = 2.0 * x - torch.tensor([1.0], device=x.device)
        for layer in self.features:
            x = layer(x)
        return x
