# Rules of the 'synth_precip' stage.
