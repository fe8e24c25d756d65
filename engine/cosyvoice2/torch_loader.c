/* engine/cosyvoice2/torch_loader.c — finds a libtorch at run time, loads it and the plugin, forwards
 * torch_runtime.h.
 *
 * DESIGN: the daemon binary links no libtorch, so one binary runs on a host
 * without torch (espeak-ng) and with whatever torch the host has, as long as
 * its version is the one the plugin (libcosyvoiced_torch.so, built from
 * engine/cosyvoice2/torch_runtime.cpp) was compiled against: libtorch has no stable C++
 * ABI across releases, so the loader compares versions before it loads
 * anything and refuses a mismatch with both versions named.
 *
 * Search, first hit wins:
 *   1. the torch_lib setting (COSYVOICED_TORCH_LIB): a directory with libtorch.so;
 *   2. the torch `make install` put beside the plugin (../lib/cosyvoiced/torch/lib);
 *   3. the torch this build linked against (a development build's venv;
 *      empty in a release built with `make dist`);
 *   4. the torch of the host's python3 (located without importing it).
 * The version comes from torch/version.py beside that lib directory.
 *
 * Loading: c10, torch_cpu, c10_cuda, torch_cuda and torch are dlopen'ed by
 * full path with RTLD_GLOBAL (their own dependencies resolve through their
 * RUNPATHs, as when python imports torch); the plugin's DT_NEEDED entries
 * then match them by soname. The plugin is looked for next to the
 * executable (build tree), in ../lib (release tarball) and in
 * ../lib/cosyvoiced (make install).
 *
 * Two plugins from the same source: libcosyvoiced_torch.so (CPU and CUDA)
 * and libcosyvoiced_torch_cpu.so (built without CUDA, linked to c10 and
 * torch_cpu alone). A process whose first runtime is on the CPU loads the
 * second and only c10 + torch_cpu: cuBLAS(Lt), cuDNN, cuSPARSELt, NCCL and
 * the rest of libtorch_cuda's closure are never mapped (about 260 MB of
 * resident memory and ~0.1 s of library loading less); without that file it
 * falls back to the first.
 * The outcome, good or bad, is kept for the life of the process (a CUDA
 * runtime asked of a process that loaded the CPU plugin is refused by it,
 * with the reason).
 */
#include "engine/cosyvoice2/torch_runtime.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <stdarg.h>

#include "common/err.h"
#include "common/log.h"
#include "common/path.h"
#include "cv_torch.h"
#include "engine/cosyvoice2/torch_plugin.h"

#define TL_PATH_MAX    4096
#define TL_ERR_MAX     1024
#define TL_VERSION_MAX 64
#define TL_PYTHON_FIND                                                             \
	"python3 -c 'import importlib.util as u, os; s = u.find_spec(\"torch\"); " \
	"print(os.path.join(os.path.dirname(s.origin), \"lib\") if s and s.origin else \"\")' 2>/dev/null"

static pthread_mutex_t tl_lock = PTHREAD_MUTEX_INITIALIZER;
static int tl_tried;
static int tl_rc;
static char tl_err[TL_ERR_MAX];
static char tl_dir[TL_PATH_MAX];
static char tl_version[TL_VERSION_MAX];
static const struct torch_plugin_api *tl_api;

static int tl_has_libtorch(const char *dir)
{
	char p[TL_PATH_MAX];
	return dir && dir[0] && snprintf(p, sizeof p, "%s/libtorch.so", dir) < (int)sizeof p &&
	       path_is_file(p);
}

/* The plugin called file (TORCH_PLUGIN_FILE or TORCH_PLUGIN_CPU_FILE) in the places below. */
static int tl_find_plugin(const char *file, char *path, size_t len, char *tried, size_t tlen)
{
	/* build tree, release tarball, make install */
	static const char *const where[] = {"", "/../lib", "/../lib/cosyvoiced"};
	char dir[TL_PATH_MAX];
	if (path_exe_dir(dir, sizeof dir) != CV_OK) {
		snprintf(tried, tlen, "(cannot read /proc/self/exe)");
		return 0;
	}
	for (size_t i = 0; i < sizeof where / sizeof where[0]; i++)
		if (snprintf(path, len, "%s%s/%s", dir, where[i], file) < (int)len && path_is_file(path))
			return 1;
	snprintf(tried, tlen, "%.1300s, %.1300s/../lib or %.1300s/../lib/cosyvoiced", dir, dir, dir);
	return 0;
}

/* The host python's torch/lib directory, "" when none. */
static void tl_python_torch(char *dir, size_t len)
{
	dir[0] = '\0';
	FILE *p = popen(TL_PYTHON_FIND, "r");
	if (!p)
		return;
	if (!fgets(dir, (int)len, p))
		dir[0] = '\0';
	pclose(p);
	dir[strcspn(dir, "\r\n")] = '\0';
}

/* __version__ of torch/version.py beside lib_dir ("2.11.0+cu130"); "" when unreadable. */
static void tl_read_version(const char *lib_dir, char *ver, size_t len)
{
	char p[TL_PATH_MAX], line[256];
	ver[0] = '\0';
	if (snprintf(p, sizeof p, "%s/../version.py", lib_dir) >= (int)sizeof p)
		return;
	FILE *f = fopen(p, "r");
	if (!f)
		return;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "__version__", 11) != 0)
			continue;
		char *q = strpbrk(line, "'\"");
		if (!q)
			break;
		char quote = *q++;
		char *e = strchr(q, quote);
		if (e && (size_t)(e - q) < len) {
			memcpy(ver, q, (size_t)(e - q));
			ver[e - q] = '\0';
		}
		break;
	}
	fclose(f);
}

/* Equal release numbers ("2.11.0" == "2.11.0+cu130"); the local part names the CUDA
 * build, which does not change libtorch's C++ interface. */
static int tl_same_release(const char *a, const char *b)
{
	size_t la = strcspn(a, "+"), lb = strcspn(b, "+");
	return la == lb && strncmp(a, b, la) == 0;
}

__attribute__((format(printf, 2, 3))) static int tl_fail(int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cv_verrf(tl_err, sizeof tl_err, fmt, ap);
	va_end(ap);
	return rc;
}

static int tl_load_locked(const char *torch_lib, int cpu_only)
{
	char plugin[TL_PATH_MAX], tried[TL_PATH_MAX], dir[TL_PATH_MAX], found_ver[TL_VERSION_MAX];
	char installed[TL_PATH_MAX + 16];
	const char *want = CV_TORCH_BUILD_VERSION;

	cpu_only =
	    cpu_only && tl_find_plugin(TORCH_PLUGIN_CPU_FILE, plugin, sizeof plugin, tried, sizeof tried);
	if (!cpu_only && !tl_find_plugin(TORCH_PLUGIN_FILE, plugin, sizeof plugin, tried, sizeof tried))
		return tl_fail(CV_EUNSUPPORTED,
			       "cosyvoice2 engine: built without libtorch (no " TORCH_PLUGIN_FILE
			       " in %s; build with WITH_TORCH=1, or use a release built for your torch)",
			       tried);
	if (torch_lib && torch_lib[0]) {
		if (!tl_has_libtorch(torch_lib))
			return tl_fail(
			    CV_EINVAL,
			    "torch_lib %s: no libtorch.so there (want the lib directory of a torch %s, "
			    "e.g. .../site-packages/torch/lib)",
			    torch_lib, want);
		snprintf(dir, sizeof dir, "%s", torch_lib);
	} else if (snprintf(installed, sizeof installed, "%.*s/torch/lib",
			    (int)(strrchr(plugin, '/') - plugin), plugin) < (int)sizeof installed &&
		   strlen(installed) < sizeof dir && tl_has_libtorch(installed)) {
		snprintf(dir, sizeof dir, "%.4000s", installed);
	} else if (tl_has_libtorch(CV_TORCH_LIB_DEFAULT)) {
		snprintf(dir, sizeof dir, "%s", CV_TORCH_LIB_DEFAULT);
	} else {
		tl_python_torch(dir, sizeof dir);
		if (!tl_has_libtorch(dir))
			return tl_fail(
			    CV_EUNSUPPORTED,
			    "no libtorch found: set torch_lib (COSYVOICED_TORCH_LIB) to the lib directory "
			    "of a torch %s (e.g. .../site-packages/torch/lib), or install torch %s for "
			    "python3",
			    want, want);
	}
	tl_read_version(dir, found_ver, sizeof found_ver);
	if (!found_ver[0])
		log_warn("torch", "%s/../version.py unreadable: cannot check the torch version (want %s)",
			 dir, want);
	else if (!tl_same_release(found_ver, want))
		return tl_fail(
		    CV_EINVAL,
		    "torch %s found, this cosyvoiced is built for torch %s: use a release for %s (make dist "
		    "TORCH_VERSION=%.*s) or set torch_lib to a torch %s (found: %s)",
		    found_ver, want, found_ver, (int)strcspn(found_ver, "+"), found_ver, want, dir);

	static const char *const libs[] = {"libc10.so", "libtorch_cpu.so", "libc10_cuda.so",
					   "libtorch_cuda.so", "libtorch.so"};
	size_t n_libs = cpu_only ? 2 : sizeof libs / sizeof libs[0];
	for (size_t i = 0; i < n_libs; i++) {
		char p[TL_PATH_MAX];
		if (snprintf(p, sizeof p, "%s/%s", dir, libs[i]) >= (int)sizeof p || !path_is_file(p))
			continue;
		if (!dlopen(p, RTLD_NOW | RTLD_GLOBAL))
			return tl_fail(CV_EIO, "loading %s failed: %s", p, dlerror());
	}
	void *h = dlopen(plugin, RTLD_NOW | RTLD_LOCAL);
	if (!h)
		return tl_fail(CV_EIO, "loading %s failed: %s", plugin, dlerror());
	torch_plugin_fn fn = (torch_plugin_fn)dlsym(h, TORCH_PLUGIN_SYMBOL);
	const struct torch_plugin_api *api = fn ? fn() : NULL;
	if (!api || api->abi != TORCH_PLUGIN_ABI)
		return tl_fail(CV_EINVAL,
			       "%s: not the plugin of this cosyvoiced build (interface %d, want %d)", plugin,
			       api ? api->abi : -1, TORCH_PLUGIN_ABI);
	snprintf(tl_dir, sizeof tl_dir, "%s", dir);
	snprintf(tl_version, sizeof tl_version, "%s", found_ver[0] ? found_ver : api->version());
	tl_api = api;
	log_info("torch", "libtorch %s from %s, plugin %s", tl_version, tl_dir, plugin);
	return CV_OK;
}

int torch_runtime_load(const char *torch_lib, int cpu_only, char *err, size_t errlen)
{
	pthread_mutex_lock(&tl_lock);
	if (!tl_tried) {
		tl_tried = 1;
		tl_err[0] = '\0';
		tl_rc = tl_load_locked(torch_lib, cpu_only);
	}
	int rc = tl_rc;
	if (rc != CV_OK && err && errlen)
		snprintf(err, errlen, "%s", tl_err);
	pthread_mutex_unlock(&tl_lock);
	return rc;
}

const char *torch_runtime_lib_dir(void)
{
	return tl_api ? tl_dir : "";
}

const char *torch_runtime_version(void)
{
	return tl_api ? tl_version : CV_TORCH_BUILD_VERSION;
}

const char *torch_runtime_build_version(void)
{
	return CV_TORCH_BUILD_VERSION;
}

int torch_runtime_version_matches(const char *version)
{
	return version && tl_same_release(version, CV_TORCH_BUILD_VERSION);
}

int torch_runtime_cuda_available(void)
{
	return torch_runtime_load(NULL, 0, NULL, 0) == CV_OK && tl_api->cuda_available();
}

int torch_runtime_open(const struct torch_runtime_config *cfg, struct torch_runtime **out, char *err,
		       size_t errlen)
{
	if (out)
		*out = NULL;
	const char *dev = cfg && cfg->device && cfg->device[0] ? cfg->device : "cpu";
	int rc = torch_runtime_load(cfg ? cfg->torch_lib : NULL, strcmp(dev, "cpu") == 0, err, errlen);
	return rc != CV_OK ? rc : tl_api->open(cfg, out, err, errlen);
}

/* The calls below take a runtime that torch_runtime_open made, so the plugin is loaded. */
void torch_runtime_free(struct torch_runtime *rt)
{
	if (rt)
		tl_api->free(rt);
}

const char *torch_runtime_device(const struct torch_runtime *rt)
{
	return rt ? tl_api->device(rt) : "none";
}

int torch_runtime_is_cuda(const struct torch_runtime *rt)
{
	return rt ? tl_api->is_cuda(rt) : 0;
}

int torch_runtime_graph_active(const struct torch_runtime *rt)
{
	return rt ? tl_api->graph_active(rt) : 0;
}

const char *torch_runtime_decode_mode(const struct torch_runtime *rt)
{
	return rt ? tl_api->decode_mode(rt) : "none";
}

void torch_runtime_fault_arm(struct torch_runtime *rt)
{
	if (rt)
		tl_api->fault_arm(rt);
}

void torch_runtime_seed(struct torch_runtime *rt, uint64_t seed)
{
	if (rt)
		tl_api->seed(rt, seed);
}

int torch_runtime_llm_begin(struct torch_runtime *rt, size_t capacity, char *err, size_t errlen)
{
	return tl_api->llm_begin(rt, capacity, err, errlen);
}

int torch_runtime_llm_prefill(struct torch_runtime *rt, const int32_t *text_ids, size_t n_text,
			      const int32_t *prompt_speech, size_t n_prompt, float *logp, size_t vocab,
			      char *err, size_t errlen)
{
	return tl_api->llm_prefill(rt, text_ids, n_text, prompt_speech, n_prompt, logp, vocab, err, errlen);
}

int torch_runtime_llm_decode(struct torch_runtime *rt, int32_t token, size_t pos, float *logp, size_t vocab,
			     char *err, size_t errlen)
{
	return tl_api->llm_decode(rt, token, pos, logp, vocab, err, errlen);
}

int torch_runtime_flow(struct torch_runtime *rt, const struct torch_runtime_flow_args *a, float **mel,
		       size_t *frames, char *err, size_t errlen)
{
	return tl_api->flow(rt, a, mel, frames, err, errlen);
}

int torch_runtime_hift(struct torch_runtime *rt, const float *mel, size_t mel_bins, size_t frames,
		       const float *cache_source, size_t n_cache, const float *noise, size_t n_noise,
		       float **speech, size_t *n_speech, float **source, size_t *n_source, char *err,
		       size_t errlen)
{
	return tl_api->hift(rt, mel, mel_bins, frames, cache_source, n_cache, noise, n_noise, speech,
			    n_speech, source, n_source, err, errlen);
}

void torch_runtime_memory(struct torch_runtime *rt, struct torch_runtime_memory *m)
{
	if (rt)
		tl_api->memory(rt, m);
	else if (m)
		memset(m, 0, sizeof *m);
}

void torch_runtime_usage_reset(struct torch_runtime *rt)
{
	if (rt)
		tl_api->usage_reset(rt);
}

int torch_runtime_usage(struct torch_runtime *rt, struct torch_runtime_usage *u)
{
	return rt ? tl_api->usage(rt, u) : CV_EINVAL;
}
