/* A tiny test runner: tests are void functions; CHECK fails the running test and returns. */
#ifndef RUNNER_H
#define RUNNER_H

#include <stdio.h>

void t_fail(const char *file, int line, const char *what, long long a, long long b);
extern int t_current_failed;

#define CHECK(c)                                                                             \
    do {                                                                                     \
        if (!(c)) {                                                                          \
            t_fail(__FILE__, __LINE__, #c, 0, 0);                                            \
            return;                                                                          \
        }                                                                                    \
    } while (0)

#define CHECK_EQ(x, y)                                                                       \
    do {                                                                                     \
        long long t_a_ = (long long)(x), t_b_ = (long long)(y);                              \
        if (t_a_ != t_b_) {                                                                  \
            t_fail(__FILE__, __LINE__, #x " == " #y, t_a_, t_b_);                            \
            return;                                                                          \
        }                                                                                    \
    } while (0)

/* Under QEMU the suite runs fewer iterations (FSW_TEST_SCALE divides loop counts). */
#ifndef FSW_TEST_SCALE
#define FSW_TEST_SCALE 1
#endif

#endif
