"""Gauge post-processing of the precipitation product on a Qinghai-size grid.

The product adds the kriged (or IDW) residuals of the network at the training gauges to
every cell of every day, and the gauge-aware network reads gauge fields on the grid
(:mod:`gridfuse.gauge_fusion`).  This measures, in cell-days per CPU-second on one thread:

* ordinary kriging by :func:`gridfuse.gauges.krige` (weights solved once per set of
  reporting gauges) against PyKrige's ``OrdinaryKriging.execute`` called day by day, the
  reference, on the same days and the same variogram (the results must agree to 1e-4);
* the IDW correction and the gauge fields (``GridGaugeFields.read``), against the same
  PyKrige reference rate.

Writes ``results/benchmarks/gauge_correction.json``.

    .venv/bin/python benchmarks/gauge_correction.py [--days 8] [--gauges 48] [--rows 850 --cols 1390]

The correction and the fields keep their weights between blocks (as in a predict job), so
their rates are per block once the first block has solved them.
"""

from __future__ import annotations

import argparse
import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from _common import Bench, PeakRSS, best_time  # noqa: E402

from gridfuse.gauge_fusion import GridGaugeFields, correct  # noqa: E402
from gridfuse.gauges import GaugeInterpolator, Variogram, krige, local_xy  # noqa: E402
from gridfuse.grid import Grid  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=8)
    ap.add_argument("--gauges", type=int, default=48)
    ap.add_argument("--rows", type=int, default=850)
    ap.add_argument("--cols", type=int, default=1390)
    args = ap.parse_args()
    from pykrige.ok import OrdinaryKriging

    res = 0.01
    grid = Grid.from_config(
        {
            "west": 90.0,
            "south": 32.0,
            "east": 90.0 + args.cols * res,
            "north": 32.0 + args.rows * res,
            "res": res,
        }
    )
    rng = np.random.default_rng(0)
    lat = rng.uniform(grid.lat.min(), grid.lat.max(), args.gauges)
    lon = rng.uniform(grid.lon.min(), grid.lon.max(), args.gauges)
    vals = rng.gamma(0.5, 4.0, (args.days, args.gauges))
    vals[rng.random(vals.shape) < 0.4] = 0.0
    vals[1, :3] = np.nan  # a day on which three gauges do not report
    clat, clon = np.meshgrid(grid.lat, grid.lon, indexing="ij")
    clat, clon = clat.ravel(), clon.ravel()
    cell_days = args.days * clat.size
    vario = Variogram(nugget=0.2, range_km=80.0)
    lat0 = float(lat.mean())
    src, dst = local_xy(lat, lon, lat0, 0.0), local_xy(clat, clon, lat0, 0.0)
    params = {"sill": 1.0, "range": vario.range_km, "nugget": vario.nugget}

    def pykrige_days():
        out = np.empty((args.days, clat.size))
        for t in range(args.days):
            ok = np.isfinite(vals[t])
            m = OrdinaryKriging(
                src[0][ok],
                src[1][ok],
                vals[t, ok],
                variogram_model="exponential",
                variogram_parameters=params,
            )
            out[t], _ = m.execute("points", dst[0], dst[1])
        return out

    bench = Bench("gauge_correction")
    t_ref = best_time(pykrige_days, repeat=1, warmup=0)
    ref = pykrige_days()
    ref_rate, ref_name = cell_days / t_ref, "PyKrige OrdinaryKriging.execute per day (same run)"
    # one call: the weights of the two sets of reporting gauges solved, then applied
    with PeakRSS() as rss:
        t_cold = best_time(lambda: krige(vals, src, dst, vario), repeat=2)
    diff = float(np.max(np.abs(krige(vals, src, dst, vario) - ref)))
    bench.add(
        "kriging cell-days per cpu s",
        "cell-day/s",
        cell_days / t_cold,
        ref_rate,
        ref_name,
        max_abs_diff=diff,
        peak_mb=round(rss.delta_mb, 1),
        grid=[args.rows, args.cols],
        gauges=args.gauges,
        reporting_sets=2,
    )
    # a predict job: block after block of days on the same grid from the same gauges, the
    # weights of each set of reporting gauges kept (GaugeInterpolator's cache)
    ok_interp = GaugeInterpolator("ok", vario=vario)
    with PeakRSS() as rss:
        t_warm = best_time(lambda: ok_interp.predict(lat, lon, vals, clat, clon), repeat=3)
    bench.add(
        "kriging cell-days per cpu s, weights kept",
        "cell-day/s",
        cell_days / t_warm,
        ref_rate,
        ref_name,
        cache_mb=round(ok_interp.cache.nbytes / 2**20, 1),
        peak_mb=round(rss.delta_mb, 1),
    )
    idw = GaugeInterpolator("idw", power=2.0)
    pred = rng.gamma(0.5, 4.0, (args.days, clat.size)).astype("f4")
    resid = rng.normal(0.0, 1.0, (args.days, args.gauges)).astype("f4")
    t_idw = best_time(lambda: correct(pred, resid, lat, lon, clat, clon, idw, 0.1), repeat=3)
    bench.add(
        "idw correction cell-days per cpu s", "cell-day/s", cell_days / t_idw, ref_rate, ref_name
    )
    days = pd.date_range("2000-01-01", periods=args.days)
    fields = GridGaugeFields(lat, lon, vals, days, grid, 2.0)
    t_f = best_time(lambda: fields.read(days), repeat=2)
    bench.add("gauge fields cell-days per cpu s", "cell-day/s", cell_days / t_f, ref_rate, ref_name)
    bench.write()


if __name__ == "__main__":
    main()
