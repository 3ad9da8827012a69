/* testfs.h - a scratch directory per test and whole-file reads, shared by
 * the Check tests of the file readers.  Header-only, test code. */
#ifndef BP_TESTFS_H
#define BP_TESTFS_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

static char tmpdir[256];

/* Creates /tmp/<tag>.XXXXXX into tmpdir. */
static void testfs_setup(const char *tag)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/%s.XXXXXX", tag);
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void testfs_teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

/* The whole file as a NUL-terminated string the caller frees. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    ck_assert_int_eq(fread(s, 1, (size_t)n, f), n);
    s[n] = '\0';
    fclose(f);
    return s;
}

#endif
