"""Report renderers beyond the run's CSV/JSON: the one-file HTML report, run comparison,
the multi-seed report and the plots. Each reads plain data (a ``RunResult`` or its JSON)."""
