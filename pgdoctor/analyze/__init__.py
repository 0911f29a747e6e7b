"""Pure functions from collected rows to results and findings; no I/O."""
