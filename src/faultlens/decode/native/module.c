/* faultlens.decode._native: the CPython module around the span decoder (spans.c) and the
 * OTLP/JSON trace encoder (jsonwire.c).
 *
 *     SpanDecoder(span_specs, resource_specs, exception_specs, invalid) -> decoder
 *     decoder.decode(data) -> None | (rows, rejected, first_reason, columns)
 *     traces_json_to_wire(doc) -> bytes | None
 *
 * A decode of ``bytes`` runs without the GIL (but for building the result), so threads
 * can decode side by side and beside the event loop. Column buffers are objects that
 * own malloc'd memory and expose it through the buffer protocol.
 *
 * Specs are sequences of (attribute keys in order of preference, is_int); ``invalid`` is
 * the exception class raised for malformed requests (faultlens.errors.InvalidRequest).
 * faultlens/decode/_native_spans.py turns the result into a pyarrow Table.
 */
#include "jsonwire.h"
#include "spans.h"

typedef struct {
    PyObject_HEAD decoder_t dec;
    PyObject *invalid;
    int busy; /* decodes running without the GIL: __init__ must not free the specs then */
} SpanDecoder;

static void SpanDecoder_dealloc(SpanDecoder *self) {
    fl_promoter_free(&self->dec.span);
    fl_promoter_free(&self->dec.resource);
    fl_promoter_free(&self->dec.exception);
    Py_XDECREF(self->invalid);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int SpanDecoder_init(SpanDecoder *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"span_specs", "resource_specs", "exception_specs", "invalid", NULL};
    PyObject *span, *resource, *exception, *invalid;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOO", kwlist, &span, &resource, &exception, &invalid))
        return -1;
    if (!PyType_Check(invalid) || !PyType_IsSubtype((PyTypeObject *)invalid, (PyTypeObject *)PyExc_Exception)) {
        PyErr_SetString(PyExc_TypeError, "invalid must be an exception class");
        return -1;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "SpanDecoder re-initialised while decoding");
        return -1;
    }
    fl_promoter_free(&self->dec.span);
    fl_promoter_free(&self->dec.resource);
    fl_promoter_free(&self->dec.exception);
    if (fl_promoter_init(&self->dec.span, span) < 0) return -1;
    if (fl_promoter_init(&self->dec.resource, resource) < 0) return -1;
    if (fl_promoter_init(&self->dec.exception, exception) < 0) return -1;
    for (int s = 0; s < self->dec.resource.n_specs; s++) {
        if (self->dec.resource.is_int[s]) {
            PyErr_SetString(PyExc_ValueError, "resource columns must be strings");
            return -1;
        }
    }
    Py_INCREF(invalid);
    Py_XSETREF(self->invalid, invalid);
    return 0;
}

static PyObject *SpanDecoder_decode(SpanDecoder *self, PyObject *arg) {
    if (self->invalid == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "SpanDecoder not initialised");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    int immutable = PyBytes_Check(arg);
    self->busy++;
    PyObject *out = fl_decode_spans(&self->dec, view.buf, view.len, self->invalid, immutable);
    self->busy--;
    PyBuffer_Release(&view);
    return out;
}

static PyMethodDef SpanDecoder_methods[] = {
    {"decode", (PyCFunction)SpanDecoder_decode, METH_O,
     "decode(data) -> None | (rows, rejected, first_reason, columns)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject SpanDecoderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "faultlens.decode._native.SpanDecoder",
    .tp_basicsize = sizeof(SpanDecoder),
    .tp_dealloc = (destructor)SpanDecoder_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Serialized ExportTraceServiceRequest to the Arrow buffers of SPAN_SCHEMA.",
    .tp_methods = SpanDecoder_methods,
    .tp_init = (initproc)SpanDecoder_init,
    .tp_new = PyType_GenericNew,
};

static PyObject *traces_json_to_wire(PyObject *module, PyObject *doc) {
    (void)module;
    return fl_traces_json_to_wire(doc);
}

static PyMethodDef module_methods[] = {
    {"traces_json_to_wire", traces_json_to_wire, METH_O,
     "traces_json_to_wire(doc) -> bytes | None: a parsed OTLP/JSON trace request as protobuf bytes"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, .m_name = "faultlens.decode._native",
    .m_doc = "Native decoder of OTLP trace requests (see faultlens/decode/native/).", .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__native(void) {
    if (PyType_Ready(&SpanDecoderType) < 0) return NULL;
    if (fl_buffer_type_ready() < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&SpanDecoderType);
    if (PyModule_AddObject(m, "SpanDecoder", (PyObject *)&SpanDecoderType) < 0) {
        Py_DECREF(&SpanDecoderType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
