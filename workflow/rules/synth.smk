# Rules of the 'synth' stage.
