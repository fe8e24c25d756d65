/* engine/cosyvoice2/torch_runtime.cpp — the C API of torch_runtime.h over libtorch (the only C++ TU for the
 * model).
 *
 * Built into the plugin libcosyvoiced_torch.so, never into the daemon: the
 * daemon loads it at run time through engine/cosyvoice2/torch_loader.c (after the
 * host's libtorch), so one binary serves espeak-ng without any torch and
 * CosyVoice2 with the torch it finds. Only cosyvoiced_torch_plugin() is
 * exported (engine/cosyvoice2/torch_plugin.h); the extern "C" bodies below are hidden.
 *
 * DESIGN: the bundle's model.ts is a scripted (not frozen) module with flat
 * entry points (tools/export/cosyvoice2/bundle.py); this file only moves host arrays
 * in and out of tensors and calls those methods, so all numerics stay in the
 * TorchScript that the exporter tested against the eager modules. Every
 * extern "C" body runs inside guarded(), which turns any C++ exception into
 * an error code plus text (what_without_backtrace(): no backtraces in logs or
 * HTTP bodies), and an out-of-memory into CV_ENOMEM after freeing the CUDA
 * cache, so one failing request leaves the model usable. Each call holds a
 * c10::InferenceMode guard (thread-local, so calls come from the worker that
 * opened the runtime). The KV cache is owned here and kept between requests
 * (grown, never shrunk), so steady-state requests allocate no new cache.
 * The CUDA paths (caching-allocator cap and statistics, the driver check, a
 * CUDA graph of the decode step) compile when CV_TORCH_CUDA is 1
 * (libcosyvoiced_torch.so, linked to libtorch_cuda) and only run when a GPU
 * is present; with 0 the same source is the CPU-only plugin
 * libcosyvoiced_torch_cpu.so (c10 + torch_cpu: no CUDA library mapped, what
 * the loader picks for --device cpu). The per-call device guard is c10's
 * device-generic one in both.
 *
 * CUDA graph of the decode step: the bundle's llm_decode_at takes the token
 * and the position as device tensors and attends over the cache it is given
 * with the later positions masked, so its shapes depend only on that cache's
 * length. A step at position pos is given cache[:bucket] (bucket = 64, 128,
 * 256, ... up to the allocated length, the smallest above pos), so early
 * steps do not read the whole preallocated cache. The first step of each
 * bucket warms the step up on a side stream and captures it (once per
 * process and bucket); every step writes token and position into the two
 * static input tensors (fill_: a kernel launch, no host sync) and replays
 * its bucket's graph; the only host sync is reading the log-probabilities
 * for the C sampler. A capture failure is remembered and the runtime decodes
 * eagerly from then on (torch_runtime_decode_mode says why). Bundles without
 * llm_decode_at (older exports) decode eagerly through llm_decode_one.
 *
 * Fault injection (tests only, torch_runtime_config.fault): the n-th call of
 * one entry point throws the exception libtorch itself would throw (c10::Error
 * or c10::OutOfMemoryError), so the catch path above is exercised for real.
 */
#include "engine/cosyvoice2/torch_plugin.h"
#include "engine/cosyvoice2/torch_runtime.h"

#ifndef CV_TORCH_CUDA
#define CV_TORCH_CUDA 1
#endif

#include <ATen/Parallel.h>
#include <c10/core/DeviceGuard.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/jit/python/update_graph_executor_opt.h>
#include <torch/cuda.h>
#include <torch/script.h>
#if CV_TORCH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#endif
#include <torch/version.h>

#include <cpuid.h>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <malloc.h>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "common/err.h"

namespace
{

struct graph_state {
#if CV_TORCH_CUDA
	std::unique_ptr<at::cuda::CUDAGraph> graph;
#endif
	torch::Tensor logp; /* static output of the captured step */
};

/* Position buckets of the fixed-shape decode step: a step at position pos
 * attends over cache[:bucket], bucket = the smallest of 64, 128, 256, ...
 * (capped at the cache length) above pos. One CUDA graph per bucket. */
size_t decode_bucket(size_t pos, size_t capacity)
{
	size_t b = 64;
	while (b <= pos && b < capacity)
		b *= 2;
	return b < capacity ? b : capacity;
}

void set_err(char *err, size_t errlen, const char *msg)
{
	if (err && errlen) {
		std::snprintf(err, errlen, "%s", msg);
	}
}

/* First line of an exception text: TorchScript errors carry a multi-line
 * "The following operation failed in the TorchScript interpreter" trace. */
std::string first_lines(const char *what)
{
	std::string s(what ? what : "unknown error");
	/* Keep the informative last non-empty line of a TorchScript trace
	 * ("RuntimeError: ..."), which names the actual failure. */
	size_t rt = s.rfind("RuntimeError: ");
	if (rt != std::string::npos)
		s = s.substr(rt + 14);
	while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
		s.pop_back();
	for (auto &c : s)
		if (c == '\n')
			c = ' ';
	if (s.size() > 400)
		s.resize(400);
	return s;
}

template <class F> int guarded(const char *what, char *err, size_t errlen, F &&f)
{
	std::string msg;
	try {
		return f();
	} catch (const c10::OutOfMemoryError &e) {
		msg = std::string(what) + ": out of memory: " + first_lines(e.what_without_backtrace());
#if CV_TORCH_CUDA
		try {
			if (torch::cuda::is_available())
				c10::cuda::CUDACachingAllocator::emptyCache();
		} catch (...) {
		}
#endif
		set_err(err, errlen, msg.c_str());
		return CV_ENOMEM;
	} catch (const c10::Error &e) {
		msg = std::string(what) + ": " + first_lines(e.what_without_backtrace());
	} catch (const std::bad_alloc &) {
		set_err(err, errlen, (std::string(what) + ": out of memory").c_str());
		return CV_ENOMEM;
	} catch (const std::exception &e) {
		msg = std::string(what) + ": " + first_lines(e.what());
	} catch (...) {
		msg = std::string(what) + ": unknown C++ exception";
	}
	set_err(err, errlen, msg.c_str());
	return CV_EENGINE;
}

torch::Tensor ids_tensor(const int32_t *ids, size_t n, const torch::Device &dev)
{
	auto t = torch::empty({1, (int64_t)n}, torch::kInt64);
	int64_t *p = t.data_ptr<int64_t>();
	for (size_t i = 0; i < n; i++)
		p[i] = ids[i];
	return t.to(dev);
}

torch::Tensor float_tensor(const float *v, std::vector<int64_t> shape, const torch::Device &dev)
{
	int64_t n = 1;
	for (auto d : shape)
		n *= d;
	auto t = torch::empty(shape, torch::kFloat32);
	if (n > 0)
		std::memcpy(t.data_ptr<float>(), v, (size_t)n * sizeof(float));
	return t.to(dev);
}

/* Copy a float tensor to a malloc'ed host array. */
int to_host(const torch::Tensor &t, float **out, size_t *n)
{
	auto c = t.detach().to(torch::kCPU, torch::kFloat32).contiguous();
	size_t cnt = (size_t)c.numel();
	float *p = (float *)std::malloc(cnt ? cnt * sizeof(float) : 1);
	if (!p)
		return CV_ENOMEM;
	if (cnt)
		std::memcpy(p, c.data_ptr<float>(), cnt * sizeof(float));
	*out = p;
	*n = cnt;
	return CV_OK;
}

int copy_logp(const torch::Tensor &lp, float *logp, size_t vocab, char *err, size_t errlen)
{
	auto c = lp.detach().to(torch::kCPU, torch::kFloat32).contiguous();
	if ((size_t)c.numel() != vocab) {
		char b[128];
		std::snprintf(b, sizeof b, "llm: model returned %lld log-probabilities, expected %zu",
			      (long long)c.numel(), vocab);
		set_err(err, errlen, b);
		return CV_EENGINE;
	}
	std::memcpy(logp, c.data_ptr<float>(), vocab * sizeof(float));
	return CV_OK;
}

} // namespace

struct torch_runtime {
	torch::jit::Module mod;
	torch::Device device{torch::kCPU};
	std::string device_name;
	bool cuda = false;
	double memory_limit = 0; /* bytes the CUDA allocator may hold (cuda_memory_limit_mb), 0 = none */
	bool want_graph = false;
	bool has_decode_at = false; /* the bundle exports llm_decode_at */
	bool static_decode = false; /* use llm_decode_at without a graph */
	bool graph_failed = false;
	bool cpu_packed = false; /* llm_pack_cpu ran: every LLM call uses oneDNN-reordered weights */
	std::string decode_mode;
	torch::Tensor k_cache, v_cache;
	torch::Tensor tok_t, pos_t; /* static decode inputs on the device */
	size_t capacity = 0;
	std::map<size_t, graph_state> graphs; /* by decode bucket */
	/* fault injection */
	std::string fault_entry;
	long fault_n = 0;
	bool fault_oom = false;
	bool fault_armed = false;
	long fault_calls = 0;
};

namespace
{

[[maybe_unused]] c10::DeviceIndex device_index(const torch_runtime *rt)
{
	return rt->device.has_index() ? rt->device.index() : (c10::DeviceIndex)0;
}

/* What each call makes current for its duration (c10::OptionalDeviceGuard): the runtime's GPU, or
 * nothing on the CPU. Device-generic, so the CPU-only plugin needs no CUDA header for it. */
std::optional<c10::Device> call_device(const torch_runtime *rt)
{
	return rt->cuda ? std::optional<c10::Device>(rt->device) : std::nullopt;
}

/* Throw what libtorch would, on the configured call (tests only). */
void fault_check(torch_runtime *rt, const char *entry)
{
	if (!rt->fault_armed || rt->fault_entry != entry)
		return;
	if (++rt->fault_calls != rt->fault_n)
		return;
	if (rt->fault_oom)
		TORCH_CHECK_WITH(OutOfMemoryError, false,
				 "CUDA out of memory. Tried to allocate 2.00 GiB "
				 "(fault injected by CVTEST_FAULT)");
	TORCH_CHECK(false, "fault injected by CVTEST_FAULT in ", entry);
}

/* "VmRSS:  1234 kB" style field of /proc/self/status, in bytes; -1 if absent. */
double proc_status_bytes(const char *field)
{
	std::ifstream f("/proc/self/status");
	std::string line;
	size_t fl = std::strlen(field);
	while (std::getline(f, line)) {
		if (line.compare(0, fl, field) == 0 && line.size() > fl && line[fl] == ':')
			return std::strtod(line.c_str() + fl + 1, nullptr) * 1024.0;
	}
	return -1;
}

void set_decode_mode(torch_runtime *rt)
{
	if (rt->cuda && rt->want_graph && rt->has_decode_at && !rt->graph_failed)
		rt->decode_mode = "cuda graph (one per position bucket, captured at first use; " +
				  std::to_string(rt->graphs.size()) + " so far)";
	else if (rt->graph_failed)
		; /* keeps the failure text */
	else if (rt->static_decode && rt->has_decode_at)
		rt->decode_mode = std::string("static (llm_decode_at per position bucket, no graph)") +
				  (rt->cpu_packed ? ", oneDNN-packed bf16 weights" : "");
	else if (rt->cuda && rt->want_graph && !rt->has_decode_at)
		rt->decode_mode = "eager (the bundle has no llm_decode_at: re-export it for CUDA graphs)";
	else if (rt->cuda && !rt->want_graph)
		rt->decode_mode = "eager (cuda_graph off)";
	else
		rt->decode_mode = "eager";
}

/* Capture llm_decode_at on cache[:bucket] into g (tok_t/pos_t hold this
 * step's token and position). Warm-up on a side stream first (cuBLAS
 * handles, allocator blocks); the warm-up writes this step's own k/v at pos,
 * which the replay that follows writes again with the same values. A
 * failure marks the runtime graph_failed (eager from then on), with why. */
#if CV_TORCH_CUDA
bool capture_decode(torch_runtime *rt, graph_state &g, const torch::Tensor &kc, const torch::Tensor &vc)
{
	graph_state ng;
	try {
		torch::cuda::synchronize();
		auto stream = c10::cuda::getStreamFromPool();
		{
			c10::cuda::CUDAStreamGuard sg(stream);
			for (int i = 0; i < 3; i++)
				rt->mod.get_method("llm_decode_at")({rt->tok_t, rt->pos_t, kc, vc});
			stream.synchronize();
			ng.graph = std::make_unique<at::cuda::CUDAGraph>();
			ng.graph->capture_begin();
			try {
				ng.logp = rt->mod.get_method("llm_decode_at")({rt->tok_t, rt->pos_t, kc, vc})
					      .toTensor();
			} catch (...) {
				try {
					ng.graph->capture_end();
				} catch (...) {
				}
				throw;
			}
			ng.graph->capture_end();
		}
		torch::cuda::synchronize();
		g = std::move(ng);
		return true;
	} catch (const c10::Error &e) {
		rt->graph_failed = true;
		rt->decode_mode =
		    "eager (CUDA graph capture failed: " + first_lines(e.what_without_backtrace()) + ")";
		return false;
	}
}

/* Replay a captured step: its log-probabilities land in g.logp. */
void replay_decode(graph_state &g)
{
	g.graph->replay();
}
#else
bool capture_decode(torch_runtime *rt, graph_state &, const torch::Tensor &, const torch::Tensor &)
{
	rt->graph_failed = true;
	rt->decode_mode = "eager (the CPU-only plugin has no CUDA graphs)";
	return false;
}

void replay_decode(graph_state &)
{
}
#endif

} // namespace

extern "C" {

const char *torch_runtime_version(void)
{
	return TORCH_VERSION;
}

int torch_runtime_cuda_available(void)
{
	try {
		return torch::cuda::is_available() ? 1 : 0;
	} catch (...) {
		return 0;
	}
}

/* Native bf16 arithmetic on this CPU: AVX512-BF16 dot products (CPUID.(7,1):EAX[5]) or AMX-BF16 tiles
 * (CPUID.(7,0):EDX[22]), the units of oneDNN's bf16 matrix kernels, with AVX-512 enabled by the OS
 * (__builtin_cpu_supports checks XCR0). Without them libtorch emulates bf16 through fp32 and the bundle
 * would run slower than an fp32 one. Asked of CPUID directly: libtorch's own probes (at::cpu::) are
 * not in every version's headers (2.11 dropped them). inject ("0"/"1", tests) replaces the answer. */
static bool cpu_has_bf16(const char *inject)
{
	if (inject && inject[0])
		return strcmp(inject, "1") == 0;
#if defined(__x86_64__)
	unsigned a, b, c, d;
	if (!__builtin_cpu_supports("avx512f") || !__get_cpuid_count(7, 0, &a, &b, &c, &d))
		return false;
	bool amx_bf16 = (d >> 22) & 1u;
	bool avx512_bf16 = a >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d) && ((a >> 5) & 1u);
	return avx512_bf16 || amx_bf16;
#else
	return false;
#endif
}

/* Before any CUDA work on --device cuda: a driver older than the CUDA runtime this
 * plugin was built with (a CUDA 13 build on a 550-series driver that reports CUDA
 * 12.4) would fail with a bare CUDA error deep inside libtorch. Compare the
 * majors (minor-version compatibility covers the rest) and say what to do. */
static int cuda_driver_check(const char *inject, char *err, size_t errlen)
{
	int drv = 0, rtv = 0;
	if (inject && inject[0]) {
		if (sscanf(inject, "%d:%d", &drv, &rtv) != 2)
			return CV_OK;
	} else {
#if CV_TORCH_CUDA
		if (cudaDriverGetVersion(&drv) != cudaSuccess || cudaRuntimeGetVersion(&rtv) != cudaSuccess)
			return CV_OK; /* no driver at all: is_available() says so below */
#else
		return CV_OK;
#endif
	}
	if (drv <= 0 || drv / 1000 >= rtv / 1000)
		return CV_OK;
	char msg[640];
	snprintf(
	    msg, sizeof msg,
	    "the NVIDIA driver supports CUDA %d.%d, but this build's CUDA runtime is %d.%d (libtorch %s): "
	    "update the driver to a branch that supports CUDA %d (%s), or use the CUDA 12 build "
	    "(make TORCH_VERSION=2.10.0, or a release built with it), which runs on drivers from 525 on",
	    drv / 1000, (drv % 1000) / 10, rtv / 1000, (rtv % 1000) / 10, TORCH_VERSION, rtv / 1000,
	    rtv / 1000 >= 13 ? "580 or newer" : "525 or newer");
	set_err(err, errlen, msg);
	return CV_EUNSUPPORTED;
}

int torch_runtime_open(const struct torch_runtime_config *cfg, struct torch_runtime **out, char *err,
		       size_t errlen)
{
	if (out)
		*out = nullptr;
	if (!cfg || !cfg->model_path || !out) {
		set_err(err, errlen, "torch_runtime_open: missing model path");
		return CV_EINVAL;
	}
	return guarded("load model.ts", err, errlen, [&]() -> int {
		std::string dev = cfg->device && cfg->device[0] ? cfg->device : "cpu";
		auto rt = std::make_unique<torch_runtime>();
		if (dev.rfind("cuda", 0) == 0) {
			if (!CV_TORCH_CUDA) {
				set_err(err, errlen,
					"device 'cuda' requested from the CPU-only plugin "
					"(libcosyvoiced_torch_cpu.so, which maps no CUDA library): this "
					"process loaded libtorch for the CPU; restart it with --device cuda");
				return CV_EUNSUPPORTED;
			}
			int vrc = cuda_driver_check(cfg->cuda_versions, err, errlen);
			if (vrc != CV_OK)
				return vrc;
			if (!torch::cuda::is_available()) {
				set_err(err, errlen,
					"device 'cuda' requested but no CUDA device is available (use "
					"--device cpu)");
				return CV_EUNSUPPORTED;
			}
			rt->device = torch::Device(dev);
			rt->cuda = true;
		} else if (dev == "cpu") {
			rt->device = torch::Device(torch::kCPU);
		} else {
			set_err(err, errlen, ("unknown device '" + dev + "' (cpu or cuda)").c_str());
			return CV_EINVAL;
		}
		std::string dtype = cfg->dtype && cfg->dtype[0] ? cfg->dtype : "fp32";
		if (dtype != "fp32" && dtype != "fp16" && dtype != "bf16") {
			set_err(err, errlen,
				("unknown bundle dtype '" + dtype + "' (fp32, fp16 or bf16)").c_str());
			return CV_EINVAL;
		}
		if (!rt->cuda && dtype == "bf16" && !cfg->allow_half_cpu && !cpu_has_bf16(cfg->cpu_bf16)) {
			set_err(err, errlen,
				"a bf16 bundle on the CPU needs native bf16 arithmetic (AVX512-BF16 or "
				"AMX-BF16: Intel Cooper Lake / Sapphire Rapids or later, AMD Zen 4 or "
				"later), which this CPU lacks: emulated, bf16 runs slower than fp32; use an "
				"fp32 bundle here (make bundle ... DTYPE=fp32), or set cpu_half=true to "
				"force it");
			return CV_EUNSUPPORTED;
		}
		if (!rt->cuda && dtype == "fp16" && !cfg->allow_half_cpu) {
			set_err(err, errlen,
				"an fp16 bundle is made for --device cuda; for the CPU use bf16 (on CPUs "
				"with native bf16) or fp32 (make bundle ... DTYPE=bf16|fp32), or set "
				"cpu_half=true (tests and experiments)");
			return CV_EUNSUPPORTED;
		}
#if CV_TORCH_CUDA
		if (rt->cuda && cfg->cuda_memory_limit_mb > 0) {
			/* Cap the caching allocator before anything is allocated on the device, so a big
			 * card behaves like a small one (out-of-memory at the cap). */
			auto idx = device_index(rt.get());
			double total = (double)at::cuda::getDeviceProperties(idx)->totalGlobalMem;
			double frac = (double)cfg->cuda_memory_limit_mb * 1048576.0 / total;
			if (frac > 1.0)
				frac = 1.0;
			c10::cuda::CUDACachingAllocator::setMemoryFraction(frac, idx);
			rt->memory_limit = frac * total;
		}
#endif
		rt->want_graph = cfg->cuda_graph != 0 && rt->cuda;
		if (cfg->threads > 0)
			at::set_num_threads(cfg->threads);
		/* The profiling executor re-profiles and re-optimizes for every new
		 * input shape, and every sentence has new shapes (prefill length,
		 * flow/HiFT frames): seconds per call on a CPU. The plain executor
		 * runs the scripted graphs as exported (process-wide setting). */
		torch::jit::setGraphExecutorOptimize(cfg->jit_optimize != 0);
		c10::OptionalDeviceGuard guard(call_device(rt.get()));
		c10::InferenceMode im;
		rt->mod = torch::jit::load(cfg->model_path, rt->device);
		rt->mod.eval();
		rt->device_name = rt->device.str();
		rt->has_decode_at = rt->mod.find_method("llm_decode_at").has_value();
		/* Half precision on the CPU: ATen hands bf16/fp16 matrix products to oneDNN, which
		 * builds (JIT) and caches a kernel per shape. The eager step's attention has new
		 * shapes at every position: two kernels per decoded token, ~0.5 MB resident each
		 * token until oneDNN's cache (1024 kernels) is full, and JIT time per step. The
		 * fixed-shape step over position buckets (llm_decode_at on cache[:bucket], the
		 * CUDA graph's form; its fidelity is the one docs/cosyvoice2.md reports) builds
		 * two per bucket, so the resident set stays flat while decoding. */
		rt->static_decode = cfg->static_decode != 0 || (!rt->cuda && dtype != "fp32");
		/* bf16 on a CPU with bf16 units: ATen's one-row bf16 GEMV is slower than oneDNN's matmul on a
		 * weight reordered once (tools/bench/linear_kernels.py), so bundles that can (llm_pack_cpu)
		 * reorder their LLM projections now and release the plain copies (weights held once);
		 * the real CPU decides, not a test's injected answer.
		 * The freed pages sit in the middle of malloc's heaps: hand them back to the kernel.
		 * cpu_pack=0 (CVTEST_CPU_PACK=0) keeps ATen's path, for comparisons. */
		if (!rt->cuda && dtype == "bf16" && cfg->cpu_pack && cpu_has_bf16(nullptr) &&
		    rt->mod.find_method("llm_pack_cpu").has_value()) {
			rt->mod.run_method("llm_pack_cpu");
			rt->cpu_packed = true;
			malloc_trim(0);
		}
		/* The text table is the bundle's mapped file, attached where it is (the host): a prompt
		 * reads a few of its 150k rows, so neither the resident set nor the GPU holds it. */
		if (!cfg->text_table || !cfg->text_rows || !cfg->text_cols) {
			set_err(err, errlen, "no text embedding table given (the bundle's text_embedding)");
			return CV_EINVAL;
		}
		if (!rt->mod.find_method("llm_attach_text_table").has_value()) {
			set_err(err, errlen,
				"model.ts has no llm_attach_text_table: a bundle from an older exporter; "
				"re-export it (make bundle)");
			return CV_EINVAL;
		}
		{
			auto kind = dtype == "bf16"   ? torch::kBFloat16
				    : dtype == "fp16" ? torch::kHalf
						      : torch::kFloat32;
			auto table = torch::from_blob(const_cast<void *>(cfg->text_table),
						      {(int64_t)cfg->text_rows, (int64_t)cfg->text_cols},
						      torch::TensorOptions().dtype(kind));
			rt->mod.run_method("llm_attach_text_table", table);
		}
		if (cfg->fault && cfg->fault[0]) {
			std::string f(cfg->fault);
			size_t c1 = f.find(':');
			rt->fault_entry = f.substr(0, c1);
			rt->fault_n =
			    c1 == std::string::npos ? 1 : std::strtol(f.c_str() + c1 + 1, nullptr, 10);
			rt->fault_oom = f.find(":oom") != std::string::npos;
			if (rt->fault_n < 1)
				rt->fault_n = 1;
			if (rt->fault_entry != "llm_prefill" && rt->fault_entry != "llm_decode" &&
			    rt->fault_entry != "flow_inference" && rt->fault_entry != "hift_inference") {
				set_err(err, errlen,
					("CVTEST_FAULT: unknown entry '" + rt->fault_entry +
					 "' (want llm_prefill, llm_decode, flow_inference or hift_inference, "
					 "then "
					 ":<n>[:oom])")
					    .c_str());
				return CV_EINVAL;
			}
		}
		set_decode_mode(rt.get());
		*out = rt.release();
		return CV_OK;
	});
}

void torch_runtime_free(struct torch_runtime *rt)
{
	try {
		delete rt;
	} catch (...) {
	}
}

const char *torch_runtime_device(const struct torch_runtime *rt)
{
	return rt ? rt->device_name.c_str() : "none";
}

int torch_runtime_is_cuda(const struct torch_runtime *rt)
{
	return rt && rt->cuda ? 1 : 0;
}

int torch_runtime_graph_active(const struct torch_runtime *rt)
{
	return rt && !rt->graphs.empty() ? 1 : 0;
}

const char *torch_runtime_decode_mode(const struct torch_runtime *rt)
{
	return rt ? rt->decode_mode.c_str() : "none";
}

void torch_runtime_fault_arm(struct torch_runtime *rt)
{
	if (rt && !rt->fault_entry.empty()) {
		rt->fault_armed = true;
		rt->fault_calls = 0;
	}
}

void torch_runtime_seed(struct torch_runtime *rt, uint64_t seed)
{
	try {
		torch::manual_seed(seed);
	} catch (...) {
	}
}

int torch_runtime_llm_begin(struct torch_runtime *rt, size_t capacity, char *err, size_t errlen)
{
	if (!rt) {
		set_err(err, errlen, "llm_begin: no runtime");
		return CV_EINVAL;
	}
	return guarded("llm_new_cache", err, errlen, [&]() -> int {
		if (capacity <= rt->capacity && rt->k_cache.defined())
			return CV_OK;
		/* Grow by at least half so a slowly growing workload reallocates rarely. */
		size_t want = capacity;
		if (rt->capacity && want < rt->capacity + rt->capacity / 2)
			want = rt->capacity + rt->capacity / 2;
		c10::OptionalDeviceGuard guard(call_device(rt));
		c10::InferenceMode im;
		rt->k_cache = torch::Tensor();
		rt->v_cache = torch::Tensor();
		rt->graphs.clear(); /* captured graphs point into the old cache */
		auto r = rt->mod.get_method("llm_new_cache")({(int64_t)want}).toTuple();
		rt->k_cache = r->elements()[0].toTensor();
		rt->v_cache = r->elements()[1].toTensor();
		rt->capacity = want;
		if (rt->has_decode_at) {
			auto o = torch::TensorOptions().dtype(torch::kInt64).device(rt->device);
			rt->tok_t = torch::zeros({1, 1}, o);
			rt->pos_t = torch::zeros({1}, o);
		}
		set_decode_mode(rt);
		return CV_OK;
	});
}

int torch_runtime_llm_prefill(struct torch_runtime *rt, const int32_t *text_ids, size_t n_text,
			      const int32_t *prompt_speech, size_t n_prompt, float *logp, size_t vocab,
			      char *err, size_t errlen)
{
	if (!rt || !logp || (n_text && !text_ids) || (n_prompt && !prompt_speech)) {
		set_err(err, errlen, "llm_prefill: bad arguments");
		return CV_EINVAL;
	}
	if (!rt->k_cache.defined() || n_text + n_prompt + 2 > rt->capacity) {
		set_err(err, errlen, "llm_prefill: KV cache too small (llm_begin first)");
		return CV_EINVAL;
	}
	return guarded("llm_prefill", err, errlen, [&]() -> int {
		c10::OptionalDeviceGuard guard(call_device(rt));
		c10::InferenceMode im;
		fault_check(rt, "llm_prefill");
		auto t = ids_tensor(text_ids, n_text, rt->device);
		auto p = ids_tensor(prompt_speech, n_prompt, rt->device);
		auto lp = rt->mod.get_method("llm_prefill")({t, p, rt->k_cache, rt->v_cache}).toTensor();
		return copy_logp(lp, logp, vocab, err, errlen);
	});
}

int torch_runtime_llm_decode(struct torch_runtime *rt, int32_t token, size_t pos, float *logp, size_t vocab,
			     char *err, size_t errlen)
{
	if (!rt || !logp) {
		set_err(err, errlen, "llm_decode: bad arguments");
		return CV_EINVAL;
	}
	if (!rt->k_cache.defined() || pos >= rt->capacity) {
		set_err(err, errlen, "llm_decode: position beyond the KV cache");
		return CV_EINVAL;
	}
	return guarded("llm_decode", err, errlen, [&]() -> int {
		c10::OptionalDeviceGuard guard(call_device(rt));
		c10::InferenceMode im;
		fault_check(rt, "llm_decode");
		bool use_graph = rt->cuda && rt->want_graph && rt->has_decode_at && !rt->graph_failed;
		if (use_graph || (rt->has_decode_at && rt->static_decode)) {
			/* The positions attended are the bucket's (cache[:bucket]), not
			 * the whole cache: less to read per step early in a sequence. */
			size_t bucket = decode_bucket(pos, rt->capacity);
			auto kc = rt->k_cache.narrow(3, 0, (int64_t)bucket);
			auto vc = rt->v_cache.narrow(3, 0, (int64_t)bucket);
			rt->tok_t.fill_((int64_t)token);
			rt->pos_t.fill_((int64_t)pos);
			if (use_graph) {
				auto it = rt->graphs.find(bucket);
				if (it == rt->graphs.end()) {
					graph_state g;
					if (capture_decode(rt, g, kc, vc)) {
						it = rt->graphs.emplace(bucket, std::move(g)).first;
						set_decode_mode(rt);
					} else {
						rt->graphs.clear(); /* eager from now on */
					}
				}
				if (it != rt->graphs.end()) {
					replay_decode(it->second);
					return copy_logp(it->second.logp, logp, vocab, err, errlen);
				}
			} else {
				auto lp = rt->mod.get_method("llm_decode_at")({rt->tok_t, rt->pos_t, kc, vc})
					      .toTensor();
				return copy_logp(lp, logp, vocab, err, errlen);
			}
		}
		auto tok = torch::full({1, 1}, (int64_t)token, torch::kInt64).to(rt->device);
		auto lp = rt->mod.get_method("llm_decode_one")({tok, (int64_t)pos, rt->k_cache, rt->v_cache})
			      .toTensor();
		return copy_logp(lp, logp, vocab, err, errlen);
	});
}

int torch_runtime_flow(struct torch_runtime *rt, const struct torch_runtime_flow_args *a, float **mel,
		       size_t *frames, char *err, size_t errlen)
{
	if (mel)
		*mel = nullptr;
	if (frames)
		*frames = 0;
	if (!rt || !a || !mel || !frames || !a->n_tokens || !a->tokens || !a->embedding || !a->mel_bins ||
	    (a->n_prompt_tokens && !a->prompt_tokens) || (a->n_prompt_feat && !a->prompt_feat)) {
		set_err(err, errlen, "flow: bad arguments");
		return CV_EINVAL;
	}
	return guarded("flow_inference", err, errlen, [&]() -> int {
		c10::OptionalDeviceGuard guard(call_device(rt));
		c10::InferenceMode im;
		fault_check(rt, "flow_inference");
		auto tok = ids_tensor(a->tokens, a->n_tokens, rt->device);
		auto ptok = ids_tensor(a->prompt_tokens, a->n_prompt_tokens, rt->device);
		auto feat = float_tensor(a->prompt_feat, {1, (int64_t)a->n_prompt_feat, (int64_t)a->mel_bins},
					 rt->device);
		auto emb = float_tensor(a->embedding, {1, (int64_t)a->spk_dim}, rt->device);
		auto m = rt->mod
			     .get_method("flow_inference")(
				 {tok, ptok, feat, emb, (bool)a->streaming, (bool)a->finalize})
			     .toTensor();
		if (m.dim() != 3 || m.size(1) != (int64_t)a->mel_bins) {
			set_err(err, errlen, "flow_inference: unexpected output shape");
			return CV_EENGINE;
		}
		size_t n = 0;
		int rc = to_host(m, mel, &n);
		if (rc != CV_OK) {
			set_err(err, errlen, "flow_inference: out of memory copying the mel");
			return rc;
		}
		*frames = (size_t)m.size(2);
		return CV_OK;
	});
}

int torch_runtime_hift(struct torch_runtime *rt, const float *mel, size_t mel_bins, size_t frames,
		       const float *cache_source, size_t n_cache, const float *noise, size_t n_noise,
		       float **speech, size_t *n_speech, float **source, size_t *n_source, char *err,
		       size_t errlen)
{
	if (speech)
		*speech = nullptr;
	if (source)
		*source = nullptr;
	if (!rt || !mel || !frames || !speech || !n_speech || (n_cache && !cache_source)) {
		set_err(err, errlen, "hift: bad arguments");
		return CV_EINVAL;
	}
	return guarded("hift_inference", err, errlen, [&]() -> int {
		c10::OptionalDeviceGuard guard(call_device(rt));
		c10::InferenceMode im;
		fault_check(rt, "hift_inference");
		auto m = float_tensor(mel, {1, (int64_t)mel_bins, (int64_t)frames}, rt->device);
		auto cs = float_tensor(cache_source, {1, 1, (int64_t)n_cache}, rt->device);
		c10::IValue r;
		if (noise) {
			/* noise is (1, 480 * frames, harmonics + 1): docs/cosyvoice2.md §5.1. */
			int64_t samples = (int64_t)frames * 480;
			if (n_noise % (size_t)samples != 0) {
				set_err(err, errlen, "hift: noise size is not a multiple of 480 x frames");
				return CV_EINVAL;
			}
			auto nz = float_tensor(noise, {1, samples, (int64_t)(n_noise / (size_t)samples)},
					       rt->device);
			r = rt->mod.get_method("hift_inference_noise")({m, cs, nz});
		} else {
			r = rt->mod.get_method("hift_inference")({m, cs});
		}
		auto tup = r.toTuple();
		int rc = to_host(tup->elements()[0].toTensor(), speech, n_speech);
		if (rc == CV_OK && source && n_source) {
			rc = to_host(tup->elements()[1].toTensor(), source, n_source);
			if (rc != CV_OK) {
				std::free(*speech);
				*speech = nullptr;
			}
		}
		if (rc != CV_OK)
			set_err(err, errlen, "hift_inference: out of memory copying the waveform");
		return rc;
	});
}

void torch_runtime_memory(struct torch_runtime *rt, struct torch_runtime_memory *m)
{
	if (!m)
		return;
	std::memset(m, 0, sizeof *m);
	if (!rt || !rt->cuda)
		return;
#if CV_TORCH_CUDA
	try {
		auto idx = device_index(rt);
		auto st = c10::cuda::CUDACachingAllocator::getDeviceStats(idx);
		const size_t agg = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
		m->allocated = (double)st.allocated_bytes[agg].current;
		m->reserved = (double)st.reserved_bytes[agg].current;
		m->peak = (double)st.allocated_bytes[agg].peak;
		m->device_total = (double)at::cuda::getDeviceProperties(idx)->totalGlobalMem;
		m->limit = rt->memory_limit;
		m->valid = 1;
	} catch (...) {
		m->valid = 0;
	}
#endif
}

void torch_runtime_usage_reset(struct torch_runtime *rt)
{
	if (!rt)
		return;
	try {
		if (rt->cuda) {
#if CV_TORCH_CUDA
			c10::cuda::CUDACachingAllocator::resetPeakStats(device_index(rt));
#endif
		} else {
			/* Give freed heap pages back first, so reuse shows up as growth;
			 * "5" resets the peak resident set size (VmHWM), Linux >= 4.0. */
			malloc_trim(0);
			std::ofstream f("/proc/self/clear_refs");
			f << "5";
		}
	} catch (...) {
	}
}

int torch_runtime_usage(struct torch_runtime *rt, struct torch_runtime_usage *u)
{
	if (!rt || !u)
		return CV_EINVAL;
	u->current = u->peak = 0;
	try {
		if (rt->cuda) {
#if CV_TORCH_CUDA
			auto idx = device_index(rt);
			auto st = c10::cuda::CUDACachingAllocator::getDeviceStats(idx);
			const size_t agg = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
			u->current = (double)st.allocated_bytes[agg].current;
			u->peak = (double)st.allocated_bytes[agg].peak;
#endif
			return CV_OK;
		}
	} catch (...) {
		return CV_EUNSUPPORTED;
	}
	u->current = proc_status_bytes("VmRSS");
	u->peak = proc_status_bytes("VmHWM");
	if (u->current < 0 || u->peak < 0) {
		u->current = u->peak = 0;
		return CV_EUNSUPPORTED;
	}
	return CV_OK;
}

/* The plugin's one exported symbol (built with -fvisibility=hidden). */
__attribute__((visibility("default"))) const struct torch_plugin_api *cosyvoiced_torch_plugin(void);
const struct torch_plugin_api *cosyvoiced_torch_plugin(void)
{
	static const struct torch_plugin_api api = {
	    TORCH_PLUGIN_ABI,	       torch_runtime_version,	   torch_runtime_cuda_available,
	    torch_runtime_open,	       torch_runtime_free,	   torch_runtime_device,
	    torch_runtime_is_cuda,     torch_runtime_graph_active, torch_runtime_decode_mode,
	    torch_runtime_fault_arm,   torch_runtime_seed,	   torch_runtime_llm_begin,
	    torch_runtime_llm_prefill, torch_runtime_llm_decode,   torch_runtime_flow,
	    torch_runtime_hift,	       torch_runtime_memory,	   torch_runtime_usage_reset,
	    torch_runtime_usage,
	};
	return &api;
}

} /* extern "C" */
