//! Pipes created inside the job: captured with their capacity and unread bytes (read without
//! consuming them), recreated and refilled at restore. The image type is
//! [`cairn_image::PipeImage`].

pub mod capture;
pub mod restore;

pub use capture::capture_pipes;
pub use restore::Pipes;
