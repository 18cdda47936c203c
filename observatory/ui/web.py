"""The TUI in a browser: textual-serve runs ``command`` (an attached TUI) per browser session."""

from __future__ import annotations


def serve_in_browser(command: str, host: str, port: int) -> None:
    """Serve ``command`` on ``host:port`` until interrupted."""
    from textual_serve.server import Server

    Server(command, host=host, port=port, title="Observatory").serve()
