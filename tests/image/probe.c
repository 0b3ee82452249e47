/*
 * probe.c - run inside a function's container (podman exec, bind-mounted;
 * the run image has no shell).  Built static, so it needs nothing from the
 * image.
 *
 *   zc-probe
 *       checks that the root filesystem and the app directory are
 *       read-only and /tmp is writable, and prints the identity; exit 0
 *       when all hold.
 *   zc-probe coldstart PORT RUNS BINARY
 *       the function's cold start inside its own image: RUNS times, exec
 *       BINARY with PORT set and time until GET /health/readiness answers
 *       200, then SIGTERM it.  Prints "coldstart median=.. min=.. max=.. ms"
 *       and, from the last run's /proc/PID/maps, which of the store's
 *       libraries it had loaded: "maps libsqlite3=no libpq=no".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <mntent.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* mount_opts: the options of the last mount at DIR, "" when none. */
static const char *
mount_opts(const char *dir, char *buf, size_t len)
{
	FILE *f = setmntent("/proc/self/mounts", "r");
	struct mntent *m;

	buf[0] = '\0';
	if (f == NULL)
		return buf;
	while ((m = getmntent(f)) != NULL)
		if (strcmp(m->mnt_dir, dir) == 0)
			snprintf(buf, len, "%s %s", m->mnt_type, m->mnt_opts);
	endmntent(f);
	return buf;
}

/* expect_mount: DIR is a mount whose first option is WANT ("ro"/"rw"). */
static int
expect_mount(const char *dir, const char *want)
{
	char buf[512];
	const char *opts = mount_opts(dir, buf, sizeof(buf));
	const char *o = strchr(opts, ' ');

	if (o == NULL || strncmp(o + 1, want, 2) != 0 ||
	    (o[3] != ',' && o[3] != '\0')) {
		printf("FAIL mount %s: \"%s\", expected %s\n", dir, opts, want);
		return 1;
	}
	printf("ok   mount %s: %.40s\n", dir, opts);
	return 0;
}

/* expect_rofs: creating PATH must fail (EROFS, or EACCES where the
 * permission check comes first; the mount check says which is right). */
static int
expect_rofs(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);

	if (fd >= 0) {
		close(fd);
		unlink(path);
		printf("FAIL %s is writable\n", path);
		return 1;
	}
	if (errno != EROFS && errno != EACCES) {
		printf("FAIL %s: %s, expected EROFS\n", path, strerror(errno));
		return 1;
	}
	printf("ok   %s: %s\n", path, strerror(errno));
	return 0;
}

/* expect_writable: PATH can be created, written and removed. */
static int
expect_writable(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);

	if (fd < 0 || write(fd, "x", 1) != 1) {
		printf("FAIL %s: %s\n", path, strerror(errno));
		return 1;
	}
	close(fd);
	unlink(path);
	printf("ok   %s: writable\n", path);
	return 0;
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ready: GET /health/readiness on 127.0.0.1:port answers 200. */
static int
ready(int port)
{
	static const char req[] = "GET /health/readiness HTTP/1.1\r\n"
				  "Host: 127.0.0.1\r\nConnection: close\r\n\r\n";
	struct sockaddr_in sa = {.sin_family = AF_INET};
	char buf[64];
	ssize_t n;
	size_t got = 0;
	int fd, ok = 0;

	sa.sin_port = htons((unsigned short)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return 0;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    write(fd, req, sizeof(req) - 1) == (ssize_t)(sizeof(req) - 1)) {
		while (got < 12 &&
		       (n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
			got += (size_t)n;
		buf[got] = '\0';
		ok = strncmp(buf, "HTTP/1.1 200", 12) == 0;
	}
	close(fd);
	return ok;
}

/* maps_has: /proc/PID/maps names a file whose name contains what. */
static int
maps_has(pid_t pid, const char *what)
{
	char path[64], line[1024];
	FILE *f;
	int found = 0;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (!found && fgets(line, sizeof(line), f) != NULL)
		found = strstr(line, what) != NULL;
	fclose(f);
	return found;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int
coldstart(int port, int runs, char *binary)
{
	char *argv[] = {binary, NULL}, portstr[16];
	double ms[64], t0;
	int i, status, sqlite = -1, pq = -1;
	pid_t pid;

	if (runs < 1 || runs > 64 || port <= 0) {
		fprintf(stderr, "coldstart: bad arguments\n");
		return 2;
	}
	snprintf(portstr, sizeof(portstr), "%d", port);
	setenv("PORT", portstr, 1);
	setenv("ZC_LISTEN_ADDRESS", "127.0.0.1", 1);
	for (i = 0; i < runs; i++) {
		t0 = now_ms();
		if ((pid = fork()) < 0)
			return 2;
		if (pid == 0) {
			int null = open("/dev/null", O_WRONLY);

			if (null >= 0) { /* its logs are not the probe's output */
				dup2(null, 1);
				dup2(null, 2);
			}
			execv(binary, argv);
			_exit(127);
		}
		while (!ready(port)) {
			if (waitpid(pid, &status, WNOHANG) == pid) {
				printf("FAIL %s exited before it was ready "
				       "(status %d)\n",
				       binary, status);
				return 1;
			}
			if (now_ms() - t0 > 10000) {
				kill(pid, SIGKILL);
				waitpid(pid, &status, 0);
				printf("FAIL %s not ready in 10 s\n", binary);
				return 1;
			}
			usleep(200);
		}
		ms[i] = now_ms() - t0;
		if (i == runs - 1) {
			sqlite = maps_has(pid, "libsqlite3");
			pq = maps_has(pid, "libpq");
		}
		kill(pid, SIGTERM);
		if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0) {
			printf("FAIL %s did not exit 0 on SIGTERM (status %d)\n",
			       binary, status);
			return 1;
		}
	}
	qsort(ms, (size_t)runs, sizeof(ms[0]), cmp_double);
	printf("coldstart median=%.2f min=%.2f max=%.2f ms (%d runs)\n",
	       runs % 2 ? ms[runs / 2] : (ms[runs / 2 - 1] + ms[runs / 2]) / 2,
	       ms[0], ms[runs - 1], runs);
	printf("maps libsqlite3=%s libpq=%s\n",
	       sqlite < 0 ? "?" : sqlite ? "yes" : "no",
	       pq < 0 ? "?" : pq ? "yes" : "no");
	return 0;
}

int
main(int argc, char **argv)
{
	int bad = 0;

	if (argc == 5 && strcmp(argv[1], "coldstart") == 0)
		return coldstart(atoi(argv[2]), atoi(argv[3]), argv[4]);

	printf("uid=%d euid=%d gid=%d\n", (int)getuid(), (int)geteuid(),
	       (int)getgid());
	bad += expect_mount("/", "ro");
	bad += expect_mount("/tmp", "rw");
	bad += expect_rofs("/zc-probe-root");
	bad += expect_rofs("/workspace/zc-probe");
	bad += expect_rofs("/etc/zc-probe");
	bad += expect_writable("/tmp/zc-probe");
	return bad == 0 ? 0 : 1;
}
