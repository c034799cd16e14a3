"""Inbound wire formats: each a small codec between a client\x27s format and the gateway."""
