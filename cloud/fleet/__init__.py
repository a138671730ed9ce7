"""The fleet view: a twin per device and per gateway, gateway heartbeats, silence and offline."""
