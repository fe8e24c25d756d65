/* tests/integration/harness.c — start the real daemon, speak HTTP to it.
 *
 * DESIGN: Check forks every test from the runner; the daemon is started once
 * per TCase by an unchecked fixture in the runner itself, so all forked tests
 * of the TCase share it (fast: no per-test start-up). What the forked tests
 * need to know about it (pid, port, log path, and its wait status once it has
 * exited) sits in one MAP_SHARED anonymous page written by the runner; a
 * watcher thread in the runner blocks in waitpid() and publishes the status,
 * so a test can send SIGTERM and assert a clean exit itself (an unchecked
 * teardown must not assert: Check 0.15 exits the runner when it does). The
 * HTTP client is libcurl (one easy handle per request, no shared state), raw
 * sockets cover what libcurl will not send, and audio is checked by the same
 * command-line decoders a user would reach for (sox, flac, opusinfo, mpg123),
 * never by the daemon's own code.
 */
#include "tests/integration/harness.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/mem.h"

#include <jansson.h>

extern char **environ;

#define HARNESS_MAX_ARGS 64

/* Shared between the runner and its forked tests. */
struct shared {
	pid_t pid;
	int port;
	int exited; /* atomic */
	int wstatus;
	int valgrind;
	char log_path[512];
	char dir[256];
};

static struct shared *S;
static pthread_t watcher;
static int watcher_started;

/* ------------------------------------------------------------ small utilities */

double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int harness_valgrind(void)
{
	const char *v = getenv("CVTEST_VALGRIND");
	return v && strcmp(v, "1") == 0;
}

double harness_scale(double seconds)
{
	return harness_valgrind() ? seconds * 6 : seconds;
}

void harness_tcase_timeout(TCase *tc, double seconds)
{
	tcase_set_timeout(tc, harness_scale(seconds));
}

int parse_double(const char *s, double *out)
{
	char *end;
	if (!s || !*s || isspace((unsigned char)*s))
		return 0;
	errno = 0;
	double v = strtod(s, &end);
	if (errno != 0 || end == s)
		return 0;
	while (*end == ' ' || *end == '\t')
		end++;
	if (*end != '\0' || !isfinite(v))
		return 0;
	*out = v;
	return 1;
}

int is_hex32(const char *s)
{
	if (!s || strlen(s) != 32)
		return 0;
	for (const char *p = s; *p; p++)
		if (!isxdigit((unsigned char)*p))
			return 0;
	return 1;
}

static struct shared *shared_page(void)
{
	if (!S) {
		void *p = mmap(NULL, sizeof *S, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		ck_assert_msg(p != MAP_FAILED, "mmap: %s", strerror(errno));
		S = p;
		memset(S, 0, sizeof *S);
	}
	return S;
}

int harness_port(void)
{
	return S ? S->port : 0;
}

pid_t harness_pid(void)
{
	return S ? S->pid : 0;
}

const char *harness_log_path(void)
{
	return S ? S->log_path : "";
}

int harness_alive(void)
{
	return S && S->pid > 0 && !__atomic_load_n(&S->exited, __ATOMIC_ACQUIRE);
}

int harness_signal(int sig)
{
	if (!harness_alive())
		return -1;
	return kill(S->pid, sig);
}

int harness_wait_exit(double timeout_s, int *wstatus)
{
	double end = now_s() + timeout_s;
	while (S && S->pid > 0) {
		if (__atomic_load_n(&S->exited, __ATOMIC_ACQUIRE)) {
			if (wstatus)
				*wstatus = S->wstatus;
			return 1;
		}
		if (now_s() > end)
			return 0;
		sleep_ms(20);
	}
	return 0;
}

char *harness_log_tail(size_t max)
{
	char *out = xcalloc(1, max + 1);
	if (!S || !S->log_path[0])
		return out;
	int fd = open(S->log_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return out;
	struct stat st;
	if (fstat(fd, &st) == 0) {
		off_t from = st.st_size > (off_t)max ? st.st_size - (off_t)max : 0;
		ssize_t n = pread(fd, out, max, from);
		if (n > 0)
			out[n] = '\0';
	}
	close(fd);
	return out;
}

/* 1 for access-log lines of the probes the harness itself sends (GET
 * /metrics, /readyz), which would flood a log excerpt. */
static int log_line_is_noise(const char *line, size_t len)
{
	static const char *const noise[] = {"method=GET path=\"/metrics\" status=200",
					    "method=GET path=\"/readyz\" status=200"};
	for (size_t i = 0; i < sizeof noise / sizeof noise[0]; i++)
		if (memmem(line, len, noise[i], strlen(noise[i])))
			return 1;
	return 0;
}

void harness_dump_log(const char *file, int line, const char *what)
{
	char *tail = harness_log_tail(64 * 1024);
	/* Keep the last 40 lines that are not probe noise. */
	const char *starts[40];
	size_t n = 0;
	for (char *p = tail; *p;) {
		char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		if (!log_line_is_noise(p, len)) {
			if (n == 40) {
				memmove(starts, starts + 1, sizeof starts[0] * 39);
				n--;
			}
			starts[n++] = p;
		}
		if (!eol)
			break;
		*eol = '\0';
		p = eol + 1;
	}
	fprintf(stderr, "\n--- %s:%d: check failed: %s\n--- daemon log %s (last lines, probes omitted):\n",
		file, line, what, harness_log_path());
	for (size_t i = 0; i < n; i++)
		fprintf(stderr, "%s\n", starts[i]);
	fprintf(stderr, "--- end of log\n");
	free(tail);
	/* Tell harness_stop (in the runner) to keep this log. */
	if (S && S->log_path[0]) {
		char mark[600];
		snprintf(mark, sizeof mark, "%s.keep", S->log_path);
		int fd = open(mark, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (fd >= 0)
			close(fd);
	}
}

/* ------------------------------------------------------------ starting the daemon */

int harness_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in a = {0};
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = 0;
	socklen_t al = sizeof a;
	int port = -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &al) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static void *watch_main(void *arg)
{
	pid_t pid = (pid_t)(intptr_t)arg;
	int st = 0;
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			st = -1;
			break;
		}
	}
	S->wstatus = st;
	__atomic_store_n(&S->exited, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Environment for the daemon: ours minus every COSYVOICED_* variable (the
 * daemon reads COSYVOICED_<KEY> as configuration, and ours are for the
 * harness). Pointers into environ; the array is malloc'd. */
static char **daemon_env(void)
{
	size_t n = 0;
	while (environ[n])
		n++;
	char **env = xcalloc(n + 1, sizeof *env);
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "COSYVOICED_", 11) != 0)
			env[k++] = environ[i];
	env[k] = NULL;
	return env;
}

static int log_mentions_bind_failure(void)
{
	char *tail = harness_log_tail(4000);
	int yes = strstr(tail, "in use") != NULL || strstr(tail, "EADDRINUSE") != NULL;
	free(tail);
	return yes;
}

static pid_t spawn_daemon(const char *const *args, int port, int logfd)
{
	const char *bin = getenv("CVTEST_BIN");
	if (!bin || !*bin)
		bin = "build/cosyvoiced";
	char portstr[16];
	snprintf(portstr, sizeof portstr, "%d", port);

	const char *argv[HARNESS_MAX_ARGS + 16];
	size_t n = 0;
	if (harness_valgrind()) {
		argv[n++] = "valgrind";
		argv[n++] = "--leak-check=full";
		argv[n++] = "--error-exitcode=99";
		argv[n++] = "--errors-for-leak-kinds=definite";
		argv[n++] = "--num-callers=30";
		if (access("tests/valgrind.supp", R_OK) == 0)
			argv[n++] = "--suppressions=tests/valgrind.supp";
	}
	argv[n++] = bin;
	argv[n++] = "--listen";
	argv[n++] = "127.0.0.1";
	argv[n++] = "--port";
	argv[n++] = portstr;
	for (size_t i = 0; args && args[i]; i++) {
		ck_assert_msg(i < HARNESS_MAX_ARGS, "too many daemon args");
		argv[n++] = args[i];
	}
	argv[n] = NULL;

	fprintf(stderr, "harness: starting");
	for (size_t i = 0; argv[i]; i++)
		fprintf(stderr, " %s", argv[i]);
	fprintf(stderr, " (log %s)\n", S->log_path);

	char **env = daemon_env();
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0)
			dup2(devnull, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		/* No stray daemons if the runner dies. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		execvpe(argv[0], (char *const *)argv, env);
		fprintf(stderr, "harness: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	free(env);
	return pid;
}

void harness_start(const char *const *args)
{
	shared_page();
	ck_assert_msg(!harness_alive(), "harness_start: a daemon is already running (pid %d)", (int)S->pid);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	S->valgrind = harness_valgrind();
	if (!S->dir[0]) {
		const char *tmp = getenv("TMPDIR");
		snprintf(S->dir, sizeof S->dir, "%s/cosyvoiced-it-XXXXXX", tmp && *tmp ? tmp : "/tmp");
		ck_assert_msg(mkdtemp(S->dir) != NULL, "mkdtemp: %s", strerror(errno));
	}
	static int serial;
	double ready_timeout = S->valgrind ? 300 : 60;

	for (int attempt = 0; attempt < 3; attempt++) {
		snprintf(S->log_path, sizeof S->log_path, "%s/daemon-%d-%d.log", S->dir, (int)getpid(),
			 ++serial);
		int logfd = open(S->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		ck_assert_msg(logfd >= 0, "open %s: %s", S->log_path, strerror(errno));
		int port = harness_free_port();
		ck_assert_msg(port > 0, "no free port: %s", strerror(errno));
		S->port = port;
		__atomic_store_n(&S->exited, 0, __ATOMIC_RELEASE);
		S->wstatus = 0;
		pid_t pid = spawn_daemon(args, port, logfd);
		close(logfd);
		ck_assert_msg(pid > 0, "fork: %s", strerror(errno));
		S->pid = pid;
		int rc = pthread_create(&watcher, NULL, watch_main, (void *)(intptr_t)pid);
		ck_assert_msg(rc == 0, "pthread_create: %s", strerror(rc));
		watcher_started = 1;

		double end = now_s() + ready_timeout;
		long last_status = 0;
		while (now_s() < end) {
			if (!harness_alive())
				break;
			struct http_resp r;
			struct http_req rq = {.path = "/readyz", .timeout_s = 5};
			if (http_do(&rq, &r) == 0) {
				last_status = r.status;
				if (r.status == 200) {
					http_resp_free(&r);
					return;
				}
			}
			http_resp_free(&r);
			sleep_ms(100);
		}
		if (!harness_alive()) {
			pthread_join(watcher, NULL);
			watcher_started = 0;
			if (log_mentions_bind_failure()) {
				fprintf(stderr, "harness: port %d taken, retrying\n", port);
				continue;
			}
			char *tail = harness_log_tail(2500);
			fprintf(stderr,
				"harness: daemon exited during start-up (wait status 0x%x); log:\n%s\n",
				(unsigned)S->wstatus, tail);
			S->pid = 0;
			ck_abort_msg("daemon exited during start-up (status 0x%x); log tail:\n%s",
				     (unsigned)S->wstatus, tail);
		}
		char *tail = harness_log_tail(2500);
		fprintf(stderr, "harness: /readyz not 200 after %.0f s (last %ld); log:\n%s\n", ready_timeout,
			last_status, tail);
		harness_stop();
		ck_abort_msg("daemon not ready after %.0f s (last /readyz status %ld); log tail:\n%s",
			     ready_timeout, last_status, tail);
	}
	ck_abort_msg("daemon could not bind a free port in 3 attempts");
}

void harness_stop(void)
{
	if (!S || S->pid <= 0)
		return;
	int st = 0;
	if (!harness_wait_exit(0, &st)) {
		kill(S->pid, SIGTERM);
		if (!harness_wait_exit(harness_scale(40), &st)) {
			fprintf(stderr, "harness: daemon pid %d ignored SIGTERM, killing it\n", (int)S->pid);
			kill(S->pid, SIGKILL);
			harness_wait_exit(30, &st);
		}
	}
	if (watcher_started) {
		pthread_join(watcher, NULL);
		watcher_started = 0;
	}
	int clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
	const char *keep = getenv("CVTEST_KEEP_LOGS");
	char mark[600];
	snprintf(mark, sizeof mark, "%s.keep", S->log_path);
	int failed_check = access(mark, F_OK) == 0;
	unlink(mark);
	if (failed_check)
		fprintf(stderr, "harness: a check failed; daemon log kept at %s\n", S->log_path);
	if (!clean) {
		char *tail = harness_log_tail(2000);
		fprintf(
		    stderr,
		    "harness: daemon pid %d did not exit cleanly (wait status 0x%x), log kept at %s:\n%s\n",
		    (int)S->pid, (unsigned)st, S->log_path, tail);
		free(tail);
	} else if (!failed_check && !(keep && strcmp(keep, "1") == 0)) {
		unlink(S->log_path);
		if (rmdir(S->dir) == 0) /* only succeeds once every log is gone */
			S->dir[0] = '\0';
	}
	S->pid = 0;
	S->port = 0;
}

START_TEST(daemon_exits_cleanly_on_sigterm)
{
	ck_assert_msg(harness_pid() > 0, "no daemon was started");
	int st = 0;
	if (harness_alive())
		ck_assert_int_eq(harness_signal(SIGTERM), 0);
	int exited = harness_wait_exit(harness_scale(40), &st);
	HCHECK(exited, "daemon did not exit within %.0f s of SIGTERM", harness_scale(40));
	HCHECK(WIFEXITED(st), "daemon was killed by signal %d", WIFSIGNALED(st) ? WTERMSIG(st) : -1);
	HCHECK(WEXITSTATUS(st) == 0, "daemon exit status %d%s", WEXITSTATUS(st),
	       WEXITSTATUS(st) == 99 ? " (valgrind found errors or definite leaks)" : "");
}
END_TEST

void harness_add_exit_test(TCase *tc)
{
	tcase_add_test(tc, daemon_exits_cleanly_on_sigterm);
}

/* ------------------------------------------------------------ HTTP */

static void header_add(struct http_header **arr, size_t *n, const char *line, size_t len)
{
	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n'))
		len--;
	const char *colon = memchr(line, ':', len);
	if (!colon)
		return;
	size_t nlen = (size_t)(colon - line);
	const char *v = colon + 1;
	const char *end = line + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*arr = xrealloc(*arr, (*n + 1) * sizeof **arr);
	(*arr)[*n].name = xstrndup(line, nlen);
	(*arr)[*n].value = xstrndup(v, (size_t)(end - v));
	(*n)++;
}

static void headers_clear(struct http_header **arr, size_t *n)
{
	for (size_t i = 0; i < *n; i++) {
		free((*arr)[i].name);
		free((*arr)[i].value);
	}
	free(*arr);
	*arr = NULL;
	*n = 0;
}

/* State: body_started = 0 in the header block, 1 after its blank line (the
 * body; any later header lines are trailers). A new status line (after a 1xx
 * response) starts over. */
static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
	struct http_resp *r = ud;
	size_t len = size * nmemb;
	if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		headers_clear(&r->hdrs, &r->n_hdrs);
		headers_clear(&r->trls, &r->n_trls);
		r->body_started = 0;
		return len;
	}
	if (len <= 2 && (len == 0 || p[0] == '\r' || p[0] == '\n')) {
		r->body_started = 1;
		return len;
	}
	if (r->body_started)
		header_add(&r->trls, &r->n_trls, p, len);
	else
		header_add(&r->hdrs, &r->n_hdrs, p, len);
	return len;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
	struct http_resp *r = ud;
	size_t len = size * nmemb;
	r->body_started = 1;
	if (buf_append(&r->body, p, len) != CV_OK)
		return 0; /* over the cap: abort the transfer */
	return len;
}

int http_do(const struct http_req *rq, struct http_resp *out)
{
	memset(out, 0, sizeof *out);
	buf_init(&out->body, rq->max_body ? rq->max_body : (size_t)256 << 20);
	CURL *c = curl_easy_init();
	if (!c) {
		out->curl_code = CURLE_FAILED_INIT;
		snprintf(out->curl_err, sizeof out->curl_err, "curl_easy_init failed");
		return out->curl_code;
	}
	char url[1024];
	snprintf(url, sizeof url, "http://127.0.0.1:%d%s", harness_port(), rq->path ? rq->path : "/");
	struct curl_slist *h = NULL;
	h = curl_slist_append(h, "Expect:");
	if (rq->body) {
		size_t blen = rq->body_len == (size_t)-1 ? strlen(rq->body) : rq->body_len;
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->body);
		const char *ct = rq->content_type ? rq->content_type : "application/json";
		char line[256];
		if (*ct)
			snprintf(line, sizeof line, "Content-Type: %s", ct);
		else
			snprintf(line, sizeof line, "Content-Type:");
		h = curl_slist_append(h, line);
	}
	const char *method = rq->method ? rq->method : (rq->body ? "POST" : "GET");
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else if (!(strcmp(method, "GET") == 0 && !rq->body) && !(strcmp(method, "POST") == 0 && rq->body))
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	for (size_t i = 0; rq->headers && rq->headers[i]; i++)
		h = curl_slist_append(h, rq->headers[i]);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
			 (long)(harness_scale(rq->timeout_s > 0 ? rq->timeout_s : 120) * 1000));
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	char errbuf[CURL_ERROR_SIZE] = "";
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	CURLcode rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
	out->curl_code = (int)rc;
	if (rc != CURLE_OK)
		snprintf(out->curl_err, sizeof out->curl_err, "%.80s: %.160s", curl_easy_strerror(rc),
			 errbuf);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return (int)rc;
}

int http_get(const char *path, struct http_resp *out)
{
	struct http_req rq = {.path = path};
	return http_do(&rq, out);
}

int http_post_json(const char *path, const char *json, struct http_resp *out)
{
	struct http_req rq = {.path = path, .body = json, .body_len = (size_t)-1};
	return http_do(&rq, out);
}

void http_resp_free(struct http_resp *r)
{
	buf_free(&r->body);
	headers_clear(&r->hdrs, &r->n_hdrs);
	headers_clear(&r->trls, &r->n_trls);
}

static const char *lookup(const struct http_header *arr, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(arr[i].name, name) == 0)
			return arr[i].value;
	return NULL;
}

const char *http_header(const struct http_resp *r, const char *name)
{
	return lookup(r->hdrs, r->n_hdrs, name);
}

const char *http_trailer(const struct http_resp *r, const char *name)
{
	return lookup(r->trls, r->n_trls, name);
}

size_t http_header_count(const struct http_resp *r, const char *name)
{
	size_t k = 0;
	for (size_t i = 0; i < r->n_hdrs; i++)
		if (strcasecmp(r->hdrs[i].name, name) == 0)
			k++;
	return k;
}

int http_list_has(const char *list, const char *token)
{
	if (!list)
		return 0;
	size_t tl = strlen(token);
	const char *p = list;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		const char *start = p;
		while (*p && *p != ',')
			p++;
		const char *end = p;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if ((size_t)(end - start) == tl && strncasecmp(start, token, tl) == 0)
			return 1;
	}
	return 0;
}

int server_timing_dur(const char *header, const char *name, double *dur_ms)
{
	if (!header)
		return 0;
	size_t nl = strlen(name);
	const char *p = header;
	while (*p) {
		while (*p == ' ' || *p == ',')
			p++;
		const char *start = p;
		while (*p && *p != ',')
			p++;
		/* entry [start, p): name(;param=value)* */
		const char *semi = memchr(start, ';', (size_t)(p - start));
		const char *nend = semi ? semi : p;
		while (nend > start && nend[-1] == ' ')
			nend--;
		if ((size_t)(nend - start) == nl && strncmp(start, name, nl) == 0 && semi) {
			const char *d = semi;
			while (d && d < p) {
				d++;
				while (*d == ' ')
					d++;
				if (strncmp(d, "dur=", 4) == 0) {
					char num[64];
					const char *v = d + 4;
					size_t k = 0;
					while (v < p && *v != ';' && *v != ',' && k + 1 < sizeof num)
						num[k++] = *v++;
					num[k] = '\0';
					double x;
					if (!parse_double(num, &x))
						return 0;
					*dur_ms = x;
					return 1;
				}
				d = memchr(d, ';', (size_t)(p - d));
			}
			return 0;
		}
	}
	return 0;
}

/* ------------------------------------------------------------ raw sockets */

int raw_connect(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in a = {0};
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((unsigned short)harness_port());
	if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int raw_send(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int raw_read_some(int fd, struct buf *out, double end)
{
	double left = end - now_s();
	if (left <= 0)
		return 0;
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	int pr = poll(&pfd, 1, (int)(left * 1000) + 1);
	if (pr < 0)
		return errno == EINTR ? 2 : -1;
	if (pr == 0)
		return 0;
	char tmp[16384];
	ssize_t n = recv(fd, tmp, sizeof tmp, 0);
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return 2;
		return errno == ECONNRESET ? 1 : -1;
	}
	if (n == 0)
		return 1;
	if (buf_append(out, tmp, (size_t)n) != CV_OK)
		return -1;
	return 2;
}

int raw_read_until_close(int fd, struct buf *out, double timeout_s)
{
	double end = now_s() + timeout_s;
	for (;;) {
		int r = raw_read_some(fd, out, end);
		if (r != 2)
			return r;
	}
}

int raw_read_until(int fd, struct buf *out, const char *needle, double timeout_s)
{
	double end = now_s() + timeout_s;
	for (;;) {
		if (buf_len(out) && memmem(buf_data(out), buf_len(out), needle, strlen(needle)))
			return 1;
		int r = raw_read_some(fd, out, end);
		if (r != 2)
			return 0;
	}
}

int raw_read_at_least(int fd, struct buf *out, size_t min_len, double timeout_s)
{
	double end = now_s() + timeout_s;
	while (buf_len(out) < min_len) {
		int r = raw_read_some(fd, out, end);
		if (r != 2)
			return 0;
	}
	return 1;
}

int raw_status(const struct buf *resp)
{
	const char *d = buf_data(resp);
	if (buf_len(resp) < 12 || strncmp(d, "HTTP/1.", 7) != 0 || d[8] != ' ')
		return -1;
	if (!isdigit((unsigned char)d[9]) || !isdigit((unsigned char)d[10]) || !isdigit((unsigned char)d[11]))
		return -1;
	return (d[9] - '0') * 100 + (d[10] - '0') * 10 + (d[11] - '0');
}

/* ------------------------------------------------------------ metrics */

double metrics_sum(const char *text, const char *name, int *found)
{
	double sum = 0;
	int k = 0;
	size_t nl = strlen(name);
	const char *p = text;
	while (p && *p) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		if (len > nl && p[0] != '#' && strncmp(p, name, nl) == 0 && (p[nl] == ' ' || p[nl] == '{')) {
			/* value: after the label set (if any), up to the next space */
			const char *v = p + nl;
			if (*v == '{') {
				const char *close = memchr(v, '}', len - nl);
				v = close ? close + 1 : p + len;
			}
			while (v < p + len && *v == ' ')
				v++;
			char num[64];
			size_t j = 0;
			while (v < p + len && *v != ' ' && j + 1 < sizeof num)
				num[j++] = *v++;
			num[j] = '\0';
			double x;
			if (parse_double(num, &x)) {
				sum += x;
				k++;
			}
		}
		p = eol ? eol + 1 : NULL;
	}
	if (found)
		*found = k;
	return sum;
}

double scrape_metric(const char *name)
{
	struct http_resp r;
	int rc = http_get("/metrics", &r);
	HCHECK(rc == 0 && r.status == 200, "GET /metrics: curl %d (%s), status %ld", rc, r.curl_err,
	       r.status);
	int found = 0;
	double v = metrics_sum(buf_data(&r.body), name, &found);
	HCHECK(found > 0, "metric %s not in /metrics", name);
	http_resp_free(&r);
	return v;
}

double wait_metric_above(const char *name, double above, double timeout_s)
{
	double end = now_s() + harness_scale(timeout_s);
	double v;
	for (;;) {
		v = scrape_metric(name);
		if (v > above || now_s() > end)
			return v;
		sleep_ms(100);
	}
}

/* ------------------------------------------------------------ processes */

int run_capture(const char *const *argv, const void *stdin_data, size_t stdin_len, struct buf *out)
{
	int inp[2], outp[2];
	if (pipe2(inp, O_CLOEXEC) < 0)
		return -1;
	if (pipe2(outp, O_CLOEXEC) < 0) {
		close(inp[0]);
		close(inp[1]);
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		close(inp[0]);
		close(inp[1]);
		close(outp[0]);
		close(outp[1]);
		return -1;
	}
	if (pid == 0) {
		dup2(inp[0], 0);
		dup2(outp[1], 1);
		dup2(outp[1], 2);
		execvp(argv[0], (char *const *)argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(inp[0]);
	close(outp[1]);
	const char *sp = stdin_data;
	size_t left = stdin_data ? stdin_len : 0;
	if (left == 0) {
		close(inp[1]);
		inp[1] = -1;
	}
	for (;;) {
		struct pollfd p[2] = {{.fd = outp[0], .events = POLLIN}, {.fd = inp[1], .events = POLLOUT}};
		int np = inp[1] >= 0 ? 2 : 1;
		if (poll(p, (nfds_t)np, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (np == 2 && (p[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
			ssize_t n = write(inp[1], sp, left);
			if (n > 0) {
				sp += n;
				left -= (size_t)n;
			}
			if (n < 0 || left == 0) {
				close(inp[1]);
				inp[1] = -1;
			}
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			char tmp[8192];
			ssize_t n = read(outp[0], tmp, sizeof tmp);
			if (n <= 0)
				break;
			if (out)
				buf_append(out, tmp, (size_t)n); /* silently capped */
		}
	}
	if (inp[1] >= 0)
		close(inp[1]);
	close(outp[0]);
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int promtool_path(char *buf, size_t len)
{
	const char *env = getenv("PROMTOOL");
	if (env && *env) {
		cv_strlcpy(buf, env, len);
	} else {
		struct buf o;
		buf_init(&o, 4096);
		const char *argv[] = {"bash", "tools/dev/deps.sh", "--print-promtool", NULL};
		int rc = run_capture(argv, NULL, 0, &o);
		if (rc != 0 || buf_len(&o) == 0) {
			buf_free(&o);
			return -1;
		}
		cv_strlcpy(buf, buf_data(&o), len);
		buf_free(&o);
		buf[strcspn(buf, "\r\n")] = '\0';
	}
	return access(buf, X_OK) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------ audio */

static int tool_number(const char *const *argv, double *v, char *err, size_t errlen)
{
	struct buf o;
	buf_init(&o, 1 << 16);
	int rc = run_capture(argv, NULL, 0, &o);
	int ok = rc == 0;
	if (ok) {
		char tmp[128];
		cv_strlcpy(tmp, buf_data(&o), sizeof tmp);
		tmp[strcspn(tmp, "\r\n")] = '\0';
		ok = parse_double(tmp, v);
	}
	if (!ok)
		snprintf(err, errlen, "%s %s: rc %d: %.300s", argv[0], argv[1], rc, buf_data(&o));
	buf_free(&o);
	return ok ? 0 : -1;
}

/* soxi -r and -D of a WAV file. */
static int soxi_probe(const char *path, struct audio_info *out, char *err, size_t errlen)
{
	double r, d;
	const char *a1[] = {"soxi", "-r", path, NULL};
	const char *a2[] = {"soxi", "-D", path, NULL};
	if (tool_number(a1, &r, err, errlen) < 0 || tool_number(a2, &d, err, errlen) < 0)
		return -1;
	out->rate = (int)lround(r);
	out->duration = d;
	return 0;
}

/* opusinfo's "Playback length: 0m:01.500s" (also "1h:02m:03.000s"). */
static int parse_opus_length(const char *s, double *out)
{
	double total = 0;
	const char *p = s;
	while (*p && *p != '\n') {
		char *end;
		double x = strtod(p, &end);
		if (end == p)
			return 0;
		if (*end == 'h')
			total += x * 3600;
		else if (*end == 'm')
			total += x * 60;
		else if (*end == 's') {
			total += x;
			*out = total;
			return 1;
		} else
			return 0;
		p = end + 1;
		if (*p == ':')
			p++;
	}
	return 0;
}

static int opus_probe(const char *path, const char *dir, struct audio_info *out, char *err, size_t errlen)
{
	struct buf o;
	buf_init(&o, 1 << 16);
	const char *a1[] = {"opusinfo", path, NULL};
	int rc = run_capture(a1, NULL, 0, &o);
	const char *t = buf_data(&o);
	const char *sr = strstr(t, "Original sample rate: ");
	const char *pl = strstr(t, "Playback length: ");
	double len = 0;
	if (rc != 0 || !sr || !pl || !parse_opus_length(pl + 17, &len) || strstr(t, "WARNING") ||
	    strstr(t, "ERROR")) {
		snprintf(err, errlen, "opusinfo: rc %d: %.600s", rc, t);
		buf_free(&o);
		return -1;
	}
	out->rate = (int)strtol(sr + 22, NULL, 10);
	out->duration = len;
	buf_free(&o);
	/* And it must decode. */
	char wav[600];
	snprintf(wav, sizeof wav, "%s/opusdec.wav", dir);
	buf_init(&o, 1 << 16);
	const char *a2[] = {"opusdec", "--quiet", path, wav, NULL};
	rc = run_capture(a2, NULL, 0, &o);
	if (rc != 0)
		snprintf(err, errlen, "opusdec: rc %d: %.600s", rc, buf_data(&o));
	buf_free(&o);
	unlink(wav);
	return rc == 0 ? 0 : -1;
}

/* Decode with a tool to out.wav, then soxi. */
static int decode_probe(const char *const *argv, const char *wav, struct audio_info *out, char *err,
			size_t errlen)
{
	struct buf o;
	buf_init(&o, 1 << 16);
	int rc = run_capture(argv, NULL, 0, &o);
	if (rc != 0) {
		snprintf(err, errlen, "%s: rc %d: %.600s", argv[0], rc, buf_data(&o));
		buf_free(&o);
		unlink(wav);
		return -1;
	}
	buf_free(&o);
	rc = soxi_probe(wav, out, err, errlen);
	unlink(wav);
	return rc;
}

int audio_probe(const char *format, const void *data, size_t len, int pcm_rate, struct audio_info *out,
		char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	err[0] = '\0';
	if (strcmp(format, "pcm") == 0) {
		if (pcm_rate <= 0 || len % 2 != 0) {
			snprintf(err, errlen, "pcm: odd length %zu or no rate", len);
			return -1;
		}
		out->rate = pcm_rate;
		out->duration = (double)len / 2.0 / pcm_rate;
		return 0;
	}
	const char *tmp = getenv("TMPDIR");
	char dir[512];
	snprintf(dir, sizeof dir, "%s/cv-audio-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		snprintf(err, errlen, "mkdtemp: %s", strerror(errno));
		return -1;
	}
	char in[600], wav[600];
	snprintf(in, sizeof in, "%s/in.%s", dir, format);
	snprintf(wav, sizeof wav, "%s/out.wav", dir);
	int fd = open(in, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int rc = -1;
	if (fd < 0 || write(fd, data, len) != (ssize_t)len) {
		snprintf(err, errlen, "write %s: %s", in, strerror(errno));
		if (fd >= 0)
			close(fd);
		goto done;
	}
	close(fd);
	if (strcmp(format, "wav") == 0) {
		/* Decode the samples (robust to a streamed header), and take the
		 * rate from the header. */
		const char *a[] = {"sox", "-V1", in,  "-t", "wav", "-e", "signed-integer",
				   "-b",  "16",	 wav, NULL};
		rc = decode_probe(a, wav, out, err, errlen);
	} else if (strcmp(format, "flac") == 0) {
		const char *a[] = {"flac", "-s", "-d", "-f", "-o", wav, in, NULL};
		rc = decode_probe(a, wav, out, err, errlen);
	} else if (strcmp(format, "mp3") == 0) {
		const char *a[] = {"mpg123", "-q", "-w", wav, in, NULL};
		rc = decode_probe(a, wav, out, err, errlen);
	} else if (strcmp(format, "opus") == 0) {
		rc = opus_probe(in, dir, out, err, errlen);
	} else {
		snprintf(err, errlen, "unknown format %s", format);
	}
done:
	unlink(in);
	rmdir(dir);
	return rc;
}

/* ------------------------------------------------------------ contract checks */

const char *house_type(long status)
{
	switch (status) {
	case 400: return "invalid_request";
	case 401: return "unauthorized";
	case 404: return "not_found";
	case 405: return "method_not_allowed";
	case 413: return "payload_too_large";
	case 415: return "unsupported_media_type";
	case 422: return "unprocessable";
	case 500: return "internal";
	case 503: return "unavailable";
	case 504: return "deadline_exceeded";
	default: return "?";
	}
}

static json_t *load_json_body(const struct http_resp *r)
{
	json_error_t je;
	json_t *j = json_loadb(buf_data(&r->body), buf_len(&r->body), 0, &je);
	HCHECK(j != NULL, "body is not JSON (%s): %.300s", je.text, buf_data(&r->body));
	HCHECK(json_is_object(j), "body is not a JSON object: %.300s", buf_data(&r->body));
	return j;
}

void check_house_error(const struct http_resp *r, long status, const char *type, const char *field)
{
	HCHECK(r->status == status, "status %ld, want %ld; body %.400s", r->status, status,
	       buf_data(&r->body));
	const char *ct = http_header(r, "Content-Type");
	HCHECK(ct && strncasecmp(ct, "application/json", 16) == 0, "error Content-Type %s",
	       ct ? ct : "(none)");
	json_t *j = load_json_body(r);
	json_t *e = json_object_get(j, "error");
	HCHECK(json_is_object(e), "no error object: %.300s", buf_data(&r->body));
	json_t *code = json_object_get(e, "code");
	HCHECK(json_is_integer(code) && json_integer_value(code) == status, "error.code is not %ld: %.300s",
	       status, buf_data(&r->body));
	const char *t = json_string_value(json_object_get(e, "type"));
	HCHECK(t && strcmp(t, type) == 0, "error.type %s, want %s: %.300s", t ? t : "(none)", type,
	       buf_data(&r->body));
	const char *m = json_string_value(json_object_get(e, "message"));
	HCHECK(m && *m, "error.message missing or empty: %.300s", buf_data(&r->body));
	if (field) {
		const char *f = json_string_value(json_object_get(e, "field"));
		HCHECK(f && strcmp(f, field) == 0, "error.field %s, want %s: %.300s", f ? f : "(none)", field,
		       buf_data(&r->body));
	}
	const char *rid = json_string_value(json_object_get(j, "request_id"));
	const char *hid = http_header(r, "X-Request-Id");
	HCHECK(hid && rid && strcmp(rid, hid) == 0, "request_id %s != X-Request-Id %s", rid ? rid : "(none)",
	       hid ? hid : "(none)");
	json_decref(j);
}

void check_openai_error(const struct http_resp *r, long status, const char *type, const char *param)
{
	HCHECK(r->status == status, "status %ld, want %ld; body %.400s", r->status, status,
	       buf_data(&r->body));
	json_t *j = load_json_body(r);
	json_t *e = json_object_get(j, "error");
	HCHECK(json_is_object(e), "no error object: %.300s", buf_data(&r->body));
	const char *m = json_string_value(json_object_get(e, "message"));
	HCHECK(m && *m, "error.message missing or empty: %.300s", buf_data(&r->body));
	const char *t = json_string_value(json_object_get(e, "type"));
	HCHECK(t && strcmp(t, type) == 0, "error.type %s, want %s: %.300s", t ? t : "(none)", type,
	       buf_data(&r->body));
	json_t *code = json_object_get(e, "code");
	HCHECK(code && json_is_null(code), "error.code is not null: %.300s", buf_data(&r->body));
	if (param) {
		const char *p = json_string_value(json_object_get(e, "param"));
		HCHECK(p && strcmp(p, param) == 0, "error.param %s, want %s: %.300s", p ? p : "(none)", param,
		       buf_data(&r->body));
	}
	json_decref(j);
}

void check_serves_normal(void)
{
	struct http_resp r;
	int rc = http_post_json("/tts", "{\"text\": \"The daemon is still serving.\"}", &r);
	HCHECK(rc == 0 && r.status == 200, "normal request: curl %d (%s), status %ld, body %.300s", rc,
	       r.curl_err, r.status, buf_data(&r.body));
	struct audio_info ai;
	char err[1024];
	HCHECK(audio_probe("wav", buf_data(&r.body), buf_len(&r.body), 0, &ai, err, sizeof err) == 0,
	       "normal request audio: %s", err);
	HCHECK(ai.duration > 0.3, "normal request audio only %.3f s", ai.duration);
	http_resp_free(&r);
}

char *make_text(size_t nchars, unsigned variant)
{
	static const char *const words[] = {"morning",	"mirror",  "weather", "today",	"bright", "calendar",
					    "reminder", "kitchen", "coffee",  "garden", "window", "quiet",
					    "seven",	"meeting", "river",   "yellow", "simple", "number"};
	const size_t nw = sizeof words / sizeof words[0];
	char *s = xmalloc(nchars + 1);
	size_t len = 0;
	unsigned x = variant * 2654435761u + 12345u;
	size_t in_sentence = 0;
	while (len < nchars) {
		x = x * 1103515245u + 12345u;
		const char *w = words[(x >> 16) % nw];
		size_t wl = strlen(w);
		if (len + wl + 2 > nchars) {
			while (len < nchars) {
				s[len] = len + 1 == nchars ? '.' : 'a';
				len++;
			}
			break;
		}
		memcpy(s + len, w, wl);
		len += wl;
		if (++in_sentence == 8) {
			s[len++] = '.';
			in_sentence = 0;
		}
		if (len < nchars)
			s[len++] = ' ';
	}
	s[nchars] = '\0';
	return s;
}
