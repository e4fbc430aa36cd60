#!/usr/bin/env bash
# Reserves hugepages for the relay data plane (DPDK) on each NUMA node, or on
# the node of one NIC, and makes sure hugetlbfs is mounted for that page size.
# Idempotent: it sets the reservation to exactly the number asked for and
# changes nothing when that is already the case.  Run at boot by
# relay-hugepages.service; see docs/OPERATIONS.md.
set -euo pipefail

prog=${0##*/}
node_root=/sys/devices/system/node
global_root=/sys/kernel/mm/hugepages

usage() {
    cat <<EOF
usage: $prog [OPTIONS] [PAGES]

Reserves PAGES hugepages on every NUMA node that has memory (or on one node
with --node/--nic) and mounts hugetlbfs for that page size if no mount exists.
Sets the reservation to exactly PAGES: run it again with the same arguments
and nothing changes; PAGES 0 releases the free pages.

options:
  -n, --pages N     pages per node (or give PAGES); default \$RELAY_HUGEPAGES
  -s, --size SIZE   page size: 2M (default, \$RELAY_HUGEPAGE_SIZE) or 1G, or any
                    size the kernel offers (see /sys/kernel/mm/hugepages)
      --node ID     reserve on NUMA node ID only (\$RELAY_HUGEPAGE_NODE)
      --nic PCI     reserve on the NUMA node of this NIC, e.g. 0000:03:00.0
                    (\$RELAY_HUGEPAGE_NIC): where the data plane's lcores and
                    packet memory should be
      --mount DIR   hugetlbfs mount point (default /dev/hugepages for the
                    default page size, /dev/hugepages-SIZE for another size)
      --status      print the current reservations and mounts; change nothing
      --dry-run     print what would be done; change nothing
  -h, --help        this text

DPDK allocates its memory (dataplane.eal.memory_mb) on the NUMA node of the
lcores that use it, so reserve at least memory_mb / page size on the NIC's
node, plus headroom.  1G pages can rarely be reserved once memory is
fragmented: prefer the kernel command line for them
(default_hugepagesz=1G hugepagesz=1G hugepages=N).

exit status: 0 done, 1 the kernel reserved fewer pages than asked or a mount
failed, 2 usage error.
EOF
}

die_usage() {
    echo "$prog: $*" >&2
    echo "try '$prog --help'" >&2
    exit 2
}

fail() {
    echo "$prog: $*" >&2
    exit 1
}

# "2M", "2048k", "2048kB", "1G", "1GB" -> size in kB ("" when unparsable).
to_kb() {
    local v=${1%B}
    v=${v%b}
    local num=${v%[kKmMgG]} unit=${v:${#v}-1}
    [[ $num =~ ^[0-9]+$ ]] || { echo ""; return; }
    case $unit in
        k | K) echo "$num" ;;
        m | M) echo $((num * 1024)) ;;
        g | G) echo $((num * 1024 * 1024)) ;;
        *) echo "" ;;
    esac
}

# 2048 -> "2M", 1048576 -> "1G": how sizes are shown to the operator.
label_of() {
    local kb=$1
    if ((kb % 1048576 == 0)); then echo "$((kb / 1048576))G"
    elif ((kb % 1024 == 0)); then echo "$((kb / 1024))M"
    else echo "${kb}K"; fi
}

# Expands a kernel CPU/node list ("0-1,3") into "0 1 3".
expand_list() {
    local out=() part lo hi i
    local IFS=,
    for part in $1; do
        [[ -z $part ]] && continue
        if [[ $part == *-* ]]; then
            lo=${part%-*}
            hi=${part#*-}
            for ((i = lo; i <= hi; i++)); do out+=("$i"); done
        else
            out+=("$part")
        fi
    done
    echo "${out[*]}"
}

default_kb() {
    awk '/^Hugepagesize:/ { print $2 }' /proc/meminfo
}

# Prints the mount point of a hugetlbfs for pages of $1 kB, if there is one.
# A mount without a pagesize= option has the default size.
find_mount() {
    local want=$1 def dir type opts size
    def=$(default_kb)
    while read -r _ dir type opts _; do
        [[ $type == hugetlbfs ]] || continue
        size=$def
        if [[ ,$opts, =~ ,pagesize=([^,]+), ]]; then size=$(to_kb "${BASH_REMATCH[1]}"); fi
        if [[ $size == "$want" ]]; then
            echo "$dir"
            return 0
        fi
    done </proc/mounts
    return 1
}

is_mountpoint() {
    awk -v d="$1" '$2 == d { found = 1 } END { exit !found }' /proc/mounts
}

# The nr_hugepages file of node $1 ("" = the whole machine, for kernels
# without NUMA) for pages of $kb kB.
count_file() {
    if [[ -z $1 ]]; then
        echo "$global_root/hugepages-${kb}kB/nr_hugepages"
    else
        echo "$node_root/node$1/hugepages/hugepages-${kb}kB/nr_hugepages"
    fi
}

free_file() {
    local f
    f=$(count_file "$1")
    echo "${f%/nr_hugepages}/free_hugepages"
}

node_name() {
    if [[ -z $1 ]]; then echo "system"; else echo "node$1"; fi
}

pages=${RELAY_HUGEPAGES:-}
size=${RELAY_HUGEPAGE_SIZE:-2M}
only_node=${RELAY_HUGEPAGE_NODE:-}
nic=${RELAY_HUGEPAGE_NIC:-}
mount_dir=""
dry_run=0
status_only=0

while (($#)); do
    case $1 in
        -h | --help) usage; exit 0 ;;
        -n | --pages) (($# >= 2)) || die_usage "$1 needs a number"; pages=$2; shift 2 ;;
        --pages=*) pages=${1#*=}; shift ;;
        -s | --size) (($# >= 2)) || die_usage "$1 needs a size"; size=$2; shift 2 ;;
        --size=*) size=${1#*=}; shift ;;
        --node) (($# >= 2)) || die_usage "$1 needs a node id"; only_node=$2; shift 2 ;;
        --node=*) only_node=${1#*=}; shift ;;
        --nic) (($# >= 2)) || die_usage "$1 needs a PCI address"; nic=$2; shift 2 ;;
        --nic=*) nic=${1#*=}; shift ;;
        --mount) (($# >= 2)) || die_usage "$1 needs a directory"; mount_dir=$2; shift 2 ;;
        --mount=*) mount_dir=${1#*=}; shift ;;
        --dry-run) dry_run=1; shift ;;
        --status) status_only=1; shift ;;
        -*) die_usage "unknown option '$1'" ;;
        *)
            [[ -z ${positional_seen:-} ]] || die_usage "unexpected argument '$1'"
            positional_seen=1
            pages=$1
            shift
            ;;
    esac
done

[[ -d $global_root ]] || fail "this kernel has no hugepage support ($global_root is missing)"
kb=$(to_kb "$size")
[[ -n $kb && -d $global_root/hugepages-${kb}kB ]] ||
    die_usage "page size '$size' is not offered by this kernel; it offers: $(
        for d in "$global_root"/hugepages-*kB; do
            s=${d##*/hugepages-}
            printf '%s ' "$(label_of "${s%kB}")"
        done)"
label=$(label_of "$kb")
[[ -z $only_node || -z $nic ]] || die_usage "give --node or --nic, not both"

# Which nodes to reserve on.  Without per-node files (no NUMA in the kernel)
# there is one machine-wide counter, shown as "system".
if [[ -d $node_root/node0/hugepages ]]; then
    mem_nodes=$(expand_list "$(cat "$node_root/has_memory" 2>/dev/null || cat "$node_root/online")")
    if [[ -n $nic ]]; then
        [[ $nic == *:*:*.* ]] || nic="0000:$nic"
        [[ -e /sys/bus/pci/devices/$nic ]] || fail "no PCI device $nic"
        only_node=$(cat "/sys/bus/pci/devices/$nic/numa_node")
        if [[ $only_node == -1 ]]; then
            # The platform did not say: fine on a one-node machine, a guess otherwise.
            read -r -a all <<<"$mem_nodes"
            if ((${#all[@]} == 1)); then
                only_node=${all[0]}
            else
                fail "$nic reports no NUMA node; give --node"
            fi
        fi
        echo "$prog: $nic is on NUMA node $only_node"
    fi
    if [[ -n $only_node ]]; then
        [[ $only_node =~ ^[0-9]+$ && -d $node_root/node$only_node/hugepages ]] ||
            die_usage "no NUMA node '$only_node' (nodes with memory: $mem_nodes)"
        nodes=("$only_node")
    else
        read -r -a nodes <<<"$mem_nodes"
    fi
else
    [[ -z $only_node && -z $nic ]] || echo "$prog: this kernel has no NUMA nodes; --node/--nic ignored"
    nodes=("")
fi

if ((status_only)); then
    for n in "${nodes[@]}"; do
        echo "$(node_name "$n"): $(<"$(count_file "$n")") x $label pages reserved, $(<"$(free_file "$n")") free"
    done
    if m=$(find_mount "$kb"); then
        echo "hugetlbfs for $label pages mounted at $m"
    else
        echo "no hugetlbfs mount for $label pages"
    fi
    exit 0
fi

[[ -n $pages ]] || die_usage "how many pages? give PAGES, --pages or RELAY_HUGEPAGES"
[[ $pages =~ ^[0-9]+$ ]] || die_usage "pages must be a number, got '$pages'"
((dry_run)) || (($(id -u) == 0)) || fail "must run as root (or use --dry-run)"

status=0
for n in "${nodes[@]}"; do
    f=$(count_file "$n")
    name=$(node_name "$n")
    before=$(<"$f")
    if ((before == pages)); then
        echo "$name: $pages x $label pages already reserved ($(<"$(free_file "$n")") free)"
        continue
    fi
    if ((dry_run)); then
        echo "$name: would change $label pages from $before to $pages"
        continue
    fi
    # The kernel reserves what it can find and reports that; it does not fail.
    echo "$pages" >"$f" || true
    after=$(<"$f")
    if ((after == pages)); then
        echo "$name: $label pages $before -> $after"
    else
        echo "$name: asked for $pages x $label pages, the kernel has $after" \
            "(not enough free contiguous memory; reserve at boot or on the kernel command line)" >&2
        status=1
    fi
done

# DPDK finds hugepages through hugetlbfs mounts of the right page size.
if ((pages > 0)); then
    if existing=$(find_mount "$kb"); then
        if [[ -n $mount_dir && $mount_dir != "$existing" ]]; then
            echo "hugetlbfs for $label pages is already mounted at $existing; not mounting at $mount_dir"
        else
            echo "hugetlbfs for $label pages already mounted at $existing"
        fi
    else
        dir=$mount_dir
        if [[ -z $dir ]]; then
            dir=/dev/hugepages
            # /dev/hugepages taken by another page size (or not the default size): own directory.
            if [[ $kb != "$(default_kb)" ]] || is_mountpoint "$dir"; then dir=/dev/hugepages-$label; fi
        fi
        if is_mountpoint "$dir"; then
            echo "$prog: $dir is already a mount point of something else; give --mount" >&2
            status=1
        elif ((dry_run)); then
            echo "would mount hugetlbfs (pagesize=$label) at $dir"
        elif mkdir -p "$dir" && mount -t hugetlbfs -o "pagesize=${kb}K" nodev "$dir"; then
            echo "mounted hugetlbfs (pagesize=$label) at $dir"
        else
            echo "$prog: could not mount hugetlbfs at $dir" >&2
            status=1
        fi
    fi
fi
exit "$status"
