"""Models: the zoo, user factories, checkpoints, and per-layer accounting (MACs and bytes)."""
