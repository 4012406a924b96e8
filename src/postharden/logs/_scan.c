/* Compiled line scanner for `postharden logs` (see cscan.py and docs/commands/logs.md).

   scan(block, stamp_cb, program_cb, reject_cb, tail_cb) walks a block of whole lines once.
   A line it recognises (printable ASCII, classic syslog / maillog_file or RFC 3339 header,
   a message of one of the frequent Postfix shapes) is counted straight into the tables
   the report needs; every other line is returned as bytes for the exact Python parser.
   Every rule below mirrors a rule of parser.py (the regex it stands for is quoted); where
   the regex could backtrack into a different answer, the line is left to the parser.
   Values that need Python's own arithmetic or text rules (the time of a stamp, whether a
   program is Postfix's, the reason class of a reject text, the auth counts of a
   disconnect) come from callbacks, called once per distinct value of a block. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <math.h>

#define MAX_SCAN_LINE 32768

/* --- a small open-addressing table: bytes key -> counters ------------------------------ */

typedef struct {
    uint64_t h;
    size_t off;
    uint32_t len;
    uint32_t used;
    int64_t v[3];
    int64_t aux;
    double d;
} Ent;

typedef struct {
    Ent *e;
    size_t cap, n;
    char *arena;
    size_t alen, acap;
} Tab;

static uint64_t hash_bytes(const char *p, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (n * 0xff51afd7ed558ccdULL);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ULL;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, n);
    h ^= w;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static int tab_init(Tab *t, size_t cap) {
    t->cap = cap;
    t->n = 0;
    t->e = PyMem_Calloc(cap, sizeof(Ent));
    t->acap = 4096;
    t->alen = 0;
    t->arena = PyMem_Malloc(t->acap);
    return t->e && t->arena ? 0 : -1;
}

static void tab_free(Tab *t) {
    PyMem_Free(t->e);
    PyMem_Free(t->arena);
    t->e = NULL;
    t->arena = NULL;
}

static int tab_grow(Tab *t) {
    size_t cap = t->cap * 2;
    Ent *e = PyMem_Calloc(cap, sizeof(Ent));
    if (!e) return -1;
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->e[i].used) continue;
        size_t j = t->e[i].h & (cap - 1);
        while (e[j].used) j = (j + 1) & (cap - 1);
        e[j] = t->e[i];
    }
    PyMem_Free(t->e);
    t->e = e;
    t->cap = cap;
    return 0;
}

/* The entry of KEY (created with zero counters when new: *fresh = 1); NULL on no memory. */
static Ent *tab_get(Tab *t, const char *k, size_t n, int *fresh) {
    uint64_t h = hash_bytes(k, n);
    size_t j = h & (t->cap - 1);
    for (;;) {
        Ent *x = &t->e[j];
        if (!x->used) break;
        if (x->h == h && x->len == n && memcmp(t->arena + x->off, k, n) == 0) {
            *fresh = 0;
            return x;
        }
        j = (j + 1) & (t->cap - 1);
    }
    if ((t->n + 1) * 2 > t->cap) {
        if (tab_grow(t) < 0) return NULL;
        j = h & (t->cap - 1);
        while (t->e[j].used) j = (j + 1) & (t->cap - 1);
    }
    if (t->alen + n > t->acap) {
        size_t acap = t->acap * 2;
        while (acap < t->alen + n) acap *= 2;
        char *a = PyMem_Realloc(t->arena, acap);
        if (!a) return NULL;
        t->arena = a;
        t->acap = acap;
    }
    memcpy(t->arena + t->alen, k, n);
    Ent *x = &t->e[j];
    memset(x, 0, sizeof(*x));
    x->h = h;
    x->off = t->alen;
    x->len = (uint32_t)n;
    x->used = 1;
    t->alen += n;
    t->n++;
    *fresh = 1;
    return x;
}

/* --- tables of one scan ---------------------------------------------------------------- */

enum {
    T_SASL_CLIENT, T_SASL_TAIL, T_SASL_MECH, T_RELAY_CLIENT, T_REJECT_CLIENT, T_REJECT_STAGE,
    T_TLS, T_DELIVERIES, T_DEFERRED_DOMAIN, T_BOUNCED_DOMAIN, T_LOGIN_USER, T_LOGIN_USER_CLIENT,
    T_LOGIN_USER_HOUR, T_AUTH_FAIL_DISC, T_CONN_PROBLEMS, T_POSTSCREEN, T_WARNINGS,
    N_COUNT_TABLES,
    /* with more than a count: */
    T_REJECT_TEXT = N_COUNT_TABLES, /* action\0text -> count; aux = flags from reject_cb */
    T_SENDER,                      /* sender -> messages, bytes, recipients */
    T_HOURLY,                      /* 8-byte hour -> rejects, relay_denied, sasl_failures */
    T_STAMP,                       /* stamp -> d = seconds, aux = hour, v = flag, month */
    T_PROGRAM,                     /* program -> aux = is Postfix */
    T_DISC_TAIL,                   /* disconnect tail -> aux = auth failures */
    N_TABLES
};

static const char *TABLE_NAMES[N_COUNT_TABLES] = {
    "sasl_fail_client", "sasl_tail", "sasl_fail_mech", "relay_client", "reject_client",
    "reject_stage", "tls_protocols", "deliveries", "deferred_domain", "bounced_domain",
    "login_user", "login_user_client", "login_user_hour", "auth_fail_disconnect",
    "connection_problems", "postscreen", "warnings",
};

enum {
    K_CONNECT, K_DISCONNECT, K_CLIENT, K_SASL_LOGIN, K_MESSAGE_ID, K_QUEUED, K_DELIVERY,
    K_REMOVED, K_REJECT, K_SASL_FAILURE, K_SASL_ABORTED, K_LOST_CONNECTION, K_TIMEOUT,
    K_TOO_MANY_ERRORS, K_TLS_ESTABLISHED, K_PIPELINING, K_POSTSCREEN, K_EXPIRED, K_PICKUP,
    K_BOUNCE_NOTICE, K_DELIVERY_PROBLEM, K_LIFECYCLE, K_WARNING, K_RATE_LIMIT, N_KINDS
};

typedef struct {
    Tab t[N_TABLES];
    int64_t kinds[N_KINDS];
    int64_t lines, postfix, other;
    double tmin, tmax;
    int have_t;
    unsigned months;
    int unsure;
    PyObject *odd;
    PyObject *stamp_cb, *program_cb, *reject_cb, *tail_cb;
    double since, until;
    int has_since, has_until;
    /* the last hour key and its entry: consecutive lines mostly share it */
    char last_key[64];
    size_t last_keyn;
    Ent *last_hour;
} Scan;

static int count(Scan *s, int table, const char *k, size_t n, int64_t by) {
    int fresh;
    Ent *x = tab_get(&s->t[table], k, n, &fresh);
    if (!x) return -1;
    x->v[0] += by;
    return 0;
}

static int count2(Scan *s, int table, const char *a, size_t an, char sep, const char *b,
                  size_t bn) {
    char buf[4096];
    if (an + bn + 1 > sizeof buf) {
        s->unsure = 1;
        return 0;
    }
    memcpy(buf, a, an);
    buf[an] = sep;
    memcpy(buf + an + 1, b, bn);
    return count(s, table, buf, an + 1 + bn, 1);
}

/* --- byte helpers ------------------------------------------------------------------------ */

#define ISDIGIT(c) ((unsigned char)((c) - '0') < 10)
#define ISUPPER(c) ((unsigned char)((c) - 'A') < 26)
#define ISLOWER(c) ((unsigned char)((c) - 'a') < 26)

static int starts(const char *p, const char *e, const char *lit, size_t n) {
    return (size_t)(e - p) >= n && memcmp(p, lit, n) == 0;
}
#define STARTS(p, e, lit) starts((p), (e), (lit), sizeof(lit) - 1)

static const char *find(const char *p, const char *e, const char *lit, size_t n) {
    if ((size_t)(e - p) < n) return NULL;
    return memmem(p, (size_t)(e - p), lit, n);
}
#define FIND(p, e, lit) find((p), (e), (lit), sizeof(lit) - 1)

static int has_ci(const char *p, const char *e, const char *lower_lit) {
    size_t n = strlen(lower_lit);
    for (; p + n <= e; p++) {
        size_t i = 0;
        while (i < n) {
            char c = p[i];
            if (ISUPPER(c)) c = (char)(c + 32);
            if (c != lower_lit[i]) break;
            i++;
        }
        if (i == n) return 1;
    }
    return 0;
}

/* CLIENT = `([^\s\[\]]*)\[([^\]]*)\](?::\d+)?` (the line has no other whitespace than
   spaces; spaces inside the brackets are left to the parser). */
static const char *client(const char *p, const char *e, const char **ip, size_t *ipn) {
    while (p < e && *p != ' ' && *p != '[' && *p != ']') p++;
    if (p >= e || *p != '[') return NULL;
    const char *a = ++p;
    while (p < e && *p != ']' && *p != ' ') p++;
    if (p >= e || *p != ']') return NULL;
    *ip = a;
    *ipn = (size_t)(p - a);
    p++;
    if (p + 1 < e && *p == ':' && ISDIGIT(p[1])) {
        p++;
        while (p < e && ISDIGIT(*p)) p++;
    }
    return p;
}

static const char *token_end(const char *p, const char *e) {
    while (p < e && *p != ' ') p++;
    return p;
}

/* --- per-line context ----------------------------------------------------------------- */

typedef struct {
    int64_t hour;
    double ts;
} When;

static int ip_key(const char *ip, size_t n, const char **k, size_t *kn) {
    if (n == 0) {
        *k = "unknown";
        *kn = 7;
    } else {
        *k = ip;
        *kn = n;
    }
    return 0;
}

static Ent *hourly(Scan *s, int64_t hour) {
    int fresh;
    return tab_get(&s->t[T_HOURLY], (const char *)&hour, sizeof hour, &fresh);
}

/* Message rules. Each returns 1 when the line was counted, 0 to leave it to the parser,
   -1 on a Python error. */

static int queued(Scan *s, const char *p, const char *e) {
    /* `from=<?([^>,]*)>?, size=(\d+), nrcpt=(\d+)` */
    p += 5;
    if (p < e && *p == '<') p++;
    const char *a = p;
    while (p < e && *p != '>' && *p != ',') p++;
    size_t an = (size_t)(p - a);
    if (p < e && *p == '>') p++;
    if (!STARTS(p, e, ", size=")) return 0;
    p += 7;
    int64_t size = 0, nrcpt = 0;
    int nd = 0;
    while (p < e && ISDIGIT(*p)) {
        if (++nd > 15) return 0;
        size = size * 10 + (*p++ - '0');
    }
    if (!nd || !STARTS(p, e, ", nrcpt=")) return 0;
    p += 8;
    nd = 0;
    while (p < e && ISDIGIT(*p)) {
        if (++nd > 15) return 0;
        nrcpt = nrcpt * 10 + (*p++ - '0');
    }
    if (!nd) return 0;
    if (an == 0) {
        a = "<>";
        an = 2;
    }
    int fresh;
    Ent *x = tab_get(&s->t[T_SENDER], a, an, &fresh);
    if (!x) return -1;
    x->v[0] += 1;
    if (__builtin_add_overflow(x->v[1], size, &x->v[1]) ||
        __builtin_add_overflow(x->v[2], nrcpt, &x->v[2]))
        s->unsure = 1;
    s->kinds[K_QUEUED]++;
    return 1;
}

static int expired(Scan *s, const char *p, const char *e) {
    /* `from=<?([^>,]*)>?, status=(\S*expired)` (after `_QUEUED` failed) */
    p += 5;
    if (p < e && *p == '<') p++;
    while (p < e && *p != '>' && *p != ',') p++;
    if (p < e && *p == '>') p++;
    if (!STARTS(p, e, ", status=")) return 0;
    p += 9;
    const char *t = token_end(p, e);
    if (!FIND(p, t, "expired")) return 0;
    if (count(s, T_DELIVERIES, "expired", 7, 1) < 0) return -1;
    s->kinds[K_EXPIRED]++;
    return 1;
}

static int delivery(Scan *s, const char *p, const char *e) {
    /* `to=<?([^>,]*)>?, (?:orig_to=<?[^>,]*>?, )?relay=([^,]*), .*?dsn=(\d\.\d{1,3}\.\d{1,3}),
       status=(\S+)(?: \((.*)\))?$` */
    p += 3;
    if (p < e && *p == '<') p++;
    const char *rcpt = p;
    while (p < e && *p != '>' && *p != ',') p++;
    size_t rn = (size_t)(p - rcpt);
    if (p < e && *p == '>') p++;
    if (!STARTS(p, e, ", ")) return 0;
    p += 2;
    if (STARTS(p, e, "orig_to=")) {
        const char *q = p + 8;
        if (q < e && *q == '<') q++;
        while (q < e && *q != '>' && *q != ',') q++;
        if (q < e && *q == '>') q++;
        if (STARTS(q, e, ", ")) p = q + 2;
    }
    if (!STARTS(p, e, "relay=")) return 0;
    p += 6;
    while (p < e && *p != ',') p++;
    if (!STARTS(p, e, ", ")) return 0;
    p += 2;
    const char *st = NULL, *se = NULL;
    for (const char *d = FIND(p, e, "dsn="); d; d = FIND(d + 1, e, "dsn=")) {
        const char *q = d + 4;
        if (!(q < e && ISDIGIT(*q))) continue;
        q++;
        if (!(q < e && *q == '.')) continue;
        q++;
        int n = 0;
        while (q < e && ISDIGIT(*q)) q++, n++;
        if (n < 1 || n > 3 || !(q < e && *q == '.')) continue;
        q++;
        n = 0;
        while (q < e && ISDIGIT(*q)) q++, n++;
        if (n < 1 || n > 3 || !STARTS(q, e, ", status=")) continue;
        q += 9;
        const char *t = token_end(q, e);
        if (t == q) continue;
        if (t != e && !(e - t >= 3 && t[1] == '(' && e[-1] == ')')) continue;
        st = q;
        se = t;
        break;
    }
    if (!st) return 0;
    size_t sn = (size_t)(se - st);
    if (count(s, T_DELIVERIES, st, sn, 1) < 0) return -1;
    int table = -1;
    if (sn == 8 && memcmp(st, "deferred", 8) == 0) table = T_DEFERRED_DOMAIN;
    if (sn == 7 && memcmp(st, "bounced", 7) == 0) table = T_BOUNCED_DOMAIN;
    if (table >= 0) {
        char buf[2048];
        const char *dom = rcpt;
        size_t dn = rn;
        if (rn == 0) {
            dom = "<>";
            dn = 2;
        } else {
            const char *at = NULL;
            for (const char *q = rcpt; q < rcpt + rn; q++)
                if (*q == '@') at = q;
            if (at && at + 1 < rcpt + rn) {
                dom = at + 1;
                dn = (size_t)(rcpt + rn - dom);
            }
            if (dn > sizeof buf) {
                s->unsure = 1;
                return 1;
            }
            for (size_t i = 0; i < dn; i++) {
                char c = dom[i];
                buf[i] = ISUPPER(c) ? (char)(c + 32) : c;
            }
            dom = buf;
        }
        if (count(s, table, dom, dn, 1) < 0) return -1;
    }
    s->kinds[K_DELIVERY]++;
    return 1;
}

static int client_line(Scan *s, const char *p, const char *e, When *w) {
    /* `client=CLIENT(?:, sasl_method=([^,\s]+))?(?:, sasl_username=([^,]*))?` */
    const char *ip;
    size_t ipn;
    p = client(p + 7, e, &ip, &ipn);
    if (!p) return 0;
    if (STARTS(p, e, ", sasl_method=")) {
        const char *q = p + 14;
        while (q < e && *q != ',' && *q != ' ') q++;
        if (q > p + 14) p = q;
    }
    const char *user = NULL;
    size_t un = 0;
    if (STARTS(p, e, ", sasl_username=")) {
        user = p + 16;
        const char *q = user;
        while (q < e && *q != ',') q++;
        un = (size_t)(q - user);
    }
    if (!un) {
        s->kinds[K_CLIENT]++;
        return 1;
    }
    const char *k;
    size_t kn;
    ip_key(ip, ipn, &k, &kn);
    char hb[32];
    int hn = snprintf(hb, sizeof hb, "%lld", (long long)w->hour);
    if (count(s, T_LOGIN_USER, user, un, 1) < 0 ||
        count2(s, T_LOGIN_USER_CLIENT, user, un, '\0', k, kn) < 0 ||
        count2(s, T_LOGIN_USER_HOUR, user, un, '\0', hb, (size_t)hn) < 0)
        return -1;
    s->kinds[K_SASL_LOGIN]++;
    return 1;
}

static const char *const STAGES[] = {"CONNECT", "HELO", "EHLO", "MAIL", "RCPT", "DATA", "BDAT",
                                     "END-OF-MESSAGE", "VRFY", "ETRN", "AUTH", "STARTTLS"};

static int reject(Scan *s, const char *p, const char *e, When *w) {
    /* `([a-z][a-z_-]*): (STAGE) (?:(.*?) )?from CLIENT(?:: |; |$)(.*)$`, then
       `_ENVELOPE.search` and `_REPLY.match` on the rest (see fastscan.py). */
    const char *act = p;
    while (p < e && (ISLOWER(*p) || *p == '_' || *p == '-')) p++;
    size_t actn = (size_t)(p - act);
    if (actn > 28 || !STARTS(p, e, ": ")) return 0;
    p += 2;
    const char *stage = p;
    size_t stn = 0;
    for (size_t i = 0; i < sizeof STAGES / sizeof *STAGES; i++) {
        size_t n = strlen(STAGES[i]);
        if (starts(p, e, STAGES[i], n) && starts(p + n, e, " from ", 6)) {
            stn = n;
            break;
        }
    }
    if (!stn) return 0;
    p += stn + 6;
    const char *ip;
    size_t ipn;
    p = client(p, e, &ip, &ipn);
    if (!p || !STARTS(p, e, ": ")) return 0;
    p += 2;
    const char *rest = p, *text, *te;
    int mode = 0;
    /* `\d{3} \d\.\d{1,3}\.\d{1,3} ` */
    if (e - p < 10 || !ISDIGIT(p[0]) || !ISDIGIT(p[1]) || !ISDIGIT(p[2]) || p[3] != ' ' ||
        !ISDIGIT(p[4]) || p[5] != '.')
        goto whole;
    p += 6;
    int n = 0;
    while (p < e && ISDIGIT(*p)) p++, n++;
    if (n < 1 || n > 3 || !(p < e && *p == '.')) goto whole;
    p++;
    n = 0;
    while (p < e && ISDIGIT(*p)) p++, n++;
    if (n < 1 || n > 3 || !(p < e && *p == ' ')) goto whole;
    p++;
    /* `<addr>: `: an address with a one-word reason trigger could change the class */
    if (p < e && *p == '<') {
        const char *q = p + 1;
        while (q < e && *q != '>' && *q != ' ' && *q != '<') q++;
        if (STARTS(q, e, ">: ")) {
            if (has_ci(p, q, "greylist") || has_ci(p, q, "pipelining")) goto whole;
            p = q + 3;
        }
    }
    /* text: up to the first `; ` from which the envelope runs to the end of the line:
       `; (?:from=<A> )?(?:to=<A> )?proto=\S+?(?: helo=<A>)?$` */
    text = p;
    te = NULL;
    for (const char *q = FIND(p, e, "; "); q; q = FIND(q + 1, e, "; ")) {
        const char *r = q + 2;
        if (STARTS(r, e, "from=<")) {
            const char *z = r + 6;
            while (z < e && *z != '>' && *z != ' ') z++;
            if (STARTS(z, e, "> ")) r = z + 2;
        }
        if (STARTS(r, e, "to=<")) {
            const char *z = r + 4;
            while (z < e && *z != '>' && *z != ' ') z++;
            if (STARTS(z, e, "> ")) r = z + 2;
        }
        if (!STARTS(r, e, "proto=")) continue;
        r += 6;
        const char *z = token_end(r, e);
        if (z == r) continue;
        if (z != e) {
            if (!STARTS(z, e, " helo=<")) continue;
            const char *h = z + 7;
            while (h < e && *h != '>' && *h != ' ') h++;
            if (!(h + 1 == e && *h == '>')) continue;
        }
        te = q;
        break;
    }
    if (!te) goto whole;
    goto keyed;
whole:
    /* another reply shape: the callback gets everything after the client and does what
       parser._reject does with it (envelope, reply code, DSN) */
    mode = 1;
    text = rest;
    te = e;
keyed:;
    size_t tn = (size_t)(te - text);
    char buf[4200];
    if (actn + 2 + tn > sizeof buf) return 0;
    buf[0] = (char)mode;
    memcpy(buf + 1, act, actn);
    buf[actn + 1] = '\0';
    memcpy(buf + actn + 2, text, tn);
    int fresh;
    Ent *x = tab_get(&s->t[T_REJECT_TEXT], buf, actn + 2 + tn, &fresh);
    if (!x) return -1;
    if (fresh) {
        PyObject *a = PyBytes_FromStringAndSize(act, (Py_ssize_t)actn);
        PyObject *t = PyBytes_FromStringAndSize(text, (Py_ssize_t)tn);
        PyObject *r = a && t ? PyObject_CallFunction(s->reject_cb, "OOi", a, t, mode) : NULL;
        Py_XDECREF(a);
        Py_XDECREF(t);
        if (!r) return -1;
        x->aux = PyLong_AsLong(r);
        Py_DECREF(r);
        if (x->aux == -1 && PyErr_Occurred()) return -1;
    }
    if (x->aux < 0) return 0; /* a text that could move the parser's split */
    x->v[0]++;
    s->kinds[K_REJECT]++;
    if (x->aux & 1) {
        const char *k;
        size_t kn;
        ip_key(ip, ipn, &k, &kn);
        if (count(s, T_REJECT_CLIENT, k, kn, 1) < 0 || count(s, T_REJECT_STAGE, stage, stn, 1) < 0)
            return -1;
        Ent *h = hourly(s, w->hour);
        if (!h) return -1;
        h->v[0]++;
        if (x->aux & 2) {
            if (count(s, T_RELAY_CLIENT, k, kn, 1) < 0) return -1;
            h->v[1]++;
        }
    }
    return 1;
}

static int sasl(Scan *s, const char *p, const char *e, When *w) {
    /* `CLIENT: SASL (\S+) authentication (failed|aborted)(?::\s?(.*?))?
        (?:, sasl_username=(\S*))?\s*$` with the tail empty or starting with `:` */
    const char *ip;
    size_t ipn;
    p = client(p, e, &ip, &ipn);
    if (!p || !STARTS(p, e, ": SASL ")) return 0;
    p += 7;
    const char *mech = p;
    p = token_end(p, e);
    size_t mn = (size_t)(p - mech);
    if (!mn || mn > 200 || !STARTS(p, e, " authentication ")) return 0;
    p += 16;
    int failed;
    if (STARTS(p, e, "failed"))
        failed = 1, p += 6;
    else if (STARTS(p, e, "aborted"))
        failed = 0, p += 7;
    else
        return 0;
    if (p != e && *p != ':') return 0;
    if (!failed) {
        s->kinds[K_SASL_ABORTED]++;
        return 1;
    }
    char up[256];
    for (size_t i = 0; i < mn; i++) up[i] = ISLOWER(mech[i]) ? (char)(mech[i] - 32) : mech[i];
    const char *k;
    size_t kn;
    ip_key(ip, ipn, &k, &kn);
    if (count(s, T_SASL_CLIENT, k, kn, 1) < 0 || count(s, T_SASL_MECH, up, mn, 1) < 0 ||
        count(s, T_SASL_TAIL, p, (size_t)(e - p), 1) < 0)
        return -1;
    Ent *h = hourly(s, w->hour);
    if (!h) return -1;
    h->v[2]++;
    s->kinds[K_SASL_FAILURE]++;
    return 1;
}

static int disconnect(Scan *s, const char *p, const char *e) {
    /* `disconnect from CLIENT(.*)$` */
    const char *ip;
    size_t ipn;
    p = client(p + 16, e, &ip, &ipn);
    if (!p) return 0;
    int fresh;
    Ent *x = tab_get(&s->t[T_DISC_TAIL], p, (size_t)(e - p), &fresh);
    if (!x) return -1;
    if (fresh) {
        PyObject *t = PyBytes_FromStringAndSize(p, e - p);
        PyObject *r = t ? PyObject_CallFunctionObjArgs(s->tail_cb, t, NULL) : NULL;
        Py_XDECREF(t);
        if (!r) return -1;
        x->aux = PyLong_AsLong(r);
        Py_DECREF(r);
        if (x->aux == -1 && PyErr_Occurred()) return -1;
    }
    if (x->aux) {
        const char *k;
        size_t kn;
        ip_key(ip, ipn, &k, &kn);
        if (count(s, T_AUTH_FAIL_DISC, k, kn, x->aux) < 0) return -1;
    }
    s->kinds[K_DISCONNECT]++;
    return 1;
}

static int after(Scan *s, const char *p, const char *e, int kind, const char *name, size_t skip) {
    /* `(lost connection|timeout|too many errors) after (\S+)(?: \(\d+ bytes\))? from CLIENT` */
    p += skip;
    const char *stage = p;
    p = token_end(p, e);
    size_t sn = (size_t)(p - stage);
    if (!sn) return 0;
    if (STARTS(p, e, " (") && p + 2 < e && ISDIGIT(p[2])) {
        const char *q = p + 2;
        while (q < e && ISDIGIT(*q)) q++;
        if (STARTS(q, e, " bytes)")) p = q + 7;
    }
    if (!STARTS(p, e, " from ")) return 0;
    const char *ip;
    size_t ipn;
    if (!client(p + 6, e, &ip, &ipn)) return 0;
    if (count2(s, T_CONN_PROBLEMS, name, strlen(name), ':', stage, sn) < 0) return -1;
    s->kinds[kind]++;
    return 1;
}

static int tls(Scan *s, const char *p, const char *e) {
    /* `(Anonymous|Trusted|Untrusted|Verified) TLS connection established (from|to) CLIENT
        (?::\d+)?: (\S+) with cipher (\S+)` */
    static const char *const WHO[] = {"Anonymous", "Trusted", "Untrusted", "Verified"};
    size_t i;
    for (i = 0; i < 4; i++) {
        size_t n = strlen(WHO[i]);
        if (starts(p, e, WHO[i], n) && starts(p + n, e, " TLS connection established ", 28)) {
            p += n + 28;
            break;
        }
    }
    if (i == 4) return 0;
    const char *dir;
    if (STARTS(p, e, "from "))
        dir = "inbound", p += 5;
    else if (STARTS(p, e, "to "))
        dir = "outbound", p += 3;
    else
        return 0;
    const char *ip;
    size_t ipn;
    p = client(p, e, &ip, &ipn);
    if (!p) return 0;
    if (p + 1 < e && *p == ':' && ISDIGIT(p[1])) {
        p++;
        while (p < e && ISDIGIT(*p)) p++;
    }
    if (!STARTS(p, e, ": ")) return 0;
    p += 2;
    const char *proto = p;
    p = token_end(p, e);
    size_t pn = (size_t)(p - proto);
    if (!pn || !STARTS(p, e, " with cipher ")) return 0;
    p += 13;
    if (!(p < e && *p != ' ')) return 0;
    if (count2(s, T_TLS, dir, strlen(dir), ':', proto, pn) < 0) return -1;
    s->kinds[K_TLS_ESTABLISHED]++;
    return 1;
}

static const char *const VERDICTS[] = {
    "PASS NEW", "PASS OLD", "PREGREET", "DNSBL", "HANGUP", "COMMAND PIPELINING",
    "COMMAND TIME LIMIT", "COMMAND COUNT LIMIT", "COMMAND LENGTH LIMIT", "NON-SMTP COMMAND",
    "BARE NEWLINE", "WHITELISTED", "ALLOWLISTED", "BLACKLISTED", "DENYLISTED", "WHITELIST VETO",
    "ALLOWLIST VETO", "CONNECT", "DISCONNECT"};

static int postscreen(Scan *s, const char *p, const char *e) {
    /* `(VERDICTS)(?: (\d+))?(?: after [\d.]+)?(?: rank \d+)?(?: for| from)? \[([^\]]+)\]:\d+` */
    const char *v = p;
    size_t vn = 0;
    for (size_t i = 0; i < sizeof VERDICTS / sizeof *VERDICTS; i++) {
        size_t n = strlen(VERDICTS[i]);
        if (starts(p, e, VERDICTS[i], n)) {
            vn = n;
            break;
        }
    }
    if (!vn) return 0;
    p += vn;
    if (p + 1 < e && p[0] == ' ' && ISDIGIT(p[1])) {
        p++;
        while (p < e && ISDIGIT(*p)) p++;
    }
    if (STARTS(p, e, " after ") && p + 7 < e && (ISDIGIT(p[7]) || p[7] == '.')) {
        p += 7;
        while (p < e && (ISDIGIT(*p) || *p == '.')) p++;
    }
    if (STARTS(p, e, " rank ") && p + 6 < e && ISDIGIT(p[6])) {
        p += 6;
        while (p < e && ISDIGIT(*p)) p++;
    }
    if (STARTS(p, e, " for"))
        p += 4;
    else if (STARTS(p, e, " from"))
        p += 5;
    if (!STARTS(p, e, " [")) return 0;
    p += 2;
    const char *a = p;
    while (p < e && *p != ']') p++;
    if (p == a || !STARTS(p, e, "]:") || !(p + 2 < e && ISDIGIT(p[2]))) return 0;
    if (count(s, T_POSTSCREEN, v, vn, 1) < 0) return -1;
    s->kinds[K_POSTSCREEN]++;
    return 1;
}

static int warning(Scan *s, const char *p, const char *e, When *w) {
    /* parser._warning, rule by rule */
    if (FIND(p, e, " authentication ") && FIND(p, e, "SASL")) {
        int r = sasl(s, p, e, w);
        if (r) return r;
        /* `_SASL_FAIL.match` needs `[^\s\[\]]*\[` first: without it the rule cannot match */
        const char *q = p;
        while (q < e && *q != ' ' && *q != '[' && *q != ']') q++;
        if (q < e && *q == '[') return 0;
    }
    if (STARTS(p, e, "problem talking to ")) return 0;
    if (FIND(p, e, "limit exceeded")) {
        /* `(.*? limit exceeded): (\d+) from CLIENT for service (\S+)` */
        for (const char *x = FIND(p, e, " limit exceeded: "); x;
             x = FIND(x + 1, e, " limit exceeded: ")) {
            const char *q = x + 17, *d = q;
            while (q < e && ISDIGIT(*q)) q++;
            if (q == d || !STARTS(q, e, " from ")) continue;
            const char *ip;
            size_t ipn;
            q = client(q + 6, e, &ip, &ipn);
            if (!q || !STARTS(q, e, " for service ") || !(q + 13 < e && q[13] != ' ')) continue;
            s->kinds[K_RATE_LIMIT]++;
            return 1;
        }
        return 0;
    }
    if (STARTS(p, e, "non-SMTP command from ") || STARTS(p, e, "TLS library problem") ||
        FIND(p, e, "SSL_accept error") || FIND(p, e, "TLS handshake"))
        return 0;
    /* WARNING: `detail.split("[", 1)[0].split(": ", 1)[0][:80]` */
    const char *k = memchr(p, '[', (size_t)(e - p));
    if (!k) k = e;
    const char *c = FIND(p, k, ": ");
    if (c) k = c;
    if (k - p > 80) k = p + 80;
    if (count(s, T_WARNINGS, p, (size_t)(k - p), 1) < 0) return -1;
    s->kinds[K_WARNING]++;
    return 1;
}

/* `(NOQUEUE|[0-9A-Z]{5,24}|(?=[A-Za-z]*\d)[0-9A-Za-z]{10,20}): ` -> the message after it */
static const char *queue_id(const char *p, const char *e) {
    const char *q = p;
    int upper_only = 1, digit = 0;
    while (q < e && q - p <= 24) {
        char c = *q;
        if (ISDIGIT(c))
            digit = 1;
        else if (ISLOWER(c))
            upper_only = 0;
        else if (!ISUPPER(c))
            break;
        q++;
    }
    if (!STARTS(q, e, ": ")) return p;
    size_t n = (size_t)(q - p);
    if ((n == 7 && memcmp(p, "NOQUEUE", 7) == 0) || (upper_only && n >= 5 && n <= 24) ||
        (digit && n >= 10 && n <= 20))
        return q + 2;
    return p;
}

static int message(Scan *s, const char *m, const char *e, When *w) {
    const char *p = queue_id(m, e);
    char c = p < e ? *p : 0;
    if (c == 'w' && STARTS(p, e, "warning: ")) return warning(s, p + 9, e, w);
    if (STARTS(p, e, "fatal: ") || STARTS(p, e, "panic: ") || STARTS(p, e, "error: ")) return 0;
    if (ISLOWER(c)) {
        /* `first.islower() and ": " in msg[:32]` and `_REJECT.match`: a message that
           starts with `[a-z][a-z_-]*: ` is a reject or none of the shapes below */
        const char *q = p;
        while (q < e && (ISLOWER(*q) || *q == '_' || *q == '-')) q++;
        if (STARTS(q, e, ": ")) return q - p <= 28 ? reject(s, p, e, w) : 0;
    }
    switch (c) {
    case 'c':
        if (STARTS(p, e, "connect to ") || STARTS(p, e, "conversation with ")) {
            s->kinds[K_DELIVERY_PROBLEM]++;
            return 1;
        }
        if (STARTS(p, e, "cache ")) {
            s->kinds[K_LIFECYCLE]++;
            return 1;
        }
        if (STARTS(p, e, "connect from ")) {
            const char *ip;
            size_t ipn;
            const char *q = client(p + 13, e, &ip, &ipn);
            if (q != e) return 0;
            s->kinds[K_CONNECT]++;
            return 1;
        }
        if (STARTS(p, e, "client=")) return client_line(s, p, e, w);
        return 0;
    case 'd':
        if (STARTS(p, e, "disconnect from ")) return disconnect(s, p, e);
        if (STARTS(p, e, "daemon started")) {
            s->kinds[K_LIFECYCLE]++;
            return 1;
        }
        return 0;
    case 'l':
        if (STARTS(p, e, "lost connection after "))
            return after(s, p, e, K_LOST_CONNECTION, "lost_connection", 22);
        if (STARTS(p, e, "lost connection with ")) {
            s->kinds[K_DELIVERY_PROBLEM]++;
            return 1;
        }
        return 0;
    case 't':
        if (STARTS(p, e, "timeout after ")) return after(s, p, e, K_TIMEOUT, "timeout", 14);
        if (STARTS(p, e, "too many errors after "))
            return after(s, p, e, K_TOO_MANY_ERRORS, "too_many_errors", 22);
        if (STARTS(p, e, "to=")) return delivery(s, p, e);
        if (STARTS(p, e, "terminating on signal") || STARTS(p, e, "table ")) {
            s->kinds[K_LIFECYCLE]++;
            return 1;
        }
        return 0;
    case 'm':
        if (STARTS(p, e, "message-id=")) {
            s->kinds[K_MESSAGE_ID]++;
            return 1;
        }
        return 0;
    case 'f':
        if (STARTS(p, e, "from=")) {
            int r = queued(s, p, e);
            return r ? r : expired(s, p, e);
        }
        return 0;
    case 'u':
        /* `msg.startswith("uid=") and " from=<" in msg` */
        if (STARTS(p, e, "uid=") && FIND(p, e, " from=<")) {
            s->kinds[K_PICKUP]++;
            return 1;
        }
        return 0;
    case 's':
    case 'p':
        /* `_BOUNCE.match`: `(sender|postmaster) (non-delivery|delivery status|delay)
           notification: ` */
        if (STARTS(p, e, "sender ") || STARTS(p, e, "postmaster ")) {
            const char *q = p + (c == 's' ? 7 : 11);
            if (STARTS(q, e, "non-delivery notification: ") ||
                STARTS(q, e, "delivery status notification: ") ||
                STARTS(q, e, "delay notification: ")) {
                s->kinds[K_BOUNCE_NOTICE]++;
                return 1;
            }
        }
        return 0;
    case 'h':
        if (STARTS(p, e, "host ")) {
            s->kinds[K_DELIVERY_PROBLEM]++;
            return 1;
        }
        return 0;
    case 'r':
        if (e - p == 7 && memcmp(p, "removed", 7) == 0) {
            s->kinds[K_REMOVED]++;
            return 1;
        }
        if (STARTS(p, e, "reload -- ")) {
            s->kinds[K_LIFECYCLE]++;
            return 1;
        }
        return 0;
    case 'i':
        if (STARTS(p, e, "improper command pipelining after ")) {
            const char *q = token_end(p + 34, e);
            const char *ip;
            size_t ipn;
            if (q == p + 34 || !STARTS(q, e, " from ") || !client(q + 6, e, &ip, &ipn)) return 0;
            s->kinds[K_PIPELINING]++;
            return 1;
        }
        return 0;
    }
    if (ISUPPER(c)) {
        /* rule order of the parser: a TLS line before a postscreen verdict */
        if (FIND(p, e, "TLS connection established")) {
            int r = tls(s, p, e);
            if (r) return r;
        }
        return postscreen(s, p, e);
    }
    return 0;
}

/* --- headers ------------------------------------------------------------------------------ */

/* Month of `Jan`..`Dec`, 0 otherwise. */
static int month_of(const char *p) {
    static const char M[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    for (int i = 0; i < 12; i++)
        if (memcmp(p, M + 3 * i, 3) == 0) return i + 1;
    return 0;
}

/* Parse the header of [p, e): the hour key (the stamp with minutes and seconds set to
   00:00 and without a fraction), the seconds into that hour, micro seconds, and the start
   of the program name. 0 when it is not a header this scanner knows. */
static int header(const char *p, const char *e, char *key, size_t *keyn, int *secs,
                  int64_t *micro, const char **prog) {
    const char *q;
    *micro = 0;
    if (ISUPPER(p[0])) {
        /* `([A-Z][a-z]{2}) ([ \d]?\d) (\d\d):(\d\d):(\d\d)(?:\.\d+)? ` */
        if (e - p < 20 || !ISLOWER(p[1]) || !ISLOWER(p[2]) || p[3] != ' ') return 0;
        if (!month_of(p)) return 0;
        q = p + 4;
        if ((*q == ' ' || ISDIGIT(*q)) && ISDIGIT(q[1]) && q[2] == ' ')
            q += 3;
        else if (ISDIGIT(*q) && q[1] == ' ')
            q += 2;
        else
            return 0;
        if (e - q < 9 || !ISDIGIT(q[0]) || !ISDIGIT(q[1]) || q[2] != ':' || !ISDIGIT(q[3]) ||
            !ISDIGIT(q[4]) || q[5] != ':' || !ISDIGIT(q[6]) || !ISDIGIT(q[7]))
            return 0;
        *secs = ((q[3] - '0') * 10 + (q[4] - '0')) * 60 + (q[6] - '0') * 10 + (q[7] - '0');
        q += 2;
        *keyn = (size_t)(q - p);
        memcpy(key, p, *keyn);
        memcpy(key + *keyn, ":00:00", 6);
        *keyn += 6;
        q += 6;
        if (q < e && *q == '.' && q + 1 < e && ISDIGIT(q[1])) {
            q++;
            while (q < e && ISDIGIT(*q)) q++;
        }
    } else {
        /* `(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d+))?(Z|[+-]\d\d:?\d\d)? ` */
        if (e - p < 21) return 0;
        static const char SHAPE[] = "dddd-dd-ddTdd:dd:dd";
        for (int i = 0; i < 19; i++) {
            char s = SHAPE[i], c = p[i];
            if (s == 'd' ? !ISDIGIT(c) : s == 'T' ? (c != 'T' && c != ' ') : c != s) return 0;
        }
        *secs = ((p[14] - '0') * 10 + (p[15] - '0')) * 60 + (p[17] - '0') * 10 + (p[18] - '0');
        memcpy(key, p, 13);
        memcpy(key + 13, ":00:00", 6);
        size_t kn = 19;
        q = p + 19;
        if (q + 1 < e && (*q == '.' || *q == ',') && ISDIGIT(q[1])) {
            q++;
            int n = 0;
            int64_t us = 0;
            while (q < e && ISDIGIT(*q)) {
                if (n < 6) us = us * 10 + (*q - '0');
                n++;
                q++;
            }
            for (; n < 6; n++) us *= 10;
            *micro = us;
        }
        if (q < e && *q == 'Z') {
            key[kn++] = *q++;
        } else if (q < e && (*q == '+' || *q == '-')) {
            const char *z = q + 1;
            if (e - z >= 4 && ISDIGIT(z[0]) && ISDIGIT(z[1])) {
                z += 2;
                if (*z == ':') z++;
                if (e - z >= 2 && ISDIGIT(z[0]) && ISDIGIT(z[1])) {
                    z += 2;
                    memcpy(key + kn, q, (size_t)(z - q));
                    kn += (size_t)(z - q);
                    q = z;
                }
            }
        }
        *keyn = kn;
    }
    /* ` (\S+) ` host, then the program */
    if (q >= e || *q != ' ') return 0;
    q++;
    const char *h = q;
    q = token_end(q, e);
    if (q == h || q >= e) return 0;
    *prog = q + 1;
    return 1;
}

/* `([^\s\[]+?)(?:\[(\d+)\])?: ` -> the end of the program name and the message start */
static int program(const char *p, const char *e, const char **pe, const char **msg) {
    const char *q = p;
    while (q < e && *q != ' ' && *q != '[') {
        if (*q == ':' && q + 1 < e && q[1] == ' ') break;
        q++;
    }
    if (q == p || q >= e) return 0;
    *pe = q;
    if (*q == ':') {
        *msg = q + 2;
        return 1;
    }
    if (*q != '[') return 0;
    q++;
    const char *d = q;
    while (q < e && ISDIGIT(*q)) q++;
    if (q == d || !STARTS(q, e, "]: ")) return 0;
    *msg = q + 3;
    return 1;
}

static int line(Scan *s, const char *p, const char *e) {
    char key[64];
    size_t keyn;
    int secs;
    int64_t micro;
    const char *prog, *pe, *msg;
    if (e - p > MAX_SCAN_LINE) return 0;
    unsigned char bad = 0;
    for (const char *q = p; q < e; q++) {
        unsigned char c = (unsigned char)*q;
        bad |= (unsigned char)((c < 0x20) | (c > 0x7e));
    }
    if (bad || e - p < 20) return 0;
    if (!ISUPPER(p[0]) && !ISDIGIT(p[0])) return 0;
    if (!header(p, e, key, &keyn, &secs, &micro, &prog)) return 0;
    if (!program(prog, e, &pe, &msg)) return 0;
    int fresh;
    Ent *hr;
    if (s->last_hour && keyn == s->last_keyn && memcmp(key, s->last_key, keyn) == 0) {
        hr = s->last_hour;
    } else {
        hr = tab_get(&s->t[T_STAMP], key, keyn, &fresh);
        if (!hr) return -1;
        if (fresh) {
            PyObject *k = PyBytes_FromStringAndSize(key, (Py_ssize_t)keyn);
            PyObject *r = k ? PyObject_CallFunctionObjArgs(s->stamp_cb, k, NULL) : NULL;
            Py_XDECREF(k);
            if (!r) return -1;
            double d;
            int mon, valid;
            if (!PyArg_ParseTuple(r, "dii", &d, &mon, &valid)) {
                Py_DECREF(r);
                return -1;
            }
            Py_DECREF(r);
            hr->d = d;
            hr->v[0] = valid;
            hr->v[1] = mon;
        }
        /* the pointer stays valid until the stamp table grows: only new keys grow it */
        s->last_hour = hr;
        memcpy(s->last_key, key, keyn);
        s->last_keyn = keyn;
    }
    if (!hr->v[0]) return 0; /* a time the parser computes otherwise (0.0): leave it */
    if (hr->v[1]) s->months |= 1u << hr->v[1];
    double whole = hr->d + (double)secs;
    double ts = micro ? whole + (double)micro / 1e6 : whole;
    /* Outside the window: the parser gives every headed line an event with this time,
       and the window drops it, whatever the message says. */
    if ((s->has_since && ts < s->since) || (s->has_until && ts >= s->until)) return 2;
    Ent *pg = tab_get(&s->t[T_PROGRAM], prog, (size_t)(pe - prog), &fresh);
    if (!pg) return -1;
    if (fresh) {
        PyObject *k = PyBytes_FromStringAndSize(prog, pe - prog);
        PyObject *r = k ? PyObject_CallFunctionObjArgs(s->program_cb, k, NULL) : NULL;
        Py_XDECREF(k);
        if (!r) return -1;
        pg->aux = PyObject_IsTrue(r);
        Py_DECREF(r);
        if (pg->aux < 0) return -1;
    }
    if (!pg->aux) {
        s->lines++;
        s->other++;
        return 1;
    }
    When w;
    w.ts = ts;
    w.hour = ts == 0.0 ? 0 : (int64_t)(floor(whole / 3600.0) * 3600.0);
    int r = message(s, msg, e, &w);
    if (r == 1) {
        s->lines++;
        s->postfix++;
        if (ts > 0) {
            if (!s->have_t || ts < s->tmin) s->tmin = ts;
            if (!s->have_t || ts > s->tmax) s->tmax = ts;
            s->have_t = 1;
        }
    }
    return r;
}

static PyObject *table_dict(Tab *t) {
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    for (size_t i = 0; i < t->cap; i++) {
        Ent *x = &t->e[i];
        if (!x->used) continue;
        PyObject *k = PyUnicode_DecodeASCII(t->arena + x->off, x->len, NULL);
        PyObject *v = k ? PyLong_FromLongLong(x->v[0]) : NULL;
        if (!v || PyDict_SetItem(d, k, v) < 0) {
            Py_XDECREF(k);
            Py_XDECREF(v);
            Py_DECREF(d);
            return NULL;
        }
        Py_DECREF(k);
        Py_DECREF(v);
    }
    return d;
}

static PyObject *scan(PyObject *self, PyObject *args) {
    Py_buffer buf;
    Scan s;
    (void)self;
    memset(&s, 0, sizeof s);
    PyObject *since, *until;
    if (!PyArg_ParseTuple(args, "y*OOOOOO", &buf, &s.stamp_cb, &s.program_cb, &s.reject_cb,
                          &s.tail_cb, &since, &until))
        return NULL;
    if (since != Py_None) {
        s.has_since = 1;
        s.since = PyFloat_AsDouble(since);
    }
    if (until != Py_None) {
        s.has_until = 1;
        s.until = PyFloat_AsDouble(until);
    }
    if (PyErr_Occurred()) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    PyObject *result = NULL;
    for (int i = 0; i < N_TABLES; i++)
        if (tab_init(&s.t[i], 64) < 0) {
            PyErr_NoMemory();
            goto done;
        }
    s.odd = PyList_New(0);
    if (!s.odd) goto done;
    const char *p = buf.buf, *end = p + buf.len;
    int64_t total = 0, outside = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        const char *next = nl ? nl + 1 : end;
        total++;
        int r = line(&s, p, e);
        if (r < 0) goto done;
        if (r == 2) {
            outside++;
        } else if (r == 0) {
            PyObject *b = PyBytes_FromStringAndSize(p, next - p);
            if (!b || PyList_Append(s.odd, b) < 0) {
                Py_XDECREF(b);
                goto done;
            }
            Py_DECREF(b);
        }
        p = next;
    }
    PyObject *tables = PyDict_New();
    if (!tables) goto done;
    for (int i = 0; i < N_COUNT_TABLES; i++) {
        PyObject *d = table_dict(&s.t[i]);
        if (!d || PyDict_SetItemString(tables, TABLE_NAMES[i], d) < 0) {
            Py_XDECREF(d);
            Py_DECREF(tables);
            goto done;
        }
        Py_DECREF(d);
    }
    PyObject *senders = PyDict_New(), *hours = PyDict_New(), *rejects = PyList_New(0),
             *kinds = PyList_New(N_KINDS);
    int ok = senders && hours && rejects && kinds;
    for (int i = 0; ok && i < N_KINDS; i++) {
        PyObject *v = PyLong_FromLongLong(s.kinds[i]);
        if (!v) ok = 0;
        else PyList_SET_ITEM(kinds, i, v);
    }
    Tab *t = &s.t[T_SENDER];
    for (size_t i = 0; ok && i < t->cap; i++) {
        Ent *x = &t->e[i];
        if (!x->used) continue;
        PyObject *k = PyUnicode_DecodeASCII(t->arena + x->off, x->len, NULL);
        PyObject *v = Py_BuildValue("(LLL)", (long long)x->v[0], (long long)x->v[1],
                                    (long long)x->v[2]);
        ok = k && v && PyDict_SetItem(senders, k, v) == 0;
        Py_XDECREF(k);
        Py_XDECREF(v);
    }
    t = &s.t[T_HOURLY];
    for (size_t i = 0; ok && i < t->cap; i++) {
        Ent *x = &t->e[i];
        if (!x->used) continue;
        int64_t hour;
        memcpy(&hour, t->arena + x->off, sizeof hour);
        PyObject *k = PyLong_FromLongLong(hour);
        PyObject *v = Py_BuildValue("(LLL)", (long long)x->v[0], (long long)x->v[1],
                                    (long long)x->v[2]);
        ok = k && v && PyDict_SetItem(hours, k, v) == 0;
        Py_XDECREF(k);
        Py_XDECREF(v);
    }
    t = &s.t[T_REJECT_TEXT];
    for (size_t i = 0; ok && i < t->cap; i++) {
        Ent *x = &t->e[i];
        if (!x->used || !x->v[0]) continue;
        const char *k = t->arena + x->off;
        int mode = k[0];
        size_t an = strlen(k + 1); /* the action ends at the NUL */
        PyObject *v = Py_BuildValue("(y#y#iL)", k + 1, (Py_ssize_t)an, k + an + 2,
                                    (Py_ssize_t)(x->len - an - 2), mode, (long long)x->v[0]);
        ok = v && PyList_Append(rejects, v) == 0;
        Py_XDECREF(v);
    }
    if (ok)
        result = Py_BuildValue("{s:L,s:L,s:L,s:L,s:L,s:O,s:O,s:O,s:O,s:O,s:O,s:I,s:i}", "total", (long long)total, "lines",
                               (long long)s.lines, "outside", (long long)outside, "postfix",
                               (long long)s.postfix, "other", (long long)s.other, "kinds",
                               kinds, "tables", tables, "senders", senders, "hourly", hours,
                               "rejects", rejects, "odd", s.odd, "months", s.months, "unsure",
                               s.unsure);
    if (result && s.have_t) {
        PyObject *a = PyFloat_FromDouble(s.tmin), *b = PyFloat_FromDouble(s.tmax);
        if (!a || !b || PyDict_SetItemString(result, "tmin", a) < 0 ||
            PyDict_SetItemString(result, "tmax", b) < 0)
            Py_CLEAR(result);
        Py_XDECREF(a);
        Py_XDECREF(b);
    }
    Py_XDECREF(senders);
    Py_XDECREF(hours);
    Py_XDECREF(rejects);
    Py_XDECREF(kinds);
    Py_DECREF(tables);
done:
    Py_XDECREF(s.odd);
    for (int i = 0; i < N_TABLES; i++) tab_free(&s.t[i]);
    PyBuffer_Release(&buf);
    return result;
}

/* add_counts(target, source): target[k] = target.get(k, 0) + v for each k, v of source,
   in source's order: Counter.update(mapping) without its per-key Python loop. */
static PyObject *add_counts(PyObject *self, PyObject *args) {
    PyObject *target, *source, *key, *value;
    Py_ssize_t pos = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "O!O!", &PyDict_Type, &target, &PyDict_Type, &source))
        return NULL;
    if (target == source) {
        PyErr_SetString(PyExc_ValueError, "add_counts: target and source are the same dict");
        return NULL;
    }
    while (PyDict_Next(source, &pos, &key, &value)) {
        PyObject *old = PyDict_GetItemWithError(target, key); /* borrowed */
        int rc;
        if (old == NULL) {
            if (PyErr_Occurred()) return NULL;
            if (PyLong_CheckExact(value)) { /* value + 0 is value */
                rc = PyDict_SetItem(target, key, value);
            } else {
                PyObject *zero = PyLong_FromLong(0);
                PyObject *sum = zero ? PyNumber_Add(value, zero) : NULL;
                Py_XDECREF(zero);
                if (sum == NULL) return NULL;
                rc = PyDict_SetItem(target, key, sum);
                Py_DECREF(sum);
            }
        } else {
            PyObject *sum = PyNumber_Add(old, value);
            if (sum == NULL) return NULL;
            rc = PyDict_SetItem(target, key, sum);
            Py_DECREF(sum);
        }
        if (rc < 0) return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef METHODS[] = {
    {"scan", scan, METH_VARARGS,
     "scan(block, stamp_cb, program_cb, reject_cb, tail_cb) -> dict of counters"},
    {"add_counts", add_counts, METH_VARARGS,
     "add_counts(target, source): Counter.update(source) of two dicts of counts"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "postharden.logs._scan",
                                    "Compiled line scanner of postharden logs.", -1, METHODS,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__scan(void) {
    PyObject *m = PyModule_Create(&MODULE);
    if (m && PyModule_AddIntConstant(m, "VERSION", 1) < 0) Py_CLEAR(m);
    return m;
}
