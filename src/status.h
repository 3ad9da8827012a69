/* status.h - bitplan's error model.
 *
 * Two tiers, as in ggml: assert() for programmer mistakes, a returned status
 * for anything a user's file or argument can cause.  Every public function
 * returns 0 (BP_OK) or a negative bp_status and writes its outputs through
 * pointers only on success.  On failure it also leaves a one-line message,
 * naming the file and the field or node, in a thread-local buffer read with
 * bp_errmsg().  The CLI maps statuses to exit codes with bp_exit_code(). */
#ifndef BP_STATUS_H
#define BP_STATUS_H

typedef enum bp_status {
    BP_OK = 0,
    BP_EINVAL = -1,       /* malformed input: file content or argument */
    BP_EIO = -2,          /* a file cannot be opened, read or written */
    BP_ENOMEM = -3,       /* allocation failed */
    BP_EUNSUPPORTED = -4, /* well-formed input using what bitplan lacks */
    BP_EINFEASIBLE = -5,  /* a budget or check cannot be met */
    BP_EINTERRUPTED = -6, /* stopped by a signal */
    BP_EINTERNAL = -7     /* a bug: please report */
} bp_status;

/* Short name of a status ("invalid input", ...). Never NULL. */
const char *bp_status_str(int status);

/* Records a printf-style message for the calling thread and returns status,
 * so that error paths read `return bp_fail(BP_EINVAL, "%s: ...", path);`. */
int bp_fail(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The calling thread's last message ("" when none). Valid until the next
 * bp_fail on the same thread. */
const char *bp_errmsg(void);

/* Clears the calling thread's message. */
void bp_errclear(void);

/* Exit code for the CLI: 0 ok, 1 failed check (BP_EINFEASIBLE), 2 bad input
 * (BP_EINVAL, BP_EIO, BP_EUNSUPPORTED), 130 interrupted (as shells report
 * SIGINT), 3 anything else. */
int bp_exit_code(int status);

#endif
