#!/usr/bin/env bash
# End-to-end test of a connection cache daemon under a real Postfix.
#
# Usage: scripts/postfix-e2e.sh [--daemon stock|PATH|installed] [options]
#
# Sets up a throwaway Postfix instance on loopback (its own configuration,
# queue and data directories under --workdir; the system's /etc/postfix
# instance is neither read nor touched), relaying everything to smtp-sink
# (or to a real smtpd, --receiver smtpd) with connection caching on, and
# starts it. With --daemon PATH, installs PATH into daemon_directory as
# --name and switches the "scache" service to it with postfix-swap.sh while
# Postfix runs (as an admin would); with --daemon installed, switches to the
# daemon already in daemon_directory as --name (the scache-rs package's);
# with "stock" Postfix's own daemon stays. Then sends messages with
# smtp-source through the instance's smtpd, waits for the queue to drain,
# runs "postfix reload" so the cache daemon exits and logs its statistics,
# and checks the log. On exit it stops the instance and smtp-sink, reverts
# the swap (removing the installed file, unless a package owns it) and
# removes the work directory. A run killed half-way is cleaned up by the
# next one (same --workdir).
#
# Options:
#   --daemon stock|PATH|installed
#                         daemon under test (default: stock)
#   --name NAME           file name for PATH in daemon_directory, or of the
#                         installed daemon (default: scache-rs-e2e, and
#                         scache-rs with --daemon installed; the log tag
#                         follows it)
#   --swap PATH           the swap script (default: postfix-swap.sh next to
#                         this script; the package installs
#                         /usr/sbin/scache-rs-swap)
#   --receiver sink|smtpd where the mail goes: smtp-sink (default), or a
#                         second smtpd service of the instance on
#                         127.0.0.1:--sink-port (log tag
#                         postfix/receiver/smtpd) that discards it
#   --quit yes|no         with --receiver smtpd: set scache_quit_before_close
#                         to this in main.cf (ours; the stock daemon never
#                         sends QUIT), let the cached sessions expire, and
#                         check the receiver's disconnect lines: with yes,
#                         every one shows quit=1; with no, those without
#                         quit=1 are the sessions that expired in the cache
#   --tls                 with --receiver smtpd: STARTTLS to the receiver
#                         through tlsproxy (smtp_tls_connection_reuse = yes),
#                         so the cached descriptors are tlsproxy's
#                         plaintext side
#   --messages N          messages to send (default: 300)
#   --sessions N          parallel smtp-source sessions (default: 20)
#   --min-reuse PCT       minimum % of deliveries with conn_use>=2 (default: 30)
#   --smtpd-port P        instance's smtpd on 127.0.0.1:P (default: 10025)
#   --sink-port P         smtp-sink on 127.0.0.1:P (default: 2525)
#   --timeout S           bound on the queue drain wait (default: 180)
#   --workdir DIR         instance directory, wiped first (default:
#                         /var/tmp/scache-e2e; must be under /var, see
#                         maillog_file_prefixes)
#   --keep                keep the work directory (and print its path)
#   --revert-check        with PATH: after the run, revert to the stock daemon
#                         with postfix-swap.sh (Postfix running) and run the
#                         same checks again against it
#   -h, --help            this text
#
# Output ends with one machine-readable line:
#   SCACHE_E2E result=pass|fail daemon=... messages=N sent=N ... stats_lines=N
# Exit status: 0 pass, 1 a check failed, 2 setup error.
set -euo pipefail

me=${0##*/}
here=$(cd "$(dirname "$0")" && pwd)

daemon=stock
name=
swap=
receiver=sink
quit=
tls=
messages=300
sessions=20
min_reuse=30
smtpd_port=10025
sink_port=2525
timeout=180
workdir=/var/tmp/scache-e2e
keep=
revert_check=

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
die() { printf '%s: %s\n' "$me" "$*" >&2; exit 2; }
say() { printf '%s: %s\n' "$me" "$*"; }

while [ $# -gt 0 ]; do
    case $1 in
    --daemon) daemon=${2:?}; shift 2 ;;
    --name) name=${2:?}; shift 2 ;;
    --swap) swap=${2:?}; shift 2 ;;
    --receiver) receiver=${2:?}; shift 2 ;;
    --quit) quit=${2:?}; shift 2 ;;
    --tls) tls=1; shift ;;
    --messages) messages=${2:?}; shift 2 ;;
    --sessions) sessions=${2:?}; shift 2 ;;
    --min-reuse) min_reuse=${2:?}; shift 2 ;;
    --smtpd-port) smtpd_port=${2:?}; shift 2 ;;
    --sink-port) sink_port=${2:?}; shift 2 ;;
    --timeout) timeout=${2:?}; shift 2 ;;
    --workdir) workdir=${2:?}; shift 2 ;;
    --keep) keep=1; shift ;;
    --revert-check) revert_check=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument: $1 (try --help)" ;;
    esac
done
for n in "$messages" "$sessions" "$min_reuse" "$smtpd_port" "$sink_port" "$timeout"; do
    case $n in ''|*[!0-9]*) die "not a number: '$n'" ;; esac
done
case $workdir in
/var/*) ;;
*) die "--workdir must be under /var (maillog_file_prefixes): $workdir" ;;
esac

[ -n "$swap" ] || swap=$here/postfix-swap.sh
[ -x "$swap" ] || die "--swap: not an executable: $swap"
case $receiver in sink|smtpd) ;; *) die "--receiver: sink or smtpd, not '$receiver'" ;; esac
case $quit in ''|yes|no) ;; *) die "--quit: yes or no, not '$quit'" ;; esac
if [ -n "$quit$tls" ] && [ "$receiver" != smtpd ]; then
    die "--quit and --tls need --receiver smtpd"
fi
if [ "$quit" = yes ] && [ "$daemon" = stock ]; then
    die "--quit yes: Postfix's own daemon never sends QUIT"
fi
[ -n "$name" ] || { [ "$daemon" = installed ] && name=scache-rs || name=scache-rs-e2e; }

[ "$(id -u)" = 0 ] || die "must run as root (it starts a Postfix instance)"
for t in postconf postfix postqueue smtp-sink smtp-source; do
    command -v "$t" >/dev/null || die "$t not found: install Debian's postfix package"
done
case $daemon in
stock) ;;
installed)
    [ -x "$(postconf -d -h daemon_directory)/$name" ] ||
        die "--daemon installed: no $(postconf -d -h daemon_directory)/$name"
    ;;
*)
    [ -x "$daemon" ] || die "--daemon: not an executable: $daemon"
    daemon=$(cd "$(dirname "$daemon")" && pwd)/$(basename "$daemon")
    ;;
esac
[ -z "$tls" ] || command -v openssl >/dev/null || die "--tls needs openssl"

conf=$workdir/etc
queue=$workdir/spool
data=$workdir/data
maillog=$workdir/maillog
meta_directory=$(postconf -d -h meta_directory)
mail_owner=$(postconf -d -h mail_owner)

# Postfix's postconf warns "unused parameter: scache_..." about ours: drop
# those lines.
quiet_ours() { { grep -v 'unused parameter: scache_' || true; } >&2; }
pf() { postfix -c "$conf" "$@" 2> >(quiet_ours); }
pc() { postconf -c "$conf" "$@" 2> >(quiet_ours); }
running() { [ -f "$conf/main.cf" ] && pf status >/dev/null 2>&1; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }


# Stop whatever a previous (or this) run left in $workdir: instance, sink,
# installed daemon. Safe to call at any point.
teardown() {
    if running; then
        pf stop >/dev/null 2>&1 || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do running || break; sleep 1; done
    fi
    local pidfile=$workdir/sink.pid p
    if [ -f "$pidfile" ]; then
        p=$(cat "$pidfile")
        if [ -n "$p" ] && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = smtp-sink ]; then
            kill "$p" 2>/dev/null || true
            wait "$p" 2>/dev/null || true
        fi
        rm -f "$pidfile"
    fi
    if [ -f "$conf/main.cf" ] && [ -f "$conf/master.cf" ]; then
        local cmd
        cmd=$(pc -Fh scache/unix/command 2>/dev/null || true)
        cmd=${cmd%% *}
        if [ -n "$cmd" ] && [ "$cmd" != scache ]; then
            "$swap" revert -c "$conf" --name "$cmd" --no-reload -q || true
        fi
    fi
}

cleanup() {
    local rc=$?
    set +e
    teardown
    if [ -n "$keep" ]; then
        say "kept $workdir (log: $maillog)"
    else
        rm -rf "$workdir"
    fi
    exit "$rc"
}

# --- set up ----------------------------------------------------------------
teardown
rm -rf "$workdir"
trap cleanup EXIT
trap 'exit 130' INT TERM

if port_open "$smtpd_port"; then die "127.0.0.1:$smtpd_port is in use"; fi
if port_open "$sink_port"; then die "127.0.0.1:$sink_port is in use"; fi

mkdir -p "$conf" "$queue" "$data"
chmod 755 "$workdir" "$conf" "$queue"
chown "$mail_owner" "$data"
chmod 700 "$data"
cp "$meta_directory/master.cf.proto" "$conf/master.cf"
cat >"$conf/main.cf" <<EOF
# throwaway Postfix instance for $me
compatibility_level = 3.6
queue_directory = $queue
data_directory = $data
myhostname = e2e.scache.test
mydomain = scache.test
myorigin = \$myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:$sink_port
smtp_connection_cache_on_demand = yes
smtp_connection_cache_time_limit = 2s
# The request next-hop of relayhost [127.0.0.1]:port is matched as 127.0.0.1.
smtp_connection_cache_destinations = 127.0.0.1
maillog_file = $maillog
biff = no
append_dot_mydomain = no
smtpd_banner = \$myhostname ESMTP
EOF
# smtpd on a private loopback port instead of port 25.
pc -MX smtp/inet
pc -M "127.0.0.1:$smtpd_port/inet = 127.0.0.1:$smtpd_port inet n - y - - smtpd"
if [ "$receiver" = smtpd ]; then
    # The receiving server: a second smtpd that accepts everything from
    # loopback and hands it to discard(8), so nothing loops back out.
    recv_opts="-o syslog_name=postfix/receiver -o content_filter=discard:receiver"
    if [ -n "$tls" ]; then
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=receiver.scache.test \
            -keyout "$conf/receiver.key" -out "$conf/receiver.crt" >/dev/null 2>&1 ||
            die "openssl could not make a certificate"
        chmod 600 "$conf/receiver.key"
        recv_opts="$recv_opts -o smtpd_tls_security_level=may -o smtpd_tls_loglevel=1 -o smtpd_tls_cert_file=$conf/receiver.crt -o smtpd_tls_key_file=$conf/receiver.key"
        pc -e smtp_tls_security_level=encrypt smtp_tls_connection_reuse=yes \
            smtp_tls_loglevel=1
        # Commented out in master.cf.proto.
        pc -M "tlsproxy/unix = tlsproxy unix - - y - 0 tlsproxy"
    fi
    pc -M "127.0.0.1:$sink_port/inet = 127.0.0.1:$sink_port inet n - y - - smtpd $recv_opts"
fi
if [ -n "$quit" ]; then
    pc -e "scache_quit_before_close=$quit"
fi
if [ -z "$(pc -M postlog/unix-dgram 2>/dev/null)" ]; then
    pc -M "postlog/unix-dgram = postlog unix-dgram n - n - 1 postlogd"
fi

# Files chrooted daemons need (what Debian's init does for /var/spool/postfix).
for f in etc/localtime etc/services etc/resolv.conf etc/hosts etc/host.conf etc/nsswitch.conf; do
    if [ -f "/$f" ]; then
        mkdir -p "$queue/$(dirname "$f")"
        cp -L "/$f" "$queue/$f"
        chmod a+r "$queue/$f"
    fi
done

out=$(postfix -c "$conf" check 2>&1) || { printf '%s\n' "$out" >&2; die "postfix check failed"; }
out=$(printf '%s\n' "$out" | grep -v 'unused parameter: scache_' || true)
[ -z "$out" ] || printf 'postfix check says:\n%s\n' "$out"

if [ "$receiver" = sink ]; then
    smtp-sink -u "$mail_owner" -h sink.scache.test "127.0.0.1:$sink_port" 256 \
        >"$workdir/sink.out" 2>&1 &
    echo $! >"$workdir/sink.pid"
fi

pf start >/dev/null 2>&1 || { cat "$maillog" 2>/dev/null; die "postfix start failed"; }
for _ in $(seq 1 100); do
    port_open "$smtpd_port" && port_open "$sink_port" && break
    sleep 0.1
done
port_open "$smtpd_port" || die "smtpd did not start on 127.0.0.1:$smtpd_port"
port_open "$sink_port" || die "the receiver ($receiver) did not start on 127.0.0.1:$sink_port"

# --- one phase: send, drain, flush statistics, check ------------------------
# The log lines of the current phase (those after line $offset of the log).
phase_log() { tail -n "+$((offset + 1))" "$maillog" 2>/dev/null || true; }
count() { phase_log | grep -Ec "$1" || true; }
sent_re='postfix/smtp\[[0-9]+\]: .* status=sent'
overall=pass

# run_phase LABEL PROG: PROG is the cache daemon's file name (its log tag).
run_phase() {
    local label=$1 prog=$2 t0 t1 sent=0 drained='' deadline
    offset=$(wc -l <"$maillog")
    say "[$label] master.cf: $(pc -M scache/unix)"
    say "[$label] sending $messages messages in $sessions sessions"
    t0=$(date +%s)
    if ! smtp-source -s "$sessions" -m "$messages" -f from@example.com -t to@example.net \
        "127.0.0.1:$smtpd_port" >"$workdir/source.out" 2>&1; then
        cat "$workdir/source.out" >&2
        die "smtp-source failed"
    fi
    deadline=$((t0 + timeout))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        sent=$(count "$sent_re")
        if [ "$sent" -ge "$messages" ] &&
            postqueue -c "$conf" -p 2>/dev/null | grep -q 'Mail queue is empty'; then
            drained=1
            break
        fi
        sleep 1
    done
    t1=$(date +%s)
    if [ -n "$drained" ]; then
        say "[$label] queue drained after $((t1 - t0))s"
    else
        say "[$label] queue NOT drained after $((t1 - t0))s"
    fi

    # What master gave the cache daemon (while it is still alive).
    local master_pid scache_pid='' p comm
    master_pid=$(awk '{print $1; exit}' "$queue/pid/master.pid" 2>/dev/null || true)
    if [ -n "$master_pid" ]; then
        while read -r p comm; do
            if [ "$comm" = "${prog:0:15}" ]; then scache_pid=$p; fi
        done < <(ps -o pid=,comm= --ppid "$master_pid")
    fi
    if [ -n "$scache_pid" ]; then
        say "[$label] cache daemon pid $scache_pid: argv: $(tr '\0' ' ' <"/proc/$scache_pid/cmdline")"
        say "[$label]   env: $(tr '\0' ' ' <"/proc/$scache_pid/environ")"
        say "[$label]   root: $(readlink "/proc/$scache_pid/root")  cwd: $(readlink "/proc/$scache_pid/cwd")  uid: $(awk '/^Uid:/{print $2"/"$3}' "/proc/$scache_pid/status")  fds: $(find "/proc/$scache_pid/fd" -mindepth 1 -maxdepth 1 | wc -l)"
    else
        say "[$label] no running cache daemon found under master"
    fi

    # --quit: let every cached session expire, then compare the receiver's
    # disconnect lines with what the cache daemon expired.
    local recv_total=0 recv_quit=0 recv_noquit=0 expired=- want_quit=$quit
    # Postfix's own daemon (a stock phase) never sends QUIT.
    [ "$prog" != scache ] || [ -z "$quit" ] || want_quit=no
    if [ -n "$quit" ]; then
        sleep 5 # smtp_connection_cache_time_limit (2s) and a margin
        if [ "$prog" != scache ]; then
            expired=$("$(pc -h daemon_directory)/$prog" stats --socket "$queue/private/scache" \
                --format json 2>/dev/null | sed -nE 's/.*"expired_sessions":([0-9]+).*/\1/p')
            [ -n "$expired" ] || expired=-
        fi
        recv_total=$(count 'postfix/receiver/smtpd\[[0-9]+\]: disconnect from ')
        recv_quit=$(count 'postfix/receiver/smtpd\[[0-9]+\]: disconnect from .* quit=1 ')
        recv_noquit=$((recv_total - recv_quit))
        echo "== [$label] receiver smtpd disconnect lines: $recv_total, with quit=1: $recv_quit, without: $recv_noquit; sessions expired in the cache: $expired"
        phase_log | grep -E 'postfix/receiver/smtpd\[[0-9]+\]: disconnect from ' | head -3 | sed 's/^/   /'
        if [ -n "$tls" ]; then
            echo "== [$label] TLS to the receiver: $(count 'postfix/receiver/smtpd\[[0-9]+\]: .*TLS connection established') sessions established, $(count 'postfix/tlsproxy\[[0-9]+\]: .*TLS connection established') through tlsproxy"
        fi
    fi

    # Make the cache daemon exit (status channel EOF) so that it logs statistics.
    local tag="postfix/$prog\\[[0-9]+\\]"
    pf reload >/dev/null 2>&1 || say "warning: postfix reload failed"
    for _ in $(seq 1 30); do
        [ "$(count "$tag: statistics: ")" -gt 0 ] && break
        sleep 0.5
    done
    sleep 1

    local deferred bounced disabling scache_warn master_warn stats_lines histogram buckets
    local reused max_use reuse_pct=0 result=pass f
    sent=$(count "$sent_re")
    deferred=$(count 'postfix/smtp\[[0-9]+\]: .* status=deferred')
    bounced=$(count 'postfix/smtp\[[0-9]+\]: .* status=bounced')
    disabling=$(count 'disabling connection caching')
    scache_warn=$(count "$tag: (warning|error|fatal|panic): ")
    master_warn=$(count "postfix/master\\[[0-9]+\\]: (warning|fatal|panic): .*scache")
    stats_lines=$(count "$tag: statistics: ")
    # conn_use per delivery: absent means a new connection (1).
    phase_log | grep -E "$sent_re" | sed -E 's/.*conn_use=([0-9]+).*/\1/; t; s/.*/1/' \
        >"$workdir/conn_use.txt" || true
    histogram=$(sort -n "$workdir/conn_use.txt" | uniq -c |
        awk '{printf "%s%s:%s", (NR>1?",":""), $2, $1}')
    buckets=$(awk '{ if ($1 == 1) b[1]++; else if ($1 == 2) b[2]++; else if ($1 < 10) b[3]++; else b[4]++ }
        END { printf "1:%d,2:%d,3-9:%d,10+:%d", b[1], b[2], b[3], b[4] }' "$workdir/conn_use.txt")
    reused=$(awk '$1 >= 2' "$workdir/conn_use.txt" | wc -l)
    max_use=$(sort -n "$workdir/conn_use.txt" | tail -1)
    [ "$sent" -gt 0 ] && reuse_pct=$((reused * 100 / sent))

    echo
    echo "== [$label] deliveries: sent=$sent deferred=$deferred bounced=$bounced of $messages"
    echo "== [$label] conn_use histogram (uses:deliveries): ${histogram:-none}"
    echo "== [$label] reused deliveries (conn_use>=2): $reused ($reuse_pct%), max conn_use=${max_use:-0}"
    echo "== [$label] cache daemon statistics:"
    phase_log | grep -E "$tag: statistics: " | sed 's/^/   /' || echo "   (none)"
    if [ "$scache_warn" -gt 0 ] || [ "$master_warn" -gt 0 ] || [ "$disabling" -gt 0 ]; then
        echo "== [$label] problems:"
        phase_log | grep -E "$tag: (warning|error|fatal|panic): |postfix/master\\[[0-9]+\\]: (warning|fatal|panic): .*scache|disabling connection caching" |
            head -20 | sed 's/^/   /'
    fi

    local fail=()
    [ "$sent" -ge "$messages" ] || fail+=("sent $sent < $messages")
    [ -n "$drained" ] || fail+=("queue not drained within ${timeout}s")
    [ "$reuse_pct" -ge "$min_reuse" ] || fail+=("reuse $reuse_pct% < $min_reuse%")
    [ "$disabling" -eq 0 ] || fail+=("$disabling 'disabling connection caching'")
    [ "$scache_warn" -eq 0 ] || fail+=("$scache_warn cache daemon warnings")
    [ "$master_warn" -eq 0 ] || fail+=("$master_warn master warnings about the cache daemon")
    [ "$stats_lines" -gt 0 ] || fail+=("no statistics line from the cache daemon")
    if [ "$want_quit" = yes ]; then
        [ "$recv_total" -gt 0 ] || fail+=("no disconnect line from the receiver")
        [ "$recv_noquit" -eq 0 ] || fail+=("$recv_noquit receiver sessions closed without QUIT")
        [ "$expired" != - ] && [ "$expired" -gt 0 ] || fail+=("no session expired in the cache (expired=$expired)")
    elif [ "$want_quit" = no ]; then
        [ "$recv_noquit" -gt 0 ] || fail+=("no receiver session closed without QUIT")
        if [ "$expired" != - ] && [ "$recv_noquit" -ne "$expired" ]; then
            fail+=("$recv_noquit receiver sessions without QUIT but $expired expired in the cache")
        fi
    fi
    if [ -n "$tls" ] && [ "$(count 'postfix/tlsproxy\[[0-9]+\]: .*TLS connection established')" -eq 0 ]; then
        fail+=("no TLS session through tlsproxy")
    fi
    if [ ${#fail[@]} -gt 0 ]; then
        result=fail
        overall=fail
        for f in "${fail[@]}"; do echo "FAIL [$label]: $f"; done
    fi
    summaries+=("SCACHE_E2E result=$result phase=$label prog=$prog messages=$messages sent=$sent deferred=$deferred bounced=$bounced reused=$reused reuse_pct=$reuse_pct max_conn_use=${max_use:-0} conn_use=$buckets disabling=$disabling scache_warnings=$scache_warn master_warnings=$master_warn stats_lines=$stats_lines seconds=$((t1 - t0))${quit:+ quit=$want_quit receiver_disconnects=$recv_total receiver_quit=$recv_quit receiver_no_quit=$recv_noquit expired_sessions=$expired}${tls:+ tls=tlsproxy}")
    echo
}

summaries=()
if [ "$daemon" = stock ]; then
    run_phase stock scache
else
    # The admin's path: swap while Postfix runs (postfix-swap.sh reloads it).
    if [ "$daemon" = installed ]; then
        "$swap" install -c "$conf" --name "$name"
    else
        "$swap" install -c "$conf" --binary "$daemon" --name "$name" --force -q
    fi
    run_phase "$name" "$name"
    if [ -n "$revert_check" ]; then
        if [ "$daemon" = installed ]; then
            "$swap" revert -c "$conf" --name "$name"
        else
            "$swap" revert -c "$conf" --name "$name" -q
        fi
        if [ "$daemon" != installed ] && [ -e "$(pc -h daemon_directory)/$name" ]; then
            echo "FAIL: revert left $name installed"; overall=fail
        fi
        run_phase stock-after-revert scache
    fi
fi

for l in "${summaries[@]}"; do echo "$l"; done
[ "$overall" = pass ]
