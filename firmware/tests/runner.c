/* Runs every test in list.h and prints "N passed, M failed"; the exit status is the verdict
 * (on QEMU it becomes the emulator's exit status through semihosting). */
#include "runner.h"

#include <stdlib.h>
#include <string.h>

#define T(n) void test_##n(void);
#include "list.h"
#undef T

int t_current_failed;

void t_fail(const char *file, int line, const char *what, long long a, long long b)
{
    t_current_failed = 1;
    printf("  FAIL %s:%d: %s", file, line, what);
    if (a != b)
        printf(" (%lld != %lld)", a, b);
    printf("\n");
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
#define T(n) {#n, test_##n},
#include "list.h"
#undef T
    };
    int passed = 0, failed = 0;
    unsigned i;
    for (i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        int j, run = argc < 2;
        for (j = 1; j < argc; j++)
            run |= !strcmp(argv[j], tests[i].name);
        if (!run)
            continue;
        t_current_failed = 0;
        tests[i].fn();
        printf("%-24s %s\n", tests[i].name, t_current_failed ? "FAILED" : "ok");
        fflush(stdout);
        if (t_current_failed)
            failed++;
        else
            passed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
