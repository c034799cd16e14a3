"""`omen demo`: simulated upstreams, generated traffic and history, and the console."""
