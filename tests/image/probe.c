/*
 * probe.c - run inside a function's container (podman exec, bind-mounted;
 * the run image has no shell): checks that the root filesystem and the app
 * directory are read-only and /tmp is writable, and prints the identity.
 * Built static, so it needs nothing from the image.  Exit 0 when all hold.
 */
#include <errno.h>
#include <fcntl.h>
#include <mntent.h>
#include <stdio.h>
#include <string.h>
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

int
main(void)
{
	int bad = 0;

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
