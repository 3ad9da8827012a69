/* atomic.c - write-to-temporary-then-rename output files, and the registry
 * of temporary paths that a signal handler may remove.
 *
 * Two kinds of temporary file:
 *  - unnamed (Linux O_TMPFILE, where the kernel and file system support it):
 *    the contents live in an inode with no name in the target directory, so
 *    that no kill, not even SIGKILL or a power cut, can leave a partial file
 *    behind.  Commit gives it a name with linkat() of /proc/self/fd/N: onto
 *    the target itself when the target does not exist (one atomic step:
 *    linkat never replaces), otherwise onto a fresh hidden name
 *    DIR/.NAME.XXXXXX which is then renamed over the target (rename is the
 *    only atomic replace).  The hidden name exists only between those two
 *    system calls, with signals blocked, and is registered for the handler
 *    like the named temporaries below.
 *  - named (the fallback: other systems, file systems without O_TMPFILE
 *    such as some network file systems, no /proc, or the environment
 *    variable BITPLAN_ATOMIC_NAMED=1, which the tests use): mkstemp
 *    DIR/.NAME.XXXXXX, renamed at commit; a SIGKILL leaves it behind.
 *
 * The registry is a fixed array of slots so that bp_outfile_cleanup_all()
 * needs neither malloc nor locks: a slot is claimed with a compare-and-swap
 * (FREE -> BUSY), filled, then published (LIVE); the handler only reads LIVE
 * slots and calls unlink().  Signals are blocked between the creation of a
 * named file and the publication of its name, so no temporary file is ever
 * both on disk and unknown to the handler.  A temporary file is
 * deregistered only after it has been renamed or unlinked, so the handler
 * may at worst unlink a name that no longer exists.  Unnamed temporaries
 * need no slot: the handler bumps a generation counter instead, so that a
 * later commit of such a handle fails as the contract says. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* O_TMPFILE */
#endif
#include "atomic.h"
#include "status.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
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
/* bumped by every bp_outfile_cleanup_all(): unnamed temporaries opened
 * before it must not be committed */
static atomic_int generation;

struct bp_outfile {
    FILE *fp;
    char *path; /* target */
    char *tmp;  /* DIR/.NAME.XXXXXX (named temporary, or the hidden name an
                   unnamed one gets at commit when the target exists) */
    char *dir;  /* directory of both, for the final fsync */
    int slot;   /* index in registry, -1 when not registered */
    int unnamed;   /* O_TMPFILE: no name until commit */
    int direct;    /* the target is a device or a FIFO: written in place */
    int gen;       /* generation at open */
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
    atomic_fetch_add(&generation, 1);
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

/* An unnamed temporary file in dir, or -1 (then the caller falls back to a
 * named one).  Its mode is 0666 & ~umask, as open() applies the umask. */
static int open_unnamed(const char *dir)
{
#ifdef O_TMPFILE
    const char *env = getenv("BITPLAN_ATOMIC_NAMED");
    if (env && *env && strcmp(env, "0") != 0)
        return -1;
    int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
    if (fd < 0)
        return -1; /* EOPNOTSUPP, EISDIR (old kernels), ENOENT, ... */
    /* commit names it through /proc: make sure that will work now, while
     * falling back is still possible */
    char proc[64];
    struct stat sb;
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    if (stat(proc, &sb) != 0) {
        close(fd);
        return -1;
    }
    return fd;
#else
    (void)dir;
    return -1;
#endif
}

int bp_outfile_open(bp_outfile **out, const char *path)
{
    assert(out && path);
    if (!*path)
        return bp_fail(BP_EINVAL,
                       "cannot create an output file: the path is empty");
    /* A symbolic link is followed: the file it names is replaced and the
     * link stays.  A target that is not a regular file (/dev/null, a FIFO,
     * a terminal) must not be renamed over, root may do that to /dev/null:
     * it is written in place, as a shell redirection would. */
    struct stat sb;
    char *real = NULL;
    if (lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode)) {
        if (!(real = realpath(path, NULL)))
            return bp_fail(BP_EIO, "%s: cannot create: %s (a symbolic link "
                           "whose target cannot be resolved)", path,
                           strerror(errno));
        path = real;
    }
    int exists = stat(path, &sb) == 0;
    if (exists && S_ISDIR(sb.st_mode)) {
        int st = bp_fail(BP_EINVAL, "%s: names a directory, expected a file "
                         "path", path);
        free(real);
        return st;
    }
    if (exists && !S_ISREG(sb.st_mode)) {
        bp_outfile *f = calloc(1, sizeof *f);
        int err = ENOMEM;
        if (f && (f->path = strdup(path))) {
            f->slot = -1;
            f->direct = 1;
            f->fp = fopen(path, "wb");
            err = errno;
        }
        if (!f || !f->fp) {
            int st = bp_fail(err == ENOMEM ? BP_ENOMEM : BP_EIO,
                             "%s: cannot create: %s", path, strerror(err));
            outfile_free(f);
            free(real);
            return st;
        }
        free(real);
        *out = f;
        return BP_OK;
    }
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t dirlen = (size_t)(base - path); /* including the '/' */
    if (!*base) {
        int st = bp_fail(BP_EINVAL, "%s: names a directory, expected a file "
                         "path", path);
        free(real);
        return st;
    }

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
        free(real);
        return bp_fail(BP_ENOMEM, "out of memory creating an output file");
    }
    snprintf(f->tmp, tmplen, "%.*s.%s.XXXXXX", (int)dirlen, path, base);
    free(real); /* f->path holds the target now */

    int fd = open_unnamed(f->dir);
    int err = 0;
    if (fd >= 0) {
        f->unnamed = 1;
        f->gen = atomic_load(&generation);
    } else {
        /* No signal between the file's creation and its registration. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        fd = mkstemp(f->tmp);
        err = errno;
        if (fd >= 0)
            f->slot = registry_add(f->tmp);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (fd < 0) {
            outfile_free(f);
            return bp_fail(BP_EIO, "%s: cannot create: %s", path,
                           strerror(err));
        }
        /* mkstemp makes 0600; a normal output file is 0666 & ~umask.  A
         * file system without permissions (vfat) may refuse: not worth
         * failing. */
        (void)fchmod(fd, 0666 & ~current_umask());
        (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    f->fp = fdopen(fd, "wb");
    if (!f->fp) {
        err = errno;
        close(fd);
        if (!f->unnamed)
            unlink(f->tmp);
        registry_remove(f->slot);
        outfile_free(f);
        return bp_fail(BP_EIO, "%s: cannot create: %s", path, strerror(err));
    }
    *out = f;
    return BP_OK;
}

int bp_outfile_check(const char *path)
{
    assert(path);
    if (!*path)
        return bp_fail(BP_EINVAL,
                       "cannot create an output file: the path is empty");
    struct stat sb;
    if (stat(path, &sb) == 0) {
        if (S_ISDIR(sb.st_mode))
            return bp_fail(BP_EINVAL, "%s: names a directory, expected a file "
                           "path", path);
        if (!S_ISREG(sb.st_mode))
            return access(path, W_OK) == 0
                       ? BP_OK
                       : bp_fail(BP_EIO, "%s: cannot create: %s", path,
                                 strerror(errno));
    }
    /* the temporary file goes beside the target (a link's target) */
    char *real = NULL;
    if (lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode) &&
        !(real = realpath(path, NULL)))
        return bp_fail(BP_EIO, "%s: cannot create: %s (a symbolic link whose "
                       "target cannot be resolved)", path, strerror(errno));
    const char *p = real ? real : path;
    const char *slash = strrchr(p, '/');
    int st = BP_OK;
    if (slash && !slash[1])
        st = bp_fail(BP_EINVAL, "%s: names a directory, expected a file path",
                     path);
    else {
        char *dir = slash ? strndup(p, (size_t)(slash - p) + 1) : strdup(".");
        if (!dir)
            st = bp_fail(BP_ENOMEM, "out of memory checking an output path");
        else if (access(dir, W_OK | X_OK) != 0)
            st = bp_fail(BP_EIO, "%s: cannot create: %s", path,
                         strerror(errno));
        free(dir);
    }
    free(real);
    return st;
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

/* Replaces the trailing XXXXXX of f->tmp with fresh characters (the names
 * only need to differ: linkat() never follows or replaces an existing
 * name). */
static void fresh_name(bp_outfile *f, unsigned attempt)
{
    static const char set[] = "abcdefghijklmnopqrstuvwxyz"
                              "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    static atomic_uint counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
                 ((uint64_t)getpid() << 40) ^
                 ((uint64_t)atomic_fetch_add(&counter, 1) << 20) ^ attempt;
    x *= 0x9e3779b97f4a7c15ULL;
    char *p = f->tmp + strlen(f->tmp) - 6;
    for (int i = 0; i < 6; i++) {
        p[i] = set[x % (sizeof set - 1)];
        x /= sizeof set - 1;
    }
}

/* Gives the unnamed temporary behind fd its final name; returns 0 or an
 * errno value. */
static int link_unnamed(bp_outfile *f, int fd)
{
#ifdef O_TMPFILE
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    if (atomic_load(&generation) != f->gen)
        return EINTR; /* bp_outfile_cleanup_all() ran: the run is over */
    /* a new target: link it in place directly, nothing else to clean up */
    if (linkat(AT_FDCWD, proc, AT_FDCWD, f->path, AT_SYMLINK_FOLLOW) == 0)
        return 0;
    if (errno != EEXIST)
        return errno;
    /* an existing target (or anything else there): via a hidden name */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int err = EEXIST;
    for (unsigned attempt = 0; attempt < 100 && err == EEXIST; attempt++) {
        fresh_name(f, attempt);
        err = linkat(AT_FDCWD, proc, AT_FDCWD, f->tmp, AT_SYMLINK_FOLLOW) == 0
                  ? 0 : errno;
    }
    if (!err) {
        f->slot = registry_add(f->tmp);
        if (rename(f->tmp, f->path) != 0) {
            err = errno;
            unlink(f->tmp);
        }
        registry_remove(f->slot);
        f->slot = -1;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return err;
#else
    (void)f;
    (void)fd;
    return ENOSYS;
#endif
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
    if (!err && !f->direct && fsync(fileno(f->fp)) != 0 && errno != EINVAL)
        err = errno; /* EINVAL: the file does not support syncing */
    if (f->direct) {
        if (fclose(f->fp) != 0 && !err)
            err = errno;
    } else if (f->unnamed) {
        /* named while still open: the descriptor is the only handle */
        if (!err)
            err = link_unnamed(f, fileno(f->fp));
        if (fclose(f->fp) != 0 && !err)
            err = errno;
    } else {
        if (fclose(f->fp) != 0 && !err)
            err = errno;
        if (!err && rename(f->tmp, f->path) != 0)
            err = errno;
        if (err)
            unlink(f->tmp);
        registry_remove(f->slot);
    }

    int st = BP_OK;
    if (err)
        st = bp_fail(BP_EIO, "%s: cannot write: %s", f->path, strerror(err));
    else if (!f->direct)
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
    fclose(f->fp); /* an unnamed temporary vanishes with its descriptor */
    if (!f->unnamed && !f->direct)
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
