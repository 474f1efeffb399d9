"""Training of the fusion networks, their standardization, and the saved model bundle.

A :class:`FusionModel` is what a ``train`` job writes and ``predict`` / ``cross_validate``
read: one or more networks (seeds of an ensemble, averaged in mm/day), the per-channel
:class:`Standardizer` fitted on training samples only, the channel names, the target transform
and the configuration.  ``save`` writes ``<name>.pt`` plus a JSON sidecar.

Samples are station-days: the ``window``-day patch cube around day *d* at station *s* from a
``(station, time, py, px, channel)`` array, and the gauge value ``y[s, d]``.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import __version__
from ..io import atomic_path
from .mpfm import MPFM, MPFMConfig

logger = logging.getLogger(__name__)

__all__ = [
    "Standardizer",
    "TrainConfig",
    "FusionModel",
    "resolve_device",
    "train_fusion",
    "split_validation",
    "net_sizes",
    "windows",
    "member_folds",
    "train_members",
]


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; otherwise the named device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# ----------------------------------------------------------------------- standardization
@dataclass
class Standardizer:
    """Per-channel z-score, after ``log1p`` on the selected (precipitation) channels.

    Missing values (NaN) become 0 after standardization, i.e. the training mean.
    """

    channels: list[str]
    log1p: list[bool]
    mean: list[float]
    std: list[float]

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        channels: Sequence[str],
        log_channels: Sequence[str] = (),
        optional: Sequence[str] = (),
    ):
        """Fit on ``x`` with channels on the last axis (training samples only).

        A channel without any finite value is an error, except for ``optional`` channels
        (gauge fields of a network with too few gauges): they get mean 0 and std 1, i.e.
        they stay 0 (missing) after standardization, logged.
        """
        x = np.asarray(x)
        if x.shape[-1] != len(channels):
            raise ValueError(f"x has {x.shape[-1]} channels on its last axis, names: {channels}")
        flags = [c in set(log_channels) for c in channels]
        mean, std = [], []
        for i in range(len(channels)):
            v = x[..., i].astype("f8").ravel()
            v = v[np.isfinite(v)]
            if flags[i]:
                v = np.log1p(np.maximum(v, 0.0))
            if v.size == 0 and channels[i] in set(optional):
                logger.warning("channel %r has no finite training values; left at 0", channels[i])
                mean.append(0.0)
                std.append(1.0)
                continue
            if v.size == 0:
                raise ValueError(f"channel {channels[i]!r} has no finite training values")
            s = float(v.std())
            mean.append(float(v.mean()))
            std.append(s if s > 1e-12 else 1.0)
        return cls(list(channels), flags, mean, std)

    def transform(self, x: np.ndarray, axis: int = -1) -> np.ndarray:
        """Standardized float32 copy of ``x`` (channels on ``axis``), NaN -> 0."""
        x = np.asarray(x, dtype="f4")
        if x.shape[axis] != len(self.channels):
            raise ValueError(
                f"expected {len(self.channels)} channels {self.channels} on axis {axis}, "
                f"got shape {x.shape}"
            )
        out = np.moveaxis(x.copy(), axis, -1)
        for i in range(len(self.channels)):
            v = out[..., i]
            if self.log1p[i]:
                np.log1p(np.maximum(v, 0.0, out=v), out=v)
            v -= self.mean[i]
            v /= self.std[i]
        np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        return np.moveaxis(out, -1, axis)

    def transform_tensor(
        self, x: torch.Tensor, dim: int = 1, *, inplace: bool = False
    ) -> torch.Tensor:
        """:meth:`transform` for a float32 tensor on any device (channels on ``dim``).

        The same arithmetic as the NumPy path, in torch, so a block standardizes where it
        is predicted; equal to :meth:`transform` within float32 rounding.  With
        ``inplace`` (float32 input) ``x`` itself is overwritten and returned, so a large
        block needs no second copy.
        """
        if x.shape[dim] != len(self.channels):
            raise ValueError(
                f"expected {len(self.channels)} channels {self.channels} on dim {dim}, "
                f"got shape {tuple(x.shape)}"
            )
        x = x if inplace and x.dtype == torch.float32 else x.float().clone()
        shape = [1] * x.ndim
        shape[dim] = len(self.channels)
        opts = {"device": x.device, "dtype": torch.float32}
        logs = [i for i, f in enumerate(self.log1p) if f]
        if logs:
            idx = torch.tensor(logs, device=x.device)
            sel = x.index_select(dim, idx)
            x.index_copy_(dim, idx, torch.log1p(sel.clamp_min_(0.0)))
            del sel
        x.sub_(torch.tensor(self.mean, **opts).reshape(shape))
        x.div_(torch.tensor(self.std, **opts).reshape(shape))
        return torch.nan_to_num_(x, nan=0.0, posinf=0.0, neginf=0.0)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------- windows
def windows(xs: np.ndarray | torch.Tensor, st, day, window: int):
    """Gather ``window``-day cubes from a time-padded array.

    ``xs`` is ``(station, time + window - 1, C, P, P)`` (padded by ``window // 2`` days at
    each end); returns ``(n, window, C, P, P)`` for samples ``(st[i], day[i])`` where ``day``
    indexes the unpadded time axis.
    """
    if isinstance(xs, torch.Tensor):
        st = torch.as_tensor(st, device=xs.device)
        day = torch.as_tensor(day, device=xs.device)
        offs = torch.arange(window, device=xs.device)
        return xs[st[:, None], day[:, None] + offs[None, :]]
    offs = np.arange(window)
    return xs[np.asarray(st)[:, None], np.asarray(day)[:, None] + offs[None, :]]


def _prepare(x: np.ndarray, std: Standardizer, window: int, radius: int) -> np.ndarray:
    """Standardize, crop patches to the receptive field, channels first, pad time."""
    p = x.shape[2]
    size = 2 * radius + 1
    if p < size or x.shape[3] < size:
        raise ValueError(
            f"patches of {p}x{x.shape[3]} cells are smaller than the network's receptive "
            f"field {size}x{size}; raise samples.patch or shrink the network"
        )
    lo = (p - size) // 2
    x = x[:, :, lo : lo + size, lo : lo + size, :]
    xs = std.transform(x, axis=-1).transpose(0, 1, 4, 2, 3)  # (S, D, C, P, P)
    pad = window // 2
    return np.pad(xs, ((0, 0), (pad, pad), (0, 0), (0, 0), (0, 0)))


# ----------------------------------------------------------------------- config
@dataclass
class TrainConfig:
    """Optimization settings (config ``model.mpfm``)."""

    epochs: int = 20
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 5
    samples_per_epoch: int = 0
    flips: bool = True
    seeds: list[int] = field(default_factory=lambda: [0])
    device: str = "auto"
    target: str = "log1p"
    log_weight: float = 0.0
    calibrate: bool = True

    def __post_init__(self):
        if self.log_weight > 0 and self.target != "linear":
            raise ValueError(
                f"log_weight {self.log_weight} adds a log1p term to a linear loss; it needs "
                f"target 'linear', found {self.target!r}"
            )

    @classmethod
    def from_dict(cls, d: dict, seed: int = 0) -> TrainConfig:
        """The config from a mapping (unknown keys left out); ``seed`` (the run's seed) is
        added to every member seed in ``d["seeds"]``."""
        known = {f.name for f in dataclasses.fields(cls)}
        cfg = {k: v for k, v in d.items() if k in known}
        if seed and "seeds" in cfg:
            cfg["seeds"] = [int(seed) + s for s in cfg["seeds"]]
        return cls(**cfg)


SIZE_KEYS = (
    "conv_channels",
    "conv_kernel",
    "attention_heads",
    "hidden",
    "lstm_kernel",
    "head_hidden",
    "dropout",
    "skip",
)


def net_sizes(cfg: dict, window: int) -> dict:
    """The network sizes (:class:`MPFMConfig` fields) of a ``model.mpfm`` config section."""
    sizes = {k: cfg[k] for k in SIZE_KEYS if k in cfg}
    sizes["window"] = int(window)
    return sizes


def split_validation(n_stations: int, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of the training stations held out for early stopping (at least one)."""
    rng = np.random.default_rng(seed)
    n_val = max(1, int(round(fraction * n_stations))) if n_stations > 1 else 0
    mask = np.zeros(n_stations, bool)
    mask[rng.permutation(n_stations)[:n_val]] = True
    return mask


# ----------------------------------------------------------------------- model bundle
class FusionModel:
    """Networks + standardizer + metadata; predicts mm/day from raw input cubes."""

    def __init__(
        self,
        nets: list[MPFM],
        standardizer: Standardizer,
        *,
        name: str,
        target: str = "log1p",
        y_scale: float = 1.0,
        volume: Sequence[float] | None = None,
        meta: dict | None = None,
    ) -> None:
        if target not in ("log1p", "linear"):
            raise ValueError(f"target transform must be 'log1p' or 'linear', got {target!r}")
        self.nets = nets
        self.standardizer = standardizer
        self.name = name
        self.target = target
        self.y_scale = float(y_scale)
        #: per network: mm/day factor fitted on the fit stations (volume calibration), or 1
        self.volume = [float(v) for v in volume] if volume is not None else [1.0] * len(nets)
        self.meta = dict(meta or {})

    @property
    def channels(self) -> list[str]:
        return list(self.standardizer.channels)

    @property
    def window(self) -> int:
        return self.nets[0].cfg.window

    @property
    def radius(self) -> int:
        return self.nets[0].radius

    # target space <-> mm/day
    def to_target(self, y):
        return np.log1p(np.maximum(y, 0)) if self.target == "log1p" else y / self.y_scale

    def from_target(self, z):
        if isinstance(z, torch.Tensor):
            return torch.expm1(z) if self.target == "log1p" else z * self.y_scale
        return np.expm1(z) if self.target == "log1p" else z * self.y_scale

    def predict_standardized(self, xw: torch.Tensor) -> torch.Tensor:
        """mm/day for every interior cell of standardized cubes ``(n, T, C, H, W)``."""
        out = None
        for net, vol in zip(self.nets, self.volume, strict=True):
            net.eval()
            y = self.from_target(net(xw)) * vol
            out = y if out is None else out + y
        return out / len(self.nets)

    def predict(
        self, x: np.ndarray, *, batch_size: int = 256, device: str | torch.device = "auto"
    ) -> np.ndarray:
        """Predict from raw cubes ``(n, T, C, H, W)`` (NaN allowed) -> ``(n, H-2r, W-2r)``."""
        dev = resolve_device(device) if isinstance(device, str) else device
        xs = self.standardizer.transform(x, axis=2)
        outs = []
        with torch.no_grad():
            for net in self.nets:
                net.to(dev)
            for i in range(0, len(xs), batch_size):
                xb = torch.from_numpy(xs[i : i + batch_size]).to(dev)
                outs.append(self.predict_standardized(xb).cpu().numpy())
        return np.concatenate(outs).astype("f4")

    # persistence
    def state(self) -> dict:
        return {
            "name": self.name,
            "target": self.target,
            "y_scale": self.y_scale,
            "volume": self.volume,
            "standardizer": self.standardizer.to_dict(),
            "net_config": self.nets[0].cfg.to_dict(),
            "weights": [{k: v.cpu() for k, v in n.state_dict().items()} for n in self.nets],
            "meta": self.meta,
            "gridfuse_version": __version__,
        }

    def save(self, path: str | Path, sidecar: str | Path | None = None) -> Path:
        """Write weights to ``path`` (.pt) and a JSON sidecar (default: same stem, .json)."""
        path = Path(path)
        # saved through a buffer: torch.save names the archive's folder after the file, and
        # the temporary's random name would make the same model differ in its bytes
        buf = io.BytesIO()
        torch.save(self.state(), buf)
        with atomic_path(path, suffix=".pt") as tmp:
            tmp.write_bytes(buf.getvalue())
        info = {k: v for k, v in self.state().items() if k != "weights"}
        info["n_networks"] = len(self.nets)
        info["radius"] = self.radius
        sidecar = Path(sidecar) if sidecar else path.with_suffix(".json")
        with atomic_path(sidecar, suffix=".json") as tmp:
            tmp.write_text(json.dumps(info, indent=2, default=str))
        logger.info("saved %s (%d network(s)) and %s", path, len(self.nets), sidecar)
        return path

    @classmethod
    def load(cls, path: str | Path) -> FusionModel:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
        cfg = MPFMConfig(**state["net_config"])
        nets = []
        for w in state["weights"]:
            net = MPFM(cfg)
            net.load_state_dict(w)
            net.eval()
            nets.append(net)
        return cls(
            nets,
            Standardizer(**state["standardizer"]),
            name=state["name"],
            target=state["target"],
            y_scale=state["y_scale"],
            volume=state.get("volume"),
            meta=state["meta"],
        )


# ----------------------------------------------------------------------- training
def _sample_index(y: np.ndarray, x_center_ok: np.ndarray, stations: np.ndarray):
    ok = np.isfinite(y) & x_center_ok
    ok[~np.isin(np.arange(y.shape[0]), stations)] = False
    st, day = np.nonzero(ok)
    return st, day


@dataclass
class _Fit:
    """The samples of one training run: standardized cubes on the device, the fit and
    validation (station, day) indices, targets, and the gauge values (mm/day)."""

    xs_t: torch.Tensor
    fit_st: np.ndarray
    fit_day: np.ndarray
    val_st: np.ndarray
    val_day: np.ndarray
    y_fit: torch.Tensor
    y_fit_log: torch.Tensor | None
    y: np.ndarray
    window: int


def _fit_epoch(m, opt, model, data: _Fit, order, train: TrainConfig, rng) -> tuple[float, int]:
    """One pass over the fit samples in ``order``; returns the summed loss and the count."""
    total, count = 0.0, 0
    for i in range(0, order.size, train.batch_size):
        b = order[i : i + train.batch_size]
        if b.size < 2:  # batch norm needs two samples
            continue
        xb = windows(data.xs_t, data.fit_st[b], data.fit_day[b], data.window)
        if train.flips:
            if rng.random() < 0.5:
                xb = xb.flip(-1)
            if rng.random() < 0.5:
                xb = xb.flip(-2)
        y_log = data.y_fit_log[b] if data.y_fit_log is not None else None
        loss = _loss(model, m.predict_center(xb), data.y_fit[b], y_log, train)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += float(loss.detach()) * b.size
        count += b.size
    return total, count


def _fit_member(
    cfg: MPFMConfig, seed: int, model: FusionModel, data: _Fit, train: TrainConfig, dev
) -> tuple[MPFM, list[dict], float]:
    """Train one member (seed) with early stopping on the validation stations; returns
    the best-epoch network (on the CPU), its training-curve rows and its volume factor.
    The seed is set before the network is built (its initial weights come from it)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = model.name
    m = MPFM(cfg).to(dev)
    opt = torch.optim.AdamW(m.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, train.epochs))
    best, best_state, stale = np.inf, copy.deepcopy(m.state_dict()), 0
    n_fit = data.fit_st.size
    n_per_epoch = train.samples_per_epoch or n_fit
    y_val = data.y[data.val_st, data.val_day]
    rows = []
    for epoch in range(1, train.epochs + 1):
        t0 = time.perf_counter()
        m.train()
        order = rng.permutation(n_fit)
        if n_per_epoch < n_fit:
            order = order[:n_per_epoch]
        total, count = _fit_epoch(m, opt, model, data, order, train, rng)
        sched.step()
        m.eval()
        pred = _predict_samples(
            model, m, data.xs_t, data.val_st, data.val_day, data.window, train.batch_size
        )
        err = pred - y_val
        val_rmse = float(np.sqrt(np.mean(err**2))) if err.size else float(total / count)
        val_mae = float(np.mean(np.abs(err))) if err.size else float("nan")
        rows.append(
            {
                "seed": seed,
                "epoch": epoch,
                "train_loss": total / max(count, 1),
                "val_rmse": val_rmse,
                "val_mae": val_mae,
                "lr": opt.param_groups[0]["lr"],
            }
        )
        logger.info(
            "%s seed %d epoch %d/%d: train loss %.4f, val RMSE %.3f, MAE %.3f mm/day (%.1fs)",
            net,
            seed,
            epoch,
            train.epochs,
            rows[-1]["train_loss"],
            val_rmse,
            val_mae,
            time.perf_counter() - t0,  # logged only: the curve file stays reproducible
        )
        if val_rmse < best - 1e-6:
            best, best_state, stale = val_rmse, copy.deepcopy(m.state_dict()), 0
        else:
            stale += 1
            if stale >= train.patience:
                logger.info("early stop at epoch %d (best val RMSE %.3f)", epoch, best)
                break
    m.load_state_dict(best_state)
    m.eval()
    vol = 1.0
    if train.calibrate:
        fitted = _predict_samples(
            model, m, data.xs_t, data.fit_st, data.fit_day, data.window, train.batch_size
        )
        total = float(np.sum(fitted, dtype="f8"))
        observed = float(np.sum(data.y[data.fit_st, data.fit_day], dtype="f8"))
        vol = observed / total if total > 0 else 1.0
        logger.info("%s seed %d: volume calibration x%.3f on the fit stations", net, seed, vol)
    return m.cpu().eval(), rows, vol


def train_fusion(
    x: np.ndarray,
    y: np.ndarray,
    channels: Sequence[str],
    fit_stations: np.ndarray,
    val_stations: np.ndarray,
    *,
    net: str = "mpfm",
    sizes: dict | None = None,
    train: TrainConfig | None = None,
    log_channels: Sequence[str] = (),
    required_channels: Sequence[str] | None = None,
    standardizer: Standardizer | None = None,
) -> tuple[FusionModel, pd.DataFrame]:
    """Train a fusion network (or an ensemble over seeds) on station-centred patch cubes.

    Parameters
    ----------
    x : ndarray
        ``(station, time, py, px, channel)`` raw inputs for every day (NaN = missing).
    y : ndarray
        ``(station, time)`` gauge values in mm/day (NaN = missing).
    channels : sequence of str
        Names of the channels of ``x``.
    fit_stations, val_stations : ndarray of int
        Station indices used for fitting (weights and the standardizer) and for early
        stopping.  Evaluation stations must be in neither.
    net : str
        ``mpfm``, ``cnn3d`` or ``biconvlstm``.
    sizes : dict
        Network sizes (:class:`~gridfuse.models.mpfm.MPFMConfig` fields, incl. ``window``).
    train : TrainConfig
        Optimization settings.
    log_channels : sequence of str
        Channels standardized after ``log1p`` (precipitation sources).
    required_channels : sequence of str, optional
        A sample is used only where these channels are finite at the centre cell and day
        (default: all ``log_channels``).
    standardizer : Standardizer, optional
        Use this one (fitted by the caller on training stations) instead of fitting one on
        ``fit_stations``.

    Returns
    -------
    model : FusionModel
    curve : DataFrame
        ``seed, epoch, train_loss, val_rmse, val_mae, lr, seconds`` per epoch.
    """
    train = train or TrainConfig()
    sizes = dict(sizes or {})
    channels = list(channels)
    fit_stations = np.asarray(fit_stations, int)
    val_stations = np.asarray(val_stations, int)
    if np.intersect1d(fit_stations, val_stations).size:
        raise ValueError("fit and validation stations overlap")
    if x.ndim != 5 or x.shape[:2] != y.shape or x.shape[-1] != len(channels):
        raise ValueError(
            f"x must be (station, time, py, px, {len(channels)}) matching y (station, time); "
            f"got x {x.shape}, y {y.shape}"
        )
    dev = resolve_device(train.device)
    std = standardizer or Standardizer.fit(x[fit_stations], channels, log_channels)
    probe = MPFM(MPFMConfig.variant(net, len(channels), **sizes))
    window, radius = probe.cfg.window, probe.radius
    xs = _prepare(x, std, window, radius)
    req = list(required_channels if required_channels is not None else log_channels)
    c = x.shape[2] // 2
    centre = x[:, :, c, x.shape[3] // 2, :][..., [channels.index(r) for r in req]]
    centre_ok = np.all(np.isfinite(centre), axis=-1)
    fit_st, fit_day = _sample_index(y, centre_ok, fit_stations)
    val_st, val_day = _sample_index(y, centre_ok, val_stations)
    if fit_st.size == 0:
        raise ValueError("no training samples: every fit-station day lacks a gauge or input value")
    y_scale = float(np.nanstd(y[fit_st, fit_day])) or 1.0
    logger.info(
        "training %s on %s: %d fit samples (%d stations), %d validation samples (%d stations), "
        "window %d, radius %d, channels %s",
        net,
        dev,
        fit_st.size,
        fit_stations.size,
        val_st.size,
        val_stations.size,
        window,
        radius,
        channels,
    )
    model = FusionModel([], std, name=net, target=train.target, y_scale=y_scale)
    xs_t = torch.from_numpy(xs).to(dev)
    y_fit = torch.from_numpy(model.to_target(y[fit_st, fit_day]).astype("f4")).to(dev)
    y_fit_log = (
        torch.from_numpy(np.log1p(np.maximum(y[fit_st, fit_day], 0)).astype("f4")).to(dev)
        if train.log_weight > 0
        else None
    )
    data = _Fit(xs_t, fit_st, fit_day, val_st, val_day, y_fit, y_fit_log, y, window)
    nets, rows, volumes = [], [], []
    for seed in train.seeds:
        cfg = MPFMConfig.variant(net, len(channels), **sizes)
        m, curve, vol = _fit_member(cfg, seed, model, data, train, dev)
        rows += curve
        volumes.append(vol)
        nets.append(m)
    model.nets = nets
    model.volume = volumes
    model.meta.update(
        {
            "net": net,
            "seeds": list(train.seeds),
            "train": dataclasses.asdict(train),
            "n_fit_samples": int(fit_st.size),
            "n_val_samples": int(val_st.size),
        }
    )
    return model, pd.DataFrame(rows)


def _loss(model: FusionModel, pred, y, y_log, train: TrainConfig):
    """MSE in the target space, plus ``log_weight`` x MSE of log1p(mm/day) when set.

    The log term keeps the light-rain / no-rain distinction that an MSE in mm/day alone
    blurs (drizzle everywhere), while the linear term keeps the mean unbiased.
    """
    loss = torch.nn.functional.mse_loss(pred, y)
    if train.log_weight > 0:
        mm = model.from_target(pred).clamp_min(0)
        loss = loss + train.log_weight * torch.nn.functional.mse_loss(torch.log1p(mm), y_log)
    return loss


def _predict_samples(model, net, xs_t, st, day, window, batch_size) -> np.ndarray:
    out = []
    with torch.no_grad():
        for i in range(0, len(st), batch_size):
            xb = windows(xs_t, st[i : i + batch_size], day[i : i + batch_size], window)
            out.append(model.from_target(net.predict_center(xb)).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, "f4")


def predict_stations(
    model: FusionModel,
    x: np.ndarray,
    channels: Sequence[str],
    *,
    batch_size: int = 512,
    device: str = "auto",
) -> np.ndarray:
    """Predict every station-day of a ``(station, time, py, px, channel)`` array (mm/day).

    ``channels`` names the channels of ``x``; the model's channels are selected from them.
    """
    channels = list(channels)
    missing = [c for c in model.channels if c not in channels]
    if missing:
        raise ValueError(f"model needs channels {missing}, not in the samples {channels}")
    x = x[..., [channels.index(c) for c in model.channels]]
    xs = _prepare(x, model.standardizer, model.window, model.radius)
    dev = resolve_device(device)
    xs_t = torch.from_numpy(xs).to(dev)
    s, d = np.meshgrid(np.arange(x.shape[0]), np.arange(x.shape[1]), indexing="ij")
    out = None
    for net, vol in zip(model.nets, model.volume, strict=True):
        net.to(dev).eval()
        p = vol * _predict_samples(model, net, xs_t, s.ravel(), d.ravel(), model.window, batch_size)
        out = p if out is None else out + p
        net.cpu()
    return (out / len(model.nets)).reshape(x.shape[:2]).astype("f4")


# ----------------------------------------------------------------------- cross-fitted members
def member_folds(
    n_stations: int, n_members: int, val_fraction: float, seed: int
) -> list[np.ndarray]:
    """Validation masks of the ensemble members: disjoint folds of the training stations.

    The stations are shuffled with ``seed`` and cut into ``max(n_members, round(1 /
    val_fraction))`` folds; member *k* holds out fold *k*.  With one station nothing is held
    out.
    """
    n_folds = max(int(n_members), int(round(1.0 / val_fraction)))
    order = np.random.default_rng(seed).permutation(n_stations)
    folds = np.array_split(order, min(n_folds, max(1, n_stations)))
    out = []
    for k in range(n_members):
        mask = np.zeros(n_stations, bool)
        if n_stations > 1:
            mask[folds[k % len(folds)]] = True
        out.append(mask)
    return out


def train_members(
    x: np.ndarray,
    y: np.ndarray,
    channels: Sequence[str],
    train_stations: np.ndarray,
    *,
    station_ids: Sequence[str],
    val_fraction: float = 0.2,
    extra=None,
    extra_channels: Sequence[str] = (),
    split_seed: int = 0,
    **kw,
) -> tuple[FusionModel, pd.DataFrame]:
    """An ensemble of cross-fitted members, one per seed of ``train.seeds``.

    Member *k* is trained by :func:`train_fusion` with fold *k* of :func:`member_folds` as its
    validation (early-stopping) stations and the rest as fit stations, so its predictions
    at its validation stations are out of sample (the inner site CV of
    :func:`gridfuse.gauge_fusion.select_product`).  ``extra(fit_stations, loo)``, when given,
    returns more input channels ``(station, time, py, px, k)`` made from the fit stations
    only (gauge fields; a station's own value left out of its own patch when ``loo``); they
    are appended as ``extra_channels``.  One standardizer, fitted on all training stations,
    serves every member.  ``kw`` go to :func:`train_fusion` (``train`` with the seeds).
    """
    train = kw.pop("train", None) or TrainConfig()
    train_stations = np.asarray(train_stations, int)
    ids = [str(s) for s in station_ids]
    chans = list(channels) + list(extra_channels)
    log_channels = list(kw.pop("log_channels", ())) + list(extra_channels)
    full = np.concatenate([x, extra(train_stations, True)], -1) if extra else x
    std = Standardizer.fit(full[train_stations], chans, log_channels, optional=extra_channels)
    del full
    masks = member_folds(train_stations.size, len(train.seeds), val_fraction, split_seed)
    nets, volumes, members, curves, model = [], [], [], [], None
    for seed, val in zip(train.seeds, masks, strict=True):
        fit, vst = train_stations[~val], train_stations[val]
        xx = np.concatenate([x, extra(fit, True)], -1) if extra else x
        sub = dataclasses.replace(train, seeds=[seed])
        m, curve = train_fusion(
            xx, y, chans, fit, vst, train=sub, log_channels=log_channels, standardizer=std, **kw
        )
        del xx
        model = model or m
        nets += m.nets
        volumes += m.volume
        members.append(
            {
                "seed": seed,
                "fit_stations": [ids[i] for i in fit],
                "val_stations": [ids[i] for i in vst],
                "best_val_rmse": float(curve["val_rmse"].min()) if len(curve) else None,
            }
        )
        curves.append(curve)
    model.nets, model.volume = nets, volumes
    model.meta.update(seeds=list(train.seeds), members=members, train=dataclasses.asdict(train))
    return model, pd.concat(curves, ignore_index=True)
