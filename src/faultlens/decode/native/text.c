#include "text.h"

#include <math.h>

/* Length of the UTF-8 sequence starting at p (at most n bytes available), 0 if invalid. */
static inline size_t utf8_seq(const uint8_t *p, size_t n) {
    uint8_t b = p[0];
    if (b < 0x80) return 1;
    if (b < 0xC2) return 0;
    if (b < 0xE0) return (n >= 2 && (p[1] & 0xC0) == 0x80) ? 2 : 0;
    if (b < 0xF0) {
        if (n < 3 || (p[2] & 0xC0) != 0x80) return 0;
        uint8_t b1 = p[1];
        if (b == 0xE0) return (b1 >= 0xA0 && b1 <= 0xBF) ? 3 : 0;
        if (b == 0xED) return (b1 >= 0x80 && b1 <= 0x9F) ? 3 : 0;
        return (b1 & 0xC0) == 0x80 ? 3 : 0;
    }
    if (b > 0xF4 || n < 4 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) return 0;
    uint8_t b1 = p[1];
    if (b == 0xF0) return (b1 >= 0x90 && b1 <= 0xBF) ? 4 : 0;
    if (b == 0xF4) return (b1 >= 0x80 && b1 <= 0x8F) ? 4 : 0;
    return (b1 & 0xC0) == 0x80 ? 4 : 0;
}

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Nonzero when one of the 8 bytes is non-ASCII (for the UTF-8 check). */
static inline uint64_t any_high(uint64_t x) { return x & HIGHS; }

/* Nonzero when one of the 8 bytes is non-ASCII, a control character, '"' or '\\'. */
static inline uint64_t any_special(uint64_t x) {
    uint64_t q = x ^ (ONES * 0x22), b = x ^ (ONES * 0x5C);
    return (x & HIGHS) | ((x - ONES * 0x20) & ~x & HIGHS) | ((q - ONES) & ~q & HIGHS) |
           ((b - ONES) & ~b & HIGHS);
}

int fl_utf8_valid(const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (n - i >= 8) {
            uint64_t x;
            memcpy(&x, p + i, 8);
            if (!any_high(x)) {
                i += 8;
                continue;
            }
        }
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = utf8_seq(p + i, n - i);
        if (k == 0) return 0;
        i += k;
    }
    return 1;
}

static const char HEX[] = "0123456789abcdef";

int fl_json_escape(ctx_t *c, buf_t *out, const uint8_t *p, size_t n) {
    size_t i = 0;
    while (n - i >= 8) {
        uint64_t x;
        memcpy(&x, p + i, 8);
        if (any_special(x)) break;
        i += 8;
    }
    buf_put(c, out, p, i);
    while (i < n) {
        uint8_t b = p[i];
        if (b >= 0x80) {
            size_t k = utf8_seq(p + i, n - i);
            if (k == 0) return 0;
            buf_put(c, out, p + i, k);
            i += k;
            continue;
        }
        if (b >= 0x20 && b != '"' && b != '\\') {
            size_t j = i + 1;
            while (j < n && p[j] >= 0x20 && p[j] < 0x80 && p[j] != '"' && p[j] != '\\') j++;
            buf_put(c, out, p + i, j - i);
            i = j;
            continue;
        }
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t len = 2;
        switch (b) {
            case '"':
                esc[1] = '"';
                break;
            case '\\':
                esc[1] = '\\';
                break;
            case '\b':
                esc[1] = 'b';
                break;
            case '\f':
                esc[1] = 'f';
                break;
            case '\n':
                esc[1] = 'n';
                break;
            case '\r':
                esc[1] = 'r';
                break;
            case '\t':
                esc[1] = 't';
                break;
            default:
                esc[1] = 'u';
                esc[2] = '0';
                esc[3] = '0';
                esc[4] = HEX[b >> 4];
                esc[5] = HEX[b & 15];
                len = 6;
        }
        buf_put(c, out, esc, len);
        i++;
    }
    return 1;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void fl_base64(ctx_t *c, buf_t *out, const uint8_t *p, size_t n) {
    buf_reserve(c, out, (n + 2) / 3 * 4);
    uint8_t *o = out->p + out->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = (uint8_t)B64[v >> 18];
        *o++ = (uint8_t)B64[(v >> 12) & 63];
        *o++ = (uint8_t)B64[(v >> 6) & 63];
        *o++ = (uint8_t)B64[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        *o++ = (uint8_t)B64[v >> 18];
        *o++ = (uint8_t)B64[(v >> 12) & 63];
        *o++ = '=';
        *o++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        *o++ = (uint8_t)B64[v >> 18];
        *o++ = (uint8_t)B64[(v >> 12) & 63];
        *o++ = (uint8_t)B64[(v >> 6) & 63];
        *o++ = '=';
    }
    out->len = (size_t)(o - out->p);
}

void fl_put_u64(ctx_t *c, buf_t *out, uint64_t v) {
    char tmp[24];
    int i = 24;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    buf_put(c, out, tmp + i, (size_t)(24 - i));
}

void fl_put_i64(ctx_t *c, buf_t *out, int64_t v) {
    if (v < 0) {
        buf_put_u8(c, out, '-');
        fl_put_u64(c, out, (uint64_t)0 - (uint64_t)v);
    } else {
        fl_put_u64(c, out, (uint64_t)v);
    }
}

const char *fl_nonfinite_name(double d) {
    if (isnan(d)) return "NaN";
    return d > 0 ? "Infinity" : "-Infinity";
}

void fl_put_double_repr(ctx_t *c, buf_t *out, double d) {
    buf_reserve(c, out, 32); /* repr is at most 24 characters: grow first, so s cannot leak */
    char *s = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (s == NULL) fl_fail_python(c);
    size_t n = strlen(s);
    if (n > 32) n = 32;
    memcpy(out->p + out->len, s, n);
    out->len += n;
    PyMem_Free(s);
}

void fl_put_double_arrow(ctx_t *c, buf_t *out, double d) {
    char *s = PyOS_double_to_string(d, 'r', 0, 0, NULL);
    if (s == NULL) fl_fail_python(c);
    /* repr's shortest digits and decimal exponent, laid out as Arrow does */
    char digits[32];
    int nd = 0, decpt = 0, neg = 0, seen_point = 0, exp10 = 0;
    const char *q = s;
    if (*q == '-') {
        neg = 1;
        q++;
    }
    for (; *q && *q != 'e'; q++) {
        if (*q == '.') {
            seen_point = 1;
            continue;
        }
        if (nd < (int)sizeof(digits)) digits[nd++] = *q;
        if (!seen_point) decpt++;
    }
    if (*q == 'e') exp10 = atoi(q + 1);
    PyMem_Free(s);
    decpt += exp10;
    int lead = 0;
    while (lead < nd && digits[lead] == '0') lead++;
    decpt -= lead;
    int end = nd;
    while (end > lead && digits[end - 1] == '0') end--;
    const char *dg = digits + lead;
    int n = end - lead;
    if (n == 0) {
        dg = "0";
        n = 1;
        decpt = 1;
    }
    char tmp[64];
    int t = 0;
    if (neg) tmp[t++] = '-';
    int e = decpt - 1;
    int whole = 0;
    if (e >= -6 && e < 10) {
        if (decpt <= 0) {
            tmp[t++] = '0';
            tmp[t++] = '.';
            for (int i = 0; i < -decpt; i++) tmp[t++] = '0';
            for (int i = 0; i < n; i++) tmp[t++] = dg[i];
        } else if (decpt >= n) {
            for (int i = 0; i < n; i++) tmp[t++] = dg[i];
            for (int i = n; i < decpt; i++) tmp[t++] = '0';
            whole = 1;
        } else {
            for (int i = 0; i < decpt; i++) tmp[t++] = dg[i];
            tmp[t++] = '.';
            for (int i = decpt; i < n; i++) tmp[t++] = dg[i];
        }
    } else {
        tmp[t++] = dg[0];
        if (n > 1) {
            tmp[t++] = '.';
            for (int i = 1; i < n; i++) tmp[t++] = dg[i];
        }
        t += snprintf(tmp + t, sizeof(tmp) - (size_t)t, "e%c%d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    }
    if (whole) {
        tmp[t++] = '.';
        tmp[t++] = '0';
    }
    buf_put(c, out, tmp, (size_t)t);
}
