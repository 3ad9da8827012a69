/* status.c - status names and the thread-local error message. */
#include "status.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char errbuf[1024];

const char *bp_status_str(int status)
{
    switch (status) {
    case BP_OK: return "ok";
    case BP_EINVAL: return "invalid input";
    case BP_EIO: return "i/o error";
    case BP_ENOMEM: return "out of memory";
    case BP_EUNSUPPORTED: return "unsupported";
    case BP_EINFEASIBLE: return "infeasible";
    case BP_EINTERRUPTED: return "interrupted";
    case BP_EINTERNAL: return "internal error";
    }
    return "unknown status";
}

int bp_fail(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    va_end(ap);
    /* names from files (ONNX node names, JSON keys, paths) may hold
     * newlines or escapes: the message stays one printable line */
    for (char *p = errbuf; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return status;
}

const char *bp_errmsg(void) { return errbuf; }

void bp_errclear(void) { errbuf[0] = '\0'; }

int bp_exit_code(int status)
{
    switch (status) {
    case BP_OK: return 0;
    case BP_EINFEASIBLE: return 1;
    case BP_EINVAL:
    case BP_EIO:
    case BP_EUNSUPPORTED: return 2;
    case BP_EINTERRUPTED: return 130;
    default: return 3;
    }
}
