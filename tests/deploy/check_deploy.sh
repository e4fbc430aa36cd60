#!/usr/bin/env bash
# Checks the deployment artefacts in deploy/ (and the metric and drop-reason
# coverage of docs/OPERATIONS.md): script syntax, Prometheus config, alert
# rules and their unit tests, the Grafana dashboard, the systemd units.
# promtool is required (package prometheus): without it the Prometheus checks
# fail rather than skip, so a missing tool cannot pass for green.
# Exit status: 0 when every check passed, 1 otherwise.
#   tests/deploy/check_deploy.sh
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
deploy=$root/deploy
prom=$deploy/prometheus
dashboard=$deploy/grafana/relay-dashboard.json
metrics_cpp=$root/dataplane/src/metrics.cpp
reasons_hpp=$root/dataplane/src/drop_reason.hpp
operations=$root/docs/OPERATIONS.md

passed=0
failed=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

ok() {
    echo "ok      $1"
    passed=$((passed + 1))
}

not_ok() {
    echo "FAILED  $1"
    failed=$((failed + 1))
}

skip() {
    echo "skipped $1"
}

# Runs a command; passes when it exits 0.  Its output is shown only on failure.
check() {
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then
        ok "$name"
    else
        not_ok "$name"
        printf '%s\n' "$out" | sed 's/^/        /'
    fi
}

# Passes when a command exits 0 and prints nothing (tools that only warn).
check_silent() {
    local name=$1 out rc
    shift
    out=$("$@" 2>&1)
    rc=$?
    if ((rc == 0)) && [[ -z $out ]]; then
        ok "$name"
    else
        not_ok "$name (exit $rc)"
        printf '%s\n' "$out" | sed 's/^/        /'
    fi
}

# Passes when a command exits with status $2.
check_exit() {
    local name=$1 want=$2 rc
    shift 2
    "$@" >/dev/null 2>&1
    rc=$?
    if ((rc == want)); then ok "$name"; else not_ok "$name (exit $rc, expected $want)"; fi
}

# Every name in $1 (one a line) must appear in file $2 as written in $3 (a
# printf format, e.g. '"%s"').
all_present() {
    local names=$1 file=$2 format=$3 name missing=()
    while read -r name; do
        [[ -z $name ]] && continue
        # shellcheck disable=SC2059  # the format is the caller's pattern
        grep -qF -- "$(printf "$format" "$name")" "$file" || missing+=("$name")
    done <<<"$names"
    if ((${#missing[@]})); then
        echo "missing from ${file#"$root"/}: ${missing[*]}"
        return 1
    fi
}

echo "== scripts"
for script in "$deploy"/*.sh; do
    check "bash -n ${script#"$root"/}" bash -n "$script"
done
check "bash -n tests/deploy/check_deploy.sh" bash -n "${BASH_SOURCE[0]}"
own_scripts=("$deploy/hugepages.sh" "$deploy/bind-nic.sh" "${BASH_SOURCE[0]}")
if command -v shellcheck >/dev/null; then
    check "shellcheck hugepages.sh bind-nic.sh check_deploy.sh" shellcheck "${own_scripts[@]}"
else
    skip "shellcheck (not installed: apt-get install shellcheck)"
fi
check_exit "hugepages.sh --help exits 0" 0 bash "$deploy/hugepages.sh" --help
check_exit "hugepages.sh rejects a bad size (exit 2)" 2 bash "$deploy/hugepages.sh" --dry-run --size 3X 1
check_exit "bind-nic.sh --help exits 0" 0 bash "$deploy/bind-nic.sh" --help
check_exit "bind-nic.sh rejects a bad PCI address (exit 2)" 2 bash "$deploy/bind-nic.sh" --status not-a-pci

echo "== prometheus"
if command -v promtool >/dev/null; then
    check "promtool check config prometheus.yml" promtool check config "$prom/prometheus.yml"
    check "promtool check rules alerts.yml" promtool check rules "$prom/alerts.yml"
    check "promtool test rules alerts_test.yml" promtool test rules "$prom/alerts_test.yml"
else
    for what in "check config prometheus.yml" "check rules alerts.yml" "test rules alerts_test.yml"; do
        not_ok "promtool $what: promtool is not installed; install prometheus (apt-get install prometheus, or deploy/install-deps.sh)"
    done
fi
# Rules and panels must only use metrics the data plane exports, and reasons it counts.
exported=$(grep -o '"relay_dataplane_[a-z_]*"' "$metrics_cpp" | tr -d '"' | sort -u)
used=$(grep -oh 'relay_dataplane_[a-z_]*' "$prom/alerts.yml" "$dashboard" | sort -u)
check "alerts and dashboard use only exported metrics" all_present "$used" "$metrics_cpp" '"%s"'
# The drop reasons: the names of the X(...) entries of RELAY_DP_DROP_REASONS (the label is the name).
reasons=$(grep -o '^ *X([a-z_0-9]*,' "$reasons_hpp" | sed 's/^ *X(\(.*\),/\1/' | sort -u)
used_reasons=$(grep -o 'reason=~\?"[^"]*"' "$prom/alerts.yml" | sed 's/.*"\(.*\)"/\1/' | tr '|' '\n' |
    grep -v '[*.]' | sort -u)
check "alerts use only existing drop reasons" all_present "$used_reasons" "$reasons_hpp" 'X(%s,'

echo "== grafana"
check "python3 -m json.tool relay-dashboard.json" python3 -m json.tool "$dashboard"
# Structure, and every panel query as PromQL: the queries go into a rules file
# (Grafana's variables replaced by values) for promtool to parse.
dash_check() {
    python3 - "$dashboard" "$work/dashboard_rules.yml" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
problems = []
if not 36 <= d.get("schemaVersion", 0) <= 41:
    problems.append(f"schemaVersion {d.get('schemaVersion')} is not a Grafana 9/10 schema")
variables = {v["name"]: v for v in d.get("templating", {}).get("list", [])}
ds = variables.get("datasource")
if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
    problems.append("no Prometheus datasource variable named 'datasource'")
ids, exprs = set(), []
for p in d.get("panels", []):
    if p["id"] in ids:
        problems.append(f"duplicate panel id {p['id']}")
    ids.add(p["id"])
    if p["type"] == "row":
        continue
    if p.get("datasource", {}).get("uid") != "${datasource}":
        problems.append(f"panel '{p['title']}' does not use the datasource variable")
    for t in p.get("targets", []):
        exprs.append((p["title"], t["expr"]))
with open(sys.argv[2], "w") as out:
    out.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, (title, e) in enumerate(exprs):
        e = e.replace("$__rate_interval", "1m").replace("$instance", ".*")
        out.write(f"      - record: dashboard:query_{i}\n        expr: {json.dumps(e)}\n")
print("\n".join(problems))
sys.exit(1 if problems else 0)
EOF
}
check "dashboard structure (schema, datasource variable, panel ids)" dash_check
if command -v promtool >/dev/null; then
    check "dashboard queries parse as PromQL" promtool check rules "$work/dashboard_rules.yml"
else
    not_ok "dashboard queries parse as PromQL: promtool is not installed; install prometheus"
fi

echo "== docs"
# shellcheck disable=SC2016  # backquotes here are a Markdown code span, not a command
code_span='`%s`'
if [[ -f $operations ]]; then
    check "OPERATIONS.md explains every drop reason" all_present "$reasons" "$operations" "$code_span"
    check "OPERATIONS.md describes every metric" all_present "$exported" "$operations" "$code_span"
    control_exported=$(grep -o '"relay_control_[a-z_]*"' "$root/control/src/control_metrics.cpp" | tr -d '"' | sort -u)
    check "OPERATIONS.md describes every control metric" all_present "$control_exported" "$operations" "$code_span"
else
    not_ok "docs/OPERATIONS.md exists"
fi

echo "== systemd"
units=("$deploy"/systemd/*.service)
check "units run the installed programs" grep -q '^ExecStart=/usr/local/bin/relay run /etc/relay/relay.yaml$' \
    "$deploy/systemd/relay.service"
if command -v systemd-analyze >/dev/null; then
    # verify insists that every Exec path exists; point copies of the units at
    # stub programs so that it checks everything else.
    mkdir -p "$work/units/bin"
    for prog in relay relay-dataplane relay-hugepages; do
        printf '#!/bin/sh\n' >"$work/units/bin/$prog"
        chmod +x "$work/units/bin/$prog"
    done
    for unit in "${units[@]}"; do
        sed -e "s|/usr/local/bin/|$work/units/bin/|g" -e "s|/usr/local/sbin/|$work/units/bin/|g" \
            "$unit" >"$work/units/${unit##*/}"
    done
    for unit in "${units[@]}"; do
        # verify exits 0 even on unknown keys and bad values, so any output fails.
        check_silent "systemd-analyze verify ${unit##*/}" systemd-analyze verify "$work/units/${unit##*/}"
    done
else
    skip "systemd-analyze verify (systemd-analyze is not installed)"
fi

echo "deploy checks: $passed passed, $failed failed"
((failed == 0))
