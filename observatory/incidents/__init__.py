"""Stage 3, incidents: the model (``model``), the ledger that is their one writer (``ledger``),
the evidence providers it joins in (``providers``), the ``incidents`` table (``store``) and the
exports (``export``). Alert sinks follow in ``observatory.alerts``."""
