"""MPFM gridded inference throughput, against SGEMM measured in the same run.

Builds the network at the preset sizes (``model.mpfm`` schema defaults, 5 sources + 3 static
channels, random weights: throughput does not depend on them) and predicts a synthetic
block with :func:`gridfuse.predict.predict_grid`, the path ``predict_precip`` uses:

- ``cell_days_per_cpu_s``: output cell-days per CPU second (the process's CPU time, all its
  threads, by ``time.process_time``: steadier than the wall time on a shared machine);
- ``gflop_per_cpu_s``: the same rate in FLOP, counting every floating-point operation the
  network executes per output cell-day (``torch.utils.flop_counter``, halo included),
  against ``sgemm_gflop_per_cpu_s``, a large float32 matrix product with the same threads,
  also per CPU second:
  the ratio is the fraction of the machine's matrix rate the network reaches;
- with ``--train``: training samples per second (station-day cubes, forward + backward),
  on CUDA when a device is present, else on the CPU;
- on a CUDA device (when one is present): cell-days per second on a block of the Qinghai grid
  (850 x 1390 cells by default) in fp32, tf32 and bf16, peak GPU memory, GPU utilisation
  (sampled through NVML while predicting) and the difference to the CPU result on a window
  of that block (fp32 within 1e-4 relative; tf32/bf16 within the stated tolerance).

Writes results/benchmarks/mpfm_predict.json (records as in benchmarks/_common.py; the
``measure`` of the three headline records is ``cell_days_per_cpu_s``, ``gflop_per_cpu_s``
and ``sgemm_gflop_per_cpu_s``).
"""

from __future__ import annotations

import argparse
import os
import threading
import time

import numpy as np
import pandas as pd
import torch
from _common import Bench, PeakRSS, best_time
from torch.utils.flop_counter import FlopCounterMode

from gridfuse.models.mpfm import MPFM, MPFMConfig
from gridfuse.models.train import FusionModel, Standardizer, TrainConfig, train_fusion
from gridfuse.predict import (
    CPU_BUDGET_MB,
    batch_days,
    day_windows,
    predict_grid,
    predict_memory_mb,
)

SOURCES = ["era5", "gsmap", "gldas", "imerg", "cmorph"]
CHANNELS = SOURCES + ["elevation", "lat", "lon"]
# relative RMS difference to the fp32 CPU result tolerated per precision (stated in the README)
TOLERANCE = {"fp32": 1e-4, "tf32": 5e-3, "bf16": 3e-2}


def make_model(seed: int = 0, n_nets: int = 1) -> FusionModel:
    """The preset-sized MPFM (schema defaults), random weights, an identity-like standardizer."""
    torch.manual_seed(seed)
    cfg = MPFMConfig.variant("mpfm", len(CHANNELS), window=7)
    nets = [MPFM(cfg).eval() for _ in range(n_nets)]
    std = Standardizer(
        CHANNELS,
        [c in SOURCES for c in CHANNELS],
        [0.5] * len(SOURCES) + [3000.0, 36.0, 98.0],
        [0.8] * len(SOURCES) + [500.0, 1.0, 2.0],
    )
    return FusionModel(nets, std, name="mpfm")


def make_reader(nlat: int, nlon: int, seed: int = 0):
    """A ``read(days)`` of smooth synthetic rain + static channels, deterministic per day."""
    rng = np.random.default_rng(seed)
    elev = rng.normal(3000, 400, (nlat, nlon)).astype("f4")
    lat = np.linspace(39.0, 31.5, nlat, dtype="f4")[:, None].repeat(nlon, 1)
    lon = np.linspace(89.5, 103.0, nlon, dtype="f4")[None, :].repeat(nlat, 0)

    def read(days: pd.DatetimeIndex) -> np.ndarray:
        out = np.empty((len(days), len(CHANNELS), nlat, nlon), dtype="f4")
        for i, d in enumerate(days):
            r = np.random.default_rng(int(d.value // 86_400_000_000_000) % 2**31)
            base = r.gamma(0.4, 4.0, (nlat // 50 + 2, nlon // 50 + 2)).astype("f4")
            field = np.kron(base, np.ones((50, 50), "f4"))[:nlat, :nlon]
            for k in range(len(SOURCES)):
                out[i, k] = field * (0.6 + 0.2 * k)
            out[i, 5], out[i, 6], out[i, 7] = elev, lat, lon
        return out

    return read


def flop_per_cell_day(model: FusionModel, tile: int, device: torch.device) -> float:
    """Executed FLOP per output cell-day of one forward pass over a ``tile`` x ``tile`` tile."""
    r, w = model.radius, model.window
    x = torch.zeros(w, len(CHANNELS), tile + 2 * r, tile + 2 * r, device=device)
    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        model.predict_standardized(day_windows(x, w))
    return fc.get_total_flops() / (tile * tile)


def sgemm_gflops(n: int = 2048, device: str = "cpu") -> float:
    """Float32 matrix-product rate with the threads torch has been given (``--threads``): on
    the CPU in GFLOP per CPU second of the process (all threads; ``time.process_time``), on a
    GPU per wall second."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)

    def run():
        a @ b
        if device != "cpu":
            torch.cuda.synchronize()

    clock = time.process_time if device == "cpu" else time.perf_counter
    return 2 * n**3 / best_time(run, repeat=5, clock=clock) / 1e9


def run_grid(model, read, days, *, device, tile, precision="fp32", time_block=None) -> tuple:
    """(seconds, prediction) of predict_grid over ``days``; one block unless ``time_block``."""
    t0 = time.perf_counter()
    blocks = list(
        predict_grid(
            model,
            read,
            days,
            tile=tile,
            time_block=time_block or len(days),
            device=device,
            precision=precision,
        )
    )
    if device != "cpu":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, np.concatenate([b for _, b in blocks])


def bench_cpu(bench: Bench, args) -> None:
    torch.set_num_threads(args.threads)
    model = make_model()
    read = make_reader(args.cells, args.cells)
    days = pd.date_range("2020-07-01", periods=args.days)
    run_grid(model, read, days[:1], device="cpu", tile=args.tile)  # warm-up
    with PeakRSS() as rss:
        run_grid(model, read, days, device="cpu", tile=args.tile, time_block=args.block)
    # best of repeats, SGEMM before and after, both in CPU time of this process (all its
    # threads, the prefetching reader's included): the wall time of a shared machine swings
    # with its load (same-run ratios 0.31-0.42 on one core at load 4-6), its CPU time far less
    sgemm = sgemm_gflops()
    cpu_s = best_time(
        lambda: run_grid(model, read, days, device="cpu", tile=args.tile, time_block=args.block),
        repeat=args.repeat,
        warmup=0,
        clock=time.process_time,
    )
    sgemm = max(sgemm, sgemm_gflops())
    cell_days = args.days * args.cells**2
    rate = cell_days / cpu_s
    flop = flop_per_cell_day(model, args.tile, torch.device("cpu"))
    bench.add(
        "cell_days_per_cpu_s",
        "cell-day/s",
        rate,
        sgemm * 1e9 / flop,
        "cell-days/s at the SGEMM rate",
        threads=args.threads,
        tile=args.tile,
        flop_per_cell_day=round(flop),
    )
    bench.add("gflop_per_cpu_s", "GFLOP/s", rate * flop / 1e9, sgemm, "SGEMM (same run)")
    bench.add("sgemm_gflop_per_cpu_s", "GFLOP/s", sgemm, threads=args.threads)
    est = predict_memory_mb(
        args.cells,
        args.cells,
        len(CHANNELS),
        time_block=min(args.block, args.days),
        window=model.window,
        radius=model.radius,
        budget_mb=CPU_BUDGET_MB,
    )
    bench.add(
        "cpu predict peak memory above start",
        "MB",
        rss.delta_mb,
        est,
        "predict_memory_mb (the jobs' request)",
        higher_is_better=False,
        batch_days=batch_days(model, (args.tile + 2 * model.radius) ** 2, CPU_BUDGET_MB * 2**20),
    )
    if args.train and not torch.cuda.is_available():
        bench_train(bench, args, "cpu")


def bench_train(bench: Bench, args, device: str) -> None:
    """Training samples per second on synthetic station patches (2 epochs)."""
    rng = np.random.default_rng(1)
    n_st, n_days, p = 40, args.train_days, 15
    x = rng.gamma(0.5, 3.0, (n_st, n_days, p, p, len(CHANNELS))).astype("f4")
    y = x[:, :, p // 2, p // 2, 0].copy()
    cfg = TrainConfig(epochs=2, patience=5, device=device, batch_size=args.train_batch)
    t0 = time.perf_counter()
    model, curve = train_fusion(
        x,
        y,
        CHANNELS,
        np.arange(32),
        np.arange(32, 40),
        sizes={"window": 7},
        train=cfg,
        log_channels=SOURCES,
    )
    secs = time.perf_counter() - t0
    samples = 2 * 32 * n_days
    bench.add(f"{device} train samples per s", "sample/s", samples / secs, epochs=2)


def sample_utilisation(dev: torch.device, out: list, stop: threading.Event) -> None:
    """Append the GPU's utilisation (%, NVML) to ``out`` every 50 ms until ``stop``."""
    while not stop.is_set():
        try:
            out.append(torch.cuda.utilization(dev))
        except Exception:  # NVML missing: utilisation not measured
            return
        stop.wait(0.05)


def bench_cuda(bench: Bench, args) -> None:
    dev = torch.device("cuda")
    model = make_model()
    read = make_reader(args.gpu_lat, args.gpu_lon)
    days = pd.date_range("2020-07-01", periods=args.gpu_days)
    cell_days = args.gpu_days * args.gpu_lat * args.gpu_lon
    # reference: the CPU result on a window of the block (fp32, all threads of this machine)
    sub = (slice(0, args.check_cells), slice(0, args.check_cells))
    torch.set_num_threads(os.cpu_count() or 1)
    ref_days = days[: args.check_days]

    def read_sub(span):
        return read(span)[:, :, sub[0], sub[1]]

    _, ref = run_grid(model, read_sub, ref_days, device="cpu", tile=args.check_cells)
    r = model.radius
    sgemm = sgemm_gflops(n=8192, device="cuda")
    bench.add("cuda sgemm", "GFLOP/s", sgemm, note="fp32, TF32 off")
    # the activation estimate that sizes the batches, against the allocator's peak
    net, edge, nb = model.nets[0].to(dev), args.gpu_tile + 2 * model.radius, 4
    x = torch.randn(nb, model.window, len(CHANNELS), edge, edge, device=dev)
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    with torch.inference_mode():
        net(x)
    used = (torch.cuda.max_memory_allocated(dev) - base) / (nb * edge * edge)
    bench.add(
        "activation bytes per cell-day (CUDA peak)",
        "B",
        used,
        net.activation_bytes(),
        "MPFM.activation_bytes estimate",
        higher_is_better=False,
    )
    del x
    for precision in ("fp32", "tf32", "bf16"):
        run_grid(model, read, days[:2], device="cuda", tile=args.gpu_tile, precision=precision)
        torch.cuda.reset_peak_memory_stats(dev)
        util, stop = [], threading.Event()
        th = threading.Thread(target=sample_utilisation, args=(dev, util, stop), daemon=True)
        th.start()
        secs, out = run_grid(
            model,
            read,
            days,
            device="cuda",
            tile=args.gpu_tile,
            precision=precision,
            time_block=args.block,
        )
        stop.set()
        th.join()
        peak = torch.cuda.max_memory_allocated(dev) / 2**20
        # the reference window's own south and east edges lack the neighbours beyond them
        got = out[: args.check_days, sub[0], sub[1]][:, :-r, :-r]
        ref_in = ref[:, :-r, :-r]
        rel = float(np.sqrt(np.mean((got - ref_in) ** 2)) / max(np.sqrt(np.mean(ref_in**2)), 1e-12))
        bench.add(
            f"cuda cell_days_per_s {precision}",
            "cell-day/s",
            cell_days / secs,
            4e6,
            "goal (4 million per second)",
            peak_gpu_mb=round(peak),
            gpu_util_mean=round(float(np.mean(util)), 1) if util else None,
            rel_rms_vs_cpu=rel,
            tolerance=TOLERANCE[precision],
            within_tolerance=rel <= TOLERANCE[precision],
            grid=[args.gpu_lat, args.gpu_lon],
            days=args.gpu_days,
            tile=args.gpu_tile,
        )
    if args.train:
        bench_train(bench, args, "cuda")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=256, help="CPU grid edge (cells)")
    ap.add_argument("--days", type=int, default=8, help="CPU days predicted")
    ap.add_argument("--block", type=int, default=16, help="days per time block")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tile", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3, help="timed repeats (best counts)")
    ap.add_argument(
        "--train", action="store_true", help="also measure training (on CUDA when present)"
    )
    ap.add_argument("--train-days", type=int, default=200)
    ap.add_argument("--train-batch", type=int, default=128)
    ap.add_argument("--gpu-lat", type=int, default=850)
    ap.add_argument("--gpu-lon", type=int, default=1390)
    ap.add_argument("--gpu-days", type=int, default=32)
    ap.add_argument("--gpu-tile", type=int, default=512)
    ap.add_argument("--check-cells", type=int, default=96)
    ap.add_argument("--check-days", type=int, default=4)
    ap.add_argument("--no-cpu", action="store_true", help="skip the CPU measurement")
    args = ap.parse_args()
    bench = Bench("mpfm_predict")
    if not args.no_cpu:
        bench_cpu(bench, args)
    if torch.cuda.is_available():
        bench_cuda(bench, args)
    bench.write()


if __name__ == "__main__":
    main()
