#!/bin/sh
# demo.sh - a throwaway local cluster: a PostgreSQL master and a streaming
# standby on 127.0.0.2 and 127.0.0.3, an efm agent watching each plus a
# witness agent on 127.0.0.4; the three agents form one cluster and the
# cluster-wide status is printed from every node; then the master's
# postmaster is killed, the agents promote the standby, the status is shown
# again, and everything is torn down.
# The agents' notification mail goes to a mail sink on 127.0.0.1 (aiosmtpd,
# from scripts/install-deps.sh), whose catch is listed at the end.
# Run as root (PostgreSQL runs as the postgres user).
# Usage: scripts/demo.sh BUILD_DIR
set -eu
build=$(cd "${1:-build}" && pwd)
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
cluster=demo
master=127.0.0.2
standby=127.0.0.3
witness=127.0.0.4
port=55432
agent_port=7800
python=/usr/bin/python3
base=$(mktemp -d /tmp/efm-demo-XXXXXX)
chmod 755 "$base"
pids=""
sink_pid=""

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# poll TRIES LOG WHAT COMMAND...: run COMMAND every 0.2 s until it succeeds;
# after TRIES failures print WHAT and the file LOG, and give up.
poll() {
	tries=$1 log=$2 what=$3
	shift 3
	i=0
	until "$@" >/dev/null 2>&1; do
		i=$((i + 1))
		if [ $i -gt "$tries" ]; then
			echo "$what:" >&2
			cat "$log" >&2
			exit 1
		fi
		sleep 0.2
	done
}
pg() { runuser -u postgres -- "$@"; }

stop_agents() {
	for p in $pids; do kill "$p" 2>/dev/null; done
	for p in $pids; do wait "$p" 2>/dev/null; done
	pids=""
}

cleanup() {
	set +e
	stop_agents
	[ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null && wait "$sink_pid" 2>/dev/null
	for d in "$base"/pg-*; do
		pg "$pgbin/pg_ctl" -D "$d" status >/dev/null 2>&1 &&
			pg "$pgbin/pg_ctl" -D "$d" -m fast -w stop >/dev/null
	done
	rm -rf "$base"
}
trap cleanup EXIT INT TERM

pg_conf() { # pg_conf NAME HOST
	cat >>"$base/pg-$1/postgresql.conf" <<CONF
listen_addresses = '$2'
port = $port
unix_socket_directories = '$base/sock-$1'
wal_level = replica
hot_standby = on
CONF
}

say "Mail sink on 127.0.0.1 (the agents' notification.smtp.url)"
if ! $python -c 'import aiosmtpd' 2>/dev/null; then
	echo "python3-aiosmtpd is missing: run scripts/install-deps.sh" >&2
	exit 1
fi
mail_port=$($python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
$python -m aiosmtpd -n -l "127.0.0.1:$mail_port" -c aiosmtpd.handlers.Mailbox "$base/mail" \
	>"$base/mail-sink.log" 2>&1 &
sink_pid=$!
poll 50 "$base/mail-sink.log" "the mail sink did not start" \
	$python -c "import socket; socket.create_connection(('127.0.0.1', $mail_port), 1)"
echo "smtp://127.0.0.1:$mail_port, keeping what it receives in $base/mail"

say "PostgreSQL master on $master:$port"
echo secret >"$base/pw" && chmod 644 "$base/pw"
# Sockets live outside the data directories, or pg_basebackup would copy the
# master's socket lock file into the standby.
install -d -m 700 -o postgres -g postgres "$base/pg-master" "$base/pg-standby" \
	"$base/sock-master" "$base/sock-standby"
pg "$pgbin/initdb" -D "$base/pg-master" -U postgres --auth-local=trust \
	--auth-host=scram-sha-256 --pwfile="$base/pw" >/dev/null
pg_conf master $master
echo "host replication all 127.0.0.0/8 scram-sha-256" >>"$base/pg-master/pg_hba.conf"
pg "$pgbin/pg_ctl" -D "$base/pg-master" -l "$base/pg-master/server.log" -w start >/dev/null
pg psql -h "$base/sock-master" -p $port -qc "CREATE ROLE efm LOGIN PASSWORD 'efm-secret'"
# What the agents need to promote a standby and re-point the others (see
# src/failover/fo_local.h); a superuser would do as well.
pg psql -h "$base/sock-master" -p $port -q \
	-c "GRANT EXECUTE ON FUNCTION pg_promote(boolean, integer), pg_wal_replay_resume() TO efm" \
	-c "GRANT pg_read_all_settings, pg_read_all_stats TO efm" \
	-c "GRANT ALTER SYSTEM ON PARAMETER primary_conninfo TO efm" \
	-c "GRANT EXECUTE ON FUNCTION pg_reload_conf() TO efm"

say "Streaming standby on $standby:$port (pg_basebackup)"
PGPASSWORD=secret pg "$pgbin/pg_basebackup" -h $master -p $port -U postgres \
	-D "$base/pg-standby" -R -X stream -c fast
pg_conf standby $standby
pg "$pgbin/pg_ctl" -D "$base/pg-standby" -l "$base/pg-standby/server.log" -w start >/dev/null

say "Encrypting the database password: efm encrypt $cluster"
encrypted=$(EFM_PASSWORD=efm-secret "$build/efm" encrypt $cluster |
	sed -n 's/^db.password.encrypted=//p')
echo "db.password.encrypted=$encrypted"

start_agent() { # start_agent NAME HOST [witness]
	dir="$base/agent-$1"
	mkdir -p "$dir/etc" "$dir/run" "$dir/lib"
	if [ "${3:-}" = witness ]; then
		echo "is.witness=true" >"$dir/etc/$cluster.properties"
	else
		# Fencing stops the database with pg_ctl and leaves standby.signal.
		cat >"$dir/etc/$cluster.properties" <<PROPS
db.bin=$pgbin
db.recovery.conf.dir=$base/pg-$1
db.service.owner=postgres
db.reuse.connection.count=100
PROPS
	fi
	cat >>"$dir/etc/$cluster.properties" <<PROPS
db.user=efm
db.password.encrypted=$encrypted
db.port=$port
db.database=postgres
bind.address=$2:$agent_port
user.email=dba@example.com
notification.smtp.url=smtp://127.0.0.1:$mail_port
local.period=2
local.timeout=10
local.timeout.final=3
node.timeout=10
PROPS
	echo "$master:$agent_port $standby:$agent_port $witness:$agent_port" \
		>"$dir/etc/$cluster.nodes"
	"$build/efmd" --config-dir "$dir/etc" --run-dir "$dir/run" --state-dir "$dir/lib" \
		--log-file "$dir/efmd.log" $cluster &
	pids="$pids $!"
}

efm_at() { # efm_at NAME COMMAND...
	dir="$base/agent-$1"
	shift
	"$build/efm" --config-dir "$dir/etc" --run-dir "$dir/run" "$@"
}

is_healthy() { # is_healthy NAME
	efm_at "$1" node-status-json $cluster 2>/dev/null | grep -Eq '"healthy":[[:space:]]*true'
}

sees_all() { # sees_all NAME: that node's status lists three members, all UP
	[ "$(efm_at "$1" cluster-status-json $cluster 2>/dev/null |
		grep -c '"agent":[[:space:]]*"UP"')" = 3 ]
}

wait_healthy() {
	poll 100 "$base/agent-$1/efmd.log" "agent $1 did not become healthy" is_healthy "$1"
}

wait_members() {
	poll 150 "$base/agent-$1/efmd.log" "agent $1 did not see the whole cluster" sees_all "$1"
}

say "Agents: efmd on $master, $standby and (witness) $witness, started together"
start_agent master $master
start_agent standby $standby
start_agent witness $witness witness
wait_healthy master
wait_healthy standby
wait_healthy witness
wait_members master
wait_members standby
wait_members witness

say "efm prop-check $cluster (on the master)"
efm_at master prop-check $cluster || true

say "efm cluster-status $cluster (on the master)"
efm_at master cluster-status $cluster || true
say "efm cluster-status $cluster (on the standby)"
efm_at standby cluster-status $cluster || true
say "efm cluster-status $cluster (on the witness)"
efm_at witness cluster-status $cluster || true
say "efm cluster-status-json $cluster (on the witness)"
efm_at witness cluster-status-json $cluster || true
say "$cluster.nodes as the agents rewrote it (on the master)"
cat "$base/agent-master/etc/$cluster.nodes"

say "The agents' cluster log lines"
grep -h "cluster $cluster" "$base/agent-master/efmd.log" "$base/agent-standby/efmd.log" \
	"$base/agent-witness/efmd.log" || true

is_master() { # is_master NAME: that database accepts writes
	[ "$(pg psql -h "$base/sock-$1" -p $port -Atc 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ]
}
standby_is_master_agent() { # the standby's own agent reports it Master
	efm_at standby cluster-status-json $cluster 2>/dev/null |
		jq -e --arg h $standby '.nodes[$h].type == "Master" and .failover.phase == "DONE"' \
			>/dev/null
}

say "Failover: kill -9 of the master's postmaster"
pg psql -h "$base/sock-master" -p $port -qc "CREATE TABLE demo(t text)" \
	-c "INSERT INTO demo VALUES ('written on the old master')"
start=$(date +%s.%N)
kill -9 "$(head -n 1 "$base/pg-master/postmaster.pid")"
poll 150 "$base/agent-standby/efmd.log" "the standby was not promoted" is_master standby
promoted=$(date +%s.%N)
pg psql -h "$base/sock-standby" -p $port -qc "INSERT INTO demo VALUES ('written on the new master')"
awk -v a="$start" -v b="$promoted" 'BEGIN { printf "the standby accepts writes %.2f s after the kill\n", b - a }'
poll 150 "$base/agent-standby/efmd.log" "the failover did not complete" standby_is_master_agent
say "efm cluster-status $cluster after the failover (on the witness)"
efm_at witness cluster-status $cluster || true
say "The failover, as the agents logged it"
grep -h "failover:" "$base/agent-master/efmd.log" "$base/agent-standby/efmd.log" \
	"$base/agent-witness/efmd.log" | cut -c 1-200 || true
say "Rows on the new master"
pg psql -h "$base/sock-standby" -p $port -Atc "SELECT t FROM demo"

say "Stopping the agents"
stop_agents

say "Mail received by the sink"
$python - "$base/mail" <<'PY'
import mailbox
import sys

box = mailbox.Maildir(sys.argv[1], create=False)
mails = sorted(box, key=lambda m: m.get_date())
print(f"{len(mails)} message(s), oldest first:")
for m in mails:
    print(f"  {m['Subject']}  (to {m['To']})")
PY

say "Teardown"
