# Rules of the 'downscale' stage.
