/*
 * example.c -- simulate the model ${NAME} from a CSV of inputs (uses only model.h).
 *
 *   ${p}_example [options] INPUTS.csv [OUTPUT.csv]
 *
 * INPUTS.csv: a header row, then one row per sample time. The time column is the one named time,
 * time_h or t (else the first column); input columns are found by name (missing ones take their
 * default). Other columns are ignored, except observable columns with --gradient. Blank cells are
 * missing values. OUTPUT.csv (default: standard output): the time column and the states, %.17g.
 *
 * Options:
 *   --rtol R, --atol A          tolerances (default 1e-8, 1e-10)
 *   --method auto|explicit|stiff
 *   --param NAME=VALUE          override a parameter (repeatable)
 *   --x0 NAME=VALUE             override an initial state (repeatable)
 *   --gradient                  also print to stderr the loss and its gradient with respect to [x0, p]
 *                               against the CSV's observable columns, by forward sensitivities and
 *                               by the adjoint
 * Exit status: 0 on success, 1 on a solver failure, 2 on bad input.
 */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int ncol, nrow;
    char **names;     /* ncol */
    double *values;   /* nrow*ncol, NaN = blank */
} table;

static void free_table(table *tb)
{
    int j;
    if (tb->names)
        for (j = 0; j < tb->ncol; j++) free(tb->names[j]);
    free(tb->names);
    free(tb->values);
    memset(tb, 0, sizeof *tb);
}

static char *read_file(const char *path)
{
    FILE *fh = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    if (!fh) return NULL;
    for (;;) {
        if (cap - len < 4097) {
            char *nb;
            cap = cap ? 2 * cap : 65536;
            nb = (char *)realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(fh);
                return NULL;
            }
            buf = nb;
        }
        n = fread(buf + len, 1, cap - len - 1, fh);
        len += n;
        if (n == 0) break;
    }
    fclose(fh);
    buf[len] = '\0';
    return buf;
}

static char *trim(char *s)
{
    char *e;
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '"') s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '"')) *--e = '\0';
    return s;
}

static char *dup_string(const char *s)
{
    char *d = (char *)malloc(strlen(s) + 1);
    if (d) strcpy(d, s);
    return d;
}

static int count_cells(const char *line)
{
    int n = 1;
    for (; *line; line++)
        if (*line == ',') n++;
    return n;
}

/* Split line in place at commas into at most max cells; returns the number of cells. */
static int split(char *line, char **cells, int max)
{
    int n = 0;
    char *s = line;
    for (;;) {
        char *c = strchr(s, ',');
        if (n < max) cells[n] = s;
        n++;
        if (!c) break;
        *c = '\0';
        s = c + 1;
    }
    return n;
}

static int parse_csv(const char *path, table *tb)
{
    char *text = read_file(path), *line, *next;
    char **cells = NULL;
    int lineno = 0, cap = 0;
    memset(tb, 0, sizeof *tb);
    if (!text) {
        fprintf(stderr, "%s: cannot read file\n", path);
        return 2;
    }
    for (line = text; line; line = next) {
        char *nl = strchr(line, '\n'), *s;
        int n, j;
        next = nl ? nl + 1 : NULL;
        if (nl) *nl = '\0';
        lineno++;
        s = trim(line);
        if (*s == '\0' || *s == '#') continue;
        if (!tb->names) {
            int count = count_cells(s);
            tb->names = (char **)calloc((size_t)count, sizeof(char *));
            cells = (char **)calloc((size_t)count, sizeof(char *));
            if (!tb->names || !cells) goto nomem;
            tb->ncol = count;
            split(s, cells, count);
            for (j = 0; j < count; j++)
                if (!(tb->names[j] = dup_string(trim(cells[j])))) goto nomem;
            continue;
        }
        n = split(s, cells, tb->ncol);
        if (n > tb->ncol) {
            fprintf(stderr, "%s:%d: %d cells but %d columns\n", path, lineno, n, tb->ncol);
            goto fail;
        }
        if (tb->nrow == cap) {
            double *nv;
            cap = cap ? 2 * cap : 1024;
            nv = (double *)realloc(tb->values, (size_t)cap * tb->ncol * sizeof(double));
            if (!nv) goto nomem;
            tb->values = nv;
        }
        for (j = 0; j < tb->ncol; j++) {
            double *dst = tb->values + (size_t)tb->nrow * tb->ncol + j;
            char *c = j < n ? trim(cells[j]) : (char *)"", *end;
            *dst = NAN;
            if (*c == '\0' || strcmp(c, "NA") == 0 || strcmp(c, "nan") == 0 || strcmp(c, "NaN") == 0) continue;
            *dst = strtod(c, &end);
            if (*trim(end) != '\0') {
                fprintf(stderr, "%s:%d: %s: not a number: '%s'\n", path, lineno, tb->names[j], c);
                goto fail;
            }
        }
        tb->nrow++;
    }
    free(cells);
    free(text);
    if (!tb->names || tb->nrow == 0) {
        fprintf(stderr, "%s: no header or no data rows\n", path);
        free_table(tb);
        return 2;
    }
    return 0;
nomem:
    fprintf(stderr, "out of memory\n");
fail:
    free(cells);
    free(text);
    free_table(tb);
    return 2;
}

static int column(const table *tb, const char *name)
{
    int j;
    for (j = 0; j < tb->ncol; j++)
        if (strcmp(tb->names[j], name) == 0) return j;
    return -1;
}

static int lookup(const char *const *names, int n, const char *name, size_t len)
{
    int k;
    for (k = 0; k < n; k++)
        if (strlen(names[k]) == len && strncmp(names[k], name, len) == 0) return k;
    return -1;
}

/* NAME=VALUE into values[index of NAME in names]. */
static int assign(const char *arg, const char *const *names, int n, double *values, const char *what)
{
    const char *eq = strchr(arg, '=');
    char *end;
    int k;
    if (!eq) {
        fprintf(stderr, "expected NAME=VALUE for %s, got '%s'\n", what, arg);
        return 2;
    }
    k = lookup(names, n, arg, (size_t)(eq - arg));
    if (k < 0) {
        fprintf(stderr, "unknown %s in '%s'\n", what, arg);
        return 2;
    }
    values[k] = strtod(eq + 1, &end);
    if (end == eq + 1 || *end != '\0' || !isfinite(values[k])) {
        fprintf(stderr, "not a finite number in '%s'\n", arg);
        return 2;
    }
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: ${p}_example [--rtol R] [--atol A] [--method auto|explicit|stiff] "
                    "[--param NAME=VALUE]... [--x0 NAME=VALUE]... [--gradient] INPUTS.csv [OUTPUT.csv]\n");
}

static void print_gradient(const char *method, double loss, const double *grad)
{
    int j;
    fprintf(stderr, "loss (%s) = %.17g\n", method, loss);
    for (j = 0; j < ${P}_NTHETA; j++)
        fprintf(stderr, "  dL/d%s%s = %.17g\n", j < ${P}_NX ? "x0." : "",
                j < ${P}_NX ? ${P}_STATE_NAMES[j] : ${P}_PARAMETER_NAMES[j - ${P}_NX], grad[j]);
}

int main(int argc, char **argv)
{
    ${p}_options opt;
    ${p}_stats stats;
    table tb;
    double p[${P}_NP + 1], x0[${P}_NX + 1];
    double *times = NULL, *values = NULL, *u = NULL, *X = NULL, *data = NULL;
    const char *in = NULL, *outp = NULL;
    int i, j, k, rc = 0, tcol, gradient = 0, nt;
    FILE *out;

    ${p}_default_options(&opt);
    memcpy(p, ${P}_DEFAULT_PARAMETERS, sizeof p);
    memcpy(x0, ${P}_DEFAULT_X0, sizeof x0);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        if (strcmp(a, "--rtol") == 0 && has_value) opt.rtol = atof(argv[++i]);
        else if (strcmp(a, "--atol") == 0 && has_value) opt.atol = atof(argv[++i]);
        else if (strcmp(a, "--method") == 0 && has_value) {
            const char *m = argv[++i];
            if (strcmp(m, "auto") == 0) opt.method = ${P}_METHOD_AUTO;
            else if (strcmp(m, "explicit") == 0) opt.method = ${P}_METHOD_EXPLICIT;
            else if (strcmp(m, "stiff") == 0) opt.method = ${P}_METHOD_STIFF;
            else { usage(); return 2; }
        } else if (strcmp(a, "--param") == 0 && has_value) {
            if (assign(argv[++i], ${P}_PARAMETER_NAMES, ${P}_NP, p, "parameter")) return 2;
        } else if (strcmp(a, "--x0") == 0 && has_value) {
            if (assign(argv[++i], ${P}_STATE_NAMES, ${P}_NX, x0, "state")) return 2;
        } else if (strcmp(a, "--gradient") == 0) gradient = 1;
        else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) { usage(); return 0; }
        else if (a[0] == '-' && a[1] != '\0') { usage(); return 2; }
        else if (!in) in = a;
        else if (!outp) outp = a;
        else { usage(); return 2; }
    }
    if (!in) { usage(); return 2; }
    if (parse_csv(in, &tb)) return 2;
    nt = tb.nrow;
    tcol = column(&tb, "time");
    if (tcol < 0) tcol = column(&tb, "time_h");
    if (tcol < 0) tcol = column(&tb, "t");
    if (tcol < 0) tcol = 0;
    times = (double *)malloc((size_t)nt * sizeof(double));
    values = (double *)malloc(((size_t)nt * ${P}_NU + 1) * sizeof(double));
    u = (double *)malloc(((size_t)nt * ${P}_NU_INTERVAL + 1) * sizeof(double));
    X = (double *)malloc((size_t)nt * ${P}_NX * sizeof(double));
    if (!times || !values || !u || !X) { fprintf(stderr, "out of memory\n"); rc = 2; goto done; }
    for (i = 0; i < nt; i++) {
        times[i] = tb.values[(size_t)i * tb.ncol + tcol];
        if (!isfinite(times[i]) || (i > 0 && !(times[i] > times[i - 1]))) {
            fprintf(stderr, "%s: row %d: time must be finite and increase strictly\n", in, i + 1);
            rc = 2;
            goto done;
        }
    }
    for (k = 0; k < ${P}_NU; k++) {
        int c = column(&tb, ${P}_INPUT_NAMES[k]);
        if (c < 0 && !isfinite(${P}_DEFAULT_INPUTS[k])) {
            fprintf(stderr, "%s: missing input column '%s' (it has no default)\n", in, ${P}_INPUT_NAMES[k]);
            rc = 2;
            goto done;
        }
        for (i = 0; i < nt; i++) {
            double v = c < 0 ? ${P}_DEFAULT_INPUTS[k] : tb.values[(size_t)i * tb.ncol + c];
            if (!isfinite(v) && (i < nt - 1 || ${P}_INPUT_IS_LINEAR[k])) {
                fprintf(stderr, "%s: row %d: missing value of input '%s'\n", in, i + 1, ${P}_INPUT_NAMES[k]);
                rc = 2;
                goto done;
            }
            values[(size_t)i * ${P}_NU + k] = isfinite(v) ? v : 0.0;
        }
    }
    if ((rc = ${p}_interval_inputs(nt, times, values, u))) {
        fprintf(stderr, "invalid inputs: %s\n", ${p}_strerror(rc));
        rc = 2;
        goto done;
    }
    rc = ${p}_simulate(&opt, nt, times, x0, p, u, X, &stats);
    if (rc) {
        fprintf(stderr, "solver failed in interval %d at t=%g: %s\n", stats.fail_interval, stats.fail_t,
                ${p}_strerror(rc));
        rc = 1;
        goto done;
    }
    out = (outp && strcmp(outp, "-") != 0) ? fopen(outp, "w") : stdout;
    if (!out) { fprintf(stderr, "%s: cannot write\n", outp); rc = 2; goto done; }
    fprintf(out, "%s", tb.names[tcol]);
    for (k = 0; k < ${P}_NX; k++) fprintf(out, ",%s", ${P}_STATE_NAMES[k]);
    fprintf(out, "\n");
    for (i = 0; i < nt; i++) {
        fprintf(out, "%.17g", times[i]);
        for (k = 0; k < ${P}_NX; k++) fprintf(out, ",%.17g", X[(size_t)i * ${P}_NX + k]);
        fprintf(out, "\n");
    }
    if (out != stdout && fclose(out) != 0) { fprintf(stderr, "%s: write failed\n", outp); rc = 2; goto done; }
    fprintf(stderr, "%d samples, %ld steps (%ld rejected), method at the end: %s\n", nt, stats.n_accepted,
            stats.n_rejected, stats.method_used == ${P}_METHOD_STIFF ? "stiff" : "explicit");
    if (gradient) {
        double loss, grad[${P}_NTHETA + 1];
        data = (double *)malloc(((size_t)nt * ${P}_NY + 1) * sizeof(double));
        if (!data) { fprintf(stderr, "out of memory\n"); rc = 2; goto done; }
        for (k = 0; k < ${P}_NY; k++) {
            int c = column(&tb, ${P}_OBSERVABLE_NAMES[k]);
            for (i = 0; i < nt; i++) data[(size_t)i * ${P}_NY + k] = c < 0 ? NAN : tb.values[(size_t)i * tb.ncol + c];
        }
        rc = ${p}_loss(&opt, nt, times, x0, p, u, data, NULL, &loss, &stats);
        if (rc) {
            fprintf(stderr, "loss failed: %s\n", ${p}_strerror(rc));
            rc = 1;
            goto done;
        }
        fprintf(stderr, "loss (one forward solve) = %.17g\n", loss);
        for (j = 0; j < 2; j++) {
            rc = j == 0 ? ${p}_loss_forward(&opt, nt, times, x0, p, u, data, NULL, &loss, grad, NULL, NULL, &stats)
                        : ${p}_loss_adjoint(&opt, nt, times, x0, p, u, data, NULL, &loss, grad, &stats);
            if (rc) {
                fprintf(stderr, "gradient failed: %s\n", ${p}_strerror(rc));
                rc = 1;
                goto done;
            }
            print_gradient(j == 0 ? "forward" : "adjoint", loss, grad);
        }
    }
done:
    free(times);
    free(values);
    free(u);
    free(X);
    free(data);
    free_table(&tb);
    return rc;
}
