"""The ingest_stations rule end to end, on real-layout files written by our writers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from gridfuse.stations import cma, cnemc

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def _write_inputs(tmp: Path) -> None:
    rng = np.random.default_rng(0)
    st = pd.DataFrame(
        {
            "station": ["52866", "52868", "52869", "52870", "52818"],
            "lat": [36.62, 36.45, 36.55, 36.68, 36.4],
            "lon": [101.77, 101.55, 101.6, 101.7, 94.9],
            "elevation": [2295.2, 2500.0, 2600.0, 2400.0, 2807.6],
        }
    )
    dates = pd.date_range("2019-12-20", "2020-01-12")
    values = pd.DataFrame(
        [(s, d, rng.gamma(0.5, 4.0)) for s in st.station for d in dates],
        columns=["station", "date", "value"],
    )
    cma.write_cma_daily(values, st, tmp / "raw_cma")

    t = pd.date_range("2018-08-20 00:00", "2018-09-13 00:00", freq="h")
    codes = ["2001A", "2002A", "2003A", "9999A"]
    hourly = pd.concat(
        [
            pd.DataFrame(
                {
                    "station": c,
                    "time": t,
                    "type": "SO2",
                    "value": rng.uniform(5, 80, len(t)).round(),
                }
            )
            for c in codes
        ]
    )
    cnemc.write_china_sites(hourly, tmp / "raw_cnemc")
    cnemc.write_station_list(
        pd.DataFrame(
            {
                "station": codes,
                "lon": [112.4, 112.5, 112.6, np.nan],
                "lat": [37.7, 37.8, 37.9, np.nan],
                "city": "太原",
            }
        ),
        tmp / "raw_cnemc" / "station_list.csv",
    )


@pytest.mark.slow
def test_ingest_stations_rule(tmp_path):
    _write_inputs(tmp_path)
    cfg = {
        "seed": 7,
        "products": {
            "wf_precip": {
                "kind": "precip",
                "grid": {"west": 101.5, "south": 36.4, "east": 101.8, "north": 36.7, "res": 0.01},
                "period": {"start": "2019-12-20", "end": "2020-01-12"},
                "day_window": {"utc_start_hour": 12},
                "stations": {
                    "format": "cma_daily",
                    "path": str(tmp_path / "raw_cma"),
                    "evaluation": {"count": 1},
                },
            },
            "wf_so2": {
                "kind": "so2",
                "grid": {"west": 112.3, "south": 37.6, "east": 112.7, "north": 38.0, "res": 0.01},
                "period": {"start": "2018-08-20", "end": "2018-09-12"},
                "day_window": {"utc_start_hour": 16},
                "stations": {
                    "format": "cnemc",
                    "path": str(tmp_path / "raw_cnemc"),
                    "table": str(tmp_path / "raw_cnemc" / "station_list.csv"),
                    "evaluation": {"ids": ["2002A"]},
                    "qc": {"max_value": 2000},
                },
            },
        },
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    targets = [f"results/{p}/stations/daily.parquet" for p in ("wf_precip", "wf_so2")]
    out = subprocess.run(
        [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
         "--configfile", str(tmp_path / "config.yaml"), "--cores", "2", *targets],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-4000:]

    pre = tmp_path / "results/wf_precip/stations"
    daily = pd.read_parquet(pre / "daily.parquet")
    assert list(daily.columns) == ["station", "date", "value", "n_valid"]
    assert daily["date"].dtype == "datetime64[ns]"
    stations = pd.read_csv(pre / "stations.csv", dtype={"station": str})
    assert set(stations.station) == {"52866", "52868", "52869", "52870"}
    assert (stations.role == "evaluation").sum() == 1
    qc = pd.read_csv(pre / "qc.csv", dtype={"station": str})
    assert qc[(qc.check == "outside_grid") & (qc.station == "*")].n.item() == 1

    so2 = tmp_path / "results/wf_so2/stations"
    daily = pd.read_parquet(so2 / "daily.parquet")
    assert daily.date.min() == pd.Timestamp("2018-08-20")
    assert daily.date.max() == pd.Timestamp("2018-09-12")
    stations = pd.read_csv(so2 / "stations.csv", dtype={"station": str})
    assert stations.set_index("station").role.to_dict() == {
        "2001A": "train",
        "2002A": "evaluation",
        "2003A": "train",
    }
    qc = pd.read_csv(so2 / "qc.csv", dtype={"station": str})
    assert qc[(qc.check == "no_coordinates") & (qc.station == "*")].n.item() == 1
    assert qc[(qc.check == "harmonize_298k") & (qc.station == "*")].n.item() > 0
    log = (tmp_path / "results/wf_so2/logs/ingest_stations.log").read_text()
    assert "QC no_coordinates: 1" in log
