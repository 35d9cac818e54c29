"""Models: the zoo, user factories, checkpoints."""
