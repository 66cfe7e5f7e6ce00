/*
 * ingress_egress._native._speedups: the C fast path for the per-line hot path.
 *
 *   parse_line(line)            -> IrcMessage         (protocol/irc.py: _parse_line_py)
 *   from_irc(msg)               -> typed message      (twitch/messages: _from_irc_py)
 *   Privmsg.from_irc(msg)       -> Privmsg            (privmsg.py: _privmsg_from_irc_py)
 *   EnvelopeBuilder.build(...)  -> envelope dict      (builder.py: _build_py / _message)
 *   message_to_outbound(...)    -> OutboundMessage    (envelope/outbound.py:
 *                                  _message_to_outbound_py; a PRIVMSG's JSON written here,
 *                                  byte for byte what orjson makes of the envelope dict)
 *   stable_uuid(name)           -> UUIDv5 string      (ids.py: _stable_uuid_py)
 *   split_lines(chunk)          -> (lines, invalid)   (sources/irc/transport.py:
 *                                  _split_lines_py)
 *   hpub_frame(subject, msg)    -> bytes or None      (bus/nats.py: hpub_frame; None = call it)
 *   hpub_frames(subject, msgs)  -> bytes or None      (the frames of a list, concatenated)
 *   lines_to_outbound(...)      -> list               (sources/irc/codec.py:
 *                                  _lines_to_outbound_py; a read loop's batch in one call;
 *                                  a common PRIVMSG goes by the "direct path": its JSON
 *                                  written from the raw line, see that section)
 *
 * The pure-Python functions named above are the reference: every function here returns
 * exactly what its reference returns (same types, same values, same dict order, same
 * exceptions) and hands anything unusual to it (a non-str line, a subclass, a field holding
 * an unexpected type, digits C does not parse itself...). The Python modules register their
 * classes and reference functions with the configure_* functions at import time; until then,
 * and whenever set_enabled(False) was called, every entry point calls the reference.
 *
 * Objects of the registered __slots__ classes (IrcMessage, the message dataclasses) are
 * allocated with tp_alloc and their slots written directly at the offsets that the classes'
 * own member descriptors report; configure_* checks the layout first (exact __slots__, no
 * __dict__, plain object base) and refuses a class that does not match.
 *
 * Strings are read through PyUnicode_READ on their own kind (1, 2 or 4 bytes per code
 * point), always within [0, length): any str is safe input, including NULs, lone surrogates
 * and non-BMP text. Substrings come from PyUnicode_Substring / PyUnicode_FromKindAndData,
 * which build canonical (narrowest-kind) strings, as slicing does in Python.
 *
 * SHA-1 below is written from FIPS 180-4.
 *
 * ABI_VERSION: bump it whenever the configure_* arguments or the registered classes' slots
 * change, or entry points the package calls are added, so a stale build is refused by
 * ingress_egress._native (pure Python, with a warning) instead of being half-configured.
 */
#define ABI_VERSION 4
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <math.h>
#include <stdint.h>
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_SHA_NI_CODE 1
#endif
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define ALWAYS_INLINE inline
#define LIKELY(x) (x)
#define UNLIKELY(x) (x)
#endif

#ifndef T_OBJECT_EX
#define T_OBJECT_EX Py_T_OBJECT_EX
#endif
#ifndef READONLY
#define READONLY Py_READONLY
#endif

#if PY_VERSION_HEX < 0x030C0000
#define STR_EXACT(o) (PyUnicode_CheckExact(o) && PyUnicode_IS_READY(o))
#else
#define STR_EXACT(o) PyUnicode_CheckExact(o)
#endif

#if PY_VERSION_HEX < 0x030E0000
#define NEW_DICT(n) _PyDict_NewPresized(n)
#else
#define NEW_DICT(n) PyDict_New()
#endif

#define READ(i) PyUnicode_READ(kind, data, (i))

/* ------------------------------------------------------------------------------------- */
/* interned strings                                                                      */

#define STRINGS(X)                                                                     \
    X(empty, "")                                                                       \
    X(one, "1")                                                                        \
    X(PRIVMSG, "PRIVMSG")                                                              \
    X(twitch, "twitch")                                                                \
    X(twitch_colon, "twitch:")                                                         \
    X(vip, "vip")                                                                      \
    X(broadcaster, "broadcaster")                                                      \
    X(err_partial, "partial message: no space after tags")                             \
    X(err_no_cmd_after_prefix, "no command after prefix")                              \
    X(err_empty_prefix, "empty prefix")                                                \
    X(err_no_command, "no command")                                                    \
    X(err_empty_line, "empty line")                                                    \
    /* tags */                                                                         \
    X(t_room_id, "room-id")                                                            \
    X(t_id, "id")                                                                      \
    X(t_emotes, "emotes")                                                              \
    X(t_bits, "bits")                                                                  \
    X(t_mod, "mod")                                                                    \
    X(t_subscriber, "subscriber")                                                      \
    X(t_first_msg, "first-msg")                                                        \
    X(t_returning, "returning-chatter")                                                \
    X(t_sent_ts, "tmi-sent-ts")                                                        \
    X(t_reward, "custom-reward-id")                                                    \
    X(t_msg_id, "msg-id")                                                              \
    X(t_reply_msg_id, "reply-parent-msg-id")                                           \
    X(t_source_room_id, "source-room-id")                                              \
    X(t_user_id, "user-id")                                                            \
    X(t_display_name, "display-name")                                                  \
    X(t_color, "color")                                                                \
    X(t_badges, "badges")                                                              \
    X(t_badge_info, "badge-info")                                                      \
    X(t_reply_user_id, "reply-parent-user-id")                                         \
    X(t_reply_user_login, "reply-parent-user-login")                                   \
    X(t_reply_display_name, "reply-parent-display-name")                               \
    X(t_reply_body, "reply-parent-msg-body")                                           \
    X(t_thread_msg_id, "reply-thread-parent-msg-id")                                   \
    X(t_thread_user_login, "reply-thread-parent-user-login")                           \
    X(t_source_id, "source-id")                                                        \
    X(t_source_badges, "source-badges")                                                \
    X(t_source_badge_info, "source-badge-info")                                        \
    /* envelope keys */                                                                \
    X(k_v, "v")                                                                        \
    X(k_correlation_id, "correlationId")                                               \
    X(k_trace_id, "traceId")                                                           \
    X(k_timestamp, "timestamp")                                                        \
    X(k_type, "type")                                                                  \
    X(k_source, "source")                                                              \
    X(k_user, "user")                                                                  \
    X(k_routing_slip, "routingSlip")                                                   \
    X(k_finalization, "finalizationDestination")                                       \
    X(k_payload, "payload")                                                            \
    X(k_platform, "platform")                                                          \
    X(k_channel, "channel")                                                            \
    X(k_channel_id, "channelId")                                                       \
    X(k_name, "name")                                                                  \
    X(k_display_name, "displayName")                                                   \
    X(k_profile_image, "profileImageUrl")                                              \
    X(k_role, "role")                                                                  \
    X(k_text, "text")                                                                  \
    X(k_message_id, "messageId")                                                       \
    X(k_is_mod, "isMod")                                                               \
    X(k_is_subscriber, "isSubscriber")                                                 \
    X(k_raw, "raw")                                                                    \
    X(k_tags, "tags")                                                                  \
    X(k_is_action, "isAction")                                                         \
    X(k_cheers, "cheers")                                                              \
    X(k_badge_info, "badgeInfo")                                                       \
    X(k_badge_versions, "badgeVersions")                                               \
    X(k_is_vip, "isVip")                                                               \
    X(k_is_broadcaster, "isBroadcaster")                                               \
    X(k_first_message, "firstMessage")                                                 \
    X(k_returning, "returningChatter")                                                 \
    X(k_reward, "customRewardId")                                                      \
    X(k_message_kind, "messageKind")                                                   \
    X(k_reply, "reply")                                                                \
    X(k_shared_chat, "sharedChat")                                                     \
    X(k_sent_at, "sentAt")                                                             \
    X(k_transport, "transport")                                                        \
    X(k_parent_message_id, "parentMessageId")                                          \
    X(k_parent_user_id, "parentUserId")                                                \
    X(k_parent_user_login, "parentUserLogin")                                          \
    X(k_parent_display_name, "parentDisplayName")                                      \
    X(k_parent_text, "parentText")                                                     \
    X(k_thread_message_id, "threadParentMessageId")                                    \
    X(k_thread_user_login, "threadParentUserLogin")                                    \
    X(k_source_room_id, "sourceRoomId")                                                \
    X(k_source_message_id, "sourceMessageId")                                          \
    X(k_start, "start")                                                                \
    X(k_end, "end")                                                                    \
    /* attribute and method names */                                                   \
    X(a_builders, "_builders")                                                         \
    X(a_clock, "_clock")                                                               \
    X(a_received, "_received")                                                         \
    X(a_sent, "_sent")                                                                 \
    X(a_ids, "_ids")                                                                   \
    X(a_format, "format")                                                              \
    X(a_format_ms, "format_ms")                                                        \
    X(a_uuid4, "uuid4")                                                                \
    X(a_trace_id, "trace_id")                                                          \
    X(a_lower, "lower")                                                                \
    X(a_message_id, "message_id")                                                      \
    X(a_user_id, "user_id")                                                            \
    X(a_user_login, "user_login")                                                      \
    X(a_display_name, "display_name")                                                  \
    X(a_text, "text")                                                                  \
    X(a_thread_message_id, "thread_message_id")                                        \
    X(a_thread_user_login, "thread_user_login")                                        \
    X(a_room_id, "room_id")                                                            \
    X(a_message, "message")                                                            \
    X(a_received_at, "received_at")

#define DECLARE_STRING(name, text) static PyObject *S_##name = NULL;
STRINGS(DECLARE_STRING)
#undef DECLARE_STRING

static int
init_strings(void)
{
#define MAKE_STRING(name, text)                            \
    if (S_##name == NULL) {                                \
        S_##name = PyUnicode_InternFromString(text);       \
        if (S_##name == NULL) {                            \
            return -1;                                     \
        }                                                  \
    }
    STRINGS(MAKE_STRING)
#undef MAKE_STRING
    return 0;
}

/* ------------------------------------------------------------------------------------- */
/* configuration: the Python classes and reference functions                            */

static int g_enabled = 1;

/* protocol */
static PyTypeObject *T_IrcMessage = NULL;
static PyObject *O_IrcParseError = NULL;
static PyObject *F_parse_line_py = NULL;
enum { IM_TAGS, IM_PREFIX, IM_COMMAND, IM_PARAMS, IM_RAW, IM_NICK, IM_USER, IM_HOST, IM_N };
static const char *const IM_NAMES[IM_N] = {"tags", "prefix", "command", "params",
                                           "raw",  "nick",   "user",    "host"};
static Py_ssize_t off_im[IM_N];

/* typed messages */
static PyTypeObject *T_Privmsg = NULL, *T_Chatter = NULL, *T_EmoteRange = NULL,
                    *T_ReplyParent = NULL, *T_SharedChatSource = NULL;
static PyObject *F_from_irc_py = NULL, *F_privmsg_py = NULL, *F_parse_emotes_py = NULL;
static PyObject *O_badge_cache = NULL;
static Py_ssize_t g_badge_cache_limit = 4096;

enum {
    PM_CHANNEL, PM_ROOM_ID, PM_MESSAGE_ID, PM_CHATTER, PM_TEXT, PM_IS_ACTION, PM_EMOTES,
    PM_BITS, PM_IS_MOD, PM_IS_SUBSCRIBER, PM_FIRST_MESSAGE, PM_RETURNING, PM_SENT_AT_MS,
    PM_REWARD, PM_MESSAGE_KIND, PM_REPLY, PM_SHARED, PM_IRC, PM_N
};
static const char *const PM_NAMES[PM_N] = {
    "channel",  "room_id",       "message_id",       "chatter",           "text",
    "is_action", "emotes",       "bits",             "is_mod",            "is_subscriber",
    "first_message", "returning_chatter", "sent_at_ms", "custom_reward_id", "message_kind",
    "reply",    "shared_source", "irc"};
static Py_ssize_t off_pm[PM_N];

enum { CH_USER_ID, CH_LOGIN, CH_DISPLAY_NAME, CH_COLOR, CH_BADGES, CH_BADGE_INFO, CH_N };
static const char *const CH_NAMES[CH_N] = {"user_id", "login",  "display_name",
                                           "color",   "badges", "badge_info"};
static Py_ssize_t off_ch[CH_N];

enum { ER_ID, ER_START, ER_END, ER_N };
static const char *const ER_NAMES[ER_N] = {"id", "start", "end"};
static Py_ssize_t off_er[ER_N];

enum { RP_MESSAGE_ID, RP_USER_ID, RP_USER_LOGIN, RP_DISPLAY_NAME, RP_TEXT, RP_THREAD_ID,
       RP_THREAD_LOGIN, RP_N };
static const char *const RP_NAMES[RP_N] = {"message_id",   "user_id", "user_login",
                                           "display_name", "text",    "thread_message_id",
                                           "thread_user_login"};
static Py_ssize_t off_rp[RP_N];

enum { SC_ROOM_ID, SC_MESSAGE_ID, SC_BADGES, SC_BADGE_INFO, SC_N };
static const char *const SC_NAMES[SC_N] = {"room_id", "message_id", "badges", "badge_info"};
static Py_ssize_t off_sc[SC_N];

/* envelope */
static PyTypeObject *T_EnvelopeBuilder = NULL, *T_RandomIds = NULL, *T_IsoClock = NULL;
static PyObject *F_build_py = NULL, *F_message_py = NULL, *F_second_prefix = NULL,
                *F_stable_uuid_py = NULL, *F_emotes_py = NULL, *F_cheers_py = NULL;
static PyObject *O_MESSAGE = NULL, *O_FINALIZER = NULL;
static unsigned char g_namespace[16];
static long long g_max_epoch_ms = 0;

enum { RI_HEX, RI_POS, RI_N };
static const char *const RI_NAMES[RI_N] = {"_hex", "_pos"};
static Py_ssize_t off_ri[RI_N];

enum { IC_LAST, IC_LAST_IN, IC_PREFIX, IC_SECOND, IC_N };
static const char *const IC_NAMES[IC_N] = {"_last", "_last_in", "_prefix", "_second"};
static Py_ssize_t off_ic[IC_N];

/* ------------------------------------------------------------------------------------- */
/* __slots__ access                                                                      */

static inline PyObject *
slot_get(PyObject *obj, Py_ssize_t offset) /* borrowed, NULL when unset */
{
    return *(PyObject **)((char *)obj + offset);
}

static inline void
slot_put(PyObject *obj, Py_ssize_t offset, PyObject *value) /* steals value */
{
    PyObject **addr = (PyObject **)((char *)obj + offset);
    PyObject *old = *addr;
    *addr = value;
    Py_XDECREF(old);
}

/* The offsets of a class's slots, from its own member descriptors. With `allocate`, also
 * check that an instance is fully described by those slots, so that tp_alloc + writing
 * every slot builds an object equal to what its __init__ builds. */
static int
resolve_slots(PyObject *type, const char *const *names, int count, Py_ssize_t *offsets,
              int allocate)
{
    if (!PyType_Check(type)) {
        PyErr_Format(PyExc_TypeError, "expected a class, got %R", type);
        return -1;
    }
    PyTypeObject *tp = (PyTypeObject *)type;
    PyObject *slots = PyObject_GetAttrString(type, "__slots__");
    if (slots == NULL) {
        return -1;
    }
    Py_ssize_t declared = PyObject_Length(slots);
    Py_DECREF(slots);
    if (declared < 0) {
        return -1;
    }
    if (declared != count) {
        PyErr_Format(PyExc_TypeError,
                     "%s has %zd slots, the C fast path knows %d: update _speedups.c",
                     tp->tp_name, declared, count);
        return -1;
    }
    for (int i = 0; i < count; i++) {
        PyObject *descr = PyObject_GetAttrString(type, names[i]);
        if (descr == NULL) {
            return -1;
        }
        int ok = Py_TYPE(descr) == &PyMemberDescr_Type &&
                 ((PyDescrObject *)descr)->d_type == tp;
        if (ok) {
            PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
            ok = member->type == T_OBJECT_EX && !(member->flags & READONLY);
            offsets[i] = member->offset;
        }
        Py_DECREF(descr);
        if (!ok) {
            PyErr_Format(PyExc_TypeError, "%s.%s is not a plain slot", tp->tp_name, names[i]);
            return -1;
        }
    }
    if (allocate && (tp->tp_itemsize != 0 || tp->tp_dictoffset != 0 ||
                     tp->tp_base != &PyBaseObject_Type ||
                     tp->tp_new != PyBaseObject_Type.tp_new || tp->tp_alloc == NULL)) {
        PyErr_Format(PyExc_TypeError, "%s cannot be built by the C fast path", tp->tp_name);
        return -1;
    }
    return 0;
}

/* A new instance with every slot set; steals the values (which must not be NULL). */
static PyObject *
build_instance(PyTypeObject *tp, const Py_ssize_t *offsets, PyObject **values, int count)
{
    for (int i = 0; i < count; i++) {
        if (values[i] == NULL) {
            goto fail;
        }
    }
    PyObject *obj = tp->tp_alloc(tp, 0);
    if (obj == NULL) {
        goto fail;
    }
    for (int i = 0; i < count; i++) {
        slot_put(obj, offsets[i], values[i]);
        values[i] = NULL;
    }
    return obj;
fail:
    for (int i = 0; i < count; i++) {
        Py_CLEAR(values[i]);
    }
    return NULL;
}

static void
set_ref(PyObject **target, PyObject *value)
{
    Py_XINCREF(value);
    Py_XSETREF(*target, value);
}

static void
set_type(PyTypeObject **target, PyObject *value)
{
    Py_XINCREF(value);
    PyTypeObject *old = *target;
    *target = (PyTypeObject *)value;
    Py_XDECREF(old);
}

static PyObject *
not_configured(const char *what)
{
    PyErr_Format(PyExc_RuntimeError, "ingress_egress._native._speedups: %s is not configured",
                 what);
    return NULL;
}

/* ------------------------------------------------------------------------------------- */
/* small shared strings: tag keys, commands, channels, badge names, emote ids            */

#define SCACHE_SIZE 1024 /* a power of two */
#define SCACHE_MAX_LEN 40
#define SCACHE_PROBES 4
static PyObject *scache[SCACHE_SIZE];

/* src[a:b] as a str; short ASCII strings come from a bounded table of interned strings, so
 * the tag keys of every line are the same objects as the literals in the Python code.
 * `ascii` says src is all ASCII (then no character needs checking). */
static ALWAYS_INLINE PyObject *
shared_substr(PyObject *src, const int kind, const void *data, Py_ssize_t a, Py_ssize_t b,
              const int ascii)
{
    Py_ssize_t n = b - a;
    if (n <= 0) {
        return Py_NewRef(S_empty);
    }
    if (n > SCACHE_MAX_LEN) {
        return PyUnicode_Substring(src, a, b);
    }
    /* the characters as bytes (all ASCII, or no sharing) */
    Py_UCS1 copy[SCACHE_MAX_LEN];
    const Py_UCS1 *p;
    if (kind == PyUnicode_1BYTE_KIND) {
        p = (const Py_UCS1 *)data + a;
        if (!ascii) {
            for (Py_ssize_t i = 0; i < n; i++) {
                if (p[i] >= 128) {
                    return PyUnicode_Substring(src, a, b);
                }
            }
        }
    }
    else {
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_UCS4 c = READ(a + i);
            if (c >= 128) {
                return PyUnicode_Substring(src, a, b);
            }
            copy[i] = (Py_UCS1)c;
        }
        p = copy;
    }
    /* hash: the first and last (up to) 8 characters and the length */
    uint64_t w1 = 0, w2 = 0;
    if (n >= 8) {
        memcpy(&w1, p, 8);
        memcpy(&w2, p + n - 8, 8);
    }
    else {
        for (Py_ssize_t i = 0; i < n; i++) {
            w1 = (w1 << 8) | p[i];
        }
    }
    uint64_t h = (w1 ^ ((w2 << 29) | (w2 >> 35)) ^ (uint64_t)n) * 0x9E3779B97F4A7C15ull;
    h ^= h >> 31;
    h *= 0xC2B2AE3D27D4EB4Full;
    h ^= h >> 29;
    size_t base = (size_t)h;
    for (int probe = 0; probe < SCACHE_PROBES; probe++) {
        PyObject *entry = scache[(base + probe) & (SCACHE_SIZE - 1)];
        if (entry == NULL) {
            break;
        }
        if (PyUnicode_GET_LENGTH(entry) == n &&
            memcmp(PyUnicode_1BYTE_DATA(entry), p, (size_t)n) == 0) {
            return Py_NewRef(entry);
        }
    }
    PyObject *s = PyUnicode_Substring(src, a, b);
    if (s == NULL) {
        return NULL;
    }
    PyUnicode_InternInPlace(&s);
#ifdef SCACHE_DEBUG
    fprintf(stderr, "scache miss: %s\n", PyUnicode_AsUTF8(s));
#endif
    size_t at = (base + (size_t)((h >> 20) & (SCACHE_PROBES - 1))) & (SCACHE_SIZE - 1);
    for (int probe = 0; probe < SCACHE_PROBES; probe++) {
        size_t i = (base + probe) & (SCACHE_SIZE - 1);
        if (scache[i] == NULL) {
            at = i;
            break;
        }
    }
    if (PyUnicode_IS_ASCII(s)) { /* always, but the lookup relies on it */
        set_ref(&scache[at], s);
    }
    return s;
}

/* ------------------------------------------------------------------------------------- */
/* the IRC line parser (reference: protocol/irc.py)                                     */

/* Word-at-a-time search on little-endian machines: a 64-bit word holds 8, 4 or 2 code
 * points of a 1-, 2- or 4-byte kind string, one per lane. */
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
#ifdef HAVE_SWAR
    const Py_ssize_t per = 8 / kind;
    const uint64_t ones = swar_ones(kind), highs = ones << (8 * kind - 1);
    const char *bytes = (const char *)data;
    while (start + per <= end) {
        uint64_t x;
        memcpy(&x, bytes + start * kind, 8);
        uint64_t hit = swar_eq(x, ch, ones, highs);
        if (hit) {
            return start + (Py_ssize_t)(__builtin_ctzll(hit) >> 3) / kind;
        }
        start += per;
    }
#endif
    for (Py_ssize_t i = start; i < end; i++) {
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

/* IRCv3 tag value unescaping of data[a:b] (which holds a backslash). */
static ALWAYS_INLINE PyObject *
unescape_value(const int kind, const void *data, Py_ssize_t a, Py_ssize_t b)
{
    Py_UCS4 small[256];
    Py_UCS4 *buf = small;
    if (b - a > (Py_ssize_t)(sizeof(small) / sizeof(small[0]))) {
        buf = PyMem_New(Py_UCS4, (size_t)(b - a));
        if (buf == NULL) {
            return PyErr_NoMemory();
        }
    }
    Py_ssize_t n = 0;
    Py_ssize_t i = a;
    while (i < b) {
        Py_UCS4 c = READ(i);
        if (c != '\\') {
            buf[n++] = c;
            i++;
            continue;
        }
        if (i + 1 >= b) { /* a lone trailing backslash is dropped */
            break;
        }
        Py_UCS4 e = READ(i + 1);
        i += 2;
        switch (e) {
        case ':':
            buf[n++] = ';';
            break;
        case 's':
            buf[n++] = ' ';
            break;
        case 'r':
            buf[n++] = '\r';
            break;
        case 'n':
            buf[n++] = '\n';
            break;
        default: /* "\\\\" and any other escaped character stand for themselves */
            buf[n++] = e;
        }
    }
    PyObject *out = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, buf, n);
    if (buf != small) {
        PyMem_Free(buf);
    }
    return out;
}

/* The characters the tag scanner stops at: ';', '=' and the backslash. */
static const unsigned char TAG_STOP[256] = {[';'] = 1, ['='] = 1, ['\\'] = 1};

static ALWAYS_INLINE int
tag_class(const int kind, Py_UCS4 c)
{
    if (kind == PyUnicode_1BYTE_KIND) {
        return TAG_STOP[c & 0xFF];
    }
    return c < 256 && TAG_STOP[c];
}

/* The next ';', '=' or backslash in data[j:b] (b when none). */
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
    while (j < b && !tag_class(kind, READ(j))) {
        j++;
    }
    return j;
}

/* data[a:b] as a str when the whole source is ASCII: no scan for the widest character. */
static ALWAYS_INLINE PyObject *
ascii_substr(PyObject *src, const int kind, const void *data, Py_ssize_t a, Py_ssize_t b,
             const int ascii)
{
    if (kind != PyUnicode_1BYTE_KIND || !ascii || b - a < 2) {
        return PyUnicode_Substring(src, a, b); /* "" and 1 character: shared singletons */
    }
    PyObject *out = PyUnicode_New(b - a, 127);
    if (out != NULL) {
        memcpy(PyUnicode_1BYTE_DATA(out), (const Py_UCS1 *)data + a, (size_t)(b - a));
    }
    return out;
}

/* "a=1;b;c=x\\sy" (data[a:b]) -> {"a": "1", "b": "", "c": "x y"}; empty keys skipped, a
 * later duplicate wins (keeping the first one's position), as dict() does. */
static ALWAYS_INLINE PyObject *
parse_tags_impl(PyObject *raw, const int kind, const void *data, Py_ssize_t a, Py_ssize_t b,
                const int ascii)
{
    Py_ssize_t items = 1;
    if (kind == PyUnicode_1BYTE_KIND) {
        const Py_UCS1 *p = (const Py_UCS1 *)data + a, *end = (const Py_UCS1 *)data + b;
        while ((p = memchr(p, ';', (size_t)(end - p))) != NULL) {
            items++;
            p++;
        }
    }
    else {
        for (Py_ssize_t i = a; i < b; i++) {
            items += READ(i) == ';';
        }
    }
    PyObject *tags = NEW_DICT(items < 64 ? items : 64);
    if (tags == NULL) {
        return NULL;
    }
    Py_ssize_t i = a;
    for (;;) {
        Py_ssize_t j = i, eq = -1;
        int escaped = 0;
        for (;;) {
            j = next_tag_stop(kind, data, j, b);
            if (j >= b) {
                break;
            }
            Py_UCS4 c = READ(j);
            if (c == ';') {
                break;
            }
            if (c == '=') {
                if (eq < 0) {
                    eq = j;
                }
            }
            else if (eq >= 0) { /* a backslash in the value */
                escaped = 1;
            }
            j++;
        }
        Py_ssize_t key_end = eq >= 0 ? eq : j;
        if (key_end > i) {
            PyObject *key = shared_substr(raw, kind, data, i, key_end, ascii);
            PyObject *value;
            if (eq < 0) {
                value = Py_NewRef(S_empty);
            }
            else if (escaped) {
                value = unescape_value(kind, data, eq + 1, j);
            }
            else {
                value = ascii_substr(raw, kind, data, eq + 1, j, ascii);
            }
            int rc = (key && value) ? PyDict_SetItem(tags, key, value) : -1;
            Py_XDECREF(key);
            Py_XDECREF(value);
            if (rc < 0) {
                Py_DECREF(tags);
                return NULL;
            }
        }
        if (j >= b) {
            break;
        }
        i = j + 1;
    }
    return tags;
}

static void
raise_parse_error(PyObject *reason, PyObject *raw, PyObject *tags)
{
    PyObject *empty = NULL;
    if (tags == NULL) {
        tags = empty = PyDict_New();
        if (tags == NULL) {
            return;
        }
    }
    PyObject *exc = PyObject_CallFunctionObjArgs(O_IrcParseError, reason, raw, tags, NULL);
    Py_XDECREF(empty);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
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

/* nick!user@host (data[a:b]) -> the three parts, as IrcMessage._split_prefix does. */
static ALWAYS_INLINE int
split_prefix(PyObject *raw, const int kind, const void *data, Py_ssize_t a, Py_ssize_t b,
             PyObject *prefix, PyObject **nick, PyObject **user, PyObject **host)
{
    Py_ssize_t at = find_char(kind, data, a, b, '@');
    Py_ssize_t nick_end = at >= 0 ? at : b;
    Py_ssize_t bang = find_char(kind, data, a, nick_end, '!');
    if (at >= 0) {
        *host = PyUnicode_Substring(raw, at + 1, b);
        if (*host == NULL) {
            return -1;
        }
    }
    if (bang < 0 && at < 0 && find_char(kind, data, a, b, '.') >= 0) {
        *host = Py_NewRef(prefix); /* a bare server name such as "tmi.twitch.tv" */
        return 0;
    }
    Py_ssize_t name_end = bang >= 0 ? bang : nick_end;
    *nick = name_end == b ? Py_NewRef(prefix) : PyUnicode_Substring(raw, a, name_end);
    if (*nick == NULL) {
        return -1;
    }
    if (bang >= 0) {
        Py_ssize_t n = nick_end - (bang + 1);
        if (n == name_end - a && same_span(kind, data, a, bang + 1, n)) {
            *user = Py_NewRef(*nick); /* Twitch sends login!login@login.tmi.twitch.tv */
        }
        else {
            *user = PyUnicode_Substring(raw, bang + 1, nick_end);
            if (*user == NULL) {
                return -1;
            }
        }
    }
    return 0;
}

/* raw[p:] after the command: the middle words split on whitespace (str.split()), then
 * everything after the first " :" at or after p - 1 as one last parameter. */
static ALWAYS_INLINE PyObject *
parse_params(PyObject *raw, const int kind, const void *data, Py_ssize_t p, Py_ssize_t len,
             const int ascii)
{
    Py_ssize_t colon = -1;
    for (Py_ssize_t i = p - 1; i + 1 < len; i++) {
        if (READ(i) == ' ' && READ(i + 1) == ':') {
            colon = i;
            break;
        }
    }
    Py_ssize_t mid_end = colon >= 0 ? colon : len;
    Py_ssize_t words = 0;
    for (Py_ssize_t i = p; i < mid_end;) {
        while (i < mid_end && Py_UNICODE_ISSPACE(READ(i))) {
            i++;
        }
        if (i >= mid_end) {
            break;
        }
        words++;
        while (i < mid_end && !Py_UNICODE_ISSPACE(READ(i))) {
            i++;
        }
    }
    PyObject *params = PyList_New(words + (colon >= 0));
    if (params == NULL) {
        return NULL;
    }
    Py_ssize_t k = 0;
    for (Py_ssize_t i = p; i < mid_end && k < words;) {
        while (i < mid_end && Py_UNICODE_ISSPACE(READ(i))) {
            i++;
        }
        Py_ssize_t j = i;
        while (j < mid_end && !Py_UNICODE_ISSPACE(READ(j))) {
            j++;
        }
        PyObject *word = shared_substr(raw, kind, data, i, j, ascii);
        if (word == NULL) {
            Py_DECREF(params);
            return NULL;
        }
        PyList_SET_ITEM(params, k++, word);
        i = j;
    }
    if (colon >= 0) {
        PyObject *trailing = PyUnicode_Substring(raw, colon + 2, len);
        if (trailing == NULL) {
            Py_DECREF(params);
            return NULL;
        }
        PyList_SET_ITEM(params, k, trailing);
    }
    return params;
}

static ALWAYS_INLINE PyObject *
parse_impl(PyObject *raw, const int kind, const void *data, const Py_ssize_t len,
           const int ascii)
{
    PyObject *v[IM_N] = {NULL};
    Py_ssize_t pos = 0, space;

    if (len > 0 && READ(0) == '@') {
        space = find_char(kind, data, 1, len, ' ');
        if (space < 0) {
            PyObject *tags = parse_tags_impl(raw, kind, data, 1, len, ascii);
            if (tags != NULL) {
                raise_parse_error(S_err_partial, raw, tags);
                Py_DECREF(tags);
            }
            return NULL;
        }
        v[IM_TAGS] = parse_tags_impl(raw, kind, data, 1, space, ascii);
        pos = skip_spaces(kind, data, space, len);
    }
    else {
        v[IM_TAGS] = PyDict_New();
    }
    if (v[IM_TAGS] == NULL) {
        goto fail;
    }
    if (pos < len && READ(pos) == ':') {
        space = find_char(kind, data, pos, len, ' ');
        if (space < 0) {
            raise_parse_error(S_err_no_cmd_after_prefix, raw, v[IM_TAGS]);
            goto fail;
        }
        if (space == pos + 1) {
            raise_parse_error(S_err_empty_prefix, raw, v[IM_TAGS]);
            goto fail;
        }
        v[IM_PREFIX] = PyUnicode_Substring(raw, pos + 1, space);
        if (v[IM_PREFIX] == NULL ||
            split_prefix(raw, kind, data, pos + 1, space, v[IM_PREFIX], &v[IM_NICK],
                         &v[IM_USER], &v[IM_HOST]) < 0) {
            goto fail;
        }
        pos = space;
    }
    pos = skip_spaces(kind, data, pos, len);
    if (pos >= len) {
        raise_parse_error(len ? S_err_no_command : S_err_empty_line, raw, v[IM_TAGS]);
        goto fail;
    }
    space = find_char(kind, data, pos, len, ' ');
    if (space < 0) {
        v[IM_COMMAND] = shared_substr(raw, kind, data, pos, len, ascii);
        v[IM_PARAMS] = PyList_New(0);
    }
    else {
        v[IM_COMMAND] = shared_substr(raw, kind, data, pos, space, ascii);
        v[IM_PARAMS] = parse_params(raw, kind, data, space + 1, len, ascii);
    }
    if (v[IM_COMMAND] == NULL || v[IM_PARAMS] == NULL) {
        goto fail;
    }
    v[IM_RAW] = Py_NewRef(raw);
    for (int i = 0; i < IM_N; i++) {
        if (v[i] == NULL) {
            v[i] = Py_NewRef(Py_None);
        }
    }
    return build_instance(T_IrcMessage, off_im, v, IM_N);
fail:
    for (int i = 0; i < IM_N; i++) {
        Py_XDECREF(v[i]);
    }
    return NULL;
}

static PyObject *
call_parse_line_py(PyObject *line)
{
    if (F_parse_line_py == NULL) {
        return not_configured("parse_line");
    }
    return PyObject_CallOneArg(F_parse_line_py, line);
}

static PyObject *
sp_parse_line(PyObject *module, PyObject *line)
{
    if (UNLIKELY(!g_enabled || T_IrcMessage == NULL || !STR_EXACT(line))) {
        return call_parse_line_py(line);
    }
    Py_ssize_t len = PyUnicode_GET_LENGTH(line);
    int kind = PyUnicode_KIND(line);
    const void *data = PyUnicode_DATA(line);
    Py_ssize_t n = len;
    while (n > 0) {
        Py_UCS4 c = READ(n - 1);
        if (c != '\r' && c != '\n') {
            break;
        }
        n--;
    }
    PyObject *raw = n == len ? Py_NewRef(line) : PyUnicode_Substring(line, 0, n);
    if (raw == NULL) {
        return NULL;
    }
    kind = PyUnicode_KIND(raw);
    data = PyUnicode_DATA(raw);
    PyObject *msg;
    switch (kind) {
    case PyUnicode_1BYTE_KIND:
        msg = PyUnicode_IS_ASCII(raw) ? parse_impl(raw, PyUnicode_1BYTE_KIND, data, n, 1)
                                      : parse_impl(raw, PyUnicode_1BYTE_KIND, data, n, 0);
        break;
    case PyUnicode_2BYTE_KIND:
        msg = parse_impl(raw, PyUnicode_2BYTE_KIND, data, n, 0);
        break;
    default:
        msg = parse_impl(raw, PyUnicode_4BYTE_KIND, data, n, 0);
        break;
    }
    Py_DECREF(raw);
    return msg;
}

/* ------------------------------------------------------------------------------------- */
/* typed PRIVMSG (reference: twitch/messages/privmsg.py, chatter.py, common.py)           */

/* str.lower(); ASCII in C, anything else through the str method. */
static PyObject *
str_lower(PyObject *s)
{
    if (!PyUnicode_IS_ASCII(s)) {
        return PyObject_CallMethodNoArgs(s, S_a_lower);
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    const Py_UCS1 *p = PyUnicode_1BYTE_DATA(s);
    Py_ssize_t first = 0;
    while (first < n && !(p[first] >= 'A' && p[first] <= 'Z')) {
        first++;
    }
    if (first == n) {
        return Py_NewRef(s);
    }
    PyObject *out = PyUnicode_New(n, 127);
    if (out == NULL) {
        return NULL;
    }
    Py_UCS1 *q = PyUnicode_1BYTE_DATA(out);
    memcpy(q, p, (size_t)first);
    for (Py_ssize_t i = first; i < n; i++) {
        Py_UCS1 c = p[i];
        q[i] = (c >= 'A' && c <= 'Z') ? (Py_UCS1)(c + 32) : c;
    }
    return out;
}

/* "#Foo" -> "foo" (channel_of). The last results are kept, keyed by the param object: the
 * parser hands out one shared str per channel name. */
#define CHANNEL_MEMO 64
static PyObject *channel_memo[CHANNEL_MEMO][2];

static PyObject *
channel_of(PyObject *param)
{
    size_t slot = ((size_t)param >> 4) & (CHANNEL_MEMO - 1);
    if (channel_memo[slot][0] == param) {
        return Py_NewRef(channel_memo[slot][1]);
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(param);
    PyObject *out;
    if (n > 0 && PyUnicode_READ_CHAR(param, 0) == '#') {
        PyObject *rest = PyUnicode_Substring(param, 1, n);
        if (rest == NULL) {
            return NULL;
        }
        out = str_lower(rest);
        Py_DECREF(rest);
    }
    else {
        out = str_lower(param);
    }
    if (out != NULL && PyUnicode_CHECK_INTERNED(param)) { /* only the parser's shared names */
        set_ref(&channel_memo[slot][0], param);
        set_ref(&channel_memo[slot][1], out);
    }
    return out;
}

/* str.strip() (Unicode whitespace, as Py_UNICODE_ISSPACE). */
static PyObject *
str_strip(PyObject *s)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    Py_ssize_t a = 0, b = n;
    while (a < b && Py_UNICODE_ISSPACE(READ(a))) {
        a++;
    }
    while (b > a && Py_UNICODE_ISSPACE(READ(b - 1))) {
        b--;
    }
    if (a == 0 && b == n) {
        return Py_NewRef(s);
    }
    return PyUnicode_Substring(s, a, b);
}

/* split_action: "\x01ACTION waves\x01" -> ("waves", True). */
static PyObject *
split_action(PyObject *text, int *is_action)
{
    static const char ACTION[] = "\x01" "ACTION";
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    *is_action = 0;
    if (n < 7) {
        return Py_NewRef(text);
    }
    for (int i = 0; i < 7; i++) {
        if (READ(i) != (Py_UCS4)(unsigned char)ACTION[i]) {
            return Py_NewRef(text);
        }
    }
    if (n > 7 && READ(7) != ' ' && READ(7) != 0x01) {
        return Py_NewRef(text);
    }
    *is_action = 1;
    if (n <= 8) {
        return Py_NewRef(S_empty);
    }
    Py_ssize_t end = READ(n - 1) == 0x01 ? n - 1 : n;
    return PyUnicode_Substring(text, 8, end);
}

/* parse_color: "#1e90ff" -> "#1E90FF"; anything else -> "". */
static PyObject *
parse_color(PyObject *value)
{
    if (PyUnicode_GET_LENGTH(value) != 7 || !PyUnicode_IS_ASCII(value)) {
        return Py_NewRef(S_empty);
    }
    const Py_UCS1 *p = PyUnicode_1BYTE_DATA(value);
    if (p[0] != '#') {
        return Py_NewRef(S_empty);
    }
    int lower = 0;
    for (int i = 1; i < 7; i++) {
        Py_UCS1 c = p[i];
        if (c >= 'a' && c <= 'f') {
            lower = 1;
        }
        else if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'))) {
            return Py_NewRef(S_empty);
        }
    }
    if (!lower) {
        return Py_NewRef(value);
    }
    PyObject *out = PyUnicode_New(7, 127);
    if (out == NULL) {
        return NULL;
    }
    Py_UCS1 *q = PyUnicode_1BYTE_DATA(out);
    for (int i = 0; i < 7; i++) {
        q[i] = (p[i] >= 'a' && p[i] <= 'f') ? (Py_UCS1)(p[i] - 32) : p[i];
    }
    return out;
}

/* parse_int: None or "" -> None; int(value), or None when int() raises ValueError. */
static PyObject *
parse_int(PyObject *value)
{
    if (value == NULL) {
        Py_RETURN_NONE;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(value);
    if (n == 0) {
        Py_RETURN_NONE;
    }
    if (n <= 18 && PyUnicode_IS_ASCII(value)) {
        const Py_UCS1 *p = PyUnicode_1BYTE_DATA(value);
        long long acc = 0;
        Py_ssize_t i = 0;
        for (; i < n; i++) {
            if (p[i] < '0' || p[i] > '9') {
                break;
            }
            acc = acc * 10 + (p[i] - '0');
        }
        if (i == n) {
            return PyLong_FromLongLong(acc);
        }
    }
    PyObject *out = PyLong_FromUnicodeObject(value, 10);
    if (out == NULL && PyErr_ExceptionMatches(PyExc_ValueError)) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    return out;
}

/* 1 for an int parse_int returned that no signed 64-bit integer holds (the Python
 * reference raises IrcParseError for it); 0 for None or a value that fits. */
static int
beyond_64_bits(PyObject *number)
{
    if (!PyLong_CheckExact(number)) {
        return 0;
    }
    int overflow = 0;
    PyLong_AsLongLongAndOverflow(number, &overflow);
    return overflow != 0;
}

/* parse_badges: "subscriber/12,premium/1" -> (("subscriber", "12"), ("premium", "1")),
 * through the same bounded dict as the Python function. */
static PyObject *
parse_badges(PyObject *value)
{
    PyObject *hit = PyDict_GetItemWithError(O_badge_cache, value);
    if (hit != NULL) {
        return Py_NewRef(hit);
    }
    if (PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(value);
    int kind = PyUnicode_KIND(value);
    const void *data = PyUnicode_DATA(value);
    PyObject *list = PyList_New(0);
    if (list == NULL) {
        return NULL;
    }
    Py_ssize_t i = 0;
    for (;;) {
        Py_ssize_t j = find_char(kind, data, i, n, ',');
        if (j < 0) {
            j = n;
        }
        Py_ssize_t slash = find_char(kind, data, i, j, '/');
        Py_ssize_t name_end = slash >= 0 ? slash : j;
        if (name_end > i) {
            PyObject *name = shared_substr(value, kind, data, i, name_end, 0);
            PyObject *version =
                slash >= 0 ? PyUnicode_Substring(value, slash + 1, j) : Py_NewRef(S_empty);
            PyObject *pair = (name && version) ? PyTuple_Pack(2, name, version) : NULL;
            Py_XDECREF(name);
            Py_XDECREF(version);
            if (pair == NULL || PyList_Append(list, pair) < 0) {
                Py_XDECREF(pair);
                Py_DECREF(list);
                return NULL;
            }
            Py_DECREF(pair);
        }
        if (j >= n) {
            break;
        }
        i = j + 1;
    }
    PyObject *badges = PyList_AsTuple(list);
    Py_DECREF(list);
    if (badges == NULL) {
        return NULL;
    }
    if (PyDict_GET_SIZE(O_badge_cache) >= g_badge_cache_limit) {
        PyDict_Clear(O_badge_cache);
    }
    if (PyDict_SetItem(O_badge_cache, value, badges) < 0) {
        Py_DECREF(badges);
        return NULL;
    }
    return badges;
}

typedef struct {
    long long start;
    PyObject *range;
} emote_item;

static void
sort_emotes(emote_item *items, emote_item *tmp, Py_ssize_t n) /* stable merge sort */
{
    if (n < 2) {
        return;
    }
    if (n <= 16) {
        for (Py_ssize_t i = 1; i < n; i++) {
            emote_item x = items[i];
            Py_ssize_t j = i;
            while (j > 0 && items[j - 1].start > x.start) {
                items[j] = items[j - 1];
                j--;
            }
            items[j] = x;
        }
        return;
    }
    Py_ssize_t half = n / 2;
    sort_emotes(items, tmp, half);
    sort_emotes(items + half, tmp, n - half);
    Py_ssize_t a = 0, b = half, k = 0;
    while (a < half && b < n) {
        tmp[k++] = items[b].start < items[a].start ? items[b++] : items[a++];
    }
    while (a < half) {
        tmp[k++] = items[a++];
    }
    while (b < n) {
        tmp[k++] = items[b++];
    }
    memcpy(items, tmp, (size_t)n * sizeof(emote_item));
}

/* 1: data[a:b] is ASCII digits that fit (value in *out); 0: not isdigit() (skip it);
 * 2: str.isdigit() but not for C (non-ASCII digits, or too long): ask Python. */
static int
ascii_number(const int kind, const void *data, Py_ssize_t a, Py_ssize_t b, long long *out)
{
    if (b <= a) {
        return 0;
    }
    int ascii = 1;
    long long acc = 0;
    for (Py_ssize_t i = a; i < b; i++) {
        Py_UCS4 c = READ(i);
        if (c >= '0' && c <= '9') {
            if (i - a < 18) {
                acc = acc * 10 + (long long)(c - '0');
            }
            else {
                ascii = 0; /* more than 18 digits: let Python make the int */
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

/* parse_emotes: "25:0-4,12-16/1902:6-10" -> [EmoteRange...] sorted by start (stable). */
static PyObject *
parse_emotes(PyObject *value)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(value);
    if (n == 0) {
        return PyList_New(0);
    }
    int kind = PyUnicode_KIND(value);
    const void *data = PyUnicode_DATA(value);
    emote_item small[32], small_tmp[32];
    emote_item *items = small, *tmp = small_tmp;
    Py_ssize_t count = 0, capacity = 32;
    PyObject *result = NULL;
    int python = 0;

    Py_ssize_t g = 0;
    while (g <= n && !python) {
        Py_ssize_t gend = find_char(kind, data, g, n, '/');
        if (gend < 0) {
            gend = n;
        }
        Py_ssize_t colon = find_char(kind, data, g, gend, ':');
        if (colon >= 0) {
            PyObject *emote_id = NULL;
            Py_ssize_t s = colon + 1;
            for (;;) {
                Py_ssize_t send = find_char(kind, data, s, gend, ',');
                if (send < 0) {
                    send = gend;
                }
                Py_ssize_t dash = find_char(kind, data, s, send, '-');
                long long start = 0, end = 0;
                int rs = 0, re = 0;
                if (dash >= 0) {
                    rs = ascii_number(kind, data, s, dash, &start);
                    re = rs ? ascii_number(kind, data, dash + 1, send, &end) : 0;
                }
                if (rs == 2 || re == 2) {
                    python = 1;
                    break;
                }
                if (rs == 1 && re == 1) {
                    if (emote_id == NULL) {
                        emote_id = shared_substr(value, kind, data, g, colon, 0);
                        if (emote_id == NULL) {
                            goto fail;
                        }
                    }
                    if (count == capacity) {
                        Py_ssize_t grown = capacity * 2;
                        emote_item *bigger = PyMem_New(emote_item, (size_t)grown);
                        emote_item *bigger_tmp = PyMem_New(emote_item, (size_t)grown);
                        if (bigger == NULL || bigger_tmp == NULL) {
                            PyMem_Free(bigger);
                            PyMem_Free(bigger_tmp);
                            Py_DECREF(emote_id);
                            PyErr_NoMemory();
                            goto fail;
                        }
                        memcpy(bigger, items, (size_t)count * sizeof(emote_item));
                        if (items != small) {
                            PyMem_Free(items);
                            PyMem_Free(tmp);
                        }
                        items = bigger;
                        tmp = bigger_tmp;
                        capacity = grown;
                    }
                    PyObject *fields[ER_N] = {Py_NewRef(emote_id), PyLong_FromLongLong(start),
                                              PyLong_FromLongLong(end)};
                    PyObject *range = build_instance(T_EmoteRange, off_er, fields, ER_N);
                    if (range == NULL) {
                        Py_DECREF(emote_id);
                        goto fail;
                    }
                    items[count].start = start;
                    items[count].range = range;
                    count++;
                }
                if (send >= gend) {
                    break;
                }
                s = send + 1;
            }
            Py_XDECREF(emote_id);
        }
        g = gend + 1;
    }
    if (python) {
        result = PyObject_CallOneArg(F_parse_emotes_py, value);
        goto done;
    }
    sort_emotes(items, tmp, count);
    result = PyList_New(count);
    if (result == NULL) {
        goto fail;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyList_SET_ITEM(result, i, items[i].range);
        items[i].range = NULL;
    }
    count = 0;
    goto done;
fail:
    result = NULL;
done:
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_XDECREF(items[i].range);
    }
    if (items != small) {
        PyMem_Free(items);
        PyMem_Free(tmp);
    }
    return result;
}

/* The tag values the fast path reads: missing -> NULL; 1 when one is not a str. */
static int
tag_value(PyObject *tags, PyObject *key, PyObject **out)
{
    PyObject *value = PyDict_GetItemWithError(tags, key);
    if (value == NULL) {
        *out = NULL;
        return PyErr_Occurred() ? -1 : 0;
    }
    if (!STR_EXACT(value)) {
        *out = NULL;
        return 1;
    }
    *out = Py_NewRef(value);
    return 0;
}

static inline PyObject *
or_empty(PyObject *value)
{
    return Py_NewRef(value ? value : S_empty);
}

static inline PyObject *
is_one(PyObject *value)
{
    return PyBool_FromLong(value != NULL && PyUnicode_GET_LENGTH(value) == 1 &&
                           PyUnicode_READ_CHAR(value, 0) == '1');
}

enum {
    TG_ROOM_ID, TG_ID, TG_EMOTES, TG_BITS, TG_MOD, TG_SUBSCRIBER, TG_FIRST_MSG, TG_RETURNING,
    TG_SENT_TS, TG_REWARD, TG_MSG_ID, TG_REPLY_MSG_ID, TG_SOURCE_ROOM_ID, TG_USER_ID,
    TG_DISPLAY_NAME, TG_COLOR, TG_BADGES, TG_BADGE_INFO, TG_REPLY_USER_ID, TG_REPLY_USER_LOGIN,
    TG_REPLY_DISPLAY_NAME, TG_REPLY_BODY, TG_THREAD_MSG_ID, TG_THREAD_USER_LOGIN, TG_SOURCE_ID,
    TG_SOURCE_BADGES, TG_SOURCE_BADGE_INFO, TG_N
};
#define TG_BASIC TG_REPLY_USER_ID /* the ones every message reads */

static PyObject *tag_key_table[TG_N];

static void
init_tag_keys(void)
{
    PyObject **keys = tag_key_table;
    keys[TG_ROOM_ID] = S_t_room_id;
    keys[TG_ID] = S_t_id;
    keys[TG_EMOTES] = S_t_emotes;
    keys[TG_BITS] = S_t_bits;
    keys[TG_MOD] = S_t_mod;
    keys[TG_SUBSCRIBER] = S_t_subscriber;
    keys[TG_FIRST_MSG] = S_t_first_msg;
    keys[TG_RETURNING] = S_t_returning;
    keys[TG_SENT_TS] = S_t_sent_ts;
    keys[TG_REWARD] = S_t_reward;
    keys[TG_MSG_ID] = S_t_msg_id;
    keys[TG_REPLY_MSG_ID] = S_t_reply_msg_id;
    keys[TG_SOURCE_ROOM_ID] = S_t_source_room_id;
    keys[TG_USER_ID] = S_t_user_id;
    keys[TG_DISPLAY_NAME] = S_t_display_name;
    keys[TG_COLOR] = S_t_color;
    keys[TG_BADGES] = S_t_badges;
    keys[TG_BADGE_INFO] = S_t_badge_info;
    keys[TG_REPLY_USER_ID] = S_t_reply_user_id;
    keys[TG_REPLY_USER_LOGIN] = S_t_reply_user_login;
    keys[TG_REPLY_DISPLAY_NAME] = S_t_reply_display_name;
    keys[TG_REPLY_BODY] = S_t_reply_body;
    keys[TG_THREAD_MSG_ID] = S_t_thread_msg_id;
    keys[TG_THREAD_USER_LOGIN] = S_t_thread_user_login;
    keys[TG_SOURCE_ID] = S_t_source_id;
    keys[TG_SOURCE_BADGES] = S_t_source_badges;
    keys[TG_SOURCE_BADGE_INFO] = S_t_source_badge_info;
}

static PyObject *
call_privmsg_py(PyObject *cls, PyObject *msg)
{
    if (F_privmsg_py == NULL) {
        return not_configured("Privmsg.from_irc");
    }
    return PyObject_CallFunctionObjArgs(F_privmsg_py, cls, msg, NULL);
}

/* Chatter.from_tags(msg, login) for a given login (nick or ""). */
static PyObject *
make_chatter(PyObject *login, PyObject **t)
{
    PyObject *f[CH_N] = {NULL};
    f[CH_USER_ID] = or_empty(t[TG_USER_ID]);
    f[CH_LOGIN] = str_lower(login);
    if (f[CH_LOGIN] == NULL) {
        goto fail;
    }
    PyObject *display = or_empty(t[TG_DISPLAY_NAME]);
    Py_ssize_t dn = PyUnicode_GET_LENGTH(display);
    if (dn > 0 &&
        (PyUnicode_READ_CHAR(display, 0) == ' ' || PyUnicode_READ_CHAR(display, dn - 1) == ' ')) {
        Py_SETREF(display, str_strip(display));
        if (display == NULL) {
            goto fail;
        }
    }
    if (PyUnicode_GET_LENGTH(display) == 0) {
        Py_SETREF(display, Py_NewRef(login));
    }
    f[CH_DISPLAY_NAME] = display;
    if ((f[CH_COLOR] = parse_color(t[TG_COLOR] ? t[TG_COLOR] : S_empty)) == NULL ||
        (f[CH_BADGES] = parse_badges(t[TG_BADGES] ? t[TG_BADGES] : S_empty)) == NULL ||
        (f[CH_BADGE_INFO] = parse_badges(t[TG_BADGE_INFO] ? t[TG_BADGE_INFO] : S_empty)) ==
            NULL) {
        goto fail;
    }
    return build_instance(T_Chatter, off_ch, f, CH_N);
fail:
    for (int i = 0; i < CH_N; i++) {
        Py_XDECREF(f[i]);
    }
    return NULL;
}

static PyObject *
c_privmsg(PyObject *msg)
{
    PyObject *tags = slot_get(msg, off_im[IM_TAGS]);
    PyObject *params = slot_get(msg, off_im[IM_PARAMS]);
    PyObject *nick = slot_get(msg, off_im[IM_NICK]);
    if (tags == NULL || !PyDict_CheckExact(tags) || params == NULL ||
        !PyList_CheckExact(params) || nick == NULL || (nick != Py_None && !STR_EXACT(nick))) {
        return call_privmsg_py((PyObject *)T_Privmsg, msg);
    }
    Py_ssize_t nparams = PyList_GET_SIZE(params);
    PyObject *p0 = nparams > 0 ? PyList_GET_ITEM(params, 0) : S_empty;
    PyObject *p1 = nparams > 1 ? PyList_GET_ITEM(params, 1) : S_empty;
    if (!STR_EXACT(p0) || !STR_EXACT(p1)) {
        return call_privmsg_py((PyObject *)T_Privmsg, msg);
    }
    PyObject *t[TG_N] = {NULL};
    PyObject *f[PM_N] = {NULL};
    PyObject *result = NULL;
    int python = 0;
    Py_INCREF(tags);
    Py_INCREF(p0);
    Py_INCREF(p1);
    Py_INCREF(nick);

    PyObject **keys = tag_key_table;
    for (int i = 0; i < TG_BASIC; i++) {
        int rc = tag_value(tags, keys[i], &t[i]);
        if (rc != 0) {
            python = rc > 0;
            goto done;
        }
    }
    if (t[TG_REPLY_MSG_ID] != NULL) {
        for (int i = TG_REPLY_USER_ID; i <= TG_THREAD_USER_LOGIN; i++) {
            int rc = tag_value(tags, keys[i], &t[i]);
            if (rc != 0) {
                python = rc > 0;
                goto done;
            }
        }
    }
    if (t[TG_SOURCE_ROOM_ID] != NULL) {
        for (int i = TG_SOURCE_ID; i <= TG_SOURCE_BADGE_INFO; i++) {
            int rc = tag_value(tags, keys[i], &t[i]);
            if (rc != 0) {
                python = rc > 0;
                goto done;
            }
        }
    }
    /* the presence tests look at the key, whatever its value */
    int has_reply = t[TG_REPLY_MSG_ID] != NULL;
    int has_shared = t[TG_SOURCE_ROOM_ID] != NULL;

    int is_action = 0;
    f[PM_TEXT] = split_action(p1, &is_action);
    if (f[PM_TEXT] == NULL) {
        goto done;
    }
    f[PM_IS_ACTION] = PyBool_FromLong(is_action);
    f[PM_CHANNEL] = channel_of(p0);
    if (f[PM_CHANNEL] == NULL) {
        goto done;
    }
    if (PyUnicode_GET_LENGTH(f[PM_CHANNEL]) == 0) { /* the reference raises IrcParseError */
        python = 1;
        goto done;
    }
    f[PM_ROOM_ID] = or_empty(t[TG_ROOM_ID]);
    f[PM_MESSAGE_ID] = or_empty(t[TG_ID]);
    f[PM_CHATTER] = make_chatter(nick == Py_None ? S_empty : nick, t);
    if (f[PM_CHATTER] == NULL) {
        goto done;
    }
    f[PM_EMOTES] = parse_emotes(t[TG_EMOTES] ? t[TG_EMOTES] : S_empty);
    if (f[PM_EMOTES] == NULL) {
        goto done;
    }
    f[PM_BITS] = parse_int(t[TG_BITS]);
    if (f[PM_BITS] == NULL) {
        goto done;
    }
    if (beyond_64_bits(f[PM_BITS])) { /* the reference raises IrcParseError */
        python = 1;
        goto done;
    }
    f[PM_IS_MOD] = is_one(t[TG_MOD]);
    f[PM_IS_SUBSCRIBER] = is_one(t[TG_SUBSCRIBER]);
    f[PM_FIRST_MESSAGE] = is_one(t[TG_FIRST_MSG]);
    f[PM_RETURNING] = is_one(t[TG_RETURNING]);
    f[PM_SENT_AT_MS] = parse_int(t[TG_SENT_TS]);
    if (f[PM_SENT_AT_MS] == NULL) {
        goto done;
    }
    if (beyond_64_bits(f[PM_SENT_AT_MS])) {
        python = 1;
        goto done;
    }
    f[PM_REWARD] = or_empty(t[TG_REWARD]);
    f[PM_MESSAGE_KIND] = or_empty(t[TG_MSG_ID]);
    if (has_reply) {
        PyObject *r[RP_N];
        r[RP_MESSAGE_ID] = or_empty(t[TG_REPLY_MSG_ID]);
        r[RP_USER_ID] = or_empty(t[TG_REPLY_USER_ID]);
        r[RP_USER_LOGIN] = or_empty(t[TG_REPLY_USER_LOGIN]);
        r[RP_DISPLAY_NAME] =
            str_strip(t[TG_REPLY_DISPLAY_NAME] ? t[TG_REPLY_DISPLAY_NAME] : S_empty);
        r[RP_TEXT] = or_empty(t[TG_REPLY_BODY]);
        r[RP_THREAD_ID] = or_empty(t[TG_THREAD_MSG_ID]);
        r[RP_THREAD_LOGIN] = or_empty(t[TG_THREAD_USER_LOGIN]);
        f[PM_REPLY] = build_instance(T_ReplyParent, off_rp, r, RP_N);
        if (f[PM_REPLY] == NULL) {
            goto done;
        }
    }
    else {
        f[PM_REPLY] = Py_NewRef(Py_None);
    }
    if (has_shared) {
        PyObject *s[SC_N];
        s[SC_ROOM_ID] = or_empty(t[TG_SOURCE_ROOM_ID]);
        s[SC_MESSAGE_ID] = or_empty(t[TG_SOURCE_ID]);
        s[SC_BADGES] = or_empty(t[TG_SOURCE_BADGES]);
        s[SC_BADGE_INFO] = or_empty(t[TG_SOURCE_BADGE_INFO]);
        f[PM_SHARED] = build_instance(T_SharedChatSource, off_sc, s, SC_N);
        if (f[PM_SHARED] == NULL) {
            goto done;
        }
    }
    else {
        f[PM_SHARED] = Py_NewRef(Py_None);
    }
    f[PM_IRC] = Py_NewRef(msg);
    result = build_instance(T_Privmsg, off_pm, f, PM_N); /* consumes f */
done:
    for (int i = 0; i < PM_N; i++) {
        Py_XDECREF(f[i]);
    }
    for (int i = 0; i < TG_N; i++) {
        Py_XDECREF(t[i]);
    }
    Py_DECREF(tags);
    Py_DECREF(p0);
    Py_DECREF(p1);
    Py_DECREF(nick);
    if (python) {
        return call_privmsg_py((PyObject *)T_Privmsg, msg);
    }
    return result;
}

static PyObject *
sp_privmsg_from_irc(PyObject *cls, PyObject *msg)
{
    if (UNLIKELY(!g_enabled || cls != (PyObject *)T_Privmsg || Py_TYPE(msg) != T_IrcMessage)) {
        return call_privmsg_py(cls, msg);
    }
    return c_privmsg(msg);
}

static PyObject *
sp_from_irc(PyObject *module, PyObject *msg)
{
    if (F_from_irc_py == NULL) {
        return not_configured("from_irc");
    }
    if (LIKELY(g_enabled && T_Privmsg != NULL && Py_TYPE(msg) == T_IrcMessage)) {
        PyObject *command = slot_get(msg, off_im[IM_COMMAND]);
        if (command == S_PRIVMSG ||
            (command != NULL && STR_EXACT(command) &&
             PyUnicode_GET_LENGTH(command) == 7 && PyUnicode_Compare(command, S_PRIVMSG) == 0)) {
            return c_privmsg(msg);
        }
    }
    return PyObject_CallOneArg(F_from_irc_py, msg);
}

/* ------------------------------------------------------------------------------------- */
/* SHA-1 (FIPS 180-4) and the UUIDv5 of ids.stable_uuid                                   */

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

#ifdef HAVE_SHA_NI_CODE
/* The same block function with the x86 SHA extensions (used when CPUID reports them).
 * Four rounds per SHA1RNDS4; the state is kept as ABCD (A in the top lane) and E (top
 * lane); message words are big-endian with W[4g] in the top lane of group g; for g >= 4
 * W[4g..4g+3] = SHA1MSG2(SHA1MSG1(M[g-4], M[g-3]) ^ M[g-2], M[g-1]); SHA1NEXTE gives the
 * E input of a group from the ABCD that entered the previous one. */
#define SHA1NI_LOAD(g) _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * (g))), swap)
#define SHA1NI_SCHEDULE(g)                                                             \
    m[(g) & 3] = _mm_sha1msg2_epu32(                                                   \
        _mm_xor_si128(_mm_sha1msg1_epu32(m[(g) & 3], m[((g) + 1) & 3]), m[((g) + 2) & 3]), \
        m[((g) + 3) & 3])
#define SHA1NI_GROUP(g, f)                                                             \
    do {                                                                               \
        if ((g) < 4) {                                                                 \
            m[(g) & 3] = SHA1NI_LOAD(g);                                               \
        }                                                                              \
        else {                                                                         \
            SHA1NI_SCHEDULE(g);                                                        \
        }                                                                              \
        e = _mm_sha1nexte_epu32(prev, m[(g) & 3]);                                     \
        prev = abcd;                                                                   \
        abcd = _mm_sha1rnds4_epu32(abcd, e, (f));                                      \
    } while (0)

__attribute__((target("sha,sse4.1,ssse3"))) static void
sha1_compress_ni(uint32_t h[5], const unsigned char *p)
{
    const __m128i swap = _mm_set_epi64x(0x0001020304050607LL, 0x08090a0b0c0d0e0fLL);
    __m128i abcd = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)h), 0x1B);
    __m128i e0 = _mm_set_epi32((int)h[4], 0, 0, 0);
    __m128i abcd_in = abcd;
    __m128i m[4], e, prev;
    m[0] = SHA1NI_LOAD(0);
    e = _mm_add_epi32(e0, m[0]);
    prev = abcd;
    abcd = _mm_sha1rnds4_epu32(abcd, e, 0);
    SHA1NI_GROUP(1, 0);
    SHA1NI_GROUP(2, 0);
    SHA1NI_GROUP(3, 0);
    SHA1NI_GROUP(4, 0);
    SHA1NI_GROUP(5, 1);
    SHA1NI_GROUP(6, 1);
    SHA1NI_GROUP(7, 1);
    SHA1NI_GROUP(8, 1);
    SHA1NI_GROUP(9, 1);
    SHA1NI_GROUP(10, 2);
    SHA1NI_GROUP(11, 2);
    SHA1NI_GROUP(12, 2);
    SHA1NI_GROUP(13, 2);
    SHA1NI_GROUP(14, 2);
    SHA1NI_GROUP(15, 3);
    SHA1NI_GROUP(16, 3);
    SHA1NI_GROUP(17, 3);
    SHA1NI_GROUP(18, 3);
    SHA1NI_GROUP(19, 3);
    e = _mm_sha1nexte_epu32(prev, e0);
    abcd = _mm_add_epi32(abcd, abcd_in);
    _mm_storeu_si128((__m128i *)h, _mm_shuffle_epi32(abcd, 0x1B));
    h[4] = (uint32_t)_mm_extract_epi32(e, 3);
}

static int
cpu_has_sha_ni(void)
{
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 19)) || !(c & (1u << 9))) {
        return 0; /* SSE4.1, SSSE3 */
    }
    if (__get_cpuid_max(0, NULL) < 7) {
        return 0;
    }
    __cpuid_count(7, 0, a, b, c, d);
    return (b >> 29) & 1; /* SHA */
}
#endif

typedef void (*sha1_block_fn)(uint32_t h[5], const unsigned char *p);
static sha1_block_fn sha1_block = sha1_compress;

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
            sha1_block(ctx->h, ctx->block);
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
        sha1_block(ctx->h, ctx->block);
        ctx->used = 0;
    }
    memset(ctx->block + ctx->used, 0, 56 - ctx->used);
    for (int i = 0; i < 8; i++) {
        ctx->block[56 + i] = (unsigned char)(bits >> (56 - 8 * i));
    }
    sha1_block(ctx->h, ctx->block);
    for (int i = 0; i < 5; i++) {
        digest[4 * i] = (unsigned char)(ctx->h[i] >> 24);
        digest[4 * i + 1] = (unsigned char)(ctx->h[i] >> 16);
        digest[4 * i + 2] = (unsigned char)(ctx->h[i] >> 8);
        digest[4 * i + 3] = (unsigned char)ctx->h[i];
    }
}

static const char HEX[] = "0123456789abcdef";

/* UUIDv5 (RFC 4122) of namespace + prefix + name, as "8-4-4-4-12" lowercase hex. */
static PyObject *
uuid5_string(const unsigned char *prefix, size_t prefix_len, const unsigned char *name,
             size_t name_len)
{
    sha1_ctx ctx;
    unsigned char digest[20];
    sha1_init(&ctx);
    sha1_update(&ctx, g_namespace, 16);
    sha1_update(&ctx, prefix, prefix_len);
    sha1_update(&ctx, name, name_len);
    sha1_final(&ctx, digest);
    digest[6] = (unsigned char)((digest[6] & 0x0F) | 0x50);
    digest[8] = (unsigned char)((digest[8] & 0x3F) | 0x80);
    PyObject *out = PyUnicode_New(36, 127);
    if (out == NULL) {
        return NULL;
    }
    Py_UCS1 *q = PyUnicode_1BYTE_DATA(out);
    int k = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            q[k++] = '-';
        }
        q[k++] = (Py_UCS1)HEX[digest[i] >> 4];
        q[k++] = (Py_UCS1)HEX[digest[i] & 15];
    }
    return out;
}

/* stable_uuid(prefix + name) for str arguments; UnicodeEncodeError as str.encode(). */
static PyObject *
stable_uuid_of(PyObject *prefix, PyObject *name)
{
    if (PyUnicode_IS_ASCII(name) && (prefix == NULL || PyUnicode_IS_ASCII(prefix))) {
        const unsigned char *pre = prefix ? PyUnicode_1BYTE_DATA(prefix) : NULL;
        size_t pre_len = prefix ? (size_t)PyUnicode_GET_LENGTH(prefix) : 0;
        return uuid5_string(pre, pre_len, PyUnicode_1BYTE_DATA(name),
                            (size_t)PyUnicode_GET_LENGTH(name));
    }
    PyObject *full = prefix ? PyUnicode_Concat(prefix, name) : Py_NewRef(name);
    if (full == NULL) {
        return NULL;
    }
    Py_ssize_t size;
    const char *utf8 = PyUnicode_AsUTF8AndSize(full, &size);
    PyObject *out =
        utf8 ? uuid5_string(NULL, 0, (const unsigned char *)utf8, (size_t)size) : NULL;
    Py_DECREF(full);
    return out;
}

static PyObject *
sp_stable_uuid(PyObject *module, PyObject *name)
{
    if (UNLIKELY(!g_enabled || F_stable_uuid_py == NULL || !STR_EXACT(name))) {
        if (F_stable_uuid_py == NULL) {
            return not_configured("stable_uuid");
        }
        return PyObject_CallOneArg(F_stable_uuid_py, name);
    }
    return stable_uuid_of(NULL, name);
}

/* ------------------------------------------------------------------------------------- */
/* RandomIds and IsoClock (reference: envelope/ids.py)                                   */

/* The next 32 characters of a RandomIds block, without taking them: 1 with *p set, 0 when
 * the Python method must run (a refill, or state the fast path does not know). */
#define IDS_PEEK_MAX 96 /* three ids drawn in a row at most */

static int ids_peek_n(PyObject *ids, Py_ssize_t need, Py_UCS1 *buf, Py_ssize_t *pos);

static int
ids_peek(PyObject *ids, Py_UCS1 *buf, Py_ssize_t *pos)
{
    return ids_peek_n(ids, 32, buf, pos);
}

/* ids_peek for the next `need` characters (several ids drawn in a row), copied into buf:
 * never a pointer into RandomIds' string, which Python code run by a later allocation (a GC
 * callback, a finalizer) may replace and free (found by tests/fuzz, under make sanitize). */
static int
ids_peek_n(PyObject *ids, Py_ssize_t need, Py_UCS1 *buf, Py_ssize_t *pos)
{
    if (need > IDS_PEEK_MAX) {
        return 0;
    }
    if (Py_TYPE(ids) != T_RandomIds) {
        return 0;
    }
    PyObject *hex = slot_get(ids, off_ri[RI_HEX]);
    PyObject *at = slot_get(ids, off_ri[RI_POS]);
    if (hex == NULL || at == NULL || !STR_EXACT(hex) || !PyUnicode_IS_ASCII(hex) ||
        !PyLong_CheckExact(at)) {
        return 0;
    }
    int overflow;
    long long start = PyLong_AsLongLongAndOverflow(at, &overflow);
    Py_ssize_t n = PyUnicode_GET_LENGTH(hex);
    if (overflow || start < 0 || start >= n || n - start < need) {
        if (start == -1 && PyErr_Occurred()) {
            PyErr_Clear();
        }
        return 0;
    }
    memcpy(buf, PyUnicode_1BYTE_DATA(hex) + start, (size_t)need);
    *pos = (Py_ssize_t)start;
    return 1;
}

static int
ids_advance_by(PyObject *ids, Py_ssize_t pos, Py_ssize_t taken)
{
    PyObject *next = PyLong_FromSsize_t(pos + taken);
    if (next == NULL) {
        return -1;
    }
    slot_put(ids, off_ri[RI_POS], next);
    return 0;
}

static int
ids_advance(PyObject *ids, Py_ssize_t pos)
{
    PyObject *next = PyLong_FromSsize_t(pos + 32);
    if (next == NULL) {
        return -1;
    }
    slot_put(ids, off_ri[RI_POS], next);
    return 0;
}

static int
hex_value(Py_UCS1 c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* The 36 characters of a version-4 UUID from 32 random hex digits (h[16] must be hex: it
 * picks the variant digit), as uuid.UUID(hex, version=4) formats them. */
static void
uuid4_text(Py_UCS1 *q, const Py_UCS1 *h)
{
    memcpy(q, h, 8);
    q[8] = '-';
    memcpy(q + 9, h + 8, 4);
    q[13] = '-';
    q[14] = '4';
    memcpy(q + 15, h + 13, 3);
    q[18] = '-';
    q[19] = (Py_UCS1) "89ab"[hex_value(h[16]) & 3];
    memcpy(q + 20, h + 17, 3);
    q[23] = '-';
    memcpy(q + 24, h + 20, 12);
}

static PyObject *
ids_uuid4(PyObject *ids)
{
    Py_UCS1 h[32];
    Py_ssize_t pos;
    if (!ids_peek(ids, h, &pos) || hex_value(h[16]) < 0) {
        return PyObject_CallMethodNoArgs(ids, S_a_uuid4);
    }
    PyObject *out = PyUnicode_New(36, 127);
    if (out == NULL) {
        return NULL;
    }
    uuid4_text(PyUnicode_1BYTE_DATA(out), h);
    if (ids_advance(ids, pos) < 0) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

static PyObject *
ids_trace_id(PyObject *ids)
{
    for (;;) {
        Py_UCS1 h[32];
        Py_ssize_t pos;
        if (!ids_peek(ids, h, &pos)) {
            return PyObject_CallMethodNoArgs(ids, S_a_trace_id);
        }
        int zero = 1;
        for (int i = 0; i < 32; i++) {
            if (h[i] != '0') {
                zero = 0;
                break;
            }
        }
        PyObject *out = zero ? NULL : PyUnicode_New(32, 127);
        if (!zero) {
            if (out == NULL) {
                return NULL;
            }
            memcpy(PyUnicode_1BYTE_DATA(out), h, 32);
        }
        if (ids_advance(ids, pos) < 0) {
            Py_XDECREF(out);
            return NULL;
        }
        if (out != NULL) {
            return out;
        }
    }
}

/* IsoClock.format_ms(ms) for an IsoClock; anything else through its method. */
static PyObject *
clock_format_ms(PyObject *clock, long long ms, PyObject *ms_obj)
{
    if (Py_TYPE(clock) != T_IsoClock) {
        goto python;
    }
    long long second = ms / 1000, rem = ms % 1000;
    if (rem < 0) {
        rem += 1000;
        second -= 1;
    }
    PyObject *cur = slot_get(clock, off_ic[IC_SECOND]);
    PyObject *prefix = slot_get(clock, off_ic[IC_PREFIX]);
    if (cur == NULL || prefix == NULL || !PyLong_CheckExact(cur)) {
        goto python;
    }
    int overflow;
    long long have = PyLong_AsLongLongAndOverflow(cur, &overflow);
    if (have == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (overflow || have != second) {
        PyObject *sec = PyLong_FromLongLong(second);
        if (sec == NULL) {
            return NULL;
        }
        PyObject *fresh = PyObject_CallOneArg(F_second_prefix, sec);
        if (fresh == NULL) {
            Py_DECREF(sec);
            return NULL;
        }
        slot_put(clock, off_ic[IC_PREFIX], fresh);
        slot_put(clock, off_ic[IC_SECOND], sec);
        prefix = fresh;
    }
    if (!STR_EXACT(prefix) || !PyUnicode_IS_ASCII(prefix)) {
        goto python;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(prefix);
    PyObject *out = PyUnicode_New(n + 5, 127);
    if (out == NULL) {
        return NULL;
    }
    Py_UCS1 *q = PyUnicode_1BYTE_DATA(out);
    memcpy(q, PyUnicode_1BYTE_DATA(prefix), (size_t)n);
    q[n] = '.';
    q[n + 1] = (Py_UCS1)('0' + rem / 100);
    q[n + 2] = (Py_UCS1)('0' + rem / 10 % 10);
    q[n + 3] = (Py_UCS1)('0' + rem % 10);
    q[n + 4] = 'Z';
    return out;
python:
    if (ms_obj != NULL) {
        return PyObject_CallMethodOneArg(clock, S_a_format_ms, ms_obj);
    }
    PyObject *arg = PyLong_FromLongLong(ms);
    if (arg == NULL) {
        return NULL;
    }
    PyObject *formatted = PyObject_CallMethodOneArg(clock, S_a_format_ms, arg);
    Py_DECREF(arg);
    return formatted;
}

/* IsoClock.format(epoch_seconds): the memo of the last input, then format_ms. */
static PyObject *
clock_format(PyObject *clock, PyObject *now)
{
    if (Py_TYPE(clock) != T_IsoClock || !PyFloat_CheckExact(now)) {
        return PyObject_CallMethodOneArg(clock, S_a_format, now);
    }
    PyObject *last_in = slot_get(clock, off_ic[IC_LAST_IN]);
    PyObject *last = slot_get(clock, off_ic[IC_LAST]);
    if (last_in == NULL || last == NULL ||
        (last_in != Py_None && !PyFloat_CheckExact(last_in))) {
        return PyObject_CallMethodOneArg(clock, S_a_format, now);
    }
    double seconds = PyFloat_AS_DOUBLE(now);
    if (last_in != Py_None && PyFloat_AS_DOUBLE(last_in) == seconds) {
        return Py_NewRef(last);
    }
    double ms = seconds * 1000.0;
    if (!(ms > -9.0e18 && ms < 9.0e18)) { /* NaN, infinities, huge: Python raises or copes */
        return PyObject_CallMethodOneArg(clock, S_a_format, now);
    }
    PyObject *text = clock_format_ms(clock, (long long)ms, NULL);
    if (text == NULL) {
        return NULL;
    }
    slot_put(clock, off_ic[IC_LAST_IN], Py_NewRef(now));
    slot_put(clock, off_ic[IC_LAST], Py_NewRef(text));
    return text;
}

/* ------------------------------------------------------------------------------------- */
/* the envelope of a Privmsg (reference: envelope/builder.py EnvelopeBuilder._message)    */

static inline int
put(PyObject *dict, PyObject *key, PyObject *value) /* steals value */
{
    if (value == NULL) {
        return -1;
    }
    int rc = PyDict_SetItem(dict, key, value);
    Py_DECREF(value);
    return rc;
}

static inline PyObject *
or_none(PyObject *value) /* `value or None`, new ref (NULL on error) */
{
    int truth = PyObject_IsTrue(value);
    if (truth < 0) {
        return NULL;
    }
    return Py_NewRef(truth ? value : Py_None);
}

static int
is_badge_tuple(PyObject *badges)
{
    if (!PyTuple_CheckExact(badges)) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(badges); i++) {
        PyObject *pair = PyTuple_GET_ITEM(badges, i);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2 ||
            !STR_EXACT(PyTuple_GET_ITEM(pair, 0)) || !STR_EXACT(PyTuple_GET_ITEM(pair, 1))) {
            return 0;
        }
    }
    return 1;
}

static PyObject *
badge_dict(PyObject *badges)
{
    PyObject *d = NEW_DICT(PyTuple_GET_SIZE(badges));
    if (d == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(badges); i++) {
        PyObject *pair = PyTuple_GET_ITEM(badges, i);
        if (PyDict_SetItem(d, PyTuple_GET_ITEM(pair, 0), PyTuple_GET_ITEM(pair, 1)) < 0) {
            Py_DECREF(d);
            return NULL;
        }
    }
    return d;
}

static int
has_badge(PyObject *badges, PyObject *name)
{
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(badges); i++) {
        PyObject *badge = PyTuple_GET_ITEM(PyTuple_GET_ITEM(badges, i), 0);
        if (badge == name || (PyUnicode_GET_LENGTH(badge) == PyUnicode_GET_LENGTH(name) &&
                              PyUnicode_Compare(badge, name) == 0)) {
            return 1;
        }
    }
    return 0;
}

/* Every item an EmoteRange with an id and in-range int bounds: what the C writers handle
 * (anything else goes to the Python reference). */
static int
emotes_plain(PyObject *emotes)
{
    Py_ssize_t n = PyList_GET_SIZE(emotes);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *e = PyList_GET_ITEM(emotes, i);
        if (Py_TYPE(e) != T_EmoteRange) {
            return 0;
        }
        PyObject *id = slot_get(e, off_er[ER_ID]);
        PyObject *start = slot_get(e, off_er[ER_START]);
        PyObject *end = slot_get(e, off_er[ER_END]);
        if (id == NULL || start == NULL || end == NULL || !PyLong_CheckExact(start) ||
            !PyLong_CheckExact(end)) {
            return 0;
        }
        int o1, o2;
        long long s = PyLong_AsLongLongAndOverflow(start, &o1);
        long long t = PyLong_AsLongLongAndOverflow(end, &o2);
        if (o1 || o2 || s < 0 || t >= LLONG_MAX) {
            return 0;
        }
    }
    return 1;
}

/* _emotes(text, emotes): the published emote list. */
static PyObject *
envelope_emotes(PyObject *text, PyObject *emotes)
{
    Py_ssize_t n = PyList_GET_SIZE(emotes);
    if (n == 0) {
        return PyList_New(0);
    }
    if (!emotes_plain(emotes)) {
        goto python;
    }
    Py_ssize_t size = PyUnicode_GET_LENGTH(text);
    PyObject *out = PyList_New(0);
    if (out == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n && i < PyList_GET_SIZE(emotes); i++) {
        PyObject *e = PyList_GET_ITEM(emotes, i);
        PyObject *start = slot_get(e, off_er[ER_START]);
        long long s = PyLong_AsLongLong(start);
        long long t = PyLong_AsLongLong(slot_get(e, off_er[ER_END]));
        if (!(s < size && s <= t)) {
            continue;
        }
        Py_ssize_t stop = t + 1 > size ? size : (Py_ssize_t)(t + 1);
        PyObject *d = NEW_DICT(4);
        if (d == NULL || put(d, S_t_id, Py_NewRef(slot_get(e, off_er[ER_ID]))) < 0 ||
            put(d, S_k_start, Py_NewRef(start)) < 0 ||
            put(d, S_k_end, PyLong_FromSsize_t(stop - 1)) < 0 ||
            put(d, S_k_name, PyUnicode_Substring(text, (Py_ssize_t)s, stop)) < 0 ||
            PyList_Append(out, d) < 0) {
            Py_XDECREF(d);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(d);
    }
    return out;
python:
    return PyObject_CallFunctionObjArgs(F_emotes_py, text, emotes, NULL);
}

/* EnvelopeBuilder._sent_at(millis). */
static PyObject *
sent_at(PyObject *clock, PyObject *millis)
{
    if (millis == Py_None) {
        Py_RETURN_NONE;
    }
    int overflow;
    long long ms = PyLong_AsLongLongAndOverflow(millis, &overflow);
    if (ms == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (overflow || ms < 0 || ms > g_max_epoch_ms) {
        Py_RETURN_NONE;
    }
    return clock_format_ms(clock, ms, millis);
}

/* EnvelopeBuilder._message(msg, stamp) for an exact EnvelopeBuilder and Privmsg. */
static PyObject *
c_message(PyObject *self, PyObject *attrs, PyObject *msg, PyObject *stamp)
{
    PyObject *f[PM_N], *c[CH_N];
    for (int i = 0; i < PM_N; i++) {
        f[i] = slot_get(msg, off_pm[i]);
        if (f[i] == NULL) {
            goto python;
        }
    }
    PyObject *chatter = f[PM_CHATTER];
    if (Py_TYPE(chatter) != T_Chatter) {
        goto python;
    }
    for (int i = 0; i < CH_N; i++) {
        c[i] = slot_get(chatter, off_ch[i]);
        if (c[i] == NULL) {
            goto python;
        }
    }
    PyObject *transport = PyDict_GetItemWithError(attrs, S_k_transport);
    PyObject *ids = transport ? PyDict_GetItemWithError(attrs, S_a_ids) : NULL;
    PyObject *sent = ids ? PyDict_GetItemWithError(attrs, S_a_sent) : NULL;
    if (sent == NULL) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        goto python;
    }
    if (!STR_EXACT(f[PM_MESSAGE_ID]) || !STR_EXACT(f[PM_TEXT]) ||
        !PyList_CheckExact(f[PM_EMOTES]) ||
        (f[PM_SENT_AT_MS] != Py_None && !PyLong_CheckExact(f[PM_SENT_AT_MS])) ||
        !is_badge_tuple(c[CH_BADGES]) || !is_badge_tuple(c[CH_BADGE_INFO]) ||
        Py_TYPE(f[PM_IRC]) != T_IrcMessage || slot_get(f[PM_IRC], off_im[IM_TAGS]) == NULL) {
        goto python;
    }
    /* From here on Python code may run (ids, clocks, cheers): hold what we read. */
    for (int i = 0; i < PM_N; i++) {
        Py_INCREF(f[i]);
    }
    for (int i = 0; i < CH_N; i++) {
        Py_INCREF(c[i]);
    }
    Py_INCREF(transport);
    Py_INCREF(ids);
    Py_INCREF(sent);
    PyObject *envelope = NULL, *payload = NULL, *id = NULL;

    /* the frame */
    if (PyUnicode_GET_LENGTH(f[PM_MESSAGE_ID]) > 0) {
        id = stable_uuid_of(S_twitch_colon, f[PM_MESSAGE_ID]);
    }
    else {
        id = ids_uuid4(ids);
    }
    if (id == NULL) {
        goto fail;
    }
    envelope = NEW_DICT(11);
    if (envelope == NULL || put(envelope, S_k_v, Py_NewRef(S_one)) < 0 ||
        put(envelope, S_t_id, Py_NewRef(id)) < 0 ||
        put(envelope, S_k_correlation_id, Py_NewRef(id)) < 0 ||
        put(envelope, S_k_trace_id, ids_trace_id(ids)) < 0 ||
        put(envelope, S_k_timestamp, Py_NewRef(stamp)) < 0 ||
        put(envelope, S_k_type, Py_NewRef(O_MESSAGE)) < 0) {
        goto fail;
    }
    PyObject *source = NEW_DICT(3);
    if (source == NULL || put(source, S_k_platform, Py_NewRef(S_twitch)) < 0 ||
        put(source, S_k_channel, Py_NewRef(f[PM_CHANNEL])) < 0 ||
        put(source, S_k_channel_id, or_none(f[PM_ROOM_ID])) < 0) {
        Py_XDECREF(source);
        goto fail;
    }
    if (put(envelope, S_k_source, source) < 0) {
        goto fail;
    }
    PyObject *user = NEW_DICT(5);
    if (user == NULL || put(user, S_t_id, Py_NewRef(c[CH_USER_ID])) < 0 ||
        put(user, S_k_name, Py_NewRef(c[CH_LOGIN])) < 0 ||
        put(user, S_k_display_name, Py_NewRef(c[CH_DISPLAY_NAME])) < 0 ||
        put(user, S_k_profile_image, Py_NewRef(S_empty)) < 0 ||
        put(user, S_k_role, Py_NewRef(S_empty)) < 0) {
        Py_XDECREF(user);
        goto fail;
    }
    if (put(envelope, S_k_user, user) < 0 ||
        put(envelope, S_k_routing_slip, PyList_New(0)) < 0 ||
        put(envelope, S_k_finalization, Py_NewRef(O_FINALIZER)) < 0) {
        goto fail;
    }

    /* the payload, in the reference's key order */
    Py_ssize_t nbadges = PyTuple_GET_SIZE(c[CH_BADGES]);
    PyObject *names = PyList_New(nbadges);
    if (names == NULL) {
        goto fail;
    }
    for (Py_ssize_t i = 0; i < nbadges; i++) {
        PyObject *name = PyTuple_GET_ITEM(PyTuple_GET_ITEM(c[CH_BADGES], i), 0);
        PyList_SET_ITEM(names, i, Py_NewRef(name));
    }
    payload = NEW_DICT(23);
    if (payload == NULL) {
        Py_DECREF(names);
        goto fail;
    }
    if (put(payload, S_k_text, Py_NewRef(f[PM_TEXT])) < 0 ||
        put(payload, S_k_message_id, Py_NewRef(f[PM_MESSAGE_ID])) < 0 ||
        put(payload, S_t_badges, names) < 0 ||
        put(payload, S_k_is_mod, Py_NewRef(f[PM_IS_MOD])) < 0 ||
        put(payload, S_k_is_subscriber, Py_NewRef(f[PM_IS_SUBSCRIBER])) < 0 ||
        put(payload, S_t_color, Py_NewRef(c[CH_COLOR])) < 0 ||
        put(payload, S_t_emotes, envelope_emotes(f[PM_TEXT], f[PM_EMOTES])) < 0) {
        goto fail;
    }
    PyObject *raw = NEW_DICT(1);
    if (raw == NULL ||
        put(raw, S_k_tags, Py_NewRef(slot_get(f[PM_IRC], off_im[IM_TAGS]))) < 0) {
        Py_XDECREF(raw);
        goto fail;
    }
    if (put(payload, S_k_raw, raw) < 0 ||
        put(payload, S_k_is_action, Py_NewRef(f[PM_IS_ACTION])) < 0 ||
        put(payload, S_t_bits, Py_NewRef(f[PM_BITS])) < 0) {
        goto fail;
    }
    int bits = PyObject_IsTrue(f[PM_BITS]);
    if (bits < 0 ||
        put(payload, S_k_cheers,
            bits ? PyObject_CallOneArg(F_cheers_py, f[PM_TEXT]) : PyList_New(0)) < 0 ||
        put(payload, S_k_badge_info, badge_dict(c[CH_BADGE_INFO])) < 0 ||
        put(payload, S_k_badge_versions, badge_dict(c[CH_BADGES])) < 0 ||
        put(payload, S_k_is_vip, PyBool_FromLong(has_badge(c[CH_BADGES], S_vip))) < 0 ||
        put(payload, S_k_is_broadcaster,
            PyBool_FromLong(has_badge(c[CH_BADGES], S_broadcaster))) < 0 ||
        put(payload, S_k_first_message, Py_NewRef(f[PM_FIRST_MESSAGE])) < 0 ||
        put(payload, S_k_returning, Py_NewRef(f[PM_RETURNING])) < 0 ||
        put(payload, S_k_reward, or_none(f[PM_REWARD])) < 0 ||
        put(payload, S_k_message_kind, or_none(f[PM_MESSAGE_KIND])) < 0) {
        goto fail;
    }
    PyObject *reply = f[PM_REPLY];
    if (reply == Py_None) {
        if (put(payload, S_k_reply, Py_NewRef(Py_None)) < 0) {
            goto fail;
        }
    }
    else {
        PyObject *r = NEW_DICT(7);
        PyObject *tid = NULL, *tlogin = NULL;
        if (r == NULL ||
            put(r, S_k_parent_message_id, PyObject_GetAttr(reply, S_a_message_id)) < 0 ||
            put(r, S_k_parent_user_id, PyObject_GetAttr(reply, S_a_user_id)) < 0 ||
            put(r, S_k_parent_user_login, PyObject_GetAttr(reply, S_a_user_login)) < 0 ||
            put(r, S_k_parent_display_name, PyObject_GetAttr(reply, S_a_display_name)) < 0 ||
            put(r, S_k_parent_text, PyObject_GetAttr(reply, S_a_text)) < 0 ||
            (tid = PyObject_GetAttr(reply, S_a_thread_message_id)) == NULL ||
            put(r, S_k_thread_message_id, or_none(tid)) < 0 ||
            (tlogin = PyObject_GetAttr(reply, S_a_thread_user_login)) == NULL ||
            put(r, S_k_thread_user_login, or_none(tlogin)) < 0 ||
            put(payload, S_k_reply, Py_NewRef(r)) < 0) {
            Py_XDECREF(tid);
            Py_XDECREF(tlogin);
            Py_XDECREF(r);
            goto fail;
        }
        Py_DECREF(tid);
        Py_DECREF(tlogin);
        Py_DECREF(r);
    }
    PyObject *shared = f[PM_SHARED];
    if (shared == Py_None) {
        if (put(payload, S_k_shared_chat, Py_NewRef(Py_None)) < 0) {
            goto fail;
        }
    }
    else {
        PyObject *s = NEW_DICT(2);
        if (s == NULL || put(s, S_k_source_room_id, PyObject_GetAttr(shared, S_a_room_id)) < 0 ||
            put(s, S_k_source_message_id, PyObject_GetAttr(shared, S_a_message_id)) < 0 ||
            put(payload, S_k_shared_chat, Py_NewRef(s)) < 0) {
            Py_XDECREF(s);
            goto fail;
        }
        Py_DECREF(s);
    }
    if (put(payload, S_k_sent_at, sent_at(sent, f[PM_SENT_AT_MS])) < 0 ||
        put(payload, S_k_transport, Py_NewRef(transport)) < 0 ||
        put(envelope, S_k_payload, Py_NewRef(payload)) < 0) {
        goto fail;
    }
    Py_DECREF(payload);
    payload = NULL;
    goto done;
fail:
    Py_CLEAR(envelope);
    Py_CLEAR(payload);
done:
    Py_XDECREF(id);
    for (int i = 0; i < PM_N; i++) {
        Py_DECREF(f[i]);
    }
    for (int i = 0; i < CH_N; i++) {
        Py_DECREF(c[i]);
    }
    Py_DECREF(transport);
    Py_DECREF(ids);
    Py_DECREF(sent);
    return envelope;
python:
    return PyObject_CallFunctionObjArgs(F_message_py, self, msg, stamp, NULL);
}

static PyObject *
call_build_py(PyObject *self, PyObject *message, PyObject *received_at)
{
    if (F_build_py == NULL) {
        return not_configured("EnvelopeBuilder.build");
    }
    return PyObject_CallFunctionObjArgs(F_build_py, self, message,
                                        received_at ? received_at : Py_None, NULL);
}

/* EnvelopeBuilder.build(message, received_at=None), installed as a method descriptor. */
static PyObject *
sp_build(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *message = NULL, *received_at = NULL;
    if (nargs > 2) {
        PyErr_Format(PyExc_TypeError,
                     "build() takes from 2 to 3 positional arguments but %zd were given",
                     nargs + 1);
        return NULL;
    }
    if (nargs >= 1) {
        message = args[0];
    }
    if (nargs == 2) {
        received_at = args[1];
    }
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        PyObject **slot = NULL;
        if (PyUnicode_Compare(name, S_a_message) == 0) {
            slot = &message;
        }
        else if (PyUnicode_Compare(name, S_a_received_at) == 0) {
            slot = &received_at;
        }
        else {
            if (!PyErr_Occurred()) {
                PyErr_Format(PyExc_TypeError,
                             "build() got an unexpected keyword argument '%U'", name);
            }
            return NULL;
        }
        if (*slot != NULL) {
            PyErr_Format(PyExc_TypeError, "build() got multiple values for argument '%U'",
                         name);
            return NULL;
        }
        *slot = args[nargs + i];
    }
    if (message == NULL) {
        PyErr_SetString(PyExc_TypeError,
                        "build() missing 1 required positional argument: 'message'");
        return NULL;
    }
    if (UNLIKELY(!g_enabled || T_EnvelopeBuilder == NULL ||
                 Py_TYPE(self) != T_EnvelopeBuilder)) {
        return call_build_py(self, message, received_at);
    }
    PyObject *attrs = PyObject_GenericGetDict(self, NULL);
    if (attrs == NULL) {
        return NULL;
    }
    PyObject *result = NULL, *builder = NULL, *now = NULL, *stamp = NULL;
    PyObject *builders = PyDict_GetItemWithError(attrs, S_a_builders);
    PyObject *received = builders ? PyDict_GetItemWithError(attrs, S_a_received) : NULL;
    PyObject *clock = received ? PyDict_GetItemWithError(attrs, S_a_clock) : NULL;
    if (clock == NULL || !PyDict_CheckExact(builders)) {
        Py_DECREF(attrs);
        if (PyErr_Occurred()) {
            return NULL;
        }
        return call_build_py(self, message, received_at);
    }
    builder = PyDict_GetItemWithError(builders, (PyObject *)Py_TYPE(message));
    if (builder == NULL) {
        Py_DECREF(attrs);
        if (PyErr_Occurred()) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    Py_INCREF(builder);
    Py_INCREF(received);
    if (received_at == NULL || received_at == Py_None) {
        now = PyObject_CallNoArgs(clock);
    }
    else {
        now = Py_NewRef(received_at);
    }
    if (now == NULL) {
        goto done;
    }
    stamp = clock_format(received, now);
    if (stamp == NULL) {
        goto done;
    }
    if (Py_TYPE(message) == T_Privmsg && PyMethod_Check(builder) &&
        PyMethod_GET_FUNCTION(builder) == F_message_py && PyMethod_GET_SELF(builder) == self) {
        result = c_message(self, attrs, message, stamp);
    }
    else {
        result = PyObject_CallFunctionObjArgs(builder, message, stamp, NULL);
    }
done:
    Py_XDECREF(stamp);
    Py_XDECREF(now);
    Py_DECREF(received);
    Py_DECREF(builder);
    Py_DECREF(attrs);
    return result;
}

/* ------------------------------------------------------------------------------------- */
/* typed PRIVMSG -> OutboundMessage, the JSON written here (reference:                   */
/* envelope/outbound.py _message_to_outbound_py = builder.build + to_outbound)           */

/* The JSON writer produces exactly what orjson.dumps produces for the values it accepts
 * (compact, UTF-8, only '"', '\\' and C0 controls escaped; \b \t \n \f \r short, the rest
 * as \u00xx). Anything else (a float, a subclass, a lone surrogate, an int beyond 64 bits)
 * makes it answer J_OTHER: the caller then runs the reference, which encodes or raises. */
#define J_OTHER 1
#define J_MAX_DEPTH 32

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
    else if (kind == PyUnicode_2BYTE_KIND) { /* one loop per kind: no kind test per char */
        const Py_UCS2 *c = (const Py_UCS2 *)data;
        for (Py_ssize_t i = a; i < b; i++) {
            Py_UCS4 ch = c[i];
            if (LIKELY(ch >= 0x20 && ch < 0x80 && ch != '"' && ch != '\\')) {
                q[k++] = (char)ch;
            }
            else if (jb_char(q, &k, ch) != 0) {
                return J_OTHER;
            }
        }
    }
    else {
        const Py_UCS4 *c = (const Py_UCS4 *)data;
        for (Py_ssize_t i = a; i < b; i++) {
            Py_UCS4 ch = c[i];
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

static ALWAYS_INLINE int
jb_str(jbuf *jb, PyObject *s)
{
    if (UNLIKELY(!STR_EXACT(s))) {
        return J_OTHER;
    }
    return jb_str_range(jb, s, 0, PyUnicode_GET_LENGTH(s));
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

static int jb_value(jbuf *jb, PyObject *v, int depth);

/* A dict with exact-str keys, in its order. */
static int
jb_dict(jbuf *jb, PyObject *d, int depth)
{
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    if (JLIT(jb, "{") < 0) {
        return -1;
    }
    int first = 1;
    while (PyDict_Next(d, &pos, &key, &value)) {
        int rc;
        if ((!first && JLIT(jb, ",") < 0)) {
            return -1;
        }
        first = 0;
        if ((rc = jb_str(jb, key)) != 0 || JLIT(jb, ":") < 0 ||
            (rc = jb_value(jb, value, depth + 1)) != 0) {
            return rc ? rc : -1;
        }
    }
    return JLIT(jb, "}");
}

/* str, int (64-bit), bool, None, and exact lists and dicts of them. */
static int
jb_value(jbuf *jb, PyObject *v, int depth)
{
    if (STR_EXACT(v)) {
        return jb_str_range(jb, v, 0, PyUnicode_GET_LENGTH(v));
    }
    if (v == Py_None) {
        return JLIT(jb, "null");
    }
    if (v == Py_True) {
        return JLIT(jb, "true");
    }
    if (v == Py_False) {
        return JLIT(jb, "false");
    }
    if (depth > J_MAX_DEPTH) {
        return J_OTHER;
    }
    if (PyLong_CheckExact(v)) {
        int overflow;
        long long value = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (value == -1 && PyErr_Occurred()) {
            return -1;
        }
        return overflow ? J_OTHER : jb_ll(jb, value);
    }
    if (PyList_CheckExact(v)) {
        if (JLIT(jb, "[") < 0) {
            return -1;
        }
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(v); i++) {
            int rc;
            if ((i > 0 && JLIT(jb, ",") < 0)) {
                return -1;
            }
            if ((rc = jb_value(jb, PyList_GET_ITEM(v, i), depth + 1)) != 0) {
                return rc;
            }
        }
        return JLIT(jb, "]");
    }
    if (PyDict_CheckExact(v)) {
        return jb_dict(jb, v, depth);
    }
    return J_OTHER;
}

/* `value or None` */
static int
jb_or_null(jbuf *jb, PyObject *value, int truth)
{
    return truth ? jb_value(jb, value, 1) : JLIT(jb, "null");
}

/* dict(pairs) of a badge tuple (exact str pairs): first position, last value. */
static int
jb_badge_dict(jbuf *jb, PyObject *badges)
{
    Py_ssize_t n = PyTuple_GET_SIZE(badges);
    for (Py_ssize_t i = 1; i < n; i++) {
        PyObject *name = PyTuple_GET_ITEM(PyTuple_GET_ITEM(badges, i), 0);
        for (Py_ssize_t j = 0; j < i; j++) {
            PyObject *other = PyTuple_GET_ITEM(PyTuple_GET_ITEM(badges, j), 0);
            if (name == other || (PyUnicode_GET_LENGTH(name) == PyUnicode_GET_LENGTH(other) &&
                                  PyUnicode_Compare(name, other) == 0)) {
                PyObject *d = badge_dict(badges); /* a repeated name: let a dict decide */
                if (d == NULL) {
                    return -1;
                }
                int rc = jb_dict(jb, d, 1);
                Py_DECREF(d);
                return rc;
            }
        }
    }
    if (JLIT(jb, "{") < 0) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PyTuple_GET_ITEM(badges, i);
        int rc;
        if ((i > 0 && JLIT(jb, ",") < 0)) {
            return -1;
        }
        if ((rc = jb_str(jb, PyTuple_GET_ITEM(pair, 0))) != 0 || JLIT(jb, ":") < 0 ||
            (rc = jb_str(jb, PyTuple_GET_ITEM(pair, 1))) != 0) {
            return rc ? rc : -1;
        }
    }
    return JLIT(jb, "}");
}

/* _emotes(text, emotes) written directly; 0 / -1 / J_OTHER (odd ranges: the caller asks
 * the reference for the list instead). */
static int
jb_emotes(jbuf *jb, PyObject *text, PyObject *emotes)
{
    Py_ssize_t n = PyList_GET_SIZE(emotes);
    if (!emotes_plain(emotes)) {
        return J_OTHER;
    }
    Py_ssize_t size = PyUnicode_GET_LENGTH(text);
    if (JLIT(jb, "[") < 0) {
        return -1;
    }
    int first = 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *e = PyList_GET_ITEM(emotes, i);
        long long s = PyLong_AsLongLong(slot_get(e, off_er[ER_START]));
        long long t = PyLong_AsLongLong(slot_get(e, off_er[ER_END]));
        if (!(s < size && s <= t)) {
            continue;
        }
        Py_ssize_t stop = t + 1 > size ? size : (Py_ssize_t)(t + 1);
        int rc;
        if ((!first && JLIT(jb, ",") < 0) || JLIT(jb, "{\"id\":") < 0) {
            return -1;
        }
        first = 0;
        if ((rc = jb_value(jb, slot_get(e, off_er[ER_ID]), 2)) != 0 ||
            JLIT(jb, ",\"start\":") < 0 || jb_ll(jb, s) < 0 || JLIT(jb, ",\"end\":") < 0 ||
            jb_ll(jb, (long long)stop - 1) < 0 || JLIT(jb, ",\"name\":") < 0 ||
            (rc = jb_str_range(jb, text, (Py_ssize_t)s, stop)) != 0 || JLIT(jb, "}") < 0) {
            return rc ? rc : -1;
        }
    }
    return JLIT(jb, "]");
}

/* The outbound message class and the reference conversion. */
static PyTypeObject *T_OutboundMessage = NULL;
static PyObject *F_outbound_py = NULL;
static int g_outbound_direct = 0; /* the class is exactly the 10 slots below */
enum { OM_DATA, OM_ENVELOPE_ID, OM_DEDUP_ID, OM_TYPE, OM_TRACEPARENT, OM_ORDERING_KEY,
       OM_TIME, OM_CHANNEL, OM_RECEIVED_AT, OM_SEQ, OM_N };
static const char *const OM_NAMES[OM_N] = {
    "data", "envelope_id", "dedup_id", "type",        "traceparent",
    "ordering_key", "time", "channel", "received_at", "seq"};
static Py_ssize_t off_om[OM_N];

static PyObject *
new_outbound(PyObject **values) /* steals values */
{
    if (g_outbound_direct) {
        PyObject *obj = build_instance(T_OutboundMessage, off_om, values, OM_N);
        if (obj != NULL && PyObject_GC_IsTracked(obj)) {
            /* bytes, str, a float and an int only: it cannot be part of a reference cycle */
            PyObject_GC_UnTrack(obj);
        }
        return obj;
    }
    PyObject *obj = NULL;
    for (int i = 0; i < OM_N; i++) {
        if (values[i] == NULL) {
            goto out;
        }
    }
    obj = PyObject_Vectorcall((PyObject *)T_OutboundMessage, values, OM_N, NULL);
out:
    for (int i = 0; i < OM_N; i++) {
        Py_CLEAR(values[i]);
    }
    return obj;
}

static PyObject *
call_outbound_py(PyObject *const *args)
{
    if (F_outbound_py == NULL) {
        return not_configured("message_to_outbound");
    }
    return PyObject_Vectorcall(F_outbound_py, args, 5, NULL);
}

/* Everything the Privmsg's envelope needs that may run Python code, gathered before any
 * id is drawn (so that falling back to the reference leaves no trace). */
typedef struct {
    PyObject *sent_at;      /* str or None */
    PyObject *cheers;       /* list, or NULL for [] */
    PyObject *emotes;       /* the reference's list when the direct writer declines */
    PyObject *reply[RP_N];  /* NULLs when there is no reply */
    PyObject *shared[2];    /* room_id, message_id; NULLs when none */
    int room_id, reward, kind, thread_id, thread_login;
} pm_extras;

static void
pm_extras_clear(pm_extras *x)
{
    Py_CLEAR(x->sent_at);
    Py_CLEAR(x->cheers);
    Py_CLEAR(x->emotes);
    for (int i = 0; i < RP_N; i++) {
        Py_CLEAR(x->reply[i]);
    }
    Py_CLEAR(x->shared[0]);
    Py_CLEAR(x->shared[1]);
}

static const char *const RP_ATTR[RP_N] = {"message_id",   "user_id", "user_login",
                                          "display_name", "text",    "thread_message_id",
                                          "thread_user_login"};

/* The JSON of the envelope of a Privmsg (f, c: its fields and its chatter's). */
static int
write_privmsg(jbuf *jb, PyObject **f, PyObject **c, PyObject *id, const Py_UCS1 *trace,
              PyObject *stamp, PyObject *transport, pm_extras *x)
{
    int rc = 0;
#define W(expr)                       \
    do {                              \
        if ((rc = (expr)) != 0) {     \
            return rc < 0 ? -1 : rc;  \
        }                             \
    } while (0)
    W(JLIT(jb, "{\"v\":\"1\",\"id\":"));
    W(jb_str(jb, id));
    W(JLIT(jb, ",\"correlationId\":"));
    W(jb_str(jb, id));
    W(JLIT(jb, ",\"traceId\":\""));
    W(jb_raw(jb, (const char *)trace, 32));
    W(JLIT(jb, "\",\"timestamp\":"));
    W(jb_value(jb, stamp, 1));
    W(JLIT(jb, ",\"type\":"));
    W(jb_value(jb, O_MESSAGE, 1));
    W(JLIT(jb, ",\"source\":{\"platform\":\"twitch\",\"channel\":"));
    W(jb_value(jb, f[PM_CHANNEL], 2));
    W(JLIT(jb, ",\"channelId\":"));
    W(jb_or_null(jb, f[PM_ROOM_ID], x->room_id));
    W(JLIT(jb, "},\"user\":{\"id\":"));
    W(jb_value(jb, c[CH_USER_ID], 2));
    W(JLIT(jb, ",\"name\":"));
    W(jb_value(jb, c[CH_LOGIN], 2));
    W(JLIT(jb, ",\"displayName\":"));
    W(jb_value(jb, c[CH_DISPLAY_NAME], 2));
    W(JLIT(jb, ",\"profileImageUrl\":\"\",\"role\":\"\"},\"routingSlip\":[],"
               "\"finalizationDestination\":"));
    W(jb_value(jb, O_FINALIZER, 1));
    W(JLIT(jb, ",\"payload\":{\"text\":"));
    W(jb_str(jb, f[PM_TEXT]));
    W(JLIT(jb, ",\"messageId\":"));
    W(jb_str(jb, f[PM_MESSAGE_ID]));
    W(JLIT(jb, ",\"badges\":["));
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(c[CH_BADGES]); i++) {
        if (i > 0) {
            W(JLIT(jb, ","));
        }
        W(jb_str(jb, PyTuple_GET_ITEM(PyTuple_GET_ITEM(c[CH_BADGES], i), 0)));
    }
    W(JLIT(jb, "],\"isMod\":"));
    W(jb_value(jb, f[PM_IS_MOD], 2));
    W(JLIT(jb, ",\"isSubscriber\":"));
    W(jb_value(jb, f[PM_IS_SUBSCRIBER], 2));
    W(JLIT(jb, ",\"color\":"));
    W(jb_value(jb, c[CH_COLOR], 2));
    W(JLIT(jb, ",\"emotes\":"));
    W(x->emotes ? jb_value(jb, x->emotes, 2) : jb_emotes(jb, f[PM_TEXT], f[PM_EMOTES]));
    W(JLIT(jb, ",\"raw\":{\"tags\":"));
    W(jb_value(jb, slot_get(f[PM_IRC], off_im[IM_TAGS]), 3));
    W(JLIT(jb, "},\"isAction\":"));
    W(jb_value(jb, f[PM_IS_ACTION], 2));
    W(JLIT(jb, ",\"bits\":"));
    W(jb_value(jb, f[PM_BITS], 2));
    W(JLIT(jb, ",\"cheers\":"));
    W(x->cheers ? jb_value(jb, x->cheers, 2) : JLIT(jb, "[]"));
    W(JLIT(jb, ",\"badgeInfo\":"));
    W(jb_badge_dict(jb, c[CH_BADGE_INFO]));
    W(JLIT(jb, ",\"badgeVersions\":"));
    W(jb_badge_dict(jb, c[CH_BADGES]));
    W(JLIT(jb, ",\"isVip\":"));
    W(has_badge(c[CH_BADGES], S_vip) ? JLIT(jb, "true") : JLIT(jb, "false"));
    W(JLIT(jb, ",\"isBroadcaster\":"));
    W(has_badge(c[CH_BADGES], S_broadcaster) ? JLIT(jb, "true") : JLIT(jb, "false"));
    W(JLIT(jb, ",\"firstMessage\":"));
    W(jb_value(jb, f[PM_FIRST_MESSAGE], 2));
    W(JLIT(jb, ",\"returningChatter\":"));
    W(jb_value(jb, f[PM_RETURNING], 2));
    W(JLIT(jb, ",\"customRewardId\":"));
    W(jb_or_null(jb, f[PM_REWARD], x->reward));
    W(JLIT(jb, ",\"messageKind\":"));
    W(jb_or_null(jb, f[PM_MESSAGE_KIND], x->kind));
    W(JLIT(jb, ",\"reply\":"));
    if (x->reply[0] == NULL) {
        W(JLIT(jb, "null"));
    }
    else {
        W(JLIT(jb, "{\"parentMessageId\":"));
        W(jb_value(jb, x->reply[RP_MESSAGE_ID], 3));
        W(JLIT(jb, ",\"parentUserId\":"));
        W(jb_value(jb, x->reply[RP_USER_ID], 3));
        W(JLIT(jb, ",\"parentUserLogin\":"));
        W(jb_value(jb, x->reply[RP_USER_LOGIN], 3));
        W(JLIT(jb, ",\"parentDisplayName\":"));
        W(jb_value(jb, x->reply[RP_DISPLAY_NAME], 3));
        W(JLIT(jb, ",\"parentText\":"));
        W(jb_value(jb, x->reply[RP_TEXT], 3));
        W(JLIT(jb, ",\"threadParentMessageId\":"));
        W(jb_or_null(jb, x->reply[RP_THREAD_ID], x->thread_id));
        W(JLIT(jb, ",\"threadParentUserLogin\":"));
        W(jb_or_null(jb, x->reply[RP_THREAD_LOGIN], x->thread_login));
        W(JLIT(jb, "}"));
    }
    W(JLIT(jb, ",\"sharedChat\":"));
    if (x->shared[0] == NULL) {
        W(JLIT(jb, "null"));
    }
    else {
        W(JLIT(jb, "{\"sourceRoomId\":"));
        W(jb_value(jb, x->shared[0], 3));
        W(JLIT(jb, ",\"sourceMessageId\":"));
        W(jb_value(jb, x->shared[1], 3));
        W(JLIT(jb, "}"));
    }
    W(JLIT(jb, ",\"sentAt\":"));
    W(jb_value(jb, x->sent_at, 2));
    W(JLIT(jb, ",\"transport\":"));
    W(jb_value(jb, transport, 2));
    W(JLIT(jb, "}}"));
#undef W
    return 0;
}

/* Gather pm_extras; 0, -1 (error) or J_OTHER (odd fields: use the reference). */
static int
gather_extras(pm_extras *x, PyObject **f, PyObject *sent)
{
    if ((x->room_id = PyObject_IsTrue(f[PM_ROOM_ID])) < 0 ||
        (x->reward = PyObject_IsTrue(f[PM_REWARD])) < 0 ||
        (x->kind = PyObject_IsTrue(f[PM_MESSAGE_KIND])) < 0) {
        return -1;
    }
    x->sent_at = sent_at(sent, f[PM_SENT_AT_MS]);
    if (x->sent_at == NULL) {
        return -1;
    }
    int bits = PyObject_IsTrue(f[PM_BITS]);
    if (bits < 0) {
        return -1;
    }
    if (bits && (x->cheers = PyObject_CallOneArg(F_cheers_py, f[PM_TEXT])) == NULL) {
        return -1;
    }
    /* the direct emote writer declines what envelope_emotes hands to Python: same test */
    PyObject *emotes = f[PM_EMOTES];
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(emotes); i++) {
        PyObject *e = PyList_GET_ITEM(emotes, i);
        PyObject *start = Py_TYPE(e) == T_EmoteRange ? slot_get(e, off_er[ER_START]) : NULL;
        PyObject *end = Py_TYPE(e) == T_EmoteRange ? slot_get(e, off_er[ER_END]) : NULL;
        int o1 = 1, o2 = 1;
        long long s = 0, t = 0;
        if (start != NULL && end != NULL && PyLong_CheckExact(start) && PyLong_CheckExact(end)) {
            s = PyLong_AsLongLongAndOverflow(start, &o1);
            t = PyLong_AsLongLongAndOverflow(end, &o2);
        }
        if (o1 || o2 || s < 0 || t >= LLONG_MAX || slot_get(e, off_er[ER_ID]) == NULL) {
            x->emotes = envelope_emotes(f[PM_TEXT], emotes);
            if (x->emotes == NULL) {
                return -1;
            }
            break;
        }
    }
    PyObject *reply = f[PM_REPLY];
    if (reply != Py_None) {
        for (int i = 0; i < RP_N; i++) {
            if (Py_TYPE(reply) == T_ReplyParent) {
                x->reply[i] = Py_XNewRef(slot_get(reply, off_rp[i]));
            }
            if (x->reply[i] == NULL) {
                x->reply[i] = PyObject_GetAttrString(reply, RP_ATTR[i]);
                if (x->reply[i] == NULL) {
                    return -1;
                }
            }
        }
        if ((x->thread_id = PyObject_IsTrue(x->reply[RP_THREAD_ID])) < 0 ||
            (x->thread_login = PyObject_IsTrue(x->reply[RP_THREAD_LOGIN])) < 0) {
            return -1;
        }
    }
    PyObject *shared = f[PM_SHARED];
    if (shared != Py_None) {
        if ((x->shared[0] = PyObject_GetAttr(shared, S_a_room_id)) == NULL ||
            (x->shared[1] = PyObject_GetAttr(shared, S_a_message_id)) == NULL) {
            return -1;
        }
    }
    return 0;
}

/* The OutboundMessage of an exact Privmsg for an exact EnvelopeBuilder whose _builders
 * maps Privmsg to its own _message; NULL with an error, or Py_NotImplemented (new ref)
 * when the reference must run instead (nothing was drawn from either RandomIds). */
static PyObject *
c_outbound(PyObject *attrs, PyObject *msg, PyObject *stamp, PyObject *span_ids,
           PyObject *monotonic)
{
    PyObject *f[PM_N], *c[CH_N];
    for (int i = 0; i < PM_N; i++) {
        f[i] = slot_get(msg, off_pm[i]);
        if (f[i] == NULL) {
            return Py_NewRef(Py_NotImplemented);
        }
    }
    PyObject *chatter = f[PM_CHATTER];
    if (Py_TYPE(chatter) != T_Chatter) {
        return Py_NewRef(Py_NotImplemented);
    }
    for (int i = 0; i < CH_N; i++) {
        c[i] = slot_get(chatter, off_ch[i]);
        if (c[i] == NULL) {
            return Py_NewRef(Py_NotImplemented);
        }
    }
    PyObject *transport = PyDict_GetItemWithError(attrs, S_k_transport);
    PyObject *ids = transport ? PyDict_GetItemWithError(attrs, S_a_ids) : NULL;
    PyObject *sent = ids ? PyDict_GetItemWithError(attrs, S_a_sent) : NULL;
    if (sent == NULL) {
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_NotImplemented);
    }
    if (!STR_EXACT(f[PM_MESSAGE_ID]) || !STR_EXACT(f[PM_TEXT]) ||
        !PyList_CheckExact(f[PM_EMOTES]) ||
        (f[PM_SENT_AT_MS] != Py_None && !PyLong_CheckExact(f[PM_SENT_AT_MS])) ||
        !is_badge_tuple(c[CH_BADGES]) || !is_badge_tuple(c[CH_BADGE_INFO]) ||
        Py_TYPE(f[PM_IRC]) != T_IrcMessage || slot_get(f[PM_IRC], off_im[IM_TAGS]) == NULL ||
        Py_TYPE(ids) != T_RandomIds || Py_TYPE(span_ids) != T_RandomIds) {
        return Py_NewRef(Py_NotImplemented);
    }
    for (int i = 0; i < PM_N; i++) {
        Py_INCREF(f[i]);
    }
    for (int i = 0; i < CH_N; i++) {
        Py_INCREF(c[i]);
    }
    Py_INCREF(transport);
    Py_INCREF(ids);
    Py_INCREF(sent);
    PyObject *result = NULL, *id = NULL;
    pm_extras x = {0};
    jbuf jb;
    jb_init(&jb);
    int rc = gather_extras(&x, f, sent);
    if (rc < 0 && PyErr_ExceptionMatches(PyExc_Exception)) {
        /* raised by Python code (the reference's helpers): let the reference raise it,
         * after drawing the ids it draws first */
        PyErr_Clear();
        rc = J_OTHER;
    }
    if (rc != 0) {
        goto out;
    }
    /* the ids, as the reference draws them: [uuid4], trace id (builder), span id */
    int need_uuid = PyUnicode_GET_LENGTH(f[PM_MESSAGE_ID]) == 0;
    int same = ids == span_ids;
    Py_UCS1 h[IDS_PEEK_MAX], span_buf[32];
    const Py_UCS1 *sh = span_buf;
    Py_ssize_t pos, span_pos = 0;
    if (!ids_peek_n(ids, 32 * (need_uuid + 1 + same), h, &pos)) {
        rc = J_OTHER;
        goto out;
    }
    if (same) {
        sh = h + 32 * (need_uuid + 1);
    }
    else if (!ids_peek_n(span_ids, 32, span_buf, &span_pos)) {
        rc = J_OTHER;
        goto out;
    }
    const Py_UCS1 *trace = h + 32 * need_uuid;
    static const char zeros[32] = "0000000000000000000000000000000";
    int zero = memcmp(trace, zeros, 31) == 0 && trace[31] == '0';
    if (zero || (need_uuid && hex_value(h[16]) < 0)) {
        rc = J_OTHER; /* the reference draws again / refuses */
        goto out;
    }
    if (need_uuid) {
        id = PyUnicode_New(36, 127);
        if (id == NULL) {
            goto out;
        }
        uuid4_text(PyUnicode_1BYTE_DATA(id), h);
    }
    else {
        id = stable_uuid_of(S_twitch_colon, f[PM_MESSAGE_ID]);
        if (id == NULL) {
            goto out;
        }
    }
    PyObject *traceparent = PyUnicode_New(55, 127);
    if (traceparent == NULL) {
        goto out;
    }
    Py_UCS1 *tp = PyUnicode_1BYTE_DATA(traceparent);
    memcpy(tp, "00-", 3);
    memcpy(tp + 3, trace, 32);
    tp[35] = '-';
    memcpy(tp + 36, sh, 16);
    memcpy(tp + 52, "-01", 3);
    /* no Python code runs from here to the end */
    rc = write_privmsg(&jb, f, c, id, trace, stamp, transport, &x);
    if (rc != 0) {
        Py_DECREF(traceparent);
        goto out;
    }
    PyObject *values[OM_N];
    values[OM_DATA] = PyBytes_FromStringAndSize(jb.p, jb.len);
    values[OM_ENVELOPE_ID] = Py_NewRef(id);
    values[OM_DEDUP_ID] = Py_NewRef(need_uuid ? id : f[PM_MESSAGE_ID]);
    values[OM_TYPE] = Py_NewRef(O_MESSAGE);
    values[OM_TRACEPARENT] = traceparent;
    values[OM_ORDERING_KEY] = Py_NewRef(x.room_id ? f[PM_ROOM_ID] : f[PM_CHANNEL]);
    values[OM_TIME] = Py_NewRef(stamp);
    values[OM_CHANNEL] = Py_NewRef(f[PM_CHANNEL]);
    values[OM_RECEIVED_AT] = Py_NewRef(monotonic);
    values[OM_SEQ] = PyLong_FromLong(-1); /* the spool numbers it, when there is one */
    if (values[OM_DATA] == NULL || values[OM_SEQ] == NULL) {
        for (int i = 0; i < OM_N; i++) {
            Py_CLEAR(values[i]);
        }
        goto out;
    }
    /* take the ids (the span id last, as the pipeline draws it after the envelope) */
    if (ids_advance_by(ids, pos, 32 * (need_uuid + 1 + same)) < 0 ||
        (!same && ids_advance_by(span_ids, span_pos, 32) < 0)) {
        for (int i = 0; i < OM_N; i++) {
            Py_CLEAR(values[i]);
        }
        goto out;
    }
    result = new_outbound(values);
out:
    jb_free(&jb);
    pm_extras_clear(&x);
    Py_XDECREF(id);
    for (int i = 0; i < PM_N; i++) {
        Py_DECREF(f[i]);
    }
    for (int i = 0; i < CH_N; i++) {
        Py_DECREF(c[i]);
    }
    Py_DECREF(transport);
    Py_DECREF(ids);
    Py_DECREF(sent);
    if (result == NULL && rc == J_OTHER) {
        return Py_NewRef(Py_NotImplemented);
    }
    return result;
}

/* message_to_outbound(builder, message, received_at, span_ids, monotonic) */
static PyObject *
sp_message_to_outbound(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError,
                     "message_to_outbound() takes exactly 5 positional arguments (%zd given)",
                     nargs);
        return NULL;
    }
    PyObject *self = args[0], *message = args[1], *received_at = args[2];
    if (UNLIKELY(!g_enabled || T_OutboundMessage == NULL || Py_TYPE(self) != T_EnvelopeBuilder ||
                 Py_TYPE(message) != T_Privmsg)) {
        return call_outbound_py(args);
    }
    PyObject *attrs = PyObject_GenericGetDict(self, NULL);
    if (attrs == NULL) {
        return NULL;
    }
    PyObject *result = NULL, *builder = NULL, *now = NULL, *stamp = NULL;
    PyObject *builders = PyDict_GetItemWithError(attrs, S_a_builders);
    PyObject *received = builders ? PyDict_GetItemWithError(attrs, S_a_received) : NULL;
    PyObject *clock = received ? PyDict_GetItemWithError(attrs, S_a_clock) : NULL;
    if (clock == NULL || !PyDict_CheckExact(builders)) {
        Py_DECREF(attrs);
        return PyErr_Occurred() ? NULL : call_outbound_py(args);
    }
    builder = PyDict_GetItemWithError(builders, (PyObject *)T_Privmsg);
    if (builder == NULL || !PyMethod_Check(builder) ||
        PyMethod_GET_FUNCTION(builder) != F_message_py || PyMethod_GET_SELF(builder) != self) {
        Py_DECREF(attrs);
        return PyErr_Occurred() ? NULL : call_outbound_py(args);
    }
    Py_INCREF(builder);
    Py_INCREF(received);
    /* the receipt time is read once: a fallback below gets the same value */
    now = received_at == Py_None ? PyObject_CallNoArgs(clock) : Py_NewRef(received_at);
    if (now == NULL) {
        goto done;
    }
    stamp = clock_format(received, now);
    if (stamp == NULL) {
        goto done;
    }
    result = c_outbound(attrs, message, stamp, args[3], args[4]);
    if (result == Py_NotImplemented) {
        Py_DECREF(result);
        PyObject *again[5] = {self, message, now, args[3], args[4]};
        result = call_outbound_py(again);
    }
done:
    Py_XDECREF(stamp);
    Py_XDECREF(now);
    Py_DECREF(received);
    Py_DECREF(builder);
    Py_DECREF(attrs);
    return result;
}

/* ------------------------------------------------------------------------------------- */
/* a chunk of bytes read from Twitch -> its lines (reference: sources/irc/transport.py    */
/* _split_lines_py: decode the chunk, split on LF, drop one trailing CR, skip empties)    */

static PyObject *F_split_lines_py = NULL;

/* Each line is decoded on its own (LF never occurs inside a UTF-8 sequence, so the lines
 * and their replacement characters are those of decoding the whole chunk), which gives
 * every line its own narrowest string kind instead of one wide chunk sliced up. */
static PyObject *
sp_split_lines(PyObject *module, PyObject *chunk)
{
    if (UNLIKELY(!g_enabled || F_split_lines_py == NULL || !PyBytes_CheckExact(chunk))) {
        if (F_split_lines_py == NULL) {
            return not_configured("split_lines");
        }
        return PyObject_CallOneArg(F_split_lines_py, chunk);
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

static PyObject *
sp_configure_lines(PyObject *module, PyObject *reference)
{
    if (!PyCallable_Check(reference)) {
        PyErr_SetString(PyExc_TypeError, "configure_lines: the reference must be callable");
        return NULL;
    }
    set_ref(&F_split_lines_py, reference);
    Py_RETURN_NONE;
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

/* What a message's frame is made of, when C may build it: an exact OutboundMessage whose
 * header values the reference would copy unchanged. */
typedef struct {
    PyObject *data, *dedup, *trace, *type; /* borrowed */
    Py_ssize_t header, body;
} hpub_parts;

static int
hpub_parts_of(PyObject *message, hpub_parts *p)
{
    if (!g_enabled || !g_outbound_direct || Py_TYPE(message) != T_OutboundMessage) {
        return 0;
    }
    p->data = slot_get(message, off_om[OM_DATA]);
    p->dedup = slot_get(message, off_om[OM_DEDUP_ID]);
    p->trace = slot_get(message, off_om[OM_TRACEPARENT]);
    p->type = slot_get(message, off_om[OM_TYPE]);
    if (p->data == NULL || !PyBytes_CheckExact(p->data) || !plain_header_value(p->dedup) ||
        !plain_header_value(p->trace) || !plain_header_value(p->type)) {
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

/* hpub_frame(subject, message): the frame, or None when the reference must build it (a
 * header value it would normalize, another class, the C paths switched off). */
static PyObject *
sp_hpub_frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "hpub_frame() takes exactly 2 arguments");
        return NULL;
    }
    PyObject *subject = args[0];
    hpub_parts parts;
    if (!PyBytes_CheckExact(subject) || !hpub_parts_of(args[1], &parts)) {
        Py_RETURN_NONE;
    }
    PyObject *frame = PyBytes_FromStringAndSize(NULL, hpub_room(subject, &parts));
    if (frame == NULL) {
        return NULL;
    }
    char *start = PyBytes_AS_STRING(frame);
    if (_PyBytes_Resize(&frame, hpub_write(start, subject, &parts) - start) < 0) {
        return NULL;
    }
    return frame;
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
    Py_ssize_t n = PyList_GET_SIZE(messages), room = 0;
    hpub_parts parts;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!hpub_parts_of(PyList_GET_ITEM(messages, i), &parts)) {
            Py_RETURN_NONE;
        }
        room += hpub_room(subject, &parts);
    }
    PyObject *frames = PyBytes_FromStringAndSize(NULL, room);
    if (frames == NULL) {
        return NULL;
    }
    char *start = PyBytes_AS_STRING(frames), *q = start;
    for (Py_ssize_t i = 0; i < n; i++) {
        hpub_parts_of(PyList_GET_ITEM(messages, i), &parts); /* checked above; no code ran */
        q = hpub_write(q, subject, &parts);
    }
    if (_PyBytes_Resize(&frames, q - start) < 0) {
        return NULL;
    }
    return frames;
}

/* ------------------------------------------------------------------------------------- */
/* the direct path: a raw PRIVMSG line -> its OutboundMessage (inside lines_to_outbound)  */
/*
 * The per-line path builds an IrcMessage (a tags dict of ~20 strs), a typed Privmsg (with
 * Chatter, EmoteRange, badge tuples) and then writes the envelope JSON from those objects.
 * For a PRIVMSG of the common shape the direct path scans the line once into spans (offsets
 * into the line, no Python objects) and writes the same JSON straight from them, IRC tag
 * unescaping and JSON escaping in one pass. It must produce what the per-line path produces,
 * byte for byte, draw the same ids in the same order, and touch the same state (the badge
 * cache, both IsoClocks of the builder, both RandomIds).
 *
 * It works in two phases. dp_scan (reads the line only) and dp_ctx_load / the id peek (read the
 * builder) may DECLINE: the line then goes to the per-line path as if the direct path did
 * not exist. Only after both accept is any state touched, in the per-line path's order:
 * badge cache (badges, then badge-info), received clock, sent clock, ids. What it declines
 * (all rare in Twitch chat): tags with no space after them, no nick!user prefix, a
 * command other than PRIVMSG, params other than "#channel :text", a non-ASCII nick or
 * channel, a lone surrogate anywhere, duplicate tag keys, more than DP_MAX_TAGS tags, a
 * backslash in any tag value the envelope interprets (all but reply-parent-msg-body and the
 * tags only copied into payload.raw), shared chat (source-room-id), a display name with
 * spaces to strip, an empty channel ("#"), a tmi-sent-ts or bits that is not 1-18 ASCII digits, emote
 * ranges that need Python's int(), more than DP_MAX_EMOTES emote ranges, an id block that
 * needs refilling, and any builder, clock, id source or received_at not of the exact types
 * (a subclass, a None received_at that would make the builder read its clock).
 * Two late declines, after the badge cache and the clocks were used but before any id is
 * drawn: _cheers raising, or returning what the JSON writer refuses (an int beyond 64
 * bits; the reference no longer returns one, a cheer that large is text: kept as a guard). Repeating those steps in the per-line path leaves the same state (cache hits,
 * memo hits, a pure function), so the result is still the per-line path's.
 *
 * set_direct_enabled(False) switches only this path off (tests compare both in one
 * process); direct_stats() counts the lines it took and declined.
 */

static int g_direct_enabled = 1;
static unsigned long long g_direct_taken = 0, g_direct_declined = 0;

#define DP_MAX_TAGS 64
#define DP_MAX_EMOTES 128
#define DP_KEY_SLOTS 64 /* a power of two, more than TG_N */

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
    int nunknown; /* the tags whose key is not a known one: their indexes */
    unsigned char unknown[DP_MAX_TAGS];
    dp_tag tags[DP_MAX_TAGS];
    dp_emote emotes[DP_MAX_EMOTES];
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
        PyObject *key = tag_key_table[t];
        const int kind = PyUnicode_1BYTE_KIND;
        uint32_t h = dp_hash(kind, PyUnicode_1BYTE_DATA(key), 0, PyUnicode_GET_LENGTH(key));
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
        PyObject *key = tag_key_table[t];
        if (dp_key_hashes[t] != h || PyUnicode_GET_LENGTH(key) != b - a) {
            continue;
        }
        const Py_UCS1 *k = PyUnicode_1BYTE_DATA(key);
        if (kind == PyUnicode_1BYTE_KIND) { /* short keys: no call to memcmp */
            const Py_UCS1 *p = (const Py_UCS1 *)data + a;
            Py_ssize_t i = 0, n = b - a;
            uint64_t x, y;
            for (; i + 8 <= n; i += 8) {
                memcpy(&x, p + i, 8);
                memcpy(&y, k + i, 8);
                if (x != y) {
                    break;
                }
            }
            while (i < n && p[i] == k[i]) {
                i++;
            }
            if (i == n) {
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

/* find_char for the short spans of a line (prefix parts, emote ranges): a plain loop, no
 * call into memchr for a few characters. */
static ALWAYS_INLINE Py_ssize_t
dp_find(const int kind, const void *data, Py_ssize_t a, Py_ssize_t b, Py_UCS4 ch)
{
    for (Py_ssize_t i = a; i < b; i++) {
        if (READ(i) == ch) {
            return i;
        }
    }
    return -1;
}

/* parse_emotes over the (unescaped) emotes value line[a:b]: the same ranges, kept as
 * spans, stably sorted by start; 0 declines (Python's int() needed, too many ranges). */
static ALWAYS_INLINE int
dp_scan_emotes(dp_line *l, const int kind, const void *data, Py_ssize_t a, Py_ssize_t b)
{
    l->nemotes = 0;
    Py_ssize_t g = a;
    while (g <= b) {
        Py_ssize_t gend = dp_find(kind, data, g, b, '/');
        if (gend < 0) {
            gend = b;
        }
        Py_ssize_t colon = dp_find(kind, data, g, gend, ':');
        if (colon >= 0) {
            Py_ssize_t s = colon + 1;
            for (;;) {
                Py_ssize_t send = dp_find(kind, data, s, gend, ',');
                if (send < 0) {
                    send = gend;
                }
                Py_ssize_t dash = dp_find(kind, data, s, send, '-');
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

static ALWAYS_INLINE int
dp_ascii(const int kind, const void *data, Py_ssize_t a, Py_ssize_t b)
{
    for (Py_ssize_t i = a; i < b; i++) {
        if (READ(i) >= 128) {
            return 0;
        }
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
    Py_ssize_t at = dp_find(kind, data, pos + 1, space, '@');
    Py_ssize_t bang = dp_find(kind, data, pos + 1, at >= 0 ? at : space, '!');
    if (bang < 0) {
        return 0;
    }
    l->nick = pos + 1;
    l->nick_end = bang;
    if (!dp_ascii(kind, data, l->nick, l->nick_end)) { /* str.lower() beyond ASCII */
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
    switch (kind) { /* one specialised copy per kind */
    case PyUnicode_1BYTE_KIND:
        return dp_scan(l, PyUnicode_1BYTE_KIND, data, n);
    case PyUnicode_2BYTE_KIND:
        return dp_scan(l, PyUnicode_2BYTE_KIND, data, n);
    default:
        return dp_scan(l, PyUnicode_4BYTE_KIND, data, n);
    }
}

/* -- the JSON, from the spans --------------------------------------------------------- */

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

/* str.lower() of the ASCII nick: the JSON of the span, its capitals lowered in place (JSON
 * escapes only add lowercase letters, so only the nick's own capitals are touched). */
static int
dp_login(jbuf *jb, const dp_line *l)
{
    Py_ssize_t from = jb->len;
    int rc = jb_str_range(jb, l->line, l->nick, l->nick_end);
    for (Py_ssize_t i = from; rc == 0 && i < jb->len; i++) {
        if (jb->p[i] >= 'A' && jb->p[i] <= 'Z') {
            jb->p[i] = (char)(jb->p[i] + 32);
        }
    }
    return rc;
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

/* The objects the envelope needs beyond the spans. */
typedef struct {
    PyObject *id;           /* envelope id */
    PyObject *stamp;        /* the received time, formatted */
    PyObject *sent_at;      /* str or None */
    PyObject *cheers;       /* _cheers(text) when bits is non-zero, else NULL ([]) */
    PyObject *channel;      /* lowercased, without '#' */
    PyObject *badges;       /* badge tuples, from the badge cache */
    PyObject *badge_info;
} dp_objects;

/* The envelope JSON: write_privmsg's bytes for the same line. */
static int
dp_write(jbuf *jb, const dp_line *l, const dp_objects *o, const Py_UCS1 *trace,
         PyObject *transport)
{
    int rc = 0;
#define W(expr)                       \
    do {                              \
        if ((rc = (expr)) != 0) {     \
            return rc < 0 ? -1 : rc;  \
        }                             \
    } while (0)
    W(JLIT(jb, "{\"v\":\"1\",\"id\":"));
    W(jb_str(jb, o->id));
    W(JLIT(jb, ",\"correlationId\":"));
    W(jb_str(jb, o->id));
    W(JLIT(jb, ",\"traceId\":\""));
    W(jb_raw(jb, (const char *)trace, 32));
    W(JLIT(jb, "\",\"timestamp\":"));
    W(jb_value(jb, o->stamp, 1));
    W(JLIT(jb, ",\"type\":"));
    W(jb_value(jb, O_MESSAGE, 1));
    W(JLIT(jb, ",\"source\":{\"platform\":\"twitch\",\"channel\":"));
    W(jb_str(jb, o->channel));
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
    W(jb_value(jb, O_FINALIZER, 1));
    W(JLIT(jb, ",\"payload\":{\"text\":"));
    W(jb_str_range(jb, l->line, l->text, l->text_end));
    W(JLIT(jb, ",\"messageId\":"));
    W(dp_tag_value(jb, l, TG_ID));
    W(JLIT(jb, ",\"badges\":["));
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(o->badges); i++) {
        if (i > 0) {
            W(JLIT(jb, ","));
        }
        W(jb_str(jb, PyTuple_GET_ITEM(PyTuple_GET_ITEM(o->badges, i), 0)));
    }
    W(JLIT(jb, "],\"isMod\":"));
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
    W(o->cheers ? jb_value(jb, o->cheers, 2) : JLIT(jb, "[]"));
    W(JLIT(jb, ",\"badgeInfo\":"));
    W(jb_badge_dict(jb, o->badge_info));
    W(JLIT(jb, ",\"badgeVersions\":"));
    W(jb_badge_dict(jb, o->badges));
    W(JLIT(jb, ",\"isVip\":"));
    W(has_badge(o->badges, S_vip) ? JLIT(jb, "true") : JLIT(jb, "false"));
    W(JLIT(jb, ",\"isBroadcaster\":"));
    W(has_badge(o->badges, S_broadcaster) ? JLIT(jb, "true") : JLIT(jb, "false"));
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
    W(jb_value(jb, o->sent_at, 2));
    W(JLIT(jb, ",\"transport\":"));
    W(jb_str(jb, transport));
    W(JLIT(jb, "}}"));
#undef W
    return 0;
}

/* -- the builder, read once per batch --------------------------------------------------- */

typedef struct {
    int ok;                                        /* the direct path may run */
    int stale;                                     /* Python code ran: read it again */
    PyObject *received, *sent, *ids, *transport;   /* strong references */
} dp_ctx;

static void
dp_ctx_clear(dp_ctx *c)
{
    c->ok = 0;
    c->stale = 0;
    Py_CLEAR(c->received);
    Py_CLEAR(c->sent);
    Py_CLEAR(c->ids);
    Py_CLEAR(c->transport);
}

/* What sp_message_to_outbound and c_outbound check, for exact types only. Never raises:
 * anything odd (even a failing lookup) leaves ok == 0 and the per-line path reproduces it. */
static void
dp_ctx_load(dp_ctx *c, PyObject *builder, PyObject *received_at, PyObject *span_ids)
{
    dp_ctx_clear(c);
    if (!g_direct_enabled || !g_outbound_direct || T_OutboundMessage == NULL ||
        T_IrcMessage == NULL || T_Privmsg == NULL || T_RandomIds == NULL ||
        T_IsoClock == NULL || F_message_py == NULL || O_badge_cache == NULL ||
        Py_TYPE(builder) != T_EnvelopeBuilder || !PyFloat_CheckExact(received_at) ||
        Py_TYPE(span_ids) != T_RandomIds) {
        return;
    }
    PyObject *attrs = PyObject_GenericGetDict(builder, NULL);
    if (attrs == NULL) {
        PyErr_Clear();
        return;
    }
    PyObject *builders = PyDict_GetItemWithError(attrs, S_a_builders);
    PyObject *received = builders ? PyDict_GetItemWithError(attrs, S_a_received) : NULL;
    PyObject *clock = received ? PyDict_GetItemWithError(attrs, S_a_clock) : NULL;
    PyObject *transport = clock ? PyDict_GetItemWithError(attrs, S_k_transport) : NULL;
    PyObject *ids = transport ? PyDict_GetItemWithError(attrs, S_a_ids) : NULL;
    PyObject *sent = ids ? PyDict_GetItemWithError(attrs, S_a_sent) : NULL;
    PyObject *method = NULL;
    if (sent != NULL && PyDict_CheckExact(builders)) {
        method = PyDict_GetItemWithError(builders, (PyObject *)T_Privmsg);
    }
    if (method != NULL && PyMethod_Check(method) && PyMethod_GET_FUNCTION(method) == F_message_py &&
        PyMethod_GET_SELF(method) == builder && Py_TYPE(received) == T_IsoClock &&
        Py_TYPE(sent) == T_IsoClock && Py_TYPE(ids) == T_RandomIds && STR_EXACT(transport) &&
        PyUnicode_IS_ASCII(transport)) {
        c->received = Py_NewRef(received);
        c->sent = Py_NewRef(sent);
        c->ids = Py_NewRef(ids);
        c->transport = Py_NewRef(transport);
        c->ok = 1;
    }
    PyErr_Clear();
    Py_DECREF(attrs);
}

/* -- one line ---------------------------------------------------------------------------- */

/* A str of line[a:b] (ASCII, lowercased: channel_of). */
static PyObject *
dp_lower_ascii(const dp_line *l, Py_ssize_t a, Py_ssize_t b)
{
    const int kind = l->kind;
    const void *data = l->data;
    PyObject *out = PyUnicode_New(b - a, 127);
    if (out != NULL) {
        Py_UCS1 *q = PyUnicode_1BYTE_DATA(out);
        for (Py_ssize_t i = a; i < b; i++) {
            Py_UCS4 c = READ(i);
            q[i - a] = (Py_UCS1)((c >= 'A' && c <= 'Z') ? c + 32 : c);
        }
    }
    return out;
}

/* A known tag's value as a str ("" when absent; the scan saw no backslash in it). */
static PyObject *
dp_tag_str(const dp_line *l, int t)
{
    Py_ssize_t a, b;
    if (!dp_tag_span(l, t, &a, &b) || a == b) {
        return Py_NewRef(S_empty);
    }
    return PyUnicode_Substring(l->line, a, b);
}

/* parse_badges of a tag, through the badge cache as the per-line path does. */
static PyObject *
dp_badges(const dp_line *l, int t)
{
    PyObject *value = dp_tag_str(l, t);
    if (value == NULL) {
        return NULL;
    }
    PyObject *badges = parse_badges(value);
    Py_DECREF(value);
    return badges;
}

/* The line's OutboundMessage: 1 (*out set), 0 declined (nothing touched: the per-line path
 * runs) or -1 (an error raised once state was touched, as the per-line path would raise). */
static int
dp_line_to_outbound(PyObject *line, dp_ctx *ctx, PyObject *received_at, PyObject *span_ids,
                    PyObject *monotonic, PyObject **out)
{
    if (!STR_EXACT(line)) {
        return 0;
    }
    dp_line l;
    if (!dp_scan_line(&l, line)) {
        return 0;
    }
    /* the ids the per-line path draws: [uuid4], trace id (builder), span id; peeked only */
    PyObject *ids = ctx->ids;
    int need_uuid = dp_tag_len(&l, TG_ID) == 0;
    int same = ids == span_ids;
    Py_ssize_t take = 32 * (need_uuid + 1 + same);
    Py_UCS1 h[IDS_PEEK_MAX], span_buf[32];
    const Py_UCS1 *sh = span_buf;
    Py_ssize_t pos, span_pos = 0;
    if (!ids_peek_n(ids, take, h, &pos)) {
        return 0; /* a refill: the reference's RandomIds methods draw */
    }
    if (same) {
        sh = h + 32 * (need_uuid + 1);
    }
    else if (!ids_peek_n(span_ids, 32, span_buf, &span_pos)) {
        return 0;
    }
    const Py_UCS1 *trace = h + 32 * need_uuid;
    static const char zeros[32] = "0000000000000000000000000000000";
    if ((memcmp(trace, zeros, 31) == 0 && trace[31] == '0') ||
        (need_uuid && hex_value(h[16]) < 0)) {
        return 0;
    }
    /* accepted: state is touched from here on, in the per-line path's order */
    dp_objects o = {NULL};
    PyObject *room_id = NULL, *message_id = NULL, *traceparent = NULL;
    int rc = -1;
    jbuf jb;
    jb_init(&jb);
    if ((o.badges = dp_badges(&l, TG_BADGES)) == NULL ||
        (o.badge_info = dp_badges(&l, TG_BADGE_INFO)) == NULL) {
        goto done;
    }
    if (!is_badge_tuple(o.badges) || !is_badge_tuple(o.badge_info)) {
        rc = 0; /* a cache entry not made by parse_badges: the per-line path (its lookups
                   of the same values leave the cache as they find it) */
        goto done;
    }
    if ((o.stamp = clock_format(ctx->received, received_at)) == NULL) {
        goto done;
    }
    if (l.has_sent && l.sent_ms <= g_max_epoch_ms) {
        o.sent_at = clock_format_ms(ctx->sent, l.sent_ms, NULL);
    }
    else {
        o.sent_at = Py_NewRef(Py_None);
    }
    if (o.sent_at == NULL) {
        goto done;
    }
    if (l.bits != 0) { /* gather_extras calls the (pure) _cheers here, before any id */
        PyObject *text = PyUnicode_Substring(line, l.text, l.text_end);
        ctx->stale = 1;
        o.cheers = text ? PyObject_CallOneArg(F_cheers_py, text) : NULL;
        Py_XDECREF(text);
        if (o.cheers == NULL) {
            if (PyErr_ExceptionMatches(PyExc_Exception)) {
                PyErr_Clear(); /* late decline: the per-line path raises it (see below) */
                rc = 0;
            }
            goto done;
        }
    }
    if ((o.channel = dp_lower_ascii(&l, l.chan, l.chan_end)) == NULL ||
        (room_id = dp_tag_str(&l, TG_ROOM_ID)) == NULL ||
        (message_id = dp_tag_str(&l, TG_ID)) == NULL) {
        goto done;
    }
    if (need_uuid) {
        if ((o.id = PyUnicode_New(36, 127)) == NULL) {
            goto done;
        }
        uuid4_text(PyUnicode_1BYTE_DATA(o.id), h);
    }
    else if ((o.id = stable_uuid_of(S_twitch_colon, message_id)) == NULL) {
        goto done;
    }
    if ((traceparent = PyUnicode_New(55, 127)) == NULL) {
        goto done;
    }
    Py_UCS1 *tp = PyUnicode_1BYTE_DATA(traceparent);
    memcpy(tp, "00-", 3);
    memcpy(tp + 3, trace, 32);
    tp[35] = '-';
    memcpy(tp + 36, sh, 16);
    memcpy(tp + 52, "-01", 3);
    int written = dp_write(&jb, &l, &o, trace, ctx->transport);
    if (written != 0) {
        /* J_OTHER: a value the writer refuses, which only _cheers' list can hold (an
         * amount beyond 64 bits). A late decline, like a raising _cheers: no id is drawn
         * yet, and the steps taken (badge cache lookups, the clocks' memos, the pure
         * _cheers) leave the same state when the per-line path repeats them. */
        rc = written == J_OTHER ? 0 : -1;
        goto done;
    }
    PyObject *values[OM_N];
    values[OM_DATA] = PyBytes_FromStringAndSize(jb.p, jb.len);
    values[OM_ENVELOPE_ID] = Py_NewRef(o.id);
    values[OM_DEDUP_ID] = Py_NewRef(need_uuid ? o.id : message_id);
    values[OM_TYPE] = Py_NewRef(O_MESSAGE);
    values[OM_TRACEPARENT] = Py_NewRef(traceparent);
    values[OM_ORDERING_KEY] = Py_NewRef(PyUnicode_GET_LENGTH(room_id) ? room_id : o.channel);
    values[OM_TIME] = Py_NewRef(o.stamp);
    values[OM_CHANNEL] = Py_NewRef(o.channel);
    values[OM_RECEIVED_AT] = Py_NewRef(monotonic);
    values[OM_SEQ] = PyLong_FromLong(-1);
    if (values[OM_DATA] == NULL || values[OM_SEQ] == NULL ||
        ids_advance_by(ids, pos, take) < 0 ||
        (!same && ids_advance_by(span_ids, span_pos, 32) < 0)) {
        for (int i = 0; i < OM_N; i++) {
            Py_CLEAR(values[i]);
        }
        goto done;
    }
    *out = new_outbound(values);
    rc = *out != NULL ? 1 : -1;
done:
    jb_free(&jb);
    Py_XDECREF(o.id);
    Py_XDECREF(o.stamp);
    Py_XDECREF(o.sent_at);
    Py_XDECREF(o.cheers);
    Py_XDECREF(o.channel);
    Py_XDECREF(o.badges);
    Py_XDECREF(o.badge_info);
    Py_XDECREF(room_id);
    Py_XDECREF(message_id);
    Py_XDECREF(traceparent);
    return rc;
}

static PyObject *
sp_set_direct_enabled(PyObject *module, PyObject *flag)
{
    int truth = PyObject_IsTrue(flag);
    if (truth < 0) {
        return NULL;
    }
    g_direct_enabled = truth;
    Py_RETURN_NONE;
}

static PyObject *
sp_direct_stats(PyObject *module, PyObject *unused)
{
    return Py_BuildValue("(KK)", g_direct_taken, g_direct_declined);
}

/* ------------------------------------------------------------------------------------- */
/* a batch of lines -> what the read loop hands on (reference: sources/irc/codec.py      */
/* _lines_to_outbound_py)                                                                 */

static PyObject *F_lines_py = NULL;

/* Append the raised exception (an Exception; anything else stays raised: -1). */
static int
append_raised(PyObject *out)
{
    if (!PyErr_ExceptionMatches(PyExc_Exception)) {
        return -1;
    }
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL) {
        PyException_SetTraceback(value, tb);
    }
    int rc = value != NULL ? PyList_Append(out, value) : -1;
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return rc;
}

/* lines_to_outbound(lines, builder, received_at, span_ids, monotonic) -> list, one item
 * per line: its OutboundMessage (a PRIVMSG), its typed message (any other line), or the
 * exception its parsing or conversion raised. */
static PyObject *
sp_lines_to_outbound(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError,
                     "lines_to_outbound() takes exactly 5 positional arguments (%zd given)",
                     nargs);
        return NULL;
    }
    if (F_lines_py == NULL) {
        return not_configured("lines_to_outbound");
    }
    PyObject *lines = args[0];
    if (UNLIKELY(!g_enabled || !PyList_CheckExact(lines))) {
        return PyObject_Vectorcall(F_lines_py, args, 5, NULL);
    }
    PyObject *out = PyList_New(0);
    if (out == NULL) {
        return NULL;
    }
    dp_ctx ctx = {0};
    int reload = 1; /* the builder is read again after the per-line path ran Python code */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(lines); i++) {
        PyObject *line = Py_NewRef(PyList_GET_ITEM(lines, i));
        PyObject *item = NULL;
        int direct = 0;
        if (reload) {
            dp_ctx_load(&ctx, args[1], args[2], args[3]);
            reload = 0;
        }
        if (ctx.ok) {
            direct = dp_line_to_outbound(line, &ctx, args[2], args[3], args[4], &item);
            if (direct > 0) {
                g_direct_taken++;
            }
            else {
                g_direct_declined += direct == 0;
            }
            reload = direct <= 0 || ctx.stale;
        }
        if (direct != 0) { /* taken, or raised after touching state: item or the error */
            Py_DECREF(line);
            int rc = item != NULL ? PyList_Append(out, item) : append_raised(out);
            Py_XDECREF(item);
            if (rc < 0) {
                dp_ctx_clear(&ctx);
                Py_DECREF(out);
                return NULL;
            }
            continue;
        }
        PyObject *msg = sp_parse_line(module, line);
        Py_DECREF(line);
        item = msg ? sp_from_irc(module, msg) : NULL;
        Py_XDECREF(msg);
        if (item != NULL && Py_TYPE(item) == T_Privmsg) {
            PyObject *call[5] = {args[1], item, args[2], args[3], args[4]};
            PyObject *converted = sp_message_to_outbound(module, call, 5);
            if (converted != Py_None) { /* None: not published, the typed message stays */
                Py_SETREF(item, converted);
            }
            else {
                Py_DECREF(converted);
            }
        }
        int rc = item != NULL ? PyList_Append(out, item) : append_raised(out);
        Py_XDECREF(item);
        if (rc < 0) {
            dp_ctx_clear(&ctx);
            Py_DECREF(out);
            return NULL;
        }
    }
    dp_ctx_clear(&ctx);
    return out;
}

static PyObject *
sp_configure_lines_to_outbound(PyObject *module, PyObject *reference)
{
    if (!PyCallable_Check(reference)) {
        PyErr_SetString(PyExc_TypeError, "the reference must be callable");
        return NULL;
    }
    if (T_OutboundMessage == NULL) {
        return not_configured("outbound (configure_outbound first)");
    }
    set_ref(&F_lines_py, reference);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------------------- */
/* configuration entry points                                                            */

static PyObject *
sp_configure_protocol(PyObject *module, PyObject *args)
{
    PyObject *message_cls, *error_cls, *parse_py;
    if (!PyArg_ParseTuple(args, "OOO:configure_protocol", &message_cls, &error_cls,
                          &parse_py)) {
        return NULL;
    }
    Py_ssize_t offsets[IM_N];
    if (resolve_slots(message_cls, IM_NAMES, IM_N, offsets, 1) < 0) {
        return NULL;
    }
    if (!PyType_Check(error_cls) ||
        !PyType_IsSubtype((PyTypeObject *)error_cls, (PyTypeObject *)PyExc_Exception) ||
        !PyCallable_Check(parse_py)) {
        PyErr_SetString(PyExc_TypeError, "configure_protocol: bad arguments");
        return NULL;
    }
    memcpy(off_im, offsets, sizeof(offsets));
    set_type(&T_IrcMessage, message_cls);
    set_ref(&O_IrcParseError, error_cls);
    set_ref(&F_parse_line_py, parse_py);
    Py_RETURN_NONE;
}

static PyMethodDef privmsg_from_irc_def = {
    "from_irc", (PyCFunction)sp_privmsg_from_irc, METH_O,
    "from_irc($type, msg, /)\n--\n\n"
    "The Privmsg of a parsed PRIVMSG line (the C twin of the Python reference)."};

static PyObject *
sp_configure_messages(PyObject *module, PyObject *args)
{
    PyObject *privmsg, *chatter, *emote_range, *reply, *shared, *from_irc_py, *privmsg_py,
        *parse_emotes_py, *badge_cache;
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "OOOOOOOOO!n:configure_messages", &privmsg, &chatter,
                          &emote_range, &reply, &shared, &from_irc_py, &privmsg_py,
                          &parse_emotes_py, &PyDict_Type, &badge_cache, &limit)) {
        return NULL;
    }
    if (T_IrcMessage == NULL) {
        return not_configured("protocol (configure_protocol first)");
    }
    Py_ssize_t pm[PM_N], ch[CH_N], er[ER_N], rp[RP_N], sc[SC_N];
    if (resolve_slots(privmsg, PM_NAMES, PM_N, pm, 1) < 0 ||
        resolve_slots(chatter, CH_NAMES, CH_N, ch, 1) < 0 ||
        resolve_slots(emote_range, ER_NAMES, ER_N, er, 1) < 0 ||
        resolve_slots(reply, RP_NAMES, RP_N, rp, 1) < 0 ||
        resolve_slots(shared, SC_NAMES, SC_N, sc, 1) < 0) {
        return NULL;
    }
    if (!PyCallable_Check(from_irc_py) || !PyCallable_Check(privmsg_py) ||
        !PyCallable_Check(parse_emotes_py) || limit < 1) {
        PyErr_SetString(PyExc_TypeError, "configure_messages: bad arguments");
        return NULL;
    }
    PyObject *descr = PyDescr_NewClassMethod((PyTypeObject *)privmsg, &privmsg_from_irc_def);
    if (descr == NULL) {
        return NULL;
    }
    memcpy(off_pm, pm, sizeof(pm));
    memcpy(off_ch, ch, sizeof(ch));
    memcpy(off_er, er, sizeof(er));
    memcpy(off_rp, rp, sizeof(rp));
    memcpy(off_sc, sc, sizeof(sc));
    set_type(&T_Privmsg, privmsg);
    set_type(&T_Chatter, chatter);
    set_type(&T_EmoteRange, emote_range);
    set_type(&T_ReplyParent, reply);
    set_type(&T_SharedChatSource, shared);
    set_ref(&F_from_irc_py, from_irc_py);
    set_ref(&F_privmsg_py, privmsg_py);
    set_ref(&F_parse_emotes_py, parse_emotes_py);
    set_ref(&O_badge_cache, badge_cache);
    g_badge_cache_limit = limit;
    return descr;
}

static PyObject *
sp_configure_ids(PyObject *module, PyObject *args)
{
    PyObject *stable_py, *ids_cls, *clock_cls, *second_prefix;
    Py_buffer ns;
    if (!PyArg_ParseTuple(args, "y*OOOO:configure_ids", &ns, &stable_py, &ids_cls, &clock_cls,
                          &second_prefix)) {
        return NULL;
    }
    PyObject *result = NULL;
    Py_ssize_t ri[RI_N], ic[IC_N];
    if (ns.len != 16) {
        PyErr_SetString(PyExc_ValueError, "configure_ids: the namespace must be 16 bytes");
        goto out;
    }
    if (resolve_slots(ids_cls, RI_NAMES, RI_N, ri, 0) < 0 ||
        resolve_slots(clock_cls, IC_NAMES, IC_N, ic, 0) < 0) {
        goto out;
    }
    if (!PyCallable_Check(stable_py) || !PyCallable_Check(second_prefix)) {
        PyErr_SetString(PyExc_TypeError, "configure_ids: bad arguments");
        goto out;
    }
    memcpy(g_namespace, ns.buf, 16);
    memcpy(off_ri, ri, sizeof(ri));
    memcpy(off_ic, ic, sizeof(ic));
    set_type(&T_RandomIds, ids_cls);
    set_type(&T_IsoClock, clock_cls);
    set_ref(&F_stable_uuid_py, stable_py);
    set_ref(&F_second_prefix, second_prefix);
    result = Py_NewRef(Py_True);
out:
    PyBuffer_Release(&ns);
    return result;
}

static PyMethodDef build_def = {
    "build", (PyCFunction)(void (*)(void))sp_build, METH_FASTCALL | METH_KEYWORDS,
    "build($self, /, message, received_at=None)\n--\n\n"
    "The envelope for an event, or None for a line that is not published (the C twin of "
    "the Python reference, EnvelopeBuilder._build_py)."};

static PyObject *
sp_configure_envelope(PyObject *module, PyObject *args)
{
    PyObject *builder_cls, *build_py, *message_py, *emotes_py, *cheers_py, *message_type,
        *finalizer;
    long long max_ms;
    if (!PyArg_ParseTuple(args, "OOOOOUUL:configure_envelope", &builder_cls, &build_py,
                          &message_py, &emotes_py, &cheers_py, &message_type, &finalizer,
                          &max_ms)) {
        return NULL;
    }
    if (T_Privmsg == NULL || T_IsoClock == NULL) {
        return not_configured("messages and ids (configure them first)");
    }
    if (!PyType_Check(builder_cls) || !PyFunction_Check(message_py) ||
        !PyCallable_Check(build_py) || !PyCallable_Check(emotes_py) ||
        !PyCallable_Check(cheers_py)) {
        PyErr_SetString(PyExc_TypeError, "configure_envelope: bad arguments");
        return NULL;
    }
    PyObject *descr = PyDescr_NewMethod((PyTypeObject *)builder_cls, &build_def);
    if (descr == NULL) {
        return NULL;
    }
    set_type(&T_EnvelopeBuilder, builder_cls);
    set_ref(&F_build_py, build_py);
    set_ref(&F_message_py, message_py);
    set_ref(&F_emotes_py, emotes_py);
    set_ref(&F_cheers_py, cheers_py);
    set_ref(&O_MESSAGE, message_type);
    set_ref(&O_FINALIZER, finalizer);
    g_max_epoch_ms = max_ms;
    return descr;
}

static PyObject *
sp_configure_outbound(PyObject *module, PyObject *args)
{
    PyObject *cls, *reference;
    int direct;
    if (!PyArg_ParseTuple(args, "OpO:configure_outbound", &cls, &direct, &reference)) {
        return NULL;
    }
    if (T_EnvelopeBuilder == NULL || F_message_py == NULL) {
        return not_configured("envelope (configure_envelope first)");
    }
    if (!PyType_Check(cls) || !PyCallable_Check(reference)) {
        PyErr_SetString(PyExc_TypeError, "configure_outbound: bad arguments");
        return NULL;
    }
    Py_ssize_t om[OM_N];
    if (direct && resolve_slots(cls, OM_NAMES, OM_N, om, 1) < 0) {
        return NULL;
    }
    if (direct) {
        memcpy(off_om, om, sizeof(om));
    }
    g_outbound_direct = direct;
    set_type(&T_OutboundMessage, cls);
    set_ref(&F_outbound_py, reference);
    Py_RETURN_NONE;
}

/* SHA-1 of data with the portable block function and with the CPU's (if any): tests. */
static PyObject *
sp_sha1_variants(PyObject *module, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    sha1_block_fn chosen = sha1_block;
    sha1_block_fn fns[2] = {sha1_compress, NULL};
#ifdef HAVE_SHA_NI_CODE
    if (cpu_has_sha_ni()) {
        fns[1] = sha1_compress_ni;
    }
#endif
    PyObject *out = PyTuple_New(2);
    for (int i = 0; out != NULL && i < 2; i++) {
        PyObject *digest;
        if (fns[i] == NULL) {
            digest = Py_NewRef(Py_None);
        }
        else {
            sha1_ctx ctx;
            unsigned char raw[20];
            sha1_block = fns[i];
            sha1_init(&ctx);
            sha1_update(&ctx, view.buf, (size_t)view.len);
            sha1_final(&ctx, raw);
            digest = PyBytes_FromStringAndSize((const char *)raw, 20);
        }
        if (digest == NULL) {
            Py_CLEAR(out);
            break;
        }
        PyTuple_SET_ITEM(out, i, digest);
    }
    sha1_block = chosen;
    PyBuffer_Release(&view);
    return out;
}

static PyObject *
sp_set_enabled(PyObject *module, PyObject *flag)
{
    int truth = PyObject_IsTrue(flag);
    if (truth < 0) {
        return NULL;
    }
    g_enabled = truth;
    Py_RETURN_NONE;
}

static PyObject *
sp_is_enabled(PyObject *module, PyObject *unused)
{
    return PyBool_FromLong(g_enabled);
}

static PyObject *
sp_clear_caches(PyObject *module, PyObject *unused)
{
    for (int i = 0; i < SCACHE_SIZE; i++) {
        Py_CLEAR(scache[i]);
    }
    for (int i = 0; i < CHANNEL_MEMO; i++) {
        Py_CLEAR(channel_memo[i][0]);
        Py_CLEAR(channel_memo[i][1]);
    }
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"parse_line", sp_parse_line, METH_O,
     "parse_line($module, line, /)\n--\n\n"
     "Parse one line (a trailing CR/LF is ignored) into an IrcMessage; raises IrcParseError, "
     "nothing else (the C twin of protocol.irc._parse_line_py)."},
    {"from_irc", sp_from_irc, METH_O,
     "from_irc($module, msg, /)\n--\n\n"
     "The typed message for a parsed line (PRIVMSG built in C, the rest by the Python "
     "reference twitch.messages._from_irc_py)."},
    {"stable_uuid", sp_stable_uuid, METH_O,
     "stable_uuid($module, name, /)\n--\n\n"
     "str(uuid.uuid5(ENVELOPE_NAMESPACE, name)) (the C twin of ids._stable_uuid_py)."},
    {"configure_protocol", sp_configure_protocol, METH_VARARGS,
     "Register IrcMessage, IrcParseError and the reference parse_line."},
    {"configure_messages", sp_configure_messages, METH_VARARGS,
     "Register the message classes and references; returns Privmsg.from_irc."},
    {"configure_ids", sp_configure_ids, METH_VARARGS,
     "Register RandomIds, IsoClock, the UUID namespace and the reference stable_uuid."},
    {"configure_envelope", sp_configure_envelope, METH_VARARGS,
     "Register the envelope classes and references; returns EnvelopeBuilder.build."},
    {"message_to_outbound", (PyCFunction)(void (*)(void))sp_message_to_outbound, METH_FASTCALL,
     "message_to_outbound($module, builder, message, received_at, span_ids, monotonic, /)\n"
     "--\n\n"
     "The OutboundMessage of a typed message, or None (a PRIVMSG's JSON written in C; the "
     "C twin of envelope.outbound._message_to_outbound_py)."},
    {"configure_outbound", sp_configure_outbound, METH_VARARGS,
     "Register OutboundMessage (direct: its slots are the 10 known fields) and the "
     "reference conversion."},
    {"split_lines", sp_split_lines, METH_O,
     "split_lines($module, chunk, /)\n--\n\n"
     "(lines, 1 if some bytes were not UTF-8 else 0) of a chunk of LF-terminated lines (the "
     "C twin of sources.irc.transport._split_lines_py)."},
    {"configure_lines", sp_configure_lines, METH_O,
     "Register the reference split_lines."},
    {"hpub_frame", (PyCFunction)(void (*)(void))sp_hpub_frame, METH_FASTCALL,
     "hpub_frame($module, subject, message, /)\n--\n\n"
     "The NATS HPUB frame of an OutboundMessage, byte for byte bus.nats.hpub_frame's, or "
     "None when that reference must build it (header values it would normalize)."},
    {"hpub_frames", (PyCFunction)(void (*)(void))sp_hpub_frames, METH_FASTCALL,
     "hpub_frames($module, subject, messages, /)\n--\n\n"
     "The frames of a list of OutboundMessages in one bytes object (each hpub_frame's), or "
     "None when any of them needs the reference."},
    {"lines_to_outbound", (PyCFunction)(void (*)(void))sp_lines_to_outbound, METH_FASTCALL,
     "lines_to_outbound($module, lines, builder, received_at, span_ids, monotonic, /)\n--\n\n"
     "Per line: its OutboundMessage (PRIVMSG), typed message (other lines) or the exception "
     "raised (the C twin of sources.irc.codec._lines_to_outbound_py)."},
    {"configure_lines_to_outbound", sp_configure_lines_to_outbound, METH_O,
     "Register the reference lines_to_outbound."},
    {"set_direct_enabled", sp_set_direct_enabled, METH_O,
     "set_direct_enabled(flag): False sends every line of lines_to_outbound through the "
     "per-line path (parse_line, from_irc, message_to_outbound) instead of the direct one."},
    {"direct_stats", sp_direct_stats, METH_NOARGS,
     "(lines taken, lines declined) by lines_to_outbound's direct path since import."},
    {"set_enabled", sp_set_enabled, METH_O,
     "set_enabled(flag): False routes every entry point to its Python reference."},
    {"is_enabled", sp_is_enabled, METH_NOARGS, "Whether the C paths are in use."},
    {"sha1_variants", sp_sha1_variants, METH_O,
     "(portable SHA-1, SHA-NI SHA-1 or None) of a bytes-like object, for tests."},
    {"clear_caches", sp_clear_caches, METH_NOARGS,
     "Drop the shared-string and channel memos (for leak checks)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT, "ingress_egress._native._speedups",
    "C fast path for IRC parsing, typed PRIVMSG and its envelope.", -1, module_methods};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    if (init_strings() < 0) {
        return NULL;
    }
    init_tag_keys();
    dp_init_keys();
    dp_init_classes();
#ifdef HAVE_SHA_NI_CODE
    if (cpu_has_sha_ni() && getenv("INGRESS_EGRESS_NO_SHA_NI") == NULL) {
        sha1_block = sha1_compress_ni;
    }
#endif
    PyObject *module = PyModule_Create(&speedups_module);
    if (module != NULL && PyModule_AddIntConstant(module, "ABI_VERSION", ABI_VERSION) < 0) {
        Py_CLEAR(module);
    }
    return module;
}
