/* handlers/nvml.c — optional NVML reader, loaded with dlopen.
 *
 * DESIGN: GPU gauges are a nice-to-have, so nothing about them may stop the
 * daemon from building or starting. We therefore do not link libnvidia-ml
 * and do not include nvml.h: the handful of types and entry points used here
 * are declared below from NVML's public, ABI-stable C API (nvmlReturn_t is
 * an int enum with NVML_SUCCESS = 0, nvmlDevice_t an opaque pointer, the two
 * structs plain unsigned fields) and resolved with dlsym at run time. The
 * versioned names (nvmlInit_v2, nvmlDeviceGetHandleByIndex_v2) are the ones
 * nvml.h maps the plain names to, and exist in every driver since 2012.
 *
 * Every failure path hands back what it took, in reverse order: the NVML
 * initialization reference (nvmlShutdown, only after nvmlInit_v2 succeeded)
 * and the library (dlclose). nvmlErrorString is optional: without it the
 * messages carry the numeric code only. NVML's calls are thread-safe, and
 * after nvml_open() the struct is never written, so readers need no lock.
 * (dlsym's void * is converted to function pointers, as POSIX allows; the
 * project does not build with -Wpedantic, which would flag it.)
 */
#include "handlers/nvml.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/mem.h"

/* ---- the public NVML API, as much as we use of it */
typedef int nv_return;			/* nvmlReturn_t */
typedef struct nv_device_st *nv_device; /* nvmlDevice_t */
typedef struct {
	unsigned long long total, free, used;
} nv_memory; /* nvmlMemory_t */
typedef struct {
	unsigned int gpu, memory;
} nv_utilization; /* nvmlUtilization_t */
#define NV_SUCCESS 0

typedef nv_return (*nv_init_fn)(void);
typedef nv_return (*nv_shutdown_fn)(void);
typedef nv_return (*nv_handle_fn)(unsigned int index, nv_device *device);
typedef nv_return (*nv_memory_fn)(nv_device device, nv_memory *memory);
typedef nv_return (*nv_utilization_fn)(nv_device device, nv_utilization *utilization);
typedef nv_return (*nv_name_fn)(nv_device device, char *name, unsigned int length);
typedef const char *(*nv_error_string_fn)(nv_return result);

struct nvml {
	void *dl;
	nv_shutdown_fn shutdown;
	nv_memory_fn get_memory;
	nv_utilization_fn get_utilization;
	nv_error_string_fn error_string; /* may be NULL */
	nv_device dev;
	char name[NVML_NAME_CAP];
};

/* NVML's text for rc, or "" when the library has no nvmlErrorString. */
static const char *nv_text(const struct nvml *n, nv_return rc)
{
	const char *s = n->error_string ? n->error_string(rc) : NULL;
	return s ? s : "";
}

/* "NVML: <what> failed: <NVML text> (NVML error <rc>)<tail>" into err. */
static int nv_fail(const struct nvml *n, const char *what, nv_return rc, const char *tail, char *err,
		   size_t errlen)
{
	const char *t = nv_text(n, rc);
	snprintf(err, errlen, "NVML: %s failed: %s%s(NVML error %d)%s", what, t, t[0] ? " " : "", rc, tail);
	return CV_EIO;
}

#define OPEN_TAIL "; GPU utilization gauges disabled"

/* dlerror() text without a leading "<lib>: " (glibc repeats the name). */
static const char *dl_reason(const char *lib)
{
	const char *e = dlerror();
	if (!e)
		return "unknown dlopen error";
	size_t k = strlen(lib);
	if (strncmp(e, lib, k) == 0 && e[k] == ':' && e[k + 1] == ' ')
		e += k + 2;
	return e;
}

static void *nv_sym(void *dl, const char *lib, const char *sym, char *err, size_t errlen)
{
	dlerror(); /* clear */
	void *p = dlsym(dl, sym);
	if (!p)
		snprintf(err, errlen, "NVML: symbol %s not found in %s" OPEN_TAIL, sym, lib);
	return p;
}

int nvml_open(int device_index, struct nvml **out, char *err, size_t errlen)
{
	if (!out || device_index < 0) {
		snprintf(err, errlen, "nvml_open: %s", out ? "negative device index" : "NULL out");
		return CV_EINVAL;
	}
	const char *lib = getenv(NVML_ENV_LIB);
	if (!lib || !lib[0])
		lib = NVML_DEFAULT_LIB;

	void *dl = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
	if (!dl) {
		snprintf(err, errlen, "NVML not available (%s: %s)" OPEN_TAIL, lib, dl_reason(lib));
		return CV_EUNSUPPORTED;
	}

	struct nvml *n = xcalloc(1, sizeof *n);
	n->dl = dl;
	int rc = CV_EUNSUPPORTED, inited = 0;
	void *p;
	nv_init_fn init;
	nv_handle_fn get_handle;
	nv_name_fn get_name;
	/* Optional; resolved first so that the errors below can use it. */
	n->error_string = (nv_error_string_fn)dlsym(dl, "nvmlErrorString");
	if (!(p = nv_sym(dl, lib, "nvmlInit_v2", err, errlen)))
		goto fail;
	init = (nv_init_fn)p;
	if (!(p = nv_sym(dl, lib, "nvmlShutdown", err, errlen)))
		goto fail;
	n->shutdown = (nv_shutdown_fn)p;
	if (!(p = nv_sym(dl, lib, "nvmlDeviceGetHandleByIndex_v2", err, errlen)))
		goto fail;
	get_handle = (nv_handle_fn)p;
	if (!(p = nv_sym(dl, lib, "nvmlDeviceGetMemoryInfo", err, errlen)))
		goto fail;
	n->get_memory = (nv_memory_fn)p;
	if (!(p = nv_sym(dl, lib, "nvmlDeviceGetUtilizationRates", err, errlen)))
		goto fail;
	n->get_utilization = (nv_utilization_fn)p;
	if (!(p = nv_sym(dl, lib, "nvmlDeviceGetName", err, errlen)))
		goto fail;
	get_name = (nv_name_fn)p;

	nv_return nrc = init();
	if (nrc != NV_SUCCESS) {
		rc = nv_fail(n, "nvmlInit_v2", nrc, OPEN_TAIL, err, errlen);
		goto fail;
	}
	inited = 1;
	nrc = get_handle((unsigned int)device_index, &n->dev);
	if (nrc != NV_SUCCESS) {
		char what[64];
		snprintf(what, sizeof what, "nvmlDeviceGetHandleByIndex_v2(%d)", device_index);
		rc = nv_fail(n, what, nrc, OPEN_TAIL, err, errlen);
		goto fail;
	}
	/* The name is for logs only: a device that will not tell keeps "". */
	if (get_name(n->dev, n->name, (unsigned int)sizeof n->name) != NV_SUCCESS)
		n->name[0] = '\0';
	n->name[sizeof n->name - 1] = '\0';
	*out = n;
	return CV_OK;

fail:
	if (inited)
		n->shutdown();
	dlclose(dl);
	free(n);
	return rc;
}

int nvml_read(struct nvml *n, struct nvml_sample *s, char *err, size_t errlen)
{
	if (!s) {
		snprintf(err, errlen, "nvml_read: NULL sample");
		return CV_EINVAL;
	}
	memset(s, 0, sizeof *s);
	if (!n) {
		snprintf(err, errlen, "nvml_read: NULL handle");
		return CV_EINVAL;
	}
	nv_utilization u = {0, 0};
	nv_memory m = {0, 0, 0};
	nv_return nrc = n->get_utilization(n->dev, &u);
	if (nrc != NV_SUCCESS)
		return nv_fail(n, "nvmlDeviceGetUtilizationRates", nrc, "", err, errlen);
	nrc = n->get_memory(n->dev, &m);
	if (nrc != NV_SUCCESS)
		return nv_fail(n, "nvmlDeviceGetMemoryInfo", nrc, "", err, errlen);
	s->utilization_gpu_ratio = u.gpu / 100.0;
	s->utilization_memory_ratio = u.memory / 100.0;
	s->memory_used_bytes = (double)m.used;
	s->memory_total_bytes = (double)m.total;
	s->valid = 1;
	return CV_OK;
}

const char *nvml_device_name(const struct nvml *n)
{
	return n ? n->name : "";
}

void nvml_close(struct nvml *n)
{
	if (!n)
		return;
	n->shutdown();
	dlclose(n->dl);
	free(n);
}
