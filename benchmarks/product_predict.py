"""The precipitation product on the grid: the gauge-aware network plus its gauge steps.

:func:`gridfuse.gauge_fusion.product_blocks` predicts each block of days with the product's
network (``mpfm_g``: the sources, static layers and two gauge channels), then adds the
kriged residuals at the training gauges, blends with the gauge-only interpolation and
applies the wet threshold.  This measures, on a Qinghai-size grid with 48 training gauges,
the product's cell-days per second against the network alone in the same run (the ratio is
the share of the network's rate the gauge steps leave), on the CPU (``--threads``) and, when
there is one, on CUDA (with the product compared to the CPU's on a window of the grid).

Writes ``results/benchmarks/product_predict.json``.

    .venv/bin/python benchmarks/product_predict.py [--rows 850 --cols 1390] [--days 16]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch
from _common import Bench, PeakRSS
from mpfm_predict import CHANNELS, SOURCES, make_reader

from gridfuse.gauge_fusion import GAUGE_CHANNELS, GridGaugeFields, ProductSpec, product_blocks
from gridfuse.gauges import GaugeInterpolator, Variogram
from gridfuse.grid import Grid
from gridfuse.models.mpfm import MPFM, MPFMConfig
from gridfuse.models.train import FusionModel, Standardizer
from gridfuse.predict import predict_grid


def make_net(channels: list[str], seed: int) -> FusionModel:
    """A preset-sized MPFM over ``channels`` with random weights."""
    torch.manual_seed(seed)
    cfg = MPFMConfig.variant("mpfm", len(channels), window=7)
    n_src = len(SOURCES)
    mean = [0.5] * n_src + [3000.0, 36.0, 98.0] + [1.0, 30.0][: len(channels) - len(CHANNELS)]
    std = [0.8] * n_src + [500.0, 1.0, 2.0] + [1.5, 20.0][: len(channels) - len(CHANNELS)]
    log = [c in SOURCES or c == "gauge_idw" for c in channels]
    name = "mpfm_g" if len(channels) > len(CHANNELS) else "mpfm"
    return FusionModel([MPFM(cfg).eval()], Standardizer(channels, log, mean, std), name=name)


def setup(rows: int, cols: int, n_days: int, gauges: int):
    grid = Grid.from_config(
        {
            "west": 89.5,
            "south": 31.5,
            "east": 89.5 + cols * 0.01,
            "north": 31.5 + rows * 0.01,
            "res": 0.01,
        }
    )
    rng = np.random.default_rng(3)
    rows_g, cols_g = rng.integers(0, rows, gauges), rng.integers(0, cols, gauges)
    lat, lon = grid.lat[rows_g], grid.lon[cols_g]
    days = pd.date_range("2020-07-01", periods=n_days)
    vals = rng.gamma(0.5, 4.0, (n_days, gauges)).astype("f4")
    vals[rng.random(vals.shape) < 0.4] = 0.0
    vals[2, :4] = np.nan  # a day on which four gauges do not report
    fields = GridGaugeFields(lat, lon, vals, days, grid, 2.0)
    read_all = make_reader(rows, cols)

    def read_inputs(channels):
        idx = [CHANNELS.index(c) for c in channels]
        return lambda span: read_all(span)[:, idx]

    models = {"mpfm": make_net(CHANNELS, 0), "mpfm_g": make_net(CHANNELS + list(GAUGE_CHANNELS), 1)}
    spec = ProductSpec(
        net="mpfm_g",
        correction="ok",
        interp=GaugeInterpolator("ok", vario=Variogram(0.2, 80.0)).to_dict(),
        wet_threshold=0.1,
        blend=0.75,
        gauge_interp=GaugeInterpolator("idw", power=2.0).to_dict(),
    )
    return spec, models, read_inputs, fields, (rows_g, cols_g, lat, lon), days


def run(spec, models, read_inputs, fields, at, days, **kw) -> tuple[float, np.ndarray]:
    t0 = time.perf_counter()
    out = [v for _, v in product_blocks(spec, models, read_inputs, fields, *at, days, **kw)]
    return time.perf_counter() - t0, np.concatenate(out)


def run_net(models, read_inputs, fields, days, **kw) -> float:
    net = models["mpfm_g"]
    base = read_inputs(CHANNELS)

    def read(span):
        return np.concatenate([base(span), fields.read(span)], axis=1)

    t0 = time.perf_counter()
    for _ in predict_grid(net, read, days, **kw):
        pass
    if kw.get("device", "cpu") != "cpu":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=850)
    ap.add_argument("--cols", type=int, default=1390)
    ap.add_argument("--days", type=int, default=16)
    ap.add_argument("--gauges", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cpu-rows", type=int, default=128, help="CPU run: grid rows (a band)")
    ap.add_argument("--tile", type=int, default=512, help="CUDA tile")
    ap.add_argument("--block", type=int, default=16, help="CUDA days per block")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    bench = Bench("product_predict")
    # CPU: a band of the grid (the network dominates; its rate is per cell-day)
    setup_cpu = setup(args.cpu_rows, args.cols, args.days, args.gauges)
    spec, models, read_inputs, fields, at, days = setup_cpu
    kw = {"device": "cpu", "tile": 128, "time_block": 8}
    run_net(models, read_inputs, fields, days[:2], **kw)  # warm-up
    t_net = run_net(models, read_inputs, fields, days, **kw)
    with PeakRSS() as rss:
        t_prod, cpu_out = run(*setup_cpu, **kw)
    cell_days = args.days * args.cpu_rows * args.cols
    bench.add(
        "cpu product cell-days per s",
        "cell-day/s",
        cell_days / t_prod,
        cell_days / t_net,
        "the network alone (same run)",
        threads=args.threads,
        grid=[args.cpu_rows, args.cols],
        peak_mb=round(rss.delta_mb, 1),
    )
    if not torch.cuda.is_available():
        bench.write()
        return
    setup_gpu = setup(args.rows, args.cols, args.days, args.gauges)
    cell_days = args.days * args.rows * args.cols
    for precision in ("fp32", "tf32"):
        kw = {"device": "cuda", "tile": args.tile, "time_block": args.block, "precision": precision}
        run_net(setup_gpu[1], setup_gpu[2], setup_gpu[3], setup_gpu[5][:2], **kw)  # warm-up
        t_net = run_net(setup_gpu[1], setup_gpu[2], setup_gpu[3], setup_gpu[5], **kw)
        torch.cuda.reset_peak_memory_stats()
        t_prod, gpu_out = run(*setup_gpu, **kw)
        extra = {"peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20)}
        if precision == "fp32":  # the CPU run's band (same seeds: same gauges and weights)
            band = run(*setup(args.cpu_rows, args.cols, args.days, args.gauges), **kw)[1]
            rel = float(np.sqrt(np.mean((band - cpu_out) ** 2)) / np.sqrt(np.mean(cpu_out**2)))
            extra["rel_rms_vs_cpu"] = rel
        bench.add(
            f"cuda product cell-days per s {precision}",
            "cell-day/s",
            cell_days / t_prod,
            cell_days / t_net,
            "the network alone (same run)",
            grid=[args.rows, args.cols],
            days=args.days,
            **extra,
        )
    bench.write()


if __name__ == "__main__":
    main()
