"""Infrastructure: the run directory, the cache, atomic files, logs, progress, environment."""
