/* handlers/nvml.h — optional NVML reader (GPU utilization and memory).
 *
 * libnvidia-ml is loaded at run time with dlopen: the daemon neither links
 * it nor needs NVIDIA headers to build, and a host without the NVIDIA driver
 * simply gets CV_EUNSUPPORTED from nvml_open() and exports no GPU gauges.
 * The library is the one named by the environment variable
 * CVTEST_NVML_LIB when set (tests point it at a stand-in), otherwise
 * "libnvidia-ml.so.1" (the driver's soname; the unversioned .so is only in
 * the CUDA development packages).
 *
 * Errors (common/err.h), always with text in err:
 *   CV_EINVAL        bad argument (NULL out, negative device index)
 *   CV_EUNSUPPORTED  the library cannot be loaded, or lacks a required symbol
 *   CV_EIO           NVML itself returned an error (driver not loaded, no
 *                    such device, GPU lost...), with NVML's error text
 * A caller that only wants gauges when possible treats every error the same:
 * log err once and go on without them.
 *
 * Threads: NVML's own calls are thread-safe, and struct nvml is read-only
 * after nvml_open(), so nvml_read() and nvml_device_name() may be called
 * from any number of threads at once. nvml_close() must not race with them.
 */
#ifndef CV_HANDLERS_NVML_H
#define CV_HANDLERS_NVML_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Environment variable that overrides the library path or soname. */
#define NVML_ENV_LIB	 "CVTEST_NVML_LIB"
#define NVML_DEFAULT_LIB "libnvidia-ml.so.1"
/* Cap of the cached device name, NUL included (NVML_DEVICE_NAME_V2_BUFFER_SIZE). */
#define NVML_NAME_CAP 96

struct nvml; /* opaque: the library handle, its entry points and one device */

/* One reading. Every field is 0 unless valid is 1. */
struct nvml_sample {
	int valid;			 /* 1 after a successful nvml_read() */
	double utilization_gpu_ratio;	 /* 0..1: share of the last sample period a kernel ran */
	double utilization_memory_ratio; /* 0..1: share of it device memory was read or written */
	double memory_used_bytes;	 /* device memory allocated, bytes */
	double memory_total_bytes;	 /* device memory installed, bytes */
};

/* Loads NVML, initializes it (nvmlInit_v2) and takes the handle of GPU
 * device_index (NVML's enumeration, which need not match CUDA's unless
 * CUDA_DEVICE_ORDER=PCI_BUS_ID). On success *out owns the library and an
 * NVML initialization reference until nvml_close(). On failure *out is left
 * untouched and nothing is held (the library is dlclose'd, NVML shut down). */
int nvml_open(int device_index, struct nvml **out, char *err, size_t errlen);

/* Reads utilization and memory of the device into *s (ratios are NVML's
 * percents / 100). On failure s->valid is 0, the other fields are 0, and the
 * error (CV_EIO with NVML's text, CV_EINVAL for NULL arguments) is returned. */
int nvml_read(struct nvml *n, struct nvml_sample *s, char *err, size_t errlen);

/* The device name read at open ("NVIDIA H100 80GB HBM3"), at most
 * NVML_NAME_CAP - 1 bytes; "" when NVML could not tell or n is NULL. Valid
 * until nvml_close(). */
const char *nvml_device_name(const struct nvml *n);

/* nvmlShutdown + dlclose + free. NULL is a no-op. */
void nvml_close(struct nvml *n);

#ifdef __cplusplus
}
#endif

#endif
