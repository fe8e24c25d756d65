/* daemon/main.c — start-up, signals, systemd protocol, shutdown order.
 *
 * DESIGN
 * Order of life: config (validated in full before anything starts) → log
 * level → metrics → scheduler (its worker opens and warms the engine) → HTTP
 * (bound early so /healthz and /readyz answer while the model loads) → wait
 * for READY → sd_notify READY=1 → main loop → drain → exit 0.
 *
 * Signals are blocked in every thread (the mask is set before any thread is
 * created) and taken synchronously by the main thread with sigtimedwait(), so
 * no async-signal-safety puzzles exist. The main loop also pings the systemd
 * watchdog, but only while the worker's heartbeat is fresh: a wedged engine
 * call stops the pings and systemd restarts the service.
 *
 * Shutdown (SIGTERM/SIGINT): STOPPING=1 → stop accepting (quiesce) → the
 * scheduler answers queued jobs 503 and lets the running one finish within
 * drain_timeout_ms → wait briefly for open replies to flush → stop MHD →
 * free everything → exit 0.
 */
#include <errno.h>
#include <unistd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <sys/stat.h>
#include <time.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/path.h"
#include "common/version.h"
#include "daemon/config.h"
#include "daemon/healthcheck.h"
#include "engine/text/frontend.h"
#include "handlers/nvml.h"
#include "engine/sched.h"
#include "handlers/http.h"
#include "handlers/metrics.h"

#define MAIN_LOOP_TICK_MS  500
#define MAIN_FLUSH_WAIT_MS 3000

/* sched_config.on_stage: tell systemd which load stage runs (worker thread;
 * sd_notify is thread-safe and the message carries the main PID). */
static void main_on_stage(void *user, const char *stage)
{
	sd_notifyf(0, "STATUS=loading the %s engine: %s", (const char *)user, stage);
}

static int main_wait_signal(const sigset_t *set, int timeout_ms)
{
	struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
	int sig = sigtimedwait(set, NULL, &ts);
	return sig < 0 ? 0 : sig;
}

/* The text frontend of /v1/text/normalize: frontend_dir, else the model
 * bundle; both are bundle-shaped (tokenizer/ and, optionally, tn/). */
static int main_open_frontend(const struct config *c, struct frontend **out, char *err, size_t errlen)
{
	const char *dir = c->frontend_dir[0] ? c->frontend_dir : c->model_dir;
	struct frontend_limits lim = {0, 0, (size_t)c->split_max_tokens};

	*out = NULL;
	return dir[0] ? frontend_open_dir(dir, &lim, out, err, errlen) : CV_OK;
}

/* A release tarball ships espeak-ng's data in ../share beside bin/ (the library's own default path
 * does not exist on a host without the espeak-ng-data package); NULL = the library default. */
static const char *main_shipped_espeak_data(void)
{
	static char dir[4096];
	return path_beside_exe(dir, sizeof dir, "../share/espeak-ng-data") == CV_OK ? dir : NULL;
}

static const char *main_pick_backend(const struct config *c)
{
	if (strcmp(c->engine, "auto") == 0)
		return c->model_dir[0] ? "cosyvoice2" : "espeak";
	return c->engine;
}

int main(int argc, char **argv, char **envp)
{
	struct config cfg;
	struct config_cli cli;
	struct sched_config sc;
	struct http_config hc;
	struct sched *sched = NULL;
	struct metrics *metrics = NULL;
	struct http_server *http = NULL;
	struct frontend *frontend = NULL;
	struct nvml *nvml = NULL;
	char err[512];
	char **keys = NULL, **admin_keys = NULL;
	size_t n_keys = 0, n_admin = 0;
	uint64_t wd_usec = 0;
	int wd_enabled, rc, exit_code = 1, ready = 0, wd_stale = 0;
	char why[640] = "";	/* reason of a failed start, kept in the final STATUS */
	char serving[320] = ""; /* the STATUS while serving, set at READY */
	enum log_level lvl;
	sigset_t sigs;
	const char *backend;

	memset(&cli, 0, sizeof cli);
	rc = config_load(&cfg, &cli, argc, argv, envp, err, sizeof err);
	if (cli.help) {
		config_print_help(stdout, "cosyvoiced");
		return 0;
	}
	if (cli.version) {
		printf("cosyvoiced %s (git %s)\n", CV_VERSION, CV_GIT);
		return 0;
	}
	if (rc != CV_OK) {
		fprintf(stderr, "cosyvoiced: configuration error: %s\n", err);
		return 2;
	}
	if (cli.print_config) {
		config_print_json(stdout, &cfg);
		return 0;
	}
	if (cli.healthcheck) {
		/* In a container: the daemon's own flags (PID 1), else this command line. */
		char **pargv = NULL, msg[256];
		int pargc = healthcheck_pid1_args(&pargv);
		if (pargc > 0) {
			struct config_cli pcli;
			memset(&pcli, 0, sizeof pcli);
			if (config_load(&cfg, &pcli, pargc, pargv, envp, err, sizeof err) != CV_OK) {
				fprintf(stderr, "cosyvoiced: healthcheck: PID 1's configuration: %s\n", err);
				healthcheck_free_args(pargv, pargc);
				return 1;
			}
			healthcheck_free_args(pargv, pargc);
		}
		rc = healthcheck_probe(cfg.listen, cfg.port, msg, sizeof msg);
		printf("cosyvoiced healthcheck: %s\n", msg);
		return rc == 200 ? 0 : 1;
	}
	if (cli.check_config) {
		/* The masked log form: never print API keys. */
		config_log_effective(&cfg);
		fprintf(stderr, "cosyvoiced: configuration OK\n");
		return 0;
	}
	if (log_parse_level(cfg.log_level, &lvl) == CV_OK)
		log_set_level(lvl);
	if (config_read_admin_keys(&cfg, &admin_keys, &n_admin, err, sizeof err) != CV_OK) {
		fprintf(stderr, "cosyvoiced: configuration error: %s\n", err);
		return 2;
	}
	if (config_read_api_keys(&cfg, &keys, &n_keys, err, sizeof err) != CV_OK) {
		fprintf(stderr, "cosyvoiced: configuration error: %s\n", err);
		return 2;
	}

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	log_info("main", "cosyvoiced %s (git %s) starting", CV_VERSION, CV_GIT);
	config_log_effective(&cfg);
	metrics = metrics_new(CV_VERSION);
	if (main_open_frontend(&cfg, &frontend, err, sizeof err) != CV_OK) {
		log_err("main",
			"text frontend: %s (frontend_dir/model_dir must hold tokenizer/ and optionally tn/)",
			err);
		exit_code = 2;
		goto out;
	}
	if (frontend)
		log_info("main", "text frontend loaded (%s grammars) for POST /v1/text/normalize",
			 frontend_has_tn(frontend) ? "with" : "without");

	/* oneDNN (inside libtorch) compiles and caches a CPU kernel per operator and input shape; every
	 * new sentence length adds some, so its cache is bounded here. It reads the variable once, when
	 * libtorch first builds a kernel: set now, before the scheduler's worker loads libtorch and while
	 * this is the only thread. An operator's own ONEDNN_PRIMITIVE_CACHE_CAPACITY wins. */
	if (cfg.cpu_kernel_cache > 0) {
		char cap[16];
		snprintf(cap, sizeof cap, "%d", cfg.cpu_kernel_cache);
		setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", cap, 0);
	}
	backend = main_pick_backend(&cfg);
	memset(&sc, 0, sizeof sc);
	sc.queue_capacity = (size_t)cfg.queue_capacity;
	sc.warmup = cfg.warmup;
	sc.engine.backend = backend;
	sc.engine.model_dir = cfg.model_dir[0] ? cfg.model_dir : NULL;
	sc.engine.device = cfg.device;
	sc.engine.data_dir = cfg.espeak_data[0] ? cfg.espeak_data : main_shipped_espeak_data();
	sc.engine.default_speaker = cfg.default_speaker[0] ? cfg.default_speaker : NULL;
	sc.engine.threads = cfg.engine_threads;
	sc.engine.cuda_graph = cfg.cuda_graph;
	sc.engine.llm_max_positions = (size_t)cfg.llm_max_positions;
	sc.engine.memory_budget_mb = cfg.memory_budget_mb;
	sc.engine.split_max_tokens = (size_t)cfg.split_max_tokens;
	sc.engine.torch_lib = cfg.torch_lib[0] ? cfg.torch_lib : NULL;
	sc.engine.cuda_memory_limit_mb = cfg.cuda_memory_limit_mb;
	sc.engine.cpu_half = cfg.cpu_half;
	sc.engine.voices_dir = cfg.voices_dir[0] ? cfg.voices_dir : NULL;
	sc.engine.max_voices = (size_t)cfg.max_voices;
	sc.on_stage = main_on_stage;
	sc.on_stage_user = (void *)backend;
	if (strcmp(backend, "espeak") == 0)
		log_warn("main",
			 "no CosyVoice2 model configured (model_dir empty): serving the embedded espeak-ng "
			 "default engine");
	sd_notifyf(0, "STATUS=loading the %s engine", backend);
	if (sched_start(&sc, &sched, err, sizeof err) != CV_OK) {
		log_err("main", "cannot start the scheduler: %s", err);
		goto out;
	}

	memset(&hc, 0, sizeof hc);
	hc.listen = cfg.listen;
	hc.port = cfg.port;
	hc.threads = cfg.http_threads;
	hc.connection_limit = (unsigned)cfg.connection_limit;
	hc.per_ip_connection_limit = (unsigned)cfg.per_ip_connection_limit;
	hc.connection_timeout_s = (unsigned)cfg.connection_timeout_s;
	hc.max_body_bytes = (size_t)cfg.max_body_bytes;
	hc.max_text_chars = (size_t)cfg.max_text_chars;
	hc.deadline_ms = cfg.deadline_ms;
	hc.max_audio_seconds = cfg.max_audio_seconds;
	audio_format_parse(cfg.default_format, &hc.default_format);
	hc.default_sample_rate = cfg.default_sample_rate;
	hc.enc.opus_bitrate = cfg.opus_bitrate;
	hc.enc.opus_complexity = cfg.opus_complexity;
	hc.enc.mp3_bitrate_kbps = cfg.mp3_bitrate_kbps;
	hc.enc.flac_level = cfg.flac_level;
	hc.api_keys = (const char *const *)keys;
	hc.n_api_keys = n_keys;
	hc.admin_keys = (const char *const *)admin_keys;
	hc.n_admin_keys = n_admin;
	hc.voices_dir = cfg.voices_dir;
	hc.max_voice_bytes = (size_t)cfg.max_voice_bytes;
	hc.max_voices = (size_t)cfg.max_voices;
	hc.web_ui = cfg.web_ui;
	hc.cors_origins = cfg.cors_origins;
	hc.access_log = cfg.access_log;
	hc.embedded_default = strcmp(backend, "espeak") == 0;
	hc.frontend = frontend;
	if (strcmp(backend, "cosyvoice2") == 0 && strcmp(cfg.device, "cuda") == 0) {
		if (nvml_open(0, &nvml, err, sizeof err) == CV_OK)
			log_info("main", "NVML: GPU 0 is %s (utilization gauges on /metrics)",
				 nvml_device_name(nvml));
		else
			log_info("main", "%s", err);
	}
	hc.nvml = nvml;
	if (http_server_start(&hc, sched, metrics, &http, err, sizeof err) != CV_OK) {
		log_err("main", "%s", err);
		goto out;
	}
	log_info("main", "listening on http://%s:%d (auth %s, queue capacity %d)", cfg.listen,
		 http_server_port(http), n_keys ? "on" : "off", cfg.queue_capacity);

	wd_enabled = sd_watchdog_enabled(0, &wd_usec) > 0;

	/* Wait for the engine, answering signals and keeping systemd informed:
	 * STATUS names each load stage; the start timeout is extended and the
	 * watchdog pinged only while the worker shows progress (a stage start or
	 * its heartbeat) within load_stall_timeout_ms. */
	{
		char stage[SCHED_STAGE_MAX] = "";
		int stalled = 0, under_systemd = getenv("NOTIFY_SOCKET") != NULL;
		for (;;) {
			int sig;
			rc = sched_wait_ready(sched, MAIN_LOOP_TICK_MS, err, sizeof err);
			if (rc == CV_OK)
				break;
			if (rc != CV_ETIMEDOUT) {
				log_err("main", "engine failed to load: %s", err);
				snprintf(why, sizeof why, ": engine failed: %s", err);
				sd_notifyf(0, "STATUS=engine failed: %s\nERRNO=%d", err, EIO);
				goto out;
			}
			int64_t life = sched_load_stage(sched, stage, sizeof stage);
			int64_t quiet_ms = (clock_now_ns() - life) / 1000000;
			if (quiet_ms < cfg.load_stall_timeout_ms) {
				stalled = 0;
				sd_notify(0, "EXTEND_TIMEOUT_USEC=5000000");
				if (wd_enabled)
					sd_notify(0, "WATCHDOG=1");
			} else if (!stalled) {
				stalled = 1;
				log_err("main",
					"start-up stage '%s' shows no progress for %lld ms "
					"(load_stall_timeout_ms "
					"%d): the load is hung; %s",
					stage, (long long)quiet_ms, cfg.load_stall_timeout_ms,
					under_systemd
					    ? "no more start-up extensions or watchdog pings, systemd "
					      "stops the service"
					    : "exiting");
				sd_notifyf(0, "STATUS=start-up hung in stage '%s' (no progress for %lld s)",
					   stage, (long long)(quiet_ms / 1000));
				if (!under_systemd) {
					/* The worker is stuck inside the engine: it cannot be joined. */
					fflush(NULL);
					_exit(EXIT_FAILURE);
				}
			}
			sig = main_wait_signal(&sigs, 1);
			if (sig == SIGTERM || sig == SIGINT) {
				log_info("main", "signal %d during start-up: stopping", sig);
				if (stalled) {
					log_err("main",
						"the worker is hung in '%s': exiting without joining it",
						stage);
					sd_notify(0, "STOPPING=1\nSTATUS=stopped (start-up hung)");
					fflush(NULL);
					_exit(EXIT_FAILURE);
				}
				exit_code = 0;
				goto out;
			}
		}
	}
	{
		double load_ms = 0, warm_ms = 0;
		const struct engine *e = sched_engine(sched);
		sched_startup_ms(sched, &load_ms, &warm_ms);
		log_info("main", "engine %s ready (%s, %d Hz, %zu speakers): load %.0f ms, warm-up %.0f ms",
			 engine_name(e), engine_describe(e), engine_sample_rate(e), engine_speaker_count(e),
			 load_ms, warm_ms);
		snprintf(serving, sizeof serving, "STATUS=serving %s on %s:%d", engine_name(e), cfg.listen,
			 http_server_port(http));
		sd_notifyf(0, "READY=1\n%s", serving);
	}
	ready = 1;

	for (;;) {
		int tick = MAIN_LOOP_TICK_MS;
		int sig;
		if (wd_enabled && wd_usec / 2000 < (uint64_t)tick)
			tick = (int)(wd_usec / 2000) > 0 ? (int)(wd_usec / 2000) : 1;
		sig = main_wait_signal(&sigs, tick);
		if (sig == SIGTERM || sig == SIGINT) {
			log_info("main", "signal %d: draining (up to %d ms for the running job)", sig,
				 cfg.drain_timeout_ms);
			break;
		}
		if (sig == SIGHUP) {
			char **nk = NULL;
			size_t nn = 0;
			log_info("main", "SIGHUP: re-reading the voices and api_keys_file (other settings "
					 "need a restart)");
			sched_reload_voices(sched);
			if (config_read_api_keys(&cfg, &nk, &nn, err, sizeof err) == CV_OK) {
				http_server_set_api_keys(http, (const char *const *)nk, nn);
				log_info("main", "API keys reloaded: %zu key%s (authentication %s)", nn,
					 nn == 1 ? "" : "s", nn ? "on" : "off");
				config_free_api_keys(nk, nn);
			} else {
				log_err("main", "API keys not reloaded, the current ones stay: %s", err);
			}
		}
		if (wd_enabled) {
			int64_t age_us = (clock_now_ns() - sched_heartbeat_ns(sched)) / 1000;
			if (age_us >= 0 && (uint64_t)age_us < wd_usec / 2) {
				if (wd_stale)
					sd_notify(0, serving);
				wd_stale = 0;
				sd_notify(0, "WATCHDOG=1");
			} else {
				if (!wd_stale)
					sd_notifyf(
					    0,
					    "STATUS=worker unresponsive for %lld ms: watchdog pings withheld",
					    (long long)(age_us / 1000));
				wd_stale = 1;
				log_err_limited("main", "watchdog_stale",
						"worker heartbeat is %lld ms old: withholding watchdog pings",
						(long long)(age_us / 1000));
			}
		}
	}
	exit_code = 0;
out:
	if (sched && ready) {
		size_t queued = sched_depth(sched);
		int running = sched_busy(sched);
		sd_notifyf(0, "STOPPING=1\nSTATUS=draining: %d running, %zu queued (up to %d ms)", running,
			   queued, cfg.drain_timeout_ms);
	} else {
		sd_notifyf(0, "STOPPING=1\nSTATUS=stopping%s", why);
	}
	if (http)
		http_server_quiesce(http);
	if (sched)
		sched_shutdown(sched, ready ? cfg.drain_timeout_ms : 0);
	if (http)
		http_server_stop(http, MAIN_FLUSH_WAIT_MS);
	http_server_free(http);
	nvml_close(nvml);
	sched_free(sched);
	metrics_free(metrics);
	frontend_free(frontend);
	config_free_api_keys(keys, n_keys);
	config_free_api_keys(admin_keys, n_admin);
	log_info("main", "stopped (exit %d)", exit_code);
	sd_notifyf(0, "STATUS=stopped (exit %d)%s", exit_code, why);
	return exit_code;
}
