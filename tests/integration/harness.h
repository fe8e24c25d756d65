/* tests/integration/harness.h — run the real cosyvoiced and talk HTTP to it.
 *
 * One daemon at a time per test process. It is started by an unchecked
 * fixture (in Check's parent process, once per TCase) and every forked test
 * of that TCase talks to it. The daemon's pid, port, log path and, once it
 * has exited, its wait status live in a MAP_SHARED page, filled by a watcher
 * thread of the parent, so a forked test can also signal the daemon and see
 * how it exited (Check's unchecked teardown may not fail a test, so the clean
 * exit is asserted by a test: harness_add_exit_test()).
 *
 * Environment: CVTEST_BIN (default build/cosyvoiced), CVTEST_VALGRIND=1
 * (run it under valgrind; longer timeouts), PROMTOOL (default: what
 * `bash tools/dev/deps.sh --print-promtool` prints), CVTEST_KEEP_LOGS=1 (keep
 * daemon logs even after a clean exit).
 */
#ifndef CV_TESTS_HARNESS_H
#define CV_TESTS_HARNESS_H

#include <check.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/buf.h"

/* ------------------------------------------------------------ the daemon */

/* Start the daemon with --listen 127.0.0.1 --port <free port> and `args`
 * (NULL-terminated, may be NULL), wait until GET /readyz answers 200 (60 s,
 * valgrind 300 s). Fails the current test/fixture (ck_abort) on error, with
 * the daemon's log tail. */
void harness_start(const char *const *args);
/* Unchecked-teardown friendly: SIGTERM if still running, wait (SIGKILL after
 * a grace period), join the watcher; never asserts. Logs a warning to stderr
 * if the exit was not clean. */
void harness_stop(void);

int harness_port(void);
/* A TCP port free right now on 127.0.0.1 (the kernel's pick); -1 on error. */
int harness_free_port(void);
pid_t harness_pid(void);
const char *harness_log_path(void);
int harness_valgrind(void);
/* Seconds scaled for valgrind (x6). */
double harness_scale(double seconds);
/* Send a signal to the daemon (0 if sent). */
int harness_signal(int sig);
/* Wait up to timeout_s for the daemon to exit; returns 1 and the wait status
 * in *wstatus when it has, 0 on timeout. */
int harness_wait_exit(double timeout_s, int *wstatus);
/* 1 while the daemon has not exited. */
int harness_alive(void);
/* Last `max` bytes of the daemon's log (malloc'd, NUL-terminated). */
char *harness_log_tail(size_t max);
/* Adds a test that SIGTERMs the daemon and asserts that it exits with status
 * 0 (valgrind: no errors, no definite leaks) within a generous time. Add it
 * last to a TCase whose fixture uses harness_start(). */
void harness_add_exit_test(TCase *tc);
/* Per-TCase timeout, scaled for valgrind. */
void harness_tcase_timeout(TCase *tc, double seconds);

/* ck_assert_msg that also prints the daemon log tail to stderr on failure. */
#define HCHECK(cond, ...)                                            \
	do {                                                         \
		if (!(cond)) {                                       \
			harness_dump_log(__FILE__, __LINE__, #cond); \
			ck_abort_msg(__VA_ARGS__);                   \
		}                                                    \
	} while (0)
void harness_dump_log(const char *file, int line, const char *what);

/* ------------------------------------------------------------ HTTP (libcurl) */

struct http_header {
	char *name;
	char *value;
};

struct http_resp {
	long status;
	struct buf body;	  /* capped at http_req.max_body (default 256 MiB) */
	struct http_header *hdrs; /* headers of the final response, in order */
	size_t n_hdrs;
	struct http_header *trls; /* trailers (chunked responses) */
	size_t n_trls;
	int curl_code; /* CURLcode of the transfer */
	char curl_err[256];
	int body_started; /* internal */
};

struct http_req {
	const char *method;	    /* default GET, or POST when body != NULL */
	const char *path;	    /* "/tts" */
	const char *body;	    /* NULL = none */
	size_t body_len;	    /* (size_t)-1 = strlen(body) */
	const char *content_type;   /* default "application/json" when body; "" = no header */
	const char *const *headers; /* extra "Name: value" lines, NULL-terminated */
	double timeout_s;	    /* default 120 (scaled for valgrind) */
	size_t max_body;	    /* default 256 MiB */
};

/* Perform the request against the running daemon. Returns the CURLcode (0 =
 * transfer complete); the response is filled as far as it got. */
int http_do(const struct http_req *rq, struct http_resp *out);
int http_get(const char *path, struct http_resp *out);
int http_post_json(const char *path, const char *json, struct http_resp *out);
void http_resp_free(struct http_resp *r);
/* Case-insensitive lookup; first match or NULL. */
const char *http_header(const struct http_resp *r, const char *name);
const char *http_trailer(const struct http_resp *r, const char *name);
size_t http_header_count(const struct http_resp *r, const char *name);
/* 1 if the comma-separated header value list contains token (case-insensitive). */
int http_list_has(const char *list, const char *token);
/* Server-Timing: the dur of metric `name` ("total"); returns 1 if found
 * and parseable, 0 otherwise. */
int server_timing_dur(const char *header, const char *name, double *dur_ms);
/* Strict number parse of a whole string ("1.25"). 1 = ok. */
int parse_double(const char *s, double *out);
/* 1 if s is exactly 32 lower/upper hex chars. */
int is_hex32(const char *s);

/* ------------------------------------------------------------ raw sockets */

/* Connect to the daemon (blocking, CLOEXEC); -1 on error. */
int raw_connect(void);
/* Send all of data (MSG_NOSIGNAL); 0 or -1 (peer closed, ...). */
int raw_send(int fd, const void *data, size_t len);
/* Read into out until the peer closes, out is full or timeout_s passes.
 * Returns 1 = peer closed, 0 = timeout, -1 = error (ECONNRESET counts as
 * closed: returns 1). */
int raw_read_until_close(int fd, struct buf *out, double timeout_s);
/* Read until `needle` appears in out (or close/timeout). 1 = found. */
int raw_read_until(int fd, struct buf *out, const char *needle, double timeout_s);
/* Read until out holds at least min_len bytes (or close/timeout). 1 = got them. */
int raw_read_at_least(int fd, struct buf *out, size_t min_len, double timeout_s);
/* Status code of a raw "HTTP/1.x NNN ..." response, or -1. */
int raw_status(const struct buf *resp);

/* ------------------------------------------------------------ metrics */

/* Sum of every sample of metric `name` (all label sets) in a Prometheus text
 * body; *found = number of samples. */
double metrics_sum(const char *text, const char *name, int *found);
/* GET /metrics and sum `name`; aborts the test if the scrape fails or the
 * metric is absent. */
double scrape_metric(const char *name);
/* Poll /metrics until metric `name` > above, up to timeout_s. Returns the
 * last value seen. */
double wait_metric_above(const char *name, double above, double timeout_s);

/* ------------------------------------------------------------ audio */

struct audio_info {
	int rate;
	double duration;
};

/* Decode `data` of the given format (wav opus pcm flac mp3) with an
 * independent tool (soxi; flac + soxi; opusinfo; mpg123 + soxi; pcm: length)
 * and report its sample rate and duration. pcm_rate is used for "pcm" only.
 * 0 on success; on failure err says what the decoder said. */
int audio_probe(const char *format, const void *data, size_t len, int pcm_rate, struct audio_info *out,
		char *err, size_t errlen);

/* Run argv (no shell), capture stdout+stderr (capped), feed stdin_data if
 * not NULL. Returns the exit status (0..255), or -1 if it could not run or
 * was killed. */
int run_capture(const char *const *argv, const void *stdin_data, size_t stdin_len, struct buf *out);

/* Path of promtool (PROMTOOL env or tools/dev/deps.sh --print-promtool) into
 * buf; 0 if found and executable. */
int promtool_path(char *buf, size_t len);

/* ------------------------------------------------------------ contract checks */

/* House error envelope: JSON object {"error": {"code": status, "type": type,
 * "message": non-empty, "field": field (when field != NULL)}, "request_id":
 * equal to the X-Request-Id header}. */
void check_house_error(const struct http_resp *r, long status, const char *type, const char *field);
/* OpenAI envelope: {"error": {"message": non-empty, "type": type, "param":
 * param (when != NULL), "code": null}}. */
void check_openai_error(const struct http_resp *r, long status, const char *type, const char *param);
/* POST /tts with a short text; asserts 200 and decodable WAV. */
void check_serves_normal(void);
/* House type for a status (400 -> "invalid_request", ...). */
const char *house_type(long status);

/* Deterministic English-ish text of exactly nchars ASCII characters
 * (words, spaces, full stops); variant picks the word order. malloc'd. */
char *make_text(size_t nchars, unsigned variant);

/* Milliseconds of sleep. */
void sleep_ms(long ms);
/* Monotonic seconds. */
double now_s(void);

#endif
