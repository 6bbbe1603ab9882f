/* Errors, memory and the generic wire helpers of common.h. */
#include "common.h"

#include <stdarg.h>
#include <stdio.h>

/* -- errors ------------------------------------------------------------------------- */

void fl_fail(ctx_t *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->message, sizeof(c->message), fmt, ap);
    va_end(ap);
    c->py_error = FL_ERR_INVALID;
    longjmp(c->jmp, 1);
}

void fl_fail_pb(ctx_t *c, const char *detail) {
    fl_fail(c, "malformed OTLP protobuf: invalid %s: Error parsing message with type '%s': %s", c->where.what,
            c->where.type, detail);
}

void fl_fail_nomem(ctx_t *c) {
    c->py_error = FL_ERR_NOMEM; /* no PyErr_NoMemory here: the GIL may not be held */
    longjmp(c->jmp, 1);
}

void fl_fail_python(ctx_t *c) {
    c->py_error = FL_ERR_PYTHON;
    longjmp(c->jmp, 1);
}

/* -- arena ---------------------------------------------------------------------------- */

void *fl_arena_alloc(ctx_t *c, size_t size) {
    if (size > ((size_t)1 << 40)) fl_fail(c, "request too large to decode");
    size = (size + 15) & ~(size_t)15;
    if (size == 0) size = 16;
    if (size > 16 * 1024) {
        /* a big block gets a chunk of its own, linked behind the one being filled */
        arena_chunk_t *big = malloc(sizeof(arena_chunk_t) + size);
        if (big == NULL) fl_fail_nomem(c);
        big->cap = big->used = size;
        if (c->arena != NULL) {
            big->next = c->arena->next;
            c->arena->next = big;
        } else {
            big->next = NULL;
            c->arena = big;
        }
        return big->data;
    }
    arena_chunk_t *a = c->arena;
    if (a == NULL || a->cap - a->used < size) {
        size_t cap = 64 * 1024;
        a = malloc(sizeof(arena_chunk_t) + cap);
        if (a == NULL) fl_fail_nomem(c);
        a->cap = cap;
        a->used = 0;
        a->next = c->arena;
        c->arena = a;
    }
    void *p = (char *)a->data + a->used;
    a->used += size;
    return p;
}

void fl_arena_free(ctx_t *c) {
    arena_chunk_t *a = c->arena;
    while (a != NULL) {
        arena_chunk_t *next = a->next;
        free(a);
        a = next;
    }
    c->arena = NULL;
}

/* -- buffers ---------------------------------------------------------------------------- */

void fl_buf_init_out(ctx_t *c, buf_t *b, size_t cap) {
    if (cap == 0) cap = 1;
    b->p = malloc(cap);
    if (b->p == NULL) fl_fail_nomem(c);
    b->len = 0;
    b->cap = cap;
}

void fl_buf_grow(ctx_t *c, buf_t *b, size_t need) {
    if (need > ((size_t)1 << 40) - b->len) fl_fail(c, "request too large to decode");
    size_t want = b->len + need;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < want) cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (p == NULL) fl_fail_nomem(c);
    b->p = p;
    b->cap = cap;
}

void fl_buf_free(buf_t *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* What fl_buf_take returns: malloc'd bytes that pyarrow wraps (pa.py_buffer) without a
 * copy and that are freed with the last Arrow buffer over them. Read-only. */
typedef struct {
    PyObject_HEAD uint8_t *p;
    Py_ssize_t len;
} out_buffer_t;

static void out_buffer_dealloc(out_buffer_t *self) {
    free(self->p);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int out_buffer_get(out_buffer_t *self, Py_buffer *view, int flags) {
    return PyBuffer_FillInfo(view, (PyObject *)self, self->p, self->len, 1, flags);
}

static Py_ssize_t out_buffer_length(out_buffer_t *self) { return self->len; }

static PyBufferProcs out_buffer_as_buffer = {.bf_getbuffer = (getbufferproc)out_buffer_get};
static PySequenceMethods out_buffer_as_sequence = {.sq_length = (lenfunc)out_buffer_length};

static PyTypeObject out_buffer_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "faultlens.decode._native.Buffer",
    .tp_basicsize = sizeof(out_buffer_t),
    .tp_dealloc = (destructor)out_buffer_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Bytes decoded into an Arrow buffer (read-only buffer protocol).",
    .tp_as_buffer = &out_buffer_as_buffer,
    .tp_as_sequence = &out_buffer_as_sequence,
};

int fl_buffer_type_ready(void) { return PyType_Ready(&out_buffer_type); }

PyObject *fl_buf_take(ctx_t *c, buf_t *b) {
    out_buffer_t *o = PyObject_New(out_buffer_t, &out_buffer_type);
    if (o == NULL) fl_fail_python(c);
    if (b->p == NULL) {
        o->p = malloc(1);
        if (o->p == NULL) {
            Py_DECREF(o);
            fl_fail_nomem(c);
        }
    } else if (b->cap > b->len + b->len / 8 + 64) {
        /* give the slack of the last doubling back: the array lives as long as the batch */
        uint8_t *p = realloc(b->p, b->len ? b->len : 1);
        o->p = p != NULL ? p : b->p;
    } else {
        o->p = b->p;
    }
    o->len = (Py_ssize_t)b->len;
    b->p = NULL;
    b->len = b->cap = 0;
    return (PyObject *)o;
}

/* Grow a vector to twice *cap (16 when empty); with v == NULL, allocate *cap elements. */
void *fl_vec_grow(ctx_t *c, void *v, size_t *cap, size_t elem) {
    size_t n = v == NULL && *cap ? *cap : *cap ? *cap * 2 : 16;
    if (n > ((size_t)1 << 40) / elem) fl_fail(c, "request too large to decode");
    void *p = realloc(v, n * elem);
    if (p == NULL) fl_fail_nomem(c);
    *cap = n;
    return p;
}

/* -- wire --------------------------------------------------------------------------------- */

static void skip_group(ctx_t *c, cur_t *r, uint32_t field, int level) {
    if (r->p >= r->end) fl_fail_pb(c, PB_CORRUPT);
    enter_level(c, level);
    while (r->p < r->end) {
        uint32_t tag = rd_tag(c, r);
        if ((tag & 7) == 4) {
            if ((tag >> 3) != field) fl_fail_pb(c, PB_CORRUPT);
            return;
        }
        fl_skip_field(c, r, tag, level);
    }
    fl_fail_pb(c, PB_CORRUPT); /* no end tag */
}

void fl_skip_field(ctx_t *c, cur_t *r, uint32_t tag, int level) {
    if ((tag >> 3) == 0) fl_fail_pb(c, PB_CORRUPT);
    switch (tag & 7) {
        case 0:
            (void)rd_varint(c, r);
            return;
        case 1:
            (void)rd_fixed64(c, r);
            return;
        case 2:
            (void)rd_bytes(c, r);
            return;
        case 3:
            skip_group(c, r, tag >> 3, level + 1);
            return;
        case 5:
            (void)rd_fixed32(c, r);
            return;
        default: /* 4: end group outside a group; 6, 7: no such wire type */
            fl_fail_pb(c, PB_CORRUPT);
    }
}

int fl_last_varint(ctx_t *c, cur_t *r, uint32_t wt, uint64_t *out) {
    if (wt == 0) {
        *out = rd_varint(c, r);
        return 1;
    }
    seg_t s = rd_bytes(c, r);
    cur_t p = cur_of(s);
    int any = 0;
    while (p.p < p.end) {
        *out = rd_varint(c, &p);
        any = 1;
    }
    return any;
}

/* The last value of a fixed-width field of ``width`` bytes: one value (wire type
   ``single``) or a packed run of them; 0 when the run is empty. */
static int last_fixed(ctx_t *c, cur_t *r, uint32_t wt, uint32_t single, size_t width, void *out) {
    if (wt == single) {
        if (width == 8) {
            uint64_t v = rd_fixed64(c, r);
            memcpy(out, &v, 8);
        } else {
            uint32_t v = rd_fixed32(c, r);
            memcpy(out, &v, 4);
        }
        return 1;
    }
    seg_t s = rd_bytes(c, r);
    if (s.n % width) fl_fail_pb(c, PB_CORRUPT);
    if (s.n == 0) return 0;
    memcpy(out, s.p + s.n - width, width);
    return 1;
}

int fl_last_fixed64(ctx_t *c, cur_t *r, uint32_t wt, uint64_t *out) { return last_fixed(c, r, wt, 1, 8, out); }

int fl_last_fixed32(ctx_t *c, cur_t *r, uint32_t wt, uint32_t *out) { return last_fixed(c, r, wt, 5, 4, out); }
