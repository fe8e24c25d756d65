/* engine/cosyvoice2/cosyvoice2.c — the CosyVoice2 backend: bundle, speakers, LLM, flow, HiFT, streaming.
 *
 * DESIGN: all orchestration is C; the model is called through the plain-C
 * runtime (engine/cosyvoice2/torch_runtime.h) whose entry points are the bundle's
 * TorchScript methods. The reference's algorithm is followed step by step
 * (docs/cosyvoice2.md §2.4, §3.3-§3.6, §4.1, §5.1, §6): the prompt layout per
 * mode, min/max lengths by text ids with EOS masked before min_len and the
 * three stop ids, RAS sampling in C (engine/cosyvoice2/sampler.h, a per-request seeded
 * PCG32), flow + HiFT, speed by mel interpolation, and the streaming
 * schedule with its HiFT cache and Hamming cross-fade (engine/cosyvoice2/cv2_stream.h).
 * Chunks are computed inside the decode loop as soon as the schedule makes
 * one due, so the first audio leaves after the first hop, not at the end.
 *
 * Opening a bundle checks everything that can be checked before the model
 * is loaded (format, version, torch version, every file's sha256), so a
 * stale or damaged bundle is refused with a message that names the file and
 * the fix, instead of failing later inside libtorch. The engine state
 * (sampler scratch, HiFT cache, KV cache inside the runtime) is per engine
 * and reset per sentence: the scheduler runs one request at a time.
 *
 * Every sentence of a request is synthesized in order; the first failing
 * sentence fails the whole request with its number in the error text.
 *
 * Memory: the KV cache is allocated once at start-up for llm_max_positions
 * and never grows for requests. The memory guard measures at start-up what
 * the engine holds (weights + KV cache: the "base") and what flow + HiFT add
 * per mel frame (two probe syntheses, peak minus start; CUDA: the caching
 * allocator's figures, CPU: resident set and its high-water mark), fits
 * need(T) = base + a*T + b*T^2 (the flow estimator's attention is quadratic
 * in T), and refuses, before any audio, a request whose longest sentence
 * could need more than memory_budget_mb: T is taken at the LLM's maximum
 * length for that sentence (20 speech tokens per text token, docs/cosyvoice2.md §3.4).
 */
#include "engine/cosyvoice2/cosyvoice2.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/sha256.h"
#include "engine/backend.h"

#include "engine/cosyvoice2/cv2_stream.h"
#include "engine/text/frontend.h"
#include "engine/cosyvoice2/safetensors.h"
#include "engine/cosyvoice2/sampler.h"
#include "engine/cosyvoice2/torch_runtime.h"

#define CV2_WARMUP_TEXT		  "Hello."
#define CV2_PATH_MAX		  4096
#define CV2_DEFAULT_MAX_POSITIONS 4096
#define CV2_MIB			  (1024.0 * 1024.0)
#define CV2_AUTO_BUDGET_CUDA_MB	  3072.0

struct cv2_speaker {
	char *id;	      /* as listed (name, or name + "/cross-lingual") */
	char *name;	      /* bundle speaker name */
	int cross_lingual;    /* LLM without prompt text/speech */
	int sft;	      /* embedding only: no prompt at all */
	int32_t *prompt_text; /* LLM prompt text ids */
	size_t n_prompt_text;
	int32_t *prompt_tokens; /* speech tokens (LLM and flow prompt) */
	size_t n_prompt_tokens;
	float *prompt_mel; /* [n_prompt_mel][mel_bins] */
	size_t n_prompt_mel;
	float *embedding; /* [spk_dim] */
	int owner;	  /* 1: the arrays belong to this entry */
};

struct cv2 {
	struct torch_runtime *rt;
	struct frontend *fe;
	char describe[256];
	char dtype[8]; /* the bundle's weights: fp32, fp16, bf16 */
	char dir[CV2_PATH_MAX];
	struct cv2_speaker *spk;
	struct engine_speaker *espk;
	size_t n_spk;
	size_t default_spk;
	/* constants from the manifest */
	int sample_rate;
	size_t vocab;
	size_t mel_bins;
	size_t spk_dim;
	size_t samples_per_frame;
	size_t nb_harmonics;
	int32_t endofprompt_id;
	struct sampler_params sp;
	/* per-request scratch */
	float *logp;
	struct cv2_hift_cache hc;
	/* limits and the memory model (see the design note) */
	size_t max_positions;
	double budget;	     /* bytes, 0 = no guard */
	int mem_valid;	     /* the probe ran */
	double mem_base;     /* bytes held with the model and the KV cache loaded */
	double mem_a, mem_b; /* bytes per mel frame, per frame squared */
};

/* What one request accumulates while it runs. */
struct cv2_run {
	const struct engine_sink *sink;
	int64_t t0;
	int first_written;
	double ttfa_ms;
	double prefill_ms, decode_ms, flow_ms, voc_ms;
	size_t n_decoded;
	struct sampler_rng rng;
	int greedy;
	int zero_noise;
};

/* dir + "/" + rel into dst; CV_E2BIG when it does not fit. */
static int cv2_path(char *dst, size_t cap, const char *dir, const char *rel)
{
	int n = snprintf(dst, cap, "%s/%s", dir, rel);
	return n < 0 || (size_t)n >= cap ? CV_E2BIG : CV_OK;
}

/* ------------------------------------------------------------------ manifest */

static int cv2_json_size(json_t *obj, const char *a, const char *b, size_t *out, const char *path, char *err,
			 size_t errlen)
{
	json_t *v = json_object_get(obj, a);
	if (v && b)
		v = json_object_get(v, b);
	if (!json_is_integer(v) || json_integer_value(v) <= 0) {
		cv_errf(err, errlen,
			"%s: missing or bad \"%s%s%s\" (re-export the bundle with tools/export.py)", path, a,
			b ? "." : "", b ? b : "");
		return CV_EINVAL;
	}
	*out = (size_t)json_integer_value(v);
	return CV_OK;
}

/* Hash every file the manifest lists and compare sizes and sha256. */
static int cv2_check_files(const char *dir, json_t *files, const char *mpath, char *err, size_t errlen)
{
	const char *rel;
	json_t *info;
	char path[CV2_PATH_MAX], hex[SHA256_HEX_LEN + 1], herr[256];

	if (!json_is_object(files) || json_object_size(files) == 0) {
		cv_errf(err, errlen, "%s: no \"files\" table (re-export the bundle with tools/export.py)",
			mpath);
		return CV_EINVAL;
	}
	json_object_foreach(files, rel, info)
	{
		const char *want = json_string_value(json_object_get(info, "sha256"));
		json_t *bytes = json_object_get(info, "bytes");
		struct stat st;
		int rc;

		if (strstr(rel, "..") || rel[0] == '/') {
			cv_errf(err, errlen, "%s: file entry '%s' leaves the bundle", mpath, rel);
			return CV_EINVAL;
		}
		if (cv2_path(path, sizeof path, dir, rel) != CV_OK || stat(path, &st) != 0) {
			cv_errf(
			    err, errlen,
			    "missing file: %s (the bundle is incomplete: re-export it with `make bundle`)",
			    path);
			return CV_EIO;
		}
		if (json_is_integer(bytes) && (json_int_t)st.st_size != json_integer_value(bytes)) {
			cv_errf(
			    err, errlen,
			    "size mismatch: %s has %lld bytes, the manifest says %lld (file changed after "
			    "export: re-export the bundle)",
			    path, (long long)st.st_size, (long long)json_integer_value(bytes));
			return CV_EINVAL;
		}
		rc = sha256_file_hex(path, hex, herr, sizeof herr);
		if (rc != CV_OK) {
			cv_errf(err, errlen, "%s", herr);
			return rc;
		}
		if (!want || strcmp(want, hex) != 0) {
			cv_errf(
			    err, errlen,
			    "sha256 mismatch: %s (manifest %.12s..., file %.12s...): the file changed after "
			    "export; re-export the bundle (make bundle) or restore the file",
			    path, want ? want : "(none)", hex);
			return CV_EINVAL;
		}
	}
	return CV_OK;
}

/* ------------------------------------------------------------------ speakers */

static void cv2_speaker_clear(struct cv2_speaker *s)
{
	free(s->id);
	free(s->name);
	if (s->owner) {
		free(s->prompt_text);
		free(s->prompt_tokens);
		free(s->prompt_mel);
		free(s->embedding);
	}
	memset(s, 0, sizeof *s);
}

static int cv2_speaker_load(struct cv2 *m, const char *name, const char *rel, struct cv2_speaker *s,
			    char *err, size_t errlen)
{
	char path[CV2_PATH_MAX], e2[256];
	struct safetensors *st = NULL;
	int64_t shape[SAFETENSORS_MAX_DIMS];
	int64_t any1[1] = {-1}, mel_shape[2] = {-1, (int64_t)m->mel_bins},
		emb_shape[1] = {(int64_t)m->spk_dim};
	const char *fmt;
	int rc;

	memset(s, 0, sizeof *s);
	s->owner = 1;
	if (cv2_path(path, sizeof path, m->dir, rel) != CV_OK) {
		cv_errf(err, errlen, "speaker '%s': path too long", name);
		return CV_E2BIG;
	}
	rc = safetensors_open(path, NULL, &st, e2, sizeof e2);
	if (rc != CV_OK)
		goto fail;
	fmt = safetensors_metadata(st, "format");
	if (!fmt || strcmp(fmt, "cosyvoiced-speaker") != 0) {
		snprintf(e2, sizeof e2, "not a cosyvoiced-speaker file (metadata format '%s')",
			 fmt ? fmt : "");
		rc = CV_EINVAL;
		goto fail;
	}
	rc = safetensors_read_i32(st, "prompt_text", 1, any1, &s->prompt_text, shape, e2, sizeof e2);
	if (rc != CV_OK)
		goto fail;
	s->n_prompt_text = (size_t)shape[0];
	rc = safetensors_read_i32(st, "prompt_speech_tokens", 1, any1, &s->prompt_tokens, shape, e2,
				  sizeof e2);
	if (rc != CV_OK)
		goto fail;
	s->n_prompt_tokens = (size_t)shape[0];
	rc = safetensors_read_f32(st, "prompt_mel", 2, mel_shape, &s->prompt_mel, shape, e2, sizeof e2);
	if (rc != CV_OK)
		goto fail;
	s->n_prompt_mel = (size_t)shape[0];
	rc = safetensors_read_f32(st, "embedding", 1, emb_shape, &s->embedding, shape, e2, sizeof e2);
	if (rc != CV_OK)
		goto fail;
	if (s->n_prompt_mel != 2 * s->n_prompt_tokens) {
		snprintf(e2, sizeof e2, "prompt_mel has %zu frames for %zu prompt tokens (want 2 per token)",
			 s->n_prompt_mel, s->n_prompt_tokens);
		rc = CV_EINVAL;
		goto fail;
	}
	for (size_t i = 0; i < s->n_prompt_tokens; i++) {
		if (s->prompt_tokens[i] < 0 || (size_t)s->prompt_tokens[i] >= SAMPLER_SPEECH_TOKENS) {
			snprintf(e2, sizeof e2, "prompt speech token %d out of range", s->prompt_tokens[i]);
			rc = CV_EINVAL;
			goto fail;
		}
	}
	s->sft = s->n_prompt_tokens == 0;
	s->name = xstrdup(name);
	s->id = xstrdup(name);
	safetensors_free(st);
	return CV_OK;
fail:
	cv_errf(err, errlen, "speaker '%s' (%s): %s (re-add it with tools/add_speaker.py)", name, path, e2);
	safetensors_free(st);
	cv2_speaker_clear(s);
	return rc;
}

static int cv2_speaker_cmp(const void *a, const void *b)
{
	const struct cv2_speaker *x = a, *y = b;
	return strcmp(x->id, y->id);
}

static int cv2_load_speakers(struct cv2 *m, json_t *spk, const char *default_id, char *err, size_t errlen)
{
	const char *name;
	json_t *rel;
	size_t cap, n = 0;
	int rc;

	if (!json_is_object(spk) || json_object_size(spk) == 0) {
		cv_errf(err, errlen,
			"%s/manifest.json: the bundle has no speakers (add one with tools/add_speaker.py)",
			m->dir);
		return CV_EINVAL;
	}
	cap = 2 * json_object_size(spk);
	m->spk = xcalloc(cap, sizeof *m->spk);
	json_object_foreach(spk, name, rel)
	{
		if (!json_is_string(rel)) {
			cv_errf(err, errlen, "%s/manifest.json: speaker '%s' has no file", m->dir, name);
			return CV_EINVAL;
		}
		rc = cv2_speaker_load(m, name, json_string_value(rel), &m->spk[n], err, errlen);
		if (rc != CV_OK)
			return rc;
		m->n_spk = ++n;
	}
	/* Cross-lingual variants of the zero-shot voices share the arrays. */
	for (size_t i = 0, base = n; i < base; i++) {
		struct cv2_speaker *s = &m->spk[i], *x;
		size_t len;
		if (s->sft)
			continue;
		x = &m->spk[n++];
		*x = *s;
		x->owner = 0;
		x->cross_lingual = 1;
		x->name = xstrdup(s->name);
		len = strlen(s->name) + sizeof COSYVOICE2_XL_SUFFIX;
		x->id = xmalloc(len);
		snprintf(x->id, len, "%s%s", s->name, COSYVOICE2_XL_SUFFIX);
		m->n_spk = n;
	}
	m->n_spk = n;
	qsort(m->spk, n, sizeof *m->spk, cv2_speaker_cmp);
	m->espk = xcalloc(n, sizeof *m->espk);
	for (size_t i = 0; i < n; i++) {
		m->espk[i].id = m->spk[i].id;
		m->espk[i].name = m->spk[i].id;
		m->espk[i].language = "multi";
	}
	m->default_spk = 0;
	if (default_id && default_id[0]) {
		size_t i;
		for (i = 0; i < n && strcmp(m->spk[i].id, default_id) != 0; i++)
			;
		if (i == n) {
			cv_errf(err, errlen, "default speaker '%s' is not in the bundle %s", default_id,
				m->dir);
			return CV_ENOTFOUND;
		}
		m->default_spk = i;
	} else {
		/* Prefer a zero-shot voice (full prompt) as the default. */
		for (size_t i = 0; i < n; i++) {
			if (!m->spk[i].sft && !m->spk[i].cross_lingual) {
				m->default_spk = i;
				break;
			}
		}
	}
	return CV_OK;
}

static const struct cv2_speaker *cv2_speaker_find(const struct cv2 *m, const char *id)
{
	if (!id || !id[0])
		return &m->spk[m->default_spk];
	for (size_t i = 0; i < m->n_spk; i++)
		if (strcmp(m->spk[i].id, id) == 0)
			return &m->spk[i];
	for (size_t i = 0; i < m->n_spk; i++)
		if (strcasecmp(m->spk[i].id, id) == 0)
			return &m->spk[i];
	return NULL;
}

/* ------------------------------------------------------------------ open */

void cv2_free(struct cv2 *m)
{
	if (!m)
		return;
	torch_runtime_free(m->rt);
	frontend_free(m->fe);
	for (size_t i = 0; i < m->n_spk; i++)
		cv2_speaker_clear(&m->spk[i]);
	/* entries past n_spk may hold a half-loaded speaker: cleared on failure */
	free(m->spk);
	free(m->espk);
	free(m->logp);
	cv2_hift_cache_free(&m->hc);
	free(m);
}

static int cv2_probe_memory(struct cv2 *m, char *err, size_t errlen);

int cv2_open(const struct engine_config *cfg, struct cv2 **out, char *err, size_t errlen)
{
	char mpath[CV2_PATH_MAX], path[CV2_PATH_MAX];
	json_error_t je;
	json_t *man = NULL, *v;
	struct cv2 *m = NULL;
	const char *s, *dtype;
	size_t fv;
	int rc = CV_EINVAL;
	int64_t t0 = clock_now_ns(), t1;

	*out = NULL;
	if (!cfg || !cfg->model_dir || !cfg->model_dir[0]) {
		cv_errf(err, errlen,
			"cosyvoice2 needs a bundle directory (--model-dir DIR; make one with `make bundle`)");
		return CV_EINVAL;
	}
	m = xcalloc(1, sizeof *m);
	cv_strlcpy(m->dir, cfg->model_dir, sizeof m->dir);
	if (cv2_path(mpath, sizeof mpath, m->dir, "manifest.json") != CV_OK) {
		cv_errf(err, errlen, "bundle directory name too long");
		goto fail;
	}
	{
		struct stat st;
		if (stat(m->dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
			cv_errf(err, errlen, "bundle directory %s: %s", m->dir,
				errno ? strerror(errno) : "not a directory");
			rc = CV_EIO;
			goto fail;
		}
		if (stat(mpath, &st) != 0) {
			cv_errf(err, errlen,
				"missing file: %s (not a CosyVoice2 bundle: export one with `make bundle "
				"SRC=<model dir> OUT=%s`)",
				mpath, m->dir);
			rc = CV_EIO;
			goto fail;
		}
	}
	man = json_load_file(mpath, JSON_REJECT_DUPLICATES, &je);
	if (!man || !json_is_object(man)) {
		cv_errf(err, errlen, "%s: invalid JSON (line %d: %s); re-export the bundle", mpath, je.line,
			je.text);
		goto fail;
	}
	s = json_string_value(json_object_get(man, "format"));
	v = json_object_get(man, "format_version");
	if (!s || strcmp(s, COSYVOICE2_FORMAT) != 0) {
		cv_errf(err, errlen, "%s: format '%s' is not %s (not a bundle written by tools/export.py)",
			mpath, s ? s : "(none)", COSYVOICE2_FORMAT);
		goto fail;
	}
	if (!json_is_integer(v) || json_integer_value(v) != COSYVOICE2_FORMAT_VERSION) {
		cv_errf(
		    err, errlen,
		    "%s: bundle format_version %s; this daemon reads version %d: re-export the bundle with "
		    "this release's tools/export.py (make bundle)",
		    mpath, json_is_integer(v) ? "is not 1" : "(missing)", COSYVOICE2_FORMAT_VERSION);
		goto fail;
	}
	s = json_string_value(json_object_get(man, "torch_version"));
	{
		const char *have = torch_runtime_build_version();
		if (!s || (have[0] && !torch_runtime_version_matches(s))) {
			cv_errf(
			    err, errlen,
			    "%s: written by torch %s but this daemon's libtorch plugin is built for torch "
			    "%s: re-export the bundle with that torch (make bundle ..., or the host's "
			    "python3 tools/export.py)",
			    mpath, s ? s : "(unknown)", have);
			goto fail;
		}
	}
	dtype = json_string_value(json_object_get(man, "dtype"));
	if (!dtype ||
	    (strcmp(dtype, "fp32") != 0 && strcmp(dtype, "fp16") != 0 && strcmp(dtype, "bf16") != 0)) {
		cv_errf(err, errlen, "%s: dtype '%s' (want fp32, fp16 or bf16)", mpath,
			dtype ? dtype : "(none)");
		goto fail;
	}
	snprintf(m->dtype, sizeof m->dtype, "%s", dtype);
	if ((rc = cv2_json_size(man, "sample_rate", NULL, &fv, mpath, err, errlen)) != CV_OK)
		goto fail;
	m->sample_rate = (int)fv;
	if ((rc = cv2_json_size(man, "tokens", "speech_vocab", &m->vocab, mpath, err, errlen)) != CV_OK ||
	    (rc = cv2_json_size(man, "flow", "mel_bins", &m->mel_bins, mpath, err, errlen)) != CV_OK ||
	    (rc = cv2_json_size(man, "flow", "spk_embed_dim", &m->spk_dim, mpath, err, errlen)) != CV_OK ||
	    (rc = cv2_json_size(man, "hift", "samples_per_frame", &m->samples_per_frame, mpath, err,
				errlen)) != CV_OK ||
	    (rc = cv2_json_size(man, "hift", "nb_harmonics", &m->nb_harmonics, mpath, err, errlen)) != CV_OK)
		goto fail;
	rc = CV_EINVAL;
	if (m->vocab != SAMPLER_VOCAB || m->samples_per_frame != CV2_STREAM_SAMPLES_PER_FRAME ||
	    m->sample_rate != 24000) {
		cv_errf(err, errlen,
			"%s: speech_vocab %zu / samples_per_frame %zu / sample_rate %d are not CosyVoice2's "
			"(6564 / 480 / 24000)",
			mpath, m->vocab, m->samples_per_frame, m->sample_rate);
		goto fail;
	}
	v = json_object_get(json_object_get(json_object_get(man, "tokens"), "text_special"),
			    COSYVOICE2_ENDOFPROMPT);
	m->endofprompt_id = json_is_integer(v) ? (int32_t)json_integer_value(v) : 151646;
	s = json_string_value(json_object_get(man, "model"));
	if (!s || !json_object_get(json_object_get(man, "files"), s)) {
		cv_errf(err, errlen, "%s: the model file is not listed in \"files\"; re-export the bundle",
			mpath);
		goto fail;
	}
	rc = cv2_check_files(m->dir, json_object_get(man, "files"), mpath, err, errlen);
	if (rc != CV_OK)
		goto fail;

	sampler_params_default(&m->sp);
	{
		json_t *smp = json_object_get(json_object_get(man, "llm"), "sampling");
		json_t *x;
		if ((x = json_object_get(smp, "top_p")) && json_is_number(x))
			m->sp.top_p = json_number_value(x);
		if ((x = json_object_get(smp, "top_k")) && json_is_integer(x))
			m->sp.top_k = (int)json_integer_value(x);
		if ((x = json_object_get(smp, "win_size")) && json_is_integer(x))
			m->sp.win_size = (int)json_integer_value(x);
		if ((x = json_object_get(smp, "tau_r")) && json_is_number(x))
			m->sp.tau_r = json_number_value(x);
	}

	{
		struct frontend_limits lim = {0, 0, cfg->split_max_tokens};
		rc = frontend_open_dir(m->dir, &lim, &m->fe, err, errlen);
		if (rc != CV_OK)
			goto fail;
	}
	rc = cv2_load_speakers(m, json_object_get(man, "speakers"), cfg->default_speaker, err, errlen);
	if (rc != CV_OK)
		goto fail;

	m->logp = xmalloc(m->vocab * sizeof *m->logp);
	cv2_hift_cache_init(&m->hc, m->mel_bins);
	{
		struct torch_runtime_config rc_cfg = {0};
		const char *g;
		if (cv2_path(path, sizeof path, m->dir, json_string_value(json_object_get(man, "model"))) !=
		    CV_OK) {
			cv_errf(err, errlen, "bundle directory name too long");
			rc = CV_E2BIG;
			goto fail;
		}
		rc_cfg.model_path = path;
		rc_cfg.device = cfg->device && cfg->device[0] ? cfg->device : "cpu";
		rc_cfg.threads = cfg->threads;
		rc_cfg.torch_lib = cfg->torch_lib;
		rc_cfg.dtype = dtype;
		rc_cfg.allow_half_cpu = cfg->cpu_half;
		rc_cfg.cuda_memory_limit_mb = cfg->cuda_memory_limit_mb;
		rc_cfg.cuda_graph = cfg->cuda_graph;
		/* test-only switches: CVTEST_* (never COSYVOICED_*, which the config owns) */
		g = getenv("CVTEST_JIT_OPTIMIZE");
		rc_cfg.jit_optimize = g && strcmp(g, "1") == 0;
		g = getenv("CVTEST_STATIC_DECODE");
		rc_cfg.static_decode = g && strcmp(g, "1") == 0;
		rc_cfg.fault = getenv("CVTEST_FAULT");
		rc = torch_runtime_open(&rc_cfg, &m->rt, err, errlen);
		if (rc != CV_OK)
			goto fail;
	}
	m->max_positions = cfg->llm_max_positions ? cfg->llm_max_positions : CV2_DEFAULT_MAX_POSITIONS;
	if (cfg->memory_budget_mb < 0) {
		/* auto: a 4 GB card keeps ~1 GB for the CUDA context (and never more than the
		 * allocator cap); on the CPU, leave 10% of RAM */
		long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
		double cuda = CV2_AUTO_BUDGET_CUDA_MB;
		if (cfg->cuda_memory_limit_mb > 0 && (double)cfg->cuda_memory_limit_mb < cuda)
			cuda = (double)cfg->cuda_memory_limit_mb;
		m->budget = torch_runtime_is_cuda(m->rt) ? cuda * CV2_MIB
			    : pages > 0 && psz > 0	 ? 0.9 * (double)pages * (double)psz
							 : 0;
	} else {
		m->budget = (double)cfg->memory_budget_mb * CV2_MIB;
	}
	rc = torch_runtime_llm_begin(m->rt, m->max_positions, err, errlen);
	if (rc != CV_OK)
		goto fail;
	rc = cv2_probe_memory(m, err, errlen);
	if (rc != CV_OK)
		goto fail;
	torch_runtime_fault_arm(m->rt);
	t1 = clock_now_ns();
	snprintf(m->describe, sizeof m->describe,
		 "CosyVoice2 bundle %.120s (%s, %s, libtorch %s, %zu speakers)", m->dir, dtype,
		 torch_runtime_device(m->rt), torch_runtime_version(), m->n_spk);
	log_info("cosyvoice2", "loaded %s in %.0f ms; LLM decode: %s; KV cache %zu positions", m->describe,
		 clock_ms_between(t0, t1), torch_runtime_decode_mode(m->rt), m->max_positions);
	json_decref(man);
	*out = m;
	return CV_OK;
fail:
	json_decref(man);
	cv2_free(m);
	return rc;
}

/* ------------------------------------------------------------------ pipeline */

static int cv2_cancelled(const struct engine_sink *sink)
{
	return sink && sink->cancelled && sink->cancelled(sink->user);
}

static int cv2_emit(struct cv2_run *run, const float *pcm, size_t n)
{
	if (!n)
		return CV_OK;
	if (!run->first_written) {
		run->first_written = 1;
		run->ttfa_ms = clock_ms_between(run->t0, clock_now_ns());
	}
	if (run->sink->write(run->sink->user, pcm, n) != 0)
		return CV_ECANCELED;
	return CV_OK;
}

/* A model output with NaN or inf fails the sentence (HTTP 500, engine_errors_total) instead of
 * reaching the sampler or the client as noise: in an fp16 bundle that means a value left fp16's
 * range (|x| > 65504), which bf16 (same range as fp32) or fp32 avoids. */
static int cv2_check_finite(const struct cv2 *m, const float *v, size_t n, const char *what, char *err,
			    size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		if (!isfinite(v[i])) {
			cv_errf(err, errlen,
				"numeric overflow: %s returned a non-finite value (%s at index %zu)%s", what,
				isnan(v[i]) ? "NaN" : "inf", i,
				strcmp(m->dtype, "fp16") == 0
				    ? "; an fp16 bundle exceeded fp16's range: export with --dtype bf16 "
				      "(Ampere or newer) or fp32"
				    : "");
			return CV_EENGINE;
		}
	}
	return CV_OK;
}

/* HiFT on mel[mel_bins][t]; with zero noise when the run asks for it. */
static int cv2_vocode(struct cv2 *m, struct cv2_run *run, const float *mel, size_t t,
		      const float *cache_source, size_t n_cache, float **speech, size_t *n_speech,
		      float **source, size_t *n_source, char *err, size_t errlen)
{
	float *noise = NULL;
	size_t n_noise = 0;
	int64_t a = clock_now_ns();
	int rc;

	if (run->zero_noise) {
		n_noise = t * m->samples_per_frame * (m->nb_harmonics + 1);
		noise = calloc(n_noise ? n_noise : 1, sizeof *noise);
		if (!noise) {
			cv_errf(err, errlen, "out of memory (vocoder noise)");
			return CV_ENOMEM;
		}
	}
	rc = torch_runtime_hift(m->rt, mel, m->mel_bins, t, cache_source, n_cache, noise, n_noise, speech,
				n_speech, source, n_source, err, errlen);
	free(noise);
	if (rc == CV_OK)
		rc = cv2_check_finite(m, *speech, *n_speech, "hift_inference", err, errlen);
	run->voc_ms += clock_ms_between(a, clock_now_ns());
	return rc;
}

static int cv2_flow(struct cv2 *m, struct cv2_run *run, const struct cv2_speaker *spk, const int32_t *tokens,
		    size_t n, int streaming, int finalize, float **mel, size_t *frames, char *err,
		    size_t errlen)
{
	struct torch_runtime_flow_args a = {0};
	int64_t t = clock_now_ns();
	int rc;

	a.tokens = tokens;
	a.n_tokens = n;
	a.prompt_tokens = spk->prompt_tokens;
	a.n_prompt_tokens = spk->n_prompt_tokens;
	a.prompt_feat = spk->prompt_mel;
	a.n_prompt_feat = spk->n_prompt_mel;
	a.embedding = spk->embedding;
	a.spk_dim = m->spk_dim;
	a.mel_bins = m->mel_bins;
	a.streaming = streaming;
	a.finalize = finalize;
	rc = torch_runtime_flow(m->rt, &a, mel, frames, err, errlen);
	run->flow_ms += clock_ms_between(t, clock_now_ns());
	if (rc == CV_OK)
		rc = cv2_check_finite(m, *mel, *frames * m->mel_bins, "flow_inference", err, errlen);
	return rc;
}

/* One streaming chunk (docs/cosyvoice2.md §6.3): flow on the prefix, keep the new frames,
 * HiFT with the cache, cross-fade, emit. */
static int cv2_stream_chunk(struct cv2 *m, struct cv2_run *run, const struct cv2_speaker *spk,
			    const int32_t *tokens, const struct cv2_stream_chunk *ch, char *err,
			    size_t errlen)
{
	float *mel = NULL, *sub = NULL, *in = NULL, *speech = NULL, *source = NULL;
	size_t frames = 0, t_new, t_in = 0, n_speech = 0, n_source = 0, emit = 0;
	int rc;

	rc = cv2_flow(m, run, spk, tokens, ch->n_tokens, ch->streaming, ch->finalize, &mel, &frames, err,
		      errlen);
	if (rc != CV_OK)
		goto out;
	if (frames < ch->mel_skip + (ch->finalize ? 1 : ch->mel_new)) {
		cv_errf(err, errlen, "flow returned %zu mel frames, chunk needs %zu..%zu", frames,
			ch->mel_skip, ch->mel_skip + ch->mel_new);
		rc = CV_EENGINE;
		goto out;
	}
	t_new = ch->finalize ? frames - ch->mel_skip : ch->mel_new;
	sub = malloc(m->mel_bins * t_new * sizeof *sub);
	if (!sub) {
		rc = CV_ENOMEM;
		cv_errf(err, errlen, "out of memory (mel chunk)");
		goto out;
	}
	for (size_t c = 0; c < m->mel_bins; c++)
		memcpy(sub + c * t_new, mel + c * frames + ch->mel_skip, t_new * sizeof *sub);
	rc = cv2_hift_cache_mel_input(&m->hc, sub, t_new, &in, &t_in);
	if (rc != CV_OK) {
		cv_errf(err, errlen, "out of memory (HiFT input)");
		goto out;
	}
	rc = cv2_vocode(m, run, in, t_in, m->hc.valid ? m->hc.source : NULL,
			m->hc.valid ? CV2_STREAM_SOURCE_CACHE : 0, &speech, &n_speech, &source, &n_source,
			err, errlen);
	if (rc != CV_OK)
		goto out;
	rc = cv2_hift_cache_update(&m->hc, in, t_in, speech, n_speech, source, n_source, ch->finalize, &emit);
	if (rc != CV_OK) {
		cv_errf(err, errlen, "streaming chunk %zu too short for the HiFT cache (%zu samples)",
			ch->index, n_speech);
		goto out;
	}
	rc = cv2_emit(run, speech, emit);
out:
	free(mel);
	free(sub);
	free(in);
	free(speech);
	free(source);
	return rc;
}

/* Buffered token2wav (docs/cosyvoice2.md §6.2): flow (full attention), speed, HiFT. */
static int cv2_buffered(struct cv2 *m, struct cv2_run *run, const struct cv2_speaker *spk,
			const int32_t *tokens, size_t n, double speed, char *err, size_t errlen)
{
	float *mel = NULL, *fast = NULL, *speech = NULL;
	size_t frames = 0, n_speech = 0;
	int rc;

	rc = cv2_flow(m, run, spk, tokens, n, 0, 1, &mel, &frames, err, errlen);
	if (rc != CV_OK)
		goto out;
	if (speed != 1.0) {
		size_t t2 = 0;
		rc = cv2_stream_speed_mel(mel, m->mel_bins, frames, speed, &fast, &t2);
		if (rc != CV_OK) {
			cv_errf(err, errlen, "speed %.3g: cannot resample %zu mel frames", speed, frames);
			goto out;
		}
		free(mel);
		mel = fast;
		fast = NULL;
		frames = t2;
	}
	rc = cv2_vocode(m, run, mel, frames, NULL, 0, &speech, &n_speech, NULL, NULL, err, errlen);
	if (rc != CV_OK)
		goto out;
	rc = cv2_emit(run, speech, n_speech);
out:
	free(mel);
	free(fast);
	free(speech);
	return rc;
}

struct cv2_sentence {
	const struct cv2_speaker *spk;
	const int32_t *text_ids;
	size_t n_text;
	const int32_t *instruct_ids;
	size_t n_instruct;
	int stream;
	double speed;
	int run_flow; /* 0: LLM only (cv2_llm_generate) */
};

/* LLM prompt layout (docs/cosyvoice2.md §2.4 / §3.3): instruct2 puts the instruction in
 * the prompt text and no prompt speech; zero-shot uses the speaker's prompt
 * text and speech; cross-lingual and SFT voices have no LLM prompt. */
struct cv2_prompt {
	const int32_t *text, *speech;
	size_t n_text, n_speech;
};

static struct cv2_prompt cv2_prompt_layout(const struct cv2_speaker *spk, const int32_t *instruct_ids,
					   size_t n_instruct)
{
	struct cv2_prompt p = {NULL, NULL, 0, 0};
	if (instruct_ids) {
		p.text = instruct_ids;
		p.n_text = n_instruct;
	} else if (!spk->sft && !spk->cross_lingual) {
		p.text = spk->prompt_text;
		p.n_text = spk->n_prompt_text;
		p.speech = spk->prompt_tokens;
		p.n_speech = spk->n_prompt_tokens;
	}
	return p;
}

/* KV-cache positions a sentence of n_text ids needs at the LLM's maximum length. */
static size_t cv2_positions(const struct cv2_prompt *p, size_t n_text)
{
	return p->n_text + n_text + p->n_speech + 2 + sampler_max_len(n_text);
}

/* One sentence: LLM (prompt layout §3.3, lengths §3.4, sampling §3.5) with
 * streaming chunks cut as soon as they are due, then the final/buffered
 * token2wav. *tokens_out (optional) receives the generated tokens. */
static int cv2_sentence_run(struct cv2 *m, struct cv2_run *run, const struct cv2_sentence *se,
			    int32_t **tokens_out, size_t *n_out, char *err, size_t errlen)
{
	const struct cv2_speaker *spk = se->spk;
	struct cv2_prompt pr = cv2_prompt_layout(spk, se->instruct_ids, se->n_instruct);
	const int32_t *ptext = pr.text, *pspeech = pr.speech;
	size_t n_ptext = pr.n_text, n_pspeech = pr.n_speech, min_len, max_len, n = 0, pos;
	int32_t *text = NULL, *tokens = NULL;
	struct cv2_stream_sched sched;
	struct cv2_stream_chunk ch;
	int64_t a;
	int rc;

	if (se->n_text == 0) {
		cv_errf(err, errlen, "empty sentence");
		return CV_EINVAL;
	}
	min_len = sampler_min_len(se->n_text);
	max_len = sampler_max_len(se->n_text);
	text = malloc((n_ptext + se->n_text) * sizeof *text);
	tokens = malloc((max_len ? max_len : 1) * sizeof *tokens);
	if (!text || !tokens) {
		cv_errf(err, errlen, "out of memory (sentence of %zu ids)", se->n_text);
		rc = CV_ENOMEM;
		goto out;
	}
	if (n_ptext)
		memcpy(text, ptext, n_ptext * sizeof *text);
	memcpy(text + n_ptext, se->text_ids, se->n_text * sizeof *text);
	cv2_stream_sched_init(&sched, spk->n_prompt_tokens);
	cv2_hift_cache_reset(&m->hc);

	rc = torch_runtime_llm_begin(m->rt, cv2_positions(&pr, se->n_text), err, errlen);
	if (rc != CV_OK)
		goto out;
	a = clock_now_ns();
	rc = torch_runtime_llm_prefill(m->rt, text, n_ptext + se->n_text, pspeech, n_pspeech, m->logp,
				       m->vocab, err, errlen);
	run->prefill_ms += clock_ms_between(a, clock_now_ns());
	if (rc == CV_OK)
		rc = cv2_check_finite(m, m->logp, m->vocab, "llm_prefill", err, errlen);
	if (rc != CV_OK)
		goto out;
	pos = n_ptext + se->n_text + n_pspeech + 2;
	for (size_t i = 0; i < max_len; i++) {
		int32_t tok;
		struct sampler_params sp = m->sp;

		if (cv2_cancelled(run->sink)) {
			rc = CV_ECANCELED;
			goto out;
		}
		sp.greedy = run->greedy;
		rc = sampler_ras(m->logp, m->vocab, tokens, n, &sp, &run->rng, i < min_len, &tok);
		if (rc != CV_OK) {
			cv_errf(err, errlen, "sampling failed at step %zu (non-finite log-probabilities?)",
				i);
			rc = CV_EENGINE;
			goto out;
		}
		if (sampler_is_stop(&sp, tok))
			break;
		tokens[n++] = tok;
		if (se->stream && se->run_flow) {
			while (cv2_stream_sched_next(&sched, n, 0, &ch)) {
				rc = cv2_stream_chunk(m, run, spk, tokens, &ch, err, errlen);
				if (rc != CV_OK)
					goto out;
				if (cv2_cancelled(run->sink)) {
					rc = CV_ECANCELED;
					goto out;
				}
			}
		}
		if (i + 1 == max_len)
			break;
		a = clock_now_ns();
		rc = torch_runtime_llm_decode(m->rt, tok, pos++, m->logp, m->vocab, err, errlen);
		run->decode_ms += clock_ms_between(a, clock_now_ns());
		run->n_decoded++;
		if (rc == CV_OK)
			rc = cv2_check_finite(m, m->logp, m->vocab, "llm_decode", err, errlen);
		if (rc != CV_OK)
			goto out;
	}
	if (se->run_flow && n == 0) {
		cv_errf(err, errlen, "the LLM produced no speech tokens");
		rc = CV_EENGINE;
		goto out;
	}
	if (se->run_flow) {
		if (se->stream) {
			while (cv2_stream_sched_next(&sched, n, 1, &ch)) {
				rc = cv2_stream_chunk(m, run, spk, tokens, &ch, err, errlen);
				if (rc != CV_OK)
					goto out;
				if (cv2_cancelled(run->sink)) {
					rc = CV_ECANCELED;
					goto out;
				}
			}
		} else {
			rc = cv2_buffered(m, run, spk, tokens, n, se->speed, err, errlen);
			if (rc != CV_OK)
				goto out;
		}
	}
	if (tokens_out) {
		*tokens_out = tokens;
		*n_out = n;
		tokens = NULL;
	}
	rc = CV_OK;
out:
	free(text);
	free(tokens);
	return rc;
}

static void cv2_run_init(struct cv2 *m, struct cv2_run *run, const struct engine_sink *sink, uint64_t seed)
{
	memset(run, 0, sizeof *run);
	run->sink = sink;
	run->t0 = clock_now_ns();
	sampler_rng_seed(&run->rng, seed);
	torch_runtime_seed(m->rt, seed);
}

static int cv2_null_write(void *user, const float *pcm, size_t n)
{
	(void)user;
	(void)pcm;
	(void)n;
	return 0;
}

int cv2_llm_generate(struct cv2 *m, const struct cv2_llm_request *r, int32_t **tokens, size_t *n_tokens,
		     char *err, size_t errlen)
{
	struct engine_sink sink = {cv2_null_write, NULL, NULL};
	struct cv2_sentence se = {0};
	struct cv2_run run;

	*tokens = NULL;
	*n_tokens = 0;
	se.spk = cv2_speaker_find(m, r->speaker);
	if (!se.spk) {
		cv_errf(err, errlen, "unknown speaker '%s'", r->speaker);
		return CV_ENOTFOUND;
	}
	se.text_ids = r->text_ids;
	se.n_text = r->n_text;
	se.instruct_ids = r->instruct_ids;
	se.n_instruct = r->n_instruct;
	se.speed = 1.0;
	cv2_run_init(m, &run, &sink, r->seed);
	run.greedy = r->greedy;
	return cv2_sentence_run(m, &run, &se, tokens, n_tokens, err, errlen);
}

int cv2_token2wav(struct cv2 *m, const char *speaker, const int32_t *tokens, size_t n_tokens, int stream,
		  double speed, int zero_noise, const struct engine_sink *sink, char *err, size_t errlen)
{
	const struct cv2_speaker *spk = cv2_speaker_find(m, speaker);
	struct cv2_run run;
	struct cv2_stream_sched sched;
	struct cv2_stream_chunk ch;
	int rc;

	if (!spk) {
		cv_errf(err, errlen, "unknown speaker '%s'", speaker);
		return CV_ENOTFOUND;
	}
	if (!n_tokens) {
		cv_errf(err, errlen, "no tokens");
		return CV_EINVAL;
	}
	cv2_run_init(m, &run, sink, 0);
	run.zero_noise = zero_noise;
	if (!stream)
		return cv2_buffered(m, &run, spk, tokens, n_tokens, speed, err, errlen);
	cv2_stream_sched_init(&sched, spk->n_prompt_tokens);
	cv2_hift_cache_reset(&m->hc);
	for (int done = 0; done <= 1; done++) {
		while (cv2_stream_sched_next(&sched, n_tokens, done, &ch)) {
			rc = cv2_stream_chunk(m, &run, spk, tokens, &ch, err, errlen);
			if (rc != CV_OK)
				return rc;
		}
	}
	return CV_OK;
}

/* ------------------------------------------------------------------ memory guard */

/* Mel frames flow and HiFT see for n speech tokens with this speaker. */
static double cv2_frames(const struct cv2_speaker *spk, size_t n)
{
	return 2.0 * (double)(spk->n_prompt_tokens + n);
}

static double cv2_need(const struct cv2 *m, double frames)
{
	return m->mem_base + m->mem_a * frames + m->mem_b * frames * frames;
}

/* One buffered flow + HiFT run on n synthetic tokens; *work = peak - start. */
static int cv2_probe_one(struct cv2 *m, const struct cv2_speaker *spk, size_t n, double *work, char *err,
			 size_t errlen)
{
	struct engine_sink sink = {cv2_null_write, NULL, NULL};
	struct torch_runtime_usage u0, u1;
	struct cv2_run run;
	int32_t *tok = xmalloc(n * sizeof *tok);
	int rc;

	for (size_t i = 0; i < n; i++)
		tok[i] = (int32_t)((i * 2654435761u) % SAMPLER_SPEECH_TOKENS);
	torch_runtime_usage_reset(m->rt);
	rc = torch_runtime_usage(m->rt, &u0);
	cv2_run_init(m, &run, &sink, 0);
	if (rc == CV_OK)
		rc = cv2_buffered(m, &run, spk, tok, n, 1.0, err, errlen);
	if (rc == CV_OK)
		rc = torch_runtime_usage(m->rt, &u1);
	free(tok);
	if (rc != CV_OK)
		return rc;
	*work = u1.peak > u0.current ? u1.peak - u0.current : 0.0;
	return CV_OK;
}

/* Start-up measurement of the memory model (see the design note). */
static int cv2_probe_memory(struct cv2 *m, char *err, size_t errlen)
{
	const struct cv2_speaker *spk = &m->spk[m->default_spk];
	struct torch_runtime_usage u;
	/* CUDA: cheap, and long enough to see the quadratic term; CPU: linear
	 * model (see below), short probes keep the start-up short. */
	int cuda = torch_runtime_is_cuda(m->rt);
	size_t n1 = cuda ? 50 : 25, n2 = cuda ? 500 : 100;
	double w1 = 0, w2 = 0, t1 = cv2_frames(spk, n1), t2 = cv2_frames(spk, n2), dummy;
	int64_t a = clock_now_ns();
	int rc;

	if (m->budget <= 0)
		return CV_OK;
	/* The first run pays one-time costs (allocator pools, kernels): not measured. */
	if ((rc = cv2_probe_one(m, spk, cuda ? n2 : n1, &dummy, err, errlen)) != CV_OK ||
	    (rc = cv2_probe_one(m, spk, n1, &w1, err, errlen)) != CV_OK ||
	    (rc = cv2_probe_one(m, spk, n2, &w2, err, errlen)) != CV_OK) {
		log_warn("cosyvoice2", "memory probe failed: %s", err);
		return rc;
	}
	torch_runtime_usage_reset(m->rt);
	if (torch_runtime_usage(m->rt, &u) != CV_OK) {
		log_warn("cosyvoice2", "memory guard off: this platform reports no memory usage");
		return CV_OK;
	}
	m->mem_base = u.current;
	/* w = a*t + b*t^2 through both points (CUDA: the allocator's exact
	 * figures). The resident set is too noisy for a quadratic term (repeated
	 * start-ups gave 0..126 B/frame^2), so the CPU uses the larger per-frame
	 * ratio, linear; so does a negative coefficient (noise). */
	m->mem_b = (w2 / t2 - w1 / t1) / (t2 - t1);
	m->mem_a = w1 / t1 - m->mem_b * t1;
	if (!cuda || m->mem_b < 0 || m->mem_a < 0) {
		m->mem_b = 0;
		m->mem_a = w1 / t1 > w2 / t2 ? w1 / t1 : w2 / t2;
	}
	m->mem_valid = 1;
	log_info("cosyvoice2",
		 "memory model (%s, %.0f ms): base %.0f MiB (weights + KV cache), workspace %.1f KiB/frame + "
		 "%.3f B/frame^2 (probes %.0f and %.0f frames: %.1f and %.1f MiB); 30 s of audio -> %.0f MiB "
		 "of a %.0f MiB budget",
		 cuda ? "CUDA caching allocator" : "resident set", clock_ms_between(a, clock_now_ns()),
		 m->mem_base / CV2_MIB, m->mem_a / 1024.0, m->mem_b, t1, t2, w1 / CV2_MIB, w2 / CV2_MIB,
		 cv2_need(m, 1500.0 + cv2_frames(spk, 0)) / CV2_MIB, m->budget / CV2_MIB);
	if (m->mem_base > m->budget) {
		cv_errf(err, errlen,
			"the model needs %.0f MiB with its KV cache (llm_max_positions %zu), over "
			"memory_budget_mb %.0f: raise the budget, lower llm_max_positions or use an fp16 "
			"bundle on cuda",
			m->mem_base / CV2_MIB, m->max_positions, m->budget / CV2_MIB);
		return CV_EBUDGET;
	}
	return CV_OK;
}

double cv2_memory_predict(const struct cv2 *m, const char *speaker, size_t n_text)
{
	const struct cv2_speaker *spk = cv2_speaker_find(m, speaker);
	if (!spk || !m->mem_valid)
		return 0;
	return cv2_need(m, cv2_frames(spk, sampler_max_len(n_text)));
}

/* Before any audio: every sentence must fit the KV cache and the budget. */
static int cv2_check_sentence(const struct cv2 *m, const struct cv2_speaker *spk, size_t i, size_t n_sent,
			      size_t n_text, const int32_t *instr, size_t n_instr, char *err, size_t errlen)
{
	struct cv2_prompt pr = cv2_prompt_layout(spk, instr, n_instr);
	size_t max_len = sampler_max_len(n_text);
	size_t need_pos = cv2_positions(&pr, n_text);
	double need;

	if (need_pos > m->max_positions) {
		cv_errf(err, errlen,
			"sentence %zu of %zu (%zu text tokens) could need %zu LLM positions, over "
			"llm_max_positions %zu: split it with punctuation or raise llm_max_positions",
			i + 1, n_sent, n_text, need_pos, m->max_positions);
		return CV_E2BIG;
	}
	if (!m->mem_valid) /* no guard: memory_budget_mb 0, or nothing to measure with */
		return CV_OK;
	need = cv2_need(m, cv2_frames(spk, max_len));
	if (need > m->budget) {
		cv_errf(err, errlen,
			"memory: sentence %zu of %zu could need %.0f MiB (up to %.1f s of audio), over "
			"memory_budget_mb %.0f: shorten the sentence or raise the budget",
			i + 1, n_sent, need / CV2_MIB, (double)max_len / 25.0, m->budget / CV2_MIB);
		return CV_EBUDGET;
	}
	return CV_OK;
}

/* ------------------------------------------------------------------ backend */

static int cv2_be_open(const struct engine_config *cfg, void **impl, char *err, size_t errlen)
{
	struct cv2 *m = NULL;
	int rc = cv2_open(cfg, &m, err, errlen);
	*impl = m;
	return rc;
}

static void cv2_be_close(void *impl)
{
	cv2_free(impl);
}

static const char *cv2_be_name(void *impl)
{
	(void)impl;
	return "cosyvoice2";
}

static const char *cv2_be_describe(void *impl)
{
	return ((struct cv2 *)impl)->describe;
}

static int cv2_be_rate(void *impl)
{
	return ((struct cv2 *)impl)->sample_rate;
}

static size_t cv2_be_count(void *impl)
{
	return ((struct cv2 *)impl)->n_spk;
}

static const struct engine_speaker *cv2_be_at(void *impl, size_t i)
{
	struct cv2 *m = impl;
	return i < m->n_spk ? &m->espk[i] : NULL;
}

static const char *cv2_be_default(void *impl)
{
	struct cv2 *m = impl;
	return m->spk[m->default_spk].id;
}

/* Split "<instruction><|endofprompt|><text>"; returns the text part and the
 * instruction length (including the marker), or 0 when there is none. */
static const char *cv2_split_instruct(const char *text, size_t *instr_len)
{
	const char *p = strstr(text, COSYVOICE2_ENDOFPROMPT);

	*instr_len = 0;
	if (!p)
		return text;
	*instr_len = (size_t)(p - text) + strlen(COSYVOICE2_ENDOFPROMPT);
	return text + *instr_len;
}

static int cv2_be_synthesize(void *impl, const struct engine_params *p, const struct engine_sink *sink,
			     struct engine_timings *t, char *err, size_t errlen)
{
	struct cv2 *m = impl;
	struct frontend_result fr = {0}, ir = {0};
	struct cv2_run run;
	const struct cv2_speaker *spk;
	int32_t *instr = NULL;
	size_t n_instr = 0, ilen = 0;
	const char *body;
	uint64_t seed = p->seed;
	int64_t a;
	int rc;

	spk = cv2_speaker_find(m, p->speaker);
	if (!spk) {
		cv_errf(err, errlen, "unknown speaker '%s' (see GET /v1/speakers)", p->speaker);
		return CV_ENOTFOUND;
	}
	if (p->stream && p->speed != 1.0f) {
		cv_errf(err, errlen,
			"speed %.2f with stream=true: CosyVoice2 changes speed on the whole mel (buffered "
			"synthesis only, as the reference)",
			(double)p->speed);
		return CV_EINVAL;
	}
	if (!p->has_seed) {
		if (sampler_rng_seed_random(&run.rng, &seed) != CV_OK)
			seed = (uint64_t)clock_now_ns();
	}
	cv2_run_init(m, &run, sink, seed);

	a = clock_now_ns();
	body = cv2_split_instruct(p->text, &ilen);
	if (ilen) {
		/* instruct2 (docs/cosyvoice2.md §2.4): raw instruction ids ending in <|endofprompt|>. */
		size_t bl = ilen - strlen(COSYVOICE2_ENDOFPROMPT);
		rc = bl ? frontend_run(m->fe, p->text, bl, 0, &ir, err, errlen) : CV_OK;
		if (rc != CV_OK)
			goto out;
		for (size_t i = 0; i < ir.n; i++)
			n_instr += ir.s[i].n_ids;
		instr = malloc((n_instr + 1) * sizeof *instr);
		if (!instr) {
			rc = CV_ENOMEM;
			cv_errf(err, errlen, "out of memory (instruction)");
			goto out;
		}
		n_instr = 0;
		for (size_t i = 0; i < ir.n; i++) {
			memcpy(instr + n_instr, ir.s[i].ids, ir.s[i].n_ids * sizeof *instr);
			n_instr += ir.s[i].n_ids;
		}
		instr[n_instr++] = m->endofprompt_id;
	}
	rc = frontend_run(m->fe, body, strlen(body), p->normalize, &fr, err, errlen);
	engine_timings_set(t, "frontend", clock_ms_between(a, clock_now_ns()));
	if (rc != CV_OK)
		goto out;
	if (fr.n == 0) {
		cv_errf(err, errlen, "nothing speakable in the text");
		rc = CV_EINVAL;
		goto out;
	}
	for (size_t i = 0; i < fr.n; i++) {
		rc = cv2_check_sentence(m, spk, i, fr.n, fr.s[i].n_ids, instr, n_instr, err, errlen);
		if (rc != CV_OK)
			goto out;
	}
	for (size_t i = 0; i < fr.n; i++) {
		struct cv2_sentence se = {0};
		char e2[384];

		if (cv2_cancelled(sink)) {
			rc = CV_ECANCELED;
			goto out;
		}
		se.spk = spk;
		se.text_ids = fr.s[i].ids;
		se.n_text = fr.s[i].n_ids;
		se.instruct_ids = instr;
		se.n_instruct = n_instr;
		se.stream = p->stream;
		se.speed = p->speed > 0 ? p->speed : 1.0;
		se.run_flow = 1;
		if (se.n_text == 0)
			continue;
		/* Sentence i (from 0) runs with seed + i, so any sentence of a seeded
		 * request can be reproduced alone with seed + i as its seed. */
		if (i > 0) {
			sampler_rng_seed(&run.rng, seed + (uint64_t)i);
			torch_runtime_seed(m->rt, seed + (uint64_t)i);
		}
		e2[0] = '\0';
		rc = cv2_sentence_run(m, &run, &se, NULL, NULL, e2, sizeof e2);
		if (rc == CV_ECANCELED)
			goto out;
		if (rc != CV_OK) {
			cv_errf(err, errlen, "sentence %zu of %zu failed: %s", i + 1, fr.n, e2);
			log_warn("cosyvoice2", "sentence %zu of %zu failed: %s", i + 1, fr.n, e2);
			goto out;
		}
	}
	rc = CV_OK;
out:
	engine_timings_set(t, "llm_prefill", run.prefill_ms);
	engine_timings_set(t, "llm_decode_per_token",
			   run.n_decoded ? run.decode_ms / (double)run.n_decoded : 0.0);
	engine_timings_set(t, "llm", run.prefill_ms + run.decode_ms);
	engine_timings_set(t, "flow", run.flow_ms);
	engine_timings_set(t, "vocoder", run.voc_ms);
	if (run.first_written)
		engine_timings_set(t, "ttfa", run.ttfa_ms);
	frontend_result_free(&fr);
	frontend_result_free(&ir);
	free(instr);
	return rc;
}

static int cv2_warmup_write(void *user, const float *pcm, size_t n)
{
	size_t *total = user;
	(void)pcm;
	*total += n;
	return 0;
}

static int cv2_be_warmup(void *impl, char *err, size_t errlen)
{
	struct cv2 *m = impl;
	struct engine_params p = {0};
	struct engine_timings t = {0};
	size_t total = 0;
	struct engine_sink sink = {cv2_warmup_write, NULL, &total};
	int rc;

	p.text = CV2_WARMUP_TEXT;
	p.speed = 1.0f;
	p.has_seed = 1;
	p.seed = 0;
	rc = cv2_be_synthesize(m, &p, &sink, &t, err, errlen);
	if (rc == CV_OK && total == 0) {
		cv_errf(err, errlen, "warm-up produced no audio");
		rc = CV_EENGINE;
	}
	return rc;
}

static void cv2_be_gauges(void *impl, struct engine_gauges *g)
{
	struct cv2 *m = impl;
	struct torch_runtime_memory mem;

	if (m->budget > 0)
		engine_gauges_add(g, "memory_budget_bytes", "Engine memory budget (memory_budget_mb).",
				  m->budget);
	if (m->mem_valid) {
		engine_gauges_add(
		    g, "memory_base_bytes",
		    "Memory the engine holds with the model and its KV cache loaded (measured at start-up).",
		    m->mem_base);
		engine_gauges_add(
		    g, "memory_workspace_bytes_per_frame",
		    "Measured flow + HiFT workspace per mel frame (linear term of the memory model).",
		    m->mem_a);
		engine_gauges_add(
		    g, "memory_workspace_bytes_per_frame_squared",
		    "Measured flow + HiFT workspace per mel frame squared (attention term of the memory "
		    "model).",
		    m->mem_b);
	}
	engine_gauges_add(g, "llm_max_positions", "KV-cache positions allocated at start-up.",
			  (double)m->max_positions);
	engine_gauges_add(g, "llm_decode_cuda_graph", "1 when LLM decode steps replay a captured CUDA graph.",
			  torch_runtime_graph_active(m->rt));
	torch_runtime_memory(m->rt, &mem);
	if (!mem.valid)
		return;
	engine_gauges_add(g, "gpu_memory_allocated_bytes",
			  "GPU memory allocated by the CUDA caching allocator.", mem.allocated);
	engine_gauges_add(g, "gpu_memory_reserved_bytes",
			  "GPU memory reserved by the CUDA caching allocator.", mem.reserved);
	engine_gauges_add(g, "gpu_memory_peak_bytes", "Peak GPU memory allocated since start.", mem.peak);
	if (mem.device_total > 0)
		engine_gauges_add(g, "gpu_memory_total_bytes", "Total memory of the GPU.", mem.device_total);
	if (mem.limit > 0)
		engine_gauges_add(g, "gpu_memory_limit_bytes",
				  "Cap of the CUDA caching allocator (cuda_memory_limit_mb).", mem.limit);
}

const struct engine_backend engine_backend_cosyvoice2 = {
    .name = "cosyvoice2",
    .open = cv2_be_open,
    .close = cv2_be_close,
    .display_name = cv2_be_name,
    .describe = cv2_be_describe,
    .sample_rate = cv2_be_rate,
    .speaker_count = cv2_be_count,
    .speaker_at = cv2_be_at,
    .default_speaker = cv2_be_default,
    .warmup = cv2_be_warmup,
    .synthesize = cv2_be_synthesize,
    .read_gauges = cv2_be_gauges,
};
