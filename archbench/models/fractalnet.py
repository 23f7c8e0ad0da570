"""FractalNet (Larsson et al., "FractalNet: Ultra-Deep Neural Networks without Residuals", ICLR 2017;
arXiv:1605.07648).

A fractal block is the expansion rule applied C - 1 times to one convolution:

    f_1(z) = conv(z)        f_{C+1}(z) = join(f_C(f_C(z)), conv(z))

so it has C columns, the deepest 2^(C-1) convolutions long, and no residual or pass-through path:
every signal goes through a convolution (conv -> dropout -> BN -> ReLU, the authors' order) before
the next layer sees it. A join is the element-wise mean of its inputs; joins that meet at the same
depth are one join (the authors' generator, gustavla/fractalnet). Five blocks (B = 5) with 64, 128,
256, 512 and 512 channels each end with a 2x2 max-pool (32 -> 1 px), pooled per column before the
block's last join as in the authors' implementation; a linear classifier follows. B x 2^(C-1)
layers: C = 3 gives the paper's 20-layer network, C = 4 the 40-layer one.

Drop-path (paper section 3.1), in training only, chosen once per mini-batch as in the paper: with
probability ``global_drop_fraction`` (paper: 50% of batches) *global* drop-path keeps a single
column, drawn uniformly, throughout the network; otherwise *local* drop-path drops each input of
every join with probability ``local_drop_prob`` (paper: 0.15), keeping at least one. Dropout rises
per block (paper: 0, 0.1, 0.2, 0.3, 0.4). Evaluation uses every column and no dropout.

Initialisation follows the authors' layer files (Caffe's "xavier": uniform, variance 1 / fan_in). Their
convolutions have a bias, which the BN after it cancels, and their BN has no learned scale or shift; here
the convolutions have no bias and BN learns scale and shift (the usual PyTorch form): one parameter more
per channel, 0.03% of the total, and a per-channel affine the authors' network lacks.

Parameter counts do not match the paper's: the authors' generator with the paper's widths gives
33.7 M parameters for the 20-layer network, where Table 1 prints 38.6 M, and the 40-layer network
with the same widths has 76.1 M, where Table 1 prints 22.9 M (other widths, not built here).
An independent reimplementation (khanrc/pt.fractalnet) also counts 33.7 M, and reaches 38.9 M only
by adding a 1x1 channel-doubling convolution before each block, which neither the paper nor the
authors' generator has; it is not added here to fit the printed figure.
reference.csv and tests/test_models.py record both gaps.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .registry import Family, ModelSpec, declare_family

PAPER_CHANNELS = (64, 128, 256, 512, 512)
PAPER_DROPOUT = (0.0, 0.1, 0.2, 0.3, 0.4)
PAPER_LOCAL_DROP = 0.15
PAPER_GLOBAL_FRACTION = 0.5


class ConvUnit(nn.Sequential):
    """conv3x3 -> dropout -> BN -> ReLU (the authors' Caffe layer order)."""

    def __init__(self, in_chs: int, out_chs: int, dropout: float):
        super().__init__(
            nn.Conv2d(in_chs, out_chs, 3, padding=1, bias=False),
            nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
            nn.BatchNorm2d(out_chs),
            nn.ReLU(inplace=True),
        )


@dataclass(frozen=True)
class DropPath:
    """One mini-batch's drop-path decision: a column kept alone (global), or a local drop probability."""

    global_column: int | None = None
    local_drop_prob: float = 0.0

    def weights(self, columns: list[int]) -> torch.Tensor | None:
        """1 for each input of a join over ``columns`` that survives, 0 for a dropped one; None: all survive."""
        if self.global_column is not None:
            keep = torch.tensor([column == self.global_column for column in columns])
            # A join the chosen column does not pass through feeds nothing that column reads: its
            # output is never used, so any one input will do.
            return keep.float() if keep.any() else torch.eye(len(columns))[0]
        if self.local_drop_prob > 0 and len(columns) > 1:
            keep = torch.rand(len(columns)) >= self.local_drop_prob
            if not keep.any():  # the paper keeps at least one input of every join
                keep[torch.randint(len(columns), ())] = True
            return keep.float()
        return None


NO_DROP = DropPath()


class FractalBlock(nn.Module):
    """f_C of the expansion rule (without its pooling). Columns are numbered 0 (the shallowest: one
    convolution) to C - 1 (the deepest: 2^(C-1) convolutions)."""

    def __init__(self, columns: int, in_chs: int, out_chs: int, dropout: float):
        super().__init__()
        self.columns = columns
        self.shallow = ConvUnit(in_chs, out_chs, dropout)  # this level's shallowest column
        if columns > 1:
            # f_{C-1} twice: the first reads the block input, the second the first's join.
            self.first = FractalBlock(columns - 1, in_chs, out_chs, dropout)
            self.second = FractalBlock(columns - 1, out_chs, out_chs, dropout)

    def paths(self, x: torch.Tensor, drop: DropPath = NO_DROP, first_column: int = 0) -> list[tuple[int, torch.Tensor]]:
        """The inputs of this block's final join, as (column, output), deepest first; ``first_column`` is
        the network-wide number of this level's shallowest column (a nested f_{C-1} is one column deeper)."""
        if self.columns == 1:
            return [(first_column, self.shallow(x))]
        inner = join(self.first.paths(x, drop, first_column + 1), drop)
        return [*self.second.paths(inner, drop, first_column + 1), (first_column, self.shallow(x))]


def join(paths: list[tuple[int, torch.Tensor]], drop: DropPath = NO_DROP) -> torch.Tensor:
    """The element-wise mean of the inputs drop-path keeps (all of them in evaluation).

    A dropped input is multiplied by zero rather than skipped, as the authors' Caffe join masks its
    inputs: the forward values are the same, and a dropped column's weights get a zero gradient
    instead of none, so optimizers and DDP see every parameter in every step.
    """
    if len(paths) == 1:
        return paths[0][1]
    stacked = torch.stack([out for _, out in paths])
    weights = drop.weights([column for column, _ in paths])
    if weights is None:
        return stacked.mean(dim=0)
    weights = weights.to(device=stacked.device, dtype=stacked.dtype).view(-1, *([1] * (stacked.dim() - 1)))
    return (stacked * weights).sum(dim=0) / weights.sum()


class FractalNet(nn.Module):
    """B fractal blocks of C columns, each ending in a 2x2 max-pool, then a linear classifier.

    Args:
        columns: C (3: 20 layers, 4: 40 layers with five blocks).
        channels: output channels of each block (the paper: 64, 128, 256, 512, 512).
        dropout: dropout rate of each block's convolutions (the paper: 0, 0.1, 0.2, 0.3, 0.4).
        local_drop_prob: probability that a join drops each of its inputs in a local drop-path batch.
        global_drop_fraction: fraction of training mini-batches that use global drop-path.
    """

    def __init__(self, columns: int, channels: tuple[int, ...] = PAPER_CHANNELS,
                 dropout: tuple[float, ...] = PAPER_DROPOUT, local_drop_prob: float = PAPER_LOCAL_DROP,
                 global_drop_fraction: float = PAPER_GLOBAL_FRACTION, num_classes: int = 10, in_chans: int = 3):
        super().__init__()
        channels, dropout = tuple(channels), tuple(dropout)
        if columns < 1:
            raise ValueError(f"FractalNet needs at least one column, got columns={columns}.")
        if not channels or len(dropout) != len(channels):
            raise ValueError(f"FractalNet takes one dropout rate per block: {len(channels)} blocks "
                             f"(channels={channels}), {len(dropout)} rates (dropout={dropout}).")
        for name, p in (("local_drop_prob", local_drop_prob), ("global_drop_fraction", global_drop_fraction),
                        *((f"dropout[{i}]", d) for i, d in enumerate(dropout))):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"FractalNet {name} must be in [0, 1), got {p}.")
        self.columns = columns
        self.local_drop_prob = local_drop_prob
        self.global_drop_fraction = global_drop_fraction
        blocks, in_chs = [], in_chans
        for out_chs, rate in zip(channels, dropout):
            blocks.append(FractalBlock(columns, in_chs, out_chs, rate))
            in_chs = out_chs
        self.blocks = nn.ModuleList(blocks)
        self.pool = nn.MaxPool2d(2)
        self.global_pool = nn.AdaptiveAvgPool2d(1)  # the map is 1x1 already at 32 px; larger inputs still work
        self.fc = nn.Linear(in_chs, num_classes)
        self.num_features = in_chs
        xavier_init(self)

    def draw_drop_path(self) -> DropPath:
        """This mini-batch's decision (the paper draws per batch): global for ``global_drop_fraction``
        of training batches, with a uniformly drawn column; local otherwise; none in evaluation."""
        if not self.training:
            return NO_DROP
        if self.global_drop_fraction > 0 and float(torch.rand(())) < self.global_drop_fraction:
            return DropPath(global_column=int(torch.randint(self.columns, ())))
        return DropPath(local_drop_prob=self.local_drop_prob)

    def forward_features(self, x: torch.Tensor, drop: DropPath | None = None) -> torch.Tensor:
        drop = self.draw_drop_path() if drop is None else drop
        for block in self.blocks:
            # Each column is pooled before the block's last join, as the authors implement it.
            x = join([(column, self.pool(out)) for column, out in block.paths(x, drop)], drop)
        return x

    def forward(self, x: torch.Tensor, drop: DropPath | None = None) -> torch.Tensor:
        """``drop`` overrides the drawn decision, e.g. ``DropPath(global_column=C - 1)`` for the deepest column alone."""
        return self.fc(self.global_pool(self.forward_features(x, drop)).flatten(1))


def xavier_init(model: nn.Module) -> None:
    """Caffe's "xavier" filler, as the authors' layer files use for convolutions and the classifier:
    uniform with variance 1 / fan_in; unit BN, zero biases."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_uniform_(m.weight, mode="fan_in", nonlinearity="linear")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _fractalnet(name: str, columns: int, width_divisor: int = 1) -> ModelSpec:
    channels = tuple(c // width_divisor for c in PAPER_CHANNELS)

    def build(num_classes: int, in_chans: int = 3, stem: str = "cifar", dropout: tuple[float, ...] = PAPER_DROPOUT,
              local_drop_prob: float = PAPER_LOCAL_DROP,
              global_drop_fraction: float = PAPER_GLOBAL_FRACTION) -> nn.Module:
        return FractalNet(columns, channels, dropout, local_drop_prob, global_drop_fraction,
                          num_classes=num_classes, in_chans=in_chans)

    return ModelSpec(name, build, cifar_native=True)


FAMILY = declare_family(Family(
    name="fractalnet",
    arxiv="1605.07648",
    module=__name__,
    models=(_fractalnet("fractalnet_20", 3),
            _fractalnet("fractalnet_40", 4),
            # Not in the paper: the 20-layer network with every width divided by 4 (16, 32, 64, 128,
            # 128 channels), same blocks, columns, dropout and drop-path; about 54 M MACs at 32x32,
            # where the paper's network needs 0.85 G.
            _fractalnet("fractalnet_20_w4", 3, width_divisor=4)),
    small_representative="fractalnet_20_w4",
))
