//! Event counters (`eventfd(2)`): captured from fdinfo (counter, EFD_SEMAPHORE, O_NONBLOCK),
//! recreated by the restoring process with the same counter. The image type is
//! [`cairn_image::EventFdImage`].

pub mod capture;
pub mod restore;
