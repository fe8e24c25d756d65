# cosyvoiced — one non-recursive GNU Makefile.
#
#   make            build build/cosyvoiced
#   make run        install missing packages, build, run on 127.0.0.1:8080 (espeak-ng default)
#   make test       install missing packages, build, run unit + integration suites
#   make check      unit suites only          make integration   integration suites only
#   make asan       ASan+UBSan build (build/asan) running the whole test suite
#   make valgrind   one integration pass with the daemon under valgrind (leak-checked)
#   make lint       clang-format check + banned-function check
#   make format     clang-format -i on every C source
#   make bundle SRC=<CosyVoice2-0.5B dir> OUT=<bundle dir> [DTYPE=fp16|fp32]   export a model bundle
#   make bundle RANDOM=tiny|full OUT=<bundle dir> [DTYPE=...]                   random weights, official layout
#   make test-export  exporter tests (pytest tests/py) in the pinned torch venv (tools/torch-venv.sh)
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
PKGS       := libmicrohttpd jansson libopusenc opus flac soxr libsystemd espeak-ng
TEST_PKGS  := check libcurl

# pkg-config is evaluated lazily (recipes run after $(DEPS_STAMP) exists).
PKG_CFLAGS  = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS    = $(shell pkg-config --libs $(PKGS)) -lmp3lame -lm -lpthread
TEST_CFLAGS = $(shell pkg-config --cflags $(TEST_PKGS))
TEST_LIBS   = $(shell pkg-config --libs $(TEST_PKGS))

ALL_CFLAGS  = $(STD) $(WARN) $(OPT) $(DEBUG) $(SANFLAGS) -I. -DCV_VERSION='"$(VERSION)"' -DCV_GIT='"$(GIT_REV)"' \
              $(PKG_CFLAGS) $(CFLAGS)
ALL_LDFLAGS = $(SANFLAGS) $(LDFLAGS)

LIB_SRCS  := $(wildcard common/*.c) $(wildcard engine/*.c) $(wildcard handlers/*.c) \
             $(filter-out daemon/main.c,$(wildcard daemon/*.c))
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
MAIN_OBJ  := $(BUILD)/obj/daemon/main.o
UNIT_SRCS := $(wildcard tests/unit/*.c)
UNIT_OBJS := $(UNIT_SRCS:%.c=$(BUILD)/obj/%.o)
INTEG_SRCS:= $(wildcard tests/integration/*.c)
INTEG_OBJS:= $(INTEG_SRCS:%.c=$(BUILD)/obj/%.o)
UNIT_SUITES  := $(patsubst tests/unit/check_%.c,%,$(wildcard tests/unit/check_*.c))
INTEG_SUITES := $(patsubst tests/integration/check_%.c,%,$(wildcard tests/integration/check_*.c))

DAEMON    := $(BUILD)/cosyvoiced
LIBA      := $(BUILD)/libcosyvoiced.a
UNIT_BIN  := $(BUILD)/check_unit
INTEG_BIN := $(BUILD)/check_integration
PROMTOOL   = $(shell bash tools/deps.sh --print-promtool)

.PHONY: all deps run test check integration asan valgrind lint format clean bundle test-export
.DEFAULT_GOAL := all

all: $(DAEMON)

deps: $(DEPS_STAMP)
$(DEPS_STAMP): tools/deps.sh
	@bash tools/deps.sh
	@mkdir -p $(@D) && touch $@

# Rebuild everything when the effective flags change.
$(BUILD)/.flags: FORCE | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@echo '$(ALL_CFLAGS) $(ALL_LDFLAGS)' | cmp -s - $@ || echo '$(ALL_CFLAGS) $(ALL_LDFLAGS)' > $@
FORCE:

$(BUILD)/obj/tests/%.o: tests/%.c $(BUILD)/.flags | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(TEST_CFLAGS) -I$(BUILD)/gen -MMD -MP -c $< -o $@

$(BUILD)/obj/%.o: %.c $(BUILD)/.flags | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(LIBA): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(DAEMON): $(MAIN_OBJ) $(LIBA)
	$(CC) $(ALL_LDFLAGS) $^ -o $@ $(PKG_LIBS)

# Suite lists are generated from the file names: tests/unit/check_foo.c
# defines `Suite *suite_foo(void)`.
$(BUILD)/gen/unit_suites.inc: $(BUILD)/.flags
	@mkdir -p $(@D)
	@printf '$(foreach s,$(UNIT_SUITES),SUITE($(s))\n)' | sed 's/^ //' > $@.tmp && (cmp -s $@.tmp $@ || mv $@.tmp $@); rm -f $@.tmp
$(BUILD)/gen/integration_suites.inc: $(BUILD)/.flags
	@mkdir -p $(@D)
	@printf '$(foreach s,$(INTEG_SUITES),SUITE($(s))\n)' | sed 's/^ //' > $@.tmp && (cmp -s $@.tmp $@ || mv $@.tmp $@); rm -f $@.tmp
$(BUILD)/obj/tests/unit/main.o: $(BUILD)/gen/unit_suites.inc
$(BUILD)/obj/tests/integration/main.o: $(BUILD)/gen/integration_suites.inc

$(UNIT_BIN): $(UNIT_OBJS) $(LIBA)
	$(CC) $(ALL_LDFLAGS) $^ -o $@ $(PKG_LIBS) $(TEST_LIBS)

$(INTEG_BIN): $(INTEG_OBJS) $(LIBA)
	$(CC) $(ALL_LDFLAGS) $^ -o $@ $(PKG_LIBS) $(TEST_LIBS)

check: $(UNIT_BIN)
	CK_DEFAULT_TIMEOUT=$${CK_DEFAULT_TIMEOUT:-30} $(UNIT_BIN)

integration: $(INTEG_BIN) $(DAEMON)
	COSYVOICED_BIN=$(DAEMON) PROMTOOL=$(PROMTOOL) CK_DEFAULT_TIMEOUT=$${CK_DEFAULT_TIMEOUT:-120} $(INTEG_BIN)

test: check integration lint-systemd

# systemd unit must pass systemd-analyze verify (binary path mapped to ours).
lint-systemd: $(DAEMON)
	@bash tools/verify-unit.sh systemd/cosyvoiced.service $(DAEMON)

run: $(DAEMON)
	@echo "cosyvoiced: listening on http://127.0.0.1:8080 (espeak-ng engine unless a model is configured)"
	@echo "  try: curl -s -X POST http://127.0.0.1:8080/tts -H 'Content-Type: application/json' \\"
	@echo "         -d '{\"text\":\"Hello from cosyvoiced.\"}' -o hello.wav"
	$(DAEMON) --listen 127.0.0.1 --port 8080 $(RUN_ARGS)

asan:
	$(MAKE) BUILD=build/asan SAN=1 check integration

valgrind: $(INTEG_BIN) $(DAEMON)
	COSYVOICED_BIN=$(DAEMON) COSYVOICED_VALGRIND=1 PROMTOOL=$(PROMTOOL) CK_DEFAULT_TIMEOUT=600 $(INTEG_BIN)

C_FILES = $(shell git ls-files '*.c' '*.h' 2>/dev/null; ls tests/*/*.c tests/*/*.h */*.c */*.h 2>/dev/null) 
lint:
	@bash tools/lint.sh

format:
	@clang-format -i $(sort $(C_FILES))

clean:
	rm -rf build

# Model bundle exporter (Python, torch from a pinned venv outside the clone; first use installs it).
DTYPE ?= fp32
bundle:
	@test -n "$(OUT)" || { echo "make bundle: OUT=<bundle dir> is required" >&2; exit 2; }
	@py=$$(bash tools/torch-venv.sh) || exit 1; \
	if [ -n "$(RANDOM)" ]; then exec "$$py" tools/export.py --random "$(RANDOM)" --out "$(OUT)" --dtype "$(DTYPE)"; \
	elif [ -n "$(SRC)" ]; then exec "$$py" tools/export.py --src "$(SRC)" --out "$(OUT)" --dtype "$(DTYPE)"; \
	else echo "make bundle: give SRC=<model dir> or RANDOM=tiny|full" >&2; exit 2; fi

test-export:
	@py=$$(bash tools/torch-venv.sh) || exit 1; "$$py" -m pytest -q tests/py

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
