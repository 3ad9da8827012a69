/* fuzz_file.h - the readers under test take paths: each fuzz input is
 * written to a per-process scratch file first. Included by the fuzz targets
 * only. */
#ifndef BP_FUZZ_FILE_H
#define BP_FUZZ_FILE_H

#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

/* Writes data to /tmp/bp-fuzz-<tag>.<pid>[suffix]; returns the path (static
 * storage) or NULL. */
static const char *fuzz_file(const char *tag, const char *suffix,
                             const uint8_t *data, size_t size)
{
    static char path[128];
    snprintf(path, sizeof path, "/tmp/bp-fuzz-%s.%ld%s", tag, (long)getpid(),
             suffix);
    FILE *f = fopen(path, "wb");
    if (!f)
        return NULL;
    if (size)
        fwrite(data, 1, size, f);
    fclose(f);
    return path;
}

#endif
