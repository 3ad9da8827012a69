/* atomic.c - write-to-temporary-then-rename output files, and the registry
 * of temporary paths that a signal handler may remove.
 *
 * The registry is a fixed array of slots so that bp_outfile_cleanup_all()
 * needs neither malloc nor locks: a slot is claimed with a compare-and-swap
 * (FREE -> BUSY), filled, then published (LIVE); the handler only reads LIVE
 * slots and calls unlink().  Signals are blocked between mkstemp() and the
 * publication of the name, so no temporary file is ever both on disk and
 * unknown to the handler.  A temporary file is deregistered only after it
 * has been renamed or unlinked, so the handler may at worst unlink a name
 * that no longer exists. */
#include "atomic.h"
#include "status.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(ATOMIC_INT_LOCK_FREE == 2,
               "the signal-handler registry needs lock-free atomic int");

enum { SLOT_FREE = 0, SLOT_BUSY, SLOT_LIVE };

struct slot {
    atomic_int state;
    pid_t pid; /* process that created the file: a forked child must not
                  remove its parent's temporaries */
    char path[BP_OUTFILE_PATH_MAX];
};

static struct slot registry[BP_OUTFILE_MAX_OPEN];

struct bp_outfile {
    FILE *fp;
    char *path; /* target */
    char *tmp;  /* DIR/.NAME.XXXXXX */
    char *dir;  /* directory of both, for the final fsync */
    int slot;   /* index in registry, -1 when not registered */
};

/* Claims a slot and publishes tmp in it; returns its index or -1 when the
 * registry is full or tmp does not fit. */
static int registry_add(const char *tmp)
{
    size_t n = strlen(tmp);
    if (n >= BP_OUTFILE_PATH_MAX)
        return -1;
    for (int i = 0; i < BP_OUTFILE_MAX_OPEN; i++) {
        int expect = SLOT_FREE;
        if (atomic_compare_exchange_strong(&registry[i].state, &expect,
                                           SLOT_BUSY)) {
            memcpy(registry[i].path, tmp, n + 1);
            registry[i].pid = getpid();
            atomic_store(&registry[i].state, SLOT_LIVE);
            return i;
        }
    }
    return -1;
}

static void registry_remove(int i)
{
    if (i >= 0)
        atomic_store(&registry[i].state, SLOT_FREE);
}

void bp_outfile_cleanup_all(void)
{
    pid_t self = getpid();
    for (int i = 0; i < BP_OUTFILE_MAX_OPEN; i++)
        if (atomic_load(&registry[i].state) == SLOT_LIVE &&
            registry[i].pid == self)
            unlink(registry[i].path);
}

/* The process umask, read without changing it where /proc allows (the
 * umask(0)/umask(old) pair briefly affects other threads). */
static mode_t current_umask(void)
{
    FILE *st = fopen("/proc/self/status", "r");
    if (st) {
        char line[256];
        unsigned mask;
        while (fgets(line, sizeof line, st))
            if (sscanf(line, "Umask: %o", &mask) == 1) {
                fclose(st);
                return (mode_t)mask;
            }
        fclose(st);
    }
    mode_t old = umask(022);
    umask(old);
    return old;
}

static void outfile_free(bp_outfile *f)
{
    if (!f)
        return;
    free(f->path);
    free(f->tmp);
    free(f->dir);
    free(f);
}

int bp_outfile_open(bp_outfile **out, const char *path)
{
    assert(out && path);
    if (!*path)
        return bp_fail(BP_EINVAL,
                       "cannot create an output file: the path is empty");
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t dirlen = (size_t)(base - path); /* including the '/' */
    if (!*base)
        return bp_fail(BP_EINVAL, "%s: names a directory, expected a file path",
                       path);

    bp_outfile *f = calloc(1, sizeof *f);
    size_t tmplen = strlen(path) + sizeof "/..XXXXXX";
    if (f) {
        f->slot = -1;
        f->path = strdup(path);
        f->tmp = malloc(tmplen);
        f->dir = dirlen ? strndup(path, dirlen) : strdup(".");
    }
    if (!f || !f->path || !f->tmp || !f->dir) {
        outfile_free(f);
        return bp_fail(BP_ENOMEM, "%s: out of memory", path);
    }
    snprintf(f->tmp, tmplen, "%.*s.%s.XXXXXX", (int)dirlen, path, base);

    /* No signal between the file's creation and its registration. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int fd = mkstemp(f->tmp);
    int err = errno;
    if (fd >= 0)
        f->slot = registry_add(f->tmp);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (fd < 0) {
        outfile_free(f);
        return bp_fail(BP_EIO, "%s: cannot create: %s", path, strerror(err));
    }

    /* mkstemp makes 0600; a normal output file is 0666 & ~umask.  A file
     * system without permissions (vfat) may refuse: not worth failing. */
    (void)fchmod(fd, 0666 & ~current_umask());
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    f->fp = fdopen(fd, "wb");
    if (!f->fp) {
        err = errno;
        close(fd);
        unlink(f->tmp);
        registry_remove(f->slot);
        outfile_free(f);
        return bp_fail(BP_EIO, "%s: cannot create: %s", path, strerror(err));
    }
    *out = f;
    return BP_OK;
}

FILE *bp_outfile_stream(bp_outfile *f)
{
    assert(f);
    return f->fp;
}

/* Makes a completed rename durable; failure here cannot be undone, so it is
 * not reported. */
static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

int bp_outfile_commit(bp_outfile **fp)
{
    assert(fp && *fp);
    bp_outfile *f = *fp;
    *fp = NULL;

    int err = 0;
    if (fflush(f->fp) != 0)
        err = errno;
    else if (ferror(f->fp))
        err = EIO; /* an earlier write failed; its errno is gone */
    if (!err && fsync(fileno(f->fp)) != 0 && errno != EINVAL)
        err = errno; /* EINVAL: the file does not support syncing */
    if (fclose(f->fp) != 0 && !err)
        err = errno;
    if (!err && rename(f->tmp, f->path) != 0)
        err = errno;
    if (err)
        unlink(f->tmp);
    registry_remove(f->slot);

    int st = BP_OK;
    if (err)
        st = bp_fail(BP_EIO, "%s: cannot write: %s", f->path, strerror(err));
    else
        sync_dir(f->dir);
    outfile_free(f);
    return st;
}

void bp_outfile_abort(bp_outfile **fp)
{
    if (!fp || !*fp)
        return;
    bp_outfile *f = *fp;
    *fp = NULL;
    fclose(f->fp);
    unlink(f->tmp);
    registry_remove(f->slot);
    outfile_free(f);
}

int bp_write_file_atomic(const char *path, const void *data, size_t n)
{
    bp_outfile *f;
    int st = bp_outfile_open(&f, path);
    if (st)
        return st;
    if (n)
        (void)fwrite(data, 1, n, f->fp); /* a short write sets the error
                                            flag, which commit reports */
    return bp_outfile_commit(&f);
}
