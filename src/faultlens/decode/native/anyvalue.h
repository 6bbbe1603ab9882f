/* KeyValue / AnyValue messages to JSON text, exactly as faultlens.decode.attributes does.
 *
 * Protobuf semantics are upb's: the oneof keeps the last field set; a message case
 * (array_value, kvlist_value) repeated without another case in between is merged
 * (its elements appended); a KeyValue's value repeated is merged the same way; every
 * occurrence of a string is UTF-8 checked, and every occurrence of a nested message is
 * validated, even when a later field replaces it.
 *
 * JSON (faultlens.decode._anyvalue): strings escaped as json.dumps(ensure_ascii=False)
 * does; bytes as base64; doubles as repr(), NaN and infinities as the strings "NaN",
 * "Infinity", "-Infinity"; arrays as lists; kvlists as objects where a repeated key
 * keeps its first position and its last value (a dict); an empty AnyValue or a
 * string_value_strindex as null; a container (bytes, array, kvlist) at depth 32 or more
 * is refused. The top level of an item differs with the Python implementation that the
 * size of the request part picks (attr_mode_t): up to 256 KeyValues ("tiny") the object
 * is a dict too and doubles are repr(); above, every KeyValue is written in order
 * (repeated keys included) and top-level doubles are spelt as Arrow casts them.
 */
#ifndef FAULTLENS_NATIVE_ANYVALUE_H
#define FAULTLENS_NATIVE_ANYVALUE_H

#include "common.h"

enum {
    AK_NULL = 0,
    AK_STR,
    AK_BOOL,
    AK_INT,
    AK_DOUBLE,
    AK_BYTES,
    AK_ARRAY,
    AK_KVLIST,
    AK_STRINDEX,
};

/* What promotion to a column needs of one top-level KeyValue. */
typedef struct {
    seg_t key;
    uint8_t kind; /* AK_* */
    seg_t s;      /* AK_STR: the text (valid UTF-8) */
    uint64_t u;   /* AK_BOOL: 0/1; AK_INT: the int64's bits */
    double d;     /* AK_DOUBLE */
} kvinfo_t;

/* How the top level of an attribute set is written (see the header comment), and where
 * errors are reported from, as the Python implementation for that size would. */
typedef struct {
    int dedup;     /* a repeated key keeps its first position and last value */
    int arrow;     /* top-level doubles spelt as Arrow casts them */
    int kv_level;  /* upb nesting level of the KeyValue messages (-1: values parsed alone) */
    where_t kv_where, any_where;
    int fastkv_utf8; /* bad UTF-8 in a top-level key or string: FastKV's message */
} attr_mode_t;

/* The mode the Python path picks for an attribute set (all the KeyValues of a request part). */
void fl_attr_mode(attr_mode_t *m, const seg_t *kvs, size_t total_kvs);

/* Append the JSON object of one item's attributes (the KeyValue messages kvs[0:n]) to
 * out. info[i] (when info is not NULL) gets what promotion needs of KeyValue i. */
void fl_attrs_json(ctx_t *c, buf_t *out, const seg_t *kvs, uint32_t n, const attr_mode_t *m,
                   kvinfo_t *info);

#endif
