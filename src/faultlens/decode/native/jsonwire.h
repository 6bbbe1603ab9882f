/* A parsed OTLP/JSON trace request (the document orjson.loads returns) to protobuf wire
 * bytes: the C twin of the traces encoder of faultlens/decode/_jsonwire.py, for the one
 * shape senders use most.
 *
 *     traces_json_to_wire(doc) -> bytes | None
 *
 * The contract is the Python encoder's, one step narrower: the bytes are exactly those
 * the Python encoder returns for ``doc``, or None ("not sure") and the caller runs the
 * Python encoder, which may in turn decline to the json_format reference. So this code
 * may decline more than the Python encoder but never returns other bytes. It takes:
 *
 *   - objects whose keys are all the camelCase names of fields the Python encoder writes
 *     (a snake_case or unknown key declines), null as an absent field;
 *   - ids as hex strings of even length; 64-bit and 32-bit unsigned integers as exact
 *     ints or strings of ASCII digits (at most 20); int64 (intValue) the same with an
 *     optional '-'; enums (kind, status code) as int32 numbers only;
 *   - AnyValue kinds stringValue, boolValue, intValue, doubleValue (a finite float or an
 *     int), arrayValue and kvlistValue nested below MAX_ANY_DEPTH (16); bytesValue and
 *     the words "NaN"/"Infinity" decline;
 *   - strings that encode to UTF-8 (a lone surrogate declines).
 *
 * It declines on anything else; a Python exception other than MemoryError raised by the
 * C API on a value (a surrogate, an int out of range) is cleared and declines too. The
 * walk reads the document only through the C API with borrowed references (no Python
 * code runs, so the document cannot change under it) and recurses at most
 * 2 * MAX_ANY_DEPTH levels into values.
 */
#ifndef FAULTLENS_NATIVE_JSONWIRE_H
#define FAULTLENS_NATIVE_JSONWIRE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* New reference: the bytes, Py_None to decline, or NULL with an exception (out of memory). */
PyObject *fl_traces_json_to_wire(PyObject *doc);

#endif
