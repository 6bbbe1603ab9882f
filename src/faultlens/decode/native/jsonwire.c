/* OTLP/JSON trace documents to protobuf wire bytes (see jsonwire.h for the contract).
 *
 * Each function mirrors the Python encoder's function of the same message
 * (faultlens/decode/_jsonwire.py: _request, _scope_items, _resource, _scope, _span,
 * _event, _link, _status, _key_value, _any_value) and writes the same fields in the same
 * (field number) order. They return 0, or -1 to decline (with an exception set only when
 * memory ran out). An object's keys are matched once against its message's names into
 * slots (borrowed references, NULL for absent or null), then the slots are written in
 * order.
 *
 * A length-delimited field is written in place: its tag, room for a guessed length
 * varint, the body, then the length; a guess of the wrong size moves the body (a few
 * bytes) once. There is no per-request KeyValue cache as in the Python encoder: here
 * writing a KeyValue costs about what looking it up would.
 */
#include "jsonwire.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#define MAX_ANY_DEPTH 16 /* faultlens.decode._jsonwire.MAX_ANY_DEPTH */
#define MAX_DIGITS 20    /* longer decimal strings (leading zeros) decline */

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "jsonwire writes fixed-width fields as little-endian host integers"
#endif

/* -- output ------------------------------------------------------------------------------ */

typedef struct {
    uint8_t *p;
    size_t len, cap;
} out_t;

static int grow(out_t *o, size_t extra) {
    if (extra > (size_t)PY_SSIZE_T_MAX - o->len) {
        PyErr_NoMemory();
        return -1;
    }
    size_t want = o->len + extra;
    size_t cap = o->cap ? o->cap : 4096;
    while (cap < want) cap = cap > (size_t)PY_SSIZE_T_MAX / 2 ? want : cap * 2;
    uint8_t *p = PyMem_Realloc(o->p, cap);
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    o->p = p;
    o->cap = cap;
    return 0;
}

static inline int reserve(out_t *o, size_t extra) {
    return o->cap - o->len >= extra ? 0 : grow(o, extra);
}

static inline size_t varint_size(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Write a varint at p (room for 10 bytes); returns the bytes written. */
static inline size_t varint_at(uint8_t *p, uint64_t v) {
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* Callers reserve first: these write without checking room. */
static inline void put_u8(out_t *o, uint8_t b) { o->p[o->len++] = b; }
static inline void put_varint(out_t *o, uint64_t v) { o->len += varint_at(o->p + o->len, v); }
static inline void put_raw(out_t *o, const void *s, size_t n) {
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

/* Begin a length-delimited field: its tag and ``guess`` bytes for the length. Returns the
 * mark that ld_end takes. */
static inline int ld_begin(out_t *o, uint8_t tag, size_t guess, size_t *mark) {
    if (reserve(o, 1 + guess) < 0) return -1;
    put_u8(o, tag);
    *mark = o->len;
    o->len += guess;
    return 0;
}

static inline int ld_end(out_t *o, size_t mark, size_t guess) {
    size_t body = o->len - mark - guess;
    size_t k = varint_size(body);
    if (k != guess) {
        if (k > guess && reserve(o, k - guess) < 0) return -1;
        memmove(o->p + mark + k, o->p + mark + guess, body);
        o->len = o->len - guess + k;
    }
    varint_at(o->p + mark, body);
    return 0;
}

/* -- field names ----------------------------------------------------------------------------- */

typedef struct {
    const char *name;
    Py_ssize_t len;
} name_t;

#define NAME(s) {s, sizeof(s) - 1}

/* An ASCII str's characters, or NULL (another type, or not compact ASCII). */
static inline const char *ascii_of(PyObject *s, Py_ssize_t *n) {
    if (!PyUnicode_CheckExact(s) || !PyUnicode_IS_COMPACT_ASCII(s)) return NULL;
    *n = PyUnicode_GET_LENGTH(s);
    return (const char *)PyUnicode_DATA(s);
}

static inline int name_index(PyObject *key, const name_t *names, int n) {
    Py_ssize_t len;
    const char *s = ascii_of(key, &len);
    if (s == NULL) return -1;
    for (int i = 0; i < n; i++)
        if (names[i].len == len && memcmp(names[i].name, s, (size_t)len) == 0) return i;
    return -1;
}

/* The values of ``d``'s fields by index into ``names`` (NULL: absent or null), like
 * _fields' fast case; declines when ``d`` is no dict or has any other key. */
static int fields_of(PyObject *d, const name_t *names, int n, PyObject **slots) {
    if (!PyDict_CheckExact(d)) return -1;
    for (int i = 0; i < n; i++) slots[i] = NULL;
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(d, &pos, &key, &value)) {
        int i = name_index(key, names, n);
        if (i < 0) return -1;
        slots[i] = value == Py_None ? NULL : value;
    }
    return 0;
}

/* -- scalars ---------------------------------------------------------------------------------- */

/* An exception from the C API on a value: decline, unless memory ran out. */
static int api_error(void) {
    if (!PyErr_ExceptionMatches(PyExc_MemoryError)) PyErr_Clear();
    return -1;
}

/* A str's UTF-8 (for ASCII its own characters, else the str's cached UTF-8). */
static inline const char *utf8_of(PyObject *v, Py_ssize_t *n) {
    if (!PyUnicode_CheckExact(v)) return NULL;
    if (PyUnicode_IS_COMPACT_ASCII(v)) {
        *n = PyUnicode_GET_LENGTH(v);
        return (const char *)PyUnicode_DATA(v);
    }
    const char *s = PyUnicode_AsUTF8AndSize(v, n);
    if (s == NULL) api_error();
    return s;
}

/* A string field: tag, length, UTF-8; left out when empty unless ``always`` (a oneof member). */
static int put_string(out_t *o, uint8_t tag, PyObject *v, int always) {
    Py_ssize_t n;
    const char *s = utf8_of(v, &n);
    if (s == NULL) return -1;
    if (n == 0 && !always) return 0;
    if (reserve(o, 11 + (size_t)n) < 0) return -1;
    put_u8(o, tag);
    put_varint(o, (uint64_t)n);
    put_raw(o, s, (size_t)n);
    return 0;
}

/* Decimal ASCII digits (1 to MAX_DIGITS of them) to their value; -1 when not such or
 * above UINT64_MAX. */
static int parse_digits(const char *s, Py_ssize_t n, uint64_t *out) {
    if (n < 1 || n > MAX_DIGITS) return -1;
    uint64_t v = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (d > 9) return -1;
        if (v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* _uint: an exact int or a string of ASCII digits, 0 <= n <= high. */
static int get_uint(PyObject *v, uint64_t high, uint64_t *out) {
    uint64_t n;
    if (PyLong_CheckExact(v)) {
        n = PyLong_AsUnsignedLongLong(v);
        if (n == (uint64_t)-1 && PyErr_Occurred()) return api_error(); /* negative or too big */
    } else {
        Py_ssize_t len;
        const char *s = ascii_of(v, &len);
        if (s == NULL || parse_digits(s, len, &n) < 0) return -1;
    }
    if (n > high) return -1;
    *out = n;
    return 0;
}

/* _int: an exact int or a string of ASCII digits after an optional '-', low <= n <= high. */
static int get_int(PyObject *v, int64_t low, int64_t high, int64_t *out) {
    int64_t n;
    if (PyLong_CheckExact(v)) {
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow) return -1;
        if (x == -1 && PyErr_Occurred()) return api_error();
        n = (int64_t)x;
    } else {
        Py_ssize_t len;
        const char *s = ascii_of(v, &len);
        if (s == NULL) return -1;
        int negative = len > 0 && s[0] == '-';
        uint64_t m;
        if (parse_digits(s + negative, len - negative, &m) < 0) return -1;
        if (negative) {
            if (m > (uint64_t)INT64_MAX + 1) return -1;
            n = m == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)m;
        } else {
            if (m > (uint64_t)INT64_MAX) return -1;
            n = (int64_t)m;
        }
    }
    if (n < low || n > high) return -1;
    *out = n;
    return 0;
}

/* _double for what this code takes: a finite float or an exact int. */
static int get_double(PyObject *v, double *out) {
    if (PyFloat_CheckExact(v)) {
        double d = PyFloat_AS_DOUBLE(v);
        if (!isfinite(d)) return -1;
        *out = d;
        return 0;
    }
    if (PyLong_CheckExact(v)) {
        double d = PyLong_AsDouble(v); /* float(v): correctly rounded, OverflowError past DBL_MAX */
        if (d == -1.0 && PyErr_Occurred()) return api_error();
        *out = d;
        return 0;
    }
    return -1;
}

/* _fixed64 / _fixed32 / _uint32: left out when zero. */
static int put_fixed64(out_t *o, uint8_t tag, PyObject *v) {
    uint64_t n;
    if (get_uint(v, UINT64_MAX, &n) < 0) return -1;
    if (n == 0) return 0;
    if (reserve(o, 9) < 0) return -1;
    put_u8(o, tag);
    put_raw(o, &n, 8);
    return 0;
}

static int put_fixed32(out_t *o, const char *tag, size_t tag_len, PyObject *v) {
    uint64_t n;
    if (get_uint(v, UINT32_MAX, &n) < 0) return -1;
    if (n == 0) return 0;
    if (reserve(o, tag_len + 4) < 0) return -1;
    put_raw(o, tag, tag_len);
    uint32_t x = (uint32_t)n;
    put_raw(o, &x, 4);
    return 0;
}

static int put_uint32(out_t *o, uint8_t tag, PyObject *v) {
    uint64_t n;
    if (get_uint(v, UINT32_MAX, &n) < 0) return -1;
    if (n == 0) return 0;
    if (reserve(o, 11) < 0) return -1;
    put_u8(o, tag);
    put_varint(o, n);
    return 0;
}

/* _enum_field for numbers only (a name declines): int32, negative ones sign-extended. */
static int put_enum(out_t *o, uint8_t tag, PyObject *v) {
    int64_t n;
    if (!PyLong_CheckExact(v) || get_int(v, INT32_MIN, INT32_MAX, &n) < 0) return -1;
    if (n == 0) return 0;
    if (reserve(o, 11) < 0) return -1;
    put_u8(o, tag);
    put_varint(o, (uint64_t)n);
    return 0;
}

static inline int hex_value(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* _hex_id: a hex string of even length (either case); left out when empty. */
static int put_hex_id(out_t *o, uint8_t tag, PyObject *v) {
    Py_ssize_t n;
    const char *s = ascii_of(v, &n);
    if (s == NULL || n % 2) return -1;
    if (n == 0) return 0;
    size_t len = (size_t)n / 2;
    if (reserve(o, 11 + len) < 0) return -1;
    size_t start = o->len;
    put_u8(o, tag);
    put_varint(o, len);
    for (size_t i = 0; i < len; i++) {
        int hi = hex_value((unsigned char)s[2 * i]), lo = hex_value((unsigned char)s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            o->len = start;
            return -1;
        }
        o->p[o->len++] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

/* -- AnyValue and KeyValue ----------------------------------------------------------------------- */

enum { AV_STRING, AV_BOOL, AV_INT, AV_DOUBLE, AV_ARRAY, AV_KVLIST, AV_BYTES, AV_N };
static const name_t ANY_NAMES[AV_N] = {
    NAME("stringValue"), NAME("boolValue"),   NAME("intValue"),   NAME("doubleValue"),
    NAME("arrayValue"),  NAME("kvlistValue"), NAME("bytesValue"),
};
enum { KV_KEY, KV_VALUE, KV_N };
static const name_t KV_NAMES[KV_N] = {NAME("key"), NAME("value")};
static const name_t VALUES_NAMES[1] = {NAME("values")}; /* ArrayValue and KeyValueList */

static int attributes(out_t *o, uint8_t tag, PyObject *kvs, int depth);

/* The AnyValue message's body (its tag and length are the caller's). */
static int any_value(out_t *o, PyObject *v, int depth) {
    if (!PyDict_CheckExact(v)) return -1;
    Py_ssize_t size = PyDict_GET_SIZE(v);
    if (size == 0) return 0;
    if (size != 1) return -1; /* several members of the oneof, or nulls beside one */
    Py_ssize_t pos = 0;
    PyObject *kind, *x;
    if (!PyDict_Next(v, &pos, &kind, &x)) return -1;
    int k = name_index(kind, ANY_NAMES, AV_N);
    if (k < 0) return -1;
    if (x == Py_None) return 0;
    switch (k) {
        case AV_STRING:
            return put_string(o, 0x0a, x, 1);
        case AV_BOOL:
            if (x != Py_True && x != Py_False) return -1;
            if (reserve(o, 2) < 0) return -1;
            put_u8(o, 0x10);
            put_u8(o, x == Py_True);
            return 0;
        case AV_INT: {
            int64_t n;
            if (get_int(x, INT64_MIN, INT64_MAX, &n) < 0 || reserve(o, 11) < 0) return -1;
            put_u8(o, 0x18);
            put_varint(o, (uint64_t)n);
            return 0;
        }
        case AV_DOUBLE: {
            double d;
            if (get_double(x, &d) < 0 || reserve(o, 9) < 0) return -1;
            put_u8(o, 0x21);
            put_raw(o, &d, 8);
            return 0;
        }
        case AV_ARRAY:
        case AV_KVLIST: {
            if (depth >= MAX_ANY_DEPTH) return -1;
            PyObject *items;
            if (fields_of(x, VALUES_NAMES, 1, &items) < 0) return -1;
            size_t mark;
            if (ld_begin(o, k == AV_ARRAY ? 0x2a : 0x32, 1, &mark) < 0) return -1;
            if (items != NULL) {
                if (k == AV_KVLIST) {
                    if (attributes(o, 0x0a, items, depth + 1) < 0) return -1;
                } else {
                    if (!PyList_CheckExact(items)) return -1;
                    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
                        size_t m;
                        if (ld_begin(o, 0x0a, 1, &m) < 0) return -1;
                        if (any_value(o, PyList_GET_ITEM(items, i), depth + 1) < 0) return -1;
                        if (ld_end(o, m, 1) < 0) return -1;
                    }
                }
            }
            return ld_end(o, mark, 1);
        }
        default: /* bytesValue: the Python encoder's business */
            return -1;
    }
}

/* The KeyValue message's body. */
static int key_value(out_t *o, PyObject *kv, int depth) {
    PyObject *f[KV_N];
    if (fields_of(kv, KV_NAMES, KV_N, f) < 0) return -1;
    if (f[KV_KEY] != NULL && put_string(o, 0x0a, f[KV_KEY], 0) < 0) return -1;
    if (f[KV_VALUE] != NULL) {
        size_t mark;
        if (ld_begin(o, 0x12, 1, &mark) < 0) return -1;
        if (any_value(o, f[KV_VALUE], depth) < 0) return -1;
        if (ld_end(o, mark, 1) < 0) return -1;
    }
    return 0;
}

/* _attributes: each KeyValue of the list ``kvs`` as a ``tag`` field. */
static int attributes(out_t *o, uint8_t tag, PyObject *kvs, int depth) {
    if (!PyList_CheckExact(kvs)) return -1;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(kvs); i++) {
        size_t mark;
        if (ld_begin(o, tag, 1, &mark) < 0) return -1;
        if (key_value(o, PyList_GET_ITEM(kvs, i), depth) < 0) return -1;
        if (ld_end(o, mark, 1) < 0) return -1;
    }
    return 0;
}

/* A message field: tag, length and the body ``write`` gives. */
typedef int (*write_fn)(out_t *o, PyObject *d);

static int message(out_t *o, uint8_t tag, size_t guess, write_fn write, PyObject *d) {
    size_t mark;
    if (ld_begin(o, tag, guess, &mark) < 0) return -1;
    if (write(o, d) < 0) return -1;
    return ld_end(o, mark, guess);
}

/* A repeated message field: ``v`` must be a list. */
static int messages(out_t *o, uint8_t tag, size_t guess, write_fn write, PyObject *v) {
    if (!PyList_CheckExact(v)) return -1;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(v); i++)
        if (message(o, tag, guess, write, PyList_GET_ITEM(v, i)) < 0) return -1;
    return 0;
}

/* -- spans --------------------------------------------------------------------------------------- */

enum {
    SP_TRACE_ID,
    SP_SPAN_ID,
    SP_TRACE_STATE,
    SP_PARENT_SPAN_ID,
    SP_NAME,
    SP_KIND,
    SP_START,
    SP_END,
    SP_ATTRIBUTES,
    SP_DROPPED_ATTRIBUTES,
    SP_EVENTS,
    SP_DROPPED_EVENTS,
    SP_LINKS,
    SP_DROPPED_LINKS,
    SP_STATUS,
    SP_FLAGS,
    SP_N,
};
static const name_t SPAN_NAMES[SP_N] = {
    NAME("traceId"),
    NAME("spanId"),
    NAME("traceState"),
    NAME("parentSpanId"),
    NAME("name"),
    NAME("kind"),
    NAME("startTimeUnixNano"),
    NAME("endTimeUnixNano"),
    NAME("attributes"),
    NAME("droppedAttributesCount"),
    NAME("events"),
    NAME("droppedEventsCount"),
    NAME("links"),
    NAME("droppedLinksCount"),
    NAME("status"),
    NAME("flags"),
};

enum { EV_TIME, EV_NAME, EV_ATTRIBUTES, EV_DROPPED_ATTRIBUTES, EV_N };
static const name_t EVENT_NAMES[EV_N] = {
    NAME("timeUnixNano"),
    NAME("name"),
    NAME("attributes"),
    NAME("droppedAttributesCount"),
};

enum { LK_TRACE_ID, LK_SPAN_ID, LK_TRACE_STATE, LK_ATTRIBUTES, LK_DROPPED_ATTRIBUTES, LK_FLAGS, LK_N };
static const name_t LINK_NAMES[LK_N] = {
    NAME("traceId"), NAME("spanId"), NAME("traceState"), NAME("attributes"), NAME("droppedAttributesCount"),
    NAME("flags"),
};

enum { ST_MESSAGE, ST_CODE, ST_N };
static const name_t STATUS_NAMES[ST_N] = {NAME("message"), NAME("code")};

static int span_event(out_t *o, PyObject *d) {
    PyObject *f[EV_N];
    if (fields_of(d, EVENT_NAMES, EV_N, f) < 0) return -1;
    if (f[EV_TIME] != NULL && put_fixed64(o, 0x09, f[EV_TIME]) < 0) return -1;
    if (f[EV_NAME] != NULL && put_string(o, 0x12, f[EV_NAME], 0) < 0) return -1;
    if (f[EV_ATTRIBUTES] != NULL && attributes(o, 0x1a, f[EV_ATTRIBUTES], 0) < 0) return -1;
    if (f[EV_DROPPED_ATTRIBUTES] != NULL && put_uint32(o, 0x20, f[EV_DROPPED_ATTRIBUTES]) < 0) return -1;
    return 0;
}

static int span_link(out_t *o, PyObject *d) {
    PyObject *f[LK_N];
    if (fields_of(d, LINK_NAMES, LK_N, f) < 0) return -1;
    if (f[LK_TRACE_ID] != NULL && put_hex_id(o, 0x0a, f[LK_TRACE_ID]) < 0) return -1;
    if (f[LK_SPAN_ID] != NULL && put_hex_id(o, 0x12, f[LK_SPAN_ID]) < 0) return -1;
    if (f[LK_TRACE_STATE] != NULL && put_string(o, 0x1a, f[LK_TRACE_STATE], 0) < 0) return -1;
    if (f[LK_ATTRIBUTES] != NULL && attributes(o, 0x22, f[LK_ATTRIBUTES], 0) < 0) return -1;
    if (f[LK_DROPPED_ATTRIBUTES] != NULL && put_uint32(o, 0x28, f[LK_DROPPED_ATTRIBUTES]) < 0) return -1;
    if (f[LK_FLAGS] != NULL && put_fixed32(o, "\x35", 1, f[LK_FLAGS]) < 0) return -1;
    return 0;
}

static int span_status(out_t *o, PyObject *d) {
    PyObject *f[ST_N];
    if (fields_of(d, STATUS_NAMES, ST_N, f) < 0) return -1;
    if (f[ST_MESSAGE] != NULL && put_string(o, 0x12, f[ST_MESSAGE], 0) < 0) return -1;
    if (f[ST_CODE] != NULL && put_enum(o, 0x18, f[ST_CODE]) < 0) return -1;
    return 0;
}

static int span(out_t *o, PyObject *d) {
    PyObject *f[SP_N];
    if (fields_of(d, SPAN_NAMES, SP_N, f) < 0) return -1;
    if (f[SP_TRACE_ID] != NULL && put_hex_id(o, 0x0a, f[SP_TRACE_ID]) < 0) return -1;
    if (f[SP_SPAN_ID] != NULL && put_hex_id(o, 0x12, f[SP_SPAN_ID]) < 0) return -1;
    if (f[SP_TRACE_STATE] != NULL && put_string(o, 0x1a, f[SP_TRACE_STATE], 0) < 0) return -1;
    if (f[SP_PARENT_SPAN_ID] != NULL && put_hex_id(o, 0x22, f[SP_PARENT_SPAN_ID]) < 0) return -1;
    if (f[SP_NAME] != NULL && put_string(o, 0x2a, f[SP_NAME], 0) < 0) return -1;
    if (f[SP_KIND] != NULL && put_enum(o, 0x30, f[SP_KIND]) < 0) return -1;
    if (f[SP_START] != NULL && put_fixed64(o, 0x39, f[SP_START]) < 0) return -1;
    if (f[SP_END] != NULL && put_fixed64(o, 0x41, f[SP_END]) < 0) return -1;
    if (f[SP_ATTRIBUTES] != NULL && attributes(o, 0x4a, f[SP_ATTRIBUTES], 0) < 0) return -1;
    if (f[SP_DROPPED_ATTRIBUTES] != NULL && put_uint32(o, 0x50, f[SP_DROPPED_ATTRIBUTES]) < 0) return -1;
    if (f[SP_EVENTS] != NULL && messages(o, 0x5a, 1, span_event, f[SP_EVENTS]) < 0) return -1;
    if (f[SP_DROPPED_EVENTS] != NULL && put_uint32(o, 0x60, f[SP_DROPPED_EVENTS]) < 0) return -1;
    if (f[SP_LINKS] != NULL && messages(o, 0x6a, 1, span_link, f[SP_LINKS]) < 0) return -1;
    if (f[SP_DROPPED_LINKS] != NULL && put_uint32(o, 0x70, f[SP_DROPPED_LINKS]) < 0) return -1;
    if (f[SP_STATUS] != NULL && message(o, 0x7a, 1, span_status, f[SP_STATUS]) < 0) return -1;
    if (f[SP_FLAGS] != NULL && put_fixed32(o, "\x85\x01", 2, f[SP_FLAGS]) < 0) return -1;
    return 0;
}

/* -- resource, scope and the request ---------------------------------------------------------------- */

enum { RE_ATTRIBUTES, RE_DROPPED_ATTRIBUTES, RE_N };
static const name_t RESOURCE_NAMES[RE_N] = {NAME("attributes"), NAME("droppedAttributesCount")};

enum { SC_NAME, SC_VERSION, SC_ATTRIBUTES, SC_DROPPED_ATTRIBUTES, SC_N };
static const name_t SCOPE_NAMES[SC_N] = {
    NAME("name"),
    NAME("version"),
    NAME("attributes"),
    NAME("droppedAttributesCount"),
};

enum { SS_SCOPE, SS_SPANS, SS_SCHEMA_URL, SS_N };
static const name_t SCOPE_SPANS_NAMES[SS_N] = {NAME("scope"), NAME("spans"), NAME("schemaUrl")};

enum { RS_RESOURCE, RS_SCOPE_SPANS, RS_SCHEMA_URL, RS_N };
static const name_t RESOURCE_SPANS_NAMES[RS_N] = {NAME("resource"), NAME("scopeSpans"), NAME("schemaUrl")};

static const name_t REQUEST_NAMES[1] = {NAME("resourceSpans")};

static int resource(out_t *o, PyObject *d) {
    PyObject *f[RE_N];
    if (fields_of(d, RESOURCE_NAMES, RE_N, f) < 0) return -1;
    if (f[RE_ATTRIBUTES] != NULL && attributes(o, 0x0a, f[RE_ATTRIBUTES], 0) < 0) return -1;
    if (f[RE_DROPPED_ATTRIBUTES] != NULL && put_uint32(o, 0x10, f[RE_DROPPED_ATTRIBUTES]) < 0) return -1;
    return 0;
}

static int scope(out_t *o, PyObject *d) {
    PyObject *f[SC_N];
    if (fields_of(d, SCOPE_NAMES, SC_N, f) < 0) return -1;
    if (f[SC_NAME] != NULL && put_string(o, 0x0a, f[SC_NAME], 0) < 0) return -1;
    if (f[SC_VERSION] != NULL && put_string(o, 0x12, f[SC_VERSION], 0) < 0) return -1;
    if (f[SC_ATTRIBUTES] != NULL && attributes(o, 0x1a, f[SC_ATTRIBUTES], 0) < 0) return -1;
    if (f[SC_DROPPED_ATTRIBUTES] != NULL && put_uint32(o, 0x20, f[SC_DROPPED_ATTRIBUTES]) < 0) return -1;
    return 0;
}

static int scope_spans(out_t *o, PyObject *d) {
    PyObject *f[SS_N];
    if (fields_of(d, SCOPE_SPANS_NAMES, SS_N, f) < 0) return -1;
    if (f[SS_SCOPE] != NULL && message(o, 0x0a, 1, scope, f[SS_SCOPE]) < 0) return -1;
    if (f[SS_SPANS] != NULL && messages(o, 0x12, 2, span, f[SS_SPANS]) < 0) return -1;
    if (f[SS_SCHEMA_URL] != NULL && put_string(o, 0x1a, f[SS_SCHEMA_URL], 0) < 0) return -1;
    return 0;
}

static int resource_spans(out_t *o, PyObject *d) {
    PyObject *f[RS_N];
    if (fields_of(d, RESOURCE_SPANS_NAMES, RS_N, f) < 0) return -1;
    if (f[RS_RESOURCE] != NULL && message(o, 0x0a, 1, resource, f[RS_RESOURCE]) < 0) return -1;
    if (f[RS_SCOPE_SPANS] != NULL && messages(o, 0x12, 3, scope_spans, f[RS_SCOPE_SPANS]) < 0) return -1;
    if (f[RS_SCHEMA_URL] != NULL && put_string(o, 0x1a, f[RS_SCHEMA_URL], 0) < 0) return -1;
    return 0;
}

PyObject *fl_traces_json_to_wire(PyObject *doc) {
    PyObject *resources;
    out_t o = {NULL, 0, 0};
    int rc = fields_of(doc, REQUEST_NAMES, 1, &resources);
    if (rc == 0 && resources != NULL) rc = messages(&o, 0x0a, 3, resource_spans, resources);
    if (rc < 0) {
        PyMem_Free(o.p);
        if (PyErr_Occurred()) return NULL;
        Py_RETURN_NONE;
    }
    PyObject *out = PyBytes_FromStringAndSize((const char *)o.p, (Py_ssize_t)o.len);
    PyMem_Free(o.p);
    return out;
}
