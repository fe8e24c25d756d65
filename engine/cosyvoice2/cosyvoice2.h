/* engine/cosyvoice2/cosyvoice2.h — the CosyVoice2 backend's own entry points (below engine.h).
 *
 * The daemon reaches this backend through engine.h (engine_backend_cosyvoice2
 * in backend.h). The functions here expose the pipeline's stages one by one
 * for the parity tests and tools: the LLM for one sentence (prompt layout,
 * KV-cached decode, stop rules, RAS or greedy sampling) and token2wav (flow +
 * HiFT, buffered or with the streaming schedule), on explicit token ids.
 *
 * Speaker ids: every bundle speaker is listed under its name. Speakers with a
 * prompt (zero-shot voices) are also listed as "<name>/cross-lingual" (LLM
 * without the prompt text and prompt speech, flow with the prompt,
 * docs/cosyvoice2.md §2.4). Embedding-only voices are SFT voices. Text of the form
 * "<instruction><|endofprompt|><text>" selects instruct2 with the chosen
 * speaker: the instruction's tokens (ending in <|endofprompt|>) become the
 * LLM prompt text and the LLM gets no prompt speech.
 */
#ifndef CV_ENGINE_COSYVOICE2_H
#define CV_ENGINE_COSYVOICE2_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

#define COSYVOICE2_FORMAT	  "cosyvoiced-bundle"
#define COSYVOICE2_FORMAT_VERSION 2
#define COSYVOICE2_XL_SUFFIX	  "/cross-lingual"
#define COSYVOICE2_ENDOFPROMPT	  "<|endofprompt|>"

struct cv2;

/* Open a bundle: manifest (format, version, torch version, sha256 of every
 * file), tokenizer/frontend, speakers, then model.ts on cfg->device.
 * Errors name the file and the fix. Without libtorch in the build:
 * CV_EUNSUPPORTED "built without libtorch". */
int cv2_open(const struct engine_config *cfg, struct cv2 **out, char *err, size_t errlen);
void cv2_free(struct cv2 *m);

/* Run the LLM for one sentence's text ids (prompt layout per the speaker /
 * instruct ids). greedy=1: argmax (top-k 1) instead of RAS. *tokens is
 * malloc'ed (the generated speech tokens, stop id excluded). */
struct cv2_llm_request {
	const char *speaker;	 /* NULL = default */
	const int32_t *text_ids; /* the sentence */
	size_t n_text;
	const int32_t *instruct_ids; /* instruct2: ends in <|endofprompt|>, or NULL */
	size_t n_instruct;
	int greedy;
	uint64_t seed;
};
/* The memory guard's prediction, in bytes, for one sentence of n_text text
 * ids with this speaker (NULL = default) at the LLM's maximum length; 0 when
 * the guard is off (memory_budget_mb 0) or could not measure. */
double cv2_memory_predict(const struct cv2 *m, const char *speaker, size_t n_text);

int cv2_llm_generate(struct cv2 *m, const struct cv2_llm_request *r, int32_t **tokens, size_t *n_tokens,
		     char *err, size_t errlen);

/* Flow + HiFT on given tokens with the speaker's flow prompt; writes PCM to
 * the sink (one write for buffered, one per chunk when stream=1).
 * zero_noise=1 runs HiFT with all-zero source noise (deterministic, for
 * parity tests). */
int cv2_token2wav(struct cv2 *m, const char *speaker, const int32_t *tokens, size_t n_tokens, int stream,
		  double speed, int zero_noise, const struct engine_sink *sink, char *err, size_t errlen);

#endif
