/* Text output: UTF-8 checks, JSON string escapes, base64 and number spellings that match
 * the Python path byte for byte (json.dumps(ensure_ascii=False), repr(float), Arrow's
 * float-to-string cast). */
#ifndef FAULTLENS_NATIVE_TEXT_H
#define FAULTLENS_NATIVE_TEXT_H

#include "common.h"

/* 1 when p[0:n] is valid UTF-8 (strict: no overlongs, surrogates or > U+10FFFF). */
int fl_utf8_valid(const uint8_t *p, size_t n);

#define FL_ONES 0x0101010101010101ULL
#define FL_HIGHS 0x8080808080808080ULL

/* Nonzero when one of the 8 bytes is non-ASCII (for the UTF-8 check). */
static inline uint64_t any_high(uint64_t x) { return x & FL_HIGHS; }

/* Nonzero when one of the 8 bytes is non-ASCII, a control character, '"' or '\\'. */
static inline uint64_t any_special(uint64_t x) {
    uint64_t q = x ^ (FL_ONES * 0x22), b = x ^ (FL_ONES * 0x5C);
    return (x & FL_HIGHS) | ((x - FL_ONES * 0x20) & ~x & FL_HIGHS) | ((q - FL_ONES) & ~q & FL_HIGHS) |
           ((b - FL_ONES) & ~b & FL_HIGHS);
}

extern const uint8_t FL_SPECIAL[256];

/* From the first special byte on: escapes and the UTF-8 check, byte by byte. */
int fl_json_escape_slow(ctx_t *c, buf_t *out, const uint8_t *p, size_t n);

/* Append p[0:n] as the inside of a JSON string (json.dumps escapes); 0 when p is not
 * valid UTF-8 (out is then left with a partial write the caller discards). Plain ASCII
 * (the usual case) is copied while it is checked, 8 bytes at a time. */
FL_INLINE int fl_json_escape(ctx_t *c, buf_t *out, const uint8_t *p, size_t n) {
    buf_reserve(c, out, n + 8);
    uint8_t *o = out->p + out->len;
    size_t i = 0;
    while (n - i >= 8) {
        uint64_t x;
        memcpy(&x, p + i, 8);
        if (any_special(x)) break;
        memcpy(o + i, &x, 8);
        i += 8;
    }
    if (i < n && n - i < 8 && n >= 8) {
        /* the rest: the last 8 bytes, overlapping what is done */
        uint64_t x;
        memcpy(&x, p + n - 8, 8);
        if (!any_special(x)) {
            memcpy(o + n - 8, &x, 8);
            i = n;
        }
    }
    for (; i < n; i++) {
        uint8_t b = p[i];
        if (FL_SPECIAL[b]) break;
        o[i] = b;
    }
    out->len += i;
    return i == n ? 1 : fl_json_escape_slow(c, out, p + i, n - i);
}

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
