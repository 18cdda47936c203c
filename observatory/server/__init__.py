"""HTTP servers the owner runs: the backup receiver now, the local API next."""
