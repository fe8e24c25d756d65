/* engine/cosyvoice2/cv2_impl.h — what the pieces of the CosyVoice2 backend share (not for other modules).
 *
 * cosyvoice2.c    the backend table (engine/backend.h): synthesize, warm-up, gauges
 * cv2_bundle.c    manifest, file hashes, speakers, cv2_open/cv2_free
 * cv2_pipeline.c  LLM, flow, HiFT and the streaming schedule for one sentence
 * cv2_memory.c    the memory guard (measured at start-up, checked per sentence)
 */
#ifndef CV_ENGINE_COSYVOICE2_CV2_IMPL_H
#define CV_ENGINE_COSYVOICE2_CV2_IMPL_H

#include "engine/cosyvoice2/cosyvoice2.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <dirent.h>
#include <pwd.h>
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
#define CV2_DEFAULT_MAX_VOICES	  256
#define CV2_VOICE_SUFFIX	  ".safetensors"
#define CV2_MIB			  (1024.0 * 1024.0)
#define CV2_AUTO_BUDGET_CUDA_MB	  3072.0
/* the largest text-embedding file mapped (CosyVoice2's: 151936 x 896, 545 MB in fp32) */
#define CV2_TEXT_TABLE_MAX_BYTES ((size_t)2 << 30)

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
	int from_dir;	  /* 1: loaded from voices_dir (removable), 0: the bundle's */
};

struct cv2 {
	struct torch_runtime *rt;
	struct safetensors *text_table; /* mapped; outlives rt, which reads it in place */
	struct frontend *fe;
	char describe[256];
	char dtype[8]; /* the bundle's weights: fp32, fp16, bf16 */
	char dir[CV2_PATH_MAX];
	/* voices: replaced as a whole by cv2_reload_voices (worker thread only) */
	struct cv2_speaker *spk;
	struct engine_speaker *espk;
	size_t n_spk;
	size_t default_spk;
	char default_setting[256];     /* the default_speaker setting, "" = none */
	char voices_dir[CV2_PATH_MAX]; /* "" = none */
	size_t max_voices;
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

/* cv2_bundle.c */
const struct cv2_speaker *cv2_speaker_find(const struct cv2 *m, const char *id);
/* Re-read the manifest's speakers and voices_dir (worker thread, between
 * jobs); on any error the current set stays and err names the file. */
int cv2_reload_voices(struct cv2 *m, char *err, size_t errlen);
/* Validate one voice file as a reload would (any thread: reads fixed fields). */
int cv2_check_voice(const struct cv2 *m, const char *path, char *err, size_t errlen);

/* cv2_pipeline.c */
int cv2_cancelled(const struct engine_sink *sink);
int cv2_buffered(struct cv2 *m, struct cv2_run *run, const struct cv2_speaker *spk, const int32_t *tokens,
		 size_t n, double speed, char *err, size_t errlen);
struct cv2_prompt cv2_prompt_layout(const struct cv2_speaker *spk, const int32_t *instruct_ids,
				    size_t n_instruct);
size_t cv2_positions(const struct cv2_prompt *p, size_t n_text);
int cv2_sentence_run(struct cv2 *m, struct cv2_run *run, const struct cv2_sentence *se, int32_t **tokens_out,
		     size_t *n_out, char *err, size_t errlen);
void cv2_run_init(struct cv2 *m, struct cv2_run *run, const struct engine_sink *sink, uint64_t seed);
int cv2_null_write(void *user, const float *pcm, size_t n);

/* cv2_memory.c */
int cv2_probe_memory(struct cv2 *m, char *err, size_t errlen);
int cv2_check_sentence(const struct cv2 *m, const struct cv2_speaker *spk, size_t i, size_t n_sent,
		       size_t n_text, const int32_t *instr, size_t n_instr, char *err, size_t errlen);

#endif
