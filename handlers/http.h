/* handlers/http.h — the HTTP front of cosyvoiced (libmicrohttpd).
 *
 * One epoll thread (or a small pool) parses, validates, submits jobs to the
 * scheduler and encodes audio; it never waits for the model: a connection
 * whose audio is not ready is suspended and the worker's job notification
 * resumes it. Routes and contract: docs/api.md.
 */
#ifndef CV_HANDLERS_HTTP_H
#define CV_HANDLERS_HTTP_H

#include <stddef.h>

#include "engine/text/frontend.h"
#include "handlers/nvml.h"
#include "engine/sched.h"
#include "handlers/audio/audio.h"
#include "handlers/metrics.h"

struct http_config {
	const char *listen; /* IPv4/IPv6 literal */
	int port;	    /* 0 = pick a free port (see http_server_port) */
	int threads;	    /* 1 = single epoll thread */
	unsigned connection_limit;
	unsigned per_ip_connection_limit; /* 0 = unlimited */
	unsigned connection_timeout_s;
	size_t max_body_bytes;
	size_t max_text_chars;
	int deadline_ms; /* default and maximum per-request deadline */
	int max_audio_seconds;
	enum audio_format default_format;
	int default_sample_rate;     /* 0 = engine native */
	struct audio_enc_opts enc;   /* bitrates, flac level (stream is per request) */
	const char *const *api_keys; /* NULL or n_api_keys keys (copied at start) */
	size_t n_api_keys;
	const char *const *admin_keys; /* PUT/DELETE /v1/speakers/{id}; none = routes off (404) */
	size_t n_admin_keys;
	const char *voices_dir; /* where PUT writes voices; NULL/"" = routes off (404) */
	size_t max_voice_bytes;
	size_t max_voices;
	int web_ui;		  /* 1: GET / serves the console page and /cosyvoiced.js the client module */
	const char *cors_origins; /* comma-separated, "*" or "" */
	int access_log;
	int embedded_default;		 /* 1 when running the built-in espeak-ng default */
	const struct frontend *frontend; /* for /v1/text/normalize; NULL = route unavailable (501) */
	struct nvml *nvml;		 /* GPU utilization/memory read at each scrape; NULL = none */
};

struct http_server;

int http_server_start(const struct http_config *cfg, struct sched *s, struct metrics *m,
		      struct http_server **out, char *err, size_t errlen);
int http_server_port(const struct http_server *h);
/* Stop accepting new connections (existing ones are still served). */
void http_server_quiesce(struct http_server *h);
/* Connections currently open and not finished. */
size_t http_server_open_connections(struct http_server *h);
/* Wait up to wait_ms for open connections to finish, then stop MHD. */
void http_server_stop(struct http_server *h, int wait_ms);
void http_server_free(struct http_server *h); /* stops first if needed; NULL no-op */
/* Replace the API keys (copied; none = no authentication) while serving, e.g.
 * after SIGHUP re-read api_keys_file. Returns the new count. */
size_t http_server_set_api_keys(struct http_server *h, const char *const *keys, size_t n);

#endif
