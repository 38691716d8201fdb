"""Polling for tests that drive real processes (servers, workers, browsers)."""

import time


def wait_for(predicate, timeout: float, what: str = "condition", interval: float = 0.3):
    """Poll ``predicate`` until it returns something truthy and return that; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
