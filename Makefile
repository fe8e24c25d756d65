# cosyvoiced — one non-recursive GNU Makefile.
#
#   make            build build/cosyvoiced
#   make run        install missing packages, build, run on 127.0.0.1:8080 (espeak-ng default;
#                   MODEL=<bundle> [DEVICE=cpu|cuda] runs CosyVoice2, installing the torch venv first)
#   make test       install missing packages, build, run unit + integration suites
#   make check      unit suites only          make integration   integration suites only
#   make asan       ASan+UBSan build (build/asan) running the whole test suite
#   make valgrind   one integration pass with the daemon under valgrind (leak-checked)
#   make lint       clang-format check + banned-function check
#   make format     clang-format -i on every C source
#   make bundle SRC=<CosyVoice2-0.5B dir> OUT=<bundle dir> [DTYPE=fp16|fp32]   export a model bundle
#   make bundle RANDOM=tiny|full OUT=<bundle dir> [DTYPE=...]                   random weights, official layout
#   make test-export  exporter tests (pytest tests/py) in the pinned torch venv (tools/dev/torch-venv.sh)
#   make install [PREFIX=/usr/local] [DESTDIR=...]   daemon + libtorch + unit + config (README "systemd")
#   make uninstall    remove what make install put there (keeps the config and /var/lib/cosyvoiced)
#   make bench [BUNDLE=tiny|full|<dir>] [DEVICE=cpu|cuda] [RUNS=n] [CASES=a,b] [BENCH_OUT=build/bench.json]
#                     engine vs eager PyTorch baseline (tools/bench/bench.py; docs/benchmarks.md)
#
# Flags compose as Redis does: STD WARN OPT DEBUG then the user's CFLAGS.
# A stamp of the effective flags rebuilds everything when they change.

BUILD    ?= build
SAN      ?=
CC       ?= cc
CXX      ?= c++
STD      := -std=c11 -D_GNU_SOURCE
WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
OPT      ?= -O2
DEBUG    ?= -g
VERSION  := 0.1.0
GIT_REV  := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)

ifeq ($(SAN),1)
  OPT := -O1 -fno-omit-frame-pointer
  SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined
endif

DEPS_STAMP := build/.deps-ok
PKGS       := libmicrohttpd jansson libopusenc opus flac soxr libsystemd espeak-ng libutf8proc
TEST_PKGS  := check libcurl

# pkg-config is evaluated lazily (recipes run after $(DEPS_STAMP) exists).
PKG_CFLAGS  = $(shell pkg-config --cflags $(PKGS))
# -ldl: handlers/nvml.c dlopens libnvidia-ml (in libc since glibc 2.34; libdl.a is an empty stub there).
PKG_LIBS    = $(shell pkg-config --libs $(PKGS)) -lmp3lame -lm -lpthread -ldl
TEST_CFLAGS = $(shell pkg-config --cflags $(TEST_PKGS))
TEST_LIBS   = $(shell pkg-config --libs $(TEST_PKGS))

ALL_CFLAGS  = $(STD) $(WARN) $(OPT) $(DEBUG) $(SANFLAGS) -I. -I$(BUILD)/gen -DCV_VERSION='"$(VERSION)"' \
              -DCV_WITH_TORCH=$(if $(filter 1,$(WITH_TORCH)),1,0) \
              $(PKG_CFLAGS) $(CFLAGS)
ALL_LDFLAGS = $(SANFLAGS) $(LDFLAGS)
# C++ (only the translation units that talk to C++ libraries: libtorch, OpenFst).
# Each such file may add flags through CXXFLAGS_<basename> and libraries through EXTRA_LIBS.
ALL_CXXFLAGS = -std=c++20 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter $(OPT) $(DEBUG) $(SANFLAGS) -I. \
               -I$(BUILD)/gen $(CXXFLAGS)
EXTRA_LIBS  ?=
# engine/text/tn_fst.cpp: wetext's TN grammars with Debian's OpenFst (libfst-dev).
CXXFLAGS_tn_fst := -std=c++17  # OpenFst 1.7.9 headers need std::allocator members removed in C++20
EXTRA_LIBS += -lfst

# libtorch (CosyVoice2 engine). The daemon never links it: engine/cosyvoice2/torch_runtime.cpp becomes the plugin
# $(BUILD)/libcosyvoiced_torch.so, which engine/cosyvoice2/torch_loader.c loads at run time after the host's libtorch
# (torch_lib setting, else the torch built against, else python3's torch; versions must match).
#   WITH_TORCH=auto (default): build the plugin when the pinned venv exists, or when the goal is `test`
#                              (which installs it first); WITH_TORCH=1 always; WITH_TORCH=0 never
#                              (the cosyvoice2 engine then reports "built without libtorch").
#   TORCH_VERSION=x.y.z        build the plugin against that torch (PyPI wheel's headers/libraries, fetched
#                              by tools/dev/torch-wheel.sh); default: the pin of tools/export/requirements-export.txt.
#   DIST=1                     a relocatable build (make dist): RPATH $ORIGIN/../lib, no build-time torch path.
# The torch dir, C++ ABI, CUDA runtime and version are read into $(TORCH_STAMP) (tools/dev/torch-stamp.sh);
# the flags below are expanded lazily, in recipes that run after the stamp.
WITH_TORCH ?= auto
ifeq ($(WITH_TORCH),auto)
  ifneq ($(filter test,$(MAKECMDGOALS))$(MODEL),)
    override WITH_TORCH := 1
  else
    override WITH_TORCH := $(shell bash tools/dev/torch-venv.sh --check >/dev/null 2>&1 && echo 1 || echo 0)
  endif
endif
TORCH_PIN     := $(shell sed -n 's/^torch==\([^[:space:]]*\).*/\1/p' tools/export/requirements-export.txt)
TORCH_VERSION ?= $(TORCH_PIN)
# set but empty (e.g. the Dockerfile's TORCH_VERSION build argument left out): the pin
ifeq ($(strip $(TORCH_VERSION)),)
  override TORCH_VERSION := $(TORCH_PIN)
endif
DIST          ?=
TORCH_STAMP := $(BUILD)/.torch-$(TORCH_VERSION)
TINY_BUNDLE := build/tiny-bundle
TINY_MODEL  := build/tiny-model
TORCH_DIR    = $(shell sed -n 1p $(TORCH_STAMP))
TORCH_ABI    = $(shell sed -n 2p $(TORCH_STAMP))
TORCH_CUDART = $(shell sed -n 3p $(TORCH_STAMP))
TORCH_FOUND  = $(shell sed -n 4p $(TORCH_STAMP))
# CUDA headers for the plugin (torch's headers include cuda_runtime_api.h, crt/host_defines.h, cublas, cusparse,
# ...): the torch venv's own nvidia/*/include (CUDA 12 wheels: one directory per library, crt/ from the pinned
# nvidia-cuda-nvcc-cu12; CUDA 13 wheels: nvidia/cu13/include), else a CUDA toolkit in /usr/local/cuda, else
# the pinned venv's (a TORCH_VERSION wheel unpacked without them). No CUDA toolkit is needed.
PIN_SITE     = $(shell bash tools/dev/torch-venv.sh --site 2>/dev/null)
CUDA_INCS   ?= $(or $(if $(wildcard $(TORCH_DIR)/../nvidia/*/include/cuda_runtime_api.h),$(wildcard $(TORCH_DIR)/../nvidia/*/include)),\
                    $(if $(wildcard /usr/local/cuda/include/cuda_runtime_api.h),/usr/local/cuda/include),\
                    $(wildcard $(PIN_SITE)/nvidia/*/include))
comma       := ,
PLUGIN      := $(BUILD)/libcosyvoiced_torch.so
PLUGIN_CPU  := $(BUILD)/libcosyvoiced_torch_cpu.so
ifeq ($(WITH_TORCH),1)
  CXXFLAGS_torch_runtime = -isystem $(TORCH_DIR)/include -isystem $(TORCH_DIR)/include/torch/csrc/api/include \
                           $(addprefix -isystem ,$(CUDA_INCS)) \
                           -D_GLIBCXX_USE_CXX11_ABI=$(TORCH_ABI) -Wno-unused-parameter \
                           -fPIC -fvisibility=hidden
  # A development build finds its torch through the plugin's RUNPATH too; a release build leaves it to
  # the loader (the host's torch).
  PLUGIN_RPATH = $(if $(DIST),,-Wl$(comma)-rpath$(comma)$(TORCH_DIR)/lib \
                 $(if $(TORCH_CUDART),-Wl$(comma)-rpath$(comma)$(dir $(TORCH_CUDART))))
  PLUGIN_LIBS = -L$(TORCH_DIR)/lib -Wl,--no-as-needed -ltorch -ltorch_cpu -ltorch_cuda -lc10 -lc10_cuda \
                $(if $(TORCH_CUDART),-L$(dir $(TORCH_CUDART)) -l:$(notdir $(TORCH_CUDART))) -Wl,--as-needed
  # The CPU-only plugin (CV_TORCH_CUDA=0): c10 and torch_cpu, nothing of libtorch_cuda's closure.
  PLUGIN_CPU_LIBS = -L$(TORCH_DIR)/lib -Wl,--no-as-needed -ltorch_cpu -lc10 -Wl,--as-needed
  TORCH_DEP := $(TORCH_STAMP)
  PLUGIN_DEP := $(PLUGIN) $(PLUGIN_CPU)
endif
# Relocatable binaries (make dist): libraries from ../lib beside bin/ (and ../../lib for libexec/cosyvoiced/),
# DT_RPATH (not RUNPATH) so the bundled libraries' own dependencies resolve there too.
ifneq ($(DIST),)
  LDFLAGS += -Wl,--disable-new-dtags -Wl,-rpath,'$$ORIGIN/../lib:$$ORIGIN/../../lib'
endif

LIB_SRCS  := $(wildcard common/*.c) $(wildcard engine/*.c engine/*/*.c) $(wildcard handlers/*.c handlers/*/*.c) \
             $(filter-out daemon/main.c,$(wildcard daemon/*.c))
LIB_CXX_SRCS := $(filter-out engine/cosyvoice2/torch_runtime.cpp,$(wildcard engine/*/*.cpp))
# The console page and the browser client (web/) are compiled in as one generated C file.
WEB_FILES := web/index.html web/console.css web/console.js web/cosyvoiced.js
WEB_OBJ   := $(BUILD)/obj/gen/web_assets.o
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o) $(LIB_CXX_SRCS:%.cpp=$(BUILD)/obj/%.o) $(WEB_OBJ)
# Link with the C++ driver when any C++ is in the library (libstdc++ comes along).
LINK      := $(if $(LIB_CXX_SRCS),$(CXX),$(CC))
MAIN_OBJ  := $(BUILD)/obj/daemon/main.o
# tests/unit/nvml_standin.c is a shared-library fixture (NVML_STANDIN below), not part of the unit binary.
UNIT_SRCS := $(filter-out tests/unit/nvml_standin.c,$(wildcard tests/unit/*.c))
UNIT_OBJS := $(UNIT_SRCS:%.c=$(BUILD)/obj/%.o)
INTEG_SRCS:= $(wildcard tests/integration/*.c)
INTEG_OBJS:= $(INTEG_SRCS:%.c=$(BUILD)/obj/%.o)
UNIT_SUITES  := $(patsubst tests/unit/check_%.c,%,$(wildcard tests/unit/check_*.c))
INTEG_SUITES := $(patsubst tests/integration/check_%.c,%,$(wildcard tests/integration/check_*.c))

DAEMON    := $(BUILD)/cosyvoiced
LIBA      := $(BUILD)/libcosyvoiced.a
UNIT_BIN  := $(BUILD)/check_unit
INTEG_BIN := $(BUILD)/check_integration
PROMTOOL   = $(shell bash tools/dev/deps.sh --print-promtool)

.PHONY: all deps run test check integration asan valgrind valgrind-run lint format clean bench-tokenizer bench-frontend bundle test-export lint-systemd bench
.DEFAULT_GOAL := all

all: $(DAEMON)

deps: $(DEPS_STAMP)
$(DEPS_STAMP): tools/dev/deps.sh
	@bash tools/dev/deps.sh
	@mkdir -p $(@D) && touch $@

# Rebuild everything when the effective flags change.
$(BUILD)/.flags: FORCE | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@echo '$(ALL_CFLAGS) $(ALL_LDFLAGS)' | cmp -s - $@ || echo '$(ALL_CFLAGS) $(ALL_LDFLAGS)' > $@
FORCE:

$(BUILD)/obj/tests/%.o: tests/%.c $(BUILD)/.flags | $(DEPS_STAMP) $(BUILD)/gen/cv_git.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(TEST_CFLAGS) -I$(BUILD)/gen -MMD -MP -c $< -o $@

$(BUILD)/obj/%.o: %.c $(BUILD)/.flags | $(DEPS_STAMP) $(BUILD)/gen/cv_git.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/obj/%.o: %.cpp $(BUILD)/.flags | $(DEPS_STAMP) $(BUILD)/gen/cv_git.h $(TORCH_DEP)
	@mkdir -p $(@D)
	$(CXX) $(ALL_CXXFLAGS) $(CXXFLAGS_$(notdir $*)) -MMD -MP -c $< -o $@

# The plugin must build from the torch venv's headers alone (a plain Debian or Docker build stage has no CUDA
# toolkit): fail when any header it includes comes from /usr/local (a toolkit's include dir, or the
# /usr/local/include links some machines have, which hid a missing nv/target once).
plugin-headers: $(TORCH_DEP)
	@bad=$$($(CXX) $(ALL_CXXFLAGS) $(CXXFLAGS_torch_runtime) -M engine/cosyvoice2/torch_runtime.cpp | tr ' \\' '\n\n' | \
	  grep '^/usr/local/' | sort -u); if [ -n "$$bad" ]; then echo "plugin-headers: headers from outside the torch venv:" >&2; \
	  echo "$$bad" | head -5 >&2; exit 1; fi; echo "plugin-headers: every CUDA/torch header from $(TORCH_DIR)/.."
.PHONY: plugin-headers

$(BUILD)/gen/web_assets.c: $(WEB_FILES) tools/dev/embed-web.sh
	@mkdir -p $(@D)
	@bash tools/dev/embed-web.sh $@ $(WEB_FILES)
$(WEB_OBJ): $(BUILD)/gen/web_assets.c $(BUILD)/.flags | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(LIBA): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(DAEMON): $(MAIN_OBJ) $(LIBA) | $(PLUGIN_DEP)
	$(LINK) $(ALL_LDFLAGS) $(MAIN_OBJ) $(LIBA) -o $@ $(PKG_LIBS) $(EXTRA_LIBS)

# The libtorch plugin (engine/cosyvoice2/torch_plugin.h): torch_runtime.cpp alone, only cosyvoiced_torch_plugin exported.
$(PLUGIN): $(BUILD)/obj/engine/cosyvoice2/torch_runtime.o
	$(CXX) $(ALL_LDFLAGS) -shared $(if $(TORCH_CUDART),-Wl$(comma)--no-undefined) $^ -o $@ $(PLUGIN_RPATH) $(PLUGIN_LIBS)
# The same source without CUDA: what the loader picks for --device cpu (engine/cosyvoice2/torch_loader.c).
$(BUILD)/obj/engine/cosyvoice2/torch_runtime_cpu.o: engine/cosyvoice2/torch_runtime.cpp $(BUILD)/.flags | $(DEPS_STAMP) $(BUILD)/gen/cv_git.h $(TORCH_DEP)
	@mkdir -p $(@D)
	$(CXX) $(ALL_CXXFLAGS) $(CXXFLAGS_torch_runtime) -DCV_TORCH_CUDA=0 -MMD -MP -c $< -o $@
$(PLUGIN_CPU): $(BUILD)/obj/engine/cosyvoice2/torch_runtime_cpu.o
	$(CXX) $(ALL_LDFLAGS) -shared -Wl,--no-undefined $^ -o $@ $(PLUGIN_RPATH) $(PLUGIN_CPU_LIBS)

# Suite lists are generated from the file names: tests/unit/check_foo.c
# defines `Suite *suite_foo(void)`.
$(BUILD)/gen/unit_suites.inc: FORCE | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@printf '$(foreach s,$(UNIT_SUITES),SUITE($(s))\n)' | sed 's/^ //' > $@.tmp && (cmp -s $@.tmp $@ || mv $@.tmp $@); rm -f $@.tmp
$(BUILD)/gen/integration_suites.inc: FORCE | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@printf '$(foreach s,$(INTEG_SUITES),SUITE($(s))\n)' | sed 's/^ //' > $@.tmp && (cmp -s $@.tmp $@ || mv $@.tmp $@); rm -f $@.tmp
# The git revision lives in a generated header rewritten only when it changes.
$(BUILD)/gen/cv_git.h: FORCE
	@mkdir -p $(@D)
	@echo '#define CV_GIT "$(GIT_REV)"' | cmp -s - $@ || echo '#define CV_GIT "$(GIT_REV)"' > $@
# What the loader knows of the plugin's torch: its version and (development builds) its lib directory.
CV_TORCH_H = printf '\#define CV_TORCH_BUILD_VERSION "%s"\n\#define CV_TORCH_LIB_DEFAULT "%s"\n' \
  '$(if $(TORCH_DEP),$(TORCH_FOUND))' '$(if $(and $(TORCH_DEP),$(if $(DIST),,1)),$(TORCH_DIR)/lib)'
$(BUILD)/gen/cv_torch.h: FORCE $(TORCH_DEP)
	@mkdir -p $(@D)
	@$(CV_TORCH_H) | cmp -s - $@ || $(CV_TORCH_H) > $@
$(BUILD)/obj/engine/cosyvoice2/torch_loader.o: $(BUILD)/gen/cv_torch.h
$(BUILD)/obj/tests/unit/main.o: $(BUILD)/gen/unit_suites.inc
$(BUILD)/obj/tests/integration/main.o: $(BUILD)/gen/integration_suites.inc

$(UNIT_BIN): $(UNIT_OBJS) $(LIBA) | $(PLUGIN_DEP)
	$(LINK) $(ALL_LDFLAGS) $(UNIT_OBJS) $(LIBA) -o $@ $(PKG_LIBS) $(EXTRA_LIBS) $(TEST_LIBS)

$(INTEG_BIN): $(INTEG_OBJS) $(LIBA)
	$(LINK) $(ALL_LDFLAGS) $^ -o $@ $(PKG_LIBS) $(EXTRA_LIBS) $(TEST_LIBS)

# Tokenizer benchmark (tools/bench/bench_tokenizer.c): load time, MB/s, bounds.
bench-tokenizer: $(BUILD)/bench_tokenizer
	$(BUILD)/bench_tokenizer models/CosyVoice-BlankEN
$(BUILD)/bench_tokenizer: $(BUILD)/obj/tools/bench/bench_tokenizer.o $(LIBA)
	$(LINK) $(ALL_LDFLAGS) $^ -o $@ $(PKG_LIBS) $(EXTRA_LIBS)

# The plugin's torch (tools/dev/torch-stamp.sh): dir, C++ ABI flag, CUDA runtime, version; one per line.
$(TORCH_STAMP): tools/dev/torch-stamp.sh tools/dev/torch-venv.sh tools/dev/torch-wheel.sh tools/export/requirements-export.txt
	@mkdir -p $(@D)
	@bash tools/dev/torch-stamp.sh $(TORCH_VERSION) > $@.tmp && mv $@.tmp $@
# Its content as a prerequisite: rewritten only when another torch is in use, so the plugin and the tiny
# bundles (which record the torch version that wrote them) are rebuilt then, and only then.
TORCH_ID := $(BUILD)/.torch-id
$(TORCH_ID): $(TORCH_STAMP) FORCE
	@cmp -s $< $@ || cp $< $@
$(BUILD)/obj/engine/cosyvoice2/torch_runtime.o: $(if $(TORCH_DEP),$(TORCH_ID))
# The tiny random CosyVoice2 bundle the engine tests load (seconds to export).
$(TINY_BUNDLE)/manifest.json: tools/export/export.py $(wildcard tools/export/cosyvoice2/*.py) $(TORCH_ID)
	@rm -rf $(TINY_MODEL)
	@py=$$(bash tools/dev/torch-venv.sh) && "$$py" tools/export/export.py --random tiny --out $(TINY_BUNDLE) --dtype fp32 \
	  --keep-model $(TINY_MODEL) >/dev/null
	@test -f $@ && touch $@
tiny-bundle: $(TINY_BUNDLE)/manifest.json
# The same tiny weights in fp16 and bf16 (CPU runs with cpu_half: tests/unit "dtype"), and a tiny model
# whose LLM overflows fp16 at the word "overflow" (--stress-scale; the engine must fail that request
# cleanly in fp16 and serve it in bf16).
TINY_HALF   := build/dtype-bundles
$(TINY_HALF)/.ok: $(TINY_BUNDLE)/manifest.json tools/export/export.py $(wildcard tools/export/cosyvoice2/*.py)
	@rm -rf $(@D) && mkdir -p $(@D)
	@py=$$(bash tools/dev/torch-venv.sh) && for d in fp16 bf16; do \
	  "$$py" tools/export/export.py --src $(TINY_MODEL) --out $(@D)/tiny-$$d --dtype $$d >/dev/null || exit 1; done && \
	  for d in fp16 bf16; do "$$py" tools/export/export.py --random tiny --stress-scale $(STRESS_SCALE) \
	    --out $(@D)/overflow-$$d --dtype $$d >/dev/null || exit 1; done
	@touch $@
STRESS_SCALE ?= 100000
# What the CosyVoice2 engine tests read (tests/unit/check_cosyvoice2.c): the bundle, its random model
# directory (eager reference modules), the venv's python and the daemon binary.
COSYVOICE2_TEST_ENV = CVTEST_BIN=$(abspath $(DAEMON)) $(if $(TORCH_DEP),COSYVOICE2_TEST_BUNDLE=$(abspath $(TINY_BUNDLE)) \
  COSYVOICE2_TEST_DTYPE_DIR=$(abspath $(TINY_HALF)) \
  COSYVOICE2_TEST_MODEL=$(abspath $(TINY_MODEL)) TORCH_PYTHON=$$(bash tools/dev/torch-venv.sh --dir)/bin/python)
.PHONY: tiny-bundle

# Text frontend: load time, corpus speed, pathological inputs (with the wetext
# grammars copied by tools/export/fetch_tn.sh into $(BUILD)/frontend/tn).
bench-frontend: $(BUILD)/bench_frontend
	bash tools/export/fetch_tn.sh $(BUILD)/frontend
	$(BUILD)/bench_frontend models/CosyVoice-BlankEN $(BUILD)/frontend/tn tests/data/frontend_corpus.txt
$(BUILD)/bench_frontend: $(BUILD)/obj/tools/bench/bench_frontend.o $(LIBA)
	$(LINK) $(ALL_LDFLAGS) $^ -o $@ $(PKG_LIBS) $(EXTRA_LIBS)

# A stand-in libnvidia-ml for tests/unit/check_nvml.c (no NVIDIA driver on the build machines):
# the real NVML names and signatures with fixed values, and a copy without
# nvmlDeviceGetUtilizationRates. Plain flags, no sanitizers: the ASan unit binary dlopens it as is.
NVML_STANDIN        := $(BUILD)/libnvml_standin.so
NVML_STANDIN_NOUTIL := $(BUILD)/libnvml_standin_noutil.so
NVML_TEST_ENV = NVML_STANDIN_LIB=$(abspath $(NVML_STANDIN)) NVML_STANDIN_NOUTIL_LIB=$(abspath $(NVML_STANDIN_NOUTIL))
$(NVML_STANDIN): tests/unit/nvml_standin.c
	@mkdir -p $(@D)
	$(CC) $(STD) $(WARN) $(OPT) $(DEBUG) -fPIC -shared $< -o $@
$(NVML_STANDIN_NOUTIL): tests/unit/nvml_standin.c
	@mkdir -p $(@D)
	$(CC) $(STD) $(WARN) $(OPT) $(DEBUG) -DNVML_STANDIN_MISSING_UTIL -fPIC -shared $< -o $@

check: $(UNIT_BIN) $(NVML_STANDIN) $(NVML_STANDIN_NOUTIL) $(DAEMON) $(if $(TORCH_DEP),$(TINY_BUNDLE)/manifest.json $(TINY_HALF)/.ok plugin-headers)
	CK_DEFAULT_TIMEOUT=$${CK_DEFAULT_TIMEOUT:-30} $(COSYVOICE2_TEST_ENV) $(NVML_TEST_ENV) $(UNIT_BIN)

# The text frontend for the /v1/text/normalize tests: tools/export/fetch_tn.sh's output, served as is.
$(BUILD)/frontend/.ok: tools/export/fetch_tn.sh | $(DEPS_STAMP)
	@rm -rf $(@D)
	bash tools/export/fetch_tn.sh $(@D)
	@touch $@

integration: $(INTEG_BIN) $(DAEMON) $(BUILD)/frontend/.ok $(if $(TORCH_DEP),$(TINY_BUNDLE)/manifest.json)
	$(COSYVOICE2_TEST_ENV) CVTEST_BIN=$(DAEMON) PROMTOOL=$(PROMTOOL) CK_DEFAULT_TIMEOUT=$${CK_DEFAULT_TIMEOUT:-120} $(INTEG_BIN)

test: lint check integration valgrind lint-systemd fuzz test-export browser

# The console page and /cosyvoiced.js in headless Chromium (tests/browser/test_console.py; Debian's chromium,
# chromium-driver and python3-selenium from tools/dev/deps.sh).
.PHONY: browser
browser: $(DAEMON) $(if $(TORCH_DEP),$(TINY_BUNDLE)/manifest.json)
	/usr/bin/python3 tests/browser/test_console.py --daemon $(DAEMON) --out $(BUILD)/browser \
	  $(if $(TORCH_DEP),--bundle $(abspath $(TINY_BUNDLE)))

# A relocatable release (tools/release/dist.sh): build/dist/cosyvoiced-<version>-linux-x86_64-torch<torch>.tar.gz,
# built in its own tree (DIST=1: RPATH $ORIGIN/../lib, the plugin against TORCH_VERSION's headers).
# `make dist-check` proves it in a bare Debian 12 root (tools/release/dist-check.sh; README "Release tarball").
DIST_BUILD = build/dist/torch-$(TORCH_VERSION)
DIST_BASE  = build/dist/cosyvoiced-$(VERSION)-linux-x86_64-torch$(TORCH_VERSION)
.PHONY: dist dist-bins dist-check
dist:
	$(MAKE) BUILD=$(DIST_BUILD) WITH_TORCH=1 DIST=1 TORCH_VERSION=$(TORCH_VERSION) dist-bins
	bash tools/release/dist.sh $(DIST_BUILD) $(DIST_BASE)
dist-bins: $(DAEMON) $(PLUGIN) $(PLUGIN_CPU) $(UNIT_BIN)
dist-check: dist $(TINY_BUNDLE)/manifest.json
	bash tools/release/dist-check.sh $(DIST_BASE).tar.gz --torch-site $$(bash tools/dev/torch-venv.sh --dir)/lib/python3.11/site-packages \
	  --bundle $(abspath $(TINY_BUNDLE))

# make install [PREFIX=/usr/local] [DESTDIR=<staging root>]: the daemon, its libtorch plugin, the pinned
# libtorch and the CUDA libraries it links under $(PREFIX)/lib/cosyvoiced (readable by the hardened unit),
# the unit (ExecStart = $(PREFIX)/bin/cosyvoiced) and the default config (tools/release/install.sh).
PREFIX ?= /usr/local
.PHONY: install uninstall
ifneq ($(filter install,$(MAKECMDGOALS)),)
  ifneq ($(TORCH_VERSION),$(TORCH_PIN))
    $(error make install copies the pinned torch $(TORCH_PIN) beside the daemon; a plugin for torch $(TORCH_VERSION) needs that torch: use make dist TORCH_VERSION=$(TORCH_VERSION) with the host's torch (torch_lib))
  endif
endif
install: $(DAEMON) $(if $(TORCH_DEP),$(PLUGIN) $(PLUGIN_CPU))
	@site=""; if [ -n "$(TORCH_DEP)" ]; then py=$$(bash tools/dev/torch-venv.sh) && \
	  site=$$("$$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') || exit 1; fi; \
	PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" bash tools/release/install.sh install $(BUILD) "$$site"
uninstall:
	@PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" bash tools/release/install.sh uninstall

# systemd unit must pass systemd-analyze verify (binary path mapped to ours).
lint-systemd: $(DAEMON)
	@bash tools/dev/verify-unit.sh systemd/cosyvoiced.service $(DAEMON)

run: $(DAEMON)
	@echo "cosyvoiced: listening on http://127.0.0.1:8080 (espeak-ng engine unless a model is configured)"
	@echo "  try: curl -s -X POST http://127.0.0.1:8080/tts -H 'Content-Type: application/json' \\"
	@echo "         -d '{\"text\":\"Hello from cosyvoiced.\"}' -o hello.wav"
	$(DAEMON) --listen 127.0.0.1 --port 8080 $(if $(MODEL),--model-dir $(MODEL) --device $(or $(DEVICE),cuda)) $(RUN_ARGS)

asan:
	$(MAKE) BUILD=build/asan SAN=1 check integration

# The valgrind pass runs the integration suites against a daemon built without libtorch
# (the espeak-ng engine): libtorch's own start-up is too slow and noisy under valgrind.
# The suites that race jobs against the clock (cancellation, shutdown, concurrency: a queue that must
# overflow) are left to the plain and ASan passes: under valgrind the event thread is too slow for them.
VALGRIND_SUITES ?= routes formats bad_inputs cors normalize
valgrind:
	$(MAKE) BUILD=build/valgrind WITH_TORCH=0 valgrind-run
valgrind-run: $(INTEG_BIN) $(DAEMON) $(BUILD)/frontend/.ok
	@set -e; for s in $(VALGRIND_SUITES); do \
	  CK_RUN_SUITE=$$s CVTEST_BIN=$(DAEMON) CVTEST_VALGRIND=1 PROMTOOL=$(PROMTOOL) \
	    CK_DEFAULT_TIMEOUT=600 $(INTEG_BIN); done

C_FILES = $(shell git ls-files -co --exclude-standard '*.c' '*.h' '*.cpp' 2>/dev/null | grep -v '^build/')
lint:
	@bash tools/dev/lint.sh

format:
	@clang-format -i $(sort $(C_FILES))

clean:
	rm -rf build

# Model bundle exporter (Python, torch from a pinned venv outside the clone; first use installs it).
DTYPE ?= fp32
# FLOW_DTYPE: the flow's own dtype (default DTYPE); DTYPE=bf16 FLOW_DTYPE=fp32 is the CPU's mix
FLOW_DTYPE ?=
FLOW_ARG = $(if $(FLOW_DTYPE),--flow-dtype $(FLOW_DTYPE))
bundle:
	@test -n "$(OUT)" || { echo "make bundle: OUT=<bundle dir> is required" >&2; exit 2; }
	@py=$$(bash tools/dev/torch-venv.sh) || exit 1; \
	if [ -n "$(RANDOM)" ]; then exec "$$py" tools/export/export.py --random "$(RANDOM)" --out "$(OUT)" --dtype "$(DTYPE)" $(FLOW_ARG); \
	elif [ -n "$(SRC)" ]; then exec "$$py" tools/export/export.py --src "$(SRC)" --out "$(OUT)" --dtype "$(DTYPE)" $(FLOW_ARG); \
	else echo "make bundle: give SRC=<model dir> or RANDOM=tiny|full" >&2; exit 2; fi

test-export:
	@py=$$(bash tools/dev/torch-venv.sh) || exit 1; "$$py" -m pytest -q tests/py

# Benchmark: the daemon's engine against the eager PyTorch pipeline on one bundle (tools/bench/bench.py).
# BUNDLE=tiny|full exports a random bundle into $(BUILD)/bundles/<name>-<DTYPE> once; full on CPU runs
# two short cases unless CASES is given. TORCH_PY overrides the venv python (GPU machines).
BUNDLE    ?= tiny
DEVICE    ?= cpu
BENCH_OUT ?= $(BUILD)/bench.json
bench: $(DAEMON)
	@py="$(TORCH_PY)"; [ -n "$$py" ] || py=$$(bash tools/dev/torch-venv.sh) || exit 1; \
	case "$(BUNDLE)" in tiny|full) dir=$(BUILD)/bundles/$(BUNDLE)-$(DTYPE)$(if $(FLOW_DTYPE),-flow$(FLOW_DTYPE)); \
	  [ -f $$dir/manifest.json ] || \
	  "$$py" tools/export/export.py --random $(BUNDLE) --out $$dir --dtype $(DTYPE) $(FLOW_ARG) || exit 1;; \
	  *) dir="$(BUNDLE)";; esac; \
	cases="$(CASES)"; runs="$(RUNS)"; \
	if [ "$(BUNDLE)" = full ] && [ "$(DEVICE)" = cpu ]; then : $${cases:=zh_short,en_short} $${runs:=2}; fi; \
	"$$py" tools/bench/bench.py --bundle "$$dir" --device $(DEVICE) --out $(BENCH_OUT) --runs $${runs:-3} \
	  $${cases:+--case-ids $$cases} $(BENCH_ARGS)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# libFuzzer targets (clang, ASan+UBSan). `make fuzz FUZZ_SECONDS=300` runs each longer;
# `make test` runs them briefly. Each tests/fuzz/fuzz_<name>.c links the library sources
# it needs (all of them; unused code is dropped by the linker).
FUZZ_SECONDS ?= 15
FUZZ_SRCS    := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS    := $(FUZZ_SRCS:tests/fuzz/%.c=build/fuzz/%)
FUZZ_CFLAGS   = -std=c11 -D_GNU_SOURCE -g -O1 -I. -I$(BUILD)/gen -fsanitize=fuzzer,address,undefined $(PKG_CFLAGS)
FUZZ_LIB_SRCS = $(filter-out handlers/http%.c,$(LIB_SRCS))  # http_web.c is among them: no web assets needed

# The C++ units (engine/*/*.cpp but the libtorch plugin: the OpenFst TN runtime) with clang++, instrumented.
# libtorch stays out of the fuzzers (no plugin beside them: the cosyvoice2 engine says "built without libtorch").
FUZZ_CXX_OBJS = $(LIB_CXX_SRCS:engine/%.cpp=build/fuzz/obj/%.o)
.PRECIOUS: build/fuzz/obj/%.o
build/fuzz/obj/%.o: engine/%.cpp | $(DEPS_STAMP)
	@mkdir -p $(@D)
	clang++ -std=c++20 -D_GNU_SOURCE -g -O1 -I. -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize=vptr,function \
	  $(CXXFLAGS_$(notdir $*)) -c $< -o $@

build/fuzz/%: tests/fuzz/%.c $(LIB_SRCS) $(FUZZ_CXX_OBJS) | $(DEPS_STAMP) $(BUILD)/gen/cv_git.h $(BUILD)/gen/cv_torch.h
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) $< $(FUZZ_LIB_SRCS) $(FUZZ_CXX_OBJS) -o $@ $(PKG_LIBS) $(EXTRA_LIBS) \
	  $(if $(FUZZ_CXX_OBJS),-lstdc++)

fuzz-build: $(FUZZ_BINS)
fuzz: $(FUZZ_BINS)
	@bash tools/export/fetch_tn.sh build/frontend >/dev/null 2>&1 || echo "fuzz: no TN grammars (tools/export/fetch_tn.sh failed): frontend fuzzed without them"
	@for f in $(FUZZ_BINS); do n=$${f#build/fuzz/fuzz_}; mkdir -p build/fuzz/corpus-$$n; \
	  echo "fuzz: $$n for $(FUZZ_SECONDS) s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -print_final_stats=0 \
	     build/fuzz/corpus-$$n tests/fuzz/corpus/$$n > build/fuzz/$$n.log 2>&1 || { tail -30 build/fuzz/$$n.log; exit 1; }; tail -2 build/fuzz/$$n.log; done
.PHONY: fuzz fuzz-build
