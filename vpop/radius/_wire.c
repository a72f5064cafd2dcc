/* The compiled twins of vpop.radius.codec's hot functions.
 *
 * Every Access-Request costs a decode, a Message-Authenticator check, the
 * User-Password MD5 chain and a signed reply (two MD5 digests over the packet).
 * In Python each is a handful of interpreter calls and temporary bytes objects;
 * here each is one call. codec.py and crypto.py use these when the module is
 * built; the unit tests hold both to the same RFC vectors and to each other on
 * random input.
 *
 * vpop/radius/wire_py.py is the reference: the same functions, in Python.
 * MD5 is RFC 1321, written out here so the module needs no library headers.
 * MD5 is what RADIUS mandates (RFC 2865 §3, RFC 3579 §3.2), not a choice.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* --- MD5 (RFC 1321) ------------------------------------------------------------ */

typedef struct {
    uint32_t state[4];
    uint64_t length;          /* octets hashed so far */
    unsigned char block[64];  /* the partial block */
} md5_ctx;

/* RFC 1321 §3.4: T[i] = floor(2^32 * abs(sin(i + 1))) */
static const uint32_t T[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee,
    0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be,
    0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa,
    0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
    0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c,
    0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05,
    0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039,
    0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1,
    0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};

/* RFC 1321 §3.4: the four auxiliary functions and one step, a = b + ((a + f(b,c,d)
 * + X[k] + T[i]) <<< s), written out for all 64 steps (a loop with a branch per
 * step runs at about half the speed). */
#define F(x, y, z) (((x) & (y)) | (~(x) & (z)))
#define G(x, y, z) (((x) & (z)) | ((y) & ~(z)))
#define H(x, y, z) ((x) ^ (y) ^ (z))
#define I(x, y, z) ((y) ^ ((x) | ~(z)))
#define STEP(f, a, b, c, d, xk, t, s) \
    (a) += f((b), (c), (d)) + (xk) + (t); \
    (a) = ((a) << (s)) | ((a) >> (32 - (s))); \
    (a) += (b);

static void md5_compress(uint32_t state[4], const unsigned char *p)
{
    uint32_t x[16];
    for (int i = 0; i < 16; i++)
        x[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 |
               (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    STEP(F, a, b, c, d, x[0], T[0], 7);
    STEP(F, d, a, b, c, x[1], T[1], 12);
    STEP(F, c, d, a, b, x[2], T[2], 17);
    STEP(F, b, c, d, a, x[3], T[3], 22);
    STEP(F, a, b, c, d, x[4], T[4], 7);
    STEP(F, d, a, b, c, x[5], T[5], 12);
    STEP(F, c, d, a, b, x[6], T[6], 17);
    STEP(F, b, c, d, a, x[7], T[7], 22);
    STEP(F, a, b, c, d, x[8], T[8], 7);
    STEP(F, d, a, b, c, x[9], T[9], 12);
    STEP(F, c, d, a, b, x[10], T[10], 17);
    STEP(F, b, c, d, a, x[11], T[11], 22);
    STEP(F, a, b, c, d, x[12], T[12], 7);
    STEP(F, d, a, b, c, x[13], T[13], 12);
    STEP(F, c, d, a, b, x[14], T[14], 17);
    STEP(F, b, c, d, a, x[15], T[15], 22);
    STEP(G, a, b, c, d, x[1], T[16], 5);
    STEP(G, d, a, b, c, x[6], T[17], 9);
    STEP(G, c, d, a, b, x[11], T[18], 14);
    STEP(G, b, c, d, a, x[0], T[19], 20);
    STEP(G, a, b, c, d, x[5], T[20], 5);
    STEP(G, d, a, b, c, x[10], T[21], 9);
    STEP(G, c, d, a, b, x[15], T[22], 14);
    STEP(G, b, c, d, a, x[4], T[23], 20);
    STEP(G, a, b, c, d, x[9], T[24], 5);
    STEP(G, d, a, b, c, x[14], T[25], 9);
    STEP(G, c, d, a, b, x[3], T[26], 14);
    STEP(G, b, c, d, a, x[8], T[27], 20);
    STEP(G, a, b, c, d, x[13], T[28], 5);
    STEP(G, d, a, b, c, x[2], T[29], 9);
    STEP(G, c, d, a, b, x[7], T[30], 14);
    STEP(G, b, c, d, a, x[12], T[31], 20);
    STEP(H, a, b, c, d, x[5], T[32], 4);
    STEP(H, d, a, b, c, x[8], T[33], 11);
    STEP(H, c, d, a, b, x[11], T[34], 16);
    STEP(H, b, c, d, a, x[14], T[35], 23);
    STEP(H, a, b, c, d, x[1], T[36], 4);
    STEP(H, d, a, b, c, x[4], T[37], 11);
    STEP(H, c, d, a, b, x[7], T[38], 16);
    STEP(H, b, c, d, a, x[10], T[39], 23);
    STEP(H, a, b, c, d, x[13], T[40], 4);
    STEP(H, d, a, b, c, x[0], T[41], 11);
    STEP(H, c, d, a, b, x[3], T[42], 16);
    STEP(H, b, c, d, a, x[6], T[43], 23);
    STEP(H, a, b, c, d, x[9], T[44], 4);
    STEP(H, d, a, b, c, x[12], T[45], 11);
    STEP(H, c, d, a, b, x[15], T[46], 16);
    STEP(H, b, c, d, a, x[2], T[47], 23);
    STEP(I, a, b, c, d, x[0], T[48], 6);
    STEP(I, d, a, b, c, x[7], T[49], 10);
    STEP(I, c, d, a, b, x[14], T[50], 15);
    STEP(I, b, c, d, a, x[5], T[51], 21);
    STEP(I, a, b, c, d, x[12], T[52], 6);
    STEP(I, d, a, b, c, x[3], T[53], 10);
    STEP(I, c, d, a, b, x[10], T[54], 15);
    STEP(I, b, c, d, a, x[1], T[55], 21);
    STEP(I, a, b, c, d, x[8], T[56], 6);
    STEP(I, d, a, b, c, x[15], T[57], 10);
    STEP(I, c, d, a, b, x[6], T[58], 15);
    STEP(I, b, c, d, a, x[13], T[59], 21);
    STEP(I, a, b, c, d, x[4], T[60], 6);
    STEP(I, d, a, b, c, x[11], T[61], 10);
    STEP(I, c, d, a, b, x[2], T[62], 15);
    STEP(I, b, c, d, a, x[9], T[63], 21);
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
}

static void md5_init(md5_ctx *ctx)
{
    ctx->state[0] = 0x67452301;
    ctx->state[1] = 0xefcdab89;
    ctx->state[2] = 0x98badcfe;
    ctx->state[3] = 0x10325476;
    ctx->length = 0;
}

static void md5_update(md5_ctx *ctx, const unsigned char *data, size_t size)
{
    size_t used = (size_t)(ctx->length & 63);
    ctx->length += size;
    if (used) {
        size_t room = 64 - used;
        if (size < room) {
            memcpy(ctx->block + used, data, size);
            return;
        }
        memcpy(ctx->block + used, data, room);
        md5_compress(ctx->state, ctx->block);
        data += room;
        size -= room;
    }
    for (; size >= 64; data += 64, size -= 64)
        md5_compress(ctx->state, data);
    memcpy(ctx->block, data, size);
}

static void md5_final(md5_ctx *ctx, unsigned char out[16])
{
    /* RFC 1321 §3.1-3.2: a 1 bit, zeros to 56 mod 64, the bit length (little-endian). */
    uint64_t bits = ctx->length * 8;
    unsigned char tail[72] = {0x80};
    size_t used = (size_t)(ctx->length & 63);
    size_t pad = (used < 56 ? 56 : 120) - used;
    for (int i = 0; i < 8; i++)
        tail[pad + i] = (unsigned char)(bits >> (8 * i));
    md5_update(ctx, tail, pad + 8);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            out[4 * i + j] = (unsigned char)(ctx->state[i] >> (8 * j));
}

/* --- HMAC-MD5 (RFC 2104) ------------------------------------------------------- */

typedef struct {
    md5_ctx inner, outer;
} hmac_ctx;

/* The MD5 states after each padded key block, per key: a NAS's secret keys every
 * packet it sends and every reply, and the two pad blocks are most of the cost of
 * a MAC over a short packet. Direct-mapped; keys longer than 128 octets are not kept. */
typedef struct {
    int used;
    size_t size;
    unsigned char key[128];
    uint32_t inner[4], outer[4];
} primed_key;

static primed_key primed[256];

static void hmac_init(hmac_ctx *h, const unsigned char *key, size_t size)
{
    unsigned int slot = (unsigned int)size * 31;
    for (size_t i = 0; i < size; i++)
        slot = slot * 131 + key[i];
    primed_key *entry = &primed[slot & 255];
    if (entry->used && entry->size == size && memcmp(entry->key, key, size) == 0) {
        memcpy(h->inner.state, entry->inner, sizeof entry->inner);
        memcpy(h->outer.state, entry->outer, sizeof entry->outer);
        h->inner.length = h->outer.length = 64;
        return;
    }
    unsigned char block[64] = {0}, pad[64];
    if (size > 64) {
        md5_ctx k;
        md5_init(&k);
        md5_update(&k, key, size);
        md5_final(&k, block);
    } else {
        memcpy(block, key, size);
    }
    md5_init(&h->inner);
    md5_init(&h->outer);
    for (int i = 0; i < 64; i++)
        pad[i] = block[i] ^ 0x36;
    md5_update(&h->inner, pad, 64);
    for (int i = 0; i < 64; i++)
        pad[i] = block[i] ^ 0x5c;
    md5_update(&h->outer, pad, 64);
    if (size <= sizeof entry->key) {
        entry->used = 1;
        entry->size = size;
        memcpy(entry->key, key, size);
        memcpy(entry->inner, h->inner.state, sizeof entry->inner);
        memcpy(entry->outer, h->outer.state, sizeof entry->outer);
    }
}

static void hmac_final(hmac_ctx *h, unsigned char out[16])
{
    unsigned char inner[16];
    md5_final(&h->inner, inner);
    md5_update(&h->outer, inner, 16);
    md5_final(&h->outer, out);
}

static const unsigned char ZERO16[16];

static int equal16(const unsigned char *a, const unsigned char *b)
{
    unsigned char diff = 0;  /* constant time, like hmac.compare_digest */
    for (int i = 0; i < 16; i++)
        diff |= a[i] ^ b[i];
    return diff == 0;
}

/* --- Python functions ------------------------------------------------------------ */

static PyObject *malformed;  /* vpop.errors.MalformedPacket */

static int need16(Py_buffer *b, const char *what)
{
    if (b->len != 16) {
        PyErr_Format(PyExc_ValueError, "%s must be 16 octets, got %zd", what, b->len);
        return 0;
    }
    return 1;
}

static PyObject *w_md5(PyObject *self, PyObject *arg)
{
    Py_buffer data;
    unsigned char out[16];
    md5_ctx ctx;
    if (PyObject_GetBuffer(arg, &data, PyBUF_SIMPLE) < 0)
        return NULL;
    md5_init(&ctx);
    md5_update(&ctx, data.buf, (size_t)data.len);
    md5_final(&ctx, out);
    PyBuffer_Release(&data);
    return PyBytes_FromStringAndSize((const char *)out, 16);
}

static PyObject *w_hmac_md5(PyObject *self, PyObject *args)
{
    Py_buffer key, message;
    unsigned char out[16];
    hmac_ctx h;
    if (!PyArg_ParseTuple(args, "y*y*:hmac_md5", &key, &message))
        return NULL;
    hmac_init(&h, key.buf, (size_t)key.len);
    md5_update(&h.inner, message.buf, (size_t)message.len);
    hmac_final(&h, out);
    PyBuffer_Release(&key);
    PyBuffer_Release(&message);
    return PyBytes_FromStringAndSize((const char *)out, 16);
}

/* message_authenticator_ok(raw, offset, authenticator, secret): RFC 3579 §3.2, the
 * HMAC-MD5 over the packet with `authenticator` in the header and the attribute's
 * value zeroed, compared with the value. */
static PyObject *w_message_authenticator_ok(PyObject *self, PyObject *args)
{
    Py_buffer raw, auth, secret;
    Py_ssize_t off;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "y*ny*y*:message_authenticator_ok", &raw, &off, &auth, &secret))
        return NULL;
    if (!need16(&auth, "authenticator"))
        goto done;
    const unsigned char *p = raw.buf;
    if (off < 20 || off + 16 > raw.len) {
        result = Py_NewRef(Py_False);
        goto done;
    }
    hmac_ctx h;
    unsigned char mac[16];
    hmac_init(&h, secret.buf, (size_t)secret.len);
    md5_update(&h.inner, p, 4);
    md5_update(&h.inner, auth.buf, 16);
    md5_update(&h.inner, p + 20, (size_t)(off - 20));
    md5_update(&h.inner, ZERO16, 16);
    md5_update(&h.inner, p + off + 16, (size_t)(raw.len - off - 16));
    hmac_final(&h, mac);
    result = Py_NewRef(equal16(mac, p + off) ? Py_True : Py_False);
done:
    PyBuffer_Release(&raw);
    PyBuffer_Release(&auth);
    PyBuffer_Release(&secret);
    return result;
}

/* hashed_authenticator_ok(raw, substitute, secret): whether raw[4:20] equals
 * MD5(raw[:4] + substitute + raw[20:] + secret). A hashed request (RFC 2866 §3,
 * RFC 5176 §2.3) substitutes sixteen zeros, a response (RFC 2865 §3) the
 * request's authenticator. */
static PyObject *w_hashed_authenticator_ok(PyObject *self, PyObject *args)
{
    Py_buffer raw, sub, secret;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "y*y*y*:hashed_authenticator_ok", &raw, &sub, &secret))
        return NULL;
    if (!need16(&sub, "substitute"))
        goto done;
    if (raw.len < 20) {
        result = Py_NewRef(Py_False);
        goto done;
    }
    const unsigned char *p = raw.buf;
    unsigned char digest[16];
    md5_ctx ctx;
    md5_init(&ctx);
    md5_update(&ctx, p, 4);
    md5_update(&ctx, sub.buf, 16);
    md5_update(&ctx, p + 20, (size_t)(raw.len - 20));
    md5_update(&ctx, secret.buf, (size_t)secret.len);
    md5_final(&ctx, digest);
    result = Py_NewRef(equal16(digest, p + 4) ? Py_True : Py_False);
done:
    PyBuffer_Release(&raw);
    PyBuffer_Release(&sub);
    PyBuffer_Release(&secret);
    return result;
}

/* encode_reply(code, ident, request_authenticator, attrs, secret, ma_vector):
 * a response, Message-Authenticator first and keyed with `ma_vector` unless that
 * is None (then none is added), the Response Authenticator per RFC 2865 §3. */
static PyObject *w_encode_reply(PyObject *self, PyObject *args)
{
    int code, ident;
    Py_buffer req, attrs, secret;
    PyObject *vector_obj, *result = NULL;
    if (!PyArg_ParseTuple(args, "iiy*y*y*O:encode_reply", &code, &ident, &req, &attrs,
                          &secret, &vector_obj))
        return NULL;
    Py_buffer vector = {0};
    int signed_ = vector_obj != Py_None;
    if (signed_ && PyObject_GetBuffer(vector_obj, &vector, PyBUF_SIMPLE) < 0)
        goto done;
    if (!need16(&req, "request authenticator") || (signed_ && !need16(&vector, "vector")))
        goto done;
    Py_ssize_t length = 20 + (signed_ ? 18 : 0) + attrs.len;
    if (length > 4096) {
        PyErr_SetString(PyExc_ValueError, "reply exceeds 4096 octets");
        goto done;
    }
    if (code < 0 || code > 255 || ident < 0 || ident > 255) {
        PyErr_SetString(PyExc_ValueError, "code and identifier are octets");
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, length);
    if (result == NULL)
        goto done;
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
    out[0] = (unsigned char)code;
    out[1] = (unsigned char)ident;
    out[2] = (unsigned char)(length >> 8);
    out[3] = (unsigned char)length;
    unsigned char *body = out + 20;
    if (signed_) {
        body[0] = 80;  /* Message-Authenticator */
        body[1] = 18;
        memset(body + 2, 0, 16);
        memcpy(body + 18, attrs.buf, (size_t)attrs.len);
        hmac_ctx h;
        hmac_init(&h, secret.buf, (size_t)secret.len);
        md5_update(&h.inner, out, 4);
        md5_update(&h.inner, vector.buf, 16);
        md5_update(&h.inner, body, (size_t)(length - 20));
        hmac_final(&h, body + 2);
    } else {
        memcpy(body, attrs.buf, (size_t)attrs.len);
    }
    md5_ctx ctx;
    md5_init(&ctx);
    md5_update(&ctx, out, 4);
    md5_update(&ctx, req.buf, 16);
    md5_update(&ctx, body, (size_t)(length - 20));
    md5_update(&ctx, secret.buf, (size_t)secret.len);
    md5_final(&ctx, out + 4);
done:
    PyBuffer_Release(&req);
    PyBuffer_Release(&attrs);
    PyBuffer_Release(&secret);
    if (vector.obj != NULL)
        PyBuffer_Release(&vector);
    return result;
}

/* md5_chain(data, secret, first, decrypt): RFC 2865 §5.2's chain, shared by
 * User-Password, MS-CHAP-MPPE-Keys and the salted scheme: b(1) = MD5(S + first),
 * b(i) = MD5(S + c(i-1)), out(i) = in(i) xor b(i); c is the ciphertext. */
static PyObject *w_md5_chain(PyObject *self, PyObject *args)
{
    Py_buffer data, secret, first;
    int decrypt;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "y*y*y*p:md5_chain", &data, &secret, &first, &decrypt))
        return NULL;
    if (data.len % 16) {
        PyErr_SetString(PyExc_ValueError, "data must be a multiple of 16 octets");
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, data.len);
    if (result == NULL)
        goto done;
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
    const unsigned char *in = data.buf, *previous = first.buf;
    size_t previous_len = (size_t)first.len;
    for (Py_ssize_t at = 0; at < data.len; at += 16) {
        unsigned char key[16];
        md5_ctx ctx;
        md5_init(&ctx);
        md5_update(&ctx, secret.buf, (size_t)secret.len);
        md5_update(&ctx, previous, previous_len);
        md5_final(&ctx, key);
        for (int i = 0; i < 16; i++)
            out[at + i] = in[at + i] ^ key[i];
        previous = decrypt ? in + at : out + at;
        previous_len = 16;
    }
done:
    PyBuffer_Release(&data);
    PyBuffer_Release(&secret);
    PyBuffer_Release(&first);
    return result;
}

/* attributes_without(raw, skip): the attributes of a decoded packet (raw up to its
 * Length) as they came, less those whose type has a non-zero octet in `skip` (256
 * octets, one per type): what a proxy passes on unchanged. */
static PyObject *w_attributes_without(PyObject *self, PyObject *args)
{
    Py_buffer raw, skip;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "y*y*:attributes_without", &raw, &skip))
        return NULL;
    if (skip.len != 256) {
        PyErr_SetString(PyExc_ValueError, "skip must have 256 octets, one per type");
        goto done;
    }
    const unsigned char *p = raw.buf, *drop = skip.buf;
    Py_ssize_t kept = 0;
    for (Py_ssize_t pos = 20; pos + 2 <= raw.len && p[pos + 1] >= 2; pos += p[pos + 1]) {
        if (pos + p[pos + 1] > raw.len)
            break;
        if (!drop[p[pos]])
            kept += p[pos + 1];
    }
    result = PyBytes_FromStringAndSize(NULL, kept);
    if (result == NULL)
        goto done;
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
    for (Py_ssize_t pos = 20; pos + 2 <= raw.len && p[pos + 1] >= 2; pos += p[pos + 1]) {
        if (pos + p[pos + 1] > raw.len)
            break;
        if (!drop[p[pos]]) {
            memcpy(out, p + pos, p[pos + 1]);
            out += p[pos + 1];
        }
    }
done:
    PyBuffer_Release(&raw);
    PyBuffer_Release(&skip);
    return result;
}

static PyObject *raise_malformed(const char *reason)
{
    PyErr_SetString(malformed, reason);
    return NULL;
}

/* Append `value` to attrs[key] (a list per key, in arrival order); steals neither. */
static int add_value(PyObject *attrs, PyObject *key, const unsigned char *p, Py_ssize_t size)
{
    PyObject *value = PyBytes_FromStringAndSize((const char *)p, size);
    if (value == NULL)
        return -1;
    PyObject *values = PyDict_GetItemWithError(attrs, key);
    int rc;
    if (values != NULL) {
        rc = PyList_Append(values, value);
    } else if (PyErr_Occurred()) {
        rc = -1;
    } else {
        values = PyList_New(1);
        if (values == NULL) {
            Py_DECREF(value);
            return -1;
        }
        PyList_SET_ITEM(values, 0, Py_NewRef(value));
        rc = PyDict_SetItem(attrs, key, values);
        Py_DECREF(values);
    }
    Py_DECREF(value);
    return rc;
}

/* RFC 2865 §5.26 sub-attributes under (vendor, type) keys; a value that does not
 * split cleanly is kept whole under 26. */
static int add_vsa(PyObject *attrs, const unsigned char *v, Py_ssize_t size)
{
    Py_ssize_t pos = 4;
    while (pos < size) {
        if (pos + 2 > size || v[pos + 1] < 2 || pos + v[pos + 1] > size) {
            PyObject *key = PyLong_FromLong(26);
            int rc = key ? add_value(attrs, key, v, size) : -1;
            Py_XDECREF(key);
            return rc;
        }
        pos += v[pos + 1];
    }
    unsigned long vendor = (unsigned long)v[0] << 24 | (unsigned long)v[1] << 16 |
                           (unsigned long)v[2] << 8 | v[3];
    for (pos = 4; pos < size; pos += v[pos + 1]) {
        PyObject *key = Py_BuildValue("(ki)", vendor, (int)v[pos]);
        if (key == NULL)
            return -1;
        int rc = add_value(attrs, key, v + pos + 2, v[pos + 1] - 2);
        Py_DECREF(key);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* decode(data) -> (code, ident, authenticator, attrs, raw, ma_offset): the fields
 * of codec.Packet, or MalformedPacket with the same reasons as codec's decode. */
static PyObject *w_decode(PyObject *self, PyObject *arg)
{
    PyObject *data;
    if (PyBytes_Check(arg)) {
        data = Py_NewRef(arg);
    } else {
        data = PyBytes_FromObject(arg);
        if (data == NULL)
            return NULL;
    }
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(data);
    Py_ssize_t size = PyBytes_GET_SIZE(data);
    PyObject *attrs = NULL, *raw = NULL, *result = NULL;
    char reason[64];
    if (size < 20) {
        raise_malformed("shorter than the RADIUS header");
        goto done;
    }
    Py_ssize_t length = (Py_ssize_t)p[2] << 8 | p[3];
    if (length < 20 || length > 4096) {
        raise_malformed("length field out of range");
        goto done;
    }
    if (length > size) {
        raise_malformed("length field exceeds the datagram");
        goto done;
    }
    attrs = PyDict_New();
    if (attrs == NULL)
        goto done;
    Py_ssize_t ma_offset = -1;
    for (Py_ssize_t pos = 20; pos < length;) {
        if (pos + 2 > length) {
            raise_malformed("truncated attribute header");
            goto done;
        }
        int kind = p[pos], alen = p[pos + 1];
        Py_ssize_t end = pos + alen;
        if (alen < 2 || end > length) {
            snprintf(reason, sizeof reason, "attribute %d has a bad length", kind);
            raise_malformed(reason);
            goto done;
        }
        int rc;
        if (kind == 26 && alen > 6) {
            rc = add_vsa(attrs, p + pos + 2, alen - 2);
        } else {
            if (kind == 80) {
                if (alen != 18 || ma_offset >= 0) {
                    raise_malformed("bad Message-Authenticator");
                    goto done;
                }
                ma_offset = pos + 2;
            }
            PyObject *key = PyLong_FromLong(kind);
            rc = key ? add_value(attrs, key, p + pos + 2, alen - 2) : -1;
            Py_XDECREF(key);
        }
        if (rc < 0)
            goto done;
        pos = end;
    }
    raw = length == size ? Py_NewRef(data) : PyBytes_FromStringAndSize((const char *)p, length);
    if (raw == NULL)
        goto done;
    result = Py_BuildValue("(iiy#OOn)", p[0], p[1], p + 4, (Py_ssize_t)16, attrs, raw, ma_offset);
done:
    Py_XDECREF(attrs);
    Py_XDECREF(raw);
    Py_DECREF(data);
    return result;
}

static PyMethodDef methods[] = {
    {"md5", w_md5, METH_O, "MD5 digest of one buffer (RFC 1321)."},
    {"hmac_md5", w_hmac_md5, METH_VARARGS, "HMAC-MD5(key, message) (RFC 2104)."},
    {"message_authenticator_ok", w_message_authenticator_ok, METH_VARARGS,
     "RFC 3579 §3.2 check: (raw, offset, authenticator, secret) -> bool."},
    {"hashed_authenticator_ok", w_hashed_authenticator_ok, METH_VARARGS,
     "raw[4:20] == MD5(raw[:4] + substitute + raw[20:] + secret)."},
    {"encode_reply", w_encode_reply, METH_VARARGS,
     "(code, ident, request_authenticator, attrs, secret, ma_vector or None) -> bytes."},
    {"md5_chain", w_md5_chain, METH_VARARGS,
     "(data, secret, first, decrypt) -> bytes: the RFC 2865 §5.2 MD5 chain."},
    {"attributes_without", w_attributes_without, METH_VARARGS,
     "(raw, skip) -> the packet's attributes as they came, less the types marked in skip."},
    {"decode", w_decode, METH_O,
     "datagram -> (code, ident, authenticator, attrs, raw, ma_offset)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "vpop.radius._wire",
    "Compiled twins of vpop.radius.codec's hot functions.", -1, methods,
};

PyMODINIT_FUNC PyInit__wire(void)
{
    PyObject *errors = PyImport_ImportModule("vpop.errors");
    if (errors == NULL)
        return NULL;
    malformed = PyObject_GetAttrString(errors, "MalformedPacket");
    Py_DECREF(errors);
    if (malformed == NULL)
        return NULL;
    return PyModule_Create(&module);
}
