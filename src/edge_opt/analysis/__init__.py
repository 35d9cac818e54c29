"""Hardware analysis: layer tables, roofline, operator profile, device profiles, projection."""
