"""Wide gauge CSV (date + one column per station) and station table -> stations contract."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from gridfuse.grid import Grid
from gridfuse.stations import READERS, ingest
from gridfuse.stations.wide import (
    read_station_table,
    read_wide_csv,
    read_wide_values,
    sample_elevation,
)

GRID = Grid(-71.0, -33.0, -70.0, -32.0, 0.25)  # 4 x 4


def _dem() -> xr.DataArray:
    r, c = np.indices(GRID.shape)
    return xr.DataArray((1000 * r + 10 * c).astype("f4"), dims=("lat", "lon"), coords=GRID.coords())


@pytest.fixture
def files(tmp_path):
    data = tmp_path / "pp.csv"
    data.write_text(
        "date,G1,G2,G3\n2000-01-01,0.0,1.5,\n2000-01-02,NA,2.0,0\n2000-01-03,4.25,,-9999\n"
    )
    table = tmp_path / "gis.csv"
    # RFmerge layout: Code, lon, lat and no elevation; an extra station without data
    table.write_text(
        "Code,lon,lat,NOM_COM\n"
        "G1,-70.9,-32.1,a\n"
        "G2,-70.6,-32.6,b\n"
        "G3,-70.1,-32.9,c\n"
        "G4,-70.5,-32.5,d\n"
    )
    return data, table


def test_long_table_and_elevation_from_dem(files):
    data, table = files
    daily, stations = read_wide_csv(data, table, dem=_dem())
    assert list(daily.columns) == ["station", "date", "value", "n_valid"]
    assert daily["date"].dtype == "datetime64[ns]"
    got = {(r.station, f"{r.date:%d}"): r.value for r in daily.itertuples()}
    assert got == {
        ("G1", "01"): 0.0,
        ("G1", "03"): 4.25,
        ("G2", "01"): 1.5,
        ("G2", "02"): 2.0,
        ("G3", "02"): 0.0,
    }
    assert (daily["n_valid"] == 1).all()
    # only the stations of the data file; elevation of the DEM cell holding each station
    assert list(stations["station"]) == ["G1", "G2", "G3"]
    # G1 -70.9,-32.1 -> row 0, col 0; G2 -70.6,-32.6 -> row 2, col 1; G3 -> row 3, col 3
    np.testing.assert_allclose(stations["elevation"], [0.0, 2010.0, 3030.0])


def test_start_end_and_table_elevation_wins(tmp_path, files):
    data, _ = files
    table = tmp_path / "t.csv"
    table.write_text(
        "id,latitude,longitude,elev\nG1,-32.1,-70.9,55\nG2,-32.6,-70.6,\nG3,-32.9,-70.1,7\n"
    )
    wide = read_wide_values(data, start="2000-01-02", end="2000-01-02")
    assert wide.shape == (1, 3) and wide.index[0] == pd.Timestamp("2000-01-02")
    st = read_station_table(table, dem=_dem())
    np.testing.assert_allclose(st["elevation"], [55.0, 2010.0, 7.0])


def test_errors_name_file_column_and_row(tmp_path, files):
    data, table = files
    bad = tmp_path / "bad.csv"
    bad.write_text("date,G1\n2000-01-01,1\n2000-01-02,x7\n")
    with pytest.raises(ValueError, match=r"bad.csv: column 'G1' row 3 is not a number: 'x7'"):
        read_wide_values(bad)
    bad.write_text("date,G1\n2000-01-01,1\n2000-13-02,2\n")
    with pytest.raises(ValueError, match="row 3 is not a date"):
        read_wide_values(bad)
    extra = tmp_path / "extra.csv"
    extra.write_text("date,G1,G9\n2000-01-01,1,2\n")
    with pytest.raises(ValueError, match=r"not in the station table, e.g. \['G9'\]"):
        read_wide_csv(extra, table)
    nolat = tmp_path / "nolat.csv"
    nolat.write_text("Code,lon\nG1,-70\n")
    with pytest.raises(ValueError, match="lacks latitude"):
        read_station_table(nolat)


def test_sample_elevation_outside_is_nan():
    out = sample_elevation(_dem(), [-70.9, -69.0], [-32.1, -32.1])
    assert out[0] == 0.0 and np.isnan(out[1])


def test_registered_in_station_pipeline(files, tmp_path):
    data, table = files
    dem = tmp_path / "dem.nc"
    _dem().to_dataset(name="elevation").to_netcdf(dem)
    assert "wide_csv" in READERS
    daily, stations, qc = ingest(
        "precip",
        "wide_csv",
        data,
        table,
        GRID,
        "2000-01-01",
        "2000-01-03",
        0,
        evaluation={"ids": ["G2"]},
        options={"dem": str(dem)},
    )
    assert len(daily) == 5
    assert dict(zip(stations["station"], stations["role"])) == {
        "G1": "train",
        "G2": "evaluation",
        "G3": "train",
    }
    np.testing.assert_allclose(stations["elevation"], [0.0, 2010.0, 3030.0])
    with pytest.raises(ValueError, match="need a station table"):
        ingest("precip", "wide_csv", data, None, GRID, "2000-01-01", "2000-01-03", 0)


def test_real_rfmerge_gauges(realdata):
    root = realdata / "rfmerge_valparaiso"
    dem = xr.open_dataset(root / "converted" / "ValparaisoDEM5km.nc")["elevation"].load()
    daily, stations = read_wide_csv(
        root / "converted" / "ValparaisoPPts.csv",
        root / "converted" / "ValparaisoPPgis.csv",
        dem=dem,
    )
    assert len(stations) == 34 and stations["elevation"].notna().all()
    assert 243 * 34 - len(daily) == 137  # the README's count of missing values
    assert daily["date"].min() == pd.Timestamp("1983-01-01")
    assert daily["date"].max() == pd.Timestamp("1983-08-31")
    assert 0 <= daily["value"].min() and daily["value"].max() == pytest.approx(89, abs=1)
    # the elevation of P5101005 is the DEM cell at lon -70.8, lat -32.0836
    row = stations.set_index("station").loc["P5101005"]
    want = float(dem.sel(lon=-70.8, lat=-32.0836, method="nearest"))
    assert row["elevation"] == pytest.approx(want)
