# Rules of the 'ingest_precip' stage: one rule ingest_<source> per precipitation source key.


def _precip_source_keys():
    return sorted({s for p in products_of("precip") for s in sources(p)})


def _products_with(source):
    return [p for p in products_of("precip") if source in sources(p)]


def _ingest_input(source):
    return lambda wc: raw_input(wc.product, source, wc.year)


def _ingest_folders(product, source, year):
    """Folders to search: the year's, and its neighbours' when the path has {year} (a
    product day may start on the previous UTC day or end on the next one)."""
    if is_synthetic(product):
        return [res(product, "raw", source)]
    path = source_cfg(product, source).get("path") or res(product, "raw", source)
    if "{year}" not in path:
        return [path]
    return [path.format(year=y) for y in (int(year) - 1, int(year), int(year) + 1)]


def _ingest_params(source):
    def params(wc):
        c = source_cfg(wc.product, source)
        return {
            "source": source,
            "format": c["format"],
            "variable": c["variable"],
            "margin": c["margin"],
            "covers": source_covers(wc.product, source, wc.year),
            "absent_reason": f"{source} ({c['format']}) has no data for {wc.year}",
            "folders": _ingest_folders(wc.product, source, wc.year),
        }

    return params


for _src in _precip_source_keys():

    # Raw files of one precipitation source -> daily totals (mm/day) on its native grid, one year.
    rule:
        name:
            f"ingest_{_src}"
        input:
            raw=_ingest_input(_src),
        output:
            daily=res("{product}", "daily", _src, "{year}.nc"),
        log:
            res("{product}", "logs", f"ingest_{_src}_{{year}}.log"),
        benchmark:
            res("{product}", "benchmarks", f"ingest_{_src}_{{year}}.tsv")
        wildcard_constraints:
            product="|".join(_products_with(_src)),
        conda:
            "../../envs/gridfuse.yaml"
        threads: cost_threads(f"ingest_{_src}")
        resources:
            mem_mb=cost_mem(f"ingest_{_src}"),
            runtime=cost_runtime(f"ingest_{_src}"),
        params:
            source=lambda wc, s=_src: _ingest_params(s)(wc)["source"],
            format=lambda wc, s=_src: _ingest_params(s)(wc)["format"],
            variable=lambda wc, s=_src: _ingest_params(s)(wc)["variable"],
            margin=lambda wc, s=_src: _ingest_params(s)(wc)["margin"],
            covers=lambda wc, s=_src: _ingest_params(s)(wc)["covers"],
            absent_reason=lambda wc, s=_src: _ingest_params(s)(wc)["absent_reason"],
            folders=lambda wc, s=_src: _ingest_params(s)(wc)["folders"],
            source_cfg=lambda wc, s=_src: source_cfg(wc.product, s),
            options=lambda wc, s=_src: (
                {"first_date": source_cfg(wc.product, s)["first_date"]}
                if source_cfg(wc.product, s).get("first_date")
                else {}
            ),
            grid=lambda wc: pcfg(wc.product)["grid"],
            start=lambda wc: pcfg(wc.product)["period"]["start"],
            end=lambda wc: pcfg(wc.product)["period"]["end"],
            utc_start_hour=lambda wc: pcfg(wc.product)["day_window"]["utc_start_hour"],
        script:
            "../scripts/ingest_precip.py"
