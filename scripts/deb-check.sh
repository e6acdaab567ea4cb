#!/usr/bin/env bash
# The Debian package, end to end, as an admin uses it (CI runs this).
#
# Usage: scripts/deb-check.sh [--deb FILE] [--keep-installed]
#
#  1. builds target/debian/scache-rs_<version>_<arch>.deb with
#     "cargo deb -p scache-bin" (unless --deb FILE is given);
#  2. installs it with dpkg -i, and checks what it installed (binary in
#     Postfix's daemon_directory, man page, swap script, systemd units) and
#     what it did not touch: /etc/postfix (master.cf included) is
#     byte-identical, no systemd unit is enabled;
#  3. runs the end-to-end mail flow (scripts/postfix-e2e.sh, a throwaway
#     Postfix instance) with the installed binary, swapped in and reverted
#     by the installed /usr/sbin/scache-rs-swap, then the same flow again on
#     Postfix's own daemon after the revert;
#  4. removes the package with dpkg -r, checks that its files are gone and
#     /etc/postfix is still untouched;
#  5. runs the mail flow once more on Postfix's own daemon.
#
# Must run as root on a Debian machine with postfix installed. Exit status
# 0 when every step passed. Lines starting with "DEB_CHECK" summarise.
set -euo pipefail

me=${0##*/}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
deb=
keep=

die() { printf '%s: %s\n' "$me" "$*" >&2; exit 1; }
say() { printf '%s: %s\n' "$me" "$*"; }
step() { printf '\n=== %s: %s\n' "$me" "$*"; }

while [ $# -gt 0 ]; do
    case $1 in
    --deb) deb=${2:?}; shift 2 ;;
    --keep-installed) keep=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) die "unknown argument: $1" ;;
    esac
done

[ "$(id -u)" = 0 ] || die "must run as root (dpkg -i)"
command -v dpkg >/dev/null || die "dpkg not found: a Debian machine is needed"
command -v postconf >/dev/null || die "postconf not found: install postfix"

pkg=scache-rs
daemon_directory=$(postconf -d -h daemon_directory)
bin=$daemon_directory/scache-rs
swap=/usr/sbin/scache-rs-swap
files=("$bin" /usr/share/man/man8/scache-rs.8.gz "$swap"
    /lib/systemd/system/scache-rs.service /lib/systemd/system/scache-rs.socket
    /usr/share/doc/scache-rs/copyright)

# What the package must never change: Postfix's configuration.
snapshot() { find /etc/postfix -type f -print0 | sort -z | xargs -0 sha256sum; }
enabled_units() { find /etc/systemd/system -lname '*scache-rs*' 2>/dev/null || true; }

if dpkg -s "$pkg" >/dev/null 2>&1; then
    die "$pkg is installed already: dpkg -r $pkg first (this check installs and removes it)"
fi

if [ -z "$deb" ]; then
    step "build: cargo deb -p scache-bin"
    command -v cargo-deb >/dev/null || cargo deb --version >/dev/null 2>&1 ||
        die "cargo-deb not found: cargo install --locked cargo-deb"
    deb=$(cd "$repo" && cargo deb -p scache-bin | tail -n 1)
fi
[ -f "$deb" ] || die "no package at $deb"
case ${deb##*/} in
"${pkg}"_*_"$(dpkg --print-architecture)".deb) ;;
*) die "unexpected package file name: ${deb##*/} (want ${pkg}_<version>_<arch>.deb)" ;;
esac
say "package: ${deb##*/}"
dpkg-deb -f "$deb" Package Version Architecture Depends Recommends | sed 's/^/    /'
if dpkg-deb -f "$deb" Depends | grep -q postfix; then die "postfix must not be a dependency"; fi
[ "$(dpkg-deb -f "$deb" Recommends)" = postfix ] || die "postfix must be recommended"

before=$(snapshot)
units_before=$(enabled_units)

step "install: dpkg -i ${deb##*/}"
dpkg -i "$deb"
trap 'if [ -z "$keep" ] && dpkg -s "$pkg" >/dev/null 2>&1; then dpkg -r "$pkg" >/dev/null; fi' EXIT
for f in "${files[@]}"; do
    [ -e "$f" ] || die "not installed: $f"
    say "installed $f ($(dpkg -S "$f" | cut -d: -f1))"
done
say "$("$bin" --version)"
[ "$(snapshot)" = "$before" ] || die "installing changed /etc/postfix"
say "/etc/postfix unchanged by the installation (master.cf included)"
[ "$(enabled_units)" = "$units_before" ] || die "installing enabled a systemd unit"
say "systemd units installed, not enabled"

step "mail flow with the installed binary, swapped in and out by $swap"
bash "$here/postfix-e2e.sh" --daemon installed --name scache-rs --swap "$swap" --revert-check

[ -z "$keep" ] || { say "kept $pkg installed"; trap - EXIT; exit 0; }

step "remove: dpkg -r $pkg"
dpkg -r "$pkg"
trap - EXIT
for f in "${files[@]}"; do
    [ ! -e "$f" ] || die "left behind by dpkg -r: $f"
done
say "every file of $pkg removed"
[ "$(snapshot)" = "$before" ] || die "/etc/postfix differs after dpkg -r"
say "/etc/postfix unchanged after removal"

step "Postfix's own daemon after removal"
bash "$here/postfix-e2e.sh" --daemon stock

echo "DEB_CHECK result=pass package=${deb##*/}"
