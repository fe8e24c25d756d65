/* handlers/request.h — parse and validate synthesis request bodies.
 *
 * Two dialects map onto one struct tts_request: the house `POST /tts` body and
 * OpenAI's `POST /v1/audio/speech` body. Validation is complete here except
 * for what needs the engine (does the speaker exist?): every refusal names
 * the field and carries the HTTP status (400, 413) in struct request_error.
 */
#ifndef CV_HANDLERS_REQUEST_H
#define CV_HANDLERS_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "handlers/audio/audio.h"

#define REQUEST_SPEAKER_MAX	 128
#define REQUEST_SPEED_MIN	 0.5
#define REQUEST_SPEED_MAX	 2.0
#define REQUEST_OPENAI_INPUT_MAX 4096
#define REQUEST_SEED_MAX	 9007199254740992LL /* 2^53: exact in a JSON double */

struct tts_request {
	char *text; /* owned, valid UTF-8, no NUL */
	size_t text_bytes;
	size_t text_chars;		   /* code points */
	char speaker[REQUEST_SPEAKER_MAX]; /* "" = default */
	int openai_voice;		   /* 1: speaker is an OpenAI voice name (alloy...) */
	enum audio_format format;
	int sample_rate; /* 0 = default */
	int stream;
	float speed;
	uint64_t seed;
	int has_seed;
	int normalize;
	int deadline_ms; /* 0 = the configured default */
};

struct request_limits {
	size_t max_text_chars;
	int max_deadline_ms;
	enum audio_format default_format;
};

struct request_error {
	int status;	/* 400, 413, 415, 422 */
	char field[32]; /* "" when no single field is at fault */
	char message[256];
};

int request_parse_tts(const char *body, size_t len, const struct request_limits *lim, struct tts_request *out,
		      struct request_error *e);
int request_parse_openai(const char *body, size_t len, const struct request_limits *lim,
			 struct tts_request *out, struct request_error *e);
/* POST /v1/text/normalize: {text, normalize?}; unknown fields refused. */
int request_parse_normalize(const char *body, size_t len, const struct request_limits *lim,
			    struct tts_request *out, struct request_error *e);
void request_free(struct tts_request *r); /* frees owned fields; safe twice */

/* Is this one of OpenAI's built-in voice names? */
int request_is_openai_voice(const char *name);
/* Accepted output rates: 8000 16000 22050 24000 44100 48000. */
int request_rate_allowed(int rate);

#endif
