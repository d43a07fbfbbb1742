/* UTF-8 well-formedness (Unicode Table 3-7: no overlongs, no surrogates, nothing above
 * U+10FFFF), shared by every reader of untrusted text. */
#ifndef R1_CORE_UTF8_H
#define R1_CORE_UTF8_H

#include <stddef.h>

/* Length of the well-formed sequence at s (at most n bytes available), or 0 if there is none. */
size_t utf8_len_at(const unsigned char *s, size_t n);
/* Offset of the first byte that does not begin a well-formed sequence, or -1 if all is valid. */
ptrdiff_t utf8_invalid_at(const char *s, size_t n);

#endif
