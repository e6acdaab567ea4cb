#!/usr/bin/env bash
# Swap Postfix's connection cache daemon (the "scache" service of master.cf)
# for another scache-compatible binary, or back to the stock one.
#
# Usage:
#   scripts/postfix-swap.sh install [--binary PATH] [--name NAME] [options]
#   scripts/postfix-swap.sh revert  [--name NAME] [options]
#   scripts/postfix-swap.sh status  [options]
#
#   install  copy PATH to $daemon_directory/NAME (default NAME: scache-rs),
#            point the service's command at NAME with postconf (every other
#            master.cf column and any command arguments are kept: chroot,
#            process limit, -o overrides), run "postfix check" and, when
#            Postfix is running, "postfix reload". Without --binary: use
#            $daemon_directory/NAME as it is when it exists (installed by the
#            scache-rs Debian package), else target/release/scache of this
#            repository.
#   revert   point the service back at Postfix's own "scache" (arguments
#            kept), reload if running, and remove $daemon_directory/NAME
#            unless a package owns it (dpkg).
#   status   show the service's master.cf entry and what is installed.
#
# Options:
#   -c, --config-dir DIR  Postfix configuration directory (default: MAIL_CONFIG,
#                         else Postfix's default, normally /etc/postfix)
#   --service NAME        master.cf service name (default: scache, or the
#                         value of connection_cache_service_name)
#   --force               install: overwrite an existing NAME; revert: switch
#                         back even if the service runs some other command
#   --no-reload           do not reload a running Postfix
#   -q, --quiet           less output
#   -h, --help            this text
#
# master(8) always runs the command column relative to daemon_directory, which
# is why the binary is installed there. Because NAME differs from the service
# name, master passes "-n scache" to the daemon (the stock line gets none).
set -euo pipefail

prog=${0##*/}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
die() { printf '%s: %s\n' "$prog" "$*" >&2; exit 1; }
say() { [ -n "$quiet" ] || printf '%s: %s\n' "$prog" "$*"; }

action=${1:-}
[ $# -gt 0 ] && shift
binary=
name=scache-rs
config_dir=${MAIL_CONFIG:-}
service=
force=
reload=1
quiet=

while [ $# -gt 0 ]; do
    case $1 in
    --binary) binary=${2:?--binary needs a path}; shift 2 ;;
    --binary=*) binary=${1#*=}; shift ;;
    --name) name=${2:?--name needs a value}; shift 2 ;;
    --name=*) name=${1#*=}; shift ;;
    -c|--config-dir) config_dir=${2:?$1 needs a directory}; shift 2 ;;
    --config-dir=*) config_dir=${1#*=}; shift ;;
    --service) service=${2:?--service needs a name}; shift 2 ;;
    --service=*) service=${1#*=}; shift ;;
    --force) force=1; shift ;;
    --no-reload) reload=; shift ;;
    -q|--quiet) quiet=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument: $1 (try --help)" ;;
    esac
done

case $action in
install|revert|status) ;;
-h|--help|help) usage; exit 0 ;;
"") usage >&2; exit 2 ;;
*) die "unknown action: $action (install, revert or status)" ;;
esac

command -v postconf >/dev/null || die "postconf not found: is Postfix installed?"
command -v postfix >/dev/null || die "postfix not found: is Postfix installed?"

pc_args=()
pf_args=()
if [ -n "$config_dir" ]; then
    [ -f "$config_dir/main.cf" ] || die "no main.cf in $config_dir"
    pc_args=(-c "$config_dir")
    pf_args=(-c "$config_dir")
fi
# Postfix's postconf does not know our scache_* parameters and warns
# "unused parameter: scache_..." for them (in main.cf or master.cf):
# harmless, so those lines are dropped.
quiet_ours() { { grep -v 'unused parameter: scache_' || true; } >&2; }
postconf_() { postconf "${pc_args[@]}" "$@" 2> >(quiet_ours); }
postfix_() { postfix "${pf_args[@]}" "$@" 2> >(quiet_ours); }

case $name in
""|*/*|.|..) die "bad --name '$name': a plain file name is required" ;;
esac

daemon_directory=$(postconf_ -h daemon_directory) || die "postconf failed"
meta_directory=$(postconf_ -h meta_directory 2>/dev/null || true)
[ -n "$service" ] || service=$(postconf_ -h connection_cache_service_name)
[ -n "$service" ] || service=scache
target=$daemon_directory/$name
# The Debian package owning $target, if any (empty otherwise).
package=
if command -v dpkg-query >/dev/null && [ -e "$target" ]; then
    package=$(dpkg-query -S "$target" 2>/dev/null | head -n 1 | cut -d: -f1) || package=
fi

# The service's master.cf entry, normalised by postconf (empty if absent).
entry() { postconf_ -M "$service/unix" 2>/dev/null; }
# The command column including arguments.
command_field() { postconf_ -Fh "$service/unix/command" 2>/dev/null; }
# Replace the first word of the command field, keeping the arguments.
set_command() {
    local old new rest
    old=$(command_field)
    rest=
    case $old in *" "*) rest=" ${old#* }" ;; esac
    new="$1$rest"
    postconf_ -F "$service/unix/command = $new"
}
running() { postfix_ status >/dev/null 2>&1; }
# Is a file name one that Postfix itself ships in daemon_directory?
postfix_owned() {
    local f
    for f in "$meta_directory/postfix-files" "$meta_directory"/postfix-files.d/*; do
        [ -f "$f" ] || continue
        if grep -Eq "^\\\$daemon_directory/$1:" "$f"; then return 0; fi
    done
    return 1
}
check_and_reload() {
    local out
    out=$(postfix "${pf_args[@]}" check 2>&1) || { printf '%s\n' "$out" >&2; die "postfix check failed"; }
    out=$(printf '%s\n' "$out" | grep -v 'unused parameter: scache_' || true)
    if [ -n "$out" ]; then
        printf '%s\n' "$out" >&2
        say "warning: postfix check is not quiet (see above)"
    fi
    if [ -n "$reload" ] && running; then
        say "reloading Postfix"
        postfix_ reload >/dev/null 2>&1 || die "postfix reload failed"
    fi
}

case $action in
status)
    e=$(entry)
    if [ -z "$e" ]; then
        echo "service $service/unix: not in master.cf"
    else
        echo "master.cf: $e"
    fi
    cmd=$(command_field || true)
    word=${cmd%% *}
    echo "daemon_directory: $daemon_directory"
    if [ -n "$word" ]; then
        if [ -x "$daemon_directory/$word" ]; then
            echo "command: $daemon_directory/$word (installed)"
        else
            echo "command: $daemon_directory/$word (MISSING)"
        fi
    fi
    if running; then echo "postfix: running"; else echo "postfix: not running"; fi
    ;;

install)
    [ "$(id -u)" = 0 ] || die "install must run as root"
    [ "$name" != scache ] || die "--name scache would overwrite Postfix's own daemon"
    if postfix_owned "$name"; then
        die "$name is a file Postfix ships in $daemon_directory: pick another --name"
    fi
    if [ -z "$binary" ] && [ -f "$target" ] && [ -x "$target" ]; then
        # Already there (the scache-rs package installs it): use it as is.
        say "using $target as installed${package:+ by package $package}"
    else
        if [ -z "$binary" ]; then
            binary=$repo/target/release/scache
            [ -x "$binary" ] || die "no --binary given, no $target, and $binary is missing (cargo build --release)"
        fi
        if [ ! -f "$binary" ] || [ ! -x "$binary" ]; then
            die "not an executable file: $binary"
        fi
        [ -z "$package" ] || die "$target belongs to package $package: swap without --binary, or remove the package"
        if [ -e "$target" ] && [ -z "$force" ] && ! cmp -s "$binary" "$target"; then
            die "$target exists and differs from $binary (use --force to overwrite)"
        fi
        # Copy under a temporary name and rename: safe while the old one runs.
        tmp=$daemon_directory/.$name.tmp.$$
        install -m 0755 -o root -g root "$binary" "$tmp"
        mv -f "$tmp" "$target"
        say "installed $binary as $target"
    fi

    if [ -z "$(entry)" ]; then
        # No scache line at all (very old master.cf): add Postfix's stock one.
        postconf_ -M "$service/unix = $service unix - - - - 1 $name"
        say "added service $service/unix"
    else
        set_command "$name"
    fi
    say "master.cf: $(entry)"
    check_and_reload
    ;;

revert)
    [ "$(id -u)" = 0 ] || die "revert must run as root"
    cmd=$(command_field || true)
    word=${cmd%% *}
    if [ -z "$(entry)" ]; then
        say "service $service/unix is not in master.cf: nothing to switch back"
    elif [ "$word" = scache ]; then
        say "service $service/unix already runs the stock scache"
    elif [ "$word" = "$name" ] || [ -n "$force" ]; then
        set_command scache
        say "master.cf: $(entry)"
        check_and_reload
    else
        die "service $service/unix runs '$word', not '$name' (use --name, or --force)"
    fi
    if [ "$name" != scache ] && [ -e "$target" ]; then
        if postfix_owned "$name"; then
            say "not removing $target: Postfix ships it"
        elif [ -n "$package" ]; then
            say "not removing $target: package $package owns it (dpkg -r $package removes it)"
        else
            rm -f "$target"
            say "removed $target"
        fi
    fi
    ;;
esac
