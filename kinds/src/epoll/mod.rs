//! Event polling instances (`epoll(7)`) and their interest lists.
//!
//! The kernel keys an entry by (target open file, descriptor number it was registered
//! under), and the program later names it by that number (`EPOLL_CTL_MOD`/`DEL`). At a
//! checkpoint, every entry of fdinfo (`tfd: events: data:`) is checked with
//! `kcmp(KCMP_EPOLL_TFD)`: its target must still be descriptor `tfd` of the process holding
//! the instance, or another descriptor of it (the number was closed or reused since); if that
//! process does not hold it, the other processes holding the instance are searched (a child
//! that added its own descriptors to an instance inherited across fork), and the entry is
//! added in the one holding the target. An entry whose target none of them holds is refused.
//!
//! At restore, the restoring process creates the instance; the entries are added inside the
//! rebuilt process holding it, or in their own holder (`epoll_ctl(EPOLL_CTL_ADD)` injected
//! once its descriptors are installed), under their own numbers: a target held under another number is put at `tfd`
//! for the time of the call (what was there is put back). Adding an entry polls its target:
//! a ready target is reported again, whether level- or edge-triggered, so events pending
//! at the checkpoint are pending again; an edge-triggered target that was ready and already
//! reported before the checkpoint is reported once more (an extra wake-up, which
//! edge-triggered programs must already tolerate). A fired EPOLLONESHOT entry is disarmed
//! again by firing it once inside the first process holding the instance (before its other
//! entries are added, so no other event is consumed); if its target is ready for nothing
//! then, or another process adds it, it stays armed for EPOLLERR and EPOLLHUP only, which
//! every added entry is. The image type is [`cairn_image::EpollImage`].

pub mod capture;
pub mod restore;
