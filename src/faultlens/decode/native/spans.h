/* The span decoder: a serialized ExportTraceServiceRequest to the Arrow buffers of every
 * column of faultlens.decode.schema.SPAN_SCHEMA (see spans.c for the phases). */
#ifndef FAULTLENS_NATIVE_SPANS_H
#define FAULTLENS_NATIVE_SPANS_H

#include "common.h"

#define FL_MAX_SPECS 32
#define FL_MAX_KEYS 64
#define FL_MAX_PAIRS 8
#define FL_KEY_SLOTS 256 /* hash slots for the keys (at most FL_MAX_KEYS, so never full) */

/* Promoted columns: for each, attribute keys in order of preference, and whether the
 * column is int32 (else string). Built from the tuples schema.py declares. */
typedef struct {
    int n_specs;
    uint8_t is_int[FL_MAX_SPECS];
    int n_keys;
    struct {
        char *p;
        uint32_t n;
        uint64_t head, tail; /* the first and last 8 bytes (zero-padded when shorter) */
        uint8_t n_pairs;
        uint8_t spec[FL_MAX_PAIRS];
        uint8_t prio[FL_MAX_PAIRS];
    } keys[FL_MAX_KEYS];
    int16_t slots[FL_KEY_SLOTS]; /* open addressing on (length, first and last 8 bytes) */
} promoter_t;

typedef struct decoder {
    promoter_t span, resource, exception;
} decoder_t;

/* specs: a sequence of (keys: sequence of str, is_int: bool). -1 with an exception set. */
int fl_promoter_init(promoter_t *p, PyObject *specs);
void fl_promoter_free(promoter_t *p);

/* None when the request holds no span; else (rows, rejected, first_reason, columns): see
 * faultlens/decode/_native_spans.py for the layout of columns. Raises
 * faultlens.errors.InvalidRequest (passed as invalid) on malformed input. */
PyObject *fl_decode_spans(const decoder_t *d, const uint8_t *data, Py_ssize_t n, PyObject *invalid,
                          int release_gil);

#endif
