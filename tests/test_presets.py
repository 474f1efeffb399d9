"""The full-period presets build their DAG on a placeholder raw-data tree.

``make_raw_tree`` writes, for a preset, the folders a real download produces (one per source x
year, in the provider's layout) with a few empty files named as the provider names them. Raw
inputs are declared per source x year folder, so a handful of files per folder is enough for
``snakemake -n``; the readers' file-name patterns are checked on the same names.
The dry-run time is printed (goal: at most 15 s per preset; reported, not asserted).
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from gridfuse.sources.tropomi import l2_filename, parse_l2_filename
from gridfuse.stations.cnemc import FILE_PATTERN as CNEMC_PATTERN

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
PRESETS = {
    "qinghai_precip": ROOT / "configs" / "qinghai_precip.yaml",
    "china_so2": ROOT / "configs" / "china_so2.yaml",
}
# Coverage of the real sources, as common.smk knows it (first year with data).
FIRST_YEAR = {"gsmap": 1998, "imerg": 1998, "cmorph": 1998, "gldas": 2000, "tropomi": 2018}


# ------------------------------------------------------------------ provider file names
def _era5(year, prefix="era5_tp"):
    return [f"{prefix}_{year}{m:02d}.nc" for m in range(1, 13)]


def _gsmap(year):
    # /standard/v8/hourly_G/YYYY/MM/DD/; v8.0000.1 = the reprocessed periods
    ver = "1" if year < 2000 or 2015 <= year <= 2021 else "0"
    days = [dt.date(year, 1, 1), dt.date(year, 12, 31)]
    return [
        f"{d:%m}/{d:%d}/gsmap_gauge.{d:%Y%m%d}.{h:02d}00.v8.0000.{ver}.dat.gz"
        for d in days
        for h in (0, 1, 23)
    ]


def _gldas(year):
    return [f"001/GLDAS_NOAH025_3H.A{year}0101.{h:02d}00.021.nc4" for h in range(0, 24, 3)]


def _imerg(year):
    out = []
    for k in range(4):
        s = dt.datetime(year, 1, 1) + dt.timedelta(minutes=30 * k)
        e = s + dt.timedelta(minutes=29, seconds=59)
        out.append(
            f"001/3B-HHR.MS.MRG.3IMERG.{s:%Y%m%d}-S{s:%H%M%S}-E{e:%H%M%S}.{30 * k:04d}.V07B.HDF5"
        )
    return out


def _cmorph(year):
    return [f"01/01/CMORPH_V1.0_ADJ_8km-30min_{year}0101{h:02d}.nc" for h in range(4)]


def _tropomi(year):
    start = dt.datetime(year, 6, 1, 4, 36, 55) if year == 2018 else dt.datetime(year, 1, 1, 3, 2)
    out = []
    for k in range(3):
        s = start + dt.timedelta(minutes=101 * k)
        name = l2_filename(s, s + dt.timedelta(minutes=101), 3000 + 5200 * (year - 2018) + k)
        out.append(f"{s.timetuple().tm_yday:03d}/{name}")
    return out


RAW_FILES = {
    "era5": _era5,
    "era5_met": lambda y: _era5(y, "era5_met"),
    "gsmap_hourly": _gsmap,
    "gldas": _gldas,
    "imerg_hhr": _imerg,
    "cmorph": _cmorph,
    "tropomi_l2": _tropomi,
}


def covers(source: str, src_cfg: dict, year: int) -> bool:
    first = max(src_cfg.get("first_year", 1900), FIRST_YEAR.get(source, 1900))
    return first <= year <= src_cfg.get("last_year", 2100)


def make_raw_tree(cfg: dict, root: Path) -> dict[str, int]:
    """Write the placeholder raw-data tree of every product in ``cfg`` under ``root``.

    Returns the number of files written per source (and ``stations``, ``static``).
    """
    counts: dict[str, int] = {}

    def touch(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")

    for product in cfg["products"].values():
        start = dt.date.fromisoformat(product["period"]["start"])
        end = dt.date.fromisoformat(product["period"]["end"])
        for source, sc in product["sources"].items():
            n = 0
            for year in range(start.year, end.year + 1):
                if not covers(source, sc, year):
                    continue
                for name in RAW_FILES[sc["format"]](year):
                    touch(root / sc["path"].format(year=year) / name)
                    n += 1
            counts[source] = n
        st = product["stations"]
        folder = root / st["path"]
        months = pd_months(start, end)
        if st["format"] == "cma_daily":
            names = [f"SURF_CLI_CHN_MUL_DAY-PRE-13011-{m}.TXT" for m in months]
        else:
            names = [f"china_sites_{m}01.csv" for m in months]
        for name in names:
            touch(folder / name)
        if st.get("table"):
            touch(root / st["table"])
        counts["stations"] = len(names)
        for layer in product.get("static", {}).values():
            touch(root / (layer["path"] if isinstance(layer, dict) else layer))
        counts["static"] = len(product.get("static", {}))
        if product.get("mask", {}).get("path"):
            touch(root / product["mask"]["path"])
    return counts


def pd_months(start: dt.date, end: dt.date) -> list[str]:
    """YYYYMM of every month from start to end."""
    out, y, m = [], start.year, start.month
    while (y, m) <= (end.year, end.month):
        out.append(f"{y}{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


# ------------------------------------------------------------------ helpers
def load(preset: str) -> dict:
    return yaml.safe_load(PRESETS[preset].read_text())


def dry_run(
    workdir: Path, configfile: Path, *extra: str
) -> tuple[subprocess.CompletedProcess, float]:
    cmd = [
        str(SNAKEMAKE),
        "-n",
        "--cores",
        "64",  # so that jobs show their declared threads (capped at --cores)
        "--directory",
        str(workdir),
        "-s",
        str(ROOT / "Snakefile"),
        "--configfile",
        str(configfile),
        *extra,
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    return proc, time.perf_counter() - t0


def job_outputs(stdout: str) -> list[str]:
    """Output files of every job a dry run lists."""
    out = []
    for m in re.finditer(r"^\s+output: (.+)$", stdout, flags=re.M):
        out += [p.strip() for p in m.group(1).split(",")]
    return out


def job_counts(stdout: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: rule -> count."""
    counts = {}
    table = stdout.split("Job stats:", 1)[-1]
    for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, flags=re.M):
        if m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts


@pytest.fixture(scope="module")
def dry(tmp_path_factory):
    """Per preset: its placeholder tree, and one dry run on it (proc, seconds, file counts)."""
    out = {}
    for preset in PRESETS:
        root = tmp_path_factory.mktemp(preset)
        counts = make_raw_tree(load(preset), root)
        proc, seconds = dry_run(root, PRESETS[preset])
        out[preset] = (root, proc, seconds, counts)
    return out


# ------------------------------------------------------------------ tests
def test_placeholder_names_match_the_readers(tmp_path):
    """The generator's names are the ones the readers find (with their own discovery)."""
    from gridfuse.sources import cmorph, gldas, gsmap, imerg
    from gridfuse.sources._steps import scan_files
    from gridfuse.sources.era5 import find_era5_files
    from gridfuse.stations.cma import DAILY_PATTERN as CMA_PATTERN

    patterns = {
        "gsmap_hourly": gsmap.HOURLY_PATTERN,
        "gldas": gldas.PATTERN,
        "imerg_hhr": imerg.HHR_PATTERN,
        "cmorph": cmorph.PATTERN,
    }
    for fmt, pattern in patterns.items():
        folder = tmp_path / fmt / "2005"
        names = RAW_FILES[fmt](2005)
        for name in names:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(b"")
        found = scan_files([folder], pattern, lambda m: [m.group(0)])
        assert len(found) == len(names), (fmt, names)
    for name in _tropomi(2019):
        assert parse_l2_filename(name)["start"].year == 2019
    era5 = tmp_path / "era5" / "2005"
    era5.mkdir(parents=True)
    for name in _era5(2005):
        (era5 / name).write_bytes(b"")
    assert len(find_era5_files([era5])) == 12
    assert CNEMC_PATTERN.search("china_sites_20180321.csv")
    assert CMA_PATTERN.search("SURF_CLI_CHN_MUL_DAY-PRE-13011-199001.TXT")
    assert _gsmap(1999)[0] == "01/01/gsmap_gauge.19990101.0000.v8.0000.1.dat.gz"
    assert _imerg(2005)[1] == ("001/3B-HHR.MS.MRG.3IMERG.20050101-S003000-E005959.0030.V07B.HDF5")
    assert pd_months(dt.date(2018, 11, 5), dt.date(2019, 2, 1)) == [
        "201811",
        "201812",
        "201901",
        "201902",
    ]


def test_tree_covers_only_the_source_years():
    cfg = load("qinghai_precip")
    assert cfg["products"]["qinghai_precip"]["period"] == {
        "start": "1990-01-01",
        "end": "2023-12-31",
    }
    sc = cfg["products"]["qinghai_precip"]["sources"]
    assert sorted(sc) == ["cmorph", "era5", "gldas", "gsmap", "imerg"]
    years = {s: [y for y in range(1990, 2024) if covers(s, sc[s], y)] for s in sc}
    assert years["era5"][0] == 1990 and len(years["era5"]) == 34
    assert years["gsmap"][0] == 1998 and years["gldas"][0] == 2000
    assert sorted(load("china_so2")["products"]["china_so2"]["sources"]) == ["era5_met", "tropomi"]


@pytest.mark.parametrize("preset", list(PRESETS))
def test_preset_dry_run(preset, dry):
    """`snakemake -n` builds the whole-period DAG; jobs exist for every source x year."""
    root, proc, seconds, counts = dry[preset]
    print(f"\n{preset}: snakemake -n took {seconds:.1f} s ({counts})")
    assert proc.returncode == 0, proc.stderr[-3000:]
    cfg = load(preset)["products"][preset]
    start = dt.date.fromisoformat(cfg["period"]["start"]).year
    end = dt.date.fromisoformat(cfg["period"]["end"]).year
    outputs = job_outputs(proc.stdout)
    stats = job_counts(proc.stdout)
    print(f"{preset}: {sum(stats.values())} jobs {stats}")
    for source in cfg["sources"]:
        daily = [p for p in outputs if re.search(rf"/daily/{source}/\d{{4}}\.nc$", p)]
        assert daily, f"{preset}: no per-year daily/{source} outputs in the DAG"
        got = sorted(int(Path(p).stem) for p in daily)
        # every year of the period has a daily file (absent years are explicit markers)
        assert got == list(range(start, end + 1)), (source, got)


def test_years_before_coverage_need_no_raw_data(dry):
    """1990-1997 have no GSMaP folder and still get a (marker-producing) ingest job."""
    root, proc, _, _ = dry["qinghai_precip"]
    assert not (root / "data/qinghai/gsmap/hourly_G/1997").exists()
    assert (root / "data/qinghai/gsmap/hourly_G/1998").is_dir()
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = dry_run_jobs(proc.stdout)
    gsmap_1995 = [j for j in jobs if "results/qinghai_precip/daily/gsmap/1995.nc" in j["output"]]
    assert len(gsmap_1995) == 1, "no ingest job for daily/gsmap/1995.nc in the DAG"
    assert gsmap_1995[0]["rule"] == "ingest_gsmap"
    assert "hourly_G/1995" not in gsmap_1995[0].get("input", ""), gsmap_1995[0]
    era5_1995 = [j for j in jobs if "results/qinghai_precip/daily/era5/1995.nc" in j["output"]]
    assert "data/qinghai/era5/1995" in era5_1995[0]["input"], era5_1995[0]


def test_full_presets_ask_for_more_than_the_test_config(dry, tmp_path):
    """Every job declares runtime; per rule, the full presets request at least what the tiny
    test config does, and their per-year jobs more memory or time (they scale with the work).

    Prints the largest request per rule (for docs/cluster.md)."""
    tiny, _ = dry_run(tmp_path, ROOT / "configs" / "test.yaml")
    assert tiny.returncode == 0, tiny.stderr[-3000:]
    small = rule_requests(dry_run_jobs(tiny.stdout))
    for preset in PRESETS:
        big = rule_requests(dry_run_jobs(dry[preset][1].stdout))
        print(f"\n{preset}: rule, jobs, max threads, max mem_mb, max runtime (min) [test config]")
        for rule, r in sorted(big.items()):
            s = small.get(rule, {})
            print(
                f"  {rule:24s} {r['jobs']:4d} {r['threads']:3d} {r['mem_mb']:8d} {r['runtime']:6d}"
                f"   [{s.get('mem_mb', '-')}, {s.get('runtime', '-')}]"
            )
        for rule, r in big.items():
            if rule == "all":
                continue
            assert r["runtime"] > 0, f"{preset}: rule {rule} declares no runtime"
            if rule in small:
                assert r["mem_mb"] >= small[rule]["mem_mb"], (preset, rule)
                assert r["runtime"] >= small[rule]["runtime"], (preset, rule)
            # a job fits a common 64 GB node and a one-day partition limit
            assert r["mem_mb"] <= 64_000, (preset, rule, r)
            assert r["runtime"] <= 24 * 60, (preset, rule, r)
    for rule, r in small.items():  # the test config asks for little
        assert r["mem_mb"] <= 4000 and r["runtime"] <= 60, (rule, r)


# Ceilings and floors of the full presets' requests (per job, MB / minutes / threads), from
# what the jobs hold: a station table, one 8-day block of the grid, the patches, ...
BOUNDS = {
    "qinghai_precip": {
        "ingest_stations": {"mem_mb": (500, 8000)},
        "ingest_imerg": {"mem_mb": (700, 4000), "runtime": (20, 240), "threads": (4, 8)},
        "ingest_era5": {"mem_mb": (500, 4000)},
        # patches.nc: 48 gauges x 12,418 days x 15 x 15 x 8 float32 = 4.3 GB
        "train_precip": {"mem_mb": (4300, 24_000), "threads": (8, 8)},
        "cross_validate_precip": {"mem_mb": (4300, 32_000), "threads": (8, 8)},
    },
    "china_so2": {
        "ingest_stations": {"mem_mb": (500, 8000)},
        # one 8-day block of 11 fields (7.9 GB) + 16 tiles' feature matrices side by side
        # (256 x 256 cells x 8 days x 153 columns float64 = 0.64 GB each)
        "predict_so2": {"mem_mb": (18_000, 32_000), "runtime": (120, 24 * 60)},
        "train_so2": {"mem_mb": (2000, 64_000), "threads": (8, 64)},
        "cross_validate_fold_so2": {"mem_mb": (4000, 64_000), "runtime": (30, 24 * 60)},
        "ablation_variant_so2": {"mem_mb": (2000, 64_000), "threads": (8, 64)},
    },
}


@pytest.mark.parametrize("preset", list(PRESETS))
def test_requests_within_bounds(preset, dry):
    big = rule_requests(dry_run_jobs(dry[preset][1].stdout))
    for rule, bounds in BOUNDS[preset].items():
        for key, (lo, hi) in bounds.items():
            assert lo <= big[rule][key] <= hi, (preset, rule, key, big[rule][key], (lo, hi))


def _rule_resources(workdir: Path, configfile: Path, jobs: list[dict], attempt: int):
    """Per job of ``jobs``: (rule, mem_mb, runtime) as the rules compute them at ``attempt``."""
    import inspect
    from types import SimpleNamespace

    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (
        ConfigSettings,
        OutputSettings,
        Quietness,
        ResourceSettings,
    )

    out = []
    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        wf = api.workflow(
            resource_settings=ResourceSettings(cores=64),
            config_settings=ConfigSettings(configfiles=[configfile]),
            snakefile=ROOT / "Snakefile",
            workdir=workdir,
        )._workflow
        for job in jobs:
            wc = SimpleNamespace(**dict(re.findall(r"(\w+)=([^,\s]+)", job.get("wildcards", ""))))
            got = {}
            for key in ("mem_mb", "runtime"):
                res = wf.get_rule(job["rule"]).resources[key]
                if not callable(res._evaluator):
                    got[key] = res.value
                    continue
                f = res._evaluator
                names = inspect.signature(f).parameters
                kw = {"threads": int(job.get("threads", 1)), "attempt": attempt}
                got[key] = f(wc, **{k: v for k, v in kw.items() if k in names})
            out.append((job["rule"], got["mem_mb"], got["runtime"]))
    return out


@pytest.mark.parametrize("preset", list(PRESETS))
def test_requests_grow_on_retry(preset, dry, monkeypatch):
    """Every rule computes the dry run's request at attempt 1 and asks for more memory (and
    more time, below the one-day cap) at attempt 2."""
    root, proc, _, _ = dry[preset]
    monkeypatch.chdir(root)
    jobs = [j for j in dry_run_jobs(proc.stdout) if j["rule"] != "all"]
    one = {}
    for j in jobs:  # one job per rule: the largest request
        res = dict(re.findall(r"(\w+)=([^,]+)", j.get("resources", "")))
        if int(res["mem_mb"]) >= int(one.get(j["rule"], {}).get("mem", -1)):
            one[j["rule"]] = {**j, "mem": res["mem_mb"], "rt": res["runtime"]}
    picked = list(one.values())
    first = _rule_resources(root, PRESETS[preset], picked, 1)
    second = _rule_resources(root, PRESETS[preset], picked, 2)
    for j, (rule, mem1, rt1), (_, mem2, rt2) in zip(picked, first, second):
        assert (int(mem1), int(rt1)) == (int(j["mem"]), int(j["rt"])), (preset, rule)
        assert mem2 > mem1, (preset, rule, mem1, mem2)
        assert rt2 > rt1 or rt1 == 24 * 60, (preset, rule, rt1, rt2)


def dry_run_jobs(stdout: str) -> list[dict]:
    """The jobs of a dry run: rule, input, output, threads, resources (as printed)."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:\n)", stdout):
        m = re.match(r"(?:local)?rule (\w+):\n", block)
        if not m:
            continue
        job = {"rule": m.group(1), "input": "", "output": ""}
        for key, value in re.findall(r"^\s+(\w+): (.*)$", block, flags=re.M):
            job.setdefault(key, value)
            if key in ("input", "output"):
                job[key] = value
        jobs.append(job)
    return jobs


def rule_requests(jobs: list[dict]) -> dict[str, dict]:
    """Per rule: job count and the largest threads, mem_mb and runtime requested."""
    out: dict[str, dict] = {}
    for j in jobs:
        res = dict(re.findall(r"(\w+)=([^,]+)", j.get("resources", "")))
        r = out.setdefault(j["rule"], {"jobs": 0, "threads": 1, "mem_mb": 0, "runtime": 0})
        r["jobs"] += 1
        r["threads"] = max(r["threads"], int(j.get("threads", 1)))
        for key in ("mem_mb", "runtime"):
            if res.get(key, "").isdigit():
                r[key] = max(r[key], int(res[key]))
    return out


@pytest.mark.parametrize("preset", list(PRESETS))
def test_plan_counts_match_the_dry_run(preset, dry, tmp_path):
    """`gridfuse plan` (no raw data) lists the jobs `snakemake -n` lists on the raw tree."""
    import json

    proc = subprocess.run(
        [
            str(SNAKEMAKE.with_name("gridfuse")),
            "plan",
            "--configfile",
            str(PRESETS[preset]),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    plan = json.loads(proc.stdout)
    stats = job_counts(dry[preset][1].stdout)
    stats.pop("all", None)
    assert {r["rule"]: r["jobs"] for r in plan["rules"]} == stats
    print(
        f"\n{preset}: {plan['total_cpu_hours']:.0f} CPU-h, longest job {plan['max_job_hours']:.1f} h"
    )


@pytest.mark.parametrize(
    "preset, missing, url",
    [
        ("qinghai_precip", "data/qinghai/imerg/GPM_3IMERGHH.07/2005", "GPM_3IMERGHH.07"),
        ("china_so2", "data/china/tropomi/2019", "S5P_L2__SO2____HiR"),
    ],
)
def test_missing_folder_is_named(preset, missing, url, tmp_path):
    """A preset pointed at a tree lacking one year's folder stops, naming folder and origin."""
    make_raw_tree(load(preset), tmp_path)
    for p in sorted((tmp_path / missing).rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    (tmp_path / missing).rmdir()
    proc, _ = dry_run(tmp_path, PRESETS[preset])
    assert proc.returncode != 0
    err = proc.stdout + proc.stderr
    assert missing in err, err[-2000:]
    assert url in err, err[-2000:]
