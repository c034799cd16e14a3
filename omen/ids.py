"""Request ids: sortable by time, unique across restarts and instances."""

from __future__ import annotations

import os
import time


def new_request_id() -> str:
    # 12 hex digits of milliseconds keep ids in time order; 10 random hex digits keep two
    # instances (or a restart within the same millisecond) from colliding.
    return f"req_{int(time.time() * 1000):012x}{os.urandom(5).hex()}"
