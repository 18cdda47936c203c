"""HTTP servers the owner runs, on aiohttp (``background.BackgroundServer``): the local API that
viewers and CLI commands attach to (``api``, ``feed``), and the backup webhook receiver
(``observatory.backup.receiver``); and the API's client (``client``, ``remote_cursor``)."""
