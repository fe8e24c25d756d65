/* tests/unit/check_nvml.c — the optional NVML reader (handlers/nvml.c).
 *
 * This machine has no NVIDIA driver, so the binding is tested against a
 * stand-in library (tests/unit/nvml_standin.c: the real NVML names and
 * signatures, fixed values), built by the Makefile and passed in as
 * NVML_STANDIN_LIB and NVML_STANDIN_NOUTIL_LIB (the same library without
 * nvmlDeviceGetUtilizationRates). The tests check the values and messages,
 * that every successful nvmlInit_v2 is paired with nvmlShutdown (the
 * stand-in counts them) and that a failed open unloads the library
 * (dlopen RTLD_NOLOAD finds it gone).
 *
 * The test against the real libnvidia-ml.so.1 is registered only where that
 * library loads; elsewhere it is not registered at all (one line on stderr
 * says so) rather than reported as a pass it never earned. */
#include <check.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "handlers/nvml.h"

static const char *env_or_fail(const char *name)
{
	const char *v = getenv(name);
	ck_assert_msg(v && v[0], "%s is not set (run through `make check`)", name);
	return v;
}

/* Points nvml_open at lib and clears the stand-in's failure switches. */
static void use_lib(const char *lib)
{
	ck_assert_int_eq(setenv(NVML_ENV_LIB, lib, 1), 0);
	unsetenv("NVML_STANDIN_INIT_ERROR");
	unsetenv("NVML_STANDIN_READ_ERROR");
}

static int is_loaded(const char *lib)
{
	void *h = dlopen(lib, RTLD_NOW | RTLD_NOLOAD);
	if (h)
		dlclose(h);
	return h != NULL;
}

/* The stand-in's count of unmatched nvmlInit_v2 calls, through the test's
 * own handle (*h, opened on first use; the library stays loaded while the
 * test holds it). */
static int standin_refcount(const char *lib, void **h)
{
	if (!*h)
		*h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
	ck_assert_msg(*h != NULL, "dlopen %s: %s", lib, dlerror());
	int (*fn)(void) = (int (*)(void))dlsym(*h, "nvml_standin_refcount");
	ck_assert_ptr_nonnull(fn);
	return fn();
}

START_TEST(missing_library)
{
	const char *lib = "/nonexistent/cosyvoiced-test/libnvidia-ml.so.1";
	use_lib(lib);
	struct nvml *n = (struct nvml *)0x1;
	char err[512] = "";
	ck_assert_int_eq(nvml_open(0, &n, err, sizeof err), CV_EUNSUPPORTED);
	ck_assert_ptr_eq(n, (struct nvml *)0x1);
	ck_assert_msg(strstr(err, "NVML not available (/nonexistent/cosyvoiced-test/libnvidia-ml.so.1: ") ==
			  err,
		      "%s", err);
	ck_assert_msg(strstr(err, "No such file or directory") != NULL, "%s", err);
	ck_assert_msg(strstr(err, "GPU utilization gauges disabled") != NULL, "%s", err);
	/* glibc's dlerror() repeats the path; the message names it once */
	const char *first = strstr(err, lib);
	ck_assert_ptr_nonnull(first);
	ck_assert_msg(strstr(first + 1, lib) == NULL, "%s", err);
	unsetenv(NVML_ENV_LIB);
}
END_TEST

START_TEST(bad_arguments)
{
	char err[256] = "";
	struct nvml *n = NULL;
	ck_assert_int_eq(nvml_open(-1, &n, err, sizeof err), CV_EINVAL);
	ck_assert_ptr_null(n);
	ck_assert_ptr_nonnull(strstr(err, "device index"));
	ck_assert_int_eq(nvml_open(0, NULL, err, sizeof err), CV_EINVAL);
	struct nvml_sample s = {.valid = 1, .memory_total_bytes = 5};
	ck_assert_int_eq(nvml_read(NULL, &s, err, sizeof err), CV_EINVAL);
	ck_assert_int_eq(s.valid, 0);
	ck_assert_double_eq(s.memory_total_bytes, 0);
	ck_assert_str_eq(nvml_device_name(NULL), "");
	nvml_close(NULL);
}
END_TEST

START_TEST(standin_values)
{
	const char *lib = env_or_fail("NVML_STANDIN_LIB");
	use_lib(lib);
	void *h = NULL;
	ck_assert_int_eq(standin_refcount(lib, &h), 0);
	struct nvml *n = NULL;
	char err[256] = "";
	ck_assert_msg(nvml_open(0, &n, err, sizeof err) == CV_OK, "%s", err);
	ck_assert_ptr_nonnull(n);
	ck_assert_str_eq(nvml_device_name(n), "Standin GPU");
	ck_assert_int_eq(standin_refcount(lib, &h), 1);

	struct nvml_sample s;
	for (int i = 0; i < 3; i++) {
		memset(&s, 0xff, sizeof s);
		ck_assert_msg(nvml_read(n, &s, err, sizeof err) == CV_OK, "%s", err);
		ck_assert_int_eq(s.valid, 1);
		ck_assert_double_eq(s.utilization_gpu_ratio, 0.37);
		ck_assert_double_eq(s.utilization_memory_ratio, 0.12);
		ck_assert_double_eq(s.memory_used_bytes, 1073741824.0);
		ck_assert_double_eq(s.memory_total_bytes, 4294967296.0);
	}

	/* NVML counts initializations: a second reader holds its own */
	struct nvml *n2 = NULL;
	ck_assert_msg(nvml_open(0, &n2, err, sizeof err) == CV_OK, "%s", err);
	ck_assert_int_eq(standin_refcount(lib, &h), 2);
	nvml_close(n2);
	ck_assert_int_eq(standin_refcount(lib, &h), 1);
	nvml_close(n);
	ck_assert_int_eq(standin_refcount(lib, &h), 0);
	dlclose(h);
	ck_assert_msg(!is_loaded(lib), "%s still loaded after nvml_close", lib);
	unsetenv(NVML_ENV_LIB);
}
END_TEST

START_TEST(init_failure)
{
	const char *lib = env_or_fail("NVML_STANDIN_LIB");
	use_lib(lib);
	ck_assert_int_eq(setenv("NVML_STANDIN_INIT_ERROR", "9", 1), 0); /* NVML_ERROR_DRIVER_NOT_LOADED */
	struct nvml *n = (struct nvml *)0x1;
	char err[256] = "";
	ck_assert_int_eq(nvml_open(0, &n, err, sizeof err), CV_EIO);
	ck_assert_ptr_eq(n, (struct nvml *)0x1);
	ck_assert_str_eq(err, "NVML: nvmlInit_v2 failed: Driver Not Loaded (NVML error 9); "
			      "GPU utilization gauges disabled");
	ck_assert_msg(!is_loaded(lib), "%s still loaded after a failed open", lib);
	unsetenv("NVML_STANDIN_INIT_ERROR");
	unsetenv(NVML_ENV_LIB);
}
END_TEST

START_TEST(no_such_device)
{
	const char *lib = env_or_fail("NVML_STANDIN_LIB");
	use_lib(lib);
	void *h = NULL;
	ck_assert_int_eq(standin_refcount(lib, &h), 0);
	struct nvml *n = (struct nvml *)0x1;
	char err[256] = "";
	ck_assert_int_eq(nvml_open(1, &n, err, sizeof err), CV_EIO);
	ck_assert_ptr_eq(n, (struct nvml *)0x1);
	ck_assert_str_eq(err,
			 "NVML: nvmlDeviceGetHandleByIndex_v2(1) failed: Invalid Argument (NVML error 2); "
			 "GPU utilization gauges disabled");
	/* init succeeded, so the failure path must have shut NVML down again */
	ck_assert_int_eq(standin_refcount(lib, &h), 0);
	dlclose(h);
	ck_assert_msg(!is_loaded(lib), "%s still loaded after a failed open", lib);
	unsetenv(NVML_ENV_LIB);
}
END_TEST

START_TEST(missing_symbol)
{
	const char *lib = env_or_fail("NVML_STANDIN_NOUTIL_LIB");
	use_lib(lib);
	struct nvml *n = (struct nvml *)0x1;
	char err[512] = "";
	ck_assert_int_eq(nvml_open(0, &n, err, sizeof err), CV_EUNSUPPORTED);
	ck_assert_ptr_eq(n, (struct nvml *)0x1);
	char want[512];
	snprintf(
	    want, sizeof want,
	    "NVML: symbol nvmlDeviceGetUtilizationRates not found in %s; GPU utilization gauges disabled",
	    lib);
	ck_assert_str_eq(err, want);
	ck_assert_msg(!is_loaded(lib), "%s still loaded after a failed open", lib);
	unsetenv(NVML_ENV_LIB);
}
END_TEST

START_TEST(read_failure)
{
	const char *lib = env_or_fail("NVML_STANDIN_LIB");
	use_lib(lib);
	struct nvml *n = NULL;
	char err[256] = "";
	ck_assert_msg(nvml_open(0, &n, err, sizeof err) == CV_OK, "%s", err);
	ck_assert_int_eq(setenv("NVML_STANDIN_READ_ERROR", "15", 1), 0); /* NVML_ERROR_GPU_IS_LOST */
	struct nvml_sample s;
	memset(&s, 0xff, sizeof s);
	ck_assert_int_eq(nvml_read(n, &s, err, sizeof err), CV_EIO);
	ck_assert_str_eq(err, "NVML: nvmlDeviceGetUtilizationRates failed: GPU is lost (NVML error 15)");
	ck_assert_int_eq(s.valid, 0);
	ck_assert_double_eq(s.utilization_gpu_ratio, 0);
	ck_assert_double_eq(s.memory_used_bytes, 0);
	/* a later read that works is valid again */
	unsetenv("NVML_STANDIN_READ_ERROR");
	ck_assert_msg(nvml_read(n, &s, err, sizeof err) == CV_OK, "%s", err);
	ck_assert_int_eq(s.valid, 1);
	/* a tiny error buffer truncates, NUL-terminated */
	ck_assert_int_eq(setenv("NVML_STANDIN_READ_ERROR", "15", 1), 0);
	char small[8];
	ck_assert_int_eq(nvml_read(n, &s, small, sizeof small), CV_EIO);
	ck_assert_str_eq(small, "NVML: n");
	unsetenv("NVML_STANDIN_READ_ERROR");
	nvml_close(n);
	unsetenv(NVML_ENV_LIB);
}
END_TEST

/* Only registered where libnvidia-ml.so.1 loads (see suite_nvml). */
START_TEST(real_device0)
{
	unsetenv(NVML_ENV_LIB);
	struct nvml *n = NULL;
	char err[512] = "";
	ck_assert_msg(nvml_open(0, &n, err, sizeof err) == CV_OK, "real NVML, device 0: %s", err);
	const char *name = nvml_device_name(n);
	ck_assert_msg(name[0] != '\0', "real NVML gave no device name");
	struct nvml_sample s;
	ck_assert_msg(nvml_read(n, &s, err, sizeof err) == CV_OK, "real NVML read: %s", err);
	ck_assert_int_eq(s.valid, 1);
	ck_assert(s.utilization_gpu_ratio >= 0 && s.utilization_gpu_ratio <= 1);
	ck_assert(s.utilization_memory_ratio >= 0 && s.utilization_memory_ratio <= 1);
	ck_assert(s.memory_total_bytes >= (double)(64 << 20)); /* no CUDA GPU has less */
	ck_assert(s.memory_used_bytes >= 0 && s.memory_used_bytes <= s.memory_total_bytes);
	fprintf(stderr, "nvml: real device 0 \"%s\": gpu %.2f mem %.2f used %.0f of %.0f bytes\n", name,
		s.utilization_gpu_ratio, s.utilization_memory_ratio, s.memory_used_bytes,
		s.memory_total_bytes);
	nvml_close(n);
}
END_TEST

Suite *suite_nvml(void);
Suite *suite_nvml(void)
{
	Suite *s = suite_create("nvml");
	TCase *tc = tcase_create("standin");
	tcase_add_test(tc, missing_library);
	tcase_add_test(tc, bad_arguments);
	tcase_add_test(tc, standin_values);
	tcase_add_test(tc, init_failure);
	tcase_add_test(tc, no_such_device);
	tcase_add_test(tc, missing_symbol);
	tcase_add_test(tc, read_failure);
	suite_add_tcase(s, tc);

	/* The real library, only where it loads: a test registered on a host
	 * without it could only skip or fake a pass. */
	void *h = dlopen(NVML_DEFAULT_LIB, RTLD_NOW | RTLD_LOCAL);
	if (h) {
		dlclose(h);
		TCase *tr = tcase_create("real");
		tcase_add_test(tr, real_device0);
		suite_add_tcase(s, tr);
	} else {
		fprintf(stderr, "nvml: %s does not load here; the real-device test is not registered\n",
			NVML_DEFAULT_LIB);
	}
	return s;
}
