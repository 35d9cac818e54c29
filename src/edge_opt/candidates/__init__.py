"""Candidates: the plan, their preparation (build, export, evaluate), the typed record."""
