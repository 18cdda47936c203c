"""HTTP servers the owner runs: the local API viewers and CLI commands attach to, and the backup
webhook receiver; and the client that talks to the API."""
