# Rules of the 'static' stage.
