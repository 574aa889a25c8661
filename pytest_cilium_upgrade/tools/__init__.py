"""Command-line tools: merging JUnit reports of separate CI steps, the options table."""
