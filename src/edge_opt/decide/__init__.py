"""Deciding: acceptance, budgets, Pareto frontiers, the recommendation and what would flip it."""
