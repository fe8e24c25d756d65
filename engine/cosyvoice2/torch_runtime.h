/* engine/cosyvoice2/torch_runtime.h — a plain-C API over libtorch for the CosyVoice2 bundle's model.ts.
 *
 * Loading: the daemon does not link libtorch. torch_runtime_load() finds a
 * libtorch (the torch_lib setting, else the torch this binary was built
 * against, else the torch of the host's python3), checks that its version is
 * the one the plugin was built for (a clear error naming both otherwise),
 * loads it and then the plugin libcosyvoiced_torch.so from next to the
 * binary (or ../lib) — for a first runtime on the CPU, the CPU-only build of
 * it, libcosyvoiced_torch_cpu.so, with c10 and torch_cpu alone (no CUDA
 * library mapped). Every other function here forwards to the plugin;
 * torch_runtime_open() loads on first use with the default search.
 *
 * This header is C (compiled by C code); engine/cosyvoice2/torch_runtime.cpp is the only
 * translation unit that includes libtorch. Every function catches every C++
 * exception and reports it as an error code (common/err.h) with text in
 * err/errlen (c10::Error::what_without_backtrace(), never a backtrace).
 *
 * Threading: one runtime is used by one thread (the scheduler's worker),
 * which must also be the thread that opened it (InferenceMode, the current
 * CUDA device and the intra-op pool size are thread-local).
 *
 * Tensors cross the boundary as host arrays: token ids int32, floats in
 * row-major order (mel: [mel_bins][frames], channel first, as the model's
 * (1, mel_bins, T)). Outputs that the callee allocates are malloc'ed and
 * freed by the caller with free().
 */
#ifndef CV_ENGINE_TORCH_RUNTIME_H
#define CV_ENGINE_TORCH_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct torch_runtime;

struct torch_runtime_config {
	const char *torch_lib;	   /* libtorch directory for torch_runtime_load, NULL = search */
	const char *model_path;	   /* the bundle's model.ts */
	const char *device;	   /* "cpu", "cuda" or "cuda:N"; NULL = "cpu" */
	int threads;		   /* intra-op CPU threads, 0 = libtorch default */
	const char *dtype;	   /* the bundle's LLM/flow weights: "fp32" (NULL), "fp16", "bf16" */
	int allow_half_cpu;	   /* 1: run an fp16/bf16 bundle on the CPU even without native support
				    * (else fp16 is refused there, bf16 too on CPUs without bf16 units) */
	long cuda_memory_limit_mb; /* >0: cap the CUDA caching allocator (per-process fraction) */
	int cuda_graph;		   /* 1: try to capture the LLM decode step as a CUDA graph */
	int jit_optimize;	   /* 1: TorchScript's profiling/optimizing executor (0: plain) */
	int static_decode;	   /* 1: decode through llm_decode_at (the graph's fixed-shape form)
				    * even without a graph; tests use it on the CPU */
	const char *cuda_versions; /* tests only, NULL = ask CUDA: "<driver>:<runtime>" as CUDA encodes
				    * them (12040:13020 = driver 12.4, runtime 13.2) */
	int cpu_pack;		   /* 1: bf16 on a bf16 CPU reorders the LLM weights for oneDNN at load
				    * (llm_pack_cpu); 0: ATen's plain path (comparisons) */
	const char *cpu_bf16;	   /* tests only, NULL = ask the CPU: "0" or "1" pretends the CPU lacks
				    * or has native bf16 arithmetic (AVX512-BF16 or AMX-BF16) */
	const void *text_table;	   /* the LLM's text embedding, text_rows x text_cols in dtype, row-major:
				    * the bundle's llm_text_embedding.safetensors as the caller mapped
				    * it, used in place (never copied, never written) for the
				    * runtime's life; rows go to the device as a prompt needs them */
	size_t text_rows, text_cols;
	const char *fault; /* fault injection for tests, NULL = none: "<entry>:<n>[:oom]"
			    * makes the n-th call of entry (llm_prefill, llm_decode,
			    * flow_inference, hift_inference) after torch_runtime_fault_arm()
			    * throw a c10::Error (or c10::OutOfMemoryError with :oom) */
};

struct torch_runtime_memory {
	int valid;	     /* 1 on CUDA, 0 on CPU (nothing to report) */
	double allocated;    /* bytes currently allocated by the caching allocator */
	double reserved;     /* bytes reserved from the driver */
	double peak;	     /* peak allocated bytes since start (or since the last reset) */
	double device_total; /* total device memory, 0 when unknown */
	double limit;	     /* allocator cap from cuda_memory_limit_mb, 0 = none */
};

/* What the memory guard measures with: on CUDA the caching allocator's
 * allocated bytes and their peak; on the CPU the process's resident set
 * (VmRSS) and its high-water mark (VmHWM, reset through /proc/self/clear_refs). */
struct torch_runtime_usage {
	double current; /* bytes in use now */
	double peak;	/* most bytes in use since the last torch_runtime_usage_reset */
};

/* Load libtorch and the plugin (once per process; later calls return the
 * first result). torch_lib: a directory holding libtorch.so, NULL or "" =
 * search (see above). cpu_only: load the CPU-only plugin and c10 +
 * torch_cpu alone when that plugin is installed (torch_runtime_open passes
 * 1 for --device cpu). CV_EUNSUPPORTED when this build has no plugin or no
 * libtorch is found, CV_EINVAL on a version mismatch, CV_EIO when dlopen
 * fails; err says which files and versions. */
int torch_runtime_load(const char *torch_lib, int cpu_only, char *err, size_t errlen);
/* The libtorch directory loaded from ("" before a successful load). */
const char *torch_runtime_lib_dir(void);
/* Version of the loaded libtorch (e.g. "2.15.0"); before loading, the
 * version the plugin was built against. */
const char *torch_runtime_version(void);
/* The torch version the plugin was built against ("" without a plugin). */
const char *torch_runtime_build_version(void);
/* 1 when version (e.g. a bundle's "2.11.0+cu130") is the plugin's torch release: the
 * local part after '+' (the CUDA build) does not change libtorch's C++ interface. */
int torch_runtime_version_matches(const char *version);
/* 1 when a CUDA device is usable in this process (loads on first use). */
int torch_runtime_cuda_available(void);

int torch_runtime_open(const struct torch_runtime_config *cfg, struct torch_runtime **out, char *err,
		       size_t errlen);
void torch_runtime_free(struct torch_runtime *rt);
/* "cpu" or "cuda:0" (what the model runs on). */
const char *torch_runtime_device(const struct torch_runtime *rt);
int torch_runtime_is_cuda(const struct torch_runtime *rt);
/* 1 when llm decode steps replay a captured CUDA graph. */
int torch_runtime_graph_active(const struct torch_runtime *rt);
/* How decode steps run, for logs and /readyz: "cuda graph", "eager (...why...)",
 * "static (llm_decode_at, no graph)"... Never NULL. */
const char *torch_runtime_decode_mode(const struct torch_runtime *rt);
/* Start counting calls for cfg->fault (no-op without one). */
void torch_runtime_fault_arm(struct torch_runtime *rt);

/* Seed the libtorch generators (CPU and CUDA) used by the vocoder noise. */
void torch_runtime_seed(struct torch_runtime *rt, uint64_t seed);

/* LLM. A request starts with llm_begin(capacity) (KV cache for `capacity`
 * positions; the cache is kept and reused by later requests when large
 * enough), then one prefill and decode steps. logp receives `vocab` floats
 * (log-probabilities over the speech vocabulary, float32). */
int torch_runtime_llm_begin(struct torch_runtime *rt, size_t capacity, char *err, size_t errlen);
int torch_runtime_llm_prefill(struct torch_runtime *rt, const int32_t *text_ids, size_t n_text,
			      const int32_t *prompt_speech, size_t n_prompt, float *logp, size_t vocab,
			      char *err, size_t errlen);
int torch_runtime_llm_decode(struct torch_runtime *rt, int32_t token, size_t pos, float *logp, size_t vocab,
			     char *err, size_t errlen);

/* Flow (docs/cosyvoice2.md §4.1): tokens + prompt (tokens, mel [n_prompt_feat][mel_bins]
 * frame-major as stored in the speaker file, embedding [spk_dim]) -> mel
 * [mel_bins][*frames] float32, malloc'ed. */
struct torch_runtime_flow_args {
	const int32_t *tokens;
	size_t n_tokens;
	const int32_t *prompt_tokens;
	size_t n_prompt_tokens;
	const float *prompt_feat; /* [n_prompt_feat][mel_bins] */
	size_t n_prompt_feat;
	const float *embedding; /* [spk_dim] */
	size_t spk_dim;
	size_t mel_bins;
	int streaming;
	int finalize;
};
int torch_runtime_flow(struct torch_runtime *rt, const struct torch_runtime_flow_args *a, float **mel,
		       size_t *frames, char *err, size_t errlen);

/* HiFT (docs/cosyvoice2.md §5.1): mel [mel_bins][frames] -> speech (*n_speech floats) and
 * source (*n_source floats), both malloc'ed. cache_source may be NULL/0.
 * noise NULL: drawn from libtorch's generator; otherwise [480*frames][nb+1]
 * exactly as hift_inference_noise takes it (n_noise floats). */
int torch_runtime_hift(struct torch_runtime *rt, const float *mel, size_t mel_bins, size_t frames,
		       const float *cache_source, size_t n_cache, const float *noise, size_t n_noise,
		       float **speech, size_t *n_speech, float **source, size_t *n_source, char *err,
		       size_t errlen);

void torch_runtime_memory(struct torch_runtime *rt, struct torch_runtime_memory *m);
/* Reset the peak of torch_runtime_usage (allocator peak stats / VmHWM). */
void torch_runtime_usage_reset(struct torch_runtime *rt);
/* CV_OK with u filled; CV_EUNSUPPORTED when the platform cannot say. */
int torch_runtime_usage(struct torch_runtime *rt, struct torch_runtime_usage *u);

#ifdef __cplusplus
}
#endif
#endif
