# weft — the one build entry point.
#
#   make            library, examples and benchmarks (build/)
#   make demo       install missing Debian packages, build, run the demo tour
#   make test       install deps, then run every cmocka suite plain, under
#                   ASan+UBSan and under TSan on io_uring, and plain and
#                   under ASan+UBSan on epoll; then the stress suites under
#                   fault injection on both (build/fault, docs/testing.md);
#                   then a subset with the system malloc (build/sysalloc)
#   make bench      run the benchmarks (BENCH lines)
#   make soak       the soak: servers under load and disruption for
#                   SOAK_SECONDS (600), checked for leaks and errors
#   make install PREFIX=/usr/local     (ALLOC=system: without jemalloc)
#
# Variants live in separate trees: build/ (release, -O2 -g), build/asan/,
# build/tsan/, build/fault/ (`make VARIANT=fault fault-tests`), and
# build/sysalloc/ (`make ALLOC=system`: release, the system malloc).  Each has
# libweft.a (only weft_* exported), libweft_pic.a (the same, for linking
# into a dlopen'ed shared object) and libweft-internal.a (every symbol,
# for white-box tests and benchmarks).

CC      ?= cc
PREFIX  ?= /usr/local
VARIANT ?= release
# The allocator the tree's programs link: jemalloc, or system (glibc's
# malloc).  The library's objects are the same either way (weft calls only
# malloc/free and friends, never jemalloc's own API); what differs is the
# link line, the tree (build/sysalloc for the release variant) and the
# weft.pc that `make install ALLOC=system` writes.  README.md, "Linking".
ALLOC   ?= jemalloc
ARCH    := $(shell uname -m)

ifeq ($(VARIANT),release)
  B := build
  VFLAGS := -O2 -g -DNDEBUG
else ifeq ($(VARIANT),debug)
  B := build/debug
  VFLAGS := -O0 -g -DWEFT_DEBUG
else ifeq ($(VARIANT),asan)
  B := build/asan
  VFLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
            -fno-sanitize-recover=undefined -DWEFT_DEBUG
else ifeq ($(VARIANT),tsan)
  B := build/tsan
  VFLAGS := -O1 -g -fsanitize=thread -DWEFT_DEBUG
else ifeq ($(VARIANT),fault)
  # Fault injection (tests/fault.c, docs/testing.md): release code with the
  # seams of runtime/fault.h on; the suites use their reduced sizes.
  B := build/fault
  VFLAGS := -O2 -g -DNDEBUG -DWEFT_FAULT -DWEFT_TEST_SANITIZED=1
else
  $(error unknown VARIANT $(VARIANT))
endif
# O: where the library's objects are compiled.  ALLOC changes no object,
# so an ALLOC=system tree archives and links the objects of its variant's
# tree (build/obj for build/sysalloc) instead of compiling them again.
O := $(B)
ifeq ($(ALLOC),system)
  # sanitizer trees always use the system malloc: their tree is the same
  ifeq ($(VARIANT),release)
    B := build/sysalloc
  else ifeq ($(VARIANT),debug)
    B := build/debug-sysalloc
  else ifeq ($(VARIANT),fault)
    $(error ALLOC=system: for the release, debug, asan and tsan variants)
  endif
else ifneq ($(ALLOC),jemalloc)
  $(error unknown ALLOC $(ALLOC): jemalloc or system)
endif

WARN    := -Wall -Wextra -Werror -Wno-unused-parameter
CFLAGS  ?=
CFLAGS  += -std=gnu11 -D_GNU_SOURCE $(WARN) $(VFLAGS) -pthread -Iinclude
LIBCFLAGS := -fvisibility=hidden -fPIC
# jemalloc is the allocator (README.md, "Linking"); sanitizer builds keep
# their own malloc, ALLOC=system the C library's.
ifeq ($(filter asan tsan,$(VARIANT))$(filter system,$(ALLOC)),)
  ALLOC_LIBS := -ljemalloc
else
  ALLOC_LIBS :=
endif
# libunwind unwinds parked tasks' stacks for task dumps (runtime/dump.c)
# on x86_64; aarch64 walks frame pointers and needs nothing.
ifeq ($(ARCH),x86_64)
  UNWIND_LIBS := -lunwind
else
  UNWIND_LIBS :=
endif
LDLIBS := -luring $(ALLOC_LIBS) $(UNWIND_LIBS) -lpthread -lm -lz

LIB_SRC := $(wildcard runtime/*.c sched/*.c io/*.c)
ASM_SRC := runtime/ctx_$(ARCH).S
LIB_OBJ := $(patsubst %.c,$(O)/obj/%.o,$(LIB_SRC)) $(patsubst %.S,$(O)/obj/%.o,$(ASM_SRC))
HDRS    := $(wildcard include/*.h include/weft/*.h runtime/*.h sched/*.h io/*.h)

EXAMPLES := $(patsubst examples/%.c,$(B)/examples/%,$(wildcard examples/*.c))
BENCHES  := $(patsubst bench/%.c,$(B)/bench/%,$(wildcard bench/*.c))
# test_fault needs the fault build's archive (tests/fault.c): only there,
# with the suites that run under it (`make VARIANT=fault fault-tests`).
TESTS    := $(filter-out %/test_fault,$(patsubst tests/%.c,$(B)/tests/%,$(wildcard tests/test_*.c)))
FAULT_TESTS := $(addprefix $(B)/tests/test_,queue stress net server stream fault)
# The system-allocator tree (`make ALLOC=system`) runs in `make test` with
# these suites: the build checks (no jemalloc in its programs; make install
# ALLOC=system and pkg-config), and the ones that allocate and free across
# loops and threads the most.  About 60 s on 2 cores (docs/testing.md).
SYSALLOC_SUITES := build task future queue sync compose runtime stress stream server net examples kv
SYSALLOC_TESTS := $(addprefix $(B)/tests/test_,$(SYSALLOC_SUITES))
TEST_HDRS := $(wildcard tests/*.h)

.PHONY: all lib load examples bench-build tests fault-tests sysalloc-tests deps deps-test demo test test-plain test-epoll \
        test-aarch64 test-fault test-sysalloc test-asan test-tsan bench install clean check-symbols check-aarch64

ifeq ($(VARIANT),fault)
all: fault-tests # the fault tree holds its suites only
else
all: lib examples bench-build
endif

lib: $(B)/libweft.a $(B)/libweft_pic.a $(B)/libweft-internal.a
# weft-load alone, so the sanitizer trees can test it (test_loadgen)
load: $(B)/bench/weft-load
examples: $(EXAMPLES)
bench-build: $(BENCHES)
tests: $(TESTS)
fault-tests: $(FAULT_TESTS)
sysalloc-tests: $(SYSALLOC_TESTS)

$(O)/obj/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LIBCFLAGS) -c $< -o $@

$(O)/obj/%.o: %.S
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LIBCFLAGS) -c $< -o $@

# One relocatable object, then every hidden symbol made local: the archive
# exports weft_* and nothing else (tests/test_build.c verifies it).
# $(1) names the intermediate objects.
define localized_archive
	@mkdir -p $(dir $@)
	ld -r -o $(B)/$(1)-all.o $^
	objcopy --localize-hidden $(B)/$(1)-all.o $(B)/$(1).o
	rm -f $@ && ar rcs $@ $(B)/$(1).o
endef

$(B)/libweft.a: $(LIB_OBJ)
	$(call localized_archive,weft)

# libweft_pic.a, for linking into a shared object that is dlopen'ed (a
# Python extension, a plugin): the same objects but the scheduler's, whose
# thread-local takes the dynamic TLS model instead of initial-exec (which
# needs room in the static TLS block: README, "In a shared object").
PIC_OBJ := $(filter-out $(O)/obj/sched/sched.o,$(LIB_OBJ)) $(O)/obj-pic/sched/sched.o
$(O)/obj-pic/sched/sched.o: sched/sched.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LIBCFLAGS) -DWEFT_TLS_DYNAMIC -c $< -o $@

$(B)/libweft_pic.a: $(PIC_OBJ)
	$(call localized_archive,weft_pic)

# The fault build's archive: the runtime's objects and tests/fault.c in one
# relocatable object whose calls to these symbols go to tests/fault.c's
# __wrap_ functions; the tests' own calls stay unwrapped.
FAULT_WRAP := malloc calloc realloc aligned_alloc posix_memalign strdup mmap \
	pthread_create socket accept4 eventfd epoll_create1 pipe2 read write send \
	epoll_ctl epoll_wait syscall io_uring_submit io_uring_submit_and_wait \
	io_uring_submit_and_wait_timeout io_uring_submit_and_get_events \
	io_uring_get_events io_uring_queue_init_params io_uring_register_buf_ring \
	io_uring_register_ring_fd
ifeq ($(VARIANT),fault)
INTERNAL_OBJ := $(B)/weft-fault.o
$(B)/weft-fault.o: $(LIB_OBJ) $(B)/obj/tests/fault.o
	ld -r $(addprefix --wrap=,$(FAULT_WRAP)) -o $@ $^
$(B)/obj/tests/fault.o: tests/fault.h
else
INTERNAL_OBJ := $(LIB_OBJ)
endif
$(B)/libweft-internal.a: $(INTERNAL_OBJ)
	rm -f $@ && ar rcs $@ $(INTERNAL_OBJ)

$(B)/examples/%: examples/%.c $(B)/libweft.a $(HDRS) $(wildcard examples/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< -o $@ $(B)/libweft.a $(LDLIBS)

$(B)/bench/%: bench/%.c $(B)/libweft-internal.a $(HDRS) $(wildcard bench/*.h examples/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -I. $< -o $@ $(B)/libweft-internal.a $(LDLIBS)

# weft-load alone links ZeroMQ and msgpack (bench/locust/: the Locust
# worker protocol, docs/load.md), so libweft.a and every other program
# stay free of them.
LOCUST_SRC := $(wildcard bench/locust/*.c)
LOCUST_CFLAGS = $(shell pkg-config --cflags libzmq msgpack)
LOCUST_LIBS = $(shell pkg-config --libs libzmq msgpack)
$(B)/bench/weft-load: bench/weft-load.c $(LOCUST_SRC) $(wildcard bench/locust/*.h) \
		$(B)/libweft-internal.a $(HDRS) $(wildcard bench/*.h examples/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -I. $(LOCUST_CFLAGS) bench/weft-load.c $(LOCUST_SRC) -o $@ \
	  $(B)/libweft-internal.a $(LOCUST_LIBS) $(LDLIBS)
# The overhead benchmark's baseline (bench/observe.c): the library without
# the stall detector and the metrics counters (-DWEFT_NO_OBSERVE), and the
# benchmarks it compares built against it, in $(B)/bench/off/.
NOOBS_OBJ := $(patsubst $(O)/obj/%,$(O)/obj-noobs/%,$(LIB_OBJ))
OBSERVE_PAIRS := yield spawn pingpong echo_cpu
$(O)/obj-noobs/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LIBCFLAGS) -DWEFT_NO_OBSERVE -c $< -o $@
$(O)/obj-noobs/%.o: %.S
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LIBCFLAGS) -c $< -o $@
$(B)/libweft-internal-noobs.a: $(NOOBS_OBJ)
	rm -f $@ && ar rcs $@ $(NOOBS_OBJ)
$(B)/bench/off/%: bench/%.c $(B)/libweft-internal-noobs.a $(HDRS) $(wildcard bench/*.h examples/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -I. $< -o $@ $(B)/libweft-internal-noobs.a $(LDLIBS)
$(B)/bench/observe: $(addprefix $(B)/bench/off/,$(OBSERVE_PAIRS)) \
	$(addprefix $(B)/bench/,$(OBSERVE_PAIRS))

$(B)/tests/%: tests/%.c $(B)/libweft-internal.a $(HDRS) $(TEST_HDRS) $(wildcard examples/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -I. $< -o $@ $(TEST_LDFLAGS) $(B)/libweft-internal.a $(LDLIBS) -lcmocka
# stall reports name the test's functions: backtrace_symbols needs them
# in the dynamic symbol table
$(B)/tests/test_observe: TEST_LDFLAGS := -rdynamic

deps:
	@sh tools/deps.sh
# make test's: deps plus qemu-user and the arm64 libraries (tests/aarch64.sh)
deps-test:
	@sh tools/deps.sh test

demo: deps
	@$(MAKE) --no-print-directory all
	@sh examples/demo.sh build/examples

# The plain suite, then ASan+UBSan, then TSan, on io_uring; then the plain
# and ASan+UBSan trees again on epoll (TREE@epoll sets WEFT_BACKEND); then
# the core suites cross-built for aarch64 under qemu-user, on epoll
# (tests/aarch64.sh; skipped loudly where qemu or the arm64 libraries are
# missing); then the fault-injection tree on both backends with several
# seeds (tests/fault.sh); then the system-allocator tree (build/sysalloc,
# glibc's malloc, no jemalloc) with the suites of SYSALLOC_SUITES.  Each
# test in its own process with a timeout (tests/run.sh); the last line sums
# every run.
comma := ,
empty :=
space := $(empty) $(empty)
SYSALLOC_SPEC := build/sysalloc:$(subst $(space),$(comma),$(addprefix test_,$(SYSALLOC_SUITES)))
# Some suites skip trees that would add time and little coverage, to keep
# make test under 15 minutes on two CPUs: test_locust (a real Locust master
# and weft-load workers, 25 s a tree) runs once, plain on io_uring (what it
# checks is weft-load's Locust protocol, over ZeroMQ's own threads; weft-load's
# HTTP load on epoll is test_loadgen's); test_build (archives, install,
# valgrind, the aarch64 compile) only once; test_observe and test_loadgen
# under ASan on io_uring, not again on epoll.  TSan on epoll runs the suites
# whose code paths differ by backend (I/O, streams, servers, files,
# processes: the epoll backend makes its system calls from the loops'
# threads, where io_uring makes them in the kernel), about a minute.
TSAN_EPOLL_SUITES := test_io,test_net,test_stream,test_server,test_http,test_proxy,test_file,test_process,test_backend
TEST_TREES := build build/asan:-test_locust build/tsan:-test_locust \
	build@epoll:-test_build,test_locust build/asan@epoll:-test_locust,test_observe,test_loadgen \
	build/tsan@epoll:$(TSAN_EPOLL_SUITES) \
	aarch64 fault $(SYSALLOC_SPEC)
# The trees build with one job per CPU (JOBS) even under a plain `make
# test`: serial builds left all CPUs but one idle.  (Building the five
# trees side by side under one job server gained nothing: one after
# another they already keep two CPUs 80% busy, 79 s against 82 s.)
JOBS ?= $(shell nproc)
# TEST_JOBS: lanes of trees run side by side (tests/run.sh, WEFT_TEST_JOBS;
# docs/testing.md, "Time").
TEST_JOBS ?= 1
test: deps-test
	@$(MAKE) --no-print-directory -j$(JOBS) all tests
	@$(MAKE) --no-print-directory -j$(JOBS) VARIANT=asan lib examples tests load
	@$(MAKE) --no-print-directory -j$(JOBS) VARIANT=tsan lib examples tests load
	@$(MAKE) --no-print-directory -j$(JOBS) VARIANT=fault fault-tests
	@$(MAKE) --no-print-directory -j$(JOBS) ALLOC=system lib examples sysalloc-tests load
	@WEFT_TEST_JOBS=$(TEST_JOBS) sh tests/run.sh $(TEST_TREES)

test-plain: deps
	@$(MAKE) --no-print-directory all tests && sh tests/run.sh build
test-epoll: deps
	@$(MAKE) --no-print-directory all tests && sh tests/run.sh build@epoll
test-aarch64: deps-test
	@sh tests/run.sh aarch64
test-fault: deps
	@$(MAKE) --no-print-directory VARIANT=fault fault-tests && sh tests/run.sh fault
test-sysalloc: deps
	@$(MAKE) --no-print-directory ALLOC=system lib examples sysalloc-tests load && \
	  sh tests/run.sh $(SYSALLOC_SPEC)
test-asan: deps
	@$(MAKE) --no-print-directory VARIANT=asan lib examples tests load && sh tests/run.sh build/asan
test-tsan: deps
	@$(MAKE) --no-print-directory VARIANT=tsan lib examples tests load && sh tests/run.sh build/tsan

bench: deps
	@$(MAKE) --no-print-directory all
	@sh bench/run.sh build/bench

# --- I/O benchmarks (issue 4): in-tree baselines and their driver ----------
# bench/baseline/*.c are stand-alone servers and a load client, no weft code:
# built by `make` into build/bench/baseline/ (release variant only), each
# with just its own library.  `make bench-io` runs bench/io.sh (servers on
# CPU 0, clients on CPU 1; docs/benchmarks.md says how it measures).
ifeq ($(VARIANT),release)
BASELINES := $(addprefix $(B)/bench/baseline/,epoll_echo uv_echo uring_echo echo_client http_floor proxy_floor)
all: $(BASELINES)
$(B)/bench/baseline/uv_echo: BASELINE_LIBS := -luv
$(B)/bench/baseline/uring_echo: BASELINE_LIBS := -luring
$(B)/bench/baseline/http_floor: BASELINE_LIBS := -luring
$(B)/bench/baseline/proxy_floor: BASELINE_LIBS := -luring
$(B)/bench/baseline/echo_client: BASELINE_LIBS := -lm
$(BASELINES): $(B)/bench/baseline/%: bench/baseline/%.c bench/baseline/baseline.h bench/baseline/baseline_uring.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< -o $@ $(BASELINE_LIBS)
endif
.PHONY: bench-io
bench-io:
	@sh tools/deps.sh bench-io
	@$(MAKE) --no-print-directory all
	@sh bench/io.sh build
# issue 5: `make bench-compare` runs bench/compare.sh (weft's servers and
# weft-load against nginx, epoll/libuv/liburing echo, wrk and echo_client;
# pinned, then all cores; data for bench/plot.sh in build/bench-results/).
.PHONY: bench-compare bench-backends
# issue 9: the micro-benchmarks on io_uring and on epoll, interleaved.
bench-backends:
	@$(MAKE) --no-print-directory all
	@sh bench/backends.sh build
bench-compare:
	@sh tools/deps.sh bench-io
	@$(MAKE) --no-print-directory all
	@sh bench/compare.sh build
# issue 10: `make soak` runs bench/soak.sh: both example servers under a
# steady weft-load and bench/soak_client's disruptors for SOAK_SECONDS
# (600), RSS, fds and live tasks sampled every second; BENCH lines, data in
# build/bench-results/soak.tsv, docs/img/soak.png.  Not part of make test.
.PHONY: soak
soak:
	@sh tools/deps.sh bench-io
	@$(MAKE) --no-print-directory all
	@sh bench/soak.sh build
# ---------------------------------------------------------------------------

check-symbols: $(B)/libweft.a $(B)/tests/test_build
	@WEFT_TREE=$(B) $(B)/tests/test_build test_archive_exports_only_weft_symbols

# aarch64 compile check: every library source, cross-compiled with clang
# against Debian's arm64 cross headers (libc6-dev-arm64-cross).  `make test`
# also runs the core suites on aarch64 (tests/aarch64.sh).
A64_SYSROOT ?= /usr/aarch64-linux-gnu
check-aarch64:
	@for f in $(wildcard runtime/*.c sched/*.c io/*.c) runtime/ctx_aarch64.S; do \
	  clang --target=aarch64-linux-gnu --sysroot=$(A64_SYSROOT) \
	    -isystem $(A64_SYSROOT)/include -idirafter /usr/include \
	    -std=gnu11 -D_GNU_SOURCE $(WARN) -O2 -Iinclude -fvisibility=hidden -fPIC \
	    -c $$f -o /dev/null || exit 1; \
	done; echo "aarch64: every library source compiles"

install: $(B)/libweft.a $(B)/libweft_pic.a $(B)/bench/weft-load
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include \
	  $(DESTDIR)$(PREFIX)/bin
	install -m 644 $(B)/libweft.a $(B)/libweft_pic.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(B)/bench/weft-load $(DESTDIR)$(PREFIX)/bin/
	install -m 644 include/weft.h $(DESTDIR)$(PREFIX)/include/
	if [ -d include/weft ]; then install -d $(DESTDIR)$(PREFIX)/include/weft && \
	  install -m 644 include/weft/*.h $(DESTDIR)$(PREFIX)/include/weft/; fi
	for pc in weft weft_pic; do \
	  sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|0.1.0|g' \
	    -e 's|@ALLOC_LIBS@ |$(if $(ALLOC_LIBS),$(ALLOC_LIBS) )|' -e 's|@ALLOC@|$(ALLOC)|' \
	    -e 's|@UNWIND_LIBS@ |$(if $(UNWIND_LIBS),$(UNWIND_LIBS) )|' $$pc.pc.in \
	    > $(DESTDIR)$(PREFIX)/lib/pkgconfig/$$pc.pc || exit 1; \
	done

clean:
	rm -rf build
