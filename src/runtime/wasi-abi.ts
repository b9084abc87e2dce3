// The WASI preview1 (`wasi_snapshot_preview1`) ABI as wasmlet uses it: errno values, flags, struct
// layouts and the signature of every function. Numbers are from the witx definitions (the same as
// wasi-libc's <wasi/api.h>).

export const WASI_MODULE = "wasi_snapshot_preview1";

export const Errno = {
  SUCCESS: 0,
  E2BIG: 1,
  EACCES: 2,
  EADDRINUSE: 3,
  EADDRNOTAVAIL: 4,
  EAFNOSUPPORT: 5,
  EAGAIN: 6,
  EALREADY: 7,
  EBADF: 8,
  EBUSY: 10,
  ECONNABORTED: 13,
  ECONNREFUSED: 14,
  ECONNRESET: 15,
  EDQUOT: 19,
  EEXIST: 20,
  EFAULT: 21,
  EFBIG: 22,
  EHOSTUNREACH: 23,
  EILSEQ: 25,
  EINPROGRESS: 26,
  EINTR: 27,
  EINVAL: 28,
  EIO: 29,
  EISCONN: 30,
  EISDIR: 31,
  ELOOP: 32,
  EMFILE: 33,
  EMLINK: 34,
  ENAMETOOLONG: 37,
  ENETDOWN: 38,
  ENETUNREACH: 40,
  ENFILE: 41,
  ENOBUFS: 42,
  ENODEV: 43,
  ENOENT: 44,
  ENOMEM: 48,
  ENOPROTOOPT: 50,
  ENOSPC: 51,
  ENOSYS: 52,
  ENOTCONN: 53,
  ENOTDIR: 54,
  ENOTEMPTY: 55,
  ENOTSOCK: 57,
  ENOTSUP: 58,
  ENXIO: 60,
  EOVERFLOW: 61,
  EPERM: 63,
  EPIPE: 64,
  ERANGE: 68,
  EROFS: 69,
  ESPIPE: 70,
  ETIMEDOUT: 73,
  ETXTBSY: 74,
  EXDEV: 75,
  ENOTCAPABLE: 76,
} as const;

/** Host (libuv/Node) error codes to WASI errno. */
export const HOST_ERRNO: Readonly<Record<string, number>> = {
  E2BIG: Errno.E2BIG,
  EACCES: Errno.EACCES,
  EADDRINUSE: Errno.EADDRINUSE,
  EADDRNOTAVAIL: Errno.EADDRNOTAVAIL,
  EAFNOSUPPORT: Errno.EAFNOSUPPORT,
  EAGAIN: Errno.EAGAIN,
  EALREADY: Errno.EALREADY,
  ECONNABORTED: Errno.ECONNABORTED,
  ECONNREFUSED: Errno.ECONNREFUSED,
  ECONNRESET: Errno.ECONNRESET,
  EHOSTUNREACH: Errno.EHOSTUNREACH,
  EINPROGRESS: Errno.EINPROGRESS,
  EISCONN: Errno.EISCONN,
  ENETDOWN: Errno.ENETDOWN,
  ENETUNREACH: Errno.ENETUNREACH,
  ENOTCONN: Errno.ENOTCONN,
  ENOTSOCK: Errno.ENOTSOCK,
  ETIMEDOUT: Errno.ETIMEDOUT,
  EBADF: Errno.EBADF,
  EBUSY: Errno.EBUSY,
  EDQUOT: Errno.EDQUOT,
  EEXIST: Errno.EEXIST,
  EFBIG: Errno.EFBIG,
  EINTR: Errno.EINTR,
  EINVAL: Errno.EINVAL,
  EIO: Errno.EIO,
  EISDIR: Errno.EISDIR,
  ELOOP: Errno.ELOOP,
  EMFILE: Errno.EMFILE,
  EMLINK: Errno.EMLINK,
  ENAMETOOLONG: Errno.ENAMETOOLONG,
  ENFILE: Errno.ENFILE,
  ENODEV: Errno.ENODEV,
  ENOENT: Errno.ENOENT,
  ENOMEM: Errno.ENOMEM,
  ENOSPC: Errno.ENOSPC,
  ENOSYS: Errno.ENOSYS,
  ENOTDIR: Errno.ENOTDIR,
  ENOTEMPTY: Errno.ENOTEMPTY,
  ENOTSUP: Errno.ENOTSUP,
  EOPNOTSUPP: Errno.ENOTSUP,
  ENXIO: Errno.ENXIO,
  EOVERFLOW: Errno.EOVERFLOW,
  EPERM: Errno.EPERM,
  EPIPE: Errno.EPIPE,
  EROFS: Errno.EROFS,
  ESPIPE: Errno.ESPIPE,
  ETXTBSY: Errno.ETXTBSY,
  EXDEV: Errno.EXDEV,
};

export const Filetype = {
  UNKNOWN: 0,
  BLOCK_DEVICE: 1,
  CHARACTER_DEVICE: 2,
  DIRECTORY: 3,
  REGULAR_FILE: 4,
  SOCKET_DGRAM: 5,
  SOCKET_STREAM: 6,
  SYMBOLIC_LINK: 7,
} as const;

export const Fdflags = { APPEND: 1, DSYNC: 2, NONBLOCK: 4, RSYNC: 8, SYNC: 16 } as const;
export const Oflags = { CREAT: 1, DIRECTORY: 2, EXCL: 4, TRUNC: 8 } as const;
export const LOOKUP_SYMLINK_FOLLOW = 1;
export const Fstflags = { ATIM: 1, ATIM_NOW: 2, MTIM: 4, MTIM_NOW: 8 } as const;
export const Whence = { SET: 0, CUR: 1, END: 2 } as const;
export const Clock = { REALTIME: 0, MONOTONIC: 1, PROCESS_CPUTIME: 2, THREAD_CPUTIME: 3 } as const;
export const Eventtype = { CLOCK: 0, FD_READ: 1, FD_WRITE: 2 } as const;
export const EVENTRWFLAGS_HANGUP = 1;
export const Riflags = { RECV_PEEK: 1, RECV_WAITALL: 2 } as const;
export const ROFLAGS_RECV_DATA_TRUNCATED = 1;
export const Sdflags = { RD: 1, WR: 2 } as const;
export const SUBCLOCKFLAGS_ABSTIME = 1;

export const Rights = {
  FD_DATASYNC: 1n << 0n,
  FD_READ: 1n << 1n,
  FD_SEEK: 1n << 2n,
  FD_FDSTAT_SET_FLAGS: 1n << 3n,
  FD_SYNC: 1n << 4n,
  FD_TELL: 1n << 5n,
  FD_WRITE: 1n << 6n,
  FD_ADVISE: 1n << 7n,
  FD_ALLOCATE: 1n << 8n,
  PATH_CREATE_DIRECTORY: 1n << 9n,
  PATH_CREATE_FILE: 1n << 10n,
  PATH_LINK_SOURCE: 1n << 11n,
  PATH_LINK_TARGET: 1n << 12n,
  PATH_OPEN: 1n << 13n,
  FD_READDIR: 1n << 14n,
  PATH_READLINK: 1n << 15n,
  PATH_RENAME_SOURCE: 1n << 16n,
  PATH_RENAME_TARGET: 1n << 17n,
  PATH_FILESTAT_GET: 1n << 18n,
  PATH_FILESTAT_SET_SIZE: 1n << 19n,
  PATH_FILESTAT_SET_TIMES: 1n << 20n,
  FD_FILESTAT_GET: 1n << 21n,
  FD_FILESTAT_SET_SIZE: 1n << 22n,
  FD_FILESTAT_SET_TIMES: 1n << 23n,
  PATH_SYMLINK: 1n << 24n,
  PATH_REMOVE_DIRECTORY: 1n << 25n,
  PATH_UNLINK_FILE: 1n << 26n,
  POLL_FD_READWRITE: 1n << 27n,
  SOCK_SHUTDOWN: 1n << 28n,
  SOCK_ACCEPT: 1n << 29n,
} as const;

export const ALL_RIGHTS = (1n << 30n) - 1n;
/** Rights that make path_open open the host file for writing (as uvwasi decides it). */
export const WRITE_RIGHTS =
  Rights.FD_DATASYNC | Rights.FD_WRITE | Rights.FD_ALLOCATE | Rights.FD_FILESTAT_SET_SIZE;
export const READ_RIGHTS = Rights.FD_READ | Rights.FD_READDIR;

/** Struct sizes. */
export const SUBSCRIPTION_SIZE = 48;
export const EVENT_SIZE = 32;
export const FDSTAT_SIZE = 24;
export const FILESTAT_SIZE = 64;
export const DIRENT_HEADER_SIZE = 24;
export const IOVEC_SIZE = 8;

type Param = "i32" | "i64";
interface Signature {
  params: readonly Param[];
  results: readonly Param[];
}
const r = ["i32"] as const;
const fn = (...params: Param[]): Signature => ({ params, results: r });

/** Every preview1 function with its wasm signature. */
export const WASI_FUNCTIONS: Readonly<Record<string, Signature>> = {
  args_get: fn("i32", "i32"),
  args_sizes_get: fn("i32", "i32"),
  environ_get: fn("i32", "i32"),
  environ_sizes_get: fn("i32", "i32"),
  clock_res_get: fn("i32", "i32"),
  clock_time_get: fn("i32", "i64", "i32"),
  fd_advise: fn("i32", "i64", "i64", "i32"),
  fd_allocate: fn("i32", "i64", "i64"),
  fd_close: fn("i32"),
  fd_datasync: fn("i32"),
  fd_fdstat_get: fn("i32", "i32"),
  fd_fdstat_set_flags: fn("i32", "i32"),
  fd_fdstat_set_rights: fn("i32", "i64", "i64"),
  fd_filestat_get: fn("i32", "i32"),
  fd_filestat_set_size: fn("i32", "i64"),
  fd_filestat_set_times: fn("i32", "i64", "i64", "i32"),
  fd_pread: fn("i32", "i32", "i32", "i64", "i32"),
  fd_prestat_get: fn("i32", "i32"),
  fd_prestat_dir_name: fn("i32", "i32", "i32"),
  fd_pwrite: fn("i32", "i32", "i32", "i64", "i32"),
  fd_read: fn("i32", "i32", "i32", "i32"),
  fd_readdir: fn("i32", "i32", "i32", "i64", "i32"),
  fd_renumber: fn("i32", "i32"),
  fd_seek: fn("i32", "i64", "i32", "i32"),
  fd_sync: fn("i32"),
  fd_tell: fn("i32", "i32"),
  fd_write: fn("i32", "i32", "i32", "i32"),
  path_create_directory: fn("i32", "i32", "i32"),
  path_filestat_get: fn("i32", "i32", "i32", "i32", "i32"),
  path_filestat_set_times: fn("i32", "i32", "i32", "i32", "i64", "i64", "i32"),
  path_link: fn("i32", "i32", "i32", "i32", "i32", "i32", "i32"),
  path_open: fn("i32", "i32", "i32", "i32", "i32", "i64", "i64", "i32", "i32"),
  path_readlink: fn("i32", "i32", "i32", "i32", "i32", "i32"),
  path_remove_directory: fn("i32", "i32", "i32"),
  path_rename: fn("i32", "i32", "i32", "i32", "i32", "i32"),
  path_symlink: fn("i32", "i32", "i32", "i32", "i32"),
  path_unlink_file: fn("i32", "i32", "i32"),
  poll_oneoff: fn("i32", "i32", "i32", "i32"),
  proc_exit: { params: ["i32"], results: [] },
  proc_raise: fn("i32"),
  sched_yield: fn(),
  random_get: fn("i32", "i32"),
  sock_accept: fn("i32", "i32", "i32"),
  sock_recv: fn("i32", "i32", "i32", "i32", "i32", "i32"),
  sock_send: fn("i32", "i32", "i32", "i32", "i32"),
  sock_shutdown: fn("i32", "i32"),
};
