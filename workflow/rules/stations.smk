# Rules of the 'stations' stage.
