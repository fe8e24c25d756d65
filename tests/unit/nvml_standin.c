/* tests/unit/nvml_standin.c — a stand-in for libnvidia-ml, for the unit
 * tests of handlers/nvml.c only.
 *
 * This is NOT NVML and says nothing about how a real GPU behaves: the build
 * and test machines have no NVIDIA driver, so the binding (dlopen, dlsym,
 * init/shutdown pairing, error paths, unit conversion) is exercised against
 * this library instead. It exports a few functions under the real NVML names
 * and signatures (public NVML C API) and returns fixed, known values: one
 * device "Standin GPU", 37 % GPU and 12 % memory utilization, 1 GiB of
 * 4 GiB used. The Makefile builds it twice into $(BUILD): libnvml_standin.so
 * and, with -DNVML_STANDIN_MISSING_UTIL, libnvml_standin_noutil.so (no
 * nvmlDeviceGetUtilizationRates), and the `check` target passes both paths
 * (NVML_STANDIN_LIB, NVML_STANDIN_NOUTIL_LIB) to the unit tests.
 *
 * Failures are controlled through the environment, read at each call:
 *   NVML_STANDIN_INIT_ERROR=<code>  nvmlInit_v2 returns <code>
 *   NVML_STANDIN_READ_ERROR=<code>  nvmlDeviceGetUtilizationRates returns <code>
 * nvml_standin_refcount() (not an NVML function) lets the tests check that
 * every successful nvmlInit_v2 is paired with one nvmlShutdown.
 */
#include <stdlib.h>
#include <string.h>

typedef int nvmlReturn_t;
typedef struct nvmlDevice_st *nvmlDevice_t;
typedef struct {
	unsigned long long total, free, used;
} nvmlMemory_t;
typedef struct {
	unsigned int gpu, memory;
} nvmlUtilization_t;

/* nvmlReturn_t values, from the public API */
enum {
	NVML_SUCCESS = 0,
	NVML_ERROR_UNINITIALIZED = 1,
	NVML_ERROR_INVALID_ARGUMENT = 2,
	NVML_ERROR_NOT_SUPPORTED = 3,
	NVML_ERROR_INSUFFICIENT_SIZE = 7,
	NVML_ERROR_DRIVER_NOT_LOADED = 9,
	NVML_ERROR_GPU_IS_LOST = 15,
	NVML_ERROR_UNKNOWN = 999
};

nvmlReturn_t nvmlInit_v2(void);
nvmlReturn_t nvmlShutdown(void);
nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device);
nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory);
nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization);
nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length);
const char *nvmlErrorString(nvmlReturn_t result);
int nvml_standin_refcount(void);

struct nvmlDevice_st {
	int unused;
};
static struct nvmlDevice_st the_device;
static int refcount; /* nvmlInit_v2 minus nvmlShutdown, as NVML counts them */

static const char STANDIN_NAME[] = "Standin GPU";

/* The integer in environment variable name, or NVML_SUCCESS when unset. */
static nvmlReturn_t env_code(const char *name)
{
	const char *v = getenv(name);
	return v && v[0] ? (nvmlReturn_t)strtol(v, NULL, 10) : NVML_SUCCESS;
}

static int bad_device(nvmlDevice_t device)
{
	return refcount <= 0 || device != &the_device;
}

nvmlReturn_t nvmlInit_v2(void)
{
	nvmlReturn_t rc = env_code("NVML_STANDIN_INIT_ERROR");
	if (rc != NVML_SUCCESS)
		return rc;
	refcount++;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlShutdown(void)
{
	if (refcount <= 0)
		return NVML_ERROR_UNINITIALIZED;
	refcount--;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)
{
	if (refcount <= 0)
		return NVML_ERROR_UNINITIALIZED;
	if (index != 0 || !device)
		return NVML_ERROR_INVALID_ARGUMENT;
	*device = &the_device;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory)
{
	if (bad_device(device) || !memory)
		return refcount <= 0 ? NVML_ERROR_UNINITIALIZED : NVML_ERROR_INVALID_ARGUMENT;
	memory->total = 4ULL << 30;
	memory->used = 1ULL << 30;
	memory->free = memory->total - memory->used;
	return NVML_SUCCESS;
}

#ifndef NVML_STANDIN_MISSING_UTIL
nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization)
{
	if (bad_device(device) || !utilization)
		return refcount <= 0 ? NVML_ERROR_UNINITIALIZED : NVML_ERROR_INVALID_ARGUMENT;
	nvmlReturn_t rc = env_code("NVML_STANDIN_READ_ERROR");
	if (rc != NVML_SUCCESS)
		return rc;
	utilization->gpu = 37;
	utilization->memory = 12;
	return NVML_SUCCESS;
}
#endif

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length)
{
	if (bad_device(device) || !name)
		return refcount <= 0 ? NVML_ERROR_UNINITIALIZED : NVML_ERROR_INVALID_ARGUMENT;
	if (length < sizeof STANDIN_NAME)
		return NVML_ERROR_INSUFFICIENT_SIZE;
	memcpy(name, STANDIN_NAME, sizeof STANDIN_NAME);
	return NVML_SUCCESS;
}

/* Texts like the real library's for these codes (the tests look for them in
 * nvml.c's messages). */
const char *nvmlErrorString(nvmlReturn_t result)
{
	switch (result) {
	case NVML_SUCCESS: return "Success";
	case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
	case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
	case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
	case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
	case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
	case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
	default: return "Unknown Error";
	}
}

int nvml_standin_refcount(void)
{
	return refcount;
}
