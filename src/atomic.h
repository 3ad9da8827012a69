/* atomic.h - output files that are never seen half-written.
 *
 * Every file bitplan writes (plans, sensitivity files, .npy outputs, sweep
 * results, checkpoints) goes first to a temporary file in its target's
 * directory and appears under the target's name only once it is complete
 * and fsync'ed.  A crash, a full disk or Ctrl-C therefore leaves either the
 * old file or the new one, never a truncated mix.
 *
 * The temporary file is unnamed (Linux O_TMPFILE) where the kernel and the
 * file system allow it, so that even SIGKILL leaves nothing behind; it is
 * linked into place at commit.  Elsewhere (or with the environment variable
 * BITPLAN_ATOMIC_NAMED=1) it is a hidden DIR/.NAME.XXXXXX renamed over the
 * target, which a SIGKILL can leave behind (never under the target's name).
 *
 * A symbolic link as the target is followed (the file it names is
 * replaced, the link stays).  A target that exists and is not a regular
 * file (/dev/null, a FIFO, a terminal) is written in place, without a
 * temporary file: it cannot be renamed over, and replacing a device node
 * with a file would break it for everyone.
 *
 * Ownership: a bp_outfile owns its FILE stream and its temporary file.  It
 * ends in exactly one of bp_outfile_commit() or bp_outfile_abort(), both of
 * which free the handle and set the caller's pointer to NULL.
 *
 * Signals: the paths of all named temporary files are kept in a
 * process-wide registry, so a SIGINT/SIGTERM handler can call
 * bp_outfile_cleanup_all() (async-signal-safe: it only calls unlink() on
 * paths stored in advance) and then _exit().  The registry holds
 * BP_OUTFILE_MAX_OPEN paths of up to BP_OUTFILE_PATH_MAX bytes; a named
 * temporary file beyond those limits still works but is not removed by
 * bp_outfile_cleanup_all(). */
#ifndef BP_ATOMIC_H
#define BP_ATOMIC_H

#include <stddef.h>
#include <stdio.h>

#define BP_OUTFILE_MAX_OPEN 32
#define BP_OUTFILE_PATH_MAX 4096

typedef struct bp_outfile bp_outfile;

/* Creates the temporary file for target `path` in its directory (DIR, "."
 * when path has no '/'): unnamed, or DIR/.NAME.XXXXXX, with mode
 * 0666 & ~umask, as a plain fopen would.  On success stores a new handle in *out.  Returns
 * BP_EIO with "PATH: cannot create: <strerror>" when the directory does not
 * exist or is not writable, BP_EINVAL when path is empty or names a
 * directory ("dir/"), BP_ENOMEM on allocation failure; *out is then
 * unchanged and nothing is left on disk.  The target is not touched until
 * bp_outfile_commit(). */
int bp_outfile_open(bp_outfile **out, const char *path);

/* Whether bp_outfile_open(path) can be expected to succeed, without
 * creating anything (a FIFO opened and closed would signal its reader the
 * end): the target is not a directory and its directory is writable, or
 * the target is a writable device or FIFO.  For checking an output path
 * before long work; BP_OK, or the status and message bp_outfile_open would
 * give. */
int bp_outfile_check(const char *path);

/* The stream to write the contents to.  Owned by f: do not fclose it.
 * Write errors may be ignored here; they are reported by commit. */
FILE *bp_outfile_stream(bp_outfile *f);

/* Finishes the file: checks the stream's error flag, fflush, fsync, then
 * links an unnamed temporary file in place (directly when the target does
 * not exist, else through a hidden name renamed over it) or renames the
 * named one over the target, fclose (and, best effort, syncs the
 * directory).  On any failure the temporary file is removed, the target
 * is left as it was, and BP_EIO is returned with "PATH: cannot write:
 * <strerror>".  In every case *f is freed and set to NULL.  Accepts
 * *f == NULL only as a programming error (asserts). */
int bp_outfile_commit(bp_outfile **f);

/* Discards the file: closes the stream and removes the temporary file; the
 * target is left as it was.  Frees *f and sets it to NULL.  Accepts NULL and
 * *f == NULL, so it can sit unconditionally on an error path. */
void bp_outfile_abort(bp_outfile **f);

/* Writes n bytes of data to path atomically (open, write, commit).  Returns
 * BP_OK or the status of the failing step, with its message; on failure the
 * target is left as it was and no temporary file remains. */
int bp_write_file_atomic(const char *path, const void *data, size_t n);

/* Removes every named temporary file currently open through
 * bp_outfile_open() in this process (unnamed ones need no removal).  Async-signal-safe: meant for SIGINT/SIGTERM handlers, which
 * should follow it with _exit().  Handles stay allocated; a later commit of
 * such a handle fails with BP_EIO, a later abort is harmless. */
void bp_outfile_cleanup_all(void);

#endif
