/* Text output: UTF-8 checks, JSON string escapes, base64 and number spellings that match
 * the Python path byte for byte (json.dumps(ensure_ascii=False), repr(float), Arrow's
 * float-to-string cast). */
#ifndef FAULTLENS_NATIVE_TEXT_H
#define FAULTLENS_NATIVE_TEXT_H

#include "common.h"

/* 1 when p[0:n] is valid UTF-8 (strict: no overlongs, surrogates or > U+10FFFF). */
int fl_utf8_valid(const uint8_t *p, size_t n);

/* Append p[0:n] as the inside of a JSON string (json.dumps escapes); 0 when p is not
 * valid UTF-8 (out is then left with a partial write the caller discards). */
int fl_json_escape(ctx_t *c, buf_t *out, const uint8_t *p, size_t n);

void fl_base64(ctx_t *c, buf_t *out, const uint8_t *p, size_t n);
void fl_put_i64(ctx_t *c, buf_t *out, int64_t v);
void fl_put_u64(ctx_t *c, buf_t *out, uint64_t v);

/* A finite double as repr() spells it ("0.1", "1e-05", "3.0"). */
void fl_put_double_repr(ctx_t *c, buf_t *out, double d);
/* A finite double as Arrow casts it to string, with ".0" added to whole numbers
 * (faultlens.decode._anyvalue.double_texts): fixed notation for exponents -6..9,
 * else "1.5e+16" / "1e-7". */
void fl_put_double_arrow(ctx_t *c, buf_t *out, double d);
/* NaN and the infinities as the Python path names them, without quotes. */
const char *fl_nonfinite_name(double d);

#endif
