/* tests/integration/check_systemd.c — the systemd notify protocol, without systemd.
 *
 * Each test starts the real daemon (espeak-ng engine) with NOTIFY_SOCKET
 * pointing at a datagram socket the test owns and WATCHDOG_USEC set, and
 * records every message with its arrival time: READY, STATUS, WATCHDOG,
 * EXTEND_TIMEOUT_USEC, STOPPING, ERRNO. Start-up is slowed down or hung
 * with the test-only CVTEST_LOAD_HANG="<stage>:<ms>" (engine/sched.c).
 * These tests manage their own daemon (not harness_start): they need its
 * environment and must watch it before it is ready.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/harness.h"

#define NT_MAX_MSGS 512
#define NT_MSG_MAX  1024

struct nt_msg {
	double t; /* seconds since the daemon was started */
	char text[NT_MSG_MAX];
};

struct nt_run {
	pid_t pid;
	int sock;
	char sock_path[108];
	char log_path[128];
	char port[16];
	double t0;
	int exited, wstatus;
	size_t n;
	struct nt_msg msgs[NT_MAX_MSGS];
};

/* Start the daemon with `env` (NULL-terminated "K=V" list added to ours) and
 * `args` (NULL-terminated, after --listen/--port); notify = 0 leaves
 * NOTIFY_SOCKET unset (no systemd). */
static void nt_start(struct nt_run *r, const char *const *env, const char *const *args, int notify)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	memset(r, 0, sizeof *r);
	snprintf(r->sock_path, sizeof r->sock_path, "/tmp/cvtest-notify-%d.sock", (int)getpid());
	snprintf(r->log_path, sizeof r->log_path, "/tmp/cvtest-notify-%d.log", (int)getpid());
	unlink(r->sock_path);
	r->sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(r->sock, 0);
	memcpy(sa.sun_path, r->sock_path, strlen(r->sock_path) + 1);
	ck_assert_int_eq(bind(r->sock, (struct sockaddr *)&sa, sizeof sa), 0);

	const char *bin = getenv("CVTEST_BIN");
	if (!bin || !*bin)
		bin = "build/cosyvoiced";
	int port = harness_free_port();
	ck_assert_int_gt(port, 0);
	snprintf(r->port, sizeof r->port, "%d", port);
	r->t0 = now_s();
	r->pid = fork();
	ck_assert_int_ge(r->pid, 0);
	if (r->pid == 0) {
		const char *argv[32];
		size_t n = 0;
		char sockenv[160];
		int fd = open(r->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0) {
			dup2(fd, 2);
			dup2(fd, 1);
		}
		snprintf(sockenv, sizeof sockenv, "NOTIFY_SOCKET=%s", r->sock_path);
		if (notify)
			putenv(sockenv);
		else
			unsetenv("NOTIFY_SOCKET");
		unsetenv("WATCHDOG_PID");
		for (size_t i = 0; env && env[i]; i++)
			putenv((char *)env[i]);
		argv[n++] = bin;
		argv[n++] = "--listen";
		argv[n++] = "127.0.0.1";
		argv[n++] = "--port";
		argv[n++] = r->port;
		for (size_t i = 0; args && args[i] && n + 1 < sizeof argv / sizeof argv[0]; i++)
			argv[n++] = args[i];
		argv[n] = NULL;
		execv(bin, (char *const *)argv);
		_exit(127);
	}
}

/* Read messages for up to `seconds` (or until the daemon exits and the socket
 * is drained); stops early when a message contains `until` (may be NULL).
 * Returns 1 when `until` arrived. */
static int nt_read(struct nt_run *r, double seconds, const char *until)
{
	double end = now_s() + seconds;

	for (;;) {
		double left = end - now_s();
		if (left <= 0)
			return 0;
		struct pollfd pfd = {.fd = r->sock, .events = POLLIN};
		int pr = poll(&pfd, 1, left > 0.1 ? 100 : (int)(left * 1000) + 1);
		if (pr > 0) {
			char buf[NT_MSG_MAX];
			ssize_t k = recv(r->sock, buf, sizeof buf - 1, 0);
			if (k > 0 && r->n < NT_MAX_MSGS) {
				buf[k] = '\0';
				r->msgs[r->n].t = now_s() - r->t0;
				memcpy(r->msgs[r->n].text, buf, (size_t)k + 1);
				r->n++;
				if (until && strstr(buf, until))
					return 1;
			}
			continue;
		}
		if (!r->exited && waitpid(r->pid, &r->wstatus, WNOHANG) == r->pid)
			r->exited = 1;
		if (r->exited)
			return 0; /* exited and nothing more to read */
	}
}

static int nt_wait_exit(struct nt_run *r, double seconds)
{
	double end = now_s() + seconds;
	while (!r->exited && now_s() < end) {
		nt_read(r, 0.1, NULL);
		if (!r->exited && waitpid(r->pid, &r->wstatus, WNOHANG) == r->pid)
			r->exited = 1;
	}
	nt_read(r, 0.2, NULL);
	return r->exited;
}

static void nt_dump(const struct nt_run *r)
{
	for (size_t i = 0; i < r->n; i++)
		fprintf(stderr, "  %6.2f %s\n", r->msgs[i].t, r->msgs[i].text);
}

static char *nt_log(const struct nt_run *r)
{
	FILE *f = fopen(r->log_path, "rb");
	char *s = calloc(1, 65536);
	if (f) {
		size_t n = fread(s, 1, 65535, f);
		s[n] = '\0';
		fclose(f);
	}
	return s;
}

static void nt_finish(struct nt_run *r)
{
	if (!r->exited) {
		kill(r->pid, SIGKILL);
		waitpid(r->pid, &r->wstatus, 0);
	}
	close(r->sock);
	unlink(r->sock_path);
	unlink(r->log_path);
}

/* Index of the first message at or after `from` containing `needle`; -1 if none. */
static long nt_find(const struct nt_run *r, size_t from, const char *needle)
{
	for (size_t i = from; i < r->n; i++)
		if (strstr(r->msgs[i].text, needle))
			return (long)i;
	return -1;
}

static size_t nt_count_between(const struct nt_run *r, const char *needle, double t_from, double t_to)
{
	size_t c = 0;
	for (size_t i = 0; i < r->n; i++)
		if (r->msgs[i].t >= t_from && r->msgs[i].t <= t_to && strstr(r->msgs[i].text, needle))
			c++;
	return c;
}

#define NT_CHECK(r, cond, ...)                                      \
	do {                                                        \
		if (!(cond)) {                                      \
			nt_dump(r);                                 \
			char *log_ = nt_log(r);                     \
			fprintf(stderr, "daemon log:\n%s\n", log_); \
			free(log_);                                 \
			ck_abort_msg(__VA_ARGS__);                  \
		}                                                   \
	} while (0)

/* Normal life: a STATUS for every load stage in order, READY with the serving
 * status, watchdog pings while serving, then STOPPING with the drain status,
 * the final status and exit 0. */
START_TEST(normal_life)
{
	static struct nt_run r;
	const char *env[] = {"WATCHDOG_USEC=1000000", NULL};
	nt_start(&r, env, NULL, 1);
	NT_CHECK(&r, nt_read(&r, harness_scale(30), "READY=1"), "no READY=1");
	const char *order[] = {"STATUS=loading the espeak engine", "opening the engine",
			       "initializing espeak-ng", "warm-up", "READY=1"};
	long at = 0;
	for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
		long k = nt_find(&r, (size_t)at, order[i]);
		NT_CHECK(&r, k >= 0, "'%s' missing or out of order", order[i]);
		at = k;
	}
	NT_CHECK(&r, strstr(r.msgs[at].text, "STATUS=serving espeak-ng on 127.0.0.1:") != NULL,
		 "READY=1 without the serving status: %s", r.msgs[at].text);
	double t_ready = r.msgs[at].t;
	nt_read(&r, 2.0, NULL);
	/* WATCHDOG_USEC=1 s: a ping at least every 0.5 s. */
	size_t pings = nt_count_between(&r, "WATCHDOG=1", t_ready, t_ready + 2.0);
	NT_CHECK(&r, pings >= 3, "%zu watchdog pings in 2 s of serving", pings);
	NT_CHECK(&r, nt_find(&r, (size_t)at, "EXTEND_TIMEOUT_USEC") < 0, "start-up extensions after READY");
	size_t before = r.n;
	kill(r.pid, SIGTERM);
	NT_CHECK(&r, nt_wait_exit(&r, harness_scale(20)), "no exit after SIGTERM");
	long stop = nt_find(&r, before, "STOPPING=1");
	NT_CHECK(&r, stop >= 0, "no STOPPING=1");
	NT_CHECK(&r, strstr(r.msgs[stop].text, "STATUS=draining: 0 running, 0 queued") != NULL,
		 "STOPPING=1 without the drain status: %s", r.msgs[stop].text);
	NT_CHECK(&r, nt_find(&r, (size_t)stop, "STATUS=stopped (exit 0)") > stop, "no final STATUS");
	NT_CHECK(&r, WIFEXITED(r.wstatus) && WEXITSTATUS(r.wstatus) == 0, "exit status 0x%x", r.wstatus);
	nt_finish(&r);
}
END_TEST

/* A slow stage that keeps within load_stall_timeout_ms: the start timeout is
 * extended all along and READY comes. */
START_TEST(slow_load_extends)
{
	static struct nt_run r;
	const char *env[] = {"WATCHDOG_USEC=1000000", "CVTEST_LOAD_HANG=warm-up:2500", NULL};
	const char *args[] = {"--load-stall-timeout-ms", "10000", NULL};
	nt_start(&r, env, args, 1);
	NT_CHECK(&r, nt_read(&r, harness_scale(30), "READY=1"), "no READY=1 after a 2.5 s stage");
	long warm = nt_find(&r, 0, "warm-up");
	long ready = nt_find(&r, 0, "READY=1");
	NT_CHECK(&r, warm >= 0 && ready > warm, "stages out of order");
	double t_w = r.msgs[warm].t, t_r = r.msgs[ready].t;
	NT_CHECK(&r, t_r - t_w >= 2.4, "READY %.2f s after warm-up began (the stage sleeps 2.5 s)",
		 t_r - t_w);
	size_t ext = nt_count_between(&r, "EXTEND_TIMEOUT_USEC=", t_w, t_r);
	size_t wd = nt_count_between(&r, "WATCHDOG=1", t_w, t_r);
	NT_CHECK(&r, ext >= 4 && wd >= 4, "%zu extensions, %zu watchdog pings during a 2.5 s stage", ext, wd);
	kill(r.pid, SIGTERM);
	NT_CHECK(&r, nt_wait_exit(&r, harness_scale(20)), "no exit after SIGTERM");
	NT_CHECK(&r, WIFEXITED(r.wstatus) && WEXITSTATUS(r.wstatus) == 0, "exit status 0x%x", r.wstatus);
	nt_finish(&r);
}
END_TEST

/* A hung stage: after load_stall_timeout_ms no more extensions or watchdog
 * pings (systemd's TimeoutStartSec / WatchdogSec then stop the service), a
 * STATUS and a log line name the stage; SIGTERM still ends the process. */
START_TEST(hung_load_stops_pings)
{
	static struct nt_run r;
	const char *env[] = {"WATCHDOG_USEC=1000000", "CVTEST_LOAD_HANG=warm-up:120000", NULL};
	const char *args[] = {"--load-stall-timeout-ms", "1500", NULL};
	nt_start(&r, env, args, 1);
	NT_CHECK(&r, nt_read(&r, harness_scale(30), "STATUS=start-up hung in stage 'warm-up'"),
		 "no hung STATUS");
	long warm = nt_find(&r, 0, "warm-up");
	long hung = nt_find(&r, 0, "start-up hung");
	double t_w = r.msgs[warm].t, t_h = r.msgs[hung].t;
	NT_CHECK(&r, t_h - t_w >= 1.4 && t_h - t_w <= 3.0, "hung reported %.2f s after the stage began",
		 t_h - t_w);
	NT_CHECK(&r, nt_count_between(&r, "EXTEND_TIMEOUT_USEC=", t_w, t_h) >= 1,
		 "no extension while the stage was young");
	nt_read(&r, 3.0, NULL);
	NT_CHECK(&r, nt_count_between(&r, "EXTEND_TIMEOUT_USEC=", t_h, 1e9) == 0,
		 "extensions after the stall");
	NT_CHECK(&r, nt_count_between(&r, "WATCHDOG=1", t_h, 1e9) == 0, "watchdog pings after the stall");
	NT_CHECK(&r, nt_find(&r, 0, "READY=1") < 0, "READY=1 from a hung load");
	char *log = nt_log(&r);
	NT_CHECK(&r, strstr(log, "start-up stage 'warm-up' shows no progress") != NULL,
		 "no log line naming the stage");
	free(log);
	kill(r.pid, SIGTERM);
	NT_CHECK(&r, nt_wait_exit(&r, harness_scale(10)), "no exit after SIGTERM while hung");
	NT_CHECK(&r, WIFEXITED(r.wstatus) && WEXITSTATUS(r.wstatus) == 1, "exit status 0x%x", r.wstatus);
	NT_CHECK(&r, nt_find(&r, 0, "STOPPING=1") >= 0, "no STOPPING=1");
	nt_finish(&r);
}
END_TEST

/* Without systemd nothing would stop a hung load: the daemon exits 1 itself. */
START_TEST(hung_load_without_systemd_exits)
{
	static struct nt_run r;
	const char *env[] = {"CVTEST_LOAD_HANG=warm-up:120000", NULL};
	const char *args[] = {"--load-stall-timeout-ms", "1500", NULL};
	nt_start(&r, env, args, 0);
	NT_CHECK(&r, nt_wait_exit(&r, harness_scale(15)), "a hung load without systemd did not exit");
	double took = now_s() - r.t0;
	NT_CHECK(&r, WIFEXITED(r.wstatus) && WEXITSTATUS(r.wstatus) == 1, "exit status 0x%x", r.wstatus);
	NT_CHECK(&r, took >= 1.4, "exited after %.2f s, before the stall limit", took);
	char *log = nt_log(&r);
	NT_CHECK(&r, strstr(log, "start-up stage 'warm-up' shows no progress") && strstr(log, "exiting"),
		 "no log line naming the stage");
	free(log);
	nt_finish(&r);
}
END_TEST

/* A failed load: the reason stays in STATUS through the exit. */
START_TEST(failed_load_status)
{
	static struct nt_run r;
	const char *args[] = {"--default-speaker", "no-such-voice", NULL};
	nt_start(&r, NULL, args, 1);
	NT_CHECK(&r, nt_wait_exit(&r, harness_scale(20)), "no exit after a failed load");
	NT_CHECK(&r, WIFEXITED(r.wstatus) && WEXITSTATUS(r.wstatus) == 1, "exit status 0x%x", r.wstatus);
	long f = nt_find(&r, 0, "STATUS=engine failed: default speaker 'no-such-voice'");
	NT_CHECK(&r, f >= 0 && strstr(r.msgs[f].text, "ERRNO="), "no failure STATUS with ERRNO");
	long last = (long)r.n - 1;
	NT_CHECK(&r, strstr(r.msgs[last].text, "STATUS=stopped (exit 1): engine failed: default speaker"),
		 "the final STATUS lost the reason: %s", r.msgs[last].text);
	NT_CHECK(&r, nt_find(&r, 0, "READY=1") < 0, "READY=1 from a failed load");
	nt_finish(&r);
}
END_TEST

/* `cosyvoiced --healthcheck` (the image's HEALTHCHECK): exit 1 with the 503 while the engine loads, 0
 * once ready, 1 when nothing answers; it follows the configured port (flag or COSYVOICED_PORT). */
static int nt_healthcheck(const char *port_flag, const char *env, char *out, size_t len)
{
	const char *bin = getenv("CVTEST_BIN");
	char cmd[512];
	snprintf(cmd, sizeof cmd, "%s '%s' --healthcheck %s 2>&1", env ? env : "",
		 bin && *bin ? bin : "build/cosyvoiced", port_flag);
	FILE *p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	size_t n = fread(out, 1, len - 1, p);
	out[n] = '\0';
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(healthcheck_follows_the_config)
{
	static struct nt_run r;
	const char *env[] = {"CVTEST_LOAD_HANG=warm-up:2500", NULL};
	char flag[32], envs[64], out[512];
	nt_start(&r, env, NULL, 1);
	snprintf(flag, sizeof flag, "--port %s", r.port);
	NT_CHECK(&r, nt_read(&r, harness_scale(20), "warm-up"), "no warm-up stage");
	int rc = nt_healthcheck(flag, NULL, out, sizeof out);
	NT_CHECK(&r, rc == 1 && strstr(out, ": 503 (not ready)"), "while loading: rc %d, %s", rc, out);
	NT_CHECK(&r, nt_read(&r, harness_scale(20), "READY=1"), "no READY=1");
	rc = nt_healthcheck(flag, NULL, out, sizeof out);
	NT_CHECK(&r, rc == 0 && strstr(out, ": 200 (ready)"), "when ready: rc %d, %s", rc, out);
	snprintf(envs, sizeof envs, "COSYVOICED_PORT=%s", r.port);
	rc = nt_healthcheck("", envs, out, sizeof out);
	NT_CHECK(&r, rc == 0, "port from COSYVOICED_PORT: rc %d, %s", rc, out);
	kill(r.pid, SIGTERM);
	NT_CHECK(&r, nt_wait_exit(&r, harness_scale(20)), "no exit after SIGTERM");
	rc = nt_healthcheck(flag, NULL, out, sizeof out);
	NT_CHECK(&r, rc == 1 && strstr(out, "no daemon answers"), "after exit: rc %d, %s", rc, out);
	nt_finish(&r);
}
END_TEST

Suite *suite_systemd(void);
Suite *suite_systemd(void)
{
	Suite *s = suite_create("systemd");
	TCase *tc = tcase_create("notify");
	harness_tcase_timeout(tc, 60);
	tcase_add_test(tc, normal_life);
	tcase_add_test(tc, slow_load_extends);
	tcase_add_test(tc, hung_load_stops_pings);
	tcase_add_test(tc, hung_load_without_systemd_exits);
	tcase_add_test(tc, failed_load_status);
	tcase_add_test(tc, healthcheck_follows_the_config);
	suite_add_tcase(s, tc);
	return s;
}
