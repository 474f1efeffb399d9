"""Convolutional LSTM in "valid" spatial mode: a cell, a one-direction stack, a bidirectional layer.

Every convolution here is unpadded in space, so an output cell depends only on the input
cells within a fixed radius of it, never on padding.  A network built from these layers
therefore gives exactly the same value for a cell whether it is run on a small patch centred
on that cell or on a large tile containing it (with a halo at least the receptive radius):
the property gridded prediction relies on.

Shapes: a sequence is ``(batch, time, channels, height, width)``; states are
``(batch, hidden, height, width)``.  Each recurrent step shrinks the spatial size by
``2 * (kernel // 2)``, because the gate convolution is unpadded.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["ConvLSTMCell", "ConvLSTM", "BiConvLSTM", "center_crop"]

State = tuple[Tensor, Tensor]


def center_crop(x: Tensor, height: int, width: int) -> Tensor:
    """The central ``height x width`` window of the last two axes of ``x``."""
    h, w = x.shape[-2:]
    if height > h or width > w:
        raise ValueError(f"cannot crop a {h}x{w} field to {height}x{width}")
    top, left = (h - height) // 2, (w - width) // 2
    return x[..., top : top + height, left : left + width]


class ConvLSTMCell(nn.Module):
    """One ConvLSTM step; a single convolution computes all four gates.

    Parameters
    ----------
    in_channels : int
        Channels of the input at each step.
    hidden : int
        Channels of the hidden and cell states.
    kernel : int
        Odd spatial kernel size of the gate convolution (unpadded).
    """

    def __init__(self, in_channels: int, hidden: int, kernel: int = 3) -> None:
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError(f"ConvLSTM kernel must be odd, got {kernel}")
        self.in_channels = in_channels
        self.hidden = hidden
        self.kernel = kernel
        self.gates = nn.Conv2d(in_channels + hidden, 4 * hidden, kernel, padding=0)

    @property
    def shrink(self) -> int:
        """Cells lost on each side per step."""
        return self.kernel // 2

    def initial_state(self, x: Tensor) -> State:
        """Zero hidden and cell states shaped like the step input ``x``."""
        b, _, h, w = x.shape
        z = x.new_zeros((b, self.hidden, h, w))
        return z, z

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Advance one step.

        Parameters
        ----------
        x : Tensor
            Step input ``(batch, in_channels, H, W)``.
        state : (h, c) or None
            Previous states (zero when None); they and ``x`` are centre-cropped to the
            smaller of their sizes before the unpadded gate convolution.

        Returns
        -------
        h : Tensor
            New hidden state ``(batch, hidden, H' - 2k, W' - 2k)`` with ``k = kernel // 2``.
        (h, c) : State
            The new states, to pass to the next step.
        """
        if state is None:
            # zero states: only the input part of the gate kernel contributes, and c = i * g
            w = self.gates.weight[:, : self.in_channels]
            z = nn.functional.conv2d(x, w, self.gates.bias)
            i, f, o, g = torch.split(z, self.hidden, dim=1)
            c = torch.sigmoid(i) * torch.tanh(g)
        else:
            h_prev, c_prev = state
            size = min(x.shape[-2], h_prev.shape[-2]), min(x.shape[-1], h_prev.shape[-1])
            x = center_crop(x, *size)
            h_prev = center_crop(h_prev, *size)
            z = self.gates(torch.cat([x, h_prev], dim=1))
            i, f, o, g = torch.split(z, self.hidden, dim=1)
            k = self.shrink
            c_prev = c_prev if k == 0 else center_crop(c_prev, size[0] - 2 * k, size[1] - 2 * k)
            c = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)


class ConvLSTM(nn.Module):
    """A stack of :class:`ConvLSTMCell` run over a sequence in one direction.

    Parameters
    ----------
    in_channels : int
        Input channels per step.
    hidden : sequence of int
        Hidden channels of each stacked layer.
    kernel : int
        Gate kernel size of every layer.
    """

    def __init__(self, in_channels: int, hidden: list[int] | tuple[int, ...], kernel: int = 3):
        super().__init__()
        chans = [in_channels, *hidden]
        self.cells = nn.ModuleList(
            ConvLSTMCell(chans[i], chans[i + 1], kernel) for i in range(len(hidden))
        )

    @property
    def out_channels(self) -> int:
        return self.cells[-1].hidden

    def forward(
        self,
        x: Tensor,
        states: list[State] | None = None,
        *,
        steps: int | None = None,
        reverse: bool = False,
    ) -> tuple[Tensor, list[State]]:
        """Run the stack over ``steps`` time steps and return the last top-layer output.

        Parameters
        ----------
        x : Tensor
            ``(batch, time, channels, H, W)``.
        states : list of (h, c), optional
            Initial states per layer (zero when None).
        steps : int, optional
            Number of steps to run (default: the whole sequence).
        reverse : bool
            Run from the last time step backwards.

        Returns
        -------
        h : Tensor
            Top-layer hidden state after the last step run.
        states : list of (h, c)
            States of every layer after the last step run.
        """
        t_len = x.shape[1]
        steps = t_len if steps is None else steps
        if not 1 <= steps <= t_len:
            raise ValueError(f"steps must be in 1..{t_len}, got {steps}")
        order = range(t_len - 1, t_len - 1 - steps, -1) if reverse else range(steps)
        cur: list[State | None] = list(states) if states is not None else [None] * len(self.cells)
        out = x[:, 0]
        for t in order:
            out = x[:, t]
            for i, cell in enumerate(self.cells):
                out, cur[i] = cell(out, cur[i])
        return out, cur  # type: ignore[return-value]


class BiConvLSTM(nn.Module):
    """Forward and backward ConvLSTM stacks meeting at one time step.

    The forward stack runs from the first step up to ``t_out``, the backward stack from
    the last step down to ``t_out``; their hidden states at ``t_out`` are centre-cropped
    to a common size and concatenated (``2 * hidden[-1]`` channels).
    """

    def __init__(self, in_channels: int, hidden: list[int] | tuple[int, ...], kernel: int = 3):
        super().__init__()
        self.fwd = ConvLSTM(in_channels, hidden, kernel)
        self.bwd = ConvLSTM(in_channels, hidden, kernel)

    @property
    def out_channels(self) -> int:
        return 2 * self.fwd.out_channels

    def forward(self, x: Tensor, t_out: int | None = None) -> Tensor:
        """Features at time index ``t_out`` (default: the centre of the sequence)."""
        t_len = x.shape[1]
        t_out = t_len // 2 if t_out is None else t_out
        hf, _ = self.fwd(x, steps=t_out + 1)
        hb, _ = self.bwd(x, steps=t_len - t_out, reverse=True)
        size = min(hf.shape[-2], hb.shape[-2]), min(hf.shape[-1], hb.shape[-1])
        return torch.cat([center_crop(hf, *size), center_crop(hb, *size)], dim=1)
