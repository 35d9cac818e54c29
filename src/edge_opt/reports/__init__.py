"""Reports: the typed result of a run (``RunResult``) and everything written from it: the
CSV/JSON files, the Markdown and one-file HTML reports, plots, run comparison, the multi-seed
report, and the manual's generated sections. Each reads plain data (a ``RunResult`` or its
JSON)."""
