"""A Footer that rebuilds itself only when the keys it shows change.

Textual's Footer recomposes (unmounts and mounts every key) on each focus change, which
costs tens of milliseconds of event loop; moving between panes or opening the filter does
not change what the footer shows, so most of those rebuilds are for nothing."""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Footer


class KeyFooter(Footer):
    """Footer that skips rebuilds which would show the same keys."""

    _shown_keys: tuple[tuple[str, str, bool], ...] | None = None

    def _visible_keys(self, screen: Screen[object]) -> tuple[tuple[str, str, bool], ...]:
        return tuple(
            (binding.key, binding.description, enabled)
            for (_node, binding, enabled, _tooltip) in screen.active_bindings.values()
            if binding.show
        )

    def bindings_changed(self, screen: Screen[object]) -> None:
        keys = self._visible_keys(screen)
        if keys == self._shown_keys and self._bindings_ready:
            return
        self._shown_keys = keys
        super().bindings_changed(screen)
