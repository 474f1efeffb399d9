"""Station observations: readers, writers, quality control and roles."""
