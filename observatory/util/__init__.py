"""Small shared helpers: durations, Retry-After, progress lines, SQL string quoting."""
