#!/usr/bin/env bash
# Hands a PCI NIC to DPDK by binding it to vfio-pci, and gives it back to its
# kernel driver with --unbind.  The driver it had is saved in
# /run/relay/nic-<pci>.driver, so the restore needs no memory of the operator.
# Refuses to take an interface that is up and routed (most likely the one you
# are logged in through) unless --force.  See docs/OPERATIONS.md.
set -euo pipefail

prog=${0##*/}
state_dir=/run/relay
pci_root=/sys/bus/pci

usage() {
    cat <<EOF
usage: $prog [OPTIONS] PCI...          bind to vfio-pci for DPDK
       $prog --unbind [OPTIONS] PCI... give back to the saved kernel driver
       $prog --status PCI...           show driver, interfaces, IOMMU group

PCI is a device address such as 0000:03:00.0 (or 03:00.0).  Bind every
function of a NIC that shares its IOMMU group in one call.

options:
  --driver NAME  bind to NAME instead of vfio-pci (e.g. uio_pci_generic); with
                 --unbind, the driver to restore when none was saved
  --force        bind even when the interface is up and has routes (its
                 connections are cut), or another device in its IOMMU group
                 is still on a kernel driver
  --noiommu      allow vfio's unsafe no-IOMMU mode when the device has no
                 IOMMU group (a VM without a virtual IOMMU): works, but the
                 device can then DMA anywhere in memory
  --dry-run      print what would be done; change nothing
  -h, --help     this text

Uses dpdk-devbind.py when it is installed, otherwise sysfs (driver_override).
Needs root, except --status and --dry-run.

exit status: 0 done (or nothing to do), 1 refused or failed, 2 usage error.
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

warn() {
    echo "$prog: warning: $*" >&2
}

# Runs a command, or only prints it with --dry-run.
run() {
    if ((dry_run)); then
        echo "would run: $*"
    else
        "$@"
    fi
}

# Writes $1 into the sysfs file $2, or prints that it would.
write_sysfs() {
    if ((dry_run)); then
        echo "would write '$1' to $2"
    else
        echo "$1" >"$2"
    fi
}

normalise_pci() {
    local a=${1,,}
    if [[ $a =~ ^[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$ ]]; then a="0000:$a"; fi
    [[ $a =~ ^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$ ]] || die_usage "'$1' is not a PCI address like 0000:03:00.0"
    [[ -e $pci_root/devices/$a ]] || fail "no PCI device $a (see lspci -D)"
    echo "$a"
}

driver_of() {
    local link=$pci_root/devices/$1/driver
    if [[ -L $link ]]; then basename "$(readlink "$link")"; fi
}

# Kernel network interfaces of a PCI device, directly or through a child
# device (virtio-pci puts them under virtioN).
interfaces_of() {
    local dev n d
    dev=$(readlink -f "$pci_root/devices/$1")
    for n in /sys/class/net/*; do
        [[ -e $n/device ]] || continue
        d=$(readlink -f "$n/device")
        if [[ $d == "$dev" || ${d%/*} == "$dev" ]]; then echo "${n##*/}"; fi
    done
}

iommu_group_of() {
    local link=$pci_root/devices/$1/iommu_group
    if [[ -L $link ]]; then basename "$(readlink "$link")"; fi
}

# Routes through an interface, leaving out what every up interface has
# (local and broadcast entries, IPv6 link-local and multicast).
routes_of() {
    {
        ip -4 route show table all dev "$1" 2>/dev/null
        ip -6 route show table all dev "$1" 2>/dev/null
    } | grep -Ev '^(local|broadcast|multicast|anycast) |^fe80::/64|^ff00::/8' || true
}

is_up() {
    local flags
    flags=$(<"/sys/class/net/$1/flags")
    (((flags & 0x1) != 0))  # IFF_UP
}

state_file() {
    echo "$state_dir/nic-$1.driver"
}

devbind_tool() {
    command -v dpdk-devbind.py 2>/dev/null || command -v dpdk-devbind 2>/dev/null || true
}

load_driver() {
    local drv=$1
    if [[ -d $pci_root/drivers/$drv ]]; then return 0; fi
    run modprobe "$drv" || fail "cannot load the $drv module (modprobe $drv)"
}

status_of() {
    local pci=$1 drv group saved ifs
    drv=$(driver_of "$pci")
    group=$(iommu_group_of "$pci")
    ifs=$(interfaces_of "$pci" | paste -sd ' ' -)
    saved="-"
    if [[ -f $(state_file "$pci") ]]; then saved=$(<"$(state_file "$pci")"); fi
    echo "$pci: vendor $(<"$pci_root/devices/$pci/vendor") device $(<"$pci_root/devices/$pci/device")," \
        "driver ${drv:-none}, interfaces ${ifs:-none}, IOMMU group ${group:-none}," \
        "NUMA node $(<"$pci_root/devices/$pci/numa_node"), saved driver $saved"
}

# Refuses (unless --force) to take an interface that carries traffic.
check_interfaces() {
    local pci=$1 ifname routes line
    for ifname in $(interfaces_of "$pci"); do
        is_up "$ifname" || continue
        routes=$(routes_of "$ifname")
        [[ -n $routes ]] || continue
        if ((force)); then
            warn "$pci: interface $ifname is up and routed; taking it anyway (--force)"
            continue
        fi
        echo "$prog: $pci is interface $ifname, which is up and has routes:" >&2
        while read -r line; do echo "    $line" >&2; done <<<"$routes"
        if grep -q '^default ' <<<"$routes"; then
            echo "  it carries the default route: binding it would probably cut this machine off." >&2
        fi
        fail "refusing to take $ifname; bring it down first (ip link set $ifname down) or use --force"
    done
}

# vfio needs the device in an IOMMU group, and DPDK can open a group only when
# every device in it is on vfio-pci or on no driver (bridges on pcieport are fine).
check_iommu() {
    local pci=$1 group member mdrv param=/sys/module/vfio/parameters/enable_unsafe_noiommu_mode
    group=$(iommu_group_of "$pci")
    if [[ -z $group ]]; then
        if [[ -f $param && $(<"$param") == Y ]]; then
            warn "$pci has no IOMMU group; vfio's unsafe no-IOMMU mode is on, so it binds without DMA protection"
            return 0
        fi
        if ((noiommu)); then
            warn "$pci has no IOMMU group; turning on vfio's unsafe no-IOMMU mode (--noiommu)"
            write_sysfs Y "$param"
            return 0
        fi
        fail "$pci has no IOMMU group: turn the IOMMU on (kernel command line intel_iommu=on iommu=pt," \
            "or amd_iommu=on, and VT-d/AMD-Vi in the firmware), or accept no DMA protection with --noiommu"
    fi
    for member in /sys/kernel/iommu_groups/"$group"/devices/*; do
        member=${member##*/}
        [[ $member == "$pci" ]] && continue
        [[ " ${targets[*]} " == *" $member "* ]] && continue
        mdrv=$(driver_of "$member")
        case $mdrv in
            "" | vfio-pci | pcieport) ;;
            *)
                if ((force)); then
                    warn "IOMMU group $group also holds $member (driver $mdrv); DPDK cannot open the group until it is unbound too"
                else
                    fail "IOMMU group $group also holds $member (driver $mdrv), and DPDK can use the group only" \
                        "when it is unbound too: bind both in one call ($prog $pci $member), or use --force"
                fi
                ;;
        esac
    done
}

bind_one() {
    local pci=$1 cur tool saved_file
    cur=$(driver_of "$pci")
    if [[ $cur == "$driver" ]]; then
        echo "$pci: already bound to $driver"
        return 0
    fi
    check_interfaces "$pci"
    if [[ $driver == vfio-pci ]]; then check_iommu "$pci"; fi

    # Saved before anything changes, so that --unbind can always restore.
    saved_file=$(state_file "$pci")
    if ((dry_run)); then
        echo "would save driver '${cur:-none}' in $saved_file"
    else
        mkdir -p "$state_dir"
        echo "${cur:-none}" >"$saved_file"
    fi

    tool=$(devbind_tool)
    if [[ -n $tool ]]; then
        # --force: the interface check above is this script's own (and stricter
        # about what counts as in use); do not let the tool ask a second time.
        run "$tool" --bind="$driver" --force "$pci"
    else
        # driver_override makes exactly this device match the driver, whatever
        # its vendor and device ids, and keeps it there on a re-probe.
        write_sysfs "$driver" "$pci_root/devices/$pci/driver_override"
        if [[ -n $cur ]]; then write_sysfs "$pci" "$pci_root/devices/$pci/driver/unbind"; fi
        write_sysfs "$pci" "$pci_root/drivers_probe"
    fi
    if ((dry_run)); then return 0; fi
    local now
    now=$(driver_of "$pci")
    [[ $now == "$driver" ]] || fail "$pci: still on '${now:-no driver}' after binding to $driver (see dmesg)"
    local group dev_note=""
    group=$(iommu_group_of "$pci")
    if [[ $driver == vfio-pci && -e /dev/vfio/noiommu-$group ]]; then
        dev_note=", /dev/vfio/noiommu-$group"
    elif [[ $driver == vfio-pci && -n $group ]]; then
        dev_note=", /dev/vfio/$group"
    fi
    echo "$pci: ${cur:-no driver} -> $driver (IOMMU group ${group:-none}$dev_note); previous driver saved in $saved_file"
}

unbind_one() {
    local pci=$1 cur saved saved_file tool
    cur=$(driver_of "$pci")
    saved_file=$(state_file "$pci")
    if [[ -f $saved_file ]]; then
        saved=$(<"$saved_file")
    elif [[ -n $driver_given ]]; then
        saved=$driver
    else
        fail "$pci: no saved driver in $saved_file (lost at reboot?); give --driver NAME (e.g. ixgbe, i40e, ice, mlx5_core)"
    fi
    if [[ ${cur:-none} == "$saved" ]]; then
        echo "$pci: already on ${cur:-no driver}"
        run rm -f "$saved_file"
        return 0
    fi
    [[ $saved == none ]] || load_driver "$saved"

    tool=$(devbind_tool)
    if [[ -n $tool ]]; then
        if [[ $saved == none ]]; then
            run "$tool" --unbind "$pci"
        else
            run "$tool" --bind="$saved" "$pci"
        fi
    else
        # Clear the override first, or the next probe would pick vfio-pci again.
        write_sysfs "" "$pci_root/devices/$pci/driver_override"
        if [[ -n $cur ]]; then write_sysfs "$pci" "$pci_root/devices/$pci/driver/unbind"; fi
        if [[ $saved != none ]]; then
            write_sysfs "$pci" "$pci_root/drivers/$saved/bind"
        fi
    fi
    if ((dry_run)); then return 0; fi
    local now
    now=$(driver_of "$pci")
    [[ ${now:-none} == "$saved" ]] || fail "$pci: on '${now:-no driver}' after restoring $saved (see dmesg)"
    # Leave no override behind: the device should follow normal driver matching again.
    local override=$pci_root/devices/$pci/driver_override
    if [[ -f $override && $(<"$override") != "(null)" ]]; then echo "" >"$override"; fi
    rm -f "$saved_file"
    local ifs
    ifs=$(interfaces_of "$pci" | paste -sd ' ' -)
    echo "$pci: ${cur:-no driver} -> ${now:-no driver}${ifs:+ (interfaces: $ifs)}"
}

mode=bind
driver=vfio-pci
driver_given=""
force=0
noiommu=0
dry_run=0
args=()
while (($#)); do
    case $1 in
        -h | --help) usage; exit 0 ;;
        --unbind) mode=unbind; shift ;;
        --status) mode=status; shift ;;
        --driver) (($# >= 2)) || die_usage "$1 needs a driver name"; driver=$2; driver_given=1; shift 2 ;;
        --driver=*) driver=${1#*=}; driver_given=1; shift ;;
        --force) force=1; shift ;;
        --noiommu) noiommu=1; shift ;;
        --dry-run) dry_run=1; shift ;;
        --) shift; args+=("$@"); break ;;
        -*) die_usage "unknown option '$1'" ;;
        *) args+=("$1"); shift ;;
    esac
done
((${#args[@]} > 0)) || die_usage "which device? give a PCI address such as 0000:03:00.0"
[[ $driver =~ ^[A-Za-z0-9_-]+$ ]] || die_usage "'$driver' is not a driver name"

targets=()
for a in "${args[@]}"; do
    targets+=("$(normalise_pci "$a")")
done

if [[ $mode == status ]]; then
    for pci in "${targets[@]}"; do status_of "$pci"; done
    exit 0
fi
((dry_run)) || (($(id -u) == 0)) || fail "must run as root (or use --dry-run or --status)"

if [[ $mode == bind ]]; then
    load_driver "$driver"
    for pci in "${targets[@]}"; do bind_one "$pci"; done
else
    for pci in "${targets[@]}"; do unbind_one "$pci"; done
fi
