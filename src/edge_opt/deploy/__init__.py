"""Deploying: export of a finished run's candidate, its sidecar, prediction on images."""
