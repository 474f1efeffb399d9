"""The cost model (gridfuse.cost): sizes, pricing, requests, fitting, benchmark records."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from gridfuse import cost

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def _products(name: str) -> dict:
    cfg = yaml.safe_load((ROOT / name).read_text())
    validate(cfg, str(SCHEMA))
    return cfg["products"]


def _k(**rules) -> cost.Constants:
    kernels = {
        n: {"value": 1e-9}
        for n in (
            "lgbm_fit_s_per_row_round_col",
            "lgbm_fit_s_per_round_col",
            "lgbm_predict_s_per_row_round",
            "lleaves_predict_s_per_row_round",
            "lleaves_compile_s_per_tree",
            "lleaves_compile_mb_per_tree",
            "rf_fit_s_per_row_tree_col",
            "lstm_fit_s_per_gmac",
            "so2_features_s_per_value",
            "mpfm_predict_s_per_gmac",
            "mpfm_train_s_per_gmac",
            "product_read_s_per_cell_day",
        )
    }
    return cost.Constants({"kernels": kernels, "rules": rules})


def test_product_sizes_of_the_presets():
    q = cost.Product(_products("configs/qinghai_precip.yaml")["qinghai_precip"])
    assert (q.nlat, q.nlon, q.cells) == (850, 1390, 850 * 1390)
    assert q.days == 12_418 and q.all_years[0] == 1990 and q.all_years[-1] == 2023
    assert q.days_in_year(2020) == 366 and q.days_in_year(2019) == 365
    c = cost.Product(_products("configs/china_so2.yaml")["china_so2"])
    assert (c.nlat, c.nlon) == (3600, 6200)
    assert c.days == 1017
    assert c.days_in_year(2018) == 11 + 30 + 31 + 30 + 31 + 31 + 30 + 31 + 30 + 31  # Mar 21 on
    assert c.stations == cost.REGION_STATIONS["so2"]


def test_format_facts_come_from_the_registry():
    assert cost.files_per_year("imerg_hhr", 366) == 17_568
    assert cost.files_per_year("gsmap_hourly", 365) == 8760
    assert cost.files_per_year("cmorph", 365) == 8760  # hourly files of two half-hours
    assert cost.files_per_year("gldas", 365) == 2920
    assert 12 <= cost.files_per_year("era5", 365) <= 13 and cost.files_per_year("era5", 3) == 1
    assert cost.steps_per_day("imerg_hhr") == 48 and cost.format_variables("era5_met") == 10
    p = cost.Product(_products("configs/qinghai_precip.yaml")["qinghai_precip"])
    assert not p.covers("gldas", 1999) and p.covers("gldas", 2000) and p.covers("era5", 1990)


def test_macs_of_a_small_network_by_hand():
    """cnn3d, 3 channels, window 3, one Conv3d of 2 filters, head 2: counted by hand."""
    sizes = {"conv_channels": [2], "hidden": [2], "head_hidden": 2, "attention_heads": 1}
    macs, radius = cost.mpfm_macs_per_cell_day(sizes, 3, 3, net="cnn3d")
    conv = 2 * 3 * 27 * 3  # weights x 3 days
    head = 2 * 2 + 2 * 1  # two 1x1 convolutions, once
    assert macs == conv + head
    assert radius == 1
    # the full model adds attention and the ConvLSTM, each direction up to the centre day
    full, _ = cost.mpfm_macs_per_cell_day(sizes, 3, 3, net="mpfm")
    attention = (2 * 6 + 2 * 2) * 3 + 2 * 3 * 3 * 2
    lstm = 2 * (4 * 8 * 9) * 2  # two directions x gate conv (2+2 -> 8) x 2 steps
    head_full = (4 + 2) * 2 + 2  # ConvLSTM out (2 x 2) + skip (2) -> 2 -> 1
    assert full == conv + attention + lstm + head_full


def test_price_and_requests():
    k = _k(r={"fixed_s": 10.0, "time": {"u": 2.0}, "fixed_mb": 100.0, "mem": {"a_mb": 3.0}})
    c = cost.price(cost.Work("r", threads=4, time={"u": 20.0}, mem={"a_mb": 50.0}), k)
    assert c.cpu_s == pytest.approx(50.0) and c.wall_s == pytest.approx(20.0)
    assert c.peak_mb == pytest.approx(250.0)
    assert c.mem_mb() == math.ceil(250 * cost.MEM_MARGIN + cost.MEM_SLACK_MB)
    assert c.mem_mb(2) == math.ceil((250 * cost.MEM_MARGIN + cost.MEM_SLACK_MB) * 1.5)
    assert c.runtime_min() == cost.RUNTIME_FLOOR_MIN  # 40 s x 2 is under the floor
    long = cost.price(cost.Work("r", threads=1, time={"u": 1e6}), k)
    assert long.runtime_min() == cost.RUNTIME_CAP_MIN and long.runtime_min(2) == long.runtime_min()
    mid = cost.price(cost.Work("r", threads=1, time={"u": 895.0}), k)  # 1800 s
    assert mid.runtime_min() == 60 and mid.runtime_min(2) == 90
    # a scheduler capping a 4-thread job at 1 thread: the time request follows
    par = cost.price(cost.Work("r", threads=4, time={"u": 1790.0}), k)  # 10 + 3580 s
    assert par.wall_s == pytest.approx(10 + 895) and par.wall_at(1) == pytest.approx(3590)
    assert par.runtime_min(threads=1) == math.ceil(3590 * 2 / 60) > par.runtime_min()


def test_kernel_and_rule_terms_and_fallback():
    k = _k(
        a={"fixed_s": 1.0, "time": {"g": 3.0}},
        b={"fixed_s": 0.0},
        downscale={"fixed_s": 5.0},
    )
    w = cost.Work("b", time={"k:lstm_fit_s_per_gmac": 2e9, "r:a:g": 10.0})
    assert cost.price(w, k).cpu_s == pytest.approx(2.0 + 30.0)
    assert k.rule("downscale.era5_met") == {"fixed_s": 5.0}
    with pytest.raises(KeyError, match="no cost constants for rule 'nope'"):
        k.rule("nope")
    # a format without its own measurement: the hungriest measured format of the rule
    k = _k(**{"ingest.era5": {"fixed_mb": 500.0}, "ingest.gldas": {"fixed_mb": 700.0}})
    assert k.rule("ingest.geotiff_daily") == {"fixed_mb": 700.0, "proxy": "ingest.gldas"}
    with pytest.raises(KeyError, match="no kernel constant 'x'"):
        k.kernel("x")


def test_work_follows_coverage_and_sizes():
    p = _products("configs/qinghai_precip.yaml")["qinghai_precip"]
    covers = lambda s, y: not (s == "gsmap" and y < 1998)  # noqa: E731
    w = cost.work("ingest_gsmap", p, {"product": "qinghai_precip", "year": "1995"}, covers=covers)
    assert w.key == "ingest.absent" and not w.time
    w = cost.work("ingest_imerg", p, {"product": "qinghai_precip", "year": "2020"}, covers=covers)
    assert w.key == "ingest.imerg_hhr" and w.time["files"] == 17_568 and 2 <= w.threads <= 8
    # a year's product uses the sources covering it: 1995 has 1 (era5) + 3 static channels
    only_era5 = lambda s, y: s == "era5" or y >= 2000  # noqa: E731
    w95 = cost.work("predict_precip", p, {"product": "q", "year": "1995"}, covers=only_era5)
    w05 = cost.work("predict_precip", p, {"product": "q", "year": "2005"}, covers=only_era5)
    assert w95.mem["engine_mb"] < w05.mem["engine_mb"]
    gmac = "k:mpfm_predict_s_per_gmac"
    assert w95.time[gmac] < w05.time[gmac]
    with pytest.raises(cost.NoCostModel):
        cost.work("not_a_rule", p, {"product": "q"})


def test_so2_cv_folds_follow_the_schemes():
    p = copy.deepcopy(_products("configs/china_so2.yaml")["china_so2"])
    p["cv"]["regions"] = {"bth": [113, 36, 120, 42], "prd": [111, 21, 116, 24]}
    p["cv"]["so2_schemes"] = ["region", "site_cv"]
    from gridfuse.models.so2 import cv_plan

    assert len(cv_plan(["region", "site_cv"], p["cv"], [])) == 2 + 10
    # one job per fold: a region fold trains on (up to) every station-day, a site_cv fold 9/10
    wr = cost.work(
        "cross_validate_fold_so2", p, {"product": "c", "scheme": "region", "fold": "bth"}
    )
    ws = cost.work("cross_validate_fold_so2", p, {"product": "c", "scheme": "site_cv", "fold": "3"})
    lgbm = "k:lgbm_fit_s_per_row_round_col"
    # the preset refits LightGBM in region, LightGBM + plain LightGBM in site_cv
    assert p["cv"]["so2_models"]["region"] == ["lightgbm"]
    assert p["cv"]["so2_models"]["site_cv"] == ["lightgbm", "lightgbm_plain"]
    # plain LightGBM on the plain features' columns (23 + 10 of the preset's 143 + 10)
    c = cost.Product(p)
    plain = cost._so2_model_columns(c, "lightgbm_plain") / cost._so2_columns(c)
    assert cost._so2_model_columns(c, "lightgbm_plain") == 32 and cost._so2_columns(c) == 153
    assert ws.time[lgbm] == pytest.approx((1 + plain) * 0.9 * wr.time[lgbm])
    assert "k:rf_fit_s_per_row_tree_col" not in ws.time
    wb = cost.work(
        "cross_validate_fold_so2", p, {"product": "c", "scheme": "block_cv", "fold": "0"}
    )
    assert {"k:rf_fit_s_per_row_tree_col", "k:lstm_fit_s_per_gmac"} <= set(wb.time)


def test_ingest_rules_are_priced_by_the_source_format():
    """One ingest_<source> rule per source key, whatever the key: an SO2 source keyed
    differently is priced by its format's function, on its own grid and coverage."""
    p = copy.deepcopy(_products("configs/china_so2.yaml")["china_so2"])
    p["sources"]["s5p"] = p["sources"].pop("tropomi")
    p["sources"]["met"] = p["sources"].pop("era5_met")
    wc = {"product": "china_so2", "year": "2019"}
    assert cost.rule_key("ingest_s5p", p) == "ingest_tropomi"
    assert cost.rule_key("ingest_met", p) == "ingest_era5_met"
    assert cost.work("ingest_s5p", p, wc).key == "ingest_tropomi"
    assert cost.work("ingest_met", p, wc).key == "ingest_era5_met"
    gone = cost.work("ingest_s5p", p, wc, covers=lambda s, y: s != "s5p")
    assert gone.key == "ingest.absent"
    assert cost.work("report_input_qc", p, wc).key == "report_small"
    with pytest.raises(cost.NoCostModel, match="ingest_imerg"):
        cost.rule_key("ingest_imerg", p)  # no source keyed imerg in this product
    with pytest.raises(cost.NoCostModel, match="ingest_tropomi"):
        cost.rule_key("ingest_tropomi", p)  # nor one keyed tropomi: no rule of that name


def test_every_rule_is_priced_and_requests_cover_the_peak():
    """Every rule of the test config has a cost function; requests exceed peaks."""
    k = _k(default={"fixed_s": 5.0, "fixed_mb": 200.0, "mem": {}})
    for product, cfg in _products("configs/test.yaml").items():
        for rule in cost.RULES:
            if ("so2" in rule) != (cfg["kind"] == "so2") and rule.startswith(("so2", "train")):
                continue
            wc = {"product": product, "year": "2019", "source": next(iter(cfg["sources"]))}
            wc |= {"net": "mpfm", "set": "-".join(cfg["sources"])}
            try:
                w = cost.work(rule, cfg, wc)
            except KeyError:
                continue  # a rule of the other kind reading keys this kind lacks
            c = cost.price(w, k)
            assert c.mem_mb() > c.peak_mb > 0 and c.runtime_min() >= cost.RUNTIME_FLOOR_MIN


def test_fit_recovers_known_coefficients():
    truth = {"fixed_s": 4.0, "time": {"u": 0.5, "v": 2.0}, "fixed_mb": 150.0, "mem": {"a_mb": 2.5}}
    k = _k()
    jobs = []
    for u, v, a in [(1, 0, 10), (10, 1, 40), (40, 3, 100), (100, 20, 400), (5, 50, 5)]:
        w = cost.Work("r", time={"u": u, "v": v, "k:lstm_fit_s_per_gmac": 1e9}, mem={"a_mb": a})
        cpu = 4.0 + 0.5 * u + 2.0 * v + 1.0
        rss = 150.0 + 2.5 * a
        jobs.append((w, cpu, rss))
    got = cost.fit_rule_constants(jobs, k)["r"]
    assert got["fixed_s"] == pytest.approx(truth["fixed_s"], abs=1e-6)
    assert got["time"]["u"] == pytest.approx(0.5) and got["time"]["v"] == pytest.approx(2.0)
    assert got["fixed_mb"] == pytest.approx(150.0, abs=0.1)
    assert got["mem"]["a_mb"] == pytest.approx(2.5)
    assert got["n"] == 5 and got["cpu_rel_err"] < 1e-6
    # arrays are held at least once, even when the measured peaks do not show them
    flat = [(cost.Work("m", mem={"a_mb": a}), 1.0, 300.0) for a in (1, 2, 3)]
    assert cost.fit_rule_constants(flat, k)["m"]["mem"]["a_mb"] == 1.0
    # a kernel's memory (k: term) is known: only the rest is fitted (compile_so2's MB/tree)
    k2 = cost.Constants({"kernels": {"lleaves_compile_mb_per_tree": {"value": 0.5}}})
    trees = [
        (cost.Work("c", mem={"k:lleaves_compile_mb_per_tree": n}), 1.0, 200 + 0.5 * n)
        for n in (100, 400)
    ]
    got = cost.fit_rule_constants(trees, k2)["c"]
    assert got["fixed_mb"] == pytest.approx(200.0) and got["rss_rel_err"] < 1e-6


def test_read_benchmarks_extended_tsv(tmp_path):
    folder = tmp_path / "results" / "p" / "benchmarks"
    folder.mkdir(parents=True)
    head = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time"
    head += "\tjobid\trule_name\twildcards\tparams\tthreads\tcpu_usage\tresources\tinput_size_mb"
    row = "12.5\t0:00:12\t456.7\t1\t1\t1\t0\t0\t80\t9.75\t3\tdownscale\t"
    row += "{'product': 'p', 'source': 'era5', 'year': '2019'}\t{}\t2\t1.2\t"
    row += "{'mem_mb': 900, 'runtime': 10}\t{}"
    (folder / "downscale_era5_2019.tsv").write_text(head + "\n" + row + "\n")
    (folder / "plain.tsv").write_text("s\tmax_rss\n1\t2\n")  # not extended: skipped
    (recs,) = cost.read_benchmarks(tmp_path)
    assert recs["rule"] == "downscale" and recs["wildcards"]["year"] == "2019"
    assert recs["cpu_s"] == 9.75 and recs["max_rss"] == 456.7 and recs["threads"] == 2
    assert recs["resources"]["mem_mb"] == 900


def test_packaged_constants_are_complete():
    """The shipped constants say when/where they were measured and price every rule."""
    data = json.loads(cost.CONSTANTS_FILE.read_text())
    for key in ("when", "host", "cpu", "command"):
        assert data["measured"].get(key), key
    k = cost.load_constants(cost.CONSTANTS_FILE)
    for name in (
        "lgbm_fit_s_per_row_round_col",
        "lgbm_fit_s_per_round_col",
        "lgbm_predict_s_per_row_round",
        "lleaves_predict_s_per_row_round",
        "lleaves_compile_s_per_tree",
        "lleaves_compile_mb_per_tree",
        "rf_fit_s_per_row_tree_col",
        "lstm_fit_s_per_gmac",
        "so2_features_s_per_value",
        "mpfm_predict_s_per_gmac",
        "mpfm_train_s_per_gmac",
        "product_read_s_per_cell_day",
    ):
        assert 0 < k.kernel(name) < 10, name  # seconds per unit: well below 10 on any CPU
    # the compiled trees were measured against Booster.predict in the same run, and agreed
    ll = data["kernels"]["lleaves_predict_s_per_row_round"]
    assert ll["ratio_to_booster"] > 1 and ll["max_rel_diff"] <= 1e-6
    # a format whose real files are global is priced at its measured per-file read
    from gridfuse.sources.registry import FORMATS

    global_formats = [n for n, f in FORMATS.items() if f.global_files]
    assert global_formats
    for name in global_formats:
        assert 0 < k.kernel(f"ingest_s_per_file.{name}") < 600, name
    for product, cfg in _products("configs/test.yaml").items():
        c = cost.estimate(
            "downscale",
            cfg,
            {"product": product, "year": "2019", "source": next(iter(cfg["sources"]))},
            constants=k,
        )
        assert c.peak_mb > 100


def test_requests_cover_measured_peaks_of_the_test_workflow(test_workflow):
    """Every benchmarked job of the shared tiny run peaked below its memory request (the
    request the cost model computed for it, as recorded in its benchmark file)."""
    recs = cost.read_benchmarks(test_workflow / "results")
    assert len(recs) > 40, "the test run wrote too few extended benchmark records"
    products = _products("configs/test.yaml")
    over = []
    for r in recs:
        req = int(r["resources"]["mem_mb"])
        c = cost.estimate(r["rule"], products[r["wildcards"]["product"]], r["wildcards"])
        assert req == c.mem_mb(), (r["rule"], req, c.mem_mb())
        if not r["max_rss"] <= req:
            over.append((r["rule"], r["wildcards"], r["max_rss"], req))
    assert not over, f"jobs over their memory request (rule, wildcards, MB, request): {over}"


# ------------------------------------------------------------------------ GPU pricing
DEVICE = ROOT / "benchmarks" / "devices" / "nvidia-h100.json"


def test_gpu_constants_from_the_device_record():
    """The device record converts to seconds per GMAC of the cost model's own MAC count, and
    the packaged constants carry exactly that conversion (with where/when it was measured)."""
    device = json.loads(DEVICE.read_text())
    for key in ("when", "where", "command"):
        assert device["measured"].get(key), key
    g = cost.gpu_constants(device)
    recs = {r["measure"]: r for r in device["records"]}
    macs, radius = cost.mpfm_macs_per_cell_day({}, 8, 7)
    r = recs["cuda cell_days_per_s fp32"]
    halo = ((r["tile"] + 2 * radius) / r["tile"]) ** 2
    fp32 = g["kernels"]["mpfm_predict_s_per_gmac.fp32"]["value"]
    assert fp32 == pytest.approx(1e9 / (r["ours"] * macs * halo))
    # tf32 was measured faster than fp32 on the H100; training has its own rate
    assert g["kernels"]["mpfm_predict_s_per_gmac.tf32"]["value"] < fp32
    assert 0 < g["kernels"]["mpfm_train_s_per_gmac"]["value"] < 1
    packaged = cost.load_constants(cost.CONSTANTS_FILE)
    assert packaged.gpu["kernels"] == g["kernels"]
    assert packaged.gpu["file"] == "benchmarks/devices/nvidia-h100.json"
    with pytest.raises(ValueError, match="no CUDA inference or training rate"):
        cost.gpu_constants({"device": "x", "records": [recs["cuda sgemm"]]})


def test_gpu_rules_are_the_ones_the_profile_gives_a_gpu():
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    gpu_rules = {r for r, res in profile["set-resources"].items() if "gpu" in res}
    assert gpu_rules == set(cost.GPU_RULES)


def test_gpu_jobs_priced_on_the_device(monkeypatch):
    """Qinghai's network rules: kernels on the GPU when the job gets one, else on the CPU."""
    k = cost.load_constants(cost.CONSTANTS_FILE)
    cfg = _products("configs/qinghai_precip.yaml")["qinghai_precip"]
    wc = {"product": "qinghai_precip", "year": "2015"}
    monkeypatch.setenv("GRIDFUSE_SLURM_GPUS", "1")
    w = cost.work("predict_precip", cfg, wc)
    g = cost.price(w, k)
    assert w.gpu and g.gpu and w.precision == "fp32"
    units = w.time["k:mpfm_predict_s_per_gmac"]
    assert g.gpu_s == pytest.approx(units * k.gpu_kernel("mpfm_predict_s_per_gmac", "fp32"))
    host = g.cpu_s - g.fixed_s - g.gpu_s
    assert g.wall_s == pytest.approx(g.fixed_s + host / g.threads + g.gpu_s)
    assert g.gpu_hours == pytest.approx(g.wall_hours)
    # tf32 inference is priced at its own (faster) rate
    tf = cost.price(
        cost.work("predict_precip", _with(cfg, "model.mpfm.predict_precision", "tf32"), wc), k
    )
    assert tf.gpu_s < g.gpu_s
    # no GPU for the job (GRIDFUSE_SLURM_GPUS=0, device cpu) or no device rates: CPU rates
    cpu_cfgs = [cfg, _with(cfg, "model.mpfm.device", "cpu")]
    for env, c in zip(("0", "1"), cpu_cfgs):
        monkeypatch.setenv("GRIDFUSE_SLURM_GPUS", env)
        w = cost.work("predict_precip", c, wc)
        cpu = cost.price(w, k)
        assert not w.gpu and not cpu.gpu and cpu.gpu_s == 0 and cpu.gpu_hours == 0
        assert cpu.cpu_s > 10 * g.cpu_s
    monkeypatch.setenv("GRIDFUSE_SLURM_GPUS", "1")
    bare = cost.Constants({k_: v for k_, v in k.data.items() if k_ != "gpu"})
    assert not cost.price(cost.work("predict_precip", cfg, wc), bare).gpu
    # training and the site_cv refits
    tw = cost.work("train_precip", cfg, {"product": "qinghai_precip", "net": "mpfm", "set": "era5"})
    fw = cost.work("cross_validate_fold_precip", cfg, {"product": "qinghai_precip", "fold": "0"})
    assert tw.gpu and fw.gpu
    assert cost.price(fw, k).gpu_s > 0
    monkeypatch.setenv("GRIDFUSE_SLURM_GPUS", "x")
    with pytest.raises(ValueError, match="GRIDFUSE_SLURM_GPUS"):
        cost.gpus_per_job()


def test_mask_area_share_prices_a_missing_boundary_file(tmp_path):
    cfg = copy.deepcopy(_products("configs/china_so2.yaml")["china_so2"])
    cfg["mask"]["path"] = str(tmp_path / "absent.gpkg")
    p = cost.Product(cfg)
    assert cost.mask_fraction(p) == pytest.approx(cfg["mask"]["area_share"])
    assert any("area_share" in n for n in cost.notes(cfg))
    cfg["mask"]["area_share"] = 0
    assert cost.mask_fraction(cost.Product(cfg)) == 1.0
    assert any("priced on the whole grid" in n for n in cost.notes(cfg))
    # a mask that can be built is measured, whatever the stated share
    cfg["mask"] = {"box": [73.0, 18.0, 104.0, 54.0], "area_share": 0.9}
    assert cost.mask_fraction(cost.Product(cfg)) == pytest.approx(0.5, abs=1e-3)


def _with(cfg: dict, dotted: str, value) -> dict:
    out = copy.deepcopy(cfg)
    d = out
    *head, last = dotted.split(".")
    for h in head:
        d = d.setdefault(h, {})
    d[last] = value
    return out


def test_so2_predict_memory_holds_a_tile_per_thread():
    """predict_blocks builds `threads` tiles' feature matrices side by side."""
    cfg = _products("configs/china_so2.yaml")["china_so2"]
    w = cost.work("predict_so2", cfg, {"product": "china_so2", "year": "2019"})
    tile = int(cfg["model"]["predict_tile"])
    one = tile * tile * int(cfg["model"]["predict_days"]) * cost._so2_columns(cost.Product(cfg))
    assert w.threads == 16
    assert w.mem["tile_mb"] == pytest.approx(one * 8 / 1e6 * w.threads)


def test_so2_time_block_is_no_longer_than_the_period():
    """A 2-day period holds 2 days per block, not predict_days (the China rehearsal)."""
    cfg = _products("configs/rehearsal_china.yaml")["rehearsal_china"]
    cfg["model"]["predict_days"] = 8
    w = cost.work("predict_so2", cfg, {"product": "rehearsal_china", "year": "2019"})
    p = cost.Product(cfg)
    assert w.mem["block_mb"] == pytest.approx(p.cells * 2 * 11 * 4 / 1e6)
    # the grid score holds one day's grids, whatever the period (cost._osse_scores_mb)
    wc = {"product": "rehearsal_china", "model": "lightgbm"}
    g = cost.work("score_grid_so2", cfg, wc)
    assert g.mem["scores_mb"] == pytest.approx(p.cells * 4 * 4 / 1e6)
    cfg["period"]["end"] = "2019-12-31"
    assert cost.work("score_grid_so2", cfg, wc).mem["scores_mb"] == g.mem["scores_mb"]


def test_a_measured_job_is_priced_at_the_threads_it_ran_with(tmp_path, monkeypatch):
    """A benchmark record's threads replace the cost model's choice, for the Work's threads
    and the memory held per thread (the China rehearsal's predict_so2 ran 2 threads inside
    its 16-thread SLURM job: read as 16 threads, its tiles' memory was 8x too large and a fit
    on it would have lowered the request)."""
    cfg = _products("configs/rehearsal_china.yaml")["rehearsal_china"]
    wc = {"product": "rehearsal_china", "year": "2019"}
    planned = cost.work("predict_so2", cfg, wc)
    ran = cost.work("predict_so2", cfg, wc, threads=2)
    assert planned.threads == 16 and ran.threads == 2
    assert ran.mem["tile_mb"] == pytest.approx(planned.mem["tile_mb"] * 2 / 16)
    assert ran.mem["block_mb"] == planned.mem["block_mb"]
    assert ran.time == planned.time  # CPU seconds do not depend on the threads
    down = {"product": "rehearsal_china", "year": "2019", "source": "tropomi"}
    one = cost.work("downscale", cfg, down, threads=1)
    assert one.mem["block_mb"] * 2 == cost.work("downscale", cfg, down).mem["block_mb"]
    # and the fit reads the threads from the record
    import importlib.util

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(
        "cost_constants", ROOT / "benchmarks" / "cost_constants.py"
    )
    cc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cc)
    run = tmp_path / "run"
    bench = run / "results" / "rehearsal_china" / "benchmarks"
    bench.mkdir(parents=True)
    (run / "configfile").write_text(str(ROOT / "configs" / "rehearsal_china.yaml"))
    cols = ["s", "max_rss", "cpu_time", "rule_name", "wildcards", "threads", "resources"]
    row = ["60", "3372", "1604", "predict_so2", repr({k: wc[k] for k in wc}), "2", "{}"]
    (bench / "predict_so2_2019.tsv").write_text("\t".join(cols) + "\n" + "\t".join(row) + "\n")
    [(w, cpu, rss)] = cc.measured_jobs(run)
    assert w == ran and (cpu, rss) == (1604, 3372)


def test_so2_prediction_is_priced_by_the_configured_engine():
    """model.predictor lleaves: rows x trees at the compiled trees' rate, plus one compile
    job of num_boost_round trees; lightgbm: at Booster.predict's rate, no compile job."""
    cfg = copy.deepcopy(_products("configs/china_so2.yaml")["china_so2"])
    assert cfg["model"]["predictor"] == "lleaves"  # the schema's default
    wc = {"product": "china_so2", "year": "2019"}
    fast = cost.work("predict_so2", cfg, wc)
    cfg["model"]["predictor"] = "lightgbm"
    slow = cost.work("predict_so2", cfg, wc)
    lgb, ll = "k:lgbm_predict_s_per_row_round", "k:lleaves_predict_s_per_row_round"
    assert ll in fast.time and lgb not in fast.time and lgb in slow.time and ll not in slow.time
    assert fast.time[ll] == pytest.approx(slow.time[lgb])  # the same rows x trees
    rows_trees = slow.time[lgb]
    k = cost.load_constants(cost.CONSTANTS_FILE)
    saved = rows_trees * (k.kernel(lgb[2:]) - k.kernel(ll[2:]))
    diff = cost.price(slow, k).cpu_s - cost.price(fast, k).cpu_s
    assert diff == pytest.approx(saved, rel=1e-9) and saved > 0
    comp = cost.work("compile_so2", cfg, {"product": "china_so2"})
    trees = int(cfg["model"]["lightgbm"]["num_boost_round"])
    assert comp.time == {"k:lleaves_compile_s_per_tree": trees}
    assert comp.mem == {"k:lleaves_compile_mb_per_tree": trees}
    c = cost.price(comp, k)
    assert c.cpu_s == pytest.approx(
        k.rule("compile_so2")["fixed_s"] + trees * k.kernel("lleaves_compile_s_per_tree")
    )
    assert c.mem_mb() > c.peak_mb > trees * k.kernel("lleaves_compile_mb_per_tree")


def test_osse_grid_of_lightgbm_models_compiles_when_it_pays():
    """score_grid_so2 of a LightGBM baseline and ablation_variant_so2 in an OSSE grid the
    model on every k-th day: with model.predictor lleaves and at least the break-even rows
    (compile s per tree / saved s per row x tree, from the kernel rates) at the compiled
    trees' rate plus num_boost_round trees compiled (time and memory), Booster.predict's
    otherwise (a tiny grid, or predictor lightgbm); RF and the LSTM are not affected."""
    k = cost.load_constants(cost.CONSTANTS_FILE)
    lgb, ll = "k:lgbm_predict_s_per_row_round", "k:lleaves_predict_s_per_row_round"
    comp, comp_mb = "k:lleaves_compile_s_per_tree", "k:lleaves_compile_mb_per_tree"
    even = cost.lleaves_break_even_rows(k)
    assert even == pytest.approx(k.kernel(comp[2:]) / (k.kernel(lgb[2:]) - k.kernel(ll[2:])))
    assert cost.lleaves_break_even_rows() == even  # the packaged constants by default
    assert 1e5 < even < 1e7
    assert cost.compile_pays(even) and not cost.compile_pays(even * 0.999)
    assert not cost.compile_pays(1e12, "lightgbm")
    slow_k = cost.Constants({"kernels": {**k.kernels, ll[2:]: {"value": k.kernel(lgb[2:])}}})
    assert cost.lleaves_break_even_rows(slow_k) == math.inf  # no saving: never compile
    assert cost.lleaves_break_even_rows(cost.Constants({})) == math.inf

    big = copy.deepcopy(_products("configs/rehearsal_china.yaml")["rehearsal_china"])
    big["cv"]["so2_osse_ablation"] = True
    big_wc = {"product": "rehearsal_china", "model": "lightgbm_plain", "variant": "full"}
    p = cost.Product(big)
    every = int(big["cv"]["so2_osse_every"])
    rows = p.cells * cost.mask_fraction(p) * math.ceil(p.days / every)
    trees = int(big["model"]["lightgbm"]["num_boost_round"])
    assert rows >= even and big["model"]["predictor"] == "lleaves"
    for rule in ("score_grid_so2", "ablation_variant_so2"):
        fast = cost.work(rule, big, big_wc)
        assert fast.time[ll] == pytest.approx(rows * trees) and lgb not in fast.time
        assert fast.time[comp] == trees and fast.mem[comp_mb] == trees
        slow_cfg = copy.deepcopy(big)
        slow_cfg["model"]["predictor"] = "lightgbm"
        slow = cost.work(rule, slow_cfg, big_wc)
        assert slow.time[lgb] == pytest.approx(rows * trees)
        assert ll not in slow.time and comp not in slow.time and comp_mb not in slow.mem
        saved = rows * trees * (k.kernel(lgb[2:]) - k.kernel(ll[2:])) - trees * k.kernel(comp[2:])
        diff = cost.price(slow, k).cpu_s - cost.price(fast, k).cpu_s
        assert diff == pytest.approx(saved, rel=1e-9) and saved > 0
        extra = cost.price(fast, k).peak_mb - cost.price(slow, k).peak_mb
        assert extra == pytest.approx(trees * k.kernel(comp_mb[2:]))
    for model in ("rf_ps", "lstm"):
        w = cost.work("score_grid_so2", big, {**big_wc, "model": model})
        assert not {lgb, ll, comp} & set(w.time) and comp_mb not in w.mem

    # the test config's tiny grid stays below the break-even: Booster.predict, no compile
    small = copy.deepcopy(_products("configs/test.yaml")["test_so2"])
    small["cv"]["so2_osse_ablation"] = True
    w = cost.work("score_grid_so2", small, {**big_wc, "product": "test_so2"})
    assert small["model"]["predictor"] == "lleaves"
    assert w.time[lgb] > 0 and ll not in w.time and comp not in w.time and comp_mb not in w.mem


def test_cross_validate_precip_reads_station_cells_at_the_measured_rate():
    """The product files are read at the gauges' chunks (values_at_cells): priced per grid
    cell-day at the kernel rate, holding one slab, never a year of the grid."""
    cfg = _products("configs/qinghai_precip.yaml")["qinghai_precip"]
    wc = {"product": "qinghai_precip"}
    w = cost.work("cross_validate_precip", cfg, wc)
    cell_days = 850 * 1390 * (34 * 365 + 8)  # the 0.01 deg grid, 1990-2023 (8 leap days)
    assert w.time["k:product_read_s_per_cell_day"] == cell_days
    assert "cell_days_m" not in w.time
    # an OSSE scored at the stations reads the truth files as well
    syn = copy.deepcopy(cfg)
    syn["synthetic"]["enabled"] = True
    syn["cv"]["schemes"] = ["holdout", "osse_stations"]
    w = cost.work("cross_validate_precip", syn, wc)
    assert w.time["k:product_read_s_per_cell_day"] == 2 * cell_days
    syn["cv"]["schemes"] = ["holdout"]
    w = cost.work("cross_validate_precip", syn, wc)
    assert w.time["k:product_read_s_per_cell_day"] == cell_days
    assert w.mem["slab_mb"] == pytest.approx(32 * 512 * 512 * 4 / 1e6)
    k = cost.load_constants(cost.CONSTANTS_FILE)
    assert 0 < k.kernel("product_read_s_per_cell_day") < 1e-6


def test_fold_and_train_requests_cover_the_rehearsal_peaks():
    """The Qinghai rehearsal (850 x 1390 cells x 31 days, preset networks, memory enforced)
    measured the site_cv fold jobs at 788 / 854 MB (the script, Snakemake's benchmark) and
    1,186 / 1,284 MB (sacct MaxRSS of the SLURM job, Snakemake's own process included; the
    first attempts were killed at 1,168 / 1,213 MB against 1,166 MB), the train jobs at up
    to 663 / 1,040 MB. The models must cover the script's peak and the requests the job's
    peak with margin, priced as the rehearsal ran (on CPUs) and as the profile runs them."""
    cfg = _products("configs/rehearsal_qinghai.yaml")["rehearsal_qinghai"]
    for gpus in ("0", "1"):
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("GRIDFUSE_SLURM_GPUS", gpus)
            fold = cost.estimate(
                "cross_validate_fold_precip", cfg, {"product": "rehearsal_qinghai", "fold": "0"}
            )
            train = cost.estimate(
                "train_precip",
                cfg,
                {"product": "rehearsal_qinghai", "net": "mpfm_g", "set": "-".join(cfg["sources"])},
            )
        assert fold.peak_mb >= 854 and fold.mem_mb() >= 1.2 * 1284
        assert train.peak_mb >= 663 and train.mem_mb() >= 1.2 * 1040


def test_real_global_files_are_priced_at_their_measured_read():
    """A real archive's global files (the registry's ``global_files``) add the per-file read
    kernel: 48 IMERG half-hour files a day; ERA5's regional month files and the synthetic
    demo's region-cropped files do not."""
    cfg = _products("configs/qinghai_precip.yaml")["qinghai_precip"]
    wc = {"product": "qinghai_precip", "year": "2019"}
    imerg = cost.work("ingest_imerg", cfg, wc)
    assert imerg.time["k:ingest_s_per_file.imerg_hhr"] == 365 * 48
    assert not any(t.startswith("k:") for t in cost.work("ingest_era5", cfg, wc).time)
    syn = copy.deepcopy(cfg)
    syn["synthetic"]["enabled"] = True
    assert not any(t.startswith("k:") for t in cost.work("ingest_imerg", syn, wc).time)


def test_select_precip_is_priced_as_the_network_passes_it_runs():
    """select_precip runs each network's members over every training station-day of its
    source-availability set (and the window's 3 days either side) and the ensembles again (up
    to 4 passes per member on the receptive-field crop), at the rule's own rate fitted on its
    measured jobs. Priced before by proxy at ~36 CPU s for the demo, it measured 196 CPU s there
    (and 819 CPU s at 9b074a4, before 815c242): the model must stay within a factor 2 of each
    measured job (Snakemake --benchmark-extended, 2 threads: cpu s, wall s, max_rss MB), its
    request cover each job's wall time and peak, and the passes grow with the members.

    The demo and monsoon jobs (one set: the whole period) were measured at 4422f4f and fitted.
    The two OSSE gldas jobs (sets of 184 and 182 days) read the whole year there (138 / 84 CPU
    s, 1,331 / 1,199 MB); now that they read their own days, their records are: max_rss from
    --forcerun select_precip on that run's patches and networks (the same choices, byte for
    byte); CPU and wall seconds the 4422f4f records scaled by the ratio of the job reading its
    own days to the job reading the whole year, both run back to back on one machine
    (/usr/bin/time: CPU 0.48 / 0.61, wall 0.56 / 0.55; that machine was loaded, so its own
    seconds are not comparable). They were not in the fit: the four-source job peaks 2.4 %
    above the modelled peak (the fit's 605 MB fixed part is low for a small job; ``under``),
    well within the request."""
    measured = (  # config, product, set, cpu s, wall s, max_rss MB, under
        ("config.yaml", "demo_precip", "era5-gsmap-gldas-imerg-cmorph", 195.84, 118.87, 1693.61, 0),
        (
            "configs/osse_monsoon.yaml",
            "osse_monsoon_precip",
            "era5-gsmap-imerg-cmorph",
            25.31,
            32.57,
            888.51,
            0,
        ),
        (
            "configs/osse_gldas.yaml",
            "osse_gldas_precip",
            "era5-gldas-imerg-cmorph",
            66.9,
            53.8,
            995.90,
            0.03,
        ),
        (
            "configs/osse_gldas.yaml",
            "osse_gldas_precip",
            "era5-imerg-cmorph",
            51.4,
            37.8,
            853.29,
            0,
        ),
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRIDFUSE_SLURM_GPUS", "0")
        for cfg_file, name, sset, cpu_s, wall_s, peak, under in measured:
            cfg = _products(cfg_file)[name]
            wc = {"product": name, "set": sset}
            c = cost.estimate("select_precip", cfg, wc)
            assert not c.proxy, c
            assert 0.5 <= c.cpu_s / cpu_s <= 2.0, (name, sset, c)
            assert c.peak_mb >= (1 - under) * peak and c.mem_mb() >= peak, (name, sset, c)
            assert c.runtime_min() * 60 >= wall_s, (name, sset, c)
    cfg = _products("config.yaml")["demo_precip"]
    wc = {"product": "demo_precip", "set": "-".join(cfg["sources"])}
    one = copy.deepcopy(cfg)
    one["model"]["mpfm"]["seeds"] = [0]
    w, w1 = cost.work("select_precip", cfg, wc), cost.work("select_precip", one, wc)
    assert w.time["select_gmac"] == pytest.approx(2 * w1.time["select_gmac"])
    assert w.time == cost.work("select_precip", cfg, {"product": "demo_precip"}).time


def test_a_select_job_is_priced_on_its_sets_days():
    """Each job of select_precip reads its set's days and 3 days either side (window_days 7,
    clipped to the period): the OSSE gldas sets (1999-07-01..12-31, 2000-01-01..06-30) read
    187 and 185 of the 366 days, and their passes and patches scale with them."""
    cfg = _products("configs/osse_gldas.yaml")["osse_gldas_precip"]
    p = cost.Product(cfg)
    assert p.set_days(["era5", "imerg", "cmorph"], 3) == 184 + 3
    assert p.set_days(["era5", "gldas", "imerg", "cmorph"], 3) == 182 + 3
    assert p.set_days(["era5", "imerg", "cmorph"]) == 184
    with pytest.raises(ValueError, match="exactly the sources"):
        p.set_days(["era5"])
    whole = cost.work("select_precip", cfg, {"product": "osse_gldas_precip"})
    for sset, days in (("era5-imerg-cmorph", 187), ("era5-gldas-imerg-cmorph", 185)):
        w = cost.work("select_precip", cfg, {"product": "osse_gldas_precip", "set": sset})
        assert w.mem["patches_mb"] == pytest.approx(whole.mem["patches_mb"] * days / 366)
    w = cost.work(
        "select_precip", cfg, {"product": "osse_gldas_precip", "set": "era5-gldas-imerg-cmorph"}
    )
    assert w.time["select_gmac"] == pytest.approx(whole.time["select_gmac"] * 185 / 366)


def test_a_fold_that_redoes_the_product_choice_prices_it():
    """cv.site_cv_product redoes build_product inside every site_cv fold: its network
    passes are priced on the fold's share of the training station-days, at select_precip's
    rate."""
    cfg = _products("configs/valparaiso_precip.yaml")["valparaiso_precip"]
    wc = {"product": "valparaiso_precip", "fold": "0"}
    w = cost.work("cross_validate_fold_precip", cfg, wc)
    off = copy.deepcopy(cfg)
    off["cv"]["site_cv_product"] = False
    term = "r:select_precip:select_gmac"
    assert w.time[term] > 0
    assert term not in cost.work("cross_validate_fold_precip", off, wc).time


def test_grid_score_and_scatter_requests_cover_the_rehearsal():
    """The Qinghai rehearsal (850 x 1390 cells x 31 days, SLURM memory enforced, 2026-11-28)
    killed score_grid_precip at 2,617 MB (request 2,067) and again at 3,290 MB (3,101), and
    report_scatter at 1,349 MB (811): the calibration grids were too small to show their
    arrays. Rerun with the refitted requests through SLURM, score_grid_precip's whole job peaked
    at 3,694 MiB (its script at 2,588 MB), report_scatter's at 1,121 (script 1,118). The
    requests must cover the whole jobs' peaks that sacct saw, with margin. report_scatter no
    longer loads the period's fields (it reads the stations' chunks): rerun on the same
    inputs its script peaked at 382 MB, and its request covers that job, not the old one."""
    cfg = _products("configs/rehearsal_qinghai.yaml")["rehearsal_qinghai"]
    wc = {"product": "rehearsal_qinghai", "year": "2020"}
    grid = cost.estimate("score_grid_precip", cfg, wc)
    scatter = cost.estimate("report_scatter", cfg, {"product": "rehearsal_qinghai"})
    assert grid.peak_mb >= 3694 and grid.mem_mb() >= 1.2 * 3694
    assert scatter.peak_mb >= 382 and scatter.mem_mb() >= 1.2 * 382


def test_so2_cv_ablation_and_grid_terms_add_up():
    """A job's steps that use the same kernel add their work: an OSSE ablation variant fits
    its LightGBM in every fold of the ablation schemes and once more on every station-day
    (the second fit used to replace the folds' fits); an LSTM baseline's grid score trains
    the LSTM and then runs it over the grid (both in ``k:lstm_fit_s_per_gmac``; the grid
    used to replace the fit). The gather reads one row per station-day, scheme and model
    the scheme refits; a fold with the LSTM holds its sequences and the torch runtime."""
    cfg = _products("configs/test.yaml")["test_so2"]
    p = cost.Product(cfg)
    assert cfg["cv"]["so2_osse_ablation"] and p.synthetic
    wc = {"product": "test_so2", "variant": "full"}
    w = cost.work("ablation_variant_so2", cfg, wc)
    off = copy.deepcopy(cfg)
    off["cv"]["so2_osse_ablation"] = False
    folds = cost.work("ablation_variant_so2", off, wc)
    row = "k:lgbm_fit_s_per_row_round_col"
    one_fit = cost._fit_models_terms(p, ["lightgbm"], p.station_days)[row]  # full columns
    assert w.time[row] == pytest.approx(folds.time[row] + one_fit)
    fits = sum(  # the folds of the ablation schemes (site_cv and block_cv)
        int(cfg["cv"]["block_splits"] if s == "block_cv" else cfg["cv"]["n_splits"])
        for s in cfg["cv"]["ablation_schemes"]
    )
    assert folds.time["k:lgbm_fit_s_per_round_col"] == pytest.approx(
        fits * cost._so2_rounds(p) * cost._so2_columns(p)
    )
    assert "scores_mb" in w.mem and "scores_mb" not in folds.mem

    g = cost.work("score_grid_so2", cfg, {"product": "test_so2", "model": "lstm"})
    fit = cost._fit_models_terms(p, ["lstm"], p.station_days)["k:lstm_fit_s_per_gmac"]
    grid = cost._grid_predict_terms(p, "lstm", 1)["k:lstm_fit_s_per_gmac"]
    assert g.key == "score_grid_so2.baseline"
    assert g.time["k:lstm_fit_s_per_gmac"] == pytest.approx(fit + grid)
    # its fit holds what a fold's LSTM holds (the fold's fitted coefficients)
    fold = "r:cross_validate_fold_so2:"
    assert g.mem[fold + "torch_mb"] == cost.TORCH_MB and g.mem[fold + "seq_mb"] > 0
    assert cost.work("score_grid_so2", cfg, {"product": "test_so2", "model": "lightgbm"}).key == (
        "score_grid_so2"
    )

    china = _products("configs/china_so2.yaml")["china_so2"]
    c = cost.Product(china)
    # sample_cv 1 + site_cv 2 + block_cv 4 + region 1 model(s)
    gather = cost.work("cross_validate_so2", china, {"product": "china_so2"})
    assert gather.time["oof_rows_m"] == pytest.approx(8 * c.station_days / 1e6)
    fold = {"product": "china_so2", "scheme": "block_cv", "fold": "0"}
    wb = cost.work("cross_validate_fold_so2", china, fold)
    rows = c.station_days * 0.8  # 5 block_cv folds
    feats = cost._so2_model_columns(c, "lstm") - 10  # the LSTM's plain features
    assert wb.mem["seq_mb"] == pytest.approx(5 * rows * 7 * feats * 4 / 1e6)  # ~5 copies
    ws = cost.work(
        "cross_validate_fold_so2", china, {"product": "china_so2", "scheme": "site_cv", "fold": "0"}
    )
    assert set(ws.mem) == {"table_mb"}  # LightGBM and plain LightGBM: the table's matrices


def test_so2_cv_grid_and_compile_jobs_are_priced_as_measured():
    """The SO2 CV folds, ablation variants, grid scores, the folds' gather and the trees'
    compile were priced like older rules until measured (2026-11-28, at 657c410: the SO2
    products of configs/test.yaml, benchmarks/calibration.yaml and
    benchmarks/calibration_so2_table.yaml, --benchmark-extended, 1 core). Pinned jobs: CPU s
    (polls every 0.5 s), the peak MB (the larger of the two records: Snakemake's default
    polls, every 30 s after 15 s, and every 0.5 s). Each model must cover the peak and its
    request too; the CPU time is the kernels' (LightGBM at 255-leaf trees, RF-Ps, LSTM),
    within a factor 6 of each job (the tiny runs' start-up seconds are not in the kernels; the
    163,000-row folds' LightGBM took 1.5-3.4 x less than its kernel prices)."""
    measured = (
        # config, product, rule, wildcards, cpu s, peak MB
        ("configs/test.yaml", "test_so2", "cross_validate_fold_so2", "sample_cv:0", 4.6, 232.7),
        ("configs/test.yaml", "test_so2", "cross_validate_fold_so2", "site_cv:1", 6.5, 513.1),
        ("benchmarks/calibration.yaml", "cal_so2", "cross_validate_fold_so2", "block_cv:0", 10.9, 537.9),
        ("benchmarks/calibration_so2_table.yaml", "cal_so2_table", "cross_validate_fold_so2", "sample_cv:0", 15.2, 810.6),
        ("benchmarks/calibration_so2_table.yaml", "cal_so2_table", "cross_validate_fold_so2", "site_cv:1", 15.0, 811.1),
        ("benchmarks/calibration_so2_table.yaml", "cal_so2_table", "cross_validate_fold_so2", "block_cv:1", 12.5, 854.4),
        ("benchmarks/calibration.yaml", "cal_so2", "ablation_variant_so2", "full", 29.4, 410.6),
        ("benchmarks/calibration_so2_table.yaml", "cal_so2_table", "ablation_variant_so2", "no_random_id", 72.8, 766.7),
        # the grid scores remeasured once they scored a day at a time (OssePairs)
        ("benchmarks/calibration_so2_table.yaml", "cal_so2_table", "score_grid_so2", "lightgbm", 4.9, 247.9),
        ("benchmarks/calibration.yaml", "cal_so2", "score_grid_so2", "lstm", 9.0, 647.2),
        ("benchmarks/calibration_so2_table.yaml", "cal_so2_table", "cross_validate_so2", "", 4.3, 387.4),
        ("benchmarks/calibration_so2_table.yaml", "cal_so2_table", "compile_so2", "", 14.4, 468.9),
        ("configs/test.yaml", "test_so2", "compile_so2", "", 4.8, 302.4),
    )  # fmt: skip
    keys = {
        "cross_validate_fold_so2": ("scheme", "fold"),
        "ablation_variant_so2": ("variant",),
        "score_grid_so2": ("model",),
    }
    for cfg_file, name, rule, job, cpu_s, peak in measured:
        cfg = _products(cfg_file)[name]
        wc = {"product": name, **dict(zip(keys.get(rule, ()), job.split(":")))}
        c = cost.estimate(rule, cfg, wc)
        assert not c.proxy, (rule, job, c)
        assert c.peak_mb >= peak and c.mem_mb() >= peak, (rule, job, c)
        assert 1 / 6 <= c.cpu_s / cpu_s <= 6, (rule, job, c)
    # no SO2 rule of the presets is priced by proxy any more
    for rule in (
        "cross_validate_fold_so2",
        "cross_validate_so2",
        "score_grid_so2",
        "ablation_variant_so2",
        "compile_so2",
    ):
        assert rule not in cost.PROXIES


def test_report_jobs_are_priced_on_what_they_hold():
    """report_maps holds the chosen days' panels (and one day for the means when it must
    choose them), report_scatter the evaluation station-days' pairs and one slab of
    chunks: neither grows with a product year, as the scripts no longer load one."""
    q = _products("configs/qinghai_precip.yaml")["qinghai_precip"]
    c = _products("configs/china_so2.yaml")["china_so2"]
    for cfg, name in ((q, "qinghai_precip"), (c, "china_so2")):
        p = cost.Product(cfg)
        year_mb = p.cells * p.days_in_year(p.start.year) * 4 / 1e6
        maps = cost.work("report_maps", cfg, {"product": name})
        fields = 1 + (len(p.sources) if p.spec.sources_in_reports else 0)
        n_days = int(cfg["report"]["n_days"])
        assert maps.mem["maps_mb"] == pytest.approx(p.cells * n_days * (fields + 1) * 4 / 1e6)
        assert maps.mem["day_mb"] == pytest.approx(3 * p.cells * 4 / 1e6)
        assert sum(maps.mem.values()) < 0.2 * year_mb
        chosen = copy.deepcopy(cfg)
        chosen["report"]["days"] = [str(p.start)]
        assert "day_mb" not in cost.work("report_maps", chosen, {"product": name}).mem
        est = cost.estimate("report_maps", cfg, {"product": name})
        assert est.peak_mb >= cost.load_constants().rule("report_maps")["fixed_mb"] + sum(
            maps.mem.values()
        )
    p = cost.Product(q)
    scatter = cost.work("report_scatter", q, {"product": "qinghai_precip"})
    models = 1 + len(p.sources)
    held = p.stations - p.training_stations
    assert scatter.mem["pairs_mb"] == pytest.approx(held * p.days * models * 120 / 1e6)
    assert scatter.mem["slab_mb"] == pytest.approx(6 * 32 * 512 * 512 * 4 / 1e6)
    assert scatter.time["k:product_read_s_per_cell_day"] == p.cells * p.days * models
    assert sum(scatter.mem.values()) < 0.01 * p.cells * p.days * 4 / 1e6
    so2 = cost.work("report_scatter", c, {"product": "china_so2"})
    assert set(so2.mem) == {"obs_mb", "pairs_mb"}  # the out-of-fold rows of one scheme
