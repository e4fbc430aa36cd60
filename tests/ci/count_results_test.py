#!/usr/bin/env python3
"""Tests of .ci/count_results.py against synthetic meson logs and JUnit reports
(GoogleTest's form, and run_e2e.py's).  Run by meson as the `ci-scripts` test:

    python3 tests/ci/count_results_test.py
"""
import importlib.util
import io
import json
import os
import pathlib
import sys
import tempfile
import time
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("count_results", ROOT / ".ci" / "count_results.py")
count_results = importlib.util.module_from_spec(spec)
spec.loader.exec_module(count_results)


def gtest_xml(cases):
    """A GoogleTest-style report; cases: (name, kind) with kind passed, failed,
    skipped (GTEST_SKIP) or disabled."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           f'<testsuites tests="{len(cases)}" failures="{sum(k == "failed" for _, k in cases)}" '
           f'disabled="{sum(k == "disabled" for _, k in cases)}" errors="0" name="AllTests">',
           '  <testsuite name="Suite">']
    for name, kind in cases:
        if kind == "passed":
            out.append(f'    <testcase name="{name}" status="run" result="completed" classname="Suite"/>')
        elif kind == "failed":
            out.append(f'    <testcase name="{name}" status="run" result="completed" classname="Suite">'
                       '<failure message="x.cpp:1 boom"/></testcase>')
        elif kind == "skipped":
            out.append(f'    <testcase name="{name}" status="run" result="skipped" classname="Suite">'
                       '<skipped message="needs root"/></testcase>')
        elif kind == "disabled":
            out.append(f'    <testcase name="DISABLED_{name}" status="notrun" result="suppressed" '
                       'classname="Suite"/>')
    out += ['  </testsuite>', '</testsuites>']
    return "\n".join(out)


class CountResultsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.start = time.time() - 5

    def build(self, name="build"):
        b = pathlib.Path(self.tmp.name) / name
        (b / "meson-logs").mkdir(parents=True, exist_ok=True)
        (b / "test-results").mkdir(exist_ok=True)
        return b

    def meson_result(self, build, name, result, pretty=None):
        entry = {"name": pretty or name, "result": result, "starttime": self.start,
                 "returncode": {"OK": 0, "SKIP": 77, "FAIL": 1}.get(result, -15)}
        with open(build / "meson-logs" / "testlog.json", "a") as f:
            f.write(json.dumps(entry) + "\n")

    def report(self, build, name, xml):
        (build / "test-results" / f"{name}.xml").write_text(xml)

    def run_count(self, builds, ci=False, extra_failures=0):
        out = io.StringIO()
        argv = (["--extra-failures", str(extra_failures)] if extra_failures else [])
        argv += [str(b) for b in builds]
        rc = count_results.main(argv, environ={"CI": "true"} if ci else {}, out=out)
        lines = out.getvalue().splitlines()
        return rc, lines

    def test_counts_every_gtest_case_and_the_closing_line_has_three_numbers(self):
        b = self.build()
        self.meson_result(b, "unit", "OK")
        self.report(b, "unit", gtest_xml([("a", "passed"), ("b", "passed"), ("c", "passed")]))
        rc, lines = self.run_count([b])
        self.assertEqual(lines[-1], "3 passed, 0 failed, 0 skipped")
        self.assertEqual(rc, 0)

    def test_a_failed_case_fails_the_run(self):
        b = self.build()
        self.meson_result(b, "unit", "FAIL")
        self.report(b, "unit", gtest_xml([("a", "passed"), ("b", "failed")]))
        rc, lines = self.run_count([b])
        self.assertEqual(lines[-1], "1 passed, 1 failed, 0 skipped")
        self.assertIn("failed: unit: Suite.b", lines)
        self.assertEqual(rc, 1)

    def test_skipped_and_disabled_cases_are_skips_not_passes(self):
        b = self.build()
        self.meson_result(b, "unit", "OK")
        self.report(b, "unit", gtest_xml([("a", "passed"), ("b", "skipped"), ("c", "disabled")]))
        rc, lines = self.run_count([b])
        self.assertEqual(lines[-1], "1 passed, 0 failed, 2 skipped")
        self.assertIn("skipped: unit: Suite.b (needs root)", lines)
        self.assertEqual(rc, 0, "outside CI a skip is reported, not a failure")

    def test_in_ci_a_skipped_case_fails_the_run_and_is_still_counted(self):
        b = self.build()
        self.meson_result(b, "unit", "OK")
        self.report(b, "unit", gtest_xml([("a", "passed"), ("b", "skipped")]))
        rc, lines = self.run_count([b], ci=True)
        self.assertEqual(lines[-1], "1 passed, 0 failed, 1 skipped")
        self.assertIn("skipped (a failure in CI): unit: Suite.b (needs root)", lines)
        self.assertEqual(rc, 1)

    def test_a_suite_that_exits_77_is_one_skip_and_fails_ci(self):
        b = self.build()
        self.meson_result(b, "deploy-checks", "SKIP")   # no report: a shell suite
        self.meson_result(b, "peer", "OK")
        self.report(b, "peer", gtest_xml([("a", "passed")]))
        rc, lines = self.run_count([b])
        self.assertEqual(lines[-1], "1 passed, 0 failed, 1 skipped")
        self.assertEqual(rc, 0)
        rc, lines = self.run_count([b], ci=True)
        self.assertEqual(lines[-1], "1 passed, 0 failed, 1 skipped")
        self.assertEqual(rc, 1)

    def test_a_suite_that_exits_77_with_only_passes_in_its_report_adds_a_skip(self):
        b = self.build()
        self.meson_result(b, "e2e", "SKIP")
        self.report(b, "e2e", gtest_xml([("nothing_left_behind", "passed")]))
        _, lines = self.run_count([b])
        self.assertEqual(lines[-1], "1 passed, 0 failed, 1 skipped")

    def test_a_suite_that_exits_77_with_skipped_cases_is_not_counted_twice(self):
        b = self.build()
        self.meson_result(b, "e2e", "SKIP")
        self.report(b, "e2e", gtest_xml([("x", "skipped"), ("y", "skipped")]))
        _, lines = self.run_count([b])
        self.assertEqual(lines[-1], "0 passed, 0 failed, 2 skipped")

    def test_non_gtest_suites_count_by_meson_result(self):
        b = self.build()
        self.meson_result(b, "deploy-checks", "OK")
        self.meson_result(b, "ci-scripts", "FAIL")
        self.meson_result(b, "slow", "TIMEOUT")
        rc, lines = self.run_count([b])
        self.assertEqual(lines[-1], "1 passed, 2 failed, 0 skipped")
        self.assertEqual(rc, 1)

    def test_a_crash_after_the_report_is_a_failure(self):
        b = self.build()
        self.meson_result(b, "unit", "ERROR")
        self.report(b, "unit", gtest_xml([("a", "passed")]))
        _, lines = self.run_count([b])
        self.assertEqual(lines[-1], "1 passed, 1 failed, 0 skipped")

    def test_a_stale_or_truncated_report_is_not_used(self):
        b = self.build()
        self.report(b, "unit", gtest_xml([("a", "passed"), ("b", "passed")]))
        old = self.start - 3600
        os.utime(b / "test-results" / "unit.xml", (old, old))
        self.meson_result(b, "unit", "FAIL")          # crashed before writing this run's report
        self.meson_result(b, "control", "OK")
        self.report(b, "control", "<testsuites><testsuite><testcase name=")   # cut short
        _, lines = self.run_count([b])
        self.assertEqual(lines[-1], "1 passed, 1 failed, 0 skipped")

    def test_meson_suite_prefixes_are_stripped_to_find_the_report(self):
        b = self.build()
        self.meson_result(b, "unit", "OK", pretty="p2p-relay / unit")
        self.report(b, "unit", gtest_xml([("a", "passed"), ("b", "passed")]))
        _, lines = self.run_count([b])
        self.assertEqual(lines[-1], "2 passed, 0 failed, 0 skipped")

    def test_several_build_dirs_and_extra_failures_add_up(self):
        b1, b2 = self.build("build"), self.build("build-asan")
        self.meson_result(b1, "unit", "OK")
        self.report(b1, "unit", gtest_xml([("a", "passed"), ("b", "skipped")]))
        self.meson_result(b2, "unit", "OK")
        self.report(b2, "unit", gtest_xml([("a", "passed"), ("b", "passed")]))
        rc, lines = self.run_count([b1, b2], extra_failures=1)
        self.assertEqual(lines[-1], "3 passed, 1 failed, 1 skipped")
        self.assertEqual(rc, 1)

    def test_a_build_dir_without_a_log_counts_nothing(self):
        rc, lines = self.run_count([pathlib.Path(self.tmp.name) / "missing"])
        self.assertEqual(lines, ["0 passed, 0 failed, 0 skipped"])
        self.assertEqual(rc, 0)

    def test_ci_is_read_from_the_environment(self):
        self.assertTrue(count_results.in_ci({"CI": "true"}))
        self.assertTrue(count_results.in_ci({"CI": "1"}))
        self.assertFalse(count_results.in_ci({"CI": "false"}))
        self.assertFalse(count_results.in_ci({}))

    def test_run_e2e_reports_count_like_gtest_ones(self):
        sys.path.insert(0, str(ROOT / "tests" / "e2e"))
        try:
            import run_e2e
        finally:
            sys.path.pop(0)
        b = self.build()
        records = [("test_product.ProductMeshTest", "test_1", "passed", 1.0, ""),
                   ("test_product.ProductMeshTest", "test_2", "failure", 1.0, "boom"),
                   ("test_kernel_wg.KernelWireGuardTest", "test_1", "skipped", 0.0, "no module")]
        run_e2e.write_junit(str(b / "test-results" / "e2e.xml"), records, 3.0)
        self.meson_result(b, "e2e", "FAIL")
        rc, lines = self.run_count([b], ci=True)
        self.assertEqual(lines[-1], "1 passed, 1 failed, 1 skipped")
        self.assertIn("skipped (a failure in CI): e2e: test_kernel_wg.KernelWireGuardTest.test_1 "
                      "(no module)", lines)
        self.assertEqual(rc, 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
