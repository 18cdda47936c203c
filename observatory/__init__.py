"""Observatory: a terminal data-flow observatory for conversion-tracking pipelines."""

__version__ = "0.1.0"
