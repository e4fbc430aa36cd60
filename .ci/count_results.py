#!/usr/bin/env python3
"""Sums the results of every test suite that meson ran in one or more build
dirs and prints one closing line: 'N passed, N failed, N skipped'.

    count_results.py [--extra-failures N] BUILD_DIR...

For each test in BUILD_DIR/meson-logs/testlog.json (one JSON object a line:
name, result, starttime...; the name without meson's "project:suite / " prefix):

- With a JUnit report BUILD_DIR/test-results/<name>.xml written by this run
  (GoogleTest's, or run_e2e.py's in the same form), every test case counts:
  failed if it has a <failure> or <error>, skipped if GoogleTest marked it
  skipped or disabled (result="skipped"/"suppressed", status="notrun", or a
  <skipped> element), passed otherwise.  A suite that meson saw fail although
  its report shows no failure (it crashed after writing, or its exit status
  says so) adds one failure; a suite that meson saw skip (exit status 77)
  although its report shows no skipped case adds one skip.
- Without a report, the suite is one result: OK or EXPECTEDFAIL is a pass,
  SKIP (exit status 77) a skip, anything else (FAIL, TIMEOUT, ERROR...) a
  failure.

Skipped tests are listed (one line each, before the closing line).  Exit
status 1 if anything failed, and, when the environment says CI=true, also if
anything was skipped: in CI a test that did not run is not a pass.
"""
import json
import os
import pathlib
import sys
import xml.etree.ElementTree as ET

PASS_RESULTS = ("OK", "EXPECTEDFAIL")
SKIP_RESULT = "SKIP"


def case_outcome(tc: ET.Element) -> str:
    """'failed', 'skipped' or 'passed' for one JUnit <testcase>."""
    if tc.find("failure") is not None or tc.find("error") is not None:
        return "failed"
    if (tc.get("result") in ("skipped", "suppressed") or tc.get("status") == "notrun"
            or tc.find("skipped") is not None):
        return "skipped"
    return "passed"


class Totals:
    def __init__(self):
        self.passed = self.failed = self.skipped = 0
        self.skipped_names = []   # "suite: test (why)"
        self.failed_names = []

    def add(self, outcome: str, name: str, why: str = ""):
        if outcome == "passed":
            self.passed += 1
        elif outcome == "failed":
            self.failed += 1
            self.failed_names.append(name + (f" ({why})" if why else ""))
        else:
            self.skipped += 1
            self.skipped_names.append(name + (f" ({why})" if why else ""))


def count_build(build: pathlib.Path, totals: Totals) -> None:
    log = build / "meson-logs" / "testlog.json"
    if not log.exists():
        return
    for line in log.read_text().splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)
        # meson writes "project:suite / test" once the project has several suites.
        name = entry["name"].rsplit(" / ", 1)[-1]
        result = entry.get("result", "")
        report = build / "test-results" / f"{name}.xml"
        fresh = report.exists() and report.stat().st_mtime >= entry.get("starttime", 0) - 1
        root = None
        if fresh:
            try:
                root = ET.parse(report).getroot()
            except ET.ParseError:
                root = None   # cut short: judged by meson's result alone
        if root is None:
            if result in PASS_RESULTS:
                totals.add("passed", name)
            elif result == SKIP_RESULT:
                totals.add("skipped", name, "the whole suite skipped (exit status 77)")
            else:
                totals.add("failed", name, result or "no result")
            continue
        counted = {"passed": 0, "failed": 0, "skipped": 0}
        for tc in root.iter("testcase"):
            outcome = case_outcome(tc)
            counted[outcome] += 1
            skipped_el = tc.find("skipped")
            why = skipped_el.get("message", "") if skipped_el is not None else ""
            totals.add(outcome, f"{name}: {tc.get('classname', '')}.{tc.get('name', '')}",
                       why.strip().splitlines()[0] if outcome == "skipped" and why.strip() else "")
        if result not in PASS_RESULTS and result != SKIP_RESULT and counted["failed"] == 0:
            totals.add("failed", name, f"{result}: crashed after its report, or its exit status")
        if result == SKIP_RESULT and counted["skipped"] == 0:
            totals.add("skipped", name, "the whole suite skipped (exit status 77)")


def in_ci(environ=os.environ) -> bool:
    return environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def main(argv, environ=os.environ, out=sys.stdout) -> int:
    args = list(argv)
    totals = Totals()
    if args[:1] == ["--extra-failures"]:
        for _ in range(int(args[1])):
            totals.add("failed", "build", "a build failed before its tests could run")
        args = args[2:]
    for build in args:
        count_build(pathlib.Path(build), totals)
    ci = in_ci(environ)
    for n in totals.failed_names:
        print(f"failed: {n}", file=out)
    for n in totals.skipped_names:
        print(f"skipped{' (a failure in CI)' if ci else ''}: {n}", file=out)
    print(f"{totals.passed} passed, {totals.failed} failed, {totals.skipped} skipped", file=out)
    return 1 if totals.failed or (ci and totals.skipped) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
