/* engine/cosyvoice2/torch_plugin.h — the binary interface between the daemon and its libtorch plugin.
 *
 * The daemon never links libtorch: engine/cosyvoice2/torch_runtime.cpp is built into a
 * shared object (libcosyvoiced_torch.so; libcosyvoiced_torch_cpu.so without CUDA) that
 * engine/cosyvoice2/torch_loader.c loads at
 * run time, after it has loaded the host's libtorch (see torch_runtime.h).
 * The plugin exports one symbol, TORCH_PLUGIN_SYMBOL, a function returning
 * this table; every other symbol of the plugin is hidden. The loader refuses
 * a plugin whose abi differs from TORCH_PLUGIN_ABI (a binary and a plugin of
 * different builds). Bump TORCH_PLUGIN_ABI on any change to this struct or
 * to the structs of torch_runtime.h it passes.
 */
#ifndef CV_ENGINE_TORCH_PLUGIN_H
#define CV_ENGINE_TORCH_PLUGIN_H

#include "engine/cosyvoice2/torch_runtime.h"

#define TORCH_PLUGIN_ABI    6
#define TORCH_PLUGIN_SYMBOL "cosyvoiced_torch_plugin"
#define TORCH_PLUGIN_FILE   "libcosyvoiced_torch.so"
/* The same source built without CUDA (CV_TORCH_CUDA=0), linked to c10 and torch_cpu alone: what a
 * process whose first runtime is on the CPU loads (torch_loader.c). */
#define TORCH_PLUGIN_CPU_FILE "libcosyvoiced_torch_cpu.so"

struct torch_plugin_api {
	int abi;
	const char *(*version)(void);
	int (*cuda_available)(void);
	int (*open)(const struct torch_runtime_config *cfg, struct torch_runtime **out, char *err,
		    size_t errlen);
	void (*free)(struct torch_runtime *rt);
	const char *(*device)(const struct torch_runtime *rt);
	int (*is_cuda)(const struct torch_runtime *rt);
	int (*graph_active)(const struct torch_runtime *rt);
	const char *(*decode_mode)(const struct torch_runtime *rt);
	void (*fault_arm)(struct torch_runtime *rt);
	void (*seed)(struct torch_runtime *rt, uint64_t seed);
	int (*llm_begin)(struct torch_runtime *rt, size_t capacity, char *err, size_t errlen);
	int (*llm_prefill)(struct torch_runtime *rt, const int32_t *text_ids, size_t n_text,
			   const int32_t *prompt_speech, size_t n_prompt, float *logp, size_t vocab,
			   char *err, size_t errlen);
	int (*llm_decode)(struct torch_runtime *rt, int32_t token, size_t pos, float *logp, size_t vocab,
			  char *err, size_t errlen);
	int (*flow)(struct torch_runtime *rt, const struct torch_runtime_flow_args *a, float **mel,
		    size_t *frames, char *err, size_t errlen);
	int (*hift)(struct torch_runtime *rt, const float *mel, size_t mel_bins, size_t frames,
		    const float *cache_source, size_t n_cache, const float *noise, size_t n_noise,
		    float **speech, size_t *n_speech, float **source, size_t *n_source, char *err,
		    size_t errlen);
	void (*memory)(struct torch_runtime *rt, struct torch_runtime_memory *m);
	void (*usage_reset)(struct torch_runtime *rt);
	int (*usage)(struct torch_runtime *rt, struct torch_runtime_usage *u);
};

typedef const struct torch_plugin_api *(*torch_plugin_fn)(void);

#endif
