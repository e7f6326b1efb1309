#!/bin/bash
# healthcheck.sh [--connect] [--innodb_initialized]: 0 when the server takes a connection on
# its socket and InnoDB answers (the official image's script, reduced to what is used here).
set -euo pipefail
exec mariadb --protocol=socket --user=root --password="${MARIADB_ROOT_PASSWORD:-}" \
  --connect-timeout=3 -N -B \
  -e "SELECT 1 FROM information_schema.ENGINES WHERE ENGINE = 'InnoDB' AND SUPPORT IN ('YES', 'DEFAULT')" |
  grep -qx 1
