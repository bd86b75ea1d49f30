/*
 * The build's promises: libweft.a exports only weft_* symbols (and every
 * WEFT_API function of weft.h); `make install` gives pkg-config files with
 * which programs and a plugin build out of tree and run, with and without
 * --static; the tree's programs link jemalloc exactly where the tree says
 * (not in build/sysalloc, `make ALLOC=system`); README.md's minimal program
 * compiles without a warning.
 *
 * WEFT_TREE (set by tests/run.sh) names the build tree under test; without
 * it the tree is derived from this binary's path (<tree>/tests/test_build).
 * The repository root is found from the binary's path too (the directory
 * holding weft.pc.in), falling back to the current directory.
 *
 * The install test builds with the release archive: `make install` installs
 * build/libweft.a (build/sysalloc's with ALLOC=system) and pkg-config
 * carries no sanitizer flags, so in the sanitizer trees (build/asan,
 * build/tsan) it is skipped.
 */
#include "weft_test.h"

#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_root[PATH_MAX];
static char g_tree[PATH_MAX];

static bool file_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* Repository root and build tree, both absolute. */
static void locate(void)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	assert_true(n > 0);
	exe[n] = 0;
	char *real = realpath(exe, NULL);
	assert_non_null(real);

	/* root: walk up from the binary until weft.pc.in appears */
	g_root[0] = 0;
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", real);
	for (;;) {
		char *slash = strrchr(dir, '/');
		if (!slash || slash == dir)
			break;
		*slash = 0;
		char probe[PATH_MAX + 16];
		snprintf(probe, sizeof(probe), "%s/weft.pc.in", dir);
		if (file_exists(probe)) {
			snprintf(g_root, sizeof(g_root), "%s", dir);
			break;
		}
	}
	if (!g_root[0]) {
		assert_non_null(getcwd(g_root, sizeof(g_root)));
	}

	const char *env = getenv("WEFT_TREE");
	if (env && *env) {
		char *t = realpath(env, NULL);
		if (!t) { /* relative to the root rather than the cwd */
			char p[2 * PATH_MAX];
			snprintf(p, sizeof(p), "%s/%s", g_root, env);
			t = realpath(p, NULL);
		}
		assert_non_null(t);
		snprintf(g_tree, sizeof(g_tree), "%s", t);
		free(t);
	} else {
		/* <tree>/tests/test_build */
		snprintf(g_tree, sizeof(g_tree), "%s", real);
		for (int i = 0; i < 2; i++) {
			char *slash = strrchr(g_tree, '/');
			assert_non_null(slash);
			*slash = 0;
		}
	}
	free(real);
}

/* Run a shell command, output to `log`; returns the exit status or -1. */
static int run(const char *cmd, const char *log)
{
	char *full = NULL;
	if (asprintf(&full, "( %s ) >'%s' 2>&1", cmd, log) < 0)
		return -1;
	int st = system(full);
	free(full);
	if (st == -1 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

static void dump(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	char line[512];
	int n = 0;
	while (fgets(line, sizeof(line), f) && n++ < 60)
		print_message("    %s", line);
	fclose(f);
}

static char *make_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char *tmpl = NULL;
	if (asprintf(&tmpl, "%s/weft-test-build-XXXXXX", base && *base ? base : "/tmp") < 0)
		return NULL;
	if (!mkdtemp(tmpl)) {
		free(tmpl);
		return NULL;
	}
	return tmpl;
}

static void remove_tree(const char *dir)
{
	char *cmd = NULL;
	if (asprintf(&cmd, "rm -rf '%s'", dir) >= 0) {
		int r = system(cmd);
		(void)r;
		free(cmd);
	}
}

/* ------------------------------------------------------------------------ */
/* (a) exported symbols                                                     */
/* ------------------------------------------------------------------------ */

#define MAX_SYMS 4096

struct syms {
	char *name[MAX_SYMS];
	int n;
};

static bool syms_has(const struct syms *s, const char *name)
{
	for (int i = 0; i < s->n; i++)
		if (strcmp(s->name[i], name) == 0)
			return true;
	return false;
}

/* Names of the WEFT_API functions declared in one header. */
static int api_functions_in(const char *path, char names[][64], int n, int max)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return n;
	char line[1024];
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "WEFT_API ", 9) != 0)
			continue;
		char *paren = strchr(line, '(');
		if (!paren)
			continue;
		char *end = paren;
		while (end > line && (end[-1] == ' ' || end[-1] == '*'))
			end--;
		char *start = end;
		while (start > line && (start[-1] == '_' || (start[-1] >= 'a' && start[-1] <= 'z') ||
					(start[-1] >= 'A' && start[-1] <= 'Z') ||
					(start[-1] >= '0' && start[-1] <= '9')))
			start--;
		size_t len = (size_t)(end - start);
		if (len == 0 || len >= 64 || n >= max)
			continue;
		memcpy(names[n], start, len);
		names[n][len] = 0;
		n++;
	}
	fclose(f);
	return n;
}

/* ... in include/weft.h and include/weft/\*.h (the public headers). */
static int api_functions(char names[][64], int max)
{
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/include/weft.h", g_root);
	int n = api_functions_in(path, names, 0, max);
	glob_t g;
	snprintf(path, sizeof(path), "%s/include/weft/*.h", g_root);
	if (glob(path, 0, NULL, &g) == 0) {
		for (size_t i = 0; i < g.gl_pathc; i++)
			n = api_functions_in(g.gl_pathv[i], names, n, max);
		globfree(&g);
	}
	return n;
}

static bool api_has(char names[][64], int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return true;
	return false;
}

/* The archive `name` of the tree exports exactly the WEFT_API functions. */
static void check_archive_exports(const char *name)
{
	char lib[PATH_MAX + 32];
	snprintf(lib, sizeof(lib), "%s/%s", g_tree, name);
	print_message("archive: %s\n", lib);
	assert_true(file_exists(lib));

	char *cmd = NULL;
	assert_true(asprintf(&cmd, "nm -g --defined-only '%s'", lib) > 0);
	FILE *p = popen(cmd, "r");
	free(cmd);
	assert_non_null(p);
	struct syms *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	char line[1024];
	int foreign = 0;
	while (fgets(line, sizeof(line), p)) {
		char addr[64], type[8], name[512];
		/* "<addr> <type> <name>"; skip "weft.o:" headers and blank lines */
		if (sscanf(line, "%63s %7s %511s", addr, type, name) != 3)
			continue;
		/* weft__* is the internal namespace: it must be localized too */
		if (strncmp(name, "weft_", 5) != 0 || strncmp(name, "weft__", 6) == 0) {
			print_message("non-public global symbol: %s %s\n", type, name);
			foreign++;
			continue;
		}
		if (s->n < MAX_SYMS)
			s->name[s->n++] = strdup(name);
	}
	int st = pclose(p);
	assert_int_equal(st, 0);
	assert_int_equal(foreign, 0);
	assert_true(s->n > 0);
	assert_true(syms_has(s, "weft_run"));

	/* every function the header declares WEFT_API is really exported */
	static char api[512][64];
	int n = api_functions(api, 512);
	assert_true(n > 20);
	int missing = 0;
	for (int i = 0; i < n; i++) {
		if (!syms_has(s, api[i])) {
			print_message("declared WEFT_API but not exported: %s\n", api[i]);
			missing++;
		}
	}
	assert_int_equal(missing, 0);
	/* and nothing else is: every export is declared in a public header */
	int undeclared = 0;
	for (int i = 0; i < s->n; i++) {
		if (!api_has(api, n, s->name[i])) {
			print_message("exported but not declared WEFT_API: %s\n", s->name[i]);
			undeclared++;
		}
	}
	assert_int_equal(undeclared, 0);
	for (int i = 0; i < s->n; i++)
		free(s->name[i]);
	free(s);
}

static void test_archive_exports_only_weft_symbols(void **state)
{
	(void)state;
	locate();
	check_archive_exports("libweft.a");
	check_archive_exports("libweft_pic.a");
}

/* ------------------------------------------------------------------------ */
/* (b) make install + pkg-config, out of tree                               */
/* ------------------------------------------------------------------------ */

static const char *program =
	"#include <weft.h>\n"
	"#include <weft/test.h>\n"
	"#include <stdint.h>\n"
	"#include <stdio.h>\n"
	"\n"
	"static void *test_body(void *arg)\n"
	"{\n"
	"\tWEFT_TEST_CHECK_INT(weft_sleep_ms(1), ==, 0);\n"
	"\t*(int *)arg = 1;\n"
	"\treturn NULL;\n"
	"}\n"
	"\n"
	"static void *main_task(void *arg)\n"
	"{\n"
	"\tuint64_t t0 = weft_now_ns();\n"
	"\tif (weft_sleep_ms(1) != 0 || weft_now_ns() - t0 < 1000000u)\n"
	"\t\treturn NULL;\n"
	"\treturn (void *)((uintptr_t)arg + 1);\n"
	"}\n"
	"\n"
	"int main(void)\n"
	"{\n"
	"\tvoid *res = NULL;\n"
	"\tint r = weft_run(NULL, main_task, (void *)(uintptr_t)41, &res);\n"
	"\tprintf(\"weft_run=%d result=%lu\\n\", r, (unsigned long)(uintptr_t)res);\n"
	"\tint ran = 0, t = WEFT_TEST_RUN(test_body, &ran, NULL);\n"
	"\tprintf(\"weft_test_run=%d ran=%d\\n\", t, ran);\n"
	"\treturn r == 0 && (uintptr_t)res == 42 && t == 0 && ran ? 0 : 1;\n"
	"}\n";

static bool tree_is(const char *rel)
{
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/%s", g_root, rel);
	char *a = realpath(path, NULL), *b = realpath(g_tree, NULL);
	bool same = a && b && strcmp(a, b) == 0;
	free(a);
	free(b);
	return same;
}

static bool is_release_tree(void)
{
	return tree_is("build");
}

/* Skip, saying why, unless this is the release tree (build/). */
static void release_tree_only(const char *why)
{
	if (is_release_tree())
		return;
	print_message("skip: %s: run in the release tree only (this tree: %s)\n", why, g_tree);
	skip();
}

/* The allocator `make install` gives programs from this tree: "jemalloc"
 * for build/, "system" for build/sysalloc (make ALLOC=system), NULL for a
 * tree that is not installed (the sanitizer trees). */
static const char *tree_alloc(void)
{
	if (is_release_tree())
		return "jemalloc";
	if (tree_is("build/sysalloc"))
		return "system";
	return NULL;
}

/* Whether `file` (a program or shared object) loads libjemalloc: -1 if ldd
 * fails. */
static int links_jemalloc(const char *file, const char *log)
{
	char *cmd = NULL;
	if (asprintf(&cmd, "ldd '%s'", file) < 0)
		return -1;
	int r = run(cmd, log);
	free(cmd);
	if (r != 0)
		return -1;
	if (asprintf(&cmd, "grep -q jemalloc '%s'", log) < 0)
		return -1;
	r = run(cmd, "/dev/null");
	free(cmd);
	return r == 0;
}

/* README.md's first ```c block (the minimal program), malloc'd. */
static char *readme_program(void)
{
	char path[PATH_MAX + 16];
	snprintf(path, sizeof(path), "%s/README.md", g_root);
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	char line[1024];
	bool in = false, done = false;
	while (out && !done && fgets(line, sizeof(line), f)) {
		if (!in)
			in = strcmp(line, "```c\n") == 0;
		else if (strncmp(line, "```", 3) == 0)
			done = true;
		else
			fputs(line, out);
	}
	fclose(f);
	if (out)
		fclose(out);
	if (!done) {
		free(text);
		return NULL;
	}
	return text;
}

/* A plugin's host for the installed weft_pic: dlopen, run, report. */
static const char *pic_host_src =
	"#include <dlfcn.h>\n"
	"#include <stddef.h>\n"
	"#include <stdio.h>\n"
	"\n"
	"int main(int argc, char **argv)\n"
	"{\n"
	"\tif (argc != 2)\n"
	"\t\treturn 2;\n"
	"\tvoid *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);\n"
	"\tif (!h) {\n"
	"\t\tprintf(\"dlopen: %s\\n\", dlerror());\n"
	"\t\treturn 3;\n"
	"\t}\n"
	"\tint (*run)(unsigned, char *, size_t) =\n"
	"\t\t(int (*)(unsigned, char *, size_t))dlsym(h, \"plug_run\");\n"
	"\tif (!run)\n"
	"\t\treturn 4;\n"
	"\tchar name[32] = \"?\";\n"
	"\tint r = run(0, name, sizeof name); /* WEFT_BACKEND_AUTO */\n"
	"\tprintf(\"plug_run=%d on %s\\n\", r, name);\n"
	"\treturn r != 0;\n"
	"}\n";

static const char *plugin_src;
#define write_file weft_test_write_file

/* Run `fmt`'s command (printf-style) in the test's directory; on failure
 * show its output.  Returns the exit status. */
static int run_in(const char *dir, const char *log, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int run_in(const char *dir, const char *log, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *body = NULL;
	int n = vasprintf(&body, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	char *cmd = NULL;
	if (asprintf(&cmd, "cd '%s' && %s", dir, body) < 0) {
		free(body);
		return -1;
	}
	print_message("$ %s\n", body);
	int r = run(cmd, log);
	if (r != 0)
		dump(log);
	free(cmd);
	free(body);
	return r;
}

/* Compile `file` in dir to an object, with `flags`, by each C compiler at
 * hand (cc, and clang where installed): how many did, or -1 at the first
 * that failed (its output shown). */
static int compile_with_each_cc(const char *dir, const char *log, const char *flags,
				const char *file)
{
	static const char *ccs[] = { "cc", "clang" };
	int compiled = 0;
	for (size_t i = 0; i < sizeof(ccs) / sizeof(ccs[0]); i++) {
		if (i > 0 && run_in(dir, "/dev/null", "command -v %s", ccs[i]) != 0)
			continue;
		if (run_in(dir, log, "%s %s -c %s -o /dev/null", ccs[i], flags, file) != 0)
			return -1;
		compiled++;
	}
	return compiled;
}

/* The first line `log` holds, into out. */
static void first_line(const char *log, char *out, size_t n)
{
	out[0] = 0;
	FILE *f = fopen(log, "r");
	assert_non_null(f);
	if (!fgets(out, (int)n, f))
		out[0] = 0;
	fclose(f);
}

/*
 * `make install` into a temporary prefix (with ALLOC=system from the
 * build/sysalloc tree), then programs outside the tree built only with
 * pkg-config's flags, both the plain form and --static (weft ships only
 * archives, so the two must give a complete link line), and run:
 *   - a small program (weft.pc), which loads jemalloc exactly when the
 *     installed weft.pc is the jemalloc one;
 *   - README.md's minimal program, as the README builds it, with -Wall
 *     -Wextra -Werror;
 *   - a shared object on weft_pic.pc linked with -z defs (every symbol
 *     resolved at link time), dlopen'ed by a host that runs a runtime in it;
 *     never with jemalloc.
 */
static void test_install_and_pkg_config_build(void **state)
{
	(void)state;
	locate();
	const char *alloc = tree_alloc();
	if (!alloc) {
		print_message("skip: `make install` installs the release build/libweft.a (or "
			      "build/sysalloc's) and pkg-config has no sanitizer flags; tested in "
			      "those trees only (this tree: %s)\n",
			      g_tree);
		skip();
	}
	bool jemalloc = strcmp(alloc, "jemalloc") == 0;
	char *dir = make_tmpdir();
	assert_non_null(dir);
	char *prefix = NULL, *log = NULL, *pc = NULL;
	assert_true(asprintf(&prefix, "%s/prefix", dir) > 0);
	assert_true(asprintf(&log, "%s/log", dir) > 0);
	assert_true(asprintf(&pc, "PKG_CONFIG_PATH='%s/lib/pkgconfig' pkg-config", prefix) > 0);

	/* 1. make install PREFIX=<tmp> [ALLOC=system] from the repository root */
	assert_int_equal(run_in(dir, log, "make -s --no-print-directory -C '%s' install "
				"PREFIX='%s' ALLOC=%s", g_root, prefix, alloc), 0);
	static const char *installed[] = { "lib/libweft.a", "include/weft.h",
					   "lib/pkgconfig/weft.pc", "lib/libweft_pic.a", "include/weft/test.h",
					   "lib/pkgconfig/weft_pic.pc", "bin/weft-load" };
	for (size_t i = 0; i < sizeof(installed) / sizeof(installed[0]); i++) {
		char p[PATH_MAX * 2];
		snprintf(p, sizeof(p), "%s/%s", prefix, installed[i]);
		print_message("installed: %s\n", installed[i]);
		assert_true(file_exists(p));
	}
	/* the link lines name jemalloc exactly when the tree links it */
	assert_int_equal(run_in(dir, log, "%s --libs weft | grep -q -- -ljemalloc", pc),
			 jemalloc ? 0 : 1);
	assert_int_equal(run_in(dir, log, "%s --static --libs weft_pic | grep -q -- -ljemalloc",
				pc), 1);
	assert_int_equal(run_in(dir, log, "%s --libs weft_pic | grep -q -- -lweft_pic", pc), 0);
	/* the load generator is installed with the library, and runs */
	assert_int_equal(run_in(dir, log, "'%s/bin/weft-load' --help >/dev/null", prefix), 0);
	char exe[PATH_MAX * 2];
	snprintf(exe, sizeof(exe), "%s/bin/weft-load", prefix);
	assert_int_equal(links_jemalloc(exe, log), jemalloc);

	/* 2. programs outside the tree, built only with pkg-config's flags */
	write_file(dir, "x.c", program);
	char *readme = readme_program();
	assert_non_null(readme);
	write_file(dir, "hello.c", readme);
	free(readme);
	write_file(dir, "plug.c", plugin_src);
	write_file(dir, "host.c", pic_host_src);
	assert_int_equal(run_in(dir, log, "cc -std=gnu11 -Wall -Wextra -Werror host.c -o host -ldl"),
			 0);
	/* the installed headers in strict ISO C11 with only the include path:
	 * no -pthread (pkg-config's Cflags add it, a hand-written build line
	 * may not) and no feature-test macro */
	char *strict = NULL;
	assert_true(asprintf(&strict, "-std=c11 -pedantic -Wall -Wextra -Werror -I'%s/include'",
			     prefix) > 0);
	assert_true(compile_with_each_cc(dir, log, strict, "x.c") > 0);
	free(strict);
	static const char *forms[] = { "", "--static " };
	for (int i = 0; i < 2; i++) {
		const char *form = forms[i];
		char out[256];
		/* a small program: builds, runs, loads jemalloc or not */
		assert_int_equal(run_in(dir, log, "cc -std=c11 -Wall -Wextra -Werror x.c "
					"$(%s %s--cflags --libs weft) -o x", pc, form), 0);
		assert_int_equal(run_in(dir, log, "./x"), 0);
		first_line(log, out, sizeof(out));
		assert_string_equal(out, "weft_run=0 result=42\n");
		snprintf(exe, sizeof(exe), "%s/x", dir);
		assert_int_equal(links_jemalloc(exe, log), jemalloc);

		/* README.md's minimal program, its build line with warnings on */
		assert_int_equal(run_in(dir, log, "cc -Wall -Wextra -Werror hello.c "
					"$(%s %s--cflags --libs weft) -o hello", pc, form), 0);
		assert_int_equal(run_in(dir, log, "./hello"), 0);
		first_line(log, out, sizeof(out));
		assert_string_equal(out, "One One One One One Two Two Two Two Two ");

		/* a plugin on weft_pic: no undefined symbol left, no jemalloc */
		assert_int_equal(run_in(dir, log, "cc -std=gnu11 -Wall -Wextra -Werror -shared "
					"-fPIC -Wl,-z,defs plug.c $(%s %s--cflags --libs weft_pic) "
					"-o plug.so", pc, form), 0);
		snprintf(exe, sizeof(exe), "%s/plug.so", dir);
		assert_int_equal(links_jemalloc(exe, log), 0);
		assert_int_equal(run_in(dir, log, "./host ./plug.so"), 0);
		dump(log);
	}

	remove_tree(dir);
	free(pc);
	free(prefix);
	free(log);
	free(dir);
}

/*
 * The tree's programs link the allocator the tree promises: jemalloc in
 * build/, and nothing of it in build/sysalloc (make ALLOC=system) and the
 * sanitizer trees.  ldd over every test, example and benchmark program of
 * the tree, and this very process's mappings.  (A benchmark that never
 * allocates, bench/switch, loads no jemalloc even in build/: the toolchain
 * links with --as-needed.  So in build/ only the tests and examples, which
 * all run a runtime, must load it.)
 */
static void test_tree_links_its_allocator(void **state)
{
	(void)state;
	locate();
	const char *alloc = tree_alloc();
	bool jemalloc = alloc && strcmp(alloc, "jemalloc") == 0;
	print_message("tree %s: expects %s\n", g_tree, jemalloc ? "jemalloc" : "no jemalloc");

	/* this process */
	FILE *maps = fopen("/proc/self/maps", "r");
	assert_non_null(maps);
	char line[1024];
	bool mapped = false;
	while (fgets(line, sizeof(line), maps))
		if (strstr(line, "libjemalloc"))
			mapped = true;
	fclose(maps);
	assert_int_equal(mapped, jemalloc);

	/* every program of the tree */
	char *dir = make_tmpdir();
	assert_non_null(dir);
	char *log = NULL;
	assert_true(asprintf(&log, "%s/log", dir) > 0);
	static const char *kinds[] = { "tests/test_*", "examples/*", "bench/*" };
	int checked = 0, wrong = 0;
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		if (jemalloc && strncmp(kinds[k], "bench/", 6) == 0)
			continue;
		char pat[PATH_MAX + 32];
		snprintf(pat, sizeof(pat), "%s/%s", g_tree, kinds[k]);
		glob_t g;
		if (glob(pat, 0, NULL, &g) != 0)
			continue;
		for (size_t i = 0; i < g.gl_pathc; i++) {
			struct stat st;
			if (stat(g.gl_pathv[i], &st) != 0 || !S_ISREG(st.st_mode) ||
			    !(st.st_mode & S_IXUSR) || strstr(g.gl_pathv[i], ".sh"))
				continue;
			int j = links_jemalloc(g.gl_pathv[i], log);
			checked++;
			if (j != jemalloc) {
				print_message("%s: %s\n", g.gl_pathv[i],
					      j < 0 ? "ldd failed" :
					      j ? "links jemalloc" : "does not link jemalloc");
				wrong++;
			}
		}
		globfree(&g);
	}
	print_message("%d programs checked\n", checked);
	remove_tree(dir);
	free(log);
	free(dir);
	assert_true(checked > 0);
	assert_int_equal(wrong, 0);
}

/* README.md's minimal program compiles without a warning under -Wall
 * -Wextra (-O2, so the optimizer's warnings are seen too), with each
 * compiler at hand.  Every tree: it only needs the headers. */
static void test_readme_program_warning_free(void **state)
{
	(void)state;
	locate();
	char *readme = readme_program();
	assert_non_null(readme);
	char *dir = make_tmpdir();
	assert_non_null(dir);
	write_file(dir, "hello.c", readme);
	free(readme);
	char *log = NULL, *flags = NULL;
	assert_true(asprintf(&log, "%s/log", dir) > 0);
	assert_true(asprintf(&flags, "-O2 -pthread -Wall -Wextra -Werror -I'%s/include'", g_root) > 0);
	assert_true(compile_with_each_cc(dir, log, flags, "hello.c") > 0);
	free(flags);
	free(log);
	remove_tree(dir);
	free(dir);
}

/* Every example compiles as strict C11, with the tree's warnings and only
 * weft's include path and -pthread (what pkg-config gives): what one needs
 * beyond C11 (POSIX functions, a GNU one) it asks for itself with a
 * feature-test macro, not through the tree's -D_GNU_SOURCE, so that it
 * builds as its reader would build it.  Headers only: the release tree. */
static void test_examples_compile_as_c11(void **state)
{
	(void)state;
	locate();
	release_tree_only("it needs only the sources");
	char *dir = make_tmpdir(), *log = NULL;
	assert_non_null(dir);
	assert_true(asprintf(&log, "%s/log", dir) > 0);
	assert_int_equal(run_in(g_root, log, "for f in examples/*.c; do cc -std=c11 "
				"-Wall -Wextra -Werror -Wno-unused-parameter -pthread -Iinclude "
				"-fsyntax-only \"$f\" || { echo \"in $f\"; exit 1; }; done"), 0);
	free(log);
	remove_tree(dir);
	free(dir);
}

/*
 * valgrind memcheck over a few real tests of the release tree: no invalid
 * access, no definite leak.  Exercises task stacks (registered with
 * valgrind), cross-loop wakes, cancellation, foreign-thread waits and
 * shutdown.  Skips loudly where valgrind is not installed or for sanitizer
 * trees (valgrind cannot run ASan/TSan binaries).
 */
static void test_valgrind_memcheck_clean(void **state)
{
	(void)state;
	locate();
	release_tree_only("valgrind cannot run the sanitizer builds");
	if (run("command -v valgrind", "/dev/null") != 0) {
		print_message("skip: valgrind is not installed (apt-get install valgrind)\n");
		skip();
	}
	static const char *cases[][2] = {
		{ "test_runtime", "test_run_cancels_and_awaits_leftover_tasks" },
		{ "test_runtime", "test_foreign_spawn_and_blocking_join" },
		{ "test_task", "test_cancel_sleeping_task" },
		{ "test_task", "test_per_task_stack_size" },
		{ "test_future", "test_wait_then_set_from_task_on_another_loop" },
		{ "test_future", "test_foreign_threads_and_tasks_wait_together" },
	};
	char *dir = make_tmpdir();
	assert_non_null(dir);
	char *log = NULL;
	assert_true(asprintf(&log, "%s/log", dir) > 0);
	int failures = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *cmd = NULL;
		assert_true(asprintf(&cmd,
				     "valgrind -q --error-exitcode=99 --leak-check=full "
				     "--soname-synonyms=somalloc=*jemalloc* "
				     "--errors-for-leak-kinds=definite '%s/tests/%s' %s",
				     g_tree, cases[i][0], cases[i][1]) > 0);
		int rc = run(cmd, log);
		if (rc != 0) {
			print_message("valgrind: %s %s exited %d\n", cases[i][0], cases[i][1], rc);
			dump(log);
			failures++;
		}
		free(cmd);
	}
	free(log);
	remove_tree(dir);
	free(dir);
	assert_int_equal(failures, 0);
}

/* ------------------------------------------------------------------------ */
/* (c) linked into a dlopen'ed shared object                                */
/* ------------------------------------------------------------------------ */

/* The tree's sanitizer flags: a plugin and its host are built as the
 * archive was. */
#if defined(__SANITIZE_ADDRESS__)
#define TREE_SAN "-fsanitize=address,undefined"
#elif defined(__SANITIZE_THREAD__)
#define TREE_SAN "-fsanitize=thread"
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TREE_SAN "-fsanitize=address,undefined"
#elif __has_feature(thread_sanitizer)
#define TREE_SAN "-fsanitize=thread"
#endif
#endif
#ifndef TREE_SAN
#define TREE_SAN ""
#endif

/* A plugin that runs a weft runtime: spawn, sleep, socket-pair I/O. */
static const char *plugin_src =
	"#include <weft.h>\n"
	"#include <stdint.h>\n"
	"#include <stdio.h>\n"
	"#include <string.h>\n"
	"#include <sys/socket.h>\n"
	"#include <unistd.h>\n"
	"\n"
	"static void *writer(void *arg)\n"
	"{\n"
	"\tint fd = *(int *)arg;\n"
	"\tif (weft_sleep_ms(2) != 0 || weft_loop_index() < 0)\n"
	"\t\treturn (void *)1;\n"
	"\treturn weft_send_all(fd, \"ping\", 4, 0, NULL) == 4 ? NULL : (void *)1;\n"
	"}\n"
	"\n"
	"static void *plug_main(void *arg)\n"
	"{\n"
	"\t(void)arg;\n"
	"\tint sv[2];\n"
	"\tif (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)\n"
	"\t\treturn (void *)10;\n"
	"\tweft_task *t = NULL;\n"
	"\tuintptr_t bad = weft_task_spawn(&t, writer, &sv[1]) ? 11 : 0;\n"
	"\tchar b[4];\n"
	"\tsize_t got = 0;\n"
	"\twhile (!bad && got < 4) {\n"
	"\t\tssize_t r = weft_recv(sv[0], b + got, 4 - got, 0);\n"
	"\t\tif (r <= 0)\n"
	"\t\t\tbad = 12;\n"
	"\t\telse\n"
	"\t\t\tgot += (size_t)r;\n"
	"\t}\n"
	"\tvoid *wr = (void *)1;\n"
	"\tif (t) {\n"
	"\t\tweft_task_join(t, &wr);\n"
	"\t\tweft_task_release(t);\n"
	"\t}\n"
	"\tif (!bad && (wr || memcmp(b, \"ping\", 4)))\n"
	"\t\tbad = 13;\n"
	"\tclose(sv[0]);\n"
	"\tclose(sv[1]);\n"
	"\treturn (void *)bad;\n"
	"}\n"
	"\n"
	"int plug_run(unsigned backend, char *name, size_t n)\n"
	"{\n"
	"\tweft_runtime_config c;\n"
	"\tweft_runtime_config_init(&c);\n"
	"\tc.loops = 2;\n"
	"\tc.backend = backend;\n"
	"\tweft_runtime *rt;\n"
	"\tint r = weft_runtime_start(&rt, &c);\n"
	"\tif (r < 0)\n"
	"\t\treturn r;\n"
	"\tweft_runtime_stats st;\n"
	"\tweft_runtime_stats_get(rt, &st);\n"
	"\tsnprintf(name, n, \"%s\", weft_backend_name((unsigned)st.backend));\n"
	"\tvoid *res = NULL;\n"
	"\tr = weft_runtime_call(rt, plug_main, NULL, &res);\n"
	"\tweft_runtime_destroy(rt);\n"
	"\treturn r < 0 ? r : (int)(uintptr_t)res;\n"
	"}\n";

/* Fillers: a shared object with `N` bytes of initial-exec TLS, copied
 * under many names (each copy is a new object to the dynamic linker). */
static const char *filler_src =
	"__attribute__((tls_model(\"initial-exec\"))) __thread long fill[N / 8];\n"
	"long *filler(void) { return fill; }\n";

/* The host loads fillers until the static TLS block is full (a process
 * that has loaded many libraries: a Python with its extensions), then the
 * plugin, and runs a runtime in it on each backend. */
static const char *host_src =
	"#include <weft.h>\n"
	"#include <dlfcn.h>\n"
	"#include <errno.h>\n"
	"#include <stdio.h>\n"
	"#include <stdlib.h>\n"
	"#include <string.h>\n"
	"#include <unistd.h>\n"
	"\n"
	"int main(int argc, char **argv)\n"
	"{\n"
	"\tif (argc != 3)\n"
	"\t\treturn 2;\n"
	"\tstatic const int sizes[] = { 64, 8 };\n"
	"\tint loaded = 0, full = 0;\n"
	"\tfor (int k = 0; k < 2; k++) {\n"
	"\t\tfor (int i = 0;; i++) {\n"
	"\t\t\tchar p[4096];\n"
	"\t\t\tsnprintf(p, sizeof p, \"%s/fill%d_%d.so\", argv[1], sizes[k], i);\n"
	"\t\t\tif (access(p, F_OK) != 0)\n"
	"\t\t\t\tbreak;\n"
	"\t\t\tif (dlopen(p, RTLD_NOW | RTLD_LOCAL)) {\n"
	"\t\t\t\tloaded++;\n"
	"\t\t\t\tcontinue;\n"
	"\t\t\t}\n"
	"\t\t\tconst char *e = dlerror();\n"
	"\t\t\tif (!strstr(e, \"static TLS\")) {\n"
	"\t\t\t\tprintf(\"filler: %s\\n\", e);\n"
	"\t\t\t\treturn 3;\n"
	"\t\t\t}\n"
	"\t\t\tfull++;\n"
	"\t\t\tbreak;\n"
	"\t\t}\n"
	"\t}\n"
	"\tprintf(\"static TLS: %d fillers loaded, %s\\n\", loaded, full == 2 ? \"full\" : \"NOT full\");\n"
	"\tif (full != 2)\n"
	"\t\treturn 4;\n"
	"\tvoid *h = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);\n"
	"\tif (!h) {\n"
	"\t\tprintf(\"dlopen: %s\\n\", dlerror());\n"
	"\t\treturn 5;\n"
	"\t}\n"
	"\tint (*run)(unsigned, char *, size_t) =\n"
	"\t\t(int (*)(unsigned, char *, size_t))dlsym(h, \"plug_run\");\n"
	"\tif (!run)\n"
	"\t\treturn 6;\n"
	"\tunsetenv(\"WEFT_BACKEND\"); /* the config's backend, not the suite's */\n"
	"\tint bad = 0;\n"
	"\tstatic const unsigned backends[] = { WEFT_BACKEND_IO_URING, WEFT_BACKEND_EPOLL };\n"
	"\tstatic const char *names[] = { \"io_uring\", \"epoll\" };\n"
	"\tfor (int i = 0; i < 2; i++) {\n"
	"\t\tchar name[32] = \"?\";\n"
	"\t\tint r = run(backends[i], name, sizeof name);\n"
	"\t\tif (i == 0 && (r == -ENOSYS || r == -EPERM || r == -EOPNOTSUPP)) {\n"
	"\t\t\tprintf(\"io_uring: refused here (%d), not run\\n\", r);\n"
	"\t\t\tcontinue;\n"
	"\t\t}\n"
	"\t\tprintf(\"%s: %d\\n\", name, r);\n"
	"\t\tif (r != 0 || strcmp(name, names[i]) != 0)\n"
	"\t\t\tbad = 7;\n"
	"\t}\n"
	"\treturn bad;\n"
	"}\n";

/* What the archive's task dumps link on this architecture (Makefile,
 * UNWIND_LIBS): libunwind on x86_64. */
#if defined(__x86_64__)
#define UNWIND "-lunwind "
#else
#define UNWIND ""
#endif

/*
 * libweft_pic.a linked into a shared object that a program dlopens (a
 * Python extension, a plugin), in a process whose static TLS block is
 * already full: the archive's thread-local must not need a place in it
 * (libweft.a's initial-exec model does, and such a dlopen fails with
 * "cannot allocate memory in static TLS block").  The runtime inside then
 * spawns, sleeps and does socket I/O, on io_uring and on epoll.
 */
static void test_archive_in_dlopened_shared_object(void **state)
{
	(void)state;
	locate();
	char lib[PATH_MAX + 32];
	snprintf(lib, sizeof(lib), "%s/libweft_pic.a", g_tree);
	print_message("archive: %s\n", lib);
	assert_true(file_exists(lib));
	char *dir = make_tmpdir();
	assert_non_null(dir);
	write_file(dir, "plug.c", plugin_src);
	write_file(dir, "fill.c", filler_src);
	write_file(dir, "host.c", host_src);
	const char *cc = getenv("CC") && *getenv("CC") ? getenv("CC") : "cc";
	char *log = NULL, *cmd = NULL;
	assert_true(asprintf(&log, "%s/log", dir) > 0);
	/* no -ljemalloc: libjemalloc.so uses initial-exec TLS itself */
	assert_true(asprintf(&cmd,
			     "cd '%s' && %s -std=gnu11 -Wall -Wextra -Werror %s -shared -fPIC "
			     "-I'%s/include' plug.c -o plug.so '%s' -luring " UNWIND "-lpthread -lm -lz && "
			     "%s -std=gnu11 -Wall -Wextra -Werror %s -I'%s/include' host.c -o host "
			     "-ldl && "
			     "%s -shared -fPIC -DN=64 fill.c -o fill64.so && "
			     "%s -shared -fPIC -DN=8 fill.c -o fill8.so && "
			     "for i in $(seq 0 255); do cp fill64.so fill64_$i.so; done && "
			     "for i in $(seq 0 15); do cp fill8.so fill8_$i.so; done",
			     dir, cc, TREE_SAN, g_root, lib, cc, TREE_SAN, g_root, cc, cc) > 0);
	int r = run(cmd, log);
	free(cmd);
	if (r != 0)
		dump(log);
	assert_int_equal(r, 0);
	assert_true(asprintf(&cmd, "cd '%s' && ./host '%s' '%s/plug.so'", dir, dir, dir) > 0);
	r = run(cmd, log);
	free(cmd);
	dump(log);
	assert_int_equal(r, 0);
	free(log);
	remove_tree(dir);
	free(dir);
}

/* x86_64 first, aarch64 kept compiling (README.md; make check-aarch64). */
static void test_aarch64_compiles(void **state)
{
	(void)state;
	locate();
	release_tree_only("a compile check, once is enough");
	if (run("command -v clang && test -d /usr/aarch64-linux-gnu/include", "/dev/null") != 0) {
		print_message("skip: needs clang and libc6-dev-arm64-cross\n");
		skip();
	}
	char *dir = make_tmpdir();
	assert_non_null(dir);
	char *log = NULL, *cmd = NULL;
	assert_true(asprintf(&log, "%s/log", dir) > 0);
	assert_true(asprintf(&cmd, "make -s --no-print-directory -C '%s' check-aarch64", g_root) > 0);
	int rc = run(cmd, log);
	if (rc != 0)
		dump(log);
	free(cmd);
	free(log);
	remove_tree(dir);
	free(dir);
	assert_int_equal(rc, 0);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_archive_exports_only_weft_symbols),
	cmocka_unit_test(test_install_and_pkg_config_build),
	cmocka_unit_test(test_tree_links_its_allocator),
	cmocka_unit_test(test_readme_program_warning_free),
	cmocka_unit_test(test_examples_compile_as_c11),
	cmocka_unit_test(test_archive_in_dlopened_shared_object),
	cmocka_unit_test(test_valgrind_memcheck_clean),
	cmocka_unit_test(test_aarch64_compiles),
};

WEFT_TEST_MAIN(tests)
