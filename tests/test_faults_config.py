"""Fault injection: configuration, recovery and determinism.

Every case injects one fault and asserts a clear error naming the key (or file), or the
recovery that must follow; never a silent pass.  The config cases validate in-process
(schema with defaults, then :func:`gridfuse.config.check_config`), exactly as the workflow
does before building its DAG.  The reader faults are in ``tests/test_faults_readers.py``.
"""

from __future__ import annotations

import copy
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from snakemake.utils import validate

from gridfuse import io
from gridfuse.config import ConfigError, check_config
from gridfuse.grid import Grid

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = ROOT / "workflow" / "schemas" / "config.schema.yaml"
SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())
DEMO = yaml.safe_load((ROOT / "config.yaml").read_text())
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def _check(cfg) -> None:
    """What common.smk does: schema validation (defaults filled), then the semantic checks."""
    validate(cfg, str(SCHEMA_PATH))
    check_config(cfg, SCHEMA)


def _error(mutate) -> str:
    cfg = copy.deepcopy(DEMO)
    mutate(cfg)
    with pytest.raises(Exception) as info:  # noqa: PT011 - the message is what is checked
        _check(cfg)
    return str(info.value) + "\n" + str(getattr(info.value, "__cause__", "") or "")


P, S = "demo_precip", "demo_so2"


def _set(path: str, value):
    """A mutation setting ``products.<path>`` (dotted) to ``value``."""

    def mutate(cfg):
        d = cfg["products"]
        *parents, last = path.split(".")
        for k in parents:
            d = d.setdefault(k, {})
        d[last] = value

    return mutate


# (case id, mutation, strings the error must contain)
CASES = [
    # typos inside nested sections are rejected, naming the key
    ("qc_typo", _set(f"{S}.stations.qc.max_vlaue", 3), ["max_vlaue"]),
    ("source_typo", _set(f"{P}.sources.era5.margn", 1.0), ["margn", "era5"]),
    ("synthetic_typo", _set(f"{P}.synthetic.n_station", 5), ["n_station"]),
    ("synthetic_truth_typo", _set(f"{P}.synthetic.truth.corr_kms", 5), ["corr_kms"]),
    ("synthetic_knob_typo", _set(f"{P}.synthetic.sources.era5.biass", 0.1), ["biass"]),
    ("synthetic_so2_typo", _set(f"{S}.synthetic.so2.n_citys", 2), ["n_citys"]),
    ("stations_typo", _set(f"{P}.stations.evalution", {}), ["evalution"]),
    ("evaluation_typo", _set(f"{P}.stations.evaluation.cuont", 3), ["cuont"]),
    ("lightgbm_typo", _set(f"{S}.model.lightgbm.num_leafs", 3), ["num_leafs"]),
    ("features_typo", _set(f"{S}.model.features.random_ids", True), ["random_ids"]),
    ("baseline_typo", _set(f"{P}.model.baselines.rf.n_estimator", 3), ["n_estimator"]),
    ("top_level_typo", lambda c: c.update(resluts="x"), ["resluts"]),
    # a key of the other kind is rejected
    ("precip_with_so2_model", _set(f"{P}.model.lightgbm", {}), ["lightgbm", P]),
    ("so2_with_precip_model", _set(f"{S}.model.mpfm", {}), ["mpfm", S]),
    ("precip_with_298k", _set(f"{P}.stations.qc.harmonize_298k", True), ["harmonize_298k"]),
    ("so2_with_samples", _set(f"{S}.samples.patch", 15), ["patch", S]),
    ("precip_with_landcover", _set(f"{P}.static.landcover", "lc.tif"), ["landcover"]),
    ("so2_with_thresholds", _set(f"{S}.cv.thresholds", [0.1]), ["thresholds"]),
    ("precip_with_block_cv", _set(f"{P}.cv.block_size", 0.5), ["block_size"]),
    # dates are dates, periods run forward
    ("end_before_start", _set(f"{P}.period.end", "2018-12-31"), [f"{P}.period.end", "before"]),
    ("feb_30", _set(f"{P}.period.end", "2019-02-30"), [f"{P}.period.end", "2019-02-30"]),
    ("month_13_report_day", _set(f"{P}.report.days", ["2019-13-01"]), ["report.days[0]"]),
    (
        "bad_harmonize_date",
        _set(f"{S}.stations.qc.harmonize_date", "2018-02-30"),
        ["stations.qc.harmonize_date", "2018-02-30"],
    ),
    (
        "bad_tropomi_start",
        _set(f"{S}.synthetic.so2.tropomi_start", "2018-06-31"),
        ["tropomi_start"],
    ),
    ("bad_heating_day", _set(f"{S}.synthetic.so2.heating_start", "02-30"), ["heating_start"]),
    ("report_day_outside", _set(f"{P}.report.days", ["2021-06-01"]), ["report.days[0]", "outside"]),
    ("year_outside", _set(f"{P}.outputs.years", [2015]), ["outputs.years[0]", "2015"]),
    # keys that name folders are safe names
    (
        "source_key_dotdot",
        lambda c: c["products"][P]["sources"].update({"../x": {"format": "era5"}}),
        ["'../x' does not match"],
    ),
    ("source_key_upper", _set(f"{P}.sources.ERA5", {"format": "era5"}), ["ERA5"]),
    ("product_key_path", lambda c: c["products"].update({"a/b": c["products"][P]}), ["a/b"]),
    # no product to build is an error
    ("no_products", lambda c: c.update(products={}), ["products"]),
    (
        "all_disabled",
        lambda c: [p.update(enabled=False) for p in c["products"].values()],
        ["disabled"],
    ),
    # coverage and grid that cannot work
    (
        "years_reversed",
        _set(
            f"{P}.sources.gsmap", {"format": "gsmap_hourly", "first_year": 2030, "last_year": 2020}
        ),
        ["sources.gsmap.last_year: 2020 is before first_year 2030"],
    ),
    ("grid_inverted", _set(f"{S}.grid.east", 111.0), ["grid.east"]),
    ("missing_kind", lambda c: c["products"][P].pop("kind"), ["kind", "required"]),
    ("source_without_format", _set(f"{P}.sources.era5", {"path": "x"}), ["format", "required"]),
    ("shares_over_one", _set(f"{S}.synthetic.so2.town_share", 0.8), ["town_share"]),
    # input QC limits (gridded inputs and station files)
    ("input_qc_typo", _set(f"{P}.input_qc.max_lost_dayz", 0.2), ["max_lost_dayz", "['input_qc']"]),
    (
        "input_qc_fraction_over_one",
        _set(f"{P}.input_qc.max_lost_days", 1.5),
        ["1.5", "['max_lost_days']"],
    ),
    (
        "source_qc_typo",
        _set(f"{P}.sources.era5.qc.max_masked", 0.1),
        ["max_masked", "['era5']['qc']"],
    ),
    (
        "input_qc_range_one_bound",
        _set(f"{P}.input_qc.ranges", {"tp": [0]}),
        ["[0]", "['ranges']['tp']"],
    ),
    (
        "station_lost_fraction_negative",
        _set(f"{S}.stations.qc.max_lost_fraction", -0.1),
        ["-0.1", "['max_lost_fraction']"],
    ),
]


@pytest.mark.parametrize("case, mutate, expect", CASES, ids=[c[0] for c in CASES])
def test_config_fault_is_named(case, mutate, expect):
    msg = _error(mutate)
    for e in expect:
        assert e in msg, f"{case}: {e!r} not in\n{msg[-2000:]}"


# every section of a product whose keys are fixed (kind-dependent ones are closed by
# check_config, the others by the schema): an unknown key must be named, in both kinds
SECTIONS = [
    "grid",
    "period",
    "day_window",
    "synthetic",
    "static",
    "samples",
    "model",
    "cv",
    "stations",
    "stations.qc",
    "stations.evaluation",
    "input_qc",
    "downscale",
    "outputs",
    "report",
]


@pytest.mark.parametrize("product", [P, S])
@pytest.mark.parametrize("section", SECTIONS)
def test_unknown_key_in_any_section_is_named(product, section):
    msg = _error(_set(f"{product}.{section}.zzz_unknown", 1))
    assert "zzz_unknown" in msg, msg[-2000:]


@pytest.mark.parametrize(
    "name",
    [
        "config.yaml",
        "configs/test.yaml",
        "configs/qinghai_precip.yaml",
        "configs/china_so2.yaml",
        "configs/valparaiso_precip.yaml",
    ],
)
def test_shipped_configs_have_no_problem(name):
    cfg = yaml.safe_load((ROOT / name).read_text())
    _check(cfg)
    for prod in cfg["products"].values():
        kind = prod["kind"]
        other = {"precip": "lightgbm", "so2": "mpfm"}[kind]
        assert other not in prod["model"]  # defaults of the other kind are not filled in


def test_all_problems_are_reported_at_once():
    cfg = copy.deepcopy(DEMO)
    validate(cfg, str(SCHEMA_PATH))
    cfg["products"][P]["period"]["end"] = "2018-01-01"
    cfg["products"][S]["grid"]["north"] = 30.0
    with pytest.raises(ConfigError) as info:
        check_config(cfg, SCHEMA)
    assert f"{P}.period.end" in str(info.value) and f"{S}.grid.north" in str(info.value)


def test_workflow_stops_before_any_job_naming_the_key(tmp_path):
    """The same checks run in the workflow, before the DAG (one dry run)."""
    cfg = copy.deepcopy(DEMO)
    cfg["products"][P]["period"]["end"] = "2019-02-30"
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(cfg))
    out = subprocess.run(
        [SNAKEMAKE, "-n", "--cores", "1", "-s", str(ROOT / "Snakefile")]
        + ["--configfile", str(f), "--directory", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert f"config.products.{P}.period.end: '2019-02-30' is not a date" in text, text[-2000:]
    assert "Building DAG" not in text and not (tmp_path / "results").exists()


# ---------------------------------------------------------------------- recovery
_KILLED_WRITER = """
import sys, time
import numpy as np
from gridfuse import io
def blocks():
    yield slice(0, 1), np.zeros((1, 4, 6), "f4")
    print("written", flush=True)
    time.sleep(60)
    yield slice(1, 2), np.zeros((1, 4, 6), "f4")
io.write_netcdf_blocks(sys.argv[1], "precip", blocks(), times=np.array(
    ["2020-01-01", "2020-01-02"], dtype="datetime64[ns]"), lat=np.arange(4.0)[::-1],
    lon=np.arange(6.0))
"""


def test_killed_writer_leaves_no_output_and_its_temporary_is_removed(tmp_path):
    out = tmp_path / "product" / "2020.nc"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "written"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not out.exists()  # nothing that looks complete
    left = list(out.parent.iterdir())
    assert len(left) == 1 and ".2020.nc.gftmp." in left[0].name
    assert io.remove_stale_temporaries(tmp_path) == left
    assert list(out.parent.iterdir()) == []


def test_failed_writer_cleans_up_after_itself(tmp_path):
    def blocks():
        yield slice(0, 1), np.zeros((1, 2, 2), "f4")
        raise MemoryError("killed by the OOM guard")

    with pytest.raises(MemoryError):
        io.write_netcdf_blocks(
            tmp_path / "p.nc",
            "precip",
            blocks(),
            times=pd.date_range("2020-01-01", periods=2),
            lat=np.array([1.0, 0.0]),
            lon=np.array([0.0, 1.0]),
        )
    assert list(tmp_path.iterdir()) == []


def test_private_umask_is_respected(tmp_path):
    old = os.umask(0o077)
    try:
        p = io.write_geotiff(np.ones((2, 2), "f4"), tmp_path / "a.tif", grid=Grid(0, 0, 2, 2, 1))
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o600


def test_deleted_or_stale_model_is_rebuilt_with_its_products(test_workflow, tmp_path):
    """A kill while a model is retrained deletes it (Snakemake removes the incomplete
    output); the next run must rebuild it and everything made from it, not say
    "Nothing to be done" and keep the products of the old model.  A model older than an
    input that was rewritten with other content is retrained too (one dry run: the precip
    model deleted, the SO2 training table rewritten)."""
    import pandas as pd

    work = tmp_path / "run"
    shutil.copytree(test_workflow, work, symlinks=True, ignore=shutil.ignore_patterns("locks"))
    shutil.rmtree(work / "results" / "test_precip" / "model")
    table = work / "results" / "test_so2" / "samples" / "so2_stations.parquet"
    pd.read_parquet(table).iloc[:-1].to_parquet(table)  # other content, newer than the model
    out = subprocess.run(
        [SNAKEMAKE, "-n", "--cores", "1", "-s", str(ROOT / "Snakefile")]
        + ["--configfile", str(ROOT / "configs" / "test.yaml"), "--directory", str(work)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert "Nothing to be done" not in text
    rules = ("train_precip", "predict_precip", "cross_validate_precip")
    rules += ("train_so2", "predict_so2", "cross_validate_so2")
    for rule in rules:
        assert f"rule {rule}:" in text, f"{rule} not planned:\n{text[-3000:]}"
    assert f"Updated input files: {table.relative_to(work)}" in text
    # nothing upstream of the models is redone
    for rule in ("samples_so2", "samples_precip", "ingest_", "synthesize_"):
        assert f"rule {rule}" not in text, rule


# ---------------------------------------------------------------------- determinism
def test_rewriting_gives_identical_bytes(tmp_path):
    grid = Grid(100.0, 30.0, 100.3, 30.2, 0.1)
    da = grid.template(pd.date_range("2020-01-01", periods=3), name="so2")
    da.values[:] = np.arange(da.size, dtype="f4").reshape(da.shape)
    paths = []
    for run in ("a", "b"):
        paths.append(
            (
                io.write_netcdf(da, tmp_path / run / "x.nc", utc_start_hour=16),
                io.write_geotiff(da.isel(time=0), tmp_path / run / "x.tif", gz=True),
            )
        )
        time.sleep(1.1)
    for a, b in zip(*paths):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_a_rerun_job_writes_the_same_bytes(test_workflow, tmp_path):
    """Rerunning a finished job gives its file byte for byte: the SO2 met fields, 10
    variables regridded by dask with 2 threads (the writes once followed the threads)."""
    work = tmp_path / "run"
    shutil.copytree(test_workflow, work, symlinks=True, ignore=shutil.ignore_patterns("locks"))
    target = "results/test_so2/downscaled/era5_met/2018.nc"
    before = (work / target).read_bytes()
    out = subprocess.run(
        [SNAKEMAKE, "--cores", "2", "--rerun-triggers", "mtime", "-f", target]
        + ["-s", str(ROOT / "Snakefile"), "--configfile", str(ROOT / "configs" / "test.yaml")]
        + ["--directory", str(work)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert "1 of 1 steps (100%) done" in text, text[-3000:]
    assert (work / target).read_bytes() == before


_FULL_DISK = """
import resource, signal, sys
import numpy as np
import pandas as pd
from gridfuse import io
from gridfuse.grid import Grid
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))  # a nearly full disk
g = Grid(100.0, 30.0, 101.0, 31.0, 0.01)
da = g.template(pd.date_range("2020-01-01", periods=3), name="precip")
da.values[:] = np.random.default_rng(0).random(da.shape)
try:
    io.{call}
except OSError as err:
    print("ERROR", err)
"""


@pytest.mark.parametrize(
    "call",
    [
        "write_netcdf(da, sys.argv[1], utc_start_hour=0)",
        'write_netcdf_blocks(sys.argv[1], "precip", [(slice(0, 3), da.values)], '
        "times=da.time.values, lat=g.lat, lon=g.lon)",
    ],
    ids=["write_netcdf", "write_netcdf_blocks"],
)
def test_full_disk_error_names_the_file(tmp_path, call):
    out = tmp_path / "daily" / "2020.nc"
    proc = subprocess.run(
        [sys.executable, "-c", _FULL_DISK.replace("{call}", call), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert f"ERROR {out}: writing the NetCDF file failed" in proc.stdout, proc.stdout + proc.stderr
    assert not out.exists() and list(out.parent.iterdir()) == []
