/* A well-formed presence report's fields, checked in C: the checks of contract._decode_agent for the usual shape.
 *
 * Why: the aggregator's MQTT process validates every agent report (tens of thousands a second),
 * and contract._decode_agent's field-by-field checks in Python were ~7 µs of its ~10 µs per report
 * (orjson's parse is ~2). This module only says yes to a report in exactly the shape agents write
 * (every number a finite float, every string within its length, the device not MAC-shaped, at most
 * 32 ranges) and then returns the fields as plain values; for anything else, including every
 * report that contract._decode_agent would reject, it returns None and the Python decoder decides
 * with its precise reason. tests/test_contract.py holds the two to the same result on mutated
 * reports. Built optionally (pyproject.toml); without it contract.presence_fields returns None
 * and everything goes through Python.
 *
 * fields(kind, d, agent, contains_mac) -> (kind, msg_id, agent, ts, device, x, y, accuracy_m,
 *     rssi_dbm, distance_m, randomized, ((sniffer, x, y, rssi_dbm, distance_m), ...)) or None
 * d is the parsed JSON object, agent the topic's agent, contains_mac privacy.contains_mac.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

enum { K_MSG_ID, K_AGENT, K_TS, K_DEVICE, K_X, K_Y, K_ACCURACY, K_RSSI, K_DISTANCE, K_RANDOMIZED, K_RANGES,
       K_SNIFFER, K_COUNT };
static const char *KEY_NAMES[K_COUNT] = {"msg_id", "agent", "ts", "device", "x", "y", "accuracy_m", "rssi_dbm",
                                         "distance_m", "randomized", "ranges", "sniffer"};
static PyObject *KEYS[K_COUNT];

#define MAX_RANGES 32

/* d[key] or NULL when missing (no error set) or on an error (set). */
static PyObject *get(PyObject *d, int key) { return PyDict_GetItemWithError(d, KEYS[key]); }

static int is_text(PyObject *v, Py_ssize_t max_len) {
    if (v == NULL || !PyUnicode_CheckExact(v))
        return 0;
    Py_ssize_t n = PyUnicode_GET_LENGTH(v);
    return n > 0 && n <= max_len;
}

static int is_finite(PyObject *v) { return v != NULL && PyFloat_CheckExact(v) && isfinite(PyFloat_AS_DOUBLE(v)); }

static PyObject *range_fields(PyObject *item) {
    if (!PyDict_CheckExact(item))
        return NULL;
    PyObject *sniffer = get(item, K_SNIFFER), *x = get(item, K_X), *y = get(item, K_Y), *rssi = get(item, K_RSSI),
             *dist = get(item, K_DISTANCE);
    if (PyErr_Occurred())
        return NULL;
    if (!(is_text(sniffer, 128) && is_finite(x) && is_finite(y) && is_finite(rssi) && is_finite(dist) &&
          PyFloat_AS_DOUBLE(dist) >= 0.0))
        return NULL;
    return PyTuple_Pack(5, sniffer, x, y, rssi, dist);
}

static PyObject *fields(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "fields() takes 4 arguments");
        return NULL;
    }
    PyObject *kind = args[0], *d = args[1], *topic_agent = args[2], *contains_mac = args[3];
    if (!PyDict_CheckExact(d))
        Py_RETURN_NONE;
    PyObject *v[K_RANGES + 1];
    for (int k = 0; k <= K_RANGES; k++) {
        v[k] = get(d, k);
        if (v[k] == NULL && PyErr_Occurred())
            return NULL;
    }
    PyObject *randomized = v[K_RANDOMIZED] == NULL ? Py_False : v[K_RANDOMIZED];
    if (!(is_text(v[K_MSG_ID], 160) && is_text(v[K_AGENT], 128) && is_finite(v[K_TS]) &&
          PyFloat_AS_DOUBLE(v[K_TS]) > 0.0 && is_text(v[K_DEVICE], 128) && is_finite(v[K_X]) && is_finite(v[K_Y]) &&
          is_finite(v[K_RSSI]) && is_finite(v[K_ACCURACY]) && PyFloat_AS_DOUBLE(v[K_ACCURACY]) >= 0.0 &&
          is_finite(v[K_DISTANCE]) && PyFloat_AS_DOUBLE(v[K_DISTANCE]) >= 0.0 &&
          (randomized == Py_True || randomized == Py_False)))
        Py_RETURN_NONE;
    if (topic_agent != Py_None) {
        int same = PyObject_RichCompareBool(v[K_AGENT], topic_agent, Py_EQ);
        if (same < 0)
            return NULL;
        if (!same)
            Py_RETURN_NONE;
    }
    PyObject *raw = v[K_RANGES];
    PyObject *ranges;
    if (raw == NULL || raw == Py_None) {
        ranges = PyTuple_New(0);
    } else {
        if (!PyList_CheckExact(raw) || PyList_GET_SIZE(raw) > MAX_RANGES)
            Py_RETURN_NONE;
        Py_ssize_t n = PyList_GET_SIZE(raw);
        ranges = PyTuple_New(n);
        if (ranges == NULL)
            return NULL;
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *r = range_fields(PyList_GET_ITEM(raw, i));
            if (r == NULL) {
                Py_DECREF(ranges);
                if (PyErr_Occurred())
                    return NULL;
                Py_RETURN_NONE;
            }
            PyTuple_SET_ITEM(ranges, i, r);
        }
    }
    if (ranges == NULL)
        return NULL;
    /* last, as it is the dearest check: a MAC-shaped device is the Python decoder's to reject */
    PyObject *mac = PyObject_CallOneArg(contains_mac, v[K_DEVICE]);
    if (mac == NULL) {
        Py_DECREF(ranges);
        return NULL;
    }
    int has_mac = PyObject_IsTrue(mac);
    Py_DECREF(mac);
    if (has_mac != 0) {
        Py_DECREF(ranges);
        if (has_mac < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    PyObject *out = PyTuple_Pack(12, kind, v[K_MSG_ID], v[K_AGENT], v[K_TS], v[K_DEVICE], v[K_X], v[K_Y],
                                 v[K_ACCURACY], v[K_RSSI], v[K_DISTANCE], randomized, ranges);
    Py_DECREF(ranges);
    return out;
}

static PyMethodDef methods[] = {
    {"fields", (PyCFunction)(void (*)(void))fields, METH_FASTCALL,
     "fields(kind, d, agent, contains_mac): a well-formed presence report's fields as plain values, or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_presence",
                                    "A well-formed presence report's fields, checked in C.", -1, methods};

PyMODINIT_FUNC PyInit__presence(void) {
    for (int k = 0; k < K_COUNT; k++) {
        KEYS[k] = PyUnicode_InternFromString(KEY_NAMES[k]);
        if (KEYS[k] == NULL)
            return NULL;
    }
    return PyModule_Create(&module);
}
