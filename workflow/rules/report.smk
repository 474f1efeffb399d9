# Rules of the 'report' stage: figures and tables for `snakemake --report`, one set per
# product under results/<product>/report/, with captions in workflow/report/.


report: "../report/workflow.rst"


include: "report_common.smk"


# Maps of the product on chosen days beside the truth (demo) and each source.
rule report_maps:
    input:
        unpack(lambda wc: rp_fields(wc.product, rp_years(wc.product))),
        unpack(lambda wc: rp_station_files(wc.product)),
    output:
        maps=report(
            res("{product}", "report", "maps.png"),
            caption="../report/maps.rst",
            category="{product}",
            subcategory="maps",
        ),
    log:
        res("{product}", "logs", "report_maps.log"),
    benchmark:
        res("{product}", "benchmarks", "report_maps.tsv")
    wildcard_constraints:
        product=rp_products(),
    conda:
        "../../envs/gridfuse.yaml"
    threads: cost_threads("report_maps")
    resources:
        mem_mb=cost_mem("report_maps"),
        runtime=cost_runtime("report_maps"),
    params:
        kind=lambda wc: rp_kind(wc.product),
        variable=lambda wc: RP_VARIABLE[rp_kind(wc.product)],
        days=product_param("report.days"),
        n_days=product_param("report.n_days"),
        title=lambda wc: wc.product,
    script:
        "../scripts/report_maps.py"


# Predicted vs observed at held-out stations (precip: evaluation stations; so2: site_cv folds).
rule report_scatter:
    input:
        unpack(
            lambda wc: (
                rp_fields(wc.product, years(wc.product))
                if KINDS[rp_kind(wc.product)].held_out == "evaluation_stations"
                else {
                    "oof": res(
                        wc.product, "evaluation", f"{rp_kind(wc.product)}_oof.parquet"
                    )
                }
            )
        ),
        unpack(lambda wc: rp_station_files(wc.product)),
    output:
        scatter=report(
            res("{product}", "report", "scatter.png"),
            caption="../report/scatter.rst",
            category="{product}",
            subcategory="held-out stations",
        ),
    log:
        res("{product}", "logs", "report_scatter.log"),
    benchmark:
        res("{product}", "benchmarks", "report_scatter.tsv")
    wildcard_constraints:
        product=rp_products(),
    conda:
        "../../envs/gridfuse.yaml"
    threads: cost_threads("report_scatter")
    resources:
        mem_mb=cost_mem("report_scatter"),
        runtime=cost_runtime("report_scatter"),
    params:
        kind=lambda wc: rp_kind(wc.product),
        held_out=lambda wc: KINDS[rp_kind(wc.product)].held_out,
        variable=lambda wc: RP_VARIABLE[rp_kind(wc.product)],
        scheme="site_cv",
        title=lambda wc: wc.product,
    script:
        "../scripts/report_scatter.py"


# Metric tables (HTML) and bar charts per model and scheme from scores.csv.
rule report_scores:
    input:
        scores=res("{product}", "evaluation", "scores.csv"),
    output:
        figure=report(
            res("{product}", "report", "scores.png"),
            caption="../report/scores.rst",
            category="{product}",
            subcategory="scores",
        ),
        table=report(
            res("{product}", "report", "scores.html"),
            caption="../report/scores_table.rst",
            category="{product}",
            subcategory="scores",
        ),
    log:
        res("{product}", "logs", "report_scores.log"),
    benchmark:
        res("{product}", "benchmarks", "report_scores.tsv")
    wildcard_constraints:
        product=rp_products(),
    conda:
        "../../envs/gridfuse.yaml"
    threads: cost_threads("report_scores")
    resources:
        mem_mb=cost_mem("report_scores"),
        runtime=cost_runtime("report_scores"),
    params:
        first=lambda wc: list(KINDS[rp_kind(wc.product)].models),
        title=lambda wc: f"{wc.product}: scores",
    script:
        "../scripts/report_scores.py"


# The interpolation comparison (nearest / bilinear / cubic) at the stations.
rule report_interpolation:
    input:
        table=res("{product}", "evaluation", "interpolation.csv"),
    output:
        figure=report(
            res("{product}", "report", "interpolation.png"),
            caption="../report/interpolation.rst",
            category="{product}",
            subcategory="interpolation",
        ),
    log:
        res("{product}", "logs", "report_interpolation.log"),
    benchmark:
        res("{product}", "benchmarks", "report_interpolation.tsv")
    wildcard_constraints:
        product=rp_products("precip"),
    conda:
        "../../envs/gridfuse.yaml"
    threads: cost_threads("report_interpolation")
    resources:
        mem_mb=cost_mem("report_interpolation"),
        runtime=cost_runtime("report_interpolation"),
    params:
        title=lambda wc: f"{wc.product}: interpolation to the product grid",
    script:
        "../scripts/report_interpolation.py"


# Training curves of MPFM and the deep baselines.
rule report_training:
    input:
        curves=lambda wc: rp_curves(wc.product),
    output:
        figure=report(
            res("{product}", "report", "training.png"),
            caption="../report/training.rst",
            category="{product}",
            subcategory="training",
        ),
    log:
        res("{product}", "logs", "report_training.log"),
    benchmark:
        res("{product}", "benchmarks", "report_training.tsv")
    wildcard_constraints:
        product=rp_products("precip"),
    conda:
        "../../envs/gridfuse.yaml"
    threads: cost_threads("report_training")
    resources:
        mem_mb=cost_mem("report_training"),
        runtime=cost_runtime("report_training"),
    params:
        title=lambda wc: f"{wc.product}: training",
    script:
        "../scripts/report_training.py"


# The SO2 ablation: each technique removed in turn, change of each metric.
rule report_ablation:
    input:
        table=res("{product}", "evaluation", "ablation.csv"),
    output:
        figure=report(
            res("{product}", "report", "ablation.png"),
            caption="../report/ablation.rst",
            category="{product}",
            subcategory="ablation",
        ),
    log:
        res("{product}", "logs", "report_ablation.log"),
    benchmark:
        res("{product}", "benchmarks", "report_ablation.tsv")
    wildcard_constraints:
        product=rp_products("so2"),
    conda:
        "../../envs/gridfuse.yaml"
    threads: cost_threads("report_ablation")
    resources:
        mem_mb=cost_mem("report_ablation"),
        runtime=cost_runtime("report_ablation"),
    params:
        title=lambda wc: f"{wc.product}: ablation",
    script:
        "../scripts/report_ablation.py"


# Losses of the inputs: a table of every source-year (days lost, files missing, values
# masked as physically impossible) and the station QC totals.
rule report_input_qc:
    input:
        qc=lambda wc: [
            res(wc.product, "daily", s, f"{y}.qc.csv")
            for s in sources(wc.product)
            for y in years(wc.product)
        ],
        stations=res("{product}", "stations", "qc.csv"),
    output:
        table=report(
            res("{product}", "report", "input_qc.html"),
            caption="../report/input_qc.rst",
            category="{product}",
            subcategory="input QC",
        ),
        summary=res("{product}", "report", "input_qc.csv"),
    log:
        res("{product}", "logs", "report_input_qc.log"),
    benchmark:
        res("{product}", "benchmarks", "report_input_qc.tsv")
    wildcard_constraints:
        product=rp_products(),
    conda:
        "../../envs/gridfuse.yaml"
    threads: cost_threads("report_input_qc")
    resources:
        mem_mb=cost_mem("report_input_qc"),
        runtime=cost_runtime("report_input_qc"),
    params:
        title=lambda wc: f"{wc.product}: input quality control",
    script:
        "../scripts/report_input_qc.py"


for _kind, _spec in KINDS.items():
    for _name in _spec.reports:
        register_target(_kind, f"{{results}}/{{product}}/report/{_name}.png")
    register_target(_kind, "{results}/{product}/report/scores.html")
    register_target(_kind, "{results}/{product}/report/input_qc.html")
