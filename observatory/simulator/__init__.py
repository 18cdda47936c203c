"""The simulator: fake platform and status APIs on loopback, plus a forwarder writing logs.

`server.SimServer` imitates the TikTok Events API, Meta CAPI, Google Ads, an Atlassian status
page, a rudder-server Prometheus endpoint and Segment delivery metrics; `forwarder.Forwarder`
really POSTs batches to it with httpx and writes pino-style delivery lines; `scenario` scripts
faults over time from small TOML files.
"""
