/*
 * test_check.h -- the report of the C test drivers (tests/csrc/test_*_main.c): one line per check,
 * "OK <name> | info" or "FAIL <name> | info", and "SUMMARY <ok> <fail>" at the end (parsed by
 * tests/conftest.py, parse_c_driver / assert_driver_all_ok). Include once, from the driver.
 */
#ifndef TEST_CHECK_H
#define TEST_CHECK_H

#include <stdarg.h>
#include <stdio.h>

static int g_ok = 0, g_fail = 0;

static void check(int ok, const char *name, const char *fmt, ...)
{
    va_list ap;
    printf("%s %s | ", ok ? "OK" : "FAIL", name);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    if (ok) g_ok++;
    else g_fail++;
}

/* The summary line; the driver's exit status. */
static int check_summary(void)
{
    printf("SUMMARY %d %d\n", g_ok, g_fail);
    return g_fail == 0 ? 0 : 1;
}

#endif
