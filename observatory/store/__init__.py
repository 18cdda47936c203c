"""The embedded DuckDB: the schema, the store that writes rows and file offsets in one
transaction (``db``), and read-only SQL for people (``query``) and for the API (``sqlguard``)."""
