/*
 * @ls/wal's optional binding to the system's liblz4 (the library the `lz4` CLI is built on), and its
 * check of SQLite WAL frames, which needs no library and is there whether liblz4 loads or not.
 *
 * liblz4 is loaded with dlopen when this module is required, so building needs only a C compiler
 * and Node's headers, not liblz4's; a machine without liblz4 gets an exports object whose
 * `loadError` says why, and @ls/wal falls back to lz4-napi.
 *
 * Every call works on caller-provided memory (Uint8Arrays): apart from a batched write's small list
 * of buffer addresses, freed when it settles, nothing is allocated here, so nothing is left for V8's
 * finalizers or for the allocator arenas of libuv's threads. The async variants
 * run on libuv's thread pool and hold references to their arrays until they settle; the caller must
 * leave the arrays untouched until then.
 *
 *   compress(src, dst) -> n            LZ4 block of src into dst; 0 when it does not fit in dst
 *   compressAsync(src, dst) -> Promise<n>
 *   decompress(src, dst, dict?) -> n   decoded bytes; negative when src is not a valid block
 *   decompressAsync(src, dst, dict?) -> Promise<n>
 *   compressBound(n) -> bytes          worst-case compressed size of n bytes
 *   version                            liblz4's version number (e.g. 10904)
 *   walVerifyRun(buf, start, max, frameSize, bigEndian, salt1, salt2, chain, pgnos, commits) -> n
 *                                      checks a run of WAL frames in place (see its definition)
 *   pwriteRunsAsync(fd, bufs, runs) -> Promise<bytes | -errno>
 *                                      positional writes of many ranges of many buffers, in place,
 *                                      on the thread pool
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif
#include <unistd.h>

typedef int (*compress_fn)(const char *src, char *dst, int src_size, int dst_capacity);
typedef int (*decompress_dict_fn)(const char *src, char *dst, int src_size, int dst_capacity,
                                  const char *dict, int dict_size);
typedef int (*bound_fn)(int input_size);
typedef int (*version_fn)(void);

static compress_fn lz4_compress;
static decompress_dict_fn lz4_decompress;
static bound_fn lz4_bound;
static int lz4_version;

enum op { OP_COMPRESS, OP_DECOMPRESS };

typedef struct {
  const char *src;
  char *dst;
  const char *dict;
  int src_len;
  int dst_len;
  int dict_len;
} span_args;

/* What every async call keeps until it settles: its promise, its work, and references to the arrays
 * it reads or writes, which hold them (and their memory) in place. First member of each job. */
typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref refs[3];
  int nrefs;
} pending;

typedef struct {
  pending p;
  enum op op;
  span_args a;
  int result;
} job;

static int run(enum op op, const span_args *a) {
  if (op == OP_COMPRESS) return lz4_compress(a->src, a->dst, a->src_len, a->dst_len);
  return lz4_decompress(a->src, a->dst, a->src_len, a->dst_len, a->dict, a->dict_len);
}

/* Reads a typed array argument of type `want` (named `kind` in the error); false with a pending
 * TypeError otherwise. `len` is in elements. */
static int typed_arg(napi_env env, napi_value v, napi_typedarray_type want, const char *name, const char *kind, void **data,
                     size_t *len) {
  napi_valuetype t;
  bool is_typed = false;
  napi_typedarray_type type;
  if (napi_typeof(env, v, &t) == napi_ok && t == napi_object) napi_is_typedarray(env, v, &is_typed);
  if (is_typed && napi_get_typedarray_info(env, v, &type, len, data, NULL, NULL) == napi_ok && type == want) return 1;
  char msg[128];
  snprintf(msg, sizeof msg, "%s must be a %s", name, kind);
  napi_throw_type_error(env, NULL, msg);
  return 0;
}

/* Reads a Uint8Array argument (a Buffer is one) of at most 2 GiB; false with a pending error otherwise. */
static int bytes_arg(napi_env env, napi_value v, const char *name, char **data, int *len) {
  void *ptr;
  size_t length;
  if (!typed_arg(env, v, napi_uint8_array, name, "Uint8Array", &ptr, &length)) return 0;
  if (length > INT_MAX) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s is larger than liblz4 accepts (2 GiB)", name);
    napi_throw_range_error(env, NULL, msg);
    return 0;
  }
  /* A zero-length array may have no backing store; liblz4 wants a valid pointer. */
  static char empty[1];
  *data = ptr ? (char *)ptr : empty;
  *len = (int)length;
  return 1;
}

/* Holds argv[0..n) alive until the call settles; false with a pending error when it cannot. */
static int hold(napi_env env, pending *p, const napi_value *argv, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (napi_create_reference(env, argv[i], 1, &p->refs[p->nrefs]) != napi_ok) {
      for (int k = 0; k < p->nrefs; k++) napi_delete_reference(env, p->refs[k]);
      p->nrefs = 0;
      napi_throw_error(env, NULL, "could not hold an async call's arguments");
      return 0;
    }
    p->nrefs++;
  }
  return 1;
}

/* Settles a call's promise with `v`, or with an error when it was cancelled, lets go of its arrays
 * and work, and frees the job `j` (whose first member is `p`). */
static void settle(napi_env env, napi_status status, pending *p, napi_value v, void *j) {
  if (status == napi_ok) {
    napi_resolve_deferred(env, p->deferred, v);
  } else {
    napi_value msg, err;
    napi_create_string_utf8(env, "the call was cancelled", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &err);
    napi_reject_deferred(env, p->deferred, err);
  }
  for (int i = 0; i < p->nrefs; i++) napi_delete_reference(env, p->refs[i]);
  napi_delete_async_work(env, p->work);
  free(j);
}

/* Parses (src, dst[, dict]) into a; returns the argument values in argv. */
static int parse(napi_env env, napi_callback_info info, enum op op, napi_value *argv, size_t *argc, span_args *a) {
  *argc = 3;
  if (napi_get_cb_info(env, info, argc, argv, NULL, NULL) != napi_ok) return 0;
  /* argc comes back as the number of arguments passed, which may exceed the 3 slots of argv. */
  size_t used = op == OP_DECOMPRESS ? 3 : 2;
  if (*argc > used) *argc = used;
  if (*argc < 2) {
    napi_throw_type_error(env, NULL, "expected (src, dst)");
    return 0;
  }
  char *src, *dst;
  if (!bytes_arg(env, argv[0], "src", &src, &a->src_len)) return 0;
  if (!bytes_arg(env, argv[1], "dst", &dst, &a->dst_len)) return 0;
  a->src = src;
  a->dst = dst;
  a->dict = NULL;
  a->dict_len = 0;
  if (op == OP_DECOMPRESS && *argc >= 3) {
    napi_valuetype t;
    napi_typeof(env, argv[2], &t);
    if (t != napi_undefined && t != napi_null) {
      char *dict;
      if (!bytes_arg(env, argv[2], "dict", &dict, &a->dict_len)) return 0;
      a->dict = dict;
    }
  }
  if (op == OP_DECOMPRESS && a->dict_len == 0) *argc = 2;
  return 1;
}

static napi_value sync_call(napi_env env, napi_callback_info info, enum op op) {
  napi_value argv[3];
  size_t argc;
  span_args a;
  if (!parse(env, info, op, argv, &argc, &a)) return NULL;
  napi_value out;
  napi_create_int32(env, run(op, &a), &out);
  return out;
}

static void execute(napi_env env, void *data) {
  (void)env;
  job *j = data;
  j->result = run(j->op, &j->a);
}

static void complete(napi_env env, napi_status status, void *data) {
  job *j = data;
  napi_value v;
  napi_create_int32(env, j->result, &v);
  settle(env, status, &j->p, v, j);
}

/*
 * Queues the job `j` (whose first member is `p`, its arguments held): returns its promise. When the
 * work cannot be made or queued, the promise (if made) is rejected and returned, or else an error is
 * thrown and NULL returned; either way the job is undone and freed.
 */
static napi_value queue(napi_env env, pending *p, void *j, const char *name, napi_async_execute_callback execute_cb,
                        napi_async_complete_callback complete_cb) {
  napi_value promise, resource;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource);
  if (napi_create_promise(env, &p->deferred, &promise) != napi_ok) p->deferred = NULL;
  if (p->deferred && napi_create_async_work(env, NULL, resource, execute_cb, complete_cb, j, &p->work) == napi_ok &&
      napi_queue_async_work(env, p->work) == napi_ok) {
    return promise;
  }
  if (p->work) napi_delete_async_work(env, p->work);
  for (int i = 0; i < p->nrefs; i++) napi_delete_reference(env, p->refs[i]);
  napi_value msg, err;
  napi_create_string_utf8(env, "could not queue an async call", NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, NULL, msg, &err);
  int settled = p->deferred != NULL;
  if (settled) napi_reject_deferred(env, p->deferred, err);
  else napi_throw(env, err);
  free(j);
  return settled ? promise : NULL;
}

static napi_value async_call(napi_env env, napi_callback_info info, enum op op) {
  napi_value argv[3];
  size_t argc;
  span_args a;
  if (!parse(env, info, op, argv, &argc, &a)) return NULL;
  job *j = calloc(1, sizeof *j);
  if (!j) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  j->op = op;
  j->a = a;
  if (!hold(env, &j->p, argv, argc)) {
    free(j);
    return NULL;
  }
  return queue(env, &j->p, j, op == OP_COMPRESS ? "lz4.compress" : "lz4.decompress", execute, complete);
}

static napi_value compress_sync(napi_env env, napi_callback_info info) { return sync_call(env, info, OP_COMPRESS); }
static napi_value compress_async(napi_env env, napi_callback_info info) { return async_call(env, info, OP_COMPRESS); }
static napi_value decompress_sync(napi_env env, napi_callback_info info) { return sync_call(env, info, OP_DECOMPRESS); }
static napi_value decompress_async(napi_env env, napi_callback_info info) { return async_call(env, info, OP_DECOMPRESS); }

static napi_value compress_bound(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t n = -1;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_int32(env, argv[0], &n) != napi_ok || n < 0) {
    napi_throw_range_error(env, NULL, "compressBound takes a byte count");
    return NULL;
  }
  napi_value out;
  napi_create_int32(env, lz4_bound(n), &out);
  return out;
}

/* ---- SQLite WAL chain check (needs no library) ------------------------------------------------ */

static uint32_t be32(const unsigned char *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static uint32_t le32(const unsigned char *p) {
  uint32_t v;
  memcpy(&v, p, 4);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap32(v);
#endif
  return v;
}

/* SQLite's WAL checksum of n bytes (a multiple of 8), continuing from (*a, *b). */
static void wal_sum(const unsigned char *p, size_t n, int big_endian, uint32_t *a, uint32_t *b) {
  uint32_t x = *a, y = *b;
  const unsigned char *end = p + n;
  if (big_endian) {
    for (; p < end; p += 8) {
      x += be32(p) + y;
      y += be32(p + 4) + x;
    }
  } else {
    for (; p < end; p += 8) {
      x += le32(p) + y;
      y += le32(p + 4) + x;
    }
  }
  *a = x;
  *b = y;
}

static int u32_array_arg(napi_env env, napi_value v, const char *name, uint32_t **data, size_t *len) {
  return typed_arg(env, v, napi_uint32_array, name, "Uint32Array", (void **)data, len);
}

/*
 * walVerifyRun(buf, start, max, frameSize, bigEndian, salt1, salt2, chain, pgnos, commits) -> n
 * Checks up to max consecutive frames of frameSize bytes in buf from byte start: the salts, a
 * non-zero page number and the cumulative checksum, continuing from chain[0], chain[1]. Stops before
 * the first frame that fails; returns how many passed, with each one's page number and commit size
 * in pgnos[k] and commits[k], and chain advanced past the last. All arrays are the caller's.
 */
static napi_value wal_verify_run(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 10) {
    napi_throw_type_error(env, NULL, "expected (buf, start, max, frameSize, bigEndian, salt1, salt2, chain, pgnos, commits)");
    return NULL;
  }
  char *buf;
  int len;
  if (!bytes_arg(env, argv[0], "buf", &buf, &len)) return NULL;
  int64_t start, max, frame_size;
  uint32_t salt1, salt2;
  bool big_endian;
  if (napi_get_value_int64(env, argv[1], &start) != napi_ok || napi_get_value_int64(env, argv[2], &max) != napi_ok ||
      napi_get_value_int64(env, argv[3], &frame_size) != napi_ok || napi_get_value_bool(env, argv[4], &big_endian) != napi_ok ||
      napi_get_value_uint32(env, argv[5], &salt1) != napi_ok || napi_get_value_uint32(env, argv[6], &salt2) != napi_ok) {
    napi_throw_type_error(env, NULL, "start, max, frameSize, salt1 and salt2 must be numbers and bigEndian a boolean");
    return NULL;
  }
  uint32_t *chain, *pgnos, *commits;
  size_t chain_len, pgnos_len, commits_len;
  if (!u32_array_arg(env, argv[7], "chain", &chain, &chain_len) || !u32_array_arg(env, argv[8], "pgnos", &pgnos, &pgnos_len) ||
      !u32_array_arg(env, argv[9], "commits", &commits, &commits_len)) {
    return NULL;
  }
  if (frame_size < 32 || frame_size % 8 != 0 || start < 0 || max < 0 || start > len || max > (len - start) / frame_size ||
      (size_t)max > pgnos_len || (size_t)max > commits_len || chain_len < 2) {
    napi_throw_range_error(env, NULL, "walVerifyRun: the frames do not fit in buf, or an output array is too short");
    return NULL;
  }
  const unsigned char *p = (const unsigned char *)buf + start;
  uint32_t a = chain[0], b = chain[1];
  int64_t n = 0;
  for (; n < max; n++, p += frame_size) {
    uint32_t pgno = be32(p);
    if (pgno == 0 || be32(p + 8) != salt1 || be32(p + 12) != salt2) break;
    uint32_t x = a, y = b;
    wal_sum(p, 8, big_endian, &x, &y);
    wal_sum(p + 24, (size_t)frame_size - 24, big_endian, &x, &y);
    if (x != be32(p + 16) || y != be32(p + 20)) break;
    a = x;
    b = y;
    pgnos[n] = pgno;
    commits[n] = be32(p + 4);
  }
  chain[0] = a;
  chain[1] = b;
  napi_value out;
  napi_create_int64(env, n, &out);
  return out;
}

/* ---- Positional writes of many runs from many buffers, on the thread pool --------------------- */

typedef struct {
  pending p;
  int fd;
  const double *runs;
  size_t nruns;
  double result; /* bytes written, or -errno */
  char *bufs[];  /* each argument buffer's memory, in argument order */
} write_job;

/* Writes iov[0..n) whole at pos with pwritev, continuing after short writes; 0 or an errno. */
static int pwritev_all(int fd, struct iovec *iov, int n, off_t pos, double *total) {
  while (n > 0) {
    ssize_t w = pwritev(fd, iov, n, pos);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return w < 0 ? errno : ENOSPC;
    *total += (double)w;
    pos += w;
    while (n > 0 && (size_t)w >= iov->iov_len) {
      w -= (ssize_t)iov->iov_len;
      iov++;
      n--;
    }
    if (n > 0) {
      iov->iov_base = (char *)iov->iov_base + w;
      iov->iov_len -= (size_t)w;
    }
  }
  return 0;
}

static void write_execute(napi_env env, void *data) {
  (void)env;
  write_job *j = data;
  enum { MAX_IOV = 1024 };
  struct iovec iov[MAX_IOV];
  double total = 0;
  size_t r = 0;
  while (r < j->nruns) {
    /* Runs that continue one another in the file go out as one pwritev. */
    off_t pos = (off_t)j->runs[4 * r];
    off_t end = pos;
    int n = 0;
    while (r < j->nruns && n < MAX_IOV && (off_t)j->runs[4 * r] == end) {
      const double *q = j->runs + 4 * r;
      iov[n].iov_base = j->bufs[(size_t)q[1]] + (size_t)q[2];
      iov[n].iov_len = (size_t)q[3];
      end += (off_t)q[3];
      n++;
      r++;
    }
    int e = pwritev_all(j->fd, iov, n, pos, &total);
    if (e) {
      j->result = -(double)e;
      return;
    }
  }
  j->result = total;
}

static void write_complete(napi_env env, napi_status status, void *data) {
  write_job *j = data;
  napi_value v;
  napi_create_double(env, j->result, &v);
  settle(env, status, &j->p, v, j);
}

/*
 * pwriteRunsAsync(fd, bufs, runs) -> Promise<bytes | -errno>
 * bufs is an array of Uint8Arrays; runs is a Float64Array of (file position, index in bufs, offset
 * in that buffer, length) quadruples. Each run is written whole (continuing after short writes) on
 * libuv's thread pool, in order, runs that follow one another in the file as one pwritev, stopping
 * at the first failure, whose errno is returned negated. The buffers' memory is written from where
 * it is: bufs, its buffers and runs must stay untouched until the promise settles.
 */
static napi_value pwrite_runs_async(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 3) {
    napi_throw_type_error(env, NULL, "expected (fd, bufs, runs)");
    return NULL;
  }
  int32_t fd;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "fd must be a file descriptor");
    return NULL;
  }
  bool is_array = false;
  uint32_t nbufs = 0;
  if (napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array || napi_get_array_length(env, argv[1], &nbufs) != napi_ok ||
      nbufs == 0) {
    napi_throw_type_error(env, NULL, "bufs must be a non-empty array of Uint8Arrays");
    return NULL;
  }
  size_t count = 0;
  void *runs = NULL;
  if (!typed_arg(env, argv[2], napi_float64_array, "runs", "Float64Array of (position, buffer, offset, length) quadruples", &runs,
                 &count)) {
    return NULL;
  }
  if (count % 4 != 0) {
    napi_throw_type_error(env, NULL, "runs must be a Float64Array of (position, buffer, offset, length) quadruples");
    return NULL;
  }
  /* The job carries the buffers' addresses; their lengths are needed only for the checks below. */
  size_t *lens = calloc(nbufs, sizeof *lens);
  write_job *j = lens ? calloc(1, sizeof *j + nbufs * sizeof(char *)) : NULL;
  if (!j) {
    free(lens);
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  for (uint32_t i = 0; i < nbufs; i++) {
    napi_value b;
    void *data = NULL;
    if (napi_get_element(env, argv[1], i, &b) != napi_ok ||
        !typed_arg(env, b, napi_uint8_array, "each of bufs", "Uint8Array", &data, &lens[i])) {
      free(lens);
      free(j);
      return NULL;
    }
    /* A zero-length array may have no backing store; no run can point into it anyway. */
    j->bufs[i] = data;
  }
  const double *r = runs;
  for (size_t i = 0; i < count; i += 4) {
    double pos = r[i], b = r[i + 1], off = r[i + 2], n = r[i + 3];
    /* Ranges first (NaN fails every comparison), so the whole-number checks never see a huge value. */
    int ok = pos >= 0 && pos <= 9007199254740991.0 && b >= 0 && b < (double)nbufs && b == floor(b);
    if (ok) {
      double len = (double)lens[(size_t)b];
      ok = off >= 0 && off <= len && n > 0 && n <= len - off && pos == floor(pos) && off == floor(off) && n == floor(n) &&
           !(sizeof(off_t) < 8 && pos + n > 2147483647.0);
    }
    if (!ok) {
      free(lens);
      free(j);
      napi_throw_range_error(env, NULL, "pwriteRunsAsync: a run is not a whole range of one of bufs at a whole file position");
      return NULL;
    }
  }
  free(lens);
  j->fd = fd;
  j->runs = r;
  j->nruns = count / 4;
  if (!hold(env, &j->p, argv + 1, 2)) {
    free(j);
    return NULL;
  }
  return queue(env, &j->p, j, "wal.pwriteRuns", write_execute, write_complete);
}

/* ---- Memory alignment, for direct I/O --------------------------------------------------------- */

/*
 * Reads a call's arguments, at least `want` of them (usage names them for the error), into argv,
 * and the first as a Uint8Array's memory into data and len. Returns 0, with an exception pending,
 * otherwise.
 */
static int buffer_call(napi_env env, napi_callback_info info, size_t want, napi_value *argv, const char *usage, void **data,
                       size_t *len) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return 0;
  if (argc < want) {
    napi_throw_type_error(env, NULL, usage);
    return 0;
  }
  return typed_arg(env, argv[0], napi_uint8_array, "buf", "Uint8Array", data, len);
}

/*
 * alignGap(buf, align) -> bytes from the start of buf's memory to the first address that is a
 * multiple of align (a power of two up to 2 MiB): 0 when buf starts aligned. JavaScript cannot see
 * addresses; direct I/O (O_DIRECT) needs memory aligned to the device's block size.
 */
static napi_value align_gap(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  void *data = NULL;
  size_t len = 0;
  if (!buffer_call(env, info, 2, argv, "expected (buf, align)", &data, &len)) return NULL;
  int32_t align = 0;
  if (napi_get_value_int32(env, argv[1], &align) != napi_ok || align < 1 || align > (1 << 21) || (align & (align - 1)) != 0) {
    napi_throw_range_error(env, NULL, "align must be a power of two up to 2 MiB");
    return NULL;
  }
  uintptr_t a = (uintptr_t)data;
  napi_value v;
  napi_create_uint32(env, (uint32_t)((align - (a & (uintptr_t)(align - 1))) & (uintptr_t)(align - 1)), &v);
  return v;
}

/*
 * adviseHugePages(buf) -> bytes of buf's memory the kernel was asked to back with transparent huge
 * pages (the whole 2 MiB-aligned stretches inside it; 0 where there are none, or where the kernel
 * has no such advice). Touching fresh memory faults in one 4 KiB page at a time, ~2 µs each on some
 * virtual machines; a huge page is one fault for 2 MiB. Advice only: nothing changes if refused.
 */
static napi_value advise_huge_pages(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  void *data = NULL;
  size_t len = 0;
  if (!buffer_call(env, info, 1, argv, "expected (buf)", &data, &len)) return NULL;
  double advised = 0;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  const uintptr_t huge = (uintptr_t)1 << 21;
  uintptr_t start = ((uintptr_t)data + huge - 1) & ~(huge - 1);
  uintptr_t end = ((uintptr_t)data + len) & ~(huge - 1);
  if (end > start && madvise((void *)start, end - start, MADV_HUGEPAGE) == 0) advised = (double)(end - start);
#endif
  napi_value v;
  napi_create_double(env, advised, &v);
  return v;
}

static void set_fn(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value f;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &f);
  napi_set_named_property(env, exports, name, f);
}

/* Debian, Ubuntu, Fedora and Alpine name the runtime library liblz4.so.1; macOS's Homebrew installs
 * liblz4.1.dylib outside dlopen's default search path, so its two prefixes are listed too. */
static const char *const LIBRARIES[] = {
    "liblz4.so.1", "liblz4.so", "liblz4.1.dylib", "/opt/homebrew/lib/liblz4.1.dylib", "/usr/local/lib/liblz4.1.dylib", NULL};

NAPI_MODULE_INIT() {
  set_fn(env, exports, "walVerifyRun", wal_verify_run);
  set_fn(env, exports, "pwriteRunsAsync", pwrite_runs_async);
  set_fn(env, exports, "alignGap", align_gap);
  set_fn(env, exports, "adviseHugePages", advise_huge_pages);
  if (!lz4_compress) {
    const char *failure = "liblz4 not found";
    for (int i = 0; LIBRARIES[i]; i++) {
      void *h = dlopen(LIBRARIES[i], RTLD_NOW | RTLD_LOCAL);
      if (!h) continue;
      compress_fn c = (compress_fn)dlsym(h, "LZ4_compress_default");
      decompress_dict_fn d = (decompress_dict_fn)dlsym(h, "LZ4_decompress_safe_usingDict");
      bound_fn b = (bound_fn)dlsym(h, "LZ4_compressBound");
      version_fn v = (version_fn)dlsym(h, "LZ4_versionNumber");
      if (c && d && b && v && v() >= 10900) {
        lz4_version = v();
        lz4_bound = b;
        lz4_decompress = d;
        lz4_compress = c;
        break;
      }
      failure = "liblz4 is older than 1.9 or lacks a function lstream uses";
      dlclose(h);
    }
    if (!lz4_compress) {
      napi_value msg;
      napi_create_string_utf8(env, failure, NAPI_AUTO_LENGTH, &msg);
      napi_set_named_property(env, exports, "loadError", msg);
      return exports;
    }
  }
  napi_value version;
  napi_create_int32(env, lz4_version, &version);
  napi_set_named_property(env, exports, "version", version);
  set_fn(env, exports, "compress", compress_sync);
  set_fn(env, exports, "compressAsync", compress_async);
  set_fn(env, exports, "decompress", decompress_sync);
  set_fn(env, exports, "decompressAsync", decompress_async);
  set_fn(env, exports, "compressBound", compress_bound);
  return exports;
}
