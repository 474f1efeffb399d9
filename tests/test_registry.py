"""The source-format registry: facts, coverage by version, readers, units."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from gridfuse.sources import READERS, registry
from gridfuse.sources.registry import SourceFormat, Variable, Version, get_format, register
from gridfuse.sources.units import UnitsError, conversion, convert, normalize_units


def test_every_format_has_a_reader_and_facts():
    for name in registry.formats():
        f = get_format(name)
        assert callable(f.reader()), name
        assert f.steps_per_day > 0 and f.files_per_day > 0 and f.seconds_per_file > 0
        assert f.variables and all(v.units for v in f.variables)
        assert set(f.kinds) <= {"precip", "so2"}
    assert set(registry.formats("so2")) == {"tropomi_l2", "era5_met"}
    assert set(READERS) == set(registry.formats("precip"))


def test_cost_facts():
    assert get_format("imerg_hhr").files_in(366) == 17568
    assert get_format("cmorph").files_in(1) == 24 and get_format("cmorph").steps_in(1) == 48
    assert get_format("era5").files_in(366) == 13  # a month-file each (rounded up)
    assert get_format("gldas").native_res == 0.25


@pytest.mark.parametrize(
    "fmt, version, first",
    [
        ("imerg_hhr", "", "1998-01-01"),
        ("imerg_hhr", "V07B", "1998-01-01"),
        ("imerg_hhr", "V06", "2000-06-01"),
        ("gsmap_hourly", "", "1998-01-01"),
        ("cmorph", "", "1998-01-01"),
        ("gldas", "", "2000-01-01"),
        ("tropomi_l2", "", "2018-04-30"),
        ("era5", "", "1940-01-01"),
    ],
)
def test_coverage_by_version(fmt, version, first):
    f = get_format(fmt)
    assert f.coverage(version)[0] == pd.Timestamp(first).date()
    year = int(first[:4])
    assert f.covers_year(year, version=version) and not f.covers_year(year - 1, version=version)


def test_coverage_narrowed_by_config_and_days():
    f = get_format("imerg_hhr")
    days = pd.date_range("2000-01-01", "2000-12-31")
    cov = f.covered_days(days, version="V06")
    assert cov[0] == pd.Timestamp("2000-06-01") and len(cov) == 214
    assert f.coverage(first_year=2005, last_year=2010) == (
        dt.date(2005, 1, 1),
        dt.date(2010, 12, 31),
    )
    assert f.coverage(first_year=1990)[0] == dt.date(1998, 1, 1)  # never widened
    assert not f.covers_year(2011, last_year=2010)
    assert get_format("geotiff_daily").coverage() == (None, None)
    with pytest.raises(KeyError, match="unknown product version"):
        f.coverage("V05")


def test_unknown_format_lists_known():
    with pytest.raises(KeyError, match="imerg_hhr"):
        get_format("imerg_hh")


def test_register_a_new_format():
    fmt = SourceFormat(
        "test_fmt_x",
        ("precip",),
        "gridfuse.sources.gridded_daily:read_netcdf",
        "a test entry",
        ("precip",),
        (Variable("precip", "mm day-1", 0, 2000),),
        steps_per_day=1,
        files_per_day=1,
        native_res=0.1,
        seconds_per_file=1,
        versions=(Version("v1", dt.date(2001, 1, 1)),),
    )
    try:
        register(fmt)
        assert get_format("test_fmt_x").covers_year(2001)
        with pytest.raises(KeyError, match="already registered"):
            register(fmt)
    finally:
        registry.FORMATS.pop("test_fmt_x", None)


@pytest.mark.parametrize(
    "found, expected, value, want",
    [
        ("mm/hr", "mm h-1", 2.0, 2.0),
        ("mm hr**-1", "mm h-1", 2.0, 2.0),
        ("kg m**-2 s**-1", "mm h-1", 1.0 / 3600, 1.0),
        ("m", "mm", 0.002, 2.0),
        ("degC", "K", 10.0, 283.15),
        ("hPa", "Pa", 1013.25, 101325.0),
        ("DU", "mol m-2", 2241.15, 1.0),
    ],
)
def test_units_conversions(found, expected, value, want):
    assert float(convert([value], found, expected)[0]) == pytest.approx(want, rel=1e-5)


def test_units_refused_when_ambiguous():
    assert conversion("K", "m") is None
    assert conversion("mm", "mm h-1") is None  # a depth is not a rate
    with pytest.raises(UnitsError, match="furlongs"):
        convert(np.zeros(2), "furlongs", "mm")
    assert normalize_units(" Kelvin ") == "K" and normalize_units(None) == ""
