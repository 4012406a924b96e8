/* Compiled line scanner for `postharden logs` (see cscan.py and docs/commands/logs.md).

   A Scanner walks blocks of whole lines. A line it recognises (printable ASCII, classic
   syslog / maillog_file or RFC 3339 header, a message of one of the frequent Postfix
   shapes) is counted straight into the tables the report needs; every other line is
   returned as bytes for the exact Python parser. Every rule below mirrors a rule of
   parser.py (the regex it stands for is quoted); where the regex could backtrack into a
   different answer, the line is left to the parser. Values that need Python's own
   arithmetic or text rules (the time of a stamp, whether a program is Postfix's, the auth
   counts of a disconnect, where the reply text of an unusual reject starts) come from
   callbacks, called once per distinct value and remembered across blocks.

   Each block is counted into tables of its own (`blk`); `commit` adds them to the
   tables of the range (`acc`), so a block the caller refuses (rescanned exactly) leaves
   the range untouched, and `take` hands one table to Python as a dict in the order its
   keys were first counted. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <math.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define MAX_SCAN_LINE 32768
#define CACHE_LIMIT 16384 /* distinct values a callback cache remembers before it starts over */
#define CACHE_BYTES (4u << 20) /* ... or bytes of keys */
#define BATCH 16          /* lookups of a merge whose memory is fetched together */

/* --- a table: bytes key -> counters, entries in insertion order ------------------------ */

#define INLINE_KEY 16 /* keys up to this long are kept in their entry (one cache line) */

typedef struct {
    uint64_t h;
    uint32_t off; /* of a longer key in the arena */
    uint32_t len;
    char inl[INLINE_KEY];
    int64_t v[3];
    union {
        int64_t aux;
        double d;
    };
} Ent;

typedef struct {
    uint64_t *slot; /* 0: free; else (high 32 bits of the hash) << 32 | (entry index + 1) */
    size_t cap;     /* slots, a power of two, at least twice the entries */
    Ent *e;         /* entries, in insertion order */
    size_t n, ecap;
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

static int tab_init(Tab *t) {
    memset(t, 0, sizeof *t);
    t->cap = 64;
    t->ecap = 32;
    t->acap = 1024;
    t->slot = PyMem_Calloc(t->cap, sizeof *t->slot);
    t->e = PyMem_Malloc(t->ecap * sizeof *t->e);
    t->arena = PyMem_Malloc(t->acap);
    return t->slot && t->e && t->arena ? 0 : -1;
}

static void tab_free(Tab *t) {
    PyMem_Free(t->slot);
    PyMem_Free(t->e);
    PyMem_Free(t->arena);
    memset(t, 0, sizeof *t);
}

static void tab_clear(Tab *t) {
    if (t->n) memset(t->slot, 0, t->cap * sizeof *t->slot);
    t->n = 0;
    t->alen = 0;
}

static int tab_grow(Tab *t) {
    size_t cap = t->cap * 2;
    uint64_t *slot = PyMem_Calloc(cap, sizeof *slot);
    if (!slot) return -1;
    for (size_t i = 0; i < t->n; i++) {
        uint64_t h = t->e[i].h;
        size_t j = h & (cap - 1);
        while (slot[j]) j = (j + 1) & (cap - 1);
        slot[j] = (h >> 32 << 32) | (uint64_t)(i + 1);
    }
    PyMem_Free(t->slot);
    t->slot = slot;
    t->cap = cap;
    return 0;
}

static inline const char *key_of(const Tab *t, const Ent *x) {
    return x->len <= INLINE_KEY ? x->inl : t->arena + x->off;
}

static inline int key_eq(const char *a, const char *b, size_t n) {
    if (n >= 8 && n <= 16) { /* two overlapping words */
        uint64_t x, y, u, v;
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        memcpy(&u, a + n - 8, 8);
        memcpy(&v, b + n - 8, 8);
        return x == y && u == v;
    }
    return memcmp(a, b, n) == 0;
}

/* The entry of KEY with hash H (created with zero counters when new: *fresh = 1); NULL
   (MemoryError set) on no memory. An entry pointer stays valid until the next new key of the same table. */
static Ent *tab_get_h(Tab *t, const char *k, size_t n, uint64_t h, int *fresh) {
    size_t mask = t->cap - 1, j = h & mask;
    uint64_t tag = h >> 32 << 32;
    for (;;) {
        uint64_t sl = t->slot[j];
        if (!sl) break;
        if ((sl & 0xffffffff00000000ULL) == tag) {
            Ent *x = &t->e[(uint32_t)sl - 1];
            if (x->len == n && key_eq(key_of(t, x), k, n)) {
                *fresh = 0;
                return x;
            }
        }
        j = (j + 1) & mask;
    }
    if (n > UINT32_MAX || t->alen + n > UINT32_MAX || t->n + 1 >= UINT32_MAX) goto nomem;
    if ((t->n + 1) * 2 > t->cap) {
        if (tab_grow(t) < 0) goto nomem;
        mask = t->cap - 1;
        j = h & mask;
        while (t->slot[j]) j = (j + 1) & mask;
    }
    if (t->n == t->ecap) {
        Ent *e = PyMem_Realloc(t->e, 2 * t->ecap * sizeof *e);
        if (!e) goto nomem;
        t->e = e;
        t->ecap *= 2;
    }
    Ent *x = &t->e[t->n];
    memset(x, 0, sizeof *x);
    x->h = h;
    x->len = (uint32_t)n;
    if (n <= INLINE_KEY) {
        memcpy(x->inl, k, n);
    } else {
        if (t->alen + n > t->acap) {
            size_t acap = t->acap * 2;
            while (acap < t->alen + n) acap *= 2;
            char *a = PyMem_Realloc(t->arena, acap);
            if (!a) goto nomem;
            t->arena = a;
            t->acap = acap;
        }
        memcpy(t->arena + t->alen, k, n);
        x->off = (uint32_t)t->alen;
        t->alen += n;
    }
    t->slot[j] = tag | (uint64_t)(t->n + 1);
    t->n++;
    *fresh = 1;
    return x;
nomem:
    PyErr_NoMemory();
    return NULL;
}

static Ent *tab_get(Tab *t, const char *k, size_t n, int *fresh) {
    return tab_get_h(t, k, n, hash_bytes(k, n), fresh);
}

/* Bring the slots of T for the hashes H[0..m), then the entries they hold, into the
   cache: the lookups that follow do not wait for memory one after the other. */
static void fetch_batch(const Tab *t, const uint64_t *h, size_t m) {
    size_t mask = t->cap - 1;
    for (size_t q = 0; q < m; q++) __builtin_prefetch(&t->slot[h[q] & mask]);
    for (size_t q = 0; q < m; q++) {
        uint64_t sl = t->slot[h[q] & mask];
        if (sl) __builtin_prefetch(&t->e[(uint32_t)sl - 1]);
    }
}

/* --- the tables -------------------------------------------------------------------------- */

enum {
    T_SASL_CLIENT, T_SASL_TAIL, T_SASL_MECH, T_RELAY_CLIENT, T_REJECT_CLIENT, T_REJECT_STAGE,
    T_TLS, T_DELIVERIES, T_DEFERRED_DOMAIN, T_BOUNCED_DOMAIN, T_LOGIN_USER, T_LOGIN_USER_CLIENT,
    T_LOGIN_USER_HOUR, T_AUTH_FAIL_DISC, T_CONN_PROBLEMS, T_POSTSCREEN, T_WARNINGS,
    T_REJECT_REASON, T_REJECT_RBL, T_POLICY_SERVERS, T_OTHER_ACTIONS,
    T_SENDER, /* sender -> messages, bytes, recipients */
    N_TABLES, /* the tables Python sees by name (TABLES) and may take one by one */
    T_HOURLY = N_TABLES, /* 8-byte hour -> rejects, relay_denied, sasl_failures */
    N_PART_TABLES
};

static const char *const TABLE_NAMES[N_TABLES] = {
    "sasl_fail_client", "sasl_tail", "sasl_fail_mech", "relay_client", "reject_client",
    "reject_stage", "tls_protocols", "deliveries", "deferred_domain", "bounced_domain",
    "login_user", "login_user_client", "login_user_hour", "auth_fail_disconnect",
    "connection_problems", "postscreen", "warnings", "reject_reason", "reject_rbl",
    "policy_servers", "other_actions", "sender",
};

/* Scanner.scan's `full`: the kinds of lines whose samples (Tally.unparsed_samples,
   fatal_samples) the range has all of; other lines of these kinds go to the parser, which
   keeps their text. */
enum { FULL_UNPARSED = 1, FULL_FATAL = 2 };

/* Caches of callback answers and rule results, kept across blocks. */
enum {
    C_REJECT_TEXT, /* reply text -> aux = -1 (left to the parser) or 1, v = reason, list name */
    C_REPLY_TEXT,  /* the same for the text after the client of another reply shape */
    C_STAMP,       /* stamp -> d = seconds, v = usable, month */
    C_PROGRAM,     /* program -> aux = is Postfix */
    C_DISC_TAIL,   /* disconnect tail -> aux = auth failures */
    N_CACHES
};

enum {
    K_CONNECT, K_DISCONNECT, K_CLIENT, K_SASL_LOGIN, K_MESSAGE_ID, K_QUEUED, K_DELIVERY,
    K_REMOVED, K_REJECT, K_SASL_FAILURE, K_SASL_ABORTED, K_LOST_CONNECTION, K_TIMEOUT,
    K_TOO_MANY_ERRORS, K_TLS_ESTABLISHED, K_PIPELINING, K_POSTSCREEN, K_EXPIRED, K_PICKUP,
    K_BOUNCE_NOTICE, K_DELIVERY_PROBLEM, K_LIFECYCLE, K_WARNING, K_RATE_LIMIT, K_ERROR, K_FATAL,
    K_PANIC, K_UNPARSED, N_KINDS
};

/* What a block (blk) or a range (acc) counted. */
typedef struct {
    Tab t[N_PART_TABLES];
    int64_t kinds[N_KINDS];
    int64_t lines, postfix, other;
    int64_t bytes, rcpts; /* sums over T_SENDER: no entry can overflow while these do not */
    double tmin, tmax;
    int have_t;
} Part;

typedef struct {
    PyObject_HEAD
    Part blk, acc;
    Tab c[N_CACHES];
    PyObject *stamp_cb, *program_cb, *tail_cb, *reply_cb;
    int ready;
    /* the block being scanned */
    int year;
    double since, until;
    int has_since, has_until;
    unsigned months;
    int unsure;
    int full; /* FULL_*: the range has all the samples of a kind: count its lines here */
    PyObject *odd;
    /* the last hour key and its entry: consecutive lines mostly share it */
    char last_key[64];
    size_t last_keyn;
    Py_ssize_t last_hour; /* entry index in C_STAMP, -1: none */
    /* the last hour counted into the block's T_HOURLY, and its entry (-1: none) */
    int64_t hour;
    Py_ssize_t hour_entry;
    /* the decimal text of the last hour of a SASL login (0 characters: none) */
    int64_t hour_of_text;
    char hour_text[24];
    size_t hour_textn;
} Scan;

static int part_init(Part *p) {
    memset(p, 0, sizeof *p);
    for (int i = 0; i < N_PART_TABLES; i++)
        if (tab_init(&p->t[i]) < 0) return -1;
    return 0;
}

static void part_free(Part *p) {
    for (int i = 0; i < N_PART_TABLES; i++) tab_free(&p->t[i]);
}

static void part_clear(Part *p) {
    for (int i = 0; i < N_PART_TABLES; i++) tab_clear(&p->t[i]);
    memset(p->kinds, 0, sizeof p->kinds);
    p->lines = p->postfix = p->other = p->bytes = p->rcpts = 0;
    p->tmin = p->tmax = 0;
    p->have_t = 0;
}

/* The entry of KEY in cache C; a full cache starts over (its values are pure functions of
   the key). */
static Ent *cache_get(Scan *s, int c, const char *k, size_t n, int *fresh) {
    Tab *t = &s->c[c];
    if (t->n >= CACHE_LIMIT || t->alen >= CACHE_BYTES) {
        tab_clear(t);
        if (c == C_STAMP) s->last_hour = -1;
    }
    return tab_get(t, k, n, fresh);
}

/* A callback failed: forget its cache (the entry it was filling is not valid). */
static int cache_fail(Scan *s, int c) {
    tab_clear(&s->c[c]);
    if (c == C_STAMP) s->last_hour = -1;
    return -1;
}

static int count_h(Scan *s, int table, const char *k, size_t n, uint64_t h, int64_t by) {
    int fresh;
    Ent *x = tab_get_h(&s->blk.t[table], k, n, h, &fresh);
    if (!x) return -1;
    x->v[0] += by;
    return 0;
}

static int count(Scan *s, int table, const char *k, size_t n, int64_t by) {
    return count_h(s, table, k, n, hash_bytes(k, n), by);
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

/* Character classes, for the loops that walk a line byte by byte. */
enum { CL_DIGIT = 1, CL_UPPER = 2, CL_LOWER = 4, CL_ACTION = 8, CL_PROGRAM_END = 16 };
static unsigned char CLS[256];

static void init_classes(void) {
    for (int c = 0; c < 256; c++) {
        unsigned char k = 0;
        if (ISDIGIT(c)) k |= CL_DIGIT;
        if (ISUPPER(c)) k |= CL_UPPER;
        if (ISLOWER(c)) k |= CL_LOWER | CL_ACTION;
        if (c == '_' || c == '-') k |= CL_ACTION;
        if (c == ' ' || c == '[' || c == ':') k |= CL_PROGRAM_END;
        CLS[c] = k;
    }
}
#define CL(c) CLS[(unsigned char)(c)]

static int starts(const char *p, const char *e, const char *lit, size_t n) {
    return (size_t)(e - p) >= n && memcmp(p, lit, n) == 0;
}
#define STARTS(p, e, lit) starts((p), (e), (lit), sizeof(lit) - 1)

/* The first byte of [p, e) that is A, B or C (e when none): 16 bytes at a time where SSE2
   is (a byte loop costs several times more per byte). */
static inline const char *upto3(const char *p, const char *e, char a, char b, char c) {
#if defined(__SSE2__)
    const __m128i va = _mm_set1_epi8(a), vb = _mm_set1_epi8(b), vc = _mm_set1_epi8(c);
    while (e - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, va), _mm_cmpeq_epi8(v, vb)),
                                   _mm_cmpeq_epi8(v, vc));
        unsigned m = (unsigned)_mm_movemask_epi8(hit);
        if (m) return p + __builtin_ctz(m);
        p += 16;
    }
#endif
    while (p < e && *p != a && *p != b && *p != c) p++;
    return p;
}
#define UPTO1(p, e, a) upto3((p), (e), (a), (a), (a))
#define UPTO2(p, e, a, b) upto3((p), (e), (a), (b), (b))

/* The end of the run of ASCII digits at p. */
static inline const char *digits(const char *p, const char *e) {
#if defined(__SSE2__)
    const __m128i zero = _mm_set1_epi8('0'), nine = _mm_set1_epi8(9);
    while (e - p >= 16) {
        __m128i x = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)p), zero);
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(x, nine), x));
        if (m != 0xffff) return p + __builtin_ctz(~m);
        p += 16;
    }
#endif
    while (p < e && ISDIGIT(*p)) p++;
    return p;
}

/* The first LIT in [p, e), or NULL: candidates by its first byte that is not a space. */
static inline const char *find(const char *p, const char *e, const char *lit, size_t n) {
    if ((size_t)(e - p) < n) return NULL;
    size_t k = lit[0] == ' ' && n > 1 ? 1 : 0;
    const char *q = p + k, *last = e - n + k; /* where lit[k] can be */
    for (;;) {
        q = UPTO1(q, last + 1, lit[k]);
        if (q > last) return NULL;
        if (memcmp(q - k, lit, n) == 0) return q - k;
        q++;
    }
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
    p = upto3(p, e, ' ', '[', ']');
    if (p >= e || *p != '[') return NULL;
    const char *a = ++p;
    p = UPTO2(p, e, ']', ' ');
    if (p >= e || *p != ']') return NULL;
    *ip = a;
    *ipn = (size_t)(p - a);
    p++;
    if (p + 1 < e && *p == ':' && ISDIGIT(p[1])) p = digits(p + 1, e);
    return p;
}

static const char *token_end(const char *p, const char *e) {
    return UPTO1(p, e, ' ');
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
    Tab *t = &s->blk.t[T_HOURLY];
    if (s->hour_entry >= 0 && hour == s->hour) return &t->e[s->hour_entry];
    int fresh;
    Ent *x = tab_get(t, (const char *)&hour, sizeof hour, &fresh);
    if (x) {
        s->hour = hour;
        s->hour_entry = x - t->e;
    }
    return x;
}

/* The decimal digits of the hour of a SASL login (str(int) in Python). */
static size_t hour_digits(Scan *s, int64_t hour, const char **out) {
    if (s->hour_textn == 0 || hour != s->hour_of_text) {
        char tmp[24];
        size_t n = 0;
        uint64_t u = hour < 0 ? (uint64_t)0 - (uint64_t)hour : (uint64_t)hour;
        do {
            tmp[n++] = (char)('0' + u % 10);
            u /= 10;
        } while (u);
        if (hour < 0) tmp[n++] = '-';
        for (size_t i = 0; i < n; i++) s->hour_text[i] = tmp[n - 1 - i];
        s->hour_textn = n;
        s->hour_of_text = hour;
    }
    *out = s->hour_text;
    return s->hour_textn;
}

/* Message rules. Each returns 1 when the line was counted, 0 to leave it to the parser,
   -1 on a Python error. */

static int queued(Scan *s, const char *p, const char *e) {
    /* `from=<?([^>,]*)>?, size=(\d+), nrcpt=(\d+)` */
    p += 5;
    if (p < e && *p == '<') p++;
    const char *a = p;
    p = UPTO2(p, e, '>', ',');
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
    Ent *x = tab_get(&s->blk.t[T_SENDER], a, an, &fresh);
    if (!x) return -1;
    x->v[0] += 1;
    if (__builtin_add_overflow(x->v[1], size, &x->v[1]) ||
        __builtin_add_overflow(x->v[2], nrcpt, &x->v[2]) ||
        __builtin_add_overflow(s->blk.bytes, size, &s->blk.bytes) ||
        __builtin_add_overflow(s->blk.rcpts, nrcpt, &s->blk.rcpts))
        s->unsure = 1;
    s->blk.kinds[K_QUEUED]++;
    return 1;
}

static int expired(Scan *s, const char *p, const char *e) {
    /* `from=<?([^>,]*)>?, status=(\S*expired)` (after `_QUEUED` failed) */
    p += 5;
    if (p < e && *p == '<') p++;
    p = UPTO2(p, e, '>', ',');
    if (p < e && *p == '>') p++;
    if (!STARTS(p, e, ", status=")) return 0;
    p += 9;
    const char *t = token_end(p, e);
    if (!FIND(p, t, "expired")) return 0;
    if (count(s, T_DELIVERIES, "expired", 7, 1) < 0) return -1;
    s->blk.kinds[K_EXPIRED]++;
    return 1;
}

static int delivery(Scan *s, const char *p, const char *e) {
    /* `to=<?([^>,]*)>?, (?:orig_to=<?[^>,]*>?, )?relay=([^,]*), .*?dsn=(\d\.\d{1,3}\.\d{1,3}),
       status=(\S+)(?: \((.*)\))?$` */
    p += 3;
    if (p < e && *p == '<') p++;
    const char *rcpt = p;
    p = UPTO2(p, e, '>', ',');
    size_t rn = (size_t)(p - rcpt);
    if (p < e && *p == '>') p++;
    if (!STARTS(p, e, ", ")) return 0;
    p += 2;
    if (STARTS(p, e, "orig_to=")) {
        const char *q = p + 8;
        if (q < e && *q == '<') q++;
        q = UPTO2(q, e, '>', ',');
        if (q < e && *q == '>') q++;
        if (STARTS(q, e, ", ")) p = q + 2;
    }
    if (!STARTS(p, e, "relay=")) return 0;
    p += 6;
    p = UPTO1(p, e, ',');
    if (!STARTS(p, e, ", ")) return 0;
    p += 2;
    const char *st = NULL, *se = NULL;
    for (const char *d = FIND(p, e, "dsn="); d; d = FIND(d + 1, e, "dsn=")) {
        const char *q = d + 4;
        if (!(q < e && ISDIGIT(*q))) continue;
        q++;
        if (!(q < e && *q == '.')) continue;
        q++;
        int n = (int)(digits(q, e) - q);
        q += n;
        if (n < 1 || n > 3 || !(q < e && *q == '.')) continue;
        q++;
        n = (int)(digits(q, e) - q);
        q += n;
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
    s->blk.kinds[K_DELIVERY]++;
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
        q = UPTO2(q, e, ',', ' ');
        if (q > p + 14) p = q;
    }
    const char *user = NULL;
    size_t un = 0;
    if (STARTS(p, e, ", sasl_username=")) {
        user = p + 16;
        const char *q = user;
        q = UPTO1(q, e, ',');
        un = (size_t)(q - user);
    }
    if (!un) {
        s->blk.kinds[K_CLIENT]++;
        return 1;
    }
    const char *k;
    size_t kn;
    ip_key(ip, ipn, &k, &kn);
    const char *hb;
    size_t hn = hour_digits(s, w->hour, &hb);
    if (count(s, T_LOGIN_USER, user, un, 1) < 0 ||
        count2(s, T_LOGIN_USER_CLIENT, user, un, '\0', k, kn) < 0 ||
        count2(s, T_LOGIN_USER_HOUR, user, un, '\0', hb, hn) < 0)
        return -1;
    s->blk.kinds[K_SASL_LOGIN]++;
    return 1;
}


/* --- reject reasons: parser.classify_reason ------------------------------------------------ */

enum {
    R_RELAY_DENIED, R_RBL, R_UNKNOWN_USER, R_POLICY_SERVICE, R_GREYLISTING, R_SMUGGLING,
    R_PIPELINING, R_SIZE, R_SENDER_LOGIN_MISMATCH, R_CLIENT_HOSTNAME, R_CLIENT_ACCESS, R_HELO,
    R_SENDER_DOMAIN, R_SENDER_SYNTAX, R_SENDER_ACCESS, R_RECIPIENT_DOMAIN, R_RECIPIENT_SYNTAX,
    R_RECIPIENT_ACCESS, R_PROTOCOL, R_TOO_MANY_CONNECTIONS, R_STORAGE, R_RATE, R_ACCESS,
    R_OTHER, R_MILTER, N_REASONS
};

static const char *const REASON_NAMES[N_REASONS] = {
    "relay_denied", "rbl", "unknown_user", "policy_service", "greylisting", "smuggling",
    "pipelining", "size", "sender_login_mismatch", "client_hostname", "client_access", "helo",
    "sender_domain", "sender_syntax", "sender_access", "recipient_domain", "recipient_syntax",
    "recipient_access", "protocol", "too_many_connections", "storage", "rate", "access",
    "other", "milter",
};

#define MAX_REJECT_TEXT 4200

/* The reason class of a printable-ASCII reply text (ASCII lower case is str.lower() there)
   and, for "rbl", where its list name is: `blocked using ([^;,\s]+)` searched in the text
   as it is (*dlen = 0: no name). -1 when the text is too long for the buffer. */
static int classify(const char *t, size_t n, size_t *doff, size_t *dlen) {
    char low[MAX_REJECT_TEXT];
    if (n > sizeof low) return -1;
    for (size_t i = 0; i < n; i++) low[i] = ISUPPER(t[i]) ? (char)(t[i] + 32) : t[i];
    const char *e = low + n;
#define HAS(lit) (FIND(low, e, lit) != NULL)
    *dlen = 0;
    if (HAS("relay access denied")) return R_RELAY_DENIED;
    if (HAS("blocked using")) {
        const char *te = t + n;
        for (const char *q = FIND(t, te, "blocked using "); q; q = FIND(q + 1, te, "blocked using ")) {
            const char *a = q + 14, *z = a;
            while (z < te && *z != ';' && *z != ',' && *z != ' ') z++;
            if (z > a) {
                *doff = (size_t)(a - t);
                *dlen = (size_t)(z - a);
                break;
            }
        }
        return R_RBL;
    }
    if (HAS("user unknown") || HAS("unknown user") || HAS("mailbox unavailable"))
        return R_UNKNOWN_USER;
    if (HAS("server configuration problem") || HAS("server configuration error"))
        return R_POLICY_SERVICE;
    if (HAS("greylist")) return R_GREYLISTING;
    if (HAS("bare <lf>") || HAS("bare newline")) return R_SMUGGLING;
    if (HAS("pipelining")) return R_PIPELINING;
    if (HAS("message size exceeds") || HAS("too big")) return R_SIZE;
    if (HAS("not owned by user")) return R_SENDER_LOGIN_MISMATCH;
    if (HAS("client host rejected"))
        return HAS("cannot find your") || HAS("reverse hostname") ? R_CLIENT_HOSTNAME
                                                                  : R_CLIENT_ACCESS;
    if (HAS("helo command rejected")) return R_HELO;
    if (HAS("sender address rejected"))
        return HAS("domain not found")       ? R_SENDER_DOMAIN
               : HAS("need fully-qualified") ? R_SENDER_SYNTAX
                                             : R_SENDER_ACCESS;
    if (HAS("recipient address rejected"))
        return HAS("domain not found")       ? R_RECIPIENT_DOMAIN
               : HAS("need fully-qualified") ? R_RECIPIENT_SYNTAX
                                             : R_RECIPIENT_ACCESS;
    if (HAS("protocol error")) return R_PROTOCOL;
    if (HAS("too many connections") || HAS("all server ports busy")) return R_TOO_MANY_CONNECTIONS;
    if (HAS("insufficient system storage")) return R_STORAGE;
    if (HAS("too many recipients") || HAS("rate limit")) return R_RATE;
    if (HAS("access denied")) return R_ACCESS;
    return R_OTHER;
#undef HAS
}

static const char *const REJECT_ACTIONS[] = {"reject", "milter-reject", "proxy-reject", "defer",
                                             "defer_if_permit"};

static int is_reject_action(const char *act, size_t actn) {
    for (size_t i = 0; i < sizeof REJECT_ACTIONS / sizeof *REJECT_ACTIONS; i++)
        if (strlen(REJECT_ACTIONS[i]) == actn && memcmp(REJECT_ACTIONS[i], act, actn) == 0)
            return 1;
    return 0;
}

/* The class of a reject text (of a reject action) into cache entry X: aux -1 when the text
   could move the parser's split (the line goes to the parser), else 1 with v = (reason,
   offset and length of the RBL list name). Mode 0: TEXT is the reply text after
   `NNN N.N.N [<addr>: ]`, up to the envelope; mode 1: everything after the client, whose
   reply text parser._reject finds with its regexes (reply_cb -> (start, end)). */
static int text_class(Scan *s, const char *text, size_t tn, int mode, Ent *x) {
    const char *te = text + tn;
    x->aux = -1;
    if (FIND(text, te, " from ") ||
        (mode == 0 && (FIND(text, te, "from=<") || FIND(text, te, "to=<") ||
                       FIND(text, te, "proto="))))
        return 0;
    size_t start = 0, end = tn;
    if (mode) {
        PyObject *r = PyObject_CallFunction(s->reply_cb, "y#", text, (Py_ssize_t)tn);
        if (!r) return -1;
        Py_ssize_t a, b;
        int ok = PyArg_ParseTuple(r, "nn", &a, &b);
        Py_DECREF(r);
        if (!ok) return -1;
        if (a < 0 || b < a || (size_t)b > tn) {
            PyErr_SetString(PyExc_ValueError, "reply_cb: span outside the text");
            return -1;
        }
        start = (size_t)a;
        end = (size_t)b;
    }
    size_t doff = 0, dlen = 0;
    int reason = classify(text + start, end - start, &doff, &dlen);
    if (reason < 0) return 0;
    x->aux = 1;
    x->v[0] = reason;
    x->v[1] = (int64_t)(start + doff);
    x->v[2] = (int64_t)dlen;
    return 0;
}

#define N_STAGES 12
static const char *const STAGES[N_STAGES] = {"CONNECT", "HELO", "EHLO", "MAIL", "RCPT", "DATA",
                                             "BDAT", "END-OF-MESSAGE", "VRFY", "ETRN", "AUTH",
                                             "STARTTLS"};
static uint64_t STAGE_HASH[N_STAGES], REASON_HASH[N_REASONS];

static void init_hashes(void) {
    for (int i = 0; i < N_STAGES; i++) STAGE_HASH[i] = hash_bytes(STAGES[i], strlen(STAGES[i]));
    for (int i = 0; i < N_REASONS; i++)
        REASON_HASH[i] = hash_bytes(REASON_NAMES[i], strlen(REASON_NAMES[i]));
}

static int reject(Scan *s, const char *p, const char *e, When *w) {
    /* `([a-z][a-z_-]*): (STAGE) (?:(.*?) )?from CLIENT(?:: |; |$)(.*)$`, then
       `_ENVELOPE.search` and `_REPLY.match` on the rest (see fastscan.py). */
    const char *act = p;
    while (p < e && (CL(*p) & CL_ACTION)) p++;
    size_t actn = (size_t)(p - act);
    if (actn > 28 || !STARTS(p, e, ": ")) return 0;
    p += 2;
    const char *stage = p;
    size_t stn = 0, si;
    for (si = 0; si < N_STAGES; si++) {
        size_t n = strlen(STAGES[si]);
        if (starts(p, e, STAGES[si], n) && starts(p + n, e, " from ", 6)) {
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
    int n = (int)(digits(p, e) - p);
    p += n;
    if (n < 1 || n > 3 || !(p < e && *p == '.')) goto whole;
    p++;
    n = (int)(digits(p, e) - p);
    p += n;
    if (n < 1 || n > 3 || !(p < e && *p == ' ')) goto whole;
    p++;
    /* `<addr>: `: an address with a one-word reason trigger could change the class */
    if (p < e && *p == '<') {
        const char *q = p + 1;
        q = upto3(q, e, '>', ' ', '<');
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
            z = UPTO2(z, e, '>', ' ');
            if (STARTS(z, e, "> ")) r = z + 2;
        }
        if (STARTS(r, e, "to=<")) {
            const char *z = r + 4;
            z = UPTO2(z, e, '>', ' ');
            if (STARTS(z, e, "> ")) r = z + 2;
        }
        if (!STARTS(r, e, "proto=")) continue;
        r += 6;
        const char *z = token_end(r, e);
        if (z == r) continue;
        if (z != e) {
            if (!STARTS(z, e, " helo=<")) continue;
            const char *h = z + 7;
            h = UPTO2(h, e, '>', ' ');
            if (!(h + 1 == e && *h == '>')) continue;
        }
        te = q;
        break;
    }
    if (!te) goto whole;
    goto keyed;
whole:
    /* another reply shape: reply_cb finds the reply text in everything after the client
       as parser._reject does (envelope, reply code, DSN) */
    mode = 1;
    text = rest;
    te = e;
keyed:;
    size_t tn = (size_t)(te - text);
    if (tn > MAX_REJECT_TEXT) return 0;
    if (!is_reject_action(act, actn)) {
        s->blk.kinds[K_REJECT]++;
        return count(s, T_OTHER_ACTIONS, act, actn, 1) < 0 ? -1 : 1;
    }
    int fresh, c = mode ? C_REPLY_TEXT : C_REJECT_TEXT;
    Ent *x = cache_get(s, c, text, tn, &fresh);
    if (!x) return -1;
    if (fresh && text_class(s, text, tn, mode, x) < 0) return cache_fail(s, c);
    if (x->aux < 0) return 0; /* a text that could move the parser's split */
    int reason = (int)x->v[0];
    size_t doff = (size_t)x->v[1], dlen = (size_t)x->v[2];
    if (actn == 13 && memcmp(act, "milter-reject", 13) == 0) {
        reason = reason == R_GREYLISTING ? R_GREYLISTING : R_MILTER;
        dlen = 0;
    }
    s->blk.kinds[K_REJECT]++;
    const char *k;
    size_t kn;
    ip_key(ip, ipn, &k, &kn);
    uint64_t kh = hash_bytes(k, kn);
    const char *rn = REASON_NAMES[reason];
    if (count_h(s, T_REJECT_REASON, rn, strlen(rn), REASON_HASH[reason], 1) < 0 ||
        count_h(s, T_REJECT_CLIENT, k, kn, kh, 1) < 0 ||
        count_h(s, T_REJECT_STAGE, stage, stn, STAGE_HASH[si], 1) < 0)
        return -1;
    if (reason == R_RBL && dlen && count(s, T_REJECT_RBL, text + doff, dlen, 1) < 0) return -1;
    if (reason == R_POLICY_SERVICE && count(s, T_POLICY_SERVERS, "(451 4.3.5 reply)", 17, 1) < 0)
        return -1;
    Ent *h = hourly(s, w->hour);
    if (!h) return -1;
    h->v[0]++;
    if (reason == R_RELAY_DENIED) {
        if (count_h(s, T_RELAY_CLIENT, k, kn, kh, 1) < 0) return -1;
        h->v[1]++;
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
        s->blk.kinds[K_SASL_ABORTED]++;
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
    s->blk.kinds[K_SASL_FAILURE]++;
    return 1;
}

static int disconnect(Scan *s, const char *p, const char *e) {
    /* `disconnect from CLIENT(.*)$` */
    const char *ip;
    size_t ipn;
    p = client(p + 16, e, &ip, &ipn);
    if (!p) return 0;
    int fresh;
    Ent *x = cache_get(s, C_DISC_TAIL, p, (size_t)(e - p), &fresh);
    if (!x) return -1;
    if (fresh) {
        PyObject *r = PyObject_CallFunction(s->tail_cb, "y#", p, (Py_ssize_t)(e - p));
        if (!r) return cache_fail(s, C_DISC_TAIL);
        x->aux = PyLong_AsLong(r);
        Py_DECREF(r);
        if (x->aux == -1 && PyErr_Occurred()) return cache_fail(s, C_DISC_TAIL);
    }
    if (x->aux) {
        const char *k;
        size_t kn;
        ip_key(ip, ipn, &k, &kn);
        if (count(s, T_AUTH_FAIL_DISC, k, kn, x->aux) < 0) return -1;
    }
    s->blk.kinds[K_DISCONNECT]++;
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
        q = digits(q, e);
        if (STARTS(q, e, " bytes)")) p = q + 7;
    }
    if (!STARTS(p, e, " from ")) return 0;
    const char *ip;
    size_t ipn;
    if (!client(p + 6, e, &ip, &ipn)) return 0;
    if (count2(s, T_CONN_PROBLEMS, name, strlen(name), ':', stage, sn) < 0) return -1;
    s->blk.kinds[kind]++;
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
        p = digits(p, e);
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
    s->blk.kinds[K_TLS_ESTABLISHED]++;
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
        p = digits(p, e);
    }
    if (STARTS(p, e, " after ") && p + 7 < e && (ISDIGIT(p[7]) || p[7] == '.')) {
        p += 7;
        while (p < e && (ISDIGIT(*p) || *p == '.')) p++;
    }
    if (STARTS(p, e, " rank ") && p + 6 < e && ISDIGIT(p[6])) {
        p += 6;
        p = digits(p, e);
    }
    if (STARTS(p, e, " for"))
        p += 4;
    else if (STARTS(p, e, " from"))
        p += 5;
    if (!STARTS(p, e, " [")) return 0;
    p += 2;
    const char *a = p;
    p = UPTO1(p, e, ']');
    if (p == a || !STARTS(p, e, "]:") || !(p + 2 < e && ISDIGIT(p[2]))) return 0;
    if (count(s, T_POSTSCREEN, v, vn, 1) < 0) return -1;
    s->blk.kinds[K_POSTSCREEN]++;
    return 1;
}

static int warning(Scan *s, const char *p, const char *e, When *w) {
    /* parser._warning, rule by rule */
    if (FIND(p, e, " authentication ") && FIND(p, e, "SASL")) {
        int r = sasl(s, p, e, w);
        if (r) return r;
        /* `_SASL_FAIL.match` needs `[^\s\[\]]*\[` first: without it the rule cannot match */
        const char *q = p;
        q = upto3(q, e, ' ', '[', ']');
        if (q < e && *q == '[') return 0;
    }
    if (STARTS(p, e, "problem talking to ")) return 0;
    if (FIND(p, e, "limit exceeded")) {
        /* `(.*? limit exceeded): (\d+) from CLIENT for service (\S+)` */
        for (const char *x = FIND(p, e, " limit exceeded: "); x;
             x = FIND(x + 1, e, " limit exceeded: ")) {
            const char *q = x + 17, *d = q;
            q = digits(q, e);
            if (q == d || !STARTS(q, e, " from ")) continue;
            const char *ip;
            size_t ipn;
            q = client(q + 6, e, &ip, &ipn);
            if (!q || !STARTS(q, e, " for service ") || !(q + 13 < e && q[13] != ' ')) continue;
            s->blk.kinds[K_RATE_LIMIT]++;
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
    s->blk.kinds[K_WARNING]++;
    return 1;
}

/* `(NOQUEUE|[0-9A-Z]{5,24}|(?=[A-Za-z]*\d)[0-9A-Za-z]{10,20}): ` -> the message after it */
static const char *queue_id(const char *p, const char *e) {
    size_t n; /* the run of letters and digits at p (any n > 24 is no queue ID) */
    int lower, digit;
#if defined(__SSE2__)
    if (e - p >= 32) {
        const __m128i zero = _mm_set1_epi8('0'), a = _mm_set1_epi8('a'),
                      upper_a = _mm_set1_epi8('A'), nine = _mm_set1_epi8(9),
                      z25 = _mm_set1_epi8(25);
        uint32_t d = 0, l = 0, u = 0;
        for (int half = 0; half < 2; half++) {
            __m128i v = _mm_loadu_si128((const __m128i *)(p + 16 * half)), x;
            x = _mm_sub_epi8(v, zero);
            d |= (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(x, nine), x)) << 16 * half;
            x = _mm_sub_epi8(v, upper_a);
            u |= (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(x, z25), x)) << 16 * half;
            x = _mm_sub_epi8(v, a);
            l |= (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(x, z25), x)) << 16 * half;
        }
        uint32_t other = ~(d | u | l);
        n = other ? (size_t)__builtin_ctz(other) : 32;
        uint32_t below = n < 32 ? (1u << n) - 1 : ~0u;
        lower = (l & below) != 0;
        digit = (d & below) != 0;
    } else
#endif
    {
        const char *q = p, *lim = e - p > 25 ? p + 25 : e;
        unsigned seen = 0;
        for (; q < lim; q++) {
            unsigned k = CL(*q);
            if (!(k & (CL_DIGIT | CL_UPPER | CL_LOWER))) break;
            seen |= k;
        }
        n = (size_t)(q - p);
        lower = (seen & CL_LOWER) != 0;
        digit = (seen & CL_DIGIT) != 0;
    }
    if (n > 24 || !STARTS(p + n, e, ": ")) return p;
    if ((n == 7 && memcmp(p, "NOQUEUE", 7) == 0) || (!lower && n >= 5) ||
        (digit && n >= 10 && n <= 20))
        return p + n + 2;
    return p;
}

static int message(Scan *s, const char *m, const char *e, When *w) {
    const char *p = queue_id(m, e);
    char c = p < e ? *p : 0;
    if (c == 'w' && STARTS(p, e, "warning: ")) return warning(s, p + 9, e, w);
    /* `fatal: `, `panic: `, `error: ` after the queue ID: FATAL, PANIC, ERROR events */
    int severity = STARTS(p, e, "fatal: ")   ? K_FATAL
                   : STARTS(p, e, "panic: ") ? K_PANIC
                   : STARTS(p, e, "error: ") ? K_ERROR
                                             : -1;
    if (severity >= 0) {
        if (severity != K_ERROR && !(s->full & FULL_FATAL)) return 0;
        s->blk.kinds[severity]++;
        return 1;
    }
    if (ISLOWER(c)) {
        /* `first.islower() and ": " in msg[:32]` and `_REJECT.match`: a message that
           starts with `[a-z][a-z_-]*: ` is a reject or none of the shapes below */
        const char *q = p;
        while (q < e && (CL(*q) & CL_ACTION)) q++;
        if (STARTS(q, e, ": ")) return q - p <= 28 ? reject(s, p, e, w) : 0;
    }
    switch (c) {
    case 'c':
        if (STARTS(p, e, "connect to ") || STARTS(p, e, "conversation with ")) {
            s->blk.kinds[K_DELIVERY_PROBLEM]++;
            return 1;
        }
        if (STARTS(p, e, "cache ")) {
            s->blk.kinds[K_LIFECYCLE]++;
            return 1;
        }
        if (STARTS(p, e, "connect from ")) {
            const char *ip;
            size_t ipn;
            const char *q = client(p + 13, e, &ip, &ipn);
            if (q != e) return 0;
            s->blk.kinds[K_CONNECT]++;
            return 1;
        }
        if (STARTS(p, e, "client=")) return client_line(s, p, e, w);
        return 0;
    case 'd':
        if (STARTS(p, e, "disconnect from ")) return disconnect(s, p, e);
        if (STARTS(p, e, "daemon started")) {
            s->blk.kinds[K_LIFECYCLE]++;
            return 1;
        }
        return 0;
    case 'l':
        if (STARTS(p, e, "lost connection after "))
            return after(s, p, e, K_LOST_CONNECTION, "lost_connection", 22);
        if (STARTS(p, e, "lost connection with ")) {
            s->blk.kinds[K_DELIVERY_PROBLEM]++;
            return 1;
        }
        return 0;
    case 't':
        if (STARTS(p, e, "timeout after ")) return after(s, p, e, K_TIMEOUT, "timeout", 14);
        if (STARTS(p, e, "too many errors after "))
            return after(s, p, e, K_TOO_MANY_ERRORS, "too_many_errors", 22);
        if (STARTS(p, e, "to=")) {
            int r = delivery(s, p, e);
            /* no rule of the parser takes a `to=` message _DELIVERY does not match, and
               _DELIVERY needs `relay=`: without it the line is UNPARSED */
            if (r || (s->full & FULL_UNPARSED) == 0 || FIND(p, e, "relay=")) return r;
            s->blk.kinds[K_UNPARSED]++;
            return 1;
        }
        if (STARTS(p, e, "terminating on signal") || STARTS(p, e, "table ")) {
            s->blk.kinds[K_LIFECYCLE]++;
            return 1;
        }
        return 0;
    case 'm':
        if (STARTS(p, e, "message-id=")) {
            s->blk.kinds[K_MESSAGE_ID]++;
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
            s->blk.kinds[K_PICKUP]++;
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
                s->blk.kinds[K_BOUNCE_NOTICE]++;
                return 1;
            }
        }
        return 0;
    case 'h':
        if (STARTS(p, e, "host ")) {
            s->blk.kinds[K_DELIVERY_PROBLEM]++;
            return 1;
        }
        return 0;
    case 'r':
        if (e - p == 7 && memcmp(p, "removed", 7) == 0) {
            s->blk.kinds[K_REMOVED]++;
            return 1;
        }
        if (STARTS(p, e, "reload -- ")) {
            s->blk.kinds[K_LIFECYCLE]++;
            return 1;
        }
        return 0;
    case 'i':
        if (STARTS(p, e, "improper command pipelining after ")) {
            const char *q = token_end(p + 34, e);
            const char *ip;
            size_t ipn;
            if (q == p + 34 || !STARTS(q, e, " from ") || !client(q + 6, e, &ip, &ipn)) return 0;
            s->blk.kinds[K_PIPELINING]++;
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
            q = digits(q, e);
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
    for (;; q++) {
        q = upto3(q, e, ' ', '[', ':');
        if (q >= e || *q != ':' || (q + 1 < e && q[1] == ' ')) break;
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
    q = digits(q, e);
    if (q == d || !STARTS(q, e, "]: ")) return 0;
    *msg = q + 3;
    return 1;
}


/* The end of the line at p (its newline, or END) and whether a byte of it is outside
   printable ASCII (*bad): one pass. */
static inline const char *line_end(const char *p, const char *end, int *bad) {
    int b = 0;
#if defined(__SSE2__)
    const __m128i space = _mm_set1_epi8(' '), del = _mm_set1_epi8(0x7f), nl = _mm_set1_epi8('\n');
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        /* signed: bytes from 0x80 are below ' ' too */
        unsigned out = (unsigned)_mm_movemask_epi8(
            _mm_or_si128(_mm_cmplt_epi8(v, space), _mm_cmpeq_epi8(v, del)));
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, nl));
        if (m) {
            *bad = b | ((out & ((1u << __builtin_ctz(m)) - 1)) != 0);
            return p + __builtin_ctz(m);
        }
        b |= out != 0;
        p += 16;
    }
#endif
    for (; p < end && *p != '\n'; p++) b |= (unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e;
    *bad = b;
    return p;
}

#define NO_HOUR INT64_MIN

/* `int(ts // 3600 * 3600)` of Tally.add, for a time without its fraction */
static int64_t hour_of(double whole) {
    return (int64_t)(floor(whole / 3600.0) * 3600.0);
}

static int line(Scan *s, const char *p, const char *e, int bad) {
    char key[64];
    size_t keyn;
    int secs;
    int64_t micro;
    const char *prog, *pe, *msg;
    if (bad || e - p > MAX_SCAN_LINE || e - p < 20) return 0;
    if (!ISUPPER(p[0]) && !ISDIGIT(p[0])) return 0;
    if (!header(p, e, key, &keyn, &secs, &micro, &prog)) return 0;
    if (!program(prog, e, &pe, &msg)) return 0;
    int fresh;
    Ent *hr;
    if (s->last_hour >= 0 && keyn == s->last_keyn && key_eq(key, s->last_key, keyn)) {
        hr = &s->c[C_STAMP].e[s->last_hour];
    } else {
        hr = cache_get(s, C_STAMP, key, keyn, &fresh);
        if (!hr) return -1;
        if (fresh) {
            PyObject *r = PyObject_CallFunction(s->stamp_cb, "y#i", key, (Py_ssize_t)keyn,
                                                s->year);
            if (!r) return cache_fail(s, C_STAMP);
            double d;
            int mon, valid;
            int ok = PyArg_ParseTuple(r, "dii", &d, &mon, &valid);
            Py_DECREF(r);
            if (!ok) return cache_fail(s, C_STAMP);
            hr->d = d;
            hr->v[0] = valid;
            hr->v[1] = mon;
            /* the hour of a line of this stamp while its seconds are below 3600: one value
               when the first and the last give the same (floor is monotonic) */
            int64_t first = hour_of(d), last = hour_of(d + 3599.0);
            hr->v[2] = first == last ? first : NO_HOUR;
        }
        s->last_hour = hr - s->c[C_STAMP].e;
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
    Ent *pg = cache_get(s, C_PROGRAM, prog, (size_t)(pe - prog), &fresh);
    if (!pg) return -1;
    if (fresh) {
        PyObject *r = PyObject_CallFunction(s->program_cb, "y#", prog, (Py_ssize_t)(pe - prog));
        if (!r) return cache_fail(s, C_PROGRAM);
        pg->aux = PyObject_IsTrue(r);
        Py_DECREF(r);
        if (pg->aux < 0) return cache_fail(s, C_PROGRAM);
    }
    if (!pg->aux) {
        s->blk.lines++;
        s->blk.other++;
        return 1;
    }
    When w;
    w.ts = ts;
    w.hour = ts == 0.0 ? 0 : hr->v[2] != NO_HOUR && secs < 3600 ? hr->v[2] : hour_of(whole);
    int r = message(s, msg, e, &w);
    if (r == 1) {
        Part *b = &s->blk;
        b->lines++;
        b->postfix++;
        if (ts > 0) {
            if (!b->have_t || ts < b->tmin) b->tmin = ts;
            if (!b->have_t || ts > b->tmax) b->tmax = ts;
            b->have_t = 1;
        }
    }
    return r;
}

/* --- the Scanner type ----------------------------------------------------------------------- */

static int Scanner_init(Scan *s, PyObject *args, PyObject *kwds) {
    static char *kw[] = {"stamp_cb", "program_cb", "tail_cb", "reply_cb", NULL};
    PyObject *cb[4];
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOO", kw, &cb[0], &cb[1], &cb[2], &cb[3]))
        return -1;
    if (s->ready) {
        PyErr_SetString(PyExc_RuntimeError, "Scanner is already initialised");
        return -1;
    }
    for (int i = 0; i < 4; i++)
        if (!PyCallable_Check(cb[i])) {
            PyErr_SetString(PyExc_TypeError, "Scanner: the callbacks must be callable");
            return -1;
        }
    if (part_init(&s->blk) < 0 || part_init(&s->acc) < 0) goto nomem;
    for (int i = 0; i < N_CACHES; i++)
        if (tab_init(&s->c[i]) < 0) goto nomem;
    Py_INCREF(cb[0]);
    Py_INCREF(cb[1]);
    Py_INCREF(cb[2]);
    Py_INCREF(cb[3]);
    s->stamp_cb = cb[0];
    s->program_cb = cb[1];
    s->tail_cb = cb[2];
    s->reply_cb = cb[3];
    s->last_hour = -1;
    s->year = INT_MIN;
    s->ready = 1;
    return 0;
nomem:
    PyErr_NoMemory();
    return -1;
}

static void Scanner_dealloc(Scan *s) {
    part_free(&s->blk);
    part_free(&s->acc);
    for (int i = 0; i < N_CACHES; i++) tab_free(&s->c[i]);
    Py_XDECREF(s->stamp_cb);
    Py_XDECREF(s->program_cb);
    Py_XDECREF(s->tail_cb);
    Py_XDECREF(s->reply_cb);
    Py_XDECREF(s->odd);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static int ready(Scan *s) {
    if (!s->ready) PyErr_SetString(PyExc_RuntimeError, "Scanner is not initialised");
    return s->ready;
}

static PyObject *sizes(Part *p) {
    PyObject *t = PyTuple_New(N_TABLES);
    for (int i = 0; t && i < N_TABLES; i++) {
        PyObject *v = PyLong_FromSize_t(p->t[i].n);
        if (!v) {
            Py_CLEAR(t);
            break;
        }
        PyTuple_SET_ITEM(t, i, v);
    }
    return t;
}

/* scan(block, year, since, until, full=0) -> (odd lines, unsure, months bit set, sizes of
   the block's tables). */
static PyObject *Scanner_scan(Scan *s, PyObject *args) {
    Py_buffer buf;
    int year;
    PyObject *since, *until;
    int full = 0;
    if (!ready(s) || !PyArg_ParseTuple(args, "y*iOO|i", &buf, &year, &since, &until, &full))
        return NULL;
    s->full = full;
    PyObject *result = NULL;
    s->has_since = since != Py_None;
    s->since = s->has_since ? PyFloat_AsDouble(since) : 0;
    s->has_until = until != Py_None;
    s->until = s->has_until ? PyFloat_AsDouble(until) : 0;
    if (PyErr_Occurred()) goto done;
    if (year != s->year) { /* the stamp callback dates yearless stamps in YEAR */
        tab_clear(&s->c[C_STAMP]);
        s->last_hour = -1;
        s->year = year;
    }
    part_clear(&s->blk);
    s->hour_entry = -1;
    s->months = 0;
    s->unsure = 0;
    Py_CLEAR(s->odd);
    s->odd = PyList_New(0);
    if (!s->odd) goto done;
    const char *p = buf.buf, *end = p + buf.len;
    while (p < end) {
        int bad;
        const char *e = line_end(p, end, &bad);
        const char *next = e < end ? e + 1 : end;
        int r = line(s, p, e, bad);
        if (r < 0) goto done;
        if (r == 0) {
            PyObject *b = PyBytes_FromStringAndSize(p, next - p);
            if (!b || PyList_Append(s->odd, b) < 0) {
                Py_XDECREF(b);
                goto done;
            }
            Py_DECREF(b);
        }
        p = next;
    }
    PyObject *n = sizes(&s->blk);
    if (n) result = Py_BuildValue("(OiIN)", s->odd, s->unsure, s->months, n);
done:
    Py_CLEAR(s->odd);
    PyBuffer_Release(&buf);
    return result;
}

static int merge_table(Tab *to, Tab *from, int sender) {
    for (size_t j = 0; j < from->n; j += BATCH) {
        size_t m = from->n - j < BATCH ? from->n - j : BATCH;
        uint64_t hs[BATCH];
        for (size_t q = 0; q < m; q++) hs[q] = from->e[j + q].h;
        fetch_batch(to, hs, m);
        for (size_t q = 0; q < m; q++) {
            Ent *x = &from->e[j + q];
            int fresh;
            Ent *y = tab_get_h(to, key_of(from, x), x->len, x->h, &fresh);
            if (!y) return -1;
            y->v[0] += x->v[0];
            if (sender) { /* cannot overflow: the sums of `to` and `from` do not */
                y->v[1] += x->v[1];
                y->v[2] += x->v[2];
            }
        }
    }
    return 0;
}

/* commit(mask) -> (mask, sizes): add the block to the range: the tables of MASK (bit i:
   TABLES[i]; T_SENDER is left out when its sums could overflow), the hours, kinds, line
   counts and times. -> the tables added, and the sizes of the range's tables. */
static PyObject *Scanner_commit(Scan *s, PyObject *arg) {
    if (!ready(s)) return NULL;
    unsigned long long mask = PyLong_AsUnsignedLongLongMask(arg);
    if (PyErr_Occurred()) return NULL;
    Part *a = &s->acc, *b = &s->blk;
    int64_t bytes, rcpts;
    if ((mask >> T_SENDER & 1) && (__builtin_add_overflow(a->bytes, b->bytes, &bytes) ||
                                   __builtin_add_overflow(a->rcpts, b->rcpts, &rcpts)))
        mask &= ~(1ULL << T_SENDER);
    mask &= (1ULL << N_TABLES) - 1;
    for (int i = 0; i < N_TABLES; i++)
        if ((mask >> i & 1) && merge_table(&a->t[i], &b->t[i], i == T_SENDER) < 0) return NULL;
    if (mask >> T_SENDER & 1) {
        a->bytes = bytes;
        a->rcpts = rcpts;
    }
    Tab *to = &a->t[T_HOURLY], *from = &b->t[T_HOURLY];
    for (size_t i = 0; i < from->n; i++) {
        Ent *x = &from->e[i];
        int fresh;
        Ent *y = tab_get_h(to, key_of(from, x), x->len, x->h, &fresh);
        if (!y) return NULL;
        for (int k = 0; k < 3; k++) y->v[k] += x->v[k];
    }
    for (int k = 0; k < N_KINDS; k++) a->kinds[k] += b->kinds[k];
    a->lines += b->lines;
    a->postfix += b->postfix;
    a->other += b->other;
    if (b->have_t) {
        if (!a->have_t || b->tmin < a->tmin) a->tmin = b->tmin;
        if (!a->have_t || b->tmax > a->tmax) a->tmax = b->tmax;
        a->have_t = 1;
    }
    return Py_BuildValue("(KN)", mask, sizes(a));
}

/* take(table, range) -> dict: TABLES[table] of the range (range true) or of the block, in
   the order its keys were first counted; the table is emptied. The sender table gives
   (messages, bytes, recipients) tuples. */
static PyObject *Scanner_take(Scan *s, PyObject *args) {
    int table, range;
    if (!ready(s) || !PyArg_ParseTuple(args, "ip", &table, &range)) return NULL;
    if (table < 0 || table >= N_TABLES) {
        PyErr_SetString(PyExc_IndexError, "Scanner.take: no such table");
        return NULL;
    }
    Part *part = range ? &s->acc : &s->blk;
    Tab *t = &part->t[table];
    PyObject *d = PyDict_New();
    for (size_t i = 0; d && i < t->n; i++) {
        Ent *x = &t->e[i];
        PyObject *k = PyUnicode_DecodeASCII(key_of(t, x), x->len, NULL);
        PyObject *v = table == T_SENDER ? Py_BuildValue("(LLL)", (long long)x->v[0],
                                                        (long long)x->v[1], (long long)x->v[2])
                                        : PyLong_FromLongLong(x->v[0]);
        if (!k || !v || PyDict_SetItem(d, k, v) < 0) Py_CLEAR(d);
        Py_XDECREF(k);
        Py_XDECREF(v);
    }
    if (d) {
        tab_clear(t);
        if (table == T_SENDER) part->bytes = part->rcpts = 0;
    }
    return d;
}

/* totals() -> (kinds, lines, postfix, other, tmin, tmax, hours) of the range: tmin and
   tmax None when no line had a time; hours {hour: (rejects, relay_denied, sasl_failures)}. */
static PyObject *Scanner_totals(Scan *s, PyObject *unused) {
    (void)unused;
    if (!ready(s)) return NULL;
    Part *a = &s->acc;
    PyObject *kinds = PyTuple_New(N_KINDS), *hours = PyDict_New();
    int ok = kinds && hours;
    for (int i = 0; ok && i < N_KINDS; i++) {
        PyObject *v = PyLong_FromLongLong(a->kinds[i]);
        if (!v) ok = 0;
        else PyTuple_SET_ITEM(kinds, i, v);
    }
    Tab *t = &a->t[T_HOURLY];
    for (size_t i = 0; ok && i < t->n; i++) {
        Ent *x = &t->e[i];
        int64_t hour;
        memcpy(&hour, key_of(t, x), sizeof hour);
        PyObject *k = PyLong_FromLongLong(hour);
        PyObject *v = Py_BuildValue("(LLL)", (long long)x->v[0], (long long)x->v[1],
                                    (long long)x->v[2]);
        ok = k && v && PyDict_SetItem(hours, k, v) == 0;
        Py_XDECREF(k);
        Py_XDECREF(v);
    }
    PyObject *result = NULL;
    if (ok) {
        PyObject *tmin = a->have_t ? PyFloat_FromDouble(a->tmin) : Py_NewRef(Py_None);
        PyObject *tmax = a->have_t ? PyFloat_FromDouble(a->tmax) : Py_NewRef(Py_None);
        if (tmin && tmax)
            result = Py_BuildValue("(OLLLOOO)", kinds, (long long)a->lines,
                                   (long long)a->postfix, (long long)a->other, tmin, tmax, hours);
        Py_XDECREF(tmin);
        Py_XDECREF(tmax);
    }
    Py_XDECREF(kinds);
    Py_XDECREF(hours);
    return result;
}

/* classify(text) -> (reason, RBL list name or None): parser.classify_reason of a
   printable-ASCII text, as the scanner computes it (for tests). */
static PyObject *classify_text(PyObject *self, PyObject *arg) {
    (void)self;
    char *t;
    Py_ssize_t n;
    if (PyBytes_AsStringAndSize(arg, &t, &n) < 0) return NULL;
    size_t doff = 0, dlen = 0;
    int reason = classify(t, (size_t)n, &doff, &dlen);
    if (reason < 0) {
        PyErr_SetString(PyExc_ValueError, "classify: text too long");
        return NULL;
    }
    if (!dlen) return Py_BuildValue("(sO)", REASON_NAMES[reason], Py_None);
    return Py_BuildValue("(ss#)", REASON_NAMES[reason], t + doff, (Py_ssize_t)dlen);
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

/* --- packed tables ---------------------------------------------------------------------------

   A table crosses processes as one bytes object: int64 n, n int64 counts (each >= 0), n
   uint32 key lengths, then the keys as UTF-8 (lone surrogates as `surrogatepass` writes
   them). UTF-8 keeps the order of code points, so comparing two keys' bytes compares the
   str keys as Python does. */

typedef struct {
    const char *counts, *lens, *keys; /* unaligned: read with memcpy */
    size_t n, klen;
} Packed;

static int64_t packed_count(const Packed *p, size_t i) {
    int64_t v;
    memcpy(&v, p->counts + 8 * i, 8);
    return v;
}

static uint32_t packed_len(const Packed *p, size_t i) {
    uint32_t v;
    memcpy(&v, p->lens + 4 * i, 4);
    return v;
}

/* A packed table's parts; -1 (ValueError) when BLOB is not one. */
static int packed_view(PyObject *blob, Packed *p) {
    char *b;
    Py_ssize_t len;
    if (PyBytes_AsStringAndSize(blob, &b, &len) < 0) return -1;
    int64_t n;
    if (len < 8) goto bad;
    memcpy(&n, b, 8);
    if (n < 0 || (uint64_t)n > ((uint64_t)len - 8) / 12) goto bad;
    p->n = (size_t)n;
    p->counts = b + 8;
    p->lens = p->counts + 8 * p->n;
    p->keys = p->lens + 4 * p->n;
    p->klen = (size_t)len - 8 - 12 * p->n;
    size_t total = 0;
    for (size_t i = 0; i < p->n; i++) {
        total += packed_len(p, i);
        if (packed_count(p, i) < 0) goto bad;
    }
    if (total != p->klen) goto bad;
    return 0;
bad:
    PyErr_SetString(PyExc_ValueError, "not a packed table");
    return -1;
}

/* A packed table of N entries and KLEN bytes of keys, to be filled. */
static PyObject *packed_new(size_t n, size_t klen, char **counts, char **lens, char **keys) {
    PyObject *blob = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(8 + 12 * n + klen));
    if (!blob) return NULL;
    char *b = PyBytes_AS_STRING(blob);
    int64_t n64 = (int64_t)n;
    memcpy(b, &n64, 8);
    *counts = b + 8;
    *lens = *counts + 8 * n;
    *keys = *lens + 4 * n;
    return blob;
}

/* Counter V (0, 1, 2) of the entries of T, packed. */
static PyObject *tab_pack(const Tab *t, int v) {
    size_t klen = 0;
    for (size_t i = 0; i < t->n; i++) klen += t->e[i].len;
    char *counts, *lens, *keys;
    PyObject *blob = packed_new(t->n, klen, &counts, &lens, &keys);
    for (size_t i = 0; blob && i < t->n; i++) {
        const Ent *x = &t->e[i];
        memcpy(counts + 8 * i, &x->v[v], 8);
        memcpy(lens + 4 * i, &x->len, 4);
        memcpy(keys, key_of(t, x), x->len);
        keys += x->len;
    }
    return blob;
}

/* The bytes of str KEY in a packed table, or NULL (*tmp: a bytes object to release). */
static const char *key_bytes(PyObject *key, Py_ssize_t *n, PyObject **tmp) {
    *tmp = NULL;
    if (PyUnicode_IS_ASCII(key)) {
        *n = PyUnicode_GET_LENGTH(key);
        return (const char *)PyUnicode_DATA(key);
    }
    *tmp = PyUnicode_AsEncodedString(key, "utf-8", "surrogatepass");
    if (!*tmp) return NULL;
    *n = PyBytes_GET_SIZE(*tmp);
    return PyBytes_AS_STRING(*tmp);
}

/* pack(counter) -> bytes, or None when a key is not a str or a count is not an int in
   [0, 2**63). */
static PyObject *pack(PyObject *self, PyObject *table) {
    (void)self;
    if (!PyDict_Check(table)) {
        PyErr_SetString(PyExc_TypeError, "pack: a dict of counts");
        return NULL;
    }
    PyObject *key, *value;
    Py_ssize_t pos = 0, n, klen = 0;
    while (PyDict_Next(table, &pos, &key, &value)) {
        int overflow;
        if (!PyUnicode_CheckExact(key) || !PyLong_Check(value)) Py_RETURN_NONE;
        long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow || v < 0) Py_RETURN_NONE;
        PyObject *tmp;
        if (!key_bytes(key, &n, &tmp)) return NULL;
        Py_XDECREF(tmp);
        klen += n;
    }
    size_t count = (size_t)PyDict_GET_SIZE(table), i = 0;
    char *counts, *lens, *keys;
    PyObject *blob = packed_new(count, (size_t)klen, &counts, &lens, &keys);
    pos = 0;
    while (blob && PyDict_Next(table, &pos, &key, &value)) {
        int64_t v = PyLong_AsLongLong(value);
        PyObject *tmp;
        const char *k = key_bytes(key, &n, &tmp);
        if (!k || i >= count || n > (Py_ssize_t)UINT32_MAX) { /* the dict changed, or a huge key */
            Py_XDECREF(tmp);
            Py_CLEAR(blob);
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "pack: the table changed");
            break;
        }
        uint32_t kn = (uint32_t)n;
        memcpy(counts + 8 * i, &v, 8);
        memcpy(lens + 4 * i, &kn, 4);
        memcpy(keys, k, (size_t)n);
        keys += n;
        i++;
        Py_XDECREF(tmp);
    }
    return blob;
}

/* unpack(blob) -> dict */
static PyObject *unpack(PyObject *self, PyObject *blob) {
    (void)self;
    Packed p;
    if (packed_view(blob, &p) < 0) return NULL;
    PyObject *d = PyDict_New();
    const char *k = p.keys;
    for (size_t i = 0; d && i < p.n; i++) {
        uint32_t kn = packed_len(&p, i);
        PyObject *key = PyUnicode_DecodeUTF8(k, kn, "surrogatepass");
        PyObject *v = key ? PyLong_FromLongLong(packed_count(&p, i)) : NULL;
        if (!v || PyDict_SetItem(d, key, v) < 0) Py_CLEAR(d);
        Py_XDECREF(key);
        Py_XDECREF(v);
        k += kn;
    }
    return d;
}

/* --- the Merger: the main process's large tables --------------------------------------------
   Tally.merge_counter of packed tables: add, and when the table has more than CAP keys,
   keep the CAP // 2 largest counts, ties broken by key (analyze.prune). */

typedef struct {
    PyObject_HEAD
    Tab *t;
    int64_t *sum; /* of each table's counts: no count can overflow while it does not */
    Py_ssize_t n;
} Merger;

/* Is entry A of T before entry B in the order of a prune (count descending, then key)? */
static int before(const Tab *t, uint32_t a, uint32_t b) {
    const Ent *x = &t->e[a], *y = &t->e[b];
    if (x->v[0] != y->v[0]) return x->v[0] > y->v[0];
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(key_of(t, x), key_of(t, y), n);
    return c ? c < 0 : x->len < y->len;
}

/* Reorder IX so that its first K entries are the first K of the prune order (quickselect,
   pivots from a fixed pseudo-random sequence: the set chosen does not depend on them). */
static void select_first(const Tab *t, uint32_t *ix, size_t n, size_t k) {
    size_t lo = 0, hi = n;
    uint64_t r = 0x2545F4914F6CDD1DULL;
    while (hi - lo > 1) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        size_t m = lo + (size_t)(r % (hi - lo));
        uint32_t pivot = ix[m], tmp;
        ix[m] = ix[hi - 1];
        ix[hi - 1] = pivot;
        size_t i = lo;
        for (size_t j = lo; j < hi - 1; j++)
            if (before(t, ix[j], pivot)) {
                tmp = ix[i];
                ix[i] = ix[j];
                ix[j] = tmp;
                i++;
            }
        ix[hi - 1] = ix[i];
        ix[i] = pivot;
        if (i == k) return;
        if (k < i)
            hi = i;
        else
            lo = i + 1;
    }
}

static int prune_tab(Tab *t, size_t keep, int64_t *sum) {
    uint32_t *ix = PyMem_Malloc(t->n * sizeof *ix);
    Tab kept;
    if (!ix || tab_init(&kept) < 0) {
        PyMem_Free(ix);
        tab_free(&kept);
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < t->n; i++) ix[i] = (uint32_t)i;
    select_first(t, ix, t->n, keep);
    *sum = 0;
    for (size_t i = 0; i < keep; i++) {
        if (i % BATCH == 0) /* the entries of the next batch, scattered in the table */
            for (size_t q = i; q < i + BATCH && q < keep; q++) __builtin_prefetch(&t->e[ix[q]]);
        const Ent *x = &t->e[ix[i]];
        int fresh;
        Ent *y = tab_get_h(&kept, key_of(t, x), x->len, x->h, &fresh);
        if (!y) {
            PyMem_Free(ix);
            tab_free(&kept);
            return -1;
        }
        y->v[0] = x->v[0];
        *sum += x->v[0];
    }
    PyMem_Free(ix);
    tab_free(t);
    *t = kept;
    return 0;
}

static int Merger_init(Merger *m, PyObject *args, PyObject *kwds) {
    static char *kw[] = {"tables", NULL};
    Py_ssize_t n;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "n", kw, &n)) return -1;
    if (m->t || n < 0 || n > 1024) {
        PyErr_SetString(PyExc_ValueError, "Merger(tables): once, with 0 to 1024 tables");
        return -1;
    }
    m->t = PyMem_Calloc((size_t)n + 1, sizeof *m->t);
    m->sum = PyMem_Calloc((size_t)n + 1, sizeof *m->sum);
    if (!m->t || !m->sum) goto nomem;
    m->n = n;
    for (Py_ssize_t i = 0; i < n; i++)
        if (tab_init(&m->t[i]) < 0) goto nomem;
    return 0;
nomem:
    PyErr_NoMemory();
    return -1;
}

static void Merger_dealloc(Merger *m) {
    for (Py_ssize_t i = 0; m->t && i < m->n; i++) tab_free(&m->t[i]);
    PyMem_Free(m->t);
    PyMem_Free(m->sum);
    Py_TYPE(m)->tp_free((PyObject *)m);
}

static int merger_table(Merger *m, Py_ssize_t i) {
    if (!m->t || i < 0 || i >= m->n) {
        PyErr_SetString(PyExc_IndexError, "Merger: no such table");
        return 0;
    }
    return 1;
}

/* merge(table, blobs, cap) -> bool: add the packed tables BLOBS (together one table of a
   tally) to TABLE and prune it when it has more than CAP keys. False, and nothing added,
   when a count could leave int64. */
static PyObject *Merger_merge(Merger *m, PyObject *args) {
    Py_ssize_t i, cap;
    PyObject *blobs;
    if (!PyArg_ParseTuple(args, "nOn", &i, &blobs, &cap) || !merger_table(m, i)) return NULL;
    PyObject *seq = PySequence_Fast(blobs, "Merger.merge: a sequence of packed tables");
    if (!seq) return NULL;
    Py_ssize_t nb = PySequence_Fast_GET_SIZE(seq);
    PyObject *result = NULL;
    Packed *p = PyMem_Calloc((size_t)nb + 1, sizeof *p);
    if (!p) {
        PyErr_NoMemory();
        goto done;
    }
    int64_t sum = m->sum[i];
    for (Py_ssize_t b = 0; b < nb; b++) {
        if (packed_view(PySequence_Fast_GET_ITEM(seq, b), &p[b]) < 0) goto done;
        for (size_t j = 0; j < p[b].n; j++)
            if (__builtin_add_overflow(sum, packed_count(&p[b], j), &sum)) {
                result = Py_NewRef(Py_False);
                goto done;
            }
    }
    Tab *t = &m->t[i];
    for (Py_ssize_t b = 0; b < nb; b++) {
        const char *k = p[b].keys;
        for (size_t j = 0; j < p[b].n; j += BATCH) {
            /* a batch of lookups whose slots, then entries, are fetched together: one
               lookup after the other waits for memory twice each */
            size_t m = p[b].n - j < BATCH ? p[b].n - j : BATCH;
            uint64_t hs[BATCH];
            const char *ks[BATCH];
            for (size_t q = 0; q < m; q++) {
                ks[q] = k;
                hs[q] = hash_bytes(k, packed_len(&p[b], j + q));
                k += packed_len(&p[b], j + q);
            }
            fetch_batch(t, hs, m);
            for (size_t q = 0; q < m; q++) {
                int fresh;
                Ent *x = tab_get_h(t, ks[q], packed_len(&p[b], j + q), hs[q], &fresh);
                if (!x) goto done; /* no memory: the merger is broken, the caller stops */
                x->v[0] += packed_count(&p[b], j + q);
            }
        }
    }
    m->sum[i] = sum;
    if (cap >= 0 && t->n > (size_t)cap && prune_tab(t, (size_t)cap / 2, &m->sum[i]) < 0) goto done;
    result = Py_NewRef(Py_True);
done:
    PyMem_Free(p);
    Py_DECREF(seq);
    return result;
}

/* take(table) -> dict: the table, emptied. */
static PyObject *Merger_take(Merger *m, PyObject *arg) {
    Py_ssize_t i = PyLong_AsSsize_t(arg);
    if ((i == -1 && PyErr_Occurred()) || !merger_table(m, i)) return NULL;
    Tab *t = &m->t[i];
    PyObject *d = PyDict_New();
    for (size_t j = 0; d && j < t->n; j++) {
        const Ent *x = &t->e[j];
        PyObject *key = PyUnicode_DecodeUTF8(key_of(t, x), x->len, "surrogatepass");
        PyObject *v = key ? PyLong_FromLongLong(x->v[0]) : NULL;
        if (!v || PyDict_SetItem(d, key, v) < 0) Py_CLEAR(d);
        Py_XDECREF(key);
        Py_XDECREF(v);
    }
    if (d) {
        tab_clear(t);
        m->sum[i] = 0;
    }
    return d;
}

static PyMethodDef MERGER_METHODS[] = {
    {"merge", (PyCFunction)Merger_merge, METH_VARARGS,
     "merge(table, blobs, cap) -> bool: add packed tables, prune beyond CAP keys"},
    {"take", (PyCFunction)Merger_take, METH_O, "take(table) -> dict: the table, emptied"},
    {NULL, NULL, 0, NULL}};

static PyTypeObject MergerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "postharden.logs._scan.Merger",
    .tp_basicsize = sizeof(Merger),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Merger(tables): tables of counts merged from packed tables, with pruning",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Merger_init,
    .tp_dealloc = (destructor)Merger_dealloc,
    .tp_methods = MERGER_METHODS,
};

/* pack(table) -> the range's table TABLES[table] packed (the sender table: its messages,
   bytes and recipients, three packed tables), emptied. */
static PyObject *Scanner_pack(Scan *s, PyObject *arg) {
    long table = PyLong_AsLong(arg);
    if (!ready(s) || (table == -1 && PyErr_Occurred())) return NULL;
    if (table < 0 || table >= N_TABLES) {
        PyErr_SetString(PyExc_IndexError, "Scanner.pack: no such table");
        return NULL;
    }
    Part *a = &s->acc;
    Tab *t = &a->t[table];
    PyObject *r;
    if (table == T_SENDER) {
        PyObject *m = tab_pack(t, 0), *b = m ? tab_pack(t, 1) : NULL, *n = b ? tab_pack(t, 2) : NULL;
        r = n ? PyTuple_Pack(3, m, b, n) : NULL;
        Py_XDECREF(m);
        Py_XDECREF(b);
        Py_XDECREF(n);
    } else {
        r = tab_pack(t, 0);
    }
    if (r) {
        tab_clear(t);
        if (table == T_SENDER) a->bytes = a->rcpts = 0;
    }
    return r;
}

static PyMethodDef SCANNER_METHODS[] = {
    {"scan", (PyCFunction)Scanner_scan, METH_VARARGS,
     "scan(block, year, since, until, full=0) -> (odd lines, unsure, months, sizes of the "
     "block's tables)"},
    {"commit", (PyCFunction)Scanner_commit, METH_O,
     "commit(mask) -> (mask added, sizes of the range's tables): add the block to the range"},
    {"take", (PyCFunction)Scanner_take, METH_VARARGS,
     "take(table, range) -> dict: one table of the range or of the block, emptied"},
    {"totals", (PyCFunction)Scanner_totals, METH_NOARGS,
     "totals() -> (kinds, lines, postfix, other, tmin, tmax, hours) of the range"},
    {"pack", (PyCFunction)Scanner_pack, METH_O,
     "pack(table) -> packed table of the range (the sender table: three), emptied"},
    {NULL, NULL, 0, NULL}};

static PyTypeObject ScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "postharden.logs._scan.Scanner",
    .tp_basicsize = sizeof(Scan),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Scanner(stamp_cb, program_cb, tail_cb, reply_cb): counts blocks of log lines",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Scanner_init,
    .tp_dealloc = (destructor)Scanner_dealloc,
    .tp_methods = SCANNER_METHODS,
};

static PyMethodDef METHODS[] = {
    {"classify", classify_text, METH_O,
     "classify(text) -> (reason, RBL list name or None), as the scanner classifies"},
    {"add_counts", add_counts, METH_VARARGS,
     "add_counts(target, source): Counter.update(source) of two dicts of counts"},
    {"pack", pack, METH_O, "pack(counter) -> packed table, or None when it cannot be packed"},
    {"unpack", unpack, METH_O, "unpack(packed table) -> dict"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "postharden.logs._scan",
                                    "Compiled line scanner of postharden logs.", -1, METHODS,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__scan(void) {
    init_classes();
    init_hashes();
    if (PyType_Ready(&ScannerType) < 0 || PyType_Ready(&MergerType) < 0) return NULL;
    PyObject *m = PyModule_Create(&MODULE);
    if (!m) return NULL;
    PyObject *names = PyTuple_New(N_TABLES);
    for (int i = 0; names && i < N_TABLES; i++) {
        PyObject *v = PyUnicode_FromString(TABLE_NAMES[i]);
        if (!v) Py_CLEAR(names);
        else PyTuple_SET_ITEM(names, i, v);
    }
    if (!names || PyModule_AddObject(m, "TABLES", names) < 0) {
        Py_XDECREF(names);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddObjectRef(m, "Scanner", (PyObject *)&ScannerType) < 0 ||
        PyModule_AddObjectRef(m, "Merger", (PyObject *)&MergerType) < 0 ||
        PyModule_AddIntConstant(m, "VERSION", 2) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
