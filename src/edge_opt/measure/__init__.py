"""Measuring: the latency harness, its statistics and noise guard, accuracy, memory, energy."""
