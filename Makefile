# byd — the privilege-separated Blockyard server.
#
#   make			build into build/
#   make check		install dependencies, build, run every test suite
#   make run		install dependencies, build, run byd in the foreground
#   make install PREFIX=/usr/local DESTDIR=
#   make fuzz		build the libFuzzer targets into build-fuzz/
#   make SANITIZE=1 BUILD=build-asan	an ASan/UBSan build

PREFIX	?= /usr/local
DESTDIR	?=
BUILD	?= build
CC	?= cc
SANITIZE ?= 0

PKGS	 = libevent jansson inih libbsd libmd sqlite3 libpq libseccomp libarchive
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

OPTFLAGS ?= -O2 -g
CFLAGS	+= $(OPTFLAGS) -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wpointer-arith \
	   -Wmissing-prototypes -Wstrict-prototypes -Wno-unused-parameter \
	   -fno-strict-aliasing -D_GNU_SOURCE -Icommon $(PKG_CFLAGS)
LDLIBS	+= $(PKG_LIBS) -lhttp_parser
CFLAGS	+= $(EXTRA_CFLAGS)
LDFLAGS	+= $(EXTRA_LDFLAGS)
ifeq ($(SANITIZE),1)
CFLAGS	+= -fsanitize=address,undefined -fno-omit-frame-pointer \
	   -fno-sanitize-recover=undefined
LDFLAGS	+= -fsanitize=address,undefined
endif

PROGS	 = byd byctl byproxy byspawn bystate
SBIN	 = byd byctl
LIBEXEC	 = byproxy byspawn bystate

COMMON_SRCS := $(sort $(wildcard common/*.c))
COMMON_OBJS := $(COMMON_SRCS:%.c=$(BUILD)/obj/%.o)

# Every .c of a program's folder; the one named after the program holds
# main() and is left out when the others are linked into a test.
define prog_objs
$(patsubst %.c,$(BUILD)/obj/%.o,$(sort $(wildcard $(1)/*.c))) $(GEN_OBJS_$(1))
endef

define prog_libobjs
$(filter-out $(BUILD)/obj/$(1)/$(1).o,$(call prog_objs,$(1)))
endef

# byspawn carries its build script (byspawn/build.R) as a C string.
GEN_OBJS_byspawn = $(BUILD)/obj/gen/build_script.o
$(BUILD)/gen/build_script.c: byspawn/build.R
	@mkdir -p $(dir $@)
	@{ echo '/* generated from byspawn/build.R by make */'; \
	  echo 'const char build_script[] ='; \
	  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' $<; \
	  echo ';'; } > $@
$(BUILD)/obj/gen/build_script.o: $(BUILD)/gen/build_script.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Wno-overlength-strings -c -o $@ $<

BINS	 = $(SBIN:%=$(BUILD)/sbin/%) $(LIBEXEC:%=$(BUILD)/libexec/blockyard/%)
MANS	 = $(sort $(wildcard man/*.[158]))

SECCOMP_BPF = $(BUILD)/share/blockyard/seccomp.bpf

all: $(BINS) $(SECCOMP_BPF)

$(BUILD)/obj/%.o: %.c $(wildcard common/*.h) $(wildcard $(dir %)*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -I$(dir $<) -MMD -MP -c -o $@ $<

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

define link_prog
$(1): $(call prog_objs,$(2)) $(COMMON_OBJS)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach p,$(SBIN),$(eval $(call link_prog,$(BUILD)/sbin/$(p),$(p))))
$(foreach p,$(LIBEXEC),$(eval $(call link_prog,$(BUILD)/libexec/blockyard/$(p),$(p))))

# The worker seccomp filter, compiled by byctl (see etc/seccomp.md).
$(SECCOMP_BPF): $(BUILD)/sbin/byctl
	@mkdir -p $(dir $@)
	$(BUILD)/sbin/byctl seccomp export $@

# ---- tests ---------------------------------------------------------------

UNIT_SRCS := $(sort $(wildcard regress/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:regress/unit/%.c=$(BUILD)/regress/%)

# test_<prog>_*.c links that program's objects (without its main).
define unit_deps
$(COMMON_OBJS) $(foreach p,$(PROGS),$(if $(filter test_$(p)_%,$(1)),$(call prog_libobjs,$(p))))
endef

$(BUILD)/regress/%: regress/unit/%.c $(COMMON_OBJS) $(foreach p,$(PROGS),$(call prog_libobjs,$(p)))
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Iregress/unit $(addprefix -I,$(PROGS)) -o $@ $< \
	    $(call unit_deps,$*) $(LDFLAGS) $(LDLIBS) $(shell pkg-config --libs check)

unit: $(UNIT_BINS)
	@regress/run-unit $(UNIT_BINS)

integration: all
	@BUILD=$(abspath $(BUILD)) regress/run-integration

mandoc-lint:
	@if mandoc -Tlint -Wwarning $(MANS); then \
	    echo "mandoc: $(words $(MANS)) pages clean"; \
	    [ -z "$$RESULTS" ] || echo "mandoc $(words $(MANS)) 0" >> $$RESULTS; \
	else [ -z "$$RESULTS" ] || echo "mandoc 0 1" >> $$RESULTS; exit 1; fi

deps:
	@etc/install-deps

# Counts of every suite, summed up by regress/summary at the end.
check: export RESULTS := $(abspath build-asan/results)

check: deps
	@mkdir -p build-asan && rm -f $(RESULTS)
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory SANITIZE=1 BUILD=build-asan all unit
	@$(MAKE) --no-print-directory mandoc-lint
	@$(MAKE) --no-print-directory SANITIZE=1 BUILD=build-asan integration
	@$(MAKE) --no-print-directory fuzz-smoke
	@regress/summary

# deps first, then a new make that sees the installed pkg-config files
run: deps
	@$(MAKE) --no-print-directory all
	@etc/run-local $(BUILD)

# ---- fuzzing (clang, libFuzzer) ------------------------------------------

FUZZ_SRCS := $(sort $(wildcard regress/fuzz/fuzz_*.c))
FUZZ_BINS := $(FUZZ_SRCS:regress/fuzz/%.c=build-fuzz/%)

fuzz:
	@$(MAKE) --no-print-directory BUILD=build-fuzz CC=clang OPTFLAGS="-O1 -g" \
	    EXTRA_CFLAGS="-fsanitize=fuzzer-no-link,address,undefined" \
	    EXTRA_LDFLAGS="-fsanitize=address,undefined" fuzz-bins

fuzz-bins: $(FUZZ_BINS)

build-fuzz/fuzz_%: regress/fuzz/fuzz_%.c $(COMMON_OBJS) $(foreach p,$(PROGS),$(call prog_libobjs,$(p)))
	$(CC) $(CFLAGS) -fsanitize=fuzzer $(addprefix -I,$(PROGS)) -o $@ $< \
	    $(call unit_deps,test_$*) $(LDFLAGS) $(LDLIBS)

fuzz-smoke: fuzz
	@regress/run-fuzz $(FUZZ_BINS)

# ---- install -------------------------------------------------------------

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/libexec/blockyard \
	    $(DESTDIR)$(PREFIX)/share/blockyard $(DESTDIR)$(PREFIX)/share/man/man5 \
	    $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 755 $(SBIN:%=$(BUILD)/sbin/%) $(DESTDIR)$(PREFIX)/sbin/
	install -m 755 $(LIBEXEC:%=$(BUILD)/libexec/blockyard/%) \
	    $(DESTDIR)$(PREFIX)/libexec/blockyard/
	install -m 644 $(SECCOMP_BPF) $(DESTDIR)$(PREFIX)/share/blockyard/
	for m in $(MANS); do \
	    s=$${m##*.}; install -m 644 $$m $(DESTDIR)$(PREFIX)/share/man/man$$s/; \
	done

clean:
	rm -rf build build-asan build-fuzz

.PHONY: all unit integration mandoc-lint deps check run fuzz fuzz-bins \
	fuzz-smoke install clean
.SECONDARY:
