# Rules of the 'report' stage.
