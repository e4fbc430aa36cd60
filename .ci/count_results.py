#!/usr/bin/env python3
"""Sums GoogleTest JUnit reports of one or more meson build dirs and prints
'N passed, N failed'.  A meson test that failed without leaving a report (a
crash, a timeout) counts as one failure.  Exit status 1 if anything failed."""
import json
import pathlib
import sys
import xml.etree.ElementTree as ET

args = sys.argv[1:]
passed = failed = 0
if args[:1] == ["--extra-failures"]:
    failed = int(args[1])
    args = args[2:]
for build in args:
    build = pathlib.Path(build)
    log = build / "meson-logs" / "testlog.json"
    if not log.exists():
        continue
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        name = entry["name"]
        report = build / "test-results" / f"{name}.xml"
        if report.exists() and report.stat().st_mtime >= entry.get("starttime", 0) - 1:
            root = ET.parse(report).getroot()
            tests = int(root.get("tests", 0))
            bad = int(root.get("failures", 0)) + int(root.get("errors", 0))
            skipped = int(root.get("disabled", 0)) + sum(
                1 for tc in root.iter("testcase") if tc.get("result") == "skipped")
            passed += tests - bad - skipped
            failed += bad
            if entry["result"] not in ("OK", "EXPECTEDFAIL") and bad == 0:
                failed += 1  # crashed after writing, or exit code says failure
        elif entry["result"] not in ("OK", "EXPECTEDFAIL", "SKIP"):
            failed += 1
        else:
            passed += 1  # a non-GoogleTest check that passed
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
