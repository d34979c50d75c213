/* Errors carry a sentence for the person at the terminal: what is wrong and,
 * where it helps, what to do. No allocation: the message lives in the struct. */
#ifndef LMF_ERROR_H
#define LMF_ERROR_H

#include <stdarg.h>

#define LMF_ERROR_MAX 160

typedef struct lmf_error {
    char msg[LMF_ERROR_MAX];
} lmf_error;

/* Formats into err->msg (see fmt.h for the conversions) and returns -1, so that
 * callers can write `return lmf_fail(err, "...", ...);`. err may be NULL. */
int lmf_fail(lmf_error *err, const char *fmt, ...);

#endif
