#!/usr/bin/env bash
# Install the Tollgate edge agent on a Debian gateway as the systemd service tollgate-edge.
#
#   sudo deploy/install-gateway.sh [--source DIR|WHEEL] [--drivers modbus,it100,...]
#                                  [--gateway-id ID] [--cloud URL] [--dry-run]
#
# Creates the system user `tollgate` (groups dialout and bluetooth), a virtualenv in
# /opt/tollgate/venv with tollgate[edge], the unit in /etc/systemd/system, and a commented
# starter config in /etc/tollgate/site.toml unless one exists; then enables the service. It
# does not start it: edit the config, run `tollgate-edge check`, then `systemctl start`.
# --dry-run prints every step and changes nothing. Safe to run again (upgrades the package).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source_path="$(dirname "$here")"
drivers="modbus"
gateway_id="$(hostname -s 2>/dev/null || echo gateway)-gw1"
cloud_url="https://collector.example.com"
dry_run=0

prefix="/opt/tollgate"
venv="$prefix/venv"
config_dir="/etc/tollgate"
config="$config_dir/site.toml"
state_dir="/var/lib/tollgate"
unit_source="$here/systemd/tollgate-edge.service"
unit_target="/etc/systemd/system/tollgate-edge.service"

usage() {
    sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

run() {
    # Print a step; run it unless --dry-run.
    printf '+ %s\n' "$*"
    if [[ "$dry_run" -eq 0 ]]; then
        "$@"
    fi
}

parse_args() {
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --source) source_path="$2"; shift 2 ;;
            --drivers) drivers="$2"; shift 2 ;;
            --gateway-id) gateway_id="$2"; shift 2 ;;
            --cloud) cloud_url="$2"; shift 2 ;;
            --dry-run) dry_run=1; shift ;;
            -h|--help) usage; exit 0 ;;
            *) echo "install-gateway.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
        esac
    done
}

require_root() {
    if [[ "$dry_run" -eq 0 && "$(id -u)" -ne 0 ]]; then
        echo "install-gateway.sh: run as root (sudo), or with --dry-run to see the steps" >&2
        exit 2
    fi
}

create_user() {
    if ! getent group bluetooth >/dev/null; then
        run groupadd --system bluetooth
    fi
    if ! getent passwd tollgate >/dev/null; then
        run useradd --system --user-group --home-dir "$state_dir" --no-create-home \
            --shell /usr/sbin/nologin --groups dialout,bluetooth tollgate
    fi
}

install_package() {
    run apt-get install -y --no-install-recommends python3 python3-venv
    run install -d -m 0755 "$prefix"
    if [[ ! -x "$venv/bin/python" ]]; then
        run python3 -m venv "$venv"
    fi
    run "$venv/bin/pip" install --upgrade pip
    run "$venv/bin/pip" install --upgrade "${source_path}[edge]"
}

install_config() {
    run install -d -m 0750 -o root -g tollgate "$config_dir"
    run install -d -m 0750 -o tollgate -g tollgate "$state_dir"
    if [[ -f "$config" ]]; then
        echo "keeping $config"
        return
    fi
    run "$venv/bin/tollgate-edge" init --drivers "$drivers" --out "$config" \
        --gateway-id "$gateway_id" --cloud "$cloud_url" --data-dir "$state_dir"
    run chgrp tollgate "$config"
    # init may have stored the technician password: the agent must read it.
    if [[ -f "$state_dir/technician.password" || "$dry_run" -eq 1 ]]; then
        run chown -R tollgate:tollgate "$state_dir"
    fi
}

install_unit() {
    run install -m 0644 "$unit_source" "$unit_target"
    run systemctl daemon-reload
    run systemctl enable tollgate-edge.service
}

main() {
    parse_args "$@"
    require_root
    create_user
    install_package
    install_config
    install_unit
    cat <<NEXT
next:
  edit $config
  $venv/bin/tollgate-edge check --config $config
  systemctl start tollgate-edge && $venv/bin/tollgate-edge status --config $config
NEXT
}

main "$@"
