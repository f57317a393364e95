//! POSIX message queues (`mq_open(3)`): name, permissions, `mq_maxmsg` and `mq_msgsize`,
//! the messages with their priorities in order, every open file description with its access
//! mode and O_NONBLOCK, queues unlinked while still open. The image type is
//! [`cairn_image::PosixMq`].
//!
//! A queue lives in the job's IPC namespace (the sandbox gives every job its own), so names
//! cannot collide with the host's. At a checkpoint the agent opens each queue once more
//! through `/proc/PID/fd/N`, reads its attributes and its notification line, and takes its
//! messages out and sends them back at once (there is no way to read them without taking
//! them) while the job is frozen. At a restore the launched program's stub creates each
//! queue in the new namespace and refills it; each rebuilt process then opens its
//! descriptions again (`mq_open`, or a duplicate of the same description held by an earlier
//! process through `pidfd_getfd`), and queues that had been unlinked are unlinked again at
//! the end. A registered notification (`mq_notify`) is refused: the kernel does not show the
//! sigevent's value or thread.

pub mod capture;
pub mod restore;
