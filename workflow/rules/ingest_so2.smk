# Rules of the 'ingest_so2' stage.
