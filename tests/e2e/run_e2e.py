#!/usr/bin/env python3
"""Runs the NAT-lab suites (tests/e2e) and writes a JUnit XML report.

    python3 tests/e2e/run_e2e.py --build-dir build --junit build/test-results/e2e.xml

`make test` runs it through meson (tests/e2e/meson.build).  Suites:
test_natlab (the lab itself), test_product (relay-dataplane, relay-control,
relay-peer and wireguard-go end to end) and test_attacker (the same under attack); test_kernel_wg (the kernel module's
WireGuard) only when named (`make test-kernel-wg`).  Without root, tools or
binaries the tests are reported as skipped.  The report's root element carries tests,
failures, errors and disabled like GoogleTest's (.ci/count_results.py sums
them); a skipped test is a testcase with result="skipped".

After the suites it checks that nothing of this run is left: no namespace,
WireGuard socket, DPDK runtime directory or process of a lab (reported as the
test case run_e2e.nothing_left_behind).

Exit status: 1 when a test failed; 77 (meson's "skipped") when no test ran
because every one was skipped; 0 otherwise.
"""

import argparse
import os
import sys
import time
import traceback
import unittest
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True

SUITES = ["test_natlab", "test_product", "test_attacker"]   # test_kernel_wg runs only when named
EXIT_SKIPPED = 77   # meson test's "skipped"


class RecordingResult(unittest.TextTestResult):
    """A verbose text result that also records each test's outcome and time."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.records = []   # (suite class id, test name, outcome, seconds, message)
        self._started = {}

    def startTest(self, test):
        self._started[test.id()] = time.monotonic()
        super().startTest(test)

    def _record(self, test, outcome, message=""):
        tid = test.id() if hasattr(test, "id") else str(test)
        seconds = time.monotonic() - self._started.get(tid, time.monotonic())
        if isinstance(test, unittest.TestCase):
            classname = f"{type(test).__module__}.{type(test).__name__}"
            name = test._testMethodName
        else:  # an error in setUpClass/tearDownClass/setUpModule (_ErrorHolder)
            desc = str(test)
            classname, name = desc.split(" ")[-1].strip("()"), desc.split(" ")[0]
        self.records.append((classname, name, outcome, seconds, message))

    def addSuccess(self, test):
        super().addSuccess(test)
        self._record(test, "passed")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._record(test, "failure", self._exc_info_to_string(err, test))

    def addError(self, test, err):
        super().addError(test, err)
        self._record(test, "error", self._exc_info_to_string(err, test))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._record(test, "skipped", reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._record(test, "passed")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._record(test, "failure", "unexpected success")


def leftovers(pid: int):
    """What a lab of process PID left behind (natlab names everything <prefix><pid>...)."""
    import natlab as N
    tag = f"{N.DEFAULT_PREFIX}{pid}"
    found = [f"namespace {n}" for n in N.list_netns() if n.startswith(tag + "-")]
    for d, what in ((N.WG_SOCKET_DIR, "WireGuard socket"), (N.DPDK_RUNTIME_DIR, "DPDK directory")):
        try:
            found += [f"{what} {f}" for f in os.listdir(d) if f.startswith(tag)]
        except FileNotFoundError:
            pass
    out = N._run(["ip", "-o", "link", "show"], check=False).stdout
    found += [f"interface {l.split(':')[1].strip()}" for l in out.splitlines() if tag in l]
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == os.getpid():
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f"/{tag}-" in cmd or f" {tag}-" in cmd or f" {tag}w" in cmd:
            found.append(f"process {p}: {cmd.strip()[:120]}")
    return found


def write_junit(path: str, records, total_seconds: float) -> None:
    root = ET.Element("testsuites", name="e2e")
    by_class = {}
    for rec in records:
        by_class.setdefault(rec[0], []).append(rec)
    counts = {"tests": 0, "failures": 0, "errors": 0}
    for classname, recs in by_class.items():
        suite = ET.SubElement(root, "testsuite", name=classname)
        s_counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for _, name, outcome, seconds, message in recs:
            tc = ET.SubElement(suite, "testcase", name=name, classname=classname,
                               time=f"{seconds:.3f}", status="run",
                               result="skipped" if outcome == "skipped" else "completed")
            s_counts["tests"] += 1
            if outcome == "failure":
                s_counts["failures"] += 1
                ET.SubElement(tc, "failure", message=message.splitlines()[-1][:200] if message else "",
                              type="").text = message
            elif outcome == "error":
                s_counts["errors"] += 1
                ET.SubElement(tc, "error", message=message.splitlines()[-1][:200] if message else "",
                              type="").text = message
            elif outcome == "skipped":
                s_counts["skipped"] += 1
                ET.SubElement(tc, "skipped", message=message)
        for k, v in s_counts.items():
            suite.set(k, str(v))
        suite.set("disabled", "0")
        for k in counts:
            counts[k] += s_counts[k]
    for k, v in counts.items():
        root.set(k, str(v))
    root.set("disabled", "0")
    root.set("time", f"{total_seconds:.3f}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def start_reaper() -> None:
    """A process in its own session that outlives this one and then removes what
    its labs left behind (natlab.cleanup_stale).  meson test ends a test that
    timed out, or that Ctrl-C interrupted, with SIGTERM to its process group and
    SIGKILL half a second later: too soon for a teardown of a dozen namespaces.
    The reaper is not in that group; it notices this process's end when the pipe
    it holds closes."""
    r, w = os.pipe()
    pid = os.fork()
    if pid:
        os.close(r)   # w stays open (not inherited: subprocess closes other fds) until we end
        return
    try:
        os.setsid()
        os.close(w)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        parent = os.getppid()
        while os.read(r, 1):
            pass
        import natlab as N
        deadline = time.monotonic() + 10
        while N._pid_alive(parent) and time.monotonic() < deadline:
            time.sleep(0.1)   # gone, or a zombie until its parent reaps it
        N.cleanup_stale()
    finally:
        os._exit(0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default=os.path.join(HERE, "..", "..", "build"),
                    help="meson build directory with the product's binaries")
    ap.add_argument("--junit", help="write a JUnit XML report here")
    ap.add_argument("tests", nargs="*", help="suites or test names (default: all suites)")
    args = ap.parse_args()
    build = os.path.abspath(args.build_dir)
    os.environ["RELAY_BUILD_DIR"] = build
    os.environ.setdefault("RELAY_E2E_RESULTS", os.path.join(build, "test-results",
                                                            "e2e-results.json"))
    try:
        os.unlink(os.environ["RELAY_E2E_RESULTS"])   # this run's figures only
    except OSError:
        pass
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)

    if os.geteuid() == 0:
        start_reaper()
    loader = unittest.TestLoader()
    suite = loader.loadTestsFromNames(args.tests or SUITES)
    runner = unittest.TextTestRunner(verbosity=2, resultclass=RecordingResult, stream=sys.stderr)
    t0 = time.monotonic()
    result = runner.run(suite)
    records = list(result.records)
    if os.geteuid() == 0:
        try:
            left = leftovers(os.getpid())
        except Exception:
            left = ["checking failed: " + traceback.format_exc()]
        records.append(("run_e2e", "nothing_left_behind", "failure" if left else "passed", 0.0,
                        "left behind:\n" + "\n".join(left) if left else ""))
        if left:
            sys.stderr.write("run_e2e: left behind:\n  " + "\n  ".join(left) + "\n")
    if args.junit:
        write_junit(args.junit, records, time.monotonic() - t0)
    bad = [r for r in records if r[2] in ("failure", "error")]
    tests = [r for r in records if r[0] != "run_e2e"]
    if bad:
        return 1
    return EXIT_SKIPPED if tests and all(r[2] == "skipped" for r in tests) else 0


if __name__ == "__main__":
    sys.exit(main())
