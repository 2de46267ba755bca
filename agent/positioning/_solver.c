/* The robust multilateration solver's inner loop, compiled: multilateration._robust, step for step.
 *
 * Why: the aggregator fuses every probe burst of every shopper (two robust solves per fix), and in
 * CPython those ~30 lines of float arithmetic over four receivers were half of ingest's time on its
 * busy thread. This file does the same operations in the same order on the same IEEE doubles, with
 * the same libm (log, sqrt, pow) and CPython's own math.hypot for the convergence test, so its
 * results equal the Python function's to the last bit; tests/positioning/test_native_solver.py
 * checks that on random inputs. Built with -ffp-contract=off: a fused multiply-add (on by default
 * on ARM, the Raspberry Pi) rounds once where Python rounds twice; and with -fno-builtin-pow: gcc
 * turns pow(s, 2.0) into s * s, which differed from libm's pow (what Python's s ** 2 calls) in the
 * last bit in 53 of 200,000 random cases.
 *
 * multilateration.py keeps the Python original: it runs when this module is not built (no compiler
 * at install) or when FLOORWALKER_PURE_PYTHON is set, and for what is not done here (edge_mean).
 *
 * robust(xs, ys, ds, ss, bounds, prior, weights, long_t, short_t, weights_only, linearize_at)
 *   -> (x, y, accuracy, weights tuple, (var_x, cov_xy, var_y))
 * xs..ss: lists of floats (multilateration.columns), bounds: (x0, y0, x1, y1), prior: None or
 * (x, y, accuracy), weights: None or a sequence of numbers (one per anchor, checked by the caller),
 * linearize_at: None or (x, y, var_x, var_y).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

#define MAX_ANCHORS 64

static double MIN_DISTANCE_M, MIN_REL_SIGMA, STEP_TOLERANCE_M;
static int MAX_ITERATIONS;
static int configured = 0;
static PyObject *py_hypot = NULL; /* math.hypot: CPython's own algorithm, not libm's hypot() */

typedef struct {
    double x, y, d, l, s; /* receiver position, distance, ln(distance), 1/relative sigma (or 1/sigma) */
    int lin;              /* a position-like anchor: linear residual in metres */
} Term;

static int read_doubles(PyObject *seq, double *out, Py_ssize_t n, const char *what) {
    PyObject *fast = PySequence_Fast(seq, what);
    if (fast == NULL)
        return -1;
    if (PySequence_Fast_GET_SIZE(fast) != n) {
        Py_DECREF(fast);
        PyErr_Format(PyExc_ValueError, "%s: %zd values expected", what, n);
        return -1;
    }
    PyObject **items = PySequence_Fast_ITEMS(fast);
    for (Py_ssize_t i = 0; i < n; i++) {
        double v = PyFloat_AsDouble(items[i]);
        if (v == -1.0 && PyErr_Occurred()) {
            Py_DECREF(fast);
            return -1;
        }
        out[i] = v;
    }
    Py_DECREF(fast);
    return 0;
}

/* min(max(v, lo), hi) as Python evaluates it (the first argument wins ties). */
static inline double clamp(double v, double lo, double hi) {
    double m = lo > v ? lo : v;
    return hi < m ? hi : m;
}

static int hypot_of(double a, double b, double *out) {
    PyObject *args[2];
    args[0] = PyFloat_FromDouble(a);
    args[1] = PyFloat_FromDouble(b);
    if (args[0] == NULL || args[1] == NULL) {
        Py_XDECREF(args[0]);
        Py_XDECREF(args[1]);
        return -1;
    }
    PyObject *r = PyObject_Vectorcall(py_hypot, args, 2, NULL);
    Py_DECREF(args[0]);
    Py_DECREF(args[1]);
    if (r == NULL)
        return -1;
    *out = PyFloat_AsDouble(r);
    Py_DECREF(r);
    return 0;
}

/* One anchor's residual e and Jacobian factor k (d e / d p = k * (dx, dy)) at (x, y). */
static inline void residual(const Term *t, double x, double y, double eps2, double *e, double *k, double *dx,
                            double *dy) {
    *dx = x - t->x;
    *dy = y - t->y;
    double r2 = *dx * *dx + *dy * *dy + eps2;
    if (t->lin) {
        double r = sqrt(r2);
        *e = (t->d - r) * t->s;
        *k = -t->s / r;
    } else {
        *e = (t->l - 0.5 * log(r2)) * t->s;
        *k = -t->s / r2;
    }
}

static PyObject *robust(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (!configured) {
        PyErr_SetString(PyExc_RuntimeError, "_solver.configure() was not called");
        return NULL;
    }
    if (nargs != 11) {
        PyErr_SetString(PyExc_TypeError, "robust() takes 11 arguments");
        return NULL;
    }
    Py_ssize_t n = PySequence_Size(args[0]);
    if (n < 0)
        return NULL;
    if (n < 1 || n > MAX_ANCHORS) {
        PyErr_Format(PyExc_ValueError, "robust(): 1..%d anchors, got %zd", MAX_ANCHORS, n);
        return NULL;
    }
    double ax[MAX_ANCHORS], ay[MAX_ANCHORS], dist[MAX_ANCHORS], sig[MAX_ANCHORS], w[MAX_ANCHORS], b[4];
    if (read_doubles(args[0], ax, n, "xs") || read_doubles(args[1], ay, n, "ys") ||
        read_doubles(args[2], dist, n, "ds") || read_doubles(args[3], sig, n, "ss") ||
        read_doubles(args[4], b, 4, "bounds"))
        return NULL;
    PyObject *prior_obj = args[5], *weights_obj = args[6], *lin_obj = args[10];
    double long_t = PyFloat_AsDouble(args[7]);
    double short_t = PyFloat_AsDouble(args[8]);
    int weights_only = PyObject_IsTrue(args[9]);
    if (PyErr_Occurred() || weights_only < 0)
        return NULL;
    double prior[3] = {0.0, 0.0, 0.0}, lin_at[4] = {0.0, 0.0, 0.0, 0.0};
    int has_prior = prior_obj != Py_None, has_lin = lin_obj != Py_None, estimate = weights_obj == Py_None;
    if (has_prior && read_doubles(prior_obj, prior, 3, "prior"))
        return NULL;
    if (has_lin && read_doubles(lin_obj, lin_at, 4, "linearize_at"))
        return NULL;
    if (!estimate && read_doubles(weights_obj, w, n, "weights"))
        return NULL;

    /* anchor_terms */
    Term terms[MAX_ANCHORS];
    double sw = 0.0, swx = 0.0, swy = 0.0;
    for (Py_ssize_t i = 0; i < n; i++) {
        double xi = ax[i], yi = ay[i], d = dist[i], s = sig[i], c;
        Term *t = &terms[i];
        t->x = xi;
        t->y = yi;
        t->d = d;
        t->l = log(d);
        if (s > 2.0 * d) {
            t->lin = 1;
            t->s = 1.0 / s;
            c = 1.0 / pow(s, 2.0);
        } else {
            double rel = s / d;
            t->lin = 0;
            t->s = 1.0 / (rel > MIN_REL_SIGMA ? rel : MIN_REL_SIGMA);
            c = 1.0 / pow(d, 2.0);
        }
        sw += c;
        swx += c * xi;
        swy += c * yi;
    }
    const double eps2 = MIN_DISTANCE_M * MIN_DISTANCE_M;
    const double bx0 = b[0], by0 = b[1], bx1 = b[2], by1 = b[3];
    double x, y, px = 0.0, py = 0.0, ip2 = 0.0;
    if (has_prior) {
        px = prior[0];
        py = prior[1];
        x = clamp(px, bx0, bx1);
        y = clamp(py, by0, by1);
        ip2 = 1.0 / (prior[2] * prior[2]);
    } else {
        x = clamp(swx / sw, bx0, bx1);
        y = clamp(swy / sw, by0, by1);
    }
    double dmax = dist[0];
    for (Py_ssize_t i = 1; i < n; i++)
        if (dist[i] > dmax)
            dmax = dist[i];
    double span2 = 1.0, plan2 = pow(bx1 - bx0, 2.0) + pow(by1 - by0, 2.0), far2 = pow(dmax, 2.0);
    if (plan2 > span2)
        span2 = plan2;
    if (far2 > span2)
        span2 = far2;
    const double ridge = 1.0 / span2;
    if (estimate)
        for (Py_ssize_t i = 0; i < n; i++)
            w[i] = 1.0;
    const double neg_short = -short_t;
    double e, k, dx, dy;
    for (int it = 0; it < MAX_ITERATIONS; it++) {
        double a11 = 0.0, a12 = 0.0, a22 = 0.0, g1 = 0.0, g2 = 0.0;
        for (Py_ssize_t i = 0; i < n; i++) {
            residual(&terms[i], x, y, eps2, &e, &k, &dx, &dy);
            double wi;
            if (estimate) {
                if (e > long_t)
                    wi = long_t / e;
                else if (e < neg_short)
                    wi = neg_short / e;
                else
                    wi = 1.0;
                w[i] = wi;
            } else {
                wi = w[i];
            }
            double jx = k * dx, jy = k * dy;
            double wjx = wi * jx, wjy = wi * jy;
            a11 += wjx * jx;
            a12 += wjx * jy;
            a22 += wjy * jy;
            g1 += wjx * e;
            g2 += wjy * e;
        }
        if (has_prior) {
            a11 += ip2;
            a22 += ip2;
            g1 += ip2 * (x - px);
            g2 += ip2 * (y - py);
        }
        double m11 = a11 + ridge, m22 = a22 + ridge;
        double det = m11 * m22 - a12 * a12;
        double nx = x - (m22 * g1 - a12 * g2) / det;
        double ny = y - (m11 * g2 - a12 * g1) / det;
        if (bx0 > nx)
            nx = bx0;
        if (bx1 < nx)
            nx = bx1;
        if (by0 > ny)
            ny = by0;
        if (by1 < ny)
            ny = by1;
        double moved;
        if (hypot_of(nx - x, ny - y, &moved))
            return NULL;
        x = nx;
        y = ny;
        if (moved < STEP_TOLERANCE_M)
            break;
    }
    PyObject *wt = PyTuple_New(n);
    if (wt == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyFloat_FromDouble(w[i]);
        if (v == NULL) {
            Py_DECREF(wt);
            return NULL;
        }
        PyTuple_SET_ITEM(wt, i, v);
    }
    if (weights_only)
        return Py_BuildValue("(dddN(ddd))", x, y, 0.0, wt, 0.0, 0.0, 0.0);

    /* covariance of the measurement alone, inflated when residuals disagree */
    double chi2 = 0.0, h11 = 0.0, h12 = 0.0, h22 = 0.0;
    for (Py_ssize_t i = 0; i < n; i++) {
        residual(&terms[i], x, y, eps2, &e, &k, &dx, &dy);
        double wi = w[i];
        double jx = k * dx, jy = k * dy;
        double wjx = wi * jx, wjy = wi * jy;
        h11 += wjx * jx;
        h12 += wjx * jy;
        h22 += wjy * jy;
        chi2 += wi * e * e;
    }
    Py_ssize_t dof = n - 2 > 0 ? n - 2 : 0;
    double scale = (chi2 + 2.0) / ((double)dof + 2.0);
    h11 += ridge;
    h22 += ridge;
    double det = h11 * h22 - h12 * h12;
    double vx = h22 / det * scale, vxy = -h12 / det * scale, vy = h11 / det * scale;
    if (has_lin) { /* _posterior_geometry */
        double lx = lin_at[0], ly = lin_at[1], pvx = lin_at[2], pvy = lin_at[3];
        double mx = pvx + vx > 0 ? lx + pvx / (pvx + vx) * (x - lx) : x;
        double my = pvy + vy > 0 ? ly + pvy / (pvy + vy) * (y - ly) : y;
        double q11 = 0.0, q12 = 0.0, q22 = 0.0;
        for (Py_ssize_t i = 0; i < n; i++) {
            const Term *t = &terms[i];
            double ddx = mx - t->x, ddy = my - t->y;
            double r2 = ddx * ddx + ddy * ddy + eps2;
            double kk = t->lin ? -t->s / sqrt(r2) : -t->s / r2;
            double jx = kk * ddx, jy = kk * ddy;
            double wi = w[i];
            q11 += wi * jx * jx;
            q12 += wi * jx * jy;
            q22 += wi * jy * jy;
        }
        q11 += ridge;
        q22 += ridge;
        double qdet = q11 * q22 - q12 * q12;
        vx = q22 / qdet * scale;
        vxy = -q12 / qdet * scale;
        vy = q11 / qdet * scale;
    }
    double tot = vx + vy;
    double acc = sqrt(1e-6 > tot ? 1e-6 : tot);
    return Py_BuildValue("(dddN(ddd))", x, y, acc, wt, vx, vxy, vy);
}

static PyObject *configure(PyObject *self, PyObject *args) {
    double min_distance, min_rel_sigma, step_tolerance;
    int max_iterations;
    if (!PyArg_ParseTuple(args, "dddi", &min_distance, &min_rel_sigma, &step_tolerance, &max_iterations))
        return NULL;
    MIN_DISTANCE_M = min_distance;
    MIN_REL_SIGMA = min_rel_sigma;
    STEP_TOLERANCE_M = step_tolerance;
    MAX_ITERATIONS = max_iterations;
    configured = 1;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"robust", (PyCFunction)(void (*)(void))robust, METH_FASTCALL, "multilateration._robust without edge_mean."},
    {"configure", configure, METH_VARARGS,
     "configure(MIN_DISTANCE_M, MIN_REL_SIGMA, STEP_TOLERANCE_M, MAX_ITERATIONS): the solver's constants."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_solver",
                                    "The robust multilateration solver's inner loop, compiled.", -1, methods};

PyMODINIT_FUNC PyInit__solver(void) {
    PyObject *math = PyImport_ImportModule("math");
    if (math == NULL)
        return NULL;
    py_hypot = PyObject_GetAttrString(math, "hypot");
    Py_DECREF(math);
    if (py_hypot == NULL)
        return NULL;
    return PyModule_Create(&module);
}
