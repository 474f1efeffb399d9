# gridfuse: daily ~1 km gridded products from coarse sources and station observations.
# Run: snakemake --cores N [--configfile configs/<preset>.yaml]; see README.md.
from snakemake.utils import min_version

min_version("9.0")


# config.yaml (the demo) is the default; a --configfile replaces it rather than merging
# into it, so a preset never builds the demo products as well.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/synth_precip.smk"
include: "workflow/rules/synth_so2.smk"
include: "workflow/rules/stations.smk"
include: "workflow/rules/static.smk"
include: "workflow/rules/mask.smk"
include: "workflow/rules/ingest_precip.smk"
include: "workflow/rules/ingest_so2.smk"
include: "workflow/rules/downscale.smk"
include: "workflow/rules/precip_model.smk"
include: "workflow/rules/so2_model.smk"
include: "workflow/rules/report.smk"


# Temporaries of jobs killed in an earlier run (see README, "Resuming an interrupted run").
onstart:
    remove_stale_temporaries()


# Build the outputs of every product for its configured period.
rule all:
    default_target: True
    input:
        all_targets,
