/*
 * ingress_egress._native._speedups: the IRC source's direct path, and two small helpers.
 *
 *   DirectPath(...).encode(lines, ids, received_at, monotonic) -> [OutboundMessage | None]
 *       A read's raw lines to their envelopes: a PRIVMSG of the common shape is scanned once
 *       into spans (offsets into the line, no Python objects) and its envelope JSON written
 *       from them; None for each line it declines, which sources/irc/codec/native.py hands
 *       to the Python codec, the reference (EnvelopeBuilder._message, then to_outbound).
 *   DirectPath.set_self_id(user_id or None): lines whose user-id is the bot's own are declined
 *       (the Python codec writes their payload.isSelf; envelope/builder.py set_self_user_id).
 *   split_lines(chunk) -> (lines, invalid)   (sources/irc/transport.py split_lines)
 *   hpub_frames(subject, messages) -> bytes or None   (bus/nats.py hpub_frame of each)
 *
 * The envelope of a chat line is defined twice: in Python (EnvelopeBuilder._message) and
 * here (dp_write); the differential tests and the fuzz target (tests/fuzz) hold them to the
 * same bytes for the same lines and ids. Rules this file keeps (make sanitize checks them):
 * - No state shared with Python: a DirectPath owns what it needs (the OutboundMessage class
 *   and its fields' descriptors, the transport name, the cheermote prefixes, a memo of the
 *   last formatted second), all given to its constructor; ids come in as an argument (80
 *   hex characters per line). Nothing here reads a Python object's private attribute.
 * - A pointer into a str is only used while a strong reference to it is held (a str's
 *   characters never move or change), and the only allocation that can run Python code (a
 *   GC-tracked object: a collection and its callbacks) comes after the line is written.
 * - Declining is always safe: nothing but a pure memo is touched before a line is
 *   accepted, so a declined line decoded by Python gives what Python alone would give.
 * - The public C API only; strings are read through PyUnicode_READ on their own kind, within
 *   [0, length). SHA-1 is written from FIPS 180-4.
 * ABI_VERSION: bump it when the Python side's calls change (a stale build is then refused).
 */
#define ABI_VERSION 6
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__GNUC__) || defined(__clang__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define ALWAYS_INLINE inline
#define LIKELY(x) (x)
#define UNLIKELY(x) (x)
#endif

#if PY_VERSION_HEX < 0x030C0000
#define STR_EXACT(o) (PyUnicode_CheckExact(o) && PyUnicode_IS_READY(o))
#else
#define STR_EXACT(o) PyUnicode_CheckExact(o)
#endif

#define READ(i) PyUnicode_READ(kind, data, (i))

static const char HEX[] = "0123456789abcdef";

/* ------------------------------------------------------------------------------------- */
/* scanning                                                                              */

/* Word-at-a-time search on little-endian machines: a 64-bit word holds 8, 4 or 2 code
 * points of a 1-, 2- or 4-byte kind string, one per lane. Kept because the tag scan is
 * the hottest loop of the direct path (bench/bench_lines.py). */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && \
    (defined(__GNUC__) || defined(__clang__))
#define HAVE_SWAR 1

static ALWAYS_INLINE uint64_t
swar_ones(const int kind) /* 1 in the lowest bit of every lane */
{
    return kind == 1 ? 0x0101010101010101ull
                     : (kind == 2 ? 0x0001000100010001ull : 0x0000000100000001ull);
}

/* The top bit of every lane of x equal to c, exact for the lowest such lane (the one the
 * callers read): the "has a zero lane" test applied to x ^ c. */
static ALWAYS_INLINE uint64_t
swar_eq(uint64_t x, Py_UCS4 c, uint64_t ones, uint64_t highs)
{
    uint64_t y = x ^ (ones * c);
    return (y - ones) & ~y & highs;
}
#endif

/* The first ch in data[start:end], or -1: memchr for 1-byte strings. */
static ALWAYS_INLINE Py_ssize_t
find_char(const int kind, const void *data, Py_ssize_t start, Py_ssize_t end, Py_UCS4 ch)
{
    if (start >= end) {
        return -1;
    }
    if (kind == PyUnicode_1BYTE_KIND) {
        const Py_UCS1 *p = (const Py_UCS1 *)data;
        const Py_UCS1 *hit = memchr(p + start, (int)ch, (size_t)(end - start));
        return hit ? (Py_ssize_t)(hit - p) : -1;
    }
    for (Py_ssize_t i = start; i < end; i++) {
        if (READ(i) == ch) {
            return i;
        }
    }
    return -1;
}

/* find_char for the short spans of a line (prefix parts, emote ranges, badges): a plain
 * loop, no call into memchr for a few characters. */
static ALWAYS_INLINE Py_ssize_t
find_short(const int kind, const void *data, Py_ssize_t a, Py_ssize_t b, Py_UCS4 ch)
{
    for (Py_ssize_t i = a; i < b; i++) {
        if (READ(i) == ch) {
            return i;
        }
    }
    return -1;
}

static ALWAYS_INLINE Py_ssize_t
skip_spaces(const int kind, const void *data, Py_ssize_t pos, Py_ssize_t len)
{
    while (pos < len && READ(pos) == ' ') {
        pos++;
    }
    return pos;
}

static ALWAYS_INLINE int
same_span(const int kind, const void *data, Py_ssize_t a, Py_ssize_t b, Py_ssize_t n)
{
    if (kind == PyUnicode_1BYTE_KIND) {
        return memcmp((const Py_UCS1 *)data + a, (const Py_UCS1 *)data + b, (size_t)n) == 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (READ(a + i) != READ(b + i)) {
            return 0;
        }
    }
    return 1;
}

static ALWAYS_INLINE int
is_ascii_span(const int kind, const void *data, Py_ssize_t a, Py_ssize_t b)
{
    for (Py_ssize_t i = a; i < b; i++) {
        if (READ(i) >= 128) {
            return 0;
        }
    }
    return 1;
}

/* 1: data[a:b] is 1-18 ASCII digits (value in *out); 0: not str.isdigit() (skipped by
 * the reference); 2: isdigit() but not for C (other digits, or longer): decline. */
static int
ascii_number(const int kind, const void *data, Py_ssize_t a, Py_ssize_t b, long long *out)
{
    if (b <= a) {
        return 0;
    }
    int ascii = b - a <= 18;
    long long acc = 0;
    for (Py_ssize_t i = a; i < b; i++) {
        Py_UCS4 c = READ(i);
        if (c >= '0' && c <= '9') {
            if (i - a < 18) { /* 18 digits fit; a longer number declines (below) */
                acc = acc * 10 + (long long)(c - '0');
            }
        }
        else if (c < 128 || !Py_UNICODE_ISDIGIT(c)) {
            return 0;
        }
        else {
            ascii = 0;
        }
    }
    if (!ascii) {
        return 2;
    }
    *out = acc;
    return 1;
}

/* ------------------------------------------------------------------------------------- */
/* envelope ids and times (reference: envelope/ids.py)                                   */

/* SHA-1 of one message: the UUIDv5 of an envelope with a Twitch id. Written here rather
 * than called through hashlib, whose call chain per line (sha1(), digest(), the bytes in
 * between) would add 14% to the direct path (bench/bench_hash.py, 2026-12-06); the scalar
 * form only (no SHA-NI dispatch: a name is two blocks). */
typedef struct {
    uint32_t h[5];
    uint64_t length;
    unsigned char block[64];
    size_t used;
} sha1_ctx;

#define ROTL32(x, n) (((x) << (n)) | ((x) >> (32 - (n))))

/* One 64-byte block, fully unrolled. Round t computes, for (a, b, c, d, e):
 *   e' = ROTL5(a) + f_t(b, c, d) + e + K_t + W_t;  b' = ROTL30(b)
 * and the next round takes the registers renamed (e', a, b', c, d), so nothing moves.
 * W_t for t >= 16 lives in a rolling window of 16 words. */
#define SHA1_CH(b, c, d) ((d) ^ ((b) & ((c) ^ (d))))
#define SHA1_PARITY(b, c, d) ((b) ^ (c) ^ (d))
#define SHA1_MAJ(b, c, d) (((b) & (c)) | ((d) & ((b) | (c))))
#define SHA1_W(t)                                                                      \
    ((t) < 16 ? w[(t) & 15]                                                            \
              : (w[(t) & 15] = ROTL32(w[((t) + 13) & 15] ^ w[((t) + 8) & 15] ^         \
                                          w[((t) + 2) & 15] ^ w[(t) & 15],             \
                                      1)))
#define SHA1_STEP(F, K, a, b, c, d, e, t)                                             \
    do {                                                                               \
        e += ROTL32(a, 5) + F(b, c, d) + (K) + SHA1_W(t);                              \
        b = ROTL32(b, 30);                                                             \
    } while (0)
#define SHA1_FIVE(F, K, t)                                                             \
    SHA1_STEP(F, K, a, b, c, d, e, (t));                                               \
    SHA1_STEP(F, K, e, a, b, c, d, (t) + 1);                                           \
    SHA1_STEP(F, K, d, e, a, b, c, (t) + 2);                                           \
    SHA1_STEP(F, K, c, d, e, a, b, (t) + 3);                                           \
    SHA1_STEP(F, K, b, c, d, e, a, (t) + 4)

static void
sha1_compress(uint32_t h[5], const unsigned char *p)
{
    uint32_t w[16];
    for (int t = 0; t < 16; t++) {
        w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 |
               (uint32_t)p[4 * t + 2] << 8 | (uint32_t)p[4 * t + 3];
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    SHA1_FIVE(SHA1_CH, 0x5A827999u, 0);
    SHA1_FIVE(SHA1_CH, 0x5A827999u, 5);
    SHA1_FIVE(SHA1_CH, 0x5A827999u, 10);
    SHA1_FIVE(SHA1_CH, 0x5A827999u, 15);
    SHA1_FIVE(SHA1_PARITY, 0x6ED9EBA1u, 20);
    SHA1_FIVE(SHA1_PARITY, 0x6ED9EBA1u, 25);
    SHA1_FIVE(SHA1_PARITY, 0x6ED9EBA1u, 30);
    SHA1_FIVE(SHA1_PARITY, 0x6ED9EBA1u, 35);
    SHA1_FIVE(SHA1_MAJ, 0x8F1BBCDCu, 40);
    SHA1_FIVE(SHA1_MAJ, 0x8F1BBCDCu, 45);
    SHA1_FIVE(SHA1_MAJ, 0x8F1BBCDCu, 50);
    SHA1_FIVE(SHA1_MAJ, 0x8F1BBCDCu, 55);
    SHA1_FIVE(SHA1_PARITY, 0xCA62C1D6u, 60);
    SHA1_FIVE(SHA1_PARITY, 0xCA62C1D6u, 65);
    SHA1_FIVE(SHA1_PARITY, 0xCA62C1D6u, 70);
    SHA1_FIVE(SHA1_PARITY, 0xCA62C1D6u, 75);
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

static void
sha1_init(sha1_ctx *ctx)
{
    ctx->h[0] = 0x67452301u;
    ctx->h[1] = 0xEFCDAB89u;
    ctx->h[2] = 0x98BADCFEu;
    ctx->h[3] = 0x10325476u;
    ctx->h[4] = 0xC3D2E1F0u;
    ctx->length = 0;
    ctx->used = 0;
}

static void
sha1_update(sha1_ctx *ctx, const unsigned char *p, size_t n)
{
    ctx->length += (uint64_t)n;
    while (n > 0) {
        size_t take = 64 - ctx->used;
        if (take > n) {
            take = n;
        }
        memcpy(ctx->block + ctx->used, p, take);
        ctx->used += take;
        p += take;
        n -= take;
        if (ctx->used == 64) {
            sha1_compress(ctx->h, ctx->block);
            ctx->used = 0;
        }
    }
}

static void
sha1_final(sha1_ctx *ctx, unsigned char digest[20])
{
    uint64_t bits = ctx->length * 8;
    ctx->block[ctx->used++] = 0x80;
    if (ctx->used > 56) {
        memset(ctx->block + ctx->used, 0, 64 - ctx->used);
        sha1_compress(ctx->h, ctx->block);
        ctx->used = 0;
    }
    memset(ctx->block + ctx->used, 0, 56 - ctx->used);
    for (int i = 0; i < 8; i++) {
        ctx->block[56 + i] = (unsigned char)(bits >> (56 - 8 * i));
    }
    sha1_compress(ctx->h, ctx->block);
    for (int i = 0; i < 5; i++) {
        digest[4 * i] = (unsigned char)(ctx->h[i] >> 24);
        digest[4 * i + 1] = (unsigned char)(ctx->h[i] >> 16);
        digest[4 * i + 2] = (unsigned char)(ctx->h[i] >> 8);
        digest[4 * i + 3] = (unsigned char)ctx->h[i];
    }
}

/* The UUIDv5 (RFC 4122) of namespace + "twitch:" + name, 36 characters into q. */
static void
uuid5_text(char *q, const unsigned char namespace[16], const unsigned char *name, size_t n)
{
    sha1_ctx ctx;
    unsigned char digest[20];
    sha1_init(&ctx);
    sha1_update(&ctx, namespace, 16);
    sha1_update(&ctx, (const unsigned char *)"twitch:", 7);
    sha1_update(&ctx, name, n);
    sha1_final(&ctx, digest);
    digest[6] = (unsigned char)((digest[6] & 0x0F) | 0x50);
    digest[8] = (unsigned char)((digest[8] & 0x3F) | 0x80);
    for (int i = 0, k = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            q[k++] = '-';
        }
        q[k++] = HEX[digest[i] >> 4];
        q[k++] = HEX[digest[i] & 15];
    }
}

static int
hex_value(Py_UCS1 c) /* the ids are lowercase hex (ids.random_hex) */
{
    return (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

/* LineIds.uuid4: 36 characters of a version-4 UUID from 32 hex digits. */
static void
uuid4_text(char *q, const Py_UCS1 *h)
{
    memcpy(q, h, 8);
    q[8] = '-';
    memcpy(q + 9, h + 8, 4);
    q[13] = '-';
    q[14] = '4';
    memcpy(q + 15, h + 13, 3);
    q[18] = '-';
    q[19] = "89ab"[hex_value(h[16]) & 3];
    memcpy(q + 20, h + 17, 3);
    q[23] = '-';
    memcpy(q + 24, h + 20, 12);
}

#define MAX_EPOCH_MS 253402300799999LL /* 9999-12-31T23:59:59.999Z, as ids.MAX_EPOCH_MS */
#define STAMP_LEN 24                    /* 2026-11-22T00:43:48.123Z */

/* The last second formatted (a batch's lines were mostly sent within one second). */
typedef struct {
    long long second;
    char prefix[20]; /* "2026-11-22T00:43:48" */
} second_memo;

static void
put_digits(char *q, unsigned value, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        q[i] = (char)('0' + value % 10);
        value /= 10;
    }
}

/* IsoClock.format_ms for 0 <= ms <= MAX_EPOCH_MS, STAMP_LEN characters into q; gmtime_r
 * does the calendar. */
static int
format_ms(second_memo *memo, long long ms, char *q)
{
    long long second = ms / 1000;
    if (second != memo->second) {
        time_t t = (time_t)second;
        struct tm tm;
        if (gmtime_r(&t, &tm) == NULL) {
            return -1;
        }
        char *p = memo->prefix;
        put_digits(p, (unsigned)(tm.tm_year + 1900), 4);
        p[4] = '-';
        put_digits(p + 5, (unsigned)(tm.tm_mon + 1), 2);
        p[7] = '-';
        put_digits(p + 8, (unsigned)tm.tm_mday, 2);
        p[10] = 'T';
        put_digits(p + 11, (unsigned)tm.tm_hour, 2);
        p[13] = ':';
        put_digits(p + 14, (unsigned)tm.tm_min, 2);
        p[16] = ':';
        put_digits(p + 17, (unsigned)tm.tm_sec, 2);
        memo->second = second;
    }
    memcpy(q, memo->prefix, 19);
    q[19] = '.';
    put_digits(q + 20, (unsigned)(ms % 1000), 3);
    q[23] = 'Z';
    return 0;
}

/* ------------------------------------------------------------------------------------- */
/* the JSON writer                                                                       */

/* What orjson.dumps writes for strings and integers (compact UTF-8, only '"', '\\' and C0
 * controls escaped; \b \t \n \f \r short, the rest as \u00xx), which is all an envelope of
 * a chat line holds besides literals. A lone surrogate, which orjson refuses, answers
 * J_OTHER: the line is declined and the reference raises for it. Hand-written because it
 * runs inside the line scan (the tag spans are written without making Python strings). */
#define J_OTHER 1

typedef struct {
    char *p;
    Py_ssize_t len, cap;
    char stack[2048];
} jbuf;

static void
jb_init(jbuf *jb)
{
    jb->p = jb->stack;
    jb->len = 0;
    jb->cap = (Py_ssize_t)sizeof(jb->stack);
}

static void
jb_free(jbuf *jb)
{
    if (jb->p != jb->stack) {
        PyMem_Free(jb->p);
    }
    jb->p = jb->stack;
}

static int
jb_grow(jbuf *jb, Py_ssize_t extra)
{
    if (extra > PY_SSIZE_T_MAX / 2 - jb->len) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t cap = jb->cap * 2;
    if (cap < jb->len + extra) {
        cap = jb->len + extra;
    }
    char *p = PyMem_Malloc((size_t)cap);
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(p, jb->p, (size_t)jb->len);
    jb_free(jb);
    jb->p = p;
    jb->cap = cap;
    return 0;
}

static ALWAYS_INLINE int
jb_reserve(jbuf *jb, Py_ssize_t extra)
{
    return LIKELY(jb->cap - jb->len >= extra) ? 0 : jb_grow(jb, extra);
}

static ALWAYS_INLINE int
jb_raw(jbuf *jb, const char *text, Py_ssize_t n)
{
    if (jb_reserve(jb, n) < 0) {
        return -1;
    }
    memcpy(jb->p + jb->len, text, (size_t)n);
    jb->len += n;
    return 0;
}

#define JLIT(jb, text) jb_raw((jb), (text), (Py_ssize_t)(sizeof(text) - 1))

/* For ASCII: 0 = as is, 'u' = \u00xx, else the letter after the backslash. */
static const char JSON_ESCAPE[128] = {
    ['\0'] = 'u', [1] = 'u', [2] = 'u', [3] = 'u', [4] = 'u', [5] = 'u', [6] = 'u', [7] = 'u',
    ['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', [11] = 'u', ['\f'] = 'f', ['\r'] = 'r', [14] = 'u',
    [15] = 'u', [16] = 'u', [17] = 'u', [18] = 'u', [19] = 'u', [20] = 'u', [21] = 'u',
    [22] = 'u', [23] = 'u', [24] = 'u', [25] = 'u', [26] = 'u', [27] = 'u', [28] = 'u',
    [29] = 'u', [30] = 'u', [31] = 'u', ['"'] = '"', ['\\'] = '\\'};

/* One code point, UTF-8 and escaped; room for 6 bytes was reserved. J_OTHER: surrogate. */
static ALWAYS_INLINE int
jb_char(char *q, Py_ssize_t *at, Py_UCS4 ch)
{
    Py_ssize_t k = *at;
    if (ch < 0x80) {
        char e = JSON_ESCAPE[ch];
        if (LIKELY(e == 0)) {
            q[k++] = (char)ch;
        }
        else if (e == 'u') {
            memcpy(q + k, "\\u00", 4);
            q[k + 4] = HEX[ch >> 4];
            q[k + 5] = HEX[ch & 15];
            k += 6;
        }
        else {
            q[k++] = '\\';
            q[k++] = e;
        }
    }
    else if (ch < 0x800) {
        q[k++] = (char)(0xC0 | (ch >> 6));
        q[k++] = (char)(0x80 | (ch & 0x3F));
    }
    else if (ch < 0x10000) {
        if (UNLIKELY(ch >= 0xD800 && ch <= 0xDFFF)) {
            return J_OTHER;
        }
        q[k++] = (char)(0xE0 | (ch >> 12));
        q[k++] = (char)(0x80 | ((ch >> 6) & 0x3F));
        q[k++] = (char)(0x80 | (ch & 0x3F));
    }
    else {
        q[k++] = (char)(0xF0 | (ch >> 18));
        q[k++] = (char)(0x80 | ((ch >> 12) & 0x3F));
        q[k++] = (char)(0x80 | ((ch >> 6) & 0x3F));
        q[k++] = (char)(0x80 | (ch & 0x3F));
    }
    *at = k;
    return 0;
}

/* The JSON string of s[a:b] (s an exact, ready str). */
static int
jb_str_range(jbuf *jb, PyObject *s, Py_ssize_t a, Py_ssize_t b)
{
    Py_ssize_t n = b - a;
    if (n > (PY_SSIZE_T_MAX - 2) / 6 || jb_reserve(jb, 6 * n + 2) < 0) {
        if (!PyErr_Occurred()) {
            PyErr_NoMemory();
        }
        return -1;
    }
    char *q = jb->p;
    Py_ssize_t k = jb->len;
    q[k++] = '"';
    const int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    if (kind == PyUnicode_1BYTE_KIND) {
        const Py_UCS1 *c = (const Py_UCS1 *)data;
        Py_ssize_t i = a;
#define JB_BYTE(ch)                                                        \
    if (LIKELY((ch) >= 0x20 && (ch) < 0x80 && (ch) != '"' && (ch) != '\\')) { \
        q[k++] = (char)(ch);                                               \
    }                                                                      \
    else {                                                                 \
        jb_char(q, &k, (ch));                                              \
    }
#ifdef HAVE_SWAR
        /* 8 characters at a time while none is a control, '"', '\\' or beyond ASCII */
        const uint64_t ones = 0x0101010101010101ull, highs = ones << 7;
        while (i + 8 <= b) {
            uint64_t x;
            memcpy(&x, c + i, 8);
            uint64_t odd = ((x - ones * 0x20) & ~x & highs) | (x & highs) |
                           swar_eq(x, '"', ones, highs) | swar_eq(x, '\\', ones, highs);
            if (LIKELY(!odd)) {
                memcpy(q + k, &x, 8);
                k += 8;
                i += 8;
                continue;
            }
            for (Py_ssize_t stop = i + 8; i < stop; i++) {
                JB_BYTE(c[i])
            }
        }
#endif
        for (; i < b; i++) {
            JB_BYTE(c[i])
        }
#undef JB_BYTE
    }
    else {
        for (Py_ssize_t i = a; i < b; i++) {
            Py_UCS4 ch = READ(i);
            if (LIKELY(ch >= 0x20 && ch < 0x80 && ch != '"' && ch != '\\')) {
                q[k++] = (char)ch;
            }
            else if (jb_char(q, &k, ch) != 0) {
                return J_OTHER;
            }
        }
    }
    q[k++] = '"';
    jb->len = k;
    return 0;
}

static int
jb_ll(jbuf *jb, long long value)
{
    char digits[24];
    int n = sizeof(digits);
    unsigned long long u = value < 0 ? 0ull - (unsigned long long)value : (unsigned long long)value;
    do {
        digits[--n] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (value < 0) {
        digits[--n] = '-';
    }
    return jb_raw(jb, digits + n, (Py_ssize_t)sizeof(digits) - n);
}

/* ------------------------------------------------------------------------------------- */
/* the direct path: a raw PRIVMSG line -> spans                                          */
/*
 * The reference parses a line into an IrcMessage (a tags dict of ~20 strs), a typed
 * Privmsg (Chatter, EmoteRange, badge tuples) and an envelope dict, then orjson writes it.
 * For a PRIVMSG of the common shape the direct path scans the line once into spans and
 * writes the same JSON from them, IRC tag unescaping and JSON escaping in one pass.
 *
 * It declines (None: the Python codec decodes the line) every shape it does not mirror,
 * all rare in Twitch chat: tags with no space after them, no nick!user prefix, a command
 * other than PRIVMSG, params other than "#channel :text", a non-ASCII nick or channel or
 * message id, a lone surrogate anywhere, duplicate tag keys or badge names, more than
 * DP_MAX_TAGS tags, DP_MAX_BADGES badges, DP_MAX_EMOTES emote ranges or DP_MAX_CHEERS
 * cheers, a backslash in a tag value the envelope interprets (all but
 * reply-parent-msg-body and the tags only copied into payload.raw), shared chat
 * (source-room-id), a display name with spaces to strip, an empty channel ("#"), a
 * tmi-sent-ts or bits that is not 1-18 ASCII digits, emote ranges that need Python's int(),
 * a cheer token with digits or a name beyond ASCII, and a receipt time outside what an
 * envelope timestamp can say.
 */

#define DP_MAX_TAGS 64
#define DP_MAX_EMOTES 128
#define DP_MAX_BADGES 32
#define DP_MAX_CHEERS 32
#define DP_KEY_SLOTS 64 /* a power of two, more than TG_N */

/* The tags the envelope interprets. */
enum {
    TG_ROOM_ID, TG_ID, TG_EMOTES, TG_BITS, TG_MOD, TG_SUBSCRIBER, TG_FIRST_MSG, TG_RETURNING,
    TG_SENT_TS, TG_REWARD, TG_MSG_ID, TG_REPLY_MSG_ID, TG_SOURCE_ROOM_ID, TG_USER_ID,
    TG_DISPLAY_NAME, TG_COLOR, TG_BADGES, TG_BADGE_INFO, TG_REPLY_USER_ID, TG_REPLY_USER_LOGIN,
    TG_REPLY_DISPLAY_NAME, TG_REPLY_BODY, TG_THREAD_MSG_ID, TG_THREAD_USER_LOGIN, TG_N
};

static const char *const TAG_KEYS[TG_N] = { /* in the enum's order */
    "room-id", "id", "emotes", "bits", "mod", "subscriber", "first-msg", "returning-chatter",
    "tmi-sent-ts", "custom-reward-id", "msg-id", "reply-parent-msg-id", "source-room-id",
    "user-id", "display-name", "color", "badges", "badge-info", "reply-parent-user-id",
    "reply-parent-user-login", "reply-parent-display-name", "reply-parent-msg-body",
    "reply-thread-parent-msg-id", "reply-thread-parent-user-login",
};
static Py_ssize_t tag_key_len[TG_N];

/* The characters the tag scanner of wider strings stops at: ';', '=' and the backslash. */
static ALWAYS_INLINE int
tag_stop(Py_UCS4 c)
{
    return c == ';' || c == '=' || c == '\\';
}

/* The next ';', '=' or backslash in data[j:b] (b when none), for 2- and 4-byte strings. */
static ALWAYS_INLINE Py_ssize_t
next_tag_stop(const int kind, const void *data, Py_ssize_t j, Py_ssize_t b)
{
#ifdef HAVE_SWAR
    const Py_ssize_t per = 8 / kind; /* characters per 64-bit word */
    const uint64_t ones = swar_ones(kind), highs = ones << (8 * kind - 1);
    const char *p = (const char *)data;
    while (j + per <= b) {
        uint64_t x;
        memcpy(&x, p + j * kind, 8);
        uint64_t hit = swar_eq(x, ';', ones, highs) | swar_eq(x, '=', ones, highs) |
                       swar_eq(x, '\\', ones, highs);
        if (hit) {
            return j + (Py_ssize_t)(__builtin_ctzll(hit) >> 3) / kind;
        }
        j += per;
    }
#endif
    while (j < b && !tag_stop(READ(j))) {
        j++;
    }
    return j;
}

typedef struct {
    Py_ssize_t key, key_end; /* line[key:key_end] */
    Py_ssize_t value, end;   /* line[value:end]; value == end for a key without '=' */
    int escaped;             /* a backslash in the value */
    int plain;               /* key and value are ASCII needing no JSON escaping (the
                                value's backslashes aside): copied as they are */
    int known;               /* TG_* of the key, or -1 */
    uint32_t hash;           /* of the key */
} dp_tag;

typedef struct {
    long long start, end;  /* code points of the text, as the tag says */
    Py_ssize_t id, id_end; /* the emote id: line[id:id_end] */
} dp_emote;

typedef struct {
    Py_ssize_t name, name_end, version, version_end; /* "name/version": line[...] */
} dp_badge;

typedef struct {
    Py_ssize_t start, end; /* the cheer token, code points of the line */
    Py_ssize_t digits;     /* where its amount starts */
    long long amount;
} dp_cheer;

typedef struct {
    PyObject *line;
    int kind;
    const void *data;
    int ntags;
    int known[TG_N]; /* index into tags of each known key, -1 when absent */
    Py_ssize_t nick, nick_end, chan, chan_end, text, text_end;
    int is_action;
    int has_sent; /* tmi-sent-ts holds a number (sent_ms) */
    long long sent_ms;
    int has_bits; /* the bits tag holds a number (bits); else None */
    long long bits;
    int nemotes;
    int nbadges, nbadge_info, ncheers;
    int nunknown; /* the tags whose key is not a known one: their indexes */
    unsigned char unknown[DP_MAX_TAGS];
    dp_tag tags[DP_MAX_TAGS];
    dp_emote emotes[DP_MAX_EMOTES];
    dp_badge badges[DP_MAX_BADGES], badge_info[DP_MAX_BADGES];
    dp_cheer cheers[DP_MAX_CHEERS];
} dp_line;

/* The known tag keys (TG_*) by hash: slots hold TG_* + 1, 0 when empty. */
static unsigned char dp_key_slots[DP_KEY_SLOTS];
static uint32_t dp_key_hashes[TG_N];

/* A key's hash from its length and three of its characters: O(1), and every match is
 * confirmed by comparing the characters. */
static ALWAYS_INLINE uint32_t
dp_hash(const int kind, const void *data, Py_ssize_t a, Py_ssize_t b)
{
    Py_ssize_t n = b - a;
    if (n <= 0) {
        return 0;
    }
    uint32_t h = (uint32_t)n * 0x9E3779B1u;
    h ^= (uint32_t)READ(a) * 0x85EBCA77u;
    h ^= (uint32_t)READ(a + n / 2) * 0x27D4EB2Fu;
    h ^= (uint32_t)READ(b - 1) * 0xC2B2AE3Du;
    return h ^ (h >> 15);
}

static void
dp_init_keys(void)
{
    memset(dp_key_slots, 0, sizeof(dp_key_slots));
    for (int t = 0; t < TG_N; t++) {
        tag_key_len[t] = (Py_ssize_t)strlen(TAG_KEYS[t]);
        uint32_t h = dp_hash(PyUnicode_1BYTE_KIND, TAG_KEYS[t], 0, tag_key_len[t]);
        dp_key_hashes[t] = h;
        size_t slot = h & (DP_KEY_SLOTS - 1);
        while (dp_key_slots[slot]) {
            slot = (slot + 1) & (DP_KEY_SLOTS - 1);
        }
        dp_key_slots[slot] = (unsigned char)(t + 1);
    }
}

/* TG_* of the key line[a:b] (hash h), or -1. */
static ALWAYS_INLINE int
dp_known_key(const int kind, const void *data, Py_ssize_t a, Py_ssize_t b, uint32_t h)
{
    for (size_t slot = h & (DP_KEY_SLOTS - 1); dp_key_slots[slot];
         slot = (slot + 1) & (DP_KEY_SLOTS - 1)) {
        int t = dp_key_slots[slot] - 1;
        if (dp_key_hashes[t] != h || tag_key_len[t] != b - a) {
            continue;
        }
        const Py_UCS1 *k = (const Py_UCS1 *)TAG_KEYS[t];
        if (kind == PyUnicode_1BYTE_KIND) {
            if (memcmp((const Py_UCS1 *)data + a, k, (size_t)(b - a)) == 0) {
                return t;
            }
            continue;
        }
        Py_ssize_t i = 0;
        while (i < b - a && READ(a + i) == k[i]) {
            i++;
        }
        if (i == b - a) {
            return t;
        }
    }
    return -1;
}

/* 1 when data[a:b] of a 2- or 4-byte line is ASCII that needs no JSON escaping (no control
 * character or '"'; backslashes are the unescaper's): its tags are then copied, narrowed. */
static ALWAYS_INLINE int
dp_wide_plain(const int kind, const void *data, Py_ssize_t a, Py_ssize_t b)
{
    unsigned odd = 0; /* no early exit: the compiler vectorizes the loop */
    for (Py_ssize_t i = a; i < b; i++) {
        Py_UCS4 c = READ(i);
        odd |= (c < 0x20) | (c >= 0x80) | (c == '"');
    }
    return !odd;
}

/* The byte classes of the 1-byte tag scanner. */
enum { DPC_PLAIN, DPC_SEMI, DPC_EQ, DPC_BACKSLASH, DPC_JSON };
static unsigned char dp_class[256];

static void
dp_init_classes(void)
{
    for (int c = 0; c < 256; c++) {
        dp_class[c] = (c < 0x20 || c >= 0x80 || c == '"') ? DPC_JSON : DPC_PLAIN;
    }
    dp_class[';'] = DPC_SEMI;
    dp_class['='] = DPC_EQ;
    dp_class['\\'] = DPC_BACKSLASH;
}

/* The end of the tag at data[i:b] (its ';', or b), as parse_tags_impl finds it: its first
 * '=' (*eq, -1 when none), a backslash after it (*escaped). *odd is set when the tag needs
 * JSON escaping (a control character, '"', beyond ASCII, a backslash in the key); 1-byte
 * lines are scanned byte by byte through a class table (tags are short), others as the
 * parser scans them. */
static ALWAYS_INLINE Py_ssize_t
dp_tag_end(const int kind, const void *data, Py_ssize_t i, Py_ssize_t b, Py_ssize_t *eq,
           int *escaped, int *odd)
{
    Py_ssize_t j = i;
    *eq = -1;
    *escaped = 0;
    if (kind == PyUnicode_1BYTE_KIND) {
        const Py_UCS1 *p = (const Py_UCS1 *)data;
        while (j < b) {
#ifdef HAVE_SWAR
            /* 8 bytes at a time while all are plain; the lowest flagged lane is exact */
            const uint64_t ones = 0x0101010101010101ull, highs = ones << 7;
            while (j + 8 <= b) {
                uint64_t x;
                memcpy(&x, p + j, 8);
                uint64_t hit = ((x - ones * 0x20) & ~x & highs) | (x & highs) |
                               swar_eq(x, '"', ones, highs) | swar_eq(x, ';', ones, highs) |
                               swar_eq(x, '=', ones, highs) | swar_eq(x, '\\', ones, highs);
                if (hit) {
                    j += (Py_ssize_t)(__builtin_ctzll(hit) >> 3);
                    goto special;
                }
                j += 8;
            }
#endif
            while (j < b && dp_class[p[j]] == DPC_PLAIN) {
                j++;
            }
            if (j >= b) {
                break;
            }
#ifdef HAVE_SWAR
        special:
#endif
            switch (dp_class[p[j]]) {
            case DPC_SEMI:
                return j;
            case DPC_EQ:
                if (*eq < 0) {
                    *eq = j;
                }
                break;
            case DPC_BACKSLASH:
                if (*eq >= 0) {
                    *escaped = 1;
                }
                else {
                    *odd = 1; /* a backslash in the key */
                }
                break;
            default:
                *odd = 1;
            }
            j++;
        }
        return b;
    }
    for (;;) { /* wider kinds: dp_scan checks the whole tags for JSON escapes (odd) */
        j = next_tag_stop(kind, data, j, b);
        if (j >= b) {
            return j;
        }
        Py_UCS4 c = READ(j);
        if (c == ';') {
            return j;
        }
        if (c == '=') {
            if (*eq < 0) {
                *eq = j;
            }
        }
        else if (*eq >= 0) {
            *escaped = 1;
        }
        else {
            *odd = 1; /* a backslash in the key */
        }
        j++;
    }
}

/* The tags data[a:b] into spans, split exactly as parse_tags_impl splits them (empty keys
 * skipped); 0 declines (too many tags, a repeated key: dict() would merge them). */
static ALWAYS_INLINE int
dp_scan_tags(dp_line *l, const int kind, const void *data, Py_ssize_t a, Py_ssize_t b)
{
    Py_ssize_t i = a;
    for (;;) {
        Py_ssize_t eq;
        int escaped, odd = 0;
        Py_ssize_t j = dp_tag_end(kind, data, i, b, &eq, &escaped, &odd);
        Py_ssize_t key_end = eq >= 0 ? eq : j;
        if (key_end > i) {
            if (l->ntags == DP_MAX_TAGS) {
                return 0;
            }
            dp_tag *tag = &l->tags[l->ntags];
            tag->key = i;
            tag->key_end = key_end;
            tag->value = eq >= 0 ? eq + 1 : j;
            tag->end = j;
            tag->escaped = escaped;
            tag->plain = !odd && (kind == PyUnicode_1BYTE_KIND || dp_wide_plain(kind, data, i, j));
            tag->hash = dp_hash(kind, data, i, key_end);
            tag->known = dp_known_key(kind, data, i, key_end, tag->hash);
            if (tag->known >= 0) {
                if (l->known[tag->known] >= 0) {
                    return 0;
                }
                if (escaped && tag->known != TG_REPLY_BODY) {
                    return 0; /* an escape in a value the envelope interprets */
                }
                l->known[tag->known] = l->ntags;
            }
            else { /* an unknown key: compared with the other unknown ones */
                Py_ssize_t n = key_end - i;
                for (int k = 0; k < l->nunknown; k++) {
                    const dp_tag *other = &l->tags[l->unknown[k]];
                    if (other->hash == tag->hash && other->key_end - other->key == n &&
                        same_span(kind, data, other->key, i, n)) {
                        return 0;
                    }
                }
                l->unknown[l->nunknown++] = (unsigned char)l->ntags;
            }
            l->ntags++;
        }
        if (j >= b) {
            return 1;
        }
        i = j + 1;
    }
}

/* The value span of a known tag: 1 with [*a, *b) when present. */
static inline int
dp_tag_span(const dp_line *l, int t, Py_ssize_t *a, Py_ssize_t *b)
{
    if (l->known[t] < 0) {
        *a = *b = 0;
        return 0;
    }
    const dp_tag *tag = &l->tags[l->known[t]];
    *a = tag->value;
    *b = tag->end;
    return 1;
}

static inline Py_ssize_t
dp_tag_len(const dp_line *l, int t)
{
    return l->known[t] < 0 ? 0 : l->tags[l->known[t]].end - l->tags[l->known[t]].value;
}

/* parse_emotes over the (unescaped) emotes value line[a:b]: the same ranges, kept as
 * spans, stably sorted by start; 0 declines (Python's int() needed, too many ranges). */
static ALWAYS_INLINE int
dp_scan_emotes(dp_line *l, const int kind, const void *data, Py_ssize_t a, Py_ssize_t b)
{
    l->nemotes = 0;
    Py_ssize_t g = a;
    while (g <= b) {
        Py_ssize_t gend = find_short(kind, data, g, b, '/');
        if (gend < 0) {
            gend = b;
        }
        Py_ssize_t colon = find_short(kind, data, g, gend, ':');
        if (colon >= 0) {
            Py_ssize_t s = colon + 1;
            for (;;) {
                Py_ssize_t send = find_short(kind, data, s, gend, ',');
                if (send < 0) {
                    send = gend;
                }
                Py_ssize_t dash = find_short(kind, data, s, send, '-');
                long long start = 0, end = 0;
                int rs = 0, re = 0;
                if (dash >= 0) {
                    rs = ascii_number(kind, data, s, dash, &start);
                    re = rs ? ascii_number(kind, data, dash + 1, send, &end) : 0;
                }
                if (rs == 2 || re == 2) {
                    return 0;
                }
                if (rs == 1 && re == 1) {
                    if (l->nemotes == DP_MAX_EMOTES) {
                        return 0;
                    }
                    dp_emote *e = &l->emotes[l->nemotes++];
                    e->start = start;
                    e->end = end;
                    e->id = g;
                    e->id_end = colon;
                }
                if (send >= gend) {
                    break;
                }
                s = send + 1;
            }
        }
        g = gend + 1;
    }
    for (int i = 1; i < l->nemotes; i++) { /* insertion sort: stable, as sorted() */
        dp_emote x = l->emotes[i];
        int j = i;
        while (j > 0 && l->emotes[j - 1].start > x.start) {
            l->emotes[j] = l->emotes[j - 1];
            j--;
        }
        l->emotes[j] = x;
    }
    return 1;
}

/* parse_int of a known tag: absent or "" -> None (*has = 0); 1-18 ASCII digits -> *value;
 * 0 declines anything else (int() may still take it: spaces, '+', '_', other digits). */
static ALWAYS_INLINE int
dp_tag_number(const dp_line *l, const int kind, const void *data, int t, int *has,
              long long *value)
{
    Py_ssize_t a, b;
    *has = 0;
    *value = 0;
    if (!dp_tag_span(l, t, &a, &b) || a == b) {
        return 1;
    }
    if (b - a > 18) {
        return 0;
    }
    for (Py_ssize_t i = a; i < b; i++) {
        Py_UCS4 c = READ(i);
        if (c < '0' || c > '9') {
            return 0;
        }
        *value = *value * 10 + (long long)(c - '0');
    }
    *has = 1;
    return 1;
}

/* The line data[0:n] (trailing CR/LF already cut) into l; 0 declines. Each step mirrors
 * parse_impl / c_privmsg for the shape it accepts and declines every other shape. */
static ALWAYS_INLINE int
dp_scan(dp_line *l, const int kind, const void *data, Py_ssize_t n)
{
    if (kind != PyUnicode_1BYTE_KIND) { /* a lone surrogate: the JSON writer refuses it */
        unsigned surrogate = 0; /* no early exit: the compiler vectorizes the loop */
        for (Py_ssize_t i = 0; i < n; i++) {
            surrogate |= (Py_UCS4)READ(i) - 0xD800u < 0x800u;
        }
        if (surrogate) {
            return 0;
        }
    }
    for (int t = 0; t < TG_N; t++) {
        l->known[t] = -1;
    }
    l->ntags = l->nunknown = 0;
    Py_ssize_t pos = 0;
    if (n > 0 && READ(0) == '@') {
        Py_ssize_t space = find_char(kind, data, 1, n, ' ');
        if (space < 0 || !dp_scan_tags(l, kind, data, 1, space)) {
            return 0;
        }
        pos = skip_spaces(kind, data, space, n);
    }
    /* :nick!user@host (split_prefix: the nick ends at the first '!' before any '@') */
    if (pos >= n || READ(pos) != ':') {
        return 0;
    }
    Py_ssize_t space = find_char(kind, data, pos, n, ' ');
    if (space < 0 || space == pos + 1) {
        return 0;
    }
    Py_ssize_t at = find_short(kind, data, pos + 1, space, '@');
    Py_ssize_t bang = find_short(kind, data, pos + 1, at >= 0 ? at : space, '!');
    if (bang < 0) {
        return 0;
    }
    l->nick = pos + 1;
    l->nick_end = bang;
    if (!is_ascii_span(kind, data, l->nick, l->nick_end)) { /* str.lower() beyond ASCII */
        return 0;
    }
    /* PRIVMSG, one space, one middle word, " :" and the text */
    pos = skip_spaces(kind, data, space, n);
    static const char PRIVMSG[] = "PRIVMSG ";
    if (n - pos < 9) {
        return 0;
    }
    for (int i = 0; i < 8; i++) {
        if (READ(pos + i) != (Py_UCS4)PRIVMSG[i]) {
            return 0;
        }
    }
    Py_ssize_t p = pos + 8, colon = -1; /* parse_params looks for " :" from p - 1 */
    for (Py_ssize_t i = p - 1; i + 1 < n; i++) {
        if (READ(i) == ' ' && READ(i + 1) == ':') {
            colon = i;
            break;
        }
    }
    if (colon <= p) {
        return 0;
    }
    for (Py_ssize_t i = p; i < colon; i++) {
        Py_UCS4 c = READ(i);
        if (c >= 128 || Py_UNICODE_ISSPACE(c)) { /* two words, or str.lower() beyond ASCII */
            return 0;
        }
    }
    l->chan = (READ(p) == '#') ? p + 1 : p; /* channel_of drops one leading '#' */
    l->chan_end = colon;
    if (l->chan == l->chan_end) {
        return 0; /* "#" alone: no channel, an error the per-line path raises */
    }
    /* split_action */
    Py_ssize_t t0 = colon + 2, tn = n - t0;
    static const char ACTION[] = "\x01" "ACTION";
    l->is_action = tn >= 7;
    for (int i = 0; l->is_action && i < 7; i++) {
        l->is_action = READ(t0 + i) == (Py_UCS4)(unsigned char)ACTION[i];
    }
    if (l->is_action && tn > 7 && READ(t0 + 7) != ' ' && READ(t0 + 7) != 0x01) {
        l->is_action = 0;
    }
    l->text = t0;
    l->text_end = n;
    if (l->is_action) {
        l->text = tn <= 8 ? n : t0 + 8;
        l->text_end = (tn > 8 && READ(n - 1) == 0x01) ? n - 1 : n;
    }
    /* the tags the envelope interprets */
    if (l->known[TG_SOURCE_ROOM_ID] >= 0) {
        return 0; /* shared chat: the per-line path */
    }
    Py_ssize_t a, b;
    if (dp_tag_span(l, TG_DISPLAY_NAME, &a, &b) && b > a &&
        (READ(a) == ' ' || READ(b - 1) == ' ')) {
        return 0; /* make_chatter strips it */
    }
    if (dp_tag_span(l, TG_REPLY_DISPLAY_NAME, &a, &b) && b > a &&
        (Py_UNICODE_ISSPACE(READ(a)) || Py_UNICODE_ISSPACE(READ(b - 1)))) {
        return 0; /* the reply's display name is stripped */
    }
    if (!dp_tag_number(l, kind, data, TG_SENT_TS, &l->has_sent, &l->sent_ms) ||
        !dp_tag_number(l, kind, data, TG_BITS, &l->has_bits, &l->bits)) {
        return 0;
    }
    dp_tag_span(l, TG_EMOTES, &a, &b);
    return dp_scan_emotes(l, kind, data, a, b);
}

/* parse_badges of a known tag (no backslash in it): "name/version,..." into spans, items
 * without a name skipped; 0 declines (too many, or a name twice: dict() would merge them). */
static ALWAYS_INLINE int
dp_scan_badges(dp_line *l, int t, dp_badge *out, int *count)
{
    const int kind = l->kind;
    const void *data = l->data;
    Py_ssize_t a, b;
    *count = 0;
    if (!dp_tag_span(l, t, &a, &b)) {
        return 1;
    }
    for (Py_ssize_t i = a; i <= b;) {
        Py_ssize_t end = find_short(kind, data, i, b, ',');
        if (end < 0) {
            end = b;
        }
        Py_ssize_t slash = find_short(kind, data, i, end, '/');
        Py_ssize_t name_end = slash < 0 ? end : slash;
        if (name_end > i) {
            for (int k = 0; k < *count; k++) {
                if (out[k].name_end - out[k].name == name_end - i &&
                    same_span(kind, data, out[k].name, i, name_end - i)) {
                    return 0;
                }
            }
            if (*count == DP_MAX_BADGES) {
                return 0;
            }
            dp_badge *badge = &out[(*count)++];
            badge->name = i;
            badge->name_end = name_end;
            badge->version = slash < 0 ? end : slash + 1;
            badge->version_end = end;
        }
        i = end + 1;
    }
    return 1;
}

/* Chatter.has_badge over the badges tag. */
static int
dp_has_badge(const dp_line *l, const char *name)
{
    const int kind = l->kind;
    const void *data = l->data;
    Py_ssize_t n = (Py_ssize_t)strlen(name);
    for (int k = 0; k < l->nbadges; k++) {
        const dp_badge *badge = &l->badges[k];
        if (badge->name_end - badge->name != n) {
            continue;
        }
        Py_ssize_t i = 0;
        while (i < n && READ(badge->name + i) == (Py_UCS4)(unsigned char)name[i]) {
            i++;
        }
        if (i == n) {
            return 1;
        }
    }
    return 0;
}

/* The cheermote prefixes a DirectPath knows (twitch/messages/common.py _GLOBAL_KNOWN). */
#define CHEER_PREFIXES_MAX 64
#define CHEER_PREFIX_LEN 32
typedef struct {
    int n;
    unsigned char len[CHEER_PREFIXES_MAX];
    char name[CHEER_PREFIXES_MAX][CHEER_PREFIX_LEN];
} cheer_prefixes;

static int
known_prefix(const cheer_prefixes *known, const dp_line *l, Py_ssize_t a, Py_ssize_t b)
{
    const int kind = l->kind;
    const void *data = l->data;
    for (int k = 0; k < known->n; k++) {
        if (known->len[k] != b - a) {
            continue;
        }
        Py_ssize_t i = 0;
        for (; i < b - a; i++) {
            Py_UCS4 c = READ(a + i);
            if (c >= 'A' && c <= 'Z') {
                c += 32;
            }
            if (c != (Py_UCS4)(unsigned char)known->name[k][i]) {
                break;
            }
        }
        if (i == b - a) {
            return 1;
        }
    }
    return 0;
}

/* cheer_spans(text): each whitespace-delimited token that is a known prefix and then its
 * trailing decimal digits, an amount that fits 64 bits; 0 declines (non-ASCII digits or
 * name in such a token: str.lower() and int() would be needed, or too many cheers). */
static int
dp_scan_cheers(dp_line *l, const cheer_prefixes *known)
{
    const int kind = l->kind;
    const void *data = l->data;
    l->ncheers = 0;
    for (Py_ssize_t i = l->text; i < l->text_end;) {
        while (i < l->text_end && Py_UNICODE_ISSPACE(READ(i))) {
            i++;
        }
        Py_ssize_t s = i;
        while (i < l->text_end && !Py_UNICODE_ISSPACE(READ(i))) {
            i++;
        }
        if (i == s) {
            break;
        }
        Py_ssize_t d = i; /* the token's trailing ASCII digits: [d, i) */
        while (d > s && READ(d - 1) >= '0' && READ(d - 1) <= '9') {
            d--;
        }
        if (d > s && READ(d - 1) >= 128 && Py_UNICODE_ISDECIMAL(READ(d - 1))) {
            return 0;
        }
        if (d == i) {
            continue; /* no digit at the end: not a cheer */
        }
        if (d == s) {
            d = s + 1; /* all digits: the lazy name takes the first one */
        }
        if (d == i) {
            continue; /* one character: no digits left */
        }
        if (!is_ascii_span(kind, data, s, d)) {
            return 0;
        }
        if (!known_prefix(known, l, s, d)) {
            continue;
        }
        unsigned long long amount = 0;
        int fits = i - d <= 4000;
        for (Py_ssize_t k = d; fits && k < i; k++) {
            unsigned digit = (unsigned)(READ(k) - '0');
            fits = amount <= (9223372036854775807ull - digit) / 10;
            amount = amount * 10 + digit;
        }
        if (!fits) {
            continue; /* beyond 64 bits: just text, as _cheer_amount says */
        }
        if (l->ncheers == DP_MAX_CHEERS) {
            return 0;
        }
        dp_cheer *cheer = &l->cheers[l->ncheers++];
        cheer->start = s;
        cheer->end = i;
        cheer->digits = d;
        cheer->amount = (long long)amount;
    }
    return 1;
}

static int
dp_scan_line(dp_line *l, PyObject *line)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(line);
    const int kind = PyUnicode_KIND(line);
    const void *data = PyUnicode_DATA(line);
    while (n > 0 && (READ(n - 1) == '\r' || READ(n - 1) == '\n')) { /* as sp_parse_line */
        n--;
    }
    l->line = line;
    l->kind = kind;
    l->data = data;
    int ok;
    switch (kind) { /* one specialised copy per kind */
    case PyUnicode_1BYTE_KIND:
        ok = dp_scan(l, PyUnicode_1BYTE_KIND, data, n);
        break;
    case PyUnicode_2BYTE_KIND:
        ok = dp_scan(l, PyUnicode_2BYTE_KIND, data, n);
        break;
    default:
        ok = dp_scan(l, PyUnicode_4BYTE_KIND, data, n);
    }
    return ok && dp_scan_badges(l, TG_BADGES, l->badges, &l->nbadges) &&
           dp_scan_badges(l, TG_BADGE_INFO, l->badge_info, &l->nbadge_info);
}

/* ------------------------------------------------------------------------------------- */
/* the direct path: spans -> the envelope JSON (reference: EnvelopeBuilder._message)     */

/* The JSON string of the IRCv3-unescaped line[a:b] (unescape_value, then jb_str_range). */
static int
dp_unescaped(jbuf *jb, const dp_line *l, Py_ssize_t a, Py_ssize_t b)
{
    const int kind = l->kind;
    const void *data = l->data;
    if (jb_reserve(jb, 6 * (b - a) + 2) < 0) {
        return -1;
    }
    char *q = jb->p;
    Py_ssize_t k = jb->len;
    q[k++] = '"';
    for (Py_ssize_t i = a; i < b;) {
        Py_UCS4 c = READ(i++);
        if (c == '\\') {
            if (i >= b) { /* a lone trailing backslash is dropped */
                break;
            }
            Py_UCS4 e = READ(i++);
            c = e == ':' ? ';' : e == 's' ? ' ' : e == 'r' ? '\r' : e == 'n' ? '\n' : e;
        }
        if (jb_char(q, &k, c) != 0) {
            return J_OTHER; /* a surrogate: dp_scan declined those already */
        }
    }
    q[k++] = '"';
    jb->len = k;
    return 0;
}

/* The JSON string of line[a:b] inside a tag (no backslash in it): copied as it is when
 * the tag is plain, escaped otherwise. */
static ALWAYS_INLINE int
dp_tag_span_json(jbuf *jb, const dp_line *l, int plain, Py_ssize_t a, Py_ssize_t b)
{
    if (!plain) {
        return jb_str_range(jb, l->line, a, b);
    }
    if (jb_reserve(jb, b - a + 2) < 0) {
        return -1;
    }
    char *q = jb->p + jb->len;
    q[0] = '"';
    if (l->kind == PyUnicode_1BYTE_KIND) {
        memcpy(q + 1, (const Py_UCS1 *)l->data + a, (size_t)(b - a));
    }
    else if (l->kind == PyUnicode_2BYTE_KIND) { /* ASCII code units, narrowed */
        const Py_UCS2 *c = (const Py_UCS2 *)l->data + a;
        for (Py_ssize_t i = 0; i < b - a; i++) {
            q[1 + i] = (char)c[i];
        }
    }
    else {
        const Py_UCS4 *c = (const Py_UCS4 *)l->data + a;
        for (Py_ssize_t i = 0; i < b - a; i++) {
            q[1 + i] = (char)c[i];
        }
    }
    q[b - a + 1] = '"';
    jb->len += b - a + 2;
    return 0;
}

/* A tag's value as a JSON string ("" when absent); unescaped when it holds a backslash. */
static int
dp_tag_value(jbuf *jb, const dp_line *l, int t)
{
    if (l->known[t] < 0) {
        return JLIT(jb, "\"\"");
    }
    const dp_tag *tag = &l->tags[l->known[t]];
    return tag->escaped ? dp_unescaped(jb, l, tag->value, tag->end)
                        : dp_tag_span_json(jb, l, tag->plain, tag->value, tag->end);
}

/* `value or None` of a tag the scan saw without a backslash (so empty means empty). */
static int
dp_tag_or_null(jbuf *jb, const dp_line *l, int t)
{
    return dp_tag_len(l, t) > 0 ? dp_tag_value(jb, l, t) : JLIT(jb, "null");
}

/* is_one: the value is exactly "1". */
static int
dp_tag_flag(jbuf *jb, const dp_line *l, int t)
{
    const int kind = l->kind;
    const void *data = l->data;
    Py_ssize_t a, b;
    int one = dp_tag_span(l, t, &a, &b) && b - a == 1 && READ(a) == '1';
    return one ? JLIT(jb, "true") : JLIT(jb, "false");
}

/* str.lower() of an ASCII span (the nick, the channel): its JSON, capitals lowered in place
 * (JSON escapes only add lowercase letters, so only the span's own capitals are touched). */
static int
dp_lower_json(jbuf *jb, const dp_line *l, Py_ssize_t a, Py_ssize_t b)
{
    Py_ssize_t from = jb->len;
    int rc = jb_str_range(jb, l->line, a, b);
    for (Py_ssize_t i = from; rc == 0 && i < jb->len; i++) {
        if (jb->p[i] >= 'A' && jb->p[i] <= 'Z') {
            jb->p[i] = (char)(jb->p[i] + 32);
        }
    }
    return rc;
}

static int
dp_login(jbuf *jb, const dp_line *l)
{
    return dp_lower_json(jb, l, l->nick, l->nick_end);
}

static int
dp_channel(jbuf *jb, const dp_line *l)
{
    return dp_lower_json(jb, l, l->chan, l->chan_end);
}

/* make_chatter's display name: the tag, or the nick as sent when it is empty. */
static int
dp_display_name(jbuf *jb, const dp_line *l)
{
    return dp_tag_len(l, TG_DISPLAY_NAME) > 0 ? dp_tag_value(jb, l, TG_DISPLAY_NAME)
                                              : jb_str_range(jb, l->line, l->nick, l->nick_end);
}

/* parse_color: "#" and 6 hex digits, uppercased; anything else "". */
static int
dp_color(jbuf *jb, const dp_line *l)
{
    const int kind = l->kind;
    const void *data = l->data;
    Py_ssize_t a, b;
    if (!dp_tag_span(l, TG_COLOR, &a, &b) || b - a != 7 || READ(a) != '#') {
        return JLIT(jb, "\"\"");
    }
    char out[9] = {'"', '#'};
    for (int i = 1; i < 7; i++) {
        Py_UCS4 c = READ(a + i);
        if (c >= 'a' && c <= 'f') {
            c -= 32;
        }
        else if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'))) {
            return JLIT(jb, "\"\"");
        }
        out[i + 1] = (char)c;
    }
    out[8] = '"';
    return jb_raw(jb, out, 9);
}

/* _emotes(text, emotes) as jb_emotes writes it, from the spans. */
static int
dp_emotes(jbuf *jb, const dp_line *l)
{
    Py_ssize_t size = l->text_end - l->text;
    int plain = l->nemotes > 0 && l->tags[l->known[TG_EMOTES]].plain;
    if (JLIT(jb, "[") < 0) {
        return -1;
    }
    int first = 1;
    for (int i = 0; i < l->nemotes; i++) {
        const dp_emote *e = &l->emotes[i];
        long long s = e->start, t = e->end;
        if (!(s < size && s <= t)) {
            continue;
        }
        Py_ssize_t stop = t + 1 > size ? size : (Py_ssize_t)(t + 1);
        int rc;
        if ((!first && JLIT(jb, ",") < 0) || JLIT(jb, "{\"id\":") < 0) {
            return -1;
        }
        first = 0;
        if ((rc = dp_tag_span_json(jb, l, plain, e->id, e->id_end)) != 0 ||
            JLIT(jb, ",\"start\":") < 0 || jb_ll(jb, s) < 0 || JLIT(jb, ",\"end\":") < 0 ||
            jb_ll(jb, (long long)stop - 1) < 0 || JLIT(jb, ",\"name\":") < 0 ||
            (rc = jb_str_range(jb, l->line, l->text + (Py_ssize_t)s, l->text + stop)) != 0 ||
            JLIT(jb, "}") < 0) {
            return rc ? rc : -1;
        }
    }
    return JLIT(jb, "]");
}

/* payload.raw.tags: every tag in line order, values unescaped. */
static int
dp_raw_tags(jbuf *jb, const dp_line *l)
{
    if (JLIT(jb, "{") < 0) {
        return -1;
    }
    for (int i = 0; i < l->ntags; i++) {
        const dp_tag *tag = &l->tags[i];
        int rc;
        if ((i > 0 && JLIT(jb, ",") < 0)) {
            return -1;
        }
        if ((rc = dp_tag_span_json(jb, l, tag->plain, tag->key, tag->key_end)) != 0 ||
            JLIT(jb, ":") < 0 ||
            (rc = tag->escaped ? dp_unescaped(jb, l, tag->value, tag->end)
                               : dp_tag_span_json(jb, l, tag->plain, tag->value, tag->end)) != 0) {
            return rc ? rc : -1;
        }
    }
    return JLIT(jb, "}");
}

/* payload.badges / badgeVersions / badgeInfo: the names in order; dict(badges). */
static int
dp_badge_names(jbuf *jb, const dp_line *l)
{
    int plain = l->nbadges > 0 && l->tags[l->known[TG_BADGES]].plain, rc = 0;
    if (JLIT(jb, "[") < 0) {
        return -1;
    }
    for (int k = 0; k < l->nbadges; k++) {
        if ((k > 0 && JLIT(jb, ",") < 0) ||
            (rc = dp_tag_span_json(jb, l, plain, l->badges[k].name, l->badges[k].name_end))) {
            return rc ? rc : -1;
        }
    }
    return JLIT(jb, "]");
}

static int
dp_badge_dict(jbuf *jb, const dp_line *l, int t, const dp_badge *badges, int count)
{
    int plain = count > 0 && l->tags[l->known[t]].plain, rc = 0;
    if (JLIT(jb, "{") < 0) {
        return -1;
    }
    for (int k = 0; k < count; k++) {
        const dp_badge *b = &badges[k];
        if ((k > 0 && JLIT(jb, ",") < 0) ||
            (rc = dp_tag_span_json(jb, l, plain, b->name, b->name_end)) || JLIT(jb, ":") < 0 ||
            (rc = dp_tag_span_json(jb, l, plain, b->version, b->version_end))) {
            return rc ? rc : -1;
        }
    }
    return JLIT(jb, "}");
}

/* payload.cheers: _cheers(text), positions relative to the text. */
static int
dp_cheers(jbuf *jb, const dp_line *l)
{
    if (JLIT(jb, "[") < 0) {
        return -1;
    }
    for (int k = 0; k < l->ncheers; k++) {
        const dp_cheer *c = &l->cheers[k];
        int rc;
        if ((k > 0 && JLIT(jb, ",") < 0) || JLIT(jb, "{\"prefix\":") < 0) {
            return -1;
        }
        if ((rc = jb_str_range(jb, l->line, c->start, c->digits)) != 0 ||
            JLIT(jb, ",\"amount\":") < 0 || jb_ll(jb, c->amount) < 0 ||
            JLIT(jb, ",\"start\":") < 0 || jb_ll(jb, (long long)(c->start - l->text)) < 0 ||
            JLIT(jb, ",\"end\":") < 0 || jb_ll(jb, (long long)(c->end - l->text) - 1) < 0 ||
            JLIT(jb, "}") < 0) {
            return rc ? rc : -1;
        }
    }
    return JLIT(jb, "]");
}

/* What the envelope holds beyond the line's spans, as JSON-ready text. */
typedef struct {
    const char *id;          /* envelope id, 36 characters */
    const char *trace;       /* 32 hex characters */
    const char *stamp;       /* receipt time, STAMP_LEN characters */
    const char *sent_at;     /* STAMP_LEN characters, or NULL (null) */
    PyObject *message_type;  /* exact ASCII strs, owned by the DirectPath */
    PyObject *finalizer;
    PyObject *transport;
} dp_frame;

static int
jb_text(jbuf *jb, PyObject *s)
{
    return jb_str_range(jb, s, 0, PyUnicode_GET_LENGTH(s));
}

static int
jb_quoted(jbuf *jb, const char *text, Py_ssize_t n)
{
    if (jb_reserve(jb, n + 2) < 0) {
        return -1;
    }
    jb->p[jb->len] = '"';
    memcpy(jb->p + jb->len + 1, text, (size_t)n);
    jb->p[jb->len + n + 1] = '"';
    jb->len += n + 2;
    return 0;
}

/* The envelope JSON: orjson.dumps(EnvelopeBuilder._message(...)) for the same line. */
static int
dp_write(jbuf *jb, const dp_line *l, const dp_frame *f)
{
    int rc = 0;
#define W(expr)                       \
    do {                              \
        if ((rc = (expr)) != 0) {     \
            return rc < 0 ? -1 : rc;  \
        }                             \
    } while (0)
    W(JLIT(jb, "{\"v\":\"1\",\"id\":"));
    W(jb_quoted(jb, f->id, 36));
    W(JLIT(jb, ",\"correlationId\":"));
    W(jb_quoted(jb, f->id, 36));
    W(JLIT(jb, ",\"traceId\":"));
    W(jb_quoted(jb, f->trace, 32));
    W(JLIT(jb, ",\"timestamp\":"));
    W(jb_quoted(jb, f->stamp, STAMP_LEN));
    W(JLIT(jb, ",\"type\":"));
    W(jb_text(jb, f->message_type));
    W(JLIT(jb, ",\"source\":{\"platform\":\"twitch\",\"channel\":"));
    W(dp_channel(jb, l));
    W(JLIT(jb, ",\"channelId\":"));
    W(dp_tag_or_null(jb, l, TG_ROOM_ID));
    W(JLIT(jb, "},\"user\":{\"id\":"));
    W(dp_tag_value(jb, l, TG_USER_ID));
    W(JLIT(jb, ",\"name\":"));
    W(dp_login(jb, l));
    W(JLIT(jb, ",\"displayName\":"));
    W(dp_display_name(jb, l));
    W(JLIT(jb, ",\"profileImageUrl\":\"\",\"role\":\"\"},\"routingSlip\":[],"
               "\"finalizationDestination\":"));
    W(jb_text(jb, f->finalizer));
    W(JLIT(jb, ",\"payload\":{\"text\":"));
    W(jb_str_range(jb, l->line, l->text, l->text_end));
    W(JLIT(jb, ",\"messageId\":"));
    W(dp_tag_value(jb, l, TG_ID));
    W(JLIT(jb, ",\"badges\":"));
    W(dp_badge_names(jb, l));
    W(JLIT(jb, ",\"isMod\":"));
    W(dp_tag_flag(jb, l, TG_MOD));
    W(JLIT(jb, ",\"isSubscriber\":"));
    W(dp_tag_flag(jb, l, TG_SUBSCRIBER));
    W(JLIT(jb, ",\"color\":"));
    W(dp_color(jb, l));
    W(JLIT(jb, ",\"emotes\":"));
    W(dp_emotes(jb, l));
    W(JLIT(jb, ",\"raw\":{\"tags\":"));
    W(dp_raw_tags(jb, l));
    W(JLIT(jb, "},\"isAction\":"));
    W(l->is_action ? JLIT(jb, "true") : JLIT(jb, "false"));
    W(JLIT(jb, ",\"bits\":"));
    W(l->has_bits ? jb_ll(jb, l->bits) : JLIT(jb, "null"));
    W(JLIT(jb, ",\"cheers\":"));
    W(dp_cheers(jb, l));
    W(JLIT(jb, ",\"badgeInfo\":"));
    W(dp_badge_dict(jb, l, TG_BADGE_INFO, l->badge_info, l->nbadge_info));
    W(JLIT(jb, ",\"badgeVersions\":"));
    W(dp_badge_dict(jb, l, TG_BADGES, l->badges, l->nbadges));
    W(JLIT(jb, ",\"isVip\":"));
    W(dp_has_badge(l, "vip") ? JLIT(jb, "true") : JLIT(jb, "false"));
    W(JLIT(jb, ",\"isBroadcaster\":"));
    W(dp_has_badge(l, "broadcaster") ? JLIT(jb, "true") : JLIT(jb, "false"));
    W(JLIT(jb, ",\"firstMessage\":"));
    W(dp_tag_flag(jb, l, TG_FIRST_MSG));
    W(JLIT(jb, ",\"returningChatter\":"));
    W(dp_tag_flag(jb, l, TG_RETURNING));
    W(JLIT(jb, ",\"customRewardId\":"));
    W(dp_tag_or_null(jb, l, TG_REWARD));
    W(JLIT(jb, ",\"messageKind\":"));
    W(dp_tag_or_null(jb, l, TG_MSG_ID));
    W(JLIT(jb, ",\"reply\":"));
    if (l->known[TG_REPLY_MSG_ID] < 0) { /* the presence of the key decides */
        W(JLIT(jb, "null"));
    }
    else {
        W(JLIT(jb, "{\"parentMessageId\":"));
        W(dp_tag_value(jb, l, TG_REPLY_MSG_ID));
        W(JLIT(jb, ",\"parentUserId\":"));
        W(dp_tag_value(jb, l, TG_REPLY_USER_ID));
        W(JLIT(jb, ",\"parentUserLogin\":"));
        W(dp_tag_value(jb, l, TG_REPLY_USER_LOGIN));
        W(JLIT(jb, ",\"parentDisplayName\":"));
        W(dp_tag_value(jb, l, TG_REPLY_DISPLAY_NAME));
        W(JLIT(jb, ",\"parentText\":"));
        W(dp_tag_value(jb, l, TG_REPLY_BODY));
        W(JLIT(jb, ",\"threadParentMessageId\":"));
        W(dp_tag_or_null(jb, l, TG_THREAD_MSG_ID));
        W(JLIT(jb, ",\"threadParentUserLogin\":"));
        W(dp_tag_or_null(jb, l, TG_THREAD_USER_LOGIN));
        W(JLIT(jb, "}"));
    }
    W(JLIT(jb, ",\"sharedChat\":null,\"sentAt\":")); /* shared chat declined */
    W(f->sent_at ? jb_quoted(jb, f->sent_at, STAMP_LEN) : JLIT(jb, "null"));
    W(JLIT(jb, ",\"transport\":"));
    W(jb_text(jb, f->transport));
    W(JLIT(jb, "}}"));
#undef W
    return 0;
}

/* ------------------------------------------------------------------------------------- */
/* DirectPath: a read's lines -> [OutboundMessage | None] (the native codec's core)      */

/* OutboundMessage's fields (envelope/outbound_message.py), in order; checked by the constructor. */
enum {
    OM_DATA, OM_ENVELOPE_ID, OM_DEDUP_ID, OM_TYPE, OM_TRACEPARENT, OM_ORDERING_KEY, OM_TIME,
    OM_CHANNEL, OM_RECEIVED_AT, OM_SEQ, OM_N
};
static const char *const OM_FIELDS[OM_N] = {
    "data", "envelope_id", "dedup_id", "type", "traceparent", "ordering_key", "time",
    "channel", "received_at", "seq",
};

#define IDS_PER_LINE 80 /* hex characters: uuid4 source, trace id, span id (ids.LineIds) */
#define STR_MEMO_SLOTS 64
#define STR_MEMO_LEN 64 /* Twitch logins have at most 25 characters, room ids 10 digits */
#define SELF_ID_MAX 32  /* envelope/builder.py MAX_USER_ID_CHARS */

typedef struct {
    PyObject_HEAD
    PyTypeObject *outbound;   /* the OutboundMessage class */
    PyObject *fields[OM_N];   /* its member descriptors, in OM_FIELDS order */
    PyObject *no_args;        /* () for its tp_new */
    PyObject *seq;            /* -1: no spool sequence yet */
    PyObject *transport, *message_type, *finalizer; /* exact ASCII strs */
    unsigned char namespace[16];
    cheer_prefixes cheers;
    second_memo received_memo, sent_memo;
    PyObject *strs[STR_MEMO_SLOTS]; /* channels and room ids, by content */
    char self_id[SELF_ID_MAX];      /* the bot's user id: its lines are declined */
    Py_ssize_t self_id_len;         /* 0: nobody is self */
} DirectPath;

static int
ascii_str(PyObject *s, const char *what)
{
    if (!STR_EXACT(s) || !PyUnicode_IS_ASCII(s)) {
        PyErr_Format(PyExc_TypeError, "DirectPath: %s must be an ASCII str", what);
        return 0;
    }
    return 1;
}

static int
load_cheer_prefixes(cheer_prefixes *out, PyObject *iterable)
{
    PyObject *items = PySequence_Fast(iterable, "DirectPath: cheermotes must be iterable");
    if (items == NULL) {
        return -1;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(items);
    int rc = 0;
    out->n = 0;
    if (n > CHEER_PREFIXES_MAX) {
        PyErr_SetString(PyExc_ValueError, "DirectPath: too many cheermote prefixes");
        rc = -1;
    }
    for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
        PyObject *name = PySequence_Fast_GET_ITEM(items, i);
        Py_ssize_t len = STR_EXACT(name) ? PyUnicode_GET_LENGTH(name) : 0;
        const Py_UCS1 *c = len ? PyUnicode_1BYTE_DATA(name) : NULL;
        int lower = len > 0 && len <= CHEER_PREFIX_LEN && PyUnicode_IS_ASCII(name);
        for (Py_ssize_t k = 0; lower && k < len; k++) {
            lower = !(c[k] >= 'A' && c[k] <= 'Z');
        }
        if (!lower) {
            PyErr_SetString(PyExc_ValueError,
                            "DirectPath: a cheermote prefix must be lowercase ASCII");
            rc = -1;
            break;
        }
        memcpy(out->name[out->n], c, (size_t)len);
        out->len[out->n++] = (unsigned char)len;
    }
    Py_DECREF(items);
    return rc;
}

static int
DirectPath_init(DirectPath *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"outbound", "transport", "message_type", "finalizer",
                            "namespace", "cheermotes", NULL};
    PyObject *outbound, *transport, *message_type, *finalizer, *cheermotes;
    Py_buffer ns;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!UUUy*O:DirectPath", names, &PyType_Type,
                                     &outbound, &transport, &message_type, &finalizer, &ns,
                                     &cheermotes)) {
        return -1;
    }
    int ok = ns.len == 16;
    if (ok) {
        memcpy(self->namespace, ns.buf, 16);
    }
    PyBuffer_Release(&ns);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "DirectPath: namespace must be 16 bytes");
        return -1;
    }
    if (!ascii_str(transport, "transport") || !ascii_str(message_type, "message_type") ||
        !ascii_str(finalizer, "finalizer") || load_cheer_prefixes(&self->cheers, cheermotes) < 0) {
        return -1;
    }
    for (int i = 0; i < OM_N; i++) {
        PyObject *field = PyObject_GetAttrString(outbound, OM_FIELDS[i]);
        if (field == NULL || !Py_IS_TYPE(field, &PyMemberDescr_Type)) {
            Py_XDECREF(field);
            PyErr_Format(PyExc_TypeError, "DirectPath: %R has no slot %s", outbound,
                         OM_FIELDS[i]);
            return -1;
        }
        Py_XSETREF(self->fields[i], field);
    }
    Py_XSETREF(self->outbound, (PyTypeObject *)Py_NewRef(outbound));
    Py_XSETREF(self->transport, Py_NewRef(transport));
    Py_XSETREF(self->message_type, Py_NewRef(message_type));
    Py_XSETREF(self->finalizer, Py_NewRef(finalizer));
    if (self->no_args == NULL && (self->no_args = PyTuple_New(0)) == NULL) {
        return -1;
    }
    if (self->seq == NULL && (self->seq = PyLong_FromLong(-1)) == NULL) {
        return -1;
    }
    self->received_memo.second = self->sent_memo.second = -1;
    return 0;
}

static int
DirectPath_traverse(DirectPath *self, visitproc visit, void *arg)
{
    Py_VISIT(self->outbound);
    for (int i = 0; i < OM_N; i++) {
        Py_VISIT(self->fields[i]);
    }
    return 0;
}

static int
DirectPath_clear(DirectPath *self)
{
    Py_CLEAR(self->outbound);
    for (int i = 0; i < OM_N; i++) {
        Py_CLEAR(self->fields[i]);
    }
    Py_CLEAR(self->no_args);
    Py_CLEAR(self->seq);
    Py_CLEAR(self->transport);
    Py_CLEAR(self->message_type);
    Py_CLEAR(self->finalizer);
    for (int i = 0; i < STR_MEMO_SLOTS; i++) {
        Py_CLEAR(self->strs[i]);
    }
    return 0;
}

static void
DirectPath_dealloc(DirectPath *self)
{
    PyObject_GC_UnTrack(self);
    DirectPath_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
ascii_text(const char *text, Py_ssize_t n)
{
    PyObject *out = PyUnicode_New(n, 127);
    if (out != NULL) {
        memcpy(PyUnicode_1BYTE_DATA(out), text, (size_t)n);
    }
    return out;
}

/* The str of ASCII text[:n] (n <= STR_MEMO_LEN), from a small memo: the lines of a read
 * share a few channels, and each would otherwise make its own two strs. */
static PyObject *
memo_str(DirectPath *self, const char *text, Py_ssize_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (Py_ssize_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)text[i]) * 16777619u;
    }
    PyObject **slot = &self->strs[h & (STR_MEMO_SLOTS - 1)];
    if (*slot != NULL && PyUnicode_GET_LENGTH(*slot) == n &&
        memcmp(PyUnicode_1BYTE_DATA(*slot), text, (size_t)n) == 0) {
        return Py_NewRef(*slot);
    }
    PyObject *out = ascii_text(text, n);
    if (out != NULL) {
        Py_XSETREF(*slot, Py_NewRef(out)); /* the old str is freed: no Python code runs */
    }
    return out;
}

/* The memo's str of line[a:b], lowercased when asked (channel_of), or NULL with no error
 * set when the span is longer than STR_MEMO_LEN or not ASCII (declined). */
static PyObject *
span_str(DirectPath *self, const dp_line *l, Py_ssize_t a, Py_ssize_t b, int lower)
{
    const int kind = l->kind;
    const void *data = l->data;
    char text[STR_MEMO_LEN];
    if (b - a > STR_MEMO_LEN) {
        return NULL;
    }
    for (Py_ssize_t i = a; i < b; i++) {
        Py_UCS4 c = READ(i);
        if (c >= 128) {
            return NULL;
        }
        text[i - a] = (char)((lower && c >= 'A' && c <= 'Z') ? c + 32 : c);
    }
    return memo_str(self, text, b - a);
}

/* The OutboundMessage of the class the DirectPath was given, its fields set through the
 * class's own member descriptors (what its generated __init__ does; calling the class runs
 * that __init__ in Python, a measurable share of the 2 us a line costs). Steals values. */
static PyObject *
new_outbound(DirectPath *self, PyObject **values)
{
    PyObject *obj = self->outbound->tp_new(self->outbound, self->no_args, NULL);
    for (int i = 0; obj != NULL && i < OM_N; i++) {
        PyObject *field = self->fields[i];
        if (Py_TYPE(field)->tp_descr_set(field, obj, values[i]) < 0) {
            Py_CLEAR(obj);
        }
    }
    for (int i = 0; i < OM_N; i++) {
        Py_XDECREF(values[i]);
    }
    return obj;
}

/* ids.LineIds of the line's 80 hex characters, as text: the envelope id (uuid4 when the
 * line has no Twitch id, else the UUIDv5 of it) and the trace id; 0 declines. */
static int
dp_ids(DirectPath *self, const dp_line *l, const Py_UCS1 *h, char id[36], char trace[32])
{
    for (int i = 0; i < IDS_PER_LINE; i++) {
        if (hex_value(h[i]) < 0) {
            return 0;
        }
    }
    Py_ssize_t a, b;
    if (!dp_tag_span(l, TG_ID, &a, &b) || a == b) {
        uuid4_text(id, h);
    }
    else {
        const int kind = l->kind;
        const void *data = l->data;
        unsigned char name[128];
        if (b - a > (Py_ssize_t)sizeof(name) || !is_ascii_span(kind, data, a, b)) {
            return 0; /* str.encode() beyond ASCII: the reference's */
        }
        for (Py_ssize_t i = a; i < b; i++) {
            name[i - a] = (unsigned char)READ(i);
        }
        uuid5_text(id, self->namespace, name, (size_t)(b - a));
    }
    memcpy(trace, h + 32, 32);
    int zero = 1;
    for (int i = 0; i < 32; i++) {
        zero &= trace[i] == '0';
    }
    if (zero) {
        trace[31] = '1'; /* W3C forbids an all-zero trace id; LineIds does the same */
    }
    return 1;
}

/* The line's user-id is the bot's own (set_self_id): the Python codec writes its isSelf.
 * An escaped or repeated user-id was already declined by the scan, so the raw span is the
 * value Python compares. */
static ALWAYS_INLINE int
dp_is_self(const DirectPath *self, const dp_line *l)
{
    Py_ssize_t a, b, n = self->self_id_len;
    if (!dp_tag_span(l, TG_USER_ID, &a, &b) || b - a != n) {
        return 0;
    }
    const int kind = l->kind;
    const void *data = l->data;
    if (kind == PyUnicode_1BYTE_KIND) {
        return memcmp((const Py_UCS1 *)data + a, self->self_id, (size_t)n) == 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (READ(a + i) != (Py_UCS4)(unsigned char)self->self_id[i]) {
            return 0;
        }
    }
    return 1;
}

/* The line's OutboundMessage; NULL with no error set: declined. */
static PyObject *
dp_encode_line(DirectPath *self, PyObject *line, const Py_UCS1 *h, const char *stamp,
               PyObject *time_obj, PyObject *monotonic)
{
    dp_line l;
    char id[36], trace[32], sent_at[STAMP_LEN];
    if (!STR_EXACT(line) || !dp_scan_line(&l, line) || l.chan_end - l.chan > STR_MEMO_LEN ||
        (self->self_id_len && dp_is_self(self, &l))) {
        return NULL;
    }
    l.ncheers = 0;
    if ((l.has_bits && l.bits != 0 && !dp_scan_cheers(&l, &self->cheers)) ||
        !dp_ids(self, &l, h, id, trace)) {
        return NULL;
    }
    int has_sent = l.has_sent && l.sent_ms <= MAX_EPOCH_MS;
    if (has_sent && format_ms(&self->sent_memo, l.sent_ms, sent_at) < 0) {
        return NULL;
    }
    dp_frame f = {id, trace, stamp, has_sent ? sent_at : NULL, self->message_type,
                  self->finalizer, self->transport};
    jbuf jb;
    jb_init(&jb);
    int rc = dp_write(&jb, &l, &f);
    PyObject *values[OM_N] = {NULL};
    if (rc == 0) {
        values[OM_DATA] = PyBytes_FromStringAndSize(jb.p, jb.len);
    }
    jb_free(&jb);
    if (values[OM_DATA] == NULL) {
        return NULL; /* J_OTHER (declined) or an error (set) */
    }
    Py_ssize_t a, b;
    int has_id = dp_tag_span(&l, TG_ID, &a, &b) && a < b;
    values[OM_ENVELOPE_ID] = ascii_text(id, 36);
    values[OM_DEDUP_ID] = has_id ? PyUnicode_Substring(line, a, b) : Py_XNewRef(values[OM_ENVELOPE_ID]);
    values[OM_TYPE] = Py_NewRef(self->message_type);
    values[OM_TRACEPARENT] = PyUnicode_New(55, 127);
    if (values[OM_TRACEPARENT] != NULL) {
        Py_UCS1 *tp = PyUnicode_1BYTE_DATA(values[OM_TRACEPARENT]);
        memcpy(tp, "00-", 3);
        memcpy(tp + 3, trace, 32);
        tp[35] = '-';
        memcpy(tp + 36, h + 64, 16);
        memcpy(tp + 52, "-01", 3);
    }
    values[OM_CHANNEL] = span_str(self, &l, l.chan, l.chan_end, 1);
    if (dp_tag_span(&l, TG_ROOM_ID, &a, &b) && a < b) {
        PyObject *room = span_str(self, &l, a, b, 0);
        values[OM_ORDERING_KEY] = room || PyErr_Occurred() ? room : PyUnicode_Substring(line, a, b);
    }
    else {
        values[OM_ORDERING_KEY] = Py_XNewRef(values[OM_CHANNEL]);
    }
    values[OM_TIME] = Py_NewRef(time_obj);
    values[OM_RECEIVED_AT] = Py_NewRef(monotonic);
    values[OM_SEQ] = Py_NewRef(self->seq);
    for (int i = 0; i < OM_N; i++) {
        if (values[i] == NULL) {
            for (int k = 0; k < OM_N; k++) {
                Py_XDECREF(values[k]);
            }
            return NULL;
        }
    }
    return new_outbound(self, values); /* the line's spans are no longer used from here */
}

/* encode(lines, ids, received_at, monotonic) -> (items, declined): per line its
 * OutboundMessage, or None where the Python codec must decode it, and how many are None
 * (so the caller need not look: `None in items` compares every message with __eq__). ids:
 * 80 lowercase hex characters per line. */
static PyObject *
DirectPath_encode(DirectPath *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || self->outbound == NULL) {
        PyErr_SetString(PyExc_TypeError, "encode() takes 4 arguments (an initialised DirectPath)");
        return NULL;
    }
    PyObject *lines = args[0], *ids = args[1], *received_at = args[2], *monotonic = args[3];
    if (!PyList_CheckExact(lines) && !PyTuple_CheckExact(lines)) {
        PyErr_SetString(PyExc_TypeError, "encode(): lines must be a list or a tuple");
        return NULL;
    }
    /* a snapshot: a GC callback may change the caller's list while lines are encoded */
    lines = PyTuple_CheckExact(lines) ? Py_NewRef(lines) : PyList_AsTuple(lines);
    if (lines == NULL) {
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(lines), declined = 0;
    PyObject *out = NULL, *time_obj = NULL, *result = NULL;
    if (!STR_EXACT(ids) || !PyUnicode_IS_ASCII(ids) ||
        PyUnicode_GET_LENGTH(ids) < IDS_PER_LINE * n) {
        PyErr_SetString(PyExc_ValueError, "encode(): ids must be 80 hex characters per line");
        goto done;
    }
    if ((out = PyList_New(0)) == NULL) { /* appended to: never a list with empty slots */
        goto done;
    }
    /* the receipt time: one stamp for the batch, as IsoClock.format(received_at) */
    char stamp[STAMP_LEN];
    double ms = PyFloat_CheckExact(received_at) ? PyFloat_AS_DOUBLE(received_at) * 1000.0 : -1;
    if (ms >= 0 && ms <= (double)MAX_EPOCH_MS &&
        format_ms(&self->received_memo, (long long)ms, stamp) == 0 &&
        (time_obj = ascii_text(stamp, STAMP_LEN)) == NULL) {
        goto done;
    }
    const Py_UCS1 *hex = PyUnicode_1BYTE_DATA(ids); /* ids is held by the caller */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *line = PyTuple_GET_ITEM(lines, i); /* the tuple holds it */
        PyObject *item = time_obj == NULL ? NULL
                                          : dp_encode_line(self, line, hex + IDS_PER_LINE * i,
                                                           stamp, time_obj, monotonic);
        if (item == NULL && PyErr_Occurred()) {
            goto done;
        }
        if (item == NULL) {
            item = Py_NewRef(Py_None);
            declined++;
        }
        int appended = PyList_Append(out, item);
        Py_DECREF(item);
        if (appended < 0) {
            goto done;
        }
    }
    result = Py_BuildValue("(On)", out, declined);
done:
    Py_XDECREF(out);
    Py_XDECREF(time_obj);
    Py_DECREF(lines);
    return result;
}

/* set_self_id(user_id or None): from now on decline the lines whose user-id is user_id
 * (an ASCII str of 1 to SELF_ID_MAX characters; None or "": nobody). */
static PyObject *
DirectPath_set_self_id(DirectPath *self, PyObject *user_id)
{
    if (user_id == Py_None) {
        self->self_id_len = 0;
        Py_RETURN_NONE;
    }
    if (!STR_EXACT(user_id) || !PyUnicode_IS_ASCII(user_id) ||
        PyUnicode_GET_LENGTH(user_id) > SELF_ID_MAX) {
        PyErr_Format(PyExc_ValueError,
                     "set_self_id(): the user id must be None or an ASCII str of at most %d "
                     "characters", SELF_ID_MAX);
        return NULL;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(user_id);
    memcpy(self->self_id, PyUnicode_1BYTE_DATA(user_id), (size_t)n);
    self->self_id_len = n;
    Py_RETURN_NONE;
}

static PyMethodDef DirectPath_methods[] = {
    {"encode", (PyCFunction)(void (*)(void))DirectPath_encode, METH_FASTCALL,
     "encode($self, lines, ids, received_at, monotonic, /)\n--\n\n"
     "(per line its OutboundMessage or None where the Python codec must decode it, how many "
     "are None); ids holds 80 hex characters per line (ids.LineIds)."},
    {"set_self_id", (PyCFunction)DirectPath_set_self_id, METH_O,
     "set_self_id($self, user_id, /)\n--\n\n"
     "Decline the lines whose user-id is user_id (the bot's own; None: nobody)."},
    {NULL, NULL, 0, NULL}};

static PyTypeObject DirectPath_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "ingress_egress._native._speedups.DirectPath",
    .tp_basicsize = sizeof(DirectPath),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "DirectPath(outbound, transport, message_type, finalizer, namespace, cheermotes)"
              "\n--\n\nThe direct path of the native IRC codec (sources/irc/codec/native.py).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)DirectPath_init,
    .tp_dealloc = (destructor)DirectPath_dealloc,
    .tp_traverse = (traverseproc)DirectPath_traverse,
    .tp_clear = (inquiry)DirectPath_clear,
    .tp_methods = DirectPath_methods,
};

/* ------------------------------------------------------------------------------------- */
/* chunk -> lines (reference: sources/irc/transport.py split_lines)                      */

/* Each line is decoded on its own (LF never occurs inside a UTF-8 sequence, so the lines
 * and their replacement characters are those of decoding the whole chunk), which gives
 * every line its own narrowest string kind instead of one wide chunk sliced up. */
static PyObject *
sp_split_lines(PyObject *module, PyObject *chunk)
{
    if (!PyBytes_CheckExact(chunk)) {
        PyErr_SetString(PyExc_TypeError, "split_lines() takes bytes");
        return NULL;
    }
    const char *p = PyBytes_AS_STRING(chunk);
    Py_ssize_t n = PyBytes_GET_SIZE(chunk), start = 0;
    int invalid = 0;
    PyObject *lines = PyList_New(0);
    if (lines == NULL) {
        return NULL;
    }
    for (;;) {
        const char *nl = memchr(p + start, '\n', (size_t)(n - start));
        Py_ssize_t end = nl ? (Py_ssize_t)(nl - p) : n, len = end - start;
        const char *a = p + start;
        if (len > 1 || (len == 1 && a[0] != '\r')) {
            if (a[len - 1] == '\r') {
                len--;
            }
            PyObject *line = PyUnicode_DecodeUTF8(a, len, NULL);
            if (line == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
                PyErr_Clear();
                invalid = 1;
                line = PyUnicode_DecodeUTF8(a, len, "replace");
            }
            if (line == NULL || PyList_Append(lines, line) < 0) {
                Py_XDECREF(line);
                Py_DECREF(lines);
                return NULL;
            }
            Py_DECREF(line);
        }
        if (nl == NULL) {
            break;
        }
        start = end + 1;
    }
    PyObject *flag = PyLong_FromLong(invalid);
    if (flag == NULL) {
        Py_DECREF(lines);
        return NULL;
    }
    PyObject *result = PyTuple_Pack(2, lines, flag);
    Py_DECREF(lines);
    Py_DECREF(flag);
    return result;
}

/* ------------------------------------------------------------------------------------- */
/* the NATS HPUB frame of an OutboundMessage (reference: bus/nats.py hpub_frame)          */

/* s as a header value when the reference would copy it unchanged: printable ASCII, no
 * spaces (nothing to strip, no CR/LF to replace). */
static int
plain_header_value(PyObject *s)
{
    if (s == NULL || !STR_EXACT(s) || !PyUnicode_IS_ASCII(s)) {
        return 0;
    }
    const Py_UCS1 *p = PyUnicode_1BYTE_DATA(s);
    for (Py_ssize_t i = 0; i < PyUnicode_GET_LENGTH(s); i++) {
        if (p[i] <= ' ' || p[i] >= 0x7f) {
            return 0;
        }
    }
    return 1;
}

static char *
put_text(char *q, const char *text, size_t n)
{
    memcpy(q, text, n);
    return q + n;
}

static char *
put_str(char *q, PyObject *s)
{
    return put_text(q, (const char *)PyUnicode_1BYTE_DATA(s), (size_t)PyUnicode_GET_LENGTH(s));
}

static char *
put_size(char *q, Py_ssize_t value)
{
    char digits[24];
    int n = sizeof(digits);
    do {
        digits[--n] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    return put_text(q, digits + n, sizeof(digits) - (size_t)n);
}

#define HDR_1 "NATS/1.0\r\nNats-Msg-Id: "
#define HDR_2 "\r\ntraceparent: "
#define HDR_3 "\r\nEnvelope-Type: "
#define HDR_4 "\r\n\r\n"
#define LIT_LEN(text) (sizeof(text) - 1)

/* What a message's frame is made of, when C may build it: header values the reference
 * would copy unchanged. Strong references, read through the public attribute protocol
 * (a slots class: no Python code runs, but nothing here relies on that). */
typedef struct {
    PyObject *data, *dedup, *trace, *type;
    Py_ssize_t header, body;
} hpub_parts;

static PyObject *S_data, *S_dedup_id, *S_traceparent, *S_type;

static void
hpub_parts_clear(hpub_parts *p)
{
    Py_CLEAR(p->data);
    Py_CLEAR(p->dedup);
    Py_CLEAR(p->trace);
    Py_CLEAR(p->type);
}

/* 1: p filled; 0: the reference must build it (p cleared); -1: error. */
static int
hpub_parts_of(PyObject *message, hpub_parts *p)
{
    p->data = PyObject_GetAttr(message, S_data);
    p->dedup = p->data ? PyObject_GetAttr(message, S_dedup_id) : NULL;
    p->trace = p->dedup ? PyObject_GetAttr(message, S_traceparent) : NULL;
    p->type = p->trace ? PyObject_GetAttr(message, S_type) : NULL;
    if (p->type == NULL) {
        hpub_parts_clear(p);
        if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
            PyErr_Clear(); /* the reference raises it */
            return 0;
        }
        return -1;
    }
    if (!PyBytes_CheckExact(p->data) || !plain_header_value(p->dedup) ||
        !plain_header_value(p->trace) || !plain_header_value(p->type)) {
        hpub_parts_clear(p);
        return 0;
    }
    p->header = (Py_ssize_t)(LIT_LEN(HDR_1) + LIT_LEN(HDR_2) + LIT_LEN(HDR_3) +
                             LIT_LEN(HDR_4)) +
                PyUnicode_GET_LENGTH(p->dedup) + PyUnicode_GET_LENGTH(p->trace) +
                PyUnicode_GET_LENGTH(p->type);
    p->body = PyBytes_GET_SIZE(p->data);
    return 1;
}

/* The most a frame can take: "HPUB <subject>  <header> <total>\r\n" <header> <data> "\r\n" */
static Py_ssize_t
hpub_room(PyObject *subject, const hpub_parts *p)
{
    return 5 + PyBytes_GET_SIZE(subject) + 2 + 20 + 1 + 20 + 2 + p->header + p->body + 2;
}

static char *
hpub_write(char *q, PyObject *subject, const hpub_parts *p)
{
    q = put_text(q, "HPUB ", 5);
    q = put_text(q, PyBytes_AS_STRING(subject), (size_t)PyBytes_GET_SIZE(subject));
    q = put_text(q, "  ", 2);
    q = put_size(q, p->header);
    *q++ = ' ';
    q = put_size(q, p->header + p->body);
    q = put_text(q, "\r\n", 2);
    q = put_text(q, HDR_1, LIT_LEN(HDR_1));
    q = put_str(q, p->dedup);
    q = put_text(q, HDR_2, LIT_LEN(HDR_2));
    q = put_str(q, p->trace);
    q = put_text(q, HDR_3, LIT_LEN(HDR_3));
    q = put_str(q, p->type);
    q = put_text(q, HDR_4, LIT_LEN(HDR_4));
    q = put_text(q, PyBytes_AS_STRING(p->data), (size_t)p->body);
    return put_text(q, "\r\n", 2);
}

/* hpub_frames(subject, messages): the frames of a list of messages, one after another in one
 * bytes object (a slice handed to nats-py at once), or None when any of them needs the
 * reference (the caller then frames them one by one). */
static PyObject *
sp_hpub_frames(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "hpub_frames() takes exactly 2 arguments");
        return NULL;
    }
    PyObject *subject = args[0], *messages = args[1];
    if (!PyBytes_CheckExact(subject) || !PyList_CheckExact(messages)) {
        Py_RETURN_NONE;
    }
    PyObject *list = PySequence_List(messages); /* a copy: the list cannot change under us */
    if (list == NULL) {
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(list), room = 0, got = 0;
    hpub_parts *parts = PyMem_Calloc((size_t)(n > 0 ? n : 1), sizeof(hpub_parts));
    PyObject *frames = NULL;
    int ok = parts != NULL ? 1 : -1;
    if (parts == NULL) {
        PyErr_NoMemory();
    }
    for (; ok > 0 && got < n; got++) {
        ok = hpub_parts_of(PyList_GET_ITEM(list, got), &parts[got]);
        if (ok > 0) {
            room += hpub_room(subject, &parts[got]);
        }
    }
    if (ok > 0 && (frames = PyBytes_FromStringAndSize(NULL, room)) != NULL) {
        char *start = PyBytes_AS_STRING(frames), *q = start;
        for (Py_ssize_t i = 0; i < n; i++) {
            q = hpub_write(q, subject, &parts[i]);
        }
        if (_PyBytes_Resize(&frames, q - start) < 0) {
            frames = NULL;
        }
    }
    for (Py_ssize_t i = 0; parts != NULL && i < got; i++) {
        hpub_parts_clear(&parts[i]);
    }
    PyMem_Free(parts);
    Py_DECREF(list);
    if (ok == 0) {
        Py_RETURN_NONE;
    }
    return frames;
}

/* ------------------------------------------------------------------------------------- */
/* the module                                                                            */

static PyMethodDef module_methods[] = {
    {"split_lines", sp_split_lines, METH_O,
     "split_lines($module, chunk, /)\n--\n\n"
     "(lines, 1 if some bytes were not UTF-8 else 0) of a chunk of LF-terminated lines (the "
     "C twin of sources.irc.transport.split_lines)."},
    {"hpub_frames", (PyCFunction)(void (*)(void))sp_hpub_frames, METH_FASTCALL,
     "hpub_frames($module, subject, messages, /)\n--\n\n"
     "The frames of a list of OutboundMessages in one bytes object, byte for byte "
     "bus.nats.hpub_frame's one after another, or None when any of them needs that "
     "reference (a header value it would normalize)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT, "ingress_egress._native._speedups",
    "The IRC source's direct path (raw PRIVMSG line -> envelope), line splitting and NATS "
    "framing.",
    -1, module_methods};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    dp_init_keys();
    dp_init_classes();
    if ((S_data = PyUnicode_InternFromString("data")) == NULL ||
        (S_dedup_id = PyUnicode_InternFromString("dedup_id")) == NULL ||
        (S_traceparent = PyUnicode_InternFromString("traceparent")) == NULL ||
        (S_type = PyUnicode_InternFromString("type")) == NULL ||
        PyType_Ready(&DirectPath_Type) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddIntConstant(module, "ABI_VERSION", ABI_VERSION) < 0 ||
        PyModule_AddObjectRef(module, "DirectPath", (PyObject *)&DirectPath_Type) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
