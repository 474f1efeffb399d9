# Rules of the 'so2_model' stage.
