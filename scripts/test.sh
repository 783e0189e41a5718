#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need, then runs the
# checks CI applies. Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }
apt_install() {
  if [ "$(id -u)" = 0 ] && need apt-get; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    echo "missing: $* (install it, or run this script as root on Debian/Ubuntu)" >&2
    exit 1
  fi
}
# The unreadable-file test drops privileges with setpriv when run as root; gzip for zcat.
need setpriv || apt_install util-linux
need zcat || apt_install gzip
need cargo || { echo "cargo (Rust >= 1.88, with rustfmt and clippy) is required" >&2; exit 1; }

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
