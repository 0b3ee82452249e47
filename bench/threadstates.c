/*
 * threadstates - where the threads of some processes spend their time: a
 * sampling profile of on-CPU and off-CPU time, for the benchmark's profile
 * of the durable chain (bench.sh, PROFILE).  No perf events are needed, so
 * it also works where perf has no hardware counters, and it sees the time
 * a thread spends asleep (a lock, an fsync, a downstream answer), which a
 * CPU profiler does not.
 *
 *   threadstates -d SECONDS [-i INTERVAL_MS] LABEL=PID[,PID...] ...
 *
 * A PID written +PID stands for that process and its children (re-listed
 * every second): a PostgreSQL postmaster and its backends.  Every
 * INTERVAL_MS (default 20) each thread of each process is read from
 * /proc: on a CPU (or runnable), or asleep in a system call (which one,
 * from /proc/PID/task/TID/syscall; root or the processes' owner).
 * Threads are named by their comm with trailing digits dropped; a
 * PostgreSQL process by its title ("DB STATE" for a backend: "balance_manager
 * COMMIT", "audit_logger idle in transaction", "... waiting" for a lock).
 *
 * Prints TSV lines:
 *   samples  N  INTERVAL_MS  SECONDS
 *   cpu      LABEL  CPU_SECONDS           (utime + stime over the sampling)
 *   cpu      machine-busy  CPU_SECONDS    (all CPUs, from /proc/stat)
 *   state    LABEL  NAME  WHAT  THREADS   (mean number of threads in that
 *                                          state: WHAT is "cpu" or a system
 *                                          call's name)
 * sorted by label, then by THREADS, largest first.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_LABELS 16
#define MAX_PIDS   512
#define MAX_KEYS   4096

struct label {
	char name[32];
	int roots[32];    /* as given */
	int children[32]; /* 1: also its children */
	int nroots;
	int pids[MAX_PIDS]; /* current set */
	int npids;
	long long t0[MAX_PIDS]; /* ticks at start, per pid in start set */
	int p0[MAX_PIDS];
	int np0;
};

struct key {
	int label;
	char name[80];
	char what[24];
	unsigned long n;
};

/* Thread names, read again when the processes are re-listed (every
 * second): reading them on every sample would cost more than the rest. */
struct name {
	int pid, tid;
	char name[80];
};

#define MAX_NAMES 4096
static struct name names[MAX_NAMES];
static int nnames;

static struct label labels[MAX_LABELS];
static int nlabels;
static struct key keys[MAX_KEYS];
static int nkeys;

static const struct {
	long nr;
	const char *name;
} sysnames[] = {
	{SYS_read, "read"},
	{SYS_write, "write"},
	{SYS_pread64, "pread64"},
	{SYS_pwrite64, "pwrite64"},
	{SYS_writev, "writev"},
	{SYS_sendto, "sendto"},
	{SYS_recvfrom, "recvfrom"},
	{SYS_sendmsg, "sendmsg"},
	{SYS_recvmsg, "recvmsg"},
	{SYS_connect, "connect"},
	{SYS_fsync, "fsync"},
	{SYS_fdatasync, "fdatasync"},
	{SYS_futex, "futex"},
	{SYS_clock_nanosleep, "clock_nanosleep"},
	{SYS_epoll_pwait, "epoll_pwait"},
	{SYS_pselect6, "pselect6"},
	{SYS_ppoll, "ppoll"},
	{SYS_accept4, "accept4"},
	{SYS_fcntl, "fcntl"},
	{SYS_openat, "openat"},
	{SYS_close, "close"},
	{SYS_wait4, "wait4"},
	{SYS_rt_sigtimedwait, "rt_sigtimedwait"},
#ifdef SYS_poll
	{SYS_poll, "poll"},
#endif
#ifdef SYS_select
	{SYS_select, "select"},
#endif
#ifdef SYS_nanosleep
	{SYS_nanosleep, "nanosleep"},
#endif
#ifdef SYS_epoll_wait
	{SYS_epoll_wait, "epoll_wait"},
#endif
#ifdef SYS_epoll_pwait2
	{SYS_epoll_pwait2, "epoll_pwait2"},
#endif
#ifdef SYS_accept
	{SYS_accept, "accept"},
#endif
};

static int
read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return (int)n;
}

/* utime + stime of a process (all its threads), in ticks; -1 if gone. */
static long long
proc_ticks(int pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (read_file(path, buf, sizeof(buf)) < 0 ||
	    (p = strrchr(buf, ')')) == NULL)
		return -1;
	/* after ") ": state(3) ... utime(14) stime(15) */
	if (sscanf(p + 2,
		   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
		   &st) != 2)
		return -1;
	return (long long)(ut + st);
}

static void
machine_ticks(long long *busy)
{
	char buf[512];
	unsigned long long v[10] = {0};

	*busy = 0;
	if (read_file("/proc/stat", buf, sizeof(buf)) < 0)
		return;
	if (sscanf(buf, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
		   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) < 8)
		return;
	/* user nice system idle iowait irq softirq steal: busy = all but
	 * idle and iowait */
	*busy = (long long)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]);
}

static void
add_pid(struct label *l, int pid)
{
	int i;

	for (i = 0; i < l->npids; i++)
		if (l->pids[i] == pid)
			return;
	if (l->npids < MAX_PIDS)
		l->pids[l->npids++] = pid;
}

static void
list_pids(struct label *l)
{
	char path[96], buf[8192], *tok, *save;
	int i;

	l->npids = 0;
	for (i = 0; i < l->nroots; i++) {
		add_pid(l, l->roots[i]);
		if (!l->children[i])
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%d/children",
			 l->roots[i], l->roots[i]);
		if (read_file(path, buf, sizeof(buf)) < 0)
			continue;
		for (tok = strtok_r(buf, " \n", &save); tok != NULL;
		     tok = strtok_r(NULL, " \n", &save))
			add_pid(l, atoi(tok));
	}
}

/* A PostgreSQL process title: "postgres: USER DB HOST(PORT) STATE" for a
 * backend (-> "DB STATE"), "postgres: walwriter" for the others. */
static int
pg_title(int pid, char *out, size_t size)
{
	char path[64], buf[512], *p, *tok[16], *save;
	int n, ntok = 0, i, host = -1;
	size_t len;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	if ((n = read_file(path, buf, sizeof(buf))) <= 0 ||
	    strncmp(buf, "postgres:", 9) != 0)
		return -1;
	for (i = 0; i < n; i++)
		if (buf[i] == '\0')
			buf[i] = ' ';
	for (p = strtok_r(buf + 9, " ", &save); p != NULL && ntok < 16;
	     p = strtok_r(NULL, " ", &save))
		tok[ntok++] = p;
	for (i = 0; i < ntok; i++)
		if (strchr(tok[i], '(') != NULL &&
		    strchr(tok[i], ')') != NULL) {
			host = i;
			break;
		}
	out[0] = '\0';
	if (host >= 1) {
		snprintf(out, size, "%s", tok[host - 1]);
		i = host + 1;
	} else {
		i = 0;
	}
	for (; i < ntok; i++) {
		len = strlen(out);
		snprintf(out + len, size - len, "%s%s", len ? " " : "", tok[i]);
	}
	return 0;
}

static void
thread_name(int pid, int tid, char *out, size_t size)
{
	char path[96];
	size_t n;
	int i;

	/* a PostgreSQL title changes with every statement: never cached */
	for (i = 0; i < nnames; i++)
		if (names[i].pid == pid && names[i].tid == tid) {
			if (names[i].name[0] == '\0')
				break;
			snprintf(out, size, "%s", names[i].name);
			return;
		}
	if (pg_title(pid, out, size) == 0) {
		if (i == nnames && nnames < MAX_NAMES) {
			names[nnames].pid = pid;
			names[nnames].tid = tid;
			names[nnames++].name[0] = '\0';
		}
		return;
	}
	snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", pid, tid);
	if (read_file(path, out, size) < 0) {
		snprintf(out, size, "?");
		return;
	}
	n = strcspn(out, "\n");
	/* zc-async-3 and zc-async-7 are one kind of thread */
	while (n > 1 &&
	       (isdigit((unsigned char)out[n - 1]) || out[n - 1] == '-'))
		n--;
	out[n] = '\0';
	if (i == nnames && nnames < MAX_NAMES) {
		names[nnames].pid = pid;
		names[nnames].tid = tid;
		snprintf(names[nnames++].name, sizeof(names[0].name), "%s",
			 out);
	}
}

static void
thread_what(int pid, int tid, char *out, size_t size)
{
	char path[96], buf[256];
	long nr;
	size_t i;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/syscall", pid, tid);
	if (read_file(path, buf, sizeof(buf)) < 0) {
		snprintf(out, size, "?");
		return;
	}
	if (strncmp(buf, "running", 7) == 0) {
		snprintf(out, size, "cpu");
		return;
	}
	nr = strtol(buf, NULL, 10);
	if (nr < 0) { /* -1: not in a system call, but blocked (a fault) */
		snprintf(out, size, "blocked");
		return;
	}
	for (i = 0; i < sizeof(sysnames) / sizeof(sysnames[0]); i++)
		if (sysnames[i].nr == nr) {
			snprintf(out, size, "%s", sysnames[i].name);
			return;
		}
	snprintf(out, size, "sys%ld", nr);
}

static void
count(int label, const char *name, const char *what)
{
	int i;

	for (i = 0; i < nkeys; i++)
		if (keys[i].label == label && strcmp(keys[i].name, name) == 0 &&
		    strcmp(keys[i].what, what) == 0) {
			keys[i].n++;
			return;
		}
	if (nkeys == MAX_KEYS)
		return;
	keys[nkeys].label = label;
	snprintf(keys[nkeys].name, sizeof(keys[nkeys].name), "%s", name);
	snprintf(keys[nkeys].what, sizeof(keys[nkeys].what), "%s", what);
	keys[nkeys++].n = 1;
}

static void
sample(void)
{
	char path[64], name[80], what[24];
	struct dirent *de;
	DIR *d;
	int li, i, tid;

	for (li = 0; li < nlabels; li++) {
		struct label *l = &labels[li];

		for (i = 0; i < l->npids; i++) {
			snprintf(path, sizeof(path), "/proc/%d/task",
				 l->pids[i]);
			if ((d = opendir(path)) == NULL)
				continue;
			while ((de = readdir(d)) != NULL) {
				if (!isdigit((unsigned char)de->d_name[0]))
					continue;
				tid = atoi(de->d_name);
				thread_name(l->pids[i], tid, name,
					    sizeof(name));
				thread_what(l->pids[i], tid, what,
					    sizeof(what));
				count(li, name, what);
			}
			closedir(d);
		}
	}
}

static int
cmp_key(const void *a, const void *b)
{
	const struct key *x = a, *y = b;

	if (x->label != y->label)
		return x->label - y->label;
	return (x->n < y->n) - (x->n > y->n);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
usage(void)
{
	fprintf(stderr, "usage: threadstates -d SECONDS [-i INTERVAL_MS] "
			"LABEL=PID[,+PID...] ...\n");
	return 2;
}

int
main(int argc, char **argv)
{
	double seconds = 0, interval_ms = 20, t0, next, end, relist;
	long long m0, m1, hz = sysconf(_SC_CLK_TCK);
	unsigned long nsamples = 0;
	struct timespec ts;
	int opt, li, i, j;

	while ((opt = getopt(argc, argv, "d:i:")) != -1) {
		switch (opt) {
		case 'd':
			seconds = atof(optarg);
			break;
		case 'i':
			interval_ms = atof(optarg);
			break;
		default:
			return usage();
		}
	}
	if (seconds <= 0 || interval_ms <= 0 || optind == argc)
		return usage();
	for (; optind < argc && nlabels < MAX_LABELS; optind++) {
		char *eq = strchr(argv[optind], '='), *tok, *save;
		struct label *l = &labels[nlabels];

		if (eq == NULL || eq == argv[optind])
			return usage();
		snprintf(l->name, sizeof(l->name), "%.*s",
			 (int)(eq - argv[optind]), argv[optind]);
		for (tok = strtok_r(eq + 1, ",", &save);
		     tok != NULL && l->nroots < 32;
		     tok = strtok_r(NULL, ",", &save)) {
			l->children[l->nroots] = tok[0] == '+';
			l->roots[l->nroots++] = atoi(tok + (tok[0] == '+'));
		}
		nlabels++;
	}
	for (li = 0; li < nlabels; li++) {
		struct label *l = &labels[li];

		list_pids(l);
		for (i = 0; i < l->npids; i++) {
			l->p0[i] = l->pids[i];
			l->t0[i] = proc_ticks(l->pids[i]);
		}
		l->np0 = l->npids;
	}
	machine_ticks(&m0);
	t0 = now_s();
	end = t0 + seconds;
	relist = t0 + 1;
	for (next = t0; next < end; next += interval_ms / 1e3) {
		double now = now_s();

		if (next > now) {
			double wait = next - now;
			ts.tv_sec = (time_t)wait;
			ts.tv_nsec = (long)((wait - (double)ts.tv_sec) * 1e9);
			nanosleep(&ts, NULL);
		}
		if (now_s() >= relist) {
			nnames = 0;
			for (li = 0; li < nlabels; li++)
				list_pids(&labels[li]);
			relist += 1;
		}
		sample();
		nsamples++;
	}
	machine_ticks(&m1);
	printf("samples\t%lu\t%g\t%.3f\n", nsamples, interval_ms, now_s() - t0);
	for (li = 0; li < nlabels; li++) {
		struct label *l = &labels[li];
		long long sum = 0, t;

		list_pids(l);
		for (i = 0; i < l->npids; i++) {
			if ((t = proc_ticks(l->pids[i])) < 0)
				continue;
			for (j = 0; j < l->np0; j++)
				if (l->p0[j] == l->pids[i])
					break;
			/* a process started during the sampling: all of it */
			sum += j < l->np0 && l->t0[j] >= 0 ? t - l->t0[j] : t;
		}
		printf("cpu\t%s\t%.3f\n", l->name, (double)sum / (double)hz);
	}
	printf("cpu\tmachine-busy\t%.3f\n", (double)(m1 - m0) / (double)hz);
	qsort(keys, (size_t)nkeys, sizeof(keys[0]), cmp_key);
	for (i = 0; i < nkeys; i++)
		printf("state\t%s\t%s\t%s\t%.3f\n", labels[keys[i].label].name,
		       keys[i].name, keys[i].what,
		       nsamples ? (double)keys[i].n / (double)nsamples : 0.0);
	return 0;
}
