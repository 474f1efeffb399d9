# Rules of the 'ingest_precip' stage.
