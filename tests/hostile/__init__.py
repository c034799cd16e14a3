"""The hostile suite (issue 11): a raw-socket misbehaving upstream, misbehaving clients, a
fuzzer over every route, kill -9 / SIGTERM under load, a store that cannot write, and keyless
loopback CSRF / DNS rebinding — each against `omen serve` as a process on a real SQLite file.

Run alone with ``.venv/bin/python -m pytest tests/hostile -s`` (``-s`` prints the figures:
requests, 5xx, RSS peaks, rows lost).
"""
