#include "anyvalue.h"

#include <math.h>

#include "text.h"

static const where_t KV_WHERE = {"attribute", "opentelemetry.proto.common.v1.KeyValue"};
static const where_t ANY_WHERE = {"AnyValue", "opentelemetry.proto.common.v1.AnyValue"};

/* A varint of at most max bytes at *p, ending before end (faultlens.decode._kvfast.varint). */
static int short_varint(const uint8_t **p, const uint8_t *end, int max, uint64_t *v) {
    *v = 0;
    for (int i = 0; i < max && *p + i < end; i++) {
        (*v) |= (uint64_t)((*p)[i] & 0x7f) << (7 * i);
        if (!((*p)[i] & 0x80)) {
            *p += i + 1;
            return 1;
        }
    }
    return 0;
}

/* kv_layout's test: exactly ``0a <len> key 12 <len> value`` (FastKV can take it). */
static int kv_canonical(seg_t kv) {
    const uint8_t *p = kv.p, *end = kv.p + kv.n;
    /* the usual case: one-byte lengths */
    if (kv.n >= 4 && p[0] == 0x0A && p[1] < 0x80 && p[1] + 4u <= kv.n && p[2 + p[1]] == 0x12 && p[3 + p[1]] < 0x80)
        return p[1] + p[3 + p[1]] + 4u == kv.n;
    uint64_t klen, vlen;
    if (kv.n == 0 || p[0] != 0x0A) return 0;
    p++;
    if (!short_varint(&p, end, 3, &klen)) return 0;
    if (klen >= (uint64_t)(end - p) || p[klen] != 0x12) return 0;
    p += klen + 1;
    if (!short_varint(&p, end, 4, &vlen)) return 0;
    return vlen == (uint64_t)(end - p);
}

void fl_attr_mode(attr_mode_t *m, const seg_t *kvs, size_t total_kvs) {
    int canonical = total_kvs > FL_TINY;
    for (size_t i = 0; canonical && i < total_kvs; i++) canonical = kv_canonical(kvs[i]);
    m->dedup = total_kvs <= FL_TINY;
    m->arrow = !m->dedup;
    m->kv_where = KV_WHERE;
    if (canonical) {
        /* FastKV: values parsed alone (parse_any); plain keys and texts checked as UTF-8
         * by Arrow */
        m->kv_level = -1;
        m->any_where = ANY_WHERE;
        m->fastkv_utf8 = 1;
    } else {
        /* _Tiny, or _General for KeyValues FastKV cannot take: each KeyValue parsed by upb */
        m->kv_level = 0;
        m->any_where = KV_WHERE;
        m->fastkv_utf8 = 0;
    }
}

static int needs_escape(seg_t s) {
    for (uint32_t i = 0; i < s.n; i++)
        if (s.p[i] < 0x20 || s.p[i] == '"' || s.p[i] == '\\') return 1;
    return 0;
}

/* -- segment lists: the occurrences of a merged message, in order ------------------------- */

typedef struct {
    seg_t *v; /* NULL while there is at most one segment (kept in inl) */
    uint32_t n, cap;
    seg_t inl;
} segs_t;

static inline seg_t segs_at(const segs_t *s, uint32_t i) { return s->v ? s->v[i] : s->inl; }

static void segs_push(ctx_t *c, segs_t *s, seg_t x) {
    if (s->n == 0 && s->v == NULL) {
        s->inl = x;
        s->n = 1;
        return;
    }
    if (s->v == NULL || s->n == s->cap) {
        uint32_t cap = s->v == NULL ? 4 : s->cap * 2;
        seg_t *v = fl_arena_alloc(c, (size_t)cap * sizeof(seg_t));
        for (uint32_t i = 0; i < s->n; i++) v[i] = segs_at(s, i);
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = x;
}

/* -- one AnyValue: its final oneof case, after every occurrence of every field ----------- */

typedef struct {
    uint8_t kind;
    seg_t s;
    uint64_t u;
    double d;
    segs_t msgs; /* AK_ARRAY / AK_KVLIST: the merged payloads */
} anyv_t;

enum { MT_ANY, MT_ARRAY, MT_KVLIST, MT_KV };

/* Check a message that will not be written (a replaced oneof case) as upb would parse it. */
static void validate_msg(ctx_t *c, seg_t seg, int type, int level) {
    enter_level(c, level);
    cur_t r = cur_of(seg);
    while (r.p < r.end) {
        uint32_t tag = rd_tag(c, &r);
        switch (type) {
            case MT_ANY:
                switch (tag) {
                    case 0x0A: {
                        seg_t s = rd_bytes(c, &r);
                        if (!fl_utf8_valid(s.p, s.n)) fl_fail_pb(c, PB_UTF8);
                        continue;
                    }
                    case 0x10:
                    case 0x18:
                    case 0x40:
                        (void)rd_varint(c, &r);
                        continue;
                    case 0x21:
                        (void)rd_fixed64(c, &r);
                        continue;
                    case 0x2A:
                        validate_msg(c, rd_bytes(c, &r), MT_ARRAY, level + 1);
                        continue;
                    case 0x32:
                        validate_msg(c, rd_bytes(c, &r), MT_KVLIST, level + 1);
                        continue;
                    case 0x3A:
                        (void)rd_bytes(c, &r);
                        continue;
                    default:
                        break;
                }
                break;
            case MT_ARRAY:
                if (tag == 0x0A) {
                    validate_msg(c, rd_bytes(c, &r), MT_ANY, level + 1);
                    continue;
                }
                break;
            case MT_KVLIST:
                if (tag == 0x0A) {
                    validate_msg(c, rd_bytes(c, &r), MT_KV, level + 1);
                    continue;
                }
                break;
            default: /* MT_KV */
                if (tag == 0x0A) {
                    seg_t s = rd_bytes(c, &r);
                    if (!fl_utf8_valid(s.p, s.n)) fl_fail_pb(c, PB_UTF8);
                    continue;
                }
                if (tag == 0x12) {
                    validate_msg(c, rd_bytes(c, &r), MT_ANY, level + 1);
                    continue;
                }
                break;
        }
        fl_skip_field(c, &r, tag, level);
    }
}

/* The current case is replaced: check what upb would have checked of it (strings are
 * checked as they are read). */
static void drop_case(ctx_t *c, anyv_t *a, int level) {
    if (a->kind == AK_ARRAY || a->kind == AK_KVLIST) {
        int type = a->kind == AK_ARRAY ? MT_ARRAY : MT_KVLIST;
        for (uint32_t i = 0; i < a->msgs.n; i++) validate_msg(c, segs_at(&a->msgs, i), type, level + 1);
        a->msgs.n = 0;
        a->msgs.v = NULL;
    }
}

static const char FASTKV_UTF8[] = "malformed OTLP protobuf: invalid attribute: a key or value is not valid UTF-8";

/* Read an AnyValue (level: its upb nesting level) made of the segments segs, in order.
 * fastkv: a top-level value that FastKV reads (a lone plain string is checked by Arrow). */
static void scan_any(ctx_t *c, const segs_t *segs, int level, anyv_t *a, int fastkv) {
    memset(a, 0, sizeof(*a));
    if (segs->n) enter_level(c, level);
    int fields = 0;
    for (uint32_t k = 0; k < segs->n; k++) {
        cur_t r = cur_of(segs_at(segs, k));
        while (r.p < r.end) {
            uint32_t tag = rd_tag(c, &r);
            fields++;
            switch (tag) {
                case 0x0A: {
                    seg_t s = rd_bytes(c, &r);
                    if (!fl_utf8_valid(s.p, s.n)) {
                        if (fastkv && fields == 1 && r.p == r.end && segs->n == 1 && !needs_escape(s))
                            fl_fail(c, FASTKV_UTF8);
                        fl_fail_pb(c, PB_UTF8);
                    }
                    drop_case(c, a, level);
                    a->kind = AK_STR;
                    a->s = s;
                    continue;
                }
                case 0x10: {
                    uint64_t v = rd_varint(c, &r);
                    drop_case(c, a, level);
                    a->kind = AK_BOOL;
                    a->u = v != 0;
                    continue;
                }
                case 0x18: {
                    uint64_t v = rd_varint(c, &r);
                    drop_case(c, a, level);
                    a->kind = AK_INT;
                    a->u = v;
                    continue;
                }
                case 0x21: {
                    uint64_t v = rd_fixed64(c, &r);
                    drop_case(c, a, level);
                    a->kind = AK_DOUBLE;
                    memcpy(&a->d, &v, 8);
                    continue;
                }
                case 0x2A:
                case 0x32: {
                    seg_t s = rd_bytes(c, &r);
                    uint8_t kind = tag == 0x2A ? AK_ARRAY : AK_KVLIST;
                    if (a->kind != kind) {
                        drop_case(c, a, level);
                        a->kind = kind;
                    }
                    segs_push(c, &a->msgs, s);
                    continue;
                }
                case 0x3A: {
                    seg_t s = rd_bytes(c, &r);
                    drop_case(c, a, level);
                    a->kind = AK_BYTES;
                    a->s = s;
                    continue;
                }
                case 0x40: {
                    (void)rd_varint(c, &r);
                    drop_case(c, a, level);
                    a->kind = AK_STRINDEX;
                    continue;
                }
                default:
                    fl_skip_field(c, &r, tag, level);
            }
        }
    }
}

/* -- JSON ------------------------------------------------------------------------------------ */

static void emit_kvs(ctx_t *c, buf_t *out, const seg_t *kvs, uint32_t n, int kv_level, int depth, int top,
                     const attr_mode_t *m, kvinfo_t *info);

/* A JSON string value. Strings read by read_kv's fast path (a lone string, top-level or
 * not) are checked as UTF-8 here, the others were checked when read. */
FL_INLINE void put_string(ctx_t *c, buf_t *out, seg_t s, int top, const attr_mode_t *m) {
    buf_put_u8(c, out, '"');
    if (!fl_json_escape(c, out, s.p, s.n)) {
        if (top && m->fastkv_utf8 && !needs_escape(s)) fl_fail(c, FASTKV_UTF8);
        if (top) c->where = m->any_where;
        fl_fail_pb(c, PB_UTF8);
    }
    buf_put_u8(c, out, '"');
}

/* A container at depth 32 or more: refused, unless upb would have refused the whole
 * top-level value first (too deep for upb, bad UTF-8...): then with upb's error. */
_Noreturn static void too_deep(ctx_t *c) {
    const segs_t *top = c->top_value;
    if (top != NULL) {
        for (uint32_t i = 0; i < top->n; i++) validate_msg(c, segs_at(top, i), MT_ANY, c->top_level);
    }
    fl_fail(c, "attribute value nested deeper than %d levels", FL_MAX_ANY_DEPTH);
}

/* The KeyValue messages inside the KeyValueList payloads lists (at nesting level). */
static seg_t *list_entries(ctx_t *c, const segs_t *lists, int level, uint32_t *count) {
    seg_t *v = NULL;
    uint32_t n = 0, cap = 0;
    for (uint32_t k = 0; k < lists->n; k++) {
        enter_level(c, level);
        cur_t r = cur_of(segs_at(lists, k));
        while (r.p < r.end) {
            uint32_t tag = rd_tag(c, &r);
            if (tag != 0x0A) {
                fl_skip_field(c, &r, tag, level);
                continue;
            }
            seg_t s = rd_bytes(c, &r);
            if (n == cap) {
                uint32_t ncap = cap ? cap * 2 : 8;
                seg_t *nv = fl_arena_alloc(c, (size_t)ncap * sizeof(seg_t));
                if (n) memcpy(nv, v, (size_t)n * sizeof(seg_t));
                v = nv;
                cap = ncap;
            }
            v[n++] = s;
        }
    }
    *count = n;
    return v;
}

static void emit_container(ctx_t *c, buf_t *out, const anyv_t *a, int depth, int level, const attr_mode_t *m);

/* The JSON of a value: scalars here, containers (bytes, arrays, kvlists) out of line. */
FL_INLINE void emit_any(ctx_t *c, buf_t *out, const anyv_t *a, int depth, int level, int top, const attr_mode_t *m) {
    switch (a->kind) {
        case AK_NULL:
        case AK_STRINDEX:
            BUF_LIT(c, out, "null");
            return;
        case AK_STR:
            put_string(c, out, a->s, top, m);
            return;
        case AK_BOOL:
            if (a->u)
                BUF_LIT(c, out, "true");
            else
                BUF_LIT(c, out, "false");
            return;
        case AK_INT:
            fl_put_i64(c, out, (int64_t)a->u);
            return;
        case AK_DOUBLE:
            if (isfinite(a->d)) {
                if (top && m->arrow)
                    fl_put_double_arrow(c, out, a->d);
                else
                    fl_put_double_repr(c, out, a->d);
            } else {
                const char *name = fl_nonfinite_name(a->d);
                buf_put_u8(c, out, '"');
                buf_put(c, out, name, strlen(name));
                buf_put_u8(c, out, '"');
            }
            return;
        default:
            emit_container(c, out, a, depth, level, m);
    }
}

static void emit_container(ctx_t *c, buf_t *out, const anyv_t *a, int depth, int level, const attr_mode_t *m) {
    if (depth >= FL_MAX_ANY_DEPTH) too_deep(c);
    if (a->kind == AK_BYTES) {
        buf_put_u8(c, out, '"');
        fl_base64(c, out, a->s.p, a->s.n);
        buf_put_u8(c, out, '"');
        return;
    }
    if (a->kind == AK_ARRAY) {
        buf_put_u8(c, out, '[');
        int first = 1;
        for (uint32_t k = 0; k < a->msgs.n; k++) {
            enter_level(c, level + 1);
            cur_t r = cur_of(segs_at(&a->msgs, k));
            while (r.p < r.end) {
                uint32_t tag = rd_tag(c, &r);
                if (tag != 0x0A) {
                    fl_skip_field(c, &r, tag, level + 1);
                    continue;
                }
                segs_t one = {NULL, 1, 0, rd_bytes(c, &r)};
                anyv_t e;
                scan_any(c, &one, level + 2, &e, 0);
                if (!first) buf_put_u8(c, out, ',');
                first = 0;
                emit_any(c, out, &e, depth + 1, level + 2, 0, m);
            }
        }
        buf_put_u8(c, out, ']');
        return;
    }
    /* AK_KVLIST */
    uint32_t n;
    seg_t *kvs = list_entries(c, &a->msgs, level + 1, &n);
    emit_kvs(c, out, kvs, n, level + 2, depth + 1, 0, m, NULL);
}

/* A KeyValue: its key (the last one; each checked as UTF-8 as upb reads it) and the
 * occurrences of its value. top: an item's own attribute (attr_mode_t m applies). */
_Noreturn static void bad_key(ctx_t *c, seg_t key, int top, const attr_mode_t *m);

static void parse_kv(ctx_t *c, seg_t kv, int level, seg_t *key, segs_t *values, int top, const attr_mode_t *m) {
    enter_level(c, level);
    memset(values, 0, sizeof(*values));
    key->p = NULL;
    key->n = 0;
    cur_t r = cur_of(kv);
    while (r.p < r.end) {
        uint32_t tag = rd_tag(c, &r);
        if (tag == 0x0A) {
            *key = rd_bytes(c, &r);
            if (!fl_utf8_valid(key->p, key->n)) bad_key(c, *key, top, m);
        } else if (tag == 0x12) {
            segs_push(c, values, rd_bytes(c, &r));
        } else {
            fl_skip_field(c, &r, tag, level);
        }
    }
}

_Noreturn static void bad_key(ctx_t *c, seg_t key, int top, const attr_mode_t *m) {
    if (top && m->fastkv_utf8) {
        /* FastKV: an escaped key is decoded by Python, a plain one checked by Arrow */
        if (needs_escape(key)) fl_fail(c, "malformed OTLP protobuf: invalid attribute: a key is not valid UTF-8");
        fl_fail(c, FASTKV_UTF8);
    }
    if (top) c->where = m->kv_where;
    fl_fail_pb(c, PB_UTF8);
}

/* One KeyValue: its key, the occurrences of its value and the value read. The usual
 * shape (one key, one value of one scalar field, lengths under 128 bytes) is read here
 * directly; anything else by parse_kv and scan_any. Errors are reported from where
 * the Python path would report them (attr_mode_t), so c->where is set on the way. */
FL_INLINE void read_kv(ctx_t *c, seg_t kv, int kv_level, int top, const attr_mode_t *m, seg_t *key, segs_t *values,
                    anyv_t *a) {
    const uint8_t *p = kv.p;
    uint32_t n = kv.n;
    if (n >= 4 && p[0] == 0x0A && p[1] < 0x80 && p[1] + 4u <= n && p[2 + p[1]] == 0x12 && p[3 + p[1]] < 0x80 &&
        p[1] + p[3 + p[1]] + 4u == n) {
        uint32_t kl = p[1], vl = p[3 + kl];
        const uint8_t *v = p + 4 + kl;
        memset(a, 0, sizeof(*a));
        int ok = 1;
        if (vl == 0) {
            a->kind = AK_NULL;
        } else if (v[0] == 0x0A && vl >= 2 && v[1] < 0x80 && v[1] + 2u == vl) {
            a->kind = AK_STR;
            a->s.p = v + 2;
            a->s.n = v[1];
        } else if (v[0] == 0x10 && vl == 2 && v[1] < 0x80) {
            a->kind = AK_BOOL;
            a->u = v[1] != 0;
        } else if (v[0] == 0x21 && vl == 9) {
            a->kind = AK_DOUBLE;
            memcpy(&a->d, v + 1, 8);
        } else if (v[0] == 0x18 && vl >= 2 && vl <= 11 && v[vl - 1] < 0x80) {
            uint64_t x = 0;
            for (uint32_t i = 1; i < vl; i++) {
                if (i < vl - 1 && !(v[i] & 0x80)) ok = 0; /* ends before the value does */
                x |= (uint64_t)(v[i] & 0x7f) << (7 * (i - 1));
            }
            a->kind = AK_INT;
            a->u = x;
        } else {
            ok = 0;
        }
        if (ok) {
            enter_level(c, kv_level);
            enter_level(c, kv_level + 1);
            key->p = p + 2;
            key->n = kl;
            if (!top || m->dedup) {
                /* every KeyValue is read before any is written: check now, as upb would */
                if (!fl_utf8_valid(key->p, kl)) bad_key(c, *key, top, m);
                if (a->kind == AK_STR && !fl_utf8_valid(a->s.p, a->s.n)) {
                    if (top) c->where = m->any_where;
                    fl_fail_pb(c, PB_UTF8);
                }
            }
            /* else the key and a string are checked as they are written, before the next
             * KeyValue is read (nothing in this one can fail after them) */
            values->v = NULL;
            values->n = 1;
            values->cap = 0;
            values->inl.p = v;
            values->inl.n = vl;
            return;
        }
    }
    if (top) c->where = m->kv_where;
    parse_kv(c, kv, kv_level, key, values, top, m);
    if (top) c->where = m->any_where;
    scan_any(c, values, kv_level + 1, a, top && m->fastkv_utf8);
}

FL_INLINE void put_key(ctx_t *c, buf_t *out, seg_t key, int top, const attr_mode_t *m) {
    buf_put_u8(c, out, '"');
    if (!fl_json_escape(c, out, key.p, key.n)) bad_key(c, key, top, m);
    BUF_LIT(c, out, "\":");
}

FL_INLINE void set_info(kvinfo_t *info, seg_t key, const anyv_t *a) {
    info->key = key;
    info->kind = a->kind;
    info->s = a->s;
    info->u = a->u;
    info->d = a->d;
}

typedef struct {
    seg_t key;
    segs_t values;
    anyv_t a;
} entry_t;

static uint64_t hash_key(seg_t k) {
    uint64_t h = 1469598103934665603ULL;
    for (uint32_t i = 0; i < k.n; i++) {
        h ^= k.p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static inline int same_key(seg_t a, seg_t b) { return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0); }

/* first[i]: the index of the first KeyValue with the key of KeyValue i. */
static void first_of_keys(ctx_t *c, const entry_t *e, uint32_t n, uint32_t *first) {
    if (n <= 16) {
        for (uint32_t i = 0; i < n; i++) {
            first[i] = i;
            for (uint32_t j = 0; j < i; j++) {
                if (same_key(e[j].key, e[i].key)) {
                    first[i] = j;
                    break;
                }
            }
        }
        return;
    }
    size_t size = 32;
    while (size < (size_t)n * 2) size *= 2;
    uint32_t *slots = fl_arena_alloc(c, size * sizeof(uint32_t));
    memset(slots, 0, size * sizeof(uint32_t));
    for (uint32_t i = 0; i < n; i++) {
        size_t h = (size_t)hash_key(e[i].key) & (size - 1);
        for (;;) {
            uint32_t s = slots[h];
            if (s == 0) {
                slots[h] = i + 1;
                first[i] = i;
                break;
            }
            if (same_key(e[s - 1].key, e[i].key)) {
                first[i] = s - 1;
                break;
            }
            h = (h + 1) & (size - 1);
        }
    }
}

/* The JSON object of the KeyValue messages kvs[0:n] (at nesting kv_level), values at
 * depth ``depth``. ``top``: the item's own attributes (attr_mode_t applies). */
static void emit_kvs(ctx_t *c, buf_t *out, const seg_t *kvs, uint32_t n, int kv_level, int depth, int top,
                     const attr_mode_t *m, kvinfo_t *info) {
    buf_put_u8(c, out, '{');
    int dedup = top ? m->dedup : 1;
    if (!dedup) {
        for (uint32_t i = 0; i < n; i++) {
            seg_t key;
            segs_t values;
            anyv_t a;
            read_kv(c, kvs[i], kv_level, top, m, &key, &values, &a);
            if (top) {
                c->top_value = &values;
                c->top_level = kv_level + 1;
            }
            if (i) buf_put_u8(c, out, ',');
            put_key(c, out, key, top, m);
            emit_any(c, out, &a, depth, kv_level + 1, top, m);
            if (info) set_info(&info[i], key, &a);
        }
        if (top) c->top_value = NULL;
        buf_put_u8(c, out, '}');
        return;
    }
    entry_t *e = fl_arena_alloc(c, (size_t)(n ? n : 1) * sizeof(entry_t));
    for (uint32_t i = 0; i < n; i++) {
        read_kv(c, kvs[i], kv_level, top, m, &e[i].key, &e[i].values, &e[i].a);
        if (info) set_info(&info[i], e[i].key, &e[i].a);
    }
    uint32_t *first = fl_arena_alloc(c, (size_t)(n ? n : 1) * 2 * sizeof(uint32_t));
    uint32_t *last = first + n;
    first_of_keys(c, e, n, first);
    for (uint32_t i = 0; i < n; i++) last[first[i]] = i;
    int written = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (first[i] == i) {
            const entry_t *w = &e[last[i]];
            if (written++) buf_put_u8(c, out, ',');
            put_key(c, out, e[i].key, top, m);
            if (top) {
                c->top_value = &w->values;
                c->top_level = kv_level + 1;
            }
            emit_any(c, out, &w->a, depth, kv_level + 1, top, m);
        }
        if (last[first[i]] != i) {
            /* replaced by a later duplicate: converted all the same (errors), then dropped */
            if (top) {
                c->top_value = &e[i].values;
                c->top_level = kv_level + 1;
            }
            emit_any(c, &c->discard, &e[i].a, depth, kv_level + 1, top, m);
            c->discard.len = 0;
        }
    }
    if (top) c->top_value = NULL;
    buf_put_u8(c, out, '}');
}

void fl_attrs_json(ctx_t *c, buf_t *out, const seg_t *kvs, uint32_t n, const attr_mode_t *m, kvinfo_t *info) {
    emit_kvs(c, out, kvs, n, m->kv_level, 0, 1, m, info);
}
