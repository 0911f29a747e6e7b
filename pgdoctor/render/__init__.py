"""Turn analysis results into text: rich tables, tabulate plain/markdown, csv, JSON. No server access."""
