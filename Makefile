# RevoVoice build. GNU make, pkg-config for every system library, -MMD dependency files.
# Targets: all (default), run, test, asan, bench, fuzz, format, format-check, clean, deps.

PKGS      := jansson libmicrohttpd libjwt libsodium sqlite3 libpq yaml-0.1 \
             libre speexdsp sndfile spandsp libcurl pocketsphinx espeak-ng icu-i18n \
             libcrypto
CC        ?= cc
CXX       ?= c++
BUILD     ?= build
WERROR    ?=
SAN       ?=
OPT       ?= -O2 -g
CSTD      := -std=c17
WARN      := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter $(WERROR)
DEFS      := -D_GNU_SOURCE -DHAVE_INTTYPES_H -DHAVE_STDBOOL_H \
             -DRV_VERSION=\"$(shell cat VERSION 2>/dev/null || echo 0.0.0)\" \
             -DRV_GIT_COMMIT=\"$(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)\"
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS))
CFLAGS    += $(CSTD) $(OPT) $(WARN) $(DEFS) $(SAN) -Isrc -I$(BUILD)/gen $(PKG_CFLAGS) -MMD -MP
CXXFLAGS  += -std=c++17 $(OPT) -Wall -Wextra $(WERROR) $(SAN) -Isrc -MMD -MP
# flite has no pkg-config file (SPEECH.md).
FLITE_LIBS := -lflite_cmu_us_rms -lflite_cmu_us_slt -lflite_cmu_us_kal -lflite_cmulex \
              -lflite_usenglish -lflite
CFLAGS    += -isystem /usr/include/flite
# wslay (WebSocket framing) has no pkg-config file either.
LDLIBS    += $(PKG_LIBS) $(FLITE_LIBS) -lwslay -lcsv -lphonenumber -lstdc++ -lpthread -lm
LDFLAGS   += $(SAN)

# Every .c under src/ except main.c forms the library the daemon, tests, benches and fuzzers link.
LIB_C     := $(filter-out src/main.c,$(shell find src -name '*.c' | sort))
LIB_CC    := $(shell find src -name '*.cc' | sort)
MIGRATIONS:= $(sort $(wildcard src/store/migrations/*.sql))
GEN_C     := $(BUILD)/gen/rv_migrations.c
LIB_OBJ   := $(LIB_C:%.c=$(BUILD)/%.o) $(LIB_CC:%.cc=$(BUILD)/%.o) $(GEN_C:%.c=%.o)
# Files compiled into the binary as byte arrays (scripts/embed-file.sh): the OpenAPI document
# and the page that renders it at /api/docs.
FLOWS     := $(sort $(wildcard src/dialog/flows/*.json))
EMBED_C   := $(BUILD)/gen/rv_openapi.c $(BUILD)/gen/rv_docs_html.c $(BUILD)/gen/rv_intent_model.c \
             $(FLOWS:src/dialog/flows/%.json=$(BUILD)/gen/rv_flow_%.c)
# The built-in intent examples, for training models that extend them (api_train.c).
EMBED_C   += $(BUILD)/gen/rv_intent_data.c
LIB_OBJ   += $(EMBED_C:%.c=%.o)
TEST_C    := $(shell find tests/unit -name '*.c' | sort)
TEST_OBJ  := $(TEST_C:%.c=$(BUILD)/%.o)
BIN       := $(BUILD)/revovoice
TEST_BIN  := $(BUILD)/rv-unit-tests
WEB_DIST  := web/dist/index.html

.PHONY: all run test unit integration asan bench fuzz format format-check clean deps FORCE
all: $(BIN) $(TEST_BIN)

deps:
	@scripts/install-deps.sh

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/%.o: %.cc
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@

# The list of migration files, rewritten only when it changes: a migration added with an old
# mtime (a checkout, a copy) still regenerates the embedded set.
$(BUILD)/gen/migrations.list: FORCE
	@mkdir -p $(dir $@)
	@echo "$(MIGRATIONS)" | cmp -s - $@ || echo "$(MIGRATIONS)" > $@

$(GEN_C): $(MIGRATIONS) scripts/embed-migrations.sh $(BUILD)/gen/migrations.list
	@mkdir -p $(dir $@)
	scripts/embed-migrations.sh $@ $(MIGRATIONS)

$(BUILD)/gen/rv_openapi.c: src/api/openapi.json scripts/embed-file.sh
	@mkdir -p $(dir $@)
	scripts/embed-file.sh $@ rv_openapi_json $<

$(BUILD)/gen/rv_docs_html.c: src/api/docs.html scripts/embed-file.sh
	@mkdir -p $(dir $@)
	scripts/embed-file.sh $@ rv_docs_html $<

# The built-in intent model is trained at build time from the labelled data in the repository.
INTENT_DATA := src/nlu/intents.tsv
$(BUILD)/tools/rv-train-intents: tools/train_intents.c src/nlu/intent.c src/nlu/intent.h
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) -O2 -g $(WARN) $(DEFS) -Isrc -o $@ tools/train_intents.c src/nlu/intent.c -lm

$(BUILD)/gen/intent_model.bin: $(INTENT_DATA) $(BUILD)/tools/rv-train-intents
	@mkdir -p $(dir $@)
	$(BUILD)/tools/rv-train-intents $(INTENT_DATA) $@

$(BUILD)/gen/rv_intent_model.c: $(BUILD)/gen/intent_model.bin scripts/embed-file.sh
	scripts/embed-file.sh $@ rv_intent_model_bin $<

$(BUILD)/gen/rv_intent_data.c: $(INTENT_DATA) scripts/embed-file.sh
	@mkdir -p $(dir $@)
	scripts/embed-file.sh $@ rv_intent_data_tsv $<

# The example flows (src/dialog/flows/NAME.json) as rv_flow_NAME_json.
$(BUILD)/gen/rv_flow_%.c: src/dialog/flows/%.json scripts/embed-file.sh
	@mkdir -p $(dir $@)
	scripts/embed-file.sh $@ rv_flow_$*_json $<

$(BUILD)/gen/%.o: $(BUILD)/gen/%.c
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/librv.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(BUILD)/src/main.o $(BUILD)/librv.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(TEST_BIN): $(TEST_OBJ) $(BUILD)/librv.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# `make run`: install what is missing, build, start on the embedded defaults (data in ./data).
run: deps
	@$(MAKE) --no-print-directory all
	REVOVOICE_DEMO_SEED=1 $(BIN) serve --data-dir $(or $(DATA_DIR),data)

# `make test`: install, build, run every test; ends with "N passed, N failed".
test: deps
	@$(MAKE) --no-print-directory all
	@scripts/run-tests.sh $(BUILD)

# The same tests under AddressSanitizer + UndefinedBehaviorSanitizer, in their own build tree.
asan: deps
	@$(MAKE) --no-print-directory all BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer" \
	  SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  scripts/run-tests.sh build-asan

bench:
	@scripts/install-deps.sh --bench
	@$(MAKE) --no-print-directory all
	@bench/run.sh $(BUILD)

fuzz:
	@scripts/install-deps.sh --fuzz
	@scripts/fuzz.sh $(or $(FUZZ_SECONDS),120)

format:
	clang-format -i $$(find src tests bench tools -name '*.[ch]' -o -name '*.cc' | grep -v /corpus/)

format-check:
	clang-format --dry-run --Werror $$(find src tests bench tools -name '*.[ch]' -o -name '*.cc' | grep -v /corpus/)

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD) build-asan -name '*.d' 2>/dev/null)

