"""The Textual TUI (the only package that may import `textual`); `make_app` builds it."""
