/* tests/unit/promcheck.h — a strict checker for Prometheus text format 0.0.4.
 *
 * Test helper with no Check dependency (libc + common/ only), so unit and
 * integration suites can share it. promtool 2.42 does not catch histogram
 * or grouping mistakes, so this checks them:
 *   - the text is non-empty, has no NUL/CR, and ends with '\n';
 *   - every line is a comment, `# HELP name text`, `# TYPE name type` or a
 *     sample `name{labels} value [timestamp]` that parses (label values
 *     with only \\ \" \n escapes; Go-style float values, NaN/+Inf/-Inf);
 *   - each family has exactly one HELP (non-empty) and one TYPE, both
 *     before its first sample; a family's lines are one contiguous group;
 *   - every sample belongs to the family of the group it is in (histogram:
 *     name_bucket/_sum/_count; summary: name, name_sum, name_count);
 *   - (name, label set) is unique, label names are unique within a sample;
 *   - counters are named *_total and have non-negative, non-NaN values;
 *   - histograms, per label set: _bucket lines carry `le`, appear in strictly
 *     increasing le order with non-decreasing (cumulative) values, end with
 *     le="+Inf" whose value equals _count; _sum and _count are present.
 */
#ifndef CV_TESTS_PROMCHECK_H
#define CV_TESTS_PROMCHECK_H

#include <stddef.h>

/* 0 when `text` (len bytes) is a valid exposition; CV_EINVAL otherwise with
 * "line N: why" in err (err may be NULL when errlen is 0). */
int promcheck_text(const char *text, size_t len, char *err, size_t errlen);

/* Value of the sample whose series part is exactly `series` as written,
 * e.g. `cosyvoiced_requests_total{route="tts",code="200"}` or
 * `cosyvoiced_queue_depth`. text is NUL-terminated. Returns 0, CV_ENOTFOUND
 * when no sample line matches, CV_EINVAL when the value does not parse. */
int promcheck_value(const char *text, const char *series, double *out);

/* TYPE of family `name` ("counter", "histogram"...) copied into type
 * (cap bytes). Returns 0 or CV_ENOTFOUND. */
int promcheck_type(const char *text, const char *name, char *type, size_t cap);

#endif
