/* alloc.c - from layers, sensitivities, a profile and budgets to the best
 * plan (see alloc.h): choices, pins, ranges, ties, budget parsing and
 * resolution, the feasibility-first check, dominance pruning, and the
 * multiple-choice knapsack handed to bp_mckp_solve. */
#include "alloc.h"
#include "status.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NB (BP_SENS_MAX_BITS + 1)

/* --- budgets --------------------------------------------------------- */

static const char *const kind_names[BP_BUDGET_KINDS] = {"size", "latency",
                                                        "bops"};

const char *bp_budget_kind_name(bp_budget_kind k)
{
    return k >= 0 && k < BP_BUDGET_KINDS ? kind_names[k] : "?";
}

struct unit {
    const char *name;
    double scale;
};

static const struct unit size_units[] = {
    {"B", 1}, {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0},
    {"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {NULL, 0}};
static const struct unit time_units[] = {
    {"s", 1}, {"ms", 1e-3}, {"us", 1e-6}, {"\xc2\xb5s", 1e-6}, {"ns", 1e-9},
    {NULL, 0}};
static const struct unit bops_units[] = {
    {"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"P", 1e15},
    {NULL, 0}};

static const struct unit *units_of(bp_budget_kind k)
{
    return k == BP_BUDGET_SIZE ? size_units
         : k == BP_BUDGET_LATENCY ? time_units : bops_units;
}

static const struct unit *find_unit(bp_budget_kind k, const char *u)
{
    for (const struct unit *x = units_of(k); x->name; x++)
        if (!strcmp(x->name, u))
            return x;
    return NULL;
}

int bp_budget_parse(const char *spec, bp_budget *out)
{
    bp_budget b;
    memset(&b, 0, sizeof b);
    if (!spec || strlen(spec) >= sizeof b.text)
        return bp_fail(BP_EINVAL, "--budget: expected KIND=VALUE (size=1.5MiB, "
                       "latency=0.8ms, bops=3.2G, size=25%%, ...)");
    strcpy(b.text, spec);
    char *eq = strchr(b.text, '=');
    if (!eq)
        return bp_fail(BP_EINVAL, "--budget %s: expected KIND=VALUE with KIND "
                       "size, latency or bops", spec);
    size_t kl = (size_t)(eq - b.text);
    int kind = -1;
    for (int k = 0; k < BP_BUDGET_KINDS; k++)
        if (strlen(kind_names[k]) == kl && !strncmp(b.text, kind_names[k], kl))
            kind = k;
    if (kind < 0)
        return bp_fail(BP_EINVAL, "--budget %s: unknown kind '%.*s' (expected "
                       "size, latency or bops)", spec, (int)kl, b.text);
    b.kind = (bp_budget_kind)kind;
    b.value_text = eq + 1;
    const char *v = eq + 1;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    /* strtod also reads hexadecimal: 0x10p10 is no budget anyone means */
    int hex = strspn(v, "+-0") > 0 && strpbrk(v, "xX") != NULL &&
              strpbrk(v, "xX") < end;
    if (end == v || errno || !isfinite(x) || isspace((unsigned char)*v) || hex)
        return bp_fail(BP_EINVAL, "--budget %s: expected a number after '=', "
                       "as in %s", spec,
                       kind == BP_BUDGET_SIZE ? "size=1.5MiB or size=25%"
                       : kind == BP_BUDGET_LATENCY ? "latency=0.8ms or "
                                                     "latency=60%"
                                                   : "bops=3.2G or bops=50%");
    if (!(x > 0))
        return bp_fail(BP_EINVAL, "--budget %s: expected a positive amount",
                       spec);
    if (strlen(end) >= sizeof b.unit)
        return bp_fail(BP_EINVAL, "--budget %s: unknown unit '%s'", spec, end);
    strcpy(b.unit, end);
    if (!strcmp(end, "%")) {
        b.form = BP_BUDGET_PERCENT;
    } else if (!strcmp(end, "x")) {
        b.form = BP_BUDGET_TIMES;
    } else if (!*end && kind != BP_BUDGET_LATENCY) {
        b.form = BP_BUDGET_ABS;     /* bytes, BOPs */
    } else {
        const struct unit *u = find_unit(b.kind, end);
        if (!u) {
            const char *hint =
                kind == BP_BUDGET_SIZE
                    ? (!strcmp(end, "K") || !strcmp(end, "M") ||
                       !strcmp(end, "G")
                           ? "ambiguous: write KiB/MiB/GiB (powers of 2) or "
                             "kB/MB/GB (powers of 10)"
                           : "expected B, KiB, MiB, GiB, kB, MB, GB, % (of "
                             "the float32 model) or x (compression)")
                : kind == BP_BUDGET_LATENCY
                    ? "expected s, ms, us, ns, % (of the all-highest-"
                      "precision plan) or x (speed-up)"
                    : "expected k, M, G, T, P, % (of the all-highest-"
                      "precision plan) or x (reduction)";
            return bp_fail(BP_EINVAL, "--budget %s: unit '%s': %s", spec,
                           *end ? end : "(none)", hint);
        }
        b.form = BP_BUDGET_ABS;
        x *= u->scale;
    }
    if (b.form == BP_BUDGET_PERCENT && x > 1e6)
        return bp_fail(BP_EINVAL, "--budget %s: percentage over 1e6", spec);
    b.amount = x;
    b.value_text = b.text + (v - b.text);
    *out = b;
    out->value_text = out->text + (v - b.text);
    return BP_OK;
}

void bp_budget_format(char *buf, size_t n, bp_budget_kind k, double v,
                      const char *unit, int digits)
{
    if (isnan(v)) {
        snprintf(buf, n, "-");
        return;
    }
    const struct unit *u = unit && *unit ? find_unit(k, unit) : NULL;
    if (!u) {
        const struct unit *all = units_of(k);
        double a = fabs(v);
        if (k == BP_BUDGET_SIZE) {
            u = a < 1024 ? &all[0] : a < 1048576.0 ? &all[1]
              : a < 1073741824.0 ? &all[2] : &all[3];
        } else if (k == BP_BUDGET_LATENCY) {
            u = a >= 1 ? &all[0] : a >= 1e-3 ? &all[1] : a >= 1e-6 ? &all[2]
                                                               : &all[4];
        } else {
            u = a >= 1e15 ? &all[5] : a >= 1e12 ? &all[4] : a >= 1e9 ? &all[3]
              : a >= 1e6 ? &all[2] : &all[0];
            if (a < 1e3) {
                snprintf(buf, n, "%.*g", digits, v);
                return;
            }
        }
    }
    snprintf(buf, n, "%.*g%s", digits, v / u->scale, u->name);
    if (strchr(buf, 'e') && fabs(v / u->scale) >= 1)   /* 190005812B */
        snprintf(buf, n, "%.0f%s", v / u->scale, u->name);
}

/* Formats a (value, budget) pair with just enough digits to tell them
 * apart (3 at least): "1.31MiB" against "1.0MiB". */
static void format_apart(char *vb, char *cb, size_t n, bp_budget_kind k,
                         double v, double cap, const char *unit)
{
    for (int d = 3; d <= 17; d++) {
        bp_budget_format(vb, n, k, v, unit, d);
        bp_budget_format(cb, n, k, cap, unit, d);
        if (strcmp(vb, cb))
            return;
    }
}

/* --- the problem ------------------------------------------------------ */

enum { K_SIZE = BP_BUDGET_SIZE, K_LAT = BP_BUDGET_LATENCY,
       K_BOPS = BP_BUDGET_BOPS };

typedef struct choice {
    int w, a;
    double obj;
    double cost[BP_BUDGET_KINDS];   /* bytes (without fixed), s, BOPs */
} choice;

typedef struct alayer {
    bp_layer_facts f;
    char *name, *op;                /* owned copies behind f.name, f.op */
    unsigned mask;                  /* allowed weight widths */
    unsigned cand;                  /* candidates before pins and ranges */
    choice at[NB];                  /* priced at every candidate width */
} alayer;

typedef struct agroup {
    int n_members, first;           /* members: layers with group_of == g */
    int n;                          /* choices */
    choice ch[NB];                  /* summed over members, w ascending */
} agroup;

struct bp_alloc {
    int n_layers, n_groups;
    alayer *L;
    agroup *G;
    int *group_of;                  /* (n_layers) */
    double float_bytes, fixed_bytes;
    double ref_high[BP_BUDGET_KINDS];
    int has_latency;
};

void bp_alloc_opts_default(bp_alloc_opts *o)
{
    memset(o, 0, sizeof *o);
    o->batch = 1;
}

void bp_alloc_free(bp_alloc **ap)
{
    if (!ap || !*ap)
        return;
    bp_alloc *a = *ap;
    for (int i = 0; i < a->n_layers; i++) {
        free(a->L[i].name);
        free(a->L[i].op);
    }
    free(a->L);
    free(a->G);
    free(a->group_of);
    free(a);
    *ap = NULL;
}

int bp_alloc_n_layers(const bp_alloc *a) { return a->n_layers; }
const char *bp_alloc_layer_name(const bp_alloc *a, int i) { return a->L[i].name; }
double bp_alloc_float_bytes(const bp_alloc *a) { return a->float_bytes; }
int bp_alloc_has_latency(const bp_alloc *a) { return a->has_latency; }

/* Name lookup through a sorted index (models have thousands of layers). */
typedef struct name_ix {
    const char *name;
    int i;
} name_ix;

static int cmp_ix(const void *x, const void *y)
{
    return strcmp(((const name_ix *)x)->name, ((const name_ix *)y)->name);
}

static int ix_find(const name_ix *ix, int n, const char *name)
{
    name_ix key = {name, 0};
    const name_ix *h = bsearch(&key, ix, (size_t)n, sizeof *ix, cmp_ix);
    return h ? h->i : -1;
}

static void mask_str(char *buf, size_t n, unsigned m)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int b = 1; b < NB; b++)
        if (m & (1u << b)) {
            int w = snprintf(buf + used, n - used, "%s%d", used ? "," : "", b);
            if (w < 0 || (size_t)w >= n - used)
                return;
            used += (size_t)w;
        }
    if (!used)
        snprintf(buf, n, "none");
}

/* Activation bits for weight bits w under the options (see alloc.h). */
static int act_bits(const bp_alloc_opts *o, int w)
{
    if (o->abits_follow)
        return w;
    if (!o->abits)
        return w > 8 ? w : 8;
    int widest = 0;
    for (int b = 1; b < NB; b++)
        if (o->abits & (1u << b)) {
            if (b >= w)
                return b;
            widest = b;
        }
    return widest;
}

static int find_layer(const bp_alloc *a, const name_ix *ix, const char *what,
                      const char *name)
{
    int i = ix_find(ix, a->n_layers, name);
    if (i < 0) {
        char list[256];
        size_t used = 0;
        list[0] = '\0';
        for (int k = 0; k < a->n_layers && k < 4; k++) {
            int w = snprintf(list + used, sizeof list - used, "%s%s",
                             k ? ", " : "", a->L[k].name);
            if (w < 0 || (size_t)w >= sizeof list - used)
                break;
            used += (size_t)w;
        }
        bp_fail(BP_EINVAL, "%s: no layer named '%s' (layers are weight "
                "initializer names: %s%s)", what, name, list,
                a->n_layers > 4 ? ", ..." : "");
    }
    return i;
}

/* Union-find over layers, for ties. */
static int uf_root(int *parent, int i)
{
    while (parent[i] != i) {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    return i;
}

int bp_alloc_new(bp_alloc **out, const bp_sens *sens, const char *sens_path,
                 const bp_layer_facts *facts, int n_facts,
                 const bp_model_facts *model, const bp_profile *prof,
                 const bp_alloc_opts *o)
{
    bp_alloc_opts def;
    if (!o) {
        bp_alloc_opts_default(&def);
        o = &def;
    }
    int n = facts ? n_facts : sens->n_layers, st = BP_OK;
    if (n < 1)
        return bp_fail(BP_EINVAL, "%s: no layers", sens_path);
    if (o->wbits & ~0x1fffeu || o->abits & ~0x1fffeu)
        return bp_fail(BP_EINVAL, "--bits/--abits: widths must be 1..16");
    bp_alloc *a = calloc(1, sizeof *a);
    name_ix *six = malloc((size_t)sens->n_layers * sizeof *six);
    name_ix *lix = malloc((size_t)n * sizeof *lix);
    int *parent = malloc((size_t)n * sizeof *parent);
    int *sidx = malloc((size_t)n * sizeof *sidx);
    if (!a || !six || !lix || !parent || !sidx ||
        !(a->L = calloc((size_t)n, sizeof *a->L)) ||
        !(a->group_of = malloc((size_t)n * sizeof *a->group_of))) {
        st = bp_fail(BP_ENOMEM, "allocation: out of memory");
        goto out;
    }
    a->n_layers = n;
    a->has_latency = bp_profile_has_latency(prof);
    int64_t batch = o->batch > 0 ? o->batch : 1;

    /* 1. layers and their facts, matched to the sensitivity file by name */
    for (int i = 0; i < sens->n_layers; i++)
        six[i] = (name_ix){sens->layers[i].name, i};
    qsort(six, (size_t)sens->n_layers, sizeof *six, cmp_ix);
    for (int i = 0; i < n; i++) {
        alayer *l = &a->L[i];
        if (facts) {
            l->f = facts[i];
            sidx[i] = ix_find(six, sens->n_layers, facts[i].name);
            if (sidx[i] < 0) {
                st = bp_fail(BP_EINVAL, "%s: no entry for the model's layer "
                             "'%s' (is it the sensitivity file of this "
                             "model?)", sens_path, facts[i].name);
                goto out;
            }
        } else {
            const bp_sens_layer *s = &sens->layers[i];
            sidx[i] = i;
            memset(&l->f, 0, sizeof l->f);
            l->f.in_tensor = l->f.in_root = -1;
            l->f.numel = s->numel;
            l->f.macs = s->macs;
            l->f.out_channels = s->out_channels;
            l->f.in_numel = s->in_numel;
            l->f.out_numel = s->out_numel;
        }
        const bp_sens_layer *s = &sens->layers[sidx[i]];
        if (!(l->name = strdup(s->name)) ||
            !(l->op = strdup(facts && facts[i].op ? facts[i].op
                             : s->op ? s->op : ""))) {
            st = bp_fail(BP_ENOMEM, "allocation: out of memory");
            goto out;
        }
        l->f.name = l->name;
        l->f.op = l->op;
        if (facts && s->numel != facts[i].numel) {
            st = bp_fail(BP_EINVAL, "%s: layer '%s' has numel %lld; the model's "
                         "weight has %lld (is it the sensitivity file of this "
                         "model?)", sens_path, s->name, (long long)s->numel,
                         (long long)facts[i].numel);
            goto out;
        }
        lix[i] = (name_ix){l->name, i};
    }
    if (facts && sens->n_layers != n) {
        /* every model layer matched; so the file has extra ones */
        for (int k = 0; k < sens->n_layers; k++) {
            int found = 0;
            for (int i = 0; i < n && !found; i++)
                found = sidx[i] == k;
            if (!found) {
                st = bp_fail(BP_EINVAL, "%s: layers[%d] '%s' is not a layer of "
                             "the model", sens_path, k, sens->layers[k].name);
                goto out;
            }
        }
    }
    qsort(lix, (size_t)n, sizeof *lix, cmp_ix);

    /* 2. candidate widths, their costs and Omega */
    for (int i = 0; i < n; i++) {
        alayer *l = &a->L[i];
        const bp_sens_layer *s = &sens->layers[sidx[i]];
        unsigned have = 0;
        for (int b = 1; b < NB; b++)
            if (s->has_bits[b])
                have |= 1u << b;
        if (o->wbits && (o->wbits & ~have)) {
            char want[64], got[64];
            mask_str(want, sizeof want, o->wbits & ~have);
            mask_str(got, sizeof got, have);
            st = bp_fail(BP_EINVAL, "%s: layers[%d] '%s' has no perturbation "
                         "for %s bits, which --bits asks for (it has %s)",
                         sens_path, sidx[i], s->name, want, got);
            goto out;
        }
        l->cand = l->mask = o->wbits ? o->wbits : have;
        if (o->metric == BP_METRIC_EIG && !isfinite(s->top_eig)) {
            st = bp_fail(BP_EINVAL, "%s: layers[%d].top_eigenvalue.value: "
                         "null, but --metric eig needs the top eigenvalue of "
                         "every layer", sens_path, sidx[i]);
            goto out;
        }
        if (o->metric == BP_METRIC_LOSS && !s->has_loss_increase) {
            st = bp_fail(BP_EINVAL, "%s: layers[%d] '%s' has no loss_increase, "
                         "which --metric loss needs (bitplan sensitivity "
                         "--loss-increase makes it)", sens_path,
                         sidx[i], s->name);
            goto out;
        }
        for (int b = 1; b < NB; b++) {
            if (!(l->mask & (1u << b)))
                continue;
            choice *c = &l->at[b];
            bp_cost cost;
            c->w = b;
            c->a = act_bits(o, b);
            if ((st = bp_cost_eval(prof, &l->f, c->w, c->a, batch, &cost)))
                goto out;
            c->cost[K_SIZE] = cost.bytes;
            c->cost[K_LAT] = cost.latency_s;
            c->cost[K_BOPS] = cost.bops;
            c->obj = o->metric == BP_METRIC_EIG
                         ? s->top_eig / (double)s->numel * s->perturbation[b]
                     : o->metric == BP_METRIC_LOSS ? 2.0 * s->loss_increase[b]
                                                   : s->omega[b];
        }
    }

    /* 3. reference totals: the float32 model, the all-highest plan */
    if (model && model->float_params > 0) {
        a->float_bytes = 4.0 * (double)model->float_params;
        a->fixed_bytes = 4.0 * (double)model->other_params +
                         (double)model->const_bytes;
    } else if (!facts && sens->float_params > 0) {
        a->float_bytes = 4.0 * (double)sens->float_params;
        a->fixed_bytes = 4.0 * (double)sens->other_params +
                         (double)sens->const_bytes;
    } else {
        /* unknown: the layers' weights and one bias per channel */
        for (int i = 0; i < n; i++)
            a->float_bytes += 4.0 * (double)(a->L[i].f.numel +
                                             a->L[i].f.out_channels);
    }
    a->ref_high[K_SIZE] = a->fixed_bytes;
    for (int i = 0; i < n; i++) {
        int hb = 0;
        for (int b = 1; b < NB; b++)
            if (a->L[i].cand & (1u << b))
                hb = b;
        for (int k = 0; k < BP_BUDGET_KINDS; k++)
            a->ref_high[k] += a->L[i].at[hb].cost[k];
    }

    /* 4. pins, ranges, keep-first-last */
    for (int r = 0; r < o->n_ranges; r++) {
        const bp_alloc_range *rg = &o->ranges[r];
        char what[160];
        if (rg->is_pin)
            snprintf(what, sizeof what, "--pin %s=%d", rg->name, rg->lo);
        else
            snprintf(what, sizeof what, "--bits-range %s=%d:%d", rg->name,
                     rg->lo, rg->hi);
        int i = find_layer(a, lix, what, rg->name);
        if (i < 0) {
            st = BP_EINVAL;
            goto out;
        }
        if (rg->lo < 1 || rg->hi > 16 || rg->lo > rg->hi) {
            st = bp_fail(BP_EINVAL, "%s: expected bits within 1..16, low <= "
                         "high", what);
            goto out;
        }
        unsigned m = 0;
        for (int b = rg->lo; b <= rg->hi; b++)
            m |= 1u << b;
        if (!(a->L[i].mask & m)) {
            char has[64];
            mask_str(has, sizeof has, a->L[i].mask);
            st = bp_fail(BP_EINVAL, "%s: layer '%s' can only take %s bits "
                         "here (its candidates, narrowed by other pins and "
                         "ranges)", what, rg->name, has);
            goto out;
        }
        a->L[i].mask &= m;
    }
    if (o->keep_first_last) {
        int kb = o->keep_first_last;
        for (int e = 0; e < 2; e++) {
            int i = e ? n - 1 : 0;
            if (kb < 1 || kb > 16 || !(a->L[i].mask & (1u << kb))) {
                char has[64];
                mask_str(has, sizeof has, a->L[i].mask);
                st = bp_fail(BP_EINVAL, "--keep-first-last %d: the %s layer "
                             "'%s' can only take %s bits (its candidates, "
                             "narrowed by pins and ranges)", kb,
                             e ? "last" : "first", a->L[i].name, has);
                goto out;
            }
            a->L[i].mask = 1u << kb;
        }
    }

    /* 5. ties merge layers into groups sharing one width */
    for (int i = 0; i < n; i++)
        parent[i] = i;
    for (int t = 0; t < o->n_ties; t++) {
        const bp_alloc_tie *tie = &o->ties[t];
        char what[256];
        size_t used = 0;
        used += (size_t)snprintf(what, sizeof what, "--tie ");
        for (int k = 0; k < tie->n && used < sizeof what; k++)
            used += (size_t)snprintf(what + used, sizeof what - used, "%s%s",
                                     k ? "," : "", tie->names[k]);
        if (tie->n < 2) {
            st = bp_fail(BP_EINVAL, "%s: expected two or more layer names, "
                         "comma-separated", what);
            goto out;
        }
        int first = -1;
        for (int k = 0; k < tie->n; k++) {
            int i = find_layer(a, lix, what, tie->names[k]);
            if (i < 0) {
                st = BP_EINVAL;
                goto out;
            }
            if (first < 0)
                first = i;
            int ra = uf_root(parent, first), rb = uf_root(parent, i);
            if (ra != rb)
                parent[ra > rb ? ra : rb] = ra < rb ? ra : rb;
        }
        unsigned common = 0x1fffeu;
        for (int k = 0; k < tie->n; k++)
            common &= a->L[ix_find(lix, n, tie->names[k])].mask;
        if (!common) {
            char msg[512];
            size_t mu = 0;
            msg[0] = '\0';
            for (int k = 0; k < tie->n && k < 6; k++) {
                char has[64];
                mask_str(has, sizeof has, a->L[ix_find(lix, n, tie->names[k])].mask);
                int w = snprintf(msg + mu, sizeof msg - mu, "%s%s allows %s",
                                 k ? ", " : "", tie->names[k], has);
                if (w < 0 || (size_t)w >= sizeof msg - mu)
                    break;
                mu += (size_t)w;
            }
            st = bp_fail(BP_EINVAL, "%s: the layers share no bit-width (%s)",
                         what, msg);
            goto out;
        }
    }
    /* groups numbered in order of their first layer */
    int *gid = sidx;    /* reuse: root -> group */
    for (int i = 0; i < n; i++)
        gid[i] = -1;
    for (int i = 0; i < n; i++) {
        int r = uf_root(parent, i);
        if (gid[r] < 0)
            gid[r] = a->n_groups++;
        a->group_of[i] = gid[r];
    }
    if (!(a->G = calloc((size_t)a->n_groups, sizeof *a->G))) {
        st = bp_fail(BP_ENOMEM, "allocation: out of memory");
        goto out;
    }
    unsigned *gmask = (unsigned *)parent;   /* reuse: group -> widths */
    for (int g = 0; g < a->n_groups; g++)
        gmask[g] = 0x1fffeu;
    for (int i = 0; i < n; i++) {
        agroup *g = &a->G[a->group_of[i]];
        if (!g->n_members++)
            g->first = i;
        gmask[a->group_of[i]] &= a->L[i].mask;
    }
    for (int g = 0; g < a->n_groups; g++) {
        if (!gmask[g]) {
            /* ties chained through a shared layer (A,B and B,C) */
            st = bp_fail(BP_EINVAL, "--tie: the layers tied with '%s' share "
                         "no bit-width (check their pins and ranges)",
                         a->L[a->G[g].first].name);
            goto out;
        }
        for (int b = 1; b < NB; b++)
            if (gmask[g] & (1u << b)) {
                choice *c = &a->G[g].ch[a->G[g].n++];
                memset(c, 0, sizeof *c);
                c->w = b;
            }
    }
    for (int i = 0; i < n; i++) {
        agroup *g = &a->G[a->group_of[i]];
        for (int c = 0; c < g->n; c++) {
            const choice *lc = &a->L[i].at[g->ch[c].w];
            g->ch[c].a = lc->a;   /* same rule for every member */
            g->ch[c].obj += lc->obj;
            for (int k = 0; k < BP_BUDGET_KINDS; k++)
                g->ch[c].cost[k] += lc->cost[k];
        }
    }
    *out = a;
    a = NULL;
out:
    free(six);
    free(lix);
    free(parent);
    free(sidx);
    bp_alloc_free(&a);
    return st;
}

int bp_alloc_resolve(const bp_alloc *a, const bp_budget *b, double *value)
{
    if (b->kind == BP_BUDGET_LATENCY && !a->has_latency)
        return bp_fail(BP_EINVAL, "--budget %s: the profile models no latency "
                       "(choose a hardware profile such as nvidia-t4)",
                       b->text);
    double ref = b->kind == BP_BUDGET_SIZE ? a->float_bytes
                                           : a->ref_high[b->kind];
    switch (b->form) {
    case BP_BUDGET_ABS: *value = b->amount; break;
    case BP_BUDGET_PERCENT: *value = ref * b->amount / 100.0; break;
    case BP_BUDGET_TIMES: *value = ref / b->amount; break;
    }
    return BP_OK;
}

/* The extreme total of kind k over the groups' choices (without fixed
 * bytes), summed in group order as bp_mckp_cost_range does. */
static double extreme(const bp_alloc *a, int k, int want_max, int *pick)
{
    double t = 0;
    for (int g = 0; g < a->n_groups; g++) {
        const agroup *G = &a->G[g];
        int best = 0;
        for (int c = 1; c < G->n; c++)
            if (want_max ? G->ch[c].cost[k] > G->ch[best].cost[k]
                         : G->ch[c].cost[k] < G->ch[best].cost[k])
                best = c;
        if (pick)
            pick[g] = best;
        t += G->ch[best].cost[k];
    }
    return t;
}

/* Whether totals of kind k exist for a. */
static int check_kind(const bp_alloc *a, bp_budget_kind k)
{
    if (k < 0 || k >= BP_BUDGET_KINDS)
        return bp_fail(BP_EINVAL, "budget kind %d unknown", (int)k);
    if (k == BP_BUDGET_LATENCY && !a->has_latency)
        return bp_fail(BP_EINVAL, "the profile models no latency (choose a "
                       "hardware profile such as nvidia-t4)");
    return BP_OK;
}

int bp_alloc_total_range(const bp_alloc *a, bp_budget_kind k, double *lo,
                   double *hi)
{
    int st = check_kind(a, k);
    if (st)
        return st;
    double fixed = k == BP_BUDGET_SIZE ? a->fixed_bytes : 0;
    *lo = extreme(a, k, 0, NULL) + fixed;
    *hi = extreme(a, k, 1, NULL) + fixed;
    return BP_OK;
}

int bp_alloc_total_at_best(const bp_alloc *a, bp_budget_kind k, double *hi)
{
    int st = check_kind(a, k);
    if (st)
        return st;
    double t = k == BP_BUDGET_SIZE ? a->fixed_bytes : 0;
    for (int g = 0; g < a->n_groups; g++) {
        const agroup *G = &a->G[g];
        int best = 0;
        for (int c = 1; c < G->n; c++)
            if (G->ch[c].obj < G->ch[best].obj ||
                (G->ch[c].obj == G->ch[best].obj &&
                 G->ch[c].cost[k] < G->ch[best].cost[k]))
                best = c;
        t += G->ch[best].cost[k];
    }
    *hi = t;
    return BP_OK;
}

/* "all layers at 2 bits" / "all layers at 2 bits but fc.weight at 8". */
static void describe(const bp_alloc *a, const int *pick, char *buf, size_t n)
{
    int count[NB] = {0}, major = 0;
    for (int i = 0; i < a->n_layers; i++) {
        const agroup *g = &a->G[a->group_of[i]];
        count[g->ch[pick[a->group_of[i]]].w]++;
    }
    for (int b = 1; b < NB; b++)
        if (count[b] > count[major])
            major = b;
    size_t used = (size_t)snprintf(buf, n, "all layers at %d bits", major);
    int shown = 0, more = 0;
    for (int i = 0; i < a->n_layers && used < n; i++) {
        int w = a->G[a->group_of[i]].ch[pick[a->group_of[i]]].w;
        if (w == major)
            continue;
        if (shown < 3)
            used += (size_t)snprintf(buf + used, n - used, "%s%s at %d",
                                     shown ? ", " : " but ", a->L[i].name, w);
        else
            more++;
        shown++;
    }
    if (more && used < n)
        snprintf(buf + used, n - used, " and %d more", more);
}

void bp_alloc_result_free(bp_alloc_result *r)
{
    if (!r)
        return;
    free(r->w_bits);
    free(r->a_bits);
    free(r->bytes);
    free(r->latency_s);
    free(r->bops);
    free(r->omega);
    r->w_bits = r->a_bits = NULL;
    r->bytes = r->latency_s = r->bops = r->omega = NULL;
}

/* choice c of group g is dominated by d for the active budget kinds:
 * no worse in Omega and every active cost, and better somewhere; exact
 * ties keep the one cheaper in the inactive costs, then the wider one. */
static int dominated(const choice *c, const choice *d, const int *active)
{
    int strict = d->obj < c->obj;
    if (d->obj > c->obj)
        return 0;
    for (int k = 0; k < BP_BUDGET_KINDS; k++) {
        if (!active[k])
            continue;
        if (d->cost[k] > c->cost[k])
            return 0;
        strict |= d->cost[k] < c->cost[k];
    }
    if (strict)
        return 1;
    for (int k = 0; k < BP_BUDGET_KINDS; k++) {
        double x = isnan(c->cost[k]) ? 0 : c->cost[k];
        double y = isnan(d->cost[k]) ? 0 : d->cost[k];
        if (active[k] || x == y)
            continue;
        return y < x;
    }
    return d->w > c->w;
}

/*
 * The integer program (built below, solved by bp_mckp_solve in mckp.c).
 *
 * Groups g = 0..G-1 are the layers after ties (a tied set of layers is one
 * group whose choices carry the members' summed costs and Omega).  Choice
 * c of group g is a weight width w (activation width a(w), alloc.h).
 *
 *   minimise    sum_g sum_c  (Omega_gc - min_c' Omega_gc') x_gc
 *   subject to  sum_c x_gc = 1                         for every group g
 *               sum_g sum_c cost_k,gc x_gc <= cap_k    for every budget k
 *               x_gc in {0, 1}
 *
 * cost_size = packed weights + scales + int32 bias (cost.h); the size cap
 * is the budget less the bytes that stay float; cost_latency comes from the
 * profile; cost_bops = MACs * w * a.  Subtracting each group's smallest
 * Omega changes no argmin (exactly one choice per group) and keeps the
 * objective >= 0 as bp_mckp requires even when a Hutchinson trace came out
 * negative; the reported objective adds the shifts back.
 *
 * Before solving, a choice dominated by another of its group (no better in
 * Omega nor in any budgeted cost) is dropped: it can never be needed. */
static int solve_once(const bp_alloc *a, int nb, const bp_budget_kind *kinds,
                      const double *caps, const char *const *texts,
                      const bp_mckp_opts *o, bp_alloc_result *r)
{
    if (nb < 0 || nb > BP_MCKP_MAX_BUDGETS)
        return bp_fail(BP_EINVAL, "%d budgets (at most %d)", nb,
                       BP_MCKP_MAX_BUDGETS);
    int active[BP_BUDGET_KINDS] = {0};
    for (int j = 0; j < nb; j++) {
        if (kinds[j] < 0 || kinds[j] >= BP_BUDGET_KINDS)
            return bp_fail(BP_EINVAL, "budget kind %d unknown", (int)kinds[j]);
        if (kinds[j] == BP_BUDGET_LATENCY && !a->has_latency)
            return bp_fail(BP_EINVAL, "--budget %s: the profile models no "
                           "latency (choose a hardware profile such as "
                           "nvidia-t4)", texts ? texts[j] : "latency");
        if (isnan(caps[j]))
            return bp_fail(BP_EINVAL, "budget %d is NaN", j);
        active[kinds[j]] = 1;
    }
    int G = a->n_groups, st = BP_OK;
    int *pick = malloc((size_t)G * sizeof *pick);
    int *nch = malloc((size_t)G * sizeof *nch);
    int *map = malloc((size_t)G * NB * sizeof *map);
    double *obj = malloc((size_t)G * NB * sizeof *obj);
    double *cost = malloc((size_t)(nb ? nb : 1) * G * NB * sizeof *cost);
    double *cap = malloc((size_t)(nb ? nb : 1) * sizeof *cap);
    bp_alloc_result res;
    bp_mckp_result mr;
    memset(&res, 0, sizeof res);
    memset(&mr, 0, sizeof mr);
    if (!pick || !nch || !map || !obj || !cost || !cap) {
        st = bp_fail(BP_ENOMEM, "allocation: out of memory");
        goto out;
    }

    /* feasibility first: each budget against the smallest reachable total */
    for (int j = 0; j < nb; j++) {
        double fixed = kinds[j] == BP_BUDGET_SIZE ? a->fixed_bytes : 0;
        cap[j] = caps[j] - fixed;
        double lo = extreme(a, kinds[j], 0, pick);
        /* (lo + fixed) - fixed may round below lo: a cap at the smallest
         * total (the first point of a sweep) must stay reachable */
        if (cap[j] < lo && caps[j] >= lo + fixed)
            cap[j] = lo;
        if (cap[j] < lo) {
            char vb[64], cb[64], how[512], spec[96];
            const char *text = texts && texts[j] ? texts[j] : NULL;
            const char *unit = "";
            if (text) {
                const char *eq = strchr(text, '=');
                const char *p = eq ? eq + 1 : text;
                while (*p && (isdigit((unsigned char)*p) || *p == '.' ||
                              *p == 'e' || *p == 'E' || *p == '+' || *p == '-'))
                    p++;
                unit = p;
            }
            describe(a, pick, how, sizeof how);
            if (!strcmp(unit, "%") || !strcmp(unit, "x")) {
                double ref = kinds[j] == BP_BUDGET_SIZE
                                 ? a->float_bytes : a->ref_high[kinds[j]];
                format_apart(vb, cb, sizeof vb, kinds[j], lo + fixed, caps[j],
                             "");
                char rel[32];
                if (!strcmp(unit, "%"))
                    snprintf(rel, sizeof rel, "%.3g%%", 100 * (lo + fixed) / ref);
                else
                    snprintf(rel, sizeof rel, "%.3gx", ref / (lo + fixed));
                st = bp_fail(BP_EINFEASIBLE, "budget %s cannot be met: the "
                             "smallest plan is %s (%s) (%s)", text, rel, vb,
                             how);
            } else {
                format_apart(vb, cb, sizeof vb, kinds[j], lo + fixed, caps[j],
                             unit);
                if (!text) {
                    snprintf(spec, sizeof spec, "%s=%s",
                             bp_budget_kind_name(kinds[j]), cb);
                    text = spec;
                }
                st = bp_fail(BP_EINFEASIBLE, "budget %s cannot be met: the "
                             "smallest plan is %s (%s)", text, vb, how);
            }
            goto out;
        }
    }

    /* the knapsack: dominated choices dropped, Omega shifted per group */
    int N = 0, dropped = 0;
    double shift_total = 0;
    for (int g = 0; g < G; g++) {
        const agroup *gr = &a->G[g];
        int kept = 0;
        double mn = INFINITY;
        for (int c = 0; c < gr->n; c++) {
            int dom = 0;
            for (int d = 0; d < gr->n && !dom; d++)
                dom = d != c && dominated(&gr->ch[c], &gr->ch[d], active);
            if (dom) {
                dropped++;
                continue;
            }
            map[g * NB + kept++] = c;
            mn = gr->ch[c].obj < mn ? gr->ch[c].obj : mn;
        }
        nch[g] = kept;
        shift_total += mn;
        for (int q = 0; q < kept; q++)
            obj[N + q] = gr->ch[map[g * NB + q]].obj - mn;
        N += kept;
    }
    /* costs, row j = budget j, laid out (nb, N) */
    for (int j = 0; j < nb; j++) {
        int col = 0;
        for (int g = 0; g < G; g++)
            for (int q = 0; q < nch[g]; q++)
                cost[(size_t)j * N + col++] =
                    a->G[g].ch[map[g * NB + q]].cost[kinds[j]];
    }
    bp_mckp p = {G, nch, obj, nb, cost, cap};
    bp_mckp_opts mo;
    bp_mckp_opts_default(&mo);
    if (o)
        mo = *o;
    st = bp_mckp_solve(&p, &mo, &mr);
    if (st == BP_EINFEASIBLE) {
        /* each alone is reachable (checked above): together they are not */
        char msg[768];
        size_t used = 0;
        for (int j = 0; j < nb && used < sizeof msg; j++) {
            char vb[64];
            double lo = extreme(a, kinds[j], 0, NULL) +
                        (kinds[j] == BP_BUDGET_SIZE ? a->fixed_bytes : 0);
            bp_budget_format(vb, sizeof vb, kinds[j], lo, "", 3);
            used += (size_t)snprintf(msg + used, sizeof msg - used,
                                     "%s%s alone can go down to %s",
                                     j ? ", " : "",
                                     bp_budget_kind_name(kinds[j]), vb);
        }
        char list[256];
        size_t lu = 0;
        list[0] = '\0';
        for (int j = 0; j < nb && lu < sizeof list; j++)
            lu += (size_t)snprintf(list + lu, sizeof list - lu, "%s%s",
                                   j ? (j == nb - 1 ? " and " : ", ") : "",
                                   texts && texts[j] ? texts[j]
                                                     : bp_budget_kind_name(kinds[j]));
        st = bp_fail(BP_EINFEASIBLE, "budgets %s cannot be met together "
                     "(%s)", list, msg);
        goto out;
    }
    if (st)
        goto out;

    /* unpack: every layer's bits and costs, totals in layer order */
    int n = a->n_layers;
    res.n_layers = n;
    if (!(res.w_bits = malloc((size_t)n * sizeof *res.w_bits)) ||
        !(res.a_bits = malloc((size_t)n * sizeof *res.a_bits)) ||
        !(res.bytes = malloc((size_t)n * sizeof *res.bytes)) ||
        !(res.latency_s = malloc((size_t)n * sizeof *res.latency_s)) ||
        !(res.bops = malloc((size_t)n * sizeof *res.bops)) ||
        !(res.omega = malloc((size_t)n * sizeof *res.omega))) {
        st = bp_fail(BP_ENOMEM, "allocation: out of memory");
        goto out;
    }
    res.size_bytes = a->fixed_bytes;
    for (int i = 0; i < n; i++) {
        int g = a->group_of[i];
        int w = a->G[g].ch[map[g * NB + mr.choice[g]]].w;
        const choice *c = &a->L[i].at[w];
        res.w_bits[i] = c->w;
        res.a_bits[i] = c->a;
        res.bytes[i] = c->cost[K_SIZE];
        res.latency_s[i] = c->cost[K_LAT];
        res.bops[i] = c->cost[K_BOPS];
        res.omega[i] = c->obj;
        res.size_bytes += c->cost[K_SIZE];
        res.total_latency_s += c->cost[K_LAT];
        res.total_bops += c->cost[K_BOPS];
    }
    res.objective = mr.objective + shift_total;
    res.bound = mr.bound + shift_total;
    double diff = res.objective - res.bound;
    res.gap = diff > 0 ? diff / fmax(fabs(res.objective), 1e-12) : 0;
    res.optimal = mr.optimal;
    res.status = mr.status;
    res.seconds = mr.seconds;
    res.n_groups = G;
    res.n_choices = N;
    res.n_dropped = dropped;
    *r = res;
    memset(&res, 0, sizeof res);
out:
    bp_alloc_result_free(&res);
    bp_mckp_result_free(&mr);
    free(pick);
    free(nch);
    free(map);
    free(obj);
    free(cost);
    free(cap);
    return st;
}

/* The REQUANT copies the integer executor adds for a plan (src/qgraph.c,
 * assign_bits): a tensor is stored at the widest a_bits of the layers
 * reading it (through its root), and a layer asking for fewer reads a copy,
 * one per tensor and width, of 5 bytes (a dyadic number).  0 when the
 * layers' inputs are unknown (a sensitivity file alone). */
static double requant_bytes(const bp_alloc *a, const int *abits)
{
    int n = a->n_layers, copies = 0;
    for (int i = 0; i < n; i++) {
        const bp_layer_facts *fi = &a->L[i].f;
        if (fi->in_root < 0)
            return 0;
        int want = 0;
        for (int j = 0; j < n; j++)
            if (a->L[j].f.in_root == fi->in_root && abits[j] > want)
                want = abits[j];
        if (abits[i] >= want)
            continue;
        int first = 1; /* the first layer of this (tensor, width) pays */
        for (int j = 0; j < i && first; j++)
            first = !(a->L[j].f.in_tensor == fi->in_tensor &&
                      abits[j] == abits[i]);
        copies += first;
    }
    return 5.0 * copies;
}

/* The integer program prices each layer alone, so it cannot see the copies
 * a plan's mix of activation widths adds; they are priced afterwards, and
 * when they push the plan past a size budget it is solved again with that
 * budget tightened by them (until the plan fits, or no plan does). */
int bp_alloc_solve_caps(const bp_alloc *a, int nb, const bp_budget_kind *kinds,
                        const double *caps, const char *const *texts,
                        const bp_mckp_opts *o, bp_alloc_result *r)
{
    double adj[BP_MCKP_MAX_BUDGETS];
    if (nb < 0 || nb > BP_MCKP_MAX_BUDGETS)
        return solve_once(a, nb, kinds, caps, texts, o, r);
    memcpy(adj, caps, (size_t)nb * sizeof *adj);
    for (int round = 0;; round++) {
        int st = solve_once(a, nb, kinds, adj, texts, o, r);
        if (st)
            return st;
        double rq = requant_bytes(a, r->a_bits);
        if (rq == 0)
            return BP_OK;
        r->size_bytes += rq;
        int over = 0;
        for (int j = 0; j < nb; j++)
            if (kinds[j] == BP_BUDGET_SIZE && r->size_bytes > caps[j]) {
                over = 1;
                adj[j] = fmin(adj[j], caps[j] - rq);
            }
        if (!over)
            return BP_OK;
        bp_alloc_result_free(r);
        if (round == 16)
            return bp_fail(BP_EINFEASIBLE, "no plan within the size budget "
                           "once the activation copies are counted (%g "
                           "bytes of them)", rq);
    }
}

int bp_alloc_solve(const bp_alloc *a, int nb, const bp_budget *b,
                   const bp_mckp_opts *o, bp_alloc_result *r)
{
    if (nb < 0 || nb > BP_MCKP_MAX_BUDGETS)
        return bp_fail(BP_EINVAL, "%d budgets (at most %d)", nb,
                       BP_MCKP_MAX_BUDGETS);
    bp_budget_kind kinds[BP_MCKP_MAX_BUDGETS];
    double caps[BP_MCKP_MAX_BUDGETS];
    const char *texts[BP_MCKP_MAX_BUDGETS];
    for (int j = 0; j < nb; j++) {
        int st = bp_alloc_resolve(a, &b[j], &caps[j]);
        if (st)
            return st;
        kinds[j] = b[j].kind;
        texts[j] = b[j].text;
    }
    return bp_alloc_solve_caps(a, nb, kinds, caps, texts, o, r);
}

int bp_alloc_plan(const bp_alloc *a, const bp_alloc_result *r, int nb,
                  const bp_budget *b, const double *values,
                  const char *model_path, const char *model_sha256,
                  const char *profile, bp_plan **out)
{
    bp_plan *p = NULL;
    int st = bp_plan_new(&p, a->n_layers, nb);
    if (st)
        return st;
    int ok = (p->model_path = strdup(model_path ? model_path : "")) &&
             (p->model_sha256 = strdup(model_sha256 ? model_sha256 : "")) &&
             (p->profile = strdup(profile ? profile : "")) &&
             (p->status = strdup(r->status ? r->status : ""));
    for (int j = 0; ok && j < nb; j++) {
        p->budgets[j].value = values[j];
        ok = (p->budgets[j].kind = strdup(bp_budget_kind_name(b[j].kind))) &&
             (p->budgets[j].text = strdup(b[j].value_text ? b[j].value_text
                                                          : b[j].text));
    }
    for (int i = 0; ok && i < a->n_layers; i++) {
        bp_plan_layer *l = &p->layers[i];
        ok = (l->name = strdup(a->L[i].name)) != NULL;
        l->w_bits = r->w_bits[i];
        l->a_bits = r->a_bits[i];
        l->size_bytes = r->bytes[i];
        l->latency_s = r->latency_s[i];
        l->bops = r->bops[i];
        l->omega = r->omega[i];
    }
    if (!ok) {
        bp_plan_free(&p);
        return bp_fail(BP_ENOMEM, "plan: out of memory");
    }
    p->size_bytes = r->size_bytes;
    p->latency_s = r->total_latency_s;
    p->bops = r->total_bops;
    p->objective = r->objective;
    p->gap = r->gap;
    p->solve_seconds = r->seconds;
    *out = p;
    return BP_OK;
}
