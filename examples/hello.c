/*
 * hello — the smallest weft program.  weft's twin of:
 *
 *	async def main():
 *	    print("Hello ...")
 *	    await asyncio.sleep(1)
 *	    print("World!")
 *
 *	asyncio.run(main())
 *
 * weft_run() is asyncio.run(): it starts the event loops (one thread each),
 * runs main_task as the first task, waits for it to return, then shuts the
 * loops down and frees everything.  Inside a task, weft_sleep_ms() suspends
 * the task, not the thread: the loop is free to run other tasks meanwhile.
 *
 *	$ hello
 *	Hello ...
 *	World!
 *
 * Build (weft installed): cc -std=gnu11 hello.c $(pkg-config --cflags --libs weft)
 * In this tree, `make examples` builds it as build/examples/hello.
 */
#include <weft.h>

#include <stdio.h>

static void *main_task(void *arg)
{
	int rc;

	(void)arg; /* unused */
	printf("Hello ...\n");
	fflush(stdout);
	rc = weft_sleep_ms(1000);
	if (rc < 0) /* weft returns -errno; -ECANCELED if we were cancelled */
		return (void *)"weft_sleep_ms failed";
	printf("World!\n");
	return NULL;
}

int main(void)
{
	void *result;
	int rc = weft_run(NULL, main_task, NULL, &result);

	if (rc < 0) {
		fprintf(stderr, "hello: weft_run: %s\n", weft_strerror(rc));
		return 1;
	}
	if (result) { /* main_task's return value */
		fprintf(stderr, "hello: %s\n", (const char *)result);
		return 1;
	}
	return 0;
}
