"""The HTTP layer: thin Starlette handlers that parse, call the gateway, and shape the answer."""
