"""LSTM baseline of the SO2 model: per-station sequences of daily features.

A 2-layer LSTM (64 units, Spec A.9) reads the feature vectors of the ``seq_len`` days up to
and including the target day at one station and predicts that day's value from its last
hidden state. Inputs are standardized with training statistics (missing values and days
before a station's record start become 0 = the training mean, with a 0/1 "present" channel).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)

__all__ = ["SequenceLSTM", "LSTMRegressor"]


class SequenceLSTM(nn.Module):
    """LSTM stack + linear head on the last time step."""

    def __init__(self, n_features: int, hidden: int = 64, layers: int = 2, dropout: float = 0.1):
        super().__init__()
        self.lstm = nn.LSTM(
            n_features,
            hidden,
            num_layers=layers,
            batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1]).squeeze(-1)


class LSTMRegressor:
    """fit/predict on sequence arrays ``(n, seq_len, n_features)`` (NaN = missing).

    Parameters
    ----------
    hidden, layers, dropout : LSTM size.
    epochs, batch_size, lr : training (Adam, MSE on the standardized target).
    seed : int
    threads : int
        torch intra-op threads.
    """

    def __init__(
        self,
        hidden: int = 64,
        layers: int = 2,
        dropout: float = 0.1,
        epochs: int = 30,
        batch_size: int = 256,
        lr: float = 1e-3,
        seed: int = 0,
        threads: int = 1,
    ):
        self.hidden, self.layers, self.dropout = hidden, layers, dropout
        self.epochs, self.batch_size, self.lr = epochs, batch_size, lr
        self.seed, self.threads = seed, threads
        self.net: SequenceLSTM | None = None

    def _prep(self, S: np.ndarray) -> torch.Tensor:
        Z = (S - self.mu) / self.sd
        present = np.isfinite(Z).all(axis=2, keepdims=True).astype(np.float32)
        Z = np.where(np.isfinite(Z), Z, 0.0).astype(np.float32)
        return torch.from_numpy(np.concatenate([Z, present], axis=2))

    def fit(self, S: np.ndarray, y: np.ndarray) -> LSTMRegressor:
        S = np.asarray(S, dtype=np.float32)
        y = np.asarray(y, dtype=np.float32)
        if S.ndim != 3 or len(S) != len(y):
            raise ValueError(
                f"LSTM: expected sequences (n, seq_len, F) and n targets; found {S.shape}, {y.shape}"
            )
        torch.manual_seed(self.seed)
        torch.set_num_threads(max(1, int(self.threads)))
        flat = S.reshape(-1, S.shape[2])
        self.mu = np.nan_to_num(np.nanmean(flat, axis=0)).astype(np.float32)
        sd = np.nan_to_num(np.nanstd(flat, axis=0))
        self.sd = np.where(sd > 0, sd, 1.0).astype(np.float32)
        self.ymu, self.ysd = float(y.mean()), float(y.std() or 1.0)
        X = self._prep(S)
        t = torch.from_numpy((y - self.ymu) / self.ysd)
        self.net = SequenceLSTM(X.shape[2], self.hidden, self.layers, self.dropout)
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        gen = torch.Generator().manual_seed(self.seed)
        self.net.train()
        for epoch in range(self.epochs):
            perm = torch.randperm(len(X), generator=gen)
            total = 0.0
            for a in range(0, len(X), self.batch_size):
                idx = perm[a : a + self.batch_size]
                opt.zero_grad()
                loss = nn.functional.mse_loss(self.net(X[idx]), t[idx])
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
            logger.debug("LSTM epoch %d: loss %.4f", epoch, total / len(X))
        return self

    def predict(self, S: np.ndarray) -> np.ndarray:
        if self.net is None:
            raise RuntimeError("LSTMRegressor: call fit() before predict()")
        self.net.eval()
        X = self._prep(np.asarray(S, dtype=np.float32))
        out = []
        with torch.no_grad():
            for a in range(0, len(X), 4096):
                out.append(self.net(X[a : a + 4096]).numpy())
        return (np.concatenate(out) * self.ysd + self.ymu).astype(np.float32)
