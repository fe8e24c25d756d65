/* tests/integration/check_cancellation.c — a client that goes away cancels
 * its job: streamed (close after the first chunk) and buffered (close while
 * the job runs). cosyvoiced_cancellations_total must rise, and the daemon
 * must serve the next request. Also: a deadline of 1 ms gives 504 and counts
 * a deadline miss. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/integration/harness.h"

static void cancel_setup(void)
{
	static const char *const args[] = {"--max-text-chars", "100000", "--max-audio-seconds", "7200", NULL};
	harness_start(args);
}

/* A raw POST /tts of a text long enough that its job is sure to be running
 * when the client leaves: espeak-ng synthesizes about 1000x faster than real
 * time, so this is an hour of slow speech (about 3 s of work). PCM at 8 kHz
 * keeps what was encoded small. */
static int send_long_request(int stream, unsigned variant)
{
	char *t = make_text(30000, variant);
	size_t blen = strlen(t) + 128;
	char *body = malloc(blen);
	ck_assert_ptr_nonnull(body);
	int n = snprintf(body, blen,
			 "{\"text\": \"%s\", \"speed\": 0.5, \"stream\": %s, \"format\": \"pcm\", "
			 "\"sample_rate\": 8000}",
			 t, stream ? "true" : "false");
	free(t);
	size_t rlen = (size_t)n + 256;
	char *req = malloc(rlen);
	ck_assert_ptr_nonnull(req);
	int m = snprintf(req, rlen,
			 "POST /tts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
			 "Content-Length: %d\r\n\r\n%s",
			 n, body);
	free(body);
	int fd = raw_connect();
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(raw_send(fd, req, (size_t)m), 0);
	free(req);
	return fd;
}

START_TEST(stream_client_closes_after_first_chunk)
{
	double before = scrape_metric("cosyvoiced_cancellations_total");
	int fd = send_long_request(1, 1);
	struct buf resp;
	buf_init(&resp, 64 << 20);
	int got = raw_read_until(fd, &resp, "\r\n\r\n", harness_scale(30));
	HCHECK(got, "no response headers: %.300s", buf_data(&resp));
	HCHECK(raw_status(&resp) == 200, "streamed request: %.300s", buf_data(&resp));
	HCHECK(strstr(buf_data(&resp), "chunked") != NULL, "not chunked: %.300s", buf_data(&resp));
	/* wait for some audio after the headers */
	const char *hend = strstr(buf_data(&resp), "\r\n\r\n");
	size_t head = (size_t)(hend - buf_data(&resp)) + 4;
	raw_read_at_least(fd, &resp, head + 1024, harness_scale(30));
	HCHECK(buf_len(&resp) >= head + 1024, "no first chunk: only %zu body bytes", buf_len(&resp) - head);
	HCHECK(scrape_metric("cosyvoiced_worker_busy") == 1, "the job already ended before the client left");
	buf_free(&resp);
	close(fd);
	double after = wait_metric_above("cosyvoiced_cancellations_total", before, 10);
	HCHECK(after > before, "cosyvoiced_cancellations_total stayed at %g after the client left a stream",
	       after);
	check_serves_normal();
}
END_TEST

START_TEST(buffered_client_closes_while_waiting)
{
	double before = scrape_metric("cosyvoiced_cancellations_total");
	int fd = send_long_request(0, 2);
	sleep_ms(300);
	HCHECK(scrape_metric("cosyvoiced_worker_busy") == 1,
	       "the job was not running 300 ms after it was sent");
	close(fd);
	double after = wait_metric_above("cosyvoiced_cancellations_total", before, 10);
	HCHECK(after > before,
	       "cosyvoiced_cancellations_total stayed at %g after the client left a buffered "
	       "request",
	       after);
	check_serves_normal();
}
END_TEST

START_TEST(deadline_1ms_gives_504)
{
	double before = scrape_metric("cosyvoiced_deadline_misses_total");
	char *t = make_text(2000, 3);
	size_t blen = strlen(t) + 64;
	char *body = malloc(blen);
	ck_assert_ptr_nonnull(body);
	snprintf(body, blen, "{\"text\": \"%s\", \"deadline_ms\": 1}", t);
	free(t);
	struct http_resp r;
	int rc = http_post_json("/tts", body, &r);
	free(body);
	HCHECK(rc == 0, "curl %d %s", rc, r.curl_err);
	check_house_error(&r, 504, "deadline_exceeded", NULL);
	http_resp_free(&r);
	double after = wait_metric_above("cosyvoiced_deadline_misses_total", before, 5);
	HCHECK(after > before, "cosyvoiced_deadline_misses_total stayed at %g", after);
	check_serves_normal();
}
END_TEST

Suite *suite_cancellation(void);
Suite *suite_cancellation(void)
{
	Suite *s = suite_create("cancellation");
	TCase *tc = tcase_create("cancel");
	tcase_add_unchecked_fixture(tc, cancel_setup, harness_stop);
	harness_tcase_timeout(tc, 120);
	tcase_add_test(tc, stream_client_closes_after_first_chunk);
	tcase_add_test(tc, buffered_client_closes_while_waiting);
	tcase_add_test(tc, deadline_1ms_gives_504);
	harness_add_exit_test(tc);
	suite_add_tcase(s, tc);
	return s;
}
