# Rules of the 'stations' stage.


# QC'd daily station table, station list with roles, and the QC decisions of one product.
rule ingest_stations:
    input:
        data=lambda wc: station_input(wc.product),
    output:
        daily=res("{product}", "stations", "daily.parquet"),
        stations=res("{product}", "stations", "stations.csv"),
        qc=res("{product}", "stations", "qc.csv"),
    log:
        res("{product}", "logs", "ingest_stations.log"),
    benchmark:
        res("{product}", "benchmarks", "ingest_stations.tsv")
    conda:
        "../../envs/gridfuse.yaml"
    threads: cost_threads("ingest_stations")
    resources:
        mem_mb=cost_mem("ingest_stations"),
        runtime=cost_runtime("ingest_stations"),
    params:
        kind=product_param("kind"),
        fmt=product_param("stations.format"),
        path=lambda wc: (
            res(wc.product, "raw", "stations")
            if is_synthetic(wc.product)
            else pcfg(wc.product)["stations"]["path"]
        ),
        table=lambda wc: (
            "" if is_synthetic(wc.product) else pcfg(wc.product)["stations"]["table"]
        ),
        grid=product_param("grid"),
        start=product_param("period.start"),
        end=product_param("period.end"),
        utc_start_hour=product_param("day_window.utc_start_hour"),
        qc=product_param("stations.qc"),
        evaluation=product_param("stations.evaluation"),
        options=lambda wc: {
            **{
                k: pcfg(wc.product)["stations"][k]
                for k in ("utc_offset", "resolution")
            },
            # a DEM gives elevations that station tables lack (wide_csv)
            "dem": (
                ""
                if is_synthetic(wc.product)
                else (lambda d: d if isinstance(d, str) else d.get("path", ""))(
                    pcfg(wc.product)["static"].get("dem", "")
                )
            ),
        },
        seed=config["seed"],
    script:
        "../scripts/ingest_stations.py"


# A demo product's stations are a target once its synthesizer rule exists.
for _kind in KINDS:
    register_target(
        _kind,
        "{results}/{product}/stations/daily.parquet",
        when=lambda p: not is_synthetic(p)
        or workflow.is_rule(f"synthesize_{pcfg(p)['kind']}_demo"),
    )
