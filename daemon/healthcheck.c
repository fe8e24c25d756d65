/* daemon/healthcheck.c — `cosyvoiced --healthcheck`: a Docker HEALTHCHECK without curl that follows
 * the configured listen address and port.
 *
 * DESIGN: the probe loads the configuration exactly as the daemon does (file, COSYVOICED_* variables,
 * flags). In a container the daemon's flags are on PID 1's command line, which the HEALTHCHECK process
 * does not see, so when /proc/1/exe is this same binary its arguments are taken from /proc/1/cmdline.
 * The probe is a plain HTTP/1.0 GET /readyz over a socket with 3 s send/receive timeouts; only the
 * status line is read. */
#include "daemon/healthcheck.h"

#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/mem.h"

#define HC_MAX_ARGS    64
#define HC_CMDLINE_MAX 65536
#define HC_TIMEOUT_S   3

int healthcheck_probe(const char *listen, int port, char *msg, size_t len)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
	char portstr[16], resp[256];
	const char *host = listen;
	int fd = -1, status = -1, rc;
	size_t got = 0;

	if (!strcmp(listen, "0.0.0.0") || !listen[0])
		host = "127.0.0.1";
	else if (!strcmp(listen, "::"))
		host = "::1";
	snprintf(portstr, sizeof portstr, "%d", port);
	if ((rc = getaddrinfo(host, portstr, &hints, &ai)) != 0) {
		snprintf(msg, len, "%s: %s", host, gai_strerror(rc));
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		struct timeval tv = {HC_TIMEOUT_S, 0};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	}
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		snprintf(msg, len, "no daemon answers on %s:%d", host, port);
		goto out;
	}
	static const char req[] =
	    "GET /readyz HTTP/1.0\r\nHost: localhost\r\nUser-Agent: cosyvoiced-healthcheck\r\n\r\n";
	if (write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) {
		snprintf(msg, len, "cannot send to %s:%d", host, port);
		goto out;
	}
	while (got < sizeof resp - 1) {
		ssize_t n = read(fd, resp + got, sizeof resp - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
		if (memchr(resp, '\n', got))
			break;
	}
	resp[got] = '\0';
	if (sscanf(resp, "HTTP/%*d.%*d %d", &status) != 1) {
		snprintf(msg, len, "no HTTP answer from %s:%d", host, port);
		status = -1;
		goto out;
	}
	snprintf(msg, len, "GET http://%s:%d/readyz: %d (%s)", host, port, status,
		 status == 200 ? "ready" : "not ready");
out:
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	return status;
}

int healthcheck_pid1_args(char ***argv)
{
	char self[PATH_MAX], pid1[PATH_MAX], *buf;
	ssize_t a, b, n;
	FILE *f;
	int argc = 0;

	*argv = NULL;
	a = readlink("/proc/self/exe", self, sizeof self - 1);
	b = readlink("/proc/1/exe", pid1, sizeof pid1 - 1);
	if (a <= 0 || b <= 0 || getpid() == 1)
		return 0;
	self[a] = pid1[b] = '\0';
	if (strcmp(self, pid1) != 0 || !(f = fopen("/proc/1/cmdline", "rb")))
		return 0;
	buf = xmalloc(HC_CMDLINE_MAX);
	n = (ssize_t)fread(buf, 1, HC_CMDLINE_MAX - 1, f);
	fclose(f);
	if (n <= 0) {
		free(buf);
		return 0;
	}
	buf[n] = '\0';
	*argv = xcalloc(HC_MAX_ARGS + 1, sizeof **argv);
	for (ssize_t i = 0; i < n && argc < HC_MAX_ARGS; i += (ssize_t)strlen(buf + i) + 1)
		(*argv)[argc++] = xstrdup(buf + i);
	free(buf);
	return argc;
}

void healthcheck_free_args(char **argv, int argc)
{
	for (int i = 0; argv && i < argc; i++)
		free(argv[i]);
	free(argv);
}
