"""MPFM: multi-source precipitation fusion network (3D CNN + self-attention + BiConvLSTM).

The network follows the record's description (self-attention, a 3D CNN and a bidirectional
ConvLSTM, dropout in the fully-connected stage) in a **fully convolutional** form:

1. ``Conv3d`` blocks over ``(time, lat, lon)``, padded in time and unpadded in space,
   each followed by batch normalization and ReLU;
2. multi-head self-attention over the time steps of each cell (tokens = days, embedding =
   channels), with a residual connection (no layer norm, see below); it mixes nothing across
   space, so it keeps translation equivariance;
3. a bidirectional ConvLSTM (unpadded gate convolutions) meeting at the centre day;
   with ``skip`` (default) the centre day's features of steps 1-2, cropped to the ConvLSTM's
   output, are concatenated to it, so the head sees both the local multi-source signal and
   the ConvLSTM's temporal context (without the skip the network trained worse than the
   3D CNN alone on the demo);
4. a head of 1x1 convolutions (the per-cell "fully-connected" stage) with dropout, and a
   softplus, so the output is non-negative.

Because no layer pads in space, the prediction for a cell depends only on the inputs within
:attr:`MPFM.radius` cells of it: run on a station-centred patch of side ``2 * radius + 1`` it
gives the value at the centre; run on a tile with a halo of ``radius`` it gives every interior
cell, identically.  Switching parts off yields the deep baselines ``cnn3d`` (no attention,
no ConvLSTM) and ``biconvlstm`` (ConvLSTM only).

Input ``(batch, time, channels, H, W)``; output ``(batch, H - 2r, W - 2r)`` in the model's
target space (see :class:`gridfuse.models.train.FusionModel`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .convlstm import BiConvLSTM, center_crop

__all__ = ["MPFMConfig", "MPFM", "VARIANTS"]

# Parts switched on in each named network (the full model and the two deep baselines).
VARIANTS: dict[str, dict[str, bool]] = {
    "mpfm": {"use_cnn": True, "use_attention": True, "use_lstm": True},
    "cnn3d": {"use_cnn": True, "use_attention": False, "use_lstm": False},
    "biconvlstm": {"use_cnn": False, "use_attention": False, "use_lstm": True},
}


@dataclass
class MPFMConfig:
    """Sizes of the network (all in config ``model.mpfm``)."""

    in_channels: int
    window: int = 7
    conv_channels: list[int] = field(default_factory=lambda: [16, 16])
    conv_kernel: int = 3
    attention_heads: int = 2
    hidden: list[int] = field(default_factory=lambda: [16])
    lstm_kernel: int = 3
    head_hidden: int = 32
    dropout: float = 0.2
    skip: bool = True
    use_cnn: bool = True
    use_attention: bool = True
    use_lstm: bool = True

    @classmethod
    def variant(cls, name: str, in_channels: int, **sizes) -> MPFMConfig:
        """Config of a named network (``mpfm``, ``cnn3d``, ``biconvlstm``)."""
        if name not in VARIANTS:
            raise ValueError(f"unknown network {name!r}; known: {sorted(VARIANTS)}")
        known = {f.name for f in dataclasses.fields(cls)}
        extra = set(sizes) - known
        if extra:
            raise ValueError(f"unknown MPFM size keys {sorted(extra)}; known: {sorted(known)}")
        return cls(in_channels=in_channels, **{**sizes, **VARIANTS[name]})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _pointwise(conv: nn.Conv3d, x: Tensor) -> Tensor:
    """A 1x1x1 ``Conv3d`` as matrix products over the channels of ``(B, C, T, H, W)``.

    The same parameters as ``conv``; PyTorch's CPU ``Conv3d`` takes a slow im2col path
    for this shape (and ``matmul`` a transposing one), a product per batch item does not.
    Without autograd each item's product is written in place (``addmm(out=...)``).
    """
    b, c = x.shape[:2]
    w = conv.weight.reshape(conv.out_channels, c)
    xf = x.reshape(b, c, -1)
    bias = conv.bias[:, None]
    if torch.is_grad_enabled():
        y = torch.baddbmm(bias, w.expand(b, -1, -1), xf)
    else:  # under autocast the activations may be bf16: products in their dtype
        w, bias = w.to(xf.dtype), bias.to(xf.dtype)
        y = xf.new_empty((b, conv.out_channels, xf.shape[-1]))
        for i in range(b):
            torch.addmm(bias, w, xf[i], out=y[i])
    return y.reshape(b, conv.out_channels, *x.shape[2:])


class _TemporalAttention(nn.Module):
    """Multi-head self-attention over the time steps of every cell, with a residual.

    Works on ``(B, C, T, H, W)`` directly: pointwise (1x1x1) projections for queries, keys,
    values and output, attention weights ``(B, heads, T, T, H*W)`` per cell.  With days as
    tokens there are only ``T x T`` (49) weights per cell and head, so the products are
    accumulated one head-dimension (scores) or one key day (output) at a time with the
    cells as the contiguous axis: memory-bound passes over large arrays instead of millions
    of 7 x 8 matrix products.  There is no layer normalization: normalizing over channels
    at each cell-day divides out the overall amplitude of the features, i.e. the rain
    intensity the network has to regress (with it, MPFM trained markedly worse than the
    3D CNN alone on the demo).
    """

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"attention: {channels} channels not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Conv3d(channels, 3 * channels, 1)
        self.out = nn.Conv3d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, t, h, w = x.shape
        n, d = self.heads, c // self.heads
        q, k, v = _pointwise(self.qkv, x).reshape(b, 3, n, d, t, h * w).unbind(1)
        # scores[b, n, t, s, p] = sum_i q[b, n, i, t, p] k[b, n, i, s, p] / sqrt(d)
        scores = q[:, :, 0, :, None] * k[:, :, 0, None]
        for i in range(1, d):
            scores.addcmul_(q[:, :, i, :, None], k[:, :, i, None])
        weights = (scores * d**-0.5).softmax(dim=3)
        # att[b, n, i, t, p] = sum_s weights[b, n, t, s, p] v[b, n, i, s, p]
        att = weights[:, :, None, :, 0] * v[:, :, :, None, 0]
        for j in range(1, t):
            att.addcmul_(weights[:, :, None, :, j], v[:, :, :, None, j])
        return x + _pointwise(self.out, att.reshape(b, c, t, h, w))


class MPFM(nn.Module):
    """The fusion network; see the module docstring.  Parts are switched by ``cfg``."""

    def __init__(self, cfg: MPFMConfig) -> None:
        super().__init__()
        if cfg.window < 1 or cfg.window % 2 != 1:
            raise ValueError(f"window must be an odd number of days, got {cfg.window}")
        if not (cfg.use_cnn or cfg.use_lstm):
            raise ValueError("MPFM needs the 3D CNN or the ConvLSTM (or both)")
        self.cfg = cfg
        ch = cfg.in_channels
        blocks: list[nn.Module] = []
        if cfg.use_cnn:
            k = cfg.conv_kernel
            for out in cfg.conv_channels:
                blocks += [
                    nn.Conv3d(ch, out, (k, k, k), padding=(k // 2, 0, 0)),
                    nn.BatchNorm3d(out),
                    nn.ReLU(inplace=True),
                ]
                ch = out
        self.cnn = nn.Sequential(*blocks)
        self.attention = (
            _TemporalAttention(ch, cfg.attention_heads) if cfg.use_attention else nn.Identity()
        )
        self.lstm = BiConvLSTM(ch, cfg.hidden, cfg.lstm_kernel) if cfg.use_lstm else None
        head_in = self.lstm.out_channels if self.lstm is not None else ch
        self.skip = bool(cfg.skip and cfg.use_lstm and (cfg.use_cnn or cfg.use_attention))
        if self.skip:
            head_in += ch
        self.head = nn.Sequential(
            nn.Conv2d(head_in, cfg.head_hidden, 1),
            nn.ReLU(inplace=True),
            nn.Dropout(cfg.dropout),
            nn.Conv2d(cfg.head_hidden, 1, 1),
        )
        self.radius = self._probe_radius()

    def _probe_radius(self) -> int:
        """Receptive radius in cells, measured from the output size of a probe input."""
        c = self.cfg
        bound = (len(c.conv_channels) * (c.conv_kernel // 2) if c.use_cnn else 0) + (
            len(c.hidden) * (c.lstm_kernel // 2) * c.window if c.use_lstm else 0
        )
        size = 2 * bound + 3
        probe = torch.zeros(1, c.window, c.in_channels, size, size)
        was_training = self.training
        self.eval()
        with torch.no_grad():
            out = self.features(probe)
        self.train(was_training)
        return (size - out.shape[-1]) // 2

    def _cnn(self, x: Tensor) -> Tensor:
        """The Conv3d blocks; in eval mode with each batch norm folded into its convolution
        (the same affine map, one pass less over the largest activations).  On the CPU the
        activations and kernels are channels-last here: oneDNN's ``Conv3d`` then runs without
        reordering its input and output, 1.1x the network's inference rate on one EPYC core
        (results equal to 1e-7 relative)."""
        if self.training:
            return self.cnn(x)
        mods = list(self.cnn)
        cl = torch.channels_last_3d if x.device.type == "cpu" else torch.contiguous_format
        x = x.contiguous(memory_format=cl)
        for conv, bn in zip(mods[0::3], mods[1::3], strict=True):
            scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
            weight = (conv.weight * scale.reshape(-1, 1, 1, 1, 1)).contiguous(memory_format=cl)
            bias = (conv.bias - bn.running_mean) * scale + bn.bias
            x = torch.relu_(
                nn.functional.conv3d(x, weight, bias, padding=conv.padding, stride=conv.stride)
            )
        return x.contiguous()

    def activation_bytes(self) -> float:
        """Peak bytes of activations per cell of a forward pass, per day window (float32).

        A conservative count of the tensors alive at once in the most memory-hungry stage
        (the input cube and the Conv3d blocks, the temporal attention, or one ConvLSTM
        step with the kept forward state and the skip features), +25 %.  Inference sizes
        its batches with it (``gridfuse.predict.batch_days``).
        """
        c = self.cfg
        t, cin = c.window, c.in_channels
        ch, conv = cin, 0.0
        if c.use_cnn:
            for out in c.conv_channels:
                conv = max(conv, t * (ch + 2 * out))
                ch = out
        att = t * 7 * ch + 2 * c.attention_heads * t * t if c.use_attention else 0.0
        lstm = 0.0
        if c.use_lstm:
            h = max(c.hidden)
            lstm = 2 * t * ch + 2 * (ch + h) + 12 * h + 4 * h
        head = ch + 2 * (c.hidden[-1] if c.use_lstm else 0) + 2 * c.head_hidden
        return 4.0 * 1.25 * (t * cin + max(conv, att, lstm, head))

    def features(self, x: Tensor) -> Tensor:
        """Per-cell features at the centre day, ``(batch, F, H - 2r, W - 2r)``."""
        if x.ndim != 5:
            raise ValueError(
                f"MPFM input must be (batch, time, channel, H, W), got {tuple(x.shape)}"
            )
        b, t, c, h, w = x.shape
        if t != self.cfg.window or c != self.cfg.in_channels:
            raise ValueError(
                f"MPFM expects {self.cfg.window} days x {self.cfg.in_channels} channels, "
                f"got {t} x {c}"
            )
        z = self._cnn(x.transpose(1, 2))  # (B, C', T, H', W')
        z = self.attention(z)
        if self.lstm is None:
            return z[:, :, t // 2]
        h = self.lstm(z.transpose(1, 2), t_out=t // 2)
        if self.skip:  # the centre day's CNN/attention features, cropped to the LSTM output
            h = torch.cat([center_crop(z[:, :, t // 2], *h.shape[-2:]), h], dim=1)
        return h

    def forward(self, x: Tensor) -> Tensor:
        """Non-negative prediction (target space) for every interior cell ``(batch, H', W')``."""
        z = self.head(self.features(x))
        return nn.functional.softplus(z[:, 0])

    def predict_center(self, x: Tensor) -> Tensor:
        """Prediction at the centre cell of patches ``(batch, T, C, P, P)``; crops to the radius."""
        size = 2 * self.radius + 1
        if x.shape[-1] < size or x.shape[-2] < size:
            raise ValueError(
                f"patches of {x.shape[-2]}x{x.shape[-1]} cells are smaller than the network's "
                f"receptive field ({size}x{size}, radius {self.radius})"
            )
        out = self.forward(center_crop(x, size, size))
        return out[:, 0, 0]
