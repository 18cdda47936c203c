"""The simulator: fake platform and status APIs on loopback, plus a forwarder writing logs.

`server.SimServer` (aiohttp, on 127.0.0.1) imitates the TikTok Events API, Meta CAPI, Google
Ads (answers in `vendors`), an Atlassian status page, a rudder-server Prometheus endpoint and
Segment delivery metrics (`status_apis`), all over the shared `state` of the `platforms`;
`delivery.Forwarder` really POSTs batches (`conversions`) to it with httpx and writes pino-style
delivery lines, and `forwarder.Simulation` runs the two; `scenario` scripts faults over time from
small TOML files.
"""
