# Rules of the 'precip_model' stage.
