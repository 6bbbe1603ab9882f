/* Shared pieces of the native span decoder: the decode context, growable buffers, an
 * arena for temporaries, errors, and bounds-checked protobuf wire readers.
 *
 * Errors unwind with longjmp to decode_spans_native() (spans.c), which owns every
 * allocation through the context: output buffers, scratch buffers and the arena are
 * all released in one place, so nothing leaks whichever way a decode ends.
 *
 * The wire rules follow upb (what the Python path parses with): a tag is a varint of at
 * most 5 bytes and at most UINT32_MAX; a value varint has at most 10 bytes (bits past
 * 64 are dropped); a length is a varint of at most 5 bytes that must fit in what is
 * left; field number 0 and wire types 6/7 are corrupt; a field whose wire type does not
 * match its declaration is an unknown field; unknown groups are skipped to their
 * matching end tag; messages and groups nest at most 100 levels below the root.
 */
#ifndef FAULTLENS_NATIVE_COMMON_H
#define FAULTLENS_NATIVE_COMMON_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* for the small functions of the per-KeyValue path: the calls cost more than their bodies */
#define FL_INLINE static inline __attribute__((always_inline))

#define FL_MAX_LEVEL 100    /* upb's nesting limit (messages and groups below the root) */
#define FL_MAX_ANY_DEPTH 32 /* faultlens.decode._anyvalue.MAX_ANY_DEPTH */
#define FL_TINY 256         /* faultlens.decode.attributes.TINY */
#define FL_MAX_OUT 0x7fffffff /* int32 Arrow offsets */

/* upb's error texts, as DecodeError shows them */
#define PB_CORRUPT "Wire format was corrupt"
#define PB_UTF8 "String field had bad UTF-8"
#define PB_DEPTH "Exceeded upb_DecodeOptions_MaxDepth"

/* A piece of the input (never owns memory). n == 0 for an absent or empty field. */
typedef struct {
    const uint8_t *p;
    uint32_t n;
} seg_t;

/* A growable byte buffer in malloc'd memory. The parse runs without the GIL, so output
 * buffers are plain memory too; fl_buf_take hands one to Python without a copy. */
typedef struct {
    uint8_t *p;
    size_t len, cap;
} buf_t;

typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    max_align_t data[];
} arena_chunk_t;

typedef struct ctx ctx_t;

/* Where a protobuf error is reported from: the Python path's "invalid <what>" and the
 * message type upb names. Set by each phase before it parses. */
typedef struct {
    const char *what;
    const char *type;
} where_t;

struct ctx {
    jmp_buf jmp;
    int py_error;     /* FL_ERR_*: what the unwinding caller raises */
    char message[512]; /* the InvalidRequest message for FL_ERR_INVALID */
    /* the thread state while the GIL is released (NULL while it is held): code that needs
     * the interpreter mid-parse takes the GIL back with fl_gil_take/fl_gil_give */
    PyThreadState *released;
    where_t where;
    arena_chunk_t *arena;
    buf_t discard; /* where values that a later duplicate key replaces are written */
    /* the top-level attribute value being written, re-validated when it turns out too
     * deep (so that the error is upb's when upb would have refused it first) */
    const void *top_value;
    int top_level;
};

/* -- errors ------------------------------------------------------------------------- */

#define FL_ERR_INVALID 0 /* a malformed request: InvalidRequest(message) */
#define FL_ERR_PYTHON 1  /* a Python exception is set in this thread's state */
#define FL_ERR_NOMEM 2   /* malloc failed: MemoryError, raised once the GIL is held */

_Noreturn void fl_fail(ctx_t *c, const char *fmt, ...);
_Noreturn void fl_fail_pb(ctx_t *c, const char *detail);
_Noreturn void fl_fail_nomem(ctx_t *c);
_Noreturn void fl_fail_python(ctx_t *c);

/* -- memory --------------------------------------------------------------------------- */

void *fl_arena_alloc(ctx_t *c, size_t size);
void fl_arena_free(ctx_t *c);

/* Release the GIL for the parse / take it back (both no-ops when already so). */
static inline void fl_gil_give(ctx_t *c) {
    if (c->released == NULL) c->released = PyEval_SaveThread();
}
static inline void fl_gil_take(ctx_t *c) {
    if (c->released != NULL) {
        PyEval_RestoreThread(c->released);
        c->released = NULL;
    }
}

void fl_buf_init_out(ctx_t *c, buf_t *b, size_t cap);
void fl_buf_grow(ctx_t *c, buf_t *b, size_t need);
void fl_buf_free(buf_t *b);
/* The buffer as a Python object of exactly its length that owns the memory and exposes
 * it through the buffer protocol (steals it; b is left empty). Needs the GIL. */
PyObject *fl_buf_take(ctx_t *c, buf_t *b);
/* Ready the type of what fl_buf_take returns; once, at module import. */
int fl_buffer_type_ready(void);

static inline void buf_reserve(ctx_t *c, buf_t *b, size_t extra) {
    if (b->cap - b->len < extra) fl_buf_grow(c, b, extra);
}

/* Copy n bytes; short copies inline (two overlapping moves) rather than a memcpy call. */
static inline void copy_bytes(uint8_t *dst, const uint8_t *src, size_t n) {
    if (n >= 8 && n <= 16) {
        uint64_t a, b;
        memcpy(&a, src, 8);
        memcpy(&b, src + n - 8, 8);
        memcpy(dst, &a, 8);
        memcpy(dst + n - 8, &b, 8);
    } else if (n >= 4 && n < 8) {
        uint32_t a, b;
        memcpy(&a, src, 4);
        memcpy(&b, src + n - 4, 4);
        memcpy(dst, &a, 4);
        memcpy(dst + n - 4, &b, 4);
    } else if (n < 4) {
        for (size_t i = 0; i < n; i++) dst[i] = src[i];
    } else {
        memcpy(dst, src, n);
    }
}

static inline void buf_put(ctx_t *c, buf_t *b, const void *p, size_t n) {
    if (b->cap - b->len < n) fl_buf_grow(c, b, n);
    copy_bytes(b->p + b->len, (const uint8_t *)p, n);
    b->len += n;
}

static inline void buf_put_u8(ctx_t *c, buf_t *b, uint8_t v) {
    if (b->cap == b->len) fl_buf_grow(c, b, 1);
    b->p[b->len++] = v;
}

#define BUF_LIT(c, b, s) buf_put((c), (b), (s), sizeof(s) - 1)

/* A growable array of T in malloc'd memory (freed by the owner). */
#define VEC(T)        \
    struct {          \
        T *v;         \
        size_t n, cap; \
    }

void *fl_vec_grow(ctx_t *c, void *v, size_t *cap, size_t elem);

#define VEC_PUSH(c, vec, item)                                                          \
    do {                                                                                \
        if ((vec).n == (vec).cap) (vec).v = fl_vec_grow((c), (vec).v, &(vec).cap, sizeof(*(vec).v)); \
        (vec).v[(vec).n++] = (item);                                                    \
    } while (0)

/* -- wire reading ----------------------------------------------------------------------- */

typedef struct {
    const uint8_t *p, *end;
} cur_t;

static inline cur_t cur_of(seg_t s) {
    cur_t r = {s.p, s.p + s.n};
    return r;
}

static inline uint64_t rd_varint(ctx_t *c, cur_t *r) {
    const uint8_t *p = r->p;
    if (p < r->end && *p < 0x80) {
        r->p = p + 1;
        return *p;
    }
    uint64_t v = 0;
    for (int i = 0; i < 10; i++) {
        if (p + i >= r->end) fl_fail_pb(c, PB_CORRUPT);
        uint8_t b = p[i];
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            r->p = p + i + 1;
            return v;
        }
    }
    fl_fail_pb(c, PB_CORRUPT);
}

static inline uint32_t rd_tag(ctx_t *c, cur_t *r) {
    const uint8_t *p = r->p;
    if (p < r->end && *p < 0x80) {
        r->p = p + 1;
        return *p;
    }
    uint64_t v = 0;
    for (int i = 0; i < 5; i++) {
        if (p + i >= r->end) fl_fail_pb(c, PB_CORRUPT);
        uint8_t b = p[i];
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            if (v > UINT32_MAX) fl_fail_pb(c, PB_CORRUPT);
            r->p = p + i + 1;
            return (uint32_t)v;
        }
    }
    fl_fail_pb(c, PB_CORRUPT);
}

/* A length-delimited payload: the length varint (at most 5 bytes) and the bytes. */
static inline seg_t rd_bytes(ctx_t *c, cur_t *r) {
    const uint8_t *p = r->p;
    uint64_t v = 0;
    int i = 0;
    for (;; i++) {
        if (i == 5 || p + i >= r->end) fl_fail_pb(c, PB_CORRUPT);
        uint8_t b = p[i];
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) break;
    }
    p += i + 1;
    if (v > (uint64_t)(r->end - p)) fl_fail_pb(c, PB_CORRUPT);
    seg_t s = {p, (uint32_t)v};
    r->p = p + v;
    return s;
}

static inline uint64_t rd_fixed64(ctx_t *c, cur_t *r) {
    if (r->end - r->p < 8) fl_fail_pb(c, PB_CORRUPT);
    uint64_t v;
    memcpy(&v, r->p, 8); /* little-endian hosts only (checked at build time) */
    r->p += 8;
    return v;
}

static inline uint32_t rd_fixed32(ctx_t *c, cur_t *r) {
    if (r->end - r->p < 4) fl_fail_pb(c, PB_CORRUPT);
    uint32_t v;
    memcpy(&v, r->p, 4);
    r->p += 4;
    return v;
}

/* Skip the value of an unknown field (or a known one with the wrong wire type) of a
 * message at nesting ``level``. End-group tags are refused: the caller handles them
 * where they are legal (inside a group). */
void fl_skip_field(ctx_t *c, cur_t *r, uint32_t tag, int level);

static inline void enter_level(ctx_t *c, int level) {
    if (level > FL_MAX_LEVEL) fl_fail_pb(c, PB_DEPTH);
}

/* A repeated scalar field read as upb does: unpacked (one value) or packed (wire type 2,
 * any number of values). Returns 1 and the last value read, 0 when there was none. */
int fl_last_varint(ctx_t *c, cur_t *r, uint32_t wt, uint64_t *out);
int fl_last_fixed64(ctx_t *c, cur_t *r, uint32_t wt, uint64_t *out);
int fl_last_fixed32(ctx_t *c, cur_t *r, uint32_t wt, uint32_t *out);

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the native decoder reads fixed-width fields as little-endian host integers"
#endif

#endif
