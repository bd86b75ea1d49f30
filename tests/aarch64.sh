#!/bin/sh
# The core cmocka suites on aarch64, under qemu-user, so the hand-written
# context switch (runtime/ctx_aarch64.S) is executed and checked, not only
# compiled (`make check-aarch64` only compiles).
#
#   sh tests/aarch64.sh            (from anywhere; works in the source tree)
#
# Cross-compiles the library with the release flags into build/aarch64/
# (libweft-internal.a, no jemalloc, like the sanitizer trees), then the core
# suites, and runs each test in its own process under qemu-aarch64 with
# WEFT_BACKEND=epoll (qemu-user does not emulate io_uring) and a timeout,
# like tests/run.sh.  The suites are compiled with -DWEFT_TEST_SANITIZED=1:
# emulation is slow, so they use the reduced sizes and looser deadlines of
# the sanitizer builds.  Ends with "N passed, N failed, N skipped"; exit
# status 0 only if nothing failed.  Missing tools: one "SKIP aarch64:" line
# with the apt-get command, counted as skipped, exit 0.
#
# Environment:
#   WEFT_TEST_TIMEOUT   per-test timeout in seconds (300)
#   WEFT_A64_SUITES     suites to run, e.g. "task sync" (the core list below)
#   WEFT_A64_CC         cross compiler command (aarch64-linux-gnu-gcc, else
#                       clang --target=aarch64-linux-gnu)
#   WEFT_A64_QEMU       qemu-user binary (qemu-aarch64-static, qemu-aarch64)
#   WEFT_A64_OUT        build tree (build/aarch64)
#   WEFT_A64_JOBS       parallel compile jobs (nproc)
set -u
cd "$(dirname "$0")/.." || exit 1

TIMEOUT=${WEFT_TEST_TIMEOUT:-300}
SUITES=${WEFT_A64_SUITES:-"task future queue sync compose group stress net runq scope order timeout http"}
OUT=${WEFT_A64_OUT:-build/aarch64}
JOBS=${WEFT_A64_JOBS:-$(nproc 2>/dev/null || echo 2)}

CFLAGS="-std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter -O2 -g -DNDEBUG -pthread -Iinclude"
LIBCFLAGS="-fvisibility=hidden -fPIC"
TESTCFLAGS="-I. -DWEFT_TEST_SANITIZED=1"
LDLIBS="-luring -lcmocka -lpthread -lm"

PKGS_ALL="qemu-user-static gcc-aarch64-linux-gnu liburing-dev:arm64 libcmocka-dev:arm64"

skip_all() {
	echo "SKIP aarch64: $1"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
}

# --- what we need -----------------------------------------------------------
missing=""
pkgs=""
QEMU=${WEFT_A64_QEMU:-}
if [ -z "$QEMU" ]; then
	for q in qemu-aarch64-static qemu-aarch64; do
		command -v "$q" >/dev/null 2>&1 && { QEMU=$q; break; }
	done
fi
[ -n "$QEMU" ] || { missing="$missing qemu-aarch64"; pkgs="$pkgs qemu-user-static"; }

CC=${WEFT_A64_CC:-}
if [ -z "$CC" ]; then
	if command -v aarch64-linux-gnu-gcc >/dev/null 2>&1; then
		CC=aarch64-linux-gnu-gcc
	elif command -v clang >/dev/null 2>&1 && command -v aarch64-linux-gnu-ld >/dev/null 2>&1; then
		CC="clang --target=aarch64-linux-gnu"
	fi
fi
[ -n "$CC" ] || { missing="$missing aarch64-linux-gnu-gcc"; pkgs="$pkgs gcc-aarch64-linux-gnu"; }

AR=""
for a in aarch64-linux-gnu-ar llvm-ar ar; do
	command -v "$a" >/dev/null 2>&1 && { AR=$a; break; }
done
[ -n "$AR" ] || { missing="$missing ar"; pkgs="$pkgs binutils-aarch64-linux-gnu"; }

# The arm64 libraries (multiarch).  The cross compiler also searches the
# host's /usr/include, so headers prove nothing: look for the arm64 .so.
for l in uring:liburing-dev cmocka:libcmocka-dev; do
	lib=${l%%:*} pkg=${l#*:}
	[ -e "/usr/lib/aarch64-linux-gnu/lib$lib.so" ] && continue
	if [ -n "$CC" ]; then
		f=$($CC -print-file-name="lib$lib.so" 2>/dev/null)
		case $f in
		/*) [ -e "$f" ] && continue ;;
		esac
	fi
	missing="$missing $pkg:arm64"
	pkgs="$pkgs $pkg:arm64"
done

install_cmd() {
	c=""
	case " $(dpkg --print-foreign-architectures 2>/dev/null | tr '\n' ' ') " in
	*" arm64 "*) ;;
	*) c="dpkg --add-architecture arm64 && " ;;
	esac
	echo "${c}apt-get update && apt-get install -y$1"
}

[ -z "$missing" ] ||
	skip_all "missing$missing; run: $(install_cmd "$pkgs")"

mkdir -p "$OUT/obj" "$OUT/tests" || exit 1

# Probe: link against both libraries and run under qemu, so a broken setup
# is one clear SKIP line, not a wall of compiler errors.
cat >"$OUT/probe.c" <<'EOF'
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <liburing.h>
#include <cmocka.h>
int main(int argc, char **argv)
{
	(void)argv;
	if (argc > 99) { /* referenced, never called */
		struct io_uring r;
		cmocka_set_test_filter("x");
		return io_uring_queue_init(1, &r, 0);
	}
#if defined(__aarch64__)
	puts("aarch64-probe-ok");
#endif
	return 0;
}
EOF
if ! $CC $CFLAGS "$OUT/probe.c" -o "$OUT/probe" $LDLIBS >"$OUT/probe.log" 2>&1; then
	sed 's/^/    /' "$OUT/probe.log" | tail -20
	skip_all "$CC cannot build an arm64 program with liburing and cmocka; run: $(install_cmd " $PKGS_ALL")"
fi
if [ "$($QEMU "$OUT/probe" 2>&1)" != aarch64-probe-ok ]; then
	$QEMU "$OUT/probe" 2>&1 | sed 's/^/    /' | tail -20
	skip_all "$QEMU cannot run an arm64 program; run: $(install_cmd " $PKGS_ALL")"
fi

echo "=== aarch64 ($CC, $QEMU, WEFT_BACKEND=epoll)"
pass=0; fail=0; skip=0; failed_list=""

# --- build --------------------------------------------------------------------
t0=$(date +%s%N)
# A change of compiler or flags rebuilds everything.
stamp="$CC|$CFLAGS|$LIBCFLAGS|$TESTCFLAGS|$LDLIBS"
if [ "$(cat "$OUT/flags" 2>/dev/null)" != "$stamp" ]; then
	rm -rf "$OUT/obj" "$OUT/tests" "$OUT/libweft-internal.a"
	mkdir -p "$OUT/obj" "$OUT/tests"
	printf '%s\n' "$stamp" >"$OUT/flags"
fi
newest=tests/aarch64.sh
for h in include/*.h include/weft/*.h runtime/*.h sched/*.h io/*.h; do
	[ -e "$h" ] && [ "$h" -nt "$newest" ] && newest=$h
done
thdr=$newest
for h in tests/*.h; do
	[ -e "$h" ] && [ "$h" -nt "$thdr" ] && thdr=$h
done
stale() { # target deps...: true if target is missing or older than a dep
	t=$1; shift
	[ -e "$t" ] || return 0
	for d; do [ "$d" -nt "$t" ] && return 0; done
	return 1
}

objs=""; todo=""
for src in runtime/*.c sched/*.c io/*.c runtime/ctx_aarch64.S; do
	[ -e "$src" ] || continue
	o="$OUT/obj/$(echo "${src%.*}" | tr / _).o"
	objs="$objs $o"
	stale "$o" "$src" "$newest" && todo="$todo $src"
done
export CC CFLAGS LIBCFLAGS OUT
if [ -n "$todo" ]; then
	printf '%s\n' $todo | xargs -P "$JOBS" -n 1 sh -c '
		o="$OUT/obj/$(echo "${1%.*}" | tr / _).o"
		$CC $CFLAGS $LIBCFLAGS -c "$1" -o "$o.tmp" && mv "$o.tmp" "$o" ||
			{ rm -f "$o.tmp"; echo "FAIL aarch64 build $1"; exit 1; }' sh ||
		{ echo "FAIL aarch64 library build (see the compiler errors above)"
		  echo "0 passed, 1 failed, 0 skipped"; exit 1; }
fi
lib="$OUT/libweft-internal.a"
if [ -n "$todo" ] || [ ! -e "$lib" ]; then
	rm -f "$lib" && $AR rcs "$lib" $objs ||
		{ echo "FAIL aarch64 $AR $lib"; echo "0 passed, 1 failed, 0 skipped"; exit 1; }
fi

bins=""; todo=""
for s in $SUITES; do
	[ -e "tests/test_$s.c" ] || { echo "SKIP aarch64 test_$s: no tests/test_$s.c"; continue; }
	b="$OUT/tests/test_$s"
	bins="$bins $b"
	stale "$b" "tests/test_$s.c" "$thdr" "$lib" && todo="$todo tests/test_$s.c"
done
export TESTCFLAGS LDLIBS lib
if [ -n "$todo" ]; then
	printf '%s\n' $todo | xargs -P "$JOBS" -n 1 sh -c '
		b="$OUT/tests/$(basename "${1%.c}")"
		$CC $CFLAGS $TESTCFLAGS "$1" -o "$b.tmp" "$lib" $LDLIBS && mv "$b.tmp" "$b" ||
			{ rm -f "$b.tmp" "$b"; echo "FAIL aarch64 build $1"; exit 1; }' sh
fi
echo "built in $(( ($(date +%s%N) - t0) / 1000000 )) ms"

# --- run ----------------------------------------------------------------------
timings=""
for b in $bins; do
	suite=$(basename "$b")
	if [ ! -x "$b" ]; then
		fail=$((fail + 1)); failed_list="$failed_list aarch64:$suite:build"
		continue
	fi
	names=$(WEFT_BACKEND=epoll $QEMU "$b" --list) ||
		{ echo "FAIL aarch64 $suite --list"; fail=$((fail + 1))
		  failed_list="$failed_list aarch64:$suite:--list"; continue; }
	s0=$(date +%s%N); n=0; sf=0
	for name in $names; do
		n=$((n + 1))
		log=$(mktemp)
		start=$(date +%s%N)
		WEFT_BACKEND=epoll WEFT_TREE="$OUT" timeout -k 5 "$TIMEOUT" \
			$QEMU "$b" "$name" >"$log" 2>&1
		rc=$?
		ms=$(( ($(date +%s%N) - start) / 1000000 ))
		if grep -q "^\[  SKIPPED \]" "$log"; then
			skip=$((skip + 1))
			echo "SKIP aarch64 $suite $name (${ms} ms): $(grep -m1 -i 'skip' "$log")"
		elif [ $rc -eq 0 ] && grep -q "^\[  PASSED  \] 1 test" "$log"; then
			pass=$((pass + 1))
			echo "ok   aarch64 $suite $name (${ms} ms)"
		else
			fail=$((fail + 1)); sf=$((sf + 1))
			[ $rc -eq 124 ] && echo "TIMEOUT after ${TIMEOUT}s" >>"$log"
			echo "FAIL aarch64 $suite $name (rc=$rc, ${ms} ms)"
			sed 's/^/    /' "$log" | tail -40
			failed_list="$failed_list aarch64:$suite:$name"
		fi
		rm -f "$log"
	done
	timings="$timings
    $suite: $n tests, $sf failed, $(( ($(date +%s%N) - s0) / 1000000 )) ms"
done
echo "aarch64 time per suite:$timings"
echo "aarch64 total $(( ($(date +%s%N) - t0) / 1000000 )) ms"
[ -n "$failed_list" ] && echo "failed:$failed_list"
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
