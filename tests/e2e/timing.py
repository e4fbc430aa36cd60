"""What the e2e test modules share: a decorator that prints how long a test took
(unittest -v has printed its name just before), and the JSON file of figures the
suites write their measurements to."""

import functools
import json
import os
import sys
import time


def timed(fn):
    @functools.wraps(fn)
    def wrapper(self, *a, **kw):
        t0 = time.monotonic()
        try:
            return fn(self, *a, **kw)
        finally:
            sys.stderr.write(f"[{time.monotonic() - t0:5.2f}s] ")
    return wrapper


def save_results(path: str, key: str, value) -> None:
    """Merge {key: value} into the results JSON file at `path` (shared by the suites)."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        data = {}
    data[key] = value
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
