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

/* 1 for the bytes a JSON string cannot hold as they are (controls, '"', '\\') and for
 * non-ASCII bytes (which need the UTF-8 check). */
const uint8_t FL_SPECIAL[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

int fl_json_escape_slow(ctx_t *c, buf_t *out, const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t b = p[i];
        if (!FL_SPECIAL[b]) {
            size_t j = i + 1;
            while (j < n && !FL_SPECIAL[p[j]]) j++;
            buf_put(c, out, p + i, j - i);
            i = j;
            continue;
        }
        if (b >= 0x80) {
            size_t k = utf8_seq(p + i, n - i);
            if (k == 0) return 0;
            buf_put(c, out, p + i, k);
            i += k;
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

/* -- doubles ----------------------------------------------------------------------------------- */

static const double P10[18] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,
                               1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17};

/* The shortest round-trip digits of a finite a >= 0 and its decimal point position
 * (value = 0.DIGITS x 10^decpt), as repr() finds them.
 *
 * Fast path, exact: if m x 10^-k (m < 2^51) reads back as a, then a x 10^k rounds to m
 * exactly (|a x 10^k - m| < m x 2^-53 < 1/2), and two such m at one k cannot both read
 * back (10^-k > ulp(a)); so the first k that gives an integer m reading back gives the
 * shortest digits. Otherwise Python's dtoa (PyOS_double_to_string 'r'). */
static int shortest_digits(ctx_t *c, double a, char *digits, int *decpt) {
    const double limit = 2251799813685248.0; /* 2^51 */
    if (a < limit) {
        for (int k = 0; k < 18; k++) {
            double x = a * P10[k];
            if (x >= limit) break;
            double m = (double)(uint64_t)x;
            if (m == x && m / P10[k] == a) {
                uint64_t v = (uint64_t)m;
                char tmp[24];
                int t = 24;
                do {
                    tmp[--t] = (char)('0' + v % 10);
                    v /= 10;
                } while (v);
                int nd = 24 - t;
                memcpy(digits, tmp + t, (size_t)nd);
                *decpt = nd - k;
                while (nd > 1 && digits[nd - 1] == '0') nd--;
                if (nd == 1 && digits[0] == '0') *decpt = 1;
                return nd;
            }
        }
    }
    /* the rare double the fast paths above cannot print: Python's repr, under the GIL */
    PyThreadState *released = c->released;
    fl_gil_take(c);
    char *s = PyOS_double_to_string(a, 'r', 0, 0, NULL);
    if (s == NULL) fl_fail_python(c); /* the GIL is held: the unwinder sees released == NULL */
    int nd = 0, pos = 0, seen_point = 0, exp10 = 0, lead = 1;
    const char *q = s;
    for (; *q && *q != 'e'; q++) {
        if (*q == '.') {
            seen_point = 1;
            continue;
        }
        if (!seen_point) pos++;
        if (lead && *q == '0') {
            pos--; /* a leading zero moves the point, holds no digit */
            continue;
        }
        lead = 0;
        if (nd < 24) digits[nd++] = *q;
    }
    if (*q == 'e') exp10 = atoi(q + 1);
    PyMem_Free(s);
    if (released != NULL) fl_gil_give(c);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    if (nd == 0) {
        digits[nd++] = '0';
        *decpt = 1;
        return nd;
    }
    *decpt = pos + exp10;
    return nd;
}

/* Digits laid out: fixed notation when lo <= exponent < hi, else d.ddd e+X (at least
 * min_exp exponent digits); whole numbers in fixed notation get ".0". */
static void layout(ctx_t *c, buf_t *out, int neg, const char *dg, int n, int decpt, int lo, int hi, int min_exp) {
    char tmp[64];
    int t = 0;
    if (neg) tmp[t++] = '-';
    int e = decpt - 1;
    if (e >= lo && e < hi) {
        if (decpt <= 0) {
            tmp[t++] = '0';
            tmp[t++] = '.';
            for (int i = 0; i < -decpt; i++) tmp[t++] = '0';
            for (int i = 0; i < n; i++) tmp[t++] = dg[i];
        } else if (decpt >= n) {
            for (int i = 0; i < n; i++) tmp[t++] = dg[i];
            for (int i = n; i < decpt; i++) tmp[t++] = '0';
            tmp[t++] = '.';
            tmp[t++] = '0';
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
        tmp[t++] = 'e';
        tmp[t++] = e < 0 ? '-' : '+';
        int a = e < 0 ? -e : e;
        char ed[8];
        int k = 0;
        do {
            ed[k++] = (char)('0' + a % 10);
            a /= 10;
        } while (a);
        while (k < min_exp) ed[k++] = '0';
        while (k) tmp[t++] = ed[--k];
    }
    buf_put(c, out, tmp, (size_t)t);
}

void fl_put_double_repr(ctx_t *c, buf_t *out, double d) {
    char digits[32];
    int decpt;
    int n = shortest_digits(c, fabs(d), digits, &decpt);
    /* repr: exponent when decpt <= -4 or decpt > 16, at least two exponent digits */
    layout(c, out, signbit(d) != 0, digits, n, decpt, -4, 16, 2);
}

void fl_put_double_arrow(ctx_t *c, buf_t *out, double d) {
    char digits[32];
    int decpt;
    int n = shortest_digits(c, fabs(d), digits, &decpt);
    /* Arrow (double-conversion): fixed for exponents -6..9, exponent digits as needed */
    layout(c, out, signbit(d) != 0, digits, n, decpt, -6, 10, 1);
}
