/* A serialized ExportTraceServiceRequest to the Arrow buffers of SPAN_SCHEMA.
 *
 * The phases follow faultlens.decode.spans.decode_spans_python step by step, so that a
 * request with one problem fails with the same message, and the fields are read with
 * the same (upb) semantics as the shadow messages it parses with:
 *
 *   A  the request, resource_spans and scope_spans (TraceRequest); spans stay bytes
 *   B  every span's own fields (SpanCols: each field repeated, so the last value wins
 *      and scalar fields may also come packed)
 *   C  validation: the first failing rule of each span; the first reason of the request
 *      is the lowest (rule, span) pair, as Rejections.check reports it
 *   F1 status (Status) and the plain columns
 *   F2 span attributes: JSON and the semantic-convention columns
 *   F3 events (Event), F4 their JSON and the exception columns
 *   F5 links (Link), F6 their columns
 *   F7 resources (Resource), F8 their attributes, F9 scopes (Scope), F10 their columns
 *
 * Every span is read by every phase, rejected ones too (the Python path decodes them
 * before it filters them out): a rejected span's output is written and then rolled back.
 * Resources and scopes are read only when the request holds at least one span.
 */
#include "spans.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>

#include "anyvalue.h"
#include "text.h"

#define I64_MAX_U ((uint64_t)INT64_MAX)
#define TAG(field, wire) (((uint32_t)(field) << 3) | (wire))

/* -- promotion specs ---------------------------------------------------------------------- */

static inline uint64_t key_head(const uint8_t *p, uint32_t n) {
    uint64_t v = 0;
    if (n >= 8)
        memcpy(&v, p, 8);
    else if (n)
        memcpy(&v, p, n);
    return v;
}

static inline uint64_t key_tail(const uint8_t *p, uint32_t n) {
    uint64_t v = 0;
    if (n >= 8)
        memcpy(&v, p + n - 8, 8);
    else if (n)
        memcpy(&v, p, n);
    return v;
}

static inline uint32_t key_slot(uint32_t n, uint64_t head, uint64_t tail) {
    uint64_t h = (head ^ (tail * 0x9E3779B97F4A7C15ULL) ^ n) * 0xFF51AFD7ED558CCDULL;
    return (uint32_t)(h >> 56); /* FL_KEY_SLOTS == 256 */
}

int fl_promoter_init(promoter_t *p, PyObject *specs) {
    memset(p, 0, sizeof(*p));
    for (int i = 0; i < FL_KEY_SLOTS; i++) p->slots[i] = -1;
    PyObject *seq = PySequence_Fast(specs, "promotion specs must be a sequence");
    if (seq == NULL) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > FL_MAX_SPECS) {
        PyErr_SetString(PyExc_ValueError, "too many promoted columns");
        goto fail;
    }
    p->n_specs = (int)n;
    for (Py_ssize_t s = 0; s < n; s++) {
        PyObject *spec = PySequence_Fast_GET_ITEM(seq, s);
        PyObject *keys, *is_int;
        if (!PyArg_ParseTuple(spec, "OO", &keys, &is_int)) goto fail;
        int flag = PyObject_IsTrue(is_int);
        if (flag < 0) goto fail;
        p->is_int[s] = (uint8_t)flag;
        PyObject *kseq = PySequence_Fast(keys, "promotion keys must be a sequence");
        if (kseq == NULL) goto fail;
        Py_ssize_t nk = PySequence_Fast_GET_SIZE(kseq);
        for (Py_ssize_t prio = 0; prio < nk; prio++) {
            Py_ssize_t len;
            const char *key = PyUnicode_AsUTF8AndSize(PySequence_Fast_GET_ITEM(kseq, prio), &len);
            if (key == NULL || prio > 255) {
                if (key != NULL) PyErr_SetString(PyExc_ValueError, "too many keys for one column");
                Py_DECREF(kseq);
                goto fail;
            }
            int k = 0;
            while (k < p->n_keys && !((Py_ssize_t)p->keys[k].n == len && memcmp(p->keys[k].p, key, (size_t)len) == 0))
                k++;
            if (k == p->n_keys) {
                if (k == FL_MAX_KEYS) {
                    PyErr_SetString(PyExc_ValueError, "too many promoted keys");
                    Py_DECREF(kseq);
                    goto fail;
                }
                p->keys[k].p = PyMem_Malloc((size_t)len + 1);
                if (p->keys[k].p == NULL) {
                    PyErr_NoMemory();
                    Py_DECREF(kseq);
                    goto fail;
                }
                memcpy(p->keys[k].p, key, (size_t)len);
                p->keys[k].n = (uint32_t)len;
                p->keys[k].head = key_head((const uint8_t *)key, (uint32_t)len);
                p->keys[k].tail = key_tail((const uint8_t *)key, (uint32_t)len);
                uint32_t slot = key_slot(p->keys[k].n, p->keys[k].head, p->keys[k].tail);
                while (p->slots[slot] >= 0) slot = (slot + 1) % FL_KEY_SLOTS;
                p->slots[slot] = (int16_t)k;
                p->n_keys++;
            }
            if (p->keys[k].n_pairs == FL_MAX_PAIRS) {
                PyErr_SetString(PyExc_ValueError, "a key serves too many columns");
                Py_DECREF(kseq);
                goto fail;
            }
            p->keys[k].spec[p->keys[k].n_pairs] = (uint8_t)s;
            p->keys[k].prio[p->keys[k].n_pairs] = (uint8_t)prio;
            p->keys[k].n_pairs++;
        }
        Py_DECREF(kseq);
    }
    Py_DECREF(seq);
    return 0;
fail:
    Py_DECREF(seq);
    fl_promoter_free(p);
    return -1;
}

void fl_promoter_free(promoter_t *p) {
    for (int k = 0; k < p->n_keys; k++) PyMem_Free(p->keys[k].p);
    p->n_keys = 0;
}

static inline int promoter_key(const promoter_t *p, seg_t key) {
    uint64_t head = key_head(key.p, key.n), tail = key_tail(key.p, key.n);
    for (uint32_t slot = key_slot(key.n, head, tail);; slot = (slot + 1) % FL_KEY_SLOTS) {
        int k = p->slots[slot];
        if (k < 0) return -1;
        if (p->keys[k].n == key.n && p->keys[k].head == head && p->keys[k].tail == tail &&
            (key.n <= 16 || memcmp(p->keys[k].p + 8, key.p + 8, key.n - 16) == 0))
            return k;
    }
}

/* chosen[s]: per promoted column, the KeyValue picked (-1: none). The first key in order
 * of preference that the item has wins; among KeyValues of that key, the last. */
static void promote_choose(const promoter_t *p, const kvinfo_t *info, uint32_t n, int32_t *chosen) {
    uint8_t best[FL_MAX_SPECS];
    for (int s = 0; s < p->n_specs; s++) {
        chosen[s] = -1;
        best[s] = 255;
    }
    for (uint32_t i = 0; i < n; i++) {
        int k = promoter_key(p, info[i].key);
        if (k < 0) continue;
        for (int j = 0; j < p->keys[k].n_pairs; j++) {
            int s = p->keys[k].spec[j];
            if (p->keys[k].prio[j] <= best[s]) {
                best[s] = p->keys[k].prio[j];
                chosen[s] = (int32_t)i;
            }
        }
    }
}

/* -- columns ----------------------------------------------------------------------------- */

enum { CT_BIN, CT_I64, CT_I32, CT_I8 };

typedef struct {
    uint8_t type, nullable;
    buf_t off, data; /* CT_BIN: int32 offsets and bytes; else data holds the values */
    buf_t valid;     /* one byte per row while decoding (malloc'd), packed at the end */
    size_t rows, nulls;
} col_t;

typedef struct {
    size_t off, data, valid, rows, nulls;
} colmark_t;

static void col_init(ctx_t *c, col_t *col, int type, int nullable, size_t rows, size_t bytes) {
    col->type = (uint8_t)type;
    col->nullable = (uint8_t)nullable;
    if (type == CT_BIN) {
        fl_buf_init_out(c, &col->off, (rows + 1) * 4);
        int32_t zero = 0;
        buf_put(c, &col->off, &zero, 4);
        fl_buf_init_out(c, &col->data, bytes);
    } else {
        size_t width = type == CT_I64 ? 8 : type == CT_I32 ? 4 : 1;
        fl_buf_init_out(c, &col->data, rows * width);
    }
}

FL_INLINE void col_valid(ctx_t *c, col_t *col, uint8_t v) {
    if (col->nullable) buf_put_u8(c, &col->valid, v);
    col->rows++;
}

/* Close the current value of a binary column (its bytes already written to data). */
FL_INLINE void col_commit(ctx_t *c, col_t *col) {
    if (col->data.len > FL_MAX_OUT) fl_fail(c, "request too large to decode: a column exceeds 2 GiB");
    int32_t off = (int32_t)col->data.len;
    buf_put(c, &col->off, &off, 4);
    col_valid(c, col, 1);
}

FL_INLINE void col_bin(ctx_t *c, col_t *col, const void *p, size_t n) {
    buf_put(c, &col->data, p, n);
    col_commit(c, col);
}

FL_INLINE void col_null(ctx_t *c, col_t *col) {
    if (col->type == CT_BIN) {
        int32_t off = (int32_t)col->data.len;
        buf_put(c, &col->off, &off, 4);
    } else {
        static const uint8_t zero[8] = {0};
        buf_put(c, &col->data, zero, col->type == CT_I64 ? 8 : col->type == CT_I32 ? 4 : 1);
    }
    col->nulls++;
    col_valid(c, col, 0);
}

FL_INLINE void col_i64(ctx_t *c, col_t *col, int64_t v) {
    buf_put(c, &col->data, &v, 8);
    col_valid(c, col, 1);
}

FL_INLINE void col_i32(ctx_t *c, col_t *col, int32_t v) {
    buf_put(c, &col->data, &v, 4);
    col_valid(c, col, 1);
}

FL_INLINE void col_i8(ctx_t *c, col_t *col, int8_t v) {
    buf_put(c, &col->data, &v, 1);
    col_valid(c, col, 1);
}

static void col_free(col_t *col) {
    fl_buf_free(&col->off);
    fl_buf_free(&col->data);
    fl_buf_free(&col->valid);
}

/* -- the decode state ---------------------------------------------------------------------- */

typedef struct {
    seg_t raw, tid, sid, pid, tstate, name, status, status_msg;
    uint64_t kind, start, end, d_attrs, d_events, d_links;
    uint32_t flags;
    int32_t code;
    uint32_t kv_first, kv_count, ev_first, ev_count, lk_first, lk_count;
    uint32_t scope;
    uint8_t rule; /* first failed validation rule (1..9), 0 when accepted */
} span_t;

typedef struct {
    seg_t raw, name;
    uint64_t time;
    uint32_t kv_first, kv_count;
} event_t;

typedef struct {
    seg_t raw, tid, sid, tstate;
    uint32_t kv_first, kv_count;
} link_t;

typedef struct {
    seg_t raw;
    uint32_t kv_first, kv_count;
    size_t json_off, json_len;
    size_t text_off[FL_MAX_SPECS], text_len[FL_MAX_SPECS]; /* promoted; text_len SIZE_MAX: null */
} resource_t;

typedef struct {
    seg_t raw, name, version;
    uint32_t resource, span_first, span_count;
} scope_t;

/* column order of the plain (non-promoted) columns */
enum {
    C_TRACE_ID,
    C_SPAN_ID,
    C_PARENT,
    C_TSTATE,
    C_FLAGS,
    C_NAME,
    C_KIND,
    C_START,
    C_END,
    C_DURATION,
    C_STATUS_CODE,
    C_STATUS_MSG,
    C_SCOPE_NAME,
    C_SCOPE_VERSION,
    C_ATTRS,
    C_RES_ATTRS,
    C_DROP_ATTRS,
    C_DROP_EVENTS,
    C_DROP_LINKS,
    C_EV_TIME,
    C_EV_NAME,
    C_EV_ATTRS,
    C_LK_TID,
    C_LK_SID,
    C_LK_TSTATE,
    C_LK_ATTRS,
    C_PLAIN
};

typedef struct {
    ctx_t c;
    const decoder_t *dec;
    const uint8_t *data;
    VEC(span_t) spans;
    VEC(scope_t) scopes;
    VEC(resource_t) resources;
    VEC(event_t) events;
    VEC(link_t) links;
    VEC(seg_t) span_kvs;
    VEC(seg_t) ev_kvs;
    VEC(seg_t) lk_kvs;
    VEC(seg_t) res_kvs;
    VEC(kvinfo_t) info;
    size_t span_kv_bytes;
    size_t accepted, rejected;
    char reason[256];
    col_t cols[C_PLAIN];
    col_t *res_prom, *span_prom, *exc_prom; /* one column per promoted spec */
    col_t prom_store[3 * FL_MAX_SPECS];
    buf_t ev_off, lk_off; /* list offsets of events and links */
    buf_t res_json, res_text;
    PyObject *out_cols;   /* the columns tuple while it is filled */
    PyObject *pending[5]; /* objects of one column entry while it is assembled */
} st_t;

#define N_PROM(st) ((st)->dec->resource.n_specs + (st)->dec->span.n_specs + (st)->dec->exception.n_specs)

static void set_where(ctx_t *c, const char *what, const char *type) {
    c->where.what = what;
    c->where.type = type;
}

static void check_utf8(ctx_t *c, seg_t s) {
    if (!fl_utf8_valid(s.p, s.n)) fl_fail_pb(c, PB_UTF8);
}

/* -- A: the request ------------------------------------------------------------------------ */

static void parse_scope_spans(st_t *st, seg_t seg, uint32_t resource) {
    ctx_t *c = &st->c;
    enter_level(c, 2);
    scope_t sc;
    memset(&sc, 0, sizeof(sc));
    sc.resource = resource;
    sc.span_first = (uint32_t)st->spans.n;
    VEC_PUSH(c, st->scopes, sc);
    size_t index = st->scopes.n - 1;
    cur_t r = cur_of(seg);
    while (r.p < r.end) {
        uint32_t tag = rd_tag(c, &r);
        if (tag == TAG(1, 2)) {
            st->scopes.v[index].raw = rd_bytes(c, &r);
        } else if (tag == TAG(2, 2)) {
            span_t sp;
            memset(&sp, 0, sizeof(sp));
            sp.raw = rd_bytes(c, &r);
            sp.scope = (uint32_t)index;
            VEC_PUSH(c, st->spans, sp);
        } else {
            fl_skip_field(c, &r, tag, 2);
        }
    }
    st->scopes.v[index].span_count = (uint32_t)(st->spans.n - st->scopes.v[index].span_first);
}

static void parse_resource_spans(st_t *st, seg_t seg) {
    ctx_t *c = &st->c;
    enter_level(c, 1);
    resource_t res;
    memset(&res, 0, sizeof(res));
    VEC_PUSH(c, st->resources, res);
    uint32_t index = (uint32_t)(st->resources.n - 1);
    cur_t r = cur_of(seg);
    while (r.p < r.end) {
        uint32_t tag = rd_tag(c, &r);
        if (tag == TAG(1, 2)) {
            st->resources.v[index].raw = rd_bytes(c, &r);
        } else if (tag == TAG(2, 2)) {
            parse_scope_spans(st, rd_bytes(c, &r), index);
        } else {
            fl_skip_field(c, &r, tag, 1);
        }
    }
}

static void parse_request(st_t *st, seg_t seg) {
    ctx_t *c = &st->c;
    set_where(c, "trace request", "faultlens.shadow.TraceRequest");
    cur_t r = cur_of(seg);
    while (r.p < r.end) {
        uint32_t tag = rd_tag(c, &r);
        if (tag == TAG(1, 2)) {
            parse_resource_spans(st, rd_bytes(c, &r));
        } else {
            fl_skip_field(c, &r, tag, 0);
        }
    }
}

/* -- B: span fields -------------------------------------------------------------------------- */

static void parse_span(st_t *st, span_t *sp) {
    ctx_t *c = &st->c;
    sp->kv_first = (uint32_t)st->span_kvs.n;
    sp->ev_first = (uint32_t)st->events.n;
    sp->lk_first = (uint32_t)st->links.n;
    cur_t r = cur_of(sp->raw);
    while (r.p < r.end) {
        uint32_t tag = rd_tag(c, &r);
        uint32_t wt = tag & 7;
        switch (tag) {
            case TAG(1, 2):
                sp->tid = rd_bytes(c, &r);
                continue;
            case TAG(2, 2):
                sp->sid = rd_bytes(c, &r);
                continue;
            case TAG(3, 2):
                sp->tstate = rd_bytes(c, &r);
                check_utf8(c, sp->tstate);
                continue;
            case TAG(4, 2):
                sp->pid = rd_bytes(c, &r);
                continue;
            case TAG(5, 2):
                sp->name = rd_bytes(c, &r);
                check_utf8(c, sp->name);
                continue;
            case TAG(6, 0):
            case TAG(6, 2):
                fl_last_varint(c, &r, wt, &sp->kind);
                continue;
            case TAG(7, 1):
            case TAG(7, 2):
                fl_last_fixed64(c, &r, wt, &sp->start);
                continue;
            case TAG(8, 1):
            case TAG(8, 2):
                fl_last_fixed64(c, &r, wt, &sp->end);
                continue;
            case TAG(9, 2): {
                seg_t s = rd_bytes(c, &r);
                st->span_kv_bytes += s.n;
                VEC_PUSH(c, st->span_kvs, s);
                continue;
            }
            case TAG(10, 0):
            case TAG(10, 2):
                fl_last_varint(c, &r, wt, &sp->d_attrs);
                continue;
            case TAG(11, 2): {
                event_t ev;
                memset(&ev, 0, sizeof(ev));
                ev.raw = rd_bytes(c, &r);
                VEC_PUSH(c, st->events, ev);
                continue;
            }
            case TAG(12, 0):
            case TAG(12, 2):
                fl_last_varint(c, &r, wt, &sp->d_events);
                continue;
            case TAG(13, 2): {
                link_t lk;
                memset(&lk, 0, sizeof(lk));
                lk.raw = rd_bytes(c, &r);
                VEC_PUSH(c, st->links, lk);
                continue;
            }
            case TAG(14, 0):
            case TAG(14, 2):
                fl_last_varint(c, &r, wt, &sp->d_links);
                continue;
            case TAG(15, 2):
                sp->status = rd_bytes(c, &r);
                continue;
            case TAG(16, 5):
            case TAG(16, 2):
                fl_last_fixed32(c, &r, wt, &sp->flags);
                continue;
            default:
                fl_skip_field(c, &r, tag, 0);
        }
    }
    sp->kv_count = (uint32_t)(st->span_kvs.n - sp->kv_first);
    sp->ev_count = (uint32_t)(st->events.n - sp->ev_first);
    sp->lk_count = (uint32_t)(st->links.n - sp->lk_first);
}

/* -- C: validation (faultlens.decode.spans._validate) ---------------------------------------- */

static int all_zero(seg_t s) {
    for (uint32_t i = 0; i < s.n; i++)
        if (s.p[i]) return 0;
    return 1;
}

static uint8_t first_rule(const span_t *sp) {
    if (sp->tid.n != 16) return 1;
    if (all_zero(sp->tid)) return 2;
    if (sp->sid.n != 8) return 3;
    if (all_zero(sp->sid)) return 4;
    if (sp->pid.n != 0 && sp->pid.n != 8) return 5;
    if (sp->start > I64_MAX_U) return 6;
    if (sp->end > I64_MAX_U) return 7;
    if (sp->end < sp->start) return 8;
    if (sp->kind > 5) return 9;
    return 0;
}

static void validate(st_t *st) {
    size_t n = st->spans.n, best = 0;
    uint8_t best_rule = 10;
    for (size_t i = 0; i < n; i++) {
        span_t *sp = &st->spans.v[i];
        sp->rule = first_rule(sp);
        if (sp->rule) {
            st->rejected++;
            if (sp->rule < best_rule) {
                best_rule = sp->rule;
                best = i;
            }
        }
    }
    st->accepted = n - st->rejected;
    if (best_rule == 10) return;
    const span_t *sp = &st->spans.v[best];
    char why[160];
    switch (best_rule) {
        case 1:
            snprintf(why, sizeof(why), "trace_id must be 16 bytes, got %" PRIu32, sp->tid.n);
            break;
        case 2:
            snprintf(why, sizeof(why), "trace_id is all zeros");
            break;
        case 3:
            snprintf(why, sizeof(why), "span_id must be 8 bytes, got %" PRIu32, sp->sid.n);
            break;
        case 4:
            snprintf(why, sizeof(why), "span_id is all zeros");
            break;
        case 5:
            snprintf(why, sizeof(why), "parent_span_id must be empty or 8 bytes, got %" PRIu32, sp->pid.n);
            break;
        case 6:
            snprintf(why, sizeof(why), "start_time_unix_nano %" PRIu64 " is out of range", sp->start);
            break;
        case 7:
            snprintf(why, sizeof(why), "end_time_unix_nano %" PRIu64 " is out of range", sp->end);
            break;
        case 8:
            snprintf(why, sizeof(why), "end_time_unix_nano %" PRIu64 " is before start_time_unix_nano %" PRIu64,
                     sp->end, sp->start);
            break;
        default:
            snprintf(why, sizeof(why), "kind %" PRId32 " is not a SpanKind (0..5)", (int32_t)(uint32_t)sp->kind);
    }
    snprintf(st->reason, sizeof(st->reason), "span %zu of %zu rejected: %s", best + 1, n, why);
}

/* -- rolling back a rejected span's output ---------------------------------------------------- */

typedef struct {
    colmark_t cols[C_PLAIN + 3 * FL_MAX_SPECS];
    size_t ev_off, lk_off;
} mark_t;

static col_t *col_at(st_t *st, int i) { return i < C_PLAIN ? &st->cols[i] : &st->prom_store[i - C_PLAIN]; }

static void mark(st_t *st, mark_t *m) {
    int n = C_PLAIN + N_PROM(st);
    for (int i = 0; i < n; i++) {
        col_t *col = col_at(st, i);
        m->cols[i] = (colmark_t){col->off.len, col->data.len, col->valid.len, col->rows, col->nulls};
    }
    m->ev_off = st->ev_off.len;
    m->lk_off = st->lk_off.len;
}

static void restore(st_t *st, const mark_t *m) {
    int n = C_PLAIN + N_PROM(st);
    for (int i = 0; i < n; i++) {
        col_t *col = col_at(st, i);
        col->off.len = m->cols[i].off;
        col->data.len = m->cols[i].data;
        col->valid.len = m->cols[i].valid;
        col->rows = m->cols[i].rows;
        col->nulls = m->cols[i].nulls;
    }
    st->ev_off.len = m->ev_off;
    st->lk_off.len = m->lk_off;
}

/* -- promoted values ---------------------------------------------------------------------------- */

/* faultlens.decode._anyvalue.to_int of a string: -?[0-9]{1,18}, whole. */
static int digits_int(seg_t s, int64_t *out) {
    uint32_t i = 0;
    int neg = 0;
    if (s.n && s.p[0] == '-') {
        neg = 1;
        i = 1;
    }
    uint32_t nd = s.n - i;
    if (nd < 1 || nd > 18) return 0;
    int64_t v = 0;
    for (; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9') return 0;
        v = v * 10 + (s.p[i] - '0');
    }
    *out = neg ? -v : v;
    return 1;
}

/* Append the text a string column promotes KeyValue info to (faultlens.decode._anyvalue
 * scalar_text, doubles by double_str); 0 when it gives none (null). */
static int promoted_text(ctx_t *c, buf_t *out, const kvinfo_t *info) {
    if (info == NULL) return 0;
    switch (info->kind) {
        case AK_STR:
            buf_put(c, out, info->s.p, info->s.n);
            return 1;
        case AK_BOOL:
            if (info->u)
                BUF_LIT(c, out, "true");
            else
                BUF_LIT(c, out, "false");
            return 1;
        case AK_INT:
            fl_put_i64(c, out, (int64_t)info->u);
            return 1;
        case AK_DOUBLE:
            if (isfinite(info->d)) {
                fl_put_double_repr(c, out, info->d);
            } else {
                const char *name = fl_nonfinite_name(info->d);
                buf_put(c, out, name, strlen(name));
            }
            return 1;
        default:
            return 0;
    }
}

/* Write the promoted value of KeyValue info (NULL: none) to column col. */
static void put_promoted(st_t *st, col_t *col, int is_int, const kvinfo_t *info) {
    ctx_t *c = &st->c;
    if (!is_int) {
        if (promoted_text(c, &col->data, info))
            col_commit(c, col);
        else
            col_null(c, col);
        return;
    }
    int64_t v = 0;
    int ok = 0;
    if (info != NULL && info->kind == AK_INT) {
        v = (int64_t)info->u;
        ok = 1;
    } else if (info != NULL && info->kind == AK_STR) {
        ok = digits_int(info->s, &v);
    }
    if (ok && v >= INT32_MIN && v <= INT32_MAX)
        col_i32(c, col, (int32_t)v);
    else
        col_null(c, col);
}

static void put_promoted_all(st_t *st, const promoter_t *p, col_t *cols, const kvinfo_t *info, uint32_t n) {
    int32_t chosen[FL_MAX_SPECS];
    promote_choose(p, info, n, chosen);
    for (int s = 0; s < p->n_specs; s++) put_promoted(st, &cols[s], p->is_int[s], chosen[s] >= 0 ? &info[chosen[s]] : NULL);
}

static kvinfo_t *info_for(st_t *st, uint32_t n) {
    if (st->info.cap < n) {
        size_t cap = st->info.cap ? st->info.cap : 16;
        while (cap < n) cap *= 2;
        kvinfo_t *v = realloc(st->info.v, cap * sizeof(kvinfo_t));
        if (v == NULL) fl_fail_nomem(&st->c);
        st->info.v = v;
        st->info.cap = cap;
    }
    return st->info.v;
}

/* -- F1: status and the plain columns ------------------------------------------------------------ */

static void parse_status(st_t *st, span_t *sp) {
    ctx_t *c = &st->c;
    cur_t r = cur_of(sp->status);
    while (r.p < r.end) {
        uint32_t tag = rd_tag(c, &r);
        if (tag == TAG(2, 2)) {
            sp->status_msg = rd_bytes(c, &r);
            check_utf8(c, sp->status_msg);
        } else if (tag == TAG(3, 0)) {
            sp->code = (int32_t)(uint32_t)rd_varint(c, &r);
        } else {
            fl_skip_field(c, &r, tag, 0);
        }
    }
}

static int32_t count32(uint64_t v) { return v > INT32_MAX ? INT32_MAX : (int32_t)v; }

static void phase_plain(st_t *st) {
    ctx_t *c = &st->c;
    set_where(c, "span status", "faultlens.shadow.Status");
    col_t *k = st->cols;
    for (size_t i = 0; i < st->spans.n; i++) {
        span_t *sp = &st->spans.v[i];
        if (sp->status.n) parse_status(st, sp);
        if (sp->rule) continue;
        col_bin(c, &k[C_TRACE_ID], sp->tid.p, sp->tid.n);
        col_bin(c, &k[C_SPAN_ID], sp->sid.p, sp->sid.n);
        if (sp->pid.n)
            col_bin(c, &k[C_PARENT], sp->pid.p, sp->pid.n);
        else
            col_null(c, &k[C_PARENT]);
        col_bin(c, &k[C_TSTATE], sp->tstate.p, sp->tstate.n);
        col_i64(c, &k[C_FLAGS], (int64_t)sp->flags);
        col_bin(c, &k[C_NAME], sp->name.p, sp->name.n);
        col_i8(c, &k[C_KIND], (int8_t)sp->kind);
        col_i64(c, &k[C_START], (int64_t)sp->start);
        col_i64(c, &k[C_END], (int64_t)sp->end);
        col_i64(c, &k[C_DURATION], (int64_t)(sp->end - sp->start));
        if (sp->code >= 0 && sp->code <= 2)
            col_i8(c, &k[C_STATUS_CODE], (int8_t)sp->code);
        else
            col_null(c, &k[C_STATUS_CODE]);
        col_bin(c, &k[C_STATUS_MSG], sp->status_msg.p, sp->status_msg.n);
        col_i32(c, &k[C_DROP_ATTRS], count32(sp->d_attrs));
        col_i32(c, &k[C_DROP_EVENTS], count32(sp->d_events));
        col_i32(c, &k[C_DROP_LINKS], count32(sp->d_links));
    }
}

/* -- F2: span attributes ------------------------------------------------------------------------ */

static void phase_span_attrs(st_t *st) {
    ctx_t *c = &st->c;
    attr_mode_t mode;
    fl_attr_mode(&mode, st->span_kvs.v, st->span_kvs.n);
    col_t *json = &st->cols[C_ATTRS];
    for (size_t i = 0; i < st->spans.n; i++) {
        const span_t *sp = &st->spans.v[i];
        kvinfo_t *info = info_for(st, sp->kv_count);
        mark_t m;
        if (sp->rule) mark(st, &m);
        fl_attrs_json(c, &json->data, st->span_kvs.v + sp->kv_first, sp->kv_count, &mode, info);
        col_commit(c, json);
        put_promoted_all(st, &st->dec->span, st->span_prom, info, sp->kv_count);
        if (sp->rule) restore(st, &m);
    }
}

/* -- F3/F4: events ------------------------------------------------------------------------------ */

static void parse_event(st_t *st, event_t *ev) {
    ctx_t *c = &st->c;
    ev->kv_first = (uint32_t)st->ev_kvs.n;
    cur_t r = cur_of(ev->raw);
    while (r.p < r.end) {
        uint32_t tag = rd_tag(c, &r);
        switch (tag) {
            case TAG(1, 1):
                ev->time = rd_fixed64(c, &r);
                continue;
            case TAG(2, 2):
                ev->name = rd_bytes(c, &r);
                check_utf8(c, ev->name);
                continue;
            case TAG(3, 2):
                VEC_PUSH(c, st->ev_kvs, rd_bytes(c, &r));
                continue;
            case TAG(4, 0):
                (void)rd_varint(c, &r);
                continue;
            default:
                fl_skip_field(c, &r, tag, 0);
        }
    }
    ev->kv_count = (uint32_t)(st->ev_kvs.n - ev->kv_first);
}

static int is_exception(seg_t name) { return name.n == 9 && memcmp(name.p, "exception", 9) == 0; }

static void phase_events(st_t *st) {
    ctx_t *c = &st->c;
    set_where(c, "span event", "faultlens.shadow.Event");
    for (size_t i = 0; i < st->events.n; i++) parse_event(st, &st->events.v[i]);
    attr_mode_t mode;
    fl_attr_mode(&mode, st->ev_kvs.v, st->ev_kvs.n);
    const promoter_t *exc = &st->dec->exception;
    col_t *k = st->cols;
    for (size_t i = 0; i < st->spans.n; i++) {
        const span_t *sp = &st->spans.v[i];
        mark_t m;
        if (sp->rule) mark(st, &m);
        const event_t *evs = st->events.v + sp->ev_first;
        uint32_t first_exc = UINT32_MAX;
        for (uint32_t e = 0; e < sp->ev_count && first_exc == UINT32_MAX; e++)
            if (is_exception(evs[e].name)) first_exc = e;
        for (uint32_t e = 0; e < sp->ev_count; e++) {
            const event_t *ev = &evs[e];
            col_i64(c, &k[C_EV_TIME], ev->time > I64_MAX_U ? INT64_MAX : (int64_t)ev->time);
            col_bin(c, &k[C_EV_NAME], ev->name.p, ev->name.n);
            kvinfo_t *info = e == first_exc ? info_for(st, ev->kv_count) : NULL;
            fl_attrs_json(c, &k[C_EV_ATTRS].data, st->ev_kvs.v + ev->kv_first, ev->kv_count, &mode, info);
            col_commit(c, &k[C_EV_ATTRS]);
            if (info != NULL) put_promoted_all(st, exc, st->exc_prom, info, ev->kv_count);
        }
        if (first_exc == UINT32_MAX)
            for (int s = 0; s < exc->n_specs; s++) col_null(c, &st->exc_prom[s]);
        if (k[C_EV_TIME].rows > FL_MAX_OUT) fl_fail(c, "request too large to decode: too many events");
        int32_t off = (int32_t)k[C_EV_TIME].rows;
        buf_put(c, &st->ev_off, &off, 4);
        if (sp->rule) restore(st, &m);
    }
}

/* -- F5/F6: links --------------------------------------------------------------------------------- */

static void parse_link(st_t *st, link_t *lk) {
    ctx_t *c = &st->c;
    lk->kv_first = (uint32_t)st->lk_kvs.n;
    cur_t r = cur_of(lk->raw);
    while (r.p < r.end) {
        uint32_t tag = rd_tag(c, &r);
        switch (tag) {
            case TAG(1, 2):
                lk->tid = rd_bytes(c, &r);
                continue;
            case TAG(2, 2):
                lk->sid = rd_bytes(c, &r);
                continue;
            case TAG(3, 2):
                lk->tstate = rd_bytes(c, &r);
                check_utf8(c, lk->tstate);
                continue;
            case TAG(4, 2):
                VEC_PUSH(c, st->lk_kvs, rd_bytes(c, &r));
                continue;
            case TAG(5, 0):
                (void)rd_varint(c, &r);
                continue;
            case TAG(6, 5):
                (void)rd_fixed32(c, &r);
                continue;
            default:
                fl_skip_field(c, &r, tag, 0);
        }
    }
    lk->kv_count = (uint32_t)(st->lk_kvs.n - lk->kv_first);
}

static void phase_links(st_t *st) {
    ctx_t *c = &st->c;
    set_where(c, "span link", "faultlens.shadow.Link");
    for (size_t i = 0; i < st->links.n; i++) parse_link(st, &st->links.v[i]);
    attr_mode_t mode;
    fl_attr_mode(&mode, st->lk_kvs.v, st->lk_kvs.n);
    col_t *k = st->cols;
    for (size_t i = 0; i < st->spans.n; i++) {
        const span_t *sp = &st->spans.v[i];
        mark_t m;
        if (sp->rule) mark(st, &m);
        for (uint32_t j = 0; j < sp->lk_count; j++) {
            const link_t *lk = &st->links.v[sp->lk_first + j];
            col_bin(c, &k[C_LK_TID], lk->tid.p, lk->tid.n);
            col_bin(c, &k[C_LK_SID], lk->sid.p, lk->sid.n);
            col_bin(c, &k[C_LK_TSTATE], lk->tstate.p, lk->tstate.n);
            fl_attrs_json(c, &k[C_LK_ATTRS].data, st->lk_kvs.v + lk->kv_first, lk->kv_count, &mode, NULL);
            col_commit(c, &k[C_LK_ATTRS]);
        }
        if (k[C_LK_TID].rows > FL_MAX_OUT) fl_fail(c, "request too large to decode: too many links");
        int32_t off = (int32_t)k[C_LK_TID].rows;
        buf_put(c, &st->lk_off, &off, 4);
        if (sp->rule) restore(st, &m);
    }
}

/* -- F7..F10: resources and scopes -------------------------------------------------------------- */

static void parse_resource(st_t *st, resource_t *res) {
    ctx_t *c = &st->c;
    res->kv_first = (uint32_t)st->res_kvs.n;
    cur_t r = cur_of(res->raw);
    while (r.p < r.end) {
        uint32_t tag = rd_tag(c, &r);
        if (tag == TAG(1, 2)) {
            VEC_PUSH(c, st->res_kvs, rd_bytes(c, &r));
        } else if (tag == TAG(2, 0)) {
            (void)rd_varint(c, &r);
        } else {
            fl_skip_field(c, &r, tag, 0);
        }
    }
    res->kv_count = (uint32_t)(st->res_kvs.n - res->kv_first);
}

static void parse_scope(st_t *st, scope_t *sc) {
    ctx_t *c = &st->c;
    cur_t r = cur_of(sc->raw);
    while (r.p < r.end) {
        uint32_t tag = rd_tag(c, &r);
        if (tag == TAG(1, 2)) {
            sc->name = rd_bytes(c, &r);
            check_utf8(c, sc->name);
        } else if (tag == TAG(2, 2)) {
            sc->version = rd_bytes(c, &r);
            check_utf8(c, sc->version);
        } else if (tag == TAG(3, 2)) {
            (void)rd_bytes(c, &r); /* attributes: not decoded (no column holds them) */
        } else {
            fl_skip_field(c, &r, tag, 0);
        }
    }
}

static void phase_resources(st_t *st) {
    ctx_t *c = &st->c;
    set_where(c, "resource", "faultlens.shadow.Resource");
    for (size_t i = 0; i < st->resources.n; i++) parse_resource(st, &st->resources.v[i]);
    attr_mode_t mode;
    fl_attr_mode(&mode, st->res_kvs.v, st->res_kvs.n);
    const promoter_t *p = &st->dec->resource;
    for (size_t i = 0; i < st->resources.n; i++) {
        resource_t *res = &st->resources.v[i];
        kvinfo_t *info = info_for(st, res->kv_count);
        res->json_off = st->res_json.len;
        fl_attrs_json(c, &st->res_json, st->res_kvs.v + res->kv_first, res->kv_count, &mode, info);
        res->json_len = st->res_json.len - res->json_off;
        int32_t chosen[FL_MAX_SPECS];
        promote_choose(p, info, res->kv_count, chosen);
        for (int s = 0; s < p->n_specs; s++) {
            /* resource columns are strings (checked when the decoder is built) */
            size_t start = st->res_text.len;
            int has = promoted_text(c, &st->res_text, chosen[s] >= 0 ? &info[chosen[s]] : NULL);
            res->text_off[s] = start;
            res->text_len[s] = has ? st->res_text.len - start : SIZE_MAX;
        }
    }
    set_where(c, "instrumentation scope", "faultlens.shadow.Scope");
    for (size_t i = 0; i < st->scopes.n; i++) parse_scope(st, &st->scopes.v[i]);
    col_t *k = st->cols;
    for (size_t i = 0; i < st->spans.n; i++) {
        const span_t *sp = &st->spans.v[i];
        if (sp->rule) continue;
        const scope_t *sc = &st->scopes.v[sp->scope];
        const resource_t *res = &st->resources.v[sc->resource];
        for (int s = 0; s < p->n_specs; s++) {
            if (res->text_len[s] == SIZE_MAX)
                col_null(c, &st->res_prom[s]);
            else
                col_bin(c, &st->res_prom[s], st->res_text.p + res->text_off[s], res->text_len[s]);
        }
        col_bin(c, &k[C_SCOPE_NAME], sc->name.p, sc->name.n);
        col_bin(c, &k[C_SCOPE_VERSION], sc->version.p, sc->version.n);
        col_bin(c, &k[C_RES_ATTRS], st->res_json.p + res->json_off, res->json_len);
    }
}

/* -- output ------------------------------------------------------------------------------------------ */

static PyObject *validity(st_t *st, col_t *col) {
    if (col->nulls == 0) Py_RETURN_NONE;
    size_t nbytes = (col->rows + 7) / 8;
    PyObject *bits = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)nbytes);
    if (bits == NULL) fl_fail_python(&st->c);
    uint8_t *b = (uint8_t *)PyBytes_AS_STRING(bits);
    memset(b, 0, nbytes);
    for (size_t i = 0; i < col->rows; i++)
        if (col->valid.p[i]) b[i >> 3] |= (uint8_t)(1u << (i & 7));
    return bits;
}

/* (validity | None, null_count, offsets, data) or (validity | None, null_count, values).
 * Objects being assembled sit in st->pending, so that a failure midway releases them. */
static PyObject *col_entry(st_t *st, col_t *col) {
    ctx_t *c = &st->c;
    PyObject **p = st->pending;
    p[0] = validity(st, col);
    if (col->type == CT_BIN) {
        p[1] = fl_buf_take(c, &col->off);
        p[2] = fl_buf_take(c, &col->data);
    } else {
        p[1] = fl_buf_take(c, &col->data);
    }
    PyObject *out;
    if (col->type == CT_BIN)
        out = Py_BuildValue("(OnOO)", p[0], (Py_ssize_t)col->nulls, p[1], p[2]);
    else
        out = Py_BuildValue("(OnO)", p[0], (Py_ssize_t)col->nulls, p[1]);
    if (out == NULL) fl_fail_python(c);
    for (int i = 0; i < 3; i++) Py_CLEAR(p[i]);
    return out;
}

/* (offsets, child count, (child column entries...)) */
static PyObject *list_entry(st_t *st, buf_t *offsets, size_t children, const int *cols, int ncols) {
    ctx_t *c = &st->c;
    st->pending[3] = PyTuple_New(ncols);
    if (st->pending[3] == NULL) fl_fail_python(c);
    for (int i = 0; i < ncols; i++) PyTuple_SET_ITEM(st->pending[3], i, col_entry(st, &st->cols[cols[i]]));
    st->pending[4] = fl_buf_take(c, offsets);
    PyObject *out = Py_BuildValue("(OnO)", st->pending[4], (Py_ssize_t)children, st->pending[3]);
    if (out == NULL) fl_fail_python(c);
    Py_CLEAR(st->pending[3]);
    Py_CLEAR(st->pending[4]);
    return out;
}

static PyObject *build_output(st_t *st) {
    ctx_t *c = &st->c;
    const decoder_t *d = st->dec;
    Py_ssize_t ncols = 12 + d->resource.n_specs + 2 + d->span.n_specs + d->exception.n_specs + 2 + 2 + 3;
    st->out_cols = PyTuple_New(ncols);
    if (st->out_cols == NULL) fl_fail_python(c);
    Py_ssize_t j = 0;
    /* a failure leaves NULL slots, which releasing a tuple tolerates */
#define ADD(obj) PyTuple_SET_ITEM(st->out_cols, j++, (obj))
    for (int i = C_TRACE_ID; i <= C_STATUS_MSG; i++) ADD(col_entry(st, &st->cols[i]));
    for (int s = 0; s < d->resource.n_specs; s++) ADD(col_entry(st, &st->res_prom[s]));
    ADD(col_entry(st, &st->cols[C_SCOPE_NAME]));
    ADD(col_entry(st, &st->cols[C_SCOPE_VERSION]));
    for (int s = 0; s < d->span.n_specs; s++) ADD(col_entry(st, &st->span_prom[s]));
    for (int s = 0; s < d->exception.n_specs; s++) ADD(col_entry(st, &st->exc_prom[s]));
    ADD(col_entry(st, &st->cols[C_ATTRS]));
    ADD(col_entry(st, &st->cols[C_RES_ATTRS]));
    static const int ev_cols[] = {C_EV_TIME, C_EV_NAME, C_EV_ATTRS};
    static const int lk_cols[] = {C_LK_TID, C_LK_SID, C_LK_TSTATE, C_LK_ATTRS};
    ADD(list_entry(st, &st->ev_off, st->cols[C_EV_TIME].rows, ev_cols, 3));
    ADD(list_entry(st, &st->lk_off, st->cols[C_LK_TID].rows, lk_cols, 4));
    ADD(col_entry(st, &st->cols[C_DROP_ATTRS]));
    ADD(col_entry(st, &st->cols[C_DROP_EVENTS]));
    ADD(col_entry(st, &st->cols[C_DROP_LINKS]));
#undef ADD
    PyObject *out =
        Py_BuildValue("(nnsO)", (Py_ssize_t)st->accepted, (Py_ssize_t)st->rejected, st->reason, st->out_cols);
    if (out == NULL) fl_fail_python(c);
    Py_CLEAR(st->out_cols);
    return out;
}

/* -- driver -------------------------------------------------------------------------------------------- */

static void init_columns(st_t *st) {
    ctx_t *c = &st->c;
    size_t n = st->accepted;
    col_t *k = st->cols;
    col_init(c, &k[C_TRACE_ID], CT_BIN, 0, n, n * 16);
    col_init(c, &k[C_SPAN_ID], CT_BIN, 0, n, n * 8);
    col_init(c, &k[C_PARENT], CT_BIN, 1, n, n * 8);
    col_init(c, &k[C_TSTATE], CT_BIN, 0, n, 64);
    col_init(c, &k[C_FLAGS], CT_I64, 0, n, 0);
    col_init(c, &k[C_NAME], CT_BIN, 0, n, n * 16);
    col_init(c, &k[C_KIND], CT_I8, 0, n, 0);
    col_init(c, &k[C_START], CT_I64, 0, n, 0);
    col_init(c, &k[C_END], CT_I64, 0, n, 0);
    col_init(c, &k[C_DURATION], CT_I64, 0, n, 0);
    col_init(c, &k[C_STATUS_CODE], CT_I8, 1, n, 0);
    col_init(c, &k[C_STATUS_MSG], CT_BIN, 0, n, 64);
    col_init(c, &k[C_SCOPE_NAME], CT_BIN, 0, n, n * 16);
    col_init(c, &k[C_SCOPE_VERSION], CT_BIN, 0, n, n * 8);
    col_init(c, &k[C_ATTRS], CT_BIN, 0, n, st->span_kv_bytes + st->span_kv_bytes / 4 + 2 * st->spans.n + 64);
    col_init(c, &k[C_RES_ATTRS], CT_BIN, 0, n, n * 512);
    col_init(c, &k[C_DROP_ATTRS], CT_I32, 0, n, 0);
    col_init(c, &k[C_DROP_EVENTS], CT_I32, 0, n, 0);
    col_init(c, &k[C_DROP_LINKS], CT_I32, 0, n, 0);
    size_t ne = st->events.n, nl = st->links.n;
    col_init(c, &k[C_EV_TIME], CT_I64, 0, ne, 0);
    col_init(c, &k[C_EV_NAME], CT_BIN, 0, ne, ne * 12);
    col_init(c, &k[C_EV_ATTRS], CT_BIN, 0, ne, ne * 128);
    col_init(c, &k[C_LK_TID], CT_BIN, 0, nl, nl * 16);
    col_init(c, &k[C_LK_SID], CT_BIN, 0, nl, nl * 8);
    col_init(c, &k[C_LK_TSTATE], CT_BIN, 0, nl, 64);
    col_init(c, &k[C_LK_ATTRS], CT_BIN, 0, nl, nl * 32);
    const decoder_t *d = st->dec;
    st->res_prom = st->prom_store;
    st->span_prom = st->res_prom + d->resource.n_specs;
    st->exc_prom = st->span_prom + d->span.n_specs;
    for (int s = 0; s < d->resource.n_specs; s++) col_init(c, &st->res_prom[s], CT_BIN, 1, n, n * 16);
    for (int s = 0; s < d->span.n_specs; s++) {
        if (d->span.is_int[s])
            col_init(c, &st->span_prom[s], CT_I32, 1, n, 0);
        else
            col_init(c, &st->span_prom[s], CT_BIN, 1, n, n * 8);
    }
    for (int s = 0; s < d->exception.n_specs; s++) {
        if (d->exception.is_int[s])
            col_init(c, &st->exc_prom[s], CT_I32, 1, n, 0);
        else
            col_init(c, &st->exc_prom[s], CT_BIN, 1, n, 64);
    }
    int32_t zero = 0;
    fl_buf_init_out(c, &st->ev_off, (n + 1) * 4);
    buf_put(c, &st->ev_off, &zero, 4);
    fl_buf_init_out(c, &st->lk_off, (n + 1) * 4);
    buf_put(c, &st->lk_off, &zero, 4);
}

static void st_free(st_t *st) {
    Py_CLEAR(st->out_cols);
    for (int i = 0; i < 5; i++) Py_CLEAR(st->pending[i]);
    for (int i = 0; i < C_PLAIN; i++) col_free(&st->cols[i]);
    for (int i = 0; i < 3 * FL_MAX_SPECS; i++) col_free(&st->prom_store[i]);
    fl_buf_free(&st->ev_off);
    fl_buf_free(&st->lk_off);
    fl_buf_free(&st->res_json);
    fl_buf_free(&st->res_text);
    fl_buf_free(&st->c.discard);
    free(st->spans.v);
    free(st->scopes.v);
    free(st->resources.v);
    free(st->events.v);
    free(st->links.v);
    free(st->span_kvs.v);
    free(st->ev_kvs.v);
    free(st->lk_kvs.v);
    free(st->res_kvs.v);
    free(st->info.v);
    fl_arena_free(&st->c);
}

/* Parses and fills the columns: plain C on memory of its own, so it runs without the GIL.
 * Returns 0 when the request holds no spans. Kept apart from the setjmp caller so no
 * local of that frame changes after setjmp. */
static int parse(st_t *st, Py_ssize_t n) {
    seg_t all = {st->data, (uint32_t)n};
    /* first sizes from typical requests (~300-500 bytes a span, ~35 a KeyValue) */
    size_t want_spans = (size_t)n / 400 + 16, want_kvs = (size_t)n / 40 + 64;
    st->spans.v = fl_vec_grow(&st->c, NULL, &want_spans, sizeof(span_t));
    st->spans.cap = want_spans;
    st->span_kvs.v = fl_vec_grow(&st->c, NULL, &want_kvs, sizeof(seg_t));
    st->span_kvs.cap = want_kvs;
    parse_request(st, all);
    if (st->spans.n == 0) return 0;
    set_where(&st->c, "span", "faultlens.shadow.SpanCols");
    for (size_t i = 0; i < st->spans.n; i++) parse_span(st, &st->spans.v[i]);
    validate(st);
    init_columns(st);
    phase_plain(st);
    phase_span_attrs(st);
    phase_events(st);
    phase_links(st);
    phase_resources(st);
    return 1;
}

/* After a longjmp, with the GIL held: raise what st->c says. */
static void raise_failure(st_t *st, PyObject *invalid) {
    if (st->c.py_error == FL_ERR_NOMEM)
        PyErr_NoMemory();
    else if (st->c.py_error == FL_ERR_INVALID)
        PyErr_SetString(invalid, st->c.message);
}

/* ``data`` must not change while the GIL is released: with ``release_gil`` the caller
 * passes the buffer of an immutable object (bytes). */
PyObject *fl_decode_spans(const decoder_t *d, const uint8_t *data, Py_ssize_t n, PyObject *invalid,
                          int release_gil) {
    if (n > FL_MAX_OUT) {
        PyErr_SetString(invalid, "request too large to decode");
        return NULL;
    }
    st_t *st = calloc(1, sizeof(st_t));
    if (st == NULL) return PyErr_NoMemory();
    st->dec = d;
    st->data = data;
    PyObject *volatile out = NULL;
    volatile int any = 0;
    if (release_gil) fl_gil_give(&st->c);
    if (setjmp(st->c.jmp) == 0) {
        any = parse(st, n);
        fl_gil_take(&st->c);
        if (!any) {
            out = Py_None;
            Py_INCREF(out);
        } else if (setjmp(st->c.jmp) == 0) {
            out = build_output(st);
        } else {
            raise_failure(st, invalid);
            out = NULL;
        }
    } else {
        fl_gil_take(&st->c);
        raise_failure(st, invalid);
        out = NULL;
    }
    st_free(st);
    free(st);
    return out;
}
