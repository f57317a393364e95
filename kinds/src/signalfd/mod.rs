//! Signal descriptors (`signalfd(2)`): captured from fdinfo (the accepted signals and
//! O_NONBLOCK), recreated by the restoring process. A signalfd reads the signals of the
//! process that reads it, so the signals pending at the checkpoint (restored with each
//! process) are read from it again. The image type is [`cairn_image::SignalFdImage`].

pub mod capture;
pub mod restore;
