"""Orchestration: the pipeline as named stages, and the executors that run its tasks."""
