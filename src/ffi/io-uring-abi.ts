/**
 * io_uring kernel ABI (x86_64), spelled as in linux/io_uring.h so that every name greps
 * against /usr/include/liburing/io_uring.h. Offsets are in bytes unless a name says words.
 */

// io_uring_setup(2) flags
export const IORING_SETUP_CQSIZE = 1 << 3;
export const IORING_SETUP_SUBMIT_ALL = 1 << 7;
export const IORING_SETUP_COOP_TASKRUN = 1 << 8;
export const IORING_SETUP_TASKRUN_FLAG = 1 << 9;
export const IORING_SETUP_SINGLE_ISSUER = 1 << 12;
export const IORING_SETUP_DEFER_TASKRUN = 1 << 13;

// io_uring_params.features
export const IORING_FEAT_SINGLE_MMAP = 1 << 0;
export const IORING_FEAT_NODROP = 1 << 1;
export const IORING_FEAT_EXT_ARG = 1 << 8;

// struct io_uring_params (120 bytes)
export const PARAMS_SIZE = 120;
export const PARAMS_SQ_ENTRIES = 0;
export const PARAMS_CQ_ENTRIES = 4;
export const PARAMS_FLAGS = 8;
export const PARAMS_FEATURES = 20;
export const PARAMS_SQ_OFF = 40;
export const PARAMS_CQ_OFF = 80;
// struct io_sqring_offsets, relative to PARAMS_SQ_OFF
export const SQ_OFF_HEAD = 0;
export const SQ_OFF_TAIL = 4;
export const SQ_OFF_RING_MASK = 8;
export const SQ_OFF_RING_ENTRIES = 12;
export const SQ_OFF_FLAGS = 16;
export const SQ_OFF_DROPPED = 20;
export const SQ_OFF_ARRAY = 24;
// struct io_cqring_offsets, relative to PARAMS_CQ_OFF
export const CQ_OFF_HEAD = 0;
export const CQ_OFF_TAIL = 4;
export const CQ_OFF_RING_MASK = 8;
export const CQ_OFF_RING_ENTRIES = 12;
export const CQ_OFF_OVERFLOW = 16;
export const CQ_OFF_CQES = 20;
export const CQ_OFF_FLAGS = 24;

// mmap offsets
export const IORING_OFF_SQ_RING = 0;
export const IORING_OFF_CQ_RING = 0x8000000;
export const IORING_OFF_SQES = 0x10000000;

// SQ ring flags word
export const IORING_SQ_NEED_WAKEUP = 1 << 0;
export const IORING_SQ_CQ_OVERFLOW = 1 << 1;
export const IORING_SQ_TASKRUN = 1 << 2;

// io_uring_enter(2) flags
export const IORING_ENTER_GETEVENTS = 1 << 0;
export const IORING_ENTER_EXT_ARG = 1 << 3;

// struct io_uring_sqe (64 bytes)
export const SQE_SIZE = 64;
export const SQE_OPCODE = 0;
export const SQE_FLAGS = 1;
export const SQE_IOPRIO = 2;
export const SQE_FD = 4;
export const SQE_OFF = 8;
export const SQE_ADDR = 16;
export const SQE_LEN = 24;
export const SQE_OP_FLAGS = 28;
export const SQE_USER_DATA = 32;
export const SQE_BUF_INDEX = 40;
export const SQE_FILE_INDEX = 44;
export const SQE_ADDR3 = 48;

// struct io_uring_cqe (16 bytes): user_data u64, res s32, flags u32
export const CQE_SIZE = 16;
export const IORING_CQE_F_BUFFER = 1 << 0;
export const IORING_CQE_F_MORE = 1 << 1;
export const IORING_CQE_F_SOCK_NONEMPTY = 1 << 2;
export const IORING_CQE_F_NOTIF = 1 << 3;
export const IORING_CQE_BUFFER_SHIFT = 16;

// sqe->flags
export const IOSQE_FIXED_FILE = 1 << 0;
export const IOSQE_IO_LINK = 1 << 2;
export const IOSQE_IO_HARDLINK = 1 << 3;
export const IOSQE_ASYNC = 1 << 4;
export const IOSQE_BUFFER_SELECT = 1 << 5;
export const IOSQE_CQE_SKIP_SUCCESS = 1 << 6;

// opcodes (enum io_uring_op)
export const IORING_OP_NOP = 0;
export const IORING_OP_SENDMSG = 9;
export const IORING_OP_RECVMSG = 10;
export const IORING_OP_TIMEOUT = 11;
export const IORING_OP_TIMEOUT_REMOVE = 12;
export const IORING_OP_ACCEPT = 13;
export const IORING_OP_ASYNC_CANCEL = 14;
export const IORING_OP_LINK_TIMEOUT = 15;
export const IORING_OP_CONNECT = 16;
export const IORING_OP_CLOSE = 19;
export const IORING_OP_SEND = 26;
export const IORING_OP_RECV = 27;
export const IORING_OP_SHUTDOWN = 34;
export const IORING_OP_SEND_ZC = 47;
export const IORING_OP_SENDMSG_ZC = 48;

// sqe->ioprio for send/recv/accept
export const IORING_RECVSEND_POLL_FIRST = 1 << 0;
export const IORING_RECV_MULTISHOT = 1 << 1;
export const IORING_ACCEPT_MULTISHOT = 1 << 0;

// sqe->cancel_flags
export const IORING_ASYNC_CANCEL_ALL = 1 << 0;
export const IORING_ASYNC_CANCEL_FD = 1 << 1;
export const IORING_ASYNC_CANCEL_ANY = 1 << 2;

// sqe->timeout_flags
export const IORING_TIMEOUT_ABS = 1 << 0;
export const IORING_TIMEOUT_ETIME_SUCCESS = 1 << 5;

// io_uring_register(2) opcodes
export const IORING_REGISTER_EVENTFD = 4;
export const IORING_UNREGISTER_EVENTFD = 5;
export const IORING_REGISTER_PROBE = 8;
export const IORING_REGISTER_PBUF_RING = 22;
export const IORING_UNREGISTER_PBUF_RING = 23;

// struct io_uring_buf_reg (40 bytes) and struct io_uring_buf (16 bytes)
export const BUF_REG_SIZE = 40;
export const BUF_REG_RING_ADDR = 0;
export const BUF_REG_RING_ENTRIES = 8;
export const BUF_REG_BGID = 12;
export const BUF_ENTRY_SIZE = 16;
export const BUF_ENTRY_ADDR = 0;
export const BUF_ENTRY_LEN = 8;
export const BUF_ENTRY_BID = 12;
/** The ring tail shares bytes 14..15 of entry 0 (resv of the first io_uring_buf). */
export const BUF_RING_TAIL = 14;

// send/recv msg flags (sys/socket.h)
export const MSG_WAITALL = 0x100;
export const MSG_NOSIGNAL = 0x4000;

// struct msghdr (56 bytes) and struct iovec (16 bytes)
export const MSGHDR_SIZE = 56;
export const MSGHDR_IOV = 16;
export const MSGHDR_IOVLEN = 24;
export const IOVEC_SIZE = 16;
