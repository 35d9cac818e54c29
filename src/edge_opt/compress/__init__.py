"""Compression: training, structured pruning, precision conversion, pruned variants."""
