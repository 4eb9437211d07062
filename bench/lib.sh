# lib.sh — what the bench scripts share, sourced by them: PostgreSQL's
# binaries on PATH, a scratch directory removed at exit (with every cluster
# started in it stopped), and throwaway clusters.
#
#   bench_init NAME              PATH, RUNAS (runuser as postgres when root),
#                                $dir (/tmp/pgdbm-NAME.XXXXXX), the exit trap
#   bench_cluster DIR PORT <<CONF   initdb $dir/DIR, listen on 127.0.0.1:PORT
#                                (socket in $dir), the lines of CONF added to
#                                postgresql.conf, started (log in $dir/DIR.log)
#   cpu_of PID [VAR]             the CPU seconds (user + system) a live process
#                                has used so far; 0 when there is none (any more);
#                                into VAR if given (no subshell), else printed
#   cluster_cpu DIR [VAR]        the CPU seconds every process of cluster DIR
#                                has used so far, ended ones included (the
#                                postmaster's children's times): a difference of
#                                two readings is what the cluster spent between
#   sched_of PID VAR             "RUN WAIT": the nanoseconds a live process has
#                                spent on a CPU and waiting in a run queue for
#                                one (/proc/PID/schedstat); empty when there is
#                                none (or the kernel does not keep them)
#   nap SECONDS                  sleep without starting a process
#
# What runs while a side is timed must cost next to nothing: on a small
# machine a process started every few milliseconds (psql, awk, sleep) takes
# a CPU share from the apply it times.

bench_init() {
	PGBIN=${PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
	export PATH="$PGBIN:$PATH"
	RUNAS=()
	if [ "$(id -u)" = 0 ]; then RUNAS=(runuser -u postgres --); fi
	dir=$(mktemp -d "/tmp/pgdbm-$1.XXXXXX")
	if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; fi
	BENCH_CLUSTERS=()
	trap bench_cleanup EXIT INT TERM
	CLK_TCK=$(getconf CLK_TCK)
	mkfifo "$dir/nap"
	exec {NAP_FD}<>"$dir/nap"
}

nap() {
	read -r -t "$1" -u "$NAP_FD" _ || true
}

bench_cleanup() {
	for c in "${BENCH_CLUSTERS[@]}"; do
		"${RUNAS[@]}" pg_ctl -D "$dir/$c" -m immediate stop >/dev/null 2>&1 || true
	done
	rm -rf "$dir"
}

bench_cluster() {
	"${RUNAS[@]}" initdb -D "$dir/$1" -U postgres -A trust --no-sync -E UTF8 --locale=C >/dev/null
	{
		echo "listen_addresses = '127.0.0.1'"
		echo "port = $2"
		echo "unix_socket_directories = '$dir'"
		cat
	} >>"$dir/$1/postgresql.conf"
	BENCH_CLUSTERS+=("$1")
	"${RUNAS[@]}" pg_ctl -D "$dir/$1" -l "$dir/$1.log" -w start >/dev/null
}

cpu_of() {
	local stat t
	if [ -z "$1" ] || ! read -r stat 2>/dev/null <"/proc/$1/stat"; then
		t=0
	else
		# shellcheck disable=SC2086 # the fields after the command name, split on purpose
		set -- "$1" "${2:-}" ${stat##*) }
		t=$(( ${14} + ${15} ))
	fi
	if [ -n "${2:-}" ]; then
		printf -v "$2" '%d.%03d' $(( t / CLK_TCK )) $(( t % CLK_TCK * 1000 / CLK_TCK ))
	else
		printf '%d.%03d\n' $(( t / CLK_TCK )) $(( t % CLK_TCK * 1000 / CLK_TCK ))
	fi
}

sched_of() {
	local s=
	[ -z "$1" ] || ! read -r s 2>/dev/null <"/proc/$1/schedstat" || s=${s% *}
	printf -v "$2" '%s' "$s"
}

cluster_cpu() {
	local pm stat p t=0
	read -r pm <"$dir/$1/postmaster.pid" || { cpu_of "" "${2:-}"; return; }
	for p in /proc/[0-9]*; do
		read -r stat 2>/dev/null <"$p/stat" || continue
		# shellcheck disable=SC2086 # the fields after the command name, split on purpose
		set -- "$1" "${2:-}" ${stat##*) }
		if [ "${p#/proc/}" = "$pm" ]; then
			t=$(( t + ${14} + ${15} + ${16} + ${17} ))
		elif [ "$4" = "$pm" ]; then
			t=$(( t + ${14} + ${15} ))
		fi
	done
	if [ -n "${2:-}" ]; then
		printf -v "$2" '%d.%03d' $(( t / CLK_TCK )) $(( t % CLK_TCK * 1000 / CLK_TCK ))
	else
		printf '%d.%03d\n' $(( t / CLK_TCK )) $(( t % CLK_TCK * 1000 / CLK_TCK ))
	fi
}
