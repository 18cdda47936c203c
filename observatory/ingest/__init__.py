"""Stage 1, logs in: tail files exactly once (``tail``, ``lines``), parse them inside DuckDB by
format (``formats``, ``normalize``, ``classify``), read whole files fast (``wholefile``) and
backfill (``backfill``). Rows land in the store (``observatory.store``)."""
