"""What the e2e test modules share: a decorator that prints how long a test took
(unittest -v has printed its name just before)."""

import functools
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
