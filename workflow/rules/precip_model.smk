# Rules of the 'precip_model' stage: MPFM (and deep baselines) per source-availability set,
# station/grid evaluation of every model and baseline, yearly product, daily GeoTIFFs.


include: "precip_common.smk"


# One network (mpfm or a deep baseline) for one source-availability set, on training stations.
rule train_precip:
    input:
        patches=res("{product}", "samples", "patches.nc"),
    output:
        model=res("{product}", "model", "{net}", "{set}.pt"),
        sidecar=res("{product}", "model", "{net}", "{set}.json"),
        curve=res("{product}", "evaluation", "training_curve_{net}_{set}.csv"),
    log:
        res("{product}", "logs", "train_precip_{net}_{set}.log"),
    benchmark:
        res("{product}", "benchmarks", "train_precip_{net}_{set}.tsv")
    wildcard_constraints:
        product=pm_products(),
        net="|".join(PM_NETS),
        set=r"[a-z][a-z0-9_]*(-[a-z][a-z0-9_]*)*",
    conda:
        "../../envs/gridfuse.yaml"
    threads: cost_threads("train_precip")
    resources:
        mem_mb=cost_mem("train_precip"),
        runtime=cost_runtime("train_precip"),
    params:
        net=lambda wc: wc.net,
        sources=lambda wc: wc.set.split("-"),
        mpfm=lambda wc: pm_train_cfg(wc.product),
        window=product_param("samples.window_days"),
        min_gauges=product_param("model.product.min_gauges"),
        seed=config["seed"],
    script:
        "../scripts/train_precip.py"


# The product's variant (network, residual correction, wet threshold) of one
# source-availability set, chosen by inner site CV on the training gauges; reads only the
# set's days of the patches and the window's days either side.
rule select_precip:
    input:
        patches=res("{product}", "samples", "patches.nc"),
        mpfm=res("{product}", "model", "mpfm", "{set}.pt"),
        mpfm_g=res("{product}", "model", "mpfm_g", "{set}.pt"),
    output:
        spec=res("{product}", "model", "product", "{set}.json"),
    log:
        res("{product}", "logs", "select_precip_{set}.log"),
    benchmark:
        res("{product}", "benchmarks", "select_precip_{set}.tsv")
    wildcard_constraints:
        product=pm_products(),
        set=r"[a-z][a-z0-9_]*(-[a-z][a-z0-9_]*)*",
    conda:
        "../../envs/gridfuse.yaml"
    threads: cost_threads("select_precip")
    resources:
        mem_mb=cost_mem("select_precip"),
        runtime=cost_runtime("select_precip"),
    params:
        sources=lambda wc: wc.set.split("-"),
        year_sets=lambda wc: pm_year_sets(wc.product),
        min_gauges=product_param("model.product.min_gauges"),
        thresholds=product_param("cv.thresholds"),
        device=lambda wc: pm_mpfm_cfg(wc.product)["device"],
    script:
        "../scripts/select_precip.py"


# The daily product of one year: the chosen variant of the year's set (tiled network
# inference, residual correction from the training gauges, wet threshold).
rule predict_precip:
    input:
        unpack(lambda wc: pm_downscaled(wc.product, wc.year)),
        unpack(lambda wc: mask_input(wc.product)),
        mpfm=lambda wc: pm_model(wc.product, "mpfm", pm_set(wc.product, wc.year)),
        mpfm_g=lambda wc: pm_model(wc.product, "mpfm_g", pm_set(wc.product, wc.year)),
        spec=lambda wc: pm_spec(wc.product, pm_set(wc.product, wc.year)),
        patches=res("{product}", "samples", "patches.nc"),
        static=res("{product}", "static.nc"),
    output:
        product=res("{product}", "product", "{year}.nc"),
    log:
        res("{product}", "logs", "predict_precip_{year}.log"),
    benchmark:
        res("{product}", "benchmarks", "predict_precip_{year}.tsv")
    wildcard_constraints:
        product=pm_products(),
    conda:
        "../../envs/gridfuse.yaml"
    threads: cost_threads("predict_precip")
    resources:
        mem_mb=cost_mem("predict_precip"),
        runtime=cost_runtime("predict_precip"),
    params:
        sources=lambda wc: pm_year_sources(wc.product, wc.year),
        grid=product_param("grid"),
        year=lambda wc: int(wc.year),
        start=product_param("period.start"),
        end=product_param("period.end"),
        tile=lambda wc: pm_mpfm_cfg(wc.product)["predict_tile"],
        days=lambda wc: pm_mpfm_cfg(wc.product)["predict_days"],
        device=lambda wc: pm_mpfm_cfg(wc.product)["device"],
        precision=lambda wc: pm_mpfm_cfg(wc.product)["predict_precision"],
        mem_mb=lambda wc: pm_mpfm_cfg(wc.product)["predict_mem_mb"],
        utc_start_hour=product_param("day_window.utc_start_hour"),
        provenance=lambda wc: pm_provenance(wc.product),
    script:
        "../scripts/predict_precip.py"


# OSSE: every cell and day of one year against the truth (product, raw sources, linear
# merges, gauge-only interpolations).
rule score_grid_precip:
    input:
        unpack(lambda wc: pm_downscaled(wc.product, wc.year)),
        unpack(lambda wc: mask_input(wc.product)),
        product=res("{product}", "product", "{year}.nc"),
        truth=res("{product}", "truth", "{year}.nc"),
        patches=res("{product}", "samples", "patches.nc"),
    output:
        stats=res("{product}", "evaluation", "grid", "{year}.csv"),
    log:
        res("{product}", "logs", "score_grid_precip_{year}.log"),
    benchmark:
        res("{product}", "benchmarks", "score_grid_precip_{year}.tsv")
    wildcard_constraints:
        product=pm_products(),
    conda:
        "../../envs/gridfuse.yaml"
    threads: cost_threads("score_grid_precip")
    resources:
        mem_mb=cost_mem("score_grid_precip"),
        runtime=cost_runtime("score_grid_precip"),
    params:
        sources=lambda wc: pm_year_sources(wc.product, wc.year),
        year=lambda wc: int(wc.year),
        linear=lambda wc: [
            m
            for m in PM_LINEAR
            if m in pcfg(wc.product)["model"]["baselines"]["models"]
        ],
        gauge_only=lambda wc: [
            m
            for m in model_names("precip", "gauge-only")
            if m in pcfg(wc.product)["model"]["baselines"]["models"]
        ],
        grid=product_param("grid"),
        min_gauges=product_param("model.product.min_gauges"),
        thresholds=product_param("cv.thresholds"),
    script:
        "../scripts/score_grid_precip.py"


# One site_cv fold: every model (and, with cv.site_cv_product, the product with its inner
# selection) refitted on the fold's fit stations, scored at its test stations.
rule cross_validate_fold_precip:
    input:
        patches=res("{product}", "samples", "patches.nc"),
    output:
        stats=res("{product}", "evaluation", "site_cv", "fold_{fold}.csv"),
    log:
        res("{product}", "logs", "cross_validate_fold_precip_{fold}.log"),
    benchmark:
        res("{product}", "benchmarks", "cross_validate_fold_precip_{fold}.tsv")
    wildcard_constraints:
        product=pm_products(),
        fold=r"\d+",
    conda:
        "../../envs/gridfuse.yaml"
    threads: cost_threads("cross_validate_fold_precip")
    resources:
        mem_mb=cost_mem("cross_validate_fold_precip"),
        runtime=cost_runtime("cross_validate_fold_precip"),
    params:
        fold=lambda wc: int(wc.fold),
        sources=lambda wc: sources(wc.product),
        year_sets=lambda wc: pm_year_sets(wc.product),
        baselines=lambda wc: pm_baselines(wc.product),
        baseline_params=product_param("model.baselines"),
        refit=lambda wc: pm_refit(wc.product),
        product=product_param("cv.site_cv_product"),
        n_splits=product_param("cv.n_splits"),
        thresholds=product_param("cv.thresholds"),
        mpfm=lambda wc: pm_train_cfg(wc.product),
        window=product_param("samples.window_days"),
        min_gauges=product_param("model.product.min_gauges"),
        seed=config["seed"],
    script:
        "../scripts/cv_fold_precip.py"


# scores.csv: every model, baseline and raw source in every scheme (holdout, site_cv, OSSE);
# model `product` at held-out stations is read from the product files.
rule cross_validate_precip:
    input:
        patches=res("{product}", "samples", "patches.nc"),
        models=lambda wc: pm_models(wc.product),
        product=lambda wc: [
            res(wc.product, "product", f"{y}.nc") for y in all_years(wc.product)
        ],
        folds=lambda wc: pm_folds(wc.product),
        grid=lambda wc: (
            [
                res(wc.product, "evaluation", "grid", f"{y}.csv")
                for y in years(wc.product)
            ]
            if pm_osse(wc.product, "osse_grid")
            else []
        ),
        truth=lambda wc: (
            [res(wc.product, "truth", f"{y}.nc") for y in all_years(wc.product)]
            if pm_osse(wc.product, "osse_stations")
            else []
        ),
    output:
        scores=res("{product}", "evaluation", "scores.csv"),
    log:
        res("{product}", "logs", "cross_validate_precip.log"),
    benchmark:
        res("{product}", "benchmarks", "cross_validate_precip.tsv")
    wildcard_constraints:
        product=pm_products(),
    conda:
        "../../envs/gridfuse.yaml"
    threads: cost_threads("cross_validate_precip")
    resources:
        mem_mb=cost_mem("cross_validate_precip"),
        runtime=cost_runtime("cross_validate_precip"),
    params:
        sources=lambda wc: sources(wc.product),
        year_sets=lambda wc: pm_year_sets(wc.product),
        baselines=lambda wc: pm_baselines(wc.product),
        baseline_params=product_param("model.baselines"),
        schemes=lambda wc: [
            s
            for s in pcfg(wc.product)["cv"]["schemes"]
            if s in ("holdout", "site_cv") or is_synthetic(wc.product)
        ],
        thresholds=product_param("cv.thresholds"),
        window=product_param("samples.window_days"),
        min_gauges=product_param("model.product.min_gauges"),
        device=lambda wc: pm_mpfm_cfg(wc.product)["device"],
        seed=config["seed"],
    script:
        "../scripts/cross_validate_precip.py"


# One Cloud-Optimized GeoTIFF per day of a year's product.
rule export_geotiff_precip:
    input:
        product=res("{product}", "product", "{year}.nc"),
    output:
        geotiff=directory(res("{product}", "product", "geotiff", "{year}")),
    log:
        res("{product}", "logs", "export_geotiff_precip_{year}.log"),
    benchmark:
        res("{product}", "benchmarks", "export_geotiff_precip_{year}.tsv")
    wildcard_constraints:
        product=pm_products(),
    conda:
        "../../envs/gridfuse.yaml"
    threads: cost_threads("export_geotiff_precip")
    resources:
        mem_mb=cost_mem("export_geotiff_precip"),
        runtime=cost_runtime("export_geotiff_precip"),
    params:
        gzip=product_param("outputs.gzip"),
    script:
        "../scripts/export_geotiff_precip.py"


register_target("precip", "{results}/{product}/evaluation/scores.csv")
# the models are targets too: a model deleted (e.g. by a kill while it was retrained) is
# rebuilt, and then everything made from it, instead of "Nothing to be done"
register_target("precip", pm_models)
register_target(
    "precip",
    "{results}/{product}/product/{year}.nc",
    when=lambda p: pcfg(p)["outputs"]["netcdf"],
)
register_target(
    "precip",
    "{results}/{product}/product/geotiff/{year}",
    when=lambda p: pcfg(p)["outputs"]["geotiff"],
)
