#!/usr/bin/env python3
"""Runs one libFuzzer target for FUZZ_SECONDS (default 60) on a scratch copy of its seed
corpus (tests/fuzz/corpus/TARGET: the tree's corpus changes only when someone copies
inputs in on purpose), then writes <build>/test-results/fuzz-TARGET.xml: one test case
that fails when the target crashed, leaked, broke an invariant or timed out, naming the
saved input.  Prints one JSON line with the figures (executions, coverage, corpus).

usage: run_target.py BINARY CORPUS_DIR WORK_DIR RESULTS_DIR MAX_LEN
"""
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time
from xml.sax.saxutils import escape, quoteattr


def main():
    binary, corpus, work, results, max_len = sys.argv[1:6]
    name = pathlib.Path(binary).name.removeprefix("fuzz-")
    seconds = int(os.environ.get("FUZZ_SECONDS", "60"))
    work = pathlib.Path(work) / name
    shutil.rmtree(work, ignore_errors=True)
    scratch = work / "corpus"
    artifacts = work / "artifacts"
    artifacts.mkdir(parents=True)
    shutil.copytree(corpus, scratch) if pathlib.Path(corpus).is_dir() else scratch.mkdir()
    log_path = work / "fuzz.log"

    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1:symbolize=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    cmd = [binary, f"-max_total_time={seconds}", f"-max_len={max_len}", "-timeout=10",
           "-rss_limit_mb=2048", "-print_final_stats=1", f"-artifact_prefix={artifacts}/",
           str(scratch)]
    start = time.monotonic()
    with open(log_path, "w") as log:
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    elapsed = time.monotonic() - start
    text = log_path.read_text(errors="replace")

    stats = dict(re.findall(r"^stat::(\w+):\s+(\d+)", text, re.M))
    progress = re.findall(r"^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)", text, re.M)
    found = sorted(p.name for p in artifacts.iterdir())
    figures = {
        "target": name,
        "seconds": round(elapsed, 1),
        "executions": int(stats.get("number_of_executed_units", 0)),
        "exec_per_s": int(stats.get("average_exec_per_sec", 0)),
        "coverage": int(progress[-1][1]) if progress else 0,
        "features": int(progress[-1][2]) if progress else 0,
        "corpus": int(progress[-1][3]) if progress else 0,
        "peak_rss_mb": int(stats.get("peak_rss_mb", 0)),
        "result": "passed" if rc == 0 and not found else "failed",
        "artifacts": [str(artifacts / f) for f in found],
    }
    print(json.dumps(figures))
    (work / "result.json").write_text(json.dumps(figures) + "\n")

    failure = ""
    if figures["result"] == "failed":
        tail = "\n".join(text.splitlines()[-60:])
        failure = (f'<failure message={quoteattr(f"exit {rc}; inputs: {found}")}>'
                   f"{escape(tail)}</failure>")
        print(tail, file=sys.stderr)
    results = pathlib.Path(results)
    results.mkdir(parents=True, exist_ok=True)
    (results / f"fuzz-{name}.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<testsuites tests="1" failures="{1 if failure else 0}" errors="0" name="fuzz-{name}">\n'
        f'  <testsuite name="fuzz" tests="1" failures="{1 if failure else 0}" errors="0">\n'
        f'    <testcase name="{name}" classname="fuzz" time="{elapsed:.1f}">{failure}'
        f"<system-out>{escape(json.dumps(figures))}</system-out></testcase>\n"
        "  </testsuite>\n</testsuites>\n")
    return 0 if figures["result"] == "passed" else 1


if __name__ == "__main__":
    sys.exit(main())
