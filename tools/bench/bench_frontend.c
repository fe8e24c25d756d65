/* tools/bench/bench_frontend.c — speed and bounds of the text frontend.
 *
 * DESIGN: one process, one thread (one core). Prints the load time
 * (tokenizer + TN grammars), the frontend speed over a corpus (lines/s, KB/s,
 * the slowest lines), then the pathological inputs the HTTP layer may pass
 * (1 MB of one character, 10,000 emoji, invalid UTF-8, NUL bytes, a long
 * digit run), each in a forked child so that its peak memory (ru_maxrss of
 * the child) and time are its own, with the frontend's result code.
 *
 *   make bench-frontend   (or build/bench_frontend MODEL_DIR TN_DIR|- [CORPUS])
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "engine/text/frontend.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct slow {
	double t;
	size_t line, len;
};

static void corpus_speed(const struct frontend *f, const char *path)
{
	FILE *fc = fopen(path, "r");
	if (!fc) {
		printf("corpus %s: cannot open\n", path);
		return;
	}
	char *line = NULL, err[256];
	size_t lcap = 0, n = 0, bytes = 0, nerr = 0;
	ssize_t ll;
	struct slow top[5] = {{0, 0, 0}};
	double total = 0;
	while ((ll = getline(&line, &lcap, fc)) > 0) {
		json_error_t je;
		json_t *s = json_loadb(line, (size_t)ll, JSON_DECODE_ANY, &je);
		if (!s || !json_is_string(s)) {
			json_decref(s);
			continue;
		}
		struct frontend_result r;
		size_t len = json_string_length(s);
		double t0 = now_s();
		int rc = frontend_run(f, json_string_value(s), len, 1, &r, err, sizeof err);
		double dt = now_s() - t0;
		total += dt;
		n++;
		bytes += len;
		if (rc)
			nerr++;
		else
			frontend_result_free(&r);
		for (int i = 0; i < 5; i++)
			if (dt > top[i].t) {
				memmove(top + i + 1, top + i, (size_t)(4 - i) * sizeof *top);
				top[i] = (struct slow){dt, n, len};
				break;
			}
		json_decref(s);
	}
	free(line);
	fclose(fc);
	printf("corpus %s: %zu lines, %zu bytes, %.2f s: %.1f lines/s, %.1f KB/s, %zu errors\n", path, n,
	       bytes, total, (double)n / total, (double)bytes / 1024.0 / total, nerr);
	for (int i = 0; i < 5 && top[i].line; i++)
		printf("  slowest: line %zu (%zu bytes) %.1f ms\n", top[i].line, top[i].len, top[i].t * 1e3);
}

static void child_case(const struct frontend *f, const char *name, const char *text, size_t len)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		char err[256] = "";
		struct frontend_result r;
		double t0 = now_s();
		int rc = frontend_run(f, text, len, 1, &r, err, sizeof err);
		double dt = now_s() - t0;
		size_t nsent = rc ? 0 : r.n, nids = 0;
		for (size_t i = 0; !rc && i < r.n; i++)
			nids += r.s[i].n_ids;
		if (!rc)
			frontend_result_free(&r);
		struct rusage ru;
		getrusage(RUSAGE_SELF, &ru);
		printf("%-28s %8zu bytes  %8.1f ms  rc=%-10s sentences=%zu ids=%zu peak_rss=%ld MB%s%s\n",
		       name, len, dt * 1e3, cv_strerror(rc), nsent, nids, ru.ru_maxrss / 1024,
		       rc ? "  err: " : "", rc ? err : "");
		fflush(stdout);
		_exit(0);
	}
	int st;
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		printf("%-28s child died (status %d)\n", name, st);
}

static char *repeat(const char *unit, size_t times, size_t *len)
{
	size_t ul = strlen(unit);
	char *s = malloc(ul * times + 1);
	if (!s)
		exit(1);
	for (size_t i = 0; i < times; i++)
		memcpy(s + i * ul, unit, ul);
	s[ul * times] = '\0';
	*len = ul * times;
	return s;
}

int main(int argc, char **argv)
{
	const char *model = argc > 1 ? argv[1] : "models/CosyVoice-BlankEN";
	const char *tn = argc > 2 && strcmp(argv[2], "-") != 0 ? argv[2] : NULL;
	const char *corpus = argc > 3 ? argv[3] : "tests/data/frontend_corpus.txt";
	char err[512] = "";
	struct frontend *f = NULL;
	struct frontend_limits lim = {(size_t)2 << 20, 1u << 20};
	double t0 = now_s();
	int rc = frontend_open(model, tn, &lim, &f, err, sizeof err);
	if (rc) {
		fprintf(stderr, "frontend_open: %s\n", err);
		return 1;
	}
	printf("load: %.1f ms (tokenizer%s)\n", (now_s() - t0) * 1e3, tn ? " + TN grammars" : ", no TN");
	corpus_speed(f, corpus);

	size_t len;
	char *s;
	s = repeat("a", (size_t)1 << 20, &len);
	child_case(f, "1 MB of 'a'", s, len);
	free(s);
	s = repeat("中", ((size_t)1 << 20) / 3, &len);
	child_case(f, "1 MB of '中'", s, len);
	free(s);
	s = repeat("。", ((size_t)1 << 20) / 3, &len);
	child_case(f, "1 MB of '。'", s, len);
	free(s);
	s = repeat("7", ((size_t)1 << 20), &len);
	child_case(f, "1 MB of '7'", s, len);
	free(s);
	s = repeat("\xF0\x9F\x98\x80", 10000, &len);
	child_case(f, "10,000 emoji", s, len);
	free(s);
	s = repeat("第1章共2024元。", 5000, &len);
	child_case(f, "zh with numbers, 100 KB", s, len);
	free(s);
	s = repeat("第1章共2024元。", 780, &len);
	child_case(f, "zh with numbers, 16 KB", s, len);
	free(s);
	s = repeat("Pay $12.50 on 2024-03-05. ", 160, &len);
	child_case(f, "en with numbers, 4 KB", s, len);
	free(s);
	s = repeat("Pay $12.50 on 2024-03-05. ", 630, &len);
	child_case(f, "en with numbers, 16 KB", s, len);
	free(s);
	s = repeat("1", 40, &len);
	child_case(f, "40-digit number (en path)", s, len);
	free(s);
	child_case(f, "invalid UTF-8", "ab\xC3\x28", 4);
	child_case(f, "NUL byte", "ab\0cd", 5);
	frontend_free(f);
	return 0;
}
