# Rules of the 'synth_so2' stage.
