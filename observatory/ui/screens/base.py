"""The base of the screens that work with the app's runtime: the app, typed."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.screen import Screen

if TYPE_CHECKING:
    from observatory.ui.app import ObservatoryApp


class ObservatoryScreen(Screen[None]):
    """A screen of the ObservatoryApp.

    Textual types `self.app` as any `App`, so the app's own attributes (`snapshot`,
    `read_cursor()`, `submit()`, ...) would be untyped there; `self.observatory` is the same
    object with its real type (posting's `cast("Posting", self.app)`)."""

    @property
    def observatory(self) -> ObservatoryApp:
        return cast("ObservatoryApp", self.app)
