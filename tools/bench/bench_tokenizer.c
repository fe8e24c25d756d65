/* tools/bench/bench_tokenizer.c — speed and bounds of the BlankEN tokenizer.
 *
 * DESIGN: one process, one thread (one core). Prints the vocabulary load time
 * and the encode speed on mixed zh/en text (tokens/s, MB/s; median of 5
 * runs), then the pathological inputs the HTTP layer may pass: 1 MB of one
 * character and 10,000 emoji, each measured in a forked child so that its
 * peak memory (getrusage ru_maxrss of the child) is its own.
 *
 *   make bench-tokenizer            (or build/bench_tokenizer [MODEL_DIR])
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "engine/text/tokenizer.h"

#define RUNS 5

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return v[n / 2];
}

/* Mixed text: lines as a TTS server sees them. */
static const char *const mixed_lines[] = {
    "收到朋友从远方寄来的生日礼物，那份意外的惊喜与深深的祝福让我心中充满了甜蜜的快乐，笑容如花儿般绽放。",
    "The quick brown fox jumps over the lazy dog; it's 5:30 p.m. and we've got 42 minutes left.",
    "我今天用iPhone 15 Pro拍了张照片，这个API的response time是200ms左右。",
    "CosyVoice2 supports streaming synthesis with a first-packet latency of about 150 ms.",
    "价格是$19.99，约合人民币¥143元；温度：25°C～30°C，湿度80%。",
    "在他讲述那个荒诞故事的过程中，他突然[laughter]停下来，因为他自己也被逗笑了[laughter]。",
    "Hello 👋 world 🌍! 你好，世界！😀 Let's go 🚀🚀🚀",
    "《红楼梦》是中国古典四大名著之一，作者是曹雪芹。Dream of the Red Chamber is one of China's Four Great "
    "Novels.",
    "用四川话说这句话<|endofprompt|>八百标兵奔北坡，北坡炮兵并排跑。",
    "Mr. Smith's e-mail is john.smith@example.com; call +1 (555) 123-4567 before 2024-06-11.",
};

struct text {
	char *p;
	size_t len;
	size_t *line_off; /* line i is p[line_off[i] .. line_off[i+1]) */
	size_t lines;
};

static void build_mixed(struct text *t, size_t target)
{
	size_t nl = sizeof mixed_lines / sizeof mixed_lines[0], cap = target + 1024, maxl = target / 16 + 16;
	t->p = malloc(cap);
	t->line_off = malloc((maxl + 1) * sizeof *t->line_off);
	t->len = 0;
	t->lines = 0;
	while (t->len < target && t->lines < maxl) {
		const char *l = mixed_lines[t->lines % nl];
		size_t n = strlen(l);
		if (t->len + n > cap)
			break;
		t->line_off[t->lines++] = t->len;
		memcpy(t->p + t->len, l, n);
		t->len += n;
	}
	t->line_off[t->lines] = t->len;
}

/* Encodes text (cap ids), returns seconds; *ntok gets the id count. */
static double time_encode(const struct tokenizer *tok, const char *s, size_t len, int32_t *ids, size_t cap,
			  size_t *ntok, int *rc)
{
	char err[256] = "";
	double t0 = now_s();
	*rc = tokenizer_encode(tok, s, len, ids, cap, ntok, err, sizeof err);
	double dt = now_s() - t0;
	if (*rc != CV_OK)
		fprintf(stderr, "bench: encode failed: %s\n", err);
	return dt;
}

/* Runs one pathological input in a child; prints time, ids and peak RSS. */
static void bench_child(const struct tokenizer *tok, const char *what, const char *unit, size_t reps)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return;
	}
	if (pid == 0) {
		size_t ul = strlen(unit), len = ul * reps;
		char *s = malloc(len);
		int32_t *ids = malloc(len * sizeof *ids);
		if (!s || !ids)
			_exit(2);
		for (size_t i = 0; i < reps; i++)
			memcpy(s + i * ul, unit, ul);
		size_t n = 0;
		int rc;
		double dt = time_encode(tok, s, len, ids, len, &n, &rc);
		printf("  %-28s %8zu bytes  %8.1f ms  %8zu ids  %s\n", what, len, dt * 1e3, n,
		       rc == CV_OK ? "ok" : cv_strerror(rc));
		fflush(stdout);
		_exit(rc == CV_OK ? 0 : 1);
	}
	int st;
	struct rusage ru;
	if (wait4(pid, &st, 0, &ru) < 0) {
		perror("wait4");
		return;
	}
	printf("  %-28s peak RSS of the child: %.1f MiB (includes the loaded tokenizer)\n", "",
	       (double)ru.ru_maxrss / 1024.0);
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "models/CosyVoice-BlankEN";
	char err[256] = "";
	double load[RUNS];
	struct tokenizer *tok = NULL;
	for (int i = 0; i < RUNS; i++) {
		tokenizer_free(tok);
		tok = NULL;
		double t0 = now_s();
		if (tokenizer_open(dir, &tok, err, sizeof err) != CV_OK) {
			fprintf(stderr, "bench: %s\n", err);
			return 1;
		}
		load[i] = now_s() - t0;
	}
	printf("tokenizer benchmark (%s), one thread\n", dir);
	printf("  vocabulary load:   %.1f ms (median of %d; vocab %zu)\n", median(load, RUNS) * 1e3, RUNS,
	       tokenizer_vocab_size(tok));

	struct text mx;
	build_mixed(&mx, (size_t)4 << 20);
	int32_t *ids = malloc(mx.len * sizeof *ids);
	double per_line[RUNS], whole[RUNS];
	size_t ntok_lines = 0, ntok_whole = 0;
	for (int r = 0; r < RUNS; r++) {
		/* Line by line, as requests arrive. */
		double t = 0;
		ntok_lines = 0;
		for (size_t i = 0; i < mx.lines; i++) {
			size_t n;
			int rc;
			t += time_encode(tok, mx.p + mx.line_off[i], mx.line_off[i + 1] - mx.line_off[i], ids,
					 mx.len, &n, &rc);
			if (rc != CV_OK)
				return 1;
			ntok_lines += n;
		}
		per_line[r] = t;
		int rc;
		whole[r] = time_encode(tok, mx.p, mx.len, ids, mx.len, &ntok_whole, &rc);
		if (rc != CV_OK)
			return 1;
	}
	double tl = median(per_line, RUNS), tw = median(whole, RUNS), mb = (double)mx.len / 1e6;
	printf("  mixed zh/en text:  %.2f MB in %zu lines, %zu tokens\n", mb, mx.lines, ntok_lines);
	printf("    line by line:    %.1f ms  %.2f MB/s  %.0f tokens/s (median of %d)\n", tl * 1e3, mb / tl,
	       (double)ntok_lines / tl, RUNS);
	printf("    one 4 MB call:   %.1f ms  %.2f MB/s  %.0f tokens/s (median of %d)\n", tw * 1e3, mb / tw,
	       (double)ntok_whole / tw, RUNS);
	free(ids);
	free(mx.p);
	free(mx.line_off);

	printf("  bounds (each in a forked child):\n");
	bench_child(tok, "1 MB of 'a'", "a", (size_t)1 << 20);
	bench_child(tok, "1 MB of ' '", " ", (size_t)1 << 20);
	bench_child(tok, "1 MB of '中' (349,525 x)", "中", ((size_t)1 << 20) / 3);
	bench_child(tok, "1 MB of '!'", "!", (size_t)1 << 20);
	bench_child(tok, "1 MB of 'e'+U+0301", "e\xCC\x81", ((size_t)1 << 20) / 3);
	bench_child(tok, "10,000 emoji 😀", "\xF0\x9F\x98\x80", 10000);
	bench_child(tok, "10,000 emoji 👨‍👩‍👧‍👦", "👨‍👩‍👧‍👦", 10000);
	bench_child(tok, "10,000 emoji 👍🏽", "👍🏽", 10000);
	tokenizer_free(tok);
	return 0;
}
