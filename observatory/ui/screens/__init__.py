"""The TUI's screens: dashboard, destination, SQL console, incidents, help."""
